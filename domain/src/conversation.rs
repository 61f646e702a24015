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

// ---- commands ----

#[derive(Debug, Clone, PartialEq)]
pub enum ConversationCommand {
    Start {
        conversation: ConversationId,
        customer: CustomerSnapshot,
        channel: Channel,
        /// The order the entry point (IVR menu, order page) confirmed, if any.
        order: Option<OrderId>,
        /// Off when the bot's degradation switch is on: the customer goes straight to a human.
        bot_enabled: bool,
        at: DateTime<Utc>,
    },
    RecordCustomerTurn {
        message: MessageId,
        text: String,
        at: DateTime<Utc>,
    },
    RecordBotTurn {
        message: MessageId,
        text: String,
        answer: Option<BotAnswerInput>,
        candidates: Vec<AnswerCandidate>,
        at: DateTime<Utc>,
    },
    AssessEmotion {
        message: MessageId,
        score: f64,
        label: EmotionLabel,
        model_version: String,
        at: DateTime<Utc>,
    },
    /// The bot's answers to a customer turn a human has (or is about to have), for the agent
    /// to use: its ranking, and its confidence that the first one answers the turn.
    SuggestAnswers {
        message: MessageId,
        suggestions: Vec<SuggestionInput>,
        confidence: f64,
        model_version: String,
        at: DateTime<Utc>,
    },
    PredictScenario {
        candidates: Vec<ScenarioCandidate>,
        model_version: String,
        /// What the model saw, so a successor can be compared on replayed history.
        features: Features,
        at: DateTime<Utc>,
    },
    /// The customer picked the scenario that is really theirs.
    SettleScenario {
        actual: ScenarioCode,
        at: DateTime<Utc>,
    },
    Route {
        queue: QueueSnapshot,
        reasons: Vec<RoutingReason>,
        model_version: String,
        features: Features,
        at: DateTime<Utc>,
    },
    HandOff {
        reason: HandoffReason,
        at: DateTime<Utc>,
    },
    Enqueue {
        queue: QueueSnapshot,
        at: DateTime<Utc>,
    },
    AssignAgent {
        agent: AgentSnapshot,
        at: DateTime<Utc>,
    },
    RecordAgentTurn {
        agent: AgentId,
        message: MessageId,
        text: String,
        at: DateTime<Utc>,
    },
    Transfer {
        from_agent: AgentId,
        to: TransferTarget,
        reason: String,
        at: DateTime<Utc>,
    },
    AddInternalNote {
        author: AgentSnapshot,
        text: String,
        at: DateTime<Utc>,
    },
    TimeOutIdle {
        idle_after_secs: u32,
        at: DateTime<Utc>,
    },
    Close {
        by: Party,
        reason: CloseReason,
        at: DateTime<Utc>,
    },
    Reopen {
        by: Party,
        at: DateTime<Utc>,
    },
    OfferSurvey {
        at: DateTime<Utc>,
    },
    /// Reminds the customer of an unanswered survey, once, `after_secs` after the offer.
    RemindSurvey {
        after_secs: u32,
        at: DateTime<Utc>,
    },
    /// Warns that `kind`'s target is near: `fraction` (0 to 1) of it has passed.
    WarnSla {
        kind: SlaKind,
        fraction: f64,
        at: DateTime<Utc>,
    },
    /// Records that `kind`'s target has passed unmet, and escalates the conversation.
    BreachSla {
        kind: SlaKind,
        at: DateTime<Utc>,
    },
    AnswerSurvey {
        score: u8,
        comment: Option<String>,
        at: DateTime<Utc>,
    },
    AttributeOrder {
        customer: CustomerId,
        order: OrderId,
        amount: Money,
        placed_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
}

// ---- events ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationStarted {
    pub conversation: ConversationId,
    pub customer: CustomerId,
    /// The customer's tier when the chat began, which triage used.
    pub tier: CustomerTier,
    pub locale: Locale,
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderContext>,
    pub bot_enabled: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerTurnRecorded {
    pub message: MessageId,
    pub text: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BotTurnRecorded {
    pub message: MessageId,
    pub text: String,
    /// None when the bot found nothing to answer with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<BotAnswer>,
    /// Everything the ranker considered, best first, for tuning.
    pub candidates: Vec<AnswerCandidate>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmotionAssessed {
    /// The customer turn assessed.
    pub message: MessageId,
    pub score: f64,
    pub label: EmotionLabel,
    /// The conversation's mood compared with the previous assessment.
    pub trend: EmotionTrend,
    pub model_version: String,
    pub at: DateTime<Utc>,
}

/// What the bot would answer a customer turn with, suggested to the agent rather than sent:
/// a human has the chat (or is on the way), so the bot no longer replies itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnswersSuggested {
    /// The customer turn the suggestions answer.
    pub message: MessageId,
    /// Best first.
    pub suggestions: Vec<SuggestedAnswer>,
    /// The bot's calibrated probability that the first suggestion answers the turn.
    pub confidence: f64,
    pub model_version: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioPredicted {
    /// Most probable first.
    pub candidates: Vec<ScenarioCandidate>,
    pub model_version: String,
    /// The features the model predicted from (absent in events written before they were
    /// recorded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub features: Features,
    pub at: DateTime<Utc>,
}

/// The customer confirmed the top predicted scenario: a match for the match-rate figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioConfirmed {
    pub scenario: ScenarioCode,
    pub at: DateTime<Utc>,
}

/// The customer's real scenario was not the top prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioCorrected {
    pub predicted: ScenarioCode,
    pub actual: ScenarioCode,
    /// Whether the real scenario was among the lower-ranked candidates.
    pub actual_was_candidate: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RoutingDecided {
    pub queue: QueueId,
    pub reasons: Vec<RoutingReason>,
    pub model_version: String,
    /// The features the routing decided on (absent in events written before they were
    /// recorded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub features: Features,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HandedToHuman {
    pub reason: HandoffReason,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationQueued {
    pub queue: QueueId,
    /// 1 is served first.
    pub priority: u8,
    /// What the agent who takes it must know, from the queue at the time.
    pub skills: BTreeSet<Skill>,
    /// When the first agent reply is due under the queue's SLA.
    pub first_response_due: DateTime<Utc>,
    /// When the close is due under the queue's SLA (absent in events written before it was
    /// recorded: those queueings have no resolution timer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_due: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentAssigned {
    pub agent: AgentId,
    pub queue: QueueId,
    pub waited_secs: i64,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentTurnRecorded {
    pub agent: AgentId,
    pub message: MessageId,
    pub text: String,
    /// The first agent reply of the conversation, which the first-response SLA measures.
    pub first_response: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TransferredTo {
    Agent {
        agent: AgentId,
    },
    /// Followed by `ConversationQueued` for that queue.
    Queue {
        queue: QueueId,
    },
}

/// The seat of `from_agent` is free from here on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationTransferred {
    pub from_agent: AgentId,
    pub to: TransferredTo,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// Visible to agents only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InternalNoteAdded {
    pub author: AgentId,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// Always followed by `ConversationClosed` with reason `idle_timeout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationIdleTimedOut {
    pub last_activity_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationClosed {
    pub by: Party,
    pub reason: CloseReason,
    /// The agent whose seat this frees, if one was assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_agent: Option<AgentId>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationReopened {
    pub by: Party,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SurveyOffered {
    pub at: DateTime<Utc>,
}

/// Version 2: `score` is 1-5 stars. Version 1 had a 0-10 score; see `upcast`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SurveyAnswered {
    /// 1 (very dissatisfied) to 5 (very satisfied).
    #[schemars(range(min = 1, max = 5))]
    pub score: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The original 0-10 answer of a survey recorded as version 1, kept for audits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_score_0_to_10: Option<u8>,
    pub at: DateTime<Utc>,
}

/// The customer was reminded of a survey they have not answered (at most once per offer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SurveyReminded {
    pub offered_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// A service-level target of the current queueing is near: the warning fraction of it has
/// passed without the target being met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SlaWarned {
    pub kind: SlaKind,
    pub queue: QueueId,
    pub due: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// A service-level target of the current queueing passed unmet. Always followed by
/// `ConversationEscalated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SlaBreached {
    pub kind: SlaKind,
    pub queue: QueueId,
    pub due: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// The conversation moved one priority step up (never past 1, the top) after a breach, and
/// the supervisors of `queue` are notified: this event is their notification (their
/// `queueChanges` subscription delivers it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationEscalated {
    /// The breach that escalated it.
    pub kind: SlaKind,
    pub queue: QueueId,
    pub from_priority: u8,
    pub to_priority: u8,
    pub at: DateTime<Utc>,
}

/// An order the customer placed during or soon after the chat: a conversion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderAttributed {
    pub order: OrderId,
    pub amount: Money,
    pub placed_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

domain_events! {
    /// What happens in a `conversation-<id>` stream.
    pub enum ConversationEvent in "conversation" {
        ConversationStarted = 1,
        CustomerTurnRecorded = 1,
        BotTurnRecorded = 1,
        EmotionAssessed = 1,
        ScenarioPredicted = 1,
        ScenarioConfirmed = 1,
        ScenarioCorrected = 1,
        RoutingDecided = 1,
        HandedToHuman = 1,
        ConversationQueued = 1,
        AgentAssigned = 1,
        AgentTurnRecorded = 1,
        ConversationTransferred = 1,
        InternalNoteAdded = 1,
        ConversationIdleTimedOut = 1,
        ConversationClosed = 1,
        ConversationReopened = 1,
        SurveyOffered = 1,
        SurveyAnswered = 2,
        OrderAttributed = 1,
        SurveyReminded = 1,
        SlaWarned = 1,
        SlaBreached = 1,
        ConversationEscalated = 1,
        AnswersSuggested = 1,
    }
    reactions keyed by reaction_key;
}

impl ConversationEvent {
    /// The queue the event names: the one a conversation was routed to, queued in, assigned
    /// from, or whose SLA it concerns. What a queue's followers are shown.
    pub fn queue(&self) -> Option<QueueId> {
        use ConversationEvent as E;
        match self {
            E::RoutingDecided(RoutingDecided { queue, .. })
            | E::ConversationQueued(ConversationQueued { queue, .. })
            | E::AgentAssigned(AgentAssigned { queue, .. })
            | E::SlaWarned(SlaWarned { queue, .. })
            | E::SlaBreached(SlaBreached { queue, .. })
            | E::ConversationEscalated(ConversationEscalated { queue, .. }) => Some(*queue),
            _ => None,
        }
    }

    /// The message the event records or answers: a turn's own id, or the customer turn an
    /// emotion assessment is about.
    pub fn message(&self) -> Option<MessageId> {
        use ConversationEvent as E;
        match self {
            E::CustomerTurnRecorded(CustomerTurnRecorded { message, .. })
            | E::BotTurnRecorded(BotTurnRecorded { message, .. })
            | E::EmotionAssessed(EmotionAssessed { message, .. })
            | E::AnswersSuggested(AnswersSuggested { message, .. })
            | E::AgentTurnRecorded(AgentTurnRecorded { message, .. }) => Some(*message),
            _ => None,
        }
    }
}

/// What the workers record at most once per cause in a conversation (see
/// [`crate::already_reacted`]): one mood, one bot reply (or suggestion to the agent) and one
/// hand-off per customer turn,
/// one prediction per start or first message, one routing (with its queueing) per hand-off,
/// one assignment per queueing, one survey offer per close, one reminder per offer, one idle
/// close per quiet spell, and one warning, breach and escalation per target per queueing.
fn reaction_key(event: &ConversationEvent) -> Option<String> {
    use ConversationEvent as E;
    match event {
        E::EmotionAssessed(_)
        | E::BotTurnRecorded(_)
        | E::AnswersSuggested(_)
        | E::HandedToHuman(_)
        | E::ScenarioPredicted(_)
        | E::RoutingDecided(_)
        | E::ConversationQueued(_)
        | E::AgentAssigned(_)
        | E::SurveyOffered(_)
        | E::SurveyReminded(_)
        | E::ConversationIdleTimedOut(_) => Some(event.event_type().to_owned()),
        E::SlaWarned(SlaWarned { kind, .. })
        | E::SlaBreached(SlaBreached { kind, .. })
        | E::ConversationEscalated(ConversationEscalated { kind, .. }) => {
            Some(format!("{}/{}", event.event_type(), kind.as_str()))
        }
        E::ConversationStarted(_)
        | E::CustomerTurnRecorded(_)
        | E::ScenarioConfirmed(_)
        | E::ScenarioCorrected(_)
        | E::AgentTurnRecorded(_)
        | E::ConversationTransferred(_)
        | E::InternalNoteAdded(_)
        | E::ConversationClosed(_)
        | E::ConversationReopened(_)
        | E::SurveyAnswered(_)
        | E::OrderAttributed(_) => None,
    }
}

// ---- decider ----

pub struct ConversationDecider;

impl Decider for ConversationDecider {
    type Id = ConversationId;
    type State = ConversationState;
    type Command = ConversationCommand;
    type Event = ConversationEvent;

    fn initial_state() -> ConversationState {
        ConversationState::NotStarted
    }

    fn decide(
        state: &ConversationState,
        command: ConversationCommand,
    ) -> Result<Vec<ConversationEvent>, DomainError> {
        use ConversationCommand as C;
        if let C::Start {
            conversation,
            customer,
            channel,
            order,
            bot_enabled,
            at,
        } = command
        {
            return start(
                state,
                conversation,
                &customer,
                channel,
                order,
                bot_enabled,
                at,
            );
        }
        let ConversationState::Started(conv) = state else {
            return Err(DomainError::NotCreated {
                kind: "conversation",
            });
        };
        match command {
            C::Start { .. } => Ok(vec![]),
            C::RecordCustomerTurn { message, text, at } => {
                if already_recorded(conv, message, &Speaker::Customer)? {
                    return Ok(vec![]);
                }
                require_open(conv)?;
                require_text("text", &text, MAX_TEXT_CHARS)?;
                Ok(vec![CustomerTurnRecorded { message, text, at }.into()])
            }
            C::RecordBotTurn {
                message,
                text,
                answer,
                candidates,
                at,
            } => bot_turn(conv, message, text, answer, candidates, at),
            C::AssessEmotion {
                message,
                score,
                label,
                model_version,
                at,
            } => assess_emotion(conv, message, score, label, model_version, at),
            C::SuggestAnswers {
                message,
                suggestions,
                confidence,
                model_version,
                at,
            } => suggest_answers(conv, message, suggestions, confidence, model_version, at),
            C::PredictScenario {
                candidates,
                model_version,
                features,
                at,
            } => predict_scenario(conv, candidates, model_version, features, at),
            C::SettleScenario { actual, at } => settle_scenario(conv, actual, at),
            C::Route {
                queue,
                reasons,
                model_version,
                features,
                at,
            } => route(conv, &queue, reasons, model_version, features, at),
            C::HandOff { reason, at } => hand_off(conv, reason, at),
            C::Enqueue { queue, at } => {
                require_open(conv)?;
                match conv.handling {
                    Handling::AwaitingHuman { .. } => {}
                    _ => return Err(conv.wrong_phase("join a queue")),
                }
                let queue = queue.require_active()?;
                let routed = conv.routing.as_ref().map(|r| r.queue);
                if routed != Some(queue.id) {
                    return Err(DomainError::NotRoutedToQueue {
                        conversation: conv.id,
                        queue: queue.id,
                        routed,
                    });
                }
                conv.check_business_line(queue)?;
                Ok(vec![conv.queued_event(queue, at)?])
            }
            C::AssignAgent { agent, at } => {
                require_open(conv)?;
                let Handling::Queued {
                    queue,
                    skills,
                    since,
                } = &conv.handling
                else {
                    return Err(conv.wrong_phase("be assigned to an agent"));
                };
                let agent = agent.require_registered()?;
                check_agent_fits(conv, agent, skills)?;
                Ok(vec![
                    AgentAssigned {
                        agent: agent.id,
                        queue: *queue,
                        waited_secs: (at - *since).num_seconds().max(0),
                        at,
                    }
                    .into(),
                ])
            }
            C::RecordAgentTurn {
                agent,
                message,
                text,
                at,
            } => {
                if already_recorded(conv, message, &Speaker::Agent { agent })? {
                    return Ok(vec![]);
                }
                require_open(conv)?;
                require_assigned(conv, agent)?;
                require_text("text", &text, MAX_TEXT_CHARS)?;
                Ok(vec![
                    AgentTurnRecorded {
                        agent,
                        message,
                        text,
                        first_response: conv.first_agent_response_at.is_none(),
                        at,
                    }
                    .into(),
                ])
            }
            C::Transfer {
                from_agent,
                to,
                reason,
                at,
            } => transfer(conv, from_agent, &to, reason, at),
            C::AddInternalNote { author, text, at } => {
                // Notes are allowed after close: agents annotate finished chats for QA.
                let author = author.require_registered()?;
                require_text("text", &text, MAX_TEXT_CHARS)?;
                Ok(vec![
                    InternalNoteAdded {
                        author: author.id,
                        text,
                        at,
                    }
                    .into(),
                ])
            }
            C::TimeOutIdle {
                idle_after_secs,
                at,
            } => {
                require_open(conv)?;
                if idle_after_secs < MIN_IDLE_TIMEOUT_SECS {
                    return Err(DomainError::invalid(
                        "idle_after_secs",
                        format!("must be at least {MIN_IDLE_TIMEOUT_SECS}"),
                    ));
                }
                let idle_secs = (at - conv.last_activity_at).num_seconds();
                if idle_secs < i64::from(idle_after_secs) {
                    return Err(DomainError::NotIdle {
                        idle_secs,
                        required_secs: idle_after_secs,
                    });
                }
                Ok(vec![
                    ConversationIdleTimedOut {
                        last_activity_at: conv.last_activity_at,
                        at,
                    }
                    .into(),
                    ConversationClosed {
                        by: Party::System,
                        reason: CloseReason::IdleTimeout,
                        released_agent: conv.handling.agent(),
                        at,
                    }
                    .into(),
                ])
            }
            C::Close { by, reason, at } => close(conv, by, reason, at),
            C::Reopen { by, at } => {
                let Some(closure) = &conv.closed else {
                    return Err(DomainError::ConversationNotClosed {
                        conversation: conv.id,
                    });
                };
                if by == Party::Bot {
                    return Err(DomainError::invalid(
                        "by",
                        "the bot does not reopen conversations",
                    ));
                }
                if at - closure.at > Duration::hours(REOPEN_WINDOW_HOURS) {
                    return Err(DomainError::ReopenWindowExpired {
                        closed_at: closure.at,
                        window_hours: REOPEN_WINDOW_HOURS,
                    });
                }
                let mut events: Vec<ConversationEvent> =
                    vec![ConversationReopened { by, at }.into()];
                if !conv.bot_enabled {
                    events.push(
                        HandedToHuman {
                            reason: HandoffReason::BotSwitchedOff,
                            at,
                        }
                        .into(),
                    );
                }
                Ok(events)
            }
            C::OfferSurvey { at } => {
                if !conv.is_closed() {
                    return Err(DomainError::ConversationNotClosed {
                        conversation: conv.id,
                    });
                }
                match conv.survey {
                    // A probe is the desk asking itself: nobody to survey, nothing to count.
                    Survey::NotOffered if conv.channel == Channel::Probe => Ok(vec![]),
                    Survey::NotOffered => Ok(vec![SurveyOffered { at }.into()]),
                    // The offer stands: asking again (an agent after the survey worker, or a
                    // resent request) is a harmless retry, not a conflict.
                    Survey::Offered { .. } => Ok(vec![]),
                    Survey::Answered { .. } => Err(DomainError::SurveyAlreadyAnswered {
                        conversation: conv.id,
                    }),
                }
            }
            C::RemindSurvey { after_secs, at } => remind_survey(conv, after_secs, at),
            C::WarnSla { kind, fraction, at } => warn_sla(conv, kind, fraction, at),
            C::BreachSla { kind, at } => breach_sla(conv, kind, at),
            C::AnswerSurvey { score, comment, at } => {
                match conv.survey {
                    Survey::NotOffered => {
                        return Err(DomainError::SurveyNotOffered {
                            conversation: conv.id,
                        });
                    }
                    Survey::Answered { .. } => {
                        return Err(DomainError::SurveyAlreadyAnswered {
                            conversation: conv.id,
                        });
                    }
                    Survey::Offered { .. } => {}
                }
                if !(1..=5).contains(&score) {
                    return Err(DomainError::ScoreOutOfRange { score });
                }
                let comment = comment.filter(|c| !c.trim().is_empty());
                if let Some(c) = &comment {
                    require_text("comment", c, MAX_TEXT_CHARS)?;
                }
                Ok(vec![
                    SurveyAnswered {
                        score,
                        comment,
                        legacy_score_0_to_10: None,
                        at,
                    }
                    .into(),
                ])
            }
            C::AttributeOrder {
                customer,
                order,
                amount,
                placed_at,
                at,
            } => {
                if customer != conv.customer {
                    return Err(DomainError::CustomerMismatch {
                        expected: conv.customer,
                        actual: customer,
                    });
                }
                require_code("order", order.as_str())?;
                require_money("amount", &amount)?;
                let window_end = conv
                    .closed
                    .as_ref()
                    .map(|c| c.at + Duration::hours(ATTRIBUTION_WINDOW_HOURS));
                if placed_at < conv.started_at || window_end.is_some_and(|end| placed_at > end) {
                    return Err(DomainError::OutsideAttributionWindow { placed_at });
                }
                // The order worker may see the same order twice; count it once.
                if conv.attributed_orders.contains_key(&order) {
                    return Ok(vec![]);
                }
                Ok(vec![
                    OrderAttributed {
                        order,
                        amount,
                        placed_at,
                        at,
                    }
                    .into(),
                ])
            }
        }
    }

    fn evolve(state: ConversationState, event: &ConversationEvent) -> ConversationState {
        use ConversationEvent as E;
        let mut conv = match (state, event) {
            (ConversationState::NotStarted, E::ConversationStarted(e)) => {
                return ConversationState::Started(Box::new(Conversation {
                    id: e.conversation,
                    customer: e.customer,
                    tier: e.tier,
                    locale: e.locale.clone(),
                    channel: e.channel,
                    order: e.order.clone(),
                    bot_enabled: e.bot_enabled,
                    started_at: e.at,
                    handling: Handling::Bot,
                    closed: None,
                    turns: Vec::new(),
                    last_emotion: None,
                    emotion_trend: None,
                    scenario: None,
                    routing: None,
                    first_agent_response_at: None,
                    last_activity_at: e.at,
                    notes: 0,
                    reopened: 0,
                    survey: Survey::NotOffered,
                    attributed_orders: BTreeMap::new(),
                    sla: None,
                }));
            }
            (ConversationState::Started(conv), _) => conv,
            (state, _) => return state,
        };
        match event {
            E::ConversationStarted(_) => {}
            E::CustomerTurnRecorded(e) => {
                conv.turns.push(Turn {
                    message: e.message,
                    speaker: Speaker::Customer,
                    at: e.at,
                    emotion: None,
                    confidence: None,
                });
                conv.last_activity_at = e.at;
            }
            E::BotTurnRecorded(e) => {
                conv.turns.push(Turn {
                    message: e.message,
                    speaker: Speaker::Bot,
                    at: e.at,
                    emotion: None,
                    confidence: Some(e.answer.as_ref().map_or(0.0, |a| a.confidence)),
                });
                conv.last_activity_at = e.at;
            }
            E::EmotionAssessed(e) => {
                let emotion = Emotion {
                    score: e.score,
                    label: e.label,
                };
                if let Some(turn) = conv.turns.iter_mut().find(|t| t.message == e.message) {
                    turn.emotion = Some(emotion);
                }
                conv.last_emotion = Some(emotion);
                conv.emotion_trend = Some(e.trend);
            }
            // Shown to the agent only: nothing the rules read, and no activity in the chat.
            E::AnswersSuggested(_) => {}
            E::ScenarioPredicted(e) => {
                conv.scenario = Some(ScenarioPrediction {
                    candidates: e.candidates.clone(),
                    model_version: e.model_version.clone(),
                    settled: None,
                });
            }
            E::ScenarioConfirmed(e) => {
                if let Some(s) = conv.scenario.as_mut() {
                    s.settled = Some(e.scenario.clone());
                }
            }
            E::ScenarioCorrected(e) => {
                if let Some(s) = conv.scenario.as_mut() {
                    s.settled = Some(e.actual.clone());
                }
            }
            E::RoutingDecided(e) => {
                conv.routing = Some(RoutingDecision {
                    queue: e.queue,
                    reasons: e.reasons.clone(),
                    model_version: e.model_version.clone(),
                    at: e.at,
                });
            }
            E::HandedToHuman(e) => conv.handling = Handling::AwaitingHuman { reason: e.reason },
            E::ConversationQueued(e) => {
                conv.handling = Handling::Queued {
                    queue: e.queue,
                    skills: e.skills.clone(),
                    since: e.at,
                };
                conv.sla = Some(SlaClock {
                    queue: e.queue,
                    priority: e.priority,
                    queued_at: e.at,
                    first_response_due: e.first_response_due,
                    resolution_due: e.resolution_due,
                    responded: false,
                    warned: BTreeSet::new(),
                    breached: BTreeSet::new(),
                });
            }
            E::AgentAssigned(e) => {
                let skills = match &conv.handling {
                    Handling::Queued { skills, .. } => skills.clone(),
                    _ => BTreeSet::new(),
                };
                conv.handling = Handling::WithAgent {
                    agent: e.agent,
                    queue: e.queue,
                    skills,
                };
                conv.last_activity_at = e.at;
            }
            E::AgentTurnRecorded(e) => {
                conv.turns.push(Turn {
                    message: e.message,
                    speaker: Speaker::Agent { agent: e.agent },
                    at: e.at,
                    emotion: None,
                    confidence: None,
                });
                conv.first_agent_response_at.get_or_insert(e.at);
                conv.last_activity_at = e.at;
                if let Some(clock) = conv.sla.as_mut() {
                    clock.responded = true;
                }
            }
            E::ConversationTransferred(e) => {
                // A transfer to a queue is followed by `ConversationQueued`, which moves the
                // handling; only an agent-to-agent transfer changes it here.
                if let (
                    TransferredTo::Agent { agent },
                    Handling::WithAgent { agent: current, .. },
                ) = (&e.to, &mut conv.handling)
                {
                    *current = *agent;
                }
            }
            E::InternalNoteAdded(_) => conv.notes += 1,
            E::ConversationIdleTimedOut(_) => {}
            E::ConversationClosed(e) => {
                conv.closed = Some(Closure {
                    by: e.by.clone(),
                    reason: e.reason,
                    at: e.at,
                });
            }
            E::ConversationReopened(e) => {
                conv.closed = None;
                conv.handling = Handling::Bot;
                conv.routing = None;
                conv.sla = None;
                conv.reopened += 1;
                conv.last_activity_at = e.at;
            }
            E::SurveyOffered(e) => {
                conv.survey = Survey::Offered {
                    at: e.at,
                    reminded: false,
                }
            }
            E::SurveyReminded(_) => {
                if let Survey::Offered { reminded, .. } = &mut conv.survey {
                    *reminded = true;
                }
            }
            E::SlaWarned(e) => {
                if let Some(clock) = conv.sla.as_mut() {
                    clock.warned.insert(e.kind);
                }
            }
            E::SlaBreached(e) => {
                if let Some(clock) = conv.sla.as_mut() {
                    clock.breached.insert(e.kind);
                }
            }
            E::ConversationEscalated(e) => {
                if let Some(clock) = conv.sla.as_mut() {
                    clock.priority = e.to_priority;
                }
            }
            E::SurveyAnswered(e) => {
                conv.survey = Survey::Answered {
                    score: e.score,
                    at: e.at,
                }
            }
            E::OrderAttributed(e) => {
                conv.attributed_orders
                    .insert(e.order.clone(), e.amount.clone());
            }
        }
        ConversationState::Started(conv)
    }
}

// ---- rules ----

fn require_open(conv: &Conversation) -> Result<(), DomainError> {
    if conv.is_closed() {
        Err(DomainError::ConversationClosed {
            conversation: conv.id,
        })
    } else {
        Ok(())
    }
}

fn require_assigned(conv: &Conversation, agent: AgentId) -> Result<(), DomainError> {
    if conv.handling.agent() == Some(agent) {
        Ok(())
    } else {
        Err(DomainError::NotAssignedToAgent {
            agent,
            conversation: conv.id,
        })
    }
}

/// Clients resend a message when they miss the acknowledgement; the same message id from the
/// same speaker is the same message. A message id reused by someone else is a client bug.
fn already_recorded(
    conv: &Conversation,
    message: MessageId,
    speaker: &Speaker,
) -> Result<bool, DomainError> {
    match conv.turn(message) {
        None => Ok(false),
        Some(turn) if turn.speaker == *speaker => Ok(true),
        Some(_) => Err(DomainError::invalid(
            "message",
            format!("message id {message} was already used by another speaker"),
        )),
    }
}

fn check_agent_fits(
    conv: &Conversation,
    agent: &crate::agent::Agent,
    skills: &BTreeSet<Skill>,
) -> Result<(), DomainError> {
    agent.check_can_take(conv.id)?;
    let lacking = missing(skills, &agent.skills);
    if !lacking.is_empty() {
        return Err(DomainError::AgentLacksSkills {
            agent: agent.id,
            missing: lacking.into_iter().map(|s| s.0).collect(),
        });
    }
    Ok(())
}

fn start(
    state: &ConversationState,
    conversation: ConversationId,
    customer: &CustomerSnapshot,
    channel: Channel,
    order: Option<OrderId>,
    bot_enabled: bool,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    if let ConversationState::Started(c) = state {
        return Err(DomainError::AlreadyExists {
            kind: "conversation",
            id: c.id.to_string(),
        });
    }
    let customer = customer.require_known()?;
    let order = match order {
        None => None,
        Some(id) => {
            let known = customer
                .orders
                .get(&id)
                .ok_or(DomainError::UnknownOrder { order: id })?;
            Some(OrderContext {
                order: known.order.clone(),
                seller: known.seller.clone(),
                category: known.category.clone(),
                status: known.status,
            })
        }
    };
    let mut events: Vec<ConversationEvent> = vec![
        ConversationStarted {
            conversation,
            customer: customer.id,
            tier: customer.tier,
            locale: customer.locale.clone(),
            channel,
            order,
            bot_enabled,
            at,
        }
        .into(),
    ];
    if !bot_enabled {
        events.push(
            HandedToHuman {
                reason: HandoffReason::BotSwitchedOff,
                at,
            }
            .into(),
        );
    }
    Ok(events)
}

fn bot_turn(
    conv: &Conversation,
    message: MessageId,
    text: String,
    answer: Option<BotAnswerInput>,
    candidates: Vec<AnswerCandidate>,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    if already_recorded(conv, message, &Speaker::Bot)? {
        return Ok(vec![]);
    }
    conv.takes_bot_replies()?;
    require_text("text", &text, MAX_TEXT_CHARS)?;
    if candidates.len() > MAX_CANDIDATES {
        return Err(DomainError::invalid(
            "candidates",
            format!("at most {MAX_CANDIDATES}"),
        ));
    }
    let mut seen = BTreeSet::new();
    for c in &candidates {
        require_unit_interval("candidates.score", c.score)?;
        if !seen.insert(c.entry) {
            return Err(DomainError::invalid(
                "candidates",
                format!("entry {} is listed twice", c.entry),
            ));
        }
    }
    let answer = match answer {
        None => None,
        Some(input) => {
            let entry = input.entry.require_active()?;
            require_unit_interval("answer.confidence", input.confidence)?;
            if !candidates.is_empty() && !seen.contains(&entry.id) {
                return Err(DomainError::invalid(
                    "answer",
                    "the answer must be one of the candidates the bot considered",
                ));
            }
            Some(BotAnswer {
                entry: entry.id,
                revision: entry.revision,
                confidence: input.confidence,
            })
        }
    };
    Ok(vec![
        BotTurnRecorded {
            message,
            text,
            answer,
            candidates,
            at,
        }
        .into(),
    ])
}

fn suggest_answers(
    conv: &Conversation,
    message: MessageId,
    suggestions: Vec<SuggestionInput>,
    confidence: f64,
    model_version: String,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    require_open(conv)?;
    conv.turn(message)
        .filter(|t| t.speaker == Speaker::Customer)
        .ok_or(DomainError::UnknownTurn { message })?;
    // While the bot has the chat it answers the customer itself; a suggestion is for an agent.
    if conv.handling == Handling::Bot {
        return Err(conv.wrong_phase("take answers suggested to an agent"));
    }
    if suggestions.is_empty() || suggestions.len() > MAX_SUGGESTIONS {
        return Err(DomainError::invalid(
            "suggestions",
            format!("{} given; from 1 to {MAX_SUGGESTIONS}", suggestions.len()),
        ));
    }
    require_unit_interval("confidence", confidence)?;
    require_code("model_version", &model_version)?;
    let mut seen = BTreeSet::new();
    let mut suggested = Vec::with_capacity(suggestions.len());
    for s in suggestions {
        let entry = s.entry.require_active()?;
        require_unit_interval("suggestions.score", s.score)?;
        if !seen.insert(entry.id) {
            return Err(DomainError::invalid(
                "suggestions",
                format!("entry {} is listed twice", entry.id),
            ));
        }
        suggested.push(SuggestedAnswer {
            entry: entry.id,
            revision: entry.revision,
            question: entry.question.clone(),
            answer: entry.answer.clone(),
            score: s.score,
        });
    }
    Ok(vec![
        AnswersSuggested {
            message,
            suggestions: suggested,
            confidence,
            model_version,
            at,
        }
        .into(),
    ])
}

fn assess_emotion(
    conv: &Conversation,
    message: MessageId,
    score: f64,
    label: EmotionLabel,
    model_version: String,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    // Assessment runs asynchronously and may land after close; it describes a turn that
    // happened while the conversation was open, so it is accepted.
    let turn = conv
        .turn(message)
        .filter(|t| t.speaker == Speaker::Customer)
        .ok_or(DomainError::UnknownTurn { message })?;
    if turn.emotion.is_some() {
        return Err(DomainError::TurnAlreadyAssessed { message });
    }
    if !(-1.0..=1.0).contains(&score) {
        return Err(DomainError::invalid(
            "score",
            format!("{score} is not between -1 and 1"),
        ));
    }
    require_code("model_version", &model_version)?;
    let trend = match conv.last_emotion {
        Some(previous) if score - previous.score > EMOTION_TREND_THRESHOLD => {
            EmotionTrend::Improving
        }
        Some(previous) if previous.score - score > EMOTION_TREND_THRESHOLD => {
            EmotionTrend::Worsening
        }
        _ => EmotionTrend::Steady,
    };
    Ok(vec![
        EmotionAssessed {
            message,
            score,
            label,
            trend,
            model_version,
            at,
        }
        .into(),
    ])
}

fn predict_scenario(
    conv: &Conversation,
    mut candidates: Vec<ScenarioCandidate>,
    model_version: String,
    features: Features,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    require_features(&features)?;
    require_open(conv)?;
    // A settled scenario is ground truth for the match rate; predicting again would blur it.
    if conv.scenario.as_ref().is_some_and(|s| s.settled.is_some()) {
        return Err(DomainError::ScenarioAlreadySettled);
    }
    if candidates.is_empty() || candidates.len() > MAX_SCENARIOS {
        return Err(DomainError::invalid(
            "candidates",
            format!("a prediction has 1 to {MAX_SCENARIOS} candidates"),
        ));
    }
    require_code("model_version", &model_version)?;
    let mut seen = BTreeSet::new();
    let mut total = 0.0;
    for c in &candidates {
        require_code("candidates.scenario", c.scenario.as_str())?;
        require_unit_interval("candidates.probability", c.probability)?;
        if !seen.insert(&c.scenario) {
            return Err(DomainError::invalid(
                "candidates",
                format!("scenario {} is listed twice", c.scenario),
            ));
        }
        total += c.probability;
    }
    if total > 1.0 + 1e-6 {
        return Err(DomainError::invalid(
            "candidates",
            format!("probabilities add up to {total}, more than 1"),
        ));
    }
    candidates.sort_by(|a, b| {
        b.probability
            .total_cmp(&a.probability)
            .then_with(|| a.scenario.cmp(&b.scenario))
    });
    Ok(vec![
        ScenarioPredicted {
            candidates,
            model_version,
            features,
            at,
        }
        .into(),
    ])
}

fn settle_scenario(
    conv: &Conversation,
    actual: ScenarioCode,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    require_open(conv)?;
    let prediction = conv
        .scenario
        .as_ref()
        .ok_or(DomainError::ScenarioNotPredicted)?;
    if prediction.settled.is_some() {
        return Err(DomainError::ScenarioAlreadySettled);
    }
    require_code("actual", actual.as_str())?;
    let Some(top) = prediction.candidates.first() else {
        return Err(DomainError::ScenarioNotPredicted);
    };
    if top.scenario == actual {
        return Ok(vec![
            ScenarioConfirmed {
                scenario: actual,
                at,
            }
            .into(),
        ]);
    }
    Ok(vec![
        ScenarioCorrected {
            predicted: top.scenario.clone(),
            actual_was_candidate: prediction.candidates.iter().any(|c| c.scenario == actual),
            actual,
            at,
        }
        .into(),
    ])
}

fn route(
    conv: &Conversation,
    queue: &QueueSnapshot,
    reasons: Vec<RoutingReason>,
    model_version: String,
    features: Features,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    require_features(&features)?;
    require_open(conv)?;
    if !matches!(
        conv.handling,
        Handling::Bot | Handling::AwaitingHuman { .. }
    ) {
        return Err(conv.wrong_phase("be routed (transfer it instead)"));
    }
    let queue = queue.require_active()?;
    conv.check_business_line(queue)?;
    if reasons.is_empty() || reasons.len() > 10 {
        return Err(DomainError::invalid(
            "reasons",
            "a routing decision gives 1 to 10 reasons",
        ));
    }
    for reason in &reasons {
        if let RoutingReason::Other { code } = reason {
            require_code("reasons.code", code)?;
        }
    }
    require_code("model_version", &model_version)?;
    Ok(vec![
        RoutingDecided {
            queue: queue.id,
            reasons,
            model_version,
            features,
            at,
        }
        .into(),
    ])
}

fn hand_off(
    conv: &Conversation,
    reason: HandoffReason,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    require_open(conv)?;
    if conv.handling != Handling::Bot {
        return Err(conv.wrong_phase("be handed to a human"));
    }
    let unjustified = |why| Err(DomainError::HandoffNotJustified { reason, why });
    match reason {
        HandoffReason::Vip if conv.tier != CustomerTier::Vip => {
            return unjustified("the customer is not VIP");
        }
        HandoffReason::NegativeEmotion
            if !conv.last_emotion.is_some_and(|e| e.label.is_negative()) =>
        {
            return unjustified("the latest emotion assessment is not negative");
        }
        HandoffReason::LowConfidence if !conv.turns.iter().any(|t| t.speaker == Speaker::Bot) => {
            return unjustified("the bot has not answered yet");
        }
        _ => {}
    }
    Ok(vec![HandedToHuman { reason, at }.into()])
}

fn transfer(
    conv: &Conversation,
    from_agent: AgentId,
    to: &TransferTarget,
    reason: String,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    require_open(conv)?;
    require_assigned(conv, from_agent)?;
    require_text("reason", &reason, MAX_LABEL_CHARS)?;
    match to {
        TransferTarget::Agent(agent) => {
            let agent = agent.require_registered()?;
            if agent.id == from_agent {
                return Err(DomainError::invalid(
                    "to",
                    "cannot transfer a conversation to the agent who has it",
                ));
            }
            let Handling::WithAgent { skills, .. } = &conv.handling else {
                return Err(conv.wrong_phase("be transferred"));
            };
            check_agent_fits(conv, agent, skills)?;
            Ok(vec![
                ConversationTransferred {
                    from_agent,
                    to: TransferredTo::Agent { agent: agent.id },
                    reason,
                    at,
                }
                .into(),
            ])
        }
        TransferTarget::Queue(queue) => {
            let queue = queue.require_active()?;
            conv.check_business_line(queue)?;
            let queued = conv.queued_event(queue, at)?;
            Ok(vec![
                ConversationTransferred {
                    from_agent,
                    to: TransferredTo::Queue { queue: queue.id },
                    reason,
                    at,
                }
                .into(),
                queued,
            ])
        }
    }
}

fn close(
    conv: &Conversation,
    by: Party,
    reason: CloseReason,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    require_open(conv)?;
    match &by {
        Party::Agent { agent } => require_assigned(conv, *agent)?,
        Party::Bot if conv.handling != Handling::Bot => {
            return Err(conv.wrong_phase("be closed by the bot"));
        }
        _ => {}
    }
    if reason == CloseReason::IdleTimeout {
        return Err(DomainError::invalid(
            "reason",
            "idle timeouts are recorded by the idle-timeout command, which checks the idle time",
        ));
    }
    Ok(vec![
        ConversationClosed {
            by,
            reason,
            released_agent: conv.handling.agent(),
            at,
        }
        .into(),
    ])
}

fn remind_survey(
    conv: &Conversation,
    after_secs: u32,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    if after_secs < MIN_SURVEY_REMINDER_SECS {
        return Err(DomainError::invalid(
            "after_secs",
            format!("must be at least {MIN_SURVEY_REMINDER_SECS}"),
        ));
    }
    let offered_at = match conv.survey {
        Survey::NotOffered => {
            return Err(DomainError::SurveyNotOffered {
                conversation: conv.id,
            });
        }
        Survey::Answered { .. } => {
            return Err(DomainError::SurveyAlreadyAnswered {
                conversation: conv.id,
            });
        }
        Survey::Offered { reminded: true, .. } => {
            return Err(DomainError::SurveyAlreadyReminded {
                conversation: conv.id,
            });
        }
        Survey::Offered { at, .. } => at,
    };
    // A reopened conversation is being talked about again; a survey reminder would be out
    // of place until it closes once more.
    if !conv.is_closed() {
        return Err(DomainError::ConversationNotClosed {
            conversation: conv.id,
        });
    }
    let due = offered_at + Duration::seconds(i64::from(after_secs));
    if at < due {
        return Err(DomainError::SurveyReminderNotDue { offered_at, due });
    }
    Ok(vec![SurveyReminded { offered_at, at }.into()])
}

/// The running clock for `kind`, with its due time, or why there is nothing to time.
fn running_clock(
    conv: &Conversation,
    kind: SlaKind,
) -> Result<(&SlaClock, DateTime<Utc>), DomainError> {
    let not_running = || DomainError::SlaNotRunning {
        conversation: conv.id,
    };
    let clock = conv.sla.as_ref().ok_or_else(not_running)?;
    let due = clock.due(kind).ok_or_else(not_running)?;
    if conv.is_closed() {
        return Err(DomainError::SlaTargetMet {
            kind,
            how: "the conversation is closed",
        });
    }
    if kind == SlaKind::FirstResponse && clock.responded {
        return Err(DomainError::SlaTargetMet {
            kind,
            how: "an agent has replied since the queueing",
        });
    }
    if clock.breached.contains(&kind) {
        return Err(DomainError::SlaAlreadyBreached { kind });
    }
    Ok((clock, due))
}

fn warn_sla(
    conv: &Conversation,
    kind: SlaKind,
    fraction: f64,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    require_warning_fraction(fraction)?;
    let (clock, due) = running_clock(conv, kind)?;
    if clock.warned.contains(&kind) {
        return Err(DomainError::SlaAlreadyWarned { kind });
    }
    let warn_at = warning_time(clock.queued_at, due, fraction);
    if at < warn_at {
        return Err(DomainError::SlaNotDue {
            kind,
            step: "warning",
            due: warn_at,
        });
    }
    Ok(vec![
        SlaWarned {
            kind,
            queue: clock.queue,
            due,
            at,
        }
        .into(),
    ])
}

fn breach_sla(
    conv: &Conversation,
    kind: SlaKind,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    let (clock, due) = running_clock(conv, kind)?;
    if at < due {
        return Err(DomainError::SlaNotDue {
            kind,
            step: "breach",
            due,
        });
    }
    Ok(vec![
        SlaBreached {
            kind,
            queue: clock.queue,
            due,
            at,
        }
        .into(),
        ConversationEscalated {
            kind,
            queue: clock.queue,
            from_priority: clock.priority,
            to_priority: crate::queue::one_step_up(clock.priority),
            at,
        }
        .into(),
    ])
}
