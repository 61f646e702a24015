//! The full-text search index: conversations, their messages, tickets and knowledge-base
//! entries, searchable in Chinese and English, fed from the log like any other read model.
//!
//! # Feeding it
//!
//! [`SearchIndex::apply`] takes the log's events in position order and buffers their effect in
//! tantivy's writer; [`SearchIndex::commit`] makes everything applied so far durable and
//! visible to searches, together with the position of the last applied event. Resume a
//! subscription at [`SearchIndex::resume_from`] after opening. The index is disposable: it can
//! always be rebuilt by replaying the log from position 0 into [`SearchIndex::recreate`].
//!
//! # Documents
//!
//! | kind | one per | kept current | dated by |
//! |---|---|---|---|
//! | [`DocKind::Message`] | turn or internal note | written once | when written |
//! | [`DocKind::Conversation`] | conversation | status, queue, agent, turns | start |
//! | [`DocKind::Ticket`] | ticket | every field, comments | opening |
//! | [`DocKind::Knowledge`] | active FAQ entry | every edit; removed when retired | creation |
//!
//! Every document has a unique id term; a change deletes the document by that term and adds
//! the new version in the same commit, so a document never exists twice.
//!
//! # Where the current state of a conversation lives
//!
//! A message must be filterable by the queue and agent its conversation had when it was
//! written, so the projection needs each conversation's current queue, agent and status
//! when a turn arrives, also after a restart. It reads them back from the conversation's own
//! document (every document stores its record), rather than keeping a side map that is
//! rebuilt on open: the conversation document has to be kept current anyway, so it is the one
//! place that state lives, opening costs nothing however large the index is, and memory does
//! not grow with the number of conversations. The price is one term lookup per event on a
//! conversation not touched since the last commit. Documents written since the last commit
//! are not visible to tantivy's searcher, so their records are kept in memory until the
//! commit (`pending`); that map never outgrows one batch.
//!
//! # Replays
//!
//! Conversation, ticket and knowledge documents record the stream version of the last event
//! folded into them, and an event at or below it is skipped, because adding a ticket comment
//! or a turn to a document twice would not be undone by delete-then-add. Message documents
//! follow their conversation's version, so a replayed turn neither duplicates the message
//! nor rewrites it with the conversation's later queue and agent. A retired knowledge entry
//! leaves a tombstone (kind `retired`, no text, never returned) so its replayed creation does
//! not bring it back.
//!
//! # Paging and where the index lives
//!
//! Hits come in one total order, relevance, then time (newest first), then document id, and a page
//! can start after a hit ([`SearchCursor`]: its three keys) rather than at an offset, so paging
//! goes as deep as the hits do; the collector keeps only documents after the cursor, and documents
//! tied on score and time are read and ordered by id at a page's edges. The index is per server
//! process, on local disk (`live.rs`), even when the log and the read models are in PostgreSQL. The
//! record format ([`FORMAT`]) and the analyzer's registered name change with the analyzer, so an
//! index of the old terms is refused as incompatible and `kefu serve` builds a new one from the
//! log.

mod analyzer;
mod error;
mod live;
mod mask;
mod project;
mod query;
mod record;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kefu_eventlog::Position;
use kefu_eventlog::storage::{self, Target};
use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexWriter, ReloadPolicy, TantivyDocument};

pub use error::SearchError;
pub use live::{LiveSearch, SearchHandle, SearchHome, Seen, catch_up_search, rebuild_search};
pub use mask::{CARD_MASK, EMAIL_MASK, ID_CARD_MASK, PHONE_MASK, mask};
pub use query::{
    DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, MAX_QUERY_CHARS, SearchCursor, SearchHit, SearchReader,
    SearchRequest, SearchResults, SearchScope, Snippet,
};
pub use record::{ConversationStatus, DocKind, DocStatus, SpeakerKind};

use record::Record;
use schema::Fields;

/// The words the index makes of `text` (jieba, lower-cased, punctuation dropped, phone
/// numbers and e-mail addresses masked first): what documents are indexed under and queries
/// are built from. Public so comparisons can feed another engine the same words.
pub fn terms(text: &str) -> Vec<String> {
    analyzer::terms(&mut analyzer::analyzer(), &mask(text))
}

/// What the index writer may buffer before it flushes a segment (one indexing thread: the
/// projection is fed one event at a time, and the machine it runs on is shared).
const WRITER_MEMORY_BYTES: usize = 32 * 1024 * 1024;

/// The layout of stored records and of the commit payload, and the analyzer's terms. Bump it
/// when any changes in a way old indexes cannot be read with: they are then refused as
/// incompatible, and `kefu serve` builds the index again from the log (2: English words
/// stemmed, the analyzer `kefu_zh_en_stem`).
pub const FORMAT: u32 = 2;

/// Stored as tantivy's commit payload, so it is written in the same atomic step as the
/// documents it describes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CommitPayload {
    /// The record format the index was written in ([`FORMAT`] for this version).
    pub format: u32,
    /// The last event applied before this commit.
    pub position: Option<Position>,
}

impl CommitPayload {
    fn parse(payload: &str) -> Result<Self, String> {
        serde_json::from_str(payload)
            .map_err(|e| format!("its checkpoint {payload:?} does not parse: {e}"))
    }
}

pub struct SearchIndex {
    fields: Fields,
    writer: IndexWriter<TantivyDocument>,
    reads: SearchReader,
    location: Option<PathBuf>,
    /// The position stored with the last commit.
    committed: Option<Position>,
    /// The furthest position applied since (equal to `committed` when nothing was).
    applied: Option<Position>,
    /// Whether anything was written to the writer since the last commit.
    dirty: bool,
    /// Records of conversations, tickets and entries written since the last commit, by doc id.
    pending: HashMap<String, Record>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("location", &self.location)
            .field("committed", &self.committed)
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Opens the index in `dir`, creating the directory and an empty index if there is none.
    ///
    /// An index written with another schema or record format is refused with
    /// [`SearchError::Incompatible`]; an index another process is writing is refused too
    /// (tantivy's writer lock).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, SearchError> {
        let dir = dir.as_ref();
        // tantivy's errors name neither the path nor the reason; the directory can tell.
        Self::open_in(dir).map_err(|e| storage::explain(dir, Target::Dir, e))
    }

    fn open_in(dir: &Path) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir).map_err(|source| SearchError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let directory = MmapDirectory::open(dir).map_err(tantivy::TantivyError::from)?;
        let (schema, fields) = Fields::schema();
        let index = if Index::exists(&directory).map_err(tantivy::TantivyError::from)? {
            let index = Index::open(directory).map_err(|e| SearchError::Incompatible {
                path: dir.to_owned(),
                reason: format!("tantivy cannot open it: {e}"),
            })?;
            if index.schema() != schema {
                return Err(SearchError::Incompatible {
                    path: dir.to_owned(),
                    reason: "its fields differ from the ones this version indexes".into(),
                });
            }
            index
        } else {
            Index::create(directory, schema, Default::default())?
        };
        Self::with_index(index, fields, Some(dir.to_owned()))
    }

    /// Opens the committed index in `dir` for searching only: no writer, so it works while
    /// another process (the server) feeds the index.
    pub fn open_reader(dir: impl AsRef<Path>) -> Result<SearchReader, SearchError> {
        let dir = dir.as_ref();
        let directory = MmapDirectory::open(dir).map_err(|e| SearchError::Io {
            path: dir.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
        if !Index::exists(&directory).map_err(tantivy::TantivyError::from)? {
            return Err(SearchError::Io {
                path: dir.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no search index here yet: start `kefu serve` or run `kefu replay search`",
                ),
            });
        }
        let index = Index::open(directory).map_err(|e| SearchError::Incompatible {
            path: dir.to_owned(),
            reason: format!("tantivy cannot open it: {e}"),
        })?;
        let (schema, fields) = Fields::schema();
        if index.schema() != schema {
            return Err(SearchError::Incompatible {
                path: dir.to_owned(),
                reason: "its fields differ from the ones this version indexes".into(),
            });
        }
        index
            .tokenizers()
            .register(analyzer::TOKENIZER, analyzer::analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchReader {
            reader,
            fields,
            analyzer: analyzer::analyzer(),
        })
    }

    /// An empty index in memory, for tests and one-off rebuilds.
    pub fn in_memory() -> Result<Self, SearchError> {
        let (schema, fields) = Fields::schema();
        Self::with_index(Index::create_in_ram(schema), fields, None)
    }

    /// Deletes the index in `dir` (if any) and opens an empty one there, for a rebuild from
    /// position 0. Refuses to delete a directory that holds anything but a search index.
    pub fn recreate(dir: impl AsRef<Path>) -> Result<Self, SearchError> {
        let dir = dir.as_ref();
        let io = |source| SearchError::Io {
            path: dir.to_owned(),
            source,
        };
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                let empty = entries.next().is_none();
                if !empty {
                    if !dir.join("meta.json").is_file() {
                        return Err(SearchError::NotAnIndex {
                            path: dir.to_owned(),
                        });
                    }
                    std::fs::remove_dir_all(dir).map_err(io)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        tracing::info!(dir = %dir.display(), "search index recreated empty");
        Self::open(dir)
    }

    fn with_index(
        index: Index,
        fields: Fields,
        location: Option<PathBuf>,
    ) -> Result<Self, SearchError> {
        // Tokenizers are not stored with the index: register ours before anything tokenizes.
        index
            .tokenizers()
            .register(analyzer::TOKENIZER, analyzer::analyzer());
        let incompatible = |reason: String| SearchError::Incompatible {
            path: location.clone().unwrap_or_default(),
            reason,
        };
        let committed = match index.load_metas()?.payload {
            Some(payload) => {
                let payload = CommitPayload::parse(&payload).map_err(incompatible)?;
                if payload.format != FORMAT {
                    return Err(incompatible(format!(
                        "its record format is {}, this version reads {FORMAT}",
                        payload.format
                    )));
                }
                payload.position
            }
            None => None,
        };
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY_BYTES)?;
        // Reloaded by hand right after each commit, so a search that follows a commit always
        // sees it (the default policy reloads asynchronously, a little later).
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        if committed.is_none() && reader.searcher().num_docs() > 0 {
            return Err(incompatible("it holds documents but no checkpoint".into()));
        }
        let this = SearchIndex {
            fields,
            writer,
            reads: SearchReader {
                reader,
                fields,
                analyzer: analyzer::analyzer(),
            },
            location,
            committed,
            applied: committed,
            dirty: false,
            pending: HashMap::new(),
        };
        tracing::debug!(location = ?this.location, checkpoint = ?committed, "search index open");
        Ok(this)
    }

    /// The position of the last event whose effect is committed: resume after it. None for
    /// an index nothing was committed to.
    pub fn checkpoint(&self) -> Option<Position> {
        self.committed
    }

    /// Where a subscription feeding this index starts: just after the checkpoint.
    pub fn resume_from(&self) -> Position {
        self.committed.map_or(Position::START, Position::next)
    }

    /// Makes everything applied since the last commit durable and searchable, with the
    /// position of the last applied event as the new checkpoint, in one atomic step: after a
    /// crash the index holds either all of it and the new checkpoint, or none of it and the
    /// old one. Returns the checkpoint.
    ///
    /// If the commit fails, the uncommitted work is discarded (as by [`Self::rollback`]) and
    /// the error returned; feed the index again from [`Self::resume_from`].
    pub fn commit(&mut self) -> Result<Option<Position>, SearchError> {
        if !self.dirty && self.applied == self.committed {
            return Ok(self.committed);
        }
        let payload = serde_json::to_string(&CommitPayload {
            format: FORMAT,
            position: self.applied,
        })
        .map_err(|e| SearchError::Corrupt(format!("cannot encode the checkpoint: {e}")))?;
        let committed = self.writer.prepare_commit().and_then(|mut prepared| {
            prepared.set_payload(&payload);
            prepared.commit()
        });
        if let Err(e) = committed {
            tracing::error!(error = %e, "search index commit failed; discarding uncommitted work");
            self.rollback()?;
            return Err(e.into());
        }
        self.committed = self.applied;
        self.dirty = false;
        self.pending.clear();
        self.reads.reader.reload()?;
        tracing::debug!(checkpoint = ?self.committed, "search index committed");
        Ok(self.committed)
    }

    /// Discards everything applied since the last commit.
    pub fn rollback(&mut self) -> Result<(), SearchError> {
        self.writer.rollback()?;
        self.pending.clear();
        self.applied = self.committed;
        self.dirty = false;
        Ok(())
    }

    /// How many committed documents of `kind` the index holds.
    pub fn count(&self, kind: DocKind) -> Result<u64, SearchError> {
        self.reads.count(kind)
    }

    /// Searches what was committed.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResults, SearchError> {
        self.reads.search(request)
    }

    /// A handle to search with from elsewhere (an API handler) while this index is fed.
    pub fn reader(&self) -> SearchReader {
        self.reads.clone()
    }
}
