//! Audit answers after issue 20: the log keeps no correlation index any more, and the audit
//! read model answers instead. For every request of a generated week on the embedded store,
//! the causation tree it gives must be the one a scan of the whole log gives.

use std::collections::BTreeMap;

use kefu_eventlog::sqlite::{SqliteConfig, SqliteLog};
use kefu_eventlog::{DEFAULT_PAGE, EventLog, Position, RecordedEvent};
use kefu_projections::audit::{AuditProjection, NAME, causation_tree};
use kefu_projections::{ReadModels, ReadStore, Until, rebuild};
use kefu_tests::history::{HistoryConfig, write};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_causation_tree_of_a_generated_week_is_what_a_log_scan_gives() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(SqliteConfig::new(dir.path().join("kefu.db")))
        .await
        .unwrap();
    let mut config = HistoryConfig::for_conversations(1_000).with_seed(20);
    config.days = 7;
    write(&log, &config, 4).await.unwrap();

    let store = ReadStore::open_sqlite(&dir.path().join("kefu.read.db")).unwrap();
    rebuild(
        &log,
        &store,
        vec![Box::new(AuditProjection)],
        Until::default(),
        |_| {},
    )
    .await
    .unwrap();

    // What an audit was before: every event of the request, in log order, by a scan.
    let mut scanned: BTreeMap<Uuid, Vec<RecordedEvent>> = BTreeMap::new();
    let mut from = Position::START;
    loop {
        let page = log.read_all(from, DEFAULT_PAGE).await.unwrap();
        let Some(last) = page.last() else { break };
        from = last.position.next();
        for e in page {
            scanned
                .entry(e.metadata.correlation_id)
                .or_default()
                .push(e);
        }
    }
    assert!(scanned.len() > 1_000, "{} requests", scanned.len());

    let view = ReadModels::open(store)
        .await
        .unwrap()
        .live(NAME)
        .await
        .unwrap();
    let mut events = 0;
    for (correlation, in_order) in scanned {
        events += in_order.len();
        let answer = view.audit_trail(&log, correlation).await.unwrap();
        assert!(answer.caught_up.complete, "{:?}", answer.caught_up);
        assert_eq!(
            answer.trail,
            causation_tree(correlation, in_order),
            "the trail of {correlation}"
        );
    }
    assert_eq!(Some(events as u64), log.count_through(from).await.unwrap());
}
