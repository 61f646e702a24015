//! The shape every stream shares: a [`Decider`] turns a command into events given the state
//! folded from earlier events, and a [`DomainEvent`] knows how to cross the event log's
//! boundary (type name, schema version, JSON payload).

use std::fmt::{Debug, Display};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::DomainError;
use crate::upcast;

/// One stream's business logic, as three pure functions.
///
/// `decide` holds every rule: it either refuses the command with a [`DomainError`] or returns
/// the events that record what happened (possibly none, for a harmless retry). `evolve` only
/// applies facts and never refuses one: an event in the log happened, whatever today's rules
/// say, so old streams must always load.
pub trait Decider {
    /// The id of the entity a stream is about; the stream is named `<category>-<id>`.
    type Id: Copy + Display + From<Uuid>;
    type State: Clone + PartialEq + Debug;
    type Command;
    type Event: DomainEvent;

    fn initial_state() -> Self::State;

    fn decide(state: &Self::State, command: Self::Command)
    -> Result<Vec<Self::Event>, DomainError>;

    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// The stream that holds the events of `id`, e.g. `conversation-0193…`.
    fn stream_id(id: Self::Id) -> String {
        format!("{}-{id}", Self::Event::CATEGORY)
    }

    /// The entity id in a stream id of this category, or `None` if the stream belongs to
    /// another category or its id is not a UUID.
    fn id_of_stream(stream: &str) -> Option<Self::Id> {
        let id = stream
            .strip_prefix(Self::Event::CATEGORY)?
            .strip_prefix('-')?;
        Uuid::parse_str(id).ok().map(Self::Id::from)
    }
}

/// Decides `commands` as one decision: each against the state the events of the ones before
/// it lead to. The answer is all their events, or the first refusal and none of them, so an
/// operation that changes several things on one stream (a ticket's priority and its status)
/// appends once or not at all.
pub fn decide_all<D: Decider>(
    state: &D::State,
    commands: impl IntoIterator<Item = D::Command>,
) -> Result<Vec<D::Event>, DomainError> {
    let mut state = state.clone();
    let mut events = Vec::new();
    for command in commands {
        let decided = D::decide(&state, command)?;
        state = fold_from::<D>(state, &decided);
        events.extend(decided);
    }
    Ok(events)
}

/// Whether a worker's reaction was recorded already: `recorded` holds the reaction keys of
/// the events in the stream caused by the same event as `decided`. A reaction is appended
/// whole (one batch), so one of its keys found means it happened; deciding it again after a
/// crash, an outage or beside a second instance must then change nothing. The rule is kept
/// to the event types a decider keys ([`DomainEvent::reaction_key`]): those whose state
/// would accept the reaction twice (a second prediction, a second routing). Seats are not
/// keyed: a seat taken, given back and taken again for one cause is three real changes.
pub fn already_reacted<E: DomainEvent>(recorded: &[String], decided: &[E]) -> bool {
    decided
        .iter()
        .filter_map(DomainEvent::reaction_key)
        .any(|key| recorded.contains(&key))
}

/// The state after `events`, starting from the stream's initial state.
pub fn fold<'a, D: Decider>(events: impl IntoIterator<Item = &'a D::Event>) -> D::State
where
    D::Event: 'a,
{
    fold_from::<D>(D::initial_state(), events)
}

/// The state after applying `events` to `state`.
pub fn fold_from<'a, D: Decider>(
    state: D::State,
    events: impl IntoIterator<Item = &'a D::Event>,
) -> D::State
where
    D::Event: 'a,
{
    events.into_iter().fold(state, D::evolve)
}

/// An event as the log stores it: what goes into `NewEvent`'s `event_type`, `schema_version`
/// and `payload`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedEvent {
    pub event_type: &'static str,
    pub schema_version: u32,
    /// Always a JSON object.
    pub payload: Value,
}

/// The JSON Schema of one event type's payload, at its current schema version.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSchema {
    pub event_type: &'static str,
    pub category: &'static str,
    pub schema_version: u32,
    pub schema: Value,
}

impl EventSchema {
    pub fn of<T: schemars::JsonSchema>(
        event_type: &'static str,
        category: &'static str,
        schema_version: u32,
    ) -> Self {
        let mut schema = schemars::schema_for!(T);
        // Readers of the schema files (other teams, the API docs) need to know which stream
        // and which version a file describes without reading Rust.
        schema.insert("x-kefu-stream-category".into(), Value::from(category));
        schema.insert("x-kefu-schema-version".into(), Value::from(schema_version));
        EventSchema {
            event_type,
            category,
            schema_version,
            schema: schema.to_value(),
        }
    }
}

/// The events of one stream category.
///
/// Each stream's event enum is internally tagged by `type` with one variant per event type,
/// named after it (e.g. `ConversationStarted`), and each variant wraps a struct of the same
/// name. The log keeps the type name beside the payload, so `encode` drops the tag from the
/// payload and `decode` picks the variant by the type name, after running the upcasters for
/// older versions.
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + PartialEq + Debug {
    /// The stream category, the part of the stream id before the first `-`.
    const CATEGORY: &'static str;
    /// Every event type of this category.
    const EVENT_TYPES: &'static [&'static str];

    fn event_type(&self) -> &'static str;

    /// The schema version new events of this type are written with, or `None` if the type
    /// does not belong to this category.
    fn current_version(event_type: &str) -> Option<u32>;

    /// The payload schema of each event type.
    fn json_schemas() -> Vec<EventSchema>;

    /// The event from a payload of the current schema version (without the `type` tag), or
    /// None if the type does not belong to this category.
    fn from_current_payload(
        event_type: &str,
        payload: Value,
    ) -> Option<Result<Self, serde_json::Error>>;

    fn schema_version(&self) -> u32 {
        Self::current_version(self.event_type()).unwrap_or(1)
    }

    /// The key under which this event, appended as a worker's reaction to another event,
    /// is recorded at most once per cause in its stream; `None` for events that are not
    /// reactions or that the state already makes idempotent. See [`already_reacted`].
    fn reaction_key(&self) -> Option<String> {
        None
    }

    fn encode(&self) -> Result<EncodedEvent, DomainError> {
        let event_type = self.event_type();
        let encoding = |reason: String| DomainError::Encoding { event_type, reason };
        let value = serde_json::to_value(self).map_err(|e| encoding(e.to_string()))?;
        let Value::Object(mut payload) = value else {
            return Err(encoding(
                "the event did not serialize to a JSON object".into(),
            ));
        };
        payload.remove("type");
        Ok(EncodedEvent {
            event_type,
            schema_version: self.schema_version(),
            payload: Value::Object(payload),
        })
    }

    fn decode(event_type: &str, schema_version: u32, payload: Value) -> Result<Self, DomainError> {
        let current =
            Self::current_version(event_type).ok_or_else(|| DomainError::UnknownEventType {
                category: Self::CATEGORY,
                event_type: event_type.to_owned(),
            })?;
        if schema_version == 0 || schema_version > current {
            return Err(DomainError::UnsupportedSchemaVersion {
                event_type: event_type.to_owned(),
                version: schema_version,
                current,
            });
        }
        let payload = upcast::upcast(event_type, schema_version, current, payload)?;
        let malformed = |reason: String| DomainError::MalformedEvent {
            event_type: event_type.to_owned(),
            version: schema_version,
            reason,
        };
        if !payload.is_object() {
            return Err(malformed("the payload is not a JSON object".into()));
        }
        // Straight into the type's struct: putting the tag back and deserializing the tagged
        // enum would first copy the whole payload into serde's buffer, which was most of the
        // cost of decoding in a rebuild.
        Self::from_current_payload(event_type, payload)
            .ok_or_else(|| DomainError::UnknownEventType {
                category: Self::CATEGORY,
                event_type: event_type.to_owned(),
            })?
            .map_err(|e| malformed(e.to_string()))
    }
}

/// Sorts object keys recursively, so schema files and payload comparisons do not depend on
/// whether serde_json's `preserve_order` feature happens to be on in this build.
pub fn canonical_json(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut sorted = Map::new();
            for key in keys {
                if let Some(v) = map.get(key) {
                    sorted.insert(key.clone(), canonical_json(v));
                }
            }
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical_json).collect()),
        other => other.clone(),
    }
}

/// Declares a stream's event enum from the event structs of the same names, with each type's
/// current schema version, and implements [`DomainEvent`] for it.
macro_rules! domain_events {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident in $category:literal {
            $( $variant:ident = $version:literal ),+ $(,)?
        }
        $( reactions keyed by $key:path; )?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "type")]
        $vis enum $name {
            $( $variant($variant), )+
        }

        $(
            impl From<$variant> for $name {
                fn from(event: $variant) -> Self {
                    $name::$variant(event)
                }
            }
        )+

        impl $crate::decider::DomainEvent for $name {
            const CATEGORY: &'static str = $category;
            const EVENT_TYPES: &'static [&'static str] = &[$( stringify!($variant) ),+];

            fn event_type(&self) -> &'static str {
                match self {
                    $( $name::$variant(_) => stringify!($variant), )+
                }
            }

            fn current_version(event_type: &str) -> Option<u32> {
                match event_type {
                    $( stringify!($variant) => Some($version), )+
                    _ => None,
                }
            }

            fn from_current_payload(
                event_type: &str,
                payload: serde_json::Value,
            ) -> Option<Result<Self, serde_json::Error>> {
                match event_type {
                    $( stringify!($variant) => Some(
                        serde_json::from_value::<$variant>(payload).map($name::$variant),
                    ), )+
                    _ => None,
                }
            }

            $(
                fn reaction_key(&self) -> Option<String> {
                    $key(self)
                }
            )?

            fn json_schemas() -> Vec<$crate::decider::EventSchema> {
                vec![
                    $( $crate::decider::EventSchema::of::<$variant>(
                        stringify!($variant), $category, $version,
                    ), )+
                ]
            }
        }
    };
}

pub(crate) use domain_events;
