use kefu_bot::eval::{FaqQuery, parse_jsonl};
use kefu_bot::faq::{Engine, Entry};
fn main() {
    let kb = kefu_bot::kb::parse(kefu_bot::kb::DEMO_KB).unwrap();
    let entries: Vec<Entry> = kb.iter().map(Entry::from).collect();
    let engine = Engine::build(entries.clone()).unwrap();
    let qs: Vec<FaqQuery> =
        parse_jsonl(&std::fs::read_to_string("bot/data/faq-queries.jsonl").unwrap()).unwrap();
    let (mut p1, mut found, mut cos1) = (0, 0, 0);
    for (n, q) in qs.iter().enumerate() {
        let c = engine.candidates(&q.text, None).unwrap();
        let pos = c
            .iter()
            .position(|c| entries[c.entry].external_id == q.answer_id);
        if pos == Some(0) {
            p1 += 1
        }
        if pos.is_some() {
            found += 1
        }
        let best = c
            .iter()
            .max_by(|a, b| a.features[11].total_cmp(&b.features[11]));
        if best.map(|b| entries[b.entry].external_id == q.answer_id) == Some(true) {
            cos1 += 1
        }
        if n % 37 == 0 {
            println!(
                "{} -> {:?} terms={:?}",
                q.text,
                pos,
                kefu_bot::text::terms(&q.text)
            );
            for c in c.iter().take(3) {
                println!(
                    "   {} {:.2} {}",
                    entries[c.entry].external_id, c.hit.score, entries[c.entry].question
                );
            }
        }
    }
    println!(
        "bm25 p1 {} recall {} cos-in-cands p1 {} of {}",
        p1,
        found,
        cos1,
        qs.len()
    );
}
