use uuid::Uuid;

use crate::event::{ExpectedVersion, StreamId};

/// Everything that can go wrong talking to the log. The first group is the caller's fault and
/// is raised before anything is written; `WrongExpectedVersion` and `DuplicateEventId` are
/// decided by the store; the rest are the store's or the network's.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("invalid stream id {stream:?}: {reason}")]
    InvalidStreamId {
        stream: String,
        reason: &'static str,
    },

    #[error("invalid expected version {input:?}: use \"any\", \"no_stream\" or a version number")]
    InvalidExpectedVersion { input: String },

    #[error("empty batch: an append needs at least one event")]
    EmptyBatch,

    #[error("batch of {count} events is over the limit of {max} events per append")]
    BatchTooLarge { count: usize, max: usize },

    #[error("event {index} of the batch: payload is {size} bytes, over the limit of {limit} bytes")]
    PayloadTooLarge {
        index: usize,
        size: usize,
        limit: usize,
    },

    #[error("event {index} of the batch: payload must be a JSON object, got {found}")]
    PayloadNotObject { index: usize, found: &'static str },

    #[error("event {index} of the batch: invalid event type {event_type:?}: {reason}")]
    InvalidEventType {
        index: usize,
        event_type: String,
        reason: &'static str,
    },

    #[error("event {index} of the batch: schema version must be at least 1")]
    InvalidSchemaVersion { index: usize },

    #[error("event {index} of the batch: {reason}")]
    InvalidMetadata { index: usize, reason: &'static str },

    #[error("event id {id} appears twice in the batch")]
    DuplicateIdInBatch { id: Uuid },

    #[error(
        "conflict on stream {stream}: expected version {expected}, but the stream {}",
        match actual { Some(v) => format!("is at version {v}"), None => "does not exist".to_owned() }
    )]
    WrongExpectedVersion {
        stream: StreamId,
        expected: ExpectedVersion,
        actual: Option<u64>,
    },

    #[error(
        "event id {id} is already stored ({detail}); a retry must resend the same batch to the same stream"
    )]
    DuplicateEventId { id: Uuid, detail: String },

    #[error("the {backend} store is unavailable: {message}")]
    Unavailable {
        backend: &'static str,
        message: String,
    },

    #[error("the {backend} store failed: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },

    /// An archive file or manifest entry that is missing, damaged or unreadable, or history
    /// the archive should hold and does not. `path` names the file or directory.
    #[error("archive {path}: {reason}")]
    Archive { path: String, reason: String },

    /// A file or directory of the store that cannot be opened or created, with the reason
    /// (read-only, full, permission, missing directory) found by `storage::diagnose`.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageProblem),

    #[error("stored data is corrupt: {0}")]
    Corrupt(String),

    #[error("invalid configuration: {0}")]
    Config(String),
}

impl LogError {
    /// True for optimistic-concurrency conflicts: the caller should reload and decide again.
    pub fn is_conflict(&self) -> bool {
        matches!(self, LogError::WrongExpectedVersion { .. })
    }

    /// True when the store could not be reached or did not answer (a refused or dropped
    /// connection, a server shutting down or starting up): waiting and trying again can
    /// succeed. Bad configuration (a wrong URL, credentials or database name) is not this.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, LogError::Unavailable { .. })
    }

    /// True when the request itself was wrong (retrying it unchanged cannot succeed).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            LogError::InvalidStreamId { .. }
                | LogError::InvalidExpectedVersion { .. }
                | LogError::EmptyBatch
                | LogError::BatchTooLarge { .. }
                | LogError::PayloadTooLarge { .. }
                | LogError::PayloadNotObject { .. }
                | LogError::InvalidEventType { .. }
                | LogError::InvalidSchemaVersion { .. }
                | LogError::InvalidMetadata { .. }
                | LogError::DuplicateIdInBatch { .. }
        )
    }
}
