//! kefu-workers: the imperative shell around the domain's deciders.
//!
//! The workers (bot, router, assigner, timers, archiver) react to events and issue their
//! commands through the desk (`kefu-desk`: the command service and the operations across
//! streams); those that react to what happens in a conversation are pure functions run by
//! [`shell::Shell`].

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
