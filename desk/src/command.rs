//! The command service: runs a [`Decider`] on the event log.
//!
//! [`CommandService::execute`] (and [`CommandService::execute_all`], for several commands decided
//! as one) loads the stream, decodes and folds it (upcasting old schema versions), decides, and
//! appends the decided events expecting the version it loaded. If another writer got there first
//! the append is refused, and the service loads again and decides again against the new state, up
//! to [`DEFAULT_MAX_ATTEMPTS`] times, then answers [`CommandError::Contended`]: the rules are
//! always checked against the state the events will actually follow. A store that does not answer
//! gets the same batch resent (same event ids, so the log acknowledges it once: the first try may
//! have committed).
//!
//! Every event carries the command's [`Metadata`]: `Metadata::for_request` for a request (its id is
//! the correlation and the causation), `Metadata::caused_by(actor, &event)` for a reaction to an
//! event (the same correlation, that event as the causation). [`CommandService::load_for`] and
//! [`CommandService::execute_all_on`] split the two halves for a caller that decides what to
//! command from the state it loaded (the workers' shell): the stream is folded once, and again only
//! when an append loses a race.
//!
//! The service mints every event id, and the desk the ids of what it creates (conversations,
//! tickets, queues; the API the ids a client left out), from one source ([`Ids`],
//! [`CommandService::with_ids`]): UUIDv7 by default, a seeded source in the simulation. With the
//! desk's clock (`Desk::with_clock`) that is all the write side reads of time and randomness.
//!
//! # A reaction is recorded once per cause
//!
//! When the metadata names an event as its cause (not a request), the service collects, while it
//! folds the stream, the reaction keys ([`DomainEvent::reaction_key`]) of the events already caused
//! by that event; if the decided events share one ([`kefu_domain::already_reacted`]), the reaction
//! happened before (a worker restarted after a crash, a second instance, a replay from a lost
//! checkpoint) and the command answers success, appending nothing. The keys are the domain's: a
//! conversation keys the reactions its state would accept twice (a second prediction, a second
//! routing) and the rest of the workers' events too: one mood, reply (or suggestion to the agent)
//! and hand-off per customer turn; one routing with its queueing per hand-off; one assignment per
//! queueing; one survey offer per close; one reminder per offer; one idle close per quiet spell;
//! one warning, breach and escalation per SLA target per queueing, keyed by the target. Seats are
//! not keyed: a seat taken, given back and taken again for one queueing are three real changes, and
//! `TakeChat`/`ReleaseChat` are idempotent by the agent's state. `domain/tests/properties.rs`
//! checks that every keyed command decided a second time against the state its first events made is
//! refused, empty, or recognised by its keys; `workers/src/reactions.rs` is the auditor's check
//! over a whole log.

use std::sync::Arc;
use std::time::Duration;

use kefu_domain::{Decider, DomainError, DomainEvent};
use kefu_eventlog::{
    Appended, EventLog, ExpectedVersion, LogError, Metadata, NewEvent, RecordedEvent, StreamId,
    read_whole_stream,
};
use tracing::{debug, warn};
use uuid::Uuid;

/// How many times a command is decided again after losing a race for its stream.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// How many times an append that failed for want of the store is resent, unchanged.
const UNAVAILABLE_RESENDS: u32 = 2;

/// Where the write side mints new ids (events', and the entities the desk creates). UUIDv7
/// from the system clock by default; a simulation passes a seeded source, so that one seed
/// writes one log.
pub type Ids = Arc<dyn Fn() -> Uuid + Send + Sync>;

/// The production id source: UUIDv7, time-ordered like the log.
pub fn v7_ids() -> Ids {
    Arc::new(Uuid::now_v7)
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The rules refused the command; nothing was written.
    #[error(transparent)]
    Rejected(#[from] DomainError),
    /// Other writers kept changing the stream; nothing of this command was written.
    #[error("{stream} changed under the command {attempts} times in a row; try again")]
    Contended { stream: String, attempts: u32 },
    /// A stored event cannot be read back as this stream's event: the log and this build
    /// disagree (an event type this build does not know, or a newer schema version).
    #[error("cannot load {stream}: event at version {version}: {source}")]
    Load {
        stream: String,
        version: u64,
        source: DomainError,
    },
    #[error(transparent)]
    Log(#[from] LogError),
}

/// What a command did.
#[derive(Clone)]
pub struct Executed<D: Decider> {
    /// The events decided, as appended (empty when the command changed nothing).
    pub events: Vec<D::Event>,
    /// Where they landed; `None` when there was nothing to append.
    pub appended: Option<Appended>,
    /// The stream's state after the command.
    pub state: D::State,
    /// How many times the command was decided (1 unless it lost a race).
    pub attempts: u32,
}

impl<D: Decider> std::fmt::Debug for Executed<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executed")
            .field("events", &self.events)
            .field("appended", &self.appended)
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// A stream's state as loaded from the log.
#[derive(Clone)]
pub struct Loaded<D: Decider> {
    pub state: D::State,
    /// The version of the last event, `None` for a stream with no events.
    pub version: Option<u64>,
    /// The event whose reactions the fold looked for (`None`: it looked for none).
    cause: Option<Uuid>,
    /// The reaction keys of the stream's events caused by `cause`.
    reactions: Vec<String>,
}

impl<D: Decider> Loaded<D> {
    /// A stream with no events yet, about to be folded looking for `cause`'s reactions.
    fn empty(cause: Option<Uuid>) -> Self {
        Loaded {
            state: D::initial_state(),
            version: None,
            cause,
            reactions: Vec::new(),
        }
    }

    /// The fold one stored event further (its payload given apart, so the caller chooses
    /// whether to keep the event), noting its reaction key when `cause` caused it.
    fn evolve(
        mut self,
        stream: &StreamId,
        e: &RecordedEvent,
        payload: serde_json::Value,
    ) -> Result<Self, CommandError> {
        let event =
            D::Event::decode(&e.event_type, e.schema_version, payload).map_err(|source| {
                CommandError::Load {
                    stream: stream.to_string(),
                    version: e.version,
                    source,
                }
            })?;
        if self.cause == Some(e.metadata.causation_id)
            && let Some(key) = event.reaction_key()
        {
            self.reactions.push(key);
        }
        Ok(Loaded {
            state: D::evolve(self.state, &event),
            version: Some(e.version),
            cause: self.cause,
            reactions: self.reactions,
        })
    }
}

pub struct CommandService<L> {
    log: Arc<L>,
    max_attempts: u32,
    ids: Ids,
}

impl<L> Clone for CommandService<L> {
    fn clone(&self) -> Self {
        CommandService {
            log: self.log.clone(),
            max_attempts: self.max_attempts,
            ids: self.ids.clone(),
        }
    }
}

impl<L: EventLog> CommandService<L> {
    pub fn new(log: Arc<L>) -> Self {
        CommandService {
            log,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            ids: v7_ids(),
        }
    }

    /// Mints event ids (and the desk's new entities' ids) from `ids` instead of UUIDv7.
    pub fn with_ids(mut self, ids: Ids) -> Self {
        self.ids = ids;
        self
    }

    /// A new id from the service's source.
    pub fn new_id(&self) -> Uuid {
        (self.ids)()
    }

    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    pub fn log(&self) -> &Arc<L> {
        &self.log
    }

    /// Folds the stream of `id`.
    pub async fn load<D: Decider>(&self, id: D::Id) -> Result<Loaded<D>, CommandError> {
        self.load_reacting::<D>(id, None).await
    }

    /// Folds the stream of `id` for commands carrying `metadata`: when they react to an event,
    /// the fold collects the reactions already recorded for it, so that
    /// [`CommandService::execute_all_on`] can decide on this state without reading the stream
    /// again. What a worker's shell loads once per reaction.
    pub async fn load_for<D: Decider>(
        &self,
        id: D::Id,
        metadata: &Metadata,
    ) -> Result<Loaded<D>, CommandError> {
        self.load_reacting::<D>(id, reaction_cause(metadata)).await
    }

    /// Folds the stream of `id`, collecting the reaction keys of its events caused by
    /// `cause` (none without one).
    async fn load_reacting<D: Decider>(
        &self,
        id: D::Id,
        cause: Option<Uuid>,
    ) -> Result<Loaded<D>, CommandError> {
        let stream = stream_of::<D>(id)?;
        let stored = read_whole_stream(&*self.log, &stream).await?;
        let mut loaded = Loaded::<D>::empty(cause);
        for mut e in stored {
            let payload = std::mem::take(&mut e.payload);
            loaded = loaded.evolve(&stream, &e, payload)?;
        }
        Ok(loaded)
    }

    /// Folds the stream of `id` and hands back the events it read too, for a reader that
    /// both decides on the state and shows the events (the desk's conversation read), so that
    /// it reads the stream once.
    pub async fn load_with_events<D: Decider>(
        &self,
        id: D::Id,
    ) -> Result<(Loaded<D>, Vec<RecordedEvent>), CommandError> {
        let stream = stream_of::<D>(id)?;
        let stored = read_whole_stream(&*self.log, &stream).await?;
        let mut loaded = Loaded::<D>::empty(None);
        for e in &stored {
            loaded = loaded.evolve(&stream, e, e.payload.clone())?;
        }
        Ok((loaded, stored))
    }

    /// Decides `command` against the stream of `id` and appends the result.
    pub async fn execute<D: Decider>(
        &self,
        id: D::Id,
        command: D::Command,
        metadata: &Metadata,
    ) -> Result<Executed<D>, CommandError>
    where
        D::Command: Clone,
    {
        self.execute_all::<D>(id, vec![command], metadata).await
    }

    /// Decides `commands` against the stream of `id` as one decision
    /// ([`kefu_domain::decide_all`]) and appends all their events at once: either every
    /// command holds and one append records them, or the first refusal is the answer and
    /// nothing is written.
    ///
    /// A reaction (metadata caused by an event, not a request) whose events the stream
    /// already holds for that cause is done: it answers success and appends nothing
    /// ([`kefu_domain::already_reacted`]). That is what makes a worker restarted after a
    /// crash, or a second instance, act once on each event.
    pub async fn execute_all<D: Decider>(
        &self,
        id: D::Id,
        commands: Vec<D::Command>,
        metadata: &Metadata,
    ) -> Result<Executed<D>, CommandError>
    where
        D::Command: Clone,
    {
        let loaded = self.load_for::<D>(id, metadata).await?;
        self.execute_all_on::<D>(id, loaded, commands, metadata)
            .await
    }

    /// [`CommandService::execute_all`] on a state the caller loaded already
    /// ([`CommandService::load_for`]), so that a reaction that read the stream to decide what
    /// to do does not read it again to do it: the stream is read again only when another
    /// writer got in first (or the fold looked for another cause's reactions).
    pub async fn execute_all_on<D: Decider>(
        &self,
        id: D::Id,
        loaded: Loaded<D>,
        commands: Vec<D::Command>,
        metadata: &Metadata,
    ) -> Result<Executed<D>, CommandError>
    where
        D::Command: Clone,
    {
        let stream = stream_of::<D>(id)?;
        let cause = reaction_cause(metadata);
        let mut loaded = if loaded.cause == cause {
            loaded
        } else {
            self.load_reacting::<D>(id, cause).await?
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let events = kefu_domain::decide_all::<D>(&loaded.state, commands.iter().cloned())?;
            let done = kefu_domain::already_reacted(&loaded.reactions, &events);
            if done {
                debug!(%stream, cause = %metadata.causation_id, "reaction recorded already");
            }
            if events.is_empty() || done {
                let events = if done { Vec::new() } else { events };
                return Ok(Executed {
                    events,
                    appended: None,
                    state: loaded.state,
                    attempts,
                });
            }
            let batch = events
                .iter()
                .map(|e| to_new_event(e, self.new_id(), metadata))
                .collect::<Result<Vec<_>, _>>()?;
            let expected = match loaded.version {
                None => ExpectedVersion::NoStream,
                Some(v) => ExpectedVersion::Exact(v),
            };
            match self.append(&stream, expected, batch).await {
                Ok(appended) => {
                    let state = events.iter().fold(loaded.state, D::evolve);
                    debug!(%stream, version = appended.last_version, attempts, "command executed");
                    return Ok(Executed {
                        events,
                        appended: Some(appended),
                        state,
                        attempts,
                    });
                }
                Err(e) if e.is_conflict() && attempts < self.max_attempts => {
                    debug!(%stream, attempts, "stream changed under the command; deciding again");
                    loaded = self.load_reacting::<D>(id, cause).await?;
                }
                Err(e) if e.is_conflict() => {
                    return Err(CommandError::Contended {
                        stream: stream.to_string(),
                        attempts,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Appends, resending the same batch (same event ids, so the log acknowledges it once)
    /// when the store did not answer: the first try may have committed.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        batch: Vec<NewEvent>,
    ) -> Result<Appended, LogError> {
        let mut resends = 0;
        loop {
            match self.log.append(stream, expected, batch.clone()).await {
                Err(LogError::Unavailable { backend, message })
                    if resends < UNAVAILABLE_RESENDS =>
                {
                    resends += 1;
                    warn!(%stream, backend, %message, resends, "store unavailable; resending the batch");
                    // Give a failing-over server a moment; 100 ms, then 400 ms.
                    tokio::time::sleep(Duration::from_millis(100 * 4u64.pow(resends - 1))).await;
                }
                other => return other,
            }
        }
    }
}

/// The event a command reacts to: its cause when that is an event, not the request itself
/// (`Metadata::for_request` makes a request its own cause).
fn reaction_cause(metadata: &Metadata) -> Option<Uuid> {
    (metadata.causation_id != metadata.correlation_id).then_some(metadata.causation_id)
}

pub(crate) fn stream_of<D: Decider>(id: D::Id) -> Result<StreamId, LogError> {
    StreamId::new(D::stream_id(id))
}

fn to_new_event<E: DomainEvent>(
    event: &E,
    id: Uuid,
    metadata: &Metadata,
) -> Result<NewEvent, DomainError> {
    let encoded = event.encode()?;
    Ok(
        NewEvent::new(encoded.event_type, encoded.payload, metadata.clone())
            .with_schema_version(encoded.schema_version)
            .with_id(id),
    )
}
