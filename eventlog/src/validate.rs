//! The checks every backend runs on a batch before it touches storage, so that bad input gets
//! the same typed error on every backend and nothing of a bad batch is written.

use std::collections::HashSet;

use crate::error::LogError;
use crate::event::{MAX_EVENT_TYPE_LEN, NewEvent};

/// No backend takes more events in one append: the PostgreSQL backend numbers the events of a
/// transaction in the low 16 bits of their position.
pub const HARD_MAX_BATCH: usize = 1 << 16;

/// Size limits, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload, as serialized JSON bytes.
    pub max_payload_bytes: usize,
    /// Most events in one append (at most [`HARD_MAX_BATCH`]).
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: 1024 * 1024,
            max_batch: 10_000,
        }
    }
}

impl Limits {
    pub fn checked(self) -> Result<Self, LogError> {
        if self.max_batch == 0 || self.max_batch > HARD_MAX_BATCH {
            return Err(LogError::Config(format!(
                "max_batch must be between 1 and {HARD_MAX_BATCH}, got {}",
                self.max_batch
            )));
        }
        if self.max_payload_bytes == 0 {
            return Err(LogError::Config(
                "max_payload_bytes must be positive".into(),
            ));
        }
        Ok(self)
    }

    /// Checks a batch; on success returns each payload serialized, which the backends store.
    pub fn validate(&self, events: &[NewEvent]) -> Result<Vec<String>, LogError> {
        if events.is_empty() {
            return Err(LogError::EmptyBatch);
        }
        if events.len() > self.max_batch {
            return Err(LogError::BatchTooLarge {
                count: events.len(),
                max: self.max_batch,
            });
        }
        let mut ids = HashSet::with_capacity(events.len());
        let mut payloads = Vec::with_capacity(events.len());
        for (index, e) in events.iter().enumerate() {
            if !ids.insert(e.id) {
                return Err(LogError::DuplicateIdInBatch { id: e.id });
            }
            if let Some(reason) = event_type_problem(&e.event_type) {
                return Err(LogError::InvalidEventType {
                    index,
                    event_type: e.event_type.clone(),
                    reason,
                });
            }
            if e.schema_version == 0 {
                return Err(LogError::InvalidSchemaVersion { index });
            }
            if e.metadata.actor.id.is_empty() {
                return Err(LogError::InvalidMetadata {
                    index,
                    reason: "the actor id is empty",
                });
            }
            if e.metadata.actor.id.len() > 200 {
                return Err(LogError::InvalidMetadata {
                    index,
                    reason: "the actor id is longer than 200 bytes",
                });
            }
            if e.metadata.trace_id.as_ref().is_some_and(|t| t.len() > 128) {
                return Err(LogError::InvalidMetadata {
                    index,
                    reason: "the trace id is longer than 128 bytes",
                });
            }
            if !e.payload.is_object() {
                return Err(LogError::PayloadNotObject {
                    index,
                    found: json_kind(&e.payload),
                });
            }
            let text = serde_json::to_string(&e.payload)
                .map_err(|err| LogError::Corrupt(format!("payload would not serialize: {err}")))?;
            if text.len() > self.max_payload_bytes {
                return Err(LogError::PayloadTooLarge {
                    index,
                    size: text.len(),
                    limit: self.max_payload_bytes,
                });
            }
            payloads.push(text);
        }
        Ok(payloads)
    }
}

fn event_type_problem(t: &str) -> Option<&'static str> {
    if t.is_empty() {
        return Some("it is empty");
    }
    if t.len() > MAX_EVENT_TYPE_LEN {
        return Some("it is longer than 128 bytes");
    }
    if !t.as_bytes()[0].is_ascii_alphabetic() {
        return Some("it must start with an ASCII letter");
    }
    if !t
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Some("it may hold only ASCII letters, digits and '_', '.', '-'");
    }
    None
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
