//! The survey workers: one offers the satisfaction survey when a conversation closes; the
//! other reminds the customer once of a survey left unanswered for a while. Offering and
//! reminding are idempotent in the domain (a second offer or reminder is refused as already
//! made), so a replay, a restart or a second instance never offers or reminds twice. The
//! reminder is a timer: a sweep over the conversation view, each candidate checked again by
//! the domain against its stream (offered long enough ago, not answered, not reopened).
//!
//! The offer is [`offer`], a pure reaction in the shell; the domain says whether one is due (probe
//! conversations get none). A reminder (`SurveyReminded`) is caused by its offer; the domain
//! refuses a second one, one before the delay, one after an answer, and one while the conversation
//! is reopened.

use chrono::Duration;
use kefu_domain::conversation::{
    ConversationCommand as C, ConversationEvent, MIN_SURVEY_REMINDER_SECS,
};
use kefu_domain::ids::ConversationId;
use kefu_domain::{DomainError, Event};
use kefu_eventlog::{Actor, ActorKind, EventLog, RecordedEvent};
use kefu_projections::ReadModels;
use uuid::Uuid;

use crate::runtime::{Reactor, Sweep, WorkerError, cause_at, moot};
use crate::shell::{self, Given, Intent, Shell};
use kefu_desk::Desk;
use kefu_desk::command::CommandError;

pub const NAME: &str = "surveys";
pub const REMINDERS: &str = "survey-reminders";

/// A reminder that could not be sent within this long after it was due (the worker was
/// down, or the survey was offered before kefu had reminders) is not sent: a customer
/// reminded of a chat from weeks ago is puzzled, not helped.
pub const LATEST_REMINDER_HOURS: i64 = 72;

pub struct SurveyOffers<L> {
    shell: Shell<L>,
}

impl<L: EventLog> SurveyOffers<L> {
    pub fn new(desk: Desk<L>) -> Self {
        SurveyOffers {
            shell: Shell::new(desk, NAME, Actor::new(ActorKind::System, NAME)),
        }
    }
}

/// The reaction to a conversation's close: offer the survey. The domain decides whether one
/// is due (not offered already, not answered, not reopened since, no probe).
pub fn offer(given: &Given<'_>) -> Vec<Intent> {
    vec![Intent::Conversation(vec![C::OfferSurvey { at: given.now }])]
}

impl<L: EventLog> Reactor for SurveyOffers<L> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn react(&mut self, events: &[RecordedEvent]) -> Result<(), WorkerError> {
        let work = shell::conversation_work(events, |e| {
            matches!(
                e,
                Event::Conversation(ConversationEvent::ConversationClosed(_))
            )
        });
        self.shell.react(work, |given, _| offer(given)).await
    }
}

/// Reminds customers once of a survey offered `after_secs` ago and still unanswered.
pub struct SurveyReminders<L> {
    desk: Desk<L>,
    models: ReadModels,
    after_secs: u32,
    actor: Actor,
}

impl<L: EventLog> SurveyReminders<L> {
    pub fn new(desk: Desk<L>, models: ReadModels, after_secs: u32) -> Result<Self, WorkerError> {
        if after_secs < MIN_SURVEY_REMINDER_SECS {
            return Err(WorkerError::Command(CommandError::Rejected(
                DomainError::Validation {
                    field: "survey reminder delay",
                    reason: format!("must be at least {MIN_SURVEY_REMINDER_SECS} seconds"),
                },
            )));
        }
        Ok(SurveyReminders {
            desk,
            models,
            after_secs,
            actor: Actor::new(ActorKind::System, REMINDERS),
        })
    }
}

impl<L: EventLog> Sweep for SurveyReminders<L> {
    fn name(&self) -> &'static str {
        REMINDERS
    }

    /// One sweep at the desk's clock; how many customers it reminded.
    async fn sweep(&self) -> Result<usize, WorkerError> {
        let due_by = self.desk.now() - Duration::seconds(i64::from(self.after_secs));
        let oldest = due_by - Duration::hours(LATEST_REMINDER_HOURS);
        let view = self
            .models
            .live(kefu_projections::conversations::NAME)
            .await?;
        let mut reminded = 0;
        let rows = view
            .surveys_to_remind(oldest.timestamp_millis(), due_by.timestamp_millis())
            .await?;
        for row in rows {
            let (Ok(uuid), Some(offer)) = (row.id.parse::<Uuid>(), row.survey_offered_position)
            else {
                continue;
            };
            let conversation = ConversationId::from_uuid(uuid);
            let meta = cause_at(self.desk.commands(), &self.actor, offer).await?;
            let result = self
                .desk
                .remind_survey(conversation, self.after_secs, &meta)
                .await;
            if moot(REMINDERS, conversation, result)? {
                reminded += 1;
            }
        }
        Ok(reminded)
    }
}
