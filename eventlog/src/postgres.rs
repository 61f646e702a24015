//! The production backend: PostgreSQL through a deadpool of tokio-postgres connections.
//!
//! # Why subscriptions cannot skip an event
//!
//! A sequence-numbered events table has a hole: a transaction takes position 10, a second takes 11
//! and commits first, a reader sees 11, checkpoints past it, and 10 commits behind its back (Marten
//! issue 4953, Emmett PR 336). Here an event's position is derived from its transaction id instead:
//! `position = xid << 16 | index in batch` (so one transaction holds at most 65,536 events,
//! [`HARD_MAX_BATCH`]), and `read_all` returns only events below
//! `pg_snapshot_xmin(pg_current_snapshot()) << 16`: below the oldest transaction still running
//! anywhere in the cluster. Every transaction below `xmin` has ended, so its events are visible or
//! will never exist; every transaction that may still commit has an id `>= xmin`, so its events
//! land at positions above everything already returned. A reader bounded this way never sees a hole
//! that can later be filled.
//! `eventlog/tests/postgres.rs::a_reader_never_passes_an_open_transaction` holds a transaction open
//! and proves a reader waits for it; the contract suite's torture test (16 writers pausing at
//! random inside their transactions, 3 subscribers) missed hundreds of events per run with the
//! `xmin` bound removed, and misses none with it.
//!
//! Stream order and position order agree without a lock: an append reads the stream's version in
//! its statement's snapshot and only then gets its transaction id (at its first insert). An append
//! that writes version `v + 1` saw version `v` committed, so the writer of `v` got its id before
//! this one did; two appends racing for the same version collide on the `(stream_id, version)`
//! unique index and only one commits.
//!
//! The price: a transaction left open anywhere in the cluster holds back `xmin`, and with it what
//! subscribers see (never what they eventually receive). Keep `idle_in_transaction_session_timeout`
//! set on production servers. `EventLog::progress` names the session holding it back (the oldest
//! `backend_xid` in `pg_stat_activity`), which is how `kefu serve` reports a stall.
//!
//! # The append path
//!
//! An append is one round trip in the common case: one statement (`GROUP_APPEND`) that reads the
//! version, checks the expected version and inserts the batch. When that declines (wrong expected
//! version, or the ids are already stored: a client's retry) or collides with a concurrent append
//! on a unique index, the `kefu_append` SQL function (`JUDGED_APPEND`) judges the case under a
//! per-stream advisory lock and either acknowledges the retry or raises a typed error: `KF001`, a
//! conflict ([`LogError::WrongExpectedVersion`]), or `KF002` ([`LogError::DuplicateEventId`]). A
//! retry is the same events, not only the same ids: a stored id whose type or payload (compared as
//! `jsonb`, so key order does not matter) differs is `KF002` (migration 3; `retry.rs` judges the
//! same way for SQLite and KurrentDB), so a client reusing an id for another event learns it
//! instead of being told the first one was written. Retries are looked for where the batch would
//! be, in its own stream (idempotency is per stream): an `Any` member of a group whose ids are
//! among its stream's last events declines in `GROUP_APPEND` and is judged alone. A collision means
//! a competitor committed, so the judged retry sees what it wrote; after 32 collisions an `Any`
//! append gives up with `Unavailable` (an exact expectation gets a conflict). No global lock:
//! commits of different streams proceed in parallel.
//!
//! Group commit: a few appender tasks ([`PostgresConfig::append_concurrency`], 16 by default,
//! measured in BENCHMARKS.md) run the append statements; appends to distinct streams that arrive
//! while they are busy go together in the next statement, one transaction for all (at most 64
//! appends; a second member joins only while the group stays within 65,536 events and 8 MiB of
//! payload, so a group's positions stay below 2^16). Each member keeps its own expectation (a
//! member whose expectation fails writes nothing and is judged alone), and a statement that fails
//! as a whole (an id stored elsewhere, a collision) wrote nothing, so its members are retried one
//! by one: grouping never changes an append's outcome (`group_commit_keeps_each_appends_outcome`
//! proves it case by case), only how many transactions the server commits. One append is still all
//! in one transaction, which it may share with appends to other streams. A second append to a
//! stream already in the group stays queued behind it, in arrival order. Nothing waits for a group
//! to fill: with the appenders idle, an append goes out at once, alone.
//!
//! # The hot table's indexes
//!
//! `events` keeps the position (the primary key: ordered reads) and the unique
//! `(stream_id, version)` (optimistic concurrency, gapless versions), and nothing else, so an
//! append maintains two indexes (issue 20). Migration 4 (`postgres_v4.sql`) dropped the unique
//! event id in place, data kept
//! (`an_old_postgres_store_is_migrated_in_place_and_keeps_every_audit_answer` in
//! `projections/tests/audit.rs`). Migration 5 (`postgres_v5.sql`) moved the correlation index off
//! the hot table. Auditors read the audit read model, but two write-side recoveries read a
//! correlation and need their own request's events the moment they commit, which a read model that
//! trails the log cannot promise: the assigner resuming a seat it took before dying
//! (`kefu_desk::seats`, on every queued assignment) and an idempotency key settled after its owner
//! died (`api/src/graphql/idempotency.rs`). So `kefu_correlations` indexes the settled prefix after
//! the fact: a correlation read first indexes what has settled since the last one
//! (`kefu_index_correlations()`, one indexer at a time, the others skip), then reads the index
//! below `kefu_correlations_through.through` and scans the hot table above it by position, in one
//! snapshot. Nothing below `through` can still commit (it was the settled head when it was set), so
//! index plus tail is every event of the correlation
//! (`a_correlation_read_finds_an_event_committed_late_below_what_was_indexed` in
//! `eventlog/tests/postgres.rs`). The cost moved from every append to the reads, which are one per
//! assignment.
//!
//! # Migrations
//!
//! The schema is `postgres_v*.sql`, applied at start-up in one transaction under an advisory lock
//! and recorded in `kefu_migrations`: two processes starting at once, or one starting twice, apply
//! each migration exactly once. A database newer than the binary is refused.
//!
//! Subscribers in other processes are woken by `LISTEN`/`NOTIFY` (`wake.rs`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, TimeoutType, Timeouts,
};
use tokio::sync::{oneshot, watch};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::archive::{
    self, Archive, ArchiveEntry, ArchiveStore, ArchiverLock, RegisteredBatch, Registry,
    RegistryCache, StreamRange,
};
use crate::wake;
use crate::{
    Actor, Appended, EventLog, ExpectedVersion, HARD_MAX_BATCH, Limits, LogError, Metadata,
    NewEvent, Position, RecordedEvent, StreamId, from_i64, to_i64,
};

const BACKEND: &str = "postgres";

/// Key of the advisory lock that serializes migrations across processes.
const MIGRATION_LOCK: i64 = 0x6b65_6675_6d69_6772; // "kefumigr"

/// The schema, one entry a version, recorded in `kefu_migrations`.
pub(crate) const MIGRATIONS: &[(&str, &str)] = &[
    ("event log", include_str!("postgres_v1.sql")),
    ("archive registry", include_str!("postgres_v2.sql")),
    (
        "retries carry the same events",
        include_str!("postgres_v3.sql"),
    ),
    ("idempotency per stream", include_str!("postgres_v4.sql")),
    (
        "correlation index off the hot table",
        include_str!("postgres_v5.sql"),
    ),
];

/// The common append in one statement, for a group of appends to distinct streams at once:
/// read each stream's version, check its expectation, insert the events of those whose
/// expectation holds. A member whose expectation fails inserts nothing (the others still do)
/// and goes to [`JUDGED_APPEND`], and so does an `Any` member some of whose ids are among its
/// stream's last events (where a retry of it would be: idempotency is per stream); a
/// concurrent append of the same version fails the whole statement on the unique
/// `(stream_id, version)` index, and then each member goes its own way.
///
/// `$1`/`$2` are the members' streams and expected versions (`-1` any, `-2` no stream);
/// every event names its member (`mi`, 1-based) and its index in that member's batch (`k`,
/// 1-based). Events are laid out member by member, so within a stream positions grow with
/// versions.
const GROUP_APPEND: &str = "WITH b AS ( \
        SELECT * FROM unnest($3::int8[], $4::int8[], $5::uuid[], $6::text[], $7::int4[], \
            $8::text[], $9::text[], $10::text[], $11::uuid[], $12::uuid[], $13::text[]) \
        WITH ORDINALITY AS b(mi, k, id, t, s, p, ak, ai, c, cz, tr, ord)), \
    m AS ( \
        SELECT m.mi, m.stream, m.expected, \
            (SELECT max(e.version) FROM events e WHERE e.stream_id = m.stream) AS v \
        FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY AS m(stream, expected, mi)) \
    INSERT INTO events (position, id, stream_id, version, event_type, schema_version, payload, \
        actor_kind, actor_id, correlation_id, causation_id, trace_id) \
    SELECT (pg_current_xact_id()::text::bigint << 16) + b.ord - 1, b.id, m.stream, \
        coalesce(m.v, -1) + b.k, b.t, b.s, b.p::jsonb, b.ak, b.ai, b.c, b.cz, b.tr \
    FROM b JOIN m ON m.mi = b.mi \
    WHERE (m.expected = -2 AND m.v IS NULL) OR m.v = m.expected \
       OR (m.expected = -1 AND (m.v IS NULL OR NOT EXISTS ( \
            SELECT 1 FROM events e JOIN b r ON r.mi = m.mi AND r.id = e.id \
            WHERE e.stream_id = m.stream \
              AND e.version > m.v - (SELECT count(*) FROM b n WHERE n.mi = m.mi)))) \
    RETURNING stream_id, version, position";

/// The `kefu_append` function: under a per-stream lock, tells a client's retry (acknowledged)
/// from ids stored elsewhere (KF002) and from a wrong expected version (KF001).
const JUDGED_APPEND: &str = "SELECT first_version, last_version, first_position, last_position \
    FROM kefu_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// How many unique-index collisions with concurrent appends one append survives.
const MAX_COLLISIONS: u32 = 32;

const COLUMNS: &str = "position, id, stream_id, version, event_type, schema_version, payload, \
    recorded_at, actor_kind, actor_id, correlation_id, causation_id, trace_id";

#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// A libpq-style URL or key=value string, e.g. `postgres://postgres@127.0.0.1/kefu`.
    pub url: String,
    /// The schema to keep kefu's tables in (created if missing); `None` uses the server's
    /// search path, normally `public`.
    pub schema: Option<String>,
    pub pool_size: usize,
    /// How many append statements may be in flight at once. Appends that arrive while all are
    /// busy wait and go together in the next statement (group commit): fewer, larger
    /// transactions when the server is the bottleneck; below it, each append runs its own
    /// statement at once, as if there were no limit.
    pub append_concurrency: usize,
    pub limits: Limits,
    /// How often a caught-up subscription looks for other processes' appends.
    pub poll_interval: Duration,
    /// Where archived events live (`archive.rs`); reads merge them with the database's.
    /// Every process reading this log needs the same directory (shared storage when they
    /// run on several hosts).
    pub archive: Option<std::path::PathBuf>,
}

impl PostgresConfig {
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: None,
            pool_size: 16,
            append_concurrency: DEFAULT_APPEND_CONCURRENCY,
            limits: Limits::default(),
            poll_interval: Duration::from_millis(100),
            archive: None,
        }
    }

    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }
}

/// See [`PostgresConfig::append_concurrency`]; measured in BENCHMARKS.md.
pub const DEFAULT_APPEND_CONCURRENCY: usize = 16;

/// Most appends one group statement carries, and most payload bytes.
const MAX_GROUP: usize = 64;
const MAX_GROUP_BYTES: usize = 8 * 1024 * 1024;

pub struct PostgresLog {
    pool: Pool,
    config: PostgresConfig,
    /// Bumped by this log's appends and, through [`wake::listen`], by other processes'.
    signal: Arc<watch::Sender<Position>>,
    /// Bumped by this log's appends only: what [`wake::announce`] tells the others.
    announced: watch::Sender<Position>,
    /// This log among the processes sharing the database ([`wake::origin`]).
    origin: String,
    /// Whether the listener for other processes' appends was started (by the first subscriber).
    listening: std::sync::atomic::AtomicBool,
    appends: Arc<Appends>,
    archive: Option<Arc<Archive>>,
    registry: RegistryCache,
}

/// One validated append.
struct Pending {
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    payloads: Vec<String>,
    hold: Duration,
}

impl Pending {
    fn bytes(&self) -> usize {
        self.payloads.iter().map(String::len).sum()
    }
}

type Reply = oneshot::Sender<Result<Appended, LogError>>;

/// Group commit: at most `append_concurrency` append statements in flight (slots). An append
/// that finds a free slot runs its own statement at once, in its own task; one that finds
/// none queues, and whoever frees a slot next takes everything queued as one group.
struct Appends {
    pool: Pool,
    state: std::sync::Mutex<AppendState>,
}

struct AppendState {
    free_slots: usize,
    queue: VecDeque<(Pending, Reply)>,
}

/// A held slot. Dropping it (the append done, or its caller gone) hands the slot to the
/// queue if anything waits there, else frees it.
struct Slot(Arc<Appends>);

impl Drop for Slot {
    fn drop(&mut self) {
        let appends = self.0.clone();
        let mut state = appends.lock();
        if state.queue.is_empty() {
            state.free_slots += 1;
        } else {
            drop(state);
            tokio::spawn(drain(Slot(appends)));
        }
    }
}

impl Appends {
    fn lock(&self) -> std::sync::MutexGuard<'_, AppendState> {
        // Nothing panics while holding it; a poisoned lock still holds a consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn append(self: &Arc<Self>, pending: Pending) -> Result<Appended, LogError> {
        let answer = {
            let mut state = self.lock();
            if state.free_slots > 0 {
                state.free_slots -= 1;
                Err(pending)
            } else {
                let (reply, answer) = oneshot::channel();
                state.queue.push_back((pending, reply));
                Ok(answer)
            }
        };
        match answer {
            Ok(answer) => answer.await.map_err(|_| LogError::Unavailable {
                backend: BACKEND,
                message: "the append's group was dropped before it was answered: the runtime \
                          is shutting down"
                    .into(),
            })?,
            // A free slot: this append runs its own statement, now.
            Err(pending) => {
                let _slot = Slot(self.clone());
                append_one(&self.pool, &pending, false).await
            }
        }
    }

    /// Takes the next group off the queue: the waiting appends in arrival order, streams
    /// distinct (a second append to a stream stays queued, behind the first), within the
    /// group limits.
    fn take_group(&self) -> Vec<(Pending, Reply)> {
        let mut state = self.lock();
        let mut group: Vec<(Pending, Reply)> = Vec::new();
        let (mut events, mut bytes) = (0, 0);
        let mut kept = VecDeque::new();
        while let Some((pending, reply)) = state.queue.pop_front() {
            let fits = group.len() < MAX_GROUP
                && (group.is_empty()
                    || (events + pending.events.len() <= HARD_MAX_BATCH
                        && bytes + pending.bytes() <= MAX_GROUP_BYTES));
            if fits && !group.iter().any(|(g, _)| g.stream == pending.stream) {
                events += pending.events.len();
                bytes += pending.bytes();
                group.push((pending, reply));
            } else {
                kept.push_back((pending, reply));
            }
        }
        state.queue = kept;
        group
    }
}

/// Runs queued groups on a slot until the queue is empty, then frees the slot.
async fn drain(slot: Slot) {
    // Appends come in bursts (a group's writers are answered together and send their next
    // appends together): let the rest of the burst reach the queue before taking it, or the
    // group breaks into fragments. A yield, not a timer: nothing waits when nothing else is
    // ready to run.
    tokio::task::yield_now().await;
    loop {
        let group = slot.0.take_group();
        if group.is_empty() {
            return;
        }
        append_group(&slot.0.pool, group).await;
    }
}

impl PostgresLog {
    /// Connects, creates the schema if asked for, and applies pending migrations. Safe to run
    /// from several processes at once: migrations take a cluster-wide advisory lock.
    pub async fn open(config: PostgresConfig) -> Result<Self, LogError> {
        config.limits.checked()?;
        if config.append_concurrency == 0 {
            return Err(LogError::Config(
                "append_concurrency must be at least 1".into(),
            ));
        }
        let pool = connect_pool(
            &config.url,
            config.schema.as_deref(),
            // Every statement of the log is a keyed lookup or an append whose plan never
            // depends on its arguments, but the planner cannot tell that from array
            // parameters and would plan each append anew (most of its cost on the server).
            &["plan_cache_mode=force_generic_plan"],
            config.pool_size,
            "kefu",
        )?;
        let appends = Arc::new(Appends {
            pool: pool.clone(),
            state: std::sync::Mutex::new(AppendState {
                free_slots: config.append_concurrency,
                queue: VecDeque::new(),
            }),
        });
        let log = PostgresLog {
            pool,
            archive: config.archive.clone().map(|d| Arc::new(Archive::new(d))),
            config,
            signal: Arc::new(watch::channel(Position::START).0),
            announced: watch::channel(Position::START).0,
            origin: wake::origin(),
            listening: std::sync::atomic::AtomicBool::new(false),
            appends,
            registry: RegistryCache::default(),
        };
        log.migrate().await?;
        tokio::spawn(wake::announce(
            log.pool.clone(),
            log.announced.subscribe(),
            log.schema_name().to_owned(),
            log.origin.clone(),
        ));
        Ok(log)
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The schema the log's tables are in (the connection's default when none is configured).
    fn schema_name(&self) -> &str {
        self.config.schema.as_deref().unwrap_or("public")
    }

    /// Starts listening for other processes' appends ([`wake`]), once, when the first
    /// subscriber asks for the signal: a process that never follows the log needs no
    /// listening connection.
    fn listen_for_others(&self) {
        use std::sync::atomic::Ordering;
        if self.listening.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime, no subscriber that could be woken: the next caller tries again.
            self.listening.store(false, Ordering::Release);
            return;
        };
        let Ok(mut config) = parse_url(&self.config.url) else {
            return;
        };
        config.application_name("kefu-listen");
        runtime.spawn(wake::listen(
            config,
            Arc::downgrade(&self.signal),
            self.schema_name().to_owned(),
            self.origin.clone(),
        ));
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, LogError> {
        client(&self.pool).await
    }

    async fn migrate(&self) -> Result<(), LogError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        // Transaction-scoped, so a crash mid-migration releases it with the rollback.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_err)?;
        if let Some(schema) = &self.config.schema {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await
                .map_err(pg_err)?;
        }
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS kefu_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(pg_err)?;
        let applied: i64 = tx
            .query_one("SELECT count(*) FROM kefu_migrations", &[])
            .await
            .map_err(pg_err)?
            .get(0);
        let applied = applied as usize;
        if applied > MIGRATIONS.len() {
            return Err(LogError::Config(format!(
                "the database has schema version {applied}, newer than this build knows ({}); \
                 upgrade kefu",
                MIGRATIONS.len()
            )));
        }
        for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(applied) {
            tracing::info!(version = i + 1, name, "applying PostgreSQL migration");
            tx.batch_execute(sql).await.map_err(pg_err)?;
            tx.execute(
                "INSERT INTO kefu_migrations (version, name) VALUES ($1, $2)",
                &[&(i as i32 + 1), name],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)
    }

    async fn query_events(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(pg_err)?;
        let rows = client.query(&stmt, params).await.map_err(pg_err)?;
        rows.iter().map(row_to_event).collect()
    }

    /// Runs a [`with_registry_seq`] statement: the events, and the registry's highest
    /// sequence number in the same snapshot.
    async fn query_events_and_seq(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(Vec<RecordedEvent>, i64), LogError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(pg_err)?;
        let rows = client.query(&stmt, params).await.map_err(pg_err)?;
        let seq = rows.first().map_or(0, |r| r.get::<_, i64>(REGISTRY_SEQ));
        let events = rows
            .iter()
            .filter(|r| r.get::<_, Option<i64>>(0).is_some())
            .map(row_to_event)
            .collect::<Result<_, _>>()?;
        Ok((events, seq))
    }

    /// The archive's registry as of `seq` or later (the highest sequence number a read saw;
    /// None: whatever is there now).
    async fn registry(&self, seq: Option<i64>) -> Result<Arc<Registry>, LogError> {
        let cached = self.registry.get();
        if seq.is_some_and(|s| s <= cached.seq) {
            return Ok(cached);
        }
        let rows = self
            .client()
            .await?
            .query(
                "SELECT seq, name, first_position, last_position, event_count, sha256 \
                 FROM kefu_archive_batches WHERE seq > $1 ORDER BY seq",
                &[&cached.seq],
            )
            .await
            .map_err(pg_err)?;
        Ok(self.registry.extend(
            rows.iter()
                .map(|r| {
                    (
                        r.get(0),
                        RegisteredBatch {
                            name: r.get(1),
                            first_position: Position(from_i64(r.get(2))),
                            last_position: Position(from_i64(r.get(3))),
                            events: from_i64(r.get(4)),
                            sha256: r.get(5),
                        },
                    )
                })
                .collect(),
        ))
    }
}

/// Where [`with_registry_seq`] puts the registry's sequence number: after the event columns.
const REGISTRY_SEQ: usize = 13;

/// Wraps an events query so that it also returns the archive registry's highest sequence
/// number, read in the same snapshot (one round trip; one row with null events when the query
/// finds none).
fn with_registry_seq(events_query: &str) -> String {
    format!(
        "SELECT e.*, r.seq FROM (SELECT coalesce(max(seq), 0) AS seq FROM kefu_archive_batches) r \
         LEFT JOIN LATERAL ({events_query}) e ON true ORDER BY e.position"
    )
}

impl EventLog for PostgresLog {
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
        let appended = self
            .appends
            .append(Pending {
                stream: stream.clone(),
                expected,
                events,
                payloads,
                hold,
            })
            .await?;
        crate::signal_appended(&self.signal, &appended);
        crate::signal_appended(&self.announced, &appended);
        Ok(appended)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let hot = self
            .query_events(
                &format!(
                    "SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2 \
                     ORDER BY version LIMIT $3"
                ),
                &[&stream.as_str(), &to_i64(from), &to_i64(max as u64)],
            )
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
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT version FROM events WHERE stream_id = $1 ORDER BY version DESC LIMIT 1",
            )
            .await
            .map_err(pg_err)?;
        let row = client
            .query_opt(&stmt, &[&stream.as_str()])
            .await
            .map_err(pg_err)?;
        Ok(row.map(|r| from_i64(r.get(0))))
    }

    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, LogError> {
        // The settled prefix: see the module docs. The archive holds only events that were
        // in it when they moved, and the hot store is read first (`archive.rs`).
        let (hot, seq) = self
            .query_events_and_seq(
                &with_registry_seq(&format!(
                    "SELECT {COLUMNS} FROM events WHERE position >= $1 \
                     AND position < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 16) \
                     ORDER BY position LIMIT $2"
                )),
                &[&to_i64(from.0), &to_i64(max as u64)],
            )
            .await?;
        let registry = self.registry(Some(seq)).await?;
        archive::merge_all(self.archive.as_deref(), &registry, from, max, hot).await
    }

    async fn head(&self) -> Result<Option<Position>, LogError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT max(position) FROM events \
                 WHERE position < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 16)",
            )
            .await
            .map_err(pg_err)?;
        let row = client.query_one(&stmt, &[]).await.map_err(pg_err)?;
        Ok(row.get::<_, Option<i64>>(0).map(|p| Position(from_i64(p))))
    }

    async fn progress(&self) -> Result<crate::LogProgress, LogError> {
        let client = self.client().await?;
        // One statement, so both heads and the count come from one snapshot. The count is
        // bounded: past a million the figure no longer changes what anyone does.
        let stmt = client
            .prepare_cached(
                "SELECT \
                   (SELECT max(position) FROM events WHERE position < \
                      (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 16)), \
                   (SELECT max(position) FROM events), \
                   (SELECT count(*) FROM (SELECT 1 FROM events WHERE position >= \
                      (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 16) \
                      LIMIT 1000000) AS unsettled)",
            )
            .await
            .map_err(pg_err)?;
        let row = client.query_one(&stmt, &[]).await.map_err(pg_err)?;
        let position = |i: usize| row.get::<_, Option<i64>>(i).map(|p| Position(from_i64(p)));
        let mut progress = crate::LogProgress {
            settled: position(0),
            committed: position(1),
            unsettled: from_i64(row.get(2)),
            holder: None,
        };
        if progress.held_back() {
            // The oldest transaction that has an id is the one the snapshot's xmin names:
            // every event above the settled head waits for it to end.
            let stmt = client
                .prepare_cached(
                    "SELECT pid, datname::text, usename::text, application_name, state, xact_start \
                     FROM pg_stat_activity WHERE backend_xid IS NOT NULL \
                     ORDER BY age(backend_xid) DESC LIMIT 1",
                )
                .await
                .map_err(pg_err)?;
            progress.holder = client
                .query_opt(&stmt, &[])
                .await
                .map_err(pg_err)?
                .map(|r| crate::Holder {
                    pid: r.get(0),
                    database: r.get(1),
                    user: r.get(2),
                    application: r.get(3),
                    state: r.get(4),
                    transaction_start: r.get(5),
                });
        }
        Ok(progress)
    }

    async fn count_through(&self, through: Position) -> Result<Option<u64>, LogError> {
        let client = self.client().await?;
        // Hot events and archived ones (the registry's counts) in one snapshot, so a batch
        // moving meanwhile is counted once.
        let stmt = client
            .prepare_cached(
                "SELECT (SELECT count(*) FROM events WHERE position <= $1) \
                 + (SELECT coalesce(sum(event_count), 0)::bigint FROM kefu_archive_batches \
                    WHERE first_position <= $1)",
            )
            .await
            .map_err(pg_err)?;
        let row = client
            .query_one(&stmt, &[&to_i64(through.0)])
            .await
            .map_err(pg_err)?;
        Ok(Some(from_i64(row.get(0))))
    }

    async fn read_correlation(&self, correlation_id: Uuid) -> Result<Vec<RecordedEvent>, LogError> {
        // Index what has settled since the last read (see postgres_v5.sql), so the scan of
        // the unindexed tail below stays short; its own statement, so the read's snapshot
        // comes after it.
        self.client()
            .await?
            .execute("SELECT kefu_index_correlations()", &[])
            .await
            .map_err(pg_err)?;
        let (hot, seq) = self
            .query_events_and_seq(&with_registry_seq(&correlation_read()), &[&correlation_id])
            .await?;
        let registry = self.registry(Some(seq)).await?;
        archive::merge_correlation(self.archive.as_deref(), &registry, correlation_id, hot).await
    }

    fn appended_signal(&self) -> watch::Receiver<Position> {
        self.listen_for_others();
        self.signal.subscribe()
    }

    fn poll_interval(&self) -> Duration {
        self.config.poll_interval
    }
}

/// The archive's batches as the column arrays the statements below take.
fn range_columns(ranges: &[StreamRange]) -> (Vec<&str>, Vec<i64>, Vec<i64>) {
    (
        ranges.iter().map(|r| r.stream.as_str()).collect(),
        ranges.iter().map(|r| to_i64(r.first_version)).collect(),
        ranges.iter().map(|r| to_i64(r.last_version)).collect(),
    )
}

/// The events of one correlation ($1): the indexed ones below `through`, and the tail above
/// it scanned by position; one statement, so the index and its `through` come from one
/// snapshot and no event is counted twice or missed.
fn correlation_read() -> String {
    format!(
        "SELECT {COLUMNS} FROM events WHERE position IN \
             (SELECT c.position FROM kefu_correlations c WHERE c.correlation_id = $1) \
         UNION ALL \
         SELECT {COLUMNS} FROM events WHERE correlation_id = $1 \
            AND position >= (SELECT t.through FROM kefu_correlations_through t)"
    )
}

const COUNT_RANGES: &str = "SELECT count(*) FROM events e \
    JOIN unnest($1::text[], $2::int8[], $3::int8[]) AS r(s, a, b) \
      ON e.stream_id = r.s AND e.version BETWEEN r.a AND r.b";

/// Deletes archived events, never a stream's last (whose version the append path reads).
/// Appends to these streams only add versions above, so they never conflict with this.
/// Their correlation index entries go with them (the archive answers for them after).
const DELETE_RANGES: &str = "WITH gone AS (DELETE FROM events e \
    USING unnest($1::text[], $2::int8[], $3::int8[]) AS r(s, a, b) \
    WHERE e.stream_id = r.s AND e.version BETWEEN r.a AND r.b \
      AND e.version < (SELECT max(m.version) FROM events m WHERE m.stream_id = e.stream_id) \
    RETURNING e.correlation_id, e.position), \
  unindexed AS (DELETE FROM kefu_correlations c USING gone g \
    WHERE c.correlation_id = g.correlation_id AND c.position = g.position) \
  SELECT count(*) FROM gone";

impl ArchiveStore for PostgresLog {
    fn archive(&self) -> Option<&Arc<Archive>> {
        self.archive.as_ref()
    }

    async fn count_hot(&self, ranges: &[StreamRange]) -> Result<u64, LogError> {
        let (streams, firsts, lasts) = range_columns(ranges);
        let client = self.client().await?;
        let row = client
            .query_one(COUNT_RANGES, &[&streams, &firsts, &lasts])
            .await
            .map_err(pg_err)?;
        Ok(from_i64(row.get(0)))
    }

    async fn remove_archived(&self, entry: &ArchiveEntry) -> Result<u64, LogError> {
        let (streams, firsts, lasts) = range_columns(&entry.streams);
        let count = entry.events;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        // Registrations one at a time, so `seq` grows in commit order and a reader that saw
        // sequence number n has seen every batch registered before it (readers are not held).
        tx.batch_execute("LOCK TABLE kefu_archive_batches IN EXCLUSIVE MODE")
            .await
            .map_err(pg_err)?;
        let deleted = from_i64(
            tx.query_one(DELETE_RANGES, &[&streams, &firsts, &lasts])
                .await
                .map_err(pg_err)?
                .get(0),
        );
        if deleted != 0 && deleted != count {
            // Dropping the transaction rolls it back: nothing is deleted.
            return Err(LogError::Corrupt(format!(
                "an archived batch of {count} events found {deleted} of them deletable in the hot store; expected all or none"
            )));
        }
        if deleted != 0 {
            register(&tx, entry, "").await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(deleted)
    }

    async fn register(&self, entry: &ArchiveEntry) -> Result<(), LogError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        tx.batch_execute("LOCK TABLE kefu_archive_batches IN EXCLUSIVE MODE")
            .await
            .map_err(pg_err)?;
        register(&tx, entry, " ON CONFLICT (name) DO NOTHING").await?;
        tx.commit().await.map_err(pg_err)
    }

    async fn registered(&self) -> Result<Arc<Registry>, LogError> {
        self.registry(None).await
    }

    async fn try_lock_archiver(&self) -> Result<Option<ArchiverLock>, LogError> {
        if self.archive.is_none() {
            return Err(LogError::Config(
                "this store has no archive directory".into(),
            ));
        }
        // A session lock on a connection of its own, keyed by schema (tests share one
        // database). The guard closes that connection when dropped, which releases the lock
        // even if the holder never gets to say so.
        let client = self.client().await?;
        let got: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended('kefu archiver ' || current_schema(), 0))",
                &[],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        Ok(got.then(|| ArchiverLock::new(SessionLock(Some(client)))))
    }

    async fn release_archiver(&self, lock: ArchiverLock) {
        let Some(mut session) = lock.into_inner::<SessionLock>() else {
            return;
        };
        let Some(client) = session.0.take() else {
            return;
        };
        let unlocked = client
            .query_one(
                "SELECT pg_advisory_unlock(hashtextextended('kefu archiver ' || current_schema(), 0))",
                &[],
            )
            .await;
        match unlocked {
            // Unlocked: the connection may go back to the pool.
            Ok(row) if row.get::<_, bool>(0) => drop(client),
            _ => drop(deadpool_postgres::Object::take(client)),
        }
    }
}

/// Adds `entry` to the registry, in a transaction holding the registry's EXCLUSIVE lock.
async fn register(
    tx: &deadpool_postgres::Transaction<'_>,
    entry: &ArchiveEntry,
    on_conflict: &str,
) -> Result<(), LogError> {
    tx.execute(
        &format!(
            "INSERT INTO kefu_archive_batches \
             (name, first_position, last_position, event_count, sha256) \
             VALUES ($1, $2, $3, $4, $5){on_conflict}"
        ),
        &[
            &entry.name(),
            &to_i64(entry.first_position.0),
            &to_i64(entry.last_position.0),
            &to_i64(entry.events),
            &entry.sha256,
        ],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// A pooled connection holding a session-level advisory lock: never returned to the pool.
struct SessionLock(Option<deadpool_postgres::Object>);

impl Drop for SessionLock {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(deadpool_postgres::Object::take(object));
        }
    }
}

async fn client(pool: &Pool) -> Result<deadpool_postgres::Object, LogError> {
    pool.get().await.map_err(|e| match e {
        // Name the server's reason (no such database, role refused, ...), not just "db error".
        deadpool_postgres::PoolError::Backend(e) => pg_err(e),
        deadpool_postgres::PoolError::Timeout(TimeoutType::Wait) => LogError::Unavailable {
            backend: BACKEND,
            message: format!(
                "no free connection within {} s: all {} of the pool's connections are busy",
                POOL_WAIT.as_secs(),
                pool.status().max_size
            ),
        },
        deadpool_postgres::PoolError::Timeout(_) => {
            timed_out(pool.timeouts().create.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
        }
        e => LogError::Unavailable {
            backend: BACKEND,
            message: e.to_string(),
        },
    })
}

/// Writes a group in one statement; members it could not settle (a wrong expected version, a
/// client's retry, a collision with a concurrent append) are decided one by one.
async fn append_group(pool: &Pool, group: Vec<(Pending, Reply)>) {
    if let [(pending, _)] = &group[..] {
        let result = append_one(pool, pending, false).await;
        if let Some((_, reply)) = group.into_iter().next() {
            let _ = reply.send(result);
        }
        return;
    }
    let members: Vec<&Pending> = group.iter().map(|(p, _)| p).collect();
    let hold = members.iter().map(|p| p.hold).max().unwrap_or_default();
    let outcome = try_group(pool, &members, hold).await;
    if let Err(e) = &outcome {
        tracing::debug!(members = group.len(), error = ?e, "group append failed; appending one by one");
    }
    let mut outcome = outcome.ok();
    for (i, (pending, reply)) in group.into_iter().enumerate() {
        let settled = outcome.as_mut().and_then(|o| o[i].take());
        let result = match settled {
            Some(appended) => Ok(appended),
            // Declined: the judging function tells a retry from a conflict.
            None if outcome.is_some() => append_one(pool, &pending, true).await,
            // The statement failed as a whole, and wrote nothing.
            None => append_one(pool, &pending, false).await,
        };
        let _ = reply.send(result);
    }
}

/// One append on its own: [`GROUP_APPEND`] with one member, then [`JUDGED_APPEND`] when that
/// declines or collides (see the module docs). Each collision means a competitor committed,
/// so the next attempt sees what it wrote: the loop ends within a few rounds unless one
/// stream is hammered by many `Any` writers at once.
async fn append_one(pool: &Pool, pending: &Pending, judged: bool) -> Result<Appended, LogError> {
    let mut judged = judged;
    let mut attempt = 0;
    loop {
        let outcome = if judged {
            try_judged(pool, pending).await
        } else {
            try_group(pool, &[pending], pending.hold)
                .await
                .map(|mut o| o.pop().flatten())
        };
        match outcome {
            Ok(Some(appended)) => return Ok(appended),
            Ok(None) if !judged => judged = true,
            Ok(None) => {
                return Err(LogError::Corrupt(format!(
                    "kefu_append returned no row for {}",
                    pending.stream
                )));
            }
            Err(e) if unique_violation(&e).is_some() && attempt < MAX_COLLISIONS => {
                attempt += 1;
                judged = true;
                tracing::debug!(stream = %pending.stream, attempt, "append collided with a concurrent one; retrying");
            }
            Err(e) => return Err(append_err(e, &pending.stream, pending.expected)),
        }
    }
}

/// The events of some appends as the append statements' column arrays.
#[derive(Default)]
struct Columns<'a> {
    members: Vec<i64>,
    indexes: Vec<i64>,
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    schema_versions: Vec<i32>,
    payloads: Vec<&'a str>,
    actor_kinds: Vec<&'a str>,
    actor_ids: Vec<&'a str>,
    correlations: Vec<Uuid>,
    causations: Vec<Uuid>,
    traces: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn of(members: &[&'a Pending]) -> Self {
        let mut c = Columns::default();
        for (m, pending) in members.iter().enumerate() {
            for (k, (e, payload)) in pending.events.iter().zip(&pending.payloads).enumerate() {
                c.members.push(m as i64 + 1);
                c.indexes.push(k as i64 + 1);
                c.ids.push(e.id);
                c.types.push(&e.event_type);
                c.schema_versions
                    .push(i32::try_from(e.schema_version).unwrap_or(i32::MAX));
                c.payloads.push(payload);
                c.actor_kinds.push(e.metadata.actor.kind.as_str());
                c.actor_ids.push(&e.metadata.actor.id);
                c.correlations.push(e.metadata.correlation_id);
                c.causations.push(e.metadata.causation_id);
                c.traces.push(e.metadata.trace_id.as_deref());
            }
        }
        c
    }

    /// The per-event arrays both statements take, in their parameter order.
    fn events(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.ids,
            &self.types,
            &self.schema_versions,
            &self.payloads,
            &self.actor_kinds,
            &self.actor_ids,
            &self.correlations,
            &self.causations,
            &self.traces,
        ]
    }
}

fn expected_arg(expected: ExpectedVersion) -> i64 {
    match expected {
        ExpectedVersion::Any => -1,
        ExpectedVersion::NoStream => -2,
        ExpectedVersion::Exact(v) => to_i64(v),
    }
}

/// Runs [`GROUP_APPEND`] for appends to distinct streams: for each, what it appended, or
/// `None` where its expectation did not hold (it wrote nothing).
async fn try_group(
    pool: &Pool,
    members: &[&Pending],
    hold: Duration,
) -> Result<Vec<Option<Appended>>, AppendFailure> {
    let streams: Vec<&str> = members.iter().map(|p| p.stream.as_str()).collect();
    let expected: Vec<i64> = members.iter().map(|p| expected_arg(p.expected)).collect();
    let columns = Columns::of(members);
    let mut params: Vec<&(dyn ToSql + Sync)> =
        vec![&streams, &expected, &columns.members, &columns.indexes];
    params.extend(columns.events());
    let rows = run_append(pool, GROUP_APPEND, &params, hold).await?;
    let mut out: Vec<Option<Appended>> = vec![None; members.len()];
    let mut counts = vec![0usize; members.len()];
    for row in &rows {
        let stream: &str = row.get(0);
        let Some(m) = streams.iter().position(|s| *s == stream) else {
            return Err(AppendFailure::Log(LogError::Corrupt(format!(
                "the group append returned a row of {stream}, which it was not given"
            ))));
        };
        let (version, position) = (from_i64(row.get(1)), Position(from_i64(row.get(2))));
        counts[m] += 1;
        let a = out[m].get_or_insert(Appended {
            first_version: version,
            last_version: version,
            first_position: position,
            last_position: position,
        });
        a.first_version = a.first_version.min(version);
        a.last_version = a.last_version.max(version);
        a.first_position = a.first_position.min(position);
        a.last_position = a.last_position.max(position);
    }
    // A member is all in or all out; anything else would be a broken statement.
    for (m, pending) in members.iter().enumerate() {
        if out[m].is_some() && counts[m] != pending.events.len() {
            return Err(AppendFailure::Log(LogError::Corrupt(format!(
                "the group append wrote {} of {} events to {}",
                counts[m],
                pending.events.len(),
                pending.stream
            ))));
        }
    }
    Ok(out)
}

/// Runs [`JUDGED_APPEND`] for one append.
async fn try_judged(pool: &Pool, pending: &Pending) -> Result<Option<Appended>, AppendFailure> {
    let stream = pending.stream.as_str();
    let expected = expected_arg(pending.expected);
    let columns = Columns::of(&[pending]);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&stream, &expected];
    params.extend(columns.events());
    let rows = run_append(pool, JUDGED_APPEND, &params, pending.hold).await?;
    Ok(rows.first().map(|row| Appended {
        first_version: from_i64(row.get(0)),
        last_version: from_i64(row.get(1)),
        first_position: Position(from_i64(row.get(2))),
        last_position: Position(from_i64(row.get(3))),
    }))
}

/// Runs one append statement on its own connection: autocommit, or, with a `hold` (drills and
/// tests), in a transaction kept open that long before it commits what it wrote.
async fn run_append(
    pool: &Pool,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    hold: Duration,
) -> Result<Vec<tokio_postgres::Row>, AppendFailure> {
    let mut client = client(pool).await.map_err(AppendFailure::Log)?;
    if hold.is_zero() {
        let stmt = client.prepare_cached(sql).await?;
        return Ok(client.query(&stmt, params).await?);
    }
    let tx = client.transaction().await?;
    let stmt = tx.prepare_cached(sql).await?;
    let rows = tx.query(&stmt, params).await?;
    if !rows.is_empty() {
        tokio::time::sleep(hold).await;
        tx.commit().await?;
    }
    Ok(rows)
}

/// How long a connection may take to be set up (the socket, TLS-less startup, authentication)
/// when the URL does not say (`connect_timeout`, in seconds).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a pooled query waits for a free connection before it is answered "unavailable".
const POOL_WAIT: Duration = Duration::from_secs(30);

/// The URL as a connection config, with kefu's deadlines where the URL sets none: without them a
/// server that stops answering (a partition, a frozen host, a listener that never speaks)
/// leaves a connection, and whatever waits on it, hanging forever. `connect_timeout` (10 s);
/// TCP keepalives after 30 s idle, every 10 s, 3 probes; `tcp_user_timeout` 30 s (data left
/// unacknowledged that long fails the connection). A URL's own values win.
fn parse_url(url: &str) -> Result<tokio_postgres::Config, LogError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| LogError::Config(format!("bad PostgreSQL URL: {e}")))?;
    let names = |key: &str| url.contains(&format!("{key}="));
    if !names("connect_timeout") {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    if !names("keepalives_idle") {
        config.keepalives_idle(Duration::from_secs(30));
    }
    if !names("keepalives_interval") {
        config.keepalives_interval(Duration::from_secs(10));
    }
    if !names("keepalives_retries") {
        config.keepalives_retries(3);
    }
    if !names("tcp_user_timeout") {
        config.tcp_user_timeout(Duration::from_secs(30));
    }
    Ok(config)
}

/// The deadline for setting up a connection: tokio-postgres applies `connect_timeout` to the
/// socket only, so a server that accepts and then never answers the startup would hang.
fn connect_deadline(config: &tokio_postgres::Config) -> Duration {
    config
        .get_connect_timeout()
        .copied()
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
}

/// One connection outside the pool (the maintenance commands, the append listener), set up
/// within [`connect_deadline`].
pub(crate) async fn connect(
    config: &tokio_postgres::Config,
) -> Result<
    (
        tokio_postgres::Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    ),
    LogError,
> {
    let deadline = connect_deadline(config);
    match tokio::time::timeout(deadline, config.connect(NoTls)).await {
        Ok(connected) => connected.map_err(pg_err),
        Err(_) => Err(timed_out(deadline)),
    }
}

fn timed_out(deadline: Duration) -> LogError {
    LogError::Unavailable {
        backend: BACKEND,
        message: format!(
            "the server did not finish setting up a connection within {} s (connect_timeout)",
            deadline.as_secs_f64()
        ),
    }
}

/// Whether the database named in `url` exists; a server that does not answer is an error.
/// Commands that only read ask this instead of creating it.
pub async fn database_exists(url: &str) -> Result<bool, LogError> {
    let config = parse_url(url)?;
    let deadline = connect_deadline(&config);
    match tokio::time::timeout(deadline, config.connect(NoTls)).await {
        Err(_) => Err(timed_out(deadline)),
        Ok(Ok(_)) => Ok(true),
        Ok(Err(e)) if e.as_db_error().is_some_and(|d| d.code().code() == "3D000") => Ok(false),
        Ok(Err(e)) => Err(pg_err(e)),
    }
}

/// Creates the database named in `url` if the server has none by that name (connecting to the
/// `postgres` maintenance database to do it). Safe to call from several processes at once.
pub async fn ensure_database(url: &str) -> Result<(), LogError> {
    if database_exists(url).await? {
        return Ok(());
    }
    let config = parse_url(url)?;
    let name = config
        .get_dbname()
        .ok_or_else(|| LogError::Config("the PostgreSQL URL names no database".into()))?;
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(LogError::Config(format!(
            "will not create database {name:?}: use ASCII letters, digits and '_'"
        )));
    }
    let mut admin = config.clone();
    admin.dbname("postgres");
    let (client, conn) = connect(&admin).await?;
    let conn = tokio::spawn(conn);
    let created = client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await;
    drop(client);
    let _ = conn.await;
    match created {
        Ok(()) => {
            tracing::info!(database = name, "created PostgreSQL database");
            Ok(())
        }
        // Someone else created it first: "already exists", or a unique violation when both got
        // past the catalog check at once.
        Err(e)
            if e.as_db_error()
                .is_some_and(|d| matches!(d.code().code(), "42P04" | "23505")) =>
        {
            Ok(())
        }
        Err(e) => Err(pg_err(e)),
    }
}

fn row_to_event(row: &tokio_postgres::Row) -> Result<RecordedEvent, LogError> {
    let schema_version: i32 = row.get(5);
    Ok(RecordedEvent {
        position: Position(from_i64(row.get(0))),
        id: row.get(1),
        stream_id: StreamId::new(row.get::<_, String>(2))?,
        version: from_i64(row.get(3)),
        event_type: row.get(4),
        schema_version: u32::try_from(schema_version)
            .map_err(|_| LogError::Corrupt(format!("schema version {schema_version}")))?,
        payload: row.get(6),
        recorded_at: row.get(7),
        metadata: Metadata {
            actor: Actor::new(row.get::<_, &str>(8).parse()?, row.get::<_, String>(9)),
            correlation_id: row.get(10),
            causation_id: row.get(11),
            trace_id: row.get(12),
        },
    })
}

/// Maps the errors `kefu_append` raises on purpose to their typed forms.
/// Why one append statement failed: before reaching the server, or on it.
#[derive(Debug)]
enum AppendFailure {
    Log(LogError),
    Pg(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for AppendFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        AppendFailure::Pg(e)
    }
}

/// The unique constraint a concurrent append made this one violate.
fn unique_violation(e: &AppendFailure) -> Option<&str> {
    match e {
        AppendFailure::Pg(e) => e
            .as_db_error()
            .filter(|d| d.code().code() == "23505")
            .and_then(|d| d.constraint()),
        AppendFailure::Log(_) => None,
    }
}

fn append_err(e: AppendFailure, stream: &StreamId, expected: ExpectedVersion) -> LogError {
    let e = match e {
        AppendFailure::Log(e) => return e,
        AppendFailure::Pg(e) => e,
    };
    if let Some(db) = e.as_db_error() {
        match db.code().code() {
            "KF001" => {
                return LogError::WrongExpectedVersion {
                    stream: stream.clone(),
                    expected,
                    actual: db.detail().and_then(|d| d.parse().ok()),
                };
            }
            "KF002" => {
                let detail = db.detail().unwrap_or_default();
                let (id, rest) = detail.split_once(' ').unwrap_or((detail, ""));
                return LogError::DuplicateEventId {
                    id: id.parse().unwrap_or_default(),
                    detail: rest.to_owned(),
                };
            }
            // Still colliding after MAX_COLLISIONS rounds.
            "23505" if expected != ExpectedVersion::Any => {
                return LogError::WrongExpectedVersion {
                    stream: stream.clone(),
                    expected,
                    actual: None,
                };
            }
            "23505" => {
                return LogError::Unavailable {
                    backend: BACKEND,
                    message: format!("{stream} is taking too many concurrent appends; try again"),
                };
            }
            _ => {}
        }
    }
    pg_err(e)
}

/// A failure without the server's answer (refused, dropped, timed out) or with one saying it
/// cannot serve now is `Unavailable`: worth waiting out. Any other answer (wrong password, no
/// such database, a failed statement) is `Backend`, naming the server's reason rather than
/// tokio-postgres's bare "db error".
fn pg_err(e: tokio_postgres::Error) -> LogError {
    match e.as_db_error() {
        Some(db) if !e.is_closed() && !is_outage(db.code().code()) => LogError::Backend {
            backend: BACKEND,
            message: format!("{} ({})", db.message(), db.code().code()),
        },
        Some(db) => LogError::Unavailable {
            backend: BACKEND,
            message: format!("{} ({})", db.message(), db.code().code()),
        },
        // tokio-postgres's own words ("error connecting to server") leave out the reason
        // ("Connection refused"), which is in the source.
        None => LogError::Unavailable {
            backend: BACKEND,
            message: match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            },
        },
    }
}

/// SQLSTATEs of a server that is going away or not yet back: class 08 (connection
/// exception), 57P01-57P03 (shut down by an administrator, after a crash, or not accepting
/// connections yet), and 53300 (no connection slot free).
fn is_outage(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// A connection pool for `url` with `schema` (checked, not created) as the search path,
/// `settings` (`name=value` server settings) for every session, and `application` as the
/// application name unless the URL names one. The log and the read models open their pools
/// alike.
pub fn connect_pool(
    url: &str,
    schema: Option<&str>,
    settings: &[&str],
    size: usize,
    application: &str,
) -> Result<Pool, LogError> {
    let mut pg = parse_url(url)?;
    // Statements run on every start (`CREATE … IF NOT EXISTS`) raise NOTICEs, which
    // tokio-postgres logs as INFO lines on every command's stderr; warnings and errors still
    // come through. The URL's own options follow, so they can ask for more.
    let mut options = vec!["-c client_min_messages=warning".to_owned()];
    options.extend(pg.get_options().map(str::to_owned));
    if let Some(schema) = schema {
        check_schema_name(schema)?;
        options.push(format!("-c search_path={schema}"));
    }
    options.extend(settings.iter().map(|s| format!("-c {s}")));
    pg.options(options.join(" "));
    if pg.get_application_name().is_none() {
        pg.application_name(application);
    }
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    // A new connection (and a recycled one's check) gets the connect deadline; a query waits
    // for a free connection at most `POOL_WAIT`, so a pool whose connections all hang turns
    // into "unavailable" answers instead of requests that never end.
    let deadline = connect_deadline(&pg);
    let manager = Manager::from_config(pg, NoTls, manager_config);
    Pool::builder(manager)
        .max_size(size.max(1))
        .timeouts(Timeouts {
            wait: Some(POOL_WAIT),
            create: Some(deadline),
            recycle: Some(deadline),
        })
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| LogError::Config(format!("cannot build the connection pool: {e}")))
}

fn check_schema_name(schema: &str) -> Result<(), LogError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(LogError::Config(format!(
            "schema name {schema:?} must be 1-63 lower-case ASCII letters, digits or '_', not starting with a digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::is_outage;

    #[test]
    fn a_server_going_away_is_an_outage_and_a_refusal_is_not() {
        for code in ["08001", "08006", "57P01", "57P02", "57P03", "53300"] {
            assert!(is_outage(code), "{code}");
        }
        // Wrong password, no such role, no such database, no such table, unique violation.
        for code in ["28P01", "28000", "3D000", "42P01", "23505"] {
            assert!(!is_outage(code), "{code}");
        }
    }
}
