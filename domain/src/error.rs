//! The one error type `decide` returns. Every variant names what was wrong in words a support
//! engineer can act on, and carries the ids involved.

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::agent::AgentStatus;
use crate::common::BusinessLine;
use crate::conversation::{HandoffReason, SlaKind};
use crate::customer::OrderStatus;
use crate::ids::{
    AgentId, ConversationId, CustomerId, KnowledgeEntryId, MessageId, OrderId, QueueId, TicketId,
};
use crate::ticket::TicketStatus;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum DomainError {
    // ---- input ----
    #[error("invalid {field}: {reason}")]
    Validation { field: &'static str, reason: String },

    // ---- stream lifecycle ----
    #[error("this {kind} does not exist yet; create it first")]
    NotCreated { kind: &'static str },
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: &'static str, id: String },

    // ---- references to other streams ----
    #[error("unknown customer {customer}")]
    UnknownCustomer { customer: CustomerId },
    #[error("customer mismatch: expected {expected}, got {actual}")]
    CustomerMismatch {
        expected: CustomerId,
        actual: CustomerId,
    },
    #[error("order {order} is not one of this customer's imported orders")]
    UnknownOrder { order: OrderId },
    #[error("unknown queue {queue}")]
    UnknownQueue { queue: QueueId },
    #[error("queue {queue} is retired and takes no new conversations")]
    QueueRetired { queue: QueueId },
    #[error("unknown agent {agent}")]
    UnknownAgent { agent: AgentId },
    #[error("agent {agent} is retired")]
    AgentRetired { agent: AgentId },
    #[error("unknown knowledge-base entry {entry}")]
    UnknownKnowledgeEntry { entry: KnowledgeEntryId },
    #[error("knowledge-base entry {entry} is retired and may not be used or edited")]
    KnowledgeEntryRetired { entry: KnowledgeEntryId },
    #[error("unknown conversation {conversation}")]
    UnknownConversation { conversation: ConversationId },
    #[error("unknown ticket {ticket}")]
    UnknownTicket { ticket: TicketId },

    // ---- customers and orders ----
    #[error(
        "order {order} cannot go from {from:?} to {to:?}: the shop's order lifecycle only moves forward"
    )]
    InvalidOrderTransition {
        order: OrderId,
        from: OrderStatus,
        to: OrderStatus,
    },
    #[error(
        "order {order}: the gateway sent a different {field} than first imported; order facts other than status are fixed"
    )]
    OrderFactsChanged { order: OrderId, field: &'static str },

    // ---- conversations ----
    #[error("conversation {conversation} is closed; reopen it first")]
    ConversationClosed { conversation: ConversationId },
    #[error("conversation {conversation} is still open")]
    ConversationNotClosed { conversation: ConversationId },
    #[error("agent {agent} is not assigned to conversation {conversation}")]
    NotAssignedToAgent {
        agent: AgentId,
        conversation: ConversationId,
    },
    #[error("conversation {conversation} cannot {action} while it is {phase}")]
    WrongPhase {
        conversation: ConversationId,
        action: &'static str,
        phase: &'static str,
    },
    #[error("the bot is switched off for conversation {conversation}")]
    BotSwitchedOff { conversation: ConversationId },
    #[error("handoff reason {reason:?} is not backed by the conversation: {why}")]
    HandoffNotJustified {
        reason: HandoffReason,
        why: &'static str,
    },
    #[error("conversation {conversation} was routed to {routed:?}, not to queue {queue}")]
    NotRoutedToQueue {
        conversation: ConversationId,
        queue: QueueId,
        routed: Option<QueueId>,
    },
    #[error(
        "queue {queue} serves {queue_line:?} but the conversation's order is sold by {order_line:?}"
    )]
    BusinessLineMismatch {
        queue: QueueId,
        queue_line: BusinessLine,
        order_line: BusinessLine,
    },
    #[error("queue {queue} is outside its opening hours at {at}")]
    QueueClosed { queue: QueueId, at: DateTime<Utc> },
    #[error("agent {agent} is offline")]
    AgentOffline { agent: AgentId },
    #[error("agent {agent} is away and takes no new chats")]
    AgentAway { agent: AgentId },
    #[error("agent {agent} already has {limit} chats, their limit")]
    AgentAtCapacity { agent: AgentId, limit: u32 },
    #[error("agent {agent} lacks the queue's skills {missing:?}")]
    AgentLacksSkills {
        agent: AgentId,
        missing: Vec<String>,
    },
    #[error("no earlier customer turn {message} in this conversation")]
    UnknownTurn { message: MessageId },
    #[error("customer turn {message} already has an emotion assessment")]
    TurnAlreadyAssessed { message: MessageId },
    #[error("no scenario has been predicted for this conversation")]
    ScenarioNotPredicted,
    #[error("the predicted scenario was already confirmed or corrected")]
    ScenarioAlreadySettled,
    #[error("the conversation was active {idle_secs}s ago; idle timeout needs {required_secs}s")]
    NotIdle { idle_secs: i64, required_secs: u32 },
    #[error("conversation closed at {closed_at}; it can only be reopened within {window_hours}h")]
    ReopenWindowExpired {
        closed_at: DateTime<Utc>,
        window_hours: i64,
    },
    #[error("order placed at {placed_at} is outside the attribution window of this conversation")]
    OutsideAttributionWindow { placed_at: DateTime<Utc> },
    #[error("no survey was offered for conversation {conversation}")]
    SurveyNotOffered { conversation: ConversationId },
    #[error("the survey of conversation {conversation} was already answered")]
    SurveyAlreadyAnswered { conversation: ConversationId },
    #[error("survey score {score} is outside 1-5")]
    ScoreOutOfRange { score: u8 },
    #[error("the survey of conversation {conversation} was already reminded of")]
    SurveyAlreadyReminded { conversation: ConversationId },
    #[error("the survey was offered at {offered_at}; a reminder is due at {due}, not before")]
    SurveyReminderNotDue {
        offered_at: DateTime<Utc>,
        due: DateTime<Utc>,
    },

    // ---- service levels ----
    #[error(
        "conversation {conversation} has no SLA clock running (it is not waiting for or with an agent since a queueing)"
    )]
    SlaNotRunning { conversation: ConversationId },
    #[error("the {kind} target was met: {how}")]
    SlaTargetMet { kind: SlaKind, how: &'static str },
    #[error("the {kind} {step} is due at {due}, not before")]
    SlaNotDue {
        kind: SlaKind,
        step: &'static str,
        due: DateTime<Utc>,
    },
    #[error("the {kind} target of this queueing was already warned of")]
    SlaAlreadyWarned { kind: SlaKind },
    #[error("the {kind} target of this queueing was already breached")]
    SlaAlreadyBreached { kind: SlaKind },

    // ---- agents ----
    #[error("agent {agent} still has {active} active chats; transfer or close them first")]
    AgentHasActiveChats { agent: AgentId, active: u32 },
    #[error("agent {agent} cannot get a limit of {requested} while holding {active} chats")]
    CapacityBelowActiveChats {
        agent: AgentId,
        requested: u32,
        active: u32,
    },
    #[error("agent {agent} is {status:?} and cannot take chats")]
    AgentUnavailable { agent: AgentId, status: AgentStatus },

    // ---- tickets ----
    #[error("ticket cannot go from {from:?} to {to:?}")]
    InvalidTransition {
        from: TicketStatus,
        to: TicketStatus,
    },
    #[error("ticket {ticket} is closed; open a follow-up ticket instead")]
    TicketClosed { ticket: TicketId },
    #[error("ticket {ticket} has no assignee; assign it before solving")]
    TicketUnassigned { ticket: TicketId },
    #[error("ticket {ticket} is already at the highest escalation level {level}")]
    EscalationLimit { ticket: TicketId, level: u8 },
    #[error("ticket {ticket} cannot be merged: {reason}")]
    InvalidMerge {
        ticket: TicketId,
        reason: &'static str,
    },

    // ---- reading events ----
    #[error("unknown event type {event_type:?} in the {category} stream")]
    UnknownEventType {
        category: &'static str,
        event_type: String,
    },
    #[error("{event_type} schema version {version} is not supported (current is {current})")]
    UnsupportedSchemaVersion {
        event_type: String,
        version: u32,
        current: u32,
    },
    #[error("{event_type} v{version} payload is malformed: {reason}")]
    MalformedEvent {
        event_type: String,
        version: u32,
        reason: String,
    },
    #[error("{event_type} could not be encoded: {reason}")]
    Encoding {
        event_type: &'static str,
        reason: String,
    },
}

impl DomainError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        DomainError::Validation {
            field,
            reason: reason.into(),
        }
    }
}
