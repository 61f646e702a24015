//! `whatIf`: the what-if replay (`kefu_whatif`, as `kefu whatif` runs it) for analysts,
//! supervisors and admins. One replay at a time per server: it reads the whole log and
//! replays the window several times, on a blocking thread so the server's own tasks go on.

use async_graphql::{Context, InputObject, SimpleObject};
use chrono::{DateTime, Duration, Utc};
use kefu_domain::ids::QueueId;
use kefu_whatif::people::StaffChange;
use kefu_whatif::report::{METRICS, ReportRow};
use kefu_whatif::{History, Report, Settings, WhatIfError, Window};

use super::policy::{self, Root, require};
use super::{ApiError, api, caller, uuid};
use crate::auth::Role;

/// Longest window a replay covers.
const MAX_WINDOW_DAYS: i64 = 31;
const MAX_SEEDS: i32 = 5;

/// What to change in the replay; give at least one.
#[derive(InputObject, Debug, Clone, Default)]
pub struct WhatIfChange {
    /// The bot answers at or above this confidence (0 to 1). Analysts and admins only.
    pub answer_threshold: Option<f64>,
    /// Below this confidence (and the answer threshold) a person takes over. Analysts and
    /// admins only.
    pub clarify_threshold: Option<f64>,
    /// Agents added to queues, or recorded agents kept away.
    #[graphql(default)]
    pub agents: Vec<WhatIfAgents>,
    /// First-response targets in place of the queues' own.
    #[graphql(default)]
    pub first_response: Vec<WhatIfTarget>,
    /// Queues (ids) retired for the window: triage routes their chats to the other queues by
    /// its own rules. Analysts and admins only.
    #[graphql(default)]
    pub retire_queues: Vec<String>,
}

/// Agents added to a queue (with its skills), or, with a negative count, recorded agents
/// with its skills kept away all window.
#[derive(InputObject, Debug, Clone)]
pub struct WhatIfAgents {
    /// The queue's id.
    pub queue: String,
    /// -1000 to 1000, not 0.
    pub count: i32,
    /// Chats each added agent takes at once, 1 to 50.
    #[graphql(default = 2)]
    pub seats: i32,
    /// The added agents' daily shift, UTC hours (from 0 to 23, to 1 to 24); both or
    /// neither. Without one they are on all window.
    pub shift_from_hour: Option<i32>,
    pub shift_to_hour: Option<i32>,
}

/// A queue's first-response target, seconds (1 to a week).
#[derive(InputObject, Debug, Clone)]
pub struct WhatIfTarget {
    pub queue: String,
    pub secs: i32,
}

/// One figure of one row: the record, the means over seeds of the unchanged replay and of
/// the change, and the change seed by seed (mean and standard deviation).
#[derive(SimpleObject, Debug, Clone)]
pub struct WhatIfMetric {
    /// chats, contained, containment, handed_off, bot_answers, assigned, abandoned,
    /// wait_mean_secs, wait_max_secs, sla_breaches or csat.
    pub name: String,
    pub recorded: Option<f64>,
    pub baseline: Option<f64>,
    pub changed: Option<f64>,
    pub change: Option<f64>,
    pub change_sd: Option<f64>,
}

/// The chats of one hour (UTC, by their recorded start; "all": the window) and queue (by
/// name; "all": every chat, kept by the bot or not).
#[derive(SimpleObject, Debug, Clone)]
pub struct WhatIfRow {
    pub hour: String,
    pub queue: String,
    pub metrics: Vec<WhatIfMetric>,
}

/// How far the unchanged replay came out from the record (replay minus record, whole
/// window, mean over seeds).
#[derive(SimpleObject, Debug, Clone)]
pub struct WhatIfDeviation {
    pub chats_differ: i32,
    pub chats_differ_share: f64,
    pub wait_mean_secs: f64,
    pub sla_breaches: f64,
    pub assigned: f64,
    pub abandoned: f64,
    pub other_agent: f64,
}

/// Chats assigned to an agent: recorded, and the mean over seeds of each replay.
#[derive(SimpleObject, Debug, Clone)]
pub struct WhatIfAgentLoad {
    pub agent: String,
    pub name: String,
    pub recorded: i32,
    pub baseline: f64,
    pub changed: f64,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct WhatIfReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub chats: i32,
    pub seeds: i32,
    /// Whether the unchanged replay is close enough to the record to believe the change,
    /// by `tolerance`.
    pub within_tolerance: bool,
    pub tolerance: String,
    pub baseline_off: WhatIfDeviation,
    /// Where the behaviour models' numbers came from, in words.
    pub models: String,
    /// Left out for a supervisor: agents outside their queues are not theirs to see.
    pub agents: Vec<WhatIfAgentLoad>,
    pub rows: Vec<WhatIfRow>,
}

fn bad(message: String) -> ApiError {
    ApiError::Validation(message)
}

fn from_whatif(e: WhatIfError) -> ApiError {
    match e {
        WhatIfError::EmptyWindow { .. } | WhatIfError::BadChange { .. } => bad(e.to_string()),
        other => {
            tracing::error!(error = %other, "a what-if replay failed");
            ApiError::Unavailable(format!("the replay failed: {other}"))
        }
    }
}

fn threshold(field: &str, value: Option<f64>, default: f64) -> Result<f64, ApiError> {
    match value {
        None => Ok(default),
        Some(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Some(v) => Err(bad(format!("{field}: {v} is not a confidence from 0 to 1"))),
    }
}

pub async fn run(
    ctx: &Context<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    change: WhatIfChange,
    seeds: i32,
) -> async_graphql::Result<WhatIfReport> {
    let (api, caller) = (api(ctx), caller(ctx)?);
    require(caller, Root::Query, "whatIf")?;
    let window = Window::new(from, to).map_err(from_whatif)?;
    if to - from > Duration::days(MAX_WINDOW_DAYS) {
        return Err(bad(format!(
            "to: the window is longer than {MAX_WINDOW_DAYS} days"
        ))
        .into());
    }
    if !(1..=MAX_SEEDS).contains(&seeds) {
        return Err(bad(format!("seeds: {seeds} is not 1 to {MAX_SEEDS}")).into());
    }
    let supervisor = caller.principal.role == Role::Supervisor;
    if supervisor
        && (change.answer_threshold.is_some()
            || change.clarify_threshold.is_some()
            || !change.retire_queues.is_empty())
    {
        return Err(ApiError::Forbidden(
            "the bot's thresholds and the routing are the whole shop's: a supervisor changes agents and targets of their queues".into(),
        )
        .into());
    }
    let baseline = Settings::from_thresholds(api.bot_thresholds);
    let mut changed = Settings {
        answer_threshold: threshold(
            "answerThreshold",
            change.answer_threshold,
            baseline.answer_threshold,
        )?,
        clarify_threshold: threshold(
            "clarifyThreshold",
            change.clarify_threshold,
            baseline.clarify_threshold,
        )?,
        ..Default::default()
    };
    if changed.clarify_threshold > changed.answer_threshold {
        return Err(bad(format!(
            "clarifyThreshold: {} is above the answer threshold {}",
            changed.clarify_threshold, changed.answer_threshold
        ))
        .into());
    }
    let queue_ids: Vec<QueueId> = change
        .agents
        .iter()
        .map(|a| a.queue.as_str())
        .chain(change.first_response.iter().map(|t| t.queue.as_str()))
        .chain(change.retire_queues.iter().map(String::as_str))
        .map(|q| uuid("queue", q).map(QueueId::from_uuid))
        .collect::<Result<_, _>>()?;
    for q in &queue_ids {
        policy::require_queue_unless_analyst(caller, *q)?;
    }
    if changed == baseline && queue_ids.is_empty() {
        return Err(bad(
            "change: nothing to change; give a threshold, agents or a first-response target".into(),
        )
        .into());
    }
    // One at a time: a replay holds the whole log in memory.
    let permit = api.whatif.clone().try_acquire_owned().map_err(|_| {
        ApiError::Unavailable(
            "a what-if replay is already running on this server; ask again when it has ended"
                .into(),
        )
    })?;
    let history = History::read(&*api.log, window)
        .await
        .map_err(from_whatif)?;
    if history.chats.is_empty() {
        return Err(bad(format!(
            "no chat started between {from} and {to}: nothing to replay"
        ))
        .into());
    }
    let name_of = |q: &str| -> Result<String, ApiError> {
        let id = QueueId::from_uuid(uuid("queue", q)?);
        history
            .queues
            .get(&id)
            .map(|i| i.name.clone())
            .ok_or_else(|| bad(format!("queue: {q} is not a queue of the record")))
    };
    let whole = |n: i32, field: &str| {
        u32::try_from(n).map_err(|_| bad(format!("agents: {field} {n} is negative")))
    };
    for a in &change.agents {
        let shift = match (a.shift_from_hour, a.shift_to_hour) {
            (None, None) => None,
            (Some(f), Some(t)) => Some((whole(f, "shiftFromHour")?, whole(t, "shiftToHour")?)),
            _ => {
                return Err(bad(
                    "agents: give both shiftFromHour and shiftToHour, or neither".into(),
                )
                .into());
            }
        };
        let seats = if a.count > 0 {
            Some(whole(a.seats, "seats")?)
        } else {
            None
        };
        let queue = name_of(&a.queue)?;
        let staff = StaffChange::new(&queue, a.count, seats, shift)
            .map_err(|reason| bad(format!("agents: {queue} {}: {reason}", a.count)))?;
        changed.staff.push(staff);
    }
    for t in &change.first_response {
        if !(1..=7 * 24 * 3600).contains(&t.secs) {
            return Err(bad(format!(
                "firstResponse: {} seconds is not from 1 to a week",
                t.secs
            ))
            .into());
        }
        changed
            .first_response_secs
            .insert(name_of(&t.queue)?, i64::from(t.secs));
    }
    for q in &change.retire_queues {
        changed.retired_queues.push(name_of(q)?);
    }
    changed.check(&history).map_err(from_whatif)?;
    let mine: Option<Vec<String>> = supervisor.then(|| {
        caller
            .principal
            .queues
            .iter()
            .filter_map(|q| name_of(q).ok())
            .collect()
    });
    let seeds: Vec<u64> = (1..=seeds as u64).collect();
    let report = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        Report::run(&history, baseline, changed, &seeds)
    })
    .await
    .map_err(|e| ApiError::Unavailable(format!("the replay stopped: {e}")))?
    .map_err(from_whatif)?;
    Ok(view(&report, mine.as_deref()))
}

fn metrics(row: &ReportRow) -> Vec<WhatIfMetric> {
    METRICS
        .iter()
        .map(|(name, metric)| {
            let [recorded, baseline, changed, change, change_sd] = row.compare(*metric);
            WhatIfMetric {
                name: (*name).to_owned(),
                recorded,
                baseline,
                changed,
                change,
                change_sd,
            }
        })
        .collect()
}

/// The report as the caller may see it: a supervisor gets their queues' rows only, and no
/// per-agent loads or whole-shop rows.
fn view(report: &Report, mine: Option<&[String]>) -> WhatIfReport {
    let visible = |queue: &str| mine.is_none_or(|m| m.iter().any(|q| q == queue));
    let m = &report.models;
    let off = &report.baseline_off;
    WhatIfReport {
        from: report.window.from,
        to: report.window.to,
        chats: i32::try_from(report.chats).unwrap_or(i32::MAX),
        seeds: i32::try_from(report.seeds.len()).unwrap_or(i32::MAX),
        within_tolerance: report.within_tolerance,
        tolerance: report.tolerance.to_owned(),
        baseline_off: WhatIfDeviation {
            chats_differ: i32::try_from(off.chats_differ).unwrap_or(i32::MAX),
            chats_differ_share: off.chats_differ_share,
            wait_mean_secs: off.wait_mean_secs,
            sla_breaches: off.sla_breaches,
            assigned: off.assigned,
            abandoned: off.abandoned,
            other_agent: off.other_agent,
        },
        models: format!(
            "agents' handling: {} recorded assignments, each chat's own replayed and the others drawn by queue and hour; customers' patience: Kaplan-Meier over {} recorded queueings, {} left; survey answers: {} recorded",
            m.handling_segments, m.patience_queueings, m.patience_left, m.surveys
        ),
        agents: if mine.is_some() {
            Vec::new()
        } else {
            report
                .agents
                .iter()
                .map(|a| WhatIfAgentLoad {
                    agent: a.agent.clone(),
                    name: a.name.clone(),
                    recorded: i32::try_from(a.recorded).unwrap_or(i32::MAX),
                    baseline: a.baseline,
                    changed: a.changed,
                })
                .collect()
        },
        rows: report
            .rows
            .iter()
            .filter(|r| visible(&r.queue))
            .map(|r| WhatIfRow {
                hour: r.hour.clone(),
                queue: r.queue.clone(),
                metrics: metrics(r),
            })
            .collect(),
    }
}
