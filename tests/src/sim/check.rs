//! The invariants every simulated run must keep, checked over the whole log it left. Pure: a
//! log in, the violations out, so a hand-made log proves each check can fail
//! (`tests/tests/sim.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use kefu_domain::agent::AgentEvent as A;
use kefu_domain::conversation::{ConversationEvent as C, TransferredTo};
use kefu_domain::ids::{AgentId, ConversationId};
use kefu_domain::{Decider, Event};
use kefu_eventlog::{Position, RecordedEvent};
use uuid::Uuid;

/// One broken invariant, with where it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A conversation was assigned (or transferred) to an agent while another held it.
    DoubleAssignment {
        conversation: String,
        holder: AgentId,
        to: AgentId,
        at: Position,
    },
    /// An agent held more chats than their seats.
    OverCapacity {
        agent: String,
        held: usize,
        capacity: u32,
        at: Position,
    },
    /// A customer turn the bot should have answered that nobody answered or handed over.
    Unanswered {
        conversation: String,
        turn: Uuid,
        at: Position,
    },
    /// A reaction whose cause is not in the log before it.
    CauseMissing {
        event: Uuid,
        event_type: String,
        cause: Uuid,
        at: Position,
    },
    /// A reaction dated before its cause.
    BeforeItsCause {
        event: Uuid,
        event_type: String,
        at: DateTime<Utc>,
        cause_type: String,
        cause_at: DateTime<Utc>,
    },
    /// The auditor's check (`kefu_workers::reactions`): a reaction recorded twice for one
    /// cause, or a queueing that took two seats.
    Repeated(kefu_workers::reactions::Repeated),
    /// At rest, an agent holds a seat for a chat that is closed or with another agent: a seat
    /// no assignment will use, which the seat sweep should have freed.
    SeatLeftBehind { agent: String, conversation: String },
}

/// Every invariant over `events` (a whole log, in position order).
pub fn check(events: &[RecordedEvent]) -> Vec<Violation> {
    let decoded: Vec<Event> = events.iter().map(kefu_feed::decode_or_other).collect();
    let mut out = Vec::new();
    out.extend(one_agent_at_a_time(events, &decoded));
    out.extend(seats_within_capacity(events, &decoded));
    out.extend(every_turn_answered(events, &decoded));
    out.extend(causes_come_first(events));
    out.extend(no_seat_left_behind(events, &decoded));
    out.extend(
        kefu_workers::reactions::repeated_reactions(events)
            .into_iter()
            .map(Violation::Repeated),
    );
    out
}

fn conversation_of(e: &RecordedEvent) -> Option<ConversationId> {
    kefu_domain::conversation::ConversationDecider::id_of_stream(e.stream_id.as_str())
}

/// No conversation is given to an agent while another agent holds it: the holder changes
/// only by a transfer or a close (or the transfer back to a queue).
fn one_agent_at_a_time(events: &[RecordedEvent], decoded: &[Event]) -> Vec<Violation> {
    let mut holder: HashMap<ConversationId, AgentId> = HashMap::new();
    let mut out = Vec::new();
    for (e, d) in events.iter().zip(decoded) {
        let (Some(c), Event::Conversation(event)) = (conversation_of(e), d) else {
            continue;
        };
        match event {
            C::AgentAssigned(a) => {
                if let Some(held) = holder.get(&c)
                    && *held != a.agent
                {
                    out.push(Violation::DoubleAssignment {
                        conversation: c.to_string(),
                        holder: *held,
                        to: a.agent,
                        at: e.position,
                    });
                }
                holder.insert(c, a.agent);
            }
            C::ConversationTransferred(t) => match &t.to {
                TransferredTo::Agent { agent } => {
                    holder.insert(c, *agent);
                }
                TransferredTo::Queue { .. } => {
                    holder.remove(&c);
                }
            },
            C::ConversationClosed(_) => {
                holder.remove(&c);
            }
            _ => {}
        }
    }
    out
}

/// No agent holds more chats than their seats, folding the seats taken and given back on the
/// agents' streams in log order.
fn seats_within_capacity(events: &[RecordedEvent], decoded: &[Event]) -> Vec<Violation> {
    let mut capacity: HashMap<&str, u32> = HashMap::new();
    let mut held: HashMap<&str, BTreeSet<ConversationId>> = HashMap::new();
    let mut out = Vec::new();
    for (e, d) in events.iter().zip(decoded) {
        let Event::Agent(event) = d else { continue };
        let agent = e.stream_id.entity_id();
        match event {
            A::AgentRegistered(r) => {
                capacity.insert(agent, r.max_concurrent);
            }
            A::AgentCapacityChanged(c) => {
                capacity.insert(agent, c.to);
            }
            A::AgentChatTaken(t) => {
                let chats = held.entry(agent).or_default();
                chats.insert(t.conversation);
                let seats = capacity.get(agent).copied().unwrap_or(0);
                if chats.len() > seats as usize {
                    out.push(Violation::OverCapacity {
                        agent: agent.to_owned(),
                        held: chats.len(),
                        capacity: seats,
                        at: e.position,
                    });
                }
            }
            A::AgentChatReleased(r) => {
                held.entry(agent).or_default().remove(&r.conversation);
            }
            _ => {}
        }
    }
    out
}

/// Every customer turn the bot was to answer (the conversation started with the bot and was
/// still with it) is answered or handed over by a reaction caused by that turn, or was
/// overtaken: the conversation closed or went to a human before the bot got to it.
fn every_turn_answered(events: &[RecordedEvent], decoded: &[Event]) -> Vec<Violation> {
    // Reactions by cause: the answers and hand-offs each turn got.
    let answered: BTreeSet<Uuid> = events
        .iter()
        .zip(decoded)
        .filter(|(_, d)| {
            matches!(
                d,
                Event::Conversation(C::BotTurnRecorded(_) | C::HandedToHuman(_))
            )
        })
        .map(|(e, _)| e.metadata.causation_id)
        .collect();
    // Per conversation: with the bot (started with it, not handed over, not closed) or not,
    // and the turns it has to answer, in log order, until something overtakes them.
    let mut with_bot: HashMap<ConversationId, bool> = HashMap::new();
    let mut waiting: BTreeMap<ConversationId, Vec<(Uuid, Position)>> = BTreeMap::new();
    for (e, d) in events.iter().zip(decoded) {
        let (Some(c), Event::Conversation(event)) = (conversation_of(e), d) else {
            continue;
        };
        match event {
            C::ConversationStarted(s) => {
                with_bot.insert(c, s.bot_enabled);
            }
            C::CustomerTurnRecorded(_) if with_bot.get(&c) == Some(&true) => {
                waiting.entry(c).or_default().push((e.id, e.position));
            }
            // Whatever caused it, the conversation left the bot: the turns still waiting
            // were overtaken (the bot, reaching them, only assesses them).
            C::HandedToHuman(_) | C::ConversationClosed(_) => {
                with_bot.insert(c, false);
                waiting.remove(&c);
            }
            _ => {}
        }
    }
    waiting
        .into_iter()
        .flat_map(|(c, turns)| {
            turns
                .into_iter()
                .filter(|(turn, _)| !answered.contains(turn))
                .map(move |(turn, at)| Violation::Unanswered {
                    conversation: c.to_string(),
                    turn,
                    at,
                })
        })
        .collect()
}

/// Every reaction's cause is an event earlier in the log, and the reaction is not dated before
/// it (an event's business time is its payload's `at`, else when it was recorded).
fn causes_come_first(events: &[RecordedEvent]) -> Vec<Violation> {
    let mut seen: HashMap<Uuid, (&str, DateTime<Utc>)> = HashMap::new();
    let mut out = Vec::new();
    for e in events {
        let at = kefu_feed::business_time(&e.payload).unwrap_or(e.recorded_at);
        if kefu_workers::reactions::is_reaction(e) {
            match seen.get(&e.metadata.causation_id) {
                None => out.push(Violation::CauseMissing {
                    event: e.id,
                    event_type: e.event_type.clone(),
                    cause: e.metadata.causation_id,
                    at: e.position,
                }),
                Some((cause_type, cause_at)) if at < *cause_at => {
                    out.push(Violation::BeforeItsCause {
                        event: e.id,
                        event_type: e.event_type.clone(),
                        at,
                        cause_type: (*cause_type).to_owned(),
                        cause_at: *cause_at,
                    })
                }
                Some(_) => {}
            }
        }
        seen.insert(e.id, (&e.event_type, at));
    }
    out
}

/// Where each chat stands at the end of the log: closed, with an agent, or neither.
#[derive(Clone, Copy, PartialEq)]
enum Standing {
    Closed,
    With(AgentId),
    Elsewhere,
}

/// At rest (the log of a run that settled), every seat an agent holds is for a chat that is
/// open and with that agent, or still waiting for one (an assignment may be on its way).
fn no_seat_left_behind(events: &[RecordedEvent], decoded: &[Event]) -> Vec<Violation> {
    let mut standing: HashMap<ConversationId, Standing> = HashMap::new();
    let mut held: BTreeMap<&str, BTreeSet<ConversationId>> = BTreeMap::new();
    for (e, d) in events.iter().zip(decoded) {
        match d {
            Event::Conversation(event) => {
                let Some(c) = conversation_of(e) else {
                    continue;
                };
                let now = match event {
                    C::AgentAssigned(a) => Standing::With(a.agent),
                    C::ConversationTransferred(t) => match &t.to {
                        TransferredTo::Agent { agent } => Standing::With(*agent),
                        TransferredTo::Queue { .. } => Standing::Elsewhere,
                    },
                    C::ConversationClosed(_) => Standing::Closed,
                    C::ConversationReopened(_) => Standing::Elsewhere,
                    _ => continue,
                };
                standing.insert(c, now);
            }
            Event::Agent(A::AgentChatTaken(t)) => {
                held.entry(e.stream_id.entity_id())
                    .or_default()
                    .insert(t.conversation);
            }
            Event::Agent(A::AgentChatReleased(r)) => {
                held.entry(e.stream_id.entity_id())
                    .or_default()
                    .remove(&r.conversation);
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (agent, chats) in held {
        for c in chats {
            let left = match standing.get(&c) {
                Some(Standing::Closed) => true,
                Some(Standing::With(other)) => other.to_string() != agent,
                Some(Standing::Elsewhere) | None => false,
            };
            if left {
                out.push(Violation::SeatLeftBehind {
                    agent: agent.to_owned(),
                    conversation: c.to_string(),
                });
            }
        }
    }
    out
}
