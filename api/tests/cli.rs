//! `kefu log …` end to end on the embedded store, as an operator would use it.

mod common;

use common::{kefu, lines};

#[test]
fn append_read_tail_and_trace_a_correlation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let correlation = "0190f1c2-0000-7000-8000-000000000001";
    let first = lines(&kefu(
        d,
        &[
            "log",
            "append",
            "conversation-1",
            "CustomerTurnRecorded",
            r#"{"text":"我的快递到哪了"}"#,
            "--expected",
            "no-stream",
            "--actor",
            "customer:c-7",
            "--correlation",
            correlation,
        ],
    ));
    assert_eq!(first[0]["first_version"], 0);
    lines(&kefu(
        d,
        &[
            "log",
            "append",
            "ticket-9",
            "TicketOpened",
            r#"{"title":"late parcel"}"#,
            "--actor",
            "agent:a-1",
            "--correlation",
            correlation,
        ],
    ));
    lines(&kefu(d, &["log", "append", "conversation-2", "X", "{}"]));

    let read = lines(&kefu(d, &["log", "read", "conversation-1"]));
    assert_eq!(read.len(), 1);
    assert_eq!(read[0]["payload"]["text"], "我的快递到哪了");
    assert_eq!(read[0]["metadata"]["actor"]["kind"], "customer");

    let all = lines(&kefu(d, &["log", "tail"]));
    assert_eq!(all.len(), 3);
    let from = all[1]["position"].as_u64().unwrap().to_string();
    assert_eq!(lines(&kefu(d, &["log", "tail", "--from", &from])).len(), 2);

    // The trail comes from the audit read model, which `kefu replay` (or `kefu serve`) builds;
    // its last line says whether that read model had read the whole log.
    lines(&kefu(d, &["replay"]));
    let traced = lines(&kefu(d, &["log", "correlation", correlation]));
    let (events, caught_up) = traced.split_at(traced.len() - 1);
    let streams: Vec<_> = events
        .iter()
        .map(|e| e["stream_id"].as_str().unwrap())
        .collect();
    assert_eq!(streams, ["conversation-1", "ticket-9"]);
    assert_eq!(caught_up[0]["caught_up"]["complete"], true, "{caught_up:?}");

    // An event appended after the read model last read the log: the extract says it is not
    // whole, and how far it reaches, until the read model has read on.
    lines(&kefu(
        d,
        &[
            "log",
            "append",
            "ticket-9",
            "TicketClosed",
            "{}",
            "--correlation",
            correlation,
        ],
    ));
    let behind = lines(&kefu(d, &["log", "correlation", correlation]));
    assert_eq!(behind.len(), 3);
    let caught_up = &behind[2]["caught_up"];
    assert_eq!(caught_up["complete"], false, "{caught_up}");
    assert_eq!(caught_up["through"], all[2]["position"]);
    assert!(caught_up["head"].as_u64() > caught_up["through"].as_u64());
    lines(&kefu(d, &["replay"]));
    let whole = lines(&kefu(d, &["log", "correlation", correlation]));
    assert_eq!(whole.len(), 4);
    assert_eq!(whole[3]["caught_up"]["complete"], true);
}

#[test]
fn bad_input_is_named_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    lines(&kefu(d, &["log", "append", "conversation-1", "A", "{}"]));
    // Resending an id with the same event is acknowledged; with another payload it is not.
    let id = "0190f1c2-0000-7000-8000-00000000e1d0";
    let sent = [
        "log",
        "append",
        "conversation-1",
        "A",
        r#"{"n": 1}"#,
        "--id",
        id,
    ];
    let first = lines(&kefu(d, &sent));
    assert_eq!(
        lines(&kefu(d, &sent)),
        first,
        "a retry gets the first answer"
    );
    for (args, says) in [
        (
            vec![
                "log",
                "append",
                "conversation-1",
                "A",
                r#"{"n": 2}"#,
                "--id",
                id,
            ],
            "same event",
        ),
        (
            vec!["log", "append", "nodash", "A", "{}"],
            "invalid stream id",
        ),
        (
            vec!["log", "append", "conversation-1", "A", "[1]"],
            "JSON object",
        ),
        (
            vec!["log", "append", "conversation-1", "A", "{"],
            "not valid JSON",
        ),
        (
            vec![
                "log",
                "append",
                "conversation-1",
                "A",
                "{}",
                "--expected",
                "soon",
            ],
            "expected version",
        ),
        (
            vec![
                "log",
                "append",
                "conversation-1",
                "A",
                "{}",
                "--expected",
                "no-stream",
            ],
            "conflict",
        ),
        (
            vec![
                "log",
                "append",
                "conversation-1",
                "A",
                "{}",
                "--actor",
                "robot:r",
            ],
            "--actor",
        ),
        (vec!["--store", "mysql://x", "migrate"], "unknown store URL"),
    ] {
        let out = kefu(d, &args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(lines(&kefu(d, &["log", "tail"])).len(), 2);
}

/// `kefu log append --id` with an id already stored for another event: refused by name, a
/// non-zero exit, nothing written; the same event again is acknowledged as the first.
fn a_reused_event_id_is_refused(d: &std::path::Path, store: &[&str]) {
    let run = |args: &[&str]| {
        let mut all = store.to_vec();
        all.extend_from_slice(args);
        kefu(d, &all)
    };
    let id = uuid::Uuid::now_v7().to_string();
    let append = |payload: &'static str| {
        [
            "log",
            "append",
            "conversation-reuse",
            "A",
            payload,
            "--id",
            id.as_str(),
        ]
    };
    let first = lines(&run(&append(r#"{"n": 1}"#)));
    assert_eq!(lines(&run(&append(r#"{"n": 1}"#))), first);
    let err = common::refusal(&run(&append(r#"{"n": 2}"#)));
    assert!(err.contains(&id) && err.contains("same event"), "{err}");
    // Idempotency is per stream (issue 20): the id in another stream is that stream's event.
    let elsewhere = lines(&run(&[
        "log",
        "append",
        "conversation-other",
        "A",
        r#"{"n": 1}"#,
        "--id",
        id.as_str(),
    ]));
    assert_eq!(elsewhere[0]["first_version"], 0);
    let stored = lines(&run(&["log", "tail"]));
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[0]["payload"]["n"], 1);
    assert_eq!(stored[1]["stream_id"], "conversation-other");
}

#[test]
fn a_reused_event_id_is_refused_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    a_reused_event_id_is_refused(dir.path(), &[]);
}

#[tokio::test]
async fn a_reused_event_id_is_refused_on_postgres() {
    use kefu_eventlog::testing;
    let Some((schema, url)) = testing::fresh_schema_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    a_reused_event_id_is_refused(dir.path(), &["--store", &url]);
    testing::drop_schema(&schema).await;
}
