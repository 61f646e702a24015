//! `kefu kb import`, `kefu eval …` and `kefu train ranker` end to end on the embedded store.

mod common;

use std::process::Output;

use common::{kefu, lines};

/// The JSON object an evaluation or import prints on its last line.
fn last_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "kefu failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    serde_json::from_str(stdout.lines().last().expect("some output")).expect("a JSON last line")
}

const ENTRY: &str = r#"{"id":"en-shipping-900","question":"How much is shipping?","paraphrases":["shipping cost","what is the delivery fee"],"answer":"Free from 99.","category":"shipping","locale":"en"}"#;

fn entry(id: &str, answer: &str) -> String {
    ENTRY
        .replace("en-shipping-900", id)
        .replace("Free from 99.", answer)
}

#[test]
fn import_writes_entries_once_and_edits_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("kb.jsonl");
    let kb = [
        entry("a-1", "One."),
        entry("a-2", "Two."),
        entry("a-3", "Three."),
    ]
    .join("\n");
    std::fs::write(&file, &kb).unwrap();
    let path = file.to_str().unwrap();

    let first = last_json(&kefu(d, &["kb", "import", path]));
    assert_eq!(first["created"], 3);
    let again = last_json(&kefu(d, &["kb", "import", path]));
    assert_eq!(
        (again["created"].clone(), again["unchanged"].clone()),
        (0.into(), 3.into())
    );

    std::fs::write(&file, kb.replace("Two.", "Two, edited.")).unwrap();
    let edited = last_json(&kefu(d, &["kb", "import", path]));
    assert_eq!(
        (edited["updated"].clone(), edited["unchanged"].clone()),
        (1.into(), 2.into())
    );

    let events = lines(&kefu(d, &["log", "tail"]));
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "KnowledgeEntryCreated")
            .count(),
        3,
        "{types:?}"
    );
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "KnowledgeEntryEdited")
            .count(),
        1
    );
}

#[test]
fn a_bad_line_names_its_number_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("kb.jsonl");
    let kb = [
        entry("b-1", "Fine."),
        "{not json".to_owned(),
        entry("b-3", " "),
        entry("b-1", "Again."),
    ]
    .join("\n");
    std::fs::write(&file, kb).unwrap();
    let out = kefu(d, &["kb", "import", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "line 2",
        "line 3: invalid answer",
        "line 4",
        "3 bad line(s)",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    // Nothing written: the file is refused before a store is even opened.
    assert!(!d.join("data").exists());
}

/// A real shop's KB: categories in Chinese, and a busy question asked 120 ways. What is still
/// refused (over 1000 paraphrases, a category with a line break) is named with its line and
/// field, and nothing is written.
#[test]
fn a_real_shops_kb_with_chinese_categories_and_many_paraphrases_imports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("kb.jsonl");
    let entry = |id: &str, category: &str, paraphrases: usize| {
        serde_json::json!({
            "id": id,
            "question": "退款多久能到账？",
            "paraphrases": (1..=paraphrases)
                .map(|n| format!("钱多久退回来（问法{n}）"))
                .collect::<Vec<_>>(),
            "answer": "审核通过后1-3个工作日原路退回。",
            "category": category,
            "locale": "zh-CN",
        })
        .to_string()
    };
    let kb = [
        entry("zh-refund-001", "售后服务", 120),
        entry("zh-refund-002", "退换货/退款", 3),
        entry("zh-refund-003", "配送·物流", 0),
    ]
    .join("\n");
    std::fs::write(&file, &kb).unwrap();
    let imported = last_json(&kefu(d, &["kb", "import", file.to_str().unwrap()]));
    assert_eq!(imported["created"], 3, "{imported}");
    let events = lines(&kefu(d, &["log", "tail"]));
    let categories: Vec<&str> = events
        .iter()
        .filter_map(|e| e["payload"]["category"].as_str())
        .collect();
    assert_eq!(categories, ["售后服务", "退换货/退款", "配送·物流"]);
    let paraphrases = events
        .iter()
        .find_map(|e| e["payload"]["paraphrases"].as_array())
        .unwrap();
    assert_eq!(paraphrases.len(), 120);

    let refused = d.join("refused.jsonl");
    std::fs::write(
        &refused,
        [
            entry("zh-refund-101", "售后服务", 1001),
            entry("zh-refund-102", "售后\n服务", 1),
        ]
        .join("\n"),
    )
    .unwrap();
    let out = kefu(d, &["kb", "import", refused.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "line 1: invalid paraphrases: 1001 given; at most 1000 per entry",
        "line 2: invalid category",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    assert_eq!(
        lines(&kefu(d, &["log", "tail"])).len(),
        events.len(),
        "nothing written"
    );
}

#[test]
fn evaluations_print_their_figures_last() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../bot/data/");
    let write = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let train = write(
        "train.jsonl",
        r#"{"text":"where is my parcel","label":"parcel"}
{"text":"快递到哪了","label":"parcel"}
{"text":"I want my money back","label":"refund"}
{"text":"退款什么时候到","label":"refund"}"#,
    );
    let test = write(
        "test.jsonl",
        r#"{"text":"where is my package","label":"parcel"}
{"text":"退款到账了吗","label":"refund"}"#,
    );
    let r = last_json(&kefu(
        d,
        &["eval", "intents", "--train", &train, "--test", &test],
    ));
    assert_eq!(r["test_examples"], 2);
    assert!(r["accuracy"].as_f64().unwrap() >= 0.5, "{r}");

    let queries = write(
        "q.jsonl",
        r#"{"text":"运费是怎么收取的？","answer_id":"zh-shipping-001"}"#,
    );
    let kb = format!("{data}demo-kb.jsonl");
    let model = d.join("ranker.json");
    let trained = last_json(&kefu(
        d,
        &[
            "train",
            "ranker",
            "--kb",
            &kb,
            "--out",
            model.to_str().unwrap(),
        ],
    ));
    assert!(
        trained["version"]
            .as_str()
            .unwrap()
            .starts_with("pairwise-lr-")
    );
    // The confidence fitted on labelled questions is another model; a label the KB does not
    // hold is refused with its file and line, and no model is written.
    let calibrated_model = d.join("calibrated.json");
    let calibrated = last_json(&kefu(
        d,
        &[
            "train",
            "ranker",
            "--kb",
            &kb,
            "--out",
            calibrated_model.to_str().unwrap(),
            "--calibrate",
            &queries,
        ],
    ));
    assert_ne!(calibrated["version"], trained["version"]);
    let bad = write(
        "bad-labels.jsonl",
        r#"{"text":"运费是怎么收取的？","answer_id":"zh-shipping-001"}
{"text":"满多少包邮","answer_id":"zh-nothing-999"}"#,
    );
    let refused = kefu(
        d,
        &[
            "train",
            "ranker",
            "--kb",
            &kb,
            "--out",
            d.join("never.json").to_str().unwrap(),
            "--calibrate",
            &bad,
        ],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("bad-labels.jsonl")
            && stderr.contains("line 2")
            && stderr.contains("zh-nothing-999"),
        "{stderr}"
    );
    assert!(!d.join("never.json").exists());
    let r = last_json(&kefu(
        d,
        &[
            "eval",
            "faq",
            "--kb",
            &kb,
            "--queries",
            &queries,
            "--model",
            model.to_str().unwrap(),
            "--predictions",
            d.join("faq.jsonl").to_str().unwrap(),
        ],
    ));
    assert_eq!(r["p_at_1"], 1.0, "{r}");
    let faq: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("faq.jsonl")).unwrap()).unwrap();
    assert_eq!(faq["gold"], "zh-shipping-001");
    assert_eq!(faq["prediction"], "zh-shipping-001");
    assert_eq!(faq["gold_rank"], 0);
    assert_eq!(r["model_version"], trained["version"]);

    let emotion = write(
        "e.jsonl",
        r#"{"text":"terrible service!!!","label":"angry"}
{"text":"thanks, very helpful","polarity":0.8}"#,
    );
    let predictions = d.join("predictions.jsonl");
    let r = last_json(&kefu(
        d,
        &[
            "eval",
            "emotion",
            "--test",
            &emotion,
            "--predictions",
            predictions.to_str().unwrap(),
        ],
    ));
    assert_eq!(r["examples"], 2);
    assert_eq!(r["sign_accuracy"], 1.0, "{r}");
    let written: Vec<serde_json::Value> = std::fs::read_to_string(&predictions)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(written.len(), 2);
    assert_eq!(written[0]["text"], "terrible service!!!");
    assert_eq!(written[0]["gold"], "angry");
    assert_eq!(written[0]["prediction"], "angry");
    assert!(written[0]["score"].as_f64().unwrap() < -0.1);
    assert_eq!(written[1]["gold"], serde_json::Value::Null);
    assert_eq!(written[1]["gold_polarity"], 0.8);
    assert!(written[1]["score"].as_f64().unwrap() > 0.1);

    let bad = write("bad.jsonl", "{\"text\":\"x\"}\n");
    let out = kefu(d, &["eval", "emotion", "--test", &bad]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
}
