//! How workers run: each follows the log from its checkpoint and reacts to events by issuing
//! commands through the [`Desk`](kefu_desk::Desk).
//!
//! A [`Reactor`] is fed batches by a `Subscription` from its checkpoint (table `kefu_workers` in
//! the read-model store), and the checkpoint moves after the batch's reactions are done. A failure
//! is retried from the checkpoint after [`kefu_eventlog::backoff`] (a quarter of a second, doubling
//! to at most 2 s: the one schedule workers and projections share, so that after an outage they
//! follow the store back within a couple of seconds). A worker that reacts to the absence of events
//! (a timer) is a [`Sweep`], run by [`run_sweeps`]: it reads a read model on a schedule, and the
//! domain checks each candidate again against its stream.
//!
//! # Why two instances never act twice on one event
//!
//! Competing consumers, made safe by the commands themselves rather than by a lease, and the same
//! holds for an instance that crashed and restarted. Every reaction is decided by the domain
//! against the stream it changes, caused by the event it answers, and appended with that stream's
//! expected version: a second instance reacting to the same event loses the append race and,
//! deciding again, finds the reaction recorded for its cause (`command.rs`) or the work done
//! outright (a survey already offered, a turn already answered: the bot's reply id is derived from
//! the customer's message id, a conversation already assigned, an agent's seat already taken), and
//! the decider refuses or ignores it. So running two instances costs some duplicated reads, never a
//! duplicated effect, and needs no lock that could be lost while its holder still works (a lease
//! that expires under a paused process is how lease-based workers act twice).
//!
//! Checkpoints only save work: a worker killed before moving one reacts again to those events on
//! restart, harmlessly, for the reason above. Operations of two appends are resumable from the log:
//! the router's routing and queueing are one append; the assigner's seat and assignment are two,
//! and `Desk::assign_queued` first looks in the queueing's correlation for a seat already taken for
//! that queueing and not given back (an assigner that died between the two) and uses it, and leaves
//! a conversation no longer queued alone before touching a seat.
//!
//! Proven by `workers/tests/reactions.rs` (a customer served start to close with the crew's store
//! dying right after each of its appends in turn, `Faults::die_after_appends`, then restarted from
//! its checkpoints: the same reactions as a clean run, on both stores; two crews side by side),
//! `workers/tests/workers.rs` (two assigners, two survey workers, two bots; a replay with the
//! checkpoint lost) and `api/tests/chaos.rs` (`kefu serve` killed with SIGKILL twice under load, on
//! both stores, the raw log audited).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kefu_eventlog::{EventLog, LogError, Position, RecordedEvent, Subscription};
use kefu_projections::ReadStore;
use kefu_projections::sql::{Stmt, Val};
use tokio::sync::watch;

/// What a worker does with a batch of events (in log order).
pub trait Reactor: Send + 'static {
    fn name(&self) -> &'static str;

    /// Reacts to the events it cares about. An error means "try this batch again" (the store
    /// is away, say); a command the domain refuses is not an error: the work is moot.
    fn react(
        &mut self,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<(), WorkerError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] kefu_projections::sql::StoreError),
    #[error(transparent)]
    ReadModel(#[from] kefu_projections::ProjectionError),
    #[error(transparent)]
    Assigner(#[from] crate::assigner::AssignerError),
    #[error("{0}")]
    Command(#[from] kefu_desk::command::CommandError),
}

/// Where each worker has got to, in the read-model store.
#[derive(Clone)]
pub struct Checkpoints {
    store: ReadStore,
}

impl Checkpoints {
    pub async fn open(store: ReadStore) -> Result<Self, WorkerError> {
        store
            .transaction(vec![Stmt::new(
                "CREATE TABLE IF NOT EXISTS kefu_workers (
                    name       TEXT   NOT NULL PRIMARY KEY,
                    position   BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL
                )",
                vec![],
            )])
            .await?;
        Ok(Checkpoints { store })
    }

    /// Where `name` resumes: the position after the last event it finished with.
    pub async fn get(&self, name: &str) -> Result<Option<Position>, WorkerError> {
        let rows = self
            .store
            .query(
                "SELECT position FROM kefu_workers WHERE name = $1",
                vec![Val::Text(name.to_owned())],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.first())
            .and_then(Val::as_i64)
            .map(|p| Position(u64::try_from(p).unwrap_or(0))))
    }

    pub async fn save(&self, name: &str, next: Position) -> Result<(), WorkerError> {
        self.store
            .transaction(vec![Stmt::new(
                "INSERT INTO kefu_workers (name, position, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
                 updated_at = excluded.updated_at",
                vec![
                    Val::Text(name.to_owned()),
                    Val::Int(i64::try_from(next.0).unwrap_or(i64::MAX)),
                    Val::Int(chrono::Utc::now().timestamp_millis()),
                ],
            )])
            .await?;
        Ok(())
    }
}

/// The metadata of a command reacting to the event at `position`: that event's correlation
/// id, and the event as cause. An event that cannot be read there (archived, say) makes the
/// command a request of the worker's own, with an id from the command service's source.
pub async fn cause_at<L: EventLog>(
    commands: &kefu_desk::command::CommandService<L>,
    actor: &kefu_eventlog::Actor,
    position: i64,
) -> Result<kefu_eventlog::Metadata, LogError> {
    let at = Position(u64::try_from(position).unwrap_or(0));
    let events = commands.log().read_all(at, 1).await?;
    Ok(match events.first().filter(|e| e.position == at) {
        Some(e) => kefu_eventlog::Metadata::caused_by(actor.clone(), e),
        None => kefu_eventlog::Metadata::for_request(actor.clone(), commands.new_id()),
    })
}

/// Where a worker without a checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From the beginning of the log: nothing it should have reacted to is missed.
    Beginning,
    /// From the log's head: for workers whose state is a read model, not the history.
    Head,
    /// From a position the worker has read its state up to.
    At(Position),
}

/// Runs `reactor` until `stop` turns true: catch up from its checkpoint, then follow. A
/// failing batch is retried (with growing pauses) before the checkpoint moves past it.
pub async fn run<L: EventLog, R: Reactor>(
    log: Arc<L>,
    checkpoints: Checkpoints,
    mut reactor: R,
    start: Start,
    mut stop: watch::Receiver<bool>,
) {
    let name = reactor.name();
    let mut failures = 0u32;
    'restart: while !*stop.borrow() {
        let from = match checkpoints.get(name).await {
            Ok(Some(p)) => p,
            Ok(None) => match start {
                Start::Beginning => Position::START,
                Start::At(p) => p,
                Start::Head => match log.head().await {
                    Ok(h) => h.map_or(Position::START, |p| Position(p.0 + 1)),
                    Err(e) => {
                        failures += 1;
                        if pause(name, &e, failures, &mut stop).await {
                            continue 'restart;
                        }
                        return;
                    }
                },
            },
            Err(e) => {
                failures += 1;
                if pause(name, &e, failures, &mut stop).await {
                    continue 'restart;
                }
                return;
            }
        };
        // Where it resumes, for operators (and the end-to-end test that kills a worker).
        tracing::info!(worker = name, from = %from, "following the log");
        let mut subscription = Subscription::new(log.clone(), from);
        loop {
            let batch = tokio::select! {
                b = subscription.next_batch(256) => b,
                _ = async { stop.wait_for(|s| *s).await.is_ok() } => return,
            };
            let outcome = match batch {
                Ok(events) => {
                    let next = events.last().map(|e| Position(e.position.0 + 1));
                    match reactor.react(&events).await {
                        Ok(()) => match next {
                            Some(n) => checkpoints.save(name, n).await,
                            None => Ok(()),
                        },
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e.into()),
            };
            match outcome {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    if pause(name, &e, failures, &mut stop).await {
                        // Resume from the checkpoint: the failed batch comes again.
                        continue 'restart;
                    }
                    return;
                }
            }
        }
    }
}

/// A worker that reacts to the absence of events (a timer): it looks at a read model on a
/// schedule, and the domain checks each candidate again against its stream.
pub trait Sweep: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// One sweep at the desk's clock; how many commands took effect.
    fn sweep(&self) -> impl Future<Output = Result<usize, WorkerError>> + Send;
}

/// Sweeps every `every` until `stop` turns true; a failing sweep is logged and tried again
/// at the next one. Nothing is held between sweeps: a restart loses no timer.
pub async fn run_sweeps<S: Sweep>(sweeper: S, every: Duration, mut stop: watch::Receiver<bool>) {
    let name = sweeper.name();
    loop {
        match sweeper.sweep().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(worker = name, done = n, "sweep acted"),
            Err(e) => tracing::warn!(worker = name, error = %e, "sweep failed; trying at the next"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = async { stop.wait_for(|s| *s).await.is_ok() } => return,
        }
    }
}

/// What a sweep does with a command the domain refused: the work was moot (the view lagged
/// behind the stream, or another instance did it first), so it is logged, not an error.
pub(crate) fn moot<T>(
    worker: &'static str,
    subject: impl std::fmt::Display,
    result: Result<T, kefu_desk::command::CommandError>,
) -> Result<bool, WorkerError> {
    match result {
        Ok(_) => Ok(true),
        Err(kefu_desk::command::CommandError::Rejected(reason)) => {
            tracing::debug!(worker, %subject, %reason, "nothing to do after all");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Logs a failure and waits before the next try; false when told to stop meanwhile.
async fn pause(
    name: &str,
    error: &(dyn std::fmt::Display + Sync),
    failures: u32,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    tracing::warn!(worker = name, %error, failures, "worker failed; trying again");
    let wait = kefu_eventlog::backoff(failures);
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = async { stop.wait_for(|s| *s).await.is_ok() } => false,
    }
}
