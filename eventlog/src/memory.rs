//! A log held in memory: the backend of the deterministic simulation of the desk
//! (`kefu_tests::sim`), and of any test that wants the log's semantics without files.
//!
//! It is a backend, not a mock: it passes the contract suite (`eventlog/tests/memory.rs`)
//! except durability across a killed process, which memory cannot give. Appends are judged
//! the way SQLite judges them (`retry::admit`: idempotency per stream, then the expected
//! version), under one lock, so positions are handed out in commit order and every read sees
//! a settled prefix, as on SQLite.
//!
//! What makes it fit a simulation: nothing in it waits or spawns (every call is ready when
//! first polled), and the time it stamps events with (`recorded_at`) comes from a clock it is
//! given ([`MemoryLog::with_clock`]; the system clock by default), so a seeded run records the
//! same log byte for byte every time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;

use crate::retry::{self, Admission, StoredAt};
use crate::{
    Appended, EventLog, ExpectedVersion, Limits, LogError, NewEvent, Position, RecordedEvent,
    StreamId,
};

const BACKEND: &str = "memory";

/// Where the log reads the time it records events at.
pub type LogClock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

#[derive(Default)]
struct Store {
    /// Every event in position order; the event at index `i` has position `i + 1`.
    events: Vec<RecordedEvent>,
    /// Each stream's events, by version: indexes into `events`.
    streams: HashMap<String, Vec<usize>>,
}

impl Store {
    fn version_of(&self, stream: &str) -> Option<u64> {
        self.streams
            .get(stream)
            .and_then(|s| s.len().checked_sub(1))
            .map(|v| v as u64)
    }
}

/// The log in memory. Clones are handles on the same log (what reopening a file is to
/// SQLite): they share the events and the append signal.
#[derive(Clone)]
pub struct MemoryLog {
    store: Arc<Mutex<Store>>,
    limits: Limits,
    clock: LogClock,
    signal: Arc<watch::Sender<Position>>,
    poll_interval: Duration,
}

impl Default for MemoryLog {
    fn default() -> Self {
        MemoryLog::new()
    }
}

impl MemoryLog {
    /// An empty log with the default limits, stamping events with the system clock.
    pub fn new() -> Self {
        let (signal, _) = watch::channel(Position::START);
        MemoryLog {
            store: Arc::new(Mutex::new(Store::default())),
            limits: Limits::default(),
            clock: Arc::new(Utc::now),
            signal: Arc::new(signal),
            // Only other handles' appends go unsignalled; a short poll finds them.
            poll_interval: Duration::from_millis(20),
        }
    }

    pub fn with_limits(mut self, limits: Limits) -> Result<Self, LogError> {
        self.limits = limits.checked()?;
        Ok(self)
    }

    /// Stamps events with `clock` instead of the system clock (a simulation's time).
    pub fn with_clock(mut self, clock: LogClock) -> Self {
        self.clock = clock;
        self
    }

    /// How many events the log holds.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every event, in position order: what a test compares two runs by.
    pub fn snapshot(&self) -> Vec<RecordedEvent> {
        self.lock().events.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while holding the lock leaves the store as it was before the append
        // (nothing is pushed until the batch is judged), so a poisoned lock is still sound.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append_now(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, LogError> {
        self.limits.validate(&events)?;
        let mut store = self.lock();
        let current = store.version_of(stream.as_str());
        let slots: Vec<StoredAt> = match retry::retry_slot(expected, current, events.len()) {
            Some(first) => store.streams[stream.as_str()]
                [first as usize..first as usize + events.len()]
                .iter()
                .map(|&i| {
                    let e = &store.events[i];
                    StoredAt {
                        id: e.id,
                        version: e.version,
                        position: e.position,
                        event: Some((e.event_type.clone(), e.payload.clone())),
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        let first_version = match retry::admit(stream, expected, current, &events, &slots)? {
            Admission::Replay(appended) => return Ok(appended),
            Admission::Write { first_version } => first_version,
        };
        // The stores keep microseconds; so does this one, so that a read-back compares equal
        // across backends.
        let now = (self.clock)();
        let recorded_at =
            DateTime::<Utc>::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        let first_index = store.events.len();
        let count = events.len();
        for (i, e) in events.into_iter().enumerate() {
            let index = first_index + i;
            store.events.push(RecordedEvent {
                id: e.id,
                stream_id: stream.clone(),
                version: first_version + i as u64,
                position: Position(index as u64 + 1),
                event_type: e.event_type,
                schema_version: e.schema_version,
                payload: e.payload,
                recorded_at,
                metadata: e.metadata,
            });
            store
                .streams
                .entry(stream.as_str().to_owned())
                .or_default()
                .push(index);
        }
        Ok(Appended {
            first_version,
            last_version: first_version + count as u64 - 1,
            first_position: Position(first_index as u64 + 1),
            last_position: Position((first_index + count) as u64),
        })
    }
}

impl EventLog for MemoryLog {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    /// `hold` is ignored: the log has no transaction a client could see held open.
    async fn append_holding(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        _hold: Duration,
    ) -> Result<Appended, LogError> {
        let appended = self.append_now(stream, expected, events)?;
        crate::signal_appended(&self.signal, &appended);
        Ok(appended)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let store = self.lock();
        Ok(store
            .streams
            .get(stream.as_str())
            .map(|s| {
                s.iter()
                    .skip(usize::try_from(from).unwrap_or(usize::MAX))
                    .take(max)
                    .map(|&i| store.events[i].clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>, LogError> {
        Ok(self.lock().version_of(stream.as_str()))
    }

    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let store = self.lock();
        let start = usize::try_from(from.0.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(store.events.iter().skip(start).take(max).cloned().collect())
    }

    async fn head(&self) -> Result<Option<Position>, LogError> {
        Ok(self.lock().events.last().map(|e| e.position))
    }

    async fn count_through(&self, through: Position) -> Result<Option<u64>, LogError> {
        // Positions are dense from 1.
        Ok(Some(through.0.min(self.lock().events.len() as u64)))
    }

    async fn read_correlation(&self, correlation_id: Uuid) -> Result<Vec<RecordedEvent>, LogError> {
        Ok(self
            .lock()
            .events
            .iter()
            .filter(|e| e.metadata.correlation_id == correlation_id)
            .cloned()
            .collect())
    }

    fn appended_signal(&self) -> watch::Receiver<Position> {
        self.signal.subscribe()
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, ActorKind, Metadata};

    fn event(n: u64) -> NewEvent {
        NewEvent::new(
            "TestHappened",
            serde_json::json!({ "n": n }),
            Metadata::for_request(Actor::new(ActorKind::System, "test"), Uuid::nil()),
        )
    }

    #[tokio::test]
    async fn events_are_stamped_with_the_clock_it_is_given() {
        let at = DateTime::<Utc>::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let log = MemoryLog::new().with_clock(Arc::new(move || at));
        let s = StreamId::new("conversation-a").unwrap();
        log.append(&s, ExpectedVersion::NoStream, vec![event(1)])
            .await
            .unwrap();
        let stored = log.snapshot();
        assert_eq!(
            stored[0].recorded_at.timestamp_micros(),
            at.timestamp_micros(),
            "kept to the microsecond, as the stores keep it"
        );
    }
}
