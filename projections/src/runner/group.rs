//! Several generations fed from one read of the log, and the read-ahead that pages it.

use super::*;

/// How a build is going.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Events read from the log so far, up to the target. How much is left is counted in
    /// events too (`EventLog::count_through`): positions say little on PostgreSQL, where they
    /// jump by transaction ids.
    pub read: u64,
    pub position: Position,
    /// Where the build stops (the log's head when it started, or the as-of bound).
    pub target: Option<Position>,
    /// Where the build started.
    pub start: Position,
    pub elapsed: Duration,
}

impl Progress {
    pub fn events_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.read as f64 / secs
        } else {
            0.0
        }
    }
}

/// Several projections fed from one read of the log.
pub struct Group {
    store: ReadStore,
    members: Vec<Member>,
    page: usize,
    faults: Faults,
}

impl Group {
    pub fn new(store: ReadStore, members: Vec<Member>) -> Self {
        Group {
            store,
            members,
            page: DEFAULT_BATCH,
            faults: Faults::default(),
        }
    }

    pub fn with_batch(mut self, events: usize) -> Self {
        self.page = events.max(1);
        self
    }

    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn into_members(self) -> Vec<Member> {
        self.members
    }

    fn start(&self) -> Position {
        self.members
            .iter()
            .map(|m| m.generation.position)
            .min()
            .unwrap_or(Position::START)
    }

    fn all_done(&self) -> bool {
        self.members.iter().all(|m| m.done)
    }

    /// Applies a batch to every member, each in a task of its own: one member's SQL round
    /// trips overlap another's work in memory, and the two use different cores. With
    /// `overlap`, each member's transaction is left in flight while the next batch is applied
    /// (see [`Member::apply_batch`]); [`Group::settle`] waits for the last ones.
    async fn apply(
        &mut self,
        events: Vec<RecordedEvent>,
        overlap: bool,
    ) -> Result<(), ProjectionError> {
        let batch: Arc<Vec<(RecordedEvent, Event)>> = Arc::new(
            events
                .into_iter()
                .map(|mut e| {
                    let d = kefu_feed::decode_taking(&mut e);
                    (e, d)
                })
                .collect(),
        );
        let tasks: Vec<_> = self
            .members
            .drain(..)
            .map(|mut m| {
                let store = self.store.clone();
                let batch = batch.clone();
                let faults = self.faults.clone();
                tokio::spawn(async move {
                    let r = m.apply_batch(&store, &batch, &faults, overlap).await;
                    (m, r)
                })
            })
            .collect();
        let mut failed = None;
        for task in tasks {
            let (m, r) = task
                .await
                .map_err(|e| ProjectionError::Bug(format!("a projection task failed: {e}")))?;
            self.members.push(m);
            if let Err(e) = r {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Waits for every member's transaction in flight; the first failure is returned.
    async fn settle(&mut self) -> Result<(), ProjectionError> {
        let mut failed = None;
        for m in &mut self.members {
            if let Err(e) = m.settle().await {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Reads the log from the lowest checkpoint up to its head as of now (or each member's
    /// bound) and applies it, reporting progress after every batch.
    pub async fn catch_up<L: EventLog>(
        &mut self,
        log: &L,
        mut progress: impl FnMut(&Progress),
    ) -> Result<Progress, ProjectionError> {
        let bound = self
            .members
            .iter()
            .map(|m| m.generation.until.position)
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max());
        let mut pages = ReadAhead::start(log, self.start(), bound, self.page).await?;
        let mut applied = Ok(());
        while !pages.is_done() {
            applied = pages.next(|batch, _| self.apply(batch, true)).await;
            if applied.is_err() {
                break;
            }
            progress(pages.progress());
            if self.all_done() {
                break;
            }
        }
        // Even after a failure: a write left in flight must not land after whoever starts
        // again has read the checkpoint.
        let settled = self.settle().await;
        applied.and(settled)?;
        Ok(pages.finish())
    }

    /// Follows the log live until `stop` turns true, applying each page as it arrives.
    pub async fn follow<L: EventLog>(
        &mut self,
        log: Arc<L>,
        mut stop: watch::Receiver<bool>,
        positions: &watch::Sender<Vec<(String, Position)>>,
    ) -> Result<(), ProjectionError> {
        let mut sub = Subscription::new(log, self.start()).with_page_size(self.page);
        loop {
            let batch = tokio::select! {
                b = sub.next_batch(self.page) => b?,
                _ = stop.wait_for(|s| *s) => return Ok(()),
            };
            self.apply(batch, false).await?;
            positions.send_replace(
                self.members
                    .iter()
                    .map(|m| (m.name().to_owned(), m.generation.position))
                    .collect(),
            );
        }
    }
}

/// The log from a position up to its head as of the start (or an earlier bound), page by page,
/// each next page read while the caller works on the current one: the log and the read
/// store are different connections (often different servers), so neither waits for the other.
pub(crate) struct ReadAhead<'l, L> {
    log: &'l L,
    target: Position,
    size: usize,
    page: Vec<RecordedEvent>,
    started: Instant,
    report: Progress,
}

impl<'l, L: EventLog> ReadAhead<'l, L> {
    pub(crate) async fn start(
        log: &'l L,
        start: Position,
        bound: Option<Position>,
        size: usize,
    ) -> Result<Self, ProjectionError> {
        let started = Instant::now();
        let target = match (log.head().await?, bound) {
            (Some(head), Some(bound)) => Some(head.min(bound)),
            (head, _) => head,
        };
        let page = match target {
            Some(t) if start <= t => log.read_all(start, size).await?,
            _ => Vec::new(),
        };
        Ok(ReadAhead {
            log,
            target: target.unwrap_or(Position::START),
            size,
            page,
            started,
            report: Progress {
                read: 0,
                position: start,
                target,
                start,
                elapsed: Duration::ZERO,
            },
        })
    }

    pub(crate) fn is_done(&self) -> bool {
        self.page.is_empty()
    }

    pub(crate) fn progress(&self) -> &Progress {
        &self.report
    }

    /// Hands the current page (events past the target left out) to `work`, with whether it
    /// is the last, and reads the next page meanwhile. Call only while not `is_done`.
    pub(crate) async fn next<T, F>(
        &mut self,
        work: impl FnOnce(Vec<RecordedEvent>, bool) -> F,
    ) -> Result<T, ProjectionError>
    where
        F: Future<Output = Result<T, ProjectionError>>,
    {
        let page = std::mem::take(&mut self.page);
        let from = page
            .last()
            .map(|e| e.position.next())
            .ok_or_else(|| ProjectionError::Bug("read past the end of a catch-up".into()))?;
        let target = self.target;
        let batch: Vec<RecordedEvent> = page.into_iter().filter(|e| e.position <= target).collect();
        self.report.read += batch.len() as u64;
        let more = from <= target;
        let (log, size) = (self.log, self.size);
        let (next, done) = tokio::join!(
            async {
                if more {
                    log.read_all(from, size).await
                } else {
                    Ok(Vec::new())
                }
            },
            work(batch, !more)
        );
        let done = done?;
        self.page = next?;
        self.report.position = from;
        self.report.elapsed = self.started.elapsed();
        Ok(done)
    }

    pub(crate) fn finish(mut self) -> Progress {
        self.report.elapsed = self.started.elapsed();
        self.report
    }
}
