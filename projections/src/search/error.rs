use std::path::PathBuf;

use chrono::{DateTime, Utc};

/// Everything the search index can refuse or fail at.
///
/// Bad requests (`EmptyQuery`, `BadLimit`, `BadOffset`, `QueryTooLong`, `BadDateRange`) are
/// the caller's to fix and change nothing. `Decode` and `UnknownEntity` stop the projection at
/// the event that cannot be indexed: nothing of that event was written, so the caller can
/// `rollback` (or drop the index) and resume from `checkpoint()` once the cause is fixed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("cannot index event {version} of stream {stream} ({event_type}): {reason}")]
    Decode {
        stream: String,
        version: u64,
        event_type: String,
        reason: String,
    },

    #[error(
        "event {version} of stream {stream} ({event_type}) is about a {entity} the index has no \
         document for; the index missed that stream's first events, so rebuild it from position 0"
    )]
    UnknownEntity {
        stream: String,
        version: u64,
        event_type: String,
        entity: &'static str,
    },

    #[error(
        "nothing to search for: the query text has no searchable words and no filter (queue, \
         agent, status or date range) is set"
    )]
    EmptyQuery,

    #[error("query text is {chars} characters long; the limit is {max}")]
    QueryTooLong { chars: usize, max: usize },

    #[error("limit {limit} is out of range: it must be between 1 and {max}")]
    BadLimit { limit: usize, max: usize },

    #[error(
        "offset {offset} is over the maximum of {max}: narrow the query instead of paging so deep"
    )]
    BadOffset { offset: usize, max: usize },

    #[error("cursor {cursor:?} is not one this search gave out: {reason}")]
    BadCursor { cursor: String, reason: String },

    #[error("a page starts after a cursor or at an offset, not both")]
    CursorAndOffset,

    #[error("bad date range: `from` ({from}) is after `to` ({to})")]
    BadDateRange {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },

    #[error(
        "the search index in {path} cannot be used by this version of kefu ({reason}); the index \
         is disposable: rebuild it (SearchIndex::recreate, or delete the directory) and replay the \
         log from position 0"
    )]
    Incompatible { path: PathBuf, reason: String },

    #[error(
        "{path} holds files that are not a search index; refusing to delete them to rebuild the \
         index there"
    )]
    NotAnIndex { path: PathBuf },

    #[error("a stored search document is unreadable ({0}); rebuild the index")]
    Corrupt(String),

    #[error("search index directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(transparent)]
    Storage(#[from] kefu_eventlog::storage::StorageProblem),

    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
}
