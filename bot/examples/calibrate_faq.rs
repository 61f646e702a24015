//! Chooses the FAQ answer threshold from calibration, not by hand: the queries of
//! `bot/data/faq-queries.jsonl` are split in two by a hash of their text; on the calibration
//! half the threshold is the lowest confidence at which the answered precision (right entry
//! first) is at or above the target over at least [`MIN_ANSWERED`] answers; the other half then
//! says what that threshold does on queries it was not chosen on. Near-exact matches are answered
//! whatever the threshold (`Faq::answer`), so they count at every threshold.
//! From the repository root: `cargo run --release -p kefu-bot --example calibrate_faq`
use kefu_bot::eval::{FaqQuery, parse_jsonl};
use kefu_bot::faq::{Decision, Entry, Faq, Thresholds};
use kefu_bot::kb;
use kefu_bot::text::hash;

/// The answered precision the threshold must keep.
const TARGET: f64 = 0.85;
/// Fewer answers than this say nothing about a precision.
const MIN_ANSWERED: usize = 20;

struct Outcome {
    confidence: f64,
    near_exact: bool,
    right: bool,
}

fn figures(outcomes: &[&Outcome], threshold: f64) -> (f64, f64, usize) {
    let answered: Vec<&&Outcome> = outcomes
        .iter()
        .filter(|o| o.near_exact || o.confidence >= threshold)
        .collect();
    let right = answered.iter().filter(|o| o.right).count();
    let share = answered.len() as f64 / outcomes.len().max(1) as f64;
    let precision = right as f64 / answered.len().max(1) as f64;
    (share, precision, answered.len())
}

fn outcomes(faq: &Faq, queries: &[&FaqQuery]) -> Vec<Outcome> {
    queries
        .iter()
        .map(|q| {
            let a = faq.answer(&q.text, None).expect("an answer");
            Outcome {
                confidence: a.confidence,
                near_exact: a.decision == Decision::Answer,
                right: a.top().is_some_and(|r| r.external_id == q.answer_id),
            }
        })
        .collect()
}

/// The lowest confidence at which the answered precision on `outcomes` is at least
/// [`TARGET`] over at least [`MIN_ANSWERED`] answers (1.0, answering only near-exact matches,
/// when there is none).
fn threshold_for_target(outcomes: &[&Outcome]) -> f64 {
    let mut candidates: Vec<f64> = outcomes.iter().map(|o| o.confidence).collect();
    candidates.sort_by(|a, b| b.total_cmp(a));
    candidates
        .iter()
        .copied()
        .filter(|t| {
            let (_, precision, n) = figures(outcomes, *t);
            n >= MIN_ANSWERED && precision >= TARGET
        })
        .fold(1.0, f64::min)
}

fn main() {
    let entries: Vec<Entry> = kb::parse(kb::DEMO_KB)
        .expect("the demo KB")
        .iter()
        .map(Entry::from)
        .collect();
    let queries: Vec<FaqQuery> = parse_jsonl(
        &std::fs::read_to_string("bot/data/faq-queries.jsonl").expect("bot/data/faq-queries.jsonl"),
    )
    .expect("queries");
    let (calibration, test): (Vec<&FaqQuery>, Vec<&FaqQuery>) = queries
        .iter()
        .partition(|q| hash(format!("calibrate:{}", q.text).as_bytes()).is_multiple_of(2));
    // Answering only at certainty leaves (nearly) only the near-exact answers; a confidence of
    // 1 is answered at every threshold anyway.
    let never = Thresholds {
        answer: 1.0,
        clarify: 1.0,
    };
    let mut faq = Faq::new(entries, None, never).expect("the bot");
    let default = Thresholds::default().answer;
    for fitted_on in ["the KB's paraphrases", "the calibration half"] {
        if fitted_on == "the calibration half" {
            let labelled: Vec<(&str, &str)> = calibration
                .iter()
                .map(|q| (q.text.as_str(), q.answer_id.as_str()))
                .collect();
            let right = faq.calibrate(&labelled).expect("calibration");
            println!(
                "refitted on {} calibration questions ({right} ranked right first): {:?}",
                labelled.len(),
                faq.ranker.calibration
            );
        }
        let cal = outcomes(&faq, &calibration);
        let cal: Vec<&Outcome> = cal.iter().collect();
        let held = outcomes(&faq, &test);
        let held: Vec<&Outcome> = held.iter().collect();
        for t in [0.3, 0.4, 0.5, 0.6, 0.7, 0.8] {
            let (cs, cp, _) = figures(&cal, t);
            let (ts, tp, _) = figures(&held, t);
            println!(
                "confidence fitted on {fitted_on}, threshold {t}: calibration half answered {cs:.4} \
                 precision {cp:.4}; test half answered {ts:.4} precision {tp:.4}"
            );
        }
        let chosen = threshold_for_target(&cal);
        for (name, t) in [
            ("default", default),
            ("chosen on the calibration half", chosen),
        ] {
            let (cs, cp, _) = figures(&cal, t);
            let (ts, tp, _) = figures(&held, t);
            println!(
                "confidence fitted on {fitted_on}, {name} answer threshold {t:.4}: calibration half \
                 answered {cs:.4} precision {cp:.4}; test half answered {ts:.4} precision {tp:.4}"
            );
        }
    }
    println!(
        "{} calibration and {} test queries",
        calibration.len(),
        test.len()
    );
}
