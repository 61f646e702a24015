//! What may be asked of a conversation.

use super::*;

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
