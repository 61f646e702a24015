//! Tickets: opened from a chat or on their own, updated and commented.

use kefu_domain::DomainError;
use kefu_domain::common::Party;
use kefu_domain::ids::{AgentId, ConversationId, CustomerId, OrderId, TicketId};
use kefu_domain::ticket::{
    TicketCommand, TicketDecider, TicketEdit, TicketKind, TicketOrigin, TicketPriority,
    TicketStatus,
};
use kefu_eventlog::{EventLog, Metadata};

use crate::command::CommandError;

use crate::{Desk, Done, Reached};

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

impl<L: EventLog> Desk<L> {
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
}

/// What a ticket update changes; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketUpdate {
    pub edit: TicketEdit,
    pub status: Option<TicketStatus>,
    pub assignee: Option<AgentId>,
}
