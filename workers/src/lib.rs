//! kefu-workers: the imperative shell around the domain's deciders.
//!
//! [`command::CommandService`] runs one command against one stream (load, decide, append with
//! the expected version, retry on conflict). The workers (bot, router, assigner, timers,
//! archiver) will live beside it and issue their commands through it.

pub mod command;

pub use command::{CommandError, CommandService, Executed};
