//! The assigner: gives waiting conversations to online agents who have the skills and a free seat:
//! the highest priority and longest waiting first, spread fairly (the agent holding the fewest
//! chats, then the one who has waited longest in their current status).
//!
//! [`plan`] is the pure part: a round's matches from the queues read model (property-tested: never
//! beyond a seat, always the skills, no conversation twice). [`Assigner`] runs rounds when the log
//! says something changed (a conversation queued, a seat freed, an agent online), reading the read
//! model once it has applied the triggering event, and carries each match out ([`carry_out`])
//! through `Desk::assign_queued`, whose seat-first protocol (`Desk::assign`) keeps every limit even
//! with several assigners running: an agent's seat is taken on the agent's stream under optimistic
//! concurrency, and a conversation refuses a second assignment. A round planned from a read model
//! that is a little behind is therefore safe; at worst a match is refused and the next round does
//! better. A refused assignment gives the seat back unless the conversation is with that agent
//! after all (a concurrent assigner took the same seat and won).
//!
//! Every close the assigner sees frees the seat it names ([`free_closed_seats`]:
//! `ConversationClosed::released_agent`, `Desk::free_seat`, a no-op when the desk's own release
//! after the close landed), caused by the close, so a lost release does not hold the seat until the
//! sweep. [`carry_out`] and [`free_closed_seats`] are the two halves of a round the simulation
//! (`kefu_tests::sim`) runs with its own copy of the queues read model.
//!
//! An assigner that dies (or loses its store) between taking a seat and recording the assignment
//! leaves the seat taken. [`OrphanedSeats`], a sweep beside the rounds (`--seat-sweep-secs`), frees
//! a seat once its conversation was given to another agent or closed by an event recorded after the
//! seat was taken (`Desk::free_orphaned_seats`, caused by that event). A seat whose conversation
//! still waits is left alone: an assignment may be on its way.

use std::collections::{BTreeMap, BTreeSet};

use kefu_domain::agent::AgentDecider;
use kefu_domain::conversation::{ConversationClosed, ConversationDecider, ConversationEvent};
use kefu_domain::ids::{AgentId, ConversationId};
use kefu_domain::{Decider, Event};
use kefu_eventlog::{Actor, ActorKind, EventLog, Metadata, Position, RecordedEvent};
use kefu_projections::queues::{AgentRow, WaitingEntry};
use kefu_projections::{ProjectionError, ReadModels};
use tokio::sync::watch;
use uuid::Uuid;

use crate::runtime::{Reactor, Sweep, WorkerError};
use kefu_desk::Desk;
use kefu_desk::command::CommandError;

pub const NAME: &str = "assigner";

/// The events after which a round may find something new to do.
pub const TRIGGERS: [&str; 9] = [
    "ConversationQueued",
    "ConversationTransferred",
    "ConversationClosed",
    "AgentRegistered",
    "AgentStatusChanged",
    "AgentCapacityChanged",
    "AgentSkillsChanged",
    "QueueChanged",
    "AgentChatReleased",
];

/// One match of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub conversation: String,
    pub agent: String,
    /// The log position of the conversation's queueing: the event the assignment answers.
    pub queued_at: i64,
}

/// An agent as a round sees them.
struct Seat<'a> {
    row: &'a AgentRow,
    skills: BTreeSet<String>,
    free: i64,
    held: i64,
}

/// Matches waiting conversations to agents. `waiting` in any order; each queue is served by
/// priority, then wait, then arrival (the read model's order), and across queues the higher
/// priority and the longer wait go first. An agent gets at most their free seats.
pub fn plan(waiting: &[WaitingEntry], agents: &[AgentRow]) -> Vec<Match> {
    let mut seats: Vec<Seat> = agents
        .iter()
        .filter(|a| a.status == "online" && !a.retired)
        .map(|a| Seat {
            row: a,
            skills: serde_json::from_str(&a.skills).unwrap_or_default(),
            free: (a.max_concurrent - a.active).max(0),
            held: a.active,
        })
        .collect();
    let mut order: Vec<&WaitingEntry> = waiting.iter().collect();
    order.sort_by(|a, b| {
        (a.entry.priority, a.entry.enqueued_at, a.entry.position).cmp(&(
            b.entry.priority,
            b.entry.enqueued_at,
            b.entry.position,
        ))
    });
    let mut out = Vec::new();
    for w in order {
        let needs: BTreeSet<String> = serde_json::from_str(&w.entry.skills).unwrap_or_default();
        // Fairness: fewest chats held first, then the longest in their current status (the
        // one who came online first), then the id for a stable order.
        let best = seats
            .iter_mut()
            .filter(|s| s.free > 0 && kefu_domain::queue::can_serve(&needs, &s.skills))
            .min_by(|a, b| {
                (a.held, a.row.status_since, &a.row.id).cmp(&(
                    b.held,
                    b.row.status_since,
                    &b.row.id,
                ))
            });
        if let Some(seat) = best {
            seat.free -= 1;
            seat.held += 1;
            out.push(Match {
                conversation: w.entry.conversation.clone(),
                agent: seat.row.id.clone(),
                queued_at: w.entry.position,
            });
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum AssignerError {
    #[error(transparent)]
    ReadModel(#[from] ProjectionError),
    #[error(transparent)]
    Log(#[from] kefu_eventlog::LogError),
    #[error("the queues read model holds an id that is not a UUID: {0}")]
    BadId(String),
}

/// What a round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    pub assigned: Vec<(ConversationId, AgentId)>,
    /// Matches the streams refused (the read model was behind, or another assigner won).
    pub refused: usize,
}

/// Carries a round's matches out through [`Desk::assign_queued`] (seat first), each caused
/// by its conversation's queueing: what a round does once it has a plan, whoever read the
/// queues for it (the worker from the read model, the simulation from the same projection
/// applied in memory).
pub async fn carry_out<L: EventLog>(
    desk: &Desk<L>,
    actor: &Actor,
    matches: Vec<Match>,
) -> Result<Round, AssignerError> {
    let mut round = Round::default();
    let mut tried: BTreeMap<String, ()> = BTreeMap::new();
    for m in matches {
        if tried.insert(m.conversation.clone(), ()).is_some() {
            continue;
        }
        let conversation = ConversationId::from_uuid(parse(&m.conversation)?);
        let agent = AgentId::from_uuid(parse(&m.agent)?);
        let meta = cause(desk, actor, m.queued_at).await?;
        match desk.assign_queued(conversation, agent, &meta).await {
            Ok(done) => match done.value {
                Some(agent) => round.assigned.push((conversation, agent)),
                // Assigned or closed already: the read model was behind.
                None => round.refused += 1,
            },
            Err(CommandError::Rejected(e)) => {
                tracing::debug!(%conversation, %agent, error = %e, "assignment refused; the next round will look again");
                round.refused += 1;
            }
            Err(CommandError::Contended { .. }) => round.refused += 1,
            Err(CommandError::Log(e)) => return Err(e.into()),
            Err(e @ CommandError::Load { .. }) => {
                tracing::warn!(error = %e, "cannot assign");
                round.refused += 1;
            }
        }
    }
    Ok(round)
}

/// The metadata of a command reacting to the event at `position`.
async fn cause<L: EventLog>(
    desk: &Desk<L>,
    actor: &Actor,
    position: i64,
) -> Result<Metadata, AssignerError> {
    Ok(crate::runtime::cause_at(desk.commands(), actor, position).await?)
}

/// Frees the seat each close among `events` names, caused by the close. The desk releases it
/// right after the close, but that second append can be lost; releasing is a no-op for a seat
/// already free.
pub async fn free_closed_seats<L: EventLog>(
    desk: &Desk<L>,
    actor: &Actor,
    events: &[RecordedEvent],
) -> Result<(), WorkerError> {
    for e in events {
        let Event::Conversation(ConversationEvent::ConversationClosed(ConversationClosed {
            released_agent: Some(agent),
            ..
        })) = kefu_feed::decode_or_other(e)
        else {
            continue;
        };
        let Some(conversation) = ConversationDecider::id_of_stream(e.stream_id.as_str()) else {
            continue;
        };
        let meta = kefu_eventlog::Metadata::caused_by(actor.clone(), e);
        if desk.free_seat(agent, conversation, &meta).await? {
            tracing::info!(%agent, %conversation, "freed a seat its close left held");
        }
    }
    Ok(())
}

/// The assigner as a worker.
pub struct Assigner<L> {
    desk: Desk<L>,
    models: ReadModels,
    /// Where the live projections' next reads start, to wait until they have seen a trigger.
    positions: watch::Receiver<Vec<(String, Position)>>,
    actor: Actor,
    started: bool,
}

impl<L: EventLog> Assigner<L> {
    pub fn new(
        desk: Desk<L>,
        models: ReadModels,
        positions: watch::Receiver<Vec<(String, Position)>>,
    ) -> Self {
        Assigner {
            desk,
            models,
            positions,
            actor: Actor::new(ActorKind::System, NAME),
            started: false,
        }
    }

    pub fn wants(event: &RecordedEvent) -> bool {
        TRIGGERS.contains(&event.event_type.as_str())
    }

    /// Waits until the queues projection has applied `position`.
    async fn caught_up(&mut self, position: Position) {
        let _ = self
            .positions
            .wait_for(|ps| {
                ps.iter()
                    .any(|(name, p)| name == kefu_projections::queues::NAME && *p > position)
            })
            .await;
    }

    /// One round after `trigger` (or at start-up, with none): plan from the read model and
    /// carry the matches out. Each assignment is caused by its conversation's queueing event
    /// and carries that event's correlation id.
    pub async fn round(&mut self, trigger: Option<Position>) -> Result<Round, AssignerError> {
        if let Some(p) = trigger {
            self.caught_up(p).await;
        }
        let view = self.models.live(kefu_projections::queues::NAME).await?;
        let waiting = view.waiting(None, 0).await?;
        if waiting.is_empty() {
            return Ok(Round::default());
        }
        let agents = view.agents().await?;
        carry_out(&self.desk, &self.actor, plan(&waiting, &agents)).await
    }

    /// The agents' streams as the deciders see them: for tests and drills.
    pub async fn seats_of(&self, agent: AgentId) -> Result<usize, CommandError> {
        let loaded = self.desk.commands().load::<AgentDecider>(agent).await?;
        Ok(match loaded.state {
            kefu_domain::agent::AgentState::Registered(a) => a.active_chats.len(),
            _ => 0,
        })
    }
}

impl<L: EventLog> Reactor for Assigner<L> {
    fn name(&self) -> &'static str {
        NAME
    }

    /// One round after the last event of the batch that may have changed something. The
    /// first batch after a start runs a round whatever it holds, for what waited meanwhile.
    async fn react(&mut self, events: &[RecordedEvent]) -> Result<(), WorkerError> {
        free_closed_seats(&self.desk, &self.actor, events).await?;
        let trigger = events
            .iter()
            .rev()
            .find(|e| Self::wants(e))
            .map(|e| e.position);
        if trigger.is_none() && self.started {
            return Ok(());
        }
        self.started = true;
        // The first round after a start plans from a read model at least as far as this
        // batch, so what was assigned before a crash is not matched again.
        let round = self
            .round(trigger.or(events.last().map(|e| e.position)))
            .await?;
        if !round.assigned.is_empty() || round.refused > 0 {
            tracing::info!(
                assigned = round.assigned.len(),
                refused = round.refused,
                "assignment round"
            );
        }
        Ok(())
    }
}

/// The assigner's second duty, on a schedule: seats left behind by an assignment that never
/// finished (see `Desk::free_orphaned_seats`). An agent whose seat count in the queues view
/// exceeds the chats the view has them holding is checked against the streams; the view only
/// chooses whom to check, the streams decide.
pub struct OrphanedSeats<L> {
    desk: Desk<L>,
    models: ReadModels,
    actor: Actor,
}

impl<L: EventLog> OrphanedSeats<L> {
    pub fn new(desk: Desk<L>, models: ReadModels) -> Self {
        OrphanedSeats {
            desk,
            models,
            actor: Actor::new(ActorKind::System, NAME),
        }
    }
}

impl<L: EventLog> Sweep for OrphanedSeats<L> {
    fn name(&self) -> &'static str {
        "assigner seats"
    }

    async fn sweep(&self) -> Result<usize, WorkerError> {
        let view = self.models.live(kefu_projections::queues::NAME).await?;
        let mut freed = 0;
        for a in view.agents().await? {
            if a.active == 0 {
                continue;
            }
            let holds = view.workbench(&a.id).await?.map_or(0, |w| w.chats.len());
            if a.active as usize <= holds {
                continue;
            }
            let agent = AgentId::from_uuid(parse(&a.id)?);
            freed += self.desk.free_orphaned_seats(agent, &self.actor).await?;
        }
        Ok(freed)
    }
}

fn parse(raw: &str) -> Result<Uuid, AssignerError> {
    raw.parse()
        .map_err(|_| AssignerError::BadId(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_projections::queues::WaitingRow;

    fn agent(id: &str, skills: &[&str], max: i64, active: i64, since: i64) -> AgentRow {
        AgentRow {
            id: id.into(),
            name: id.into(),
            skills: serde_json::to_string(skills).unwrap(),
            max_concurrent: max,
            status: "online".into(),
            status_since: since,
            active,
            retired: false,
        }
    }

    fn waiting(
        conversation: &str,
        priority: i64,
        enqueued_at: i64,
        skills: &[&str],
    ) -> WaitingEntry {
        WaitingEntry {
            entry: WaitingRow {
                conversation: conversation.into(),
                queue: "q".into(),
                priority,
                skills: serde_json::to_string(skills).unwrap(),
                enqueued_at,
                first_response_due: 0,
                position: enqueued_at,
            },
            position: 0,
            wait_secs: 0,
        }
    }

    #[test]
    fn priority_then_wait_then_fairness() {
        let agents = [agent("a", &["x"], 2, 1, 0), agent("b", &["x"], 2, 0, 5)];
        let w = [
            waiting("late", 5, 30, &["x"]),
            waiting("urgent", 1, 40, &["x"]),
            waiting("early", 5, 10, &["x"]),
        ];
        let m = plan(&w, &agents);
        let pairs: Vec<(&str, &str)> = m
            .iter()
            .map(|m| (m.conversation.as_str(), m.agent.as_str()))
            .collect();
        // b holds fewer chats, so takes the first; then a and b hold one each and a has been
        // online longer.
        assert_eq!(pairs, [("urgent", "b"), ("early", "a"), ("late", "b")]);
    }

    #[test]
    fn skills_capacity_and_status_limit_the_matches() {
        let mut away = agent("away", &["x"], 5, 0, 0);
        away.status = "away".into();
        let agents = [
            agent("full", &["x"], 1, 1, 0),
            away,
            agent("en", &["en"], 3, 0, 0),
        ];
        let w = [waiting("c1", 1, 1, &["x"]), waiting("c2", 1, 2, &["en"])];
        let m = plan(&w, &agents);
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].conversation.as_str(), m[0].agent.as_str()),
            ("c2", "en")
        );
    }

    proptest::proptest! {
        /// Whatever the round sees, nobody gets more than their free seats, every match has
        /// the skills, and no conversation is matched twice.
        #[test]
        fn a_round_keeps_every_limit(
            agents in proptest::collection::vec((0i64..4, 0i64..4, proptest::bool::ANY, 0i64..100), 0..6),
            convs in proptest::collection::vec((0i64..3, 0i64..1000, proptest::bool::ANY), 0..20),
        ) {
            let agents: Vec<AgentRow> = agents.iter().enumerate().map(|(i, (max, active, en, since))| {
                agent(&format!("a{i}"), if *en { &["x", "en"] } else { &["x"] }, *max, (*active).min(*max), *since)
            }).collect();
            let w: Vec<WaitingEntry> = convs.iter().enumerate().map(|(i, (p, at, en))| {
                waiting(&format!("c{i}"), *p, *at, if *en { &["en"] } else { &["x"] })
            }).collect();
            let m = plan(&w, &agents);
            let mut per_agent: BTreeMap<&str, i64> = BTreeMap::new();
            let mut seen = BTreeSet::new();
            for x in &m {
                proptest::prop_assert!(seen.insert(x.conversation.clone()));
                *per_agent.entry(&x.agent).or_default() += 1;
                let a = agents.iter().find(|a| a.id == x.agent).unwrap();
                let c = w.iter().find(|c| c.entry.conversation == x.conversation).unwrap();
                let has: BTreeSet<String> = serde_json::from_str(&a.skills).unwrap();
                let needs: BTreeSet<String> = serde_json::from_str(&c.entry.skills).unwrap();
                proptest::prop_assert!(needs.is_subset(&has));
            }
            for a in &agents {
                let given = per_agent.get(a.id.as_str()).copied().unwrap_or(0);
                proptest::prop_assert!(a.active + given <= a.max_concurrent.max(a.active));
            }
        }
    }
}
