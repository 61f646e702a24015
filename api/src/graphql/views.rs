//! The typed views a frontend reads, one per audience. The desk (agents, supervisors) reads
//! [`Conversation`] and [`Ticket`]; a customer reads [`CustomerConversation`] and
//! [`CustomerTicket`], types that have no field for internal notes, private comments, routing,
//! scenario or emotion data, so a leak cannot come back by adding a field to the desk's type:
//! it would have to be added to the customer's type, where the schema test looks for it.
//!
//! Objects that can be fetched by id implement [`Node`]; their `id` is a global id,
//! `<Type>:<uuid>` (`Conversation:0190…`), and `uuid` is the bare id the mutations take (they
//! take the global id too). A customer's and the desk's view of one conversation share its
//! global id: `node(id:)` answers with the view of the caller's audience.
//!
//! Read models keep codes (`with_agent`) and JSON lists in text columns; this module turns
//! them into enums and lists, so no JSON travels inside a string.

use async_graphql::{ComplexObject, Context, Enum, ID, Interface, Result, SimpleObject};
use chrono::{DateTime, Utc};
use kefu_domain::common::Party as DomainParty;
use kefu_domain::conversation::{ConversationEvent as E, RoutingReason as DomainReason};
use kefu_domain::ticket::{FieldChange, TicketEvent as T, TicketSource};
use kefu_projections::ProjectionError;
use kefu_projections::conversations::{
    ConversationRow, ConversationView, Emotion, TimelineEntry, TranscriptTurn, Turn as TurnRow,
};
use kefu_projections::queues::{AgentRow, ChatRow, QueueCounts, WaitingEntry as WaitingRow};
use kefu_projections::stats::StatsRow;
use kefu_projections::tickets::{TicketHistoryRow, TicketRow, TicketView};
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use super::types::{AgentStatus, Channel, CloseReason, TicketKind, TicketPriority, TicketStatus};
use super::{ApiError, api};

// ---- global ids ----

/// The kinds of object `node(id:)` finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Conversation,
    Ticket,
    Queue,
    Agent,
}

impl NodeKind {
    const ALL: [NodeKind; 4] = [
        NodeKind::Conversation,
        NodeKind::Ticket,
        NodeKind::Queue,
        NodeKind::Agent,
    ];

    fn as_str(self) -> &'static str {
        match self {
            NodeKind::Conversation => "Conversation",
            NodeKind::Ticket => "Ticket",
            NodeKind::Queue => "Queue",
            NodeKind::Agent => "Agent",
        }
    }
}

/// The global id of a `kind` with the bare id `id`.
pub fn global_id(kind: NodeKind, id: &str) -> ID {
    ID(format!("{}:{id}", kind.as_str()))
}

/// Reads a global id: its kind and bare id.
pub fn parse_global_id(raw: &str) -> Result<(NodeKind, String), ApiError> {
    let bad = || {
        ApiError::Validation(format!(
            "id: {raw:?} is not a global id (`<Type>:<uuid>`, Type one of Conversation, Ticket, \
             Queue, Agent)"
        ))
    };
    let (kind, id) = raw.trim().split_once(':').ok_or_else(bad)?;
    let kind = NodeKind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind)
        .ok_or_else(bad)?;
    super::uuid("id", id)?;
    Ok((kind, id.to_owned()))
}

/// What `node(id:)` returns: anything with a global id.
#[derive(Interface)]
#[graphql(field(
    name = "id",
    ty = "&ID",
    desc = "The global id, `<Type>:<uuid>`; `node(id:)` finds the object by it."
))]
pub enum Node {
    Conversation(Box<Conversation>),
    CustomerConversation(Box<CustomerConversation>),
    Ticket(Box<Ticket>),
    CustomerTicket(Box<CustomerTicket>),
    Queue(Box<Queue>),
    Agent(Box<Agent>),
}

/// What a Relay connection carries besides its edges.
#[derive(SimpleObject, Debug, Clone)]
pub struct Total {
    /// How many nodes the listing has in all, over every page.
    pub total_count: i64,
}

// ---- codes ----

fn bug(m: String) -> ApiError {
    ApiError::from(ProjectionError::Bug(m))
}

/// A code as a read model stores it (`with_agent`), read by its serde name.
fn decode<T: DeserializeOwned>(what: &str, code: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(code.to_owned())).map_err(|_| {
        bug(format!(
            "the read model holds {what} {code:?}, which this build does not know"
        ))
    })
}

/// A JSON text column, read back.
fn from_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| {
        bug(format!(
            "the read model's {what} is not what it should be: {e}"
        ))
    })
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn int(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Runs `load` once per object, on the first field that needs it: listing nodes read their
/// transcript or history only when a query asks for it.
struct Lazy<V>(OnceCell<V>);

impl<V> Lazy<V> {
    fn ready(v: V) -> Self {
        Lazy(OnceCell::new_with(Some(v)))
    }

    fn empty() -> Self {
        Lazy(OnceCell::new())
    }

    async fn get<F>(&self, load: F) -> Result<&V, ApiError>
    where
        F: Future<Output = Result<V, ApiError>>,
    {
        self.0.get_or_try_init(|| load).await
    }
}

// ---- enums ----

/// Where a conversation stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_projections::search::ConversationStatus")]
pub enum ConversationStatus {
    /// The bot is answering.
    Bot,
    /// Handed to a human, not yet routed to a queue.
    AwaitingHuman,
    Queued,
    WithAgent,
    Closed,
}

impl ConversationStatus {
    fn parse(code: &str) -> Result<Self, ApiError> {
        Ok(match code {
            "bot" => Self::Bot,
            "awaiting_human" => Self::AwaitingHuman,
            "queued" => Self::Queued,
            "with_agent" => Self::WithAgent,
            "closed" => Self::Closed,
            other => return Err(bug(format!("unknown conversation status {other:?}"))),
        })
    }
}

/// Who wrote a turn.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Speaker {
    Customer,
    Bot,
    Agent,
}

impl Speaker {
    fn parse(code: &str) -> Result<Self, ApiError> {
        Ok(match code {
            "customer" => Self::Customer,
            "bot" => Self::Bot,
            "agent" => Self::Agent,
            other => return Err(bug(format!("unknown speaker {other:?}"))),
        })
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_domain::conversation::EmotionLabel")]
pub enum EmotionLabel {
    Positive,
    Neutral,
    Negative,
    Angry,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_domain::conversation::EmotionTrend")]
pub enum EmotionTrend {
    Improving,
    Steady,
    Worsening,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_domain::conversation::HandoffReason")]
pub enum HandoffReason {
    /// The bot was not confident enough in its answer.
    LowConfidence,
    NegativeEmotion,
    /// The customer asked for a human (转人工).
    CustomerAsked,
    Vip,
    /// The bot is switched off.
    BotSwitchedOff,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_domain::customer::CustomerTier")]
pub enum CustomerTier {
    Regular,
    /// Paying membership (JD PLUS).
    Plus,
    Vip,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_domain::conversation::SlaKind")]
pub enum SlaKind {
    FirstResponse,
    Resolution,
}

/// What kind of party did something.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum PartyKind {
    Customer,
    Agent,
    Bot,
    System,
}

/// Who did something: a customer, an agent (with their id), the bot or a kefu component.
#[derive(SimpleObject, Debug, Clone)]
pub struct Party {
    pub kind: PartyKind,
    /// The agent's id, when an agent.
    pub agent: Option<String>,
}

impl From<&DomainParty> for Party {
    fn from(p: &DomainParty) -> Self {
        let (kind, agent) = match p {
            DomainParty::Customer => (PartyKind::Customer, None),
            DomainParty::Agent { agent } => (PartyKind::Agent, Some(agent.to_string())),
            DomainParty::Bot => (PartyKind::Bot, None),
            DomainParty::System => (PartyKind::System, None),
        };
        Party { kind, agent }
    }
}

// ---- the desk's conversation ----

/// A conversation as the desk (agents, supervisors) sees it: everything, internal notes,
/// triage and emotions included.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Conversation {
    pub id: ID,
    /// The bare id, as mutations take it.
    pub uuid: String,
    pub customer: String,
    pub channel: Channel,
    pub locale: String,
    pub tier: CustomerTier,
    pub order_id: Option<String>,
    /// `self_operated` or `merchant:<id>`, from the order in question.
    pub seller: Option<String>,
    pub category: Option<String>,
    pub status: ConversationStatus,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub bot_enabled: bool,
    pub started_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub close_reason: Option<CloseReason>,
    pub closed_by: Option<Party>,
    pub last_activity_at: DateTime<Utc>,
    /// Customer, bot and agent turns (notes are not turns).
    pub turn_count: i32,
    pub emotion_score: Option<f64>,
    pub emotion_label: Option<EmotionLabel>,
    pub emotion_trend: Option<EmotionTrend>,
    pub scenario_predicted: Option<String>,
    pub scenario_settled: Option<String>,
    pub handoff_reason: Option<HandoffReason>,
    pub survey_score: Option<i32>,
    pub survey_offered_at: Option<DateTime<Utc>>,
    pub reopened: i32,
    /// Orders attributed to the conversation.
    pub orders: i32,
    /// The current queueing's service-level clock; null outside one.
    pub sla: Option<SlaClock>,
    /// The stream version of the last event the view has applied.
    pub version: i32,
    /// The log position of that event.
    pub position: String,
    #[graphql(skip)]
    stream: Lazy<Stream>,
}

/// A queueing's service-level clock.
#[derive(SimpleObject, Debug, Clone)]
pub struct SlaClock {
    /// 1 is served first; escalations lower it.
    pub priority: i32,
    pub queued_at: DateTime<Utc>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    /// An agent has replied since the queueing.
    pub responded: bool,
    pub first_response_warned: bool,
    pub first_response_breached: bool,
    pub resolution_warned: bool,
    pub resolution_breached: bool,
}

/// One message: a customer, bot or agent turn, or an agent's internal note.
#[derive(SimpleObject, Debug, Clone)]
pub struct Turn {
    /// The message id (internal notes: `note-<version>`).
    pub message: String,
    /// The stream version of the event, which orders the transcript.
    pub version: i32,
    pub speaker: Speaker,
    pub agent: Option<String>,
    pub text: String,
    /// An internal note, for the desk only.
    pub internal: bool,
    /// The knowledge entry a bot turn answered with.
    pub answer_entry: Option<String>,
    pub confidence: Option<f64>,
    pub at: DateTime<Utc>,
    /// The emotion assessed for a customer turn.
    pub emotion: Option<EmotionReading>,
    /// For a customer turn a human answers: the answers the bot suggested to the agent.
    pub suggested: Option<AnswerSuggestions>,
}

/// What the bot would have answered a customer turn with, offered to the agent instead: its
/// best knowledge-base entries and its confidence in the first.
#[derive(SimpleObject, Debug, Clone)]
pub struct AnswerSuggestions {
    /// Best first.
    pub answers: Vec<SuggestedAnswer>,
    /// The bot's calibrated probability, 0 to 1, that the first answer is right.
    pub confidence: f64,
    pub model_version: String,
    pub at: DateTime<Utc>,
}

/// A knowledge-base entry as the agent was shown it.
#[derive(SimpleObject, Debug, Clone)]
pub struct SuggestedAnswer {
    pub entry: String,
    /// The entry's revision that was suggested.
    pub revision: i32,
    pub question: String,
    pub answer: String,
    /// The ranker's score, 0 to 1.
    pub score: f64,
}

impl From<kefu_domain::conversation::AnswersSuggested> for AnswerSuggestions {
    fn from(s: kefu_domain::conversation::AnswersSuggested) -> Self {
        AnswerSuggestions {
            answers: s
                .suggestions
                .into_iter()
                .map(|a| SuggestedAnswer {
                    entry: a.entry.to_string(),
                    revision: int(i64::from(a.revision)),
                    question: a.question,
                    answer: a.answer,
                    score: a.score,
                })
                .collect(),
            confidence: s.confidence,
            model_version: s.model_version,
            at: s.at,
        }
    }
}

/// The emotion assessed for one customer turn.
#[derive(SimpleObject, Debug, Clone)]
pub struct EmotionReading {
    pub message: String,
    pub version: i32,
    /// From -1 (angry) to 1 (pleased).
    pub score: f64,
    pub label: EmotionLabel,
    pub trend: EmotionTrend,
    pub model_version: String,
    pub at: DateTime<Utc>,
}

/// What a timeline item records.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum TimelineKind {
    ConversationStarted,
    ScenarioPredicted,
    ScenarioConfirmed,
    ScenarioCorrected,
    RoutingDecided,
    HandedToHuman,
    ConversationQueued,
    AgentAssigned,
    ConversationTransferred,
    ConversationIdleTimedOut,
    ConversationClosed,
    ConversationReopened,
    SurveyOffered,
    SurveyAnswered,
    OrderAttributed,
    SurveyReminded,
    SlaWarned,
    SlaBreached,
    ConversationEscalated,
}

/// Something that happened to a conversation besides its turns and emotions. `kind` says
/// what; the fields that kind has are set, the others are null.
#[derive(SimpleObject, Debug, Clone)]
pub struct TimelineItem {
    pub version: i32,
    pub kind: TimelineKind,
    pub at: DateTime<Utc>,
    /// The queue routed, queued, assigned, transferred to, warned or breached on.
    pub queue: Option<String>,
    /// The agent assigned, or the agent a transfer took the chat from.
    pub agent: Option<String>,
    /// The agent a transfer gave the chat to.
    pub to_agent: Option<String>,
    /// Why (transfers).
    pub reason: Option<String>,
    /// The scenario prediction (ScenarioPredicted).
    pub scenario: Option<ScenarioPrediction>,
    /// The scenario the customer confirmed or corrected to; the one predicted (corrections).
    pub scenario_settled: Option<String>,
    pub scenario_predicted: Option<String>,
    /// The routing decision (RoutingDecided).
    pub routing: Option<RoutingDecision>,
    pub handoff_reason: Option<HandoffReason>,
    /// Queueing priority (ConversationQueued, and escalations' new priority).
    pub priority: Option<i32>,
    /// The priority before an escalation.
    pub previous_priority: Option<i32>,
    /// Skills an agent must have (ConversationQueued).
    pub skills: Option<Vec<String>>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    /// Seconds in the queue before an agent was assigned.
    pub waited_secs: Option<i32>,
    /// Who closed or reopened it.
    pub by: Option<Party>,
    pub close_reason: Option<CloseReason>,
    pub survey_score: Option<i32>,
    pub survey_comment: Option<String>,
    pub order: Option<String>,
    pub amount: Option<Money>,
    pub sla_kind: Option<SlaKind>,
    /// When the SLA target warned of or breached was due.
    pub due: Option<DateTime<Utc>>,
    pub channel: Option<Channel>,
    /// The order's status when the chat began (ConversationStarted about an order).
    pub order_status: Option<super::integration::OrderStatus>,
}

/// An amount of money in minor units (fen for CNY).
#[derive(SimpleObject, Debug, Clone)]
pub struct Money {
    pub minor_units: String,
    /// ISO 4217, e.g. `CNY`.
    pub currency: String,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct ScenarioCandidate {
    pub scenario: String,
    pub probability: f64,
}

/// The scenario model's guess at what the customer needs.
#[derive(SimpleObject, Debug, Clone)]
pub struct ScenarioPrediction {
    pub candidates: Vec<ScenarioCandidate>,
    pub model_version: String,
}

/// Why triage picked a queue.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum RoutingReasonKind {
    OrderSeller,
    Scenario,
    Category,
    CustomerTier,
    /// No rule matched; the default queue.
    Fallback,
    Other,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct RoutingReason {
    pub kind: RoutingReasonKind,
    /// The seller, scenario, category, tier or code the rule matched on.
    pub value: Option<String>,
}

/// Triage's choice of queue and its reasons.
#[derive(SimpleObject, Debug, Clone)]
pub struct RoutingDecision {
    pub queue: String,
    pub reasons: Vec<RoutingReason>,
    pub model_version: String,
}

/// The parts of a conversation read from its stream.
struct Stream {
    turns: Vec<Turn>,
    emotions: Vec<EmotionReading>,
    timeline: Vec<TimelineItem>,
}

impl Stream {
    /// The typed parts of what a conversation view read from the stream.
    fn of(
        transcript: Vec<TranscriptTurn>,
        emotions: Vec<Emotion>,
        timeline: Vec<TimelineEntry>,
    ) -> Result<Stream, ApiError> {
        let emotions = emotions
            .into_iter()
            .map(|e| {
                Ok(EmotionReading {
                    version: int(e.version),
                    score: e.score,
                    label: decode::<kefu_domain::conversation::EmotionLabel>("emotion", &e.label)?
                        .into(),
                    trend: decode::<kefu_domain::conversation::EmotionTrend>("trend", &e.trend)?
                        .into(),
                    model_version: e.model_version,
                    at: time(e.at),
                    message: e.message,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let turns = transcript
            .into_iter()
            .map(|t| {
                let emotion = emotions
                    .iter()
                    .find(|e| e.message == t.turn.message)
                    .cloned();
                Ok(Turn {
                    emotion,
                    suggested: t.suggested.map(AnswerSuggestions::from),
                    ..turn(t.turn)?
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let timeline = timeline
            .into_iter()
            .filter_map(|t| timeline_item(int(t.version), time(t.at), t.event))
            .collect();
        Ok(Stream {
            turns,
            emotions,
            timeline,
        })
    }
}

fn turn(t: TurnRow) -> Result<Turn, ApiError> {
    Ok(Turn {
        version: int(t.version),
        speaker: Speaker::parse(&t.speaker)?,
        agent: t.agent,
        text: t.text,
        internal: t.internal,
        answer_entry: t.answer_entry,
        confidence: t.confidence,
        at: time(t.at),
        emotion: None,
        suggested: None,
        message: t.message,
    })
}

/// The timeline item of an event; None for the events the transcript and emotions show.
fn timeline_item(version: i32, at: DateTime<Utc>, event: E) -> Option<TimelineItem> {
    let item = |kind| TimelineItem {
        version,
        kind,
        at,
        queue: None,
        agent: None,
        to_agent: None,
        reason: None,
        scenario: None,
        scenario_settled: None,
        scenario_predicted: None,
        routing: None,
        handoff_reason: None,
        priority: None,
        previous_priority: None,
        skills: None,
        first_response_due: None,
        resolution_due: None,
        waited_secs: None,
        by: None,
        close_reason: None,
        survey_score: None,
        survey_comment: None,
        order: None,
        amount: None,
        sla_kind: None,
        due: None,
        channel: None,
        order_status: None,
    };
    use TimelineKind as K;
    Some(match event {
        E::CustomerTurnRecorded(_)
        | E::BotTurnRecorded(_)
        | E::AgentTurnRecorded(_)
        | E::InternalNoteAdded(_)
        | E::AnswersSuggested(_)
        | E::EmotionAssessed(_) => return None,
        E::ConversationStarted(s) => TimelineItem {
            channel: Some(s.channel.into()),
            order_status: s.order.as_ref().map(|o| o.status.into()),
            order: s.order.map(|o| o.order.to_string()),
            ..item(K::ConversationStarted)
        },
        E::ScenarioPredicted(p) => TimelineItem {
            scenario: Some(ScenarioPrediction {
                candidates: p
                    .candidates
                    .into_iter()
                    .map(|c| ScenarioCandidate {
                        scenario: c.scenario.to_string(),
                        probability: c.probability,
                    })
                    .collect(),
                model_version: p.model_version,
            }),
            ..item(K::ScenarioPredicted)
        },
        E::ScenarioConfirmed(c) => TimelineItem {
            scenario_settled: Some(c.scenario.to_string()),
            ..item(K::ScenarioConfirmed)
        },
        E::ScenarioCorrected(c) => TimelineItem {
            scenario_settled: Some(c.actual.to_string()),
            scenario_predicted: Some(c.predicted.to_string()),
            ..item(K::ScenarioCorrected)
        },
        E::RoutingDecided(r) => TimelineItem {
            queue: Some(r.queue.to_string()),
            routing: Some(RoutingDecision {
                queue: r.queue.to_string(),
                reasons: r.reasons.iter().map(routing_reason).collect(),
                model_version: r.model_version,
            }),
            ..item(K::RoutingDecided)
        },
        E::HandedToHuman(h) => TimelineItem {
            handoff_reason: Some(h.reason.into()),
            ..item(K::HandedToHuman)
        },
        E::ConversationQueued(q) => TimelineItem {
            queue: Some(q.queue.to_string()),
            priority: Some(i32::from(q.priority)),
            skills: Some(q.skills.iter().map(ToString::to_string).collect()),
            first_response_due: Some(q.first_response_due),
            resolution_due: q.resolution_due,
            ..item(K::ConversationQueued)
        },
        E::AgentAssigned(a) => TimelineItem {
            agent: Some(a.agent.to_string()),
            queue: Some(a.queue.to_string()),
            waited_secs: Some(int(a.waited_secs)),
            ..item(K::AgentAssigned)
        },
        E::ConversationTransferred(t) => {
            let (to_agent, queue) = match t.to {
                kefu_domain::conversation::TransferredTo::Agent { agent } => {
                    (Some(agent.to_string()), None)
                }
                kefu_domain::conversation::TransferredTo::Queue { queue } => {
                    (None, Some(queue.to_string()))
                }
            };
            TimelineItem {
                agent: Some(t.from_agent.to_string()),
                to_agent,
                queue,
                reason: Some(t.reason),
                ..item(K::ConversationTransferred)
            }
        }
        E::ConversationIdleTimedOut(_) => item(K::ConversationIdleTimedOut),
        E::ConversationClosed(c) => TimelineItem {
            by: Some(Party::from(&c.by)),
            close_reason: Some(c.reason.into()),
            agent: c.released_agent.map(|a| a.to_string()),
            ..item(K::ConversationClosed)
        },
        E::ConversationReopened(r) => TimelineItem {
            by: Some(Party::from(&r.by)),
            ..item(K::ConversationReopened)
        },
        E::SurveyOffered(_) => item(K::SurveyOffered),
        E::SurveyAnswered(a) => TimelineItem {
            survey_score: Some(i32::from(a.score)),
            survey_comment: a.comment,
            ..item(K::SurveyAnswered)
        },
        E::OrderAttributed(o) => TimelineItem {
            order: Some(o.order.to_string()),
            amount: Some(Money {
                minor_units: o.amount.minor_units.to_string(),
                currency: o.amount.currency,
            }),
            ..item(K::OrderAttributed)
        },
        E::SurveyReminded(_) => item(K::SurveyReminded),
        E::SlaWarned(w) => TimelineItem {
            sla_kind: Some(w.kind.into()),
            queue: Some(w.queue.to_string()),
            due: Some(w.due),
            ..item(K::SlaWarned)
        },
        E::SlaBreached(b) => TimelineItem {
            sla_kind: Some(b.kind.into()),
            queue: Some(b.queue.to_string()),
            due: Some(b.due),
            ..item(K::SlaBreached)
        },
        E::ConversationEscalated(x) => TimelineItem {
            sla_kind: Some(x.kind.into()),
            queue: Some(x.queue.to_string()),
            previous_priority: Some(i32::from(x.from_priority)),
            priority: Some(i32::from(x.to_priority)),
            ..item(K::ConversationEscalated)
        },
    })
}

fn routing_reason(r: &DomainReason) -> RoutingReason {
    let (kind, value) = match r {
        DomainReason::OrderSeller { seller } => (
            RoutingReasonKind::OrderSeller,
            Some(kefu_projections::view::seller(seller)),
        ),
        DomainReason::Scenario { scenario } => {
            (RoutingReasonKind::Scenario, Some(scenario.to_string()))
        }
        DomainReason::Category { category } => {
            (RoutingReasonKind::Category, Some(category.to_string()))
        }
        DomainReason::CustomerTier { tier } => (
            RoutingReasonKind::CustomerTier,
            Some(kefu_projections::view::code(tier)),
        ),
        DomainReason::Fallback => (RoutingReasonKind::Fallback, None),
        DomainReason::Other { code } => (RoutingReasonKind::Other, Some(code.clone())),
    };
    RoutingReason { kind, value }
}

/// Reads a conversation's stream parts (for a listing node, on first need).
async fn load_stream(ctx: &Context<'_>, id: &str) -> Result<Stream, ApiError> {
    let api = api(ctx);
    let view = api.read.live("conversations").await?;
    let found = view
        .conversation(&*api.log, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation {id} in the read model")))?;
    Stream::of(found.transcript, found.emotions, found.timeline)
}

impl Conversation {
    /// The desk's view of a summary row; the transcript is read when a query asks for it.
    pub fn of_row(r: ConversationRow) -> Result<Self, ApiError> {
        Self::build(r, Lazy::empty())
    }

    /// The desk's view of one conversation read whole.
    pub fn of_view(v: ConversationView) -> Result<Self, ApiError> {
        let ConversationView {
            conversation,
            transcript,
            emotions,
            timeline,
        } = v;
        let stream = Stream::of(transcript, emotions, timeline)?;
        Self::build(conversation, Lazy::ready(stream))
    }

    fn build(r: ConversationRow, stream: Lazy<Stream>) -> Result<Self, ApiError> {
        let sla = match (r.priority, r.queued_at) {
            (Some(priority), Some(queued_at)) => Some(SlaClock {
                priority: int(priority),
                queued_at: time(queued_at),
                first_response_due: r.first_response_due.map(time),
                resolution_due: r.resolution_due.map(time),
                responded: r.responded,
                first_response_warned: r.first_response_warned,
                first_response_breached: r.first_response_breached,
                resolution_warned: r.resolution_warned,
                resolution_breached: r.resolution_breached,
            }),
            _ => None,
        };
        Ok(Conversation {
            id: global_id(NodeKind::Conversation, &r.id),
            channel: decode::<kefu_domain::common::Channel>("channel", &r.channel)?.into(),
            tier: decode::<kefu_domain::customer::CustomerTier>("tier", &r.tier)?.into(),
            status: ConversationStatus::parse(&r.status)?,
            started_at: time(r.started_at),
            closed_at: r.closed_at.map(time),
            close_reason: r
                .close_reason
                .as_deref()
                .map(|c| decode::<kefu_domain::conversation::CloseReason>("close reason", c))
                .transpose()?
                .map(Into::into),
            closed_by: r
                .closed_by
                .as_deref()
                .map(|j| from_json::<DomainParty>("closed_by", j))
                .transpose()?
                .as_ref()
                .map(Party::from),
            last_activity_at: time(r.last_activity_at),
            turn_count: int(r.turns),
            emotion_label: r
                .emotion_label
                .as_deref()
                .map(|c| decode::<kefu_domain::conversation::EmotionLabel>("emotion", c))
                .transpose()?
                .map(Into::into),
            emotion_trend: r
                .emotion_trend
                .as_deref()
                .map(|c| decode::<kefu_domain::conversation::EmotionTrend>("trend", c))
                .transpose()?
                .map(Into::into),
            handoff_reason: r
                .handoff_reason
                .as_deref()
                .map(|c| decode::<kefu_domain::conversation::HandoffReason>("hand-off", c))
                .transpose()?
                .map(Into::into),
            survey_score: r.survey_score.map(int),
            survey_offered_at: r.survey_offered_at.map(time),
            reopened: int(r.reopened),
            orders: int(r.orders),
            sla,
            version: int(r.version),
            position: r.position.to_string(),
            uuid: r.id,
            customer: r.customer,
            locale: r.locale,
            order_id: r.order_id,
            seller: r.seller,
            category: r.category,
            queue: r.queue,
            agent: r.agent,
            bot_enabled: r.bot_enabled,
            emotion_score: r.emotion_score,
            scenario_predicted: r.scenario_predicted,
            scenario_settled: r.scenario_settled,
            stream,
        })
    }

    async fn stream(&self, ctx: &Context<'_>) -> Result<&Stream, ApiError> {
        self.stream.get(load_stream(ctx, &self.uuid)).await
    }
}

#[ComplexObject]
impl Conversation {
    /// Every turn and internal note, in order, with the emotion assessed for customer turns.
    async fn turns(&self, ctx: &Context<'_>) -> Result<&[Turn]> {
        Ok(&self.stream(ctx).await?.turns)
    }

    /// The emotion assessed for each customer turn, in order.
    async fn emotions(&self, ctx: &Context<'_>) -> Result<&[EmotionReading]> {
        Ok(&self.stream(ctx).await?.emotions)
    }

    /// Everything else that happened: triage, routing, hand-off, queueing, assignment,
    /// transfers, SLA, close, survey.
    async fn timeline(&self, ctx: &Context<'_>) -> Result<&[TimelineItem]> {
        Ok(&self.stream(ctx).await?.timeline)
    }

    /// Whom the chat can be handed to (`transferConversation(toAgent:)`): the agents online
    /// who serve its queue and have a free seat, but the one who has it. Empty outside a
    /// queue; the transfer checks the same again against the agent's own stream.
    async fn colleagues(&self, ctx: &Context<'_>) -> Result<Vec<Colleague>> {
        let Some(queue) = &self.queue else {
            return Ok(Vec::new());
        };
        let view = api(ctx).read.live("queues").await.map_err(ApiError::from)?;
        let found = view
            .colleagues(queue, self.agent.as_deref())
            .await
            .map_err(ApiError::from)?;
        Ok(found
            .into_iter()
            .map(|a| Colleague {
                free_seats: int((a.max_concurrent - a.active).max(0)),
                uuid: a.id,
                name: a.name,
            })
            .collect())
    }
}

/// An agent a chat can be transferred to.
#[derive(SimpleObject, Debug, Clone)]
pub struct Colleague {
    /// The agent's id, as `transferConversation(toAgent:)` takes it.
    pub uuid: String,
    pub name: String,
    pub free_seats: i32,
}

// ---- the customer's conversation ----

/// A conversation as its customer sees it: the turns (no internal notes), where it stands,
/// their place in line and expected wait while queued, and the survey. No field here can
/// carry notes, triage, routing or emotion data.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct CustomerConversation {
    pub id: ID,
    /// The bare id, as mutations take it.
    pub uuid: String,
    pub channel: Channel,
    pub status: ConversationStatus,
    pub started_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub close_reason: Option<CloseReason>,
    pub last_activity_at: DateTime<Utc>,
    pub survey: SurveyState,
    #[graphql(skip)]
    turns: Lazy<Vec<CustomerTurn>>,
    #[graphql(skip)]
    line: Lazy<Option<PlaceInLine>>,
    #[graphql(skip)]
    queue: Option<String>,
}

/// A turn as the customer sees it.
#[derive(SimpleObject, Debug, Clone)]
pub struct CustomerTurn {
    pub message: String,
    pub speaker: Speaker,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// The satisfaction survey of a conversation.
#[derive(SimpleObject, Debug, Clone)]
pub struct SurveyState {
    /// Offered (and not yet answered, or answered).
    pub offered: bool,
    pub offered_at: Option<DateTime<Utc>>,
    /// The customer's answer, 1 to 5 stars.
    pub score: Option<i32>,
}

/// Where a queued conversation stands in its queue.
#[derive(Debug, Clone)]
pub struct PlaceInLine {
    /// 1 is next to be served.
    pub place: i32,
    /// None when no agent who serves the queue is online.
    pub expected_wait_secs: Option<i32>,
}

/// Handling time assumed for a queue with no history, seconds (as the forecast assumes).
const DEFAULT_HANDLING_SECS: f64 = 600.0;

/// The expected wait of the `place`-th conversation in line: every one ahead of it beyond the
/// free seats waits for a seat to free, and the queue's seats free at `seats / handling` per
/// second (handling: the mean handling time of the queue's conversations over the last 7 days,
/// 600 s with no history). None with no seat online: no one will serve it.
pub fn expected_wait_secs(place: i32, free_seats: i64, seats: i64, handling: f64) -> Option<i32> {
    if seats <= 0 {
        return None;
    }
    let ahead = (i64::from(place) - free_seats).max(0) as f64;
    Some(
        (ahead * handling / seats as f64)
            .ceil()
            .min(f64::from(i32::MAX)) as i32,
    )
}

async fn load_place(
    ctx: &Context<'_>,
    id: &str,
    queue: &str,
) -> Result<Option<PlaceInLine>, ApiError> {
    let api = api(ctx);
    let queues = api.read.live("queues").await?;
    let now = api.desk.now();
    let waiting = queues.waiting(Some(queue), now.timestamp_millis()).await?;
    let Some(entry) = waiting.iter().find(|w| w.entry.conversation == id) else {
        return Ok(None);
    };
    let counts = queues.queue_counts(now.timestamp_millis()).await?;
    let Some(c) = counts.iter().find(|c| c.queue.id == queue) else {
        return Ok(None);
    };
    let stats = api.read.live("stats").await?;
    let handling = stats
        .handling_secs(queue, now - chrono::Duration::days(7))
        .await?
        .unwrap_or(DEFAULT_HANDLING_SECS);
    let place = int(entry.position as i64);
    Ok(Some(PlaceInLine {
        place,
        expected_wait_secs: expected_wait_secs(place, c.free_seats, c.seats, handling),
    }))
}

impl CustomerConversation {
    pub fn of_row(r: ConversationRow) -> Result<Self, ApiError> {
        Self::build(r, Lazy::empty())
    }

    pub fn of_view(v: ConversationView) -> Result<Self, ApiError> {
        let turns = customer_turns(v.transcript.into_iter().map(|t| t.turn))?;
        Self::build(v.conversation, Lazy::ready(turns))
    }

    fn build(r: ConversationRow, turns: Lazy<Vec<CustomerTurn>>) -> Result<Self, ApiError> {
        let status = ConversationStatus::parse(&r.status)?;
        Ok(CustomerConversation {
            id: global_id(NodeKind::Conversation, &r.id),
            channel: decode::<kefu_domain::common::Channel>("channel", &r.channel)?.into(),
            status,
            started_at: time(r.started_at),
            closed_at: r.closed_at.map(time),
            close_reason: r
                .close_reason
                .as_deref()
                .map(|c| decode::<kefu_domain::conversation::CloseReason>("close reason", c))
                .transpose()?
                .map(Into::into),
            last_activity_at: time(r.last_activity_at),
            survey: SurveyState {
                offered: r.survey_offered_at.is_some() || r.survey_score.is_some(),
                offered_at: r.survey_offered_at.map(time),
                score: r.survey_score.map(int),
            },
            queue: r.queue.filter(|_| status == ConversationStatus::Queued),
            uuid: r.id,
            turns,
            line: Lazy::empty(),
        })
    }

    async fn line(&self, ctx: &Context<'_>) -> Result<Option<PlaceInLine>, ApiError> {
        let Some(queue) = &self.queue else {
            return Ok(None);
        };
        Ok(self
            .line
            .get(load_place(ctx, &self.uuid, queue))
            .await?
            .clone())
    }
}

fn customer_turns(turns: impl Iterator<Item = TurnRow>) -> Result<Vec<CustomerTurn>, ApiError> {
    turns
        .filter(|t| !t.internal)
        .map(|t| {
            Ok(CustomerTurn {
                speaker: Speaker::parse(&t.speaker)?,
                text: t.text,
                at: time(t.at),
                message: t.message,
            })
        })
        .collect()
}

#[ComplexObject]
impl CustomerConversation {
    /// The turns of the customer, the bot and agents, in order.
    async fn turns(&self, ctx: &Context<'_>) -> Result<&[CustomerTurn]> {
        let load = async {
            let api = api(ctx);
            let view = api.read.live("conversations").await?;
            let found = view
                .conversation(&*api.log, &self.uuid)
                .await?
                .ok_or_else(|| {
                    ApiError::NotFound(format!("no conversation {} in the read model", self.uuid))
                })?;
            customer_turns(found.transcript.into_iter().map(|t| t.turn))
        };
        Ok(self.turns.get(load).await?)
    }

    /// While queued: how many conversations are served before this one, plus one (1 is
    /// next). Null when not waiting in a queue.
    async fn place_in_line(&self, ctx: &Context<'_>) -> Result<Option<i32>> {
        Ok(self.line(ctx).await?.map(|l| l.place))
    }

    /// While queued: the expected wait in seconds (see the README's "Views per role" for how
    /// it is estimated). Null when not queued or when no agent who serves the queue is online.
    async fn expected_wait_secs(&self, ctx: &Context<'_>) -> Result<Option<i32>> {
        Ok(self.line(ctx).await?.and_then(|l| l.expected_wait_secs))
    }
}

// ---- queues, agents, workbench ----

/// A queue with its live figures.
#[derive(SimpleObject, Debug, Clone)]
pub struct Queue {
    pub id: ID,
    pub uuid: String,
    pub name: String,
    pub business_line: String,
    pub categories: Vec<String>,
    pub skills: Vec<String>,
    /// 1 is served first.
    pub priority: i32,
    pub first_response_secs: i32,
    pub resolution_secs: i32,
    /// Conversations waiting.
    pub waiting_count: i32,
    /// Conversations with an agent.
    pub with_agent_count: i32,
    pub longest_wait_secs: i32,
    /// Online agents who have every skill the queue requires.
    pub agents_online: i32,
    /// Free seats among them.
    pub free_seats: i32,
    /// All their seats, busy or free.
    pub seats: i32,
    /// The waiting conversations, in serving order.
    pub waiting: Vec<WaitingEntry>,
}

/// A conversation waiting in a queue.
#[derive(SimpleObject, Debug, Clone)]
pub struct WaitingEntry {
    pub conversation: String,
    pub queue: String,
    /// 1 is served first.
    pub priority: i32,
    /// Skills the agent must have.
    pub skills: Vec<String>,
    pub enqueued_at: DateTime<Utc>,
    pub first_response_due: DateTime<Utc>,
    /// 1 is next to be served.
    pub place_in_line: i32,
    pub wait_secs: i32,
    /// The log position of the queueing.
    pub position: String,
}

impl Queue {
    pub fn of(c: QueueCounts, waiting: &[WaitingRow]) -> Result<Self, ApiError> {
        let q = c.queue;
        Ok(Queue {
            id: global_id(NodeKind::Queue, &q.id),
            categories: from_json("queue categories", &q.categories)?,
            skills: from_json("queue skills", &q.skills)?,
            priority: int(q.priority),
            first_response_secs: int(q.first_response_secs),
            resolution_secs: int(q.resolution_secs),
            waiting_count: int(c.waiting),
            with_agent_count: int(c.with_agent),
            longest_wait_secs: int(c.longest_wait_secs),
            agents_online: int(c.agents_online),
            free_seats: int(c.free_seats),
            seats: int(c.seats),
            waiting: waiting
                .iter()
                .filter(|w| w.entry.queue == q.id)
                .map(WaitingEntry::of)
                .collect::<Result<_, _>>()?,
            uuid: q.id,
            name: q.name,
            business_line: q.business_line,
        })
    }
}

impl WaitingEntry {
    fn of(w: &WaitingRow) -> Result<Self, ApiError> {
        let e = &w.entry;
        Ok(WaitingEntry {
            conversation: e.conversation.clone(),
            queue: e.queue.clone(),
            priority: int(e.priority),
            skills: from_json("waiting skills", &e.skills)?,
            enqueued_at: time(e.enqueued_at),
            first_response_due: time(e.first_response_due),
            place_in_line: int(w.position as i64),
            wait_secs: int(w.wait_secs),
            position: e.position.to_string(),
        })
    }
}

/// An agent as the desk's read model has them.
#[derive(SimpleObject, Debug, Clone)]
pub struct Agent {
    pub id: ID,
    pub uuid: String,
    pub name: String,
    pub skills: Vec<String>,
    pub max_concurrent: i32,
    pub status: AgentStatus,
    pub status_since: DateTime<Utc>,
    /// Chats held.
    pub active_chats: i32,
    pub retired: bool,
}

impl Agent {
    pub fn of(a: AgentRow) -> Result<Self, ApiError> {
        Ok(Agent {
            id: global_id(NodeKind::Agent, &a.id),
            skills: from_json("agent skills", &a.skills)?,
            max_concurrent: int(a.max_concurrent),
            status: decode::<kefu_domain::agent::AgentStatus>("agent status", &a.status)?.into(),
            status_since: time(a.status_since),
            active_chats: int(a.active),
            retired: a.retired,
            uuid: a.id,
            name: a.name,
        })
    }
}

/// A chat an agent holds.
#[derive(SimpleObject, Debug, Clone)]
pub struct Chat {
    pub conversation: String,
    pub queue: String,
    pub since: DateTime<Utc>,
}

impl From<ChatRow> for Chat {
    fn from(c: ChatRow) -> Self {
        Chat {
            conversation: c.conversation,
            queue: c.queue,
            since: time(c.since),
        }
    }
}

/// An agent's desk: who they are, the chats they hold, how many more they can take.
#[derive(SimpleObject, Debug, Clone)]
pub struct Workbench {
    pub agent: Agent,
    pub chats: Vec<Chat>,
    pub free_seats: i32,
}

impl Workbench {
    pub fn of(w: kefu_projections::queues::Workbench) -> Result<Self, ApiError> {
        Ok(Workbench {
            agent: Agent::of(w.agent)?,
            chats: w.chats.into_iter().map(Chat::from).collect(),
            free_seats: int(w.free_seats),
        })
    }
}

// ---- tickets ----

/// A ticket as the desk sees it, with every change and every comment, private ones included.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Ticket {
    pub id: ID,
    pub uuid: String,
    pub customer: String,
    /// The conversation it was opened from, if any.
    pub conversation: Option<String>,
    /// The agent who opened it, if an agent did.
    pub opened_by_agent: Option<String>,
    pub kind: TicketKind,
    pub priority: TicketPriority,
    pub subject: String,
    pub description: String,
    pub order_id: Option<String>,
    pub assignee: Option<String>,
    pub status: TicketStatus,
    pub escalation_level: i32,
    pub merged_into: Option<String>,
    pub comment_count: i32,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    history: Lazy<Vec<TicketChange>>,
}

/// What a ticket change did.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum TicketChangeKind {
    Opened,
    FieldChanged,
    StatusChanged,
    Commented,
    Escalated,
    Merged,
    Reopened,
}

/// The ticket field a change changed.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum TicketField {
    Kind,
    Priority,
    Subject,
    Order,
    Assignee,
    Status,
    EscalationLevel,
}

/// A value of a ticket field: the member `field` names is set.
#[derive(SimpleObject, Debug, Clone, Default)]
pub struct TicketValue {
    pub kind: Option<TicketKind>,
    pub priority: Option<TicketPriority>,
    pub subject: Option<String>,
    pub order: Option<String>,
    pub assignee: Option<String>,
    pub status: Option<TicketStatus>,
    pub escalation_level: Option<i32>,
}

/// A comment on a ticket.
#[derive(SimpleObject, Debug, Clone)]
pub struct TicketComment {
    pub author: Party,
    pub body: String,
    /// Public comments are shown to the customer; the others are the desk's.
    pub public: bool,
    pub at: DateTime<Utc>,
}

/// One change to a ticket: which field went from what to what, who did it and when.
#[derive(SimpleObject, Debug, Clone)]
pub struct TicketChange {
    pub version: i32,
    pub kind: TicketChangeKind,
    pub at: DateTime<Utc>,
    pub by: Option<Party>,
    pub field: Option<TicketField>,
    pub before: Option<TicketValue>,
    pub after: Option<TicketValue>,
    pub comment: Option<TicketComment>,
    /// Why (escalations, reopenings).
    pub reason: Option<String>,
    pub merged_into: Option<String>,
}

fn ticket_change(h: &TicketHistoryRow) -> Result<TicketChange, ApiError> {
    let event: T = from_json("ticket history", &h.detail)?;
    let mut c = TicketChange {
        version: int(h.version),
        kind: TicketChangeKind::Opened,
        at: time(h.at),
        by: None,
        field: None,
        before: None,
        after: None,
        comment: None,
        reason: None,
        merged_into: None,
    };
    let status = |s: kefu_domain::ticket::TicketStatus| TicketValue {
        status: Some(s.into()),
        ..TicketValue::default()
    };
    match event {
        T::TicketOpened(o) => {
            c.by = match o.source {
                TicketSource::Agent { agent } => Some(Party::from(&DomainParty::Agent { agent })),
                TicketSource::Conversation { .. } => None,
            };
        }
        T::TicketFieldChanged(f) => {
            c.kind = TicketChangeKind::FieldChanged;
            c.by = Some(Party::from(&f.by));
            let v = TicketValue::default;
            let (field, before, after) = match f.change {
                FieldChange::Kind { before, after } => (
                    TicketField::Kind,
                    TicketValue {
                        kind: Some(before.into()),
                        ..v()
                    },
                    TicketValue {
                        kind: Some(after.into()),
                        ..v()
                    },
                ),
                FieldChange::Priority { before, after } => (
                    TicketField::Priority,
                    TicketValue {
                        priority: Some(before.into()),
                        ..v()
                    },
                    TicketValue {
                        priority: Some(after.into()),
                        ..v()
                    },
                ),
                FieldChange::Subject { before, after } => (
                    TicketField::Subject,
                    TicketValue {
                        subject: Some(before),
                        ..v()
                    },
                    TicketValue {
                        subject: Some(after),
                        ..v()
                    },
                ),
                FieldChange::Order { before, after } => (
                    TicketField::Order,
                    TicketValue {
                        order: before.map(|o| o.to_string()),
                        ..v()
                    },
                    TicketValue {
                        order: after.map(|o| o.to_string()),
                        ..v()
                    },
                ),
                FieldChange::Assignee { before, after } => (
                    TicketField::Assignee,
                    TicketValue {
                        assignee: before.map(|a| a.to_string()),
                        ..v()
                    },
                    TicketValue {
                        assignee: after.map(|a| a.to_string()),
                        ..v()
                    },
                ),
            };
            (c.field, c.before, c.after) = (Some(field), Some(before), Some(after));
        }
        T::TicketStatusChanged(s) => {
            c.kind = TicketChangeKind::StatusChanged;
            c.by = Some(Party::from(&s.by));
            c.field = Some(TicketField::Status);
            (c.before, c.after) = (Some(status(s.from)), Some(status(s.to)));
        }
        T::TicketCommented(m) => {
            c.kind = TicketChangeKind::Commented;
            c.by = Some(Party::from(&m.author));
            c.comment = Some(TicketComment {
                author: Party::from(&m.author),
                body: m.body,
                public: m.public,
                at: m.at,
            });
        }
        T::TicketEscalated(x) => {
            c.kind = TicketChangeKind::Escalated;
            c.by = Some(Party::from(&x.by));
            c.field = Some(TicketField::EscalationLevel);
            c.after = Some(TicketValue {
                escalation_level: Some(i32::from(x.level)),
                ..TicketValue::default()
            });
            c.before = h
                .before
                .as_deref()
                .and_then(|b| b.parse().ok())
                .map(|l| TicketValue {
                    escalation_level: Some(l),
                    ..TicketValue::default()
                });
            c.reason = Some(x.reason);
        }
        T::TicketMerged(m) => {
            c.kind = TicketChangeKind::Merged;
            c.by = Some(Party::from(&m.by));
            c.field = Some(TicketField::Status);
            c.before = Some(status(m.from));
            c.after = Some(status(kefu_domain::ticket::TicketStatus::Closed));
            c.merged_into = Some(m.into.to_string());
        }
        T::TicketReopened(r) => {
            c.kind = TicketChangeKind::Reopened;
            c.by = Some(Party::from(&r.by));
            c.field = Some(TicketField::Status);
            c.before = h
                .before
                .as_deref()
                .map(|b| from_json::<kefu_domain::ticket::TicketStatus>("ticket status", b))
                .transpose()?
                .map(status);
            c.after = Some(status(kefu_domain::ticket::TicketStatus::Open));
            c.reason = Some(r.reason);
        }
    }
    Ok(c)
}

async fn load_history(ctx: &Context<'_>, id: &str) -> Result<Vec<TicketChange>, ApiError> {
    let view = api(ctx).read.live("tickets").await?;
    let found = view
        .ticket(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no ticket {id} in the read model")))?;
    found.history.iter().map(ticket_change).collect()
}

/// The ticket row's typed fields, shared by the desk's and the customer's views.
struct TicketFields {
    kind: TicketKind,
    priority: TicketPriority,
    status: TicketStatus,
}

fn ticket_fields(t: &TicketRow) -> Result<TicketFields, ApiError> {
    Ok(TicketFields {
        kind: decode::<kefu_domain::ticket::TicketKind>("ticket kind", &t.kind)?.into(),
        priority: decode::<kefu_domain::ticket::TicketPriority>("ticket priority", &t.priority)?
            .into(),
        status: decode::<kefu_domain::ticket::TicketStatus>("ticket status", &t.status)?.into(),
    })
}

impl Ticket {
    pub fn of_row(t: TicketRow) -> Result<Self, ApiError> {
        Self::build(t, Lazy::empty())
    }

    pub fn of_view(v: TicketView) -> Result<Self, ApiError> {
        let history = v
            .history
            .iter()
            .map(ticket_change)
            .collect::<Result<_, _>>()?;
        Self::build(v.ticket, Lazy::ready(history))
    }

    fn build(t: TicketRow, history: Lazy<Vec<TicketChange>>) -> Result<Self, ApiError> {
        let f = ticket_fields(&t)?;
        Ok(Ticket {
            id: global_id(NodeKind::Ticket, &t.id),
            kind: f.kind,
            priority: f.priority,
            status: f.status,
            escalation_level: int(t.escalation_level),
            comment_count: int(t.comments),
            opened_at: time(t.opened_at),
            updated_at: time(t.updated_at),
            closed_at: t.closed_at.map(time),
            uuid: t.id,
            customer: t.customer,
            conversation: t.conversation,
            opened_by_agent: t.opened_by_agent,
            subject: t.subject,
            description: t.description,
            order_id: t.order_id,
            assignee: t.assignee,
            merged_into: t.merged_into,
            history,
        })
    }

    async fn changes(&self, ctx: &Context<'_>) -> Result<&[TicketChange], ApiError> {
        Ok(self.history.get(load_history(ctx, &self.uuid)).await?)
    }
}

#[ComplexObject]
impl Ticket {
    /// Every change, oldest first.
    async fn history(&self, ctx: &Context<'_>) -> Result<&[TicketChange]> {
        Ok(self.changes(ctx).await?)
    }

    /// Every comment, public and private, oldest first.
    async fn comments(&self, ctx: &Context<'_>) -> Result<Vec<TicketComment>> {
        Ok(self
            .changes(ctx)
            .await?
            .iter()
            .filter_map(|c| c.comment.clone())
            .collect())
    }
}

/// A ticket as its customer sees it: where it stands and the public comments. No field here
/// can carry a private comment, the assignee or the desk's history.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct CustomerTicket {
    pub id: ID,
    pub uuid: String,
    /// The conversation it was opened from, if any.
    pub conversation: Option<String>,
    pub kind: TicketKind,
    pub subject: String,
    pub description: String,
    pub order_id: Option<String>,
    pub status: TicketStatus,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    comments: Lazy<Vec<PublicComment>>,
}

/// A public comment on a ticket.
#[derive(SimpleObject, Debug, Clone)]
pub struct PublicComment {
    /// The customer themselves, or an agent (who is not named).
    pub author: PartyKind,
    pub body: String,
    pub at: DateTime<Utc>,
}

fn public_comments(history: &[TicketHistoryRow]) -> Result<Vec<PublicComment>, ApiError> {
    let mut out = Vec::new();
    for h in history.iter().filter(|h| h.event_type == "TicketCommented") {
        if let T::TicketCommented(c) = from_json::<T>("ticket history", &h.detail)?
            && c.public
        {
            out.push(PublicComment {
                author: Party::from(&c.author).kind,
                body: c.body,
                at: c.at,
            });
        }
    }
    Ok(out)
}

impl CustomerTicket {
    pub fn of_row(t: TicketRow) -> Result<Self, ApiError> {
        Self::build(t, Lazy::empty())
    }

    pub fn of_view(v: TicketView) -> Result<Self, ApiError> {
        let comments = public_comments(&v.history)?;
        Self::build(v.ticket, Lazy::ready(comments))
    }

    fn build(t: TicketRow, comments: Lazy<Vec<PublicComment>>) -> Result<Self, ApiError> {
        let f = ticket_fields(&t)?;
        Ok(CustomerTicket {
            id: global_id(NodeKind::Ticket, &t.id),
            kind: f.kind,
            status: f.status,
            opened_at: time(t.opened_at),
            updated_at: time(t.updated_at),
            closed_at: t.closed_at.map(time),
            uuid: t.id,
            conversation: t.conversation,
            subject: t.subject,
            description: t.description,
            order_id: t.order_id,
            comments,
        })
    }
}

#[ComplexObject]
impl CustomerTicket {
    /// The public comments, oldest first.
    async fn comments(&self, ctx: &Context<'_>) -> Result<&[PublicComment]> {
        let load = async {
            let view = api(ctx).read.live("tickets").await?;
            let found = view.ticket(&self.uuid).await?.ok_or_else(|| {
                ApiError::NotFound(format!("no ticket {} in the read model", self.uuid))
            })?;
            public_comments(&found.history)
        };
        Ok(self.comments.get(load).await?)
    }
}

// ---- statistics, probes ----

/// The figures for one group of conversations.
#[derive(SimpleObject, Debug, Clone)]
pub struct StatisticsRow {
    /// The group's value (a date `2026-11-20`, a week `2026-W47`, a month `2026-11`, an hour
    /// `2026-11-20T14`, a queue id, …); null for conversations without one (no agent, no
    /// scenario).
    pub key: Option<String>,
    /// The queue's or agent's name, when grouped by queue or agent.
    pub name: Option<String>,
    pub conversations: i32,
    pub closed: i32,
    /// Closed without ever reaching a human.
    pub contained_by_bot: i32,
    /// Conversations handed to a human at least once (grouped by hand-off reason: by the
    /// conversation's first reason).
    pub handed_off: i32,
    /// Hand-off events: a conversation handed over twice counts twice (grouped by hand-off
    /// reason: the hand-offs with that reason).
    pub handoffs: i32,
    pub surveys_offered: i32,
    pub surveys_answered: i32,
    /// Answers with 4 or 5 stars.
    pub satisfied: i32,
    pub orders: i32,
    pub scenario_settled: i32,
    pub scenario_matched: i32,
    pub first_response_breaches: i32,
    pub resolution_breaches: i32,
    /// Survey answers per survey offered.
    pub response_rate: Option<f64>,
    /// Share of answers with 4 or 5 stars.
    pub csat: Option<f64>,
    pub mean_score: Option<f64>,
    /// Times conversations joined a queue (a reopened or transferred conversation queues
    /// again).
    pub queueings: i32,
    /// Queueings with an agent reply after them: what the first-response figures cover.
    pub first_responses: i32,
    /// From each queueing to the first agent reply after it, seconds (mean).
    pub first_response_secs: Option<f64>,
    /// Median of the same, nearest rank over the exact durations.
    pub first_response_median_secs: Option<f64>,
    /// 90th percentile of the same, nearest rank.
    pub first_response_p90_secs: Option<f64>,
    /// Queueings an agent took: what the wait figures cover.
    pub waits: i32,
    /// From each queueing to an agent taking it, seconds: mean, median, 90th percentile.
    pub wait_secs: Option<f64>,
    pub wait_median_secs: Option<f64>,
    pub wait_p90_secs: Option<f64>,
    /// From start to (last) close, seconds, over closed conversations: mean, median, 90th
    /// percentile.
    pub resolution_secs: Option<f64>,
    pub resolution_median_secs: Option<f64>,
    pub resolution_p90_secs: Option<f64>,
    pub containment_rate: Option<f64>,
    pub scenario_match_rate: Option<f64>,
    /// Orders attributed per conversation.
    pub conversion: Option<f64>,
}

impl From<StatsRow> for StatisticsRow {
    fn from(r: StatsRow) -> Self {
        StatisticsRow {
            key: r.key,
            name: r.name,
            conversations: int(r.conversations),
            closed: int(r.closed),
            contained_by_bot: int(r.contained_by_bot),
            handed_off: int(r.handed_off),
            handoffs: int(r.handoffs),
            surveys_offered: int(r.surveys_offered),
            surveys_answered: int(r.surveys_answered),
            satisfied: int(r.satisfied),
            orders: int(r.orders),
            scenario_settled: int(r.scenario_settled),
            scenario_matched: int(r.scenario_matched),
            first_response_breaches: int(r.first_response_breaches),
            resolution_breaches: int(r.resolution_breaches),
            response_rate: r.response_rate,
            csat: r.csat,
            mean_score: r.mean_score,
            queueings: int(r.queueings),
            first_responses: int(r.first_responses),
            first_response_secs: r.first_response_secs,
            first_response_median_secs: r.first_response_median_secs,
            first_response_p90_secs: r.first_response_p90_secs,
            waits: int(r.waits),
            wait_secs: r.wait_secs,
            wait_median_secs: r.wait_median_secs,
            wait_p90_secs: r.wait_p90_secs,
            resolution_secs: r.resolution_secs,
            resolution_median_secs: r.resolution_median_secs,
            resolution_p90_secs: r.resolution_p90_secs,
            containment_rate: r.containment_rate,
            scenario_match_rate: r.scenario_match_rate,
            conversion: r.conversion,
        }
    }
}

/// What the bot did with a probe question.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ProbeReplyKind {
    Answered,
    NotAnswered,
    HandedOver,
    NoReply,
    Failed,
}

/// A probe question whose check failed, and what came back.
#[derive(SimpleObject, Debug, Clone)]
pub struct ProbeFailure {
    pub question: String,
    /// The knowledge entry that should have answered it.
    pub expected: String,
    /// The probe's conversation, when one was started.
    pub conversation: Option<String>,
    pub reply: ProbeReplyKind,
    /// The entry the bot answered with instead.
    pub answered: Option<String>,
    /// The entries it considered, best first, when it did not answer.
    pub candidates: Vec<String>,
    /// Why the probe could not be asked.
    pub message: Option<String>,
}

impl From<kefu_domain::probe::ProbeCheck> for ProbeFailure {
    fn from(c: kefu_domain::probe::ProbeCheck) -> Self {
        use kefu_domain::probe::ProbeReply as R;
        let (reply, answered, candidates, message) = match c.reply {
            R::Answered { entry } => (
                ProbeReplyKind::Answered,
                Some(entry.to_string()),
                vec![],
                None,
            ),
            R::NotAnswered { candidates } => (
                ProbeReplyKind::NotAnswered,
                None,
                candidates.iter().map(ToString::to_string).collect(),
                None,
            ),
            R::HandedOver => (ProbeReplyKind::HandedOver, None, vec![], None),
            R::NoReply => (ProbeReplyKind::NoReply, None, vec![], None),
            R::Failed { message } => (ProbeReplyKind::Failed, None, vec![], Some(message)),
        };
        ProbeFailure {
            question: c.question,
            expected: c.expected.to_string(),
            conversation: c.conversation.map(|c| c.to_string()),
            reply,
            answered,
            candidates,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_read_back() {
        let id = "0190a6f0-0000-7000-8000-000000000001";
        let g = global_id(NodeKind::Ticket, id);
        assert_eq!(g.0, format!("Ticket:{id}"));
        assert_eq!(
            parse_global_id(&g).unwrap(),
            (NodeKind::Ticket, id.to_owned())
        );
        for bad in [id.to_owned(), format!("Order:{id}"), "Ticket:42".into()] {
            assert!(parse_global_id(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expected_wait_counts_the_line_ahead_beyond_free_seats() {
        // Third in line, no free seat, 4 seats freeing every 600 s: 3 × 600 / 4.
        assert_eq!(expected_wait_secs(3, 0, 4, 600.0), Some(450));
        // A free seat for it: no wait.
        assert_eq!(expected_wait_secs(1, 2, 4, 600.0), Some(0));
        // No one online to serve it: unknown, not zero.
        assert_eq!(expected_wait_secs(1, 0, 0, 600.0), None);
    }

    /// The customer's types, and every type they lead to, have no field that could carry
    /// internal notes, private comments, triage, routing or emotion data, and lead to none
    /// of the desk's types: adding such a field to a customer type fails here.
    #[test]
    fn customer_views_cannot_carry_desk_data() {
        use async_graphql::parser::types::{BaseType, Type, TypeKind, TypeSystemDefinition};
        use std::collections::{BTreeMap, BTreeSet};

        let doc = async_graphql::parser::parse_schema(super::super::sdl()).unwrap();
        let mut types: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for def in doc.definitions {
            let TypeSystemDefinition::Type(t) = def else {
                continue;
            };
            let fields = match &t.node.kind {
                TypeKind::Object(o) => &o.fields,
                TypeKind::Interface(i) => &i.fields,
                _ => continue,
            };
            fn named(t: &Type) -> String {
                match &t.base {
                    BaseType::Named(n) => n.to_string(),
                    BaseType::List(inner) => named(inner),
                }
            }
            types.insert(
                t.node.name.node.to_string(),
                fields
                    .iter()
                    .map(|f| (f.node.name.node.to_string(), named(&f.node.ty.node)))
                    .collect(),
            );
        }
        let roots = ["CustomerConversation", "CustomerTicket"];
        let mut reached: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = roots.iter().map(|r| r.to_string()).collect();
        while let Some(t) = todo.pop() {
            if !reached.insert(t.clone()) {
                continue;
            }
            for (_, ty) in types.get(&t).into_iter().flatten() {
                if types.contains_key(ty) {
                    todo.push(ty.clone());
                }
            }
        }
        assert!(reached.contains("CustomerTurn") && reached.contains("PublicComment"));
        let desk = [
            "Conversation",
            "Turn",
            "EmotionReading",
            "TimelineItem",
            "RoutingDecision",
            "ScenarioPrediction",
            "Ticket",
            "TicketChange",
            "TicketComment",
            "Party",
            "Agent",
            "Queue",
        ];
        for t in desk {
            assert!(!reached.contains(t), "a customer's view leads to {t}");
        }
        let words = [
            "internal", "note", "emotion", "scenario", "routing", "handoff", "assignee", "public",
            "history", "agent", "queue", "priority", "sla",
        ];
        for t in &reached {
            for (field, _) in &types[t] {
                let lower = field.to_lowercase();
                assert!(
                    !words.iter().any(|w| lower.contains(w)),
                    "{t}.{field} may carry the desk's data"
                );
            }
        }
    }
}
