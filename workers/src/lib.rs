//! kefu-workers: the imperative shell around the domain's deciders.
//!
//! The workers (bot, router, assigner, timers, archiver) react to events and issue their
//! commands through the desk (`kefu-desk`: the command service and the operations across
//! streams); those that react to what happens in a conversation are pure functions run by
//! [`shell::Shell`].
//!
//! `kefu serve` runs them (`--workers
//! bot,router,assigner,surveys,idle,sla,survey-reminders,archiver,probes`, or `none`); `kefu worker
//! NAME` runs one alone against the PostgreSQL store a server keeps the read models in. Start
//! reading at [`runtime`] (how a worker follows the log, and why two instances never act twice) and
//! [`shell`] (the pure reactions). Forecasting is not here: it is a computation over statistics,
//! not a reaction to events (`projections/src/forecast.rs`).

pub mod archiver;
pub mod assigner;
pub mod bot;
pub mod gateway;
pub mod idle;
pub mod probes;
pub mod reactions;
pub mod router;
pub mod runtime;
pub mod shell;
pub mod sla;
pub mod surveys;
