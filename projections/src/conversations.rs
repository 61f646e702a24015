//! The conversation view: one row per conversation (status, queue, agent, mood, triage,
//! survey) for listings and filters, and, for one conversation at a time, its transcript
//! (every turn and internal note), the emotion assessed for each customer turn, and a
//! timeline of everything else that happened to it (scenario predictions, routing decisions,
//! hand-offs, queueing, assignment, transfers, close, survey), with each event as kefu reads
//! it (upcast to the current schema version).
//!
//! The transcript, emotions and timeline are not tables. They are exactly the events of the
//! conversation's stream, which the log already indexes, so they are decoded from the stream
//! when asked (as the audit trail is from the correlation index): a copy would be a second
//! truth, and writing it was most of the cost of a rebuild (nearly every conversation event
//! became a row). The summary row names the last event it has applied, and the stream is read
//! only that far, so the transcript always agrees with the row beside it, and an as-of
//! generation shows the transcript as it stood at its bound.
//!
//! `View::conversation` reads the stream up to the row's version (`read_stream_through`) and
//! decodes it, upcasting as a projection does, into the shape the tables used to give
//! ([`ConversationView::from_stream`], pure), so a conversation query needs the log as well as the
//! read store. The copy cost 852,713 rows for a 1M-event history, for a view that is read one
//! conversation at a time and never listed by transcript. Generations built by an earlier kefu
//! still have the old `turns`, `emotions` and `timeline` tables (`Projection::former_tables`); they
//! are dropped with their generation.

use kefu_domain::DomainEvent;
use kefu_domain::conversation::{AnswersSuggested, ConversationEvent as E, SlaKind, TransferredTo};
use kefu_eventlog::{EventLog, RecordedEvent, StreamId, read_stream_through};

use crate::error::ProjectionError;
use crate::record;
use crate::rows::{KeyRequests, RowSet};
use kefu_domain::Event;

use crate::runner::{Envelope, Projection};
use crate::sql::{Record, TableDef, Val};
use crate::view::{Listing, Page, View, code, json, ms};

pub const NAME: &str = "conversations";

record! {
    /// A conversation as it stands.
    pub struct ConversationRow in "conversations", key 1 {
        pub id: String,
        pub customer: String,
        pub channel: String,
        pub locale: String,
        pub tier: String,
        pub order_id: Option<String>,
        /// `self_operated` or `merchant:<id>`, from the order in question.
        pub seller: Option<String>,
        pub category: Option<String>,
        /// bot, awaiting_human, queued, with_agent or closed.
        pub status: String,
        pub queue: Option<String>,
        pub agent: Option<String>,
        pub bot_enabled: bool,
        pub started_at: i64,
        pub closed_at: Option<i64>,
        pub close_reason: Option<String>,
        /// JSON of the party who closed it.
        #[serde(serialize_with = "crate::view::as_json_opt")]
        pub closed_by: Option<String>,
        pub last_activity_at: i64,
        /// Customer, bot and agent turns (notes are not turns).
        pub turns: i64,
        pub emotion_score: Option<f64>,
        pub emotion_label: Option<String>,
        pub emotion_trend: Option<String>,
        pub scenario_predicted: Option<String>,
        pub scenario_settled: Option<String>,
        pub handoff_reason: Option<String>,
        pub survey_score: Option<i64>,
        pub reopened: i64,
        pub orders: i64,
        /// The current queueing's SLA clock (None outside one: before the first queueing,
        /// after a reopen): priority after escalations, when it joined the queue, its due
        /// times, whether an agent has replied since, and what was warned of and breached.
        pub priority: Option<i64>,
        pub queued_at: Option<i64>,
        /// Where the queueing is in the log: the SLA events' cause.
        pub queued_position: Option<i64>,
        pub first_response_due: Option<i64>,
        pub resolution_due: Option<i64>,
        pub responded: bool,
        pub first_response_warned: bool,
        pub first_response_breached: bool,
        pub resolution_warned: bool,
        pub resolution_breached: bool,
        pub survey_offered_at: Option<i64>,
        /// Where the offer is in the log: the reminder's cause.
        pub survey_offered_position: Option<i64>,
        pub survey_reminded: bool,
        /// The stream version and log position of the last event applied: the transcript
        /// is read from the stream up to this version.
        pub version: i64,
        pub position: i64,
    }
    indexes: [
        ["status", "queue"], ["agent"], ["customer"], ["started_at"],
        ["closed_at", "queued_at"], ["survey_reminded", "survey_offered_at"]
    ]
}

#[derive(Default)]
pub struct ConversationsProjection;

impl Projection for ConversationsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> Vec<&'static TableDef> {
        vec![&ConversationRow::TABLE]
    }

    fn former_tables(&self) -> &'static [&'static str] {
        // Where kefu 2026-11 kept a copy of each conversation's stream.
        &["turns", "emotions", "timeline"]
    }

    fn prefetch(&self, e: Envelope<'_>, want: &mut KeyRequests) {
        // A start makes the row; every later event reads it.
        if let Event::Conversation(event) = e.decoded
            && !matches!(event, E::ConversationStarted(_))
        {
            want.want::<ConversationRow>(e.entity());
        }
    }

    fn apply(&mut self, e: Envelope<'_>, rows: &mut RowSet) -> Result<(), ProjectionError> {
        let Event::Conversation(event) = e.decoded else {
            return Ok(());
        };
        let version = e.event.version as i64;
        let position = e.event.position.0 as i64;
        let row = match event {
            E::ConversationStarted(s) => {
                return rows.put(ConversationRow {
                    id: e.entity().to_owned(),
                    customer: s.customer.to_string(),
                    channel: code(&s.channel),
                    locale: s.locale.to_string(),
                    tier: code(&s.tier),
                    order_id: s.order.as_ref().map(|o| o.order.to_string()),
                    seller: s.order.as_ref().map(|o| crate::view::seller(&o.seller)),
                    category: s.order.as_ref().map(|o| o.category.to_string()),
                    status: "bot".into(),
                    queue: None,
                    agent: None,
                    bot_enabled: s.bot_enabled,
                    started_at: ms(s.at),
                    closed_at: None,
                    close_reason: None,
                    closed_by: None,
                    last_activity_at: ms(s.at),
                    turns: 0,
                    emotion_score: None,
                    emotion_label: None,
                    emotion_trend: None,
                    scenario_predicted: None,
                    scenario_settled: None,
                    handoff_reason: None,
                    survey_score: None,
                    reopened: 0,
                    orders: 0,
                    priority: None,
                    queued_at: None,
                    queued_position: None,
                    first_response_due: None,
                    resolution_due: None,
                    responded: false,
                    first_response_warned: false,
                    first_response_breached: false,
                    resolution_warned: false,
                    resolution_breached: false,
                    survey_offered_at: None,
                    survey_offered_position: None,
                    survey_reminded: false,
                    version,
                    position,
                });
            }
            // Events of a stream whose start this generation never saw cannot be placed
            // (the log guarantees the start comes first); skip rather than invent a row.
            _ => match rows.get_mut::<ConversationRow>(&[Val::Text(e.entity().to_owned())])? {
                Some(row) => row,
                None => return Ok(()),
            },
        };
        match event {
            E::ConversationStarted(_) | E::InternalNoteAdded(_) | E::AnswersSuggested(_) => {}
            E::CustomerTurnRecorded(t) => row.record_turn(ms(t.at)),
            E::BotTurnRecorded(t) => row.record_turn(ms(t.at)),
            E::AgentTurnRecorded(t) => {
                row.record_turn(ms(t.at));
                row.responded = true;
            }
            E::EmotionAssessed(a) => {
                row.emotion_score = Some(a.score);
                row.emotion_label = Some(code(&a.label));
                row.emotion_trend = Some(code(&a.trend));
            }
            E::ScenarioPredicted(p) => {
                row.scenario_predicted = p.candidates.first().map(|c| c.scenario.to_string());
            }
            E::ScenarioConfirmed(c) => row.scenario_settled = Some(c.scenario.to_string()),
            E::ScenarioCorrected(c) => row.scenario_settled = Some(c.actual.to_string()),
            E::RoutingDecided(r) => row.queue = Some(r.queue.to_string()),
            E::HandedToHuman(h) => {
                row.status = "awaiting_human".into();
                row.handoff_reason = Some(code(&h.reason));
            }
            E::ConversationQueued(q) => {
                row.status = "queued".into();
                row.queue = Some(q.queue.to_string());
                row.agent = None;
                row.start_sla_clock(Some((q, position)));
            }
            E::AgentAssigned(a) => {
                row.status = "with_agent".into();
                row.agent = Some(a.agent.to_string());
                row.queue = Some(a.queue.to_string());
            }
            E::ConversationTransferred(t) => match &t.to {
                TransferredTo::Agent { agent } => row.agent = Some(agent.to_string()),
                TransferredTo::Queue { queue } => {
                    row.agent = None;
                    row.queue = Some(queue.to_string());
                }
            },
            E::ConversationIdleTimedOut(_) => {}
            E::ConversationClosed(c) => {
                row.status = "closed".into();
                row.closed_at = Some(ms(c.at));
                row.close_reason = Some(code(&c.reason));
                row.closed_by = Some(json(&c.by));
            }
            E::ConversationReopened(r) => {
                row.status = "bot".into();
                row.closed_at = None;
                row.close_reason = None;
                row.closed_by = None;
                row.agent = None;
                row.queue = None;
                row.reopened += 1;
                row.last_activity_at = ms(r.at);
                row.start_sla_clock(None);
            }
            E::SurveyOffered(o) => {
                row.survey_offered_at = Some(ms(o.at));
                row.survey_offered_position = Some(position);
            }
            E::SurveyReminded(_) => row.survey_reminded = true,
            E::SlaWarned(w) => *row.sla_flag(w.kind, false) = true,
            E::SlaBreached(b) => *row.sla_flag(b.kind, true) = true,
            E::ConversationEscalated(x) => row.priority = Some(i64::from(x.to_priority)),
            E::SurveyAnswered(s) => row.survey_score = Some(i64::from(s.score)),
            E::OrderAttributed(_) => row.orders += 1,
        }
        row.version = version;
        row.position = position;
        Ok(())
    }
}

impl ConversationRow {
    fn record_turn(&mut self, at: i64) {
        self.turns += 1;
        self.last_activity_at = at;
    }

    /// A new queueing's clock, or none (`None`: a reopen stopped it).
    fn start_sla_clock(
        &mut self,
        queued: Option<(&kefu_domain::conversation::ConversationQueued, i64)>,
    ) {
        self.queued_position = queued.map(|(_, position)| position);
        let queued = queued.map(|(q, _)| q);
        self.priority = queued.map(|q| i64::from(q.priority));
        self.queued_at = queued.map(|q| ms(q.at));
        self.first_response_due = queued.map(|q| ms(q.first_response_due));
        self.resolution_due = queued.and_then(|q| q.resolution_due).map(ms);
        self.responded = false;
        self.first_response_warned = false;
        self.first_response_breached = false;
        self.resolution_warned = false;
        self.resolution_breached = false;
    }

    fn sla_flag(&mut self, kind: SlaKind, breached: bool) -> &mut bool {
        match (kind, breached) {
            (SlaKind::FirstResponse, false) => &mut self.first_response_warned,
            (SlaKind::FirstResponse, true) => &mut self.first_response_breached,
            (SlaKind::Resolution, false) => &mut self.resolution_warned,
            (SlaKind::Resolution, true) => &mut self.resolution_breached,
        }
    }

    /// When `kind`'s target of the current queueing is due, while it still runs: not met
    /// (no reply since the queueing, for the first response; open, for both) and not
    /// breached. With whether it was warned of.
    pub fn sla_running(&self, kind: SlaKind) -> Option<(i64, i64, bool)> {
        if self.closed_at.is_some() {
            return None;
        }
        let queued_at = self.queued_at?;
        let (due, warned, breached) = match kind {
            SlaKind::FirstResponse if self.responded => return None,
            SlaKind::FirstResponse => (
                self.first_response_due?,
                self.first_response_warned,
                self.first_response_breached,
            ),
            SlaKind::Resolution => (
                self.resolution_due?,
                self.resolution_warned,
                self.resolution_breached,
            ),
        };
        (!breached).then_some((queued_at, due, warned))
    }
}

fn event_at(e: &E) -> chrono::DateTime<chrono::Utc> {
    match e {
        E::ConversationStarted(x) => x.at,
        E::CustomerTurnRecorded(x) => x.at,
        E::BotTurnRecorded(x) => x.at,
        E::EmotionAssessed(x) => x.at,
        E::AnswersSuggested(x) => x.at,
        E::ScenarioPredicted(x) => x.at,
        E::ScenarioConfirmed(x) => x.at,
        E::ScenarioCorrected(x) => x.at,
        E::RoutingDecided(x) => x.at,
        E::HandedToHuman(x) => x.at,
        E::ConversationQueued(x) => x.at,
        E::AgentAssigned(x) => x.at,
        E::AgentTurnRecorded(x) => x.at,
        E::ConversationTransferred(x) => x.at,
        E::InternalNoteAdded(x) => x.at,
        E::ConversationIdleTimedOut(x) => x.at,
        E::ConversationClosed(x) => x.at,
        E::ConversationReopened(x) => x.at,
        E::SurveyOffered(x) => x.at,
        E::SurveyAnswered(x) => x.at,
        E::OrderAttributed(x) => x.at,
        E::SurveyReminded(x) => x.at,
        E::SlaWarned(x) => x.at,
        E::SlaBreached(x) => x.at,
        E::ConversationEscalated(x) => x.at,
    }
}

/// One message: a customer, bot or agent turn, or an agent's internal note.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Turn {
    pub conversation: String,
    /// The stream version of the event, which orders the transcript.
    pub version: i64,
    pub message: String,
    /// customer, bot or agent.
    pub speaker: String,
    pub agent: Option<String>,
    pub text: String,
    /// Internal notes are for agents only.
    pub internal: bool,
    pub answer_entry: Option<String>,
    pub confidence: Option<f64>,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Emotion {
    pub conversation: String,
    pub version: i64,
    pub message: String,
    pub score: f64,
    pub label: String,
    pub trend: String,
    pub model_version: String,
    pub at: i64,
}

/// Everything else that happened, with the event as JSON (its `type` and fields).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TimelineEntry {
    pub conversation: String,
    pub version: i64,
    pub kind: String,
    #[serde(serialize_with = "crate::view::as_json")]
    pub detail: String,
    pub at: i64,
    /// The event itself, for readers that show it field by field (the API's typed views);
    /// `detail` is the same event as JSON.
    #[serde(skip)]
    pub event: E,
}

/// A turn with the emotion assessed for it, if any, and (a customer turn a human answers)
/// the answers the bot suggested to the agent.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TranscriptTurn {
    pub turn: Turn,
    pub emotion: Option<Emotion>,
    pub suggested: Option<AnswersSuggested>,
}

/// One conversation with everything the agent desk and auditors show.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConversationView {
    pub conversation: ConversationRow,
    pub transcript: Vec<TranscriptTurn>,
    pub emotions: Vec<Emotion>,
    pub timeline: Vec<TimelineEntry>,
}

impl ConversationView {
    /// The view of one conversation: its summary row and its stream's events in version
    /// order (as far as the row has applied them). An event this build cannot read is passed
    /// over, as the projection passes over it.
    pub fn from_stream(conversation: ConversationRow, events: Vec<RecordedEvent>) -> Self {
        let id = conversation.id.clone();
        let mut turns = Vec::new();
        let mut emotions = Vec::new();
        let mut timeline = Vec::new();
        let mut suggested: Vec<AnswersSuggested> = Vec::new();
        for mut e in events {
            let Event::Conversation(event) = kefu_feed::decode_taking(&mut e) else {
                continue;
            };
            let version = e.version as i64;
            let turn = |speaker: &str, agent: Option<String>, message: String, text: String| Turn {
                conversation: id.clone(),
                version,
                message,
                speaker: speaker.into(),
                agent,
                text,
                internal: false,
                answer_entry: None,
                confidence: None,
                at: 0,
            };
            match event {
                E::CustomerTurnRecorded(t) => turns.push(Turn {
                    at: ms(t.at),
                    ..turn("customer", None, t.message.to_string(), t.text)
                }),
                E::BotTurnRecorded(t) => turns.push(Turn {
                    at: ms(t.at),
                    answer_entry: t.answer.as_ref().map(|a| a.entry.to_string()),
                    confidence: t.answer.as_ref().map(|a| a.confidence),
                    ..turn("bot", None, t.message.to_string(), t.text)
                }),
                E::AgentTurnRecorded(t) => turns.push(Turn {
                    at: ms(t.at),
                    ..turn(
                        "agent",
                        Some(t.agent.to_string()),
                        t.message.to_string(),
                        t.text,
                    )
                }),
                E::InternalNoteAdded(n) => turns.push(Turn {
                    internal: true,
                    at: ms(n.at),
                    ..turn(
                        "agent",
                        Some(n.author.to_string()),
                        format!("note-{version}"),
                        n.text,
                    )
                }),
                E::AnswersSuggested(s) => suggested.push(s),
                E::EmotionAssessed(a) => emotions.push(Emotion {
                    conversation: id.clone(),
                    version,
                    message: a.message.to_string(),
                    score: a.score,
                    label: code(&a.label),
                    trend: code(&a.trend),
                    model_version: a.model_version,
                    at: ms(a.at),
                }),
                other => timeline.push(TimelineEntry {
                    conversation: id.clone(),
                    version,
                    detail: json(&other),
                    at: ms(event_at(&other)),
                    kind: e.event_type,
                    event: other,
                }),
            }
        }
        let transcript = turns
            .into_iter()
            .map(|turn| TranscriptTurn {
                emotion: emotions.iter().find(|e| e.message == turn.message).cloned(),
                suggested: suggested
                    .iter()
                    .find(|s| s.message.to_string() == turn.message)
                    .cloned(),
                turn,
            })
            .collect();
        ConversationView {
            conversation,
            transcript,
            emotions,
            timeline,
        }
    }
}

/// Which conversations to list.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub status: Option<String>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub customer: Option<String>,
    pub channel: Option<String>,
    /// Started at or after, milliseconds.
    pub from: Option<i64>,
    /// Started before, milliseconds.
    pub to: Option<i64>,
}

impl ConversationFilter {
    fn listing(&self) -> Listing {
        let mut query = Listing::default();
        query.eq("status", &self.status);
        query.eq("queue", &self.queue);
        query.eq("agent", &self.agent);
        query.eq("customer", &self.customer);
        query.eq("channel", &self.channel);
        query.cmp("started_at", ">=", self.from);
        query.cmp("started_at", "<", self.to);
        query
    }
}

impl View {
    /// One conversation, or None if this generation has never seen it. The transcript,
    /// emotions and timeline are read from the conversation's stream in `log` (the log this
    /// generation is built from), up to the last event its summary row applied: never ahead
    /// of the row, and never past an as-of generation's bound.
    pub async fn conversation<L: EventLog>(
        &self,
        log: &L,
        id: &str,
    ) -> Result<Option<ConversationView>, ProjectionError> {
        self.conversation_from(log, id, Vec::new()).await
    }

    /// [`Self::conversation`] from the stream's events as a caller already read them (from
    /// version 0, at any time): the prefix the summary row applied is used, and the stream
    /// is read again only when they stop short of it.
    pub async fn conversation_from<L: EventLog>(
        &self,
        log: &L,
        id: &str,
        mut events: Vec<RecordedEvent>,
    ) -> Result<Option<ConversationView>, ProjectionError> {
        let Some(conversation) = self
            .select::<ConversationRow>("WHERE id = $1", vec![id.into()])
            .await?
            .pop()
        else {
            return Ok(None);
        };
        let through = u64::try_from(conversation.version).map_err(|_| {
            ProjectionError::Bug(format!(
                "conversation {id} has version {}",
                conversation.version
            ))
        })?;
        events.retain(|e| e.version <= through);
        let whole = events.first().is_none_or(|e| e.version == 0)
            && events.last().is_some_and(|e| e.version == through);
        if !whole {
            let stream = StreamId::of(E::CATEGORY, id)?;
            events = read_stream_through(log, &stream, Some(through)).await?;
        }
        Ok(Some(ConversationView::from_stream(conversation, events)))
    }

    /// Conversations newest first, paged by a cursor (`started_at:id` of the last one seen).
    pub async fn conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<ConversationRow>, ProjectionError> {
        self.newest_first(
            filter.listing(),
            "started_at",
            after,
            limit,
            |c: &ConversationRow| (c.started_at, c.id.clone()),
        )
        .await
    }

    /// How many conversations `filter` admits (a listing's total, whatever page is read).
    pub async fn count_conversations(
        &self,
        filter: &ConversationFilter,
    ) -> Result<i64, ProjectionError> {
        self.count::<ConversationRow>(filter.listing()).await
    }

    /// Every conversation `filter` admits, read page by page through [`Self::conversations`]:
    /// what a sweep over the view (idle timeout, archiver) goes through.
    pub async fn all_conversations(
        &self,
        filter: &ConversationFilter,
    ) -> Result<Vec<ConversationRow>, ProjectionError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.conversations(filter, after.as_deref(), 500).await?;
            all.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }
}

impl View {
    /// Open conversations whose current queueing has an SLA target still running (not met,
    /// not breached): what the SLA sweep looks at. Oldest queueing first.
    pub async fn sla_running(&self) -> Result<Vec<ConversationRow>, ProjectionError> {
        self.select::<ConversationRow>(
            "WHERE closed_at IS NULL AND queued_at IS NOT NULL \
             AND ((responded = 0 AND first_response_breached = 0) OR resolution_breached = 0) \
             ORDER BY queued_at, id",
            vec![],
        )
        .await
    }

    /// Closed conversations whose survey was offered in `[offered_from, offered_by]` (epoch
    /// milliseconds) and is neither answered nor reminded of: what the reminder sweep looks at.
    pub async fn surveys_to_remind(
        &self,
        offered_from: i64,
        offered_by: i64,
    ) -> Result<Vec<ConversationRow>, ProjectionError> {
        self.select::<ConversationRow>(
            "WHERE survey_reminded = 0 AND survey_offered_at >= $1 AND survey_offered_at <= $2 \
             AND closed_at IS NOT NULL AND survey_score IS NULL \
             ORDER BY survey_offered_at, id",
            vec![offered_from.into(), offered_by.into()],
        )
        .await
    }
}
