//! The embedded backend: one SQLite file in WAL mode, the no-configuration default.
//!
//! Why SQLite: the embedded store has to need no server, survive `kill -9`, and let two `kefu`
//! processes on one machine (a server and `kefu log tail`) share the log. SQLite through rusqlite's
//! bundled build gives all three with one file, in WAL mode with `synchronous=FULL` (an
//! acknowledged append is durable), and is the most exercised embedded engine there is; the
//! pure-Rust key-value stores (sled, redb) would have meant writing indexes and multi-process
//! locking by hand.
//!
//! SQLite serializes writers, so positions are handed out in commit order and every read sees a
//! settled prefix of the log; nothing more is needed for gap-free subscriptions. Appends take
//! `BEGIN IMMEDIATE`, so writers serialize on the file lock, and positions (an `AUTOINCREMENT` key
//! taken under that lock) never commit out of order. Writes go through one connection behind a
//! mutex (other processes on the same file wait on SQLite's lock, up to the busy timeout); reads
//! use a small pool of connections, which WAL lets run beside the writer. The schema version lives
//! in `PRAGMA user_version`: version 2 added the archive's registry (`archive.rs`), version 3
//! rebuilt the table to drop the event id's `UNIQUE` (idempotency is per stream, `retry.rs`; SQLite
//! drops a column's `UNIQUE` no other way). The correlation index stays on the table: with one
//! writer there is no contention on it to save.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::watch;
use uuid::Uuid;

use crate::archive::{
    self, Archive, ArchiveEntry, ArchiveStore, ArchiverLock, RegisteredBatch, Registry,
    RegistryCache, StreamRange,
};
use crate::retry::{self, Admission, StoredAt};
use crate::storage::{self, Target};
use crate::{
    Actor, Appended, EventLog, ExpectedVersion, Limits, LogError, Metadata, NewEvent, Position,
    RecordedEvent, StreamId, from_i64, to_i64,
};

const BACKEND: &str = "sqlite";

/// The schema, one entry a version; `PRAGMA user_version` records how many are applied.
pub(crate) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    recorded_at    INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    actor_kind     TEXT    NOT NULL,
    actor_id       TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    causation_id   TEXT    NOT NULL,
    trace_id       TEXT,
    UNIQUE (stream_id, version)
);
CREATE INDEX events_by_correlation ON events (correlation_id, position);
"#,
    r#"
-- The archive's registry: one row per batch moved out, written with the delete (archive.rs).
CREATE TABLE IF NOT EXISTS kefu_archive_batches (
    seq            INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    first_position INTEGER NOT NULL,
    last_position  INTEGER NOT NULL,
    event_count    INTEGER NOT NULL,
    sha256         TEXT    NOT NULL,
    archived_at    INTEGER NOT NULL -- microseconds since the Unix epoch, UTC
);
"#,
    // Idempotency per stream (issue 20): event ids are no longer unique across the log, and
    // SQLite drops a column's UNIQUE only by rebuilding the table. Positions are copied, and
    // AUTOINCREMENT goes on from the highest (a stream's last event is never archived, so the
    // highest position ever given is still in the table).
    r#"
CREATE TABLE events_v3 (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    recorded_at    INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    actor_kind     TEXT    NOT NULL,
    actor_id       TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    causation_id   TEXT    NOT NULL,
    trace_id       TEXT,
    UNIQUE (stream_id, version)
);
INSERT INTO events_v3 SELECT position, id, stream_id, version, event_type, schema_version,
    payload, recorded_at, actor_kind, actor_id, correlation_id, causation_id, trace_id
    FROM events ORDER BY position;
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;
CREATE INDEX events_by_correlation ON events (correlation_id, position);
"#,
];

/// Hot events and archived ones (the registry's counts) in one statement, so a batch moving
/// meanwhile is counted once.
const COUNT_THROUGH: &str = "SELECT (SELECT count(*) FROM events WHERE position <= ?1) \
     + (SELECT coalesce(sum(event_count), 0) FROM kefu_archive_batches WHERE first_position <= ?1)";

const COLUMNS: &str = "position, id, stream_id, version, event_type, schema_version, payload, \
    recorded_at, actor_kind, actor_id, correlation_id, causation_id, trace_id";

#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file; its folder is created if missing.
    pub path: PathBuf,
    pub limits: Limits,
    /// How often a caught-up subscription looks for other processes' appends.
    pub poll_interval: Duration,
    /// How long a writer waits for another process holding the write lock.
    pub busy_timeout: Duration,
    /// Where archived events live (`archive.rs`); reads merge them with the file's.
    pub archive: Option<PathBuf>,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            limits: Limits::default(),
            poll_interval: Duration::from_millis(200),
            busy_timeout: Duration::from_secs(10),
            archive: None,
        }
    }
}

pub struct SqliteLog {
    config: SqliteConfig,
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    signal: watch::Sender<Position>,
    archive: Option<Arc<Archive>>,
    registry: RegistryCache,
}

impl SqliteLog {
    /// Opens (creating if needed) the log file and brings its schema up to date.
    pub async fn open(config: SqliteConfig) -> Result<Self, LogError> {
        config.limits.checked()?;
        let cfg = config.clone();
        let writer = blocking(move || {
            let opened = (|| -> Result<Connection, LogError> {
                if let Some(dir) = cfg.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        LogError::Config(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                let mut conn = connect(&cfg.path, cfg.busy_timeout)?;
                migrate(&mut conn)?;
                Ok(conn)
            })();
            // SQLite's words ("unable to open database file", "disk is full") name neither
            // the path nor the reason; the directory can tell.
            opened.map_err(|e| storage::explain(&cfg.path, Target::File, e))
        })
        .await?;
        let (signal, _) = watch::channel(Position::START);
        Ok(SqliteLog {
            archive: config.archive.clone().map(|d| Arc::new(Archive::new(d))),
            config,
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(Mutex::new(Vec::new())),
            signal,
            registry: RegistryCache::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Runs `f` on a pooled read connection on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let pool = self.readers.clone();
        let path = self.config.path.clone();
        let busy = self.config.busy_timeout;
        blocking(move || {
            let pooled = pool.lock().expect("reader pool poisoned").pop();
            let conn = match pooled {
                Some(c) => c,
                None => connect(&path, busy)?,
            };
            let out = f(&conn);
            pool.lock().expect("reader pool poisoned").push(conn);
            out
        })
        .await
    }

    /// The archive's registry as of `seq` or later (the highest sequence number a read saw;
    /// None: whatever is there now).
    async fn registry(&self, seq: Option<i64>) -> Result<Arc<Registry>, LogError> {
        let cached = self.registry.get();
        if seq.is_some_and(|s| s <= cached.seq) {
            return Ok(cached);
        }
        let above = cached.seq;
        let rows = self.read(move |c| registered_above(c, above)).await?;
        Ok(self.registry.extend(rows))
    }
}

/// The highest registry sequence number, read after a read of the hot store on the same
/// connection, so it is no older than what that read saw.
fn registry_seq(conn: &Connection) -> Result<i64, LogError> {
    conn.prepare_cached("SELECT coalesce(MAX(seq), 0) FROM kefu_archive_batches")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db_err)
}

fn registered_above(conn: &Connection, seq: i64) -> Result<Vec<(i64, RegisteredBatch)>, LogError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, name, first_position, last_position, event_count, sha256 \
             FROM kefu_archive_batches WHERE seq > ?1 ORDER BY seq",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![seq], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                RegisteredBatch {
                    name: r.get(1)?,
                    first_position: Position(from_i64(r.get(2)?)),
                    last_position: Position(from_i64(r.get(3)?)),
                    events: from_i64(r.get(4)?),
                    sha256: r.get(5)?,
                },
            ))
        })
        .map_err(db_err)?;
    rows.map(|r| r.map_err(db_err)).collect()
}

impl EventLog for SqliteLog {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn limits(&self) -> &Limits {
        &self.config.limits
    }

    async fn append_holding(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        hold: Duration,
    ) -> Result<Appended, LogError> {
        let payloads = self.config.limits.validate(&events)?;
        let writer = self.writer.clone();
        let stream = stream.clone();
        let appended = blocking(move || {
            let mut conn = writer.lock().expect("writer poisoned");
            append_tx(&mut conn, &stream, expected, &events, &payloads, hold)
        })
        .await?;
        crate::signal_appended(&self.signal, &appended);
        Ok(appended)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let name = stream.as_str().to_owned();
        let hot = self
            .read(move |c| {
                query_events(
                    c,
                    &format!(
                        "SELECT {COLUMNS} FROM events WHERE stream_id = ?1 AND version >= ?2 \
                         ORDER BY version LIMIT ?3"
                    ),
                    params![name, to_i64(from), to_i64(max as u64)],
                )
            })
            .await?;
        archive::merge_stream(
            self.archive.as_deref(),
            stream,
            from,
            max,
            hot,
            self.registry(None),
        )
        .await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>, LogError> {
        let stream = stream.as_str().to_owned();
        self.read(move |c| current_version(c, &stream)).await
    }

    async fn head(&self) -> Result<Option<Position>, LogError> {
        self.read(|c| {
            c.prepare_cached("SELECT MAX(position) FROM events")
                .and_then(|mut s| s.query_row([], |r| r.get::<_, Option<i64>>(0)))
                .map(|v| v.map(|p| Position(from_i64(p))))
                .map_err(db_err)
        })
        .await
    }

    async fn count_through(&self, through: Position) -> Result<Option<u64>, LogError> {
        let through = to_i64(through.0);
        self.read(move |c| {
            c.prepare_cached(COUNT_THROUGH)
                .and_then(|mut s| s.query_row([through], |r| r.get::<_, i64>(0)))
                .map(|n| Some(from_i64(n)))
                .map_err(db_err)
        })
        .await
    }

    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let (hot, seq) = self
            .read(move |c| {
                let hot = query_events(
                    c,
                    &format!(
                        "SELECT {COLUMNS} FROM events WHERE position >= ?1 ORDER BY position LIMIT ?2"
                    ),
                    params![to_i64(from.0), to_i64(max as u64)],
                )?;
                Ok((hot, registry_seq(c)?))
            })
            .await?;
        let registry = self.registry(Some(seq)).await?;
        archive::merge_all(self.archive.as_deref(), &registry, from, max, hot).await
    }

    async fn read_correlation(&self, correlation_id: Uuid) -> Result<Vec<RecordedEvent>, LogError> {
        let (hot, seq) = self
            .read(move |c| {
                let hot = query_events(
                    c,
                    &format!(
                        "SELECT {COLUMNS} FROM events WHERE correlation_id = ?1 ORDER BY position"
                    ),
                    params![correlation_id.to_string()],
                )?;
                Ok((hot, registry_seq(c)?))
            })
            .await?;
        let registry = self.registry(Some(seq)).await?;
        archive::merge_correlation(self.archive.as_deref(), &registry, correlation_id, hot).await
    }

    fn appended_signal(&self) -> watch::Receiver<Position> {
        self.signal.subscribe()
    }

    fn poll_interval(&self) -> Duration {
        self.config.poll_interval
    }
}

impl ArchiveStore for SqliteLog {
    fn archive(&self) -> Option<&Arc<Archive>> {
        self.archive.as_ref()
    }

    async fn count_hot(&self, ranges: &[StreamRange]) -> Result<u64, LogError> {
        let ranges = ranges.to_vec();
        self.read(move |c| count_ranges(c, &ranges)).await
    }

    async fn remove_archived(&self, entry: &ArchiveEntry) -> Result<u64, LogError> {
        let ranges = entry.streams.clone();
        let count = entry.events;
        let entry = entry.clone();
        let writer = self.writer.clone();
        blocking(move || {
            let mut conn = writer.lock().expect("writer poisoned");
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            let hot = count_ranges(&tx, &ranges)?;
            if hot == 0 {
                return Ok(0);
            }
            if hot != count {
                return Err(LogError::Corrupt(format!(
                    "an archived batch of {count} events has {hot} of them in the hot store; expected all or none"
                )));
            }
            let mut deleted = 0;
            for r in &ranges {
                // The stream's last event stays: it holds the stream's version.
                let last = current_version(&tx, r.stream.as_str())?;
                if last.is_none_or(|l| l <= r.last_version) {
                    return Err(LogError::Corrupt(format!(
                        "will not archive the last event of {}",
                        r.stream
                    )));
                }
                deleted += tx
                    .prepare_cached(
                        "DELETE FROM events WHERE stream_id = ?1 AND version BETWEEN ?2 AND ?3",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            r.stream.as_str(),
                            to_i64(r.first_version),
                            to_i64(r.last_version)
                        ])
                    })
                    .map_err(db_err)? as u64;
            }
            register(&tx, &entry, "INSERT")?;
            tx.commit().map_err(db_err)?;
            Ok(deleted)
        })
        .await
    }

    async fn register(&self, entry: &ArchiveEntry) -> Result<(), LogError> {
        let entry = entry.clone();
        let writer = self.writer.clone();
        blocking(move || {
            let conn = writer.lock().expect("writer poisoned");
            register(&conn, &entry, "INSERT OR IGNORE")
        })
        .await
    }

    async fn registered(&self) -> Result<Arc<Registry>, LogError> {
        self.registry(None).await
    }

    async fn try_lock_archiver(&self) -> Result<Option<ArchiverLock>, LogError> {
        match &self.archive {
            Some(a) => archive::file_lock(a),
            None => Err(LogError::Config(
                "this store has no archive directory".into(),
            )),
        }
    }
}

/// Adds `entry` to the registry (`insert`: the statement's verb). Its `seq` is one above the
/// highest, and SQLite serializes writers, so sequence numbers commit in order.
fn register(conn: &Connection, entry: &ArchiveEntry, insert: &str) -> Result<(), LogError> {
    conn.prepare_cached(&format!(
        "{insert} INTO kefu_archive_batches (name, first_position, last_position, \
         event_count, sha256, archived_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            entry.name(),
            to_i64(entry.first_position.0),
            to_i64(entry.last_position.0),
            to_i64(entry.events),
            entry.sha256,
            Utc::now().timestamp_micros(),
        ])
    })
    .map_err(db_err)?;
    Ok(())
}

fn count_ranges(conn: &Connection, ranges: &[StreamRange]) -> Result<u64, LogError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT count(*) FROM events WHERE stream_id = ?1 AND version BETWEEN ?2 AND ?3",
        )
        .map_err(db_err)?;
    let mut total = 0u64;
    for r in ranges {
        let n: i64 = stmt
            .query_row(
                params![
                    r.stream.as_str(),
                    to_i64(r.first_version),
                    to_i64(r.last_version)
                ],
                |row| row.get(0),
            )
            .map_err(db_err)?;
        total += from_i64(n);
    }
    Ok(total)
}

fn append_tx(
    conn: &mut Connection,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
    payloads: &[String],
    hold: Duration,
) -> Result<Appended, LogError> {
    // IMMEDIATE takes the write lock up front, so the version read below cannot go stale
    // before the insert, also against other processes on the same file.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    let current = current_version(&tx, stream.as_str())?;
    let slots = match retry::retry_slot(expected, current, events.len()) {
        Some(first) => {
            let mut read = tx
                .prepare_cached(
                    "SELECT id, version, position, event_type, payload FROM events \
                     WHERE stream_id = ?1 AND version BETWEEN ?2 AND ?3 ORDER BY version",
                )
                .map_err(db_err)?;
            let last = first + events.len() as u64 - 1;
            read.query_map(params![stream.as_str(), to_i64(first), to_i64(last)], |r| {
                let (id, payload): (String, String) = (r.get(0)?, r.get(4)?);
                Ok(StoredAt {
                    // An id that does not parse matches no batch event (nil is never
                    // one: event ids are UUIDv7).
                    id: id.parse().unwrap_or(Uuid::nil()),
                    version: from_i64(r.get(1)?),
                    position: Position(from_i64(r.get(2)?)),
                    event: serde_json::from_str(&payload)
                        .ok()
                        .map(|p| (r.get::<_, String>(3).unwrap_or_default(), p)),
                })
            })
            .map_err(db_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?
        }
        None => Vec::new(),
    };
    let first_version = match retry::admit(stream, expected, current, events, &slots)? {
        Admission::Replay(appended) => return Ok(appended),
        Admission::Write { first_version } => first_version,
    };
    let recorded_at = Utc::now().timestamp_micros();
    let mut positions = Vec::with_capacity(events.len());
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO events (id, stream_id, version, event_type, schema_version, payload, \
                 recorded_at, actor_kind, actor_id, correlation_id, causation_id, trace_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .map_err(db_err)?;
        for (i, (e, payload)) in events.iter().zip(payloads).enumerate() {
            insert
                .execute(params![
                    e.id.to_string(),
                    stream.as_str(),
                    to_i64(first_version + i as u64),
                    e.event_type,
                    e.schema_version,
                    payload,
                    recorded_at,
                    e.metadata.actor.kind.as_str(),
                    e.metadata.actor.id,
                    e.metadata.correlation_id.to_string(),
                    e.metadata.causation_id.to_string(),
                    e.metadata.trace_id,
                ])
                .map_err(db_err)?;
            positions.push(Position(from_i64(tx.last_insert_rowid())));
        }
    }
    if !hold.is_zero() {
        std::thread::sleep(hold);
    }
    tx.commit().map_err(db_err)?;
    Ok(Appended {
        first_version,
        last_version: first_version + events.len() as u64 - 1,
        first_position: positions[0],
        last_position: *positions.last().expect("batch is not empty"),
    })
}

fn current_version(conn: &Connection, stream: &str) -> Result<Option<u64>, LogError> {
    conn.prepare_cached("SELECT MAX(version) FROM events WHERE stream_id = ?1")
        .and_then(|mut s| s.query_row(params![stream], |r| r.get::<_, Option<i64>>(0)))
        .map(|v| v.map(from_i64))
        .map_err(db_err)
}

fn query_events(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RecordedEvent>, LogError> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let rows = stmt.query_map(params, raw_row).map_err(db_err)?;
    rows.map(|r| r.map_err(db_err).and_then(RawRow::into_event))
        .collect()
}

/// A row as stored, before its text columns are parsed back into typed values.
struct RawRow {
    position: i64,
    id: String,
    stream_id: String,
    version: i64,
    event_type: String,
    schema_version: u32,
    payload: String,
    recorded_at: i64,
    actor_kind: String,
    actor_id: String,
    correlation_id: String,
    causation_id: String,
    trace_id: Option<String>,
}

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        position: r.get(0)?,
        id: r.get(1)?,
        stream_id: r.get(2)?,
        version: r.get(3)?,
        event_type: r.get(4)?,
        schema_version: r.get(5)?,
        payload: r.get(6)?,
        recorded_at: r.get(7)?,
        actor_kind: r.get(8)?,
        actor_id: r.get(9)?,
        correlation_id: r.get(10)?,
        causation_id: r.get(11)?,
        trace_id: r.get(12)?,
    })
}

impl RawRow {
    fn into_event(self) -> Result<RecordedEvent, LogError> {
        let uuid = |s: &str| {
            Uuid::parse_str(s).map_err(|e| LogError::Corrupt(format!("bad uuid {s:?}: {e}")))
        };
        Ok(RecordedEvent {
            id: uuid(&self.id)?,
            stream_id: StreamId::new(self.stream_id)?,
            version: from_i64(self.version),
            position: Position(from_i64(self.position)),
            event_type: self.event_type,
            schema_version: self.schema_version,
            payload: serde_json::from_str(&self.payload)
                .map_err(|e| LogError::Corrupt(format!("payload is not JSON: {e}")))?,
            recorded_at: DateTime::<Utc>::from_timestamp_micros(self.recorded_at).ok_or_else(
                || LogError::Corrupt(format!("recorded_at {} out of range", self.recorded_at)),
            )?,
            metadata: Metadata {
                actor: Actor::new(self.actor_kind.parse()?, self.actor_id),
                correlation_id: uuid(&self.correlation_id)?,
                causation_id: uuid(&self.causation_id)?,
                trace_id: self.trace_id,
            },
        })
    }
}

fn connect(path: &Path, busy_timeout: Duration) -> Result<Connection, LogError> {
    // Not `Unavailable`: a file that cannot be opened stays so until someone acts; waiting
    // for it would hide the cause.
    let conn = Connection::open(path).map_err(|e| LogError::Backend {
        backend: BACKEND,
        message: format!("cannot open {}: {e}", path.display()),
    })?;
    conn.busy_timeout(busy_timeout).map_err(db_err)?;
    // FULL: a commit is on disk before append returns, also across power loss.
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .map_err(db_err)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), LogError> {
    // The write lock makes a second process opening the same file wait, then see the schema
    // already applied.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    let applied: usize = tx
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(db_err)? as usize;
    if applied > MIGRATIONS.len() {
        return Err(LogError::Config(format!(
            "the log file has schema version {applied}, newer than this build knows ({}); \
             upgrade kefu",
            MIGRATIONS.len()
        )));
    }
    for sql in &MIGRATIONS[applied..] {
        tx.execute_batch(sql).map_err(db_err)?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {}", MIGRATIONS.len()))
        .map_err(db_err)?;
    tx.commit().map_err(db_err)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LogError::Backend {
            backend: BACKEND,
            message: format!("blocking task failed: {e}"),
        })?
}

fn db_err(e: rusqlite::Error) -> LogError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            LogError::Unavailable {
                backend: BACKEND,
                message: e.to_string(),
            }
        }
        _ => LogError::Backend {
            backend: BACKEND,
            message: e.to_string(),
        },
    }
}
