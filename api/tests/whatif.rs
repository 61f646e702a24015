//! `kefu whatif` end to end on the embedded store: a morning recorded while the bot was not
//! running (customers wrote, nobody answered), replayed with the bot as configured and with a
//! stricter one. The report must say how far the unchanged replay is from the record, and the
//! store must be left as it was.

mod common;

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
