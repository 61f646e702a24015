//! One follower of the log for every GraphQL subscription: it reads each new event once and
//! broadcasts it; each subscription filters what it may see. Without it, every open
//! subscription would poll the store on its own.

use std::sync::Arc;
use std::time::Duration;

use kefu_eventlog::{EventLog, Position, RecordedEvent, Subscription};
use tokio::sync::{broadcast, watch};

use crate::metrics::Metrics;

/// How many events a slow subscriber may fall behind before it is told it missed some.
const BUFFER: usize = 4096;

#[derive(Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<RecordedEvent>>,
}

impl EventHub {
    /// Follows the log from its current head until `stop` turns true, counting the events it
    /// sees in `metrics`. A failing store is
    /// retried every second; subscribers simply see nothing meanwhile.
    pub fn spawn(
        log: Arc<crate::graphql::ServerLog>,
        mut stop: watch::Receiver<bool>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, _) = broadcast::channel(BUFFER);
        let hub = EventHub { tx: tx.clone() };
        tokio::spawn(async move {
            let start = loop {
                match log.head().await {
                    Ok(head) => break head.map_or(Position::START, |p| Position(p.0 + 1)),
                    Err(e) => {
                        tracing::warn!(error = %e, "event hub cannot read the log head; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = async { stop.wait_for(|s| *s).await.is_ok() } => return,
                        }
                    }
                }
            };
            let mut subscription = Subscription::new(log, start);
            loop {
                tokio::select! {
                    batch = subscription.next_batch(256) => match batch {
                        Ok(events) => {
                            for e in events {
                                metrics.record_event(&e);
                                // No receivers is fine: nobody is subscribed right now.
                                let _ = tx.send(Arc::new(e));
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "event hub lost the log; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    },
                    _ = async { stop.wait_for(|s| *s).await.is_ok() } => return,
                }
            }
        });
        hub
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RecordedEvent>> {
        self.tx.subscribe()
    }
}
