//! The idle timeout: closes conversations nobody has written in for a configured time, with
//! `ConversationIdleTimedOut` saying so. It sweeps on a schedule rather than reacting to an
//! event (what it reacts to is the absence of one); which conversations are open and when they
//! were last active come from the conversation view, and the domain checks idleness again
//! against the conversation's own stream, so a view that lags can only delay a close, never
//! close a conversation that is active. Nothing is held in memory: a restart loses no timer.

use kefu_domain::conversation::MIN_IDLE_TIMEOUT_SECS;
use kefu_domain::ids::ConversationId;
use kefu_eventlog::{Actor, ActorKind, EventLog, Metadata};
use kefu_projections::ReadModels;
use kefu_projections::conversations::ConversationFilter;
use uuid::Uuid;

use crate::runtime::{Sweep, WorkerError};
use kefu_desk::Desk;
use kefu_desk::command::CommandError;

pub const NAME: &str = "idle";

/// The statuses of a conversation that is still open.
const OPEN: [&str; 4] = ["bot", "awaiting_human", "queued", "with_agent"];

pub struct IdleTimeout<L> {
    desk: Desk<L>,
    models: ReadModels,
    idle_after_secs: u32,
    actor: Actor,
}

impl<L: EventLog> IdleTimeout<L> {
    pub fn new(
        desk: Desk<L>,
        models: ReadModels,
        idle_after_secs: u32,
    ) -> Result<Self, WorkerError> {
        if idle_after_secs < MIN_IDLE_TIMEOUT_SECS {
            return Err(WorkerError::Command(CommandError::Rejected(
                kefu_domain::DomainError::Validation {
                    field: "idle timeout",
                    reason: format!("must be at least {MIN_IDLE_TIMEOUT_SECS} seconds"),
                },
            )));
        }
        Ok(IdleTimeout {
            desk,
            models,
            idle_after_secs,
            actor: Actor::new(ActorKind::System, NAME),
        })
    }

    /// One sweep at the desk's clock; how many conversations it closed.
    pub async fn sweep(&self) -> Result<usize, WorkerError> {
        let cutoff = self.desk.now().timestamp_millis() - i64::from(self.idle_after_secs) * 1000;
        let view = self
            .models
            .live(kefu_projections::conversations::NAME)
            .await?;
        let mut idle = Vec::new();
        for status in OPEN {
            let filter = ConversationFilter {
                status: Some(status.to_owned()),
                ..ConversationFilter::default()
            };
            idle.extend(
                view.all_conversations(&filter)
                    .await?
                    .into_iter()
                    .filter(|c| c.last_activity_at <= cutoff)
                    .map(|c| (c.id, c.position)),
            );
        }
        let mut closed = 0;
        for (id, position) in idle {
            let Ok(uuid) = id.parse::<Uuid>() else {
                continue;
            };
            let conversation = ConversationId::from_uuid(uuid);
            let result = self
                .desk
                .time_out_idle(
                    conversation,
                    self.idle_after_secs,
                    &self.cause(position).await?,
                )
                .await;
            // Refused: active after all (the view was behind), or closed meanwhile.
            if crate::runtime::moot(NAME, conversation, result)? {
                closed += 1;
            }
        }
        Ok(closed)
    }

    /// The conversation's last event (where the view saw it), as the cause of the close.
    async fn cause(&self, position: i64) -> Result<Metadata, WorkerError> {
        Ok(crate::runtime::cause_at(self.desk.commands(), &self.actor, position).await?)
    }
}

impl<L: EventLog> Sweep for IdleTimeout<L> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn sweep(&self) -> Result<usize, WorkerError> {
        IdleTimeout::sweep(self).await
    }
}
