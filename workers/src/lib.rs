//! kefu-workers: the imperative shell around the domain's deciders.
//!
//! [`command::CommandService`] runs one command against one stream (load, decide, append with
//! the expected version, retry on conflict); [`desk::Desk`] runs what a person does at the
//! help desk as the commands it takes across streams (seat first, then assignment, ...). The workers (bot, router, assigner, timers,
//! archiver) live beside it and issue their commands through it; those that react to what
//! happens in a conversation are pure functions run by [`shell::Shell`].

pub mod archiver;
pub mod assigner;
pub mod bot;
pub mod command;
pub mod desk;
pub mod gateway;
pub mod idle;
pub mod probes;
pub mod reactions;
pub mod router;
pub mod runtime;
pub mod shell;
pub mod sla;
pub mod surveys;

pub use command::{CommandError, CommandService, Executed};
pub use desk::{Desk, Done};
