//! The bot's and triage's models: pure computation over an in-memory index, no event log, no
//! async. Used by the workers (which turn what these functions return into events), by
//! `kefu eval` / `kefu train` (the same code path as production), and by the benchmarks.
//!
//! - [`kb`]: the knowledge-base import format, validated line by line.
//! - [`text`], [`synonyms`]: tokenization (jieba, stemming, character n-grams) and the shop's
//!   synonyms.
//! - [`retrieval`], [`faq`], [`ranker`]: BM25 candidates, ranking features, the learned
//!   re-ranker with its calibrated confidence, and the answer / clarify / hand-off decision.
//! - [`emotion`], [`polarity`]: polarity (lexicon rules and a model learned from labelled
//!   Chinese sentences), mood, trend and reply strategy.
//! - [`intent`], [`scenario`]: the text intent classifier, the order-context prior, their
//!   combination, and routing.
//! - [`transfer`]: a typed request for a person or to complain.
//! - [`reply`]: one customer turn through the bot (answer, emotion, strategy).
//! - [`eval`]: the evaluation metrics and runners behind `kefu eval`.
//!
//! A crate of its own because three different shells run exactly this code: the workers, which turn
//! its results into `BotTurnRecorded`, `EmotionAssessed`, `ScenarioPredicted` and `RoutingDecided`;
//! `kefu eval` / `kefu train`, which measure it on labelled files; and `bot/benches/answer.rs`.
//! Kept apart from the workers, the evaluations and benchmarks need no store, and the models are
//! tested as pure code. Beside the crate: `examples/` (development aids: `cv_intents`, `debug_faq`,
//! `eval_emotion`, `calibrate_faq`, and `train_polarity_zh`, which trains what ships of
//! [`polarity`]), `lexicon/` (every word list, written for kefu; provenance in its README) and
//! `baseline/` (the scikit-learn and VADER baselines of BENCHMARKS.md).

pub mod emotion;
pub mod eval;
pub mod faq;
pub mod intent;
pub mod kb;
pub mod nb;
pub mod polarity;
pub mod ranker;
pub mod reply;
pub mod retrieval;
pub mod scenario;
pub mod synonyms;
pub mod text;
pub mod transfer;

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("the knowledge base is empty")]
    EmptyKnowledgeBase,
    #[error("no labelled examples to train on")]
    NothingToTrainOn,
    #[error(
        "thresholds answer={answer} clarify={clarify}: each must be in [0, 1] and clarify <= answer"
    )]
    Thresholds { answer: f64, clarify: f64 },
    #[error("the model does not fit this build: found {found}, expected {expected}")]
    ModelMismatch { found: String, expected: String },
    #[error("not a model file: {0}")]
    BadModel(String),
    #[error("line {line}: {message}")]
    BadLine { line: usize, message: String },
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
}
