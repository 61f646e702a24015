//! Writing a plan to a log, several appends in flight.
//!
//! An append may start while others are in flight unless it must wait for one of them or
//! for an earlier append still waiting: one to the same stream (its expected version is where
//! the other ends), or one holding an event that one of its own events names as causation.
//! The second rule keeps causes before their effects in the log's global order, as in
//! production, where a worker only reacts to an event once it is committed; on PostgreSQL it
//! also puts the effect's transaction id, and so its position, above the cause's. Appends
//! that need not wait overtake those that do, within a window of the plan, so one busy
//! conversation does not hold up the rest of the desk.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::future::{Future, poll_fn};
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::task::Poll;

use kefu_eventlog::{Appended, EventLog, LogError, StreamId};
use tracing::info;
use uuid::Uuid;

use super::{HistoryConfig, HistoryError, HistorySummary, PlannedAppend, plan};

struct Done {
    stream: StreamId,
    key: u64,
    ids: Vec<Uuid>,
    result: Result<Appended, LogError>,
}

type InFlight<'a> = Pin<Box<dyn Future<Output = Done> + Send + 'a>>;

/// A planned append waiting for its turn, with what decides whether it may start.
struct Waiting {
    append: PlannedAppend,
    /// The stream, hashed: two streams sharing a hash only wait for each other needlessly.
    key: u64,
    ids: Vec<Uuid>,
    /// Causes outside the append itself.
    causes: Vec<Uuid>,
}

impl Waiting {
    fn new(append: PlannedAppend) -> Self {
        let mut hasher = DefaultHasher::new();
        append.stream.hash(&mut hasher);
        let ids: Vec<Uuid> = append.events.iter().map(|e| e.id).collect();
        let causes = append
            .events
            .iter()
            .map(|e| e.metadata.causation_id)
            .filter(|c| !ids.contains(c))
            .collect();
        Waiting {
            key: hasher.finish(),
            ids,
            causes,
            append,
        }
    }
}

/// Appends the history `config` describes to `log`, with up to `concurrency` appends in
/// flight; returns what was written. Run it on an empty log: the plan expects every stream
/// it writes to be new. With `concurrency` 1 the log holds the events in plan order.
pub async fn write<L: EventLog>(
    log: &L,
    config: &HistoryConfig,
    concurrency: usize,
) -> Result<HistorySummary, HistoryError> {
    let concurrency = concurrency.max(1);
    let window = concurrency * 8;
    let mut plan = plan(config);
    let mut in_flight: Vec<InFlight<'_>> = Vec::with_capacity(concurrency);
    let mut busy_streams: HashSet<u64> = HashSet::new();
    let mut busy_events: HashSet<Uuid> = HashSet::new();
    let mut waiting: VecDeque<Waiting> = VecDeque::new();
    let mut exhausted = false;
    let mut written: u64 = 0;
    let mut reported: u64 = 0;
    loop {
        while !exhausted && waiting.len() < window {
            match plan.next() {
                Some(append) => waiting.push_back(Waiting::new(append?)),
                None => exhausted = true,
            }
        }
        // Start what may start, in plan order; what must wait also holds back later
        // appends to its stream and later effects of its events.
        let mut held_streams: HashSet<u64> = HashSet::new();
        let mut held_events: HashSet<Uuid> = HashSet::new();
        let mut i = 0;
        while i < waiting.len() && in_flight.len() < concurrency {
            let next = &waiting[i];
            let must_wait = busy_streams.contains(&next.key)
                || held_streams.contains(&next.key)
                || next
                    .causes
                    .iter()
                    .any(|c| busy_events.contains(c) || held_events.contains(c));
            if must_wait {
                held_streams.insert(next.key);
                held_events.extend(next.ids.iter().copied());
                i += 1;
                continue;
            }
            let Some(Waiting {
                append, key, ids, ..
            }) = waiting.remove(i)
            else {
                break;
            };
            busy_streams.insert(key);
            busy_events.extend(ids.iter().copied());
            in_flight.push(Box::pin(async move {
                let result = log
                    .append(&append.stream, append.expected, append.events)
                    .await;
                Done {
                    stream: append.stream,
                    key,
                    ids,
                    result,
                }
            }));
        }
        if in_flight.is_empty() {
            // Nothing in flight means nothing waits for anything: the plan is written.
            debug_assert!(waiting.is_empty() && exhausted);
            break;
        }
        let done = poll_fn(|cx| {
            for i in 0..in_flight.len() {
                if let Poll::Ready(done) = in_flight[i].as_mut().poll(cx) {
                    drop(in_flight.swap_remove(i));
                    return Poll::Ready(done);
                }
            }
            Poll::Pending
        })
        .await;
        busy_streams.remove(&done.key);
        for id in &done.ids {
            busy_events.remove(id);
        }
        done.result.map_err(|source| HistoryError::Append {
            stream: done.stream.to_string(),
            source,
        })?;
        written += done.ids.len() as u64;
        if written - reported >= 100_000 {
            reported = written;
            info!(events = written, "history written so far");
        }
    }
    Ok(plan.summary())
}
