//! The production backend: PostgreSQL through a deadpool of tokio-postgres connections.
//!
//! # Why subscriptions cannot skip an event
//!
//! A sequence-numbered events table has a hole: a transaction takes position 10, a second takes
//! 11 and commits first, a reader sees 11, checkpoints past it, and 10 commits behind its back.
//! Here an event's position is derived from its transaction id instead:
//! `position = xid << 16 | index in batch`, and `read_all` returns only events whose
//! transaction id is below the `xmin` of the reading statement's snapshot (the oldest
//! transaction still running anywhere in the cluster). Every transaction below `xmin` has ended,
//! so its events are visible or will never exist; every transaction that may still commit
//! has an id `>= xmin`, so its events land at positions above everything already returned.
//! A reader bounded this way never sees a hole that can later be filled.
//!
//! Stream order and position order agree without a lock: an append reads the stream's
//! version in its statement's snapshot and only then gets its transaction id (at its first
//! insert). An append that writes version `v + 1` saw version `v` committed, so the writer of
//! `v` got its id before this one did; two appends racing for the same version collide on the
//! `(stream_id, version)` unique index and only one commits.
//!
//! An append is one round trip in the common case: one statement ([`FAST_APPEND`]) that reads
//! the version, checks the expected version and inserts the batch. When that declines (wrong
//! expected version, or the ids are already stored: a client's retry) or collides with a
//! concurrent append on a unique index, the `kefu_append` SQL function ([`JUDGED_APPEND`])
//! tells a retry, which it acknowledges, from a real conflict. No global lock: commits of
//! different streams proceed, and group-commit, in parallel.
//!
//! The price: a transaction left open anywhere in the cluster holds back `xmin`, and with it
//! what subscribers see (never what they eventually receive). Keep `idle_in_transaction_session_timeout`
//! set on production servers.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::watch;
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::{
    Actor, Appended, EventLog, ExpectedVersion, Limits, LogError, Metadata, NewEvent, Position,
    RecordedEvent, StreamId, from_i64, to_i64,
};

const BACKEND: &str = "postgres";

/// Key of the advisory lock that serializes migrations across processes.
const MIGRATION_LOCK: i64 = 0x6b65_6675_6d69_6772; // "kefumigr"

/// The schema, one entry a version, recorded in `kefu_migrations`.
const MIGRATIONS: &[(&str, &str)] = &[("event log", include_str!("postgres_v1.sql"))];

/// The common append in one statement: read the stream's version, check it, insert. It
/// declines (inserts no row) when the expected version does not hold, and a concurrent append
/// of the same version or ids fails it on a unique index; both cases go to [`JUDGED_APPEND`].
const FAST_APPEND: &str = "WITH cur AS (SELECT max(version) AS v FROM events WHERE stream_id = $1) \
    INSERT INTO events (position, id, stream_id, version, event_type, schema_version, payload, \
        actor_kind, actor_id, correlation_id, causation_id, trace_id) \
    SELECT (pg_current_xact_id()::text::bigint << 16) + b.ord - 1, b.id, $1, \
        coalesce(cur.v, -1) + b.ord, b.t, b.s, b.p::jsonb, b.ak, b.ai, b.c, b.k, b.tr \
    FROM cur, unnest($3::uuid[], $4::text[], $5::int4[], $6::text[], $7::text[], $8::text[], \
        $9::uuid[], $10::uuid[], $11::text[]) WITH ORDINALITY AS b(id, t, s, p, ak, ai, c, k, tr, ord) \
    WHERE $2::int8 = -1 OR ($2::int8 = -2 AND cur.v IS NULL) OR cur.v = $2::int8 \
    RETURNING version, position";

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
    pub limits: Limits,
    /// How often a caught-up subscription looks for other processes' appends.
    pub poll_interval: Duration,
}

impl PostgresConfig {
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: None,
            pool_size: 16,
            limits: Limits::default(),
            poll_interval: Duration::from_millis(100),
        }
    }

    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }
}

pub struct PostgresLog {
    pool: Pool,
    config: PostgresConfig,
    signal: watch::Sender<Position>,
}

impl PostgresLog {
    /// Connects, creates the schema if asked for, and applies pending migrations. Safe to run
    /// from several processes at once: migrations take a cluster-wide advisory lock.
    pub async fn open(config: PostgresConfig) -> Result<Self, LogError> {
        config.limits.checked()?;
        let pool = connect_pool(
            &config.url,
            config.schema.as_deref(),
            config.pool_size,
            "kefu",
        )?;
        let log = PostgresLog {
            pool,
            config,
            signal: watch::channel(Position::START).0,
        };
        log.migrate().await?;
        Ok(log)
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, LogError> {
        self.pool.get().await.map_err(|e| match e {
            // Name the server's reason (no such database, role refused, ...), not just "db error".
            deadpool_postgres::PoolError::Backend(e) => match e.as_db_error() {
                Some(db) => LogError::Unavailable {
                    backend: BACKEND,
                    message: format!("{} ({})", db.message(), db.code().code()),
                },
                None => pg_err(e),
            },
            e => LogError::Unavailable {
                backend: BACKEND,
                message: e.to_string(),
            },
        })
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

    /// Runs one append statement. `Ok(None)` when the fast path declined (wrong expected
    /// version, or ids already stored: the judging function must look), in which case nothing
    /// was written.
    async fn try_append(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        n: usize,
        hold: Duration,
    ) -> Result<Option<Appended>, AppendFailure> {
        let mut client = self.client().await.map_err(AppendFailure::Log)?;
        if hold.is_zero() {
            let stmt = client.prepare_cached(sql).await?;
            let rows = client.query(&stmt, params).await?;
            return Ok(appended_from(sql, &rows, n));
        }
        let tx = client.transaction().await?;
        let stmt = tx.prepare_cached(sql).await?;
        let rows = tx.query(&stmt, params).await?;
        let appended = appended_from(sql, &rows, n);
        if appended.is_some() {
            tokio::time::sleep(hold).await;
            tx.commit().await?;
        }
        Ok(appended)
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
        let expected_arg: i64 = match expected {
            ExpectedVersion::Any => -1,
            ExpectedVersion::NoStream => -2,
            ExpectedVersion::Exact(v) => to_i64(v),
        };
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let schema_versions: Vec<i32> = events
            .iter()
            .map(|e| i32::try_from(e.schema_version).unwrap_or(i32::MAX))
            .collect();
        let actor_kinds: Vec<&str> = events
            .iter()
            .map(|e| e.metadata.actor.kind.as_str())
            .collect();
        let actor_ids: Vec<&str> = events
            .iter()
            .map(|e| e.metadata.actor.id.as_str())
            .collect();
        let correlations: Vec<Uuid> = events.iter().map(|e| e.metadata.correlation_id).collect();
        let causations: Vec<Uuid> = events.iter().map(|e| e.metadata.causation_id).collect();
        let traces: Vec<Option<&str>> = events
            .iter()
            .map(|e| e.metadata.trace_id.as_deref())
            .collect();
        let stream_arg = stream.as_str();
        let params: [&(dyn ToSql + Sync); 11] = [
            &stream_arg,
            &expected_arg,
            &ids,
            &types,
            &schema_versions,
            &payloads,
            &actor_kinds,
            &actor_ids,
            &correlations,
            &causations,
            &traces,
        ];
        let n = events.len();
        // The fast path first; the judging function only when it declines or collides (see the
        // module docs). Each collision means a competitor committed, so the next attempt sees
        // what it wrote: the loop ends within a few rounds unless one stream is hammered by
        // many `Any` writers at once.
        let mut sql = FAST_APPEND;
        let mut attempt = 0;
        let appended = loop {
            match self.try_append(sql, &params, n, hold).await {
                Ok(Some(appended)) => break appended,
                Ok(None) if sql == FAST_APPEND => sql = JUDGED_APPEND,
                Ok(None) => {
                    return Err(LogError::Corrupt(format!(
                        "kefu_append returned no row for {stream}"
                    )));
                }
                Err(e) if unique_violation(&e).is_some() && attempt < MAX_COLLISIONS => {
                    attempt += 1;
                    sql = JUDGED_APPEND;
                    tracing::debug!(%stream, attempt, "append collided with a concurrent one; retrying");
                }
                Err(e) => return Err(append_err(e, stream, expected)),
            }
        };
        crate::signal_appended(&self.signal, &appended);
        Ok(appended)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.query_events(
            &format!(
                "SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2 \
                 ORDER BY version LIMIT $3"
            ),
            &[&stream.as_str(), &to_i64(from), &to_i64(max as u64)],
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
        // The settled prefix: see the module docs.
        self.query_events(
            &format!(
                "SELECT {COLUMNS} FROM events WHERE position >= $1 \
                 AND position < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 16) \
                 ORDER BY position LIMIT $2"
            ),
            &[&to_i64(from.0), &to_i64(max as u64)],
        )
        .await
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

    async fn read_correlation(&self, correlation_id: Uuid) -> Result<Vec<RecordedEvent>, LogError> {
        self.query_events(
            &format!("SELECT {COLUMNS} FROM events WHERE correlation_id = $1 ORDER BY position"),
            &[&correlation_id],
        )
        .await
    }

    fn appended_signal(&self) -> watch::Receiver<Position> {
        self.signal.subscribe()
    }

    fn poll_interval(&self) -> Duration {
        self.config.poll_interval
    }
}

/// Creates the database named in `url` if the server has none by that name (connecting to the
/// `postgres` maintenance database to do it). Safe to call from several processes at once.
pub async fn ensure_database(url: &str) -> Result<(), LogError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| LogError::Config(format!("bad PostgreSQL URL: {e}")))?;
    match config.connect(NoTls).await {
        Ok(_) => return Ok(()),
        Err(e) if e.as_db_error().is_some_and(|d| d.code().code() == "3D000") => {}
        Err(e) => return Err(pg_err(e)),
    }
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
    let (client, conn) = admin.connect(NoTls).await.map_err(pg_err)?;
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

/// What an append statement's rows say: the fast path returns one row per inserted event (none
/// when it declined), the judging function one summary row.
fn appended_from(sql: &str, rows: &[tokio_postgres::Row], n: usize) -> Option<Appended> {
    if sql == JUDGED_APPEND {
        let row = rows.first()?;
        return Some(Appended {
            first_version: from_i64(row.get(0)),
            last_version: from_i64(row.get(1)),
            first_position: Position(from_i64(row.get(2))),
            last_position: Position(from_i64(row.get(3))),
        });
    }
    if rows.len() != n {
        return None;
    }
    let versions = rows.iter().map(|r| from_i64(r.get(0)));
    let positions = rows.iter().map(|r| from_i64(r.get(1)));
    Some(Appended {
        first_version: versions.clone().min()?,
        last_version: versions.max()?,
        first_position: Position(positions.clone().min()?),
        last_position: Position(positions.max()?),
    })
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
            "23505" if db.constraint() == Some("events_id_key") => {
                return LogError::DuplicateEventId {
                    id: Uuid::nil(),
                    detail: "stored by a concurrent append to another stream".to_owned(),
                };
            }
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

fn pg_err(e: tokio_postgres::Error) -> LogError {
    if e.as_db_error().is_none() || e.is_closed() {
        LogError::Unavailable {
            backend: BACKEND,
            message: e.to_string(),
        }
    } else {
        let db = e.as_db_error().expect("checked");
        LogError::Backend {
            backend: BACKEND,
            message: format!("{} ({})", db.message(), db.code().code()),
        }
    }
}

/// A connection pool for `url` with `schema` (checked, not created) as the search path, and
/// `application` as the application name unless the URL names one. The log and the read
/// models open their pools alike.
pub fn connect_pool(
    url: &str,
    schema: Option<&str>,
    size: usize,
    application: &str,
) -> Result<Pool, LogError> {
    let mut pg: tokio_postgres::Config = url
        .parse()
        .map_err(|e| LogError::Config(format!("bad PostgreSQL URL: {e}")))?;
    if let Some(schema) = schema {
        check_schema_name(schema)?;
        pg.options(format!("-c search_path={schema}"));
    }
    if pg.get_application_name().is_none() {
        pg.application_name(application);
    }
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = Manager::from_config(pg, NoTls, manager_config);
    Pool::builder(manager)
        .max_size(size.max(1))
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
