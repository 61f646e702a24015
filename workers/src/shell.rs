//! The one shell the workers' reactions run in.
//!
//! A worker that reacts to what happens in a conversation (the bot, the router, the survey offers)
//! is a pure function: given the conversation as its stream folds now, the time, and the event, it
//! says what it means to do ([`Intent`]s). It reads nothing and writes nothing; it is tested
//! given/when/then like the domain (`workers/tests/pure_reactions.rs`). An intent is commands on
//! that conversation, decided as one and appended at once, or a route to a queue
//! ([`Intent::Route`]: the shell folds the queue's snapshot and records the routing and the
//! queueing in one append, `kefu_desk::route_commands`, as `Desk::route` does). What a reaction
//! needs beyond the conversation its worker loads per batch (the bot's knowledge base and
//! switchboard, the router's queue list) or per event through a [`Gather`] (the router's order from
//! the gateway), between the fold and the pure call. The assigner and the sweeps run through
//! `runtime.rs` without the shell, the probes in a loop of their own (`probes.rs`). The shell does
//! the rest, the same way for every worker:
//!
//! - **Follows the typed feed**: a batch from the worker's subscription (`runtime::run`,
//!   checkpoints as there), each event decoded once ([`kefu_feed`]).
//! - **Lanes**: events about one conversation are reacted to in log order, one after the other;
//!   different conversations' at the same time (at most [`Shell::with_lanes`] at once,
//!   [`DEFAULT_LANES`] by default), so one slow conversation (a retried append, a store round trip)
//!   does not hold the others up. Nothing a reaction decides depends on another conversation's, so
//!   no order between lanes is lost. The batch is done (and the worker's checkpoint may move) when
//!   every lane is.
//! - **Loads what a reaction needs once**: the conversation is folded once per event, with the
//!   reactions already recorded for that event
//!   ([`CommandService::load_for`](kefu_desk::command::CommandService::load_for)), and the first
//!   intent is decided on that very state; only a lost race reads the stream again.
//!   `workers/tests/hot_path.rs` counts it (a counting, gating wrapper around the real log): a chat
//!   turn's message and the bot's answer each fold the conversation once and append once; a
//!   conversation whose appends are held does not hold up another, and each conversation's turns
//!   are answered in order.
//! - **Executes intents through the command layer**, each caused by the event it answers, so every
//!   reaction stays keyed by its cause (see `command.rs`): a replay after a crash, or a second
//!   instance, changes nothing.
//! - **One policy for refused commands**: the domain refusing an intent means the conversation
//!   moved on (closed, with a human, reacted to already); the reaction ends there, logged, and is
//!   no error. A command refused as malformed is the worker's own bug: logged as an error, and no
//!   more (retrying it would stop the worker for every conversation). The intents after it were
//!   decided on the premise that it happens, so they are dropped too. Anything else (the store
//!   away, a race lost too often) is an error: the batch is tried again from the checkpoint.
//! - **Clock and ids injected**: the reaction gets the desk's time ([`Given::now`]); the ids it
//!   records are derived from its cause (the bot's reply id from the customer's message id), so
//!   deciding it twice decides the same thing.

use std::future::Future;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use kefu_domain::conversation::{
    Conversation, ConversationCommand, ConversationDecider, ConversationState, Features,
    RoutingReason,
};
use kefu_domain::ids::{ConversationId, QueueId};
use kefu_domain::{Decider, DomainError, Event};
use kefu_eventlog::{Actor, EventLog, Metadata, RecordedEvent};

use crate::runtime::WorkerError;
use kefu_desk::command::CommandError;
use kefu_desk::{Desk, route_commands};

/// How many conversations a shell reacts to at once, unless told otherwise: enough to keep
/// the store busy while one lane waits for an append, few enough not to crowd out the server
/// it shares the cores with.
pub const DEFAULT_LANES: usize = 16;

/// What a reaction means to do, for the shell to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// Commands on the conversation the event is about, decided as one and appended at once:
    /// all of them or, at the first refusal, none.
    Conversation(Vec<ConversationCommand>),
    /// Route the conversation to `queue` and queue it there, in one append
    /// ([`kefu_desk::route_commands`]): the shell folds the queue's snapshot for it.
    Route {
        queue: QueueId,
        reasons: Vec<RoutingReason>,
        model_version: String,
        features: Features,
        at: DateTime<Utc>,
    },
}

/// What a worker loads for one reaction beyond the conversation (an outside system's answer,
/// say), after the shell has folded the conversation and before the pure reaction runs.
pub trait Gather: Sync {
    type Seen: Send;

    fn gather<'a>(
        &'a self,
        given: &'a Given<'a>,
        work: &'a Work<'a>,
    ) -> impl Future<Output = Result<Self::Seen, WorkerError>> + Send + 'a;
}

/// Nothing beyond the conversation.
pub struct NothingMore;

impl Gather for NothingMore {
    type Seen = ();

    fn gather<'a>(
        &'a self,
        _: &'a Given<'a>,
        _: &'a Work<'a>,
    ) -> impl Future<Output = Result<(), WorkerError>> + Send + 'a {
        std::future::ready(Ok(()))
    }
}

/// What the shell gives a reaction besides the event.
pub struct Given<'a> {
    /// The conversation as its stream folds when the reaction begins (later events of the
    /// stream included: a reaction may find its work overtaken).
    pub conversation: &'a Conversation,
    /// The desk's clock, read once for the reaction.
    pub now: DateTime<Utc>,
}

/// An event of the batch a worker reacts to, decoded, with the conversation it is about.
pub struct Work<'a> {
    pub conversation: ConversationId,
    pub recorded: &'a RecordedEvent,
    pub event: Event,
}

/// The events of `batch` about a conversation that `wanted` picks, decoded once each.
pub fn conversation_work<'a>(
    batch: &'a [RecordedEvent],
    wanted: impl Fn(&Event) -> bool,
) -> Vec<Work<'a>> {
    batch
        .iter()
        .filter_map(|recorded| {
            let conversation = ConversationDecider::id_of_stream(recorded.stream_id.as_str())?;
            let event = kefu_feed::decode_or_other(recorded);
            wanted(&event).then_some(Work {
                conversation,
                recorded,
                event,
            })
        })
        .collect()
}

/// Runs reactions for a worker (see the module docs).
pub struct Shell<L> {
    desk: Desk<L>,
    actor: Actor,
    worker: &'static str,
    lanes: usize,
}

impl<L> Clone for Shell<L> {
    fn clone(&self) -> Self {
        Shell {
            desk: self.desk.clone(),
            actor: self.actor.clone(),
            worker: self.worker,
            lanes: self.lanes,
        }
    }
}

impl<L: EventLog> Shell<L> {
    /// A shell for `worker`, whose commands are recorded as `actor`'s.
    pub fn new(desk: Desk<L>, worker: &'static str, actor: Actor) -> Self {
        Shell {
            desk,
            actor,
            worker,
            lanes: DEFAULT_LANES,
        }
    }

    /// How many conversations it reacts to at once (at least one).
    pub fn with_lanes(mut self, lanes: usize) -> Self {
        self.lanes = lanes.max(1);
        self
    }

    pub fn desk(&self) -> &Desk<L> {
        &self.desk
    }

    /// Reacts to `work` (in log order) with `react`: one lane per conversation, in order
    /// within it, lanes side by side. Returns when every lane is done; the first error
    /// (never a refusal) is the batch's.
    pub async fn react<F>(&self, work: Vec<Work<'_>>, react: F) -> Result<(), WorkerError>
    where
        F: Fn(&Given<'_>, &Work<'_>) -> Vec<Intent> + Sync,
    {
        self.react_gathering(work, &NothingMore, |given, work, ()| react(given, work))
            .await
    }

    /// [`Shell::react`] for a reaction that needs more than the conversation: `gather` loads
    /// it for each event, between the fold and the reaction.
    pub async fn react_gathering<G, F>(
        &self,
        work: Vec<Work<'_>>,
        gather: &G,
        react: F,
    ) -> Result<(), WorkerError>
    where
        G: Gather,
        F: Fn(&Given<'_>, &Work<'_>, G::Seen) -> Vec<Intent> + Sync,
    {
        let mut waiting = lanes(work).into_iter();
        let mut running = FuturesUnordered::new();
        for lane in waiting.by_ref().take(self.lanes) {
            running.push(self.run_lane(lane, gather, &react));
        }
        // After a failure no lane starts, but those running finish: an append cut off midway
        // would leave its outcome unknown for no gain (the batch is retried either way).
        let mut failed = None;
        while let Some(done) = running.next().await {
            match done {
                Err(e) => {
                    failed.get_or_insert(e);
                }
                Ok(()) if failed.is_none() => {
                    if let Some(lane) = waiting.next() {
                        running.push(self.run_lane(lane, gather, &react));
                    }
                }
                Ok(()) => {}
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// One conversation's events, in order.
    async fn run_lane<G, F>(
        &self,
        lane: Vec<Work<'_>>,
        gather: &G,
        react: &F,
    ) -> Result<(), WorkerError>
    where
        G: Gather,
        F: Fn(&Given<'_>, &Work<'_>, G::Seen) -> Vec<Intent> + Sync,
    {
        for work in &lane {
            self.react_to(work, gather, react).await?;
        }
        Ok(())
    }

    /// One reaction: load, gather, decide (pure), execute.
    async fn react_to<G, F>(
        &self,
        work: &Work<'_>,
        gather: &G,
        react: &F,
    ) -> Result<(), WorkerError>
    where
        G: Gather,
        F: Fn(&Given<'_>, &Work<'_>, G::Seen) -> Vec<Intent> + Sync,
    {
        let meta = Metadata::caused_by(self.actor.clone(), work.recorded);
        let commands = self.desk.commands();
        let loaded = commands
            .load_for::<ConversationDecider>(work.conversation, &meta)
            .await?;
        let intents = {
            let ConversationState::Started(conversation) = &loaded.state else {
                return Ok(());
            };
            let given = Given {
                conversation,
                now: self.desk.now(),
            };
            let seen = gather.gather(&given, work).await?;
            react(&given, work, seen)
        };
        let mut loaded = Some(loaded);
        for intent in intents {
            let batch = match intent {
                Intent::Conversation(batch) => batch,
                Intent::Route {
                    queue,
                    reasons,
                    model_version,
                    features,
                    at,
                } => {
                    let queue = self.desk.queue_snapshot(queue).await?;
                    route_commands(queue, reasons, model_version, features, at)
                }
            };
            // The first intent is decided on the state the reaction saw; a later one on the
            // stream as the earlier ones left it.
            let outcome = match loaded.take() {
                Some(state) => {
                    commands
                        .execute_all_on::<ConversationDecider>(
                            work.conversation,
                            state,
                            batch,
                            &meta,
                        )
                        .await
                }
                None => {
                    commands
                        .execute_all::<ConversationDecider>(work.conversation, batch, &meta)
                        .await
                }
            };
            match outcome {
                Ok(_) => {}
                Err(CommandError::Rejected(reason @ DomainError::Validation { .. })) => {
                    // The worker's own bug: said loudly, but it must not stop the worker for
                    // every other conversation.
                    tracing::error!(
                        worker = self.worker,
                        conversation = %work.conversation,
                        cause = %work.recorded.id,
                        %reason,
                        "a reaction made a command the domain refuses as malformed"
                    );
                    return Ok(());
                }
                Err(CommandError::Rejected(reason)) => {
                    tracing::debug!(
                        worker = self.worker,
                        conversation = %work.conversation,
                        cause = %work.recorded.id,
                        %reason,
                        "nothing to do after all"
                    );
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// `work` split by conversation, each lane in log order, lanes in the order they first occur.
fn lanes(work: Vec<Work<'_>>) -> Vec<Vec<Work<'_>>> {
    let mut lanes: Vec<Vec<Work<'_>>> = Vec::new();
    let mut lane_of = std::collections::HashMap::new();
    for w in work {
        let at = *lane_of.entry(w.conversation).or_insert_with(|| {
            lanes.push(Vec::new());
            lanes.len() - 1
        });
        lanes[at].push(w);
    }
    lanes
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_eventlog::{ActorKind, Position, StreamId};
    use uuid::Uuid;

    fn recorded(stream: &str, position: u64) -> RecordedEvent {
        RecordedEvent {
            id: Uuid::now_v7(),
            stream_id: StreamId::new(stream).unwrap(),
            version: 0,
            position: Position(position),
            event_type: "Whatever".into(),
            schema_version: 1,
            payload: serde_json::json!({}),
            recorded_at: Utc::now(),
            metadata: Metadata::for_request(Actor::new(ActorKind::System, "test"), Uuid::now_v7()),
        }
    }

    #[test]
    fn lanes_keep_each_conversations_order_and_split_the_rest() {
        let (a, b) = (
            ConversationId::from_uuid(Uuid::now_v7()),
            ConversationId::from_uuid(Uuid::now_v7()),
        );
        let events: Vec<RecordedEvent> = [a, b, a, a, b]
            .iter()
            .enumerate()
            .map(|(i, c)| recorded(&ConversationDecider::stream_id(*c), i as u64))
            .collect();
        let work = events
            .iter()
            .map(|r| Work {
                conversation: ConversationDecider::id_of_stream(r.stream_id.as_str()).unwrap(),
                recorded: r,
                event: Event::Other,
            })
            .collect();
        let split: Vec<Vec<u64>> = lanes(work)
            .iter()
            .map(|l| l.iter().map(|w| w.recorded.position.0).collect())
            .collect();
        assert_eq!(split, [vec![0, 2, 3], vec![1, 4]]);
    }
}
