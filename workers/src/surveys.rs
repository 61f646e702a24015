//! The survey worker: offers the satisfaction survey when a conversation closes. Offering is
//! idempotent in the domain (a second offer is refused as already made), so a replay, a
//! restart or a second instance never offers twice.

use kefu_domain::Decider;
use kefu_domain::conversation::ConversationDecider;
use kefu_eventlog::{Actor, ActorKind, EventLog, Metadata, RecordedEvent};

use crate::command::CommandError;
use crate::desk::Desk;
use crate::runtime::{Reactor, WorkerError};

pub const NAME: &str = "surveys";

pub struct SurveyOffers<L> {
    desk: Desk<L>,
    actor: Actor,
}

impl<L: EventLog> SurveyOffers<L> {
    pub fn new(desk: Desk<L>) -> Self {
        SurveyOffers {
            desk,
            actor: Actor::new(ActorKind::System, NAME),
        }
    }
}

impl<L: EventLog> Reactor for SurveyOffers<L> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn react(&mut self, events: &[RecordedEvent]) -> Result<(), WorkerError> {
        for e in events
            .iter()
            .filter(|e| e.event_type == "ConversationClosed")
        {
            let Some(conversation) = ConversationDecider::id_of_stream(e.stream_id.as_str()) else {
                continue;
            };
            let meta = Metadata::caused_by(self.actor.clone(), e);
            match self.desk.offer_survey(conversation, &meta).await {
                Ok(_) => {}
                // Offered already, answered, or reopened since: nothing to do.
                Err(CommandError::Rejected(reason)) => {
                    tracing::debug!(%conversation, %reason, "no survey to offer");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
