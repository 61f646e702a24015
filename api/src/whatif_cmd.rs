//! `kefu whatif`: a recorded window of chats played again through the production bot and
//! triage on a scratch log, unchanged and with another setting, side by side (`kefu_whatif`).

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
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
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A summary line, then a line per hour (and "all").
    Jsonl,
    /// A line per hour (and "all").
    Csv,
    /// A chart of the bot's containment per hour, the three runs side by side.
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
    })
}

pub async fn run(store: &StoreArgs, args: WhatIfArgs) -> Result<()> {
    let window = Window::new(time("--from", &args.from)?, time("--to", &args.to)?)?;
    let recorded = settings(
        ("--answer-threshold", args.recorded.answer_threshold),
        ("--clarify-threshold", args.recorded.clarify_threshold),
    )?;
    if args.with_answer_threshold.is_none() && args.with_clarify_threshold.is_none() {
        bail!("nothing to change: give --with-answer-threshold or --with-clarify-threshold");
    }
    let changed = settings(
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
    let report = Report::run(&history, recorded, changed).await?;
    tracing::info!(
        differs = report.baseline_differs,
        share = report.baseline_differs_share,
        "chats the unchanged replay handed over differently from the record"
    );
    print!(
        "{}",
        match args.format {
            Format::Jsonl => report.jsonl(),
            Format::Csv => report.csv(),
            Format::Svg => report.svg(),
        }
    );
    Ok(())
}
