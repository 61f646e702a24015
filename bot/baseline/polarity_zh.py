#!/usr/bin/env python3
"""Chinese review polarity baselines on kefu's held-out split (bot/data/sentiment-zh-heldout.jsonl,
made by `cargo run --release -p kefu-bot --example train_polarity_zh`):

- SnowNLP 0.12.3 (`SnowNLP(text).sentiments`, positive above 0.5). Note: SnowNLP was trained on
  the full neg.txt/pos.txt the shared file comes from, held-out lines included, so its figure
  is optimistic;
- TF-IDF (character 1-2-grams, sublinear tf) + logistic regression, trained on the shared
  file's lines that are not held out (the same lines kefu's model trained on).

Sign accuracy over the two gold classes; a prediction of exactly neutral counts as wrong.
Run from the repository root:
    python3 -m pip install -r bot/baseline/requirements.txt && python3 bot/baseline/polarity_zh.py
"""

import json
import sys
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from snownlp import SnowNLP

ROOT = Path(__file__).resolve().parent.parent.parent
SHARED = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/sentiment-zh-reviews-train.jsonl")


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    held = jsonl(ROOT / "bot/data/sentiment-zh-heldout.jsonl")
    held_texts = {h["text"] for h in held}
    train = [t for t in jsonl(SHARED) if t["text"] not in held_texts]
    gold = [1 if h["polarity"] > 0 else -1 for h in held]
    snow = [1 if SnowNLP(h["text"]).sentiments > 0.5 else -1 for h in held]
    model = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegression(C=10.0, max_iter=3000),
    ).fit([t["text"] for t in train], [1 if t["polarity"] > 0 else -1 for t in train])
    lr = list(model.predict([h["text"] for h in held]))
    acc = lambda p: round(sum(a == b for a, b in zip(gold, p)) / len(gold), 4)
    print(json.dumps({"held_out": len(held), "trained_on": len(train),
                      "snownlp_sign_accuracy": acc(snow), "tfidf_lr_sign_accuracy": acc(lr)}))
    # The help desk's own lines (gold polarity in [-1, 1], a third or so neutral). Neither peer
    # has a neutral class, so they are compared where they can be: the sign F1 over lines whose
    # gold is not neutral (mean F1 of the two signs, as `kefu eval emotion` reports it) and the
    # correlation of 2p - 1 with the gold polarity.
    chat = jsonl(ROOT / "bot/data/emotion-zh-test.jsonl")
    texts = [c["text"] for c in chat]
    polar = [c["polarity"] for c in chat]
    snow_p = [2 * SnowNLP(t).sentiments - 1 for t in texts]
    lr_p = [2 * p - 1 for p in model.predict_proba(texts)[:, list(model.classes_).index(1)]]
    print(json.dumps({"chat_lines": len(chat),
                      "snownlp": chat_figures(polar, snow_p), "tfidf_lr": chat_figures(polar, lr_p)}))


def chat_figures(gold, predicted):
    pairs = [(g, p) for g, p in zip(gold, predicted) if abs(g) > 0.1]
    f1s = []
    for s in (1, -1):
        tp = sum(1 for g, p in pairs if g * s > 0 and p * s > 0.1)
        guessed = sum(1 for _, p in pairs if p * s > 0.1)
        actual = sum(1 for g, _ in pairs if g * s > 0)
        prec = tp / guessed if guessed else 0.0
        rec = tp / actual if actual else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    n = len(gold)
    mg, mp = sum(gold) / n, sum(predicted) / n
    cov = sum((g - mg) * (p - mp) for g, p in zip(gold, predicted))
    var = (sum((g - mg) ** 2 for g in gold) * sum((p - mp) ** 2 for p in predicted)) ** 0.5
    return {"sign_f1_non_neutral": round(sum(f1s) / 2, 4), "correlation": round(cov / var, 4)}


main()
