//! The log's contract, run against every backend. Each backend's test file implements [`Harness`]
//! and calls `contract_suite!(ItsHarness)`.
//!
//! What every backend proves: appends read back as written; expected versions (of two writers with
//! the same one, exactly one wins); a hot stream takes every `Any` append of many writers;
//! idempotent retry, per stream (a batch resent where its first success landed is acknowledged, an
//! id reused in another stream is written); global order and paging; correlation reads; bad input
//! writes nothing; subscriptions catch up, then follow; the settled and committed heads meet when
//! nothing is held; durability across a reopen and after `SIGKILL` of a child process; and the
//! torture test: 16 writers holding their transactions open for random whiles, so commits land out
//! of position order, and 3 subscribers that must each receive every acknowledged event exactly
//! once, in order. `contract_suite_in_process!` is all of it but the killed process, for a log held
//! in memory (`memory.rs`).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kefu_eventlog::{
    Actor, ActorKind, Appended, EventLog, ExpectedVersion, LogError, Metadata, NewEvent, Position,
    RecordedEvent, StreamId, Subscription, read_stream_through, read_whole_stream,
};
use rand::Rng;
use serde_json::json;
use uuid::Uuid;

/// Hang guard only: every wait in this suite ends on a condition; this bounds a broken backend.
pub const GUARD: Duration = Duration::from_secs(180);

/// A fresh, empty log on one backend, and a way to open it again.
pub trait Harness: Sized + Send + Sync + 'static {
    type Log: EventLog;
    /// A new, empty log. None when the backend is not available here (the test is skipped).
    fn fresh() -> impl Future<Output = Option<Self>> + Send;
    /// The open handle.
    fn log(&self) -> Arc<Self::Log>;
    /// A string another process can open the same storage with ([`Harness::open_at`]).
    fn locator(&self) -> String;
    /// A new handle on the storage at `locator`, as after a restart.
    fn open_at(locator: &str) -> impl Future<Output = Arc<Self::Log>> + Send;
    /// Removes what the test stored (called when a test passed).
    fn cleanup(self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

pub fn stream(name: &str) -> StreamId {
    StreamId::new(name).expect("valid stream id")
}

pub fn meta(correlation: Uuid) -> Metadata {
    Metadata {
        actor: Actor::new(ActorKind::Customer, "c-1"),
        correlation_id: correlation,
        causation_id: correlation,
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
    }
}

pub fn event(n: u64) -> NewEvent {
    NewEvent::new("TestHappened", json!({ "n": n }), meta(Uuid::now_v7()))
}

pub fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

/// The whole log once it has settled through the last position any append returned: on
/// PostgreSQL, other sessions' open transactions may hold back what a reader sees for a while.
pub async fn read_everything<L: EventLog>(log: &L) -> Vec<RecordedEvent> {
    let last = *log.appended_signal().borrow();
    read_through(log, last).await
}

/// The whole log once it has settled through `last`.
pub async fn read_through<L: EventLog>(log: &L, last: Position) -> Vec<RecordedEvent> {
    loop {
        let all = read_settled(log).await;
        if all.last().map_or(Position::START, |e| e.position) >= last {
            return all;
        }
        tokio::time::sleep(log.poll_interval()).await;
    }
}

/// What `read_all` returns right now, page after page.
pub async fn read_settled<L: EventLog>(log: &L) -> Vec<RecordedEvent> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    let mut from = Position::START;
    loop {
        let page = log.read_all(from, 100).await.expect("read_all");
        let Some(last) = page.last() else {
            return out;
        };
        from = last.position.next();
        out.extend(page);
    }
}

// ---------------------------------------------------------------------------------------------

/// With nothing held open, the two heads are one, at the last event appended; never is the
/// settled head past the committed one.
pub async fn progress_heads_meet_when_nothing_is_held<L: EventLog>(log: &L) {
    let empty = log.progress().await.expect("progress");
    assert_eq!((empty.settled, empty.committed), (None, None), "{empty:?}");
    let written = log
        .append(
            &stream("conversation-progress"),
            ExpectedVersion::NoStream,
            events(0..4),
        )
        .await
        .expect("append");
    // Settling may lag a moment behind other tests' transactions on a shared server.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let p = log.progress().await.expect("progress");
        assert_eq!(p.committed, Some(written.last_position), "{p:?}");
        assert!(p.settled <= p.committed, "{p:?}");
        if !p.held_back() {
            assert_eq!(p.settled, Some(written.last_position), "{p:?}");
            assert_eq!(p.settled, log.head().await.expect("head"));
            assert_eq!(p.holder, None);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never settled: {p:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub async fn append_and_read_back<L: EventLog>(log: &L) {
    let s = stream("conversation-read-back");
    let batch = events(0..3);
    let appended = log
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("append");
    assert_eq!((appended.first_version, appended.last_version), (0, 2));
    assert!(appended.first_position <= appended.last_position);

    let stored = log.read_stream(&s, 0, 100).await.expect("read");
    assert_eq!(stored.len(), 3);
    for (i, (got, sent)) in stored.iter().zip(&batch).enumerate() {
        assert_eq!(got.id, sent.id);
        assert_eq!(got.stream_id, s);
        assert_eq!(got.version, i as u64);
        assert_eq!(got.event_type, sent.event_type);
        assert_eq!(got.schema_version, sent.schema_version);
        assert_eq!(got.payload, sent.payload);
        assert_eq!(got.metadata, sent.metadata);
        let age = chrono::Utc::now() - got.recorded_at;
        assert!(
            age.num_seconds().abs() < 600,
            "recorded_at {} is not now",
            got.recorded_at
        );
    }
    assert_eq!(stored[0].position, appended.first_position);
    assert_eq!(stored[2].position, appended.last_position);
    assert!(stored.windows(2).all(|w| w[0].position < w[1].position));

    assert_eq!(log.read_stream(&s, 1, 1).await.unwrap()[0].version, 1);
    assert_eq!(log.read_stream(&s, 3, 10).await.unwrap().len(), 0);
    assert_eq!(log.stream_version(&s).await.unwrap(), Some(2));
    let unknown = stream("conversation-nobody");
    assert!(log.read_stream(&unknown, 0, 10).await.unwrap().is_empty());
    assert_eq!(log.stream_version(&unknown).await.unwrap(), None);
    assert_eq!(read_whole_stream(log, &s).await.unwrap(), stored);
    // As the stream stood at a version: what a read model that applied that far shows.
    let through = |v| read_stream_through(log, &s, Some(v));
    assert_eq!(through(0).await.unwrap(), stored[..1]);
    assert_eq!(through(1).await.unwrap(), stored[..2]);
    assert_eq!(through(7).await.unwrap(), stored);
}

pub async fn expected_versions<L: EventLog>(log: &L) {
    let s = stream("ticket-expected");
    let conflict = |r: Result<Appended, LogError>, actual: Option<u64>| match r {
        Err(LogError::WrongExpectedVersion {
            stream: st,
            actual: a,
            ..
        }) => {
            assert_eq!(st, s);
            assert_eq!(a, actual);
        }
        other => panic!("expected a conflict, got {other:?}"),
    };
    conflict(
        log.append(&s, ExpectedVersion::Exact(0), events(0..1))
            .await,
        None,
    );
    log.append(&s, ExpectedVersion::NoStream, events(0..2))
        .await
        .unwrap();
    conflict(
        log.append(&s, ExpectedVersion::NoStream, events(0..1))
            .await,
        Some(1),
    );
    conflict(
        log.append(&s, ExpectedVersion::Exact(0), events(0..1))
            .await,
        Some(1),
    );
    conflict(
        log.append(&s, ExpectedVersion::Exact(2), events(0..1))
            .await,
        Some(1),
    );
    let a = log
        .append(&s, ExpectedVersion::Exact(1), events(0..1))
        .await
        .unwrap();
    assert_eq!(a.first_version, 2);
    let a = log
        .append(&s, ExpectedVersion::Any, events(0..2))
        .await
        .unwrap();
    assert_eq!((a.first_version, a.last_version), (3, 4));
    assert_eq!(log.stream_version(&s).await.unwrap(), Some(4));
    // A refused append left nothing behind.
    assert_eq!(log.read_stream(&s, 0, 100).await.unwrap().len(), 5);
}

/// Of many writers with the same expected version, exactly one wins, round after round.
pub async fn concurrent_writers_one_wins<L: EventLog>(log: Arc<L>) {
    let s = stream("queue-race");
    let mut expected = ExpectedVersion::NoStream;
    for round in 0..10u64 {
        let attempts: Vec<_> = (0..8)
            .map(|w| {
                let log = log.clone();
                let s = s.clone();
                tokio::spawn(async move {
                    log.append(&s, expected, events(round * 100 + w..round * 100 + w + 1))
                        .await
                })
            })
            .collect();
        let mut wins = 0;
        for a in attempts {
            match a.await.unwrap() {
                Ok(_) => wins += 1,
                Err(e) => assert!(e.is_conflict(), "round {round}: {e}"),
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one writer wins");
        expected = ExpectedVersion::Exact(round);
    }
    assert_eq!(log.stream_version(&s).await.unwrap(), Some(9));
}

/// Many writers appending to one stream with `Any` all succeed, and the stream stays gapless
/// with its versions in position order.
pub async fn hot_stream_takes_every_any_append<L: EventLog>(log: Arc<L>) {
    let s = stream("queue-hot");
    let writers: Vec<_> = (0..16u64)
        .map(|w| {
            let log = log.clone();
            let s = s.clone();
            tokio::spawn(async move {
                for n in 0..25 {
                    let first = w * 1000 + n * 2;
                    log.append(&s, ExpectedVersion::Any, events(first..first + 2))
                        .await
                        .unwrap_or_else(|e| panic!("writer {w}, append {n}: {e}"));
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let stored = log.read_stream(&s, 0, 10_000).await.unwrap();
    assert_eq!(stored.len(), 16 * 25 * 2);
    assert!(
        stored
            .iter()
            .enumerate()
            .all(|(i, e)| e.version == i as u64)
    );
    assert!(stored.windows(2).all(|w| w[0].position < w[1].position));
    // Each batch landed whole and in its order.
    for pair in stored.chunks(2) {
        assert_eq!(
            pair[0].payload["n"].as_u64().unwrap() + 1,
            pair[1].payload["n"].as_u64().unwrap()
        );
    }
}

pub async fn idempotent_retry<L: EventLog>(log: &L) {
    let s = stream("conversation-retry");
    let batch = events(0..3);
    let first = log
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    // The client did not hear the answer and sends the same request again.
    let again = log
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    assert_eq!(again, first);
    let again = log
        .append(&s, ExpectedVersion::Any, batch.clone())
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(log.read_stream(&s, 0, 100).await.unwrap().len(), 3);

    let next = events(3..5);
    let second = log
        .append(&s, ExpectedVersion::Exact(2), next.clone())
        .await
        .unwrap();
    assert_eq!(
        log.append(&s, ExpectedVersion::Exact(2), next.clone())
            .await
            .unwrap(),
        second
    );
    // A retry claiming a place where the batch is not is a conflict, not an acknowledgement.
    let r = log
        .append(&s, ExpectedVersion::Exact(3), next.clone())
        .await;
    assert!(
        matches!(r, Err(LogError::WrongExpectedVersion { .. })),
        "{r:?}"
    );

    // Part of a stored batch where the batch would be is refused, and so is, with `Any`,
    // a batch some of whose ids are among the stream's last events out of place.
    let mut partial = vec![batch[0].clone()];
    partial.push(event(99));
    let r = log.append(&s, ExpectedVersion::NoStream, partial).await;
    assert!(matches!(r, Err(LogError::DuplicateEventId { .. })), "{r:?}");
    let mut reordered = batch.clone();
    reordered.swap(0, 1);
    let r = log.append(&s, ExpectedVersion::Any, reordered).await;
    assert!(matches!(r, Err(LogError::DuplicateEventId { .. })), "{r:?}");
    let r = log.append(&s, ExpectedVersion::Any, next.clone()).await;
    assert_eq!(
        r.unwrap(),
        second,
        "an `Any` retry of the stream's last append"
    );
    // Idempotency is per stream (issue 20): the same ids sent to another stream are that
    // stream's events, written.
    let other = stream("conversation-other");
    let elsewhere = log
        .append(&other, ExpectedVersion::Any, batch.clone())
        .await
        .unwrap();
    assert_eq!((elsewhere.first_version, elsewhere.last_version), (0, 2));
    assert_eq!(
        log.read_stream(&other, 0, 100)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        batch.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    // The same ids with another payload, or another type, are not a retry: refused, named.
    let mut changed = batch.clone();
    changed[1].payload = serde_json::json!({ "n": 1000 });
    let r = log.append(&s, ExpectedVersion::NoStream, changed).await;
    match &r {
        Err(LogError::DuplicateEventId { id, detail }) => {
            assert_eq!(*id, batch[1].id, "{detail}");
            assert!(detail.contains("same event"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    let mut retyped = batch.clone();
    retyped[0].event_type = "SomethingElse".into();
    let r = log.append(&s, ExpectedVersion::NoStream, retyped).await;
    assert!(matches!(r, Err(LogError::DuplicateEventId { .. })), "{r:?}");
    // The batch as first sent is still acknowledged.
    assert_eq!(
        log.append(&s, ExpectedVersion::NoStream, batch.clone())
            .await
            .unwrap(),
        first
    );

    assert_eq!(log.read_stream(&s, 0, 100).await.unwrap().len(), 5);
    assert_eq!(read_everything(log).await.len(), 8);
}

pub async fn global_order_and_paging<L: EventLog>(log: &L) {
    assert_eq!(log.head().await.unwrap(), None, "an empty log has no head");
    let streams: Vec<StreamId> = (0..4).map(|i| stream(&format!("agent-{i}"))).collect();
    let mut sent = Vec::new();
    for round in 0..6u64 {
        for s in &streams {
            let batch = events(round * 10..round * 10 + (round % 3) + 1);
            sent.extend(batch.iter().map(|e| e.id));
            log.append(s, ExpectedVersion::Any, batch).await.unwrap();
        }
    }
    let all = read_everything(log).await;
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), sent);
    assert_eq!(
        log.head().await.unwrap(),
        all.last().map(|e| e.position),
        "the head is the last settled event"
    );
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    // What a replay's progress is measured in, where the backend counts: events, however
    // sparse the positions.
    if let Some(n) = log
        .count_through(all[all.len() - 1].position)
        .await
        .unwrap()
    {
        assert_eq!(n, all.len() as u64, "every event through the head");
        for k in [0, all.len() / 3] {
            assert_eq!(
                log.count_through(all[k].position).await.unwrap(),
                Some(k as u64 + 1),
                "the events through the {k}th"
            );
        }
    }
    let mut versions: HashMap<&StreamId, u64> = HashMap::new();
    for e in &all {
        let next = versions.entry(&e.stream_id).or_insert(0);
        assert_eq!(
            e.version, *next,
            "stream versions are gapless and in log order"
        );
        *next += 1;
    }

    // Paging from an arbitrary position gives the same sequence, once each.
    for page in [1, 7, 1000] {
        let mut from = Position::START;
        let mut seen = Vec::new();
        loop {
            let got = log.read_all(from, page).await.unwrap();
            assert!(got.len() <= page);
            let Some(last) = got.last() else { break };
            from = last.position.next();
            seen.extend(got.into_iter().map(|e| e.id));
        }
        assert_eq!(seen, sent, "page size {page}");
    }
    let middle = all[all.len() / 2].position;
    let tail = log.read_all(middle, 1000).await.unwrap();
    assert_eq!(tail.first().map(|e| e.id), Some(all[all.len() / 2].id));
    assert_eq!(tail.len(), all.len() - all.len() / 2);
}

pub async fn correlation_reads<L: EventLog>(log: &L) {
    let request = Uuid::now_v7();
    let other = Uuid::now_v7();
    let mut expected = Vec::new();
    for (i, s) in ["conversation-c1", "queue-c1", "ticket-c1"]
        .iter()
        .enumerate()
    {
        let mine = NewEvent::new("Caused", json!({ "i": i }), meta(request));
        let theirs = NewEvent::new("Unrelated", json!({ "i": i }), meta(other));
        expected.push(mine.id);
        log.append(&stream(s), ExpectedVersion::Any, vec![mine, theirs])
            .await
            .unwrap();
    }
    let trail = log.read_correlation(request).await.unwrap();
    assert_eq!(trail.iter().map(|e| e.id).collect::<Vec<_>>(), expected);
    assert!(trail.iter().all(|e| e.metadata.correlation_id == request));
    assert!(
        log.read_correlation(Uuid::now_v7())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Every kind of bad input gets its typed error, and nothing is written.
pub async fn bad_input_writes_nothing<L: EventLog>(log: &L) {
    let s = stream("ticket-bad");
    log.append(&s, ExpectedVersion::NoStream, events(0..1))
        .await
        .unwrap();
    let before = read_everything(log).await;

    let r = log.append(&s, ExpectedVersion::Any, vec![]).await;
    assert!(matches!(r, Err(LogError::EmptyBatch)), "{r:?}");

    let limit = log.limits().max_payload_bytes;
    let big = NewEvent::new(
        "Big",
        json!({ "blob": "x".repeat(limit) }),
        meta(Uuid::now_v7()),
    );
    let r = log
        .append(&s, ExpectedVersion::Any, vec![event(1), big])
        .await;
    match r {
        Err(LogError::PayloadTooLarge {
            index,
            size,
            limit: l,
        }) => {
            assert_eq!(index, 1);
            assert!(size > l && l == limit);
        }
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }

    for (payload, kind) in [
        (json!([1, 2]), "an array"),
        (json!("text"), "a string"),
        (json!(null), "null"),
        (json!(3), "a number"),
    ] {
        let e = NewEvent::new("NotAnObject", payload, meta(Uuid::now_v7()));
        let r = log.append(&s, ExpectedVersion::Any, vec![e]).await;
        match r {
            Err(LogError::PayloadNotObject { index: 0, found }) => assert_eq!(found, kind),
            other => panic!("expected PayloadNotObject, got {other:?}"),
        }
    }

    for bad in [
        "",
        "noseparator",
        "Conversation-1",
        "conversation-",
        "conversation-a b",
        "1abc-x",
    ] {
        let r = StreamId::new(bad);
        assert!(
            matches!(r, Err(LogError::InvalidStreamId { .. })),
            "{bad:?}: {r:?}"
        );
        assert!(r.unwrap_err().to_string().contains("invalid stream id"));
    }
    assert!(StreamId::new("a".repeat(201).replacen('a', "a-", 1)).is_err());

    for bad in ["", "anything", "-1", "1.5", "latest"] {
        let r = ExpectedVersion::parse(bad);
        assert!(
            matches!(r, Err(LogError::InvalidExpectedVersion { .. })),
            "{bad:?}"
        );
    }
    assert_eq!(
        ExpectedVersion::parse("no_stream").unwrap(),
        ExpectedVersion::NoStream
    );
    assert_eq!(
        ExpectedVersion::parse("7").unwrap(),
        ExpectedVersion::Exact(7)
    );

    let mut e = event(2);
    e.event_type = "has space".into();
    let r = log.append(&s, ExpectedVersion::Any, vec![e]).await;
    assert!(matches!(r, Err(LogError::InvalidEventType { .. })), "{r:?}");
    let e = event(3).with_schema_version(0);
    let r = log.append(&s, ExpectedVersion::Any, vec![e]).await;
    assert!(
        matches!(r, Err(LogError::InvalidSchemaVersion { index: 0 })),
        "{r:?}"
    );
    let e = event(4);
    let r = log
        .append(&s, ExpectedVersion::Any, vec![e.clone(), e])
        .await;
    assert!(
        matches!(r, Err(LogError::DuplicateIdInBatch { .. })),
        "{r:?}"
    );
    let mut e = event(5);
    e.metadata.actor.id.clear();
    let r = log.append(&s, ExpectedVersion::Any, vec![e]).await;
    assert!(matches!(r, Err(LogError::InvalidMetadata { .. })), "{r:?}");
    let too_many = (0..log.limits().max_batch as u64 + 1).map(event).collect();
    let r = log.append(&s, ExpectedVersion::Any, too_many).await;
    assert!(matches!(r, Err(LogError::BatchTooLarge { .. })), "{r:?}");

    assert_eq!(read_everything(log).await, before, "nothing was written");
    assert_eq!(log.stream_version(&s).await.unwrap(), Some(0));
}

pub async fn subscription_catches_up_then_follows<L: EventLog>(log: Arc<L>) {
    for i in 0..10 {
        log.append(
            &stream(&format!("conversation-s{}", i % 3)),
            ExpectedVersion::Any,
            events(i..i + 1),
        )
        .await
        .unwrap();
    }
    let all = read_everything(&*log).await;
    let mut sub = Subscription::new(log.clone(), Position::START).with_page_size(4);
    for want in &all {
        let got = sub.next().await.unwrap();
        assert_eq!(got.id, want.id);
    }
    // Live: events appended after the subscription caught up arrive, in order.
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 10..20 {
                let batch = events(i..i + 1);
                ids.push(batch[0].id);
                log.append(&stream("conversation-live"), ExpectedVersion::Any, batch)
                    .await
                    .unwrap();
            }
            ids
        })
    };
    let mut live = Vec::new();
    while live.len() < 10 {
        live.push(sub.next().await.unwrap().id);
    }
    assert_eq!(live, writer.await.unwrap());

    // A subscription started at a checkpoint sees exactly what follows it.
    let middle = &all[5];
    let mut from_middle = Subscription::new(log.clone(), middle.position.next());
    assert_eq!(from_middle.next().await.unwrap().id, all[6].id);
}

/// N writers append concurrently, each holding its transaction open for a random while before
/// it commits, so commits land out of the order their positions were taken in. K subscribers
/// read all along. Each must receive every acknowledged event exactly once, in position order.
pub async fn torture<L: EventLog>(
    log: Arc<L>,
    writers: usize,
    appends_each: usize,
    subscribers: usize,
) {
    let readers: Vec<_> = (0..subscribers)
        .map(|k| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut sub = Subscription::new(log, Position::START).with_page_size(16 + k * 50);
                let mut got: Vec<RecordedEvent> = Vec::new();
                loop {
                    let e = sub.next().await.expect("subscription");
                    if e.event_type == "TortureDone" {
                        return got;
                    }
                    got.push(e);
                }
            })
        })
        .collect();

    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for n in 0..appends_each {
                    let (hold, size, shared) = {
                        let mut rng = rand::rng();
                        (
                            Duration::from_micros(rng.random_range(0..3000)),
                            rng.random_range(1..=3u64),
                            rng.random_bool(0.3),
                        )
                    };
                    // Some appends go to streams shared by all writers, so stream locks and
                    // stream-order checks are exercised too.
                    let s = if shared {
                        stream(&format!("queue-shared{}", n % 2))
                    } else {
                        stream(&format!("conversation-w{w}"))
                    };
                    let batch: Vec<NewEvent> =
                        (0..size).map(|i| event(n as u64 * 10 + i)).collect();
                    let ids: Vec<Uuid> = batch.iter().map(|e| e.id).collect();
                    log.append_holding(&s, ExpectedVersion::Any, batch, hold)
                        .await
                        .expect("append");
                    acked.extend(ids);
                }
                acked
            })
        })
        .collect();
    let mut acked = HashSet::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    // The end marker is appended after every writer finished, so it sorts after all of them.
    log.append(
        &stream("system-torture"),
        ExpectedVersion::Any,
        vec![NewEvent::new(
            "TortureDone",
            json!({}),
            meta(Uuid::now_v7()),
        )],
    )
    .await
    .unwrap();

    for (k, r) in readers.into_iter().enumerate() {
        let got = r.await.unwrap();
        let ids: Vec<Uuid> = got.iter().map(|e| e.id).collect();
        let unique: HashSet<Uuid> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "subscriber {k} got duplicates");
        let missing = acked.difference(&unique).count();
        assert_eq!(
            missing,
            0,
            "subscriber {k} missed {missing} of {} events",
            acked.len()
        );
        assert_eq!(
            ids.len(),
            acked.len(),
            "subscriber {k} got events nobody appended"
        );
        assert!(
            got.windows(2).all(|w| w[0].position < w[1].position),
            "subscriber {k}: out of order"
        );
        let mut versions: HashMap<&StreamId, u64> = HashMap::new();
        for e in &got {
            let next = versions.entry(&e.stream_id).or_insert(0);
            assert_eq!(
                e.version, *next,
                "subscriber {k}: {} out of stream order",
                e.stream_id
            );
            *next += 1;
        }
    }
}

// --- durability across a killed process -------------------------------------------------------

/// The env var that turns the `durability_child` test into the appender the parent kills.
pub const CHILD_ENV: &str = "KEFU_DURABILITY_CHILD";

/// Child side: append single events forever, printing each acknowledged id.
pub async fn durability_child<H: Harness>() {
    let Ok(locator) = std::env::var(CHILD_ENV) else {
        return;
    };
    let log = H::open_at(&locator).await;
    let mut out = std::io::stdout();
    for n in 0.. {
        let e = event(n);
        let id = e.id;
        let at = log
            .append(
                &stream(&format!("conversation-d{}", n % 5)),
                ExpectedVersion::Any,
                vec![e],
            )
            .await
            .expect("append")
            .last_position;
        // The parent stops reading before it kills us; a closed pipe is the end of the run.
        if writeln!(out, "ACK {id} {at}")
            .and_then(|_| out.flush())
            .is_err()
        {
            std::process::exit(0);
        }
    }
}

/// Parent side: start the child, kill it mid-stream, reopen the store, find every ack.
pub async fn durability_after_kill<H: Harness>(harness: &H, child_test: &str) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            child_test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, harness.locator())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let acked = tokio::task::spawn_blocking(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(ack) = line.strip_prefix("ACK ") {
                let (id, at) = ack.trim().split_once(' ').expect("ACK <id> <position>");
                acked.push((Uuid::parse_str(id).unwrap(), Position(at.parse().unwrap())));
                if acked.len() == 200 {
                    break;
                }
            }
        }
        acked
    })
    .await
    .unwrap();
    child.kill().expect("kill child");
    child.wait().unwrap();
    assert_eq!(
        acked.len(),
        200,
        "the child stopped before acknowledging 200 appends"
    );

    let reopened = H::open_at(&harness.locator()).await;
    let last = acked.iter().map(|(_, at)| *at).max().unwrap();
    let stored: HashSet<Uuid> = read_through(&*reopened, last)
        .await
        .iter()
        .map(|e| e.id)
        .collect();
    let lost: Vec<_> = acked
        .iter()
        .filter(|(id, _)| !stored.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost: {lost:?}",
        lost.len()
    );
    // The log still takes appends after the crash.
    reopened
        .append(
            &stream("conversation-d0"),
            ExpectedVersion::Any,
            events(0..1),
        )
        .await
        .unwrap();
}

pub async fn durable_across_reopen<H: Harness>(harness: &H) {
    let log = harness.log();
    let s = stream("conversation-durable");
    log.append(&s, ExpectedVersion::NoStream, events(0..4))
        .await
        .unwrap();
    let before = read_everything(&*log).await;
    let reopened = H::open_at(&harness.locator()).await;
    let last = before.last().unwrap().position;
    assert_eq!(read_through(&*reopened, last).await, before);
    assert_eq!(reopened.stream_version(&s).await.unwrap(), Some(3));
}

/// One contract test on a fresh log of `$harness`; skipped when the backend is unavailable.
#[macro_export]
macro_rules! contract_test {
    ($harness:ty, $name:ident, |$h:ident| $body:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let Some($h) = <$harness as $crate::contract::Harness>::fresh().await else {
                return;
            };
            tokio::time::timeout($crate::contract::GUARD, async { $body })
                .await
                .expect("hang guard");
            $crate::contract::Harness::cleanup($h).await;
        }
    };
}

/// Declares one test per contract item for a [`Harness`]: [`contract_suite_in_process`]'s,
/// and durability across a killed process.
#[macro_export]
macro_rules! contract_suite {
    ($harness:ty) => {
        $crate::contract_suite_in_process!($harness);

        $crate::contract_test!($harness, durability_after_kill, |h| {
            $crate::contract::durability_after_kill(&h, "durability_child").await
        });

        /// Not a test of its own: the appender process `durability_after_kill` starts and kills.
        #[tokio::test]
        #[ignore = "run by durability_after_kill as its child process"]
        async fn durability_child() {
            $crate::contract::durability_child::<$harness>().await;
        }
    };
}

/// Every contract item a backend must pass within one process: all of them but durability
/// across a killed process, which a log held in memory cannot give (`memory.rs`).
#[macro_export]
macro_rules! contract_suite_in_process {
    ($harness:ty) => {
        use $crate::contract::Harness as _;

        $crate::contract_test!($harness, append_and_read_back, |h| {
            $crate::contract::append_and_read_back(&*h.log()).await
        });
        $crate::contract_test!($harness, expected_versions, |h| {
            $crate::contract::expected_versions(&*h.log()).await
        });
        $crate::contract_test!($harness, concurrent_writers_one_wins, |h| {
            $crate::contract::concurrent_writers_one_wins(h.log()).await
        });
        $crate::contract_test!($harness, hot_stream_takes_every_any_append, |h| {
            $crate::contract::hot_stream_takes_every_any_append(h.log()).await
        });
        $crate::contract_test!($harness, progress_heads_meet_when_nothing_is_held, |h| {
            $crate::contract::progress_heads_meet_when_nothing_is_held(&*h.log()).await
        });
        $crate::contract_test!($harness, idempotent_retry, |h| {
            $crate::contract::idempotent_retry(&*h.log()).await
        });
        $crate::contract_test!($harness, global_order_and_paging, |h| {
            $crate::contract::global_order_and_paging(&*h.log()).await
        });
        $crate::contract_test!($harness, correlation_reads, |h| {
            $crate::contract::correlation_reads(&*h.log()).await
        });
        $crate::contract_test!($harness, bad_input_writes_nothing, |h| {
            $crate::contract::bad_input_writes_nothing(&*h.log()).await
        });
        $crate::contract_test!($harness, subscription_catches_up_then_follows, |h| {
            $crate::contract::subscription_catches_up_then_follows(h.log()).await
        });
        $crate::contract_test!($harness, durable_across_reopen, |h| {
            $crate::contract::durable_across_reopen(&h).await
        });
        $crate::contract_test!($harness, torture_16_writers, |h| {
            $crate::contract::torture(h.log(), 16, 60, 3).await
        });
    };
}
