//! The auditor's check of what the command service promises (see
//! [`kefu_domain::already_reacted`]): in a log, no stream holds two reactions with one key to
//! one cause, and no queueing took two seats. The workers' crash tests and the chaos test of
//! a killed server run it over the whole log.

use std::collections::BTreeMap;

use kefu_domain::agent::AgentEvent;
use kefu_domain::conversation::ConversationDecider;
use kefu_domain::{Decider, DomainEvent, Event};
use kefu_eventlog::RecordedEvent;
use uuid::Uuid;

/// A reaction recorded more than once for one cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeated {
    /// The stream (for a seat, the conversation it was taken for).
    pub stream: String,
    /// The reaction key, or `AgentChatTaken` for seats.
    pub key: String,
    pub cause: Uuid,
    pub times: usize,
}

/// Whether an event was appended as a reaction: caused by another event, not by a request
/// (which is its own cause).
pub fn is_reaction(e: &RecordedEvent) -> bool {
    e.metadata.causation_id != e.metadata.correlation_id
}

/// Every reaction found more than once for its cause in `events` (a whole log, or all of
/// some streams). Events this build cannot decode are skipped: they are no reaction of its
/// workers.
pub fn repeated_reactions(events: &[RecordedEvent]) -> Vec<Repeated> {
    let mut seen: BTreeMap<(String, String, Uuid), usize> = BTreeMap::new();
    for e in events.iter().filter(|e| is_reaction(e)) {
        let at = match kefu_feed::decode(e) {
            Ok(Event::Conversation(event)) => event
                .reaction_key()
                .map(|key| (e.stream_id.to_string(), key)),
            // One seat per queueing, whichever agent's stream it was taken on.
            Ok(Event::Agent(AgentEvent::AgentChatTaken(taken))) => Some((
                ConversationDecider::stream_id(taken.conversation),
                e.event_type.clone(),
            )),
            _ => None,
        };
        if let Some((stream, key)) = at {
            *seen
                .entry((stream, key, e.metadata.causation_id))
                .or_default() += 1;
        }
    }
    seen.into_iter()
        .filter(|(_, times)| *times > 1)
        .map(|((stream, key, cause), times)| Repeated {
            stream,
            key,
            cause,
            times,
        })
        .collect()
}
