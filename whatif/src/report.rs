//! The report a supervisor reads: the record, the unchanged replay (the baseline: how far it
//! is off, and whether within [`TOLERANCE`]) and the change, per queue and hour of the chats'
//! recorded start, each replay over several seeds (the mean, and the spread of the change).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use kefu_domain::conversation::HandoffReason;
use kefu_domain::ids::{AgentId, ConversationId, QueueId};
use serde::Serialize;

use crate::{History, Outcome, Replayed, Settings, WhatIfError, Window, replay};

/// When an unchanged replay is close enough to the record to believe a change read against
/// it. Checked on the whole window ([`Report::within_tolerance`]).
pub const TOLERANCE: &str = "at most 5% of chats handed over differently; the mean wait for an agent within 30 s or 10% of the record's; SLA breaches, chats assigned and customers who left the queue each within 1 or 5% of the chats queued";

/// One run's figures for the chats of one hour and queue (`queue` "all": every chat of the
/// hour, kept by the bot or not; `hour` "all": the whole window).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub hour: String,
    pub queue: String,
    pub chats: usize,
    /// Never handed to a person.
    pub kept: usize,
    /// Kept, and served at least one knowledge-base answer: what the bot resolved, as far as
    /// a replay can tell.
    pub contained: usize,
    pub handed_off: usize,
    pub by_reason: BTreeMap<String, usize>,
    pub bot_answers: usize,
    /// Waited in a queue; of those, taken by an agent, and left by the customer first.
    pub queued: usize,
    pub assigned: usize,
    pub abandoned: usize,
    /// The first wait for an agent, summed and at most, over the chats assigned.
    pub wait_total_secs: i64,
    pub wait_max_secs: i64,
    /// First responses that missed the target.
    pub sla_breaches: usize,
    pub surveys: usize,
    pub survey_score_total: u64,
}

impl Figures {
    fn new(hour: &str, queue: &str) -> Self {
        Figures {
            hour: hour.to_owned(),
            queue: queue.to_owned(),
            ..Default::default()
        }
    }

    /// The share of chats the bot contained.
    pub fn containment(&self) -> f64 {
        share(self.contained, self.chats)
    }

    pub fn wait_mean_secs(&self) -> Option<f64> {
        (self.assigned > 0).then(|| self.wait_total_secs as f64 / self.assigned as f64)
    }

    /// The mean survey score (1 to 5).
    pub fn csat(&self) -> Option<f64> {
        (self.surveys > 0).then(|| self.survey_score_total as f64 / self.surveys as f64)
    }

    fn add(&mut self, o: &Outcome, breached: Option<bool>) {
        self.chats += 1;
        self.bot_answers += o.bot_answers;
        match o.handed_off {
            Some(reason) => {
                self.handed_off += 1;
                *self.by_reason.entry(reason_name(reason)).or_default() += 1;
            }
            None => {
                self.kept += 1;
                self.contained += usize::from(o.bot_answers > 0);
            }
        }
        if o.queued_at.is_some() {
            self.queued += 1;
            self.abandoned += usize::from(o.abandoned);
        }
        if let Some(wait) = o.first_wait_secs {
            self.assigned += 1;
            self.wait_total_secs += wait;
            self.wait_max_secs = self.wait_max_secs.max(wait);
        }
        self.sla_breaches += usize::from(breached == Some(true));
        if let Some(score) = o.survey_score {
            self.surveys += 1;
            self.survey_score_total += u64::from(score);
        }
    }
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn reason_name(reason: HandoffReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{reason:?}"))
}

/// The hour a chat started, as `2026-03-02T09:00Z`.
fn hour_of(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%dT%H:00Z").to_string())
        .unwrap_or_default()
}

/// One run's figures, by (hour, queue): every hour and "all", every queue a chat waited in
/// and "all". Chats go by their recorded start; a chat's queue is the one it waited in first
/// in this run. `targets`: first-response targets by queue in place of the recorded
/// deadlines.
pub fn figures(
    history: &History,
    outcomes: &BTreeMap<ConversationId, Outcome>,
    targets: &BTreeMap<QueueId, i64>,
) -> BTreeMap<(String, String), Figures> {
    let mut out: BTreeMap<(String, String), Figures> = BTreeMap::new();
    let all = "all".to_owned();
    for chat in &history.chats {
        let hour = hour_of(history.recorded.get(chat).and_then(|o| o.started_at));
        let o = outcomes.get(chat).cloned().unwrap_or_default();
        let breached = o.breached(o.queue.and_then(|q| targets.get(&q).copied()));
        let queue = o.queue.map(|q| {
            history
                .queues
                .get(&q)
                .map_or_else(|| q.to_string(), |i| i.name.clone())
        });
        let mut keys = vec![(hour.clone(), all.clone()), (all.clone(), all.clone())];
        if let Some(queue) = queue {
            keys.push((hour.clone(), queue.clone()));
            keys.push((all.clone(), queue));
        }
        for key in keys {
            out.entry(key.clone())
                .or_insert_with(|| Figures::new(&key.0, &key.1))
                .add(&o, breached);
        }
    }
    out
}

/// The chats whose hand-off (or not) and reason differ between two runs.
pub fn differing(
    chats: &[ConversationId],
    a: &BTreeMap<ConversationId, Outcome>,
    b: &BTreeMap<ConversationId, Outcome>,
) -> usize {
    chats
        .iter()
        .filter(|c| a.get(c).map(|o| o.handed_off) != b.get(c).map(|o| o.handed_off))
        .count()
}

/// A figure the report compares, by name.
type Metric = (&'static str, fn(&Figures) -> Option<f64>);

/// The figures the CSV and the summaries compare.
pub const METRICS: [Metric; 11] = [
    ("chats", |f| Some(f.chats as f64)),
    ("contained", |f| Some(f.contained as f64)),
    ("containment", |f| Some(f.containment())),
    ("handed_off", |f| Some(f.handed_off as f64)),
    ("bot_answers", |f| Some(f.bot_answers as f64)),
    ("assigned", |f| Some(f.assigned as f64)),
    ("abandoned", |f| Some(f.abandoned as f64)),
    ("wait_mean_secs", Figures::wait_mean_secs),
    ("wait_max_secs", |f| Some(f.wait_max_secs as f64)),
    ("sla_breaches", |f| Some(f.sla_breaches as f64)),
    ("csat", Figures::csat),
];

/// The mean and the standard deviation of what is there.
fn mean_sd(values: impl IntoIterator<Item = Option<f64>>) -> Option<(f64, f64)> {
    let values: Vec<f64> = values.into_iter().flatten().collect();
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    Some((mean, var.sqrt()))
}

/// One replay with one seed, in brief.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub seed: u64,
    /// Chats handed over (or not) differently from the record (the baseline) or from the
    /// baseline with the same seed (the change).
    pub differs: usize,
    /// People's acts the replay's desk refused (a message to a chat it had closed).
    pub refused: usize,
    /// Where the replay left the record: assignments played with a drawn handling, customers
    /// who left the queue at a drawn patience.
    pub drawn_segments: usize,
    pub left_on_drawn_patience: usize,
}

/// Where the behaviour models' numbers came from.
#[derive(Debug, Clone, Serialize)]
pub struct Models {
    /// Recorded assignments whose handling the replay plays or draws from.
    pub handling_segments: usize,
    /// Recorded queueings behind the patience estimate, and how many the customer left.
    pub patience_queueings: usize,
    pub patience_left: usize,
    pub surveys: usize,
}

/// How far the unchanged replay came out from the record on the whole window (baseline
/// minus record, the mean over seeds).
#[derive(Debug, Clone, Serialize)]
pub struct Deviation {
    pub chats_differ: usize,
    pub chats_differ_share: f64,
    pub wait_mean_secs: f64,
    pub sla_breaches: f64,
    pub assigned: f64,
    pub abandoned: f64,
    /// Chats assigned to an agent other than in the record (first assignment).
    pub other_agent: f64,
}

/// Assignments per agent: recorded, and the mean over seeds of each replay.
#[derive(Debug, Clone, Serialize)]
pub struct AgentLoad {
    pub agent: String,
    pub name: String,
    pub recorded: usize,
    pub baseline: f64,
    pub changed: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    pub hour: String,
    pub queue: String,
    pub recorded: Figures,
    /// One per seed, in the report's seed order.
    pub baseline: Vec<Figures>,
    pub changed: Vec<Figures>,
}

impl ReportRow {
    /// (recorded, baseline mean, changed mean, change mean, change sd) of a metric: the change
    /// is changed minus baseline with the same seed.
    pub fn compare(&self, metric: fn(&Figures) -> Option<f64>) -> [Option<f64>; 5] {
        let base = mean_sd(self.baseline.iter().map(metric));
        let changed = mean_sd(self.changed.iter().map(metric));
        let change = mean_sd(
            self.baseline
                .iter()
                .zip(&self.changed)
                .map(|(b, c)| Some(metric(c)? - metric(b)?)),
        );
        [
            metric(&self.recorded),
            base.map(|m| m.0),
            changed.map(|m| m.0),
            change.map(|m| m.0),
            change.map(|m| m.1),
        ]
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub window: Window,
    pub chats: usize,
    pub seeds: Vec<u64>,
    pub baseline_settings: Settings,
    pub changed_settings: Settings,
    pub models: Models,
    /// The largest number of chats an unchanged replay handed over differently, and its
    /// share.
    pub baseline_differs: usize,
    pub baseline_differs_share: f64,
    pub baseline_off: Deviation,
    pub within_tolerance: bool,
    pub tolerance: &'static str,
    pub baseline_runs: Vec<RunSummary>,
    pub changed_runs: Vec<RunSummary>,
    pub agents: Vec<AgentLoad>,
    pub rows: Vec<ReportRow>,
}

impl Report {
    /// Replays `history` unchanged (`baseline`: the settings it was recorded with) and with
    /// `changed`, once per seed each, and compares both with the record. Blocks: the replays
    /// run on threads of their own (as many at once as there are cores), each on its own
    /// single-threaded runtime; call it from a blocking context.
    pub fn run(
        history: &History,
        baseline: Settings,
        changed: Settings,
        seeds: &[u64],
    ) -> Result<Report, WhatIfError> {
        if seeds.is_empty() {
            return Err(WhatIfError::BadChange {
                change: "seeds".into(),
                reason: "give at least one seed".into(),
            });
        }
        let targets = |s: &Settings| -> Result<BTreeMap<QueueId, i64>, WhatIfError> {
            s.first_response_secs
                .iter()
                .map(|(name, secs)| Ok((history.queue_named(name)?.0, *secs)))
                .collect()
        };
        let (base_targets, changed_targets) = (targets(&baseline)?, targets(&changed)?);
        baseline.check(history)?;
        changed.check(history)?;
        let jobs: Vec<(&Settings, u64)> = seeds
            .iter()
            .flat_map(|&seed| [(&baseline, seed), (&changed, seed)])
            .collect();
        let mut done = replay_all(history, &jobs)?.into_iter();
        let (mut base_runs, mut changed_runs) = (Vec::new(), Vec::new());
        while let (Some(b), Some(c)) = (done.next(), done.next()) {
            base_runs.push(b);
            changed_runs.push(c);
        }
        let chats = &history.chats;
        let recorded = figures(history, &history.recorded, &base_targets);
        let base: Vec<_> = base_runs
            .iter()
            .map(|r| figures(history, &r.outcomes, &base_targets))
            .collect();
        let change: Vec<_> = changed_runs
            .iter()
            .map(|r| figures(history, &r.outcomes, &changed_targets))
            .collect();
        let keys: BTreeSet<(String, String)> = recorded
            .keys()
            .chain(base.iter().flat_map(|b| b.keys()))
            .chain(change.iter().flat_map(|c| c.keys()))
            .cloned()
            .collect();
        let pick = |m: &BTreeMap<(String, String), Figures>, k: &(String, String)| {
            m.get(k)
                .cloned()
                .unwrap_or_else(|| Figures::new(&k.0, &k.1))
        };
        let mut rows: Vec<ReportRow> = keys
            .iter()
            .map(|k| ReportRow {
                hour: k.0.clone(),
                queue: k.1.clone(),
                recorded: pick(&recorded, k),
                baseline: base.iter().map(|b| pick(b, k)).collect(),
                changed: change.iter().map(|c| pick(c, k)).collect(),
            })
            .collect();
        // Hours in order, the whole window last; within an hour, "all" first.
        rows.sort_by(|a, b| {
            (a.hour == "all", &a.hour, a.queue != "all", &a.queue).cmp(&(
                b.hour == "all",
                &b.hour,
                b.queue != "all",
                &b.queue,
            ))
        });
        let summary = |runs: &[Replayed], against: &dyn Fn(usize) -> usize| {
            runs.iter()
                .zip(seeds)
                .enumerate()
                .map(|(i, (r, seed))| RunSummary {
                    seed: *seed,
                    differs: against(i),
                    refused: r.refused,
                    drawn_segments: r.drawn_segments,
                    left_on_drawn_patience: r.left_on_drawn_patience,
                })
                .collect::<Vec<_>>()
        };
        let baseline_runs = summary(&base_runs, &|i| {
            differing(chats, &history.recorded, &base_runs[i].outcomes)
        });
        let changed_runs_summary = summary(&changed_runs, &|i| {
            differing(chats, &base_runs[i].outcomes, &changed_runs[i].outcomes)
        });
        let baseline_differs = baseline_runs.iter().map(|r| r.differs).max().unwrap_or(0);
        let whole = rows
            .iter()
            .find(|r| r.hour == "all" && r.queue == "all")
            .cloned();
        let off = |metric: fn(&Figures) -> Option<f64>| {
            whole
                .as_ref()
                .and_then(|w| {
                    let [rec, base, ..] = w.compare(metric);
                    Some(base? - rec.unwrap_or(0.0))
                })
                .unwrap_or(0.0)
        };
        let other_agent = base_runs
            .iter()
            .map(|r| {
                chats
                    .iter()
                    .filter(|c| {
                        let first = |o: Option<&Outcome>| o.and_then(|o| o.agents.first().copied());
                        first(history.recorded.get(c)) != first(r.outcomes.get(c))
                    })
                    .count() as f64
            })
            .sum::<f64>()
            / seeds.len() as f64;
        let baseline_off = Deviation {
            chats_differ: baseline_differs,
            chats_differ_share: share(baseline_differs, chats.len()),
            wait_mean_secs: off(Figures::wait_mean_secs),
            sla_breaches: off(|f| Some(f.sla_breaches as f64)),
            assigned: off(|f| Some(f.assigned as f64)),
            abandoned: off(|f| Some(f.abandoned as f64)),
            other_agent,
        };
        let within_tolerance = whole.as_ref().is_some_and(|w| {
            let queued = w.recorded.queued as f64;
            let counts = 1f64.max(0.05 * queued);
            let recorded_wait = w.recorded.wait_mean_secs().unwrap_or(0.0);
            baseline_off.chats_differ_share <= 0.05
                && baseline_off.wait_mean_secs.abs() <= 30f64.max(0.1 * recorded_wait)
                && baseline_off.sla_breaches.abs() <= counts
                && baseline_off.assigned.abs() <= counts
                && baseline_off.abandoned.abs() <= counts
        });
        let agents = agent_loads(history, &base_runs, &changed_runs);
        Ok(Report {
            window: history.window,
            chats: chats.len(),
            seeds: seeds.to_vec(),
            baseline_settings: baseline,
            changed_settings: changed,
            models: Models {
                handling_segments: history.handling.count(),
                patience_queueings: history.patience.observed,
                patience_left: history.patience.left,
                surveys: history.surveys.len(),
            },
            baseline_differs,
            baseline_differs_share: share(baseline_differs, chats.len()),
            baseline_off,
            within_tolerance,
            tolerance: TOLERANCE,
            baseline_runs,
            changed_runs: changed_runs_summary,
            agents,
            rows,
        })
    }

    /// The row for an hour ("all": the window) and a queue ("all": every chat).
    pub fn row(&self, hour: &str, queue: &str) -> Option<&ReportRow> {
        self.rows
            .iter()
            .find(|r| r.hour == hour && r.queue == queue)
    }

    /// One CSV line per hour and queue: for each of [`METRICS`], the record, the baseline's
    /// and the change's means over the seeds, the change (changed minus baseline, seed by
    /// seed: mean and standard deviation).
    pub fn csv(&self) -> String {
        let mut out = String::from("hour,queue");
        for (name, _) in METRICS {
            for column in ["recorded", "baseline", "changed", "change", "change_sd"] {
                out.push_str(&format!(",{column}_{name}"));
            }
        }
        out.push('\n');
        for r in &self.rows {
            out.push_str(&csv_field(&r.hour));
            out.push(',');
            out.push_str(&csv_field(&r.queue));
            for (_, metric) in METRICS {
                for value in r.compare(metric) {
                    out.push(',');
                    if let Some(v) = value {
                        out.push_str(&format!("{}", (v * 1000.0).round() / 1000.0));
                    }
                }
            }
            out.push('\n');
        }
        out
    }

    /// The report as JSON lines: a summary line, then one line per hour and queue.
    pub fn jsonl(&self) -> String {
        let mut summary = serde_json::to_value(self).unwrap_or_default();
        if let Some(s) = summary.as_object_mut() {
            s.remove("rows");
        }
        let mut out = summary.to_string();
        out.push('\n');
        for r in &self.rows {
            out.push_str(&serde_json::to_string(r).unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// A chart per hour for one queue ("all": every chat), recorded, replayed unchanged and
    /// replayed with the change (the means over seeds), as SVG.
    pub fn svg(&self, chart: Chart, queue: &str) -> String {
        let rows: Vec<&ReportRow> = self
            .rows
            .iter()
            .filter(|r| r.hour != "all" && r.queue == queue)
            .collect();
        let (metric, title): (fn(&Figures) -> Option<f64>, String) = match chart {
            Chart::Containment => (
                |f| Some(f.containment()),
                format!("Bot containment by hour (UTC), queue {queue}"),
            ),
            Chart::Waits => (
                Figures::wait_mean_secs,
                format!("Mean wait for an agent by hour (UTC), queue {queue}, seconds"),
            ),
        };
        let values: Vec<[Option<f64>; 5]> = rows.iter().map(|r| r.compare(metric)).collect();
        let top_value = match chart {
            Chart::Containment => 1.0,
            Chart::Waits => nice_ceiling(
                values
                    .iter()
                    .flat_map(|v| v[..3].iter().flatten().copied())
                    .fold(0.0, f64::max),
            ),
        };
        let (w, h, left, top, bottom) = (760.0, 380.0, 64.0, 56.0, 60.0);
        let plot_w = w - left - 24.0;
        let plot_h = h - top - bottom;
        let n = rows.len().max(1) as f64;
        let x = |i: usize| left + plot_w * (i as f64 + 0.5) / n;
        let y = |v: f64| top + plot_h * (1.0 - (v / top_value).clamp(0.0, 1.0));
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n<text x=\"{left}\" y=\"20\" font-size=\"13\">{}</text>\n<text x=\"{left}\" y=\"38\">change: {}; mean over {} seed(s)</text>\n",
            xml_escape(&title),
            xml_escape(&describe(&self.changed_settings, &self.baseline_settings)),
            self.seeds.len()
        );
        for k in 0..=4 {
            let tick = top_value * f64::from(k) / 4.0;
            let ty = y(tick);
            let label = match chart {
                Chart::Containment => format!("{:.0}%", tick * 100.0),
                Chart::Waits => format!("{tick:.0}"),
            };
            out.push_str(&format!(
                "<line x1=\"{left}\" y1=\"{ty:.1}\" x2=\"{:.1}\" y2=\"{ty:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>\n",
                left + plot_w,
                left - 6.0,
                ty + 4.0,
            ));
        }
        let hours: Vec<&str> = rows.iter().map(|r| r.hour.as_str()).collect();
        for (i, label) in axis_labels(&hours) {
            out.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>\n",
                x(i),
                top + plot_h + 16.0
            ));
        }
        // The record wide and pale under the unchanged replay, so a baseline that matches it
        // shows as one line inside the other. An hour without a value (nobody assigned) breaks
        // the line.
        let series: [(&str, &str, f64, &str, usize); 3] = [
            ("recorded", "#bbb", 6.0, "", 0),
            ("replayed unchanged", "#2b7bb9", 2.0, "6 3", 1),
            ("replayed with the change", "#d9534f", 2.0, "", 2),
        ];
        for (k, (name, colour, width, dash, column)) in series.iter().enumerate() {
            let mut runs: Vec<Vec<String>> = vec![Vec::new()];
            for (i, v) in values.iter().enumerate() {
                match v[*column] {
                    Some(v) => {
                        if let Some(run) = runs.last_mut() {
                            run.push(format!("{:.1},{:.1}", x(i), y(v)));
                        }
                    }
                    None => runs.push(Vec::new()),
                }
            }
            for run in runs.iter().filter(|r| !r.is_empty()) {
                out.push_str(&format!(
                    "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width}\" stroke-dasharray=\"{dash}\" points=\"{}\"/>\n",
                    run.join(" ")
                ));
                if run.len() == 1 {
                    out.push_str(&format!(
                        "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{colour}\"/>\n",
                        run[0].split(',').next().unwrap_or("0"),
                        run[0].split(',').nth(1).unwrap_or("0"),
                        width
                    ));
                }
            }
            let ly = h - 18.0;
            let lx = left + 200.0 * k as f64;
            out.push_str(&format!(
                "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{:.1}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"{width}\" stroke-dasharray=\"{dash}\"/><text x=\"{:.1}\" y=\"{:.1}\">{name}</text>\n",
                lx + 24.0,
                lx + 30.0,
                ly + 4.0
            ));
        }
        out.push_str("</svg>\n");
        out
    }
}

/// Runs `jobs` (settings and seed) on up to as many threads as there are cores; the results
/// in the jobs' order.
fn replay_all(history: &History, jobs: &[(&Settings, u64)]) -> Result<Vec<Replayed>, WhatIfError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Replayed, WhatIfError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let i = next.fetch_add(jobs.len(), Ordering::SeqCst);
                        if let Some(slot) = results.lock().ok().as_mut().and_then(|r| r.get_mut(i))
                        {
                            *slot = Some(Err(WhatIfError::Runtime(e)));
                        }
                        return;
                    }
                };
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&(settings, seed)) = jobs.get(i) else {
                        return;
                    };
                    let outcome = runtime.block_on(replay(history, settings, seed));
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(outcome);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .map_err(|_| WhatIfError::Stopped)?
        .into_iter()
        .map(|r| r.unwrap_or(Err(WhatIfError::Stopped)))
        .collect()
}

/// What the report can chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    Containment,
    Waits,
}

/// A change in words, for the chart's subtitle.
pub fn describe(changed: &Settings, baseline: &Settings) -> String {
    let mut parts = Vec::new();
    if changed.answer_threshold != baseline.answer_threshold {
        parts.push(format!("answer threshold {}", changed.answer_threshold));
    }
    if changed.clarify_threshold != baseline.clarify_threshold {
        parts.push(format!("clarify threshold {}", changed.clarify_threshold));
    }
    for s in &changed.staff {
        let mut p = format!("{:+} agents in {}", s.count, s.queue);
        if s.count > 0 {
            p.push_str(&format!(" ({} seats", s.seats));
            if let Some((from, to)) = s.shift {
                p.push_str(&format!(", {from:02}-{to:02} UTC"));
            }
            p.push(')');
        }
        parts.push(p);
    }
    for queue in &changed.retired_queues {
        parts.push(format!("{queue} retired"));
    }
    for (queue, secs) in &changed.first_response_secs {
        parts.push(format!("first response in {queue} within {secs} s"));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// The x axis's labels, by point: the hour of day (UTC) under each point; over more than a day
/// and a half of hours, the date (MM-DD) under each day's first hour instead, or the labels
/// run together. `hours` as the report writes them (`2026-03-02T01:00Z`).
fn axis_labels(hours: &[&str]) -> Vec<(usize, String)> {
    let by_day = hours.len() > 36;
    let day = |h: &str| h.get(5..10).unwrap_or(h).to_owned();
    hours
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            if !by_day {
                Some((i, h.get(11..13).unwrap_or(h).to_owned()))
            } else if i == 0 || day(h) != day(hours[i - 1]) {
                Some((i, day(h)))
            } else {
                None
            }
        })
        .collect()
}

/// 1, 2 or 5 times a power of ten, at least `v` (and at least 1).
fn nice_ceiling(v: f64) -> f64 {
    let mut step = 1.0;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if m * step >= v {
                return m * step;
            }
        }
        step *= 10.0;
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn agent_loads(history: &History, base: &[Replayed], changed: &[Replayed]) -> Vec<AgentLoad> {
    let count = |outcomes: &BTreeMap<ConversationId, Outcome>| {
        let mut by: BTreeMap<AgentId, usize> = BTreeMap::new();
        for o in outcomes.values() {
            for a in &o.agents {
                *by.entry(*a).or_default() += 1;
            }
        }
        by
    };
    let mean = |runs: &[Replayed]| {
        let mut by: BTreeMap<AgentId, f64> = BTreeMap::new();
        for r in runs {
            for (a, n) in count(&r.outcomes) {
                *by.entry(a).or_default() += n as f64 / runs.len() as f64;
            }
        }
        by
    };
    let recorded = count(&history.recorded);
    let (b, c) = (mean(base), mean(changed));
    let mut names: BTreeMap<AgentId, String> = history
        .agents
        .iter()
        .map(|(id, a)| (*id, a.name.clone()))
        .collect();
    for r in changed.iter().chain(base) {
        names.extend(r.added_agents.iter().map(|(a, n)| (*a, n.clone())));
    }
    let ids: BTreeSet<AgentId> = recorded
        .keys()
        .chain(b.keys())
        .chain(c.keys())
        .copied()
        .collect();
    let mut loads: Vec<AgentLoad> = ids
        .into_iter()
        .map(|a| AgentLoad {
            agent: a.to_string(),
            name: names.get(&a).cloned().unwrap_or_default(),
            recorded: recorded.get(&a).copied().unwrap_or(0),
            baseline: b.get(&a).copied().unwrap_or(0.0),
            changed: c.get(&a).copied().unwrap_or(0.0),
        })
        .collect();
    loads.sort_by(|x, y| x.name.cmp(&y.name).then(x.agent.cmp(&y.agent)));
    loads
}

#[cfg(test)]
mod tests {
    use super::axis_labels;

    #[test]
    fn a_day_is_labelled_by_hour_and_a_week_by_date() {
        let day = [
            "2026-03-02T01:00Z",
            "2026-03-02T02:00Z",
            "2026-03-02T05:00Z",
        ];
        assert_eq!(
            axis_labels(&day),
            [(0, "01".into()), (1, "02".into()), (2, "05".into())]
        );
        let week: Vec<String> = (0..48)
            .map(|h| format!("2026-03-{:02}T{:02}:00Z", 2 + h / 24, h % 24))
            .collect();
        let week: Vec<&str> = week.iter().map(String::as_str).collect();
        assert_eq!(
            axis_labels(&week),
            [(0, "03-02".into()), (24, "03-03".into())]
        );
    }
}
