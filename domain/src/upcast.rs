//! Upcasters: turn a stored payload of an older schema version into the current shape, one
//! version step at a time, before it is deserialized. Stored events are never rewritten; old
//! versions stay in the log forever and are upcast on every read.
//!
//! The change so far:
//!
//! * `SurveyAnswered` v1 → v2. The first survey asked "how likely are you to recommend us",
//!   0 to 10. Support managers compare satisfaction with the 1-5 star figure the rest of the
//!   business reports (the seed's 91%), so v2 records 1-5 stars. A v1 score maps linearly onto
//!   the stars, rounded half up (0-1 → 1, 2-3 → 2, 4-6 → 3, 7-8 → 4, 9-10 → 5), and the
//!   original answer is kept in `legacy_score_0_to_10` so nothing is lost.

use serde_json::Value;

use crate::error::DomainError;

/// Brings `payload` from version `from` up to version `to` of `event_type`.
pub fn upcast(event_type: &str, from: u32, to: u32, payload: Value) -> Result<Value, DomainError> {
    (from..to).try_fold(payload, |payload, version| {
        step(event_type, version, payload)
    })
}

fn step(event_type: &str, version: u32, payload: Value) -> Result<Value, DomainError> {
    match (event_type, version) {
        ("SurveyAnswered", 1) => survey_answered_v1_to_v2(payload),
        _ => Err(malformed(
            event_type,
            version,
            format!("no upcaster from v{version} to v{}", version + 1),
        )),
    }
}

/// The 1-5 star score a v1 survey's 0-10 answer corresponds to.
pub fn stars_from_0_to_10(score: u8) -> u8 {
    let score = score.min(10);
    1 + (score * 4 + 5) / 10
}

fn survey_answered_v1_to_v2(payload: Value) -> Result<Value, DomainError> {
    let bad = |reason: &str| malformed("SurveyAnswered", 1, reason.to_owned());
    let Value::Object(mut fields) = payload else {
        return Err(bad("the payload is not a JSON object"));
    };
    let old = fields
        .get("score")
        .and_then(Value::as_u64)
        .and_then(|s| u8::try_from(s).ok())
        .filter(|s| *s <= 10)
        .ok_or_else(|| bad("score must be an integer from 0 to 10"))?;
    fields.insert("score".into(), Value::from(stars_from_0_to_10(old)));
    fields.insert("legacy_score_0_to_10".into(), Value::from(old));
    Ok(Value::Object(fields))
}

fn malformed(event_type: &str, version: u32, reason: String) -> DomainError {
    DomainError::MalformedEvent {
        event_type: event_type.to_owned(),
        version,
        reason,
    }
}
