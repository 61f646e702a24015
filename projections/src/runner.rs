//! Running projections: the [`Projection`] contract, generations and checkpoints, the live
//! loop that follows the log, and blue-green rebuilds.
//!
//! A projection's tables exist once per *generation* (`<projection>_g<n>_<table>`). The catalog
//! table `kefu_projections` records each generation's state (`live`, `building`, `as_of`,
//! `retired`) and its checkpoint: the position the next read starts at. Every batch is written
//! in one transaction that also moves the checkpoint, guarded by the checkpoint it started
//! from; so a crash loses the whole batch or none of it, and a second writer of the same
//! generation (another server, or a rebuild that swapped it out) makes the guard fail instead
//! of counting anything twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kefu_domain::Event;
use kefu_eventlog::{EventLog, Position, RecordedEvent, Subscription};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::error::ProjectionError;
use crate::rows::{KeyRequests, RowSet};
use crate::sql::{ColType, ReadStore, Stmt, StoreError, TableDef, Val};

/// Events per transaction while catching up.
pub const DEFAULT_BATCH: usize = 1000;
/// A `building` generation whose checkpoint has not moved for this long belongs to a rebuild
/// that died; the next rebuild drops it.
pub const ABANDONED_AFTER_MINUTES: i64 = 30;
/// Events per transaction in a rebuild: a conversation's events spread over thousands of
/// positions, and each batch writes each row it touched once, so larger batches write the
/// same hot rows fewer times.
pub const REBUILD_BATCH: usize = 10_000;

/// What a projection sees of one event.
#[derive(Clone, Copy)]
pub struct Envelope<'a> {
    /// The log's envelope; its payload was taken to decode it (see
    /// [`kefu_feed::decode_taking`]).
    pub event: &'a RecordedEvent,
    pub decoded: &'a Event,
}

impl Envelope<'_> {
    /// The entity id of the event's stream (the part after `<category>-`).
    pub fn entity(&self) -> &str {
        self.event.stream_id.entity_id()
    }
}

/// A read model built from the log.
///
/// `apply` must be a function of the events alone (no clock, no other store), so that a
/// rebuild from position 0 gives exactly what live processing gave.
pub trait Projection: Send + Sync + 'static {
    /// Short lower-case name, used in table names and on the command line.
    fn name(&self) -> &'static str;
    fn tables(&self) -> Vec<&'static TableDef>;
    /// Tables that generations built by an earlier kefu may still have (by their name in the
    /// generation, like [`TableDef::name`]): dropped with the generation, never written.
    fn former_tables(&self) -> &'static [&'static str] {
        &[]
    }
    /// Id columns whose names one of this projection's tables holds, for the analysts' views:
    /// (column, the table of names, its key column). A view of a table with such a column
    /// also shows `<column>_name`.
    fn names(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        &[]
    }

    /// Names the rows `apply` will read for this event.
    fn prefetch(&self, event: Envelope<'_>, want: &mut KeyRequests);
    fn apply(&mut self, event: Envelope<'_>, rows: &mut RowSet) -> Result<(), ProjectionError>;
}

/// Where a build stops: at a position (every event up to it), at a time (every event whose
/// time, by `clock`, is at or before it, wherever it lies in the log), or never (following the
/// log live).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Until {
    pub position: Option<Position>,
    pub time: Option<DateTime<Utc>>,
    /// Which time `time` bounds.
    pub clock: Clock,
}

/// The two times an event has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// When the log recorded it. Not in log order: appends from several writers land in
    /// commit order, their clocks a few milliseconds apart.
    #[default]
    Recorded,
    /// When it happened in the business (the event's own `at`: when the customer wrote,
    /// the agent answered, the chat closed), which is what "as of 12:00 on the 6th" means to
    /// an analyst. An event without one falls back to its recorded time.
    Business,
}

impl Clock {
    pub fn as_str(self) -> &'static str {
        match self {
            Clock::Recorded => "recorded",
            Clock::Business => "business",
        }
    }

    /// The event's time on this clock.
    pub fn of(self, e: &RecordedEvent) -> DateTime<Utc> {
        match self {
            Clock::Recorded => e.recorded_at,
            Clock::Business => kefu_feed::business_time(&e.payload).unwrap_or(e.recorded_at),
        }
    }
}

impl Until {
    /// Whether the event lies past the position bound: nothing after it is read.
    fn past(&self, e: &RecordedEvent) -> bool {
        self.position.is_some_and(|p| e.position > p)
    }

    fn admits(&self, e: &RecordedEvent) -> bool {
        !self.past(e) && self.time.is_none_or(|t| self.clock.of(e) <= t)
    }

    pub fn is_bounded(&self) -> bool {
        self.position.is_some() || self.time.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GenState {
    /// What queries read and the server keeps current.
    Live,
    /// A blue-green rebuild in progress.
    Building,
    /// Built up to a past position or time for analysts; never swapped in.
    AsOf,
    /// Swapped out; its tables are being dropped.
    Retired,
}

impl GenState {
    pub fn as_str(self) -> &'static str {
        match self {
            GenState::Live => "live",
            GenState::Building => "building",
            GenState::AsOf => "as_of",
            GenState::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Result<Self, ProjectionError> {
        Ok(match s {
            "live" => GenState::Live,
            "building" => GenState::Building,
            "as_of" => GenState::AsOf,
            "retired" => GenState::Retired,
            other => {
                return Err(ProjectionError::Bug(format!(
                    "unknown generation state {other:?}"
                )));
            }
        })
    }
}

/// One generation of one projection, as the catalog records it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Generation {
    pub projection: String,
    pub generation: i64,
    pub state: GenState,
    /// Where the next read starts: every event before it is applied.
    pub position: Position,
    pub events: i64,
    pub until: Until,
    pub updated_at: DateTime<Utc>,
}

impl Generation {
    pub fn table_prefix(&self) -> String {
        table_prefix(&self.projection, self.generation)
    }

    /// The stored name of one of this generation's tables.
    pub fn table(&self, def: &TableDef) -> String {
        format!("{}{}", self.table_prefix(), def.name)
    }
}

pub fn table_prefix(projection: &str, generation: i64) -> String {
    format!("{projection}_g{generation}_")
}

const CATALOG_COLUMNS: &str = "projection, generation, state, position, events, until_position, \
     until_time, updated_at, until_clock";

/// The generations of every projection in one store.
#[derive(Clone)]
pub struct Catalog {
    store: ReadStore,
}

impl Catalog {
    pub async fn open(store: ReadStore) -> Result<Self, ProjectionError> {
        // Two processes (or a server's tasks) creating the catalog at once: PostgreSQL's
        // `IF NOT EXISTS` does not cover the race, and the loser fails on a unique index of
        // the system catalog. By the time it tries again the winner has committed.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let created = store
                .transaction(vec![Stmt::new(
                    "CREATE TABLE IF NOT EXISTS kefu_projections (
                    projection     TEXT   NOT NULL,
                    generation     BIGINT NOT NULL,
                    state          TEXT   NOT NULL,
                    position       BIGINT NOT NULL,
                    events         BIGINT NOT NULL,
                    until_position BIGINT,
                    until_time     BIGINT,
                    updated_at     BIGINT NOT NULL,
                    PRIMARY KEY (projection, generation)
                )",
                    vec![],
                )])
                .await;
            match created {
                Ok(_) => {
                    Self::add_until_clock(&store).await?;
                    return Ok(Catalog { store });
                }
                Err(e) if attempt < 3 => {
                    tracing::debug!(error = %e, "creating the projection catalog raced another process; again");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Catalogs made before as-of builds could bound business time lack `until_clock` (read
    /// as `recorded`, which is what they were built by).
    async fn add_until_clock(store: &ReadStore) -> Result<(), ProjectionError> {
        let probe = "SELECT until_clock FROM kefu_projections WHERE 1 = 0";
        if store.query(probe, vec![]).await.is_ok() {
            return Ok(());
        }
        let added = store
            .transaction(vec![Stmt::new(
                "ALTER TABLE kefu_projections ADD COLUMN until_clock TEXT",
                vec![],
            )])
            .await;
        // Another process may have added it first.
        match added {
            Ok(()) => Ok(()),
            Err(e) => match store.query(probe, vec![]).await {
                Ok(_) => Ok(()),
                Err(_) => Err(e.into()),
            },
        }
    }

    pub fn store(&self) -> &ReadStore {
        &self.store
    }

    pub async fn list(&self) -> Result<Vec<Generation>, ProjectionError> {
        let rows = self
            .store
            .query(
                &format!(
                    "SELECT {CATALOG_COLUMNS} FROM kefu_projections ORDER BY projection, generation"
                ),
                vec![],
            )
            .await?;
        rows.into_iter().map(generation_of).collect()
    }

    pub async fn get(
        &self,
        projection: &str,
        generation: i64,
    ) -> Result<Generation, ProjectionError> {
        let rows = self
            .store
            .query(
                &format!(
                    "SELECT {CATALOG_COLUMNS} FROM kefu_projections \
                     WHERE projection = $1 AND generation = $2"
                ),
                vec![projection.into(), generation.into()],
            )
            .await?;
        rows.into_iter()
            .next()
            .map(generation_of)
            .transpose()?
            .ok_or_else(|| ProjectionError::UnknownGeneration {
                projection: projection.to_owned(),
                generation,
            })
    }

    /// The generation queries read, if the projection has been built.
    pub async fn live(&self, projection: &str) -> Result<Option<Generation>, ProjectionError> {
        let rows = self
            .store
            .query(
                &format!(
                    "SELECT {CATALOG_COLUMNS} FROM kefu_projections \
                     WHERE projection = $1 AND state = 'live'"
                ),
                vec![projection.into()],
            )
            .await?;
        rows.into_iter().next().map(generation_of).transpose()
    }

    /// The live generation, created empty (as generation 1) on first use.
    pub async fn attach_live(&self, p: &dyn Projection) -> Result<Generation, ProjectionError> {
        if let Some(live) = self.live(p.name()).await? {
            // A build of an older kefu may lack tables added since; creating is idempotent.
            self.ensure_tables(p, &live).await?;
            self.check_columns(p, &live).await?;
            // And its views, or views of fewer columns.
            self.refresh_views(p, &live).await?;
            return Ok(live);
        }
        match self.create(p, GenState::Live, Until::default()).await {
            Ok(g) => {
                self.refresh_views(p, &g).await?;
                Ok(g)
            }
            // Another process created it first.
            Err(ProjectionError::Store(StoreError::Backend { .. })) => self
                .live(p.name())
                .await?
                .ok_or_else(|| ProjectionError::NotBuilt {
                    projection: p.name().to_owned(),
                }),
            Err(e) => Err(e),
        }
    }

    /// A new, empty generation with its tables.
    pub async fn create(
        &self,
        p: &dyn Projection,
        state: GenState,
        until: Until,
    ) -> Result<Generation, ProjectionError> {
        let rows = self
            .store
            .query(
                "SELECT CAST(COALESCE(MAX(generation), 0) AS BIGINT) FROM kefu_projections \
                 WHERE projection = $1",
                vec![p.name().into()],
            )
            .await?;
        let next = rows
            .first()
            .and_then(|r| r.first())
            .and_then(Val::as_i64)
            .unwrap_or(0)
            + 1;
        let generation = Generation {
            projection: p.name().to_owned(),
            generation: next,
            state,
            position: Position::START,
            events: 0,
            until,
            updated_at: Utc::now(),
        };
        let mut stmts = vec![Stmt::new(
            format!(
                "INSERT INTO kefu_projections ({CATALOG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            vec![
                generation.projection.clone().into(),
                next.into(),
                state.as_str().into(),
                0i64.into(),
                0i64.into(),
                until.position.map(|p| p.0 as i64).into(),
                until.time.map(|t| t.timestamp_millis()).into(),
                generation.updated_at.timestamp_millis().into(),
                until.clock.as_str().into(),
            ],
        )];
        // A live generation is queried from the start; one being built gets its secondary
        // indexes once loaded (`ensure_tables`).
        stmts.extend(create_statements(p, &generation, state == GenState::Live));
        self.store.transaction(stmts).await?;
        Ok(generation)
    }

    /// Creates whatever of a generation's tables and indexes is missing: the secondary
    /// indexes of a generation built without them, or tables a newer kefu added.
    pub async fn ensure_tables(
        &self,
        p: &dyn Projection,
        g: &Generation,
    ) -> Result<(), ProjectionError> {
        self.store
            .transaction(create_statements(p, g, true))
            .await?;
        Ok(())
    }

    /// Refuses a generation whose tables lack a column this build writes (built by an older
    /// kefu): applying to it would fail on every batch, and what the column should hold for
    /// the events already applied is only known by replaying them.
    async fn check_columns(
        &self,
        p: &dyn Projection,
        g: &Generation,
    ) -> Result<(), ProjectionError> {
        for def in p.tables() {
            let table = g.table(def);
            let columns: Vec<&str> = def.column_names().collect();
            let probe = format!("SELECT {} FROM {table} WHERE 1 = 0", columns.join(", "));
            if let Err(e) = self.store.query(&probe, vec![]).await {
                return Err(ProjectionError::Outdated {
                    projection: p.name().to_owned(),
                    generation: g.generation,
                    table,
                    reason: e.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Points the analysts' views of `p` at generation `g`: one view per table, named
    /// `<projection>_<table>` (`stats_facts`), which a saved BI question can rely on across
    /// replays, with times as timestamps (RFC 3339 text on SQLite), booleans as booleans
    /// (0 or 1 on SQLite, which has none) and names beside the ids [`Projection::names`]
    /// names. PostgreSQL replaces each view in place, so views an analyst built on them
    /// survive; only a change of a column's type needs the view dropped first, which such a
    /// dependent view refuses, by name.
    pub async fn refresh_views(
        &self,
        p: &dyn Projection,
        g: &Generation,
    ) -> Result<(), ProjectionError> {
        let pg = self.store.is_postgres();
        for def in p.tables() {
            let view = format!("{}_{}", p.name(), def.name);
            let select = view_select(p, g, def, pg);
            if pg {
                let replaced = self
                    .store
                    .transaction(vec![Stmt::new(
                        format!("CREATE OR REPLACE VIEW {view} AS {select}"),
                        vec![],
                    )])
                    .await;
                if replaced.is_ok() {
                    continue;
                }
            }
            self.store
                .transaction(vec![
                    Stmt::new(format!("DROP VIEW IF EXISTS {view}"), vec![]),
                    Stmt::new(format!("CREATE VIEW {view} AS {select}"), vec![]),
                ])
                .await?;
        }
        Ok(())
    }

    /// Makes `generation` the live one and drops the generation it replaces.
    pub async fn swap(
        &self,
        p: &dyn Projection,
        generation: i64,
    ) -> Result<Option<Generation>, ProjectionError> {
        let old = self.live(p.name()).await?;
        let now = Utc::now().timestamp_millis();
        self.store
            .transaction(vec![
                Stmt::new(
                    "UPDATE kefu_projections SET state = 'retired', updated_at = $2 \
                     WHERE projection = $1 AND state = 'live'",
                    vec![p.name().into(), now.into()],
                ),
                Stmt::new(
                    "UPDATE kefu_projections SET state = 'live', updated_at = $3 \
                     WHERE projection = $1 AND generation = $2 AND state = 'building'",
                    vec![p.name().into(), generation.into(), now.into()],
                )
                .guarded(
                    1,
                    format!(
                        "generation {generation} of {} is no longer being built",
                        p.name()
                    ),
                ),
            ])
            .await?;
        // Before the old tables go: on PostgreSQL a view still reading them would refuse it.
        self.refresh_views(p, &self.get(p.name(), generation).await?)
            .await?;
        if let Some(old) = &old {
            self.drop_generation(p, old.generation).await?;
        }
        Ok(old)
    }

    /// Drops the `building` generations of `p` that have not moved for `idle`: rebuilds that
    /// died. A running rebuild moves its checkpoint every batch (seconds apart), so it is never
    /// mistaken for one. Returns the generations dropped.
    pub async fn drop_abandoned(
        &self,
        p: &dyn Projection,
        idle: chrono::Duration,
    ) -> Result<Vec<i64>, ProjectionError> {
        let cutoff = Utc::now() - idle;
        let mut dropped = Vec::new();
        for g in self.list().await? {
            if g.projection == p.name() && g.state == GenState::Building && g.updated_at < cutoff {
                warn!(
                    projection = p.name(),
                    generation = g.generation,
                    "dropping an abandoned rebuild"
                );
                self.drop_generation(p, g.generation).await?;
                dropped.push(g.generation);
            }
        }
        Ok(dropped)
    }

    /// Drops a generation's tables and its catalog row.
    pub async fn drop_generation(
        &self,
        p: &dyn Projection,
        generation: i64,
    ) -> Result<(), ProjectionError> {
        let prefix = table_prefix(p.name(), generation);
        let mut stmts: Vec<Stmt> = p
            .tables()
            .iter()
            .map(|def| def.name)
            .chain(p.former_tables().iter().copied())
            .map(|name| Stmt::new(format!("DROP TABLE IF EXISTS {prefix}{name}"), vec![]))
            .collect();
        stmts.push(Stmt::new(
            "DELETE FROM kefu_projections WHERE projection = $1 AND generation = $2",
            vec![p.name().into(), generation.into()],
        ));
        self.store.transaction(stmts).await?;
        Ok(())
    }
}

/// The `SELECT` of one table's analysts' view (see [`Catalog::refresh_views`]).
fn view_select(p: &dyn Projection, g: &Generation, def: &TableDef, pg: bool) -> String {
    let tables = p.tables();
    let mut cols = Vec::new();
    for (i, (name, ty, _)) in def.columns.iter().enumerate() {
        let c = format!("t.{name}");
        let expr = if def.bools[i] {
            if pg { format!("({c} <> 0)") } else { c }
        } else if *ty == ColType::Int && crate::sql::is_time_column(name) {
            if pg {
                format!("to_timestamp({c} / 1000.0)")
            } else {
                format!("strftime('%Y-%m-%dT%H:%M:%fZ', {c} / 1000.0, 'unixepoch')")
            }
        } else {
            c
        };
        cols.push(format!("{expr} AS {name}"));
        if let Some((_, table, key)) = p.names().iter().find(|(col, _, _)| col == name)
            && let Some(names) = tables.iter().find(|d| d.name == *table)
            && names.name != def.name
        {
            cols.push(format!(
                "(SELECT n.name FROM {} n WHERE n.{key} = t.{name}) AS {name}_name",
                g.table(names)
            ));
        }
    }
    format!("SELECT {} FROM {} t", cols.join(", "), g.table(def))
}

fn create_statements(p: &dyn Projection, g: &Generation, indexes: bool) -> Vec<Stmt> {
    let mut out = Vec::new();
    for def in p.tables() {
        out.push(Stmt::new(def.create_sql(&g.table(def)), vec![]));
        if indexes {
            out.extend(
                def.index_sql(&g.table(def))
                    .into_iter()
                    .map(|sql| Stmt::new(sql, vec![])),
            );
        }
    }
    out
}

fn generation_of(row: Vec<Val>) -> Result<Generation, ProjectionError> {
    let bad = || ProjectionError::Bug("malformed kefu_projections row".into());
    let mut it = row.into_iter();
    let mut next = || it.next().ok_or_else(bad);
    let projection = next()?.as_str().ok_or_else(bad)?.to_owned();
    let generation = next()?.as_i64().ok_or_else(bad)?;
    let state = GenState::parse(next()?.as_str().ok_or_else(bad)?)?;
    let position = Position(next()?.as_i64().ok_or_else(bad)?.max(0) as u64);
    let events = next()?.as_i64().ok_or_else(bad)?;
    let until_position = next()?.as_i64().map(|p| Position(p.max(0) as u64));
    let until_time = next()?
        .as_i64()
        .and_then(DateTime::<Utc>::from_timestamp_millis);
    let updated_at = next()?
        .as_i64()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .ok_or_else(bad)?;
    let clock = match next()?.as_str() {
        Some("business") => Clock::Business,
        Some("recorded") | None => Clock::Recorded,
        Some(_) => return Err(bad()),
    };
    Ok(Generation {
        projection,
        generation,
        state,
        position,
        events,
        until: Until {
            position: until_position,
            time: until_time,
            clock,
        },
        updated_at,
    })
}

/// One projection generation being fed events.
pub struct Member {
    projection: Box<dyn Projection>,
    generation: Generation,
    rows: RowSet,
    done: bool,
    /// The previous batch's transaction, still in flight while this member applies the next
    /// batch in memory (catching up only).
    writing: Option<Writing>,
}

/// A batch's transaction in flight, and what it moves the checkpoint to.
struct Writing {
    task: tokio::task::JoinHandle<Result<(), StoreError>>,
    next: Position,
    applied: i64,
}

impl Member {
    pub fn new(projection: Box<dyn Projection>, generation: Generation) -> Self {
        let rows = RowSet::new(&generation.table_prefix(), &projection.tables());
        Member {
            projection,
            generation,
            rows,
            done: false,
            writing: None,
        }
    }

    pub fn generation(&self) -> &Generation {
        &self.generation
    }

    pub fn name(&self) -> &'static str {
        self.projection.name()
    }

    pub fn into_projection(self) -> Box<dyn Projection> {
        self.projection
    }

    /// Applies the events of `batch` this generation has not seen, and writes the rows they
    /// changed with the new checkpoint in one transaction. With `overlap`, the transaction is
    /// left in flight and awaited by the next batch (after that batch is applied in memory)
    /// or by [`Member::settle`]; otherwise it is awaited here.
    async fn apply_batch(
        &mut self,
        store: &ReadStore,
        batch: &[(RecordedEvent, Event)],
        faults: &Faults,
        overlap: bool,
    ) -> Result<(), ProjectionError> {
        if self.done {
            return Ok(());
        }
        let until = self.generation.until;
        // Events below the checkpoint the write in flight moves to are already applied.
        let from = self
            .writing
            .as_ref()
            .map_or(self.generation.position, |w| w.next);
        let mut todo = Vec::new();
        for (event, decoded) in batch {
            if event.position < from {
                continue;
            }
            if until.past(event) {
                self.done = true;
                break;
            }
            // A time bound is not a place in the log: an event recorded (or, in business
            // time, happening) before it can come after one that does not, so the whole log
            // is read and each event judged.
            if !until.admits(event) {
                continue;
            }
            todo.push(Envelope { event, decoded });
        }
        let Some(last) = todo.last() else {
            return Ok(());
        };
        let next = last.event.position.next();
        let mut want = KeyRequests::default();
        for e in &todo {
            self.projection.prefetch(*e, &mut want);
        }
        // The rows the write in flight holds stay cached until it has landed (the cache is
        // trimmed only in `settle`), so this fetch reads from the store only rows that write
        // does not touch: nothing it reads can be overwritten under it.
        let applied = async {
            self.rows.fetch(store, want).await?;
            for e in &todo {
                faults.before_apply()?;
                self.projection.apply(*e, &mut self.rows)?;
            }
            Ok::<_, ProjectionError>(())
        }
        .await;
        // This batch's checkpoint is guarded by the one the previous batch writes, so that
        // one must have landed first.
        let settled = self.settle().await;
        if let Err(e) = applied.and(settled) {
            // What the cache holds was never stored; the store and its checkpoint are the truth.
            self.rows.clear();
            return Err(e);
        }
        let mut stmts = self.rows.take_changes(store.is_postgres());
        stmts.push(checkpoint_stmt(&self.generation, next, todo.len() as i64));
        if faults.before_commit() {
            // Everything is written but not committed, as when a process dies at COMMIT.
            stmts.push(Stmt::new(
                "SELECT no_such_column FROM kefu_projections",
                vec![],
            ));
        }
        let writer = store.clone();
        self.writing = Some(Writing {
            task: tokio::spawn(async move { writer.transaction(stmts).await.map(|_| ()) }),
            next,
            applied: todo.len() as i64,
        });
        if overlap { Ok(()) } else { self.settle().await }
    }

    /// Waits for the batch in flight, if any, and moves the checkpoint past it.
    async fn settle(&mut self) -> Result<(), ProjectionError> {
        let Some(w) = self.writing.take() else {
            return Ok(());
        };
        let written = w
            .task
            .await
            .map_err(|e| ProjectionError::Bug(format!("a projection write failed: {e}")))?;
        if let Err(e) = written {
            self.rows.clear();
            return Err(match e {
                StoreError::Guard { .. } => ProjectionError::Superseded {
                    projection: self.generation.projection.clone(),
                    generation: self.generation.generation,
                },
                e => e.into(),
            });
        }
        self.generation.position = w.next;
        self.generation.events += w.applied;
        self.rows.trim();
        Ok(())
    }
}

fn checkpoint_stmt(g: &Generation, next: Position, applied: i64) -> Stmt {
    Stmt::new(
        "UPDATE kefu_projections SET position = $3, events = events + $4, updated_at = $5 \
         WHERE projection = $1 AND generation = $2 AND position = $6 AND state <> 'retired'",
        vec![
            g.projection.clone().into(),
            g.generation.into(),
            (next.0 as i64).into(),
            applied.into(),
            Utc::now().timestamp_millis().into(),
            (g.position.0 as i64).into(),
        ],
    )
    .guarded(
        1,
        format!(
            "checkpoint of {} generation {} moved under this writer",
            g.projection, g.generation
        ),
    )
}

/// Test hook: die before the n-th apply (the batch in memory is lost), or at the commit of
/// the n-th write (everything of that batch was sent, nothing committed), as a killed process
/// would. Clones share their counts, so projections running side by side count together.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    pub fail_before_apply: Option<u64>,
    pub fail_at_commit: Option<u64>,
    applied: Arc<AtomicU64>,
    commits: Arc<AtomicU64>,
}

impl Faults {
    pub fn fail_at(n: u64) -> Self {
        Faults {
            fail_before_apply: Some(n),
            ..Faults::default()
        }
    }

    pub fn fail_at_commit(n: u64) -> Self {
        Faults {
            fail_at_commit: Some(n),
            ..Faults::default()
        }
    }

    fn before_commit(&self) -> bool {
        let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        self.fail_at_commit == Some(n)
    }

    fn before_apply(&self) -> Result<(), ProjectionError> {
        // Counted only when a fault is set: one counter shared by every member, touched for
        // every event, would have their threads fight over it.
        let Some(at) = self.fail_before_apply else {
            return Ok(());
        };
        let n = self.applied.fetch_add(1, Ordering::SeqCst) + 1;
        if at == n {
            return Err(ProjectionError::Invalid(format!(
                "injected fault before apply number {n}"
            )));
        }
        Ok(())
    }
}

/// How a build is going.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Events read from the log so far, up to the target. How much is left is counted in
    /// events too (`EventLog::count_through`): positions say little on PostgreSQL, where they
    /// jump by transaction ids.
    pub read: u64,
    pub position: Position,
    /// Where the build stops (the log's head when it started, or the as-of bound).
    pub target: Option<Position>,
    /// Where the build started.
    pub start: Position,
    pub elapsed: Duration,
}

impl Progress {
    pub fn events_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.read as f64 / secs
        } else {
            0.0
        }
    }
}

/// Several projections fed from one read of the log.
pub struct Group {
    store: ReadStore,
    members: Vec<Member>,
    page: usize,
    faults: Faults,
}

impl Group {
    pub fn new(store: ReadStore, members: Vec<Member>) -> Self {
        Group {
            store,
            members,
            page: DEFAULT_BATCH,
            faults: Faults::default(),
        }
    }

    pub fn with_batch(mut self, events: usize) -> Self {
        self.page = events.max(1);
        self
    }

    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn into_members(self) -> Vec<Member> {
        self.members
    }

    fn start(&self) -> Position {
        self.members
            .iter()
            .map(|m| m.generation.position)
            .min()
            .unwrap_or(Position::START)
    }

    fn all_done(&self) -> bool {
        self.members.iter().all(|m| m.done)
    }

    /// Applies a batch to every member, each in a task of its own: one member's SQL round
    /// trips overlap another's work in memory, and the two use different cores. With
    /// `overlap`, each member's transaction is left in flight while the next batch is applied
    /// (see [`Member::apply_batch`]); [`Group::settle`] waits for the last ones.
    async fn apply(
        &mut self,
        events: Vec<RecordedEvent>,
        overlap: bool,
    ) -> Result<(), ProjectionError> {
        let batch: Arc<Vec<(RecordedEvent, Event)>> = Arc::new(
            events
                .into_iter()
                .map(|mut e| {
                    let d = kefu_feed::decode_taking(&mut e);
                    (e, d)
                })
                .collect(),
        );
        let tasks: Vec<_> = self
            .members
            .drain(..)
            .map(|mut m| {
                let store = self.store.clone();
                let batch = batch.clone();
                let faults = self.faults.clone();
                tokio::spawn(async move {
                    let r = m.apply_batch(&store, &batch, &faults, overlap).await;
                    (m, r)
                })
            })
            .collect();
        let mut failed = None;
        for task in tasks {
            let (m, r) = task
                .await
                .map_err(|e| ProjectionError::Bug(format!("a projection task failed: {e}")))?;
            self.members.push(m);
            if let Err(e) = r {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Waits for every member's transaction in flight; the first failure is returned.
    async fn settle(&mut self) -> Result<(), ProjectionError> {
        let mut failed = None;
        for m in &mut self.members {
            if let Err(e) = m.settle().await {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Reads the log from the lowest checkpoint up to its head as of now (or each member's
    /// bound) and applies it, reporting progress after every batch.
    pub async fn catch_up<L: EventLog>(
        &mut self,
        log: &L,
        mut progress: impl FnMut(&Progress),
    ) -> Result<Progress, ProjectionError> {
        let bound = self
            .members
            .iter()
            .map(|m| m.generation.until.position)
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max());
        let mut pages = ReadAhead::start(log, self.start(), bound, self.page).await?;
        let mut applied = Ok(());
        while !pages.is_done() {
            applied = pages.next(|batch, _| self.apply(batch, true)).await;
            if applied.is_err() {
                break;
            }
            progress(pages.progress());
            if self.all_done() {
                break;
            }
        }
        // Even after a failure: a write left in flight must not land after whoever starts
        // again has read the checkpoint.
        let settled = self.settle().await;
        applied.and(settled)?;
        Ok(pages.finish())
    }

    /// Follows the log live until `stop` turns true, applying each page as it arrives.
    pub async fn follow<L: EventLog>(
        &mut self,
        log: Arc<L>,
        mut stop: watch::Receiver<bool>,
        positions: &watch::Sender<Vec<(String, Position)>>,
    ) -> Result<(), ProjectionError> {
        let mut sub = Subscription::new(log, self.start()).with_page_size(self.page);
        loop {
            let batch = tokio::select! {
                b = sub.next_batch(self.page) => b?,
                _ = stop.wait_for(|s| *s) => return Ok(()),
            };
            self.apply(batch, false).await?;
            positions.send_replace(
                self.members
                    .iter()
                    .map(|m| (m.name().to_owned(), m.generation.position))
                    .collect(),
            );
        }
    }
}

/// The log from a position up to its head as of the start (or an earlier bound), page by page,
/// each next page read while the caller works on the current one: the log and the read
/// store are different connections (often different servers), so neither waits for the other.
pub(crate) struct ReadAhead<'l, L> {
    log: &'l L,
    target: Position,
    size: usize,
    page: Vec<RecordedEvent>,
    started: Instant,
    report: Progress,
}

impl<'l, L: EventLog> ReadAhead<'l, L> {
    pub(crate) async fn start(
        log: &'l L,
        start: Position,
        bound: Option<Position>,
        size: usize,
    ) -> Result<Self, ProjectionError> {
        let started = Instant::now();
        let target = match (log.head().await?, bound) {
            (Some(head), Some(bound)) => Some(head.min(bound)),
            (head, _) => head,
        };
        let page = match target {
            Some(t) if start <= t => log.read_all(start, size).await?,
            _ => Vec::new(),
        };
        Ok(ReadAhead {
            log,
            target: target.unwrap_or(Position::START),
            size,
            page,
            started,
            report: Progress {
                read: 0,
                position: start,
                target,
                start,
                elapsed: Duration::ZERO,
            },
        })
    }

    pub(crate) fn is_done(&self) -> bool {
        self.page.is_empty()
    }

    pub(crate) fn progress(&self) -> &Progress {
        &self.report
    }

    /// Hands the current page (events past the target left out) to `work`, with whether it
    /// is the last, and reads the next page meanwhile. Call only while not `is_done`.
    pub(crate) async fn next<T, F>(
        &mut self,
        work: impl FnOnce(Vec<RecordedEvent>, bool) -> F,
    ) -> Result<T, ProjectionError>
    where
        F: Future<Output = Result<T, ProjectionError>>,
    {
        let page = std::mem::take(&mut self.page);
        let from = page
            .last()
            .map(|e| e.position.next())
            .ok_or_else(|| ProjectionError::Bug("read past the end of a catch-up".into()))?;
        let target = self.target;
        let batch: Vec<RecordedEvent> = page.into_iter().filter(|e| e.position <= target).collect();
        self.report.read += batch.len() as u64;
        let more = from <= target;
        let (log, size) = (self.log, self.size);
        let (next, done) = tokio::join!(
            async {
                if more {
                    log.read_all(from, size).await
                } else {
                    Ok(Vec::new())
                }
            },
            work(batch, !more)
        );
        let done = done?;
        self.page = next?;
        self.report.position = from;
        self.report.elapsed = self.started.elapsed();
        Ok(done)
    }

    pub(crate) fn finish(mut self) -> Progress {
        self.report.elapsed = self.started.elapsed();
        self.report
    }
}

/// What `rebuild` did for one projection.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub generation: Generation,
    /// The generation it replaced, when swapped in.
    pub replaced: Option<i64>,
}

/// Builds new generations of `projections` from position 0 beside the live ones. Without a
/// bound they are swapped in once caught up with the log's head (blue-green: queries read
/// the old generation until the swap); with one they are kept as as-of generations.
pub async fn rebuild<L: EventLog>(
    log: &L,
    store: &ReadStore,
    projections: Vec<Box<dyn Projection>>,
    until: Until,
    progress: impl FnMut(&Progress),
) -> Result<(Vec<Rebuilt>, Progress), ProjectionError> {
    let catalog = Catalog::open(store.clone()).await?;
    let state = if until.is_bounded() {
        GenState::AsOf
    } else {
        GenState::Building
    };
    let mut members = Vec::new();
    for p in projections {
        catalog
            .drop_abandoned(
                p.as_ref(),
                chrono::Duration::minutes(ABANDONED_AFTER_MINUTES),
            )
            .await?;
        let g = catalog.create(p.as_ref(), state, until).await?;
        info!(
            projection = p.name(),
            generation = g.generation,
            state = state.as_str(),
            "building"
        );
        members.push(Member::new(p, g));
    }
    let mut group = Group::new(store.clone(), members).with_batch(REBUILD_BATCH);
    let report = group.catch_up(log, progress).await?;
    let mut out = Vec::new();
    for m in group.into_members() {
        let generation = m.generation.clone();
        let p = m.into_projection();
        catalog.ensure_tables(p.as_ref(), &generation).await?;
        let replaced = if state == GenState::Building {
            let old = catalog.swap(p.as_ref(), generation.generation).await?;
            info!(
                projection = p.name(),
                generation = generation.generation,
                "swapped in"
            );
            old.map(|o| o.generation)
        } else {
            None
        };
        let generation = catalog.get(p.name(), generation.generation).await?;
        out.push(Rebuilt {
            generation,
            replaced,
        });
    }
    Ok((out, report))
}

/// Whether a follower kept live in a server (the projections, the search index writer) is
/// running or failing: what `/readyz` and `/metrics` report, since a follower that fails and
/// retries forever otherwise looks just like one with nothing to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Liveness {
    /// Set from its first failure until it has attached and caught up again.
    pub failing: Option<Failing>,
    /// Failures since the server started.
    pub failures_total: u64,
}

/// A follower failing and being retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// The first failure of this run of failures.
    pub since: DateTime<Utc>,
    /// The last failure's error.
    pub error: String,
    /// Failures in a row.
    pub in_a_row: u32,
}

impl Liveness {
    fn failed(&mut self, error: String, in_a_row: u32, now: DateTime<Utc>) {
        self.failures_total += 1;
        let since = self.failing.as_ref().map_or(now, |f| f.since);
        self.failing = Some(Failing {
            since,
            error,
            in_a_row,
        });
    }

    /// Marks the follower as running again (attached and caught up with the log).
    pub(crate) fn recovered(tx: &watch::Sender<Liveness>) {
        tx.send_if_modified(|l| l.failing.take().is_some());
    }
}

/// Runs `run` until it returns or `stopped` turns true. A generation replaced by a rebuild
/// (`Superseded`) is reattached at once; any other failure is logged, recorded in `liveness`
/// (which `run` clears once it is running again) and retried after
/// [`kefu_eventlog::backoff`] (at most 2 s, so recovery follows the store closely).
pub(crate) async fn supervise<F, Fut>(
    what: &'static str,
    mut stopped: watch::Receiver<bool>,
    liveness: Arc<watch::Sender<Liveness>>,
    mut run: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), ProjectionError>>,
{
    let mut failures = 0u32;
    while !*stopped.borrow() {
        match run().await {
            Ok(()) => break,
            Err(ProjectionError::Superseded {
                projection,
                generation,
            }) => {
                info!(what, %projection, generation, "generation replaced; reattaching");
                failures = 0;
            }
            Err(e) => {
                failures += 1;
                warn!(what, error = %e, failures, "failed; restarting");
                liveness.send_modify(|l| l.failed(e.to_string(), failures, Utc::now()));
                tokio::select! {
                    _ = tokio::time::sleep(kefu_eventlog::backoff(failures)) => {}
                    _ = stopped.wait_for(|s| *s) => break,
                }
            }
        }
    }
}

/// The projections kept live inside a server, and where each has got to.
pub struct LiveProjections {
    positions: watch::Receiver<Vec<(String, Position)>>,
    liveness: watch::Receiver<Liveness>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl LiveProjections {
    /// Attaches every projection to its live generation (creating it on first start) and
    /// follows the log. Failures are logged and retried; a generation swapped by a rebuild is
    /// picked up from its own checkpoint.
    pub fn spawn<L: EventLog>(
        log: Arc<L>,
        store: ReadStore,
        make: impl Fn() -> Vec<Box<dyn Projection>> + Send + Sync + 'static,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let (positions_tx, positions) = watch::channel(Vec::new());
        let (liveness_tx, liveness) = watch::channel(Liveness::default());
        let make = Arc::new(make);
        let positions_tx = Arc::new(positions_tx);
        let liveness_tx = Arc::new(liveness_tx);
        let supervised = liveness_tx.clone();
        let task = tokio::spawn(supervise(
            "projections",
            stopped.clone(),
            supervised,
            move || {
                let (log, store, make, positions_tx, stopped, liveness_tx) = (
                    log.clone(),
                    store.clone(),
                    make.clone(),
                    positions_tx.clone(),
                    stopped.clone(),
                    liveness_tx.clone(),
                );
                async move {
                    let catalog = Catalog::open(store.clone()).await?;
                    let mut members = Vec::new();
                    for p in make() {
                        let g = match catalog.attach_live(p.as_ref()).await {
                            // Built by an older kefu (an upgrade added columns): what they hold
                            // for the events already applied is only known by replaying them, so
                            // a new generation is built from the log and swapped in, as `kefu
                            // replay` would, instead of leaving the read model dead until someone
                            // runs it.
                            Err(ProjectionError::Outdated {
                                projection,
                                generation,
                                reason,
                                ..
                            }) => {
                                warn!(
                                    %projection,
                                    generation,
                                    %reason,
                                    "the live generation was built by an older kefu: rebuilding it from the log"
                                );
                                let again: Vec<Box<dyn Projection>> = make()
                                    .into_iter()
                                    .filter(|q| q.name() == p.name())
                                    .collect();
                                rebuild(&*log, &store, again, Until::default(), |_| {}).await?;
                                catalog.attach_live(p.as_ref()).await?
                            }
                            other => other?,
                        };
                        members.push(Member::new(p, g));
                    }
                    let mut group = Group::new(store.clone(), members);
                    group.catch_up(&*log, |_| {}).await?;
                    positions_tx.send_replace(
                        group
                            .members()
                            .iter()
                            .map(|m| (m.name().to_owned(), m.generation().position))
                            .collect(),
                    );
                    Liveness::recovered(&liveness_tx);
                    group.follow(log, stopped, &positions_tx).await
                }
            },
        ));
        LiveProjections {
            positions,
            liveness,
            stop,
            task,
        }
    }

    /// Whether the projections are running or failing.
    pub fn liveness(&self) -> watch::Receiver<Liveness> {
        self.liveness.clone()
    }

    /// Each projection's checkpoint: the position its next read starts at.
    pub fn positions(&self) -> watch::Receiver<Vec<(String, Position)>> {
        self.positions.clone()
    }

    /// Waits until every projection has applied the event at `position`.
    pub async fn wait_for(&self, position: Position) {
        let mut rx = self.positions.clone();
        let _ = rx
            .wait_for(|ps| !ps.is_empty() && ps.iter().all(|(_, p)| *p > position))
            .await;
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
