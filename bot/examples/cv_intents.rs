//! Development aid: 5-fold cross-validation of the intent classifier on the training file
//! only, to choose its settings without looking at the test set. From the repository root:
//! `cargo run --release -p kefu-bot --example cv_intents -- EPOCHS RATE L2 CONCEPT_WEIGHT
//! WORD_WEIGHT GRAM_SIZES...` (the defaults: `40 0.8 1e-4 2 1 1 2 3`).
use kefu_bot::eval::{Labelled, accuracy, parse_jsonl};
use kefu_bot::intent::{IntentModel, IntentParams};
fn main() {
    let data: Vec<Labelled> =
        parse_jsonl(&std::fs::read_to_string("bot/data/intents-train.jsonl").unwrap()).unwrap();
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let params = IntentParams {
        epochs: args[0] as usize,
        learning_rate: args[1],
        l2: args[2],
        concept_weight: args[3],
        word_weight: args[4],
        grams: args[5..].iter().map(|x| *x as usize).collect(),
        ..IntentParams::default()
    };
    let k = 5;
    let (mut gold, mut pred) = (vec![], vec![]);
    for f in 0..k {
        let train: Vec<Labelled> = data
            .iter()
            .enumerate()
            .filter(|(i, _)| i % k != f)
            .map(|(_, x)| x.clone())
            .collect();
        let m = IntentModel::train(&train, &params).unwrap();
        for (_, x) in data.iter().enumerate().filter(|(i, _)| i % k == f) {
            gold.push(x.label.clone());
            pred.push(m.classify(&x.text).best().to_owned());
        }
    }
    println!("{:?} cv acc {:.4}", args, accuracy(&gold, &pred));
}
