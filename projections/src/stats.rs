//! Satisfaction and service statistics.
//!
//! The projection keeps one fact row per conversation (its dimensions: day, queue, agent,
//! bot or human, predicted scenario, channel, business line; and its measures: survey, first
//! response, resolution, containment, scenario match, orders, hand-off reason). Figures are
//! aggregated from the facts when asked, with whatever filter and grouping the dashboard
//! wants: precomputing every combination of seven dimensions would be a cube far larger than
//! the facts themselves.

use chrono::{DateTime, Duration, Utc};
use kefu_domain::conversation::{ConversationEvent as C, SlaKind, TransferredTo};
use kefu_domain::queue::QueueEvent as Q;

use crate::error::ProjectionError;
use crate::record;
use crate::rows::{KeyRequests, RowSet};
use crate::runner::{Decoded, Envelope, Projection};
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
    }
    indexes: [["started_at"], ["queue", "started_at"], ["agent", "started_at"]]
}

record! {
    /// Which business line each queue serves, for conversations with no order in question.
    pub struct QueueLineRow in "queue_lines", key 1 {
        pub queue: String,
        pub business_line: String,
    }
}

#[derive(Default)]
pub struct StatsProjection;

impl Projection for StatsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> Vec<&'static TableDef> {
        vec![&FactRow::TABLE, &QueueLineRow::TABLE]
    }

    fn prefetch(&self, e: Envelope<'_>, want: &mut KeyRequests) {
        let Decoded::Conversation(event) = e.decoded else {
            return;
        };
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
            Decoded::Queue(Q::QueueDefined(d)) => {
                return rows.put(QueueLineRow {
                    queue: e.entity().to_owned(),
                    business_line: seller(&d.business_line),
                });
            }
            Decoded::Conversation(event) => event,
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
        match event {
            C::ConversationStarted(_) => {}
            C::CustomerTurnRecorded(_) => f.customer_turns += 1,
            C::BotTurnRecorded(_) => f.bot_turns += 1,
            C::AgentTurnRecorded(t) => {
                f.agent_turns += 1;
                if f.first_response_at.is_none() {
                    f.first_response_at = Some(ms(t.at));
                }
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
                if f.handoff_reason.is_none() {
                    f.handoff_reason = Some(code(&h.reason));
                }
            }
            C::ConversationQueued(q) => {
                on_queue(&mut *f);
                if f.first_queued_at.is_none() {
                    f.first_queued_at = Some(ms(q.at));
                }
            }
            C::AgentAssigned(a) => {
                f.agent = Some(a.agent.to_string());
                f.queue = Some(a.queue.to_string());
            }
            C::ConversationTransferred(t) => {
                if let TransferredTo::Agent { agent } = &t.to {
                    f.agent = Some(agent.to_string());
                }
            }
            C::ConversationClosed(c) => {
                f.closed_at = Some(ms(c.at));
                f.close_reason = Some(code(&c.reason));
            }
            C::ConversationReopened(_) => f.reopened += 1,
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
        Ok(())
    }
}

/// Which conversations the figures cover. Times are when the conversation started.
#[derive(Debug, Clone, Default)]
pub struct StatsFilter {
    pub queue: Option<String>,
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
    Hour,
    Queue,
    Agent,
    HandledBy,
    Scenario,
    Channel,
    BusinessLine,
    HandoffReason,
}

impl StatsGroup {
    pub fn parse(s: &str) -> Result<Self, ProjectionError> {
        Ok(match s {
            "total" => StatsGroup::Total,
            "day" => StatsGroup::Day,
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
                    "cannot group statistics by {other:?}: use total, day, hour, queue, agent, \
                     handled_by, scenario, channel, business_line or handoff_reason"
                )));
            }
        })
    }

    fn expr(self) -> &'static str {
        match self {
            StatsGroup::Total => "CAST('all' AS TEXT)",
            StatsGroup::Day => "CAST((started_at + $1) / 86400000 AS BIGINT)",
            StatsGroup::Hour => "CAST((started_at + $1) / 3600000 AS BIGINT)",
            StatsGroup::Queue => "queue",
            StatsGroup::Agent => "agent",
            StatsGroup::HandledBy => "CASE WHEN handed_off = 1 THEN 'human' ELSE 'bot' END",
            StatsGroup::Scenario => "scenario_predicted",
            StatsGroup::Channel => "channel",
            StatsGroup::BusinessLine => "business_line",
            StatsGroup::HandoffReason => "handoff_reason",
        }
    }
}

/// The figures for one group.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct StatsRow {
    /// The group's value (a date `2026-11-20`, an hour `2026-11-20T14`, a queue id, …);
    /// None for conversations without one (no agent, no scenario).
    pub key: Option<String>,
    pub conversations: i64,
    pub closed: i64,
    /// Closed without ever reaching a human.
    pub contained_by_bot: i64,
    pub handed_off: i64,
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
    /// From first joining a queue to the first agent reply, seconds.
    pub first_response_secs: Option<f64>,
    /// From start to close, seconds.
    pub resolution_secs: Option<f64>,
    /// Closed without a human per closed conversation.
    pub containment_rate: Option<f64>,
    pub scenario_match_rate: Option<f64>,
    /// Orders attributed per conversation.
    pub conversion: Option<f64>,
}

fn ratio(a: i64, b: i64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

impl View {
    /// Figures for the conversations `filter` selects, split by `group`. Day and hour buckets
    /// are in the time zone `utc_offset` east of UTC (China: +8 h).
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
        let offset_ms = utc_offset.num_milliseconds();
        // $1 is the offset, used by the day and hour buckets; always bound so numbering is fixed.
        let mut params: Vec<Val> = vec![offset_ms.into()];
        let mut cond = Vec::new();
        for (col, v) in [
            ("queue", &filter.queue),
            ("agent", &filter.agent),
            ("scenario_predicted", &filter.scenario),
            ("channel", &filter.channel),
            ("business_line", &filter.business_line),
        ] {
            if let Some(v) = v {
                params.push(v.clone().into());
                cond.push(format!("{col} = ${}", params.len()));
            }
        }
        match filter.handled_by.as_deref() {
            Some("bot") => cond.push("handed_off = 0".into()),
            Some(_) => cond.push("handed_off = 1".into()),
            None => {}
        }
        if let Some(from) = filter.from {
            params.push(ms(from).into());
            cond.push(format!("started_at >= ${}", params.len()));
        }
        if let Some(to) = filter.to {
            params.push(ms(to).into());
            cond.push(format!("started_at < ${}", params.len()));
        }
        // Keeps $1 referenced in every statement, which PostgreSQL needs to type it.
        cond.push("CAST($1 AS BIGINT) = CAST($1 AS BIGINT)".into());
        let sql = format!(
            "SELECT {key} AS k,
                CAST(COUNT(*) AS BIGINT),
                CAST(SUM(CASE WHEN closed_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN closed_at IS NOT NULL AND handed_off = 0 THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(handed_off) AS BIGINT),
                CAST(SUM(survey_offered) AS BIGINT),
                CAST(SUM(CASE WHEN survey_score IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN survey_score >= 4 THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(survey_score) AS BIGINT),
                CAST(SUM(first_response_at - first_queued_at) AS BIGINT),
                CAST(SUM(CASE WHEN first_response_at IS NOT NULL AND first_queued_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(closed_at - started_at) AS BIGINT),
                CAST(SUM(CASE WHEN scenario_matched IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN scenario_matched = 1 THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(orders) AS BIGINT),
                CAST(SUM(first_response_breaches) AS BIGINT),
                CAST(SUM(resolution_breaches) AS BIGINT)
             FROM {table} {filter} GROUP BY k ORDER BY k",
            key = group.expr(),
            table = self.table::<FactRow>(),
            filter = where_clause(&cond),
        );
        let rows = self.rows(&sql, params).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let n = |i: usize| r.get(i).and_then(Val::as_i64).unwrap_or(0);
                let key = match (group, r.first()) {
                    (StatsGroup::Day, Some(Val::Int(d))) => {
                        DateTime::<Utc>::from_timestamp_millis(d * DAY_MS)
                            .map(|t| t.format("%Y-%m-%d").to_string())
                    }
                    (StatsGroup::Hour, Some(Val::Int(h))) => {
                        DateTime::<Utc>::from_timestamp_millis(h * HOUR_MS)
                            .map(|t| t.format("%Y-%m-%dT%H").to_string())
                    }
                    (_, Some(Val::Text(s))) => Some(s.clone()),
                    _ => None,
                };
                let conversations = n(1);
                let closed = n(2);
                let contained = n(3);
                let offered = n(5);
                let answered = n(6);
                let satisfied = n(7);
                let responded = n(10);
                let settled = n(12);
                let matched = n(13);
                let orders = n(14);
                StatsRow {
                    key,
                    conversations,
                    closed,
                    contained_by_bot: contained,
                    handed_off: n(4),
                    surveys_offered: offered,
                    surveys_answered: answered,
                    satisfied,
                    orders,
                    scenario_settled: settled,
                    scenario_matched: matched,
                    first_response_breaches: n(15),
                    resolution_breaches: n(16),
                    response_rate: ratio(answered, offered),
                    csat: ratio(satisfied, answered),
                    mean_score: ratio(n(8), answered),
                    first_response_secs: ratio(n(9), responded).map(|v| v / 1000.0),
                    resolution_secs: ratio(n(11), closed).map(|v| v / 1000.0),
                    containment_rate: ratio(contained, closed),
                    scenario_match_rate: ratio(matched, settled),
                    conversion: ratio(orders, conversations),
                }
            })
            .collect())
    }
}
