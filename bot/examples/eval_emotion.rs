//! Development aid: `kefu_bot::eval::eval_emotion`'s report on each emotion test file, one JSON
//! line per file, without building the server; with `--lines`, also each line's gold polarity,
//! kefu's polarity and mood, and the text
//! (`cargo run --release -p kefu-bot --example eval_emotion -- [--lines] FILE.jsonl …`).
use kefu_bot::eval::{EmotionExample, eval_emotion, parse_jsonl};

fn main() {
    let mut lines = false;
    for arg in std::env::args().skip(1) {
        if arg == "--lines" {
            lines = true;
            continue;
        }
        let text = std::fs::read_to_string(&arg).unwrap_or_else(|e| panic!("{arg}: {e}"));
        let test: Vec<EmotionExample> = parse_jsonl(&text).unwrap_or_else(|e| panic!("{arg}: {e}"));
        let report = eval_emotion(&test).unwrap_or_else(|e| panic!("{arg}: {e}"));
        if lines {
            for p in &report.predictions {
                let gold = p
                    .gold_polarity
                    .map_or("-".to_owned(), |g| format!("{g:+.2}"));
                let mood = p.prediction.as_deref().unwrap_or("-");
                println!("{gold}\t{:+.3}\t{mood}\t{}", p.score, p.text);
            }
        }
        let json = serde_json::to_string(&report).expect("report serialises");
        println!("{arg}\t{json}");
    }
}
