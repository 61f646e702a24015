//! The schema's object, input and enum types. Domain enums are mirrored with `remote`, so the
//! GraphQL names stay stable while conversions are generated. The read side's views are in
//! `views.rs`.

use async_graphql::{Enum, Json, SimpleObject};
use chrono::{DateTime, Utc};
use kefu_eventlog::RecordedEvent;

/// What a mutation did.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The id of what the mutation created (conversation, message, ticket, queue, ...).
    pub id: Option<String>,
    /// The log position its last event reached, as a decimal string; pass it back as
    /// `atLeast` to read your own write. Null when nothing changed (an idempotent resend).
    pub position: Option<String>,
    /// The correlation id stamped on every event the request caused, for the audit trail.
    pub correlation_id: String,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_domain::common::Channel")]
pub enum Channel {
    Web,
    App,
    Pc,
    Ivr,
    /// kefu's own probes; customers cannot start conversations on it.
    Probe,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_domain::conversation::CloseReason")]
pub enum CloseReason {
    Resolved,
    CustomerLeft,
    IdleTimeout,
    MovedToTicket,
    Spam,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_domain::agent::AgentStatus")]
pub enum AgentStatus {
    Online,
    Away,
    Offline,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_domain::ticket::TicketKind")]
pub enum TicketKind {
    Refund,
    Return,
    Delivery,
    Product,
    Billing,
    Complaint,
    Other,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_domain::ticket::TicketPriority")]
pub enum TicketPriority {
    Low,
    Normal,
    High,
    Urgent,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_domain::ticket::TicketStatus")]
pub enum TicketStatus {
    New,
    Open,
    Pending,
    Solved,
    Closed,
}

/// Who wrote an event.
#[derive(SimpleObject, Debug, Clone)]
pub struct EventActor {
    /// customer, agent, bot or system.
    pub kind: String,
    pub id: String,
}

/// One event of the log, as stored.
#[derive(SimpleObject, Debug, Clone)]
pub struct Event {
    pub position: String,
    pub id: String,
    pub stream: String,
    pub version: String,
    #[graphql(name = "type")]
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Json<serde_json::Value>,
    pub recorded_at: DateTime<Utc>,
    pub actor: EventActor,
    pub correlation_id: String,
    pub causation_id: String,
    pub trace_id: Option<String>,
}

impl From<&RecordedEvent> for Event {
    fn from(e: &RecordedEvent) -> Self {
        Event {
            position: e.position.0.to_string(),
            id: e.id.to_string(),
            stream: e.stream_id.to_string(),
            version: e.version.to_string(),
            event_type: e.event_type.clone(),
            schema_version: i32::try_from(e.schema_version).unwrap_or(i32::MAX),
            payload: Json(e.payload.clone()),
            recorded_at: e.recorded_at,
            actor: EventActor {
                kind: e.metadata.actor.kind.as_str().to_owned(),
                id: e.metadata.actor.id.clone(),
            },
            correlation_id: e.metadata.correlation_id.to_string(),
            causation_id: e.metadata.causation_id.to_string(),
            trace_id: e.metadata.trace_id.clone(),
        }
    }
}

/// Everything one request set off, from the audit read model, and whether that read model
/// had read the whole log when it answered.
#[derive(SimpleObject, Debug, Clone)]
pub struct AuditTrail {
    /// The causation tree, depth first.
    pub entries: Vec<AuditEntry>,
    pub caught_up: AuditCaughtUp,
}

/// How far the audit read model had read the log when it answered: an event after `through`
/// is not in the trail yet.
#[derive(SimpleObject, Debug, Clone)]
pub struct AuditCaughtUp {
    /// The last log position the audit index has read (a decimal string, as
    /// `Event.position`); null before it has read any.
    pub through: Option<String>,
    /// The log's settled head when asked; null for an empty log.
    pub head: Option<String>,
    /// True when every event up to the head is indexed: nothing the log held when asked is
    /// missing from the trail.
    pub complete: bool,
}

impl From<kefu_projections::audit::CaughtUp> for AuditCaughtUp {
    fn from(c: kefu_projections::audit::CaughtUp) -> Self {
        AuditCaughtUp {
            through: c.through.map(|p| p.to_string()),
            head: c.head.map(|p| p.to_string()),
            complete: c.complete,
        }
    }
}

/// One node of an audit trail: an event and how deep it sits in the causation tree.
#[derive(SimpleObject, Debug, Clone)]
pub struct AuditEntry {
    pub depth: i32,
    pub event: Event,
}

/// What a search hit is.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_projections::search::DocKind")]
pub enum SearchKind {
    /// One turn of a conversation or an internal note.
    Message,
    /// A whole conversation.
    Conversation,
    Ticket,
    /// A knowledge-base (FAQ) entry.
    Knowledge,
}

/// How statistics are grouped: one row per value.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_projections::stats::StatsGroup")]
pub enum StatsGroup {
    /// One row over everything that matches.
    Total,
    /// Local calendar days (`utcOffsetMinutes`).
    Day,
    /// Local ISO weeks, Monday to Sunday (`2026-W48`).
    Week,
    /// Local calendar months (`2026-11`).
    Month,
    /// Local hours (`utcOffsetMinutes`).
    Hour,
    Queue,
    /// The conversation's agent.
    Agent,
    /// `bot` or `human`.
    HandledBy,
    Scenario,
    Channel,
    BusinessLine,
    HandoffReason,
}

/// One search hit.
#[derive(SimpleObject, Debug, Clone)]
pub struct SearchHit {
    pub kind: SearchKind,
    pub conversation: Option<String>,
    pub message: Option<String>,
    pub ticket: Option<String>,
    pub entry: Option<String>,
    pub score: Option<f64>,
    pub time: DateTime<Utc>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    /// A conversation's or message's conversation status, as last indexed.
    pub conversation_status: Option<super::views::ConversationStatus>,
    /// A ticket's status, as last indexed.
    pub ticket_status: Option<TicketStatus>,
    pub internal: bool,
    /// The best passage, with matches wrapped in `<b>…</b>` (text HTML-escaped).
    pub snippet: String,
}

/// The caller, as their token says.
#[derive(SimpleObject, Debug, Clone)]
pub struct Me {
    pub role: crate::auth::Role,
    pub id: String,
    pub queues: Vec<String>,
}

/// One forecast hour.
#[derive(SimpleObject, Debug, Clone)]
pub struct ForecastHour {
    pub hour: DateTime<Utc>,
    /// Conversations expected to arrive.
    pub expected: f64,
    /// Agents needed to answer them within the service level (Erlang C).
    pub agents_needed: i32,
}

/// A queue's forecast and what it rests on.
#[derive(SimpleObject, Debug, Clone)]
pub struct Forecast {
    pub queue: Option<String>,
    pub hours: Vec<ForecastHour>,
    /// Handling time used, seconds (measured on the queue's history unless given).
    pub aht_secs: f64,
    /// Hours of history the model was fitted on.
    pub trained_on_hours: i32,
    /// The 24 local hours of today, each with the forecast made before today began (fitted on
    /// the `historyDays` before it) and the conversations that came.
    pub today: Vec<HourAgainstActual>,
}

/// One hour of today: forecast against actual.
#[derive(SimpleObject, Debug, Clone)]
pub struct HourAgainstActual {
    pub hour: DateTime<Utc>,
    /// Conversations the forecast made before today expected.
    pub expected: f64,
    /// Conversations that came; null for an hour that has not begun.
    pub actual: Option<i32>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_domain::switches::Switch")]
pub enum Switch {
    Bot,
    Ranker,
    Emotion,
    SearchIndexing,
    OrderGateway,
}

/// A dependency a drill can inject faults into.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum FaultTarget {
    /// The event log, as this server reaches it (every read and append).
    Store,
    /// The order-system gateway triage reads orders through.
    OrderGateway,
}

/// The faults a dependency has injected into it on this server.
#[derive(SimpleObject, Debug, Clone)]
pub struct FaultState {
    pub target: FaultTarget,
    /// Added to every call, in milliseconds.
    pub latency_ms: i32,
    /// The share of calls that fail, spread evenly (0.5: every second call).
    pub error_rate: f64,
    /// Calls failed on purpose since this server started.
    pub injected: String,
}

/// One probe run: a schedule slot's questions to the bot and what came back.
#[derive(SimpleObject, Debug, Clone)]
pub struct ProbeRunResult {
    pub run: String,
    pub slot: chrono::DateTime<chrono::Utc>,
    pub questions: i32,
    /// Null while the run is under way (or was abandoned).
    pub checked: Option<i32>,
    pub passed: Option<i32>,
    /// The checks that failed: question, expected entry, conversation and what the bot did.
    pub failures: Vec<super::views::ProbeFailure>,
}

/// A degradation switch and where it stands.
#[derive(SimpleObject, Debug, Clone)]
pub struct SwitchState {
    pub switch: Switch,
    pub on: bool,
}
