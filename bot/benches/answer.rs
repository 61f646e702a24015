//! Answer latency with a 10,000-entry knowledge base, and classifications per second.
//!
//! `flock /tmp/kefu-bench.lock cargo bench -p kefu-bot --bench answer`
//!
//! The KB is generated from the demo KB by recombining its phrases deterministically: entry
//! `i` takes demo entry `i mod 340`'s question and paraphrases, each joined with a phrase of
//! another entry of the same language, so the index holds 10,000 distinct entries with the
//! demo KB's vocabulary and lengths. The ranker is the one trained on the demo KB (training
//! on the generated KB would learn its artefacts). One answer is what a customer turn costs
//! the bot in process: retrieval, features, ranking, calibration, decision, and the turn's
//! emotion. Queries are `bot/data/faq-queries.jsonl`, cycled.

use std::time::{Duration, Instant};

use kefu_bot::emotion;
use kefu_bot::eval::{FaqQuery, Labelled, parse_jsonl};
use kefu_bot::faq::{Entry, Faq, Thresholds};
use kefu_bot::intent::{IntentModel, IntentParams};
use kefu_bot::kb::{self, DEMO_KB, entry_id};
use kefu_bot::ranker::{self, TrainParams};

const ENTRIES: usize = 10_000;

fn generated_kb(demo: &[Entry]) -> Vec<Entry> {
    let by_locale = |l: &str| -> Vec<&Entry> { demo.iter().filter(|e| e.locale == l).collect() };
    let (zh, en) = (by_locale("zh"), by_locale("en"));
    (0..ENTRIES)
        .map(|i| {
            let base = &demo[i % demo.len()];
            let pool = if base.locale == "zh" { &zh } else { &en };
            let other = pool[(i * 7919 + 13) % pool.len()];
            let joiner = if base.locale == "zh" { "，" } else { ", " };
            let phrase = |k: usize| -> &str {
                let texts: Vec<&str> = other.texts().collect();
                texts[k % texts.len()]
            };
            let external_id = format!("gen-{i:05}");
            Entry {
                id: entry_id(&external_id),
                external_id,
                question: format!("{}{joiner}{}", base.question, phrase(i)),
                paraphrases: base
                    .paraphrases
                    .iter()
                    .enumerate()
                    .map(|(k, p)| format!("{p}{joiner}{}", phrase(i + k + 1)))
                    .collect(),
                answer: base.answer.clone(),
                category: base.category.clone(),
                locale: base.locale.clone(),
                revision: 1,
            }
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let seconds: f64 = std::env::var("KEFU_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data/");
    let read = |name: &str| std::fs::read_to_string(format!("{data}{name}")).expect(name);

    let demo: Vec<Entry> = kb::parse(DEMO_KB)
        .expect("demo KB")
        .iter()
        .map(Entry::from)
        .collect();
    let model = ranker::train(&demo, &TrainParams::default()).expect("ranker");
    let started = Instant::now();
    let faq = Faq::new(generated_kb(&demo), Some(model), Thresholds::default()).expect("faq");
    let build = started.elapsed();
    let queries: Vec<FaqQuery> = parse_jsonl(&read("faq-queries.jsonl")).expect("queries");

    // Warm up: every query once.
    for q in &queries {
        faq.answer(&q.text, None).expect("answer");
    }
    let mut latencies = Vec::new();
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let mut i = 0;
    while Instant::now() < until {
        let text = &queries[i % queries.len()].text;
        let t = Instant::now();
        let answer = faq.answer(text, None).expect("answer");
        let mood = emotion::assess(text);
        latencies.push(t.elapsed());
        std::hint::black_box((answer, mood));
        i += 1;
    }
    latencies.sort_unstable();
    let answers = latencies.len();

    let train: Vec<Labelled> = parse_jsonl(&read("intents-train.jsonl")).expect("train");
    let test: Vec<Labelled> = parse_jsonl(&read("intents-test.jsonl")).expect("test");
    let intents = IntentModel::train(&train, &IntentParams::default()).expect("intents");
    let rate = |f: &dyn Fn(&str)| {
        let until = Instant::now() + Duration::from_secs_f64(seconds / 2.0);
        let start = Instant::now();
        let mut n = 0usize;
        while Instant::now() < until {
            f(&test[n % test.len()].text);
            n += 1;
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    let intents_per_s = rate(&|t| {
        std::hint::black_box(intents.classify(t));
    });
    let emotions_per_s = rate(&|t| {
        std::hint::black_box(emotion::assess(t));
    });

    println!(
        "KB of {ENTRIES} entries built in {:.2} s; {answers} answers in {seconds} s",
        build.as_secs_f64()
    );
    println!(
        "answer (retrieval + ranking + emotion): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "intent classifications/s {intents_per_s:.0}, emotion assessments/s {emotions_per_s:.0} (one thread)"
    );
    println!(
        "{}",
        serde_json::json!({
            "entries": ENTRIES,
            "build_s": build.as_secs_f64(),
            "answers": answers,
            "p50_ms": ms(percentile(&latencies, 0.5)),
            "p99_ms": ms(percentile(&latencies, 0.99)),
            "max_ms": ms(*latencies.last().unwrap_or(&Duration::ZERO)),
            "intent_classifications_per_s": intents_per_s,
            "emotion_assessments_per_s": emotions_per_s,
        })
    );
}
