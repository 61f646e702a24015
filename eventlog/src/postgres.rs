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
//! Appends to one stream hold a transaction-scoped advisory lock on the stream before anything
//! assigns the transaction its id (an advisory lock takes none), so a later append to the same
//! stream always gets a larger id: stream order and position order agree.
//!
//! The whole append is one call of the `kefu_append` SQL function: one round trip, no global
//! lock, and commits of different streams proceed (and group-commit) in parallel.
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
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|e| LogError::Config(format!("bad PostgreSQL URL: {e}")))?;
        if let Some(schema) = &config.schema {
            check_schema_name(schema)?;
            pg.options(format!("-c search_path={schema}"));
        }
        if pg.get_application_name().is_none() {
            pg.application_name("kefu");
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = Manager::from_config(pg, NoTls, manager_config);
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| LogError::Config(format!("cannot build the connection pool: {e}")))?;
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
        self.pool.get().await.map_err(|e| LogError::Unavailable {
            backend: BACKEND,
            message: e.to_string(),
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
        const SQL: &str = "SELECT first_version, last_version, first_position, last_position \
            FROM kefu_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
        let mut client = self.client().await?;
        let row = if hold.is_zero() {
            let stmt = client.prepare_cached(SQL).await.map_err(pg_err)?;
            client.query_one(&stmt, &params).await
        } else {
            let tx = client.transaction().await.map_err(pg_err)?;
            let stmt = tx.prepare_cached(SQL).await.map_err(pg_err)?;
            let row = tx.query_one(&stmt, &params).await;
            if row.is_ok() {
                tokio::time::sleep(hold).await;
                tx.commit().await.map_err(pg_err)?;
            }
            row
        }
        .map_err(|e| append_err(e, stream, expected))?;
        let appended = Appended {
            first_version: from_i64(row.get(0)),
            last_version: from_i64(row.get(1)),
            first_position: Position(from_i64(row.get(2))),
            last_position: Position(from_i64(row.get(3))),
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
fn append_err(e: tokio_postgres::Error, stream: &StreamId, expected: ExpectedVersion) -> LogError {
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
            // Two appends of the same ids to different streams raced past each other's checks.
            "23505" if db.constraint() == Some("events_id_key") => {
                return LogError::DuplicateEventId {
                    id: Uuid::nil(),
                    detail: "stored by a concurrent append to another stream".to_owned(),
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
