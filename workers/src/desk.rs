//! The desk: what people do at the help desk (a customer starts a chat, an agent accepts it,
//! a supervisor routes it, an admin defines a queue), each as the commands it takes across
//! streams. The GraphQL API and the workers call the same ones, so a rule that spans
//! streams is written once.
//!
//! Every operation reads the clock once per command, mints the ids it creates (from the
//! command service's id source, [`CommandService::new_id`]), and returns
//! where its last event landed in the log ([`Done::position`]), so a client can wait for the
//! read models to catch up with its own writes.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use kefu_domain::agent::{AgentCommand, AgentDecider, AgentEvent, AgentSnapshot, AgentStatus};
use kefu_domain::common::{BusinessLine, Channel, Party};
use kefu_domain::conversation::{
    CloseReason, ConversationCommand as C, ConversationDecider, ConversationEvent,
    ConversationSnapshot, Features, HandoffReason, RoutingReason, SlaKind, TransferTarget,
};
use kefu_domain::customer::{CustomerCommand, CustomerDecider, CustomerState, CustomerTier, Order};
use kefu_domain::ids::{
    AgentId, Category, ConversationId, CustomerId, KnowledgeEntryId, Locale, MessageId, OrderId,
    QueueId, ScenarioCode, Skill, TicketId,
};
use kefu_domain::knowledge::{KnowledgeCommand, KnowledgeDecider, KnowledgeEdit};
use kefu_domain::queue::{
    OpeningHours, QueueChanges, QueueCommand, QueueDecider, QueueSnapshot, SlaTargets,
};
use kefu_domain::switches::{SWITCHBOARD, Switch, SwitchBoard, SwitchBoardDecider, SwitchCommand};
use kefu_domain::ticket::{
    TicketCommand, TicketDecider, TicketEdit, TicketKind, TicketOrigin, TicketPriority,
    TicketStatus,
};
use kefu_domain::{Decider, DomainError, Event};
use kefu_eventlog::{EventLog, Metadata, Position, RecordedEvent};

use crate::command::{CommandError, CommandService, Executed};

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

/// A new queue, as an admin defines it.
#[derive(Debug, Clone)]
pub struct QueueDefinition {
    pub name: String,
    pub business_line: BusinessLine,
    pub categories: BTreeSet<Category>,
    pub skills: BTreeSet<Skill>,
    pub priority: u8,
    pub sla: SlaTargets,
    pub hours: OpeningHours,
}

/// A new ticket.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub customer: CustomerId,
    /// The conversation it comes from, if any; else it is opened by `agent`.
    pub conversation: Option<ConversationId>,
    pub kind: TicketKind,
    pub priority: TicketPriority,
    pub subject: String,
    pub description: String,
    pub order: Option<OrderId>,
}

/// A new knowledge-base entry.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub question: String,
    pub paraphrases: Vec<String>,
    pub answer: String,
    pub category: Category,
    pub locale: Locale,
}

/// Routing to `queue` and queueing there, as one decision: one append, so a conversation is
/// never left routed but not queued.
pub fn route_commands(
    queue: QueueSnapshot,
    reasons: Vec<RoutingReason>,
    model_version: String,
    features: Features,
    at: DateTime<Utc>,
) -> Vec<C> {
    vec![
        C::Route {
            queue: queue.clone(),
            reasons,
            model_version,
            features,
            at,
        },
        C::Enqueue { queue, at },
    ]
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

    // ---- switches ----

    /// The degradation switches as they stand.
    pub async fn switchboard(&self) -> Result<SwitchBoard, CommandError> {
        Ok(self
            .commands
            .load::<SwitchBoardDecider>(SWITCHBOARD)
            .await?
            .state)
    }

    pub async fn set_switch(
        &self,
        switch: Switch,
        on: bool,
        reason: String,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = SwitchCommand::Set {
            switch,
            on,
            reason,
            at: self.now(),
        };
        self.one::<SwitchBoardDecider>(SWITCHBOARD, command, meta)
            .await
    }

    // ---- customers and conversations ----

    /// The order system records (or updates) a customer's profile.
    pub async fn record_customer_profile(
        &self,
        customer: CustomerId,
        tier: CustomerTier,
        locale: Locale,
        meta: &Metadata,
    ) -> Result<Done<CustomerId>, CommandError> {
        let mut reached = Reached::default();
        let command = CustomerCommand::RecordProfile {
            customer,
            tier,
            locale,
            at: self.now(),
        };
        self.run::<CustomerDecider>(&mut reached, customer, command, meta)
            .await?;
        Ok(reached.done(customer))
    }

    /// The order system records its latest snapshot of one of `customer`'s orders (an upsert:
    /// a resent or older snapshot records nothing; triage reads the orders from this stream).
    pub async fn record_order(
        &self,
        customer: CustomerId,
        order: Order,
        meta: &Metadata,
    ) -> Result<Done<OrderId>, CommandError> {
        let mut reached = Reached::default();
        let id = order.order.clone();
        let command = CustomerCommand::ImportOrder {
            order,
            at: self.now(),
        };
        self.run::<CustomerDecider>(&mut reached, customer, command, meta)
            .await?;
        Ok(reached.done(id))
    }

    /// Starts a conversation for `customer`. A customer kefu has not seen before gets a
    /// profile first (regular tier, `locale` or [`DEFAULT_LOCALE`]); the shop's gateway
    /// refines it later.
    pub async fn start_conversation(
        &self,
        customer: CustomerId,
        locale: Option<Locale>,
        channel: Channel,
        order: Option<OrderId>,
        bot_enabled: bool,
        meta: &Metadata,
    ) -> Result<Done<ConversationId>, CommandError> {
        let mut reached = Reached::default();
        let mut known = self.commands.load::<CustomerDecider>(customer).await?.state;
        if matches!(known, CustomerState::Unknown) {
            let locale = locale.unwrap_or_else(|| Locale::new(DEFAULT_LOCALE));
            let command = CustomerCommand::RecordProfile {
                customer,
                tier: CustomerTier::Regular,
                locale,
                at: self.now(),
            };
            known = self
                .run::<CustomerDecider>(&mut reached, customer, command, meta)
                .await?
                .state;
        }
        let conversation = ConversationId::from_uuid(self.commands.new_id());
        let command = C::Start {
            conversation,
            customer: known.snapshot(customer),
            channel,
            order,
            bot_enabled,
            at: self.now(),
        };
        self.run::<ConversationDecider>(&mut reached, conversation, command, meta)
            .await?;
        Ok(reached.done(conversation))
    }

    pub async fn customer_message(
        &self,
        conversation: ConversationId,
        message: MessageId,
        text: String,
        meta: &Metadata,
    ) -> Result<Done<MessageId>, CommandError> {
        let mut reached = Reached::default();
        let command = C::RecordCustomerTurn {
            message,
            text,
            at: self.now(),
        };
        self.run::<ConversationDecider>(&mut reached, conversation, command, meta)
            .await?;
        Ok(reached.done(message))
    }

    /// The customer confirms or corrects the predicted scenario.
    pub async fn settle_scenario(
        &self,
        conversation: ConversationId,
        actual: ScenarioCode,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = C::SettleScenario {
            actual,
            at: self.now(),
        };
        self.one::<ConversationDecider>(conversation, command, meta)
            .await
    }

    /// Hands the conversation to the humans; the router (or a supervisor) then picks the
    /// queue.
    pub async fn hand_off(
        &self,
        conversation: ConversationId,
        reason: HandoffReason,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = C::HandOff {
            reason,
            at: self.now(),
        };
        self.one::<ConversationDecider>(conversation, command, meta)
            .await
    }

    /// Routes a conversation that waits for a human to `queue` and queues it there.
    /// `model_version` names the model that chose, or [`MANUAL_ROUTING`] for a person;
    /// `features` what it chose from.
    pub async fn route(
        &self,
        conversation: ConversationId,
        queue: QueueId,
        reasons: Vec<RoutingReason>,
        model_version: &str,
        features: Features,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let mut reached = Reached::default();
        let snapshot = self.queue_snapshot(queue).await?;
        let commands = route_commands(
            snapshot,
            reasons,
            model_version.to_owned(),
            features,
            self.now(),
        );
        self.run_all::<ConversationDecider>(&mut reached, conversation, commands, meta)
            .await?;
        Ok(reached.done(()))
    }

    /// Gives a queued conversation to `agent`. The seat is taken on the agent's stream first
    /// (refused when the agent is offline, away or full), so the agent's limit holds however
    /// many assigners run; if the conversation then refuses the agent, the seat is given back.
    pub async fn assign(
        &self,
        conversation: ConversationId,
        agent: AgentId,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let mut reached = Reached::default();
        let take = AgentCommand::TakeChat {
            conversation,
            at: self.now(),
        };
        let seated = self
            .run::<AgentDecider>(&mut reached, agent, take, meta)
            .await?;
        let assign = C::AssignAgent {
            agent: seated.state.snapshot(agent),
            at: self.now(),
        };
        match self
            .run::<ConversationDecider>(&mut reached, conversation, assign, meta)
            .await
        {
            Ok(_) => Ok(reached.done(())),
            Err(refused) => {
                self.release_unless_with(&mut reached, agent, conversation, meta)
                    .await?;
                Err(refused)
            }
        }
    }

    /// The assigner's assignment of a queued conversation, as a reaction to its queueing
    /// (`meta` caused by it), resumable from the log: a seat already taken for this cause and
    /// not given back (an assigner that died between the seat and the assignment, or another
    /// instance ahead of this one) is used rather than `planned`, so one queueing takes one
    /// seat; and a conversation no longer queued (the read model the round planned from was
    /// behind) is left alone before any seat is touched. The agent it went to, or `None`
    /// when it no longer waits.
    pub async fn assign_queued(
        &self,
        conversation: ConversationId,
        planned: AgentId,
        meta: &Metadata,
    ) -> Result<Done<Option<AgentId>>, CommandError> {
        match self.conversation(conversation).await? {
            ConversationSnapshot::Known(c)
                if !c.is_closed()
                    && matches!(
                        c.handling,
                        kefu_domain::conversation::Handling::Queued { .. }
                    ) => {}
            _ => {
                return Ok(Done {
                    value: None,
                    position: None,
                });
            }
        }
        let agent = self
            .seat_taken_for(conversation, meta)
            .await?
            .unwrap_or(planned);
        let done = self.assign(conversation, agent, meta).await?;
        Ok(Done {
            value: Some(agent),
            position: done.position,
        })
    }

    /// The agent holding a seat taken for `conversation` by a command caused as `meta` is,
    /// and not given back since, read from the request's correlation (the audit trail's
    /// index), which holds every reaction to it.
    async fn seat_taken_for(
        &self,
        conversation: ConversationId,
        meta: &Metadata,
    ) -> Result<Option<AgentId>, CommandError> {
        if meta.causation_id == meta.correlation_id {
            return Ok(None);
        }
        let mut held: Vec<AgentId> = Vec::new();
        for mut e in self
            .commands
            .log()
            .read_correlation(meta.correlation_id)
            .await?
        {
            let (Some(agent), true) = (
                AgentDecider::id_of_stream(e.stream_id.as_str()),
                e.metadata.causation_id == meta.causation_id,
            ) else {
                continue;
            };
            match kefu_feed::decode_taking(&mut e) {
                Event::Agent(AgentEvent::AgentChatTaken(t)) if t.conversation == conversation => {
                    held.push(agent)
                }
                Event::Agent(AgentEvent::AgentChatReleased(r))
                    if r.conversation == conversation =>
                {
                    held.retain(|a| *a != agent)
                }
                _ => {}
            }
        }
        Ok(held.last().copied())
    }

    /// Gives back `agent`'s seat for `conversation` after a refused assignment or transfer,
    /// unless the conversation is with that agent after all: a concurrent assigner that
    /// matched the same pair took the same seat (taking it twice is one seat) and won, and
    /// releasing it would free a seat in use.
    async fn release_unless_with(
        &self,
        reached: &mut Reached,
        agent: AgentId,
        conversation: ConversationId,
        meta: &Metadata,
    ) -> Result<(), CommandError> {
        if let ConversationSnapshot::Known(c) = self.conversation(conversation).await?
            && c.handling.agent() == Some(agent)
            && !c.is_closed()
        {
            return Ok(());
        }
        self.release(reached, agent, conversation, meta).await
    }

    /// Frees the seats of `agent` that no assignment will ever use: a seat taken for a
    /// conversation that has since been given to another agent or closed, by an event recorded
    /// after the seat was taken. Such a seat is left behind when an assigner dies (or its store
    /// fails) between taking the seat and recording the assignment, and a later round gives the
    /// conversation to someone else; it would hold a seat forever and keep the agent from
    /// going offline. A seat whose conversation still waits is left alone: an assignment may
    /// be on its way. Each release is caused by the event that made the seat moot. How many
    /// seats it freed.
    pub async fn free_orphaned_seats(
        &self,
        agent: AgentId,
        actor: &kefu_eventlog::Actor,
    ) -> Result<usize, CommandError> {
        let log = self.commands.log();
        let agent_stream = crate::command::stream_of::<AgentDecider>(agent)?;
        let mut taken_at: std::collections::HashMap<ConversationId, Position> =
            std::collections::HashMap::new();
        for mut e in kefu_eventlog::read_whole_stream(&**log, &agent_stream).await? {
            if let Event::Agent(AgentEvent::AgentChatTaken(t)) = kefu_feed::decode_taking(&mut e) {
                taken_at.insert(t.conversation, e.position);
            }
        }
        let held = match self.commands.load::<AgentDecider>(agent).await?.state {
            kefu_domain::agent::AgentState::Registered(a) => a.active_chats,
            _ => return Ok(0),
        };
        let mut freed = 0;
        for conversation in held {
            let Some(&taken) = taken_at.get(&conversation) else {
                continue;
            };
            let stream = crate::command::stream_of::<ConversationDecider>(conversation)?;
            let events = kefu_eventlog::read_whole_stream(&**log, &stream).await?;
            let Some(moot) = events.iter().rev().find(|e| {
                e.position > taken
                    && matches!(
                        e.event_type.as_str(),
                        "AgentAssigned" | "ConversationTransferred" | "ConversationClosed"
                    )
            }) else {
                continue;
            };
            let elsewhere = match self.conversation(conversation).await? {
                ConversationSnapshot::Known(c) => {
                    c.is_closed() || c.handling.agent().is_some_and(|a| a != agent)
                }
                ConversationSnapshot::Unknown(_) => false,
            };
            if elsewhere {
                let meta = Metadata::caused_by(actor.clone(), moot);
                let release = AgentCommand::ReleaseChat {
                    conversation,
                    at: self.now(),
                };
                // Another sweeper may have freed it first: then nothing is appended.
                let done = self
                    .commands
                    .execute::<AgentDecider>(agent, release, &meta)
                    .await?;
                freed += usize::from(!done.events.is_empty());
            }
        }
        Ok(freed)
    }

    /// Frees `agent`'s seat for `conversation` if they still hold it (a no-op otherwise): what
    /// the assigner does on every close it sees, caused by the close, so a seat whose release
    /// was lost (the close landed, the release did not: an outage, a crash) is free at once
    /// rather than at the next sweep.
    pub async fn free_seat(
        &self,
        agent: AgentId,
        conversation: ConversationId,
        meta: &Metadata,
    ) -> Result<bool, CommandError> {
        let mut reached = Reached::default();
        let release = AgentCommand::ReleaseChat {
            conversation,
            at: self.now(),
        };
        let executed = self
            .run::<AgentDecider>(&mut reached, agent, release, meta)
            .await?;
        Ok(executed.appended.is_some())
    }

    async fn release(
        &self,
        reached: &mut Reached,
        agent: AgentId,
        conversation: ConversationId,
        meta: &Metadata,
    ) -> Result<(), CommandError> {
        let release = AgentCommand::ReleaseChat {
            conversation,
            at: self.now(),
        };
        self.run::<AgentDecider>(reached, agent, release, meta)
            .await?;
        Ok(())
    }

    pub async fn agent_message(
        &self,
        conversation: ConversationId,
        agent: AgentId,
        message: MessageId,
        text: String,
        meta: &Metadata,
    ) -> Result<Done<MessageId>, CommandError> {
        let mut reached = Reached::default();
        let command = C::RecordAgentTurn {
            agent,
            message,
            text,
            at: self.now(),
        };
        self.run::<ConversationDecider>(&mut reached, conversation, command, meta)
            .await?;
        Ok(reached.done(message))
    }

    pub async fn add_note(
        &self,
        conversation: ConversationId,
        author: AgentId,
        text: String,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = C::AddInternalNote {
            author: self.agent(author).await?,
            text,
            at: self.now(),
        };
        self.one::<ConversationDecider>(conversation, command, meta)
            .await
    }

    /// Moves a conversation from `from_agent` to another agent (seat first, as in
    /// [`Desk::assign`]) or back to a queue, then frees `from_agent`'s seat.
    pub async fn transfer(
        &self,
        conversation: ConversationId,
        from_agent: AgentId,
        to: Transfer,
        reason: String,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let mut reached = Reached::default();
        let (target, seated) = match to {
            Transfer::ToAgent(agent) => {
                let take = AgentCommand::TakeChat {
                    conversation,
                    at: self.now(),
                };
                let seated = self
                    .run::<AgentDecider>(&mut reached, agent, take, meta)
                    .await?;
                (
                    TransferTarget::Agent(seated.state.snapshot(agent)),
                    Some(agent),
                )
            }
            Transfer::ToQueue(queue) => (
                TransferTarget::Queue(self.queue_snapshot(queue).await?),
                None,
            ),
        };
        let command = C::Transfer {
            from_agent,
            to: target,
            reason,
            at: self.now(),
        };
        if let Err(refused) = self
            .run::<ConversationDecider>(&mut reached, conversation, command, meta)
            .await
        {
            if let Some(agent) = seated {
                self.release_unless_with(&mut reached, agent, conversation, meta)
                    .await?;
            }
            return Err(refused);
        }
        self.release(&mut reached, from_agent, conversation, meta)
            .await?;
        Ok(reached.done(()))
    }

    /// Closes the conversation and frees the seat of the agent who had it.
    pub async fn close(
        &self,
        conversation: ConversationId,
        by: Party,
        reason: CloseReason,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = C::Close {
            by,
            reason,
            at: self.now(),
        };
        self.close_with(conversation, command, meta).await
    }

    /// Closes a conversation idle for `idle_after_secs` (the domain checks it against the
    /// conversation's own last activity), freeing the agent's seat.
    pub async fn time_out_idle(
        &self,
        conversation: ConversationId,
        idle_after_secs: u32,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = C::TimeOutIdle {
            idle_after_secs,
            at: self.now(),
        };
        self.close_with(conversation, command, meta).await
    }

    /// Runs a command that closes the conversation, then frees the seat it released.
    async fn close_with(
        &self,
        conversation: ConversationId,
        command: C,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let mut reached = Reached::default();
        let closed = self
            .run::<ConversationDecider>(&mut reached, conversation, command, meta)
            .await?;
        for event in &closed.events {
            if let ConversationEvent::ConversationClosed(c) = event
                && let Some(agent) = c.released_agent
            {
                self.release(&mut reached, agent, conversation, meta)
                    .await?;
            }
        }
        Ok(reached.done(()))
    }

    pub async fn reopen(
        &self,
        conversation: ConversationId,
        by: Party,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = C::Reopen { by, at: self.now() };
        self.one::<ConversationDecider>(conversation, command, meta)
            .await
    }

    pub async fn offer_survey(
        &self,
        conversation: ConversationId,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = C::OfferSurvey { at: self.now() };
        self.one::<ConversationDecider>(conversation, command, meta)
            .await
    }

    /// Reminds the customer of the survey offered at least `after_secs` ago, once.
    pub async fn remind_survey(
        &self,
        conversation: ConversationId,
        after_secs: u32,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = C::RemindSurvey {
            after_secs,
            at: self.now(),
        };
        self.one::<ConversationDecider>(conversation, command, meta)
            .await
    }

    /// Warns that `kind`'s target of the current queueing is `fraction` gone (the domain
    /// checks it against the stream).
    pub async fn warn_sla(
        &self,
        conversation: ConversationId,
        kind: SlaKind,
        fraction: f64,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = C::WarnSla {
            kind,
            fraction,
            at: self.now(),
        };
        self.one::<ConversationDecider>(conversation, command, meta)
            .await
    }

    /// Records a breach of `kind`'s target and escalates the conversation.
    pub async fn breach_sla(
        &self,
        conversation: ConversationId,
        kind: SlaKind,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = C::BreachSla {
            kind,
            at: self.now(),
        };
        self.one::<ConversationDecider>(conversation, command, meta)
            .await
    }

    pub async fn answer_survey(
        &self,
        conversation: ConversationId,
        score: u8,
        comment: Option<String>,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = C::AnswerSurvey {
            score,
            comment,
            at: self.now(),
        };
        self.one::<ConversationDecider>(conversation, command, meta)
            .await
    }

    // ---- tickets ----

    pub async fn open_ticket(
        &self,
        ticket: NewTicket,
        by_agent: Option<AgentId>,
        meta: &Metadata,
    ) -> Result<Done<TicketId>, CommandError> {
        let mut reached = Reached::default();
        let origin = match (ticket.conversation, by_agent) {
            (Some(conversation), _) => {
                TicketOrigin::FromConversation(self.conversation(conversation).await?)
            }
            (None, Some(agent)) => TicketOrigin::ByAgent(self.agent(agent).await?),
            (None, None) => {
                return Err(DomainError::Validation {
                    field: "conversation",
                    reason: "a ticket comes from a conversation or is opened by an agent".into(),
                }
                .into());
            }
        };
        let id = TicketId::from_uuid(self.commands.new_id());
        let command = TicketCommand::Open {
            ticket: id,
            customer: ticket.customer,
            origin,
            kind: ticket.kind,
            priority: ticket.priority,
            subject: ticket.subject,
            description: ticket.description,
            order: ticket.order,
            at: self.now(),
        };
        self.run::<TicketDecider>(&mut reached, id, command, meta)
            .await?;
        Ok(reached.done(id))
    }

    /// Changes a ticket's fields, assignee and status, each as its own command (so the
    /// ticket's history records each change), in that order, decided as one: a refused
    /// status change leaves the fields unchanged too.
    pub async fn update_ticket(
        &self,
        ticket: TicketId,
        update: TicketUpdate,
        by: Party,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let mut reached = Reached::default();
        let at = self.now();
        let mut commands = Vec::new();
        if update.edit != TicketEdit::default() {
            commands.push(TicketCommand::Edit {
                edit: update.edit,
                by: by.clone(),
                at,
            });
        }
        if let Some(assignee) = update.assignee {
            commands.push(TicketCommand::Assign {
                assignee: self.agent(assignee).await?,
                by: by.clone(),
                at,
            });
        }
        if let Some(to) = update.status {
            commands.push(TicketCommand::ChangeStatus { to, by, at });
        }
        if !commands.is_empty() {
            self.run_all::<TicketDecider>(&mut reached, ticket, commands, meta)
                .await?;
        }
        Ok(reached.done(()))
    }

    pub async fn comment_ticket(
        &self,
        ticket: TicketId,
        author: Party,
        body: String,
        public: bool,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = TicketCommand::Comment {
            author,
            body,
            public,
            at: self.now(),
        };
        self.one::<TicketDecider>(ticket, command, meta).await
    }

    // ---- administration ----

    pub async fn define_queue(
        &self,
        definition: QueueDefinition,
        meta: &Metadata,
    ) -> Result<Done<QueueId>, CommandError> {
        let mut reached = Reached::default();
        let id = QueueId::from_uuid(self.commands.new_id());
        let command = QueueCommand::Define {
            queue: id,
            name: definition.name,
            business_line: definition.business_line,
            categories: definition.categories,
            skills: definition.skills,
            priority: definition.priority,
            sla: definition.sla,
            hours: definition.hours,
            at: self.now(),
        };
        self.run::<QueueDecider>(&mut reached, id, command, meta)
            .await?;
        Ok(reached.done(id))
    }

    pub async fn change_queue(
        &self,
        queue: QueueId,
        changes: QueueChanges,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = QueueCommand::Change {
            changes,
            at: self.now(),
        };
        self.one::<QueueDecider>(queue, command, meta).await
    }

    pub async fn retire_queue(
        &self,
        queue: QueueId,
        reason: String,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = QueueCommand::Retire {
            reason,
            at: self.now(),
        };
        self.one::<QueueDecider>(queue, command, meta).await
    }

    /// Registers an agent under a given id (the id their login carries).
    pub async fn register_agent(
        &self,
        agent: AgentId,
        name: String,
        skills: BTreeSet<Skill>,
        max_concurrent: u32,
        meta: &Metadata,
    ) -> Result<Done<AgentId>, CommandError> {
        let mut reached = Reached::default();
        let command = AgentCommand::Register {
            agent,
            name,
            skills,
            max_concurrent,
            at: self.now(),
        };
        self.run::<AgentDecider>(&mut reached, agent, command, meta)
            .await?;
        Ok(reached.done(agent))
    }

    /// Changes an agent's skills and seats as one decision (both or neither).
    pub async fn change_agent(
        &self,
        agent: AgentId,
        skills: Option<BTreeSet<Skill>>,
        max_concurrent: Option<u32>,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let mut reached = Reached::default();
        let at = self.now();
        let mut commands = Vec::new();
        if let Some(skills) = skills {
            commands.push(AgentCommand::ChangeSkills { skills, at });
        }
        if let Some(max_concurrent) = max_concurrent {
            commands.push(AgentCommand::ChangeCapacity { max_concurrent, at });
        }
        if !commands.is_empty() {
            self.run_all::<AgentDecider>(&mut reached, agent, commands, meta)
                .await?;
        }
        Ok(reached.done(()))
    }

    pub async fn set_agent_status(
        &self,
        agent: AgentId,
        status: AgentStatus,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = AgentCommand::SetStatus {
            status,
            at: self.now(),
        };
        self.one::<AgentDecider>(agent, command, meta).await
    }

    pub async fn create_entry(
        &self,
        entry: KnowledgeEntryId,
        new: NewEntry,
        meta: &Metadata,
    ) -> Result<Done<KnowledgeEntryId>, CommandError> {
        let mut reached = Reached::default();
        let command = KnowledgeCommand::Create {
            entry,
            question: new.question,
            paraphrases: new.paraphrases,
            answer: new.answer,
            category: new.category,
            locale: new.locale,
            at: self.now(),
        };
        self.run::<KnowledgeDecider>(&mut reached, entry, command, meta)
            .await?;
        Ok(reached.done(entry))
    }

    pub async fn edit_entry(
        &self,
        entry: KnowledgeEntryId,
        edit: KnowledgeEdit,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = KnowledgeCommand::Edit {
            edit,
            at: self.now(),
        };
        self.one::<KnowledgeDecider>(entry, command, meta).await
    }

    pub async fn retire_entry(
        &self,
        entry: KnowledgeEntryId,
        reason: String,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = KnowledgeCommand::Retire {
            reason,
            at: self.now(),
        };
        self.one::<KnowledgeDecider>(entry, command, meta).await
    }
}

/// Where a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    ToAgent(AgentId),
    ToQueue(QueueId),
}

/// What a ticket update changes; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketUpdate {
    pub edit: TicketEdit,
    pub status: Option<TicketStatus>,
    pub assignee: Option<AgentId>,
}
