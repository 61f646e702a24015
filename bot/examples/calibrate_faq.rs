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
    // Answering only at certainty leaves (nearly) only the near-exact answers; a confidence of
    // 1 is answered at every threshold anyway.
    let never = Thresholds {
        answer: 1.0,
        clarify: 1.0,
    };
    let faq = Faq::new(entries, None, never).expect("the bot");
    let mut calibration = Vec::new();
    let mut test = Vec::new();
    for q in &queries {
        let a = faq.answer(&q.text, None).expect("an answer");
        let o = Outcome {
            confidence: a.confidence,
            near_exact: a.decision == Decision::Answer,
            right: a.top().is_some_and(|r| r.external_id == q.answer_id),
        };
        if hash(format!("calibrate:{}", q.text).as_bytes()).is_multiple_of(2) {
            calibration.push(o);
        } else {
            test.push(o);
        }
    }
    let cal: Vec<&Outcome> = calibration.iter().collect();
    let mut candidates: Vec<f64> = cal.iter().map(|o| o.confidence).collect();
    candidates.sort_by(|a, b| b.total_cmp(a));
    let chosen = candidates
        .iter()
        .copied()
        .filter(|t| {
            let (_, precision, n) = figures(&cal, *t);
            n >= MIN_ANSWERED && precision >= TARGET
        })
        .fold(1.0, f64::min);
    for t in [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] {
        let (share, precision, _) = figures(&cal, t);
        println!("calibration half at {t}: answered {share:.4}, precision {precision:.4}");
    }
    let test: Vec<&Outcome> = test.iter().collect();
    let default = Thresholds::default().answer;
    for (name, t) in [("default", default), ("calibrated", chosen)] {
        let (cs, cp, _) = figures(&cal, t);
        let (ts, tp, _) = figures(&test, t);
        println!(
            "{name} answer threshold {t:.4}: calibration half answered {cs:.4} precision {cp:.4}; \
             test half answered {ts:.4} precision {tp:.4}"
        );
    }
    println!(
        "{} calibration and {} test queries",
        calibration.len(),
        test.len()
    );
}
