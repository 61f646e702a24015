//! kefu-projections: the read side. Read models built from the log, apart from the write
//! path, each with its own checkpoint, each disposable and rebuildable from position 0.
//!
//! | module | projection | what it answers |
//! |---|---|---|
//! | [`queues`] | `queues` | who is waiting in each queue and in what order; each agent's chats and free seats; live counts |
//! | [`stats`] | `stats` | CSAT, response rate, first response, resolution, bot containment, scenario match, conversion, hand-offs, by any dimension |
//! | [`conversations`] | `conversations` (its transcript: the conversation's stream) | a conversation's transcript, emotions, triage and routing; listings with filters |
//! | [`tickets`] | `tickets` | a ticket with the history of every field |
//! | [`audit`] | `audit` (an index: correlation id → stream and version; the events are read from the log) | everything one request set off, as a causation tree, and whether the index has read the whole log |
//! | [`search`] | a tantivy index on disk | messages, conversations, tickets and FAQ entries, in Chinese and English |
//!
//! Start at [`runner`]: the [`Projection`] contract, generations, checkpoints, rebuilds.
//! [`sql`] is the small SQL layer that lets the same tables live in PostgreSQL and SQLite;
//! [`rows`] is the write-back cache that makes a rebuild a few statements per thousand events.

pub mod audit;
pub mod conversations;
pub mod error;
pub mod forecast;
pub mod queues;
pub mod rows;
pub mod runner;
pub mod search;
pub mod sql;
pub mod stats;
pub mod tickets;
pub mod view;

pub use error::ProjectionError;
pub use runner::{
    Catalog, Clock, Envelope, Failing, GenState, Generation, LiveProjections, Liveness, Progress,
    Projection, Rebuilt, Until, rebuild,
};
pub use sql::{ReadStore, ReadStoreConfig};
pub use view::{ReadModels, View};

/// Every SQL projection, by name.
pub const NAMES: &[&str] = &[
    queues::NAME,
    stats::NAME,
    conversations::NAME,
    tickets::NAME,
    audit::NAME,
];

/// A fresh instance of every SQL projection.
pub fn all() -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(queues::QueuesProjection),
        Box::new(stats::StatsProjection),
        Box::new(conversations::ConversationsProjection),
        Box::new(tickets::TicketsProjection),
        Box::new(audit::AuditProjection),
    ]
}

/// The projections named (all of them for an empty list), or an error naming the unknown one.
pub fn by_names(names: &[String]) -> Result<Vec<Box<dyn Projection>>, ProjectionError> {
    if names.is_empty() {
        return Ok(all());
    }
    names
        .iter()
        .map(|n| {
            all().into_iter().find(|p| p.name() == n).ok_or_else(|| {
                ProjectionError::UnknownProjection {
                    name: n.clone(),
                    known: NAMES.join(", "),
                }
            })
        })
        .collect()
}
