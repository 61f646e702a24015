//! Telling a client's retry from a conflict, for backends that check event ids in Rust.
//! (PostgreSQL makes the same judgement inside its append function, in one round trip.)

use uuid::Uuid;

use crate::{Appended, ExpectedVersion, LogError, Position, StreamId};

/// Where an already-stored event of the batch sits.
#[derive(Debug, Clone)]
pub(crate) struct StoredAt {
    pub stream: String,
    pub version: u64,
    pub position: Position,
    /// What is stored under the id, when the backend read it: a retry must carry the same
    /// event, not merely the same id.
    pub event: Option<(String, serde_json::Value)>,
}

/// What an append whose ids were looked up must do.
pub(crate) enum Verdict {
    /// None of the ids is stored: write the batch.
    Fresh,
    /// The whole batch is stored exactly where this append would have put it: acknowledge.
    Replay(Appended),
}

/// `found[i]` is where event `ids[i]` of the batch is stored, if it is; `sent[i]` is the type
/// and payload the batch carries under it. `current` is the stream's last version now.
pub(crate) fn judge(
    stream: &StreamId,
    expected: ExpectedVersion,
    ids: &[Uuid],
    sent: &[(&str, &serde_json::Value)],
    found: &[Option<StoredAt>],
    current: Option<u64>,
) -> Result<Verdict, LogError> {
    let Some((first_hit, stored)) = found
        .iter()
        .enumerate()
        .find_map(|(i, f)| f.as_ref().map(|s| (i, s)))
    else {
        return Ok(Verdict::Fresh);
    };
    let duplicate = |id: Uuid, detail: String| LogError::DuplicateEventId { id, detail };
    if let Some(i) = found.iter().position(Option::is_none) {
        return Err(duplicate(
            ids[first_hit],
            format!(
                "stored in {} at version {}, but event {} of the batch is not: a retry must resend the same batch",
                stored.stream, stored.version, i
            ),
        ));
    }
    let first = found[0].as_ref().expect("all found");
    for (i, s) in found.iter().flatten().enumerate() {
        if s.stream != stream.as_str() || s.version != first.version + i as u64 {
            return Err(duplicate(
                ids[i],
                format!(
                    "stored in {} at version {}, not as event {} of this batch to {}",
                    s.stream, s.version, i, stream
                ),
            ));
        }
    }
    for (i, s) in found.iter().flatten().enumerate() {
        if let (Some((stored_type, stored_payload)), Some((sent_type, sent_payload))) =
            (&s.event, sent.get(i))
            && (stored_type != sent_type || stored_payload != *sent_payload)
        {
            return Err(duplicate(
                ids[i],
                format!(
                    "stored in {} at version {} as another event ({stored_type}, or another \
                     payload): a reused id must carry the same event",
                    s.stream, s.version
                ),
            ));
        }
    }
    if expected.first_version().is_some_and(|v| v != first.version) {
        return Err(LogError::WrongExpectedVersion {
            stream: stream.clone(),
            expected,
            actual: current,
        });
    }
    let last = found.last().and_then(Option::as_ref).expect("all found");
    Ok(Verdict::Replay(Appended {
        first_version: first.version,
        last_version: last.version,
        first_position: first.position,
        last_position: last.position,
    }))
}
