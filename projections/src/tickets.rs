//! The ticket view: each ticket (工单) as it stands, and the history of every change to it
//! with the value before and after, who made it and when.

use kefu_domain::ticket::{FieldChange, TicketEvent as T, TicketSource, TicketStatus};
use serde::Serialize;
use serde_json::Value;

use crate::error::ProjectionError;
use crate::record;
use crate::rows::{KeyRequests, RowSet};
use kefu_domain::Event;

use crate::runner::{Envelope, Projection};
use crate::sql::{Record, TableDef, Val};
use crate::view::{Listing, Page, View, code, json, ms};

pub const NAME: &str = "tickets";

record! {
    pub struct TicketRow in "tickets", key 1 {
        pub id: String,
        pub customer: String,
        /// The conversation it was opened from, if any.
        pub conversation: Option<String>,
        /// The agent who opened it, if opened by an agent.
        pub opened_by_agent: Option<String>,
        pub kind: String,
        pub priority: String,
        pub subject: String,
        pub description: String,
        pub order_id: Option<String>,
        pub assignee: Option<String>,
        /// new, open, pending, solved or closed.
        pub status: String,
        pub escalation_level: i64,
        pub merged_into: Option<String>,
        pub comments: i64,
        pub opened_at: i64,
        pub updated_at: i64,
        pub closed_at: Option<i64>,
    }
    indexes: [["status", "priority"], ["assignee"], ["customer"], ["opened_at"]]
}

record! {
    /// One change to a ticket.
    pub struct TicketHistoryRow in "ticket_history", key 2 {
        pub ticket: String,
        pub version: i64,
        pub event_type: String,
        /// The field changed (`status` for status changes), if the event changes one.
        pub field: Option<String>,
        /// JSON values before and after.
        #[serde(serialize_with = "crate::view::as_json_opt")]
        pub before: Option<String>,
        #[serde(serialize_with = "crate::view::as_json_opt")]
        pub after: Option<String>,
        /// JSON of the party who made the change.
        #[serde(serialize_with = "crate::view::as_json_opt")]
        pub by: Option<String>,
        /// The event as JSON (its `type` and fields, upcast to the current version).
        #[serde(serialize_with = "crate::view::as_json")]
        pub detail: String,
        pub at: i64,
    }
}

#[derive(Default)]
pub struct TicketsProjection;

impl Projection for TicketsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> Vec<&'static TableDef> {
        vec![&TicketRow::TABLE, &TicketHistoryRow::TABLE]
    }

    fn prefetch(&self, e: Envelope<'_>, want: &mut KeyRequests) {
        if matches!(e.decoded, Event::Ticket(event) if !matches!(event, T::TicketOpened(_))) {
            want.want::<TicketRow>(e.entity());
        }
    }

    fn apply(&mut self, e: Envelope<'_>, rows: &mut RowSet) -> Result<(), ProjectionError> {
        let Event::Ticket(event) = e.decoded else {
            return Ok(());
        };
        let id = e.entity().to_owned();
        let mut history = TicketHistoryRow {
            ticket: id.clone(),
            version: e.event.version as i64,
            event_type: e.event.event_type.clone(),
            field: None,
            before: None,
            after: None,
            by: None,
            detail: json(event),
            at: 0,
        };
        let mut t = match event {
            T::TicketOpened(o) => TicketRow {
                id: id.clone(),
                customer: o.customer.to_string(),
                conversation: match &o.source {
                    TicketSource::Conversation { conversation } => Some(conversation.to_string()),
                    TicketSource::Agent { .. } => None,
                },
                opened_by_agent: match &o.source {
                    TicketSource::Agent { agent } => Some(agent.to_string()),
                    TicketSource::Conversation { .. } => None,
                },
                kind: code(&o.kind),
                priority: code(&o.priority),
                subject: o.subject.clone(),
                description: o.description.clone(),
                order_id: o.order.as_ref().map(ToString::to_string),
                assignee: None,
                status: code(&TicketStatus::New),
                escalation_level: 0,
                merged_into: None,
                comments: 0,
                opened_at: ms(o.at),
                updated_at: ms(o.at),
                closed_at: None,
            },
            _ => match rows.get::<TicketRow>(&[Val::Text(id.clone())])? {
                Some(t) => t,
                None => return Ok(()),
            },
        };
        let at = match event {
            T::TicketOpened(o) => o.at,
            T::TicketFieldChanged(c) => {
                history.by = Some(json(&c.by));
                let (field, before, after) = field_change(&c.change);
                history.field = Some(field.into());
                history.before = Some(before.to_string());
                history.after = Some(after.to_string());
                match &c.change {
                    FieldChange::Kind { after, .. } => t.kind = code(after),
                    FieldChange::Priority { after, .. } => t.priority = code(after),
                    FieldChange::Subject { after, .. } => t.subject = after.clone(),
                    FieldChange::Order { after, .. } => {
                        t.order_id = after.as_ref().map(ToString::to_string);
                    }
                    FieldChange::Assignee { after, .. } => {
                        t.assignee = after.as_ref().map(ToString::to_string);
                    }
                }
                c.at
            }
            T::TicketStatusChanged(s) => {
                history.by = Some(json(&s.by));
                history.field = Some("status".into());
                history.before = Some(json(&s.from));
                history.after = Some(json(&s.to));
                t.status = code(&s.to);
                if s.to == TicketStatus::Closed {
                    t.closed_at = Some(ms(s.at));
                }
                s.at
            }
            T::TicketCommented(c) => {
                history.by = Some(json(&c.author));
                t.comments += 1;
                c.at
            }
            T::TicketEscalated(x) => {
                history.by = Some(json(&x.by));
                history.field = Some("escalation_level".into());
                history.before = Some(t.escalation_level.to_string());
                history.after = Some(x.level.to_string());
                t.escalation_level = i64::from(x.level);
                x.at
            }
            T::TicketMerged(m) => {
                history.by = Some(json(&m.by));
                history.field = Some("status".into());
                history.before = Some(json(&m.from));
                history.after = Some(json(&TicketStatus::Closed));
                t.merged_into = Some(m.into.to_string());
                t.status = code(&TicketStatus::Closed);
                t.closed_at = Some(ms(m.at));
                m.at
            }
            T::TicketReopened(r) => {
                history.by = Some(json(&r.by));
                history.field = Some("status".into());
                history.before = Some(json(&t.status));
                history.after = Some(json(&TicketStatus::Open));
                t.status = code(&TicketStatus::Open);
                t.closed_at = None;
                r.at
            }
        };
        history.at = ms(at);
        t.updated_at = ms(at);
        rows.put(history)?;
        rows.put(t)
    }
}

/// The changed field's name and its values before and after, as JSON.
fn field_change(c: &FieldChange) -> (&'static str, Value, Value) {
    match c {
        FieldChange::Kind { before, after } => ("kind", value(before), value(after)),
        FieldChange::Priority { before, after } => ("priority", value(before), value(after)),
        FieldChange::Subject { before, after } => ("subject", value(before), value(after)),
        FieldChange::Order { before, after } => ("order", value(before), value(after)),
        FieldChange::Assignee { before, after } => ("assignee", value(before), value(after)),
    }
}

fn value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A ticket and every change made to it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TicketView {
    pub ticket: TicketRow,
    pub history: Vec<TicketHistoryRow>,
}

#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub status: Option<String>,
    pub assignee: Option<String>,
    pub customer: Option<String>,
    pub priority: Option<String>,
    pub conversation: Option<String>,
    /// Only tickets assigned to or opened by one of these agents (an access scope).
    pub agents: Option<Vec<String>>,
}

impl View {
    pub async fn ticket(&self, id: &str) -> Result<Option<TicketView>, ProjectionError> {
        let Some(ticket) = self
            .select::<TicketRow>("WHERE id = $1", vec![id.into()])
            .await?
            .pop()
        else {
            return Ok(None);
        };
        let history = self
            .select::<TicketHistoryRow>("WHERE ticket = $1 ORDER BY version", vec![id.into()])
            .await?;
        Ok(Some(TicketView { ticket, history }))
    }

    /// Tickets newest first, paged by a cursor (`opened_at:id` of the last one seen).
    pub async fn tickets(
        &self,
        filter: &TicketFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<TicketRow>, ProjectionError> {
        self.newest_first(
            filter.listing(),
            "opened_at",
            after,
            limit,
            |t: &TicketRow| (t.opened_at, t.id.clone()),
        )
        .await
    }

    /// How many tickets `filter` admits (a listing's total, whatever page is read).
    pub async fn count_tickets(&self, filter: &TicketFilter) -> Result<i64, ProjectionError> {
        self.count::<TicketRow>(filter.listing()).await
    }
}

impl TicketFilter {
    fn listing(&self) -> Listing {
        let mut query = Listing::default();
        query.eq("status", &self.status);
        query.eq("assignee", &self.assignee);
        query.eq("customer", &self.customer);
        query.eq("priority", &self.priority);
        query.eq("conversation", &self.conversation);
        query.any_in(&["assignee", "opened_by_agent"], &self.agents);
        query
    }
}
