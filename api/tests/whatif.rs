//! `kefu whatif` end to end on the embedded store: a morning recorded while the bot was not
//! running (customers wrote, nobody answered), replayed with the bot as configured and with a
//! stricter one. The report must say how far the unchanged replay is from the record, and the
//! store must be left as it was.

mod common;
mod server;

use std::sync::Arc;

use chrono::{Duration, Utc};
use common::{kefu, lines, refusal, stdout};
use kefu_desk::Desk;
use kefu_desk::command::CommandService;
use kefu_domain::common::Channel;
use kefu_domain::ids::{CustomerId, MessageId};
use kefu_eventlog::sqlite::{SqliteConfig, SqliteLog};
use kefu_eventlog::{Actor, ActorKind, EventLog, Metadata};

/// Customers' first words: three of the demo knowledge base's questions word for word, and
/// three it does not answer.
const ASKED: [&str; 6] = [
    "下单后还能修改收货地址吗？",
    "支持货到付款吗？",
    "订单什么时候发货？",
    "你们直播间今晚几点开始抢券",
    "我想加盟你们的线下门店怎么谈",
    "能不能帮我查一下上个月的积分明细",
];

async fn record_a_morning_without_the_bot(db: std::path::PathBuf) -> u64 {
    let log = Arc::new(SqliteLog::open(SqliteConfig::new(db)).await.unwrap());
    let desk = Desk::new(CommandService::new(log.clone()));
    for text in ASKED {
        let customer = CustomerId::from_uuid(uuid::Uuid::now_v7());
        let meta = Metadata::for_request(
            Actor::new(ActorKind::Customer, customer.to_string()),
            uuid::Uuid::now_v7(),
        );
        let chat = desk
            .start_conversation(customer, None, Channel::Web, None, true, &meta)
            .await
            .unwrap()
            .value;
        desk.customer_message(
            chat,
            MessageId::from_uuid(uuid::Uuid::now_v7()),
            text.into(),
            &meta,
        )
        .await
        .unwrap();
    }
    log.head().await.unwrap().unwrap().0
}

fn head(db: std::path::PathBuf) -> u64 {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let log = SqliteLog::open(SqliteConfig::new(db)).await.unwrap();
        log.head().await.unwrap().unwrap().0
    })
}

#[test]
fn a_window_replayed_unchanged_and_with_a_stricter_bot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let from = (Utc::now() - Duration::hours(1)).to_rfc3339();
    stdout(&kefu(d, &["kb", "import", "--demo"]));
    let db = d.join("data").join("kefu.db");
    let recorded_head = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(record_a_morning_without_the_bot(db.clone()));
    let to = (Utc::now() + Duration::hours(1)).to_rfc3339();

    let report = lines(&kefu(
        d,
        &[
            "whatif",
            "--from",
            &from,
            "--to",
            &to,
            "--with-answer-threshold",
            "1",
            "--with-clarify-threshold",
            "1",
            "--seeds",
            "1",
        ],
    ));
    let summary = &report[0];
    assert_eq!(summary["chats"], 6, "{summary}");
    let all = report.last().unwrap();
    assert_eq!(
        (all["hour"].as_str(), all["queue"].as_str()),
        (Some("all"), Some("all")),
        "{all}"
    );
    // The record: nobody answered, nobody was handed over.
    assert_eq!(all["recorded"]["bot_answers"], 0, "{all}");
    assert_eq!(all["recorded"]["handed_off"], 0, "{all}");
    // The bot as configured answers (most of) the knowledge base's own questions...
    let base = &all["baseline"][0];
    assert!(base["contained"].as_u64().unwrap() >= 2, "{all}");
    // ...and the report owns up to how far that is from the record.
    assert_eq!(
        summary["baseline_differs"], base["handed_off"],
        "{summary} {all}"
    );
    // A bot that offers nothing below full confidence hands over every chat it cannot
    // match word for word, and keeps no more than before.
    let changed = &all["changed"][0];
    assert!(
        changed["handed_off"].as_u64() >= base["handed_off"].as_u64(),
        "{all}"
    );
    assert!(changed["kept"].as_u64() <= base["kept"].as_u64(), "{all}");
    assert!(changed["handed_off"].as_u64().unwrap() >= 3, "{all}");

    let csv = String::from_utf8(stdout(&kefu(
        d,
        &[
            "whatif",
            "--from",
            &from,
            "--to",
            &to,
            "--with-answer-threshold",
            "0.9",
            "--format",
            "csv",
        ],
    )))
    .unwrap();
    assert!(
        csv.starts_with(
            "hour,queue,recorded_chats,baseline_chats,changed_chats,change_chats,change_sd_chats,"
        ),
        "{csv}"
    );
    assert!(
        csv.lines().any(|l| l.starts_with("all,all,6,6,6,0,0,")),
        "{csv}"
    );

    // A change to a queue the record does not have is named before anything is replayed.
    let e = whatif_refuses(
        d,
        &[
            "--from",
            &from,
            "--to",
            &to,
            "--with-agents",
            "不存在的队列=2",
        ],
    );
    assert!(e.contains("不存在的队列"), "{e}");

    // Nothing was written to the store.
    assert_eq!(head(db), recorded_head);
}

/// `kefu whatif ARGS` refused: the error it named.
fn whatif_refuses(d: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["whatif"];
    all.extend_from_slice(args);
    refusal(&kefu(d, &all))
}

#[test]
fn bad_windows_and_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    stdout(&kefu(d, &["kb", "import", "--demo"]));
    let (before, at) = ("2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z");
    let e = whatif_refuses(
        d,
        &["--from", at, "--to", at, "--with-answer-threshold", "0.9"],
    );
    assert!(e.contains("must end after it starts"), "{e}");
    let e = whatif_refuses(
        d,
        &[
            "--from",
            "yesterday",
            "--to",
            at,
            "--with-answer-threshold",
            "0.9",
        ],
    );
    assert!(e.contains("--from") && e.contains("RFC 3339"), "{e}");
    let e = whatif_refuses(
        d,
        &[
            "--from",
            before,
            "--to",
            at,
            "--with-answer-threshold",
            "1.5",
        ],
    );
    assert!(e.contains("--with-answer-threshold 1.5"), "{e}");
    let e = whatif_refuses(d, &["--from", before, "--to", at]);
    assert!(e.contains("nothing to change"), "{e}");
    let e = whatif_refuses(
        d,
        &[
            "--from",
            before,
            "--to",
            at,
            "--with-clarify-threshold",
            "0.8",
        ],
    );
    assert!(e.contains("--with-clarify-threshold 0.8 is above"), "{e}");
    let e = whatif_refuses(
        d,
        &[
            "--from",
            before,
            "--to",
            at,
            "--with-answer-threshold",
            "0.9",
        ],
    );
    assert!(e.contains("no chat started"), "{e}");
    let e = whatif_refuses(
        d,
        &["--from", before, "--to", at, "--with-agents", "售后=two"],
    );
    assert!(e.contains("售后=two") && e.contains("whole number"), "{e}");
    let e = whatif_refuses(
        d,
        &[
            "--from",
            before,
            "--to",
            at,
            "--with-first-response",
            "售后=-3",
        ],
    );
    assert!(e.contains("售后=-3") && e.contains("seconds"), "{e}");
    let e = whatif_refuses(
        d,
        &[
            "--from",
            before,
            "--to",
            at,
            "--with-agents",
            "售后=2",
            "--seeds",
            "0",
        ],
    );
    assert!(e.contains("--seeds 0"), "{e}");
}

const WHAT_IF: &str = "query($from: DateTime!, $to: DateTime!, $c: WhatIfChange!) { whatIf(from: $from, to: $to, change: $c, seeds: 2) { chats seeds withinTolerance tolerance baselineOff { chatsDiffer waitMeanSecs } models agents { name recorded baseline changed } rows { hour queue metrics { name recorded baseline changed change changeSd } } } }";

/// The figure `name` of the row for `hour` and `queue`.
fn metric<'a>(
    report: &'a serde_json::Value,
    hour: &str,
    queue: &str,
    name: &str,
) -> &'a serde_json::Value {
    let row = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["hour"] == hour && r["queue"] == queue)
        .unwrap_or_else(|| panic!("no row {hour} {queue}: {report}"));
    row["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {row}"))
}

#[tokio::test]
async fn analysts_and_supervisors_ask_what_if_over_graphql() {
    use serde_json::json;
    let server = server::Server::start(None, &[]);
    let admin = server.token("admin", "ops", &[]);
    let queue = server
        .gql(
            &admin,
            "mutation { defineQueue(input: {name: \"售后\", categories: [\"logistics\"], skills: [\"after-sales\"], firstResponseSecs: 600, resolutionSecs: 3600}) { id } }",
            json!({}),
        )
        .await["defineQueue"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let from = (Utc::now() - Duration::hours(1)).to_rfc3339();
    for text in ASKED.iter().take(3) {
        let customer = server.token("customer", &uuid::Uuid::now_v7().to_string(), &[]);
        let chat = server
            .gql(
                &customer,
                "mutation { startConversation(channel: WEB) { id } }",
                json!({}),
            )
            .await["startConversation"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        server
            .gql(
                &customer,
                "mutation($c: String!, $t: String!) { sendMessage(conversationId: $c, text: $t) { id } }",
                json!({ "c": chat, "t": text }),
            )
            .await;
    }
    let to = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let window = |change: serde_json::Value| json!({ "from": from, "to": to, "c": change });

    // An analyst changes the bot and reads the whole shop.
    let analyst = server.token("analyst", "ana", &[]);
    let report = server
        .gql(
            &analyst,
            WHAT_IF,
            window(json!({ "answerThreshold": 0.99 })),
        )
        .await["whatIf"]
        .clone();
    assert_eq!(report["chats"], 3, "{report}");
    assert_eq!(report["seeds"], 2, "{report}");
    assert!(
        report["tolerance"].as_str().unwrap().contains("5%"),
        "{report}"
    );
    assert!(
        report["models"].as_str().unwrap().contains("Kaplan-Meier"),
        "{report}"
    );
    assert_eq!(
        metric(&report, "all", "all", "chats")["recorded"],
        3.0,
        "{report}"
    );
    assert_eq!(
        metric(&report, "all", "all", "chats")["baseline"],
        3.0,
        "{report}"
    );

    // A supervisor may not change the shop's bot, nor another queue's agents...
    let other = server.token("supervisor", "sup-b", &[&uuid::Uuid::now_v7().to_string()]);
    let (code, message) = server
        .gql_error(&other, WHAT_IF, window(json!({ "answerThreshold": 0.5 })))
        .await;
    assert_eq!(code, "FORBIDDEN", "{message}");
    let (code, message) = server
        .gql_error(
            &other,
            WHAT_IF,
            window(json!({ "agents": [{ "queue": queue, "count": 2 }] })),
        )
        .await;
    assert_eq!(code, "FORBIDDEN", "{message}");
    assert!(message.contains(&queue), "{message}");
    // ...and their own queue's what-if shows their queue only.
    let own = server.token("supervisor", "sup-a", &[&queue]);
    let report = server
        .gql(
            &own,
            WHAT_IF,
            window(json!({ "agents": [{ "queue": queue, "count": 2, "seats": 3, "shiftFromHour": 0, "shiftToHour": 24 }] })),
        )
        .await["whatIf"]
        .clone();
    assert!(
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["queue"] == "售后"),
        "{report}"
    );
    assert_eq!(report["agents"], json!([]), "{report}");

    // Bad changes are named.
    for (change, names) in [
        (json!({}), "nothing to change"),
        (
            json!({ "agents": [{ "queue": "not-a-uuid", "count": 1 }] }),
            "not-a-uuid",
        ),
        (
            json!({ "agents": [{ "queue": uuid::Uuid::now_v7().to_string(), "count": 1 }] }),
            "not a queue of the record",
        ),
        (
            json!({ "agents": [{ "queue": queue, "count": 1, "shiftFromHour": 8 }] }),
            "shiftToHour",
        ),
        (
            json!({ "agents": [{ "queue": queue, "count": 1, "shiftFromHour": 20, "shiftToHour": 8 }] }),
            "must end after it starts",
        ),
        (
            json!({ "answerThreshold": 0.2, "clarifyThreshold": 0.5 }),
            "clarifyThreshold",
        ),
    ] {
        let (code, message) = server
            .gql_error(&analyst, WHAT_IF, window(change.clone()))
            .await;
        assert_eq!(code, "VALIDATION", "{change}: {message}");
        assert!(message.contains(names), "{change}: {message}");
    }
    let (code, message) = server
        .gql_error(
            &analyst,
            WHAT_IF,
            json!({ "from": to, "to": from, "c": { "answerThreshold": 0.5 } }),
        )
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
    assert!(message.contains("must end after it starts"), "{message}");
}
