//! The scale-out backend: KurrentDB (formerly EventStoreDB) over its gRPC API, through the
//! `eventstore` 4.0.0 client. Behind the `kurrentdb` cargo feature.
//!
//! **Status: compiled, never run against a server.** No KurrentDB server can be installed on
//! the machines this was written on, so everything below about server behaviour comes from
//! the client's source and KurrentDB's documented semantics, not from a test run. Run
//! `eventlog/tests/kurrentdb.rs` with `KURRENTDB_URL` set before trusting it.
//!
//! KurrentDB is for when one PostgreSQL primary is no longer enough: a replicated cluster built
//! for exactly this workload (streams, optimistic concurrency, a global `$all` order). Streams
//! map one to one to kefu streams, event ids are KurrentDB event ids, the payload is the JSON
//! event body, and the rest of the envelope travels in the event's custom metadata, with the
//! correlation and causation ids under KurrentDB's own `$correlationId` / `$causationId` keys
//! so its system projections understand them.
//!
//! # Positions
//!
//! KurrentDB orders `$all` by commit position, but a read of `$all` must start exactly at a
//! record's position: anywhere else the server refuses the read (`InvalidPosition`). Readers
//! of this crate resume at [`Position::next`], one past the event they saw, which is never a
//! record boundary. So a kefu position is the commit position *doubled*: the event at commit
//! position `c` is at `Position(2c)`, and `Position(2c + 1)` (its `next`) means "after it". A
//! read from either starts at `c`, a real record, and drops what lies before the asked
//! position. [`position_from_commit`] and [`commit_position_of`] convert.
//!
//! Events written through the gRPC API are committed one record each, so every event has a
//! commit position of its own and positions strictly increase along `$all`. `$all` only ever
//! grows at its end (records are committed in log order, and a read sees committed records
//! only), so every read returns a settled prefix, as [`EventLog::read_all`] requires.
//!
//! # Limits
//!
//! - `hold` is ignored: the gRPC API has no client-held transactions; an append is one request
//!   that the server commits at once.
//! - Event ids are deduplicated per stream, as on every kefu backend (`retry.rs`). KurrentDB
//!   makes a resent batch idempotent when it lands where it was first written (reliably for
//!   an exact expected version or `no_stream`, best effort for `any`), and after a conflict
//!   the events where the batch would be are read and judged as the other backends judge
//!   them: a partial resend is [`LogError::DuplicateEventId`]. The same ids sent to another
//!   stream are written again.
//! - [`EventLog::read_correlation`] reads the `$bc-<correlation id>` stream when KurrentDB's
//!   `$by_correlation_id` system projection is running, and scans `$all` from the last event
//!   it linked (the projection trails the log). Without the projection every call is a scan
//!   of the whole `$all`: enable `$by_correlation_id` in production.
//! - `$all` is expected to hold kefu's events only (besides KurrentDB's own `$` streams): an
//!   event in `$all` without kefu's envelope fails the read as [`LogError::Corrupt`], as a bad
//!   row would on the SQL backends. Give kefu a server (or cluster) of its own.
//! - Appends are read back to learn each event's `$all` position, one more round trip per
//!   append. That needs a server which reports positions on stream reads: EventStoreDB 22.10
//!   or later, or any KurrentDB; [`KurrentLog::open`] refuses older servers.
//! - Keep the connection string's `nodePreference` at its default (`leader`): that read-back,
//!   and readers expecting to see their own appends, must not be served by a lagging follower.

use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use eventstore as es;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::retry::{self, StoredAt, Verdict};
use crate::{
    Actor, Appended, EventLog, ExpectedVersion, Limits, LogError, Metadata, NewEvent, Position,
    RecordedEvent, StreamId,
};

const BACKEND: &str = "kurrentdb";

/// The oldest server that reports `$all` positions on stream reads.
const MIN_SERVER: (usize, usize) = (22, 10);

/// Streaming reads get no deadline from the client by default; without one a stalled server
/// would hang a reader for ever.
const READ_DEADLINE: Duration = Duration::from_secs(30);

/// How many `$all` records one read request asks for. System events are skipped on our side,
/// so a request asks for more than the caller wants, within these bounds.
/// How many records `head` looks back through for the last kefu event; the server writes its
/// own system records (stats, scavenges) into $all as well.
const HEAD_SCAN: usize = 4096;
const ALL_PAGE_MIN: usize = 256;
const ALL_PAGE_MAX: usize = 4096;

/// Where the log lives and how it is used.
#[derive(Debug, Clone)]
pub struct KurrentConfig {
    /// A KurrentDB connection string: `kurrentdb://host:2113?tls=false`,
    /// `kurrentdb+discover://cluster.example:2113`, or the older `esdb://` / `esdb+discover://`.
    pub url: String,
    pub limits: Limits,
    /// How often a caught-up subscription looks for other processes' appends.
    pub poll_interval: Duration,
}

impl KurrentConfig {
    pub fn new(url: impl Into<String>) -> Self {
        KurrentConfig {
            url: url.into(),
            limits: Limits::default(),
            poll_interval: Duration::from_millis(200),
        }
    }
}

/// The kefu position of the event at KurrentDB commit position `commit` (see the module docs);
/// None past `u64::MAX / 2`, which no log reaches.
pub fn position_from_commit(commit: u64) -> Option<Position> {
    commit.checked_mul(2).map(Position)
}

/// The KurrentDB commit position of the event at `position`, or of the event `position` is
/// just after (for a position from [`Position::next`]).
pub fn commit_position_of(position: Position) -> u64 {
    position.0 / 2
}

pub struct KurrentLog {
    config: KurrentConfig,
    settings: es::ClientSettings,
    /// Replaced when the client's connection task has died (see [`KurrentLog::failed`]).
    client: RwLock<es::Client>,
    signal: watch::Sender<Position>,
}

impl KurrentLog {
    /// Connects and checks that the server is recent enough. Fails with
    /// [`LogError::Unavailable`] when no server answers.
    pub async fn open(config: KurrentConfig) -> Result<Self, LogError> {
        config.limits.checked()?;
        let settings = client_settings(&config.url)?;
        if settings.node_preference() != es::NodePreference::Leader {
            warn!(
                preference = ?settings.node_preference(),
                "KurrentDB connection does not prefer the leader: appends' read-back and \
                 readers may miss recent appends"
            );
        }
        let client = new_client(&settings)
            .map_err(|e| LogError::Config(format!("cannot create the KurrentDB client: {e}")))?;
        let server = client.server_info().await.map_err(map_error)?;
        let version = server.version();
        let (major, minor, patch) = (version.major(), version.minor(), version.patch());
        if (major, minor) < MIN_SERVER {
            return Err(LogError::Config(format!(
                "the KurrentDB server reports version {major}.{minor}.{patch}; kefu needs \
                 EventStoreDB {}.{} or later (any KurrentDB), which reports event positions on \
                 stream reads",
                MIN_SERVER.0, MIN_SERVER.1
            )));
        }
        info!(
            server = %format!("{major}.{minor}.{patch}"),
            url = %redacted(&config.url),
            "opened the KurrentDB event log"
        );
        Ok(KurrentLog {
            config,
            settings,
            client: RwLock::new(client),
            signal: watch::channel(Position::START).0,
        })
    }

    fn client(&self) -> es::Client {
        self.client
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Maps a client error, replacing the client first if its connection task has ended.
    fn failed(&self, e: es::Error) -> LogError {
        // eventstore 4.0.0 ends its connection task for good when a (re)connection attempt
        // fails, after which every call on that client answers ConnectionClosed. A new client
        // connects afresh on its first call, so the next operation can succeed once the server
        // is back.
        if matches!(
            e,
            es::Error::ConnectionClosed | es::Error::GrpcConnectionError(_)
        ) {
            match new_client(&self.settings) {
                Ok(fresh) => {
                    warn!(error = %e, "KurrentDB connection lost; the next call reconnects");
                    *self.client.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                }
                Err(err) => warn!(error = %err, "cannot replace the dead KurrentDB client"),
            }
        }
        map_error(e)
    }

    /// Up to `max` events of `stream` from revision `from`; a missing stream reads as empty.
    async fn read_stream_records(
        &self,
        stream: &str,
        from: u64,
        max: usize,
        resolve_links: bool,
    ) -> Result<Vec<es::ResolvedEvent>, LogError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut options = es::ReadStreamOptions::default()
            .forwards()
            .position(es::StreamPosition::Position(from))
            .max_count(max)
            .deadline(READ_DEADLINE);
        if resolve_links {
            options = options.resolve_link_tos();
        }
        let client = self.client();
        let mut reading = match client.read_stream(stream, &options).await {
            Ok(r) => r,
            Err(es::Error::ResourceNotFound) => return Ok(Vec::new()),
            Err(e) => return Err(self.failed(e)),
        };
        let mut out = Vec::new();
        loop {
            match reading.next().await {
                Ok(Some(event)) => out.push(event),
                Ok(None) => return Ok(out),
                // The server says so in the response stream, not when the read is sent.
                Err(es::Error::ResourceNotFound) => return Ok(Vec::new()),
                Err(e) => return Err(self.failed(e)),
            }
        }
    }

    /// Walks `$all` from `from`, offering each kefu event at a position `>= from` to `keep`,
    /// until `keep` has accepted `max` or the end of `$all` is reached.
    async fn scan_all<T>(
        &self,
        from: Position,
        max: usize,
        mut keep: impl FnMut(es::RecordedEvent, Position) -> Result<Option<T>, LogError> + Send,
    ) -> Result<Vec<T>, LogError> {
        let mut out = Vec::new();
        // The lowest position still wanted; each page restarts at the record it names.
        let mut floor = from;
        let mut last_offered: Option<Position> = None;
        while out.len() < max {
            let start = match commit_position_of(floor) {
                0 => es::StreamPosition::Start,
                commit => es::StreamPosition::Position(es::Position {
                    commit,
                    // Records written through the gRPC API are their own commit: both
                    // positions are the record's.
                    prepare: commit,
                }),
            };
            let count = (max - out.len()).clamp(ALL_PAGE_MIN, ALL_PAGE_MAX);
            let options = es::ReadAllOptions::default()
                .forwards()
                .position(start)
                .max_count(count)
                .deadline(READ_DEADLINE);
            let client = self.client();
            let mut reading = client
                .read_all(&options)
                .await
                .map_err(|e| self.failed(e))?;
            let mut records = 0usize;
            let mut last_seen = None;
            while let Some(resolved) = reading.next().await.map_err(|e| self.failed(e))? {
                records += 1;
                let Some(record) = resolved.event else {
                    continue;
                };
                let position = position_of(&record)?;
                last_seen = Some(position);
                if position < floor || is_system(&record) {
                    continue;
                }
                if last_offered.is_some_and(|l| position <= l) {
                    return Err(LogError::Corrupt(format!(
                        "KurrentDB returned event {} at commit position {} after one at {}: \
                         events written in explicit (pre-gRPC) transactions share a commit \
                         position and cannot be read as a kefu log",
                        record.id,
                        commit_position_of(position),
                        last_offered.map_or(0, commit_position_of)
                    )));
                }
                last_offered = Some(position);
                if let Some(item) = keep(record, position)? {
                    out.push(item);
                    if out.len() == max {
                        break;
                    }
                }
            }
            // A short page is the end of $all.
            let Some(last) = last_seen.filter(|_| records >= count) else {
                break;
            };
            let next = last.next();
            if next <= floor {
                return Err(LogError::Backend {
                    backend: BACKEND,
                    message: format!("reading $all did not advance past position {floor}"),
                });
            }
            floor = next;
        }
        Ok(out)
    }

    /// The events stored where a retry of the batch would be ([`retry::retry_slot`]).
    async fn retry_slots(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        len: usize,
        current: Option<u64>,
    ) -> Result<Vec<StoredAt>, LogError> {
        let Some(first) = retry::retry_slot(expected, current, len) else {
            return Ok(Vec::new());
        };
        let page = self
            .read_stream_records(stream.as_str(), first, len, false)
            .await?;
        page.iter()
            .filter_map(|r| r.event.as_ref())
            .map(|record| {
                Ok(StoredAt {
                    id: record.id,
                    version: record.revision,
                    position: position_of(record)?,
                    event: serde_json::from_slice(&record.data)
                        .ok()
                        .map(|p| (record.event_type.clone(), p)),
                })
            })
            .collect()
    }

    /// Decides what a rejected append was: a plain conflict, or a retry of a batch that is
    /// stored (whole and in place: acknowledge it; in part: refuse it).
    async fn examine_conflict(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        ids: &[Uuid],
        sent: &[(&str, &serde_json::Value)],
        actual: Option<u64>,
    ) -> Result<Appended, LogError> {
        let conflict = LogError::WrongExpectedVersion {
            stream: stream.clone(),
            expected,
            actual,
        };
        let slots = match self.retry_slots(stream, expected, ids.len(), actual).await {
            Ok(slots) => slots,
            Err(e) => {
                debug!(%stream, error = %e, "could not read where a retry of the batch would be");
                return Err(conflict);
            }
        };
        match retry::judge(stream, expected, ids, sent, &slots)? {
            Verdict::Fresh => Err(conflict),
            Verdict::Replay(appended) => Ok(appended),
        }
    }

    /// The events of a correlation that the `$by_correlation_id` projection has linked, and
    /// where to scan on for those it has not linked yet. None when the links cannot be used
    /// (then the whole of `$all` is scanned).
    async fn linked_correlation(
        &self,
        correlation_id: Uuid,
    ) -> Result<Option<(Vec<RecordedEvent>, Position)>, LogError> {
        let linked = self
            .read_stream_records(&format!("$bc-{correlation_id}"), 0, usize::MAX, true)
            .await?;
        if linked.is_empty() {
            return Ok(None);
        }
        let mut events = Vec::with_capacity(linked.len());
        for resolved in linked {
            // A link whose event was deleted resolves to nothing.
            let Some(record) = resolved.event else {
                continue;
            };
            if record.position.commit == u64::MAX {
                debug!(%correlation_id, "linked events carry no $all position; scanning $all");
                return Ok(None);
            }
            let event = decode(record)?;
            if event.metadata.correlation_id == correlation_id {
                events.push(event);
            }
        }
        // The projection processes $all in order, so everything of this correlation up to the
        // last linked event is linked; later ones may not be yet.
        let resume = events.iter().map(|e| e.position).max().map(Position::next);
        Ok(resume.map(|r| (events, r)))
    }
}

impl EventLog for KurrentLog {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// `hold` is ignored: the gRPC API has no transaction a client could keep open.
    async fn append_holding(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        _hold: Duration,
    ) -> Result<Appended, LogError> {
        // The serialized payloads are not reused: the client serializes the JSON itself, and
        // takes pre-serialized bytes only as a non-JSON ("binary") event.
        self.config.limits.validate(&events)?;
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        let data = events.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        let options = es::AppendToStreamOptions::default().expected_revision(match expected {
            ExpectedVersion::Any => es::ExpectedRevision::Any,
            ExpectedVersion::NoStream => es::ExpectedRevision::NoStream,
            ExpectedVersion::Exact(v) => es::ExpectedRevision::Exact(v),
        });
        let client = self.client();
        let written = match client
            .append_to_stream(stream.as_str(), &options, data)
            .await
        {
            Ok(w) => w,
            Err(es::Error::WrongExpectedVersion { current, .. }) => {
                let actual = match current {
                    es::CurrentRevision::Current(v) => Some(v),
                    es::CurrentRevision::NoStream => None,
                };
                let sent: Vec<(&str, &serde_json::Value)> = events
                    .iter()
                    .map(|e| (e.event_type.as_str(), &e.payload))
                    .collect();
                let appended = self
                    .examine_conflict(stream, expected, &ids, &sent, actual)
                    .await?;
                crate::signal_appended(&self.signal, &appended);
                return Ok(appended);
            }
            Err(e) => return Err(self.failed(e)),
        };

        // For a replayed batch the server answers with the original revisions too.
        let last_version = written.next_expected_version;
        let count = ids.len() as u64;
        let first_version = (last_version + 1).checked_sub(count).ok_or_else(|| {
            LogError::Backend {
                backend: BACKEND,
                message: format!(
                    "KurrentDB acknowledged {count} events to {stream} at revision {last_version}"
                ),
            }
        })?;
        // The write result carries one position for the whole batch; each event's comes from
        // reading the batch back.
        let stored = self
            .read_stream_records(stream.as_str(), first_version, ids.len(), false)
            .await?;
        let records: Vec<&es::RecordedEvent> =
            stored.iter().filter_map(|r| r.event.as_ref()).collect();
        let in_place =
            records.len() == ids.len() && records.iter().zip(&ids).all(|(r, id)| r.id == *id);
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Err(misplaced(stream, first_version, last_version));
        };
        if !in_place {
            return Err(misplaced(stream, first_version, last_version));
        }
        let appended = Appended {
            first_version,
            last_version,
            first_position: position_of(first)?,
            last_position: position_of(last)?,
        };
        debug!(
            %stream,
            first_version,
            last_version,
            commit = commit_position_of(appended.last_position),
            "appended"
        );
        crate::signal_appended(&self.signal, &appended);
        Ok(appended)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.read_stream_records(stream.as_str(), from, max, false)
            .await?
            .into_iter()
            .filter_map(|r| r.event)
            .map(decode)
            .collect()
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>, LogError> {
        // Positioning at the end makes the client read backwards.
        let options = es::ReadStreamOptions::default()
            .position(es::StreamPosition::End)
            .max_count(1)
            .deadline(READ_DEADLINE);
        let client = self.client();
        let mut reading = match client.read_stream(stream.as_str(), &options).await {
            Ok(r) => r,
            Err(es::Error::ResourceNotFound) => return Ok(None),
            Err(e) => return Err(self.failed(e)),
        };
        match reading.next().await {
            // Not resolving links, the read event is always the stream's own.
            Ok(Some(last)) => Ok(last.event.map(|e| e.revision)),
            Ok(None) | Err(es::Error::ResourceNotFound) => Ok(None),
            Err(e) => Err(self.failed(e)),
        }
    }

    async fn head(&self) -> Result<Option<Position>, LogError> {
        // Backwards from the end of $all, past the server's own system records.
        let options = es::ReadAllOptions::default()
            .backwards()
            .position(es::StreamPosition::End)
            .max_count(HEAD_SCAN)
            .deadline(READ_DEADLINE);
        let client = self.client();
        let mut reading = client
            .read_all(&options)
            .await
            .map_err(|e| self.failed(e))?;
        while let Some(resolved) = reading.next().await.map_err(|e| self.failed(e))? {
            if let Some(record) = resolved.event
                && !is_system(&record)
            {
                return position_of(&record).map(Some);
            }
        }
        Ok(None)
    }

    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, LogError> {
        self.scan_all(from, max, |record, _| decode(record).map(Some))
            .await
    }

    async fn read_correlation(&self, correlation_id: Uuid) -> Result<Vec<RecordedEvent>, LogError> {
        let (mut events, from) = match self.linked_correlation(correlation_id).await? {
            Some(linked) => linked,
            None => {
                debug!(
                    %correlation_id,
                    "no $bc- stream (is the $by_correlation_id projection running?); scanning \
                     the whole of $all"
                );
                (Vec::new(), Position::START)
            }
        };
        let rest = self
            .scan_all(from, usize::MAX, |record, _| {
                if stored_metadata(&record)?.correlation_id != correlation_id {
                    return Ok(None);
                }
                decode(record).map(Some)
            })
            .await?;
        events.extend(rest);
        events.sort_by_key(|e| e.position);
        events.dedup_by_key(|e| e.id);
        Ok(events)
    }

    fn appended_signal(&self) -> watch::Receiver<Position> {
        self.signal.subscribe()
    }

    fn poll_interval(&self) -> Duration {
        self.config.poll_interval
    }
}

/// The envelope fields that travel in a KurrentDB event's custom metadata.
#[derive(Debug, Serialize, Deserialize)]
struct StoredMetadata {
    #[serde(rename = "$correlationId")]
    correlation_id: Uuid,
    #[serde(rename = "$causationId")]
    causation_id: Uuid,
    schema_version: u32,
    actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
}

fn encode(e: &NewEvent) -> Result<es::EventData, LogError> {
    let metadata = StoredMetadata {
        correlation_id: e.metadata.correlation_id,
        causation_id: e.metadata.causation_id,
        schema_version: e.schema_version,
        actor: e.metadata.actor.clone(),
        trace_id: e.metadata.trace_id.clone(),
    };
    es::EventData::json(&e.event_type, &e.payload)
        .and_then(|data| data.id(e.id).metadata_as_json(&metadata))
        .map_err(|err| LogError::Corrupt(format!("event {} would not serialize: {err}", e.id)))
}

fn stored_metadata(record: &es::RecordedEvent) -> Result<StoredMetadata, LogError> {
    serde_json::from_slice(&record.custom_metadata).map_err(|e| {
        LogError::Corrupt(format!(
            "event {} in {} has no kefu metadata: {e}",
            record.id, record.stream_id
        ))
    })
}

fn decode(record: es::RecordedEvent) -> Result<RecordedEvent, LogError> {
    let position = position_of(&record)?;
    let metadata = stored_metadata(&record)?;
    let payload = serde_json::from_slice(&record.data).map_err(|e| {
        LogError::Corrupt(format!(
            "event {} in {} has a payload that is not JSON: {e}",
            record.id, record.stream_id
        ))
    })?;
    let recorded_at = recorded_at(&record);
    let id = record.id;
    let stream_id = StreamId::new(record.stream_id).map_err(|e| {
        LogError::Corrupt(format!("event {id} is in a stream kefu cannot name: {e}"))
    })?;
    Ok(RecordedEvent {
        id,
        stream_id,
        version: record.revision,
        position,
        event_type: record.event_type,
        schema_version: metadata.schema_version,
        payload,
        recorded_at,
        metadata: Metadata {
            actor: metadata.actor,
            correlation_id: metadata.correlation_id,
            causation_id: metadata.causation_id,
            trace_id: metadata.trace_id,
        },
    })
}

fn position_of(record: &es::RecordedEvent) -> Result<Position, LogError> {
    // Servers that do not know the position of an event read from a stream send u64::MAX.
    if record.position.commit == u64::MAX {
        return Err(LogError::Backend {
            backend: BACKEND,
            message: format!(
                "KurrentDB did not report the $all position of event {} in {}; kefu needs \
                 EventStoreDB {}.{} or later (any KurrentDB)",
                record.id, record.stream_id, MIN_SERVER.0, MIN_SERVER.1
            ),
        });
    }
    position_from_commit(record.position.commit).ok_or_else(|| {
        LogError::Corrupt(format!(
            "event {} has commit position {}, beyond what kefu can number",
            record.id, record.position.commit
        ))
    })
}

/// When the server stored the event, to the microsecond.
fn recorded_at(record: &es::RecordedEvent) -> DateTime<Utc> {
    // The client's `created` is cut to whole seconds; the raw value is in 100 ns ticks since
    // the Unix epoch.
    record
        .metadata
        .get("created")
        .and_then(|ticks| ticks.parse::<i64>().ok())
        .and_then(|ticks| DateTime::from_timestamp_micros(ticks / 10))
        .unwrap_or(record.created)
}

fn is_system(record: &es::RecordedEvent) -> bool {
    record.event_type.starts_with('$') || record.stream_id.starts_with('$')
}

fn misplaced(stream: &StreamId, first: u64, last: u64) -> LogError {
    LogError::Backend {
        backend: BACKEND,
        message: format!(
            "KurrentDB acknowledged the append to {stream} at versions {first}..={last}, but \
             reading them back does not find the batch there"
        ),
    }
}

/// Builds client settings, accepting the `kurrentdb://` schemes the 4.0.0 client predates.
fn client_settings(url: &str) -> Result<es::ClientSettings, LogError> {
    let url = url.trim();
    let translated = if let Some(rest) = url.strip_prefix("kurrentdb+discover://") {
        format!("esdb+discover://{rest}")
    } else if let Some(rest) = url.strip_prefix("kurrentdb://") {
        format!("esdb://{rest}")
    } else {
        url.to_owned()
    };
    translated
        .parse::<es::ClientSettings>()
        .map_err(|e: es::ClientSettingsParseError| {
            // Some of the client's messages repeat the whole string, password included.
            let reason = e
                .error()
                .map_or_else(|| e.message().to_owned(), ToString::to_string);
            LogError::Config(format!(
                "bad KurrentDB connection string {}: {reason}",
                redacted(url)
            ))
        })
}

fn new_client(settings: &es::ClientSettings) -> Result<es::Client, es::Error> {
    // `Client::new` panics outside a tokio runtime; ask for the handle instead.
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|e| es::Error::InitializationError(e.to_string()))?;
    es::Client::with_runtime_handle(handle, settings.clone())
}

/// The connection string without its password, for messages and logs.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

fn map_error(e: es::Error) -> LogError {
    let unavailable = match &e {
        es::Error::ConnectionClosed
        | es::Error::GrpcConnectionError(_)
        | es::Error::DeadlineExceeded
        | es::Error::NotLeaderException(_) => true,
        // The client folds several gRPC codes into ServerError; only Unavailable is the
        // network's or a node's absence rather than a server fault.
        es::Error::ServerError(status) => status.starts_with("status: Unavailable"),
        _ => false,
    };
    if unavailable {
        LogError::Unavailable {
            backend: BACKEND,
            message: e.to_string(),
        }
    } else {
        LogError::Backend {
            backend: BACKEND,
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_double_the_commit_position_and_next_stays_on_the_record() {
        let p = position_from_commit(1234).expect("in range");
        assert_eq!(p, Position(2468));
        assert_eq!(commit_position_of(p), 1234);
        assert_eq!(commit_position_of(p.next()), 1234);
        assert!(position_from_commit(1235).expect("in range") > p.next());
        assert_eq!(position_from_commit(u64::MAX), None);
    }

    #[test]
    fn kurrentdb_schemes_are_accepted() {
        for url in [
            "kurrentdb://localhost:2113?tls=false",
            "kurrentdb+discover://cluster.example:2113",
            "esdb://admin:changeit@localhost:2113?tls=false",
        ] {
            client_settings(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        let discover = client_settings("kurrentdb+discover://cluster.example:2113").unwrap();
        assert!(discover.is_dns_discovery_enabled());
        let err = client_settings("kurrentdb://admin:secret@localhost:2113?tls=maybe")
            .expect_err("bad tls flag");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redacted("kurrentdb://admin:changeit@db:2113?tls=false"),
            "kurrentdb://admin:***@db:2113?tls=false"
        );
        assert_eq!(redacted("esdb://db:2113"), "esdb://db:2113");
    }

    #[test]
    fn the_envelope_round_trips_through_the_metadata() {
        let actor = Actor::new(crate::ActorKind::Agent, "a-7");
        let event = NewEvent::new(
            "TicketOpened",
            serde_json::json!({ "subject": "refund" }),
            Metadata {
                actor: actor.clone(),
                correlation_id: Uuid::now_v7(),
                causation_id: Uuid::now_v7(),
                trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            },
        )
        .with_schema_version(3);
        let stored = StoredMetadata {
            correlation_id: event.metadata.correlation_id,
            causation_id: event.metadata.causation_id,
            schema_version: event.schema_version,
            actor,
            trace_id: event.metadata.trace_id.clone(),
        };
        let json = serde_json::to_value(&stored).unwrap();
        assert_eq!(
            json["$correlationId"],
            event.metadata.correlation_id.to_string()
        );
        assert_eq!(json["actor"]["kind"], "agent");
        let back: StoredMetadata = serde_json::from_value(json).unwrap();
        assert_eq!(back.causation_id, event.metadata.causation_id);
        assert_eq!(back.schema_version, 3);
        assert!(encode(&event).is_ok());
    }
}
