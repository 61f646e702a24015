//! The workers, inside `kefu serve` or alone (`kefu worker NAME`, beside a server that keeps
//! the read models, on a shared PostgreSQL store).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::ValueEnum;
use kefu_bot::faq::Thresholds;
use kefu_desk::{CommandService, Desk};
use kefu_domain::conversation::DEFAULT_SLA_WARNING_FRACTION;
use kefu_eventlog::faults::{Faults, Faulty};
use kefu_eventlog::{AnyLog, Position};
use kefu_projections::{Catalog, ReadModels, ReadStore};
use kefu_workers::archiver::Archiver;
use kefu_workers::assigner::{Assigner, OrphanedSeats};
use kefu_workers::bot::{BotWorker, KnownEntries, seed_demo_kb};
use kefu_workers::gateway::OrderGateway;
use kefu_workers::idle::IdleTimeout;
use kefu_workers::probes::{self, ProbeQuestion, Probes};
use kefu_workers::router::Router;
use kefu_workers::runtime::{self, Checkpoints, Start};
use kefu_workers::sla::SlaTimers;
use kefu_workers::surveys::{SurveyOffers, SurveyReminders};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::StoreArgs;
use crate::graphql::ServerLog;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkerName {
    /// Answers customers with the JIMI bot; hands over on low confidence or anger. With an
    /// empty knowledge base it seeds the demo one first.
    Bot,
    /// Predicts each conversation's scenario and routes hand-offs to a queue.
    Router,
    /// Gives waiting conversations to online agents with the skills and a free seat.
    Assigner,
    /// Offers the satisfaction survey when a conversation closes.
    Surveys,
    /// Closes conversations nobody has written in for the idle timeout.
    Idle,
    /// SLA timers: warns when a share of a queue's first-response or resolution target has
    /// passed, records the breach at the target and escalates the conversation.
    Sla,
    /// Reminds a customer once of a survey left unanswered.
    SurveyReminders,
    /// Moves the history of conversations closed long ago into the archive.
    Archiver,
    /// Asks the bot known questions on a schedule and records how many it answered right.
    Probes,
}

impl WorkerName {
    /// The checkpoint a worker that follows the log keeps (in `kefu_workers`), by which its
    /// lag is measured; None for the workers that run on a schedule instead.
    pub fn checkpoint(self) -> Option<&'static str> {
        match self {
            WorkerName::Bot => Some(kefu_workers::bot::NAME),
            WorkerName::Router => Some(kefu_workers::router::NAME),
            WorkerName::Assigner => Some(kefu_workers::assigner::NAME),
            WorkerName::Surveys => Some(kefu_workers::surveys::NAME),
            WorkerName::Idle
            | WorkerName::Sla
            | WorkerName::SurveyReminders
            | WorkerName::Archiver
            | WorkerName::Probes => None,
        }
    }
}

/// How the workers are tuned.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub bot: crate::bot_cmd::ThresholdArgs,
    /// Customer questions labelled with the entry that answers them ({"text","answer_id"} a
    /// line): the bot fits its confidence on them (those whose entry is in the KB) each time
    /// it builds its model, instead of on the KB's own paraphrases, so the answer threshold
    /// holds on real questions. Choose the threshold with them too (BENCHMARKS.md).
    #[arg(long, env = "KEFU_BOT_CALIBRATION")]
    pub bot_calibration: Option<std::path::PathBuf>,
    /// Close a conversation nobody has written in for this long, in seconds (at least 60).
    #[arg(long, env = "KEFU_IDLE_TIMEOUT_SECS", default_value_t = 1800)]
    pub idle_timeout_secs: u32,
    /// How often the idle timeout looks, in seconds.
    #[arg(long, env = "KEFU_IDLE_SWEEP_SECS", default_value_t = 60)]
    pub idle_sweep_secs: u64,
    /// How often the assigner looks for seats left behind by an assignment that never
    /// finished, in seconds.
    #[arg(long, env = "KEFU_SEAT_SWEEP_SECS", default_value_t = 60)]
    pub seat_sweep_secs: u64,
    /// Warn of an SLA target when this share of it has passed (strictly between 0 and 1).
    #[arg(long, env = "KEFU_SLA_WARNING_FRACTION", default_value_t = DEFAULT_SLA_WARNING_FRACTION)]
    pub sla_warning_fraction: f64,
    /// How often the SLA timers look, in seconds.
    #[arg(long, env = "KEFU_SLA_SWEEP_SECS", default_value_t = 15)]
    pub sla_sweep_secs: u64,
    /// Remind a customer of an unanswered survey this long after it was offered, in seconds
    /// (at least 60).
    #[arg(long, env = "KEFU_SURVEY_REMINDER_SECS", default_value_t = 86_400)]
    pub survey_reminder_secs: u32,
    /// How often the survey reminders look, in seconds.
    #[arg(long, env = "KEFU_SURVEY_REMINDER_SWEEP_SECS", default_value_t = 300)]
    pub survey_reminder_sweep_secs: u64,
    /// Archive a conversation this many days after it closed (at least 3, the reopen window).
    #[arg(long, env = "KEFU_ARCHIVE_AFTER_DAYS", default_value_t = kefu_workers::archiver::DEFAULT_AFTER_DAYS)]
    pub archive_after_days: u32,
    /// How often the archiver looks, in seconds.
    #[arg(long, env = "KEFU_ARCHIVE_SWEEP_SECS", default_value_t = 3600)]
    pub archive_sweep_secs: u64,
    /// Conversations per archive file.
    #[arg(long, env = "KEFU_ARCHIVE_BATCH", default_value_t = kefu_workers::archiver::DEFAULT_BATCH)]
    pub archive_batch: usize,
    #[command(flatten)]
    pub clock: crate::clock::ClockArgs,
    /// How often the probes ask the bot, in seconds (slots from the epoch; each probed once).
    #[arg(long, env = "KEFU_PROBE_INTERVAL_SECS", default_value_t = 86_400)]
    pub probe_interval_secs: u64,
    /// How many questions a probe run asks (0: all of them).
    #[arg(long, env = "KEFU_PROBE_SAMPLE", default_value_t = kefu_workers::probes::DEFAULT_SAMPLE)]
    pub probe_sample: usize,
    /// The probes' questions, `{"question","expected_entry"}` a line; unset, the demo
    /// knowledge base's paraphrases.
    #[arg(long, env = "KEFU_PROBE_QUESTIONS")]
    pub probe_questions: Option<std::path::PathBuf>,
}

impl WorkerArgs {
    pub fn probe_every(&self) -> Duration {
        Duration::from_secs(self.probe_interval_secs.max(1))
    }

    fn probe_questions(&self) -> Result<Vec<ProbeQuestion>> {
        match &self.probe_questions {
            None => Ok(probes::demo_questions()),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--probe-questions {}: {e}", path.display()))?;
                probes::parse_questions(&text)
                    .map_err(|e| anyhow::anyhow!("--probe-questions {}: {e}", path.display()))
            }
        }
    }
}

/// The read side the workers read: the store (checkpoints), the read models, and where each
/// live projection has got to.
pub struct ReadSide {
    pub store: ReadStore,
    pub models: ReadModels,
    pub positions: watch::Receiver<Vec<(String, Position)>>,
}

/// Starts `names` as tasks; they end when `stop` turns true.
pub async fn spawn(
    names: &[WorkerName],
    tuning: &WorkerArgs,
    log: Arc<ServerLog>,
    read: ReadSide,
    gateway_faults: Faults,
    stop: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>> {
    let ReadSide {
        store: read,
        models,
        positions,
    } = read;
    let thresholds: Thresholds = tuning.bot.thresholds();
    thresholds
        .validate()
        .map_err(|e| anyhow::anyhow!("--answer-threshold / --clarify-threshold: {e}"))?;
    let checkpoints = Checkpoints::open(read.clone()).await?;
    let desk = Desk::new(CommandService::new(log.clone())).with_clock(tuning.clock.clock()?);
    let mut tasks = Vec::new();
    for name in names {
        let (log, checkpoints, stop) = (log.clone(), checkpoints.clone(), stop.clone());
        tasks.push(match name {
            WorkerName::Bot => {
                let known = KnownEntries::open(read.clone()).await?;
                let bot_at = checkpoints.get(kefu_workers::bot::NAME).await?;
                let (mut worker, mut read_to) =
                    BotWorker::resume(desk.clone(), thresholds, bot_at, known.clone()).await?;
                let seeded = seed_demo_kb(&desk, worker.entries()).await?;
                if seeded > 0 {
                    tracing::info!(entries = seeded, "seeded the demo knowledge base");
                    (worker, read_to) =
                        BotWorker::resume(desk.clone(), thresholds, bot_at, known).await?;
                }
                if let Some(path) = &tuning.bot_calibration {
                    worker = worker.with_calibration(calibration_questions(path)?);
                }
                tracing::info!(
                    entries = worker.entries(),
                    "the bot knows its knowledge base"
                );
                tokio::spawn(runtime::run(
                    log,
                    checkpoints,
                    worker,
                    Start::At(read_to),
                    stop,
                ))
            }
            WorkerName::Router => tokio::spawn(runtime::run(
                log,
                checkpoints,
                Router::new(
                    desk.clone(),
                    models.clone(),
                    OrderGateway::new(desk.commands().clone(), gateway_faults.clone()),
                )?,
                Start::Head,
                stop,
            )),
            // Works from the queues read model, so it starts at the head and holds no history.
            WorkerName::Assigner => {
                let rounds = runtime::run(
                    log,
                    checkpoints,
                    Assigner::new(desk.clone(), models.clone(), positions.clone()),
                    Start::Head,
                    stop.clone(),
                );
                let seats = runtime::run_sweeps(
                    OrphanedSeats::new(desk.clone(), models.clone()),
                    Duration::from_secs(tuning.seat_sweep_secs.max(1)),
                    stop,
                );
                tokio::spawn(async move {
                    tokio::join!(rounds, seats);
                })
            }
            WorkerName::Idle => tokio::spawn(runtime::run_sweeps(
                IdleTimeout::new(desk.clone(), models.clone(), tuning.idle_timeout_secs)
                    .map_err(|e| anyhow::anyhow!("--idle-timeout-secs: {e}"))?,
                Duration::from_secs(tuning.idle_sweep_secs.max(1)),
                stop,
            )),
            WorkerName::Sla => tokio::spawn(runtime::run_sweeps(
                SlaTimers::new(desk.clone(), models.clone(), tuning.sla_warning_fraction)
                    .map_err(|e| anyhow::anyhow!("--sla-warning-fraction: {e}"))?,
                Duration::from_secs(tuning.sla_sweep_secs.max(1)),
                stop,
            )),
            WorkerName::SurveyReminders => tokio::spawn(runtime::run_sweeps(
                SurveyReminders::new(desk.clone(), models.clone(), tuning.survey_reminder_secs)
                    .map_err(|e| anyhow::anyhow!("--survey-reminder-secs: {e}"))?,
                Duration::from_secs(tuning.survey_reminder_sweep_secs.max(1)),
                stop,
            )),
            WorkerName::Archiver => tokio::spawn(runtime::run_sweeps(
                Archiver::new(
                    desk.clone(),
                    models.clone(),
                    tuning.archive_after_days,
                    tuning.archive_batch,
                )
                .map_err(|e| anyhow::anyhow!("--archive-after-days / --archive-batch: {e}"))?,
                Duration::from_secs(tuning.archive_sweep_secs.max(1)),
                stop,
            )),
            WorkerName::Probes => tokio::spawn(probes::run(
                Probes::new(
                    desk.clone(),
                    tuning.probe_questions()?,
                    tuning.probe_every(),
                )
                .with_sample(tuning.probe_sample),
                stop,
            )),
            WorkerName::Surveys => tokio::spawn(runtime::run(
                log,
                checkpoints,
                SurveyOffers::new(desk.clone()),
                Start::Beginning,
                stop,
            )),
        });
        tracing::info!(worker = ?name, "worker started");
    }
    Ok(tasks)
}

/// `kefu worker NAME`: one worker alone. The read models it reads are kept by a server on the
/// same PostgreSQL store; it follows their checkpoints by polling the catalog.
pub async fn run(store: &StoreArgs, name: WorkerName, tuning: &WorkerArgs) -> Result<()> {
    let log = Arc::new(Faulty::new(store.open().await?, Faults::new("store")));
    if !matches!(log.inner(), AnyLog::Postgres(_))
        && matches!(
            name,
            WorkerName::Assigner
                | WorkerName::Idle
                | WorkerName::Sla
                | WorkerName::SurveyReminders
                | WorkerName::Archiver
        )
    {
        bail!(
            "the assigner, the timers (idle, sla, survey-reminders) and the archiver alone need the PostgreSQL store that a `kefu serve` keeps read models in; \
             with the embedded store it runs inside `kefu serve`"
        );
    }
    let read = store.open_read_store().await?;
    let models = ReadModels::open(read.clone()).await?;
    let catalog = Catalog::open(read.clone()).await?;
    let (positions_tx, positions) = watch::channel(Vec::new());
    let (stop_tx, stop) = watch::channel(false);
    let poller = tokio::spawn(async move {
        loop {
            if let Ok(list) = catalog.list().await {
                let live: Vec<(String, Position)> = list
                    .into_iter()
                    .filter(|g| g.state == kefu_projections::GenState::Live)
                    .map(|g| (g.projection, g.position))
                    .collect();
                positions_tx.send_replace(live);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let tasks = spawn(
        &[name],
        tuning,
        log,
        ReadSide {
            store: read,
            models,
            positions,
        },
        Faults::new("order gateway"),
        stop,
    )
    .await?;
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    poller.abort();
    Ok(())
}

/// `--bot-calibration`: read and checked at start, so a bad file stops the server with its
/// line named rather than leaving the bot on another confidence than the one asked for.
fn calibration_questions(path: &std::path::Path) -> Result<Vec<(String, String)>> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--bot-calibration {}", path.display()))?;
    let questions: Vec<kefu_bot::eval::FaqQuery> = kefu_bot::eval::parse_jsonl(&text)
        .with_context(|| format!("--bot-calibration {}", path.display()))?;
    if questions.is_empty() {
        anyhow::bail!("--bot-calibration {}: no questions", path.display());
    }
    Ok(questions
        .into_iter()
        .map(|q| (q.text, q.answer_id))
        .collect())
}
