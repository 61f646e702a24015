//! What a conversation records, and which of it the workers record once per cause.

use super::*;

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
