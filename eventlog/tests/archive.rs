//! The archive on both SQL backends: archived history reads as it did from the hot store
//! (by stream, in global order, by correlation), streams continue after archiving, a crash at
//! any step loses nothing and the next run completes, damaged files are named, two
//! archivers at once move each event once, and a reader whose archive directory lacks a batch
//! the hot store's registry lists fails naming it instead of returning a shorter history.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kefu_eventlog::archive::{self, ArchiveStore, CrashPoint};
use kefu_eventlog::postgres::{PostgresConfig, PostgresLog};
use kefu_eventlog::sqlite::{SqliteConfig, SqliteLog};
use kefu_eventlog::testing as pg;
use kefu_eventlog::{
    Actor, ActorKind, EventLog, ExpectedVersion, LogError, Metadata, NewEvent, Position,
    RecordedEvent, StreamId,
};
use serde_json::json;
use uuid::Uuid;

/// Opens handles on one store and one archive directory.
trait Store: Send + Sync {
    type Log: ArchiveStore;
    /// A handle on the store reading through `archive` (another host's directory, or none).
    async fn open_at(&self, archive: Option<PathBuf>) -> Arc<Self::Log>;
    fn archive_dir(&self) -> &Path;
    /// Empties the hot store's registry, as if its batches were archived before it existed.
    async fn forget_registry(&self);
    async fn open(&self) -> Arc<Self::Log> {
        self.open_at(Some(self.archive_dir().join("archive"))).await
    }
}

struct Sqlite(tempfile::TempDir);

impl Store for Sqlite {
    type Log = SqliteLog;
    async fn open_at(&self, archive: Option<PathBuf>) -> Arc<SqliteLog> {
        let mut config = SqliteConfig::new(self.0.path().join("kefu.db"));
        config.archive = archive;
        Arc::new(SqliteLog::open(config).await.expect("open sqlite"))
    }
    fn archive_dir(&self) -> &Path {
        self.0.path()
    }
    async fn forget_registry(&self) {
        rusqlite::Connection::open(self.0.path().join("kefu.db"))
            .unwrap()
            .execute("DELETE FROM kefu_archive_batches", [])
            .unwrap();
    }
}

fn sqlite() -> Sqlite {
    Sqlite(tempfile::tempdir().expect("temp dir"))
}

struct Postgres {
    schema: String,
    dir: tempfile::TempDir,
}

impl Store for Postgres {
    type Log = PostgresLog;
    async fn open_at(&self, archive: Option<PathBuf>) -> Arc<PostgresLog> {
        let mut config = PostgresConfig::new(pg::url()).with_schema(&self.schema);
        config.archive = archive;
        Arc::new(PostgresLog::open(config).await.expect("open postgres"))
    }
    fn archive_dir(&self) -> &Path {
        self.dir.path()
    }
    async fn forget_registry(&self) {
        pg::client()
            .await
            .batch_execute(&format!("DELETE FROM {}.kefu_archive_batches", self.schema))
            .await
            .unwrap();
    }
}

async fn postgres() -> Option<Postgres> {
    if !pg::available().await {
        return None;
    }
    Some(Postgres {
        schema: pg::fresh_schema(),
        dir: tempfile::tempdir().expect("temp dir"),
    })
}

fn stream(n: usize) -> StreamId {
    StreamId::new(format!("conversation-{n}")).expect("stream id")
}

fn event(n: u64, correlation: Uuid) -> NewEvent {
    NewEvent::new(
        "TestHappened",
        json!({ "n": n }),
        Metadata::for_request(Actor::new(ActorKind::Customer, "c-1"), correlation),
    )
}

/// Four streams of six events each, appended interleaved (so their positions interleave),
/// one correlation per round across all streams.
async fn history<L: EventLog>(log: &L) -> Vec<Uuid> {
    let mut correlations = Vec::new();
    for round in 0..6u64 {
        let c = Uuid::now_v7();
        correlations.push(c);
        for s in 0..4 {
            let expected = if round == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(round - 1)
            };
            log.append(&stream(s), expected, vec![event(round, c)])
                .await
                .expect("append");
        }
    }
    settle(log).await;
    correlations
}

/// Waits until everything this process appended is in the settled prefix (on PostgreSQL,
/// other tests' open transactions hold it back for a while): only settled events move.
async fn settle<L: EventLog>(log: &L) {
    let last = *log.appended_signal().borrow();
    for _ in 0..600 {
        if log.head().await.unwrap().is_some_and(|h| h >= last) {
            return;
        }
        tokio::time::sleep(log.poll_interval()).await;
    }
    panic!("the log did not settle through {last}");
}

async fn read_all<L: EventLog>(log: &L, page: usize) -> Vec<RecordedEvent> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    let mut from = Position::START;
    loop {
        let got = log.read_all(from, page).await.expect("read_all");
        let Some(last) = got.last() else {
            return out;
        };
        from = last.position.next();
        out.extend(got);
    }
}

/// Everything a reader can see: the whole log (in pages of two sizes), every stream, every
/// correlation.
async fn snapshot<L: EventLog>(
    log: &L,
    correlations: &[Uuid],
) -> (
    Vec<RecordedEvent>,
    Vec<Vec<RecordedEvent>>,
    Vec<Vec<RecordedEvent>>,
) {
    let all = read_all(log, 1000).await;
    assert_eq!(read_all(log, 3).await, all, "paging changes nothing");
    let mut streams = Vec::new();
    for s in 0..4 {
        streams.push(
            kefu_eventlog::read_whole_stream(log, &stream(s))
                .await
                .expect("read stream"),
        );
        // Reading from the middle of the archived part.
        let tail = log
            .read_stream(&stream(s), 2, 2)
            .await
            .expect("read stream");
        assert_eq!(tail, streams[s][2..4].to_vec());
    }
    let mut by_correlation = Vec::new();
    for c in correlations {
        by_correlation.push(log.read_correlation(*c).await.expect("correlation"));
    }
    (all, streams, by_correlation)
}

async fn archived_history_reads_like_the_hot_one<S: Store>(store: S) {
    let log = store.open().await;
    let correlations = history(&*log).await;
    let before = snapshot(&*log, &correlations).await;
    let moved = archive::archive_streams(&*log, &[stream(0), stream(2)], None)
        .await
        .expect("archive");
    assert!(moved.locked);
    assert_eq!(
        (moved.streams, moved.events),
        (2, 10),
        "all but each stream's last"
    );
    let file = store
        .archive_dir()
        .join("archive")
        .join(moved.file.as_deref().expect("a file"));
    assert!(file.exists());
    // Gone from the hot store, but for each stream's last event.
    let hot = log
        .count_hot(&[archive::StreamRange {
            stream: stream(0),
            first_version: 0,
            last_version: 5,
        }])
        .await
        .unwrap();
    assert_eq!(hot, 1);
    assert_eq!(snapshot(&*log, &correlations).await, before);
    // A replay's progress counts archived events with the hot ones.
    let head = before.0.last().expect("a history").position;
    assert_eq!(
        log.count_through(head).await.unwrap(),
        Some(before.0.len() as u64),
        "the hot and archived events, each once"
    );
    // A fresh process sees the same (nothing cached).
    let other = store.open().await;
    assert_eq!(snapshot(&*other, &correlations).await, before);
    // Archiving again moves nothing.
    let again = archive::archive_streams(&*log, &[stream(0), stream(2)], None)
        .await
        .unwrap();
    assert_eq!(again.events, 0);

    // The stream continues: its version holds, and a stale expectation still conflicts.
    assert_eq!(log.stream_version(&stream(0)).await.unwrap(), Some(5));
    let stale = log
        .append(
            &stream(0),
            ExpectedVersion::Exact(4),
            vec![event(9, Uuid::now_v7())],
        )
        .await;
    assert!(
        matches!(
            stale,
            Err(LogError::WrongExpectedVersion {
                actual: Some(5),
                ..
            })
        ),
        "{stale:?}"
    );
    let fresh = log
        .append(
            &stream(0),
            ExpectedVersion::NoStream,
            vec![event(9, Uuid::now_v7())],
        )
        .await;
    assert!(fresh.unwrap_err().is_conflict());
    let reopened = log
        .append(
            &stream(0),
            ExpectedVersion::Exact(5),
            vec![event(6, Uuid::now_v7()), event(7, Uuid::now_v7())],
        )
        .await
        .expect("append after archiving");
    assert_eq!((reopened.first_version, reopened.last_version), (6, 7));
    settle(&*log).await;
    // And can be archived again: versions 5 and 6 move, 7 stays.
    let second = archive::archive_streams(&*log, &[stream(0)], None)
        .await
        .unwrap();
    assert_eq!(second.events, 2);
    let whole = kefu_eventlog::read_whole_stream(&*log, &stream(0))
        .await
        .unwrap();
    assert_eq!(
        whole.iter().map(|e| e.version).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    assert_eq!(whole[..6], before.1[0][..]);
    assert_eq!(archive::recover(&*log).await.unwrap(), Some(0));
}

async fn a_crash_at_any_step_loses_nothing<S: Store>(store: S) {
    let log = store.open().await;
    let correlations = history(&*log).await;
    let before = snapshot(&*log, &correlations).await;
    let mut moved = 0;
    for (s, point) in [
        CrashPoint::AfterDataFile,
        CrashPoint::AfterPendingEntry,
        CrashPoint::AfterHotDelete,
    ]
    .into_iter()
    .enumerate()
    {
        let crashed = archive::archive_streams(&*log, &[stream(s)], Some(point)).await;
        assert!(crashed.is_err(), "{point:?}");
        // Between the crash and the next run, readers (here a fresh process) miss nothing.
        let reader = store.open().await;
        assert_eq!(snapshot(&*reader, &correlations).await, before, "{point:?}");
        // The next run finishes or cleans up, then does its own batch.
        let next = store.open().await;
        let done = archive::archive_streams(&*next, &[stream(s)], None)
            .await
            .unwrap();
        let pending = next.archive().unwrap().entries().unwrap();
        assert!(
            pending.iter().all(|(_, p)| !p),
            "{point:?}: nothing left pending"
        );
        moved += done.events;
        // A pending entry is finished by recovery (delete, or only the promotion); a data
        // file without an entry is dropped and the batch moved anew.
        let recovered = usize::from(point != CrashPoint::AfterDataFile);
        assert_eq!(done.recovered, recovered, "{point:?}");
        assert_eq!(snapshot(&*next, &correlations).await, before, "{point:?}");
    }
    // Each event archived once.
    let entries = log.archive().unwrap().entries().unwrap();
    let archived: u64 = entries.iter().map(|(e, _)| e.events).sum();
    assert_eq!(archived, 15);
    assert_eq!(
        moved, 5,
        "the interrupted pending batches were finished, not moved again"
    );
    // No stray files: one data file per entry.
    let files = std::fs::read_dir(store.archive_dir().join("archive"))
        .unwrap()
        .filter(|f| {
            f.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".jsonl.gz")
        })
        .count();
    assert_eq!(files, entries.len());
}

async fn a_damaged_file_is_named<S: Store>(store: S) {
    let log = store.open().await;
    history(&*log).await;
    let moved = archive::archive_streams(&*log, &[stream(1)], None)
        .await
        .unwrap();
    let name = moved.file.unwrap();
    let path = store.archive_dir().join("archive").join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let reader = store.open().await;
    for result in [
        kefu_eventlog::read_whole_stream(&*reader, &stream(1)).await,
        reader.read_all(Position::START, 100).await,
    ] {
        match result {
            Err(LogError::Archive { path, reason }) => {
                assert!(path.ends_with(&name), "{path}");
                assert!(reason.contains("SHA-256"), "{reason}");
            }
            other => panic!("expected a damaged archive, got {other:?}"),
        }
    }
    assert!(matches!(
        reader.archive().unwrap().verify().await,
        Err(LogError::Archive { .. })
    ));
    // A missing file is named too.
    std::fs::remove_file(&path).unwrap();
    let reader = store.open().await;
    match kefu_eventlog::read_whole_stream(&*reader, &stream(1)).await {
        Err(LogError::Archive { path, reason }) => {
            assert!(path.ends_with(&name), "{path}");
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("expected a missing archive file, got {other:?}"),
    }
    // So is an archive directory that is not there at all: the hot store's registry names
    // the batch it lacks.
    std::fs::rename(
        store.archive_dir().join("archive"),
        store.archive_dir().join("elsewhere"),
    )
    .unwrap();
    let reader = store.open().await;
    names_the_batch(
        kefu_eventlog::read_whole_stream(&*reader, &stream(1)).await,
        name.strip_suffix(".jsonl.gz").unwrap(),
        "no archive directory",
    );
}

async fn two_archivers_move_each_event_once<S: Store>(store: S) {
    let log = store.open().await;
    let correlations = history(&*log).await;
    let before = snapshot(&*log, &correlations).await;
    let (a, b) = (store.open().await, store.open().await);
    let all: Vec<StreamId> = (0..4).map(stream).collect();
    for _ in 0..3 {
        let (x, y) = tokio::join!(
            archive::archive_streams(&*a, &all, None),
            archive::archive_streams(&*b, &all, None)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert!(x.locked || y.locked || x.events + y.events == 0);
    }
    let entries = log.archive().unwrap().entries().unwrap();
    let archived: u64 = entries.iter().map(|(e, _)| e.events).sum();
    assert_eq!(archived, 20, "each of the 20 events archived once");
    assert_eq!(snapshot(&*log, &correlations).await, before);
}

/// Asserts `result` is the typed archive error naming the batch `name`.
fn names_the_batch<T: std::fmt::Debug>(result: Result<T, LogError>, name: &str, what: &str) {
    match result {
        Err(LogError::Archive { path, reason }) => {
            assert!(
                path.ends_with(&format!("{name}.jsonl.gz")),
                "{what}: {path}"
            );
            assert!(reason.contains(name), "{what}: {reason}");
            assert!(
                reason.contains("same archive directory"),
                "{what}: {reason}"
            );
        }
        other => panic!("{what}: expected the missing batch {name} named, got {other:?}"),
    }
}

async fn another_host_without_the_batch_fails_loudly<S: Store>(store: S) {
    // Host A archives two streams.
    let host_a = store.open().await;
    let correlations = history(&*host_a).await;
    let before = snapshot(&*host_a, &correlations).await;
    let moved = archive::archive_streams(&*host_a, &[stream(0), stream(2)], None)
        .await
        .unwrap();
    let name = moved
        .file
        .as_deref()
        .unwrap()
        .strip_suffix(".jsonl.gz")
        .unwrap()
        .to_owned();
    let entries = host_a.archive().unwrap().entries().unwrap();
    let last = entries[0].0.last_position;
    // Host B reads the same store through an empty archive directory, or none at all.
    let elsewhere = tempfile::tempdir().unwrap();
    for dir in [Some(elsewhere.path().join("archive")), None] {
        let host_b = store.open_at(dir.clone()).await;
        let what = format!("archive {dir:?}");
        for page in [1000, 3] {
            names_the_batch(host_b.read_all(Position::START, page).await, &name, &what);
        }
        // A page that starts above the batch (a live subscriber) is whole.
        let above: Vec<RecordedEvent> = before
            .0
            .iter()
            .filter(|e| e.position > last)
            .cloned()
            .collect();
        assert_eq!(
            host_b.read_all(last.next(), 1000).await.unwrap(),
            above,
            "{what}"
        );
        names_the_batch(host_b.read_correlation(correlations[0]).await, &name, &what);
        names_the_batch(
            kefu_eventlog::read_whole_stream(&*host_b, &stream(0)).await,
            &name,
            &what,
        );
        names_the_batch(host_b.read_stream(&stream(2), 1, 2).await, &name, &what);
        names_the_batch(archive::verify_store(&*host_b).await, &name, &what);
        // A stream that was not archived reads whole.
        assert_eq!(
            kefu_eventlog::read_whole_stream(&*host_b, &stream(1))
                .await
                .unwrap(),
            before.1[1]
        );
    }
    // An archive whose entry for the batch names another file checksum is not the one the
    // hot store registered.
    let copy = tempfile::tempdir().unwrap();
    let from = store.archive_dir().join("archive");
    let to = copy.path().join("archive");
    std::fs::create_dir_all(to.join("manifest")).unwrap();
    std::fs::copy(
        from.join(format!("{name}.jsonl.gz")),
        to.join(format!("{name}.jsonl.gz")),
    )
    .unwrap();
    let entry_path = format!("manifest/{name}.json");
    let mut entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(from.join(&entry_path)).unwrap()).unwrap();
    entry["sha256"] = json!("0".repeat(64));
    std::fs::write(to.join(&entry_path), serde_json::to_vec(&entry).unwrap()).unwrap();
    let host_c = store.open_at(Some(to)).await;
    match host_c.read_correlation(correlations[0]).await {
        Err(LogError::Archive { reason, .. }) => {
            assert!(
                reason.contains(&name) && reason.contains("SHA-256"),
                "{reason}"
            )
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    // With the shared directory, a fresh process reads everything.
    let host_a2 = store.open().await;
    assert_eq!(snapshot(&*host_a2, &correlations).await, before);
    assert_eq!(archive::verify_store(&*host_a2).await.unwrap().len(), 1);
}

async fn a_batch_from_before_the_registry_is_registered_by_recovery<S: Store>(store: S) {
    let host_a = store.open().await;
    let correlations = history(&*host_a).await;
    let before = snapshot(&*host_a, &correlations).await;
    let moved = archive::archive_streams(&*host_a, &[stream(0)], None)
        .await
        .unwrap();
    let name = moved
        .file
        .as_deref()
        .unwrap()
        .strip_suffix(".jsonl.gz")
        .unwrap()
        .to_owned();
    store.forget_registry().await;
    // Unregistered, the batch is invisible to a host without it: the hazard itself.
    let elsewhere = tempfile::tempdir().unwrap();
    let host_b = store.open_at(Some(elsewhere.path().join("archive"))).await;
    assert_eq!(
        read_all(&*host_b, 1000).await.len() + 5,
        before.0.len(),
        "the setup hides the batch"
    );
    // Recovery (before every batch, or `kefu archive recover`) registers it, once.
    assert_eq!(archive::recover(&*host_a).await.unwrap(), Some(0));
    assert_eq!(archive::recover(&*host_a).await.unwrap(), Some(0));
    let registry = host_a.registered().await.unwrap();
    assert_eq!(
        registry.batches.iter().map(|b| &b.name).collect::<Vec<_>>(),
        vec![&name]
    );
    let host_b = store.open_at(Some(elsewhere.path().join("archive"))).await;
    names_the_batch(
        host_b.read_all(Position::START, 1000).await,
        &name,
        "host B",
    );
    assert_eq!(snapshot(&*store.open().await, &correlations).await, before);
}

/// Each scenario on the embedded store and on PostgreSQL (a fresh schema, dropped after).
macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sqlite()).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(store) = super::postgres().await {
                        let schema = store.schema.clone();
                        super::$name(store).await;
                        super::pg::drop_schema(&schema).await;
                    }
                }
            )+
        }
    };
}

on_both!(
    archived_history_reads_like_the_hot_one,
    a_crash_at_any_step_loses_nothing,
    a_damaged_file_is_named,
    two_archivers_move_each_event_once,
    another_host_without_the_batch_fails_loudly,
    a_batch_from_before_the_registry_is_registered_by_recovery,
);

#[tokio::test]
async fn postgres_the_registry_migration_applies_to_a_v1_database() {
    if !pg::available().await {
        return;
    }
    // A database as the previous version left it: migration 1 only, with an event in it.
    let schema = pg::fresh_schema();
    let client = pg::client().await;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path = {schema};
             CREATE TABLE kefu_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );
             {}
             INSERT INTO kefu_migrations (version, name) VALUES (1, 'event log');
             INSERT INTO events (position, id, stream_id, version, event_type, schema_version,
                 payload, actor_kind, actor_id, correlation_id, causation_id)
             VALUES (pg_current_xact_id()::text::bigint << 16, gen_random_uuid(),
                 'conversation-9', 0, 'TestHappened', 1, '{{}}', 'customer', 'c-1',
                 gen_random_uuid(), gen_random_uuid());",
            include_str!("../src/postgres_v1.sql")
        ))
        .await
        .expect("a v1 database");
    let store = Postgres {
        schema: schema.clone(),
        dir: tempfile::tempdir().unwrap(),
    };
    // Two processes upgrade at once, and a third opens after.
    let (a, b) = tokio::join!(store.open(), store.open());
    let log = store.open().await;
    let versions: Vec<i32> = client
        .query(
            &format!("SELECT version FROM {schema}.kefu_migrations ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Every migration since, applied once each and in order (later ones are tested where
    // they are introduced; this test is about the registry reaching a v1 database).
    let latest = versions.len() as i32;
    assert!(latest >= 2, "{versions:?}");
    assert_eq!(versions, (1..=latest).collect::<Vec<_>>());
    // The migrations themselves are safe to run again.
    for sql in [
        include_str!("../src/postgres_v2.sql"),
        include_str!("../src/postgres_v3.sql"),
        include_str!("../src/postgres_v4.sql"),
        include_str!("../src/postgres_v5.sql"),
    ] {
        client
            .batch_execute(&format!("SET search_path = {schema}; {sql}"))
            .await
            .expect("a migration twice");
    }
    // The old event is still there, and archiving registers its batch.
    let old = StreamId::new("conversation-9").unwrap();
    assert_eq!(
        kefu_eventlog::read_whole_stream(&*log, &old)
            .await
            .unwrap()
            .len(),
        1
    );
    history(&*a).await;
    let moved = archive::archive_streams(&*b, &[stream(0)], None)
        .await
        .unwrap();
    assert_eq!(moved.events, 5);
    let registered: Vec<(String, i64)> = client
        .query(
            &format!("SELECT name, event_count FROM {schema}.kefu_archive_batches"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let name = moved
        .file
        .unwrap()
        .strip_suffix(".jsonl.gz")
        .unwrap()
        .to_owned();
    assert_eq!(registered, vec![(name, 5)]);
    pg::drop_schema(&schema).await;
}

#[tokio::test]
async fn sqlite_the_registry_migration_applies_to_a_v1_file() {
    let store = sqlite();
    // A file as the previous version left it: schema version 1, with events in it.
    let log = store.open().await;
    history(&*log).await;
    drop(log);
    let path = store.0.path().join("kefu.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE kefu_archive_batches; PRAGMA user_version = 1;")
            .unwrap();
    }
    let (a, b) = tokio::join!(store.open(), store.open());
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    // Brought up to date: the registry's migration (2) and any after it, as a new file is.
    let fresh = sqlite();
    drop(fresh.open().await);
    let current: i64 = rusqlite::Connection::open(fresh.0.path().join("kefu.db"))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(current >= 2, "user_version {current}");
    assert_eq!(version, current);
    let moved = archive::archive_streams(&*a, &[stream(0)], None)
        .await
        .unwrap();
    assert_eq!(moved.events, 5);
    let registered: Vec<(String, i64)> = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut stmt = conn
            .prepare("SELECT name, event_count FROM kefu_archive_batches")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let name = moved
        .file
        .unwrap()
        .strip_suffix(".jsonl.gz")
        .unwrap()
        .to_owned();
    assert_eq!(registered, vec![(name, 5)]);
    // The other handle sees the batch through the registry and the shared archive.
    assert_eq!(
        kefu_eventlog::read_whole_stream(&*b, &stream(0))
            .await
            .unwrap()
            .len(),
        6
    );
}
