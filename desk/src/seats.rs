//! The seat-first protocol: an agent's seat is taken on the agent's stream before the conversation
//! is assigned, and given back when the conversation refuses the agent or ends. The agent's stream
//! is the authority on capacity (`domain/src/agent.rs`), so the limit holds however many assigners
//! run; what a crash between the two appends leaves, and who frees it, is in the crate's docs
//! (`desk/src/lib.rs`, "Operations across streams").

use kefu_domain::agent::{AgentCommand, AgentDecider, AgentEvent};
use kefu_domain::conversation::{
    ConversationCommand as C, ConversationDecider, ConversationSnapshot,
};
use kefu_domain::ids::{AgentId, ConversationId};
use kefu_domain::{Decider, Event};
use kefu_eventlog::{EventLog, Metadata, Position};

use crate::command::CommandError;

use crate::{Desk, Done, Reached};

impl<L: EventLog> Desk<L> {
    pub async fn assign(
        &self,
        conversation: ConversationId,
        agent: AgentId,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let mut reached = Reached::default();
        let take = AgentCommand::TakeChat {
            conversation,
            at: self.now(),
        };
        let seated = self
            .run::<AgentDecider>(&mut reached, agent, take, meta)
            .await?;
        let assign = C::AssignAgent {
            agent: seated.state.snapshot(agent),
            at: self.now(),
        };
        match self
            .run::<ConversationDecider>(&mut reached, conversation, assign, meta)
            .await
        {
            Ok(_) => Ok(reached.done(())),
            Err(refused) => {
                self.release_unless_with(&mut reached, agent, conversation, meta)
                    .await?;
                Err(refused)
            }
        }
    }

    /// The assigner's assignment of a queued conversation, as a reaction to its queueing
    /// (`meta` caused by it), resumable from the log: a seat already taken for this cause and
    /// not given back (an assigner that died between the seat and the assignment, or another
    /// instance ahead of this one) is used rather than `planned`, so one queueing takes one
    /// seat; and a conversation no longer queued (the read model the round planned from was
    /// behind) is left alone before any seat is touched. The agent it went to, or `None`
    /// when it no longer waits.
    pub async fn assign_queued(
        &self,
        conversation: ConversationId,
        planned: AgentId,
        meta: &Metadata,
    ) -> Result<Done<Option<AgentId>>, CommandError> {
        match self.conversation(conversation).await? {
            ConversationSnapshot::Known(c)
                if !c.is_closed()
                    && matches!(
                        c.handling,
                        kefu_domain::conversation::Handling::Queued { .. }
                    ) => {}
            _ => {
                return Ok(Done {
                    value: None,
                    position: None,
                });
            }
        }
        let agent = self
            .seat_taken_for(conversation, meta)
            .await?
            .unwrap_or(planned);
        let done = self.assign(conversation, agent, meta).await?;
        Ok(Done {
            value: Some(agent),
            position: done.position,
        })
    }

    /// The agent holding a seat taken for `conversation` by a command caused as `meta` is,
    /// and not given back since, read from the request's correlation (the audit trail's
    /// index), which holds every reaction to it.
    async fn seat_taken_for(
        &self,
        conversation: ConversationId,
        meta: &Metadata,
    ) -> Result<Option<AgentId>, CommandError> {
        if meta.causation_id == meta.correlation_id {
            return Ok(None);
        }
        let mut held: Vec<AgentId> = Vec::new();
        for mut e in self
            .commands
            .log()
            .read_correlation(meta.correlation_id)
            .await?
        {
            let (Some(agent), true) = (
                AgentDecider::id_of_stream(e.stream_id.as_str()),
                e.metadata.causation_id == meta.causation_id,
            ) else {
                continue;
            };
            match kefu_feed::decode_taking(&mut e) {
                Event::Agent(AgentEvent::AgentChatTaken(t)) if t.conversation == conversation => {
                    held.push(agent)
                }
                Event::Agent(AgentEvent::AgentChatReleased(r))
                    if r.conversation == conversation =>
                {
                    held.retain(|a| *a != agent)
                }
                _ => {}
            }
        }
        Ok(held.last().copied())
    }

    /// Gives back `agent`'s seat for `conversation` after a refused assignment or transfer,
    /// unless the conversation is with that agent after all: a concurrent assigner that
    /// matched the same pair took the same seat (taking it twice is one seat) and won, and
    /// releasing it would free a seat in use.
    pub(crate) async fn release_unless_with(
        &self,
        reached: &mut Reached,
        agent: AgentId,
        conversation: ConversationId,
        meta: &Metadata,
    ) -> Result<(), CommandError> {
        if let ConversationSnapshot::Known(c) = self.conversation(conversation).await?
            && c.handling.agent() == Some(agent)
            && !c.is_closed()
        {
            return Ok(());
        }
        self.release(reached, agent, conversation, meta).await
    }

    /// Frees the seats of `agent` that no assignment will ever use: a seat taken for a
    /// conversation that has since been given to another agent or closed, by an event recorded
    /// after the seat was taken. Such a seat is left behind when an assigner dies (or its store
    /// fails) between taking the seat and recording the assignment, and a later round gives the
    /// conversation to someone else; it would hold a seat forever and keep the agent from
    /// going offline. A seat whose conversation still waits is left alone: an assignment may
    /// be on its way. Each release is caused by the event that made the seat moot. How many
    /// seats it freed.
    pub async fn free_orphaned_seats(
        &self,
        agent: AgentId,
        actor: &kefu_eventlog::Actor,
    ) -> Result<usize, CommandError> {
        let log = self.commands.log();
        let agent_stream = crate::command::stream_of::<AgentDecider>(agent)?;
        let mut taken_at: std::collections::HashMap<ConversationId, Position> =
            std::collections::HashMap::new();
        for mut e in kefu_eventlog::read_whole_stream(&**log, &agent_stream).await? {
            if let Event::Agent(AgentEvent::AgentChatTaken(t)) = kefu_feed::decode_taking(&mut e) {
                taken_at.insert(t.conversation, e.position);
            }
        }
        let held = match self.commands.load::<AgentDecider>(agent).await?.state {
            kefu_domain::agent::AgentState::Registered(a) => a.active_chats,
            _ => return Ok(0),
        };
        let mut freed = 0;
        for conversation in held {
            let Some(&taken) = taken_at.get(&conversation) else {
                continue;
            };
            let stream = crate::command::stream_of::<ConversationDecider>(conversation)?;
            let events = kefu_eventlog::read_whole_stream(&**log, &stream).await?;
            let Some(moot) = events.iter().rev().find(|e| {
                e.position > taken
                    && matches!(
                        e.event_type.as_str(),
                        "AgentAssigned" | "ConversationTransferred" | "ConversationClosed"
                    )
            }) else {
                continue;
            };
            let elsewhere = match self.conversation(conversation).await? {
                ConversationSnapshot::Known(c) => {
                    c.is_closed() || c.handling.agent().is_some_and(|a| a != agent)
                }
                ConversationSnapshot::Unknown(_) => false,
            };
            if elsewhere {
                let meta = Metadata::caused_by(actor.clone(), moot);
                let release = AgentCommand::ReleaseChat {
                    conversation,
                    at: self.now(),
                };
                // Another sweeper may have freed it first: then nothing is appended.
                let done = self
                    .commands
                    .execute::<AgentDecider>(agent, release, &meta)
                    .await?;
                freed += usize::from(!done.events.is_empty());
            }
        }
        Ok(freed)
    }

    /// Frees `agent`'s seat for `conversation` if they still hold it (a no-op otherwise): what
    /// the assigner does on every close it sees, caused by the close, so a seat whose release
    /// was lost (the close landed, the release did not: an outage, a crash) is free at once
    /// rather than at the next sweep.
    pub async fn free_seat(
        &self,
        agent: AgentId,
        conversation: ConversationId,
        meta: &Metadata,
    ) -> Result<bool, CommandError> {
        let mut reached = Reached::default();
        let release = AgentCommand::ReleaseChat {
            conversation,
            at: self.now(),
        };
        let executed = self
            .run::<AgentDecider>(&mut reached, agent, release, meta)
            .await?;
        Ok(executed.appended.is_some())
    }

    pub(crate) async fn release(
        &self,
        reached: &mut Reached,
        agent: AgentId,
        conversation: ConversationId,
        meta: &Metadata,
    ) -> Result<(), CommandError> {
        let release = AgentCommand::ReleaseChat {
            conversation,
            at: self.now(),
        };
        self.run::<AgentDecider>(reached, agent, release, meta)
            .await?;
        Ok(())
    }
}
