//! kefu-desk, the write side's application layer: the command service ([`command`]) and the desk.
//!
//! The desk: what people do at the help desk (a customer starts a chat, an agent accepts it, a
//! supervisor routes it, an admin defines a queue), each as the commands it takes across streams.
//! The GraphQL API and the workers call the same ones, so a rule that spans streams is written
//! once.
//!
//! Every operation reads the clock once per command ([`Desk::with_clock`] for tests and drills),
//! mints the ids it creates (from the command service's id source, [`CommandService::new_id`]), and
//! returns where its last event landed in the log ([`Done::position`]), so a client can wait for
//! the read models to catch up with its own writes.
//!
//! It depends only on the domain, the log and the log's decoder (`kefu-feed`;
//! `desk/tests/boundary.rs` holds it), so a mutation compiles without search, the bot or the read
//! models (issue 17, step 4), the command layer builds and tests on its own (`cargo test -p
//! kefu-desk`), and no read model or model can leak into a decision. Its operations are grouped by
//! what they change: [`chat`] (a customer's conversation), [`seats`] (assignment and seats),
//! [`tickets`], [`admin`] (switches, queues, agents, the knowledge base).
//!
//! # Operations across streams
//!
//! A mutation that changes one stream is one decision and one append: where it changes several
//! things there (`updateTicket`'s fields, assignee and status; `changeAgent`'s skills and seats;
//! `route`'s routing decision and queueing), the commands are decided together with
//! [`kefu_domain::decide_all`] and appended at once by [`CommandService::execute_all`]. Operations
//! that touch several streams cannot be one append (the log is transactional per stream, as
//! KurrentDB is). Each is ordered so that a crash between its appends leaves nothing a reader must
//! undo, and is either atomic in effect or resumable (the streams each touches, in order):
//!
//! - `startConversation`: the customer (a profile, the first time only), then the conversation.
//!   Resumable: a resend finds the profile and starts the conversation.
//! - `assignConversation`, `acceptConversation` and the assigner: the agent (a seat), then the
//!   conversation (the assignment). Resumable: a seat whose chat went elsewhere or closed is freed
//!   by the `OrphanedSeats` sweep (`workers/src/assigner.rs`); a seat whose chat still waits is
//!   used by the next round.
//! - `transferConversation`: the new agent's seat, the conversation, the old agent's seat.
//!   Resumable: the new seat as above; the old seat, if its release was lost, is freed by the sweep
//!   once the chat is with another agent or closed.
//! - `closeConversation` and the idle timeout: the conversation (closed), then the agent (the seat
//!   released). Resumable: the sweep frees the seat of a closed chat.
//! - `openTicket`: the ticket (it reads the conversation or the agent, and writes one stream).
//!   Atomic.
//! - `recordCustomerProfile`, `recordOrder`: the customer. Atomic.
//! - Everything else: one stream. Atomic.
//!
//! An idempotency key's resend (`api/src/graphql/idempotency.rs`) relies on this: it runs an
//! operation again with the same correlation id when the log does not hold its decisive event.

pub mod admin;
pub mod chat;
pub mod command;
pub mod seats;
pub mod tickets;

pub use admin::{NewEntry, QueueDefinition};
pub use chat::{Transfer, route_commands};
pub use command::{CommandError, CommandService, Executed};
pub use tickets::{NewTicket, TicketUpdate};

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kefu_domain::Decider;
use kefu_domain::agent::{AgentDecider, AgentSnapshot};
use kefu_domain::conversation::{ConversationDecider, ConversationSnapshot};
use kefu_domain::ids::{AgentId, ConversationId, QueueId};
use kefu_domain::queue::{QueueDecider, QueueSnapshot};
use kefu_eventlog::{EventLog, Metadata, Position, RecordedEvent};

/// Where the desk reads the time. Tests pass a fixed or stepping clock.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The locale a customer's profile gets when their first conversation creates it.
pub const DEFAULT_LOCALE: &str = "zh-CN";

/// The routing model version recorded when a person, not a model, chose the queue.
pub const MANUAL_ROUTING: &str = "manual";

/// What an operation did: its result, and the log position its last event reached (`None`
/// when it changed nothing, e.g. a message resent with the same id).
#[derive(Debug, Clone, PartialEq)]
pub struct Done<T> {
    pub value: T,
    pub position: Option<Position>,
}

/// The position an operation has reached so far, over its several commands.
#[derive(Default)]
struct Reached(Option<Position>);

impl Reached {
    fn saw<D: Decider>(&mut self, executed: &Executed<D>) {
        if let Some(a) = &executed.appended {
            self.0 = self.0.max(Some(a.last_position));
        }
    }

    fn done<T>(self, value: T) -> Done<T> {
        Done {
            value,
            position: self.0,
        }
    }
}

pub struct Desk<L> {
    commands: CommandService<L>,
    clock: Clock,
}

impl<L> Clone for Desk<L> {
    fn clone(&self) -> Self {
        Desk {
            commands: self.commands.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<L: EventLog> Desk<L> {
    pub fn new(commands: CommandService<L>) -> Self {
        Desk {
            commands,
            clock: Arc::new(Utc::now),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn commands(&self) -> &CommandService<L> {
        &self.commands
    }

    /// The time commands are stamped with.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    async fn run<D: Decider>(
        &self,
        reached: &mut Reached,
        id: D::Id,
        command: D::Command,
        meta: &Metadata,
    ) -> Result<Executed<D>, CommandError>
    where
        D::Command: Clone,
    {
        self.run_all::<D>(reached, id, vec![command], meta).await
    }

    /// Several commands on one stream as one decision and one append (all or nothing).
    async fn run_all<D: Decider>(
        &self,
        reached: &mut Reached,
        id: D::Id,
        commands: Vec<D::Command>,
        meta: &Metadata,
    ) -> Result<Executed<D>, CommandError>
    where
        D::Command: Clone,
    {
        let executed = self.commands.execute_all::<D>(id, commands, meta).await?;
        reached.saw(&executed);
        Ok(executed)
    }

    /// An operation that is one command.
    async fn one<D: Decider>(
        &self,
        id: D::Id,
        command: D::Command,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError>
    where
        D::Command: Clone,
    {
        let mut reached = Reached::default();
        self.run::<D>(&mut reached, id, command, meta).await?;
        Ok(reached.done(()))
    }

    /// The queue as its stream folds now, as a command carries it.
    pub async fn queue_snapshot(&self, id: QueueId) -> Result<QueueSnapshot, CommandError> {
        Ok(self
            .commands
            .load::<QueueDecider>(id)
            .await?
            .state
            .snapshot(id))
    }

    async fn agent(&self, id: AgentId) -> Result<AgentSnapshot, CommandError> {
        Ok(self
            .commands
            .load::<AgentDecider>(id)
            .await?
            .state
            .snapshot(id))
    }

    /// The conversation's state, or `NotCreated` when there is none.
    pub async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<ConversationSnapshot, CommandError> {
        Ok(self
            .commands
            .load::<ConversationDecider>(id)
            .await?
            .state
            .snapshot(id))
    }

    /// The conversation's state and the events it was folded from (see
    /// [`CommandService::load_with_events`]).
    pub async fn conversation_with_events(
        &self,
        id: ConversationId,
    ) -> Result<(ConversationSnapshot, Vec<RecordedEvent>), CommandError> {
        let (loaded, events) = self
            .commands
            .load_with_events::<ConversationDecider>(id)
            .await?;
        Ok((loaded.state.snapshot(id), events))
    }
}
