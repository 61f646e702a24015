//! The SLA timers: for each conversation's current queueing, a warning when a share of a
//! target (first response, resolution) has passed unmet, and at the target a breach, which
//! escalates the conversation (one priority step up; the queue's supervisors are notified by
//! the `ConversationEscalated` event their queue subscription delivers).
//!
//! Like the idle timeout it sweeps on a schedule: which clocks run, since when and until when
//! come from the conversation view, and the domain checks each warning and breach again
//! against the conversation's stream (due yet? target met? already warned or breached in this
//! queueing?). A lagging view can delay a warning, never cause a false or a second one; two
//! sweepers racing lose the append race or find the work done. Nothing is held in memory, so a
//! restart warns nobody twice. Each event is caused by the queueing that started its clock.
//!
//! The clock is the domain's `SlaClock`, one per queueing (a transfer to a queue starts a new one;
//! a reopen stops it); the sweep reads the conversation view's SLA columns (the current queueing's
//! due times, whether an agent replied, the warning and breach flags). `WarnSla` comes at a
//! fraction of a target (`--sla-warning-fraction`), `BreachSla` at the target, and the breach also
//! records `ConversationEscalated`: the queues view re-ranks a waiting conversation, and
//! supervisors of the queue get the event through `queueChanges`. Sweeps share
//! [`crate::runtime::run_sweeps`] with the idle timeout.

use chrono::{DateTime, Utc};
use kefu_domain::DomainError;
use kefu_domain::conversation::{SlaKind, warning_time};
use kefu_domain::ids::ConversationId;
use kefu_eventlog::{Actor, ActorKind, EventLog};
use kefu_projections::ReadModels;
use uuid::Uuid;

use crate::runtime::{Sweep, WorkerError, cause_at, moot};
use kefu_desk::Desk;
use kefu_desk::command::CommandError;

pub const NAME: &str = "sla";

/// What one sweep recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlaSweep {
    pub warned: usize,
    /// Each breach also escalated its conversation.
    pub breached: usize,
}

pub struct SlaTimers<L> {
    desk: Desk<L>,
    models: ReadModels,
    warning_fraction: f64,
    actor: Actor,
}

impl<L: EventLog> SlaTimers<L> {
    /// `warning_fraction`: the share of a target after which it is warned of, strictly
    /// between 0 and 1.
    pub fn new(
        desk: Desk<L>,
        models: ReadModels,
        warning_fraction: f64,
    ) -> Result<Self, WorkerError> {
        if !(warning_fraction > 0.0 && warning_fraction < 1.0) {
            return Err(WorkerError::Command(CommandError::Rejected(
                DomainError::Validation {
                    field: "SLA warning fraction",
                    reason: format!("{warning_fraction} is not strictly between 0 and 1"),
                },
            )));
        }
        Ok(SlaTimers {
            desk,
            models,
            warning_fraction,
            actor: Actor::new(ActorKind::System, NAME),
        })
    }

    /// One sweep at the desk's clock.
    pub async fn sweep_once(&self) -> Result<SlaSweep, WorkerError> {
        let now = self.desk.now();
        let view = self
            .models
            .live(kefu_projections::conversations::NAME)
            .await?;
        let mut done = SlaSweep::default();
        for row in view.sla_running().await? {
            let (Ok(uuid), Some(cause)) = (row.id.parse::<Uuid>(), row.queued_position) else {
                continue;
            };
            let conversation = ConversationId::from_uuid(uuid);
            for kind in SlaKind::ALL {
                let Some((queued_at, due, warned)) = row.sla_running(kind) else {
                    continue;
                };
                let (queued_at, due) = (at(queued_at), at(due));
                let step = if now >= due {
                    Step::Breach
                } else if !warned && now >= warning_time(queued_at, due, self.warning_fraction) {
                    Step::Warn
                } else {
                    continue;
                };
                let meta = cause_at(self.desk.commands(), &self.actor, cause).await?;
                let subject = format!("{conversation} {kind} {step:?}");
                match step {
                    Step::Breach => {
                        let result = self.desk.breach_sla(conversation, kind, &meta).await;
                        if moot(NAME, &subject, result)? {
                            done.breached += 1;
                        }
                    }
                    Step::Warn => {
                        let result = self
                            .desk
                            .warn_sla(conversation, kind, self.warning_fraction, &meta)
                            .await;
                        if moot(NAME, &subject, result)? {
                            done.warned += 1;
                        }
                    }
                }
            }
        }
        Ok(done)
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Warn,
    Breach,
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl<L: EventLog> Sweep for SlaTimers<L> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn sweep(&self) -> Result<usize, WorkerError> {
        let done = self.sweep_once().await?;
        Ok(done.warned + done.breached)
    }
}
