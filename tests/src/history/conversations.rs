//! One conversation from the customer's first tap to the survey: the customer's requests,
//! and the bot, triage, router, assigner and timers reacting to them.
//!
//! Each conversation draws its script when it starts (scenario, mood, how many rounds with
//! the bot, whether and why it ends up with a human) and plays it out as steps scheduled at
//! simulated times. Steps carry the conversation's epoch: whatever moves the conversation on
//! (an assignment, a close) bumps it, so a timer set for an earlier phase (a customer's
//! patience in the queue) is dropped when it fires.

use chrono::{DateTime, Duration, Utc};
use kefu_domain::common::{BusinessLine, Channel, Money, Party};
use kefu_domain::conversation::{
    AnswerCandidate, BotAnswerInput, CloseReason, ConversationCommand as C, ConversationDecider,
    ConversationState, EmotionLabel, HandoffReason, MAX_SUGGESTIONS, RoutingReason,
    ScenarioCandidate, Speaker, SuggestionInput, TransferTarget,
};
use kefu_domain::customer::{CustomerCommand, CustomerState, CustomerTier, OrderStatus};
use kefu_domain::ids::{Category, ConversationId, CustomerId, Locale, MessageId, ScenarioCode};
use kefu_domain::knowledge::KnowledgeState;
use kefu_domain::ticket::{TicketKind, TicketOrigin, TicketPriority};
use kefu_eventlog::{Actor, ActorKind, Metadata};
use rand::Rng;

use super::HistoryError;
use super::arrivals::exponential;
use super::engine::{Action, Engine, WaitKey};
use super::staff::Team;
use super::stream::{Cause, Stream};
use super::texts::{
    AGENT_CHECKING, AGENT_GREETINGS, AGENT_PROGRESS, AGENT_SOOTHING, AGENT_TICKET_NOTICE,
    AGENT_WRAP_UP, ANGRY_PREFIXES, ANGRY_SUFFIXES, ASK_FOR_HUMAN, BOT_CLOSED_QUEUE, BOT_GOODBYE,
    BOT_NO_ANSWER, BOT_PREFIXES, Bi, CONTACT_DETAILS, EMAIL_DOMAINS, GENERIC_FOLLOW_UPS,
    INTERNAL_NOTES, Lang, MERCHANTS, PRODUCT_CATEGORIES, REOPEN_LINES, SCENARIOS, STILL_UNCLEAR,
    SURVEY_COMPLAINTS, SURVEY_PRAISE, THANKS, TICKET_DESCRIPTIONS, TOPICS,
    TRANSFER_TO_AGENT_REASONS, TRANSFER_TO_QUEUE_REASONS, WAITING_PINGS, pick_lang, scenario_index,
};
use super::tickets::NewTicket;
use super::world::{CustomerSim, OrderSim, QueueRole, category_index, kb_group};

const EMOTION_MODEL: &str = "emo-2025.02";
const TRIAGE_MODEL: &str = "triage-2025.02";
const ROUTER_MODEL: &str = "router-2025.02";
const FAQ_MODEL: &str = "faq-2025.02";
/// Idle timeouts the timer worker applies: longer with the bot, where customers read FAQ
/// answers, than with an agent.
const BOT_IDLE_SECS: u32 = 600;
const AGENT_IDLE_SECS: u32 = 300;

#[derive(Debug, Clone)]
pub(crate) enum Step {
    Settle,
    CustomerTurn,
    BotEnding(BotEnding),
    CustomerClose(CloseReason),
    IdleTimeout(u32),
    WaitPing,
    Abandon,
    AgentTurn,
    AgentCustomerTurn,
    AgentClose(CloseReason),
    SurveyAnswer,
    AttributeOrder,
    Reopen,
    QaNote,
    /// The SLA timer's warning (false) or breach (true) of the first-response target.
    FirstResponseSla(bool),
    SurveyReminder,
}

impl Step {
    /// Follow-ups happen after the close whatever else the conversation does.
    fn is_follow_up(&self) -> bool {
        matches!(
            self,
            Step::SurveyAnswer
                | Step::AttributeOrder
                | Step::Reopen
                | Step::QaNote
                | Step::SurveyReminder
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BotEnding {
    /// The customer says thanks and closes the chat.
    Thanks,
    /// The customer says that is all, and the bot says goodbye and closes it.
    BotCloses,
    CustomerLeft,
    Idle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Contained(BotEnding),
    Handoff(HandoffReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AgentEnding {
    Resolved,
    CustomerLeft,
    Idle,
    Ticket,
    Spam,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Confident,
    Unsure,
    Poor,
}

/// A conversation waiting in a queue.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub key: WaitKey,
    /// The `ConversationQueued` event: what the assigner reacts to.
    pub cause: Cause,
    pub since: DateTime<Utc>,
}

pub(crate) struct ConvSim {
    pub id: ConversationId,
    pub stream: Stream<ConversationDecider>,
    customer: usize,
    lang: Lang,
    vip: bool,
    channel: Channel,
    scenario: usize,
    order: Option<usize>,
    order_status: Option<OrderStatus>,
    merchant: Option<usize>,
    product: usize,
    item: usize,
    amount_fen: i64,
    /// The customer's mood, -1 to 1; emotion scores scatter around it.
    mood: f64,
    epoch: u32,
    bot_enabled: bool,
    predicted_at_start: bool,
    top_scenario: Option<(usize, f64)>,
    settled: bool,
    round: u8,
    rounds: u8,
    outcome: Outcome,
    last_bot_unsure: bool,
    reopened: bool,
    handed: bool,
    /// Skills an agent needs for the queue the conversation is in.
    pub need: u32,
    queue: Option<usize>,
    pub queued: Option<Queued>,
    pub waited_secs: u64,
    abandoned: bool,
    agent: Option<usize>,
    last_agent: Option<usize>,
    agent_round: u8,
    agent_rounds: u8,
    agent_ending: AgentEnding,
    note_round: Option<u8>,
    transfer_round: Option<u8>,
    negative: bool,
    /// Templates already used, so nobody repeats themselves word for word.
    said: Vec<&'static str>,
    survey_offered: bool,
    /// The `SurveyOffered` event: what a survey reminder reacts to.
    survey_offer: Option<Cause>,
    attribution_planned: bool,
    followups: u8,
}

impl ConvSim {
    fn is_closed(&self) -> bool {
        matches!(&self.stream.state, ConversationState::Started(c) if c.is_closed())
    }

    fn last_activity(&self) -> DateTime<Utc> {
        match &self.stream.state {
            ConversationState::Started(c) => c.last_activity_at,
            ConversationState::NotStarted => self.stream.last_at,
        }
    }

    fn has_customer_turn(&self) -> bool {
        match &self.stream.state {
            ConversationState::Started(c) => c
                .turns
                .iter()
                .any(|t| t.speaker == kefu_domain::conversation::Speaker::Customer),
            ConversationState::NotStarted => false,
        }
    }
}

fn weighted<T: Copy>(rng: &mut impl Rng, items: &[(T, f64)]) -> T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut u = rng.random::<f64>() * total;
    for (item, w) in items {
        if u < *w {
            return *item;
        }
        u -= w;
    }
    items[items.len() - 1].0
}

fn label_of(score: f64) -> EmotionLabel {
    match score {
        s if s >= 0.35 => EmotionLabel::Positive,
        s if s > -0.3 => EmotionLabel::Neutral,
        s if s > -0.65 => EmotionLabel::Negative,
        _ => EmotionLabel::Angry,
    }
}

/// Scenario weights given the order's status, or without an order.
fn scenario_prior(status: Option<OrderStatus>) -> &'static [(&'static str, f64)] {
    match status {
        Some(OrderStatus::Paid) => &[
            ("change-address", 0.22),
            ("urge-shipment", 0.3),
            ("invoice-request", 0.1),
            ("double-charge", 0.1),
            ("coupon-not-applied", 0.12),
            ("price-protection", 0.16),
        ],
        Some(OrderStatus::Shipped) => &[
            ("where-is-my-parcel", 0.45),
            ("delivery-delayed", 0.33),
            ("change-address", 0.1),
            ("invoice-request", 0.06),
            ("price-protection", 0.06),
        ],
        Some(OrderStatus::Delivered) => &[
            ("return-request", 0.24),
            ("return-pickup", 0.1),
            ("warranty-repair", 0.13),
            ("damaged-on-arrival", 0.13),
            ("invoice-request", 0.12),
            ("invoice-correction", 0.05),
            ("price-protection", 0.1),
            ("where-is-my-parcel", 0.08),
            ("coupon-not-applied", 0.05),
        ],
        Some(OrderStatus::Returned) => &[
            ("refund-progress", 0.6),
            ("return-pickup", 0.2),
            ("refund-not-received", 0.2),
        ],
        Some(OrderStatus::Refunded) => &[
            ("refund-not-received", 0.55),
            ("refund-progress", 0.25),
            ("invoice-correction", 0.2),
        ],
        None => &[
            ("login-problem", 0.2),
            ("change-phone", 0.14),
            ("payment-failed", 0.24),
            ("coupon-not-applied", 0.24),
            ("invoice-request", 0.1),
            ("price-protection", 0.08),
        ],
    }
}

/// The SLA timer's warning fraction and the survey reminder's delay, as `kefu serve`'s defaults.
const SLA_WARNING_FRACTION: f64 = kefu_domain::conversation::DEFAULT_SLA_WARNING_FRACTION;
const SURVEY_REMINDER_SECS: u32 = 24 * 3600;

impl Engine {
    fn millis(&mut self, lo_secs: f64, hi_secs: f64) -> Duration {
        let ms = self.rng().random_range(lo_secs * 1000.0..hi_secs * 1000.0);
        Duration::milliseconds(ms as i64)
    }

    fn later(&mut self, conv: &ConvSim, after: Duration, step: Step) {
        let at = self.sink.now + after;
        self.at(conv, at, step);
    }

    fn at(&mut self, conv: &ConvSim, at: DateTime<Utc>, step: Step) {
        self.schedule(
            at,
            Action::Conversation {
                id: conv.id,
                epoch: conv.epoch,
                step,
            },
        );
    }

    fn customer_id(&self, c: usize) -> CustomerId {
        self.customers[c]
            .as_ref()
            .map_or(CustomerId::from(uuid::Uuid::nil()), |s| s.stream.id)
    }

    fn customer_request(&mut self, conv: &ConvSim) -> Metadata {
        let actor = Actor::new(
            ActorKind::Customer,
            self.customer_id(conv.customer).to_string(),
        );
        let traced = conv.channel != Channel::Ivr;
        self.sink.request(actor, traced)
    }

    fn agent_request_for(&mut self, a: usize) -> Metadata {
        let actor = self.agents[a].actor();
        self.sink.request(actor, false)
    }

    // ---- arrival ----

    pub(crate) fn arrival(&mut self) -> Result<(), HistoryError> {
        if let Some(next) = self.next_arrival() {
            self.schedule(next, Action::Arrival);
        }
        let now = self.sink.now;
        let n = self.customers.len() as f64;
        // A few customers contact the desk again and again; most once.
        let c = ((self.rng().random::<f64>().powi(2) * n) as usize).min(self.customers.len() - 1);
        let channel = weighted(
            self.rng(),
            &[
                (Channel::App, 0.55),
                (Channel::Web, 0.2),
                (Channel::Pc, 0.15),
                (Channel::Ivr, 0.1),
            ],
        );
        if self.customers[c].is_none() {
            self.customers[c] = Some(self.new_customer(now)?);
        }
        let customer_id = self.customer_id(c);
        let request = self.sink.request(
            Actor::new(ActorKind::Customer, customer_id.to_string()),
            channel != Channel::Ivr,
        );
        // The entry point asks the shop's gateway for the customer's profile and orders
        // before the chat opens: part of the same request.
        let gateway = Metadata {
            actor: Actor::system("shop-gateway"),
            ..request.clone()
        };
        self.sync_customer(c, &gateway, now)?;
        let (order, status) = self.choose_order(c, &gateway, now)?;
        let durable = order
            .and_then(|o| {
                self.customers[c]
                    .as_ref()
                    .map(|s| PRODUCT_CATEGORIES[s.orders[o].product].durable)
            })
            .unwrap_or(true);
        let prior: Vec<(&str, f64)> = scenario_prior(status)
            .iter()
            .copied()
            .filter(|(code, _)| durable || *code != "warranty-repair")
            .collect();
        let code = weighted(self.rng(), &prior);
        let scenario = scenario_index(code).unwrap_or(0);
        let customer = self.customers[c]
            .as_ref()
            .ok_or_else(|| missing("customer"))?;
        let lang = customer.lang();
        let vip = customer.tier == CustomerTier::Vip;
        let (merchant, product, item, amount_fen, order_id) = match order {
            Some(o) => {
                let sim = &customer.orders[o];
                (
                    sim.merchant,
                    sim.product,
                    sim.item,
                    sim.total_fen,
                    Some(sim.id.clone()),
                )
            }
            None => {
                let product = self.rng().random_range(0..PRODUCT_CATEGORIES.len());
                let item = self
                    .rng()
                    .random_range(0..PRODUCT_CATEGORIES[product].products.len());
                let amount = self.rng().random_range(1_000..50_000);
                (None, product, item, amount, None)
            }
        };
        let snapshot = self.customers[c]
            .as_ref()
            .ok_or_else(|| missing("customer"))?
            .stream
            .state
            .snapshot(customer_id);
        let id = ConversationId::from(self.sink.mint(now));
        let bot_enabled = !self.bot_switched_off(now);
        let mood = match self.rng().random::<f64>() {
            u if u < 0.72 => 0.1,
            u if u < 0.92 => -0.4,
            _ => -0.78,
        } + 0.1 * super::arrivals::normal(self.rng());
        let mut conv = ConvSim {
            id,
            stream: Stream::new(id)?,
            customer: c,
            lang,
            vip,
            channel,
            scenario,
            order,
            order_status: status,
            merchant,
            product,
            item,
            amount_fen,
            mood: mood.clamp(-1.0, 1.0),
            epoch: 0,
            bot_enabled,
            predicted_at_start: false,
            top_scenario: None,
            settled: false,
            round: 0,
            rounds: 1,
            outcome: Outcome::Contained(BotEnding::Idle),
            last_bot_unsure: false,
            reopened: false,
            handed: false,
            need: 0,
            queue: None,
            queued: None,
            waited_secs: 0,
            abandoned: false,
            agent: None,
            last_agent: None,
            agent_round: 0,
            agent_rounds: 0,
            agent_ending: AgentEnding::Resolved,
            note_round: None,
            transfer_round: None,
            negative: false,
            said: Vec::new(),
            survey_offered: false,
            survey_offer: None,
            attribution_planned: false,
            followups: 0,
        };
        let started = self.sink.run(
            &mut conv.stream,
            "ConversationCommand::Start",
            now,
            &request,
            |at| C::Start {
                conversation: id,
                customer: snapshot,
                channel,
                order: order_id,
                bot_enabled,
                at,
            },
        )?;
        let Some(first) = started.first().cloned() else {
            return Err(missing("ConversationStarted"));
        };
        if status.is_some() {
            let at = now + Duration::milliseconds(250);
            self.predict(&mut conv, &first, at)?;
            conv.predicted_at_start = true;
        }
        if let Some(handed) = started.get(1) {
            // The degradation switch is on: straight to a human.
            self.mark_handed(&mut conv);
            match self.route_target(&conv, now) {
                Some((q, reasons)) => {
                    let at = now + Duration::milliseconds(300);
                    self.route_and_enqueue(&mut conv, q, reasons, handed, at)?;
                    if !conv.has_customer_turn() && conv.queued.is_some() {
                        let after = self.millis(8.0, 30.0);
                        self.later(&conv, after, Step::WaitPing);
                    }
                }
                None => {
                    let after = self.millis(60.0, 240.0);
                    self.later(&conv, after, Step::CustomerClose(CloseReason::CustomerLeft));
                }
            }
        } else {
            self.plan_bot(&mut conv);
            if conv.predicted_at_start && self.chance(0.6) {
                let after = self.millis(3.0, 15.0);
                self.later(&conv, after, Step::Settle);
            } else {
                let after = self.millis(6.0, 40.0);
                self.later(&conv, after, Step::CustomerTurn);
            }
        }
        self.convs.insert(id, conv);
        Ok(())
    }

    fn plan_bot(&mut self, conv: &mut ConvSim) {
        let scenario = &SCENARIOS[conv.scenario];
        let mut contain = scenario.containable;
        if conv.mood < -0.6 {
            contain -= 0.3;
        } else if conv.mood < -0.25 {
            contain -= 0.12;
        }
        let rounds = |engine: &mut Engine, weights: &[(u8, f64)]| weighted(engine.rng(), weights);
        if conv.vip && self.chance(0.75) {
            conv.outcome = Outcome::Handoff(HandoffReason::Vip);
            conv.rounds = 1;
        } else if self.chance(contain) {
            let ending = weighted(
                self.rng(),
                &[
                    (BotEnding::Thanks, 0.35),
                    (BotEnding::BotCloses, 0.2),
                    (BotEnding::CustomerLeft, 0.2),
                    (BotEnding::Idle, 0.25),
                ],
            );
            conv.outcome = Outcome::Contained(ending);
            conv.rounds = rounds(self, &[(1, 0.5), (2, 0.35), (3, 0.15)]);
        } else {
            let reason = if conv.mood < -0.6 {
                weighted(
                    self.rng(),
                    &[
                        (HandoffReason::NegativeEmotion, 0.6),
                        (HandoffReason::CustomerAsked, 0.4),
                    ],
                )
            } else {
                weighted(
                    self.rng(),
                    &[
                        (HandoffReason::LowConfidence, 0.45),
                        (HandoffReason::CustomerAsked, 0.45),
                        (HandoffReason::NegativeEmotion, 0.1),
                    ],
                )
            };
            conv.outcome = Outcome::Handoff(reason);
            conv.rounds = match reason {
                HandoffReason::CustomerAsked => rounds(self, &[(1, 0.35), (2, 0.45), (3, 0.2)]),
                _ => rounds(self, &[(1, 0.4), (2, 0.4), (3, 0.2)]),
            };
        }
    }

    // ---- steps ----

    pub(crate) fn conversation_step(
        &mut self,
        id: ConversationId,
        epoch: u32,
        step: Step,
    ) -> Result<(), HistoryError> {
        let Some(mut conv) = self.convs.remove(&id) else {
            return Ok(());
        };
        let follow_up = step.is_follow_up();
        if !follow_up && conv.epoch != epoch {
            self.convs.insert(id, conv);
            return Ok(());
        }
        let result = self.run_step(&mut conv, step);
        if follow_up {
            conv.followups = conv.followups.saturating_sub(1);
        }
        // Nothing more will happen to a closed conversation without follow-ups: forget it,
        // so memory stays bounded by the conversations in flight.
        if !(conv.is_closed() && conv.followups == 0) {
            self.convs.insert(id, conv);
        }
        result
    }

    fn run_step(&mut self, conv: &mut ConvSim, step: Step) -> Result<(), HistoryError> {
        match step {
            Step::Settle => self.settle(conv),
            Step::CustomerTurn => self.bot_round(conv),
            Step::BotEnding(ending) => self.bot_ending(conv, ending),
            Step::CustomerClose(reason) => {
                let meta = self.customer_request(conv);
                self.close(conv, Party::Customer, reason, &meta)
            }
            Step::IdleTimeout(secs) => self.idle_timeout(conv, secs),
            Step::WaitPing => self.wait_ping(conv),
            Step::Abandon => self.abandon(conv),
            Step::AgentTurn => self.agent_turn(conv),
            Step::AgentCustomerTurn => self.agent_phase_customer_turn(conv),
            Step::AgentClose(reason) => {
                let Some(a) = conv.agent else { return Ok(()) };
                let meta = self.agent_request_for(a);
                let agent = self.agents[a].id;
                self.close(conv, Party::Agent { agent }, reason, &meta)
            }
            Step::SurveyAnswer => self.answer_survey(conv),
            Step::AttributeOrder => self.attribute_order(conv),
            Step::Reopen => self.reopen(conv),
            Step::QaNote => self.qa_note(conv),
            Step::FirstResponseSla(breach) => self.first_response_sla(conv, breach),
            Step::SurveyReminder => self.survey_reminder(conv),
        }
    }

    /// The SLA timer, while the customer still waits in the queue: a warning at 80 % of the
    /// first-response target, a breach (and escalation) at it. Caused by the queueing. The
    /// timer only acts where the domain agrees it is due, as the real sweep does.
    fn first_response_sla(&mut self, conv: &mut ConvSim, breach: bool) -> Result<(), HistoryError> {
        let Some(queued) = conv.queued.as_ref() else {
            return Ok(());
        };
        let meta = queued.cause.metadata(Actor::system("sla"));
        let kind = kefu_domain::conversation::SlaKind::FirstResponse;
        let command = move |at| {
            if breach {
                C::BreachSla { kind, at }
            } else {
                C::WarnSla {
                    kind,
                    fraction: SLA_WARNING_FRACTION,
                    at,
                }
            }
        };
        let now = self.sink.now;
        if <ConversationDecider as kefu_domain::Decider>::decide(&conv.stream.state, command(now))
            .is_err()
        {
            return Ok(());
        }
        let name = if breach {
            "ConversationCommand::BreachSla"
        } else {
            "ConversationCommand::WarnSla"
        };
        self.sink.run(&mut conv.stream, name, now, &meta, command)?;
        Ok(())
    }

    /// One reminder of a survey still unanswered a day after the offer.
    fn survey_reminder(&mut self, conv: &mut ConvSim) -> Result<(), HistoryError> {
        conv.followups = conv.followups.saturating_sub(1);
        let command = |at| C::RemindSurvey {
            after_secs: SURVEY_REMINDER_SECS,
            at,
        };
        let now = self.sink.now;
        if <ConversationDecider as kefu_domain::Decider>::decide(&conv.stream.state, command(now))
            .is_err()
        {
            return Ok(());
        }
        let Some(offer) = conv.survey_offer.as_ref() else {
            return Ok(());
        };
        let meta = offer.metadata(Actor::system("survey-reminders"));
        self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::RemindSurvey",
            now,
            &meta,
            command,
        )?;
        Ok(())
    }

    fn settle(&mut self, conv: &mut ConvSim) -> Result<(), HistoryError> {
        if !conv.settled && !conv.is_closed() {
            let meta = self.customer_request(conv);
            let actual = ScenarioCode::from(SCENARIOS[conv.scenario].code);
            let now = self.sink.now;
            self.sink.run1(
                &mut conv.stream,
                "ConversationCommand::SettleScenario",
                now,
                &meta,
                |at| C::SettleScenario { actual, at },
            )?;
            conv.settled = true;
        }
        let after = self.millis(8.0, 35.0);
        self.later(conv, after, Step::CustomerTurn);
        Ok(())
    }

    /// The customer writes to the bot; the emotion model, triage and the bot react.
    fn bot_round(&mut self, conv: &mut ConvSim) -> Result<(), HistoryError> {
        let k = conv.round;
        conv.round += 1;
        let last = conv.round >= conv.rounds;
        let scenario = &SCENARIOS[conv.scenario];
        let template: Bi = if k == 0 && conv.reopened {
            self.pick(REOPEN_LINES)
        } else if k == 0 {
            self.pick(scenario.openers)
        } else if last && conv.outcome == Outcome::Handoff(HandoffReason::CustomerAsked) {
            self.pick(ASK_FOR_HUMAN)
        } else if conv.last_bot_unsure && self.chance(0.6) {
            self.pick_fresh(conv, &[STILL_UNCLEAR])
        } else {
            self.pick_fresh(conv, &[scenario.follow_ups])
        };
        let angry = conv.mood < -0.6
            || (last && conv.outcome == Outcome::Handoff(HandoffReason::NegativeEmotion));
        let turn = self.customer_says(conv, template, angry, true)?;
        let forced = (last && conv.outcome == Outcome::Handoff(HandoffReason::NegativeEmotion))
            .then_some(-0.45);
        let emotion = self.assess(conv, &turn, forced)?;
        let now = self.sink.now;
        if conv.top_scenario.is_none() {
            self.predict(conv, &turn, now + Duration::milliseconds(300))?;
        }
        if !last {
            let quality = if conv.outcome == Outcome::Handoff(HandoffReason::LowConfidence) {
                Answer::Unsure
            } else {
                Answer::Confident
            };
            self.bot_answers(conv, &turn, quality)?;
            if k == 0 && !conv.predicted_at_start && !conv.settled && self.chance(0.5) {
                let after = self.millis(5.0, 20.0);
                self.later(conv, after, Step::Settle);
            } else {
                let after = self.millis(15.0, 70.0);
                self.later(conv, after, Step::CustomerTurn);
            }
            return Ok(());
        }
        match conv.outcome {
            Outcome::Contained(ending) => {
                self.bot_answers(conv, &turn, Answer::Confident)?;
                self.schedule_bot_ending(conv, ending);
            }
            Outcome::Handoff(reason) => match self.route_target(conv, now) {
                Some((q, reasons)) => {
                    let cause = match reason {
                        HandoffReason::LowConfidence => {
                            self.bot_answers(conv, &turn, Answer::Poor)?
                        }
                        HandoffReason::NegativeEmotion => emotion,
                        _ => turn,
                    };
                    self.hand_off(conv, reason, &cause, q, reasons)?;
                }
                None => {
                    // Nobody can take the chat now: the bot says when the team is back, and
                    // the customer gives up.
                    let text = pick_lang(&BOT_CLOSED_QUEUE, conv.lang).to_owned();
                    self.bot_turn(conv, &turn, text, None, Vec::new())?;
                    let ending = if self.chance(0.5) {
                        BotEnding::CustomerLeft
                    } else {
                        BotEnding::Idle
                    };
                    conv.outcome = Outcome::Contained(ending);
                    self.schedule_bot_ending(conv, ending);
                }
            },
        }
        Ok(())
    }

    fn schedule_bot_ending(&mut self, conv: &ConvSim, ending: BotEnding) {
        match ending {
            BotEnding::Thanks | BotEnding::BotCloses => {
                let after = self.millis(15.0, 60.0);
                self.later(conv, after, Step::BotEnding(ending));
            }
            BotEnding::CustomerLeft => {
                let after = self.millis(15.0, 120.0);
                self.later(conv, after, Step::CustomerClose(CloseReason::CustomerLeft));
            }
            BotEnding::Idle => self.schedule_idle(conv, BOT_IDLE_SECS),
        }
    }

    fn schedule_idle(&mut self, conv: &ConvSim, secs: u32) {
        let jitter = self.millis(5.0, 60.0);
        let at =
            (conv.last_activity() + Duration::seconds(i64::from(secs)) + jitter).max(self.sink.now);
        self.at(conv, at, Step::IdleTimeout(secs));
    }

    fn bot_ending(&mut self, conv: &mut ConvSim, ending: BotEnding) -> Result<(), HistoryError> {
        let thanks = self.pick(THANKS);
        conv.mood = conv.mood.max(0.45);
        let turn = self.customer_says(conv, thanks, false, false)?;
        self.assess(conv, &turn, None)?;
        if ending == BotEnding::Thanks {
            let after = self.millis(5.0, 25.0);
            self.later(conv, after, Step::CustomerClose(CloseReason::Resolved));
            return Ok(());
        }
        let goodbye = pick_lang(&self.pick(BOT_GOODBYE), conv.lang).to_owned();
        let bot = self.bot_turn(conv, &turn, goodbye, None, Vec::new())?;
        let meta = bot.metadata(Actor::new(ActorKind::Bot, "jimi"));
        self.close(conv, Party::Bot, CloseReason::Resolved, &meta)
    }

    fn idle_timeout(&mut self, conv: &mut ConvSim, secs: u32) -> Result<(), HistoryError> {
        if conv.is_closed() {
            return Ok(());
        }
        let meta = self.sink.request(Actor::system("idle-timer"), false);
        let now = self.sink.now;
        let causes = self.sink.run(
            &mut conv.stream,
            "ConversationCommand::TimeOutIdle",
            now,
            &meta,
            |at| C::TimeOutIdle {
                idle_after_secs: secs,
                at,
            },
        )?;
        let closed = causes
            .last()
            .cloned()
            .ok_or_else(|| missing("ConversationClosed"))?;
        self.after_close(conv, &closed, CloseReason::IdleTimeout)
    }

    /// A customer in the queue writes again, or writes their question while waiting.
    fn wait_ping(&mut self, conv: &mut ConvSim) -> Result<(), HistoryError> {
        if conv.queued.is_none() {
            return Ok(());
        }
        let first = !conv.has_customer_turn();
        let template = if first {
            self.pick(SCENARIOS[conv.scenario].openers)
        } else {
            conv.mood -= 0.2;
            self.pick(WAITING_PINGS)
        };
        let turn = self.customer_says(conv, template, conv.mood < -0.6, false)?;
        self.assess(conv, &turn, None)?;
        Ok(())
    }

    fn abandon(&mut self, conv: &mut ConvSim) -> Result<(), HistoryError> {
        let Some(queued) = conv.queued.take() else {
            return Ok(());
        };
        self.waiting.remove(&queued.key);
        self.stats.abandoned += 1;
        conv.abandoned = true;
        let meta = self.customer_request(conv);
        self.close(conv, Party::Customer, CloseReason::CustomerLeft, &meta)
    }

    // ---- the bot, triage and the router ----

    fn pick(&mut self, options: &[Bi]) -> Bi {
        options[self.rng().random_range(0..options.len())]
    }

    /// A template this conversation has not used yet, if any is left.
    fn pick_fresh(&mut self, conv: &mut ConvSim, options: &[&[Bi]]) -> Bi {
        let fresh: Vec<Bi> = options
            .iter()
            .flat_map(|o| o.iter().copied())
            .filter(|t| !conv.said.contains(&t.0))
            .collect();
        let chosen = if fresh.is_empty() {
            self.pick(options[0])
        } else {
            fresh[self.rng().random_range(0..fresh.len())]
        };
        conv.said.push(chosen.0);
        chosen
    }

    /// Fills a template's slots with this conversation's details.
    fn fill(&mut self, template: &str, conv: &ConvSim) -> String {
        let mut text = template.to_owned();
        if text.contains("{order}") {
            let order = conv.order.and_then(|o| {
                self.customers[conv.customer]
                    .as_ref()
                    .map(|c| c.orders[o].id.0.clone())
            });
            text = match order {
                Some(order) => text.replace("{order}", &order),
                None => text.replace(" {order}", "").replace("{order}", ""),
            };
        }
        if text.contains("{product}") {
            let product = PRODUCT_CATEGORIES[conv.product].products[conv.item];
            text = text.replace("{product}", pick_lang(&product, conv.lang));
        }
        if text.contains("{days}") {
            let days = self.rng().random_range(2..10);
            text = text.replace("{days}", &days.to_string());
        }
        if text.contains("{amount}") {
            let amount = format!("{}.{:02}", conv.amount_fen / 100, conv.amount_fen % 100);
            text = text.replace("{amount}", &amount);
        }
        if text.contains("{agent}") {
            let name = conv
                .agent
                .map_or("", |a| self.agents[a].name.as_str())
                .to_owned();
            text = text.replace("{agent}", &name);
        }
        if let Some(customer) = self.customers[conv.customer].as_ref() {
            if text.contains("{phone}") {
                text = text.replace("{phone}", &customer.phone);
            }
            if text.contains("{email}") {
                text = text.replace("{email}", &customer.email);
            }
        }
        text
    }

    /// A customer turn as its own request, in the customer's language; angry customers
    /// shout, and now and then someone leaves a phone number or an e-mail address.
    fn customer_says(
        &mut self,
        conv: &mut ConvSim,
        template: Bi,
        angry: bool,
        may_share_contact: bool,
    ) -> Result<Cause, HistoryError> {
        let mut text = self.fill(pick_lang(&template, conv.lang), conv);
        if angry {
            let prefix = pick_lang(&self.pick(ANGRY_PREFIXES), conv.lang).to_owned();
            let suffix = ANGRY_SUFFIXES[self.rng().random_range(0..ANGRY_SUFFIXES.len())];
            let separator = if conv.lang == Lang::En && !prefix.is_empty() {
                " "
            } else {
                ""
            };
            text = format!(
                "{prefix}{separator}{}{suffix}",
                text.trim_end_matches(['？', '?', '！', '!', '。'])
            );
        }
        if may_share_contact && self.chance(0.04) {
            let contact = self.pick(CONTACT_DETAILS);
            let contact = self.fill(pick_lang(&contact, conv.lang), conv);
            let separator = if conv.lang == Lang::En { ". " } else { "，" };
            text = format!("{text}{separator}{contact}");
        }
        let meta = self.customer_request(conv);
        let now = self.sink.now;
        let message = MessageId::from(self.sink.mint(now));
        self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::RecordCustomerTurn",
            now,
            &meta,
            |at| C::RecordCustomerTurn { message, text, at },
        )
    }

    /// The emotion model scores the customer turn `turn` a moment after it arrives.
    fn assess(
        &mut self,
        conv: &mut ConvSim,
        turn: &Cause,
        at_most: Option<f64>,
    ) -> Result<Cause, HistoryError> {
        let ConversationState::Started(state) = &conv.stream.state else {
            return Err(missing("conversation state"));
        };
        let Some(message) = state.turns.last().map(|t| t.message) else {
            return Err(missing("customer turn"));
        };
        let noise = 0.18 * super::arrivals::normal(self.rng());
        let mut score = (conv.mood + noise).clamp(-1.0, 1.0);
        if let Some(limit) = at_most {
            score = score.min(limit - self.rng().random_range(0.0..0.4));
        }
        let score = (score * 1000.0).round() / 1000.0;
        let label = label_of(score);
        conv.negative |= label.is_negative();
        let at = self.sink.now + self.millis(0.2, 0.9);
        let meta = turn.metadata(Actor::system("emotion-model"));
        self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::AssessEmotion",
            at,
            &meta,
            |at| C::AssessEmotion {
                message,
                score,
                label,
                model_version: EMOTION_MODEL.into(),
                at,
            },
        )
    }

    /// Triage's top three scenarios: usually right, sometimes second, now and then wrong.
    fn predict(
        &mut self,
        conv: &mut ConvSim,
        cause: &Cause,
        at: DateTime<Utc>,
    ) -> Result<(), HistoryError> {
        let prior = scenario_prior(conv.order_status);
        let truth = conv.scenario;
        let rank = match self.rng().random::<f64>() {
            u if u < 0.66 => Some(0),
            u if u < 0.88 => Some(self.rng().random_range(1..3)),
            _ => None,
        };
        let mut others: Vec<usize> = Vec::new();
        while others.len() < 3 {
            let pool: Vec<(usize, f64)> = prior
                .iter()
                .filter_map(|(code, w)| scenario_index(code).map(|s| (s, *w)))
                .chain((0..SCENARIOS.len()).map(|s| (s, 0.01)))
                .filter(|(s, _)| *s != truth && !others.contains(s))
                .collect();
            others.push(weighted(self.rng(), &pool));
        }
        let mut ranked = others;
        if let Some(rank) = rank {
            ranked.insert(rank, truth);
        }
        ranked.truncate(3);
        let p0 = self.rng().random_range(0.45..0.85);
        let p1 = (1.0 - p0) * self.rng().random_range(0.4..0.7);
        let p2 = (1.0 - p0 - p1) * self.rng().random_range(0.3..0.8);
        let round = |p: f64| (p * 1000.0).floor() / 1000.0;
        let candidates: Vec<ScenarioCandidate> = ranked
            .iter()
            .zip([p0, p1, p2])
            .map(|(s, p)| ScenarioCandidate {
                scenario: ScenarioCode::from(SCENARIOS[*s].code),
                probability: round(p),
            })
            .collect();
        conv.top_scenario = Some((ranked[0], round(p0)));
        let meta = cause.metadata(Actor::system("triage"));
        self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::PredictScenario",
            at,
            &meta,
            |at| C::PredictScenario {
                candidates,
                model_version: TRIAGE_MODEL.into(),
                features: Default::default(),
                at,
            },
        )?;
        Ok(())
    }

    /// The bot answers `turn` from the knowledge base: with an entry of the scenario's
    /// category in the customer's language and for the order's seller, if it has one.
    fn bot_answers(
        &mut self,
        conv: &mut ConvSim,
        turn: &Cause,
        quality: Answer,
    ) -> Result<Cause, HistoryError> {
        let scenario = &SCENARIOS[conv.scenario];
        let entries = self.kb_entries_for(conv);
        conv.last_bot_unsure = quality != Answer::Confident;
        let no_answer = entries.is_empty() || (quality == Answer::Poor && self.chance(0.5));
        let relevant: Vec<usize> = entries
            .iter()
            .copied()
            .filter(|&e| TOPICS[self.kb[e].topic].scenario == Some(scenario.code))
            .collect();
        let pool = if relevant.is_empty() {
            &entries
        } else {
            &relevant
        };
        let best = (!pool.is_empty()).then(|| pool[self.rng().random_range(0..pool.len())]);
        let confidence = match quality {
            Answer::Confident => self.rng().random_range(0.78..0.97),
            Answer::Unsure => self.rng().random_range(0.55..0.75),
            Answer::Poor => self.rng().random_range(0.2..0.45),
        };
        let confidence = (confidence * 1000.0_f64).round() / 1000.0;
        let mut candidates = Vec::new();
        if let Some(best) = best {
            candidates.push(AnswerCandidate {
                entry: self.kb[best].stream.id,
                score: confidence,
            });
        }
        let mut others: Vec<usize> = entries
            .iter()
            .copied()
            .filter(|e| Some(*e) != best)
            .collect();
        while candidates.len() < 3 && !others.is_empty() {
            let e = others.swap_remove(self.rng().random_range(0..others.len()));
            let score = (confidence * self.rng().random_range(0.3..0.85) * 1000.0).round() / 1000.0;
            candidates.push(AnswerCandidate {
                entry: self.kb[e].stream.id,
                score,
            });
        }
        match best.filter(|_| !no_answer) {
            Some(best) => {
                let KnowledgeState::Active(entry) = &self.kb[best].stream.state else {
                    return Err(missing("active knowledge entry"));
                };
                let body = entry.answer.clone();
                let snapshot = self.kb[best].stream.state.snapshot(entry.id);
                let prefix = pick_lang(&self.pick(BOT_PREFIXES), conv.lang);
                let text = format!("{prefix}{body}");
                let answer = BotAnswerInput {
                    entry: snapshot,
                    confidence,
                };
                self.bot_turn(conv, turn, text, Some(answer), candidates)
            }
            None => {
                for c in &mut candidates {
                    c.score = (c.score * 0.4 * 1000.0).round() / 1000.0;
                }
                let text = pick_lang(&self.pick(BOT_NO_ANSWER), conv.lang).to_owned();
                self.bot_turn(conv, turn, text, None, candidates)
            }
        }
    }

    /// The active knowledge entries of the conversation's category and language (the seller's
    /// kind first, the other's when it has none).
    fn kb_entries_for(&self, conv: &ConvSim) -> Vec<usize> {
        let category = category_index(SCENARIOS[conv.scenario].category);
        let merchant = conv.merchant.is_some();
        let active = |group: usize| -> Vec<usize> {
            self.kb_groups[group]
                .iter()
                .copied()
                .filter(|&e| self.kb[e].active)
                .collect()
        };
        let entries = active(kb_group(category, conv.lang, merchant));
        if entries.is_empty() {
            active(kb_group(category, conv.lang, !merchant))
        } else {
            entries
        }
    }

    /// With an agent on the chat, the bot suggests up to three entries for the customer's turn
    /// to the agent instead of answering it (`SuggestAnswers`), as the bot worker does.
    fn suggest(&mut self, conv: &mut ConvSim, turn: &Cause) -> Result<(), HistoryError> {
        let ConversationState::Started(state) = &conv.stream.state else {
            return Err(missing("conversation state"));
        };
        let Some(message) = state
            .turns
            .iter()
            .rev()
            .find(|t| t.speaker == Speaker::Customer)
            .map(|t| t.message)
        else {
            return Err(missing("customer turn"));
        };
        let mut entries = self.kb_entries_for(conv);
        let mut suggestions = Vec::new();
        let mut score: f64 = self.rng().random_range(0.6..0.95);
        while suggestions.len() < MAX_SUGGESTIONS && !entries.is_empty() {
            let e = entries.swap_remove(self.rng().random_range(0..entries.len()));
            let stream = &self.kb[e].stream;
            let KnowledgeState::Active(entry) = &stream.state else {
                continue;
            };
            suggestions.push(SuggestionInput {
                entry: stream.state.snapshot(entry.id),
                score: (score * 1000.0).round() / 1000.0,
            });
            score *= self.rng().random_range(0.5..0.95);
        }
        if suggestions.is_empty() {
            return Ok(());
        }
        let confidence = (self.rng().random_range(0.2..0.9_f64) * 1000.0).round() / 1000.0;
        let at = self.sink.now + self.millis(0.3, 1.2);
        let meta = turn.metadata(Actor::new(ActorKind::Bot, "jimi"));
        self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::SuggestAnswers",
            at,
            &meta,
            |at| C::SuggestAnswers {
                message,
                suggestions,
                confidence,
                model_version: FAQ_MODEL.into(),
                at,
            },
        )?;
        Ok(())
    }

    fn bot_turn(
        &mut self,
        conv: &mut ConvSim,
        cause: &Cause,
        text: String,
        answer: Option<BotAnswerInput>,
        candidates: Vec<AnswerCandidate>,
    ) -> Result<Cause, HistoryError> {
        let at = self.sink.now + self.millis(0.8, 2.2);
        let message = MessageId::from(self.sink.mint(at));
        let meta = cause.metadata(Actor::new(ActorKind::Bot, "jimi"));
        self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::RecordBotTurn",
            at,
            &meta,
            |at| C::RecordBotTurn {
                message,
                text,
                answer,
                candidates,
                at,
            },
        )
    }

    fn mark_handed(&mut self, conv: &mut ConvSim) {
        if !conv.handed {
            conv.handed = true;
            self.stats.handed_over += 1;
        }
    }

    /// The queue triage sends the conversation to, and why; `None` when the queue it must
    /// go to is closed (a merchant's team outside its hours).
    fn route_target(
        &self,
        conv: &ConvSim,
        at: DateTime<Utc>,
    ) -> Option<(usize, Vec<RoutingReason>)> {
        if let Some(m) = conv.merchant {
            let q = self.merchant_queue[m];
            let seller = super::world::merchant_line(m);
            return self.queues[q]
                .is_open(at)
                .then(|| (q, vec![RoutingReason::OrderSeller { seller }]));
        }
        let by_role = |role: QueueRole| {
            self.queues
                .iter()
                .position(|q| q.role == role && !q.retired)
        };
        let general = by_role(QueueRole::General)?;
        if conv.vip {
            let q = by_role(QueueRole::Vip).unwrap_or(general);
            return Some((
                q,
                vec![RoutingReason::CustomerTier {
                    tier: CustomerTier::Vip,
                }],
            ));
        }
        let english = by_role(QueueRole::English).filter(|&q| self.queues[q].is_open(at));
        if let Some(q) = english.filter(|_| conv.lang == Lang::En) {
            return Some((
                q,
                vec![RoutingReason::Other {
                    code: "locale:en".into(),
                }],
            ));
        }
        let (scenario, confident) = match (conv.settled, conv.top_scenario) {
            (true, _) => (conv.scenario, true),
            (false, Some((s, p))) => (s, p >= 0.5),
            (false, None) => return Some((general, vec![RoutingReason::Fallback])),
        };
        if !confident {
            return Some((general, vec![RoutingReason::Fallback]));
        }
        let code = SCENARIOS[scenario].code;
        let category = SCENARIOS[scenario].category;
        let mut reasons = vec![
            RoutingReason::Scenario {
                scenario: ScenarioCode::from(code),
            },
            RoutingReason::Category {
                category: Category::from(category),
            },
        ];
        if conv.order.is_some() {
            reasons.push(RoutingReason::OrderSeller {
                seller: BusinessLine::SelfOperated,
            });
        }
        let specialist = self.queues.iter().position(|q| {
            q.role == QueueRole::Specialist && q.categories.contains(&category) && q.is_open(at)
        });
        match specialist {
            Some(q) => Some((q, reasons)),
            None => {
                reasons.truncate(1);
                reasons.push(RoutingReason::Other {
                    code: "primary-queue-closed".into(),
                });
                Some((general, reasons))
            }
        }
    }

    fn hand_off(
        &mut self,
        conv: &mut ConvSim,
        reason: HandoffReason,
        cause: &Cause,
        q: usize,
        reasons: Vec<RoutingReason>,
    ) -> Result<(), HistoryError> {
        let at = self.sink.now + self.millis(1.0, 2.5);
        let meta = cause.metadata(Actor::new(ActorKind::Bot, "jimi"));
        let handed = self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::HandOff",
            at,
            &meta,
            |at| C::HandOff { reason, at },
        )?;
        self.mark_handed(conv);
        self.route_and_enqueue(conv, q, reasons, &handed, at)
    }

    fn route_and_enqueue(
        &mut self,
        conv: &mut ConvSim,
        q: usize,
        reasons: Vec<RoutingReason>,
        cause: &Cause,
        at: DateTime<Utc>,
    ) -> Result<(), HistoryError> {
        let router = Actor::system("router");
        let snapshot = self.queues[q]
            .stream
            .state
            .snapshot(self.queues[q].stream.id);
        let routed = self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::Route",
            at,
            &cause.metadata(router.clone()),
            |at| C::Route {
                queue: snapshot.clone(),
                reasons,
                model_version: ROUTER_MODEL.into(),
                features: Default::default(),
                at,
            },
        )?;
        let queued = self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::Enqueue",
            at,
            &routed.metadata(router),
            |at| C::Enqueue {
                queue: snapshot,
                at,
            },
        )?;
        self.wait_in_queue(conv, q, queued, at, None)
    }

    /// The conversation waits in queue `q` until an agent is free or the customer gives up.
    fn wait_in_queue(
        &mut self,
        conv: &mut ConvSim,
        q: usize,
        queued: Cause,
        at: DateTime<Utc>,
        except: Option<usize>,
    ) -> Result<(), HistoryError> {
        let priority = match &self.queues[q].stream.state {
            kefu_domain::queue::QueueState::Active(queue)
            | kefu_domain::queue::QueueState::Retired(queue) => {
                if conv.vip {
                    queue.priority.saturating_sub(1).max(1)
                } else {
                    queue.priority
                }
            }
            kefu_domain::queue::QueueState::Undefined => kefu_domain::queue::LOWEST_PRIORITY,
        };
        self.wait_seq += 1;
        let key = (priority, at, self.wait_seq);
        conv.need = self.queues[q].skills;
        conv.queue = Some(q);
        conv.queued = Some(Queued {
            key,
            cause: queued,
            since: at,
        });
        conv.epoch += 1;
        self.waiting.insert(key, conv.id);
        let mut patience = 45.0 + exponential(self.rng(), 420.0);
        if conv.vip {
            patience *= 1.5;
        }
        let patience = Duration::milliseconds((patience * 1000.0) as i64);
        self.at(conv, at + patience, Step::Abandon);
        if let kefu_domain::queue::QueueState::Active(queue) = &self.queues[q].stream.state {
            let target = Duration::seconds(i64::from(queue.sla.first_response_secs));
            let warn = Duration::milliseconds(
                (target.num_milliseconds() as f64 * SLA_WARNING_FRACTION).ceil() as i64,
            );
            self.at(conv, at + warn, Step::FirstResponseSla(false));
            self.at(conv, at + target, Step::FirstResponseSla(true));
        }
        if patience > Duration::minutes(2) && self.chance(0.4) {
            let ping = patience.num_milliseconds() as f64 * self.rng().random_range(0.3..0.7);
            self.at(
                conv,
                at + Duration::milliseconds(ping as i64),
                Step::WaitPing,
            );
        }
        if let Some(a) = self.best_agent(conv.need, except) {
            self.assign(conv, a)?;
        }
        Ok(())
    }

    // ---- with an agent ----

    pub(crate) fn begin_agent_phase(
        &mut self,
        conv: &mut ConvSim,
        a: usize,
        at: DateTime<Utc>,
    ) -> Result<(), HistoryError> {
        let first_agent = conv.last_agent.is_none() || (conv.reopened && conv.agent_rounds == 0);
        conv.agent = Some(a);
        conv.last_agent = Some(a);
        conv.epoch += 1;
        conv.agent_round = 0;
        if conv.waited_secs > 180 {
            conv.mood -= 0.2;
        }
        if first_agent {
            conv.agent_rounds = weighted(self.rng(), &[(2, 0.25), (3, 0.3), (4, 0.25), (5, 0.2)]);
            let ticket_share = match SCENARIOS[conv.scenario].category {
                "refunds" | "warranty" | "returns" => 0.16,
                "shipping" | "delays" => 0.1,
                _ => 0.07,
            };
            conv.agent_ending = weighted(
                self.rng(),
                &[
                    (AgentEnding::Resolved, 0.66),
                    (AgentEnding::CustomerLeft, 0.12),
                    (AgentEnding::Idle, 0.12),
                    (AgentEnding::Ticket, ticket_share),
                    (AgentEnding::Spam, 0.008),
                ],
            );
            conv.note_round = self
                .chance(0.12)
                .then(|| self.rng().random_range(0..conv.agent_rounds));
            conv.transfer_round = (conv.agent_rounds >= 3 && self.chance(0.08))
                .then(|| self.rng().random_range(1..conv.agent_rounds - 1));
        } else {
            conv.agent_rounds = weighted(self.rng(), &[(1, 0.3), (2, 0.4), (3, 0.3)]);
            conv.transfer_round = None;
            conv.note_round = None;
            if conv.agent_ending == AgentEnding::Spam {
                conv.agent_ending = AgentEnding::Resolved;
            }
        }
        let first_response = self.millis(5.0, 45.0);
        self.at(conv, at + first_response, Step::AgentTurn);
        Ok(())
    }

    fn agent_turn(&mut self, conv: &mut ConvSim) -> Result<(), HistoryError> {
        let Some(a) = conv.agent else { return Ok(()) };
        let r = conv.agent_round;
        conv.agent_round += 1;
        let now = self.sink.now;
        if r == 1 && conv.agent_ending == AgentEnding::Spam {
            let meta = self.agent_request_for(a);
            let agent = self.agents[a].id;
            return self.close(conv, Party::Agent { agent }, CloseReason::Spam, &meta);
        }
        if conv.transfer_round == Some(r) {
            conv.transfer_round = None;
            if self.transfer(conv, a)? {
                return Ok(());
            }
        }
        let last = conv.agent_round >= conv.agent_rounds;
        let scenario = &SCENARIOS[conv.scenario];
        let template = if r == 0 {
            self.pick(AGENT_GREETINGS)
        } else if last && conv.agent_ending == AgentEnding::Ticket {
            self.pick(AGENT_TICKET_NOTICE)
        } else if last {
            self.pick(AGENT_WRAP_UP)
        } else if conv.negative && self.chance(0.4) {
            self.pick_fresh(conv, &[AGENT_SOOTHING])
        } else if r == 1 && self.chance(0.6) {
            self.pick_fresh(conv, &[AGENT_CHECKING])
        } else {
            self.pick_fresh(conv, &[scenario.agent_replies, AGENT_PROGRESS])
        };
        let text = self.fill(pick_lang(&template, conv.lang), conv);
        let meta = self.agent_request_for(a);
        let agent = self.agents[a].id;
        let message = MessageId::from(self.sink.mint(now));
        self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::RecordAgentTurn",
            now,
            &meta,
            |at| C::RecordAgentTurn {
                agent,
                message,
                text,
                at,
            },
        )?;
        if conv.note_round == Some(r) {
            let at = now + self.millis(3.0, 20.0);
            self.internal_note(conv, a, at)?;
        }
        if !last {
            let after = self.millis(20.0, 100.0);
            self.later(conv, after, Step::AgentCustomerTurn);
            return Ok(());
        }
        match conv.agent_ending {
            AgentEnding::Resolved | AgentEnding::Spam => {
                let after = self.millis(15.0, 60.0);
                self.later(conv, after, Step::AgentCustomerTurn);
            }
            AgentEnding::CustomerLeft => {
                let after = self.millis(30.0, 150.0);
                self.later(conv, after, Step::CustomerClose(CloseReason::CustomerLeft));
            }
            AgentEnding::Idle => self.schedule_idle(conv, AGENT_IDLE_SECS),
            AgentEnding::Ticket => {
                let at = now + self.millis(5.0, 30.0);
                let opened = self.open_ticket_from(conv, &meta, at)?;
                let close = opened.metadata(self.agents[a].actor());
                self.close(
                    conv,
                    Party::Agent { agent },
                    CloseReason::MovedToTicket,
                    &close,
                )?;
            }
        }
        Ok(())
    }

    fn agent_phase_customer_turn(&mut self, conv: &mut ConvSim) -> Result<(), HistoryError> {
        let closing = conv.agent_round >= conv.agent_rounds;
        let template = if closing {
            conv.mood = conv.mood.max(0.2) + 0.2;
            self.pick(THANKS)
        } else {
            self.pick_fresh(
                conv,
                &[SCENARIOS[conv.scenario].follow_ups, GENERIC_FOLLOW_UPS],
            )
        };
        let turn = self.customer_says(conv, template, !closing && conv.mood < -0.6, !closing)?;
        self.assess(conv, &turn, None)?;
        if !closing {
            self.suggest(conv, &turn)?;
        }
        if closing {
            let after = self.millis(8.0, 40.0);
            self.later(conv, after, Step::AgentClose(CloseReason::Resolved));
        } else {
            let after = self.millis(15.0, 90.0);
            self.later(conv, after, Step::AgentTurn);
        }
        Ok(())
    }

    fn internal_note(
        &mut self,
        conv: &mut ConvSim,
        a: usize,
        at: DateTime<Utc>,
    ) -> Result<(), HistoryError> {
        let text = INTERNAL_NOTES[self.rng().random_range(0..INTERNAL_NOTES.len())].to_owned();
        let author = self.agents[a].stream.state.snapshot(self.agents[a].id);
        let meta = self.agent_request_for(a);
        self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::AddInternalNote",
            at,
            &meta,
            |at| C::AddInternalNote { author, text, at },
        )?;
        Ok(())
    }

    /// Moves the conversation to the queue that serves its real scenario, or to a colleague
    /// on shift with a free seat. Returns whether it moved.
    fn transfer(&mut self, conv: &mut ConvSim, a: usize) -> Result<bool, HistoryError> {
        let now = self.sink.now;
        let from_agent = self.agents[a].id;
        let category = SCENARIOS[conv.scenario].category;
        let to_queue = if conv.merchant.is_none() && self.chance(0.6) {
            self.queues
                .iter()
                .position(|q| {
                    q.role == QueueRole::Specialist
                        && q.categories.contains(&category)
                        && q.is_open(now)
                })
                .filter(|q| Some(*q) != conv.queue)
        } else {
            None
        };
        if let Some(q) = to_queue {
            let reason = TRANSFER_TO_QUEUE_REASONS
                [self.rng().random_range(0..TRANSFER_TO_QUEUE_REASONS.len())]
            .to_owned();
            let snapshot = self.queues[q]
                .stream
                .state
                .snapshot(self.queues[q].stream.id);
            let meta = self.agent_request_for(a);
            let causes = self.sink.run(
                &mut conv.stream,
                "ConversationCommand::Transfer",
                now,
                &meta,
                |at| C::Transfer {
                    from_agent,
                    to: TransferTarget::Queue(snapshot),
                    reason,
                    at,
                },
            )?;
            let (Some(transferred), Some(queued)) =
                (causes.first().cloned(), causes.get(1).cloned())
            else {
                return Err(missing("ConversationQueued after a transfer"));
            };
            conv.agent = None;
            self.release_seat(a, conv.id, &transferred, now + Duration::milliseconds(200))?;
            self.wait_in_queue(conv, q, queued, now, Some(a))?;
            self.agent_available(a)?;
            return Ok(true);
        }
        let Some(target) = self.best_agent(conv.need, Some(a)) else {
            return Ok(false);
        };
        let reason = TRANSFER_TO_AGENT_REASONS
            [self.rng().random_range(0..TRANSFER_TO_AGENT_REASONS.len())]
        .to_owned();
        let meta = self.agent_request_for(a);
        let taken = self.sink.run1(
            &mut self.agents[target].stream,
            "AgentCommand::TakeChat",
            now,
            &meta,
            |at| kefu_domain::agent::AgentCommand::TakeChat {
                conversation: conv.id,
                at,
            },
        )?;
        self.agents[target].active += 1;
        let snapshot = self.agents[target]
            .stream
            .state
            .snapshot(self.agents[target].id);
        let transferred = self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::Transfer",
            now,
            &taken.metadata(self.agents[a].actor()),
            |at| C::Transfer {
                from_agent,
                to: TransferTarget::Agent(snapshot),
                reason,
                at,
            },
        )?;
        self.release_seat(a, conv.id, &transferred, now + Duration::milliseconds(200))?;
        self.begin_agent_phase(conv, target, now)?;
        self.agent_available(a)?;
        Ok(true)
    }

    /// The agent opens a ticket from the conversation, in their request `meta`.
    fn open_ticket_from(
        &mut self,
        conv: &mut ConvSim,
        meta: &Metadata,
        at: DateTime<Utc>,
    ) -> Result<Cause, HistoryError> {
        let scenario = &SCENARIOS[conv.scenario];
        let angry = conv.mood < -0.6 || conv.negative;
        let kind = match scenario.category {
            _ if angry && self.chance(0.4) => TicketKind::Complaint,
            "shipping" | "delays" => TicketKind::Delivery,
            "returns" => TicketKind::Return,
            "refunds" => TicketKind::Refund,
            "invoices" | "payment" | "coupons" => TicketKind::Billing,
            "warranty" => TicketKind::Product,
            _ => TicketKind::Other,
        };
        let priority = match self.rng().random::<f64>() {
            u if u < 0.05 => TicketPriority::Urgent,
            _ if conv.vip || angry => TicketPriority::High,
            u if u < 0.2 && scenario.category == "invoices" => TicketPriority::Low,
            _ => TicketPriority::Normal,
        };
        let opener = self.pick(scenario.openers);
        let question = self.fill(pick_lang(&opener, conv.lang), conv);
        let template = self.pick(TICKET_DESCRIPTIONS);
        let description = self
            .fill(pick_lang(&template, conv.lang), conv)
            .replace("{question}", &question);
        let spec = NewTicket {
            customer: conv.customer,
            lang: conv.lang,
            team: conv.merchant.map_or(Team::SelfOperated, Team::Merchant),
            origin: TicketOrigin::FromConversation(conv.stream.state.snapshot(conv.id)),
            kind,
            priority,
            subject: pick_lang(&scenario.ticket_subject, conv.lang).to_owned(),
            description,
            question,
            order: None,
            angry,
            follow_up: false,
        };
        self.open_ticket(spec, meta, at, true)
    }

    // ---- the end, and after ----

    fn close(
        &mut self,
        conv: &mut ConvSim,
        by: Party,
        reason: CloseReason,
        meta: &Metadata,
    ) -> Result<(), HistoryError> {
        if conv.is_closed() {
            return Ok(());
        }
        let now = self.sink.now;
        let closed = self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::Close",
            now,
            meta,
            |at| C::Close { by, reason, at },
        )?;
        self.after_close(conv, &closed, reason)
    }

    /// What the workers do when a conversation closes: release the seat, offer the survey;
    /// and what the customer may do later: answer it, order something, come back.
    fn after_close(
        &mut self,
        conv: &mut ConvSim,
        closed: &Cause,
        reason: CloseReason,
    ) -> Result<(), HistoryError> {
        conv.epoch += 1;
        let at = conv.stream.last_at;
        if let Some(queued) = conv.queued.take() {
            self.waiting.remove(&queued.key);
        }
        if let Some(a) = conv.agent.take() {
            self.release_seat(a, conv.id, closed, at + Duration::milliseconds(200))?;
            if self.agents[a].status == kefu_domain::agent::AgentStatus::Online {
                self.agent_available(a)?;
            }
            self.plan_return(conv, reason, at)?;
        }
        if !conv.survey_offered && reason != CloseReason::Spam {
            conv.survey_offered = true;
            let meta = closed.metadata(Actor::system("survey"));
            conv.survey_offer = Some(self.sink.run1(
                &mut conv.stream,
                "ConversationCommand::OfferSurvey",
                at + Duration::seconds(1),
                &meta,
                |at| C::OfferSurvey { at },
            )?);
            let mut p = if conv.last_agent.is_some() {
                0.68
            } else {
                0.62
            };
            if conv.waited_secs > 300 {
                p -= 0.12;
            }
            if conv.negative {
                p -= 0.06;
            }
            if reason == CloseReason::IdleTimeout || conv.abandoned {
                p = 0.3;
            }
            if self.chance(p) {
                conv.followups += 1;
                let after = Duration::seconds(5)
                    + Duration::milliseconds((exponential(self.rng(), 100.0) * 1000.0) as i64);
                self.at_follow_up(conv, at + after, Step::SurveyAnswer);
            } else {
                conv.followups += 1;
                let after = Duration::seconds(i64::from(SURVEY_REMINDER_SECS) + 60);
                self.at_follow_up(conv, at + after, Step::SurveyReminder);
            }
        }
        if !conv.attribution_planned && reason != CloseReason::Spam && self.chance(0.34) {
            conv.attribution_planned = true;
            conv.followups += 1;
            let hours = exponential(self.rng(), 3.0).min(23.0);
            let after = Duration::minutes(1) + Duration::milliseconds((hours * 3_600_000.0) as i64);
            self.at_follow_up(conv, at + after, Step::AttributeOrder);
        }
        let may_reopen = matches!(
            reason,
            CloseReason::Resolved | CloseReason::CustomerLeft | CloseReason::IdleTimeout
        );
        if !conv.reopened && conv.bot_enabled && may_reopen && self.chance(0.035) {
            conv.reopened = true;
            conv.followups += 1;
            let hours = exponential(self.rng(), 8.0).min(70.0);
            let after = Duration::minutes(5) + Duration::milliseconds((hours * 3_600_000.0) as i64);
            self.at_follow_up(conv, at + after, Step::Reopen);
        }
        if conv.last_agent.is_some() && self.chance(0.03) {
            conv.followups += 1;
            let after = Duration::minutes(self.rng().random_range(60..360));
            self.at_follow_up(conv, at + after, Step::QaNote);
        }
        Ok(())
    }

    /// Follow-ups past the horizon never happen; they must not keep the conversation alive.
    fn at_follow_up(&mut self, conv: &mut ConvSim, at: DateTime<Utc>, step: Step) {
        if at > self.horizon {
            conv.followups = conv.followups.saturating_sub(1);
            return;
        }
        self.at(conv, at, step);
    }

    /// A return the agent arranged: the shop reports it returned, then refunded, days later.
    fn plan_return(
        &mut self,
        conv: &ConvSim,
        reason: CloseReason,
        at: DateTime<Utc>,
    ) -> Result<(), HistoryError> {
        let returns = matches!(
            SCENARIOS[conv.scenario].code,
            "return-request" | "damaged-on-arrival"
        );
        let Some(o) = conv.order.filter(|_| {
            returns && matches!(reason, CloseReason::Resolved | CloseReason::MovedToTicket)
        }) else {
            return Ok(());
        };
        let returned_after = Duration::hours(self.rng().random_range(24..96));
        let refunded_after = Duration::hours(self.rng().random_range(24..72));
        let customer = self.customers[conv.customer]
            .as_mut()
            .ok_or_else(|| missing("customer"))?;
        if customer.orders[o].plan_return(at, returned_after, refunded_after) {
            self.schedule(
                at + returned_after,
                Action::OrderUpdate {
                    customer: conv.customer,
                    order: o,
                },
            );
            self.schedule(
                at + returned_after + refunded_after,
                Action::OrderUpdate {
                    customer: conv.customer,
                    order: o,
                },
            );
        }
        Ok(())
    }

    fn answer_survey(&mut self, conv: &mut ConvSim) -> Result<(), HistoryError> {
        let unhappy = conv.waited_secs > 180 || conv.negative || conv.abandoned;
        let weights: [(u8, f64); 5] = if unhappy {
            [(1, 0.18), (2, 0.14), (3, 0.24), (4, 0.22), (5, 0.22)]
        } else {
            [(1, 0.03), (2, 0.03), (3, 0.08), (4, 0.21), (5, 0.65)]
        };
        let score = weighted(self.rng(), &weights);
        let comment = if self.chance(0.25) {
            let options = if score >= 4 {
                SURVEY_PRAISE
            } else {
                SURVEY_COMPLAINTS
            };
            Some(pick_lang(&self.pick(options), conv.lang).to_owned())
        } else {
            None
        };
        let meta = self.customer_request(conv);
        let now = self.sink.now;
        self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::AnswerSurvey",
            now,
            &meta,
            |at| C::AnswerSurvey { score, comment, at },
        )?;
        Ok(())
    }

    /// The customer places an order after the chat; the shop's gateway imports it and the
    /// attribution worker credits the conversation.
    fn attribute_order(&mut self, conv: &mut ConvSim) -> Result<(), HistoryError> {
        let now = self.sink.now;
        let order = self.new_order(now, now)?;
        let gateway = self.sink.request(Actor::system("shop-gateway"), false);
        let snapshot = order.snapshot(OrderStatus::Paid, now);
        let (order_id, total) = (order.id.clone(), order.total_fen);
        let customer = self.customers[conv.customer]
            .as_mut()
            .ok_or_else(|| missing("customer"))?;
        customer.orders.push(order);
        let imported = self.sink.run1(
            &mut customer.stream,
            "CustomerCommand::ImportOrder",
            now,
            &gateway,
            |at| CustomerCommand::ImportOrder {
                order: snapshot,
                at,
            },
        )?;
        let customer_id = customer.stream.id;
        let meta = imported.metadata(Actor::system("attribution"));
        let at = now + self.millis(1.0, 30.0);
        self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::AttributeOrder",
            at,
            &meta,
            |at| C::AttributeOrder {
                customer: customer_id,
                order: order_id,
                amount: Money::cny(total),
                placed_at: now,
                at,
            },
        )?;
        Ok(())
    }

    fn reopen(&mut self, conv: &mut ConvSim) -> Result<(), HistoryError> {
        if !conv.is_closed() {
            return Ok(());
        }
        let meta = self.customer_request(conv);
        let now = self.sink.now;
        self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::Reopen",
            now,
            &meta,
            |at| C::Reopen {
                by: Party::Customer,
                at,
            },
        )?;
        conv.epoch += 1;
        conv.round = 0;
        conv.agent_rounds = 0;
        conv.abandoned = false;
        conv.rounds = weighted(self.rng(), &[(1, 0.6), (2, 0.4)]);
        conv.outcome = if self.chance(0.28) {
            Outcome::Handoff(HandoffReason::CustomerAsked)
        } else {
            let ending = weighted(
                self.rng(),
                &[
                    (BotEnding::Thanks, 0.4),
                    (BotEnding::CustomerLeft, 0.3),
                    (BotEnding::Idle, 0.3),
                ],
            );
            Outcome::Contained(ending)
        };
        let after = self.millis(5.0, 30.0);
        self.later(conv, after, Step::CustomerTurn);
        Ok(())
    }

    /// Quality assurance: the agent annotates the finished chat.
    fn qa_note(&mut self, conv: &mut ConvSim) -> Result<(), HistoryError> {
        let Some(a) = conv.last_agent.filter(|&a| !self.agents[a].retired) else {
            return Ok(());
        };
        let now = self.sink.now;
        self.internal_note(conv, a, now)
    }

    // ---- customers and orders ----

    fn new_customer(&mut self, now: DateTime<Utc>) -> Result<CustomerSim, HistoryError> {
        let id = CustomerId::from(self.sink.mint(now));
        let tier = weighted(
            self.rng(),
            &[
                (CustomerTier::Vip, 0.04),
                (CustomerTier::Plus, 0.22),
                (CustomerTier::Regular, 0.74),
            ],
        );
        let locale = weighted(
            self.rng(),
            &[
                ("zh-CN", 0.92),
                ("zh-HK", 0.02),
                ("en-US", 0.04),
                ("en-GB", 0.02),
            ],
        );
        let rng = self.rng();
        let prefix = [3, 5, 7, 8, 9][rng.random_range(0..5)];
        let phone = format!("1{prefix}{:09}", rng.random_range(0..1_000_000_000u64));
        let domain = EMAIL_DOMAINS[rng.random_range(0..EMAIL_DOMAINS.len())];
        let email = format!("jd_{:08}@{domain}", rng.random_range(0..100_000_000u64));
        Ok(CustomerSim {
            stream: Stream::new(id)?,
            tier,
            locale,
            orders: Vec::new(),
            last_contact: now,
            open_tickets: Vec::new(),
            phone,
            email,
        })
    }

    /// The gateway's view of the customer: the profile on first contact or when it changed,
    /// and orders placed since the last contact.
    fn sync_customer(
        &mut self,
        c: usize,
        gateway: &Metadata,
        now: DateTime<Utc>,
    ) -> Result<(), HistoryError> {
        let first = matches!(
            self.customers[c].as_ref().map(|s| &s.stream.state),
            Some(CustomerState::Unknown)
        );
        let (mut tier, mut locale, last_contact) = {
            let s = self.customers[c]
                .as_ref()
                .ok_or_else(|| missing("customer"))?;
            (s.tier, s.locale, s.last_contact)
        };
        if !first {
            if self.chance(0.03) {
                tier = match tier {
                    CustomerTier::Regular => CustomerTier::Plus,
                    CustomerTier::Plus if self.chance(0.3) => CustomerTier::Vip,
                    CustomerTier::Plus => CustomerTier::Regular,
                    CustomerTier::Vip => CustomerTier::Plus,
                };
            }
            if self.chance(0.015) {
                locale = if locale.starts_with("en") {
                    "zh-CN"
                } else {
                    "en-US"
                };
            }
        }
        let mut orders = Vec::new();
        if first {
            let n = weighted(self.rng(), &[(1usize, 0.3), (2, 0.3), (3, 0.25), (4, 0.15)]);
            for _ in 0..n {
                let age_hours = 2.0 + 40.0 * 24.0 * self.rng().random::<f64>().powf(1.6);
                let placed = now - Duration::minutes((age_hours * 60.0) as i64);
                orders.push(self.new_order(placed, now)?);
            }
        } else if now - last_contact > Duration::hours(3) && self.chance(0.3) {
            let span = (now - last_contact - Duration::hours(1))
                .num_minutes()
                .max(1);
            let placed = last_contact + Duration::minutes(self.rng().random_range(0..span));
            orders.push(self.new_order(placed, now)?);
        }
        let customer = self.customers[c]
            .as_mut()
            .ok_or_else(|| missing("customer"))?;
        let id = customer.stream.id;
        let changed = customer.tier != tier || customer.locale != locale;
        if first || changed {
            self.sink.run(
                &mut customer.stream,
                "CustomerCommand::RecordProfile",
                now,
                gateway,
                |at| CustomerCommand::RecordProfile {
                    customer: id,
                    tier,
                    locale: Locale::from(locale),
                    at,
                },
            )?;
            customer.tier = tier;
            customer.locale = locale;
        }
        for order in orders {
            let (status, status_at) = order.status_at(now);
            let snapshot = order.snapshot(status, status_at);
            customer.orders.push(order);
            self.sink.run1(
                &mut customer.stream,
                "CustomerCommand::ImportOrder",
                now,
                gateway,
                |at| CustomerCommand::ImportOrder {
                    order: snapshot,
                    at,
                },
            )?;
        }
        customer.last_contact = now;
        Ok(())
    }

    /// The order the chat is about, if any: most chats come from an order page, about a
    /// recent order. Its status is brought up to date first.
    fn choose_order(
        &mut self,
        c: usize,
        gateway: &Metadata,
        now: DateTime<Utc>,
    ) -> Result<(Option<usize>, Option<OrderStatus>), HistoryError> {
        let ages: Vec<f64> = self.customers[c]
            .as_ref()
            .map(|s| {
                s.orders
                    .iter()
                    .map(|o| (now - o.placed_at).num_hours().max(0) as f64 / 24.0)
                    .collect()
            })
            .unwrap_or_default();
        if ages.is_empty() || !self.chance(0.82) {
            return Ok((None, None));
        }
        let weights: Vec<(usize, f64)> = ages
            .iter()
            .enumerate()
            .map(|(i, age)| (i, 1.0 / (1.0 + age)))
            .collect();
        let o = weighted(self.rng(), &weights);
        self.refresh_order(c, o, gateway, now)?;
        let status = self.customers[c]
            .as_ref()
            .map(|s| s.orders[o].status_at(now).0);
        Ok((Some(o), status))
    }

    /// Imports every step of the order's life up to `now` that kefu has not seen.
    pub(crate) fn refresh_order(
        &mut self,
        c: usize,
        o: usize,
        gateway: &Metadata,
        now: DateTime<Utc>,
    ) -> Result<(), HistoryError> {
        let customer = self.customers[c]
            .as_mut()
            .ok_or_else(|| missing("customer"))?;
        let order = customer.orders[o].clone();
        for (status, status_at) in order.steps.iter().copied().filter(|(_, t)| *t <= now) {
            let snapshot = order.snapshot(status, status_at);
            self.sink.run(
                &mut customer.stream,
                "CustomerCommand::ImportOrder",
                now,
                gateway,
                |at| CustomerCommand::ImportOrder {
                    order: snapshot,
                    at,
                },
            )?;
        }
        Ok(())
    }

    /// The gateway pushes an order's status change as the shop reports it.
    pub(crate) fn order_update(&mut self, c: usize, o: usize) -> Result<(), HistoryError> {
        let gateway = self.sink.request(Actor::system("shop-gateway"), false);
        let now = self.sink.now;
        self.refresh_order(c, o, &gateway, now)
    }

    /// An order placed at `placed`, with the life the shop will report for it.
    pub(crate) fn new_order(
        &mut self,
        placed: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<OrderSim, HistoryError> {
        let merchants = self.cfg.merchants;
        let merchant = (merchants > 0 && self.chance(0.38)).then(|| {
            let weights: Vec<(usize, f64)> = MERCHANTS
                .iter()
                .take(merchants)
                .enumerate()
                .map(|(m, x)| (m, x.weight))
                .collect();
            weighted(self.rng(), &weights)
        });
        let product = match merchant {
            Some(m) => {
                let sells = MERCHANTS[m].sells;
                sells[self.rng().random_range(0..sells.len())]
            }
            None => {
                let weights: Vec<(usize, f64)> = PRODUCT_CATEGORIES
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (i, p.weight))
                    .collect();
                weighted(self.rng(), &weights)
            }
        };
        let category = &PRODUCT_CATEGORIES[product];
        let item = self.rng().random_range(0..category.products.len());
        let (lo, hi) = (
            (category.min_fen as f64).ln(),
            (category.max_fen as f64).ln(),
        );
        let total_fen = (self.rng().random_range(lo..hi).exp() as i64 / 10) * 10;
        self.next_order += 1;
        let id = kefu_domain::ids::OrderId::new(format!(
            "{}",
            310_000_000_000u64 + self.next_order * 37 + self.rng().random_range(0..37)
        ));
        let mut steps = vec![(OrderStatus::Paid, placed)];
        if self.chance(0.03) {
            // Cancelled before it shipped: refunded straight away.
            steps.push((
                OrderStatus::Refunded,
                placed + Duration::minutes(self.rng().random_range(60..600)),
            ));
        } else {
            let shipped = placed + Duration::minutes(self.rng().random_range(180..2_160));
            let delivered = shipped + Duration::minutes(self.rng().random_range(1_080..5_760));
            steps.push((OrderStatus::Shipped, shipped));
            steps.push((OrderStatus::Delivered, delivered));
            if delivered + Duration::days(2) < now && self.chance(0.07) {
                let returned = delivered + Duration::hours(self.rng().random_range(24..96));
                steps.push((OrderStatus::Returned, returned));
                steps.push((
                    OrderStatus::Refunded,
                    returned + Duration::hours(self.rng().random_range(24..72)),
                ));
            }
        }
        Ok(OrderSim {
            id,
            merchant,
            product,
            item,
            total_fen: total_fen.max(100),
            placed_at: placed,
            steps,
        })
    }
}

pub(crate) fn missing(what: &'static str) -> HistoryError {
    HistoryError::Inconsistent(what)
}
