//! Satisfaction and service statistics.
//!
//! The projection keeps one fact row per conversation (its dimensions: day, queue, agent,
//! bot or human, predicted scenario, channel, business line; and its measures: survey, first
//! response, resolution, containment, scenario match, orders, hand-off reason). Figures are
//! aggregated from the facts when asked, with whatever filter and grouping the dashboard
//! wants: precomputing every combination of seven dimensions would be a cube far larger than
//! the facts themselves.
//!
//! Figures can be grouped by day, hour, queue, agent, bot or human, scenario, channel, business
//! line or hand-off reason.

use chrono::{DateTime, Datelike, Duration, Utc};
use kefu_domain::agent::AgentEvent as A;
use kefu_domain::conversation::{ConversationEvent as C, SlaKind, TransferredTo};
use kefu_domain::queue::QueueEvent as Q;

use crate::error::ProjectionError;
use crate::record;
use crate::rows::{KeyRequests, RowSet};
use kefu_domain::Event;

use crate::runner::{Envelope, Projection};
use crate::sql::{Record, TableDef, Val};
use crate::view::{View, code, ms, seller, where_clause};

pub const NAME: &str = "stats";

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

record! {
    /// One conversation's dimensions and measures.
    pub struct FactRow in "facts", key 1 {
        pub conversation: String,
        pub customer: String,
        pub channel: String,
        /// `self_operated` or `merchant:<id>`: the order's seller, else the queue's line.
        pub business_line: Option<String>,
        pub started_at: i64,
        pub queue: Option<String>,
        pub agent: Option<String>,
        pub handed_off: bool,
        /// The first hand-off's reason.
        pub handoff_reason: Option<String>,
        pub scenario_predicted: Option<String>,
        pub scenario_actual: Option<String>,
        pub scenario_matched: Option<bool>,
        pub first_queued_at: Option<i64>,
        pub first_response_at: Option<i64>,
        pub closed_at: Option<i64>,
        pub close_reason: Option<String>,
        pub survey_offered: bool,
        pub survey_score: Option<i64>,
        pub orders: i64,
        /// Minor units (fen).
        pub order_amount: i64,
        pub customer_turns: i64,
        pub bot_turns: i64,
        pub agent_turns: i64,
        pub reopened: i64,
        /// SLA targets breached (per queueing; a transfer to another queue starts a new clock).
        pub first_response_breaches: i64,
        pub resolution_breaches: i64,
        /// Hand-off events (`handed_off` says whether there was any).
        pub handoffs: i64,
        /// Times the conversation joined a queue (each has a [`QueueingRow`]).
        pub queueings: i64,
    }
    indexes: [["started_at"], ["queue", "started_at"], ["agent", "started_at"]]
}

record! {
    /// One time a conversation joined a queue, and what came of it: the first response and
    /// the wait are timed per queueing, so a conversation reopened a day later is a new
    /// queueing with its own clock, not a day-long first response.
    pub struct QueueingRow in "queueings", key 2 {
        pub conversation: String,
        /// 1 for the conversation's first queueing.
        pub seq: i64,
        pub queue: String,
        pub queued_at: i64,
        /// When an agent took it (the end of the wait).
        pub assigned_at: Option<i64>,
        pub agent: Option<String>,
        /// The first agent reply after the queueing.
        pub first_response_at: Option<i64>,
    }
    indexes: [["conversation"]]
}

record! {
    /// The queueing a conversation is in now, by conversation (what an assignment or an agent
    /// reply changes); copied to [`QueueingRow`] at every change.
    pub struct OpenQueueingRow in "open_queueings", key 1 {
        pub conversation: String,
        pub seq: i64,
        pub queue: String,
        pub queued_at: i64,
        pub assigned_at: Option<i64>,
        pub agent: Option<String>,
        pub first_response_at: Option<i64>,
    }
}

impl OpenQueueingRow {
    fn closed(&self) -> QueueingRow {
        QueueingRow {
            conversation: self.conversation.clone(),
            seq: self.seq,
            queue: self.queue.clone(),
            queued_at: self.queued_at,
            assigned_at: self.assigned_at,
            agent: self.agent.clone(),
            first_response_at: self.first_response_at,
        }
    }
}

record! {
    /// One hand-off to a human, with its reason: hand-offs by reason count these, not
    /// conversations.
    pub struct HandoffRow in "handoffs", key 2 {
        pub conversation: String,
        pub seq: i64,
        pub reason: String,
        pub at: i64,
    }
}

record! {
    /// An agent's name, so figures by agent can show it.
    pub struct AgentNameRow in "agent_names", key 1 {
        pub agent: String,
        pub name: String,
    }
}

record! {
    /// Which business line each queue serves, for conversations with no order in question,
    /// and the queue's name, for figures by queue.
    pub struct QueueLineRow in "queue_lines", key 1 {
        pub queue: String,
        pub business_line: String,
        pub name: String,
    }
}

#[derive(Default)]
pub struct StatsProjection;

impl Projection for StatsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> Vec<&'static TableDef> {
        vec![
            &FactRow::TABLE,
            &QueueLineRow::TABLE,
            &QueueingRow::TABLE,
            &OpenQueueingRow::TABLE,
            &HandoffRow::TABLE,
            &AgentNameRow::TABLE,
        ]
    }

    fn names(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        &[
            ("queue", "queue_lines", "queue"),
            ("agent", "agent_names", "agent"),
        ]
    }

    fn prefetch(&self, e: Envelope<'_>, want: &mut KeyRequests) {
        let event = match e.decoded {
            Event::Conversation(event) => event,
            Event::Queue(Q::QueueChanged(c)) if c.name.is_some() => {
                return want.want::<QueueLineRow>(e.entity());
            }
            _ => return,
        };
        match event {
            C::AgentAssigned(_) | C::AgentTurnRecorded(_) => {
                want.want::<OpenQueueingRow>(e.entity())
            }
            _ => {}
        }
        match event {
            // A start makes the fact; these change nothing in it.
            C::ConversationStarted(_)
            | C::EmotionAssessed(_)
            | C::InternalNoteAdded(_)
            | C::ConversationIdleTimedOut(_)
            | C::SurveyReminded(_)
            | C::SlaWarned(_)
            | C::ConversationEscalated(_) => return,
            C::RoutingDecided(r) => want.want::<QueueLineRow>(r.queue.to_string()),
            C::ConversationQueued(q) => want.want::<QueueLineRow>(q.queue.to_string()),
            _ => {}
        }
        want.want::<FactRow>(e.entity());
    }

    fn apply(&mut self, e: Envelope<'_>, rows: &mut RowSet) -> Result<(), ProjectionError> {
        let event = match e.decoded {
            Event::Queue(Q::QueueDefined(d)) => {
                return rows.put(QueueLineRow {
                    queue: e.entity().to_owned(),
                    business_line: seller(&d.business_line),
                    name: d.name.clone(),
                });
            }
            Event::Queue(Q::QueueChanged(c)) => {
                if let Some(name) = &c.name
                    && let Some(q) =
                        rows.get_mut::<QueueLineRow>(&[Val::Text(e.entity().to_owned())])?
                {
                    q.name = name.clone();
                }
                return Ok(());
            }
            Event::Agent(A::AgentRegistered(r)) => {
                return rows.put(AgentNameRow {
                    agent: e.entity().to_owned(),
                    name: r.name.clone(),
                });
            }
            Event::Conversation(event) => event,
            _ => return Ok(()),
        };
        if let C::ConversationStarted(s) = event {
            // kefu's own probes are not customers: no fact, so no figure counts them (and
            // their later events find no fact to change).
            if s.channel == kefu_domain::common::Channel::Probe {
                return Ok(());
            }
            return rows.put(FactRow {
                conversation: e.entity().to_owned(),
                customer: s.customer.to_string(),
                channel: code(&s.channel),
                business_line: s.order.as_ref().map(|o| seller(&o.seller)),
                started_at: ms(s.at),
                queue: None,
                agent: None,
                handed_off: false,
                handoff_reason: None,
                scenario_predicted: None,
                scenario_actual: None,
                scenario_matched: None,
                first_queued_at: None,
                first_response_at: None,
                closed_at: None,
                close_reason: None,
                survey_offered: false,
                survey_score: None,
                orders: 0,
                order_amount: 0,
                customer_turns: 0,
                bot_turns: 0,
                agent_turns: 0,
                reopened: 0,
                first_response_breaches: 0,
                resolution_breaches: 0,
                handoffs: 0,
                queueings: 0,
            });
        }
        // The queue a routing or queueing names, with the business line it serves (read
        // before the fact row is taken to change in place).
        let queue_line = match event {
            C::RoutingDecided(r) => Some(r.queue.to_string()),
            C::ConversationQueued(q) => Some(q.queue.to_string()),
            C::EmotionAssessed(_)
            | C::InternalNoteAdded(_)
            | C::ConversationIdleTimedOut(_)
            | C::SurveyReminded(_)
            | C::SlaWarned(_)
            | C::ConversationEscalated(_) => {
                return Ok(());
            }
            _ => None,
        }
        .map(|queue| {
            let line = rows
                .get::<QueueLineRow>(&[Val::Text(queue.clone())])?
                .map(|l| l.business_line);
            Ok::<_, ProjectionError>((queue, line))
        })
        .transpose()?;
        let Some(f) = rows.get_mut::<FactRow>(&[Val::Text(e.entity().to_owned())])? else {
            return Ok(());
        };
        let on_queue = |f: &mut FactRow| {
            if let Some((queue, line)) = queue_line {
                if f.business_line.is_none() {
                    f.business_line = line;
                }
                f.queue = Some(queue);
            }
        };
        // What the event does beyond the fact row, done once the row is put down.
        let mut then = Then::Nothing;
        let conversation = e.entity();
        match event {
            C::ConversationStarted(_) | C::AnswersSuggested(_) => {}
            C::CustomerTurnRecorded(_) => f.customer_turns += 1,
            C::BotTurnRecorded(_) => f.bot_turns += 1,
            C::AgentTurnRecorded(t) => {
                f.agent_turns += 1;
                if f.first_response_at.is_none() {
                    f.first_response_at = Some(ms(t.at));
                }
                then = Then::Replied(ms(t.at));
            }
            C::ScenarioPredicted(p) => {
                f.scenario_predicted = p.candidates.first().map(|c| c.scenario.to_string());
            }
            C::ScenarioConfirmed(c) => {
                f.scenario_actual = Some(c.scenario.to_string());
                f.scenario_matched = Some(true);
            }
            C::ScenarioCorrected(c) => {
                f.scenario_actual = Some(c.actual.to_string());
                f.scenario_matched = Some(false);
            }
            C::RoutingDecided(_) => on_queue(&mut *f),
            C::HandedToHuman(h) => {
                f.handed_off = true;
                f.handoffs += 1;
                if f.handoff_reason.is_none() {
                    f.handoff_reason = Some(code(&h.reason));
                }
                then = Then::Handoff(HandoffRow {
                    conversation: conversation.to_owned(),
                    seq: f.handoffs,
                    reason: code(&h.reason),
                    at: ms(h.at),
                });
            }
            C::ConversationQueued(q) => {
                on_queue(&mut *f);
                if f.first_queued_at.is_none() {
                    f.first_queued_at = Some(ms(q.at));
                }
                f.queueings += 1;
                then = Then::Queued(OpenQueueingRow {
                    conversation: conversation.to_owned(),
                    seq: f.queueings,
                    queue: q.queue.to_string(),
                    queued_at: ms(q.at),
                    assigned_at: None,
                    agent: None,
                    first_response_at: None,
                });
            }
            C::AgentAssigned(a) => {
                f.agent = Some(a.agent.to_string());
                f.queue = Some(a.queue.to_string());
                then = Then::Assigned(ms(a.at), a.agent.to_string());
            }
            C::ConversationTransferred(t) => {
                if let TransferredTo::Agent { agent } = &t.to {
                    f.agent = Some(agent.to_string());
                }
            }
            C::ConversationClosed(c) => {
                f.closed_at = Some(ms(c.at));
                f.close_reason = Some(code(&c.reason));
                then = Then::Closed;
            }
            C::ConversationReopened(_) => {
                // Open again: no longer closed, and resolved only when it closes again.
                f.reopened += 1;
                f.closed_at = None;
                f.close_reason = None;
            }
            C::SurveyOffered(_) => f.survey_offered = true,
            C::SurveyAnswered(s) => f.survey_score = Some(i64::from(s.score)),
            C::OrderAttributed(o) => {
                f.orders += 1;
                f.order_amount += o.amount.minor_units;
            }
            C::SlaBreached(b) => match b.kind {
                SlaKind::FirstResponse => f.first_response_breaches += 1,
                SlaKind::Resolution => f.resolution_breaches += 1,
            },
            C::EmotionAssessed(_)
            | C::InternalNoteAdded(_)
            | C::ConversationIdleTimedOut(_)
            | C::SurveyReminded(_)
            | C::SlaWarned(_)
            | C::ConversationEscalated(_) => {}
        }
        let key = [Val::Text(conversation.to_owned())];
        match then {
            Then::Nothing => {}
            Then::Handoff(h) => rows.put(h)?,
            Then::Queued(open) => {
                rows.put(open.closed())?;
                rows.put(open)?;
            }
            Then::Assigned(at, agent) => {
                if let Some(open) = rows.get_mut::<OpenQueueingRow>(&key)?
                    && open.assigned_at.is_none()
                {
                    open.assigned_at = Some(at);
                    open.agent = Some(agent);
                    let row = open.closed();
                    rows.put(row)?;
                }
            }
            Then::Replied(at) => {
                if let Some(open) = rows.get_mut::<OpenQueueingRow>(&key)?
                    && open.first_response_at.is_none()
                    && at >= open.queued_at
                {
                    open.first_response_at = Some(at);
                    let row = open.closed();
                    rows.put(row)?;
                }
            }
            // A reply after a reopen answers no queueing until the conversation queues again.
            Then::Closed => rows.delete::<OpenQueueingRow>(key.to_vec())?,
        }
        Ok(())
    }
}

/// What a conversation event does to the per-queueing and per-hand-off rows.
enum Then {
    Nothing,
    Handoff(HandoffRow),
    Queued(OpenQueueingRow),
    Assigned(i64, String),
    Replied(i64),
    Closed,
}

/// Which conversations the figures cover. Times are when the conversation started.
#[derive(Debug, Clone, Default)]
pub struct StatsFilter {
    /// The conversation's (last) queue; for the per-queueing figures (first response, wait),
    /// the queue of the queueing.
    pub queue: Option<String>,
    /// The conversation's agent; for the per-queueing figures, the agent who took the queueing.
    pub agent: Option<String>,
    /// `bot` (never handed to a human) or `human`.
    pub handled_by: Option<String>,
    pub scenario: Option<String>,
    pub channel: Option<String>,
    pub business_line: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// How to split the figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatsGroup {
    #[default]
    Total,
    Day,
    /// ISO weeks (Monday to Sunday), `2026-W48`.
    Week,
    /// Calendar months, `2026-11`.
    Month,
    Hour,
    Queue,
    Agent,
    HandledBy,
    Scenario,
    Channel,
    BusinessLine,
    HandoffReason,
}

/// Which table a statement groups: the per-conversation facts, the per-queueing rows (joined
/// to their facts) or the per-hand-off rows (joined likewise).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Over {
    Facts,
    Queueings,
    Handoffs,
}

impl StatsGroup {
    pub fn parse(s: &str) -> Result<Self, ProjectionError> {
        Ok(match s {
            "total" => StatsGroup::Total,
            "day" => StatsGroup::Day,
            "week" => StatsGroup::Week,
            "month" => StatsGroup::Month,
            "hour" => StatsGroup::Hour,
            "queue" => StatsGroup::Queue,
            "agent" => StatsGroup::Agent,
            "handled_by" => StatsGroup::HandledBy,
            "scenario" => StatsGroup::Scenario,
            "channel" => StatsGroup::Channel,
            "business_line" => StatsGroup::BusinessLine,
            "handoff_reason" => StatsGroup::HandoffReason,
            other => {
                return Err(ProjectionError::Invalid(format!(
                    "cannot group statistics by {other:?}: use total, day, week, month, hour, \
                     queue, agent, handled_by, scenario, channel, business_line or handoff_reason"
                )));
            }
        })
    }

    /// The SQL of the group's value. Weeks and months are grouped by day and merged here:
    /// neither SQLite nor PostgreSQL share a calendar function, and sums and the kept
    /// durations merge exactly.
    fn expr(self, over: Over) -> &'static str {
        match (self, over) {
            (StatsGroup::Total, _) => "CAST('all' AS TEXT)",
            (StatsGroup::Day | StatsGroup::Week | StatsGroup::Month, _) => {
                "CAST((f.started_at + $1) / 86400000 AS BIGINT)"
            }
            (StatsGroup::Hour, _) => "CAST((f.started_at + $1) / 3600000 AS BIGINT)",
            (StatsGroup::Queue, Over::Queueings) => "q.queue",
            (StatsGroup::Queue, _) => "f.queue",
            (StatsGroup::Agent, Over::Queueings) => "q.agent",
            (StatsGroup::Agent, _) => "f.agent",
            (StatsGroup::HandledBy, _) => "CASE WHEN f.handed_off = 1 THEN 'human' ELSE 'bot' END",
            (StatsGroup::Scenario, _) => "f.scenario_predicted",
            (StatsGroup::Channel, _) => "f.channel",
            (StatsGroup::BusinessLine, _) => "f.business_line",
            (StatsGroup::HandoffReason, Over::Handoffs) => "h.reason",
            (StatsGroup::HandoffReason, _) => "f.handoff_reason",
        }
    }

    /// The group's value as shown: a date `2026-11-20`, a week `2026-W47`, a month `2026-11`,
    /// an hour `2026-11-20T14`, or the text as stored.
    fn label(self, v: &Val) -> Option<String> {
        let day =
            |d: i64| DateTime::<Utc>::from_timestamp_millis(d * DAY_MS).map(|t| t.date_naive());
        match (self, v) {
            (StatsGroup::Day, Val::Int(d)) => day(*d).map(|d| d.format("%Y-%m-%d").to_string()),
            (StatsGroup::Week, Val::Int(d)) => day(*d).map(|d| {
                let w = d.iso_week();
                format!("{:04}-W{:02}", w.year(), w.week())
            }),
            (StatsGroup::Month, Val::Int(d)) => day(*d).map(|d| d.format("%Y-%m").to_string()),
            (StatsGroup::Hour, Val::Int(h)) => DateTime::<Utc>::from_timestamp_millis(h * HOUR_MS)
                .map(|t| t.format("%Y-%m-%dT%H").to_string()),
            (_, Val::Text(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

/// The figures for one group.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct StatsRow {
    /// The group's value (a date `2026-11-20`, a week `2026-W47`, a month `2026-11`, an hour
    /// `2026-11-20T14`, a queue id, …); None for conversations without one (no agent, no
    /// scenario).
    pub key: Option<String>,
    /// The queue's or agent's name, when grouped by queue or agent.
    pub name: Option<String>,
    pub conversations: i64,
    pub closed: i64,
    /// Closed without ever reaching a human.
    pub contained_by_bot: i64,
    /// Conversations handed to a human at least once. Grouped by hand-off reason: by the
    /// conversation's first reason.
    pub handed_off: i64,
    /// Hand-off events (a conversation handed over twice counts twice). Grouped by hand-off
    /// reason: the hand-offs with that reason, whatever the conversation's first one was.
    pub handoffs: i64,
    pub surveys_offered: i64,
    pub surveys_answered: i64,
    /// Answers with 4 or 5 stars.
    pub satisfied: i64,
    pub orders: i64,
    pub scenario_settled: i64,
    pub scenario_matched: i64,
    /// SLA targets breached, counted on the conversation's (last) queue.
    pub first_response_breaches: i64,
    pub resolution_breaches: i64,
    /// Survey answers per survey offered.
    pub response_rate: Option<f64>,
    /// Share of answers with 4 or 5 stars.
    pub csat: Option<f64>,
    pub mean_score: Option<f64>,
    /// Times conversations joined a queue (a reopened or transferred conversation queues
    /// again).
    pub queueings: i64,
    /// Queueings that had an agent reply after them: what the first-response figures cover.
    pub first_responses: i64,
    /// From each queueing to the first agent reply after it, seconds: mean, median, 90th
    /// percentile (nearest rank over the exact durations).
    pub first_response_secs: Option<f64>,
    pub first_response_median_secs: Option<f64>,
    pub first_response_p90_secs: Option<f64>,
    /// Queueings an agent took: what the wait figures cover.
    pub waits: i64,
    /// From each queueing to the agent taking it, seconds: mean, median, 90th percentile.
    pub wait_secs: Option<f64>,
    pub wait_median_secs: Option<f64>,
    pub wait_p90_secs: Option<f64>,
    /// From start to (last) close, seconds, over closed conversations: mean, median, 90th
    /// percentile.
    pub resolution_secs: Option<f64>,
    pub resolution_median_secs: Option<f64>,
    pub resolution_p90_secs: Option<f64>,
    /// Closed without a human per closed conversation.
    pub containment_rate: Option<f64>,
    pub scenario_match_rate: Option<f64>,
    /// Orders attributed per conversation.
    pub conversion: Option<f64>,
}

fn ratio(a: i64, b: i64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// The value at quantile `p` of `sorted` by nearest rank (the smallest value with at least
/// `p` of the values at or below it: PostgreSQL's `percentile_disc`), in seconds.
fn nearest_rank(sorted: &[i64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1] as f64 / 1000.0)
}

/// The mean, median and 90th percentile of durations in milliseconds, in seconds.
fn distribution(mut ms: Vec<i64>) -> (Option<f64>, Option<f64>, Option<f64>) {
    ms.sort_unstable();
    let mean = ratio(ms.iter().sum(), ms.len() as i64).map(|v| v / 1000.0);
    (mean, nearest_rank(&ms, 0.5), nearest_rank(&ms, 0.9))
}

/// One group's sums and kept durations, merged over the SQL groups that make it (the days of
/// a week).
#[derive(Default)]
struct Acc {
    counts: [i64; 16],
    first_response_ms: Vec<i64>,
    wait_ms: Vec<i64>,
    resolution_ms: Vec<i64>,
    queueings: i64,
    handoffs_by_reason: Option<i64>,
}

impl View {
    /// Figures for the conversations `filter` selects, split by `group`. Day, week, month and
    /// hour buckets are in the time zone `utc_offset` east of UTC (China: +8 h).
    pub async fn stats(
        &self,
        filter: &StatsFilter,
        group: StatsGroup,
        utc_offset: Duration,
    ) -> Result<Vec<StatsRow>, ProjectionError> {
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            return Err(ProjectionError::Invalid(format!(
                "the time range is empty: from {from} is after to {to}"
            )));
        }
        if let Some(h) = &filter.handled_by
            && h != "bot"
            && h != "human"
        {
            return Err(ProjectionError::Invalid(format!(
                "handled_by is {h:?}: use bot or human"
            )));
        }
        let facts = self.table::<FactRow>();
        let mut groups: std::collections::BTreeMap<Option<String>, Acc> = Default::default();

        // Per conversation: counts and sums.
        let (cond, params) = conditions(filter, utc_offset, Over::Facts);
        let sql = format!(
            "SELECT {key} AS k,
                CAST(COUNT(*) AS BIGINT),
                CAST(SUM(CASE WHEN f.closed_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN f.closed_at IS NOT NULL AND f.handed_off = 0 THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(f.handed_off) AS BIGINT),
                CAST(SUM(f.survey_offered) AS BIGINT),
                CAST(SUM(CASE WHEN f.survey_score IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN f.survey_score >= 4 THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(f.survey_score) AS BIGINT),
                CAST(SUM(f.handoffs) AS BIGINT),
                CAST(SUM(f.queueings) AS BIGINT),
                CAST(0 AS BIGINT),
                CAST(SUM(CASE WHEN f.scenario_matched IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN f.scenario_matched = 1 THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(f.orders) AS BIGINT),
                CAST(SUM(f.first_response_breaches) AS BIGINT),
                CAST(SUM(f.resolution_breaches) AS BIGINT)
             FROM {facts} f {filter} GROUP BY k",
            key = group.expr(Over::Facts),
            filter = where_clause(&cond),
        );
        for r in self.rows(&sql, params).await? {
            let a = groups
                .entry(r.first().and_then(|v| group.label(v)))
                .or_default();
            for (i, c) in a.counts.iter_mut().enumerate() {
                *c += r.get(i + 1).and_then(Val::as_i64).unwrap_or(0);
            }
        }

        // Per closed conversation: how long it took.
        let (mut cond, params) = conditions(filter, utc_offset, Over::Facts);
        cond.push("f.closed_at IS NOT NULL".into());
        let sql = format!(
            "SELECT {key} AS k, f.closed_at - f.started_at FROM {facts} f {filter}",
            key = group.expr(Over::Facts),
            filter = where_clause(&cond),
        );
        for r in self.rows(&sql, params).await? {
            let a = groups
                .entry(r.first().and_then(|v| group.label(v)))
                .or_default();
            if let Some(d) = r.get(1).and_then(Val::as_i64) {
                a.resolution_ms.push(d);
            }
        }

        // Per queueing: the first response and the wait.
        let (cond, params) = conditions(filter, utc_offset, Over::Queueings);
        let sql = format!(
            "SELECT {key} AS k, q.queued_at, q.assigned_at, q.first_response_at
             FROM {queueings} q JOIN {facts} f ON f.conversation = q.conversation {filter}",
            key = group.expr(Over::Queueings),
            queueings = self.table::<QueueingRow>(),
            filter = where_clause(&cond),
        );
        for r in self.rows(&sql, params).await? {
            let a = groups
                .entry(r.first().and_then(|v| group.label(v)))
                .or_default();
            a.queueings += 1;
            let at = |i: usize| r.get(i).and_then(Val::as_i64);
            if let Some(queued) = at(1) {
                if let Some(taken) = at(2) {
                    a.wait_ms.push(taken - queued);
                }
                if let Some(replied) = at(3) {
                    a.first_response_ms.push(replied - queued);
                }
            }
        }

        // Per hand-off, when the hand-offs are what is split: each counts under its own reason.
        if group == StatsGroup::HandoffReason {
            let (cond, params) = conditions(filter, utc_offset, Over::Handoffs);
            let sql = format!(
                "SELECT h.reason AS k, CAST(COUNT(*) AS BIGINT)
                 FROM {handoffs} h JOIN {facts} f ON f.conversation = h.conversation {filter}
                 GROUP BY k",
                handoffs = self.table::<HandoffRow>(),
                filter = where_clause(&cond),
            );
            for r in self.rows(&sql, params).await? {
                let a = groups
                    .entry(r.first().and_then(|v| group.label(v)))
                    .or_default();
                a.handoffs_by_reason = Some(r.get(1).and_then(Val::as_i64).unwrap_or(0));
            }
        }

        let names = self.names(group).await?;
        Ok(groups
            .into_iter()
            .map(|(key, a)| {
                let n = |i: usize| a.counts[i];
                let (conversations, closed, contained) = (n(0), n(1), n(2));
                let (offered, answered, satisfied) = (n(4), n(5), n(6));
                let (settled, matched, orders) = (n(11), n(12), n(13));
                let (first_responses, waits) =
                    (a.first_response_ms.len() as i64, a.wait_ms.len() as i64);
                let fr = distribution(a.first_response_ms);
                let wait = distribution(a.wait_ms);
                let res = distribution(a.resolution_ms);
                StatsRow {
                    name: key.as_ref().and_then(|k| names.get(k).cloned()),
                    key,
                    conversations,
                    closed,
                    contained_by_bot: contained,
                    handed_off: n(3),
                    handoffs: a.handoffs_by_reason.unwrap_or(n(8)),
                    surveys_offered: offered,
                    surveys_answered: answered,
                    satisfied,
                    orders,
                    scenario_settled: settled,
                    scenario_matched: matched,
                    first_response_breaches: n(14),
                    resolution_breaches: n(15),
                    response_rate: ratio(answered, offered),
                    csat: ratio(satisfied, answered),
                    mean_score: ratio(n(7), answered),
                    queueings: a.queueings,
                    first_responses,
                    first_response_secs: fr.0,
                    first_response_median_secs: fr.1,
                    first_response_p90_secs: fr.2,
                    waits,
                    wait_secs: wait.0,
                    wait_median_secs: wait.1,
                    wait_p90_secs: wait.2,
                    resolution_secs: res.0,
                    resolution_median_secs: res.1,
                    resolution_p90_secs: res.2,
                    containment_rate: ratio(contained, closed),
                    scenario_match_rate: ratio(matched, settled),
                    conversion: ratio(orders, conversations),
                }
            })
            .collect())
    }

    /// Queue or agent names by id, for figures grouped by queue or agent.
    async fn names(
        &self,
        group: StatsGroup,
    ) -> Result<std::collections::HashMap<String, String>, ProjectionError> {
        let sql = match group {
            StatsGroup::Queue => {
                format!("SELECT queue, name FROM {}", self.table::<QueueLineRow>())
            }
            StatsGroup::Agent => {
                format!("SELECT agent, name FROM {}", self.table::<AgentNameRow>())
            }
            _ => return Ok(Default::default()),
        };
        Ok(self
            .rows(&sql, vec![])
            .await?
            .into_iter()
            .filter_map(|r| {
                Some((
                    r.first()?.as_str()?.to_owned(),
                    r.get(1)?.as_str()?.to_owned(),
                ))
            })
            .collect())
    }
}

/// The `WHERE` conditions and parameters of `filter` for a statement over `over`. `$1` is the
/// time zone offset the day and hour buckets use, bound (and referenced) in every statement so
/// the numbering is fixed.
fn conditions(filter: &StatsFilter, utc_offset: Duration, over: Over) -> (Vec<String>, Vec<Val>) {
    let mut params: Vec<Val> = vec![utc_offset.num_milliseconds().into()];
    let mut cond = Vec::new();
    let per_queueing = over == Over::Queueings;
    for (col, v) in [
        (
            if per_queueing { "q.queue" } else { "f.queue" },
            &filter.queue,
        ),
        (
            if per_queueing { "q.agent" } else { "f.agent" },
            &filter.agent,
        ),
        ("f.scenario_predicted", &filter.scenario),
        ("f.channel", &filter.channel),
        ("f.business_line", &filter.business_line),
    ] {
        if let Some(v) = v {
            params.push(v.clone().into());
            cond.push(format!("{col} = ${}", params.len()));
        }
    }
    match filter.handled_by.as_deref() {
        Some("bot") => cond.push("f.handed_off = 0".into()),
        Some(_) => cond.push("f.handed_off = 1".into()),
        None => {}
    }
    if let Some(from) = filter.from {
        params.push(ms(from).into());
        cond.push(format!("f.started_at >= ${}", params.len()));
    }
    if let Some(to) = filter.to {
        params.push(ms(to).into());
        cond.push(format!("f.started_at < ${}", params.len()));
    }
    // Keeps $1 referenced in every statement, which PostgreSQL needs to type it.
    cond.push("CAST($1 AS BIGINT) = CAST($1 AS BIGINT)".into());
    (cond, params)
}
