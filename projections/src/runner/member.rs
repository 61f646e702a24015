//! One generation being fed: applying a batch in memory, writing it with its checkpoint.

use super::*;

/// One projection generation being fed events.
pub struct Member {
    pub(super) projection: Box<dyn Projection>,
    pub(super) generation: Generation,
    pub(super) rows: RowSet,
    pub(super) done: bool,
    /// The previous batch's transaction, still in flight while this member applies the next
    /// batch in memory (catching up only).
    pub(super) writing: Option<Writing>,
}

/// A batch's transaction in flight, and what it moves the checkpoint to.
pub(super) struct Writing {
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
    pub(super) async fn apply_batch(
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
    pub(super) async fn settle(&mut self) -> Result<(), ProjectionError> {
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

pub(super) fn checkpoint_stmt(g: &Generation, next: Position, applied: i64) -> Stmt {
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

    pub(super) fn before_commit(&self) -> bool {
        let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        self.fail_at_commit == Some(n)
    }

    pub(super) fn before_apply(&self) -> Result<(), ProjectionError> {
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
