//! The router (分流): predicts what the customer needs and sends the conversation to a queue
//! when it goes to the humans.
//!
//! - `ConversationStarted`: the top three scenarios from the order context alone, before the
//!   customer types (`PredictScenario`).
//! - The first `CustomerTurnRecorded`: that prior combined with the text intent classifier.
//! - `HandedToHuman`: the settled (or else the top) scenario and the order pick a route
//!   (a customer who typed that they want to complain, "我要投诉", goes to the complaints
//!   team whatever was predicted: the routing reasons carry `customer_asked_complaint`)
//!   (business line, category, service type; `kefu_bot::scenario::route`), and [`pick_queue`]
//!   the queue that serves it; `Desk::route` records the decision and queues the conversation.
//!
//! Every prediction and decision is an event carrying its model version (and the routing
//! reasons), so a new model can be compared on replayed history. Reacting twice is harmless:
//! predicting again replaces a prediction with the same one, and a conversation already routed
//! refuses a second route.
//!
//! The order prior comes from the order-system gateway ([`OrderGateway`]): the order as the
//! shop knows it now, with its days in status and whether a refund is open. With the gateway
//! switched off (`Switch::OrderGateway`) or failing, the router predicts from the words alone
//! and routes on the order the conversation itself carries (its seller decides the team);
//! the features say `order_gateway: switched_off | unavailable` and the routing reasons carry
//! `order_gateway_switched_off` / `order_gateway_unavailable`, so degraded decisions can be
//! told apart in the log. Probe conversations (`Channel::Probe`) ask the bot, not triage: the
//! router leaves them alone, so a probe never reaches a human's queue.
//!
//! The text classifier is trained at start from the examples in `bot/data` (compiled in;
//! [`intent_model`]). [`pick_queue`] takes the queue of the route's business line whose skills name
//! the service type and whose categories hold the route's category, with a fallback otherwise.
//! [`react`] is pure and runs in the shell; what it needs beyond the conversation is looked up per
//! event (`Lookup`, the shell's `Gather`): the order from the gateway and, for a hand-off the
//! customer asked for, their last words, read from the stream (the state keeps no text: the one
//! extra read, and only then). The switchboard and the queue list are read once per batch.
//! [`Triage`] is the router given the queue list (what [`Router`] runs once it has read the list
//! from the read model), so the simulation of the desk runs the same reactions on a read model it
//! keeps in memory.

use kefu_bot::eval::{Labelled, parse_jsonl};
use kefu_bot::intent::{IntentModel, IntentParams};
use kefu_bot::scenario::{self, OrderFacts, Route};
use kefu_bot::transfer::{self, Request};
use kefu_domain::Event;
use kefu_domain::common::Channel;
use kefu_domain::conversation::{
    Conversation, ConversationCommand as C, ConversationEvent, Features, HandoffReason,
    RoutingReason, Speaker,
};
use kefu_domain::ids::{QueueId, ScenarioCode};
use kefu_domain::switches::{Switch, SwitchBoard};
use kefu_eventlog::{Actor, ActorKind, EventLog, RecordedEvent, read_whole_stream};
use kefu_projections::ReadModels;
use kefu_projections::queues::QueueRow;
use uuid::Uuid;

use crate::gateway::OrderGateway;
use crate::runtime::{Reactor, WorkerError};
use crate::shell::{self, Gather, Given, Intent, Shell, Work};
use kefu_desk::Desk;
use kefu_desk::command::CommandError;

pub const NAME: &str = "router";

/// The scenario of a complaint (`kefu_bot::scenario`), which routes to the complaints team.
const COMPLAINT: &str = "complaint";

/// The labelled first messages the text classifier learns from (written for kefu; see
/// `bot/data/README.md`).
const TRAINING: &str = include_str!("../../bot/data/intents-train.jsonl");

pub struct Router<L> {
    triage: Triage<L>,
    models: ReadModels,
}

/// The router's reactions run in the shell, given the queue list: what [`Router`] does with a
/// batch once it has read the queues from the read model (and what the simulation of the
/// desk runs, reading them from the same projection applied in memory).
pub struct Triage<L> {
    shell: Shell<L>,
    gateway: OrderGateway<L>,
    intents: IntentModel,
}

/// Where the order facts of a prediction or route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderSource {
    /// The conversation names no order.
    NoOrder,
    Gateway,
    SwitchedOff,
    Unavailable,
}

impl OrderSource {
    fn code(self) -> &'static str {
        match self {
            OrderSource::NoOrder => "no_order",
            OrderSource::Gateway => "on",
            OrderSource::SwitchedOff => "switched_off",
            OrderSource::Unavailable => "unavailable",
        }
    }

    /// The routing reason a degraded route carries.
    fn reason(self) -> Option<RoutingReason> {
        match self {
            OrderSource::SwitchedOff | OrderSource::Unavailable => Some(RoutingReason::Other {
                code: format!("order_gateway_{}", self.code()),
            }),
            OrderSource::NoOrder | OrderSource::Gateway => None,
        }
    }
}

impl<L: EventLog> Router<L> {
    /// Trains the text classifier (well under a second on the shipped examples).
    pub fn new(
        desk: Desk<L>,
        models: ReadModels,
        gateway: OrderGateway<L>,
    ) -> Result<Self, WorkerError> {
        Ok(Self::with_intents(desk, models, gateway, intent_model()?))
    }

    /// A router with the intent classifier already trained (it is deterministic): what a
    /// process that starts several routers, or restarts one, trains once.
    pub fn with_intents(
        desk: Desk<L>,
        models: ReadModels,
        gateway: OrderGateway<L>,
        intents: IntentModel,
    ) -> Self {
        Router {
            triage: Triage::new(desk, gateway, intents),
            models,
        }
    }
}

impl<L: EventLog> Triage<L> {
    pub fn new(desk: Desk<L>, gateway: OrderGateway<L>, intents: IntentModel) -> Self {
        Triage {
            shell: Shell::new(desk, NAME, Actor::new(ActorKind::System, NAME)),
            gateway,
            intents,
        }
    }

    /// The events of `events` the router reacts to, decoded.
    pub fn work(events: &[RecordedEvent]) -> Vec<Work<'_>> {
        shell::conversation_work(events, |e| {
            matches!(
                e,
                Event::Conversation(
                    ConversationEvent::ConversationStarted(_)
                        | ConversationEvent::CustomerTurnRecorded(_)
                        | ConversationEvent::HandedToHuman(_)
                )
            )
        })
    }

    /// Whether reacting to `work` needs the queue list (only a hand-off is routed).
    pub fn needs_queues(work: &[Work<'_>]) -> bool {
        work.iter().any(|w| {
            matches!(
                w.event,
                Event::Conversation(ConversationEvent::HandedToHuman(_))
            )
        })
    }

    /// Reacts to `work` with the queues as the queues read model lists them (empty when
    /// [`Triage::needs_queues`] says they are not needed).
    pub async fn react(&self, work: Vec<Work<'_>>, queues: &[QueueRow]) -> Result<(), WorkerError> {
        if work.is_empty() {
            return Ok(());
        }
        let desk = self.shell.desk();
        let board = desk.switchboard().await?;
        let lookup = Lookup {
            gateway: &self.gateway,
            board: &board,
            log: &**desk.commands().log(),
        };
        let intents = &self.intents;
        self.shell
            .react_gathering(work, &lookup, |given, work, seen| {
                react(intents, queues, given, &work.event, seen)
            })
            .await
    }
}

/// What the router loads for one reaction: the conversation's order as the order system
/// knows it now, and for a hand-off whether the customer asked to complain.
struct Lookup<'a, L> {
    gateway: &'a OrderGateway<L>,
    board: &'a SwitchBoard,
    log: &'a L,
}

/// What [`Lookup`] found, for [`react`].
pub struct Seen {
    /// The order facts, from the gateway or (without it) from the conversation.
    pub order: Option<OrderFacts>,
    pub source: OrderSource,
    /// The hand-off came from the customer asking to complain in their latest turn.
    pub complaint: bool,
}

impl<L: EventLog> Lookup<'_, L> {
    /// The conversation's order as the gateway knows it now, or nothing when the gateway is
    /// switched off or fails (the router then works without it).
    async fn order(
        &self,
        conv: &Conversation,
        now: chrono::DateTime<chrono::Utc>,
    ) -> (Option<OrderFacts>, OrderSource) {
        let Some(order) = &conv.order else {
            return (None, OrderSource::NoOrder);
        };
        if !self.board.is_on(Switch::OrderGateway) {
            return (None, OrderSource::SwitchedOff);
        }
        match self.gateway.order(conv.customer, &order.order, now).await {
            // The order was confirmed from the customer stream when the chat began; should
            // the shop have lost it since, what the conversation carries still holds.
            Ok(found) => (found.or_else(|| facts(conv)), OrderSource::Gateway),
            Err(e) => {
                tracing::warn!(conversation = %conv.id, error = %e, "no order context; triage goes on without it");
                (None, OrderSource::Unavailable)
            }
        }
    }

    /// Whether the hand-off `e` came from the customer asking to complain in their latest
    /// turn. The conversation's state keeps no words, so this reads the stream: only for a
    /// hand-off the customer asked for.
    async fn asked_to_complain(
        &self,
        e: &RecordedEvent,
        reason: HandoffReason,
    ) -> Result<bool, WorkerError> {
        if reason != HandoffReason::CustomerAsked {
            return Ok(false);
        }
        let events = read_whole_stream(self.log, &e.stream_id).await?;
        Ok(events
            .iter()
            .rev()
            .filter(|x| x.version < e.version)
            .find_map(|x| match kefu_feed::decode_or_other(x) {
                Event::Conversation(ConversationEvent::CustomerTurnRecorded(turn)) => Some(turn),
                _ => None,
            })
            .and_then(|turn| transfer::request(&turn.text))
            == Some(Request::Complaint))
    }
}

impl<L: EventLog> Gather for Lookup<'_, L> {
    type Seen = Option<Seen>;

    async fn gather<'a>(
        &'a self,
        given: &'a Given<'a>,
        work: &'a Work<'a>,
    ) -> Result<Option<Seen>, WorkerError> {
        // Probes ask the bot, not triage: nothing to look up.
        if given.conversation.channel == Channel::Probe {
            return Ok(None);
        }
        let (order, source) = self.order(given.conversation, given.now).await;
        let complaint = match &work.event {
            Event::Conversation(ConversationEvent::HandedToHuman(handed)) => {
                self.asked_to_complain(work.recorded, handed.reason).await?
            }
            _ => false,
        };
        Ok(Some(Seen {
            order,
            source,
            complaint,
        }))
    }
}

/// The router's reaction (pure): a prediction at the start and after the first message, a
/// route on a hand-off. `queues` are the queues as the read model lists them.
pub fn react(
    intents: &IntentModel,
    queues: &[QueueRow],
    given: &Given<'_>,
    event: &Event,
    seen: Option<Seen>,
) -> Vec<Intent> {
    let Some(seen) = seen else {
        return Vec::new();
    };
    let conv = given.conversation;
    match event {
        Event::Conversation(ConversationEvent::ConversationStarted(_)) => {
            vec![predict(intents, given, None, &seen)]
        }
        Event::Conversation(ConversationEvent::CustomerTurnRecorded(turn)) => {
            // Only the first message refines the prediction; later ones are the
            // conversation, not the request.
            let first = conv.turns.iter().find(|t| t.speaker == Speaker::Customer);
            if first.is_some_and(|t| t.message == turn.message) {
                vec![predict(intents, given, Some(&turn.text), &seen)]
            } else {
                Vec::new()
            }
        }
        Event::Conversation(ConversationEvent::HandedToHuman(_)) => {
            route(queues, given, &seen).into_iter().collect()
        }
        _ => Vec::new(),
    }
}

fn predict(intents: &IntentModel, given: &Given<'_>, text: Option<&str>, seen: &Seen) -> Intent {
    let mut prediction = match text {
        None => scenario::prior(seen.order.as_ref()),
        Some(t) => scenario::combine(&intents.classify(t), intents.version(), seen.order.as_ref()),
    };
    prediction.features.insert(
        "order_gateway".into(),
        serde_json::json!(seen.source.code()),
    );
    Intent::Conversation(vec![C::PredictScenario {
        candidates: prediction.candidates,
        // Model versions are codes in the log (letters, digits and - _ . : /); the
        // combined model names both of its parts.
        model_version: prediction.model_version.replace('+', ":"),
        features: prediction.features,
        at: given.now,
    }])
}

fn route(queues: &[QueueRow], given: &Given<'_>, seen: &Seen) -> Option<Intent> {
    let conv = given.conversation;
    let predicted = conv.scenario.as_ref().and_then(|s| {
        s.settled
            .clone()
            .or_else(|| s.candidates.first().map(|c| c.scenario.clone()))
    });
    let scenario = if seen.complaint {
        ScenarioCode::new(COMPLAINT)
    } else {
        predicted.unwrap_or_else(|| ScenarioCode::new("other"))
    };
    // Without the gateway, the order the conversation carries still names the seller,
    // whose team must answer.
    let route = scenario::route(
        &scenario,
        seen.order.clone().or_else(|| facts(conv)).as_ref(),
    );
    let Some((queue, fallback)) = pick_queue(&route, queues) else {
        tracing::warn!(conversation = %conv.id, ?route, "no queue serves this route; it waits for a supervisor");
        return None;
    };
    let mut reasons = route.reasons.clone();
    if seen.complaint {
        reasons.push(RoutingReason::Other {
            code: "customer_asked_complaint".into(),
        });
    }
    if fallback {
        reasons.push(RoutingReason::Fallback);
    }
    reasons.extend(seen.source.reason());
    let features = Features::from([
        ("scenario".to_owned(), serde_json::json!(scenario.as_str())),
        (
            "service".to_owned(),
            serde_json::json!(route.service.as_str()),
        ),
        (
            "business_line".to_owned(),
            serde_json::json!(kefu_projections::view::seller(&route.business_line)),
        ),
        (
            "category".to_owned(),
            serde_json::json!(route.category.as_ref().map(|c| c.as_str())),
        ),
        (
            "queues_considered".to_owned(),
            serde_json::json!(queues.len()),
        ),
        (
            "order_gateway".to_owned(),
            serde_json::json!(seen.source.code()),
        ),
    ]);
    Some(Intent::Route {
        queue,
        reasons,
        model_version: route.model_version,
        features,
        at: given.now,
    })
}

/// The router's text intent classifier, trained on `bot/data/intents-train.jsonl`.
///
/// Trained once per process and cloned for each router: the training is deterministic (the
/// same examples and parameters give the same model), and it is the largest part of starting
/// a router, which a what-if replay does for every run.
pub fn intent_model() -> Result<IntentModel, WorkerError> {
    static MODEL: std::sync::LazyLock<Result<IntentModel, String>> =
        std::sync::LazyLock::new(|| {
            let examples: Vec<Labelled> = parse_jsonl(TRAINING).map_err(|e| e.to_string())?;
            IntentModel::train(&examples, &IntentParams::default()).map_err(|e| e.to_string())
        });
    MODEL.clone().map_err(|reason| {
        WorkerError::Command(CommandError::Rejected(
            kefu_domain::DomainError::Validation {
                field: "router model",
                reason,
            },
        ))
    })
}

/// The order facts of what the conversation itself knows of its order (as it stood when the
/// chat began): enough to route by seller and category when the gateway is not there.
fn facts(conv: &Conversation) -> Option<OrderFacts> {
    conv.order.as_ref().map(|o| OrderFacts {
        status: o.status,
        seller: o.seller.clone(),
        category: o.category.clone(),
        // The conversation carries the order's status, not when it changed.
        days_in_status: 0,
        open_refund: false,
    })
}

/// The queue for a route: same business line (required), then the one whose skills name the
/// service type and whose categories hold the route's category, then the higher priority.
/// The flag says no queue matched beyond the business line (a fallback).
pub fn pick_queue(route: &Route, queues: &[QueueRow]) -> Option<(QueueId, bool)> {
    let line = kefu_projections::view::seller(&route.business_line);
    let service = route.service.as_str();
    queues
        .iter()
        .filter(|q| !q.retired && q.business_line == line)
        .filter_map(|q| {
            let skills: Vec<String> = serde_json::from_str(&q.skills).unwrap_or_default();
            let categories: Vec<String> = serde_json::from_str(&q.categories).unwrap_or_default();
            let score = 2 * i64::from(skills.iter().any(|s| s == service))
                + i64::from(
                    route
                        .category
                        .as_ref()
                        .is_some_and(|c| categories.iter().any(|x| x == c.as_str())),
                );
            let id = q.id.parse::<Uuid>().ok()?;
            Some((score, -q.priority, QueueId::from_uuid(id)))
        })
        .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
        .map(|(score, _, id)| (id, score == 0))
}

impl<L: EventLog> Reactor for Router<L> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn react(&mut self, events: &[RecordedEvent]) -> Result<(), WorkerError> {
        let work = Triage::<L>::work(events);
        if work.is_empty() {
            return Ok(());
        }
        // The queues as the read model lists them, once for the batch's hand-offs.
        let queues: Vec<QueueRow> = if Triage::<L>::needs_queues(&work) {
            let view = self.models.live(kefu_projections::queues::NAME).await?;
            view.queue_counts(0)
                .await?
                .into_iter()
                .map(|q| q.queue)
                .collect()
        } else {
            Vec::new()
        };
        self.triage.react(work, &queues).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_bot::scenario::ServiceType;
    use kefu_domain::common::BusinessLine;
    use kefu_domain::ids::{Category, MerchantId};

    fn queue(
        id: u128,
        line: &str,
        skills: &[&str],
        categories: &[&str],
        priority: i64,
    ) -> QueueRow {
        QueueRow {
            id: Uuid::from_u128(id).to_string(),
            name: format!("q{id}"),
            business_line: line.into(),
            categories: serde_json::to_string(categories).unwrap(),
            skills: serde_json::to_string(skills).unwrap(),
            priority,
            first_response_secs: 60,
            resolution_secs: 600,
            retired: false,
        }
    }

    fn route(line: BusinessLine, service: ServiceType, category: Option<&str>) -> Route {
        Route {
            business_line: line,
            category: category.map(Category::new),
            service,
            reasons: vec![],
            model_version: "test".into(),
        }
    }

    #[test]
    fn the_business_line_decides_then_service_and_category() {
        let queues = [
            queue(1, "self_operated", &["logistics"], &["phones"], 5),
            queue(2, "self_operated", &["after-sales"], &["phones"], 5),
            queue(3, "merchant:m-1", &["after-sales"], &[], 5),
            queue(4, "self_operated", &["after-sales"], &["laptops"], 1),
        ];
        let id = |n: u128| QueueId::from_uuid(Uuid::from_u128(n));
        let r = route(
            BusinessLine::SelfOperated,
            ServiceType::AfterSales,
            Some("phones"),
        );
        assert_eq!(pick_queue(&r, &queues), Some((id(2), false)));
        let r = route(
            BusinessLine::SelfOperated,
            ServiceType::AfterSales,
            Some("tvs"),
        );
        assert_eq!(
            pick_queue(&r, &queues),
            Some((id(4), false)),
            "the higher priority of two"
        );
        let r = route(
            BusinessLine::Merchant {
                merchant: MerchantId::new("m-1"),
            },
            ServiceType::Logistics,
            None,
        );
        assert_eq!(
            pick_queue(&r, &queues),
            Some((id(3), true)),
            "the merchant's own, as a fallback"
        );
        let r = route(
            BusinessLine::Merchant {
                merchant: MerchantId::new("m-2"),
            },
            ServiceType::Logistics,
            None,
        );
        assert_eq!(
            pick_queue(&r, &queues),
            None,
            "never another merchant's team"
        );
    }
}
