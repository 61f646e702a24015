//! The event envelope: what a writer hands the log, and what the log hands back.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::LogError;

/// Longest stream id the log accepts, in bytes.
pub const MAX_STREAM_ID_LEN: usize = 200;
/// Longest event type name, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 128;

/// A stream's name: `<category>-<id>`, e.g. `conversation-0193a1f2-…`.
///
/// The category (lower-case ASCII letters, digits and `_`, starting with a letter) is what
/// projections and workers filter on; the id part may hold ASCII letters, digits and `_ . : -`.
/// Keeping the alphabet small keeps stream ids safe in URLs, file names and log lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    pub fn new(raw: impl Into<String>) -> Result<Self, LogError> {
        let raw = raw.into();
        match stream_id_problem(&raw) {
            None => Ok(StreamId(raw)),
            Some(reason) => Err(LogError::InvalidStreamId {
                stream: raw,
                reason,
            }),
        }
    }

    /// A stream of `category` for an entity id, e.g. `StreamId::of("ticket", id)`.
    pub fn of(category: &str, id: impl fmt::Display) -> Result<Self, LogError> {
        Self::new(format!("{category}-{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the first `-`.
    pub fn category(&self) -> &str {
        self.0.split_once('-').map_or(&self.0[..], |(c, _)| c)
    }

    /// The part after the first `-`.
    pub fn entity_id(&self) -> &str {
        self.0.split_once('-').map_or("", |(_, id)| id)
    }
}

fn stream_id_problem(raw: &str) -> Option<&'static str> {
    if raw.is_empty() {
        return Some("it is empty");
    }
    if raw.len() > MAX_STREAM_ID_LEN {
        return Some("it is longer than 200 bytes");
    }
    let Some((category, id)) = raw.split_once('-') else {
        return Some("it has no '-' between category and id (expected `<category>-<id>`)");
    };
    let mut cat = category.bytes();
    match cat.next() {
        Some(b) if b.is_ascii_lowercase() => {}
        _ => return Some("the category must start with a lower-case ASCII letter"),
    }
    if !cat.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Some("the category may hold only lower-case ASCII letters, digits and '_'");
    }
    if id.is_empty() {
        return Some("the id after the category is empty");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
    {
        return Some("the id may hold only ASCII letters, digits and '_', '.', ':', '-'");
    }
    None
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for StreamId {
    type Err = LogError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StreamId::new(s)
    }
}

impl TryFrom<String> for StreamId {
    type Error = LogError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        StreamId::new(s)
    }
}

impl From<StreamId> for String {
    fn from(s: StreamId) -> String {
        s.0
    }
}

impl AsRef<str> for StreamId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A place in the whole log. Positions only ever increase in the order subscribers receive
/// events; they are not dense (PostgreSQL and KurrentDB leave holes), so treat them as
/// opaque, ordered checkpoints. `Position::START` is before the first event.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    pub const START: Position = Position(0);

    /// The position just after this one: where a reader that has seen `self` goes on.
    pub fn next(self) -> Position {
        Position(self.0.saturating_add(1))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What the writer believes about the stream before appending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "version")]
pub enum ExpectedVersion {
    /// No check: append after whatever is there.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    /// Parses what a client or operator typed: `any`, `no_stream` (or `no-stream`), or a
    /// version number.
    pub fn parse(input: &str) -> Result<Self, LogError> {
        match input.trim() {
            "any" => Ok(ExpectedVersion::Any),
            "no_stream" | "no-stream" => Ok(ExpectedVersion::NoStream),
            other => other
                .parse::<u64>()
                .map(ExpectedVersion::Exact)
                .map_err(|_| LogError::InvalidExpectedVersion {
                    input: input.to_owned(),
                }),
        }
    }

    /// Whether a stream whose last version is `current` satisfies this expectation.
    pub fn admits(self, current: Option<u64>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current.is_none(),
            ExpectedVersion::Exact(v) => current == Some(v),
        }
    }

    /// The version the first event of a batch gets when it was appended under this
    /// expectation (None for `Any`, which does not pin it).
    pub fn first_version(self) -> Option<u64> {
        match self {
            ExpectedVersion::Any => None,
            ExpectedVersion::NoStream => Some(0),
            ExpectedVersion::Exact(v) => Some(v + 1),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no_stream"),
            ExpectedVersion::Exact(v) => v.fmt(f),
        }
    }
}

impl FromStr for ExpectedVersion {
    type Err = LogError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExpectedVersion::parse(s)
    }
}

/// Who caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Customer,
    Agent,
    Bot,
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Customer => "customer",
            ActorKind::Agent => "agent",
            ActorKind::Bot => "bot",
            ActorKind::System => "system",
        }
    }
}

impl FromStr for ActorKind {
    type Err = LogError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "customer" => Ok(ActorKind::Customer),
            "agent" => Ok(ActorKind::Agent),
            "bot" => Ok(ActorKind::Bot),
            "system" => Ok(ActorKind::System),
            other => Err(LogError::Corrupt(format!("unknown actor kind {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    /// The customer's, agent's or bot's id; for `System`, the component (e.g. `assigner`).
    pub id: String,
}

impl Actor {
    pub fn new(kind: ActorKind, id: impl Into<String>) -> Self {
        Actor {
            kind,
            id: id.into(),
        }
    }

    pub fn system(component: &str) -> Self {
        Actor::new(ActorKind::System, component)
    }
}

/// Where an event came from: the request it belongs to and what directly caused it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Metadata {
    pub actor: Actor,
    /// Shared by everything one customer request set off, across streams and workers.
    pub correlation_id: Uuid,
    /// The event or request that directly caused this event.
    pub causation_id: Uuid,
    /// W3C trace id, when the request came with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl Metadata {
    /// Metadata for the first events of a new request: the request is its own correlation and
    /// cause.
    pub fn for_request(actor: Actor, request_id: Uuid) -> Self {
        Metadata {
            actor,
            correlation_id: request_id,
            causation_id: request_id,
            trace_id: None,
        }
    }

    /// Metadata for an event caused by `cause`: same correlation, `cause` as causation.
    pub fn caused_by(actor: Actor, cause: &RecordedEvent) -> Self {
        Metadata {
            actor,
            correlation_id: cause.metadata.correlation_id,
            causation_id: cause.id,
            trace_id: cause.metadata.trace_id.clone(),
        }
    }
}

/// An event to append. Its id makes appends idempotent: a retry with the same ids is
/// acknowledged without writing twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    /// Always a JSON object.
    pub payload: serde_json::Value,
    pub metadata: Metadata,
}

impl NewEvent {
    /// A new event with a fresh UUIDv7 id and schema version 1.
    pub fn new(
        event_type: impl Into<String>,
        payload: serde_json::Value,
        metadata: Metadata,
    ) -> Self {
        NewEvent {
            id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version: 1,
            payload,
            metadata,
        }
    }

    /// The recorded event to be appended again elsewhere as it was (its id, type, schema
    /// version, payload and metadata): a scratch copy of history, or history moved between
    /// stores. The target assigns the stream version, position and time.
    pub fn copy_of(e: &RecordedEvent) -> Self {
        NewEvent {
            id: e.id,
            event_type: e.event_type.clone(),
            schema_version: e.schema_version,
            payload: e.payload.clone(),
            metadata: e.metadata.clone(),
        }
    }

    pub fn with_schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }

    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }
}

/// An event as the log stored it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub id: Uuid,
    pub stream_id: StreamId,
    /// Gapless from 0 within the stream.
    pub version: u64,
    pub position: Position,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
    pub metadata: Metadata,
}

/// What an append reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// Version of the first event of the batch.
    pub first_version: u64,
    /// Version of the last event: the expected version for the writer's next append.
    pub last_version: u64,
    pub first_position: Position,
    /// Where the batch ends in the whole log: a reader that has reached this position has
    /// seen the batch.
    pub last_position: Position,
}
