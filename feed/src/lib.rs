//! # kefu-feed
//!
//! The one place a stored event's payload is read: [`TypedEvent::decode`] turns a
//! [`RecordedEvent`] from the log into the domain's typed [`Event`] (upcast to the current
//! schema version) with the log's envelope beside it. Everything that follows the log (read
//! models, search, workers, subscriptions, metrics) decodes here once per event and matches
//! on the typed event; nothing else reads a payload by key.
//!
//! A crate of its own rather than a module of the domain (which knows nothing of the log and
//! must stay free of I/O) or of the read side (so the write side and the workers can use it
//! without compiling search).
//!
//! - [`TypedEvent::decode`]: the log's envelope (id, stream, version, position, type, stored schema
//!   version, recorded-at, and the log's own `Metadata`: actor, correlation, causation and trace
//!   ids, one definition of it rather than a copy in the domain) with the typed event; the payload
//!   is moved, not copied.
//! - [`decode`] / [`decode_payload`]: the typed event alone (the second from a payload the caller
//!   took out of the event, so that a rebuild copies no JSON tree).
//! - [`decode_or_other`] / [`decode_taking`]: for followers of the log. An event this build cannot
//!   read is logged and passed over as [`Event::Other`]: one bad event must not stop a read model,
//!   the search index or a worker behind it. `decode_taking` leaves the payload's `at` in place for
//!   the business clock ([`business_time`], which reads it even from an event that cannot be
//!   typed).
//! - [`DecodeError`]: an unknown type or a newer schema version in a known category, or a payload
//!   that does not fit its type, naming stream, version, position and type.
//!
//! Each follower of the log decodes once per event it reads: the projections' batch (once for every
//! projection), the search index, each worker, and the API's event hub (for all subscriptions and
//! the metrics). The command service's fold reads one stream of a known category and calls that
//! category's `DomainEvent::decode`, the decoder [`Event::decode`](kefu_domain::Event::decode)
//! dispatches to, so upcasting happens there for both.

use chrono::{DateTime, Utc};
use kefu_domain::{DomainError, Event};
use kefu_eventlog::{Metadata, Position, RecordedEvent, StreamId};
use serde_json::Value;
use thiserror::Error;
use tracing::warn;
use uuid::Uuid;

/// A stored event that this build cannot read: an unknown type or a newer schema version in a
/// category the domain defines, or a payload that does not fit its type. The log and the
/// build disagree (an event written by hand with `kefu log append`, or by a newer kefu).
#[derive(Debug, Clone, PartialEq, Error)]
#[error("cannot read {stream} version {version} ({event_type}) at position {position}: {reason}")]
pub struct DecodeError {
    pub stream: StreamId,
    pub version: u64,
    pub position: Position,
    pub event_type: String,
    /// Boxed: the domain's error is large, and this travels in every decode's `Result`.
    pub reason: Box<DomainError>,
}

/// A stored event, typed: the log's envelope and the domain event.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedEvent {
    pub id: Uuid,
    pub stream: StreamId,
    /// Gapless from 0 within the stream.
    pub version: u64,
    pub position: Position,
    pub event_type: String,
    /// The version it was stored with; `event` is upcast to the current one.
    pub schema_version: u32,
    pub recorded_at: DateTime<Utc>,
    /// Actor, correlation id, causation id, trace id.
    pub metadata: Metadata,
    pub event: Event,
}

impl TypedEvent {
    /// Decodes `e`, taking its payload rather than copying it.
    pub fn decode(e: RecordedEvent) -> Result<Self, DecodeError> {
        let RecordedEvent {
            id,
            stream_id,
            version,
            position,
            event_type,
            schema_version,
            payload,
            recorded_at,
            metadata,
        } = e;
        let event = Event::decode(stream_id.category(), &event_type, schema_version, payload)
            .map_err(|reason| DecodeError {
                stream: stream_id.clone(),
                version,
                position,
                event_type: event_type.clone(),
                reason: Box::new(reason),
            })?;
        Ok(TypedEvent {
            id,
            stream: stream_id,
            version,
            position,
            event_type,
            schema_version,
            recorded_at,
            metadata,
            event,
        })
    }
}

/// The typed event of `e`, its payload copied.
pub fn decode(e: &RecordedEvent) -> Result<Event, DecodeError> {
    decode_payload(e, e.payload.clone())
}

/// The typed event of `e` from `payload`, which the caller took out of `e` so that it is not
/// copied: the payload's JSON tree is the largest thing an event carries, and copying it is a
/// measurable share of a rebuild.
pub fn decode_payload(e: &RecordedEvent, payload: Value) -> Result<Event, DecodeError> {
    Event::decode(
        e.stream_id.category(),
        &e.event_type,
        e.schema_version,
        payload,
    )
    .map_err(|reason| DecodeError {
        stream: e.stream_id.clone(),
        version: e.version,
        position: e.position,
        event_type: e.event_type.clone(),
        reason: Box::new(reason),
    })
}

/// The typed event of `e`, or [`Event::Other`] (logged) when this build cannot read it: one
/// bad event must not stop a read model, the search index or a worker behind it, so readers
/// that follow the log pass over it the way they pass over a category they do not know.
pub fn decode_or_other(e: &RecordedEvent) -> Event {
    decode(e).unwrap_or_else(passed_over)
}

/// Like [`decode_or_other`], but takes `e`'s payload instead of copying it, leaving only what
/// [`business_time`] reads (`null` when there is no `at`).
pub fn decode_taking(e: &mut RecordedEvent) -> Event {
    let payload = std::mem::take(&mut e.payload);
    let at = business_time_only(&payload);
    let event = decode_payload(e, payload).unwrap_or_else(passed_over);
    e.payload = at;
    event
}

fn passed_over(err: DecodeError) -> Event {
    warn!(error = %err, "passing over an event this build cannot read");
    Event::Other
}

/// When the event happened in the business: the payload's `at`, which every domain event
/// has, read without decoding so that an event this build cannot type (another category, a
/// newer version) still has one when it carries it.
pub fn business_time(payload: &Value) -> Option<DateTime<Utc>> {
    payload
        .get("at")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The payload reduced to what [`business_time`] reads, for a caller that took the payload
/// to decode it and keeps the envelope.
fn business_time_only(payload: &Value) -> Value {
    match payload.get("at") {
        Some(at) => serde_json::json!({ "at": at }),
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use kefu_domain::conversation::ConversationEvent;
    use kefu_eventlog::Actor;
    use serde_json::json;

    use super::*;

    fn recorded(
        stream: &str,
        event_type: &str,
        schema_version: u32,
        payload: Value,
    ) -> RecordedEvent {
        RecordedEvent {
            id: Uuid::from_u128(7),
            stream_id: StreamId::new(stream).unwrap(),
            version: 3,
            position: Position(41),
            event_type: event_type.into(),
            schema_version,
            payload,
            recorded_at: "2026-01-02T03:04:06Z".parse().unwrap(),
            metadata: Metadata {
                actor: Actor::system("test"),
                correlation_id: Uuid::from_u128(1),
                causation_id: Uuid::from_u128(2),
                trace_id: Some("trace".into()),
            },
        }
    }

    #[test]
    fn the_envelope_keeps_every_field_of_the_log_and_types_the_payload() {
        let e = recorded(
            "conversation-0193a1f2-7c4e-7d2a-9b1e-3f5a6c7d8e9f",
            "SurveyAnswered",
            1,
            json!({ "score": 10, "at": "2026-01-02T03:04:05Z" }),
        );
        let typed = TypedEvent::decode(e.clone()).unwrap();
        assert_eq!(
            (
                typed.id,
                &typed.stream,
                typed.version,
                typed.position,
                typed.event_type.as_str(),
                typed.schema_version,
                typed.recorded_at,
                &typed.metadata,
            ),
            (
                e.id,
                &e.stream_id,
                e.version,
                e.position,
                "SurveyAnswered",
                1,
                e.recorded_at,
                &e.metadata,
            )
        );
        let Event::Conversation(ConversationEvent::SurveyAnswered(answer)) = &typed.event else {
            panic!("{:?}", typed.event);
        };
        assert_eq!(answer.score, 5, "upcast from v1");
        assert_eq!(decode(&e), Ok(typed.event));
    }

    #[test]
    fn an_event_of_a_category_no_code_knows_is_other() {
        let e = recorded("billing-42", "InvoiceSent", 9, json!({ "at": "x" }));
        assert_eq!(TypedEvent::decode(e).unwrap().event, Event::Other);
    }

    #[test]
    fn an_unknown_type_or_newer_version_is_an_error_naming_where_it_is() {
        for (event_type, version) in [("ConversationSung", 1), ("SurveyOffered", 2)] {
            let e = recorded(
                "conversation-0193a1f2-7c4e-7d2a-9b1e-3f5a6c7d8e9f",
                event_type,
                version,
                json!({ "at": "2026-01-02T03:04:05Z" }),
            );
            let err = TypedEvent::decode(e.clone()).unwrap_err();
            assert_eq!(
                (
                    &err.stream,
                    err.version,
                    err.position,
                    err.event_type.as_str()
                ),
                (&e.stream_id, 3, Position(41), event_type)
            );
            let message = err.to_string();
            for part in [e.stream_id.as_str(), "version 3", "position 41", event_type] {
                assert!(message.contains(part), "{message:?} lacks {part:?}");
            }
        }
    }

    #[test]
    fn an_event_that_cannot_be_read_is_passed_over_as_other_keeping_its_time() {
        let mut e = recorded(
            "conversation-0193a1f2-7c4e-7d2a-9b1e-3f5a6c7d8e9f",
            "ConversationSung",
            1,
            json!({ "at": "2026-01-02T03:04:05Z", "song": "la" }),
        );
        assert_eq!(decode_or_other(&e), Event::Other);
        assert_eq!(decode_taking(&mut e), Event::Other);
        assert_eq!(e.payload, json!({ "at": "2026-01-02T03:04:05Z" }));
    }

    #[test]
    fn business_time_is_the_payloads_at_even_when_the_event_cannot_be_typed() {
        let payload = json!({ "at": "2026-01-02T04:04:05+01:00", "other": [1, 2] });
        let at: DateTime<Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(business_time(&payload), Some(at));
        assert_eq!(business_time(&business_time_only(&payload)), Some(at));
        assert_eq!(business_time(&json!({ "at": 5 })), None);
        assert_eq!(business_time_only(&json!({})), Value::Null);
    }
}
