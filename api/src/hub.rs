//! One follower of the log for every GraphQL subscription: it reads each new event once and
//! hands it only to the subscriptions that asked for its stream, or for its whole category
//! (a queue follower watches every conversation, an admin every ticket). Without it, every
//! open subscription would poll the store on its own; with a broadcast to all, every event
//! woke every open window, so the cost grew as open windows times events.
//!
//! Each subscription has its own bounded channel. One that falls [`BUFFER`] events of its own
//! behind is cut off and told so (its reader sees [`Delivery::Lagged`]); the hub never waits
//! for a slow reader.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kefu_eventlog::{EventLog, Position, RecordedEvent, Subscription};
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;

/// How many of its events a slow subscriber may fall behind before it is cut off.
const BUFFER: usize = 1024;

/// An event as the hub hands it to subscriptions: decoded once here for all of them, and
/// kept as stored too, since GraphQL's `Event` shows the payload as the log holds it.
pub struct HubEvent {
    pub recorded: RecordedEvent,
    pub event: kefu_domain::Event,
}

impl From<RecordedEvent> for HubEvent {
    fn from(recorded: RecordedEvent) -> Self {
        HubEvent {
            event: kefu_feed::decode_or_other(&recorded),
            recorded,
        }
    }
}

/// What a subscription asks the hub for: whole streams, and whole categories.
#[derive(Debug, Clone, Default)]
pub struct Interest {
    pub streams: Vec<String>,
    pub categories: Vec<String>,
}

impl Interest {
    pub fn streams(streams: impl IntoIterator<Item = String>) -> Self {
        Interest {
            streams: streams.into_iter().collect(),
            categories: Vec::new(),
        }
    }

    pub fn and_category(mut self, category: &str) -> Self {
        self.categories.push(category.to_owned());
        self
    }
}

struct Subscriber {
    /// Taken out when it is cut off, so that its reader sees the channel close whichever of
    /// its routes the last event came by.
    tx: Mutex<Option<mpsc::Sender<Arc<HubEvent>>>>,
    lagged: Arc<AtomicBool>,
}

impl Subscriber {
    /// Hands `e` over; false when the subscriber is gone or has just been cut off.
    fn offer(&self, e: &Arc<HubEvent>) -> bool {
        let mut tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(sender) = tx.as_ref() else {
            return false;
        };
        match sender.try_send(e.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagged.store(true, Ordering::Release);
                *tx = None;
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                *tx = None;
                false
            }
        }
    }

    fn gone(&self) -> bool {
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_none_or(mpsc::Sender::is_closed)
    }
}

/// The subscribers by what they asked for. A subscriber with several interests is listed
/// under each; an event reaches it once because an event has one stream and one category,
/// and a subscription names either a stream or its category, never both.
#[derive(Default)]
struct Routes {
    next_id: u64,
    by_stream: HashMap<String, Vec<(u64, Arc<Subscriber>)>>,
    by_category: HashMap<String, Vec<(u64, Arc<Subscriber>)>>,
}

impl Routes {
    /// Hands `e` to everyone who asked for it, dropping those gone or cut off.
    fn deliver(&mut self, e: &Arc<HubEvent>) {
        let stream = e.recorded.stream_id.as_str();
        let category = e.recorded.stream_id.category();
        let mut seen: Vec<u64> = Vec::new();
        for (table, key) in [
            (&mut self.by_stream, stream),
            (&mut self.by_category, category),
        ] {
            let Some(subs) = table.get_mut(key) else {
                continue;
            };
            subs.retain(|(id, s)| {
                if seen.contains(id) {
                    return !s.gone();
                }
                seen.push(*id);
                s.offer(e)
            });
            if subs.is_empty() {
                table.remove(key);
            }
        }
    }

    fn add(&mut self, interest: &Interest, sub: Arc<Subscriber>) {
        let id = self.next_id;
        self.next_id += 1;
        for s in &interest.streams {
            self.by_stream
                .entry(s.clone())
                .or_default()
                .push((id, sub.clone()));
        }
        for c in &interest.categories {
            self.by_category
                .entry(c.clone())
                .or_default()
                .push((id, sub.clone()));
        }
    }

    /// Forgets subscribers whose readers are gone (a window closed with no event since).
    fn sweep(&mut self) {
        for table in [&mut self.by_stream, &mut self.by_category] {
            table.retain(|_, subs| {
                subs.retain(|(_, s)| !s.gone());
                !subs.is_empty()
            });
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_stream.values().map(Vec::len).sum::<usize>()
            + self.by_category.values().map(Vec::len).sum::<usize>()
    }
}

#[derive(Clone)]
pub struct EventHub {
    routes: Arc<Mutex<Routes>>,
}

/// What a subscription's reader gets next.
pub enum Delivery {
    Event(Arc<HubEvent>),
    /// It fell [`BUFFER`] events behind and was cut off.
    Lagged,
    /// The hub stopped.
    Closed,
}

/// A subscription's end of the hub.
pub struct Feed {
    rx: mpsc::Receiver<Arc<HubEvent>>,
    lagged: Arc<AtomicBool>,
}

impl Feed {
    pub async fn recv(&mut self) -> Delivery {
        match self.rx.recv().await {
            Some(e) => Delivery::Event(e),
            None if self.lagged.load(Ordering::Acquire) => Delivery::Lagged,
            None => Delivery::Closed,
        }
    }
}

impl EventHub {
    fn new() -> Self {
        EventHub {
            routes: Arc::new(Mutex::new(Routes::default())),
        }
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Follows the log from its current head until `stop` turns true, counting the events it
    /// sees in `metrics`. A failing store is retried after [`kefu_eventlog::backoff`];
    /// subscribers simply see nothing meanwhile.
    pub fn spawn(
        log: Arc<crate::graphql::ServerLog>,
        mut stop: watch::Receiver<bool>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let hub = EventHub::new();
        let routes = hub.clone();
        tokio::spawn(async move {
            let mut failures = 0;
            let start = loop {
                match log.head().await {
                    Ok(head) => break head.map_or(Position::START, |p| Position(p.0 + 1)),
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, "event hub cannot read the log head; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(kefu_eventlog::backoff(failures)) => {}
                            _ = async { stop.wait_for(|s| *s).await.is_ok() } => return,
                        }
                    }
                }
            };
            failures = 0;
            let mut subscription = Subscription::new(log, start);
            let mut sweep = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    batch = subscription.next_batch(256) => match batch {
                        Ok(events) => {
                            failures = 0;
                            let events: Vec<Arc<HubEvent>> = events
                                .into_iter()
                                .map(|e| Arc::new(HubEvent::from(e)))
                                .collect();
                            for e in &events {
                                metrics.record_event(&e.event);
                            }
                            let mut r = routes.routes();
                            for e in &events {
                                r.deliver(e);
                            }
                        }
                        Err(e) => {
                            failures += 1;
                            tracing::warn!(error = %e, "event hub lost the log; retrying");
                            tokio::time::sleep(kefu_eventlog::backoff(failures)).await;
                        }
                    },
                    _ = sweep.tick() => routes.routes().sweep(),
                    _ = async { stop.wait_for(|s| *s).await.is_ok() } => return,
                }
            }
        });
        hub
    }

    /// Events of the streams and categories `interest` names, from now on.
    pub fn subscribe(&self, interest: &Interest) -> Feed {
        let (tx, rx) = mpsc::channel(BUFFER);
        let lagged = Arc::new(AtomicBool::new(false));
        self.routes().add(
            interest,
            Arc::new(Subscriber {
                tx: Mutex::new(Some(tx)),
                lagged: lagged.clone(),
            }),
        );
        Feed { rx, lagged }
    }

    /// Subscriptions the hub holds (each counted once per stream or category it follows).
    #[cfg(test)]
    fn routed(&self) -> usize {
        self.routes().len()
    }

    #[cfg(test)]
    fn deliver(&self, e: RecordedEvent) {
        self.routes().deliver(&Arc::new(HubEvent::from(e)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_eventlog::{Actor, ActorKind, Metadata, StreamId};

    fn event(stream: &str, n: u64) -> RecordedEvent {
        RecordedEvent {
            id: uuid::Uuid::now_v7(),
            stream_id: StreamId::new(stream).unwrap(),
            version: n,
            position: Position(n),
            event_type: "Happened".into(),
            schema_version: 1,
            payload: serde_json::json!({}),
            recorded_at: chrono::Utc::now(),
            metadata: Metadata::for_request(
                Actor::new(ActorKind::System, "test"),
                uuid::Uuid::now_v7(),
            ),
        }
    }

    fn next(feed: &mut Feed) -> Option<String> {
        match feed.rx.try_recv() {
            Ok(e) => Some(e.recorded.stream_id.to_string()),
            Err(_) => None,
        }
    }

    #[test]
    fn an_event_reaches_only_who_asked_for_its_stream_or_category_once() {
        let hub = EventHub::new();
        let mut a = hub.subscribe(&Interest::streams(["conversation-a".to_owned()]));
        let mut b = hub.subscribe(&Interest::streams(["conversation-b".to_owned()]));
        let mut all =
            hub.subscribe(&Interest::streams(["agent-x".to_owned()]).and_category("conversation"));
        let mut both = hub.subscribe(
            &Interest::streams(["conversation-a".to_owned()]).and_category("conversation"),
        );
        hub.deliver(event("conversation-a", 1));
        hub.deliver(event("agent-x", 2));
        hub.deliver(event("ticket-t", 3));
        assert_eq!(next(&mut a).as_deref(), Some("conversation-a"));
        assert_eq!(next(&mut a), None);
        assert_eq!(
            next(&mut b),
            None,
            "another conversation's window is not woken"
        );
        assert_eq!(next(&mut all).as_deref(), Some("conversation-a"));
        assert_eq!(next(&mut all).as_deref(), Some("agent-x"));
        assert_eq!(next(&mut all), None);
        assert_eq!(next(&mut both).as_deref(), Some("conversation-a"));
        assert_eq!(next(&mut both), None, "once, though asked for twice");
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_cut_off_and_told_and_the_rest_go_on() {
        let hub = EventHub::new();
        let mut slow = hub.subscribe(&Interest::streams(["conversation-a".to_owned()]));
        let mut other = hub.subscribe(&Interest::streams(["conversation-b".to_owned()]));
        for n in 0..=BUFFER as u64 {
            hub.deliver(event("conversation-a", n));
        }
        hub.deliver(event("conversation-b", 0));
        for _ in 0..BUFFER {
            assert!(matches!(slow.recv().await, Delivery::Event(_)));
        }
        assert!(matches!(slow.recv().await, Delivery::Lagged));
        assert!(matches!(other.recv().await, Delivery::Event(_)));
    }

    #[tokio::test]
    async fn a_subscriber_cut_off_on_one_route_is_told_though_it_follows_another() {
        let hub = EventHub::new();
        let mut queue =
            hub.subscribe(&Interest::streams(["agent-x".to_owned()]).and_category("conversation"));
        for n in 0..=BUFFER as u64 {
            hub.deliver(event("conversation-a", n));
        }
        for _ in 0..BUFFER {
            assert!(matches!(queue.recv().await, Delivery::Event(_)));
        }
        assert!(matches!(queue.recv().await, Delivery::Lagged));
        hub.deliver(event("agent-x", 0));
        assert_eq!(hub.routed(), 0);
    }

    #[test]
    fn closed_windows_are_forgotten() {
        let hub = EventHub::new();
        let kept = hub.subscribe(&Interest::streams(["conversation-a".to_owned()]));
        drop(hub.subscribe(&Interest::streams(["conversation-b".to_owned()])));
        drop(hub.subscribe(&Interest::default().and_category("ticket")));
        assert_eq!(hub.routed(), 3);
        hub.routes().sweep();
        assert_eq!(hub.routed(), 1);
        drop(kept);
        hub.deliver(event("conversation-a", 1));
        assert_eq!(hub.routed(), 0, "a delivery to a closed window forgets it");
    }
}
