//! `kefu whatif`: a recorded window of chats played again through the production reactions
//! (bot, triage, surveys, assigner) with the recorded people's behaviour, on a scratch log,
//! unchanged and with other settings (bot thresholds, agents, SLA targets), side by side
//! (`kefu_whatif`).

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use kefu_whatif::people::{StaffChange, parse_sla};
use kefu_whatif::report::Chart;
use kefu_whatif::{History, Report, Settings, Window};

use crate::bot_cmd::ThresholdArgs;
use crate::config::StoreArgs;
use crate::read_cmd::time;

#[derive(Args, Debug)]
pub struct WhatIfArgs {
    /// The window's start (RFC 3339): chats that started at or after it are replayed.
    #[arg(long)]
    pub from: String,
    /// The window's end (RFC 3339), not included.
    #[arg(long)]
    pub to: String,
    /// The bot's thresholds the history was recorded with: the baseline replay uses them
    /// (the same flags and environment as `kefu serve`).
    #[command(flatten)]
    pub recorded: ThresholdArgs,
    /// The change: the bot answers at or above this confidence.
    #[arg(long)]
    pub with_answer_threshold: Option<f64>,
    /// The change: below this confidence (and the answer threshold) a human takes over.
    #[arg(long)]
    pub with_clarify_threshold: Option<f64>,
    /// The change: agents added to a queue, `QUEUE=N[xSEATS][@HH-HH]` (2 seats and the whole
    /// window unless given; a shift is UTC hours each day), or recorded agents with the
    /// queue's skills kept away all window, `QUEUE=-N`. Repeat for more queues.
    #[arg(long = "with-agents", value_name = "QUEUE=N[xSEATS][@HH-HH]")]
    pub with_agents: Vec<String>,
    /// The change: a queue's first-response target in seconds, `QUEUE=SECS` (what counts as
    /// an SLA breach; the replay does not escalate). Repeat for more queues.
    #[arg(long = "with-first-response", value_name = "QUEUE=SECS")]
    pub with_first_response: Vec<String>,
    /// The change: a queue retired for the window, by name; triage routes the chats it would
    /// have had to the other queues by its own rules. Repeat for more queues.
    #[arg(long = "without-queue", value_name = "QUEUE")]
    pub without_queue: Vec<String>,
    /// How many seeds each replay runs with (1 to N): where the replay leaves the record,
    /// agents' handling and customers' patience are drawn, and the report gives the spread.
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// With `--format svg`: what to chart per hour.
    #[arg(long, value_enum, default_value_t = ChartArg::Waits)]
    pub chart: ChartArg,
    /// With `--format svg`: the queue to chart, by name ("all": every chat).
    #[arg(long, default_value = "all")]
    pub queue: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ChartArg {
    /// The mean wait for an agent.
    Waits,
    /// The share of chats the bot contained.
    Containment,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A summary line, then a line per hour and queue (and "all").
    Jsonl,
    /// A line per hour and queue (and "all").
    Csv,
    /// A chart per hour (`--chart`, `--queue`), the three runs side by side.
    Svg,
}

fn checked(flag: &str, value: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&value) {
        bail!("{flag} {value} is not a confidence between 0 and 1");
    }
    Ok(value)
}

fn settings(answer: (&str, f64), clarify: (&str, f64)) -> Result<Settings> {
    let (answer_threshold, clarify_threshold) =
        (checked(answer.0, answer.1)?, checked(clarify.0, clarify.1)?);
    if clarify_threshold > answer_threshold {
        bail!(
            "{} {clarify_threshold} is above {} {answer_threshold}: the bot offers choices only below the confidence it answers at",
            clarify.0,
            answer.0
        );
    }
    Ok(Settings {
        answer_threshold,
        clarify_threshold,
        ..Default::default()
    })
}

pub async fn run(store: &StoreArgs, args: WhatIfArgs) -> Result<()> {
    let window = Window::new(time("--from", &args.from)?, time("--to", &args.to)?)?;
    let recorded = settings(
        ("--answer-threshold", args.recorded.answer_threshold),
        ("--clarify-threshold", args.recorded.clarify_threshold),
    )?;
    if args.with_answer_threshold.is_none()
        && args.with_clarify_threshold.is_none()
        && args.with_agents.is_empty()
        && args.with_first_response.is_empty()
        && args.without_queue.is_empty()
    {
        bail!(
            "nothing to change: give --with-answer-threshold, --with-clarify-threshold, --with-agents, --with-first-response or --without-queue"
        );
    }
    if !(1..=100).contains(&args.seeds) {
        bail!("--seeds {} is not from 1 to 100", args.seeds);
    }
    let mut changed = settings(
        (
            "--with-answer-threshold",
            args.with_answer_threshold
                .unwrap_or(recorded.answer_threshold),
        ),
        (
            "--with-clarify-threshold",
            args.with_clarify_threshold
                .unwrap_or(recorded.clarify_threshold),
        ),
    )?;
    for spec in &args.with_agents {
        changed.staff.push(StaffChange::parse(spec)?);
    }
    for spec in &args.with_first_response {
        let (queue, secs) = parse_sla(spec)?;
        changed.first_response_secs.insert(queue, secs);
    }
    changed.retired_queues = args.without_queue.clone();
    // The history is read, never written: a missing store is a typo.
    let log = store.open_existing().await?;
    let history = History::read(&log, window).await?;
    if history.chats.is_empty() {
        bail!(
            "no chat started between {} and {}: nothing to replay",
            window.from,
            window.to
        );
    }
    tracing::info!(
        chats = history.chats.len(),
        "replaying the window unchanged, then with the change"
    );
    // A queue the change names must be in the record; said before the replays run.
    changed.check(&history)?;
    if args.queue != "all" {
        history.queue_named(&args.queue)?;
    }
    let seeds: Vec<u64> = (1..=args.seeds).collect();
    // The replays run on threads of their own.
    let report =
        tokio::task::spawn_blocking(move || Report::run(&history, recorded, changed, &seeds))
            .await??;
    tracing::info!(
        differs = report.baseline_differs,
        share = report.baseline_differs_share,
        within_tolerance = report.within_tolerance,
        "chats the unchanged replay handed over differently from the record"
    );
    print!(
        "{}",
        match args.format {
            Format::Jsonl => report.jsonl(),
            Format::Csv => report.csv(),
            Format::Svg => report.svg(
                match args.chart {
                    ChartArg::Waits => Chart::Waits,
                    ChartArg::Containment => Chart::Containment,
                },
                &args.queue
            ),
        }
    );
    Ok(())
}
