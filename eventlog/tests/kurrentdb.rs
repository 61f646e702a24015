//! The log contract on KurrentDB, a smoke test, and the checks that need no server.
//!
//! Point `KURRENTDB_URL` at a server to run them, e.g.
//! `KURRENTDB_URL='kurrentdb://localhost:2113?tls=false' cargo test -p kefu-eventlog
//! --features kurrentdb --test kurrentdb`. Without it every test that needs a server prints
//! that it was skipped and passes.
//!
//! The contract suite expects each test to start on an empty log. KurrentDB cannot hand out
//! a fresh database, so on a server all the tests share one `$all` (and one set of stream
//! names, across runs too): the suite's whole-log checks will see other tests' events, and
//! only a freshly started server run with `--test-threads=1` gives its first test a clean
//! log. `smoke_on_a_shared_server` uses streams of its own and holds on any server.
#![cfg(feature = "kurrentdb")]

mod contract;

use std::sync::Arc;
use std::time::Duration;

use kefu_eventlog::kurrent::{KurrentConfig, KurrentLog};
use kefu_eventlog::{EventLog, ExpectedVersion, LogError, Position, StoreConfig, StreamId};
use serde_json::json;
use uuid::Uuid;

const URL_ENV: &str = "KURRENTDB_URL";

/// The server to test against, or None (after saying the test is skipped).
fn url() -> Option<String> {
    match std::env::var(URL_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {URL_ENV} is not set (e.g. kurrentdb://localhost:2113?tls=false)");
            None
        }
    }
}

fn config(url: &str) -> KurrentConfig {
    let mut config = KurrentConfig::new(url);
    // The same limits the other backends' suites use.
    config.limits.max_payload_bytes = 64 * 1024;
    config.limits.max_batch = 1000;
    config
}

struct Kurrent {
    url: String,
    log: Arc<KurrentLog>,
}

impl contract::Harness for Kurrent {
    type Log = KurrentLog;

    async fn fresh() -> Option<Self> {
        let url = url()?;
        let log = Self::open_at(&url).await;
        Some(Kurrent { url, log })
    }

    fn log(&self) -> Arc<KurrentLog> {
        self.log.clone()
    }

    fn locator(&self) -> String {
        self.url.clone()
    }

    async fn open_at(url: &str) -> Arc<KurrentLog> {
        Arc::new(
            KurrentLog::open(config(url))
                .await
                .expect("open KurrentDB log"),
        )
    }
}

contract_suite!(Kurrent);

/// Append, read back, conflict, retry, `$all`, correlation and a subscription, on streams no
/// other test or run uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_on_a_shared_server() {
    let Some(url) = url() else {
        return;
    };
    let log = Arc::new(KurrentLog::open(config(&url)).await.expect("open"));
    let run = Uuid::now_v7();
    let s = StreamId::of("conversation", run).unwrap();
    let request = Uuid::now_v7();
    let batch: Vec<_> = (0..3)
        .map(|n| {
            kefu_eventlog::NewEvent::new("SmokeTested", json!({ "n": n }), contract::meta(request))
        })
        .collect();
    let ids: Vec<Uuid> = batch.iter().map(|e| e.id).collect();

    let appended = log
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("append");
    assert_eq!((appended.first_version, appended.last_version), (0, 2));
    assert!(appended.first_position < appended.last_position);

    let stored = log.read_stream(&s, 0, 10).await.expect("read back");
    assert_eq!(stored.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    for (i, (got, sent)) in stored.iter().zip(&batch).enumerate() {
        assert_eq!(got.version, i as u64);
        assert_eq!(got.stream_id, s);
        assert_eq!(got.event_type, sent.event_type);
        assert_eq!(got.payload, sent.payload);
        assert_eq!(got.metadata, sent.metadata);
        assert_eq!(got.schema_version, 1);
        assert!((chrono::Utc::now() - got.recorded_at).num_seconds().abs() < 600);
    }
    assert_eq!(stored[0].position, appended.first_position);
    assert_eq!(stored[2].position, appended.last_position);
    assert!(stored.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(log.stream_version(&s).await.unwrap(), Some(2));

    match log
        .append(&s, ExpectedVersion::NoStream, contract::events(0..1))
        .await
    {
        Err(LogError::WrongExpectedVersion { actual, .. }) => assert_eq!(actual, Some(2)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let again = log
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("retry");
    assert_eq!(again, appended, "a resent batch is acknowledged as before");
    let partial = vec![batch[0].clone(), contract::event(9)];
    let r = log.append(&s, ExpectedVersion::Any, partial).await;
    assert!(matches!(r, Err(LogError::DuplicateEventId { .. })), "{r:?}");
    assert_eq!(log.stream_version(&s).await.unwrap(), Some(2));

    let from_first = log.read_all(appended.first_position, 100).await.unwrap();
    assert_eq!(from_first.first().map(|e| e.id), Some(ids[0]));
    assert!(
        from_first
            .iter()
            .all(|e| e.position >= appended.first_position)
    );
    assert!(from_first.windows(2).all(|w| w[0].position < w[1].position));
    let mine: Vec<Uuid> = from_first
        .iter()
        .filter(|e| e.stream_id == s)
        .map(|e| e.id)
        .collect();
    assert_eq!(mine, ids);
    let after = log
        .read_all(appended.last_position.next(), 100)
        .await
        .unwrap();
    assert!(after.iter().all(|e| !ids.contains(&e.id)));
    let from_middle = log.read_all(stored[0].position.next(), 1).await.unwrap();
    assert!(from_middle[0].position > stored[0].position);

    let trail = log.read_correlation(request).await.unwrap();
    assert_eq!(trail.iter().map(|e| e.id).collect::<Vec<_>>(), ids);

    let nobody = StreamId::of("conversation", Uuid::now_v7()).unwrap();
    assert!(log.read_stream(&nobody, 0, 10).await.unwrap().is_empty());
    assert_eq!(log.stream_version(&nobody).await.unwrap(), None);

    let mut sub = kefu_eventlog::Subscription::new(log.clone(), appended.first_position);
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while seen.len() < ids.len() {
            let e = sub.next().await.expect("subscription");
            if e.stream_id == s {
                seen.push(e.id);
            }
        }
    })
    .await
    .expect("the subscription delivers the batch");
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn bad_connection_strings_are_refused_without_leaking_the_password() {
    for url in [
        "kurrentdb://admin:secret@localhost:2113?tls=maybe",
        "kurrentdb://admin:secret@localhost:2113?nodePreference=nearest",
        "esdb://admin:secret@localhost:2113/some/path",
    ] {
        let err = KurrentLog::open(KurrentConfig::new(url))
            .await
            .err()
            .expect("refused");
        assert!(matches!(err, LogError::Config(_)), "{url}: {err:?}");
        assert!(!err.to_string().contains("secret"), "{url}: {err}");
    }
}

#[tokio::test]
async fn no_server_is_unavailable() {
    // Port 1 on the loopback refuses connections at once.
    let err = KurrentLog::open(KurrentConfig::new("kurrentdb://127.0.0.1:1?tls=false"))
        .await
        .err()
        .expect("no server listens there");
    assert!(
        matches!(
            err,
            LogError::Unavailable {
                backend: "kurrentdb",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn store_urls_choose_this_backend() {
    for url in [
        "kurrentdb://localhost:2113?tls=false",
        "kurrentdb+discover://cluster.example:2113",
        "esdb://localhost:2113",
    ] {
        assert!(
            matches!(StoreConfig::from_url(url), Ok(StoreConfig::Kurrent(_))),
            "{url}"
        );
    }
}

#[test]
fn positions_are_doubled_commit_positions() {
    use kefu_eventlog::kurrent::{commit_position_of, position_from_commit};
    let p = position_from_commit(4096).unwrap();
    assert_eq!(p, Position(8192));
    assert_eq!(commit_position_of(p.next()), 4096);
}
