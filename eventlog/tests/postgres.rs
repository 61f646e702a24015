//! The log contract on PostgreSQL, and what only PostgreSQL needs proven.

mod contract;
use kefu_eventlog::testing as pg;

use std::sync::Arc;

use kefu_eventlog::postgres::{PostgresConfig, PostgresLog};
use kefu_eventlog::{EventLog, ExpectedVersion, Position};
use uuid::Uuid;

struct Postgres {
    schema: String,
    log: Arc<PostgresLog>,
}

fn config(schema: &str) -> PostgresConfig {
    let mut config = PostgresConfig::new(pg::url()).with_schema(schema);
    // Writers that hold their transactions open must not starve the subscribers of connections.
    config.pool_size = 24;
    // Fewer append slots than the torture test has writers, so its appends queue and go out in
    // groups: the whole contract holds with group commit engaged.
    config.append_concurrency = 4;
    config.limits.max_payload_bytes = 64 * 1024;
    config.limits.max_batch = 1000;
    config
}

impl contract::Harness for Postgres {
    type Log = PostgresLog;

    async fn fresh() -> Option<Self> {
        if !pg::available().await {
            return None;
        }
        let schema = pg::fresh_schema();
        let log = Self::open_at(&schema).await;
        Some(Postgres { schema, log })
    }

    fn log(&self) -> Arc<PostgresLog> {
        self.log.clone()
    }

    fn locator(&self) -> String {
        self.schema.clone()
    }

    async fn open_at(schema: &str) -> Arc<PostgresLog> {
        Arc::new(
            PostgresLog::open(config(schema))
                .await
                .expect("open postgres log"),
        )
    }

    async fn cleanup(self) {
        drop(self.log);
        pg::drop_schema(&self.schema).await;
    }
}

contract_suite!(Postgres);

/// The hole Postgres event stores fall into, made on purpose: a transaction holds a position
/// while a later one commits. A reader must not move past the open one.
#[tokio::test]
async fn a_reader_never_passes_an_open_transaction() {
    use contract::Harness;
    let Some(h) = Postgres::fresh().await else {
        return;
    };
    let log = h.log();

    let mut slow = pg::client().await;
    slow.batch_execute(&format!("SET search_path = {}", h.schema))
        .await
        .unwrap();
    let tx = slow.transaction().await.unwrap();
    let slow_event = contract::event(1);
    let row = tx
        .query_one(
            "SELECT last_position FROM kefu_append('conversation-slow', -1, $1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &vec![slow_event.id],
                &vec!["TestHappened"],
                &vec![1i32],
                &vec![slow_event.payload.to_string()],
                &vec!["customer"],
                &vec!["c-1"],
                &vec![slow_event.metadata.correlation_id],
                &vec![slow_event.metadata.causation_id],
                &vec![None::<String>],
            ],
        )
        .await
        .unwrap();
    let slow_position = Position(row.get::<_, i64>(0) as u64);

    // A later transaction commits while the slow one is still open.
    let fast = log
        .append(
            &contract::stream("conversation-fast"),
            ExpectedVersion::Any,
            contract::events(2..3),
        )
        .await
        .unwrap();
    assert!(
        fast.last_position > slow_position,
        "positions follow transaction order"
    );
    assert!(
        log.read_all(Position::START, 100).await.unwrap().is_empty(),
        "the committed event must wait behind the open transaction"
    );

    tx.commit().await.unwrap();
    // Open transactions of other tests on this server may hold the bound back a while longer,
    // so wait the way a projection would.
    let mut sub = kefu_eventlog::Subscription::new(log.clone(), Position::START);
    let first = sub.next().await.unwrap().position;
    let second = sub.next().await.unwrap().position;
    assert_eq!([first, second], [slow_position, fast.last_position]);
    h.cleanup().await;
}

/// The correlation index is built after the fact, from the settled prefix: an event a slow
/// transaction commits below positions already indexed around it is still found, and the
/// hot table carries no correlation index of its own (issue 20: the write path maintains
/// two indexes).
#[tokio::test]
async fn a_correlation_read_finds_an_event_committed_late_below_what_was_indexed() {
    use contract::Harness;
    let Some(h) = Postgres::fresh().await else {
        return;
    };
    let log = h.log();
    let client = pg::client().await;
    client
        .batch_execute(&format!("SET search_path = {}", h.schema))
        .await
        .unwrap();
    let hot_indexes: Vec<String> = client
        .query(
            "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'events' \
             ORDER BY indexname",
            &[&h.schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        hot_indexes,
        ["events_pkey", "events_stream_version_key"],
        "the hot table keeps what the write path needs, nothing more"
    );

    let request = Uuid::now_v7();
    let of_request = |n: u64| {
        let mut e = contract::event(n);
        e.metadata.correlation_id = request;
        e
    };
    let before = log
        .append(
            &contract::stream("conversation-a"),
            ExpectedVersion::Any,
            vec![of_request(1)],
        )
        .await
        .unwrap();

    // A slow transaction takes a position and stays open.
    let mut slow = pg::client().await;
    slow.batch_execute(&format!("SET search_path = {}", h.schema))
        .await
        .unwrap();
    let tx = slow.transaction().await.unwrap();
    let late = of_request(2);
    tx.query_one(
        "SELECT last_position FROM kefu_append('conversation-slow', -1, $1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &vec![late.id],
            &vec!["TestHappened"],
            &vec![1i32],
            &vec![late.payload.to_string()],
            &vec!["customer"],
            &vec!["c-1"],
            &vec![request],
            &vec![late.metadata.causation_id],
            &vec![None::<String>],
        ],
    )
    .await
    .unwrap();

    // Later appends commit around it, some of the same request, many of others.
    let after = log
        .append(
            &contract::stream("conversation-b"),
            ExpectedVersion::Any,
            vec![of_request(3)],
        )
        .await
        .unwrap();
    log.append(
        &contract::stream("conversation-c"),
        ExpectedVersion::Any,
        contract::events(10..40),
    )
    .await
    .unwrap();
    let ids = |events: Vec<kefu_eventlog::RecordedEvent>| -> Vec<Uuid> {
        events.iter().map(|e| e.id).collect()
    };
    // Read while the slow one is open: it is not there yet, the committed ones are.
    let trail = log.read_correlation(request).await.unwrap();
    assert_eq!(
        trail.iter().map(|e| e.position).collect::<Vec<_>>(),
        [before.last_position, after.last_position]
    );
    tx.commit().await.unwrap();
    // Index everything that has settled, as many times as it takes for other tests' open
    // transactions on this server to end (no clock involved: each round indexes or not).
    loop {
        let trail = log.read_correlation(request).await.unwrap();
        assert_eq!(trail.len(), 3, "the late event is found, nothing twice");
        assert_eq!(ids(trail)[1], late.id);
        let through: i64 = client
            .query_one("SELECT through FROM kefu_correlations_through", &[])
            .await
            .unwrap()
            .get(0);
        if through > after.last_position.0 as i64 {
            break;
        }
        tokio::task::yield_now().await;
    }
    // All three now come from the index, the late one included.
    let indexed: i64 = client
        .query_one(
            "SELECT count(*) FROM kefu_correlations WHERE correlation_id = $1",
            &[&request],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexed, 3);
    h.cleanup().await;
}

/// A transaction held open elsewhere shows as committed events above the settled head, with
/// the session that holds them named; once it ends, the two heads meet again.
#[tokio::test]
async fn progress_names_the_transaction_holding_the_settled_head() {
    use contract::Harness;
    let Some(h) = Postgres::fresh().await else {
        return;
    };
    let log = h.log();
    let before = log.progress().await.unwrap();
    assert_eq!(before.committed, None, "a fresh schema: {before:?}");

    let mut holder = pg::client().await;
    let pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let tx = holder.transaction().await.unwrap();
    tx.batch_execute("SET LOCAL application_name = 'held-by-test'; SELECT pg_current_xact_id()")
        .await
        .unwrap();
    let written = log
        .append(
            &contract::stream("conversation-behind"),
            ExpectedVersion::NoStream,
            contract::events(0..3),
        )
        .await
        .unwrap();
    // Other tests on this server hold transactions of their own for a moment; ours is held
    // until the end, so it becomes the oldest.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let held = loop {
        let p = log.progress().await.unwrap();
        if p.holder.as_ref().is_some_and(|h| h.pid == pid) {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the holder never named: {p:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(held.committed, Some(written.last_position), "{held:?}");
    assert!(
        held.settled.is_none_or(|s| s < written.last_position),
        "{held:?}"
    );
    assert_eq!(held.unsettled, 3, "{held:?}");
    let named = held.holder.unwrap();
    assert_eq!(named.application.as_deref(), Some("held-by-test"));
    assert_eq!(named.state.as_deref(), Some("idle in transaction"));
    assert!(named.transaction_start.is_some());
    let shown = named.to_string();
    assert!(
        shown.contains(&format!("pid {pid}")) && shown.contains("idle in transaction"),
        "{shown}"
    );

    tx.rollback().await.unwrap();
    let settled = loop {
        let p = log.progress().await.unwrap();
        if !p.held_back() {
            break p;
        }
        assert!(std::time::Instant::now() < deadline, "never settled: {p:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(settled.settled, Some(written.last_position));
    assert_eq!(settled.committed, settled.settled);
    assert_eq!(settled.holder, None);
    h.cleanup().await;
}

/// An append this process made that waits behind a transaction held elsewhere reaches a
/// subscription soon after that transaction ends, though its end signals nothing here and
/// the poll is an hour away.
#[tokio::test]
async fn a_local_append_held_back_is_delivered_when_it_settles_without_waiting_for_the_poll() {
    let Some(mut config) = pg::fresh_config().await else {
        return;
    };
    let schema = config.schema.clone().unwrap();
    config.poll_interval = std::time::Duration::from_secs(3600);
    let log = Arc::new(PostgresLog::open(config).await.unwrap());
    let holder = pg::client().await;
    holder
        .batch_execute("BEGIN; SELECT pg_current_xact_id()")
        .await
        .unwrap();
    let written = log
        .append(
            &contract::stream("conversation-held"),
            ExpectedVersion::NoStream,
            contract::events(0..1),
        )
        .await
        .unwrap();
    let mut sub = kefu_eventlog::Subscription::new(log.clone(), Position::START);
    let held = tokio::time::timeout(std::time::Duration::from_millis(200), sub.next()).await;
    assert!(held.is_err(), "held back while the transaction is open");
    let next = tokio::spawn(async move { sub.next().await.map(|e| e.position) });
    // Give the subscription time to find the event unsettled again (the test passes either
    // way once the fix is in; without it, this is what makes it hang on the poll).
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    holder.batch_execute("ROLLBACK").await.unwrap();
    let delivered = tokio::time::timeout(std::time::Duration::from_secs(60), next)
        .await
        .expect("delivered long before the hour's poll")
        .unwrap()
        .unwrap();
    assert_eq!(delivered, written.last_position);
    drop(log);
    pg::drop_schema(&schema).await;
}

/// An append made by another process (here another log on the same schema) reaches a
/// subscription that has caught up without waiting for its poll, which is an hour away: the
/// writer announces it (NOTIFY) and the reader's listener wakes the subscription. The
/// subscription first reads an event written before it started, so that it waits with
/// nothing of its own process ahead of it (it would otherwise look again soon). The writer
/// then appends until one arrives, because the reader's listener starts with the
/// subscription and an announcement made before it listens is not heard; the reader must
/// receive them in order, from the first.
#[tokio::test]
async fn another_process_append_wakes_a_subscription_without_waiting_for_the_poll() {
    let Some(mut config) = pg::fresh_config().await else {
        return;
    };
    let schema = config.schema.clone().unwrap();
    config.poll_interval = std::time::Duration::from_secs(3600);
    let writer = Arc::new(PostgresLog::open(config.clone()).await.unwrap());
    let reader = Arc::new(PostgresLog::open(config).await.unwrap());
    let stream = contract::stream("conversation-elsewhere");
    let append = |n: u64| {
        let (writer, stream) = (writer.clone(), stream.clone());
        async move {
            writer
                .append(&stream, ExpectedVersion::Any, contract::events(n..n + 1))
                .await
                .unwrap()
                .last_position
        }
    };
    let before = append(0).await;
    let mut sub = kefu_eventlog::Subscription::new(reader.clone(), Position::START);
    assert_eq!(sub.next().await.unwrap().position, before);
    let mut received = tokio::spawn(async move { sub.next().await.map(|e| e.position) });
    let mut written = Vec::new();
    let first = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            written.push(append(written.len() as u64 + 1).await);
            tokio::select! {
                got = &mut received => return got.unwrap().unwrap(),
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
            }
        }
    })
    .await
    .expect("woken by the other log's announcement long before the hour's poll");
    assert_eq!(
        first, written[0],
        "the first event after the one read, not a later one"
    );
    drop((writer, reader));
    pg::drop_schema(&schema).await;
}

/// Two processes starting at once must not both try to create the schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_are_safe_to_run_concurrently_and_twice() {
    if !pg::available().await {
        return;
    }
    let schema = pg::fresh_schema();
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let schema = schema.clone();
            tokio::spawn(async move { PostgresLog::open(config(&schema)).await.map(|_| ()) })
        })
        .collect();
    for o in opens {
        o.await.unwrap().expect("concurrent open");
    }
    PostgresLog::open(config(&schema))
        .await
        .expect("open again");
    let applied: i64 = pg::client()
        .await
        .query_one(
            &format!("SELECT count(*) FROM {schema}.kefu_migrations"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        applied, 5,
        "the event log, the archive registry, retries carrying the same events, idempotency \
         per stream, the correlation index off the hot table"
    );
    pg::drop_schema(&schema).await;
}

#[tokio::test]
async fn bad_configuration_is_named() {
    let err = PostgresLog::open(
        PostgresConfig::new("postgres://nobody@127.0.0.1:1/x").with_schema("Bad-Name"),
    )
    .await
    .err()
    .expect("refused");
    assert!(err.to_string().contains("schema name"), "{err}");
    let err = PostgresLog::open(PostgresConfig::new("not a url at all ==="))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("PostgreSQL URL"), "{err}");
}

/// Appends that wait together go out in one statement (group commit), and each keeps the
/// outcome it would have had alone: a wrong expected version, a client's retry, a second
/// append to a stream of the group, and an id stored elsewhere (which fails the statement as a
/// whole, so every member is retried on its own).
///
/// Deterministic without timing: with one append slot on this single-threaded runtime,
/// `join!` polls the first append, which takes the slot, then queues all the others before
/// any statement can finish; when the slot comes free, the queue goes out as one group.
#[tokio::test]
async fn group_commit_keeps_each_appends_outcome() {
    use contract::{event, events, stream};
    use kefu_eventlog::LogError;
    if !pg::available().await {
        return;
    }
    let schema = pg::fresh_schema();
    let mut one_slot = config(&schema);
    one_slot.append_concurrency = 1;
    let log = PostgresLog::open(one_slot).await.expect("open");
    let (one, two, retried) = (
        stream("conversation-one"),
        stream("conversation-two"),
        stream("conversation-retried"),
    );
    log.append(&one, ExpectedVersion::NoStream, events(0..1))
        .await
        .unwrap();
    log.append(&two, ExpectedVersion::NoStream, events(0..1))
        .await
        .unwrap();
    let first_try = events(0..2);
    let original = log
        .append(&retried, ExpectedVersion::NoStream, first_try.clone())
        .await
        .unwrap();
    let stored_elsewhere = event(9);
    log.append(
        &stream("conversation-elsewhere"),
        ExpectedVersion::NoStream,
        vec![stored_elsewhere.clone()],
    )
    .await
    .unwrap();

    let any_batch = events(0..3);
    let (pacer, fresh, any) = (
        stream("conversation-pacer"),
        stream("conversation-fresh"),
        stream("conversation-any"),
    );
    let (p, a, b, c, d, e, f) = tokio::join!(
        log.append(&pacer, ExpectedVersion::Any, events(0..1)),
        log.append(&fresh, ExpectedVersion::NoStream, events(0..1)),
        log.append(&one, ExpectedVersion::Exact(0), events(1..2)),
        log.append(&two, ExpectedVersion::Exact(5), events(1..2)),
        log.append(&retried, ExpectedVersion::NoStream, first_try.clone()),
        log.append(&any, ExpectedVersion::Any, any_batch.clone()),
        // A second append to a stream of the group: it stays queued behind the first, and
        // sees its event.
        log.append(&fresh, ExpectedVersion::Exact(0), events(1..2)),
    );
    let (p, a, b, e, f) = (p.unwrap(), a.unwrap(), b.unwrap(), e.unwrap(), f.unwrap());
    assert_eq!(
        (a.first_version, b.first_version, f.first_version),
        (0, 1, 1)
    );
    assert_eq!((e.first_version, e.last_version), (0, 2));
    assert!(
        matches!(
            c,
            Err(LogError::WrongExpectedVersion {
                actual: Some(0),
                ..
            })
        ),
        "{c:?}"
    );
    assert_eq!(
        d.unwrap(),
        original,
        "a retry is acknowledged with the original result"
    );
    // One transaction for the group: positions are `transaction id << 16 | index`.
    let xid = |p: Position| p.0 >> 16;
    assert_eq!(xid(a.first_position), xid(b.first_position));
    assert_eq!(xid(a.first_position), xid(e.last_position));
    assert_ne!(xid(p.first_position), xid(a.first_position));
    assert_eq!(
        e.last_position.0 - e.first_position.0,
        2,
        "a member's events are contiguous"
    );
    assert!(f.first_position > a.last_position);

    // Idempotency is per stream (issue 20): an id stored in another stream is written with
    // the group, in its transaction; an `Any` retry of a stream's last append declines in the
    // group statement and is acknowledged on its own.
    let (gs, hs, is) = (
        stream("conversation-g"),
        stream("conversation-h"),
        stream("conversation-i"),
    );
    let (_, g, h, i, again) = tokio::join!(
        log.append(&pacer, ExpectedVersion::Any, events(1..2)),
        log.append(&gs, ExpectedVersion::NoStream, events(0..1)),
        log.append(
            &hs,
            ExpectedVersion::NoStream,
            vec![stored_elsewhere.clone()]
        ),
        log.append(&is, ExpectedVersion::NoStream, events(0..1)),
        log.append(&any, ExpectedVersion::Any, any_batch.clone()),
    );
    let (g, h, i) = (g.unwrap(), h.unwrap(), i.unwrap());
    assert_eq!(
        again.unwrap(),
        e,
        "the retry is acknowledged as first appended"
    );
    assert_eq!(h.first_version, 0);
    assert_eq!(xid(g.first_position), xid(h.first_position));
    assert_eq!(xid(g.first_position), xid(i.first_position));

    // Every stream holds exactly what its appends acknowledged.
    let everything = contract::read_through(&log, i.last_position.max(g.last_position)).await;
    let count = |s: &str| {
        everything
            .iter()
            .filter(|e| e.stream_id.as_str() == s)
            .count()
    };
    assert_eq!(count("conversation-fresh"), 2);
    assert_eq!(count("conversation-one"), 2);
    assert_eq!(count("conversation-two"), 1);
    assert_eq!(count("conversation-retried"), 2);
    assert_eq!(count("conversation-any"), 3);
    assert_eq!(count("conversation-h"), 1);
    drop(log);
    pg::drop_schema(&schema).await;
}

/// A server that accepts connections and never says a word (a half-dead host, a proxy whose
/// backend is gone) must not hang whoever connects: opening the log, and asking whether a
/// database exists, answer "unavailable" once the URL's `connect_timeout` has passed. Needs
/// no PostgreSQL: the listener is the whole server.
#[tokio::test]
async fn a_server_that_never_answers_is_unavailable_after_the_connect_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/kefu?connect_timeout=1");
    // Only a guard against hanging forever, far above the one second asked for.
    let guard = std::time::Duration::from_secs(120);

    let opened = tokio::time::timeout(guard, PostgresLog::open(PostgresConfig::new(&url)))
        .await
        .expect("opening the log hung on a server that never answers");
    let Err(e) = opened else {
        panic!("a log opened on a server that never answered")
    };
    assert!(e.is_unavailable(), "{e}");
    assert!(e.to_string().contains("connect_timeout"), "{e}");

    let asked = tokio::time::timeout(guard, kefu_eventlog::postgres::database_exists(&url))
        .await
        .expect("database_exists hung on a server that never answers");
    let e = asked.expect_err("a silent server said whether the database exists");
    assert!(e.is_unavailable(), "{e}");
    assert!(e.to_string().contains("connect_timeout"), "{e}");
}
