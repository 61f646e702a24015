//! A deterministic generator of a realistic customer-service history, for projection
//! benchmarks, forecasting backtests and end-to-end tests.
//!
//! The history is what kefu's log would hold after `days` of traffic at a JD-style help desk:
//! the bot answers most questions from the knowledge base, triage predicts the scenario from
//! the order and routes the rest to self-operated or merchant queues, agents on shifts chat
//! live within their seat limits, and a few conversations become tickets. Every event comes
//! from the real deciders: the generator keeps each stream's state in memory, builds the
//! command a client or worker would send, decides it against that state (a refusal is a bug in
//! the generator and ends the plan with [`HistoryError::Refused`]), folds the events, and emits
//! them as [`NewEvent`]s with the exact expected version of the stream. Rules that span streams
//! get snapshots the same way the command service builds them, and assignment follows its
//! protocol: the seat is taken on the agent's stream first, released after the close or
//! transfer.
//!
//! The same [`HistoryConfig`] (seed included) always gives the same plan, byte for byte:
//! times are simulated, and ids are UUIDv7 built from the simulated time and the seeded RNG.
//!
//! - [`plan`] is the pure core: a lazy iterator of [`PlannedAppend`]s in simulated-time order.
//!   Only the streams' states stay in memory (a finished conversation is dropped).
//! - [`write`] is the shell: appends a plan to any [`EventLog`](kefu_eventlog::EventLog),
//!   several appends in flight.
//!
//! ## What a history holds
//!
//! - **Set-up**, the day before `start`: agents (self-operated teams on early, mid, late and
//!   night shifts with rotating specialities, VIP and English skills; merchant teams), eight
//!   self-operated queues (per service category, general, VIP, English; most open around the
//!   clock, invoices, accounts and English 08:00-23:00) and one per merchant, and the knowledge
//!   base (54 FAQ topics in nine categories, each in Chinese and English, for self-operated
//!   and merchant orders).
//! - **Traffic**: conversations start as a non-homogeneous Poisson process with hour-of-day
//!   (quiet nights, peaks around 10:00 and 20:00) and day-of-week seasonality in Beijing time,
//!   plus a level of its own for each day. A customer's profile and orders are imported from
//!   the shop's gateway on first contact, and order updates as the shop reports them.
//!   Conversations run through the bot (most are contained), hand-off, routing, queueing,
//!   assignment when a seat is free (customers give up when the wait is too long), agent
//!   chats, transfers, notes, closes of every kind, surveys, conversions, reopenings and
//!   tickets. Agents log in and out by shift and take breaks.
//! - **Changes over the period**: knowledge entries revised daily, two retired and replaced;
//!   a queue's SLA and another's priority and name changed; a merchant's queue replaced and
//!   retired; agents trained (skills), given more or fewer seats, one retired.
//! - The bot's degradation switch is on for half an hour once a week, so some conversations
//!   go straight to a human.
//!
//! Every event type of the domain occurs in a history of a few thousand conversations (the
//! tests check it). `SurveyAnswered` is only ever written at its current schema version 2:
//! version 1 exists only in old logs.
//!
//! ## Metadata
//!
//! Each action of a customer, an agent, an administrator or a timer is a request with its own
//! correlation id (`Metadata::for_request`); the shop gateway's imports belong to the
//! customer's request that needed them. What the bot, triage, router, assigner, survey and
//! attribution workers do in reaction carries the same correlation and the causing event's id
//! as causation ([`caused_by`]), so one request reads back as a causation tree with
//! `EventLog::read_correlation`. The assigner reacts to the conversation joining the queue,
//! even when the seat it uses was freed later by another conversation.

mod arrivals;
mod conversations;
mod engine;
mod staff;
mod stream;
pub(crate) mod texts;
mod tickets;
mod world;
mod writer;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kefu_domain::DomainError;
use kefu_eventlog::{Actor, ExpectedVersion, LogError, Metadata, NewEvent, StreamId};
use serde_json::json;

pub use engine::Plan;
pub use writer::write;

/// What to generate. Build one with [`HistoryConfig::for_events`] or
/// [`HistoryConfig::for_conversations`], which size the desk (customers, agents) to the
/// traffic, then adjust fields as needed.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryConfig {
    pub seed: u64,
    /// Conversations started over the period (exactly this many).
    pub conversations: u64,
    /// Length of the traffic period; set-up happens the day before `start`.
    pub days: u32,
    /// Start of the traffic period. The desk works in China Standard Time (UTC+8), so
    /// seasonality, shifts and opening hours follow local time.
    pub start: DateTime<Utc>,
    /// Distinct customers who may contact the desk; a few contact it often.
    pub customers: u64,
    /// Human agents, self-operated and merchant teams together.
    pub agents: u32,
    /// Third-party merchants with their own service queue (at most 6). The desk also has 8
    /// self-operated queues, see [`HistoryConfig::queues`].
    pub merchants: usize,
    /// FAQ entries in the knowledge base at the start (36 to 216).
    pub knowledge_entries: usize,
}

/// Self-operated queues every desk has (per service category, general, VIP, English).
pub const SELF_OPERATED_QUEUES: usize = 8;
/// How many events a conversation brings on average with everything around it (customer
/// records, seats, tickets, shifts), measured on generated histories; used to size a history
/// for a number of events.
pub const EVENTS_PER_CONVERSATION: f64 = 19.7;
/// Fewest knowledge entries: one per category, language and seller.
pub const MIN_KNOWLEDGE_ENTRIES: usize = 36;

impl HistoryConfig {
    /// A desk sized for `conversations`: a week of traffic per 45,000 conversations (at least
    /// two days, at most eight weeks), customers and agents in proportion.
    pub fn for_conversations(conversations: u64) -> Self {
        let conversations = conversations.max(1);
        let days = u32::try_from(conversations.div_ceil(6_500)).map_or(56, |d| d.clamp(2, 56));
        let merchants = world::DEFAULT_MERCHANTS;
        HistoryConfig {
            seed: 1,
            conversations,
            days,
            start: default_start(),
            customers: (conversations * 11 / 20).max(20),
            agents: staff::agents_for(conversations, days, merchants),
            merchants,
            knowledge_entries: 200,
        }
    }

    /// A desk sized so that the history holds about `events` events (a few percent more,
    /// rarely fewer: the count depends on what the simulation draws).
    pub fn for_events(events: u64) -> Self {
        let setup = (200 + SELF_OPERATED_QUEUES + world::DEFAULT_MERCHANTS) as f64 + 60.0;
        let wanted = (events as f64 - setup).max(EVENTS_PER_CONVERSATION);
        Self::for_conversations((wanted / EVENTS_PER_CONVERSATION * 1.02).ceil() as u64)
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// End of the traffic period: no conversation starts after it. Conversations, tickets
    /// and follow-ups already under way go on for up to a day.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + Duration::days(i64::from(self.days))
    }

    pub fn queues(&self) -> usize {
        SELF_OPERATED_QUEUES + self.merchants
    }

    pub fn validate(&self) -> Result<(), HistoryError> {
        let invalid = |why: String| Err(HistoryError::InvalidConfig(why));
        if self.conversations == 0 {
            return invalid("conversations must be at least 1".into());
        }
        if self.days == 0 || self.days > 3_650 {
            return invalid(format!("days must be 1 to 3650, got {}", self.days));
        }
        if self.customers == 0 {
            return invalid("customers must be at least 1".into());
        }
        if self.merchants > world::MERCHANT_COUNT {
            return invalid(format!(
                "merchants must be at most {}, got {}",
                world::MERCHANT_COUNT,
                self.merchants
            ));
        }
        let min_agents = staff::min_agents(self.merchants);
        if self.agents < min_agents || self.agents > 5_000 {
            return invalid(format!(
                "agents must be {min_agents} to 5000 so every queue is staffed on every shift, got {}",
                self.agents
            ));
        }
        let max_entries = world::knowledge_capacity();
        if !(MIN_KNOWLEDGE_ENTRIES..=max_entries).contains(&self.knowledge_entries) {
            return invalid(format!(
                "knowledge_entries must be {MIN_KNOWLEDGE_ENTRIES} to {max_entries}, got {}",
                self.knowledge_entries
            ));
        }
        Ok(())
    }
}

/// Monday 3 March 2025, 00:00 in Beijing.
fn default_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 2, 16, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// One append the history needs, in the order the plan produces them.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedAppend {
    pub stream: StreamId,
    /// `NoStream` for the stream's first append, then the version of its last event.
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    /// When the request that produced it arrived (simulated). Never decreases along a plan;
    /// the events' own times may be a moment later (a bot replies a second after the turn).
    pub at: DateTime<Utc>,
}

/// What a history holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistorySummary {
    pub events: u64,
    pub appends: u64,
    pub streams: u64,
    pub conversations: u64,
    /// Conversations never handed to a human.
    pub contained_by_bot: u64,
    pub handed_over: u64,
    /// Conversations whose customer left the queue before an agent was free.
    pub abandoned_in_queue: u64,
    pub assignments: u64,
    /// Seconds queued before each assignment, summed.
    pub total_wait_secs: u64,
    pub max_wait_secs: u64,
    pub transfers: u64,
    pub reopened: u64,
    pub surveys_offered: u64,
    pub surveys_answered: u64,
    pub orders_attributed: u64,
    pub tickets: u64,
    pub by_event_type: BTreeMap<String, u64>,
    /// Events per stream category (`conversation`, `agent`, …).
    pub by_category: BTreeMap<String, u64>,
    pub first_at: Option<DateTime<Utc>>,
    pub last_at: Option<DateTime<Utc>>,
}

impl HistorySummary {
    pub fn containment_rate(&self) -> f64 {
        ratio(self.contained_by_bot, self.conversations)
    }

    pub fn survey_response_rate(&self) -> f64 {
        ratio(self.surveys_answered, self.surveys_offered)
    }

    pub fn mean_wait_secs(&self) -> f64 {
        ratio(self.total_wait_secs, self.assignments)
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "events": self.events,
            "appends": self.appends,
            "streams": self.streams,
            "conversations": self.conversations,
            "contained_by_bot": self.contained_by_bot,
            "handed_over": self.handed_over,
            "containment_rate": round3(self.containment_rate()),
            "abandoned_in_queue": self.abandoned_in_queue,
            "assignments": self.assignments,
            "mean_wait_secs": round3(self.mean_wait_secs()),
            "max_wait_secs": self.max_wait_secs,
            "transfers": self.transfers,
            "reopened": self.reopened,
            "surveys_offered": self.surveys_offered,
            "surveys_answered": self.surveys_answered,
            "survey_response_rate": round3(self.survey_response_rate()),
            "orders_attributed": self.orders_attributed,
            "tickets": self.tickets,
            "by_category": self.by_category,
            "by_event_type": self.by_event_type,
            "first_at": self.first_at,
            "last_at": self.last_at,
        })
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("invalid history configuration: {0}")]
    InvalidConfig(String),
    /// The generator sent a command the domain refused: a bug in the generator, since it
    /// only means to send commands that follow the rules.
    #[error("generator bug: {stream} refused {command}: {source}")]
    Refused {
        stream: String,
        command: &'static str,
        source: DomainError,
    },
    /// A command the generator sent recorded nothing, or its own bookkeeping lost track of
    /// something it expected: also a bug in the generator.
    #[error("generator bug: {0} did not record what the generator expected")]
    Inconsistent(&'static str),
    #[error("cannot encode an event for {stream}: {source}")]
    Encode { stream: String, source: DomainError },
    #[error("invalid stream id: {0}")]
    StreamId(LogError),
    #[error("appending to {stream} failed: {source}")]
    Append { stream: String, source: LogError },
}

/// Metadata for an event caused by `cause`, an event not yet in the log: same correlation and
/// trace, `cause` as causation. `Metadata::caused_by` does the same for a `RecordedEvent`.
pub fn caused_by(actor: Actor, cause: &NewEvent) -> Metadata {
    Metadata {
        actor,
        correlation_id: cause.metadata.correlation_id,
        causation_id: cause.id,
        trace_id: cause.metadata.trace_id.clone(),
    }
}

/// Lazily plans the history `config` describes; see the module docs. An invalid config
/// yields one error.
pub fn plan(config: &HistoryConfig) -> Plan {
    Plan::new(config)
}
