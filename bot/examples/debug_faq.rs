//! Development aid: how well each ranking feature alone orders the candidates of a query set
//! (`cargo run --release -p kefu-bot --example debug_faq -- KB.jsonl QUERIES.jsonl`).
use kefu_bot::eval::{FaqQuery, parse_jsonl};
use kefu_bot::faq::{Engine, Entry, FEATURES};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kb = kefu_bot::kb::parse(&std::fs::read_to_string(&args[0]).unwrap()).unwrap();
    let entries: Vec<Entry> = kb.iter().map(Entry::from).collect();
    let engine = Engine::build(entries.clone()).unwrap();
    let queries: Vec<FaqQuery> = parse_jsonl(&std::fs::read_to_string(&args[1]).unwrap()).unwrap();
    let mut by_feature = vec![0usize; FEATURES.len()];
    let mut found = 0;
    for q in &queries {
        let candidates = engine.candidates(&q.text, None).unwrap();
        let right = |e: usize| entries[e].external_id == q.answer_id;
        found += usize::from(candidates.iter().any(|c| right(c.entry)));
        for (k, n) in by_feature.iter_mut().enumerate() {
            let best = candidates
                .iter()
                .max_by(|a, b| a.features[k].total_cmp(&b.features[k]));
            *n += usize::from(best.is_some_and(|b| right(b.entry)));
        }
    }
    println!("recall {:.4}", found as f64 / queries.len() as f64);
    for (name, n) in FEATURES.iter().zip(by_feature) {
        println!("{name:<20} P@1 {:.4}", n as f64 / queries.len() as f64);
    }
}
