//! `kefu replay`, `kefu projections` and `kefu query` end to end on the embedded store: an
//! operator writes a short conversation into the log, rebuilds the read models, builds an
//! as-of copy, and asks both.

mod common;

use common::{command, kefu, lines, refusal, stderr, stdout};

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

    let replayed = kefu(d, &["replay"]);
    let built = lines(&replayed);
    assert_eq!(built.len(), 6, "one line per projection: {built:?}");
    // Not at a terminal: no progress bar, only what was done, in events.
    let said = stderr(&replayed);
    assert!(
        said.contains("search done: 4 events applied to the search index")
            && said.contains(
                "replay done: 4 events applied to queues, stats, conversations, tickets, audit"
            ),
        "{said}"
    );
    assert!(!said.contains('%') && !said.contains('#'), "{said}");
    assert_eq!(built[0]["projection"], "search");
    for b in &built[1..] {
        assert_eq!(b["state"], "live");
        assert_eq!(b["events"], 4);
    }
    let searched = kefu(d, &["query", "search", "快递到哪"]);
    let found = lines(&searched);
    assert_eq!(
        found.len(),
        2,
        "the message and its conversation: {found:?}"
    );
    assert!(
        stderr(&searched).contains("2 hits in all"),
        "the total is no row"
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
    assert_eq!(lines(&kefu(d, &["query", "search", "快递"])).len(), 2);

    let stats = lines(&kefu(d, &["query", "stats"]));
    assert_eq!(stats[0]["conversations"], 1);
    assert_eq!(stats[0]["contained_by_bot"], 1);
    assert_eq!(stats[0]["resolution_secs"], 180.0);
    let conversation = lines(&kefu(d, &["query", "conversation", CONVERSATION]));
    assert_eq!(conversation[0]["conversation"]["status"], "closed");
    // Every time in RFC 3339, in UTC unless asked otherwise.
    assert_eq!(
        conversation[0]["conversation"]["started_at"],
        "2026-11-20T06:00:00Z"
    );
    assert_eq!(
        conversation[0]["transcript"][0]["turn"]["at"],
        "2026-11-20T06:01:00Z"
    );
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
    assert_eq!(
        listed.len(),
        7,
        "six generations and the search index: {listed:?}"
    );
    let search = listed.iter().find(|g| g["projection"] == "search").unwrap();
    assert_eq!(
        (
            &search["generation"],
            &search["state"],
            &search["caught_up"]
        ),
        (&2.into(), &"live".into(), &true.into()),
        "{search}"
    );
    assert_eq!(search["format"], kefu_projections::search::FORMAT);
    assert_eq!(search["documents"], 2, "the message and its conversation");
    lines(&kefu(d, &["projections", "drop", "stats", &generation]));
    assert_eq!(lines(&kefu(d, &["projections", "list"])).len(), 6);

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
            vec!["query", "stats", "--queue", "售前"],
            "--queue \"售前\" names no queue",
        ),
        (
            vec!["query", "conversations", "--queue", "售前"],
            "--queue \"售前\" names no queue",
        ),
        (
            vec!["query", "waiting", "--queue", "售前"],
            "--queue \"售前\" names no queue",
        ),
        (
            vec!["query", "stats", "--from", "20/11/2026"],
            "nor a date such as 2026-11-20",
        ),
        (
            vec!["query", "stats", "--utc-offset", "EST"],
            "not a UTC offset",
        ),
        (
            vec!["query", "search", "x", "--kind", "fish"],
            "--kind \"fish\"",
        ),
        (
            vec!["replay", "search", "--until-position", "1"],
            "only built up to now",
        ),
    ] {
        let err = refusal(&kefu(d, &args));
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

const QUEUE: &str = "0190f1c2-0000-7000-8000-0000000000e1";

fn append_to(d: &std::path::Path, stream: &str, event_type: &str, payload: serde_json::Value) {
    lines(&kefu(
        d,
        &[
            "log",
            "append",
            stream,
            event_type,
            &payload.to_string(),
            "--actor",
            "system:test",
        ],
    ));
}

/// A queue 售后 and two conversations started on 2026-11-20 at 06:00 and 07:30 UTC (14:00
/// and 15:30 in China), the first queued in 售后, both read into the read models.
fn desk() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append_to(
        d,
        &format!("queue-{QUEUE}"),
        "QueueDefined",
        serde_json::json!({
            "queue": QUEUE,
            "name": "售后",
            "business_line": { "kind": "self_operated" },
            "categories": ["refund", "delivery"],
            "skills": ["after-sales"],
            "priority": 2,
            "sla": { "first_response_secs": 60, "resolution_secs": 3600 },
            "hours": { "kind": "always" },
            "at": "2026-11-19T00:00:00Z"
        }),
    );
    for (n, at) in [
        ("c1", "2026-11-20T06:00:00Z"),
        ("c2", "2026-11-20T07:30:00Z"),
    ] {
        let id = format!("0190f1c2-0000-7000-8000-0000000000{n}");
        append_to(
            d,
            &format!("conversation-{id}"),
            "ConversationStarted",
            serde_json::json!({
                "conversation": id,
                "customer": "0190f1c2-0000-7000-8000-0000000000aa",
                "tier": "regular",
                "locale": "zh-CN",
                "channel": "app",
                "bot_enabled": true,
                "at": at
            }),
        );
    }
    lines(&kefu(d, &["replay"]));
    dir
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8(stdout(out)).unwrap()
}

#[test]
fn queries_print_jsonl_json_csv_or_a_table() {
    let dir = desk();
    let d = dir.path();
    let jsonl = lines(&kefu(d, &["query", "conversations"]));
    assert_eq!(jsonl.len(), 2);
    let json: serde_json::Value = serde_json::from_str(&text(&kefu(
        d,
        &["query", "conversations", "--format", "json"],
    )))
    .unwrap();
    assert_eq!(json, serde_json::Value::Array(jsonl.clone()));

    // CSV: a header, then one line per row, columns in the row type's order, nested values
    // as `a.b` columns, lists joined: never JSON in a cell.
    let csv = text(&kefu(d, &["query", "queues", "--format", "csv"]));
    let rows: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(
        rows[0]
            .starts_with("queue.id,queue.name,queue.business_line,queue.categories,queue.skills,"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].starts_with(&format!(
            "{QUEUE},售后,self_operated,delivery; refund,after-sales,"
        )),
        "{}",
        rows[1]
    );
    let csv = text(&kefu(d, &["query", "conversations", "--format", "csv"]));
    let rows: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[0].starts_with("id,customer,channel,"), "{}", rows[0]);
    let header: Vec<&str> = rows[0].split(',').collect();
    let started = header.iter().position(|h| *h == "started_at").unwrap();
    let cells: Vec<&str> = rows[1].split(',').collect();
    assert_eq!(cells.len(), header.len());
    assert_eq!(cells[started], "2026-11-20T07:30:00Z", "newest first");
    assert!(!csv.contains('{') && !csv.contains('['), "{csv}");
    // The statistics too: every field of the row, however many it gets.
    let csv = text(&kefu(d, &["query", "stats", "--format", "csv"]));
    let rows: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert!(
        rows[0].starts_with("key,name,conversations,"),
        "{}",
        rows[0]
    );
    assert_eq!(rows[0].split(',').count(), rows[1].split(',').count());
    assert!(rows[1].starts_with("all,,2,"), "{}", rows[1]);

    let table = text(&kefu(
        d,
        &["query", "stats", "--group", "day", "--format", "table"],
    ));
    let mut lines_ = table.lines();
    assert!(
        lines_.next().unwrap().starts_with("field"),
        "one row: field and value\n{table}"
    );
    assert!(
        table.contains("\nkey ") && table.contains("2026-11-20"),
        "{table}"
    );
    let table = text(&kefu(d, &["query", "conversations", "--format", "table"]));
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.starts_with("id "), "{table}");
}

#[test]
fn times_are_rfc_3339_at_the_offset_asked_and_dates_are_midnights() {
    let dir = desk();
    let d = dir.path();
    // A negative offset is a value, not a flag.
    let west = lines(&kefu(
        d,
        &["query", "conversations", "--utc-offset", "-05:00"],
    ));
    assert_eq!(west[1]["started_at"], "2026-11-20T01:00:00-05:00");
    let hours = lines(&kefu(
        d,
        &[
            "query",
            "stats",
            "--group",
            "hour",
            "--utc-offset",
            "-05:00",
        ],
    ));
    let keys: Vec<&str> = hours.iter().map(|h| h["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        ["2026-11-20T01:00:00-05:00", "2026-11-20T02:00:00-05:00"]
    );
    // Without --utc-offset the buckets are China's.
    let hours = lines(&kefu(d, &["query", "stats", "--group", "hour"]));
    assert_eq!(hours[0]["key"], "2026-11-20T14:00:00+08:00");

    // A date is its midnight at the offset: 2026-11-20 in New York starts at 05:00 UTC, so
    // the 07:30 conversation is in it and the 06:00 one too; from 2026-11-20 in China
    // (16:00 UTC the day before) to the 21st both are in, and on the 21st neither.
    let count = |args: &[&str]| {
        let mut all = vec!["query", "stats"];
        all.extend_from_slice(args);
        lines(&kefu(d, &all))
            .first()
            .map_or(0, |r| r["conversations"].as_i64().unwrap())
    };
    assert_eq!(
        count(&["--from", "2026-11-20", "--utc-offset", "-05:00"]),
        2
    );
    assert_eq!(count(&["--from", "2026-11-20", "--to", "2026-11-21"]), 2);
    assert_eq!(count(&["--from", "2026-11-21"]), 0);
    assert_eq!(
        count(&["--to", "2026-11-20T07:00:00Z", "--utc-offset=-05:00"]),
        1
    );
}

#[test]
fn a_queue_filter_takes_an_id_or_a_name_and_refuses_an_unknown_one() {
    let dir = desk();
    let d = dir.path();
    for given in [QUEUE, "售后"] {
        let counts = lines(&kefu(d, &["query", "queues", "--queue", given]));
        assert_eq!(counts.len(), 1);
        assert_eq!(counts[0]["queue"]["name"], "售后");
        assert_eq!(
            counts[0]["queue"]["skills"],
            serde_json::json!(["after-sales"])
        );
        lines(&kefu(d, &["query", "stats", "--queue", given]));
    }
    let err = refusal(&kefu(d, &["query", "queues", "--queue", "售前"]));
    assert!(err.contains("--queue \"售前\" names no queue"), "{err}");
    let err = refusal(&kefu(d, &["query", "search", "x", "--queue", "售前"]));
    assert!(err.contains("--queue \"售前\" names no queue"), "{err}");
}

#[test]
fn more_results_are_said_on_stderr_never_as_a_row() {
    let dir = desk();
    let d = dir.path();
    let first = kefu(d, &["query", "conversations", "--limit", "1"]);
    let rows = lines(&first);
    assert_eq!(rows.len(), 1);
    let said = stderr(&first);
    let cursor = said
        .trim()
        .strip_prefix("more: add --after ")
        .unwrap_or_else(|| panic!("{said}"));
    let second = kefu(
        d,
        &["query", "conversations", "--limit", "1", "--after", cursor],
    );
    let more = lines(&second);
    assert_eq!(more.len(), 1);
    assert_ne!(more[0]["id"], rows[0]["id"]);
    assert_eq!(stderr(&second), "", "the last page says nothing more");
    let csv = text(&kefu(
        d,
        &["query", "conversations", "--limit", "1", "--format", "csv"],
    ));
    assert_eq!(csv.split_terminator("\r\n").count(), 2, "{csv}");
}

#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    let dir = desk();
    let d = dir.path();
    // The pipe's reading end is closed before kefu writes a byte, as `head` does once it has
    // its lines: every write fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    for args in [
        &["query", "conversations"][..],
        &["query", "stats", "--format", "csv"],
        &["log", "tail"],
    ] {
        let out = command(d)
            .args(args)
            .stdout(writer.try_clone().unwrap())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

#[test]
fn read_commands_create_nothing_and_name_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for args in [
        &["query", "stats"][..],
        &["query", "audit", "0190f1c2-0000-7000-8000-0000000000f1"],
        &["projections", "list"],
        &["log", "read", "conversation-1"],
        &["log", "tail"],
        &["archive", "list"],
        &["replay"],
    ] {
        let err = refusal(&kefu(d, args));
        assert!(
            err.contains(&format!("no data directory {}", d.join("data").display())),
            "{args:?}: {err}"
        );
        assert!(
            !d.join("data").exists(),
            "{args:?} created the data directory"
        );
    }
    let err = refusal(&kefu(
        d,
        &[
            "--store",
            &d.join("kefu.db").display().to_string(),
            "log",
            "tail",
        ],
    ));
    assert!(err.contains("no event store at"), "{err}");
    assert!(!d.join("kefu.db").exists());

    // A store with nothing built from it yet: said, and nothing created.
    lines(&kefu(d, &["log", "append", "conversation-1", "X", "{}"]));
    let listed = kefu(d, &["projections", "list"]);
    assert_eq!(stdout(&listed), b"");
    let said = stderr(&listed);
    assert!(
        said.contains("no read models built yet") && said.contains("no search index built yet"),
        "{said}"
    );
    let err = refusal(&kefu(d, &["query", "stats"]));
    assert!(
        err.contains("no read models built yet") && err.contains("kefu replay"),
        "{err}"
    );
    assert!(!d.join("data/kefu.read.db").exists());
    assert!(!d.join("data/search").exists());
}

/// PostgreSQL: a typo in the database name is named, not created; and routine commands say
/// nothing on stderr (no "relation already exists, skipping" from PostgreSQL).
#[tokio::test]
async fn postgres_read_commands_create_no_database_and_print_no_notices() {
    use kefu_eventlog::testing;
    if !testing::available().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = format!("kefu_typo_{}", uuid::Uuid::now_v7().simple());
    let base = testing::url();
    let (server, _) = base.rsplit_once('/').unwrap();
    let typo = format!("{server}/{missing}");
    for args in [
        &["query", "stats"][..],
        &["projections", "list"],
        &["log", "tail"],
    ] {
        let mut all = vec!["--store", typo.as_str()];
        all.extend_from_slice(args);
        let err = refusal(&kefu(d, &all));
        assert!(
            err.contains(&format!("/{missing} does not exist")) && !err.contains("postgres@"),
            "{args:?}: {err}"
        );
    }
    let admin = testing::client().await;
    let created = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&missing])
        .await
        .unwrap();
    assert!(created.is_none(), "a read command created {missing}");

    let schema = testing::fresh_schema();
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let store = format!("{base}?options=-c%20search_path%3D{schema}");
    // As an operator runs it: the default log level.
    let run = |args: &[&str]| {
        let mut all = vec!["--store", store.as_str()];
        all.extend_from_slice(args);
        command(d)
            .env("KEFU_LOG", "info")
            .args(&all)
            .output()
            .unwrap()
    };
    let appended = run(&["log", "append", "conversation-1", "X", "{}"]);
    stdout(&appended);
    for _ in 0..2 {
        for args in [
            &["query", "stats"][..],
            &["projections", "list"],
            &["log", "tail"],
        ] {
            let out = run(args);
            if args[0] == "query" && !out.status.success() {
                // Before the first replay: the read models are named as not built.
                assert!(
                    stderr(&out).contains("no live generation yet"),
                    "{}",
                    stderr(&out)
                );
                continue;
            }
            let said = stderr(&out);
            stdout(&out);
            assert!(
                !said.contains("NOTICE") && !said.contains("skipping"),
                "{args:?}: {said}"
            );
        }
        let replayed = run(&["replay", "stats"]);
        stdout(&replayed);
        assert!(
            !stderr(&replayed).contains("NOTICE"),
            "{}",
            stderr(&replayed)
        );
    }
    testing::drop_schema(&schema).await;
}
