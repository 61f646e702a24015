//! Telling a client's retry from a conflict, for backends that judge in Rust. (PostgreSQL
//! makes the same judgement inside its append function, in one round trip.)
//!
//! Idempotency is per stream, as KurrentDB gives it (issue 20): a batch is recognised as a
//! retry by the events stored where its earlier success would have put them, never by a
//! global index of event ids, which every append would pay for. With an exact expected
//! version (or `NoStream`) that place is right after the expectation; with `Any`, the
//! stream's last events, so an `Any` retry is recognised while nothing was appended to its
//! stream after it. An id reused in another stream is not looked for, and is written.

use uuid::Uuid;

use crate::{Appended, ExpectedVersion, LogError, NewEvent, Position, StreamId};

/// An event stored in the stream where the batch's earlier success would be.
#[derive(Debug, Clone)]
pub(crate) struct StoredAt {
    pub id: Uuid,
    pub version: u64,
    pub position: Position,
    /// What is stored, when the backend read it: a retry must carry the same event, not
    /// merely the same id.
    pub event: Option<(String, serde_json::Value)>,
}

/// What an append must do after looking at where its earlier success would be.
pub(crate) enum Verdict {
    /// Not a retry: write the batch if the expectation holds.
    Fresh,
    /// The whole batch is stored exactly where this append would have put it: acknowledge.
    Replay(Appended),
}

/// The version the batch's first event would have if it were stored already: after the
/// expectation, or for `Any` as the stream's last `len` events. None where no such place
/// exists (an empty stream, or fewer events than the batch).
pub(crate) fn retry_slot(
    expected: ExpectedVersion,
    current: Option<u64>,
    len: usize,
) -> Option<u64> {
    let current = current?;
    let first = match expected.first_version() {
        Some(first) => first,
        None => (current + 1).checked_sub(len as u64)?,
    };
    (first + len as u64 - 1 <= current).then_some(first)
}

/// `slots[i]` is the event stored at version `first + i` of `stream` (see [`retry_slot`]),
/// `ids[i]` and `sent[i]` the batch's event `i`.
pub(crate) fn judge(
    stream: &StreamId,
    expected: ExpectedVersion,
    ids: &[Uuid],
    sent: &[(&str, &serde_json::Value)],
    slots: &[StoredAt],
) -> Result<Verdict, LogError> {
    let duplicate = |id: Uuid, detail: String| LogError::DuplicateEventId { id, detail };
    let in_place = slots.iter().zip(ids).filter(|(s, id)| s.id == **id).count();
    if in_place == ids.len() && slots.len() == ids.len() {
        for (i, s) in slots.iter().enumerate() {
            if let (Some((stored_type, stored_payload)), Some((sent_type, sent_payload))) =
                (&s.event, sent.get(i))
                && (stored_type != sent_type || stored_payload != *sent_payload)
            {
                return Err(duplicate(
                    ids[i],
                    format!(
                        "stored in {stream} at version {} as another event ({stored_type}, or \
                         another payload): a reused id must carry the same event",
                        s.version
                    ),
                ));
            }
        }
        let (first, last) = (&slots[0], &slots[slots.len() - 1]);
        return Ok(Verdict::Replay(Appended {
            first_version: first.version,
            last_version: last.version,
            first_position: first.position,
            last_position: last.position,
        }));
    }
    // Some of the batch where it would be, not all: a retry that changed its batch.
    if let Some((s, _)) = slots.iter().zip(ids).find(|(s, id)| s.id == **id) {
        return Err(duplicate(
            s.id,
            format!(
                "stored in {stream} at version {}, but other events of the batch are not stored \
                 with it: a retry must resend the same batch",
                s.version
            ),
        ));
    }
    // With `Any` no conflict can tell the client; ids of the batch among the stream's last
    // events, out of place, are a changed retry too.
    if expected == ExpectedVersion::Any
        && let Some((i, s)) = slots
            .iter()
            .find_map(|s| ids.iter().position(|id| *id == s.id).map(|i| (i, s)))
    {
        return Err(duplicate(
            s.id,
            format!(
                "stored in {stream} at version {}, not as event {i} of this batch: a retry \
                 must resend the same batch",
                s.version
            ),
        ));
    }
    Ok(Verdict::Fresh)
}

/// What an append of a backend that judges under its own lock (SQLite, memory) does.
pub(crate) enum Admission {
    /// The batch is stored already, exactly there: acknowledge it.
    Replay(Appended),
    /// Write the batch from this version on.
    Write { first_version: u64 },
}

/// The whole judgement of an append for a backend that holds the stream still while it judges:
/// a retry first ([`judge`] on `slots`, the events at [`retry_slot`]), then the expectation
/// against `current`, the stream's version.
pub(crate) fn admit(
    stream: &StreamId,
    expected: ExpectedVersion,
    current: Option<u64>,
    events: &[NewEvent],
    slots: &[StoredAt],
) -> Result<Admission, LogError> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let sent: Vec<(&str, &serde_json::Value)> = events
        .iter()
        .map(|e| (e.event_type.as_str(), &e.payload))
        .collect();
    if let Verdict::Replay(appended) = judge(stream, expected, &ids, &sent, slots)? {
        return Ok(Admission::Replay(appended));
    }
    if !expected.admits(current) {
        return Err(LogError::WrongExpectedVersion {
            stream: stream.clone(),
            expected,
            actual: current,
        });
    }
    Ok(Admission::Write {
        first_version: current.map_or(0, |v| v + 1),
    })
}
