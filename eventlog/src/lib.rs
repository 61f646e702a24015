//! kefu's append-only event log.
//!
//! Every chat turn, routing decision and ticket change is an event in one log. This crate owns the
//! log's contract ([`EventLog`]), the checks every backend applies before writing
//! ([`Limits::validate`]), catch-up-then-live subscriptions ([`Subscription`]), and the backends:
//! [`sqlite::SqliteLog`] (the embedded default), [`postgres::PostgresLog`] (production),
//! [`memory::MemoryLog`] (the deterministic simulation's) and, behind the `kurrentdb` feature,
//! `kurrent::KurrentLog`.
//!
//! Start reading at [`EventLog`], then `eventlog/tests/contract/mod.rs`, what every backend must
//! prove. The mechanisms are explained where they live: `postgres.rs` (why subscriptions cannot
//! skip an event, the append path, group commit, the correlation index), `archive.rs` (the
//! archive), `sqlite.rs` (why SQLite for the embedded default), `wake.rs` (waking other processes'
//! subscribers), `retry.rs` (telling a retry from a conflict).
//!
//! `append_holding` exists so that a test can hold a transaction open: the contract suite's torture
//! test makes commits land out of the order their positions were taken in, which is how a gap in a
//! subscription shows itself.

pub mod archive;
mod backoff;
mod error;
mod event;
pub mod faults;
pub mod memory;
mod open;
pub mod postgres;
mod progress;
mod retry;
pub mod sqlite;
pub mod storage;
mod subscription;
pub mod testing;
mod validate;
mod wake;

#[cfg(feature = "kurrentdb")]
pub mod kurrent;

use std::future::Future;
use std::time::Duration;

pub use archive::{Archive, ArchiveStore};
pub use backoff::{BACKOFF_CAP, backoff};
pub use error::LogError;
pub use event::{
    Actor, ActorKind, Appended, ExpectedVersion, MAX_EVENT_TYPE_LEN, MAX_STREAM_ID_LEN, Metadata,
    NewEvent, Position, RecordedEvent, StreamId,
};
pub use open::{AnyLog, StoreConfig};
pub use progress::{Holder, LogProgress};
pub use subscription::Subscription;
pub use validate::{HARD_MAX_BATCH, Limits};

/// How many events a subscription reads per round trip while catching up.
pub const DEFAULT_PAGE: usize = 512;

/// The log's contract. Every backend passes the same suite (`eventlog/tests/contract`).
///
/// - `append` is atomic: all events of the batch or none. Of two writers with the same
///   expected version exactly one wins; the other gets [`LogError::WrongExpectedVersion`].
///   Resending a batch whose event ids are already stored at the place the expectation names
///   (for `Any`, as the stream's last events) is acknowledged with the original result and
///   writes nothing. Idempotency is per stream: event ids are not unique across the log.
/// - `read_all` returns only a prefix of the log that can no longer grow in the middle: once a
///   reader has seen position `p`, no event at a position `<= p` is ever committed later.
///   Subscriptions rely on this to deliver every event exactly once.
/// - Acknowledged appends survive the process being killed.
pub trait EventLog: Send + Sync + 'static {
    /// The backend's name, for logs and errors.
    fn backend(&self) -> &'static str;

    /// The checks applied to every batch.
    fn limits(&self) -> &Limits;

    /// Appends `events` to `stream`, keeping the store's transaction open for `hold` before it
    /// commits. A non-zero hold is for drills and tests (a slow writer holding its
    /// transaction); backends without client-visible transactions ignore it.
    fn append_holding(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        hold: Duration,
    ) -> impl Future<Output = Result<Appended, LogError>> + Send;

    /// Appends `events` to `stream` if the stream matches `expected`.
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Appended, LogError>> + Send {
        self.append_holding(stream, expected, events, Duration::ZERO)
    }

    /// Up to `max` events of `stream` from version `from` on, in version order. An unknown
    /// stream reads as empty.
    fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        max: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, LogError>> + Send;

    /// The version of the stream's last event, or None if it has none.
    fn stream_version(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<Option<u64>, LogError>> + Send;

    /// Up to `max` events at positions `>= from`, in position order, from the settled prefix
    /// of the log (see the trait docs).
    fn read_all(
        &self,
        from: Position,
        max: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, LogError>> + Send;

    /// The position of the last event of the settled prefix, or None for an empty log: how
    /// far a reader that starts now has to go (replay progress, projection lag).
    fn head(&self) -> impl Future<Output = Result<Option<Position>, LogError>> + Send;

    /// The settled head against the committed one, and who holds the settled head back: a
    /// follower that is caught up with a settled head that does not move while committed
    /// events pile up above it is stalled, not idle. Stores where every committed event is
    /// readable at once (no settling rule) report both heads as [`EventLog::head`].
    fn progress(&self) -> impl Future<Output = Result<LogProgress, LogError>> + Send {
        async { Ok(LogProgress::settled_at(self.head().await?)) }
    }

    /// How many events of the settled prefix lie at positions `<= through`, archived ones
    /// included (an archived batch counts whole once its first position is `<= through`), or
    /// None where the backend cannot count them cheaply: what a replay's progress is measured
    /// in, as positions are far from dense on PostgreSQL (`xid << 16`).
    fn count_through(
        &self,
        through: Position,
    ) -> impl Future<Output = Result<Option<u64>, LogError>> + Send {
        let _ = through;
        std::future::ready(Ok(None))
    }

    /// Every event that carries `correlation_id`, in position order: all one request set off,
    /// committed a moment ago included. For the write side's recoveries (a desk command
    /// resumed, an idempotency key settled), which must see their own request's events at
    /// once; auditors read the audit read model (`kefu_projections::audit`).
    fn read_correlation(
        &self,
        correlation_id: uuid::Uuid,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, LogError>> + Send;

    /// Woken with the last position this process appended; subscriptions wait on it so local
    /// appends reach them at once.
    fn appended_signal(&self) -> tokio::sync::watch::Receiver<Position>;

    /// How often a subscription that is caught up looks again without a local signal: the
    /// bound on how late it sees another process's appends.
    fn poll_interval(&self) -> Duration;
}

/// A shared log is the log: so one store can be wrapped (a fault dial for the workers) while
/// others (the projections) hold it unwrapped.
impl<L: EventLog> EventLog for std::sync::Arc<L> {
    fn backend(&self) -> &'static str {
        (**self).backend()
    }

    fn limits(&self) -> &Limits {
        (**self).limits()
    }

    fn append_holding(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        hold: Duration,
    ) -> impl Future<Output = Result<Appended, LogError>> + Send {
        (**self).append_holding(stream, expected, events, hold)
    }

    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Appended, LogError>> + Send {
        (**self).append(stream, expected, events)
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        max: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, LogError>> + Send {
        (**self).read_stream(stream, from, max)
    }

    fn stream_version(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<Option<u64>, LogError>> + Send {
        (**self).stream_version(stream)
    }

    fn read_all(
        &self,
        from: Position,
        max: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, LogError>> + Send {
        (**self).read_all(from, max)
    }

    fn head(&self) -> impl Future<Output = Result<Option<Position>, LogError>> + Send {
        (**self).head()
    }

    fn progress(&self) -> impl Future<Output = Result<LogProgress, LogError>> + Send {
        (**self).progress()
    }

    fn count_through(
        &self,
        through: Position,
    ) -> impl Future<Output = Result<Option<u64>, LogError>> + Send {
        (**self).count_through(through)
    }

    fn read_correlation(
        &self,
        correlation_id: uuid::Uuid,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, LogError>> + Send {
        (**self).read_correlation(correlation_id)
    }

    fn appended_signal(&self) -> tokio::sync::watch::Receiver<Position> {
        (**self).appended_signal()
    }

    fn poll_interval(&self) -> Duration {
        (**self).poll_interval()
    }
}

/// Reads a whole stream.
pub async fn read_whole_stream<L: EventLog>(
    log: &L,
    stream: &StreamId,
) -> Result<Vec<RecordedEvent>, LogError> {
    read_stream_through(log, stream, None).await
}

/// Reads a stream from its start up to and including version `through` (to its end when
/// None): the stream as it stood when that version was written.
pub async fn read_stream_through<L: EventLog>(
    log: &L,
    stream: &StreamId,
    through: Option<u64>,
) -> Result<Vec<RecordedEvent>, LogError> {
    let mut out = Vec::new();
    loop {
        // Versions are gapless from 0, so the next one to read is the count read so far.
        let from = out.len() as u64;
        let max = through.map_or(DEFAULT_PAGE, |t| {
            usize::try_from(t.saturating_add(1).saturating_sub(from))
                .unwrap_or(DEFAULT_PAGE)
                .min(DEFAULT_PAGE)
        });
        if max == 0 {
            return Ok(out);
        }
        let page = log.read_stream(stream, from, max).await?;
        let done = page.len() < max;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// Wakes local subscribers after every append; the value only moves forward (the last
/// position appended). Every append wakes them, an earlier position too: on PostgreSQL an
/// append with a lower position can commit after a higher one, and until it does the higher
/// one is not settled, so a subscriber woken by the higher one found nothing new and waits;
/// the lower one's commit is what lets both through. Waking only on a higher position left
/// it to the next poll (100 ms), which is where a fifth of the bot's replies lost 100 ms.
pub(crate) fn signal_appended(signal: &tokio::sync::watch::Sender<Position>, appended: &Appended) {
    signal.send_modify(|p| *p = (*p).max(appended.last_position));
}

// Stores keep versions and positions in signed 64-bit columns; neither reaches 2^63.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn from_i64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appended(last: u64) -> Appended {
        Appended {
            first_version: 0,
            last_version: 0,
            first_position: Position(last),
            last_position: Position(last),
        }
    }

    #[test]
    fn an_append_committing_after_a_later_one_still_wakes_subscribers() {
        let (tx, mut rx) = tokio::sync::watch::channel(Position::START);
        signal_appended(&tx, &appended(11 << 16));
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        signal_appended(&tx, &appended(10 << 16));
        assert!(
            rx.has_changed().unwrap(),
            "the earlier position settles both"
        );
        assert_eq!(
            *rx.borrow_and_update(),
            Position(11 << 16),
            "the value only moves on"
        );
    }
}
