use kefu_eventlog::LogError;

use crate::sql::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),
    /// Another process rebuilt, swapped or advanced this generation: reload and go on from the
    /// stored checkpoint.
    #[error("projection {projection} generation {generation} was changed by another process")]
    Superseded { projection: String, generation: i64 },
    #[error("unknown projection {name:?}; known: {known}")]
    UnknownProjection { name: String, known: String },
    #[error("no generation {generation} of projection {projection}")]
    UnknownGeneration { projection: String, generation: i64 },
    #[error(
        "projection {projection} has no live generation yet: is `kefu serve` running, or run `kefu replay`"
    )]
    NotBuilt { projection: String },
    /// The live generation was built by an older kefu whose tables lack columns this one
    /// writes: its rows cannot be brought up to date in place, only rebuilt from the log.
    #[error(
        "projection {projection} generation {generation} was built by an older kefu ({table}: {reason}); \
         rebuild it from the log with `kefu replay {projection}`"
    )]
    Outdated {
        projection: String,
        generation: i64,
        table: String,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
    /// A projection asked for something it did not declare: a bug in kefu.
    #[error("projection bug: {0}")]
    Bug(String),
}
