//! The queues read model in memory: the production projection
//! (`kefu_projections::queues::QueuesProjection`) applied to a row set that holds its whole
//! tables (`RowSet::hold_whole`), with no store under it. The router's queue list and the
//! assigner's plan read it as they read the read model, including its lag: the driver decides
//! how far behind the log it is when a worker reads it. The what-if replay and the simulation
//! of the desk (`kefu-tests`, `src/sim`) both drive the router with it.

use kefu_eventlog::{EventLog, Position};
use kefu_projections::queues::{
    AgentRow, ChatRow, QueueRow, QueuesProjection, WaitingEntry, WaitingRow, serving_order,
};
use kefu_projections::rows::{KeyRequests, RowSet};
use kefu_projections::{Envelope, Projection, ProjectionError};

use crate::WhatIfError;

pub struct QueuesInMemory {
    projection: QueuesProjection,
    rows: RowSet,
    /// The next position to apply.
    next: Position,
}

impl Default for QueuesInMemory {
    fn default() -> Self {
        let projection = QueuesProjection;
        let rows = RowSet::new("", &projection.tables());
        QueuesInMemory {
            projection,
            rows,
            next: Position::START,
        }
    }
}

impl QueuesInMemory {
    /// How far it has applied the log (the next position it reads).
    pub fn next(&self) -> Position {
        self.next
    }

    /// Applies the log's events up to and including `through`.
    pub async fn catch_up<L: EventLog>(
        &mut self,
        log: &L,
        through: Position,
    ) -> Result<(), WhatIfError> {
        while self.next <= through {
            let page = log.read_all(self.next, 256).await?;
            let Some(last) = page.last().map(|e| e.position) else {
                break;
            };
            for e in page.iter().take_while(|e| e.position <= through) {
                let decoded = kefu_feed::decode_or_other(e);
                let envelope = || Envelope {
                    event: e,
                    decoded: &decoded,
                };
                let mut want = KeyRequests::default();
                self.projection.prefetch(envelope(), &mut want);
                self.rows.hold_whole(want)?;
                self.projection.apply(envelope(), &mut self.rows)?;
                self.next = e.position.next();
            }
            if last >= through {
                break;
            }
        }
        // Nothing is written from here: what was deleted need not be remembered.
        self.rows.forget_deleted();
        Ok(())
    }

    /// The waiting conversations in serving order, as `View::waiting(None, 0)` lists them
    /// (the assigner asks with no clock).
    pub fn waiting(&self) -> Result<Vec<WaitingEntry>, ProjectionError> {
        Ok(serving_order(self.rows.rows::<WaitingRow>()?, 0))
    }

    /// The agents, as `View::agents` lists them (by name, then id).
    pub fn agents(&self) -> Result<Vec<AgentRow>, ProjectionError> {
        let mut rows = self.rows.rows::<AgentRow>()?;
        rows.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        Ok(rows)
    }

    /// The queues not retired, as the router reads them (`View::queue_counts`: by priority,
    /// then name).
    pub fn queues(&self) -> Result<Vec<QueueRow>, ProjectionError> {
        let mut rows: Vec<QueueRow> = self
            .rows
            .rows::<QueueRow>()?
            .into_iter()
            .filter(|q| !q.retired)
            .collect();
        rows.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
        Ok(rows)
    }

    /// The chats agents hold, as their workbenches show them (by conversation).
    pub fn chats(&self) -> Result<Vec<ChatRow>, ProjectionError> {
        self.rows.rows::<ChatRow>()
    }
}
