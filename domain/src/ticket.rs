//! The ticket stream (工单): what a chat could not finish, followed up by the team until it is
//! solved. Status moves New → Open → Pending → Solved → Closed along the transitions in
//! [`TicketStatus::can_change_to`]; Closed is final (a new problem gets a follow-up ticket),
//! and every change of a field is recorded with its before and after values for the audit
//! trail.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::agent::AgentSnapshot;
use crate::common::{MAX_LABEL_CHARS, MAX_TEXT_CHARS, Party, require_code, require_text};
use crate::conversation::ConversationSnapshot;
use crate::decider::{Decider, domain_events};
use crate::error::DomainError;
use crate::ids::{AgentId, ConversationId, CustomerId, OrderId, TicketId};

/// Escalation levels run from 0 (not escalated) to this (the service director).
pub const MAX_ESCALATION_LEVEL: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Nobody has picked it up yet.
    New,
    /// Someone is working on it.
    Open,
    /// Waiting for the customer or a third party.
    Pending,
    /// The fix was given; the customer can still reply, which reopens it.
    Solved,
    /// Final.
    Closed,
}

impl TicketStatus {
    /// The transitions a status change may make. Reopening a solved ticket and closing one by
    /// merging are separate commands with their own events. A new ticket has no owner yet
    /// (assigning it opens it), and only an owned ticket can be solved, so New → Solved is
    /// not among them.
    pub fn can_change_to(self, to: TicketStatus) -> bool {
        use TicketStatus::*;
        matches!(
            (self, to),
            (New, Open | Pending)
                | (Open, Pending | Solved)
                | (Pending, Open | Solved)
                | (Solved, Closed)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    Refund,
    Return,
    Delivery,
    Product,
    Billing,
    Complaint,
    Other,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TicketPriority {
    Low,
    Normal,
    High,
    Urgent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TicketSource {
    Conversation { conversation: ConversationId },
    Agent { agent: AgentId },
}

/// A field change with the value before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "field", rename_all = "snake_case")]
pub enum FieldChange {
    Kind {
        before: TicketKind,
        after: TicketKind,
    },
    Priority {
        before: TicketPriority,
        after: TicketPriority,
    },
    Subject {
        before: String,
        after: String,
    },
    Order {
        before: Option<OrderId>,
        after: Option<OrderId>,
    },
    Assignee {
        before: Option<AgentId>,
        after: Option<AgentId>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub id: TicketId,
    pub customer: CustomerId,
    pub source: TicketSource,
    pub kind: TicketKind,
    pub priority: TicketPriority,
    pub subject: String,
    pub order: Option<OrderId>,
    pub assignee: Option<AgentId>,
    pub status: TicketStatus,
    pub escalation_level: u8,
    pub merged_into: Option<TicketId>,
    pub comments: u32,
    pub opened_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TicketState {
    NotOpened,
    Opened(Ticket),
}

impl TicketState {
    pub fn snapshot(&self, id: TicketId) -> TicketSnapshot {
        match self {
            TicketState::NotOpened => TicketSnapshot::Unknown(id),
            TicketState::Opened(t) => TicketSnapshot::Known(t.clone()),
        }
    }
}

/// Another ticket as the command service loaded it, for merging.
#[derive(Debug, Clone, PartialEq)]
pub enum TicketSnapshot {
    Unknown(TicketId),
    Known(Ticket),
}

/// Where a new ticket comes from, with what the command service loaded about it.
#[derive(Debug, Clone, PartialEq)]
pub enum TicketOrigin {
    FromConversation(ConversationSnapshot),
    ByAgent(AgentSnapshot),
}

/// What a field edit changes; `None` keeps the current value. To clear the order, pass
/// `Some(None)`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TicketEdit {
    pub kind: Option<TicketKind>,
    pub priority: Option<TicketPriority>,
    pub subject: Option<String>,
    pub order: Option<Option<OrderId>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TicketCommand {
    Open {
        ticket: TicketId,
        customer: CustomerId,
        origin: TicketOrigin,
        kind: TicketKind,
        priority: TicketPriority,
        subject: String,
        description: String,
        /// Defaults to the conversation's order when opened from a conversation.
        order: Option<OrderId>,
        at: DateTime<Utc>,
    },
    Assign {
        assignee: AgentSnapshot,
        by: Party,
        at: DateTime<Utc>,
    },
    Edit {
        edit: TicketEdit,
        by: Party,
        at: DateTime<Utc>,
    },
    ChangeStatus {
        to: TicketStatus,
        by: Party,
        at: DateTime<Utc>,
    },
    Comment {
        author: Party,
        body: String,
        /// Public comments are sent to the customer; private ones are internal.
        public: bool,
        at: DateTime<Utc>,
    },
    Escalate {
        reason: String,
        by: Party,
        at: DateTime<Utc>,
    },
    /// Close this ticket as a duplicate of `into`.
    Merge {
        into: TicketSnapshot,
        by: Party,
        at: DateTime<Utc>,
    },
    Reopen {
        reason: String,
        by: Party,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TicketOpened {
    pub ticket: TicketId,
    pub customer: CustomerId,
    pub source: TicketSource,
    pub kind: TicketKind,
    pub priority: TicketPriority,
    pub subject: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderId>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TicketFieldChanged {
    pub change: FieldChange,
    pub by: Party,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TicketStatusChanged {
    pub from: TicketStatus,
    pub to: TicketStatus,
    pub by: Party,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TicketCommented {
    pub author: Party,
    pub body: String,
    pub public: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TicketEscalated {
    /// The escalation level after this escalation.
    pub level: u8,
    pub reason: String,
    pub by: Party,
    pub at: DateTime<Utc>,
}

/// This ticket is closed as a duplicate of `into`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TicketMerged {
    pub into: TicketId,
    pub from: TicketStatus,
    pub by: Party,
    pub at: DateTime<Utc>,
}

/// A solved ticket is open again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TicketReopened {
    pub reason: String,
    pub by: Party,
    pub at: DateTime<Utc>,
}

domain_events! {
    /// What happens in a `ticket-<id>` stream.
    pub enum TicketEvent in "ticket" {
        TicketOpened = 1,
        TicketFieldChanged = 1,
        TicketStatusChanged = 1,
        TicketCommented = 1,
        TicketEscalated = 1,
        TicketMerged = 1,
        TicketReopened = 1,
    }
}

pub struct TicketDecider;

impl Decider for TicketDecider {
    type Id = TicketId;
    type State = TicketState;
    type Command = TicketCommand;
    type Event = TicketEvent;

    fn initial_state() -> TicketState {
        TicketState::NotOpened
    }

    fn decide(
        state: &TicketState,
        command: TicketCommand,
    ) -> Result<Vec<TicketEvent>, DomainError> {
        if let TicketCommand::Open {
            ticket,
            customer,
            origin,
            kind,
            priority,
            subject,
            description,
            order,
            at,
        } = command
        {
            if let TicketState::Opened(t) = state {
                return Err(DomainError::AlreadyExists {
                    kind: "ticket",
                    id: t.id.to_string(),
                });
            }
            require_text("subject", &subject, MAX_LABEL_CHARS)?;
            require_text("description", &description, MAX_TEXT_CHARS)?;
            let (source, order) = match &origin {
                TicketOrigin::FromConversation(conversation) => {
                    let conversation = conversation.require_known()?;
                    if conversation.customer != customer {
                        return Err(DomainError::CustomerMismatch {
                            expected: conversation.customer,
                            actual: customer,
                        });
                    }
                    let order =
                        order.or_else(|| conversation.order.as_ref().map(|o| o.order.clone()));
                    (
                        TicketSource::Conversation {
                            conversation: conversation.id,
                        },
                        order,
                    )
                }
                TicketOrigin::ByAgent(agent) => {
                    let agent = agent.require_registered()?;
                    (TicketSource::Agent { agent: agent.id }, order)
                }
            };
            if let Some(order) = &order {
                require_code("order", order.as_str())?;
            }
            return Ok(vec![
                TicketOpened {
                    ticket,
                    customer,
                    source,
                    kind,
                    priority,
                    subject,
                    description,
                    order,
                    at,
                }
                .into(),
            ]);
        }

        let TicketState::Opened(ticket) = state else {
            return Err(DomainError::NotCreated { kind: "ticket" });
        };
        if let TicketCommand::ChangeStatus { to, by, at } = command {
            return change_status(ticket, to, by, at);
        }
        if ticket.status == TicketStatus::Closed {
            return Err(DomainError::TicketClosed { ticket: ticket.id });
        }
        match command {
            TicketCommand::Open { .. } | TicketCommand::ChangeStatus { .. } => Ok(vec![]),
            TicketCommand::Assign { assignee, by, at } => {
                let agent = assignee.require_registered()?;
                if ticket.assignee == Some(agent.id) {
                    return Ok(vec![]);
                }
                let mut events: Vec<TicketEvent> = vec![
                    TicketFieldChanged {
                        change: FieldChange::Assignee {
                            before: ticket.assignee,
                            after: Some(agent.id),
                        },
                        by: by.clone(),
                        at,
                    }
                    .into(),
                ];
                // Picking up a new ticket is what opens it.
                if ticket.status == TicketStatus::New {
                    events.push(
                        TicketStatusChanged {
                            from: TicketStatus::New,
                            to: TicketStatus::Open,
                            by,
                            at,
                        }
                        .into(),
                    );
                }
                Ok(events)
            }
            TicketCommand::Edit { edit, by, at } => {
                let mut changes = Vec::new();
                if let Some(kind) = edit.kind.filter(|k| *k != ticket.kind) {
                    changes.push(FieldChange::Kind {
                        before: ticket.kind,
                        after: kind,
                    });
                }
                if let Some(priority) = edit.priority.filter(|p| *p != ticket.priority) {
                    changes.push(FieldChange::Priority {
                        before: ticket.priority,
                        after: priority,
                    });
                }
                if let Some(subject) = edit.subject.filter(|s| *s != ticket.subject) {
                    require_text("subject", &subject, MAX_LABEL_CHARS)?;
                    changes.push(FieldChange::Subject {
                        before: ticket.subject.clone(),
                        after: subject,
                    });
                }
                if let Some(order) = edit.order.filter(|o| *o != ticket.order) {
                    if let Some(o) = &order {
                        require_code("order", o.as_str())?;
                    }
                    changes.push(FieldChange::Order {
                        before: ticket.order.clone(),
                        after: order,
                    });
                }
                Ok(changes
                    .into_iter()
                    .map(|change| {
                        TicketFieldChanged {
                            change,
                            by: by.clone(),
                            at,
                        }
                        .into()
                    })
                    .collect())
            }
            TicketCommand::Comment {
                author,
                body,
                public,
                at,
            } => {
                require_text("body", &body, MAX_TEXT_CHARS)?;
                if author == Party::Customer && !public {
                    return Err(DomainError::invalid(
                        "public",
                        "customers cannot write internal comments",
                    ));
                }
                let mut events: Vec<TicketEvent> = vec![
                    TicketCommented {
                        author: author.clone(),
                        body,
                        public,
                        at,
                    }
                    .into(),
                ];
                // A customer's reply means the ball is back in the team's court.
                if author == Party::Customer {
                    match ticket.status {
                        TicketStatus::Pending => events.push(
                            TicketStatusChanged {
                                from: TicketStatus::Pending,
                                to: TicketStatus::Open,
                                by: author,
                                at,
                            }
                            .into(),
                        ),
                        TicketStatus::Solved => events.push(
                            TicketReopened {
                                reason: "the customer replied".into(),
                                by: author,
                                at,
                            }
                            .into(),
                        ),
                        _ => {}
                    }
                }
                Ok(events)
            }
            TicketCommand::Escalate { reason, by, at } => {
                if ticket.status == TicketStatus::Solved {
                    return Err(DomainError::invalid(
                        "status",
                        "a solved ticket is not escalated; reopen it first",
                    ));
                }
                if ticket.escalation_level >= MAX_ESCALATION_LEVEL {
                    return Err(DomainError::EscalationLimit {
                        ticket: ticket.id,
                        level: ticket.escalation_level,
                    });
                }
                require_text("reason", &reason, MAX_LABEL_CHARS)?;
                let mut events: Vec<TicketEvent> = vec![
                    TicketEscalated {
                        level: ticket.escalation_level + 1,
                        reason,
                        by: by.clone(),
                        at,
                    }
                    .into(),
                ];
                // An escalated ticket is at least high priority, or it waits behind the rest.
                if ticket.priority < TicketPriority::High {
                    events.push(
                        TicketFieldChanged {
                            change: FieldChange::Priority {
                                before: ticket.priority,
                                after: TicketPriority::High,
                            },
                            by,
                            at,
                        }
                        .into(),
                    );
                }
                Ok(events)
            }
            TicketCommand::Merge { into, by, at } => {
                let invalid = |reason| DomainError::InvalidMerge {
                    ticket: ticket.id,
                    reason,
                };
                let target = match &into {
                    TicketSnapshot::Unknown(id) => {
                        return Err(DomainError::UnknownTicket { ticket: *id });
                    }
                    TicketSnapshot::Known(t) => t,
                };
                if target.id == ticket.id {
                    return Err(invalid("a ticket cannot be merged into itself"));
                }
                if target.status == TicketStatus::Closed {
                    return Err(invalid("the target ticket is closed"));
                }
                if target.customer != ticket.customer {
                    return Err(invalid("the target ticket belongs to another customer"));
                }
                Ok(vec![
                    TicketMerged {
                        into: target.id,
                        from: ticket.status,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
            TicketCommand::Reopen { reason, by, at } => {
                if ticket.status != TicketStatus::Solved {
                    return Err(DomainError::InvalidTransition {
                        from: ticket.status,
                        to: TicketStatus::Open,
                    });
                }
                require_text("reason", &reason, MAX_LABEL_CHARS)?;
                Ok(vec![TicketReopened { reason, by, at }.into()])
            }
        }
    }

    fn evolve(state: TicketState, event: &TicketEvent) -> TicketState {
        let mut ticket = match (state, event) {
            (TicketState::NotOpened, TicketEvent::TicketOpened(e)) => {
                return TicketState::Opened(Ticket {
                    id: e.ticket,
                    customer: e.customer,
                    source: e.source.clone(),
                    kind: e.kind,
                    priority: e.priority,
                    subject: e.subject.clone(),
                    order: e.order.clone(),
                    assignee: None,
                    status: TicketStatus::New,
                    escalation_level: 0,
                    merged_into: None,
                    comments: 0,
                    opened_at: e.at,
                });
            }
            (TicketState::Opened(t), _) => t,
            (state, _) => return state,
        };
        match event {
            TicketEvent::TicketOpened(_) => {}
            TicketEvent::TicketFieldChanged(e) => match &e.change {
                FieldChange::Kind { after, .. } => ticket.kind = *after,
                FieldChange::Priority { after, .. } => ticket.priority = *after,
                FieldChange::Subject { after, .. } => ticket.subject = after.clone(),
                FieldChange::Order { after, .. } => ticket.order = after.clone(),
                FieldChange::Assignee { after, .. } => ticket.assignee = *after,
            },
            TicketEvent::TicketStatusChanged(e) => ticket.status = e.to,
            TicketEvent::TicketCommented(_) => ticket.comments += 1,
            TicketEvent::TicketEscalated(e) => ticket.escalation_level = e.level,
            TicketEvent::TicketMerged(e) => {
                ticket.merged_into = Some(e.into);
                ticket.status = TicketStatus::Closed;
            }
            TicketEvent::TicketReopened(_) => ticket.status = TicketStatus::Open,
        }
        TicketState::Opened(ticket)
    }
}

fn change_status(
    ticket: &Ticket,
    to: TicketStatus,
    by: Party,
    at: DateTime<Utc>,
) -> Result<Vec<TicketEvent>, DomainError> {
    if !ticket.status.can_change_to(to) {
        return Err(DomainError::InvalidTransition {
            from: ticket.status,
            to,
        });
    }
    if to == TicketStatus::Solved && ticket.assignee.is_none() {
        return Err(DomainError::TicketUnassigned { ticket: ticket.id });
    }
    Ok(vec![
        TicketStatusChanged {
            from: ticket.status,
            to,
            by,
            at,
        }
        .into(),
    ])
}
