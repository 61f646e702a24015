//! Streams kept in memory, and the sink that turns decided events into planned appends.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use kefu_domain::{Decider, DomainEvent};
use kefu_eventlog::{Actor, ExpectedVersion, Metadata, NewEvent, StreamId};
use rand::rngs::StdRng;
use rand::{Rng, RngCore};
use uuid::Uuid;

use super::{HistoryError, PlannedAppend};

/// One stream as the generator keeps it: what the command service would load.
pub(crate) struct Stream<D: Decider> {
    pub id: D::Id,
    pub name: StreamId,
    pub state: D::State,
    /// Version of the last event, `None` while the stream is empty.
    pub version: Option<u64>,
    /// Time of the last event, so a late reaction never records an earlier time than what
    /// the stream already holds.
    pub last_at: DateTime<Utc>,
}

impl<D: Decider> Stream<D> {
    pub fn new(id: D::Id) -> Result<Self, HistoryError> {
        Ok(Stream {
            id,
            name: StreamId::new(D::stream_id(id)).map_err(HistoryError::StreamId)?,
            state: D::initial_state(),
            version: None,
            last_at: DateTime::UNIX_EPOCH,
        })
    }
}

/// An event that may cause others: enough of it to build their metadata.
#[derive(Debug, Clone)]
pub(crate) struct Cause {
    pub id: Uuid,
    pub correlation: Uuid,
    pub trace: Option<String>,
}

impl Cause {
    pub fn metadata(&self, actor: Actor) -> Metadata {
        Metadata {
            actor,
            correlation_id: self.correlation,
            causation_id: self.id,
            trace_id: self.trace.clone(),
        }
    }
}

/// Counts kept while planning; the summary is built from them.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub events: u64,
    pub appends: u64,
    pub streams: u64,
    pub by_type: BTreeMap<&'static str, u64>,
    pub by_category: BTreeMap<&'static str, u64>,
    pub first_at: Option<DateTime<Utc>>,
    pub last_at: Option<DateTime<Utc>>,
}

/// Where decided events go: the planned appends of the action being simulated, the seeded
/// RNG every random choice and id comes from, and the simulated clock.
pub(crate) struct Sink {
    pub rng: StdRng,
    pub now: DateTime<Utc>,
    pub out: VecDeque<PlannedAppend>,
    pub tally: Tally,
}

impl Sink {
    /// A UUIDv7 for `at`: the time in the high bits as the standard asks, the rest from the
    /// seeded RNG, so ids sort by simulated time and repeat with the seed.
    pub fn mint(&mut self, at: DateTime<Utc>) -> Uuid {
        let mut random = [0u8; 10];
        self.rng.fill_bytes(&mut random);
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
    }

    /// The time `mint` put into `id`: an event's for an event id, the request's arrival for
    /// a request id. None for an id minted elsewhere.
    fn minted_at(id: Uuid) -> Option<DateTime<Utc>> {
        let (secs, nanos) = id.get_timestamp()?.to_unix();
        DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
    }

    /// Metadata of a new request by `actor`: the request is its own correlation and cause.
    /// Requests from the apps and the web carry a W3C trace id, as the gateway adds one.
    pub fn request(&mut self, actor: Actor, traced: bool) -> Metadata {
        let id = self.mint(self.now);
        let mut metadata = Metadata::for_request(actor, id);
        if traced {
            let trace: u128 = self.rng.random();
            metadata.trace_id = Some(format!("{trace:032x}"));
        }
        metadata
    }

    /// Decides the command `build` makes for time `at` (or the stream's last time, or the
    /// time of the cause `metadata` names, if later) against the stream's state; every event
    /// it decides is folded in and planned with `metadata`. Returns one cause per event.
    pub fn run<D: Decider>(
        &mut self,
        stream: &mut Stream<D>,
        command: &'static str,
        at: DateTime<Utc>,
        metadata: &Metadata,
        build: impl FnOnce(DateTime<Utc>) -> D::Command,
    ) -> Result<Vec<Cause>, HistoryError> {
        // Callers date a reaction from their own clock, which may not have reached a cause
        // scheduled a moment ahead (a queueing after a routing delay): the cause's time, read
        // from its id, keeps a seat from being taken before the queueing that asked for it.
        let at = at
            .max(stream.last_at)
            .max(Self::minted_at(metadata.causation_id).unwrap_or(at));
        let events =
            D::decide(&stream.state, build(at)).map_err(|source| HistoryError::Refused {
                stream: stream.name.to_string(),
                command,
                source,
            })?;
        stream.last_at = at;
        let mut causes = Vec::with_capacity(events.len());
        for event in events {
            let encoded = event.encode().map_err(|source| HistoryError::Encode {
                stream: stream.name.to_string(),
                source,
            })?;
            let id = self.mint(at);
            causes.push(Cause {
                id,
                correlation: metadata.correlation_id,
                trace: metadata.trace_id.clone(),
            });
            self.push::<D>(
                stream,
                NewEvent {
                    id,
                    event_type: encoded.event_type.to_owned(),
                    schema_version: encoded.schema_version,
                    payload: encoded.payload,
                    metadata: metadata.clone(),
                },
                encoded.event_type,
            );
            let state = std::mem::replace(&mut stream.state, D::initial_state());
            stream.state = D::evolve(state, &event);
        }
        Ok(causes)
    }

    /// Like [`Sink::run`] for a command that must record something; returns the last event.
    pub fn run1<D: Decider>(
        &mut self,
        stream: &mut Stream<D>,
        command: &'static str,
        at: DateTime<Utc>,
        metadata: &Metadata,
        build: impl FnOnce(DateTime<Utc>) -> D::Command,
    ) -> Result<Cause, HistoryError> {
        self.run(stream, command, at, metadata, build)?
            .pop()
            .ok_or(HistoryError::Inconsistent(command))
    }

    /// Consecutive events of one stream within one action go into one append: a request's
    /// events, written in one round trip.
    fn push<D: Decider>(
        &mut self,
        stream: &mut Stream<D>,
        event: NewEvent,
        event_type: &'static str,
    ) {
        let category = <D::Event as DomainEvent>::CATEGORY;
        *self.tally.by_type.entry(event_type).or_default() += 1;
        *self.tally.by_category.entry(category).or_default() += 1;
        self.tally.events += 1;
        self.tally.first_at.get_or_insert(self.now);
        self.tally.last_at = Some(self.now);
        match self.out.back_mut() {
            Some(last) if last.stream == stream.name => last.events.push(event),
            _ => {
                let expected = match stream.version {
                    None => ExpectedVersion::NoStream,
                    Some(v) => ExpectedVersion::Exact(v),
                };
                self.tally.appends += 1;
                self.out.push_back(PlannedAppend {
                    stream: stream.name.clone(),
                    expected,
                    events: vec![event],
                    at: self.now,
                });
            }
        }
        stream.version = match stream.version {
            None => {
                self.tally.streams += 1;
                Some(0)
            }
            Some(v) => Some(v + 1),
        };
    }
}
