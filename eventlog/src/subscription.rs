//! Catch-up-then-live subscriptions over any backend.
//!
//! A subscription pages through `read_all` from its position; once a read comes back empty it
//! waits for this process's append signal or the backend's poll interval, then reads again.
//! Exactly-once, in-order delivery follows from `read_all` returning only a settled prefix of
//! the log: the subscription never has to guess whether a hole will be filled later.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::{DEFAULT_PAGE, EventLog, LogError, Position, RecordedEvent};

pub struct Subscription<L: EventLog> {
    log: Arc<L>,
    next: Position,
    buffer: VecDeque<RecordedEvent>,
    signal: watch::Receiver<Position>,
    page: usize,
    caught_up: bool,
    /// The last wait for an append of this process to settle (zero when none is awaited).
    settling: Duration,
}

/// The first wait for an append of this process that is committed but not yet settled.
const SETTLE_FIRST: Duration = Duration::from_millis(1);

impl<L: EventLog> Subscription<L> {
    /// Delivers every event at a position `>= from`, then follows the log live.
    pub fn new(log: Arc<L>, from: Position) -> Self {
        let signal = log.appended_signal();
        Subscription {
            log,
            next: from,
            buffer: VecDeque::new(),
            signal,
            page: DEFAULT_PAGE,
            caught_up: false,
            settling: Duration::ZERO,
        }
    }

    pub fn with_page_size(mut self, page: usize) -> Self {
        self.page = page.max(1);
        self
    }

    /// Where the next read starts: store this as the checkpoint after handling an event.
    pub fn position(&self) -> Position {
        self.next
    }

    /// True once a read has found nothing new; stays true while following live.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up && self.buffer.is_empty()
    }

    /// Events already read and waiting to be handed out, without waiting for more.
    pub fn try_next_buffered(&mut self) -> Option<RecordedEvent> {
        let event = self.buffer.pop_front()?;
        self.next = event.position.next();
        Some(event)
    }

    /// The next event, waiting for one if the subscription is caught up.
    pub async fn next(&mut self) -> Result<RecordedEvent, LogError> {
        loop {
            if let Some(event) = self.try_next_buffered() {
                return Ok(event);
            }
            // Mark the signal seen before reading, so an append that lands after the read
            // wakes the wait below instead of being missed until the next poll.
            let appended = *self.signal.borrow_and_update();
            if self.fill().await? {
                self.settling = Duration::ZERO;
                continue;
            }
            self.caught_up = true;
            let poll = self.log.poll_interval();
            // An append of this process lies ahead and the read did not reach it: it is
            // committed but not settled yet (on PostgreSQL a transaction that began before it,
            // anywhere in the cluster, is still open; its end signals nothing here). Look
            // again soon, doubling from a millisecond, instead of at the next poll.
            let wait = if appended >= self.next {
                self.settling = (self.settling * 2).clamp(SETTLE_FIRST, poll);
                self.settling
            } else {
                poll
            };
            tokio::select! {
                changed = self.signal.changed() => {
                    if changed.is_err() {
                        // The log's sender is gone; fall back to polling alone.
                        tokio::time::sleep(poll).await;
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The next event (waiting for one if caught up) and the ones already read after it, up
    /// to `max` in all: a batch to apply in one go without waiting for more.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let mut batch = vec![self.next().await?];
        while batch.len() < max {
            match self.try_next_buffered() {
                Some(e) => batch.push(e),
                None => break,
            }
        }
        Ok(batch)
    }

    /// Reads one page into the buffer; false when there was nothing new.
    async fn fill(&mut self) -> Result<bool, LogError> {
        let page = self.log.read_all(self.next, self.page).await?;
        let mut last = None;
        for event in &page {
            let too_early = event.position < self.next || last.is_some_and(|l| event.position <= l);
            if too_early {
                return Err(LogError::Corrupt(format!(
                    "{} backend returned position {} out of order (reading from {})",
                    self.log.backend(),
                    event.position,
                    self.next
                )));
            }
            last = Some(event.position);
        }
        let got = !page.is_empty();
        self.buffer.extend(page);
        Ok(got)
    }
}
