//! Following the log in a server: liveness, and the projections kept live.

use super::*;

/// Whether a follower kept live in a server (the projections, the search index writer) is
/// running or failing: what `/readyz` and `/metrics` report, since a follower that fails and
/// retries forever otherwise looks just like one with nothing to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Liveness {
    /// Set from its first failure until it has attached and caught up again.
    pub failing: Option<Failing>,
    /// Failures since the server started.
    pub failures_total: u64,
}

/// A follower failing and being retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// The first failure of this run of failures.
    pub since: DateTime<Utc>,
    /// The last failure's error.
    pub error: String,
    /// Failures in a row.
    pub in_a_row: u32,
}

impl Liveness {
    fn failed(&mut self, error: String, in_a_row: u32, now: DateTime<Utc>) {
        self.failures_total += 1;
        let since = self.failing.as_ref().map_or(now, |f| f.since);
        self.failing = Some(Failing {
            since,
            error,
            in_a_row,
        });
    }

    /// Marks the follower as running again (attached and caught up with the log).
    pub(crate) fn recovered(tx: &watch::Sender<Liveness>) {
        tx.send_if_modified(|l| l.failing.take().is_some());
    }
}

/// Runs `run` until it returns or `stopped` turns true. A generation replaced by a rebuild
/// (`Superseded`) is reattached at once; any other failure is logged, recorded in `liveness`
/// (which `run` clears once it is running again) and retried after
/// [`kefu_eventlog::backoff`] (at most 2 s, so recovery follows the store closely).
pub(crate) async fn supervise<F, Fut>(
    what: &'static str,
    mut stopped: watch::Receiver<bool>,
    liveness: Arc<watch::Sender<Liveness>>,
    mut run: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), ProjectionError>>,
{
    let mut failures = 0u32;
    while !*stopped.borrow() {
        match run().await {
            Ok(()) => break,
            Err(ProjectionError::Superseded {
                projection,
                generation,
            }) => {
                info!(what, %projection, generation, "generation replaced; reattaching");
                failures = 0;
            }
            Err(e) => {
                failures += 1;
                warn!(what, error = %e, failures, "failed; restarting");
                liveness.send_modify(|l| l.failed(e.to_string(), failures, Utc::now()));
                tokio::select! {
                    _ = tokio::time::sleep(kefu_eventlog::backoff(failures)) => {}
                    _ = stopped.wait_for(|s| *s) => break,
                }
            }
        }
    }
}

/// The projections kept live inside a server, and where each has got to.
pub struct LiveProjections {
    positions: watch::Receiver<Vec<(String, Position)>>,
    liveness: watch::Receiver<Liveness>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl LiveProjections {
    /// Attaches every projection to its live generation (creating it on first start) and
    /// follows the log. Failures are logged and retried; a generation swapped by a rebuild is
    /// picked up from its own checkpoint.
    pub fn spawn<L: EventLog>(
        log: Arc<L>,
        store: ReadStore,
        make: impl Fn() -> Vec<Box<dyn Projection>> + Send + Sync + 'static,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let (positions_tx, positions) = watch::channel(Vec::new());
        let (liveness_tx, liveness) = watch::channel(Liveness::default());
        let make = Arc::new(make);
        let positions_tx = Arc::new(positions_tx);
        let liveness_tx = Arc::new(liveness_tx);
        let supervised = liveness_tx.clone();
        let task = tokio::spawn(supervise(
            "projections",
            stopped.clone(),
            supervised,
            move || {
                let (log, store, make, positions_tx, stopped, liveness_tx) = (
                    log.clone(),
                    store.clone(),
                    make.clone(),
                    positions_tx.clone(),
                    stopped.clone(),
                    liveness_tx.clone(),
                );
                async move {
                    let catalog = Catalog::open(store.clone()).await?;
                    let mut members = Vec::new();
                    for p in make() {
                        let g = match catalog.attach_live(p.as_ref()).await {
                            // Built by an older kefu (an upgrade added columns): what they hold
                            // for the events already applied is only known by replaying them, so
                            // a new generation is built from the log and swapped in, as `kefu
                            // replay` would, instead of leaving the read model dead until someone
                            // runs it.
                            Err(ProjectionError::Outdated {
                                projection,
                                generation,
                                reason,
                                ..
                            }) => {
                                warn!(
                                    %projection,
                                    generation,
                                    %reason,
                                    "the live generation was built by an older kefu: rebuilding it from the log"
                                );
                                let again: Vec<Box<dyn Projection>> = make()
                                    .into_iter()
                                    .filter(|q| q.name() == p.name())
                                    .collect();
                                rebuild(&*log, &store, again, Until::default(), |_| {}).await?;
                                catalog.attach_live(p.as_ref()).await?
                            }
                            other => other?,
                        };
                        members.push(Member::new(p, g));
                    }
                    let mut group = Group::new(store.clone(), members);
                    group.catch_up(&*log, |_| {}).await?;
                    positions_tx.send_replace(
                        group
                            .members()
                            .iter()
                            .map(|m| (m.name().to_owned(), m.generation().position))
                            .collect(),
                    );
                    Liveness::recovered(&liveness_tx);
                    group.follow(log, stopped, &positions_tx).await
                }
            },
        ));
        LiveProjections {
            positions,
            liveness,
            stop,
            task,
        }
    }

    /// Whether the projections are running or failing.
    pub fn liveness(&self) -> watch::Receiver<Liveness> {
        self.liveness.clone()
    }

    /// Each projection's checkpoint: the position its next read starts at.
    pub fn positions(&self) -> watch::Receiver<Vec<(String, Position)>> {
        self.positions.clone()
    }

    /// Waits until every projection has applied the event at `position`.
    pub async fn wait_for(&self, position: Position) {
        let mut rx = self.positions.clone();
        let _ = rx
            .wait_for(|ps| !ps.is_empty() && ps.iter().all(|(_, p)| *p > position))
            .await;
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
