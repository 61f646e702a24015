//! Subscriptions over WebSocket (graphql-transport-ws): events as they are appended, filtered
//! to what the caller may see. Each yields log events; a subscriber that falls too far behind
//! gets an error naming the position to catch up from, and the stream ends.

use std::collections::BTreeSet;

use async_graphql::{Context, Result, Subscription as SubscriptionRoot};
use futures_util::Stream;
use futures_util::future::BoxFuture;
use futures_util::stream::unfold;
use kefu_domain::agent::AgentDecider;
use kefu_domain::conversation::{ConversationDecider, ConversationEvent};
use kefu_domain::ids::{ConversationId, QueueId, TicketId};
use kefu_domain::queue::QueueDecider;
use kefu_domain::ticket::{TicketDecider, TicketEvent};
use kefu_domain::{Decider, DomainEvent as _, Event as Typed};
use kefu_eventlog::RecordedEvent;

use super::policy::{self, Root, require};
use super::types::Event;
use super::{ApiError, api, caller, uuid};
use crate::auth::Role;
use crate::hub::{Delivery, Feed, HubEvent, Interest};

pub struct Subscription;

/// Turn events, and internal notes for agents.
const TURNS: [&str; 3] = [
    "CustomerTurnRecorded",
    "BotTurnRecorded",
    "AgentTurnRecorded",
];
const NOTE: &str = "InternalNoteAdded";

/// What a customer's window shows of their conversation besides turns. The rest (emotion
/// scores, predictions, routing, notes) is for the help desk.
const CUSTOMER_VISIBLE: [&str; 8] = [
    "HandedToHuman",
    "ConversationQueued",
    "AgentAssigned",
    "ConversationTransferred",
    "ConversationClosed",
    "ConversationReopened",
    "SurveyOffered",
    "SurveyAnswered",
];

/// Re-asks the policy whether the caller still has access; a refusal ends the subscription.
type Recheck = Box<dyn Fn() -> BoxFuture<'static, Result<(), ApiError>> + Send + Sync>;

/// Events after which access is re-checked, and how.
struct Watch {
    /// Whether an event may have changed the caller's access.
    changes: Box<dyn Fn(&RecordedEvent) -> bool + Send + Sync>,
    recheck: Recheck,
}

/// The hub's events that pass `keep`, as a stream of GraphQL results. With `watch`, every
/// event that may change the caller's access is re-checked first (only those: a full check
/// per event would fold a stream per delivery); when access has ended the subscription ends
/// with a `FORBIDDEN` error and delivers nothing more.
fn filtered(
    rx: Feed,
    keep: impl Fn(&HubEvent) -> bool + Send + 'static,
    watch: Option<Watch>,
) -> impl Stream<Item = Result<Event>> {
    unfold(Some((rx, keep, watch)), |state| async move {
        let (mut rx, keep, watch) = state?;
        loop {
            match rx.recv().await {
                Delivery::Event(e) => {
                    if let Some(w) = &watch
                        && (w.changes)(&e.recorded)
                        && let Err(lost) = (w.recheck)().await
                    {
                        let error = match lost {
                            ApiError::NotFound(m) | ApiError::Forbidden(m) => ApiError::Forbidden(
                                format!("your access ended ({m}); this subscription is closed"),
                            ),
                            other => other,
                        };
                        return Some((Err(error.into()), None));
                    }
                    if keep(&e) {
                        return Some((Ok(Event::from(&e.recorded)), Some((rx, keep, watch))));
                    }
                }
                Delivery::Lagged => {
                    let error = ApiError::Unavailable(
                        "this subscription fell too far behind and was ended; read what you \
                         missed with a query, then subscribe again"
                            .to_owned(),
                    );
                    return Some((Err(error.into()), None));
                }
                Delivery::Closed => return None,
            }
        }
    })
}

/// The conversation events after which who may see the conversation can differ: it is
/// routed, queued, assigned, transferred, escalated or reopened.
const ACCESS_CHANGING: [&str; 7] = [
    "RoutingDecided",
    "HandedToHuman",
    "ConversationQueued",
    "AgentAssigned",
    "ConversationTransferred",
    "ConversationEscalated",
    "ConversationReopened",
];

/// The ticket events after which its assignee (and so who may see it) can differ.
const TICKET_ACCESS_CHANGING: [&str; 3] = ["TicketFieldChanged", "TicketEscalated", "TicketMerged"];

/// The agent and queue events after which an agent may no longer serve a queue.
const QUEUE_ACCESS_CHANGING: [&str; 4] = [
    "AgentSkillsChanged",
    "AgentRetired",
    "QueueChanged",
    "QueueRetired",
];

/// The events of one conversation the caller may see, of the types `keep` takes (told whether
/// the caller is the help desk rather than the customer), for as long as they may see it.
async fn conversation_feed(
    ctx: &Context<'_>,
    conversation_id: &str,
    keep: fn(bool, &str) -> bool,
) -> Result<impl Stream<Item = Result<Event>> + use<>> {
    let (api, caller) = (api(ctx), caller(ctx)?);
    let id = ConversationId::from_uuid(uuid("conversationId", conversation_id)?);
    policy::conversation(api, caller, id).await?;
    let stream = ConversationDecider::stream_id(id);
    let desk = caller.principal.role != Role::Customer;
    // A customer's own conversation stays theirs; the help desk's access follows the chat.
    let watch = desk.then(|| {
        let (api, caller, stream) = (api.clone(), caller.clone(), stream.clone());
        Watch {
            changes: Box::new(move |e: &RecordedEvent| {
                e.stream_id.as_str() == stream && ACCESS_CHANGING.contains(&e.event_type.as_str())
            }),
            recheck: Box::new(move || {
                let (api, caller) = (api.clone(), caller.clone());
                Box::pin(async move { policy::conversation(&api, &caller, id).await.map(|_| ()) })
            }),
        }
    });
    Ok(filtered(
        api.hub.subscribe(&Interest::streams([stream.clone()])),
        move |e: &HubEvent| {
            e.recorded.stream_id.as_str() == stream && keep(desk, e.recorded.event_type.as_str())
        },
        watch,
    ))
}

#[SubscriptionRoot]
impl Subscription {
    /// New turns in one conversation (and internal notes, for agents).
    async fn conversation_turns(
        &self,
        ctx: &Context<'_>,
        conversation_id: String,
    ) -> Result<impl Stream<Item = Result<Event>>> {
        conversation_feed(ctx, &conversation_id, |desk, t| {
            TURNS.contains(&t) || (desk && t == NOTE)
        })
        .await
    }

    /// Everything that happens to one conversation: for customers, turns and what their
    /// window shows (queued, an agent joined, closed, the survey); for the help desk, all.
    async fn conversation_events(
        &self,
        ctx: &Context<'_>,
        conversation_id: String,
    ) -> Result<impl Stream<Item = Result<Event>>> {
        conversation_feed(ctx, &conversation_id, |desk, t| {
            desk || TURNS.contains(&t) || CUSTOMER_VISIBLE.contains(&t)
        })
        .await
    }

    /// Conversations joining, leaving or being assigned in the given queues: for agents,
    /// queues whose skills they have; for supervisors, their queues (all of them when
    /// `queues` is absent).
    async fn queue_changes(
        &self,
        ctx: &Context<'_>,
        queues: Option<Vec<String>>,
    ) -> Result<impl Stream<Item = Result<Event>>> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        let p = require(caller, Root::Subscription, "queueChanges")?;
        let asked: BTreeSet<String> = match queues {
            Some(q) => q
                .iter()
                .map(|s| uuid("queues", s).map(|u| u.to_string()))
                .collect::<Result<_, _>>()?,
            None if p.role == Role::Supervisor => p.queues.clone(),
            None => {
                return Err(
                    ApiError::Validation("queues: name the queues to follow".into()).into(),
                );
            }
        };
        // Conversations of any queue, and the agent's and queues' own streams for the watch.
        let mut interest = Interest::default().and_category(ConversationEvent::CATEGORY);
        let watch = if p.role == Role::Supervisor {
            if let Some(q) = asked.iter().find(|q| !p.queues.contains(*q)) {
                return Err(
                    ApiError::Forbidden(format!("queue {q} is not one of your queues")).into(),
                );
            }
            None
        } else {
            let me = policy::agent_id(p)?;
            let queues = asked
                .iter()
                .map(|q| uuid("queues", q).map(QueueId::from_uuid))
                .collect::<Result<Vec<_>, _>>()?;
            policy::serves_all(api, me, &queues).await?;
            // Access ends when the agent's skills or a followed queue change so that the agent
            // no longer serves it (or either is retired); only those events re-check.
            let mut watched: BTreeSet<String> =
                queues.iter().map(|q| QueueDecider::stream_id(*q)).collect();
            watched.insert(AgentDecider::stream_id(me));
            interest.streams.extend(watched.iter().cloned());
            let api = api.clone();
            Some(Watch {
                changes: Box::new(move |e: &RecordedEvent| {
                    watched.contains(e.stream_id.as_str())
                        && QUEUE_ACCESS_CHANGING.contains(&e.event_type.as_str())
                }),
                recheck: Box::new(move || {
                    let (api, queues) = (api.clone(), queues.clone());
                    Box::pin(async move { policy::serves_all(&api, me, &queues).await })
                }),
            })
        };
        Ok(filtered(
            api.hub.subscribe(&interest),
            move |e: &HubEvent| match &e.event {
                Typed::Conversation(c) => c.queue().is_some_and(|q| asked.contains(&q.to_string())),
                _ => false,
            },
            watch,
        ))
    }

    /// Changes to tickets: one ticket the caller may see, for as long as they may (its
    /// assignment re-checked as it changes); admins may follow all of them.
    async fn ticket_updates(
        &self,
        ctx: &Context<'_>,
        ticket_id: Option<String>,
    ) -> Result<impl Stream<Item = Result<Event>>> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        let p = require(caller, Root::Subscription, "ticketUpdates")?;
        let only = ticket_id
            .map(|t| uuid("ticketId", &t).map(TicketId::from_uuid))
            .transpose()?;
        let watch = match only {
            Some(id) => {
                policy::ticket(api, caller, id).await?;
                let (api, caller, stream) =
                    (api.clone(), caller.clone(), TicketDecider::stream_id(id));
                Some(Watch {
                    changes: Box::new(move |e: &RecordedEvent| {
                        e.stream_id.as_str() == stream
                            && TICKET_ACCESS_CHANGING.contains(&e.event_type.as_str())
                    }),
                    recheck: Box::new(move || {
                        let (api, caller) = (api.clone(), caller.clone());
                        Box::pin(async move { policy::ticket(&api, &caller, id).await.map(|_| ()) })
                    }),
                })
            }
            None if p.role == Role::Admin => None,
            None => {
                return Err(ApiError::Validation(
                    "ticketId: name the ticket to follow (only admins follow all of them)".into(),
                )
                .into());
            }
        };
        let only = only.map(TicketDecider::stream_id);
        let interest = match &only {
            Some(stream) => Interest::streams([stream.clone()]),
            None => Interest::default().and_category(TicketEvent::CATEGORY),
        };
        Ok(filtered(
            api.hub.subscribe(&interest),
            move |e: &HubEvent| match &only {
                Some(stream) => e.recorded.stream_id.as_str() == stream,
                None => e.recorded.stream_id.category() == TicketEvent::CATEGORY,
            },
            watch,
        ))
    }
}
