//! The audit trail: everything one customer request set off, across every stream, as a tree
//! of causes.
//!
//! The read model is an index, not a copy: one row per event, keyed by the event's
//! correlation id and position, saying where the log keeps it (stream and version). A trail
//! is read by looking the request up here and then reading those events from their streams,
//! so the events an auditor sees are the log's own, while the log's hot table carries no
//! correlation index (issue 20: every index there is paid on every append). Like every read
//! model it has a checkpoint and is rebuilt from position 0; an answer says how far the index
//! has read the log, so an auditor knows whether the trail can still grow.
//!
//! The read model's table, `trail`, holds the correlation id, position, stream and version of every
//! event, one this build cannot decode too. A trail is the rows of the request, its events read
//! from their streams (one read per stream, of the versions between its first and last indexed
//! event), arranged by causation when asked ([`causation_tree`], pure). The answer
//! ([`AuditAnswer`]) carries [`CaughtUp`]: the last position the index has read, the log's settled
//! head when asked (read after the rows, so it never claims more than they hold), and `complete`
//! (nothing the log held is missing). `kefu log correlation`, `kefu query audit` and the GraphQL
//! `auditTrail` (which takes `atLeast`, as the other read-model queries do) all say it. The read
//! model is rebuilt with the others, and a server started on an older store builds it from position
//! 0 like any new projection; until it has read the log its answers say they are incomplete. Tests:
//! `projections/tests/audit.rs` and `tests/tests/audit_week.rs` (every request of a generated week:
//! the tree is what a scan of the log gives).

use std::collections::{BTreeMap, HashMap, HashSet};

use kefu_eventlog::{EventLog, Position, RecordedEvent, StreamId};
use uuid::Uuid;

use crate::error::ProjectionError;
use crate::record;
use crate::rows::{KeyRequests, RowSet};
use crate::runner::{Envelope, Projection};
use crate::sql::{Record, TableDef, Val};
use crate::view::View;

pub const NAME: &str = "audit";

record! {
    /// Where one event of a request's trail is kept in the log.
    pub struct TrailRow in "trail", key 2 {
        pub correlation: String,
        pub position: i64,
        pub stream: String,
        pub version: i64,
    }
}

/// Indexes every event by its correlation id, whatever its type: an event this build cannot
/// decode is still part of the request that caused it.
#[derive(Default)]
pub struct AuditProjection;

impl Projection for AuditProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> Vec<&'static TableDef> {
        vec![&TrailRow::TABLE]
    }

    fn prefetch(&self, _: Envelope<'_>, _: &mut KeyRequests) {}

    fn apply(&mut self, e: Envelope<'_>, rows: &mut RowSet) -> Result<(), ProjectionError> {
        rows.put(TrailRow {
            correlation: e.event.metadata.correlation_id.to_string(),
            // Positions and versions are below 2^63 on every backend (the runner stores them so too).
            position: e.event.position.0 as i64,
            stream: e.event.stream_id.to_string(),
            version: e.event.version as i64,
        })
    }
}

/// One event and what it caused, in log order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditNode {
    pub event: RecordedEvent,
    pub children: Vec<AuditNode>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditTrail {
    pub correlation_id: Uuid,
    /// Events caused by the request itself (or by an event outside this correlation).
    pub roots: Vec<AuditNode>,
    pub events: usize,
}

impl AuditTrail {
    /// Every event in the tree, depth first.
    pub fn walk(&self) -> Vec<(usize, &RecordedEvent)> {
        fn go<'a>(n: &'a AuditNode, depth: usize, out: &mut Vec<(usize, &'a RecordedEvent)>) {
            out.push((depth, &n.event));
            for c in &n.children {
                go(c, depth + 1, out);
            }
        }
        let mut out = Vec::new();
        for r in &self.roots {
            go(r, 0, &mut out);
        }
        out
    }
}

/// How far the trail's index has read the log when it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CaughtUp {
    /// The last position the index has read, None before its first event.
    pub through: Option<u64>,
    /// The log's settled head when asked, None for an empty log.
    pub head: Option<u64>,
    /// Every event up to the head is indexed: no event the log held when asked is missing
    /// from the trail.
    pub complete: bool,
}

impl CaughtUp {
    /// `next` is where the index's next read starts (its checkpoint).
    pub fn of(next: Position, head: Option<Position>) -> Self {
        CaughtUp {
            through: next.0.checked_sub(1),
            head: head.map(|h| h.0),
            complete: head.is_none_or(|h| next > h),
        }
    }
}

/// A trail as the read model gives it, with how complete it is.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditAnswer {
    pub trail: AuditTrail,
    pub caught_up: CaughtUp,
}

/// Arranges the events of one correlation by causation. Pure: `events` in log order.
pub fn causation_tree(correlation_id: Uuid, events: Vec<RecordedEvent>) -> AuditTrail {
    let count = events.len();
    let ids: HashSet<Uuid> = events.iter().map(|e| e.id).collect();
    let mut children: HashMap<Uuid, Vec<RecordedEvent>> = HashMap::new();
    let mut roots = Vec::new();
    for e in events {
        // An event is its own cause only in a corrupt log; treat it as a root, never a loop.
        if e.metadata.causation_id != e.id && ids.contains(&e.metadata.causation_id) {
            children.entry(e.metadata.causation_id).or_default().push(e);
        } else {
            roots.push(e);
        }
    }
    fn build(e: RecordedEvent, children: &mut HashMap<Uuid, Vec<RecordedEvent>>) -> AuditNode {
        let kids = children.remove(&e.id).unwrap_or_default();
        AuditNode {
            children: kids.into_iter().map(|k| build(k, children)).collect(),
            event: e,
        }
    }
    let roots = roots.into_iter().map(|r| build(r, &mut children)).collect();
    AuditTrail {
        correlation_id,
        roots,
        events: count,
    }
}

impl View {
    /// The audit trail of `correlation_id`: the events this generation has indexed, read from
    /// the log, and how far the index had read when asked.
    pub async fn audit_trail<L: EventLog>(
        &self,
        log: &L,
        correlation_id: Uuid,
    ) -> Result<AuditAnswer, ProjectionError> {
        let rows: Vec<TrailRow> = self
            .select(
                "WHERE correlation = $1 ORDER BY position",
                vec![Val::Text(correlation_id.to_string())],
            )
            .await?;
        // After the rows: a head read later can only be higher, so `complete` never claims
        // more than the rows hold.
        let head = log.head().await?;
        let events = read_indexed(log, &rows).await?;
        Ok(AuditAnswer {
            trail: causation_tree(correlation_id, events),
            caught_up: CaughtUp::of(self.generation.position, head),
        })
    }
}

/// The events the rows name, in position order: one read per stream, of the versions
/// between the stream's first and last indexed event.
async fn read_indexed<L: EventLog>(
    log: &L,
    rows: &[TrailRow],
) -> Result<Vec<RecordedEvent>, ProjectionError> {
    let mut by_stream: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in rows {
        by_stream
            .entry(&r.stream)
            .or_default()
            .push(r.version as u64);
    }
    let mut out = Vec::with_capacity(rows.len());
    for (stream, versions) in by_stream {
        let id = StreamId::new(stream).map_err(|e| {
            ProjectionError::Bug(format!("the audit index names stream {stream:?}: {e}"))
        })?;
        let wanted: HashSet<u64> = versions.into_iter().collect();
        let (Some(&first), Some(&last)) = (wanted.iter().min(), wanted.iter().max()) else {
            continue;
        };
        let span = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
        let mut from = first;
        let mut found = 0;
        while from <= last {
            let page = log
                .read_stream(&id, from, span.min(kefu_eventlog::DEFAULT_PAGE))
                .await?;
            let Some(end) = page.last().map(|e| e.version) else {
                break;
            };
            for e in page {
                if wanted.contains(&e.version) {
                    found += 1;
                    out.push(e);
                }
            }
            from = end + 1;
        }
        // The log never loses an event, so an indexed one it cannot give is a broken store
        // (or an archive this host lacks, which the log names before this).
        if found != wanted.len() {
            return Err(ProjectionError::Bug(format!(
                "the audit index names {} events of {stream} that the log does not hold",
                wanted.len() - found
            )));
        }
    }
    out.sort_by_key(|e| e.position);
    Ok(out)
}
