//! The audit trail: everything one customer request set off, across every stream, as a tree
//! of causes.
//!
//! This read model needs no table of its own: the log indexes events by correlation id
//! (`EventLog::read_correlation`), and each event names its cause, so the tree is built when
//! asked. Keeping a copy would only add a second truth that could disagree with the first.

use std::collections::{HashMap, HashSet};

use kefu_eventlog::{EventLog, LogError, RecordedEvent};
use uuid::Uuid;

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

/// The audit trail of `correlation_id`, read from the log.
pub async fn audit_trail<L: EventLog>(
    log: &L,
    correlation_id: Uuid,
) -> Result<AuditTrail, LogError> {
    let events = log.read_correlation(correlation_id).await?;
    Ok(causation_tree(correlation_id, events))
}
