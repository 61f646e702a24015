//! `kefu eval …`, `kefu train ranker` and `kefu kb import`: the bot's models from the command
//! line. The evaluations and training are pure (no store); they run the same `kefu-bot` code
//! the workers run. Each evaluation prints a short summary and then its figures as one JSON
//! object on the last line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kefu_bot::eval::{self, EmotionExample, FaqQuery, Labelled};
use kefu_bot::faq::{Entry, Faq, Thresholds};
use kefu_bot::kb::{self, KbEntry};
use kefu_bot::ranker::{self, RankerModel, TrainParams};
use kefu_desk::CommandService;
use kefu_domain::ids::{Category, Locale};
use kefu_domain::knowledge::{KnowledgeCommand, KnowledgeDecider, KnowledgeEdit, KnowledgeState};
use kefu_eventlog::{Actor, ActorKind, Metadata};
use serde::Serialize;

use crate::config::StoreArgs;

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Train the intent classifier on TRAIN, report accuracy and macro-F1 on TEST
    /// (JSON lines {"text","label"}).
    Intents {
        #[arg(long)]
        train: PathBuf,
        #[arg(long)]
        test: PathBuf,
        #[command(flatten)]
        out: PredictionsArg,
    },
    /// Build the bot on a KB and ask it every query ({"text","answer_id"}): P@1, MRR@10, and
    /// the shares answered, clarified and handed over.
    Faq {
        #[arg(long)]
        kb: PathBuf,
        #[arg(long)]
        queries: PathBuf,
        /// A ranker from `kefu train ranker`; without it one is trained from the KB.
        #[arg(long)]
        model: Option<PathBuf>,
        #[command(flatten)]
        thresholds: ThresholdArgs,
        #[command(flatten)]
        out: PredictionsArg,
    },
    /// Polarity sign accuracy and F1, label accuracy and F1, and correlation with the gold
    /// score ({"text","polarity"} and/or {"text","label"}).
    Emotion {
        #[arg(long)]
        test: PathBuf,
        #[command(flatten)]
        out: PredictionsArg,
    },
}

#[derive(Args, Debug, Clone)]
pub struct PredictionsArg {
    /// Also write one JSON line per example to this file: {"text","gold","prediction","score"}
    /// (and for the FAQ "decision" and "gold_rank", for emotion "gold_polarity"), to score
    /// kefu with other tools.
    #[arg(long, value_name = "FILE")]
    pub predictions: Option<PathBuf>,
}

impl PredictionsArg {
    fn write(&self, predictions: &[eval::Prediction]) -> Result<()> {
        let Some(path) = &self.predictions else {
            return Ok(());
        };
        std::fs::write(path, eval::predictions_jsonl(predictions))
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The bot's decision thresholds (configuration: flags or environment).
#[derive(Args, Debug, Clone, Copy)]
pub struct ThresholdArgs {
    /// Confidence at or above which the bot answers.
    #[arg(long, env = "KEFU_BOT_ANSWER_THRESHOLD", default_value_t = Thresholds::default().answer)]
    pub answer_threshold: f64,
    /// Confidence at or above which (and below the answer threshold) the bot offers the top
    /// three; below it a human takes over.
    #[arg(long, env = "KEFU_BOT_CLARIFY_THRESHOLD", default_value_t = Thresholds::default().clarify)]
    pub clarify_threshold: f64,
}

impl ThresholdArgs {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            answer: self.answer_threshold,
            clarify: self.clarify_threshold,
        }
    }
}

#[derive(Subcommand)]
pub enum TrainCommand {
    /// Train the FAQ re-ranker from a KB's paraphrases and write it (JSON, with its version).
    Ranker {
        #[arg(long)]
        kb: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Customer questions labelled with the entry that answers them ({"text","answer_id"}
        /// a line) to fit the confidence on, instead of the KB's own paraphrases: then the
        /// answer threshold means what it says on real questions (see BENCHMARKS.md).
        #[arg(long)]
        calibrate: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum KbCommand {
    /// Validate a KB file ({"id","question","paraphrases","answer","category","locale"} a
    /// line) and write it as knowledge-base events; nothing is written if any line is bad.
    /// Re-importing is idempotent: unchanged entries write nothing, changed ones an edit.
    Import {
        /// The file; `--demo` imports the built-in demo KB instead.
        #[arg(required_unless_present = "demo")]
        file: Option<PathBuf>,
        #[arg(long, conflicts_with = "file")]
        demo: bool,
    },
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    eval::parse_jsonl(&read(path)?).with_context(|| format!("{}", path.display()))
}

fn kb_file(path: &Path) -> Result<Vec<KbEntry>> {
    kb::parse(&read(path)?).map_err(|e| {
        for line in &e.errors {
            eprintln!("{}:{line}", path.display());
        }
        anyhow::anyhow!(
            "{}: {} bad line(s); nothing was done",
            path.display(),
            e.errors.len()
        )
    })
}

fn print_last<T: Serialize>(summary: &str, figures: &T) -> Result<()> {
    println!("{summary}");
    println!("{}", serde_json::to_string(figures)?);
    Ok(())
}

pub fn eval(cmd: EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Intents { train, test, out } => {
            let train: Vec<Labelled> = jsonl(&train)?;
            let test: Vec<Labelled> = jsonl(&test)?;
            let r = eval::eval_intents(&train, &test)?;
            out.write(&r.predictions)?;
            print_last(
                &format!(
                    "intents: {} test examples, accuracy {:.4}, macro-F1 {:.4}",
                    r.test_examples, r.accuracy, r.macro_f1
                ),
                &r,
            )
        }
        EvalCommand::Faq {
            kb,
            queries,
            model,
            thresholds,
            out,
        } => {
            let entries: Vec<Entry> = kb_file(&kb)?.iter().map(Entry::from).collect();
            let queries: Vec<FaqQuery> = jsonl(&queries)?;
            let model = model.map(|m| load_model(&m)).transpose()?;
            let r = eval::eval_faq(entries, &queries, model, thresholds.thresholds())?;
            out.write(&r.predictions)?;
            let o = &r.overall;
            print_last(
                &format!(
                    "faq: {} queries, P@1 {:.4}, MRR@10 {:.4}, answered {:.4}, clarified {:.4}, handed over {:.4}",
                    o.queries, o.p_at_1, o.mrr_at_10, o.answered, o.clarified, o.handed_over
                ),
                &r,
            )
        }
        EvalCommand::Emotion { test, out } => {
            let test: Vec<EmotionExample> = jsonl(&test)?;
            let r = eval::eval_emotion(&test)?;
            out.write(&r.predictions)?;
            let o = &r.overall;
            print_last(
                &format!(
                    "emotion: {} examples, sign accuracy {:.4}, sign macro-F1 {:.4}",
                    o.examples, o.sign_accuracy, o.sign_macro_f1
                ),
                &r,
            )
        }
    }
}

fn load_model(path: &Path) -> Result<RankerModel> {
    RankerModel::from_json(&read(path)?).with_context(|| format!("{}", path.display()))
}

pub fn train(cmd: TrainCommand) -> Result<()> {
    match cmd {
        TrainCommand::Ranker { kb, out, calibrate } => {
            let entries: Vec<Entry> = kb_file(&kb)?.iter().map(Entry::from).collect();
            let mut model = ranker::train(&entries, &TrainParams::default())?;
            if let Some(path) = calibrate {
                let questions: Vec<FaqQuery> = jsonl(&path)?;
                let labelled: Vec<(&str, &str)> = questions
                    .iter()
                    .map(|q| (q.text.as_str(), q.answer_id.as_str()))
                    .collect();
                let mut faq = Faq::new(entries, Some(model), Thresholds::default())?;
                let right = faq
                    .calibrate(&labelled)
                    .with_context(|| format!("{}", path.display()))?;
                tracing::info!(
                    questions = labelled.len(),
                    ranked_right = right,
                    "confidence fitted on labelled questions"
                );
                model = faq.ranker;
            }
            let json = serde_json::to_string_pretty(&model)?;
            std::fs::write(&out, json + "\n")
                .with_context(|| format!("cannot write {}", out.display()))?;
            tracing::info!(version = %model.version, out = %out.display(), "ranker trained");
            print_last(
                &format!(
                    "ranker {}: held-out P@1 {:.4} (BM25 order {:.4})",
                    model.version,
                    model.report.held_out_p_at_1_ranker,
                    model.report.held_out_p_at_1_bm25
                ),
                &serde_json::json!({"version": model.version, "report": model.report}),
            )
        }
    }
}

#[derive(Debug, Default, Serialize)]
struct ImportReport {
    entries: usize,
    created: usize,
    updated: usize,
    unchanged: usize,
    /// Retired entries are not brought back by an import; that takes a deliberate edit.
    retired_skipped: Vec<String>,
}

pub async fn kb(store: &StoreArgs, cmd: KbCommand) -> Result<()> {
    let KbCommand::Import { file, demo } = cmd;
    let (name, entries) = match (file, demo) {
        (Some(path), _) => (path.display().to_string(), kb_file(&path)?),
        (None, true) => (
            "the demo KB".to_owned(),
            kb::parse(kb::DEMO_KB).map_err(|e| anyhow::anyhow!("the built-in demo KB: {e}"))?,
        ),
        (None, false) => bail!("name a file or pass --demo"),
    };
    // Validation is done: from here on every entry is written or found unchanged.
    let log = store.open().await?;
    let service = CommandService::new(Arc::new(log));
    let metadata = Metadata::for_request(
        Actor::new(ActorKind::System, "kb-import"),
        uuid::Uuid::now_v7(),
    );
    let mut report = ImportReport {
        entries: entries.len(),
        ..ImportReport::default()
    };
    for e in &entries {
        let id = e.entry_id();
        let at = chrono::Utc::now();
        let loaded = service.load::<KnowledgeDecider>(id).await?;
        let command = match loaded.state {
            KnowledgeState::Absent => e.create_command(at),
            KnowledgeState::Active(_) => KnowledgeCommand::Edit {
                edit: KnowledgeEdit {
                    question: Some(e.question.clone()),
                    paraphrases: Some(e.paraphrases.clone()),
                    answer: Some(e.answer.clone()),
                    category: Some(Category::new(e.category.clone())),
                    locale: Some(Locale::new(e.locale.clone())),
                },
                at,
            },
            KnowledgeState::Retired(_) => {
                report.retired_skipped.push(e.id.clone());
                continue;
            }
        };
        let creating = matches!(command, KnowledgeCommand::Create { .. });
        let done = service
            .execute::<KnowledgeDecider>(id, command, &metadata)
            .await
            .with_context(|| format!("entry {}", e.id))?;
        match (creating, done.events.is_empty()) {
            (true, _) => report.created += 1,
            (false, true) => report.unchanged += 1,
            (false, false) => report.updated += 1,
        }
    }
    print_last(
        &format!(
            "{name}: {} entries: {} created, {} updated, {} unchanged, {} retired and skipped",
            report.entries,
            report.created,
            report.updated,
            report.unchanged,
            report.retired_skipped.len()
        ),
        &report,
    )
}
