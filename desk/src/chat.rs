//! A customer's conversation, from the first message to the survey: what the customer, the
//! agent, the router and the timers do to it.

use chrono::{DateTime, Utc};
use kefu_domain::agent::{AgentCommand, AgentDecider};
use kefu_domain::common::{Channel, Party};
use kefu_domain::conversation::{
    CloseReason, ConversationCommand as C, ConversationDecider, ConversationEvent, Features,
    HandoffReason, RoutingReason, SlaKind, TransferTarget,
};
use kefu_domain::customer::{CustomerCommand, CustomerDecider, CustomerState, CustomerTier, Order};
use kefu_domain::ids::{
    AgentId, ConversationId, CustomerId, Locale, MessageId, OrderId, QueueId, ScenarioCode,
};
use kefu_domain::queue::QueueSnapshot;
use kefu_eventlog::{EventLog, Metadata};

use crate::command::CommandError;

use crate::{DEFAULT_LOCALE, Desk, Done, Reached};

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

impl<L: EventLog> Desk<L> {
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
}

/// Where a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    ToAgent(AgentId),
    ToQueue(QueueId),
}
