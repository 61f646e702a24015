//! The FAQ path on the demo knowledge base: training, ranking, deciding, replying.
//!
//! The ranker beats BM25's order on held-out paraphrases, training is deterministic, and the
//! knowledge base's own questions are answered.

use std::sync::OnceLock;

use kefu_bot::emotion::{self, Mood};
use kefu_bot::faq::{Decision, Entry, Faq, Thresholds};
use kefu_bot::kb::{self, DEMO_KB};
use kefu_bot::ranker::{self, RankerModel, TrainParams};
use kefu_bot::reply::reply;
use kefu_domain::conversation::HandoffReason;

fn entries() -> Vec<Entry> {
    kb::parse(DEMO_KB)
        .unwrap()
        .iter()
        .map(Entry::from)
        .collect()
}

fn model() -> &'static RankerModel {
    static MODEL: OnceLock<RankerModel> = OnceLock::new();
    MODEL.get_or_init(|| ranker::train(&entries(), &TrainParams::default()).unwrap())
}

fn faq() -> Faq {
    Faq::new(entries(), Some(model().clone()), Thresholds::default()).unwrap()
}

#[test]
fn the_ranker_beats_bm25_order_on_held_out_paraphrases() {
    let r = &model().report;
    assert!(r.held_out_queries > 100, "{r:?}");
    assert!(
        r.held_out_p_at_1_ranker > r.held_out_p_at_1_bm25 + 0.05,
        "{r:?}"
    );
}

#[test]
fn training_is_deterministic_and_the_model_round_trips() {
    let again = ranker::train(&entries(), &TrainParams::default()).unwrap();
    assert_eq!(again.version, model().version);
    let json = serde_json::to_string(model()).unwrap();
    let back = RankerModel::from_json(&json).unwrap();
    assert_eq!(back.version, model().version);
    for (a, b) in back.weights.iter().zip(&model().weights) {
        assert!((a - b).abs() < 1e-12);
    }
    let mut wrong: serde_json::Value = serde_json::from_str(&json).unwrap();
    wrong["features"][0] = "something_else".into();
    assert!(RankerModel::from_json(&wrong.to_string()).is_err());
}

#[test]
fn a_question_from_the_kb_is_answered_with_its_entry() {
    let faq = faq();
    for (question, id) in [
        ("运费是怎么收取的？", "zh-shipping-001"),
        ("满多少钱可以包邮", "zh-shipping-002"),
    ] {
        let a = faq.answer(question, None).unwrap();
        assert_eq!(a.top().unwrap().external_id, id, "{question}");
        assert_eq!(a.decision, Decision::Answer, "{question}: {}", a.confidence);
    }
}

/// Every question and paraphrase of the KB, asked as written or with a slip of case,
/// punctuation or one letter, is answered when its entry comes first: no list of choices when
/// the customer typed what the KB holds.
#[test]
fn a_near_exact_match_of_a_kb_text_is_answered() {
    let faq = faq();
    let mut asked = 0;
    for e in entries().iter().take(60) {
        for text in e.texts() {
            for query in [text.to_owned(), format!("{}!", text.to_uppercase())] {
                let a = faq.answer(&query, None).unwrap();
                if a.top().is_some_and(|t| t.entry == e.id) && query.chars().count() >= 4 {
                    asked += 1;
                    assert_eq!(a.decision, Decision::Answer, "{query}: {}", a.confidence);
                }
            }
        }
    }
    assert!(asked > 300, "{asked}");
    let a = faq.answer("How long does a refund tkae", None).unwrap();
    assert_eq!(a.top().unwrap().external_id, "en-refunds-001");
    assert_eq!(a.decision, Decision::Answer, "one slip: {}", a.confidence);
}

#[test]
fn confidence_orders_decisions_and_nonsense_is_not_answered() {
    let faq = faq();
    let a = faq.answer("量子色动力学的渐近自由", None).unwrap();
    assert_ne!(a.decision, Decision::Answer, "{}", a.confidence);
    let a = faq.answer("", None).unwrap();
    assert!(a.ranked.is_empty());
    assert_eq!(a.decision, Decision::Handoff);
    assert!(a.suggestions().is_empty());
}

#[test]
fn sustained_anger_hands_over_whatever_the_answer() {
    let faq = faq();
    let angry = emotion::assess("This is ridiculous, terrible service!!!");
    assert_eq!(angry.mood, Mood::Angry);
    let r = reply(
        &faq,
        "How much is shipping?? Terrible!!!",
        &[angry],
        "en",
        None,
    )
    .unwrap();
    assert_eq!(r.handoff, Some(HandoffReason::NegativeEmotion));
    assert!(r.strategy.soothing.is_some());
    let calm = reply(&faq, "How much is shipping?", &[], "en", None).unwrap();
    assert_ne!(calm.handoff, Some(HandoffReason::NegativeEmotion));
}

fn refs(qs: &[(String, String)]) -> Vec<(&str, &str)> {
    qs.iter().map(|(t, i)| (t.as_str(), i.as_str())).collect()
}

/// The demo KB's questions asked as they stand, each labelled with `label(its entry)`.
fn kb_questions(label: impl Fn(usize) -> usize) -> Vec<(String, String)> {
    let entries = entries();
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let q = e.texts().next().unwrap().to_owned();
            (q, entries[label(i) % entries.len()].external_id.clone())
        })
        .collect()
}

#[test]
fn the_confidence_can_be_fitted_on_labelled_questions() {
    let right = kb_questions(|i| i);
    let wrong = kb_questions(|i| i + 1);
    let base = faq();
    let confidence = |faq: &Faq| -> f64 {
        right
            .iter()
            .map(|(q, _)| faq.answer(q, None).unwrap().confidence)
            .sum::<f64>()
            / right.len() as f64
    };

    // Told the ranking is right on (nearly) every question, the bot grows surer of such
    // rankings; told it is wrong on every one, it stops trusting them.
    let mut trusting = faq();
    let ranked_right = trusting.calibrate(&refs(&right)).unwrap();
    assert!(
        ranked_right * 10 >= right.len() * 9,
        "{ranked_right} of {}",
        right.len()
    );
    let mut doubting = faq();
    assert!(doubting.calibrate(&refs(&wrong)).unwrap() * 10 <= wrong.len());
    let (b, t, d) = (
        confidence(&base),
        confidence(&trusting),
        confidence(&doubting),
    );
    assert!(
        t > b && t > 0.8,
        "fitted on right rankings {t}, on paraphrases {b}"
    );
    assert!(d < 0.2, "fitted on wrong rankings {d}");
    assert_ne!(
        trusting.ranker.version, base.ranker.version,
        "a refit is another model"
    );
    assert_ne!(trusting.ranker.version, doubting.ranker.version);

    // A label the KB does not hold names its line, and nothing changes.
    let mut bad = right.clone();
    bad[3].1 = "no-such-entry".into();
    let mut unchanged = faq();
    let err = unchanged.calibrate(&refs(&bad)).unwrap_err().to_string();
    assert!(
        err.contains("line 4") && err.contains("no-such-entry"),
        "{err}"
    );
    assert_eq!(unchanged.ranker, base.ranker);
}
