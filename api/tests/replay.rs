//! `kefu replay`, `kefu projections` and `kefu query` end to end on the embedded store: an
//! operator writes a short conversation into the log, rebuilds the read models, builds an
//! as-of copy, and asks both.

mod common;

use common::{kefu, lines};

const CONVERSATION: &str = "0190f1c2-0000-7000-8000-0000000000c1";
const CORRELATION: &str = "0190f1c2-0000-7000-8000-0000000000f1";

fn append(d: &std::path::Path, event_type: &str, payload: serde_json::Value) -> u64 {
    let stream = format!("conversation-{CONVERSATION}");
    let out = lines(&kefu(
        d,
        &[
            "log",
            "append",
            &stream,
            event_type,
            &payload.to_string(),
            "--actor",
            "customer:c-7",
            "--correlation",
            CORRELATION,
        ],
    ));
    out[0]["last_position"].as_u64().unwrap()
}

#[test]
fn replay_then_query_live_and_as_of() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let started = append(
        d,
        "ConversationStarted",
        serde_json::json!({
            "conversation": CONVERSATION,
            "customer": "0190f1c2-0000-7000-8000-0000000000aa",
            "tier": "regular",
            "locale": "zh-CN",
            "channel": "app",
            "bot_enabled": true,
            "at": "2026-11-20T06:00:00Z"
        }),
    );
    append(
        d,
        "CustomerTurnRecorded",
        serde_json::json!({
            "message": "0190f1c2-0000-7000-8000-0000000000d1",
            "text": "我的快递到哪了，身份证 11010519491231002X",
            "at": "2026-11-20T06:01:00Z"
        }),
    );
    // A hand-written event the domain cannot read: projections pass over it.
    let stream = format!("conversation-{CONVERSATION}");
    lines(&kefu(d, &["log", "append", &stream, "Nonsense", "{}"]));
    append(
        d,
        "ConversationClosed",
        serde_json::json!({
            "by": { "kind": "customer" },
            "reason": "resolved",
            "at": "2026-11-20T06:03:00Z"
        }),
    );

    let built = lines(&kefu(d, &["replay"]));
    assert_eq!(built.len(), 5, "one line per projection: {built:?}");
    assert_eq!(built[0]["projection"], "search");
    for b in &built[1..] {
        assert_eq!(b["state"], "live");
        assert_eq!(b["events"], 4);
    }
    let found = lines(&kefu(d, &["query", "search", "快递到哪"]));
    assert_eq!(
        found.last().unwrap()["total"],
        2,
        "the message and its conversation: {found:?}"
    );
    assert!(
        found[0]["snippet"].as_str().unwrap().contains("<b>快递"),
        "{found:?}"
    );
    let messages = lines(&kefu(d, &["query", "search", "快递", "--kind", "message"]));
    assert_eq!(messages[0]["kind"], "message");
    assert_eq!(messages[0]["conversation"], CONVERSATION);
    // Blue-green for search too: a new generation replaces the first.
    let again = lines(&kefu(d, &["replay", "search"]));
    assert_eq!(
        (
            again[0]["generation"].as_u64(),
            again[0]["replaced"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert!(
        !d.join("data/search/g1").exists(),
        "the old index is removed"
    );
    assert_eq!(
        lines(&kefu(d, &["query", "search", "快递"]))
            .last()
            .unwrap()["total"],
        2
    );

    let stats = lines(&kefu(d, &["query", "stats"]));
    assert_eq!(stats[0]["conversations"], 1);
    assert_eq!(stats[0]["contained_by_bot"], 1);
    assert_eq!(stats[0]["resolution_secs"], 180.0);
    let conversation = lines(&kefu(d, &["query", "conversation", CONVERSATION]));
    assert_eq!(conversation[0]["conversation"]["status"], "closed");
    // What `kefu query` prints is masked as search is: the ID-card number is not shown.
    assert_eq!(
        conversation[0]["transcript"][0]["turn"]["text"],
        format!(
            "我的快递到哪了，身份证 {}",
            kefu_projections::search::ID_CARD_MASK
        )
    );

    // As of the first event: the conversation had only started.
    let then = lines(&kefu(
        d,
        &["replay", "stats", "--until-position", &started.to_string()],
    ));
    assert_eq!(then[0]["state"], "as_of");
    let generation = then[0]["generation"].as_i64().unwrap().to_string();
    let old = lines(&kefu(d, &["query", "--generation", &generation, "stats"]));
    assert_eq!(old[0]["conversations"], 1);
    assert_eq!(old[0]["closed"], 0);
    let listed = lines(&kefu(d, &["projections", "list"]));
    assert_eq!(listed.len(), 5);
    lines(&kefu(d, &["projections", "drop", "stats", &generation]));
    assert_eq!(lines(&kefu(d, &["projections", "list"])).len(), 4);

    // As of 14:00:30 in Beijing by business time: the conversation had started (06:00 UTC)
    // and nothing more, whenever those events were written.
    let then = lines(&kefu(
        d,
        &[
            "replay",
            "stats",
            "--as-of-business",
            "2026-11-20T14:00:30+08:00",
        ],
    ));
    assert_eq!(then[0]["until"]["clock"], "business", "{:?}", then[0]);
    let generation = then[0]["generation"].as_i64().unwrap().to_string();
    let old = lines(&kefu(d, &["query", "--generation", &generation, "stats"]));
    assert_eq!(
        (&old[0]["conversations"], &old[0]["closed"]),
        (&1.into(), &0.into())
    );
    lines(&kefu(d, &["projections", "drop", "stats", &generation]));
    // The same instant on the recorder's clock: these events were written today, so the
    // bound selects nothing; that is an error, and no empty copy is kept.
    let listed = lines(&kefu(d, &["projections", "list"])).len();
    let out = kefu(
        d,
        &["replay", "stats", "--as-of", "2026-11-20T14:00:30+08:00"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("selects no events") && err.contains("recorded time"),
        "{err}"
    );
    assert_eq!(lines(&kefu(d, &["projections", "list"])).len(), listed);

    // The conversation as of its first event: started, nothing said yet, though its stream in
    // the log, where the transcript is read from, has gone on.
    let then = lines(&kefu(
        d,
        &[
            "replay",
            "conversations",
            "--until-position",
            &started.to_string(),
        ],
    ));
    let generation = then[0]["generation"].as_i64().unwrap().to_string();
    let old = lines(&kefu(
        d,
        &[
            "query",
            "--generation",
            &generation,
            "conversation",
            CONVERSATION,
        ],
    ));
    assert_eq!(old[0]["conversation"]["status"], "bot");
    assert_eq!(old[0]["transcript"], serde_json::json!([]));
    let kinds: Vec<&str> = old[0]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["ConversationStarted"]);

    let audit = lines(&kefu(d, &["query", "audit", CORRELATION]));
    assert_eq!(audit.len(), 3);
    assert!(audit.iter().all(|l| l["depth"] == 0));

    for (args, says) in [
        (vec!["replay", "queue"], "unknown projection \"queue\""),
        (vec!["query", "stats", "--group", "weekday"], "weekday"),
        (vec!["replay", "--as-of", "yesterday"], "RFC 3339"),
        (
            vec!["query", "--generation", "42", "stats"],
            "no generation 42",
        ),
        (vec!["projections", "drop", "stats", "1"], "is live"),
        (vec!["query", "search"], "nothing to search for"),
        (
            vec!["query", "search", "x", "--kind", "fish"],
            "--kind \"fish\"",
        ),
        (
            vec!["replay", "search", "--until-position", "1"],
            "only built up to now",
        ),
    ] {
        let out = kefu(d, &args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
