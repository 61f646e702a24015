//! The archiver: moves the history of conversations closed long ago out of the hot store into
//! the log's archive (`kefu_eventlog::archive`), where it can still be read by id, replayed
//! and audited.
//!
//! It sweeps on a schedule, like the idle timeout: which conversations are closed, and since
//! when, comes from the conversation view; what moves is decided against the log itself
//! (everything of the stream but its last event, which stays hot so the stream's version
//! continues for a reopen or a late survey answer). Nothing is held in memory: a restart
//! sweeps again and finds only what is left. It issues no commands and writes no events:
//! archiving changes where events are kept, not what happened.
//!
//! Two archivers never move a batch twice: each batch is moved under the store's archiver
//! lock (a PostgreSQL advisory lock, or a file lock beside the embedded store), and what moves
//! is read under it, after the archive's manifest, so the second archiver finds the first's
//! work done. One that finds the lock taken leaves the sweep to the holder.
//!
//! A conversation is archived `--archive-after-days` after its close (90 by default; at least 3,
//! the 72-hour reopen window), in batches of `--archive-batch` conversations a file (200). A late
//! survey answer or a reopen simply appends to the hot store. `workers/tests/archiver.rs` proves
//! it, two archivers sweeping at once included.

use kefu_domain::DomainEvent;
use kefu_domain::conversation::{ConversationEvent, REOPEN_WINDOW_HOURS};
use kefu_eventlog::archive::{self, ArchiveStore, Archived};
use kefu_eventlog::{EventLog, StreamId};
use kefu_projections::ReadModels;
use kefu_projections::conversations::ConversationFilter;

use crate::runtime::{Sweep, WorkerError};
use kefu_desk::Desk;
use kefu_desk::command::CommandError;

pub const NAME: &str = "archiver";

/// Days after its close a conversation is archived, by default.
pub const DEFAULT_AFTER_DAYS: u32 = 90;

/// Conversations per archive batch (one file, one delete transaction).
pub const DEFAULT_BATCH: usize = 200;

pub struct Archiver<L> {
    desk: Desk<L>,
    models: ReadModels,
    after_days: u32,
    batch: usize,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    pub conversations: usize,
    pub events: u64,
    pub files: Vec<String>,
    /// True when another archiver held the lock and this sweep stopped.
    pub yielded: bool,
}

impl<L: EventLog + ArchiveStore> Archiver<L> {
    /// Archives conversations closed more than `after_days` ago, `batch` at a time. Not
    /// before the reopen window has passed: a conversation that may still be reopened is
    /// still being worked on.
    pub fn new(
        desk: Desk<L>,
        models: ReadModels,
        after_days: u32,
        batch: usize,
    ) -> Result<Self, WorkerError> {
        let min_days = (REOPEN_WINDOW_HOURS / 24) as u32;
        let problem = if after_days < min_days {
            Some(format!(
                "must be at least {min_days} days (the reopen window)"
            ))
        } else if batch == 0 {
            Some("the batch must hold at least one conversation".to_owned())
        } else if desk.commands().log().archive().is_none() {
            Some("the store has no archive directory".to_owned())
        } else {
            None
        };
        if let Some(reason) = problem {
            return Err(WorkerError::Command(CommandError::Rejected(
                kefu_domain::DomainError::Validation {
                    field: "archive after days",
                    reason,
                },
            )));
        }
        Ok(Archiver {
            desk,
            models,
            after_days,
            batch,
        })
    }

    /// One sweep at the desk's clock.
    pub async fn sweep(&self) -> Result<Swept, WorkerError> {
        let log = self.desk.commands().log();
        let archive = log.archive().expect("checked in new").clone();
        let cutoff = self.desk.now().timestamp_millis() - i64::from(self.after_days) * 86_400_000;
        let view = self
            .models
            .live(kefu_projections::conversations::NAME)
            .await?;
        let filter = ConversationFilter {
            status: Some("closed".to_owned()),
            ..ConversationFilter::default()
        };
        let mut due = Vec::new();
        for c in view.all_conversations(&filter).await? {
            if c.closed_at.is_none_or(|at| at > cutoff) {
                continue;
            }
            let Ok(stream) = StreamId::of(ConversationEvent::CATEGORY, &c.id) else {
                continue;
            };
            // Everything but the last event the view has seen is archived already.
            let archived = archive.last_version(&stream)?;
            if archived.map_or(-1, |v| v as i64) >= c.version - 1 {
                continue;
            }
            due.push(stream);
        }
        let mut swept = Swept::default();
        for chunk in due.chunks(self.batch) {
            let Archived {
                locked,
                streams,
                events,
                file,
                ..
            } = archive::archive_streams(&**log, chunk, None).await?;
            if !locked {
                swept.yielded = true;
                break;
            }
            swept.conversations += streams;
            swept.events += events;
            swept.files.extend(file);
        }
        Ok(swept)
    }
}

// Whatever a failed sweep left half done is finished by the next one first (`recover`).
impl<L: EventLog + ArchiveStore> Sweep for Archiver<L> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn sweep(&self) -> Result<usize, WorkerError> {
        let s = Archiver::sweep(self).await?;
        if s.conversations > 0 {
            tracing::info!(
                events = s.events,
                files = s.files.len(),
                "archived closed conversations"
            );
        }
        Ok(s.conversations)
    }
}
