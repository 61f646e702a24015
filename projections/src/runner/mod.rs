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
//!
//! The modules: the [`Projection`] trait here (`name`, `tables`, `prefetch`, `apply`; `apply` is a
//! function of the events alone, matched on `kefu_domain::Event`, each event decoded once for every
//! projection by `kefu_feed::decode_taking`); generations and the [`Catalog`] (`catalog.rs`); a
//! generation being fed (`member.rs`); [`Group`] (`group.rs`: several projections fed from one read
//! of the log, `catch_up` to the log's head and `follow` live through a `Subscription`);
//! [`rebuild`] (`blue_green.rs`); and [`LiveProjections`] (`live.rs`: what `kefu serve` runs).
//!
//! The members of a group apply each batch in tasks of their own, in parallel. While catching up,
//! each member applies batch n+1 in memory while batch n's transaction is in flight, and awaits it
//! before sending the next (whose checkpoint guard is the one n writes); `catch_up` waits for the
//! last writes even when it fails, so none lands after a restart has read the checkpoint. Following
//! live, each write is awaited before the position is reported. A rebuild works in batches of
//! [`REBUILD_BATCH`] events and creates secondary indexes only after loading, before the swap; a
//! `building` generation idle for [`ABANDONED_AFTER_MINUTES`] belongs to a rebuild that died, and
//! the next rebuild drops it. `supervise` runs a live follower (the projections, the search index
//! writer), retrying failures after `kefu_eventlog::backoff`, and keeps its [`Liveness`] (failing
//! since when, with what, how many times in a row): a follower retrying forever otherwise looks
//! exactly like one with nothing to do. The follower clears it once it has attached and caught up
//! again.
//!
//! # Blue-green and as-of generations
//!
//! `kefu replay` builds generation n+1 from position 0 beside the live one, swaps the catalog's
//! `live` mark when caught up with the log's head, and drops the old tables; a running server's
//! next write to the old generation fails its guard, and it carries on in the new one from its
//! checkpoint. As-of builds (`--as-of TIME`, `--until-position P`) are kept as `as_of` generations
//! for `kefu query --generation N`. "As of a time" means every event whose time is at or before it,
//! on one of two clocks ([`Until::clock`], recorded in the catalog): the log's recorded time
//! (`--as-of`), or the business time the event carries in its `at` (`--as-of-business`, what an
//! analyst means by "as of 12:00 on the 6th"). Neither is log order (writers' commits interleave by
//! milliseconds; events are written after they happen), so a time-bounded build reads the whole log
//! and judges each event; a bound that selects nothing is refused.
//!
//! A live generation whose tables lack a column this build writes (built by an older kefu) is
//! refused by [`Catalog::attach_live`] (`ProjectionError::Outdated`); the server's runner then
//! builds a new generation from the log and swaps it in, as `kefu replay` would, rather than leave
//! the read model dead after an upgrade. Analysts' SQL reads views, not generations:
//! [`Catalog::refresh_views`] points one view per table, `<projection>_<table>` (`stats_facts`,
//! `stats_queueings`), at the live generation whenever it changes (first start, swap, attach), with
//! times as timestamps, booleans as booleans and names beside queue and agent ids, so a saved BI
//! question survives a replay.

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

mod blue_green;
mod catalog;
mod group;
mod live;
mod member;

pub use blue_green::*;
pub use catalog::*;
pub use group::*;
pub use live::*;
pub use member::*;
