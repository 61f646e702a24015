//! The conversation stream: one chat session from the customer's first message to the survey,
//! with the bot, triage (scenario prediction and routing), the queue, the agent, and the order
//! the customer placed afterwards (the seed's "one order for every three chats").
//!
//! Handling moves Bot → AwaitingHuman → Queued → WithAgent; a transfer to another queue goes
//! back to Queued, a transfer to another agent stays WithAgent. Closing stops all turns until a
//! reopen, which hands the customer back to the bot (or straight to a human when the bot is
//! switched off for this conversation).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::agent::AgentSnapshot;
use crate::common::{
    BusinessLine, Channel, MAX_LABEL_CHARS, MAX_TEXT_CHARS, Money, Party, missing, require_code,
    require_money, require_text, require_unit_interval,
};
use crate::customer::{CustomerSnapshot, CustomerTier, OrderStatus};
use crate::decider::{Decider, DomainEvent, domain_events};
use crate::error::DomainError;
use crate::ids::{
    AgentId, Category, ConversationId, CustomerId, KnowledgeEntryId, Locale, MessageId, OrderId,
    QueueId, ScenarioCode, Skill,
};
use crate::knowledge::KnowledgeEntrySnapshot;
use crate::queue::{Queue, QueueSnapshot};

/// How long after closing a customer may reopen the conversation instead of starting anew.
pub const REOPEN_WINDOW_HOURS: i64 = 72;
/// How long after a conversation closes an order still counts as its conversion.
pub const ATTRIBUTION_WINDOW_HOURS: i64 = 24;
/// The shortest idle timeout; anything shorter would close chats mid-sentence.
pub const MIN_IDLE_TIMEOUT_SECS: u32 = 60;
/// Most answer candidates a bot turn records, and most scenarios a prediction keeps.
pub const MAX_CANDIDATES: usize = 20;
pub const MAX_SCENARIOS: usize = 10;
/// Most answers the bot suggests to an agent for one customer turn: what fits beside a chat.
pub const MAX_SUGGESTIONS: usize = 3;
/// An emotion score must move by more than this between assessments to count as a trend.
pub const EMOTION_TREND_THRESHOLD: f64 = 0.2;
/// The share of an SLA target after which its warning is due, unless configured otherwise.
pub const DEFAULT_SLA_WARNING_FRACTION: f64 = 0.8;
/// The shortest wait before a survey reminder; anything shorter would nag a customer who is
/// still reading the offer.
pub const MIN_SURVEY_REMINDER_SECS: u32 = 60;

// ---- value types ----

/// The order the entry point confirmed, as the customer stream knew it when the chat began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderContext {
    pub order: OrderId,
    pub seller: BusinessLine,
    pub category: Category,
    pub status: OrderStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Speaker {
    Customer,
    Bot,
    Agent { agent: AgentId },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmotionLabel {
    Positive,
    Neutral,
    Negative,
    Angry,
}

impl EmotionLabel {
    pub fn is_negative(self) -> bool {
        matches!(self, EmotionLabel::Negative | EmotionLabel::Angry)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmotionTrend {
    Improving,
    Steady,
    Worsening,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Emotion {
    /// From -1 (furious) to 1 (delighted).
    pub score: f64,
    pub label: EmotionLabel,
}

/// One message in the conversation. The text lives in the event; the state keeps what the
/// rules need.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub message: MessageId,
    pub speaker: Speaker,
    pub at: DateTime<Utc>,
    pub emotion: Option<Emotion>,
    /// The bot's confidence in its answer, for bot turns.
    pub confidence: Option<f64>,
}

/// A knowledge-base entry the bot considered, with its ranking score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnswerCandidate {
    pub entry: KnowledgeEntryId,
    pub score: f64,
}

/// The entry the bot answered with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BotAnswer {
    pub entry: KnowledgeEntryId,
    /// The entry's revision that was served, so an edit later does not rewrite history.
    pub revision: u32,
    pub confidence: f64,
}

/// A knowledge-base entry the bot suggests to the agent, as the agent was shown it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SuggestedAnswer {
    pub entry: KnowledgeEntryId,
    /// The entry's revision that was suggested, so an edit later does not rewrite history.
    pub revision: u32,
    pub question: String,
    pub answer: String,
    /// The ranker's score, in [0, 1].
    pub score: f64,
}

/// An entry the bot would suggest, with its ranking score, before the rules check it.
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestionInput {
    pub entry: KnowledgeEntrySnapshot,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BotAnswerInput {
    pub entry: KnowledgeEntrySnapshot,
    pub confidence: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioCandidate {
    pub scenario: ScenarioCode,
    pub probability: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioPrediction {
    /// Most probable first.
    pub candidates: Vec<ScenarioCandidate>,
    pub model_version: String,
    /// What the customer confirmed or corrected it to.
    pub settled: Option<ScenarioCode>,
}

/// Why triage picked a queue, for audits and for tuning the routing model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoutingReason {
    OrderSeller {
        seller: BusinessLine,
    },
    Scenario {
        scenario: ScenarioCode,
    },
    Category {
        category: Category,
    },
    CustomerTier {
        tier: CustomerTier,
    },
    /// No rule matched; the default queue.
    Fallback,
    Other {
        code: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoutingDecision {
    pub queue: QueueId,
    pub reasons: Vec<RoutingReason>,
    pub model_version: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HandoffReason {
    /// The bot was not confident enough in its answer.
    LowConfidence,
    NegativeEmotion,
    /// The customer pressed "转人工" (talk to a human).
    CustomerAsked,
    Vip,
    /// The bot is switched off (degradation switch), for this conversation or everywhere.
    BotSwitchedOff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    Resolved,
    CustomerLeft,
    IdleTimeout,
    /// What remains is followed up in a ticket.
    MovedToTicket,
    Spam,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Closure {
    pub by: Party,
    pub reason: CloseReason,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Survey {
    NotOffered,
    Offered { at: DateTime<Utc>, reminded: bool },
    Answered { score: u8, at: DateTime<Utc> },
}

/// Which service-level target a timer measures.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SlaKind {
    /// From joining the queue to the first agent reply after it.
    FirstResponse,
    /// From joining the queue to close.
    Resolution,
}

impl SlaKind {
    pub const ALL: [SlaKind; 2] = [SlaKind::FirstResponse, SlaKind::Resolution];

    pub fn as_str(self) -> &'static str {
        match self {
            SlaKind::FirstResponse => "first_response",
            SlaKind::Resolution => "resolution",
        }
    }
}

impl std::fmt::Display for SlaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SLA clock of the conversation's current queueing. Each queueing (routing to a queue,
/// or a transfer to one) starts a new clock against that queue's targets: the new queue's
/// agents owe a first reply and a resolution of their own, and each target warns and
/// breaches at most once per queueing. A reopen stops the clock; the next queueing starts one.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaClock {
    pub queue: QueueId,
    /// 1 is served first; escalations lower the number.
    pub priority: u8,
    pub queued_at: DateTime<Utc>,
    pub first_response_due: DateTime<Utc>,
    /// Absent for queueings recorded before resolution targets were stamped on them.
    pub resolution_due: Option<DateTime<Utc>>,
    /// An agent has replied since this queueing.
    pub responded: bool,
    pub warned: BTreeSet<SlaKind>,
    pub breached: BTreeSet<SlaKind>,
}

impl SlaClock {
    pub fn due(&self, kind: SlaKind) -> Option<DateTime<Utc>> {
        match kind {
            SlaKind::FirstResponse => Some(self.first_response_due),
            SlaKind::Resolution => self.resolution_due,
        }
    }

    /// When the warning is due: `fraction` of the way from queueing to the target.
    pub fn warning_at(&self, kind: SlaKind, fraction: f64) -> Option<DateTime<Utc>> {
        let due = self.due(kind)?;
        Some(warning_time(self.queued_at, due, fraction))
    }
}

/// `fraction` of the way from `from` to `due`, to the millisecond. Shared by the domain and
/// the sweep so both agree on when a warning is due.
pub fn warning_time(from: DateTime<Utc>, due: DateTime<Utc>, fraction: f64) -> DateTime<Utc> {
    let span = (due - from).num_milliseconds() as f64;
    from + Duration::milliseconds((span * fraction).ceil() as i64)
}

fn require_warning_fraction(fraction: f64) -> Result<(), DomainError> {
    if fraction > 0.0 && fraction < 1.0 {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "fraction",
            format!("{fraction} is not strictly between 0 and 1"),
        ))
    }
}

/// Who is looking after the customer right now.
#[derive(Debug, Clone, PartialEq)]
pub enum Handling {
    Bot,
    AwaitingHuman {
        reason: HandoffReason,
    },
    Queued {
        queue: QueueId,
        skills: BTreeSet<Skill>,
        since: DateTime<Utc>,
    },
    WithAgent {
        agent: AgentId,
        queue: QueueId,
        skills: BTreeSet<Skill>,
    },
}

impl Handling {
    fn phase(&self) -> &'static str {
        match self {
            Handling::Bot => "with the bot",
            Handling::AwaitingHuman { .. } => "waiting to be queued for a human",
            Handling::Queued { .. } => "queued",
            Handling::WithAgent { .. } => "with an agent",
        }
    }

    pub fn agent(&self) -> Option<AgentId> {
        match self {
            Handling::WithAgent { agent, .. } => Some(*agent),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: ConversationId,
    pub customer: CustomerId,
    pub tier: CustomerTier,
    pub locale: Locale,
    pub channel: Channel,
    pub order: Option<OrderContext>,
    pub bot_enabled: bool,
    pub started_at: DateTime<Utc>,
    pub handling: Handling,
    pub closed: Option<Closure>,
    pub turns: Vec<Turn>,
    pub last_emotion: Option<Emotion>,
    pub emotion_trend: Option<EmotionTrend>,
    pub scenario: Option<ScenarioPrediction>,
    pub routing: Option<RoutingDecision>,
    pub first_agent_response_at: Option<DateTime<Utc>>,
    pub last_activity_at: DateTime<Utc>,
    pub notes: u32,
    pub reopened: u32,
    pub survey: Survey,
    pub attributed_orders: BTreeMap<OrderId, Money>,
    /// The current queueing's SLA clock; None before the first queueing and after a reopen.
    pub sla: Option<SlaClock>,
}

impl Conversation {
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Whether the bot may speak here: open, started with the bot, and no human on the way.
    /// The bot asks before it answers, so that a turn it may not answer is still assessed.
    pub fn takes_bot_replies(&self) -> Result<(), DomainError> {
        require_open(self)?;
        if !self.bot_enabled {
            return Err(DomainError::BotSwitchedOff {
                conversation: self.id,
            });
        }
        // Once a human is on the way, a bot reply would contradict what the agent says.
        if self.handling != Handling::Bot {
            return Err(self.wrong_phase("take a bot reply"));
        }
        Ok(())
    }

    /// Whether answers the bot suggests to an agent may be recorded: open, and a human has the
    /// chat or is on the way (while the bot has it, it answers the customer itself).
    pub fn takes_suggestions(&self) -> Result<(), DomainError> {
        require_open(self)?;
        if self.handling == Handling::Bot {
            return Err(self.wrong_phase("take answers suggested to an agent"));
        }
        Ok(())
    }

    fn turn(&self, message: MessageId) -> Option<&Turn> {
        self.turns.iter().find(|t| t.message == message)
    }

    fn wrong_phase(&self, action: &'static str) -> DomainError {
        DomainError::WrongPhase {
            conversation: self.id,
            action,
            phase: self.handling.phase(),
        }
    }

    /// The queue must serve the seller of the order in question: a POP merchant's order is
    /// answered by that merchant's team, a self-operated order by JD's.
    /// A merchant's team takes only its own merchant's orders; the shop's own teams take any
    /// order, because complaints about a merchant and account or payment matters are the
    /// shop's to settle (triage sends them there: `kefu_bot::scenario::route`).
    fn check_business_line(&self, queue: &Queue) -> Result<(), DomainError> {
        match &self.order {
            Some(order)
                if queue.business_line != BusinessLine::SelfOperated
                    && order.seller != queue.business_line =>
            {
                Err(DomainError::BusinessLineMismatch {
                    queue: queue.id,
                    queue_line: queue.business_line.clone(),
                    order_line: order.seller.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    fn queued_event(
        &self,
        queue: &Queue,
        at: DateTime<Utc>,
    ) -> Result<ConversationEvent, DomainError> {
        if !queue.hours.is_open_at(at) {
            return Err(DomainError::QueueClosed {
                queue: queue.id,
                at,
            });
        }
        // VIP customers are served one priority step ahead of the queue's own priority.
        let priority = if self.tier == CustomerTier::Vip {
            crate::queue::one_step_up(queue.priority)
        } else {
            queue.priority
        };
        Ok(ConversationQueued {
            queue: queue.id,
            priority,
            skills: queue.skills.clone(),
            first_response_due: at + Duration::seconds(i64::from(queue.sla.first_response_secs)),
            resolution_due: Some(at + Duration::seconds(i64::from(queue.sla.resolution_secs))),
            at,
        }
        .into())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConversationState {
    NotStarted,
    /// Boxed because `evolve` moves the state once per event.
    Started(Box<Conversation>),
}

impl ConversationState {
    pub fn snapshot(&self, id: ConversationId) -> ConversationSnapshot {
        match self {
            ConversationState::NotStarted => ConversationSnapshot::Unknown(id),
            ConversationState::Started(c) => ConversationSnapshot::Known(c.clone()),
        }
    }
}

/// The conversation stream as the command service loaded it for a cross-stream rule.
#[derive(Debug, Clone, PartialEq)]
pub enum ConversationSnapshot {
    Unknown(ConversationId),
    Known(Box<Conversation>),
}

impl ConversationSnapshot {
    pub fn require_known(&self) -> Result<&Conversation, DomainError> {
        match self {
            ConversationSnapshot::Unknown(conversation) => Err(DomainError::UnknownConversation {
                conversation: *conversation,
            }),
            ConversationSnapshot::Known(c) => Ok(c),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum TransferTarget {
    Agent(AgentSnapshot),
    Queue(QueueSnapshot),
}

/// A model's inputs as recorded with its output: named values (numbers, codes, short lists).
pub type Features = BTreeMap<String, serde_json::Value>;

/// Most features one prediction or decision records, and their largest JSON size.
pub const MAX_FEATURES: usize = 64;
pub const MAX_FEATURES_BYTES: usize = 8 * 1024;

fn require_features(features: &Features) -> Result<(), DomainError> {
    if features.len() > MAX_FEATURES {
        return Err(DomainError::invalid(
            "features",
            format!("at most {MAX_FEATURES}, got {}", features.len()),
        ));
    }
    for name in features.keys() {
        require_code("features", name)?;
    }
    let bytes = serde_json::to_string(features).map_or(usize::MAX, |j| j.len());
    if bytes > MAX_FEATURES_BYTES {
        return Err(DomainError::invalid(
            "features",
            format!("{bytes} bytes of JSON; at most {MAX_FEATURES_BYTES}"),
        ));
    }
    Ok(())
}

mod commands;
mod decider;
mod events;
mod rules;

pub use commands::*;
pub use decider::ConversationDecider;
pub use events::*;
use rules::require_open;
