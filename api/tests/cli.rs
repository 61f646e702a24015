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

    let traced = lines(&kefu(d, &["log", "correlation", correlation]));
    let streams: Vec<_> = traced
        .iter()
        .map(|e| e["stream_id"].as_str().unwrap())
        .collect();
    assert_eq!(streams, ["conversation-1", "ticket-9"]);
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
