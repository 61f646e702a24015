//! Writing a plan to a log, several appends in flight.
//!
//! Appends start in plan order. One may start while others are in flight unless it must wait
//! for one of them: an append to the same stream (its expected version is where the other
//! ends), or one holding an event that one of its own events names as causation. The second
//! rule keeps causes before their effects in the log's global order, as in production, where
//! a worker only reacts to an event once it is committed; on PostgreSQL it also means the
//! effect's transaction id, and so its position, is above the cause's.

use std::collections::HashSet;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use kefu_eventlog::{Appended, EventLog, LogError, StreamId};
use tracing::info;
use uuid::Uuid;

use super::{HistoryConfig, HistoryError, HistorySummary, PlannedAppend, plan};

struct Done {
    stream: StreamId,
    ids: Vec<Uuid>,
    result: Result<Appended, LogError>,
}

type InFlight<'a> = Pin<Box<dyn Future<Output = Done> + Send + 'a>>;

/// Appends the history `config` describes to `log`, in plan order, with up to `concurrency`
/// appends in flight; returns what was written. Run it on an empty log: the plan expects
/// every stream it writes to be new.
pub async fn write<L: EventLog>(
    log: &L,
    config: &HistoryConfig,
    concurrency: usize,
) -> Result<HistorySummary, HistoryError> {
    let concurrency = concurrency.max(1);
    let mut plan = plan(config);
    let mut in_flight: Vec<InFlight<'_>> = Vec::with_capacity(concurrency);
    let mut busy_streams: HashSet<StreamId> = HashSet::new();
    let mut busy_events: HashSet<Uuid> = HashSet::new();
    let mut held: Option<PlannedAppend> = None;
    let mut exhausted = false;
    let mut written: u64 = 0;
    let mut reported: u64 = 0;
    loop {
        while in_flight.len() < concurrency {
            let next = match held.take() {
                Some(append) => append,
                None if exhausted => break,
                None => match plan.next() {
                    Some(append) => append?,
                    None => {
                        exhausted = true;
                        break;
                    }
                },
            };
            let must_wait = busy_streams.contains(&next.stream)
                || next
                    .events
                    .iter()
                    .any(|e| busy_events.contains(&e.metadata.causation_id));
            if must_wait {
                held = Some(next);
                break;
            }
            busy_streams.insert(next.stream.clone());
            let ids: Vec<Uuid> = next.events.iter().map(|e| e.id).collect();
            busy_events.extend(ids.iter().copied());
            in_flight.push(Box::pin(async move {
                let result = log.append(&next.stream, next.expected, next.events).await;
                Done {
                    stream: next.stream,
                    ids,
                    result,
                }
            }));
        }
        if in_flight.is_empty() {
            // Nothing in flight, so nothing held back either: the plan is written.
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
        busy_streams.remove(&done.stream);
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
