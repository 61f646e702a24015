#!/usr/bin/env python3
"""Standard baselines from PyPI beside kefu's own figures, on the same files.

- intents: scikit-learn TF-IDF (character 1-3-grams within word boundaries, sublinear tf)
  + logistic regression, trained on intents-train, scored on intents-test;
- FAQ matching: the same pipeline trained to map every KB question and paraphrase to its
  entry id, scored on faq-queries (P@1, MRR@10);
- English polarity: VADER (vaderSentiment), compound score, on emotion-en-test (chat lines) and
  emotion-en-reviews (product-review lines written and labelled by hand for kefu); also on
  emotion-en-reviews-dev (our tuning lines for the English lexicon, never a reported figure).

Signs use the same rule as `kefu eval emotion`: above 0.1 positive, below -0.1 negative, else
neutral (VADER's own convention is +-0.05; both are printed).

Run from the repository root:
    python3 -m pip install -r bot/baseline/requirements.txt && python3 bot/baseline/baseline.py
VADER alone on any emotion files (paths, or names in bot/data), one JSON line each:
    python3 bot/baseline/baseline.py vader bot/data/emotion-en-reviews-dev.jsonl
kefu's figures come from the `kefu` binary: $KEFU_BIN, else target/release/kefu (built with
`cargo build --release -p kefu-api`), else `cargo run --release`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

DATA = Path(__file__).resolve().parent.parent / "data"
ROOT = Path(__file__).resolve().parent.parent.parent


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def pipeline():
    return make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True),
        LogisticRegression(C=10.0, max_iter=3000),
    )


def intents():
    train = jsonl(DATA / "intents-train.jsonl")
    test = jsonl(DATA / "intents-test.jsonl")
    model = pipeline().fit([t["text"] for t in train], [t["label"] for t in train])
    predicted = model.predict([t["text"] for t in test])
    gold = [t["label"] for t in test]
    return {
        "accuracy": round(accuracy_score(gold, predicted), 4),
        "macro_f1": round(float(f1_score(gold, predicted, average="macro")), 4),
    }


def faq():
    kb = jsonl(DATA / "demo-kb.jsonl")
    queries = jsonl(DATA / "faq-queries.jsonl")
    texts, labels = [], []
    for e in kb:
        for t in [e["question"], *e["paraphrases"]]:
            texts.append(t)
            labels.append(e["id"])
    model = pipeline().fit(texts, labels)
    proba = model.predict_proba([q["text"] for q in queries])
    classes = list(model.classes_)
    p1, rr = 0, 0.0
    for q, p in zip(queries, proba):
        order = np.argsort(-p)
        rank = [classes[i] for i in order[:10]]
        if rank and rank[0] == q["answer_id"]:
            p1 += 1
        if q["answer_id"] in rank:
            rr += 1.0 / (rank.index(q["answer_id"]) + 1)
    return {"p_at_1": round(p1 / len(queries), 4), "mrr_at_10": round(rr / len(queries), 4)}


def sign(x, band):
    return 1 if x > band else (-1 if x < -band else 0)


def vader(name):
    test = jsonl(name if Path(name).exists() else DATA / name)
    analyzer = SentimentIntensityAnalyzer()
    scores = [analyzer.polarity_scores(t["text"])["compound"] for t in test]
    gold = [t["polarity"] for t in test]
    out = {"correlation": round(float(np.corrcoef(gold, scores)[0, 1]), 4)}
    for band, suffix in [(0.1, ""), (0.05, "_vader_band")]:
        g = [sign(x, 0.1) for x in gold]
        p = [sign(x, band) for x in scores]
        out["sign_accuracy" + suffix] = round(accuracy_score(g, p), 4)
        out["sign_macro_f1" + suffix] = round(float(f1_score(g, p, average="macro")), 4)
        # Over the lines whose gold is positive or negative, the mean F1 of those two signs
        # (a neutral guess is a miss): kefu's sign_f1_non_neutral.
        kept = [(a, b) for a, b in zip(g, p) if a != 0]
        out["sign_f1_non_neutral" + suffix] = round(float(f1_score(
            [a for a, _ in kept], [b for _, b in kept], labels=[-1, 1], average="macro")), 4)
    return out


def kefu(*args):
    binary = os.environ.get("KEFU_BIN") or str(ROOT / "target" / "release" / "kefu")
    command = [binary] if Path(binary).exists() else [
        "cargo", "run", "-q", "--release", "-p", "kefu-api", "--bin", "kefu", "--"]
    out = subprocess.run(command + list(args), cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    d = "bot/data/"
    k_int = kefu("eval", "intents", "--train", d + "intents-train.jsonl",
                 "--test", d + "intents-test.jsonl")
    k_faq = kefu("eval", "faq", "--kb", d + "demo-kb.jsonl", "--queries", d + "faq-queries.jsonl")
    k_emo = kefu("eval", "emotion", "--test", d + "emotion-en-test.jsonl")
    k_rev = kefu("eval", "emotion", "--test", d + "emotion-en-reviews.jsonl")
    k_dev = kefu("eval", "emotion", "--test", d + "emotion-en-reviews-dev.jsonl")
    b_int, b_faq = intents(), faq()
    b_emo, b_rev = vader("emotion-en-test.jsonl"), vader("emotion-en-reviews.jsonl")
    b_dev = vader("emotion-en-reviews-dev.jsonl")
    rows = [
        ("intents accuracy", b_int["accuracy"], k_int["accuracy"]),
        ("intents macro-F1", b_int["macro_f1"], k_int["macro_f1"]),
        ("FAQ P@1", b_faq["p_at_1"], k_faq["p_at_1"]),
        ("FAQ MRR@10", b_faq["mrr_at_10"], k_faq["mrr_at_10"]),
        ("en polarity sign accuracy", b_emo["sign_accuracy"], k_emo["sign_accuracy"]),
        ("en polarity sign macro-F1", b_emo["sign_macro_f1"], k_emo["sign_macro_f1"]),
        ("en polarity correlation", b_emo["correlation"], k_emo.get("correlation")),
        ("en chat sign F1 non-neutral", b_emo["sign_f1_non_neutral"], k_emo["sign_f1_non_neutral"]),
        ("en reviews correlation", b_rev["correlation"], k_rev.get("correlation")),
        ("en reviews sign accuracy", b_rev["sign_accuracy"], k_rev["sign_accuracy"]),
        ("en reviews sign F1 non-neutral", b_rev["sign_f1_non_neutral"], k_rev["sign_f1_non_neutral"]),
        # Tuning lines of the English lexicon: shown to see over-fitting, not a result.
        ("en reviews dev correlation", b_dev["correlation"], k_dev.get("correlation")),
        ("en reviews dev sign accuracy", b_dev["sign_accuracy"], k_dev["sign_accuracy"]),
        ("en reviews dev sign F1 non-n.", b_dev["sign_f1_non_neutral"], k_dev["sign_f1_non_neutral"]),
    ]
    print(f"{'figure':<32}{'baseline':>10}{'kefu':>10}")
    for name, b, k in rows:
        print(f"{name:<32}{b:>10.4f}{k:>10.4f}")
    print(f"(VADER with its own +-0.05 band: sign accuracy {b_emo['sign_accuracy_vader_band']}, "
          f"sign macro-F1 {b_emo['sign_macro_f1_vader_band']})")
    print(json.dumps({
        "baseline": {"intents": b_int, "faq": b_faq, "emotion_en": b_emo, "reviews_en": b_rev,
                     "reviews_en_dev": b_dev},
        "kefu": {"intents": k_int, "faq": k_faq, "emotion_en": k_emo, "reviews_en": k_rev,
                 "reviews_en_dev": k_dev},
    }, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["vader"]:
        for name in sys.argv[2:]:
            print(name, json.dumps(vader(name)), sep="\t")
        sys.exit(0)
    sys.exit(main())
