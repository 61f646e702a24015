//! Property tests: random command sequences, run the way the command service runs them, never
//! produce a state that breaks an invariant, and the events they record rebuild the same state
//! after a round trip through the log's encoding.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kefu_domain::agent::{
    Agent, AgentCommand, AgentDecider, AgentSnapshot, AgentState, AgentStatus,
};
use kefu_domain::common::{BusinessLine, Channel, Money, Party};
use kefu_domain::conversation::{
    AnswerCandidate, BotAnswerInput, CloseReason, ConversationCommand as C, ConversationDecider,
    ConversationEvent as Ev, ConversationState, EmotionLabel, Handling, HandoffReason,
    RoutingReason, SlaKind, Speaker, SuggestionInput, Survey, TransferTarget,
};
use kefu_domain::customer::{Customer, CustomerSnapshot, CustomerTier, Order, OrderStatus};
use kefu_domain::ids::{
    AgentId, Category, ConversationId, CustomerId, KnowledgeEntryId, Locale, MerchantId, MessageId,
    OrderId, QueueId, Skill, TicketId,
};
use kefu_domain::knowledge::{KnowledgeEntry, KnowledgeEntrySnapshot};
use kefu_domain::queue::{OpeningHours, Queue, QueueSnapshot, SlaTargets};
use kefu_domain::ticket::{
    MAX_ESCALATION_LEVEL, TicketCommand as T, TicketDecider, TicketEdit, TicketEvent as Tev,
    TicketKind, TicketOrigin, TicketPriority, TicketSnapshot, TicketState, TicketStatus,
};
use kefu_domain::{Decider, DomainError, DomainEvent, fold, schema};
use proptest::prelude::*;
use serde_json::Value;
use uuid::Uuid;

/// A stream the way the command service keeps it: the recorded events and the state they
/// fold to.
struct Stream<D: Decider> {
    state: D::State,
    history: Vec<D::Event>,
}

impl<D: Decider> Stream<D>
where
    D::Command: Clone,
{
    fn new() -> Self {
        Stream {
            state: D::initial_state(),
            history: Vec::new(),
        }
    }

    fn apply(&mut self, command: D::Command) -> Result<Vec<D::Event>, DomainError> {
        let result = D::decide(&self.state, command.clone());
        assert_eq!(
            result,
            D::decide(&self.state, command.clone()),
            "decide is not deterministic"
        );
        let events = result?;
        for event in &events {
            let state = std::mem::replace(&mut self.state, D::initial_state());
            self.state = D::evolve(state, event);
        }
        self.history.extend(events.iter().cloned());
        self.check_once_per_cause(&events, command);
        Ok(events)
    }

    /// A worker replaying its reaction (after a crash, or beside a second instance) decides
    /// the same command again against the state its first events led to: that second
    /// decision is refused, records nothing, or is recognised by its reaction keys as done,
    /// so the command service appends it once.
    fn check_once_per_cause(&self, first: &[D::Event], command: D::Command) {
        let keys: Vec<String> = first.iter().filter_map(DomainEvent::reaction_key).collect();
        if keys.is_empty() {
            return;
        }
        if let Ok(again) = D::decide(&self.state, command) {
            assert!(
                again.is_empty() || kefu_domain::already_reacted(&keys, &again),
                "a replayed reaction would be recorded twice: {first:?} then {again:?}"
            );
        }
    }

    /// Folding the events, after encoding and decoding them as the log does, gives back the
    /// state `decide` saw; and every payload fits its published schema.
    fn check_replay(&self) {
        let schemas = schema::event_schemas();
        let decoded: Vec<D::Event> = self
            .history
            .iter()
            .map(|event| {
                let encoded = event.encode().expect("every event encodes");
                let published = schemas
                    .iter()
                    .find(|s| s.event_type == encoded.event_type)
                    .expect("every event type has a schema");
                assert_eq!(published.schema_version, encoded.schema_version);
                check_fits(&published.schema, &encoded.payload, encoded.event_type);
                D::Event::decode(encoded.event_type, encoded.schema_version, encoded.payload)
                    .expect("every encoded event decodes")
            })
            .collect();
        assert_eq!(decoded, self.history);
        assert_eq!(fold::<D>(&decoded), self.state);
    }
}

/// The payload has every required property and none the schema does not describe.
fn check_fits(schema: &Value, payload: &Value, event_type: &str) {
    let properties = schema["properties"].as_object().expect("object schema");
    let payload = payload.as_object().expect("object payload");
    for key in payload.keys() {
        assert!(
            properties.contains_key(key),
            "{event_type}: {key} is not in its schema"
        );
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        let key = required.as_str().unwrap();
        assert!(
            payload.contains_key(key),
            "{event_type}: required {key} is missing"
        );
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0).unwrap()
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

const CUSTOMER: CustomerId = CustomerId::from_uuid(Uuid::from_u128(0xc));
const CONVERSATIONS: usize = 3;
/// Agent 0 may hold one chat, agent 1 two; agent 2 lacks the queue's skill.
const AGENTS: usize = 3;

fn conversation_id(c: usize) -> ConversationId {
    ConversationId::from(id(0x100 + c as u128))
}

fn agent_id(a: usize) -> AgentId {
    AgentId::from(id(0xa0 + a as u128))
}

fn after_sales() -> BTreeSet<Skill> {
    [Skill::from("after-sales")].into()
}

fn queue(n: u8) -> QueueSnapshot {
    let active = |id: QueueId, business_line| {
        QueueSnapshot::Active(Queue {
            id,
            name: "after-sales".into(),
            business_line,
            categories: [Category::from("phones")].into(),
            skills: after_sales(),
            priority: 3,
            sla: SlaTargets {
                first_response_secs: 30,
                resolution_secs: 1800,
            },
            hours: OpeningHours::Always,
        })
    };
    match n % 4 {
        0 => active(QueueId::from(id(0x90)), BusinessLine::SelfOperated),
        1 => QueueSnapshot::Retired(QueueId::from(id(0x91))),
        2 => QueueSnapshot::Unknown(QueueId::from(id(0x92))),
        _ => active(
            QueueId::from(id(0x93)),
            BusinessLine::Merchant {
                merchant: MerchantId::from("pop-1"),
            },
        ),
    }
}

fn customer(vip: bool) -> CustomerSnapshot {
    let order = Order {
        order: OrderId::from("JD-1"),
        seller: BusinessLine::SelfOperated,
        category: Category::from("phones"),
        status: OrderStatus::Delivered,
        total: Money::cny(10_000),
        refunded: None,
        placed_at: t0() - Duration::days(3),
        status_at: t0() - Duration::days(1),
    };
    CustomerSnapshot::Known(Customer {
        id: CUSTOMER,
        tier: if vip {
            CustomerTier::Vip
        } else {
            CustomerTier::Regular
        },
        locale: Locale::from("zh-CN"),
        orders: [(order.order.clone(), order)].into(),
    })
}

fn entry(retired: bool) -> KnowledgeEntrySnapshot {
    let id = KnowledgeEntryId::from(id(0xe));
    if retired {
        return KnowledgeEntrySnapshot::Retired(id);
    }
    KnowledgeEntrySnapshot::Active(KnowledgeEntry {
        id,
        question: "Where is my refund?".into(),
        paraphrases: vec![],
        answer: "Within 3 working days.".into(),
        category: Category::from("refunds"),
        locale: Locale::from("zh-CN"),
        revision: 1,
    })
}

#[derive(Debug, Clone)]
enum Op {
    Start { c: usize, bot: bool },
    CustomerSays { c: usize, m: u8 },
    BotSays { c: usize, m: u8, retired: bool },
    Suggest { c: usize, m: u8, retired: bool },
    AgentSays { c: usize, a: usize, m: u8 },
    Assess { c: usize, m: u8, score: i8 },
    HandOff { c: usize, reason: u8 },
    Route { c: usize, q: u8 },
    Enqueue { c: usize, q: u8 },
    Assign { c: usize, a: usize },
    TransferToAgent { c: usize, from: usize, to: usize },
    TransferToQueue { c: usize, from: usize },
    Close { c: usize, by: u8 },
    TimeOut { c: usize },
    Reopen { c: usize },
    OfferSurvey { c: usize },
    AnswerSurvey { c: usize, score: u8 },
    RemindSurvey { c: usize },
    WarnSla { c: usize, kind: bool, tenths: u8 },
    BreachSla { c: usize, kind: bool },
    SetStatus { a: usize, status: u8 },
    ChangeLimit { a: usize, limit: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CONVERSATIONS;
    let a = 0..AGENTS;
    let m = 0u8..6;
    // Weighted towards the steps that lead to an agent, so most runs get that far.
    let q = prop_oneof![3 => Just(0u8), 1 => 1u8..4];
    prop_oneof![
        1 => (c.clone(), any::<bool>()).prop_map(|(c, bot)| Op::Start { c, bot }),
        2 => (c.clone(), m.clone()).prop_map(|(c, m)| Op::CustomerSays { c, m }),
        1 => (c.clone(), m.clone(), any::<bool>())
            .prop_map(|(c, m, retired)| Op::BotSays { c, m, retired }),
        1 => (c.clone(), m.clone(), any::<bool>())
            .prop_map(|(c, m, retired)| Op::Suggest { c, m, retired }),
        3 => (c.clone(), a.clone(), m.clone()).prop_map(|(c, a, m)| Op::AgentSays { c, a, m }),
        1 => (c.clone(), m, -10i8..=10).prop_map(|(c, m, score)| Op::Assess { c, m, score }),
        3 => (c.clone(), 0u8..5).prop_map(|(c, reason)| Op::HandOff { c, reason }),
        3 => (c.clone(), q.clone()).prop_map(|(c, q)| Op::Route { c, q }),
        3 => (c.clone(), q).prop_map(|(c, q)| Op::Enqueue { c, q }),
        4 => (c.clone(), a.clone()).prop_map(|(c, a)| Op::Assign { c, a }),
        1 => (c.clone(), a.clone(), a.clone())
            .prop_map(|(c, from, to)| Op::TransferToAgent { c, from, to }),
        1 => (c.clone(), a.clone()).prop_map(|(c, from)| Op::TransferToQueue { c, from }),
        1 => (c.clone(), 0u8..5).prop_map(|(c, by)| Op::Close { c, by }),
        1 => c.clone().prop_map(|c| Op::TimeOut { c }),
        1 => c.clone().prop_map(|c| Op::Reopen { c }),
        2 => c.clone().prop_map(|c| Op::OfferSurvey { c }),
        2 => (c.clone(), 0u8..7).prop_map(|(c, score)| Op::AnswerSurvey { c, score }),
        1 => c.clone().prop_map(|c| Op::RemindSurvey { c }),
        2 => (c.clone(), any::<bool>(), 0u8..=10)
            .prop_map(|(c, kind, tenths)| Op::WarnSla { c, kind, tenths }),
        2 => (c, any::<bool>()).prop_map(|(c, kind)| Op::BreachSla { c, kind }),
        1 => (a.clone(), 0u8..4).prop_map(|(a, status)| Op::SetStatus { a, status }),
        1 => (a, 1u32..4).prop_map(|(a, limit)| Op::ChangeLimit { a, limit }),
    ]
}

/// Conversations and the agents they are assigned to, driven by the protocol the command
/// service follows: take the agent's seat first, then assign; release it when the
/// conversation closes or moves on, or when the assignment is refused.
struct Desk {
    now: DateTime<Utc>,
    vip: bool,
    conversations: Vec<Stream<ConversationDecider>>,
    agents: Vec<Stream<AgentDecider>>,
}

impl Desk {
    fn new(vip: bool, bots: [bool; CONVERSATIONS]) -> Self {
        let agents = (0..AGENTS)
            .map(|a| {
                let mut agent = Stream::<AgentDecider>::new();
                let skills = if a == 2 {
                    [Skill::from("presales")].into()
                } else {
                    after_sales()
                };
                agent
                    .apply(AgentCommand::Register {
                        agent: agent_id(a),
                        name: format!("agent {a}"),
                        skills,
                        max_concurrent: a as u32 + 1,
                        at: t0(),
                    })
                    .unwrap();
                agent
                    .apply(AgentCommand::SetStatus {
                        status: AgentStatus::Online,
                        at: t0(),
                    })
                    .unwrap();
                agent
            })
            .collect();
        let mut desk = Desk {
            now: t0(),
            vip,
            conversations: (0..CONVERSATIONS).map(|_| Stream::new()).collect(),
            agents,
        };
        // Most commands need a started conversation; start them all so random runs get
        // somewhere, with the bot switched off for some.
        for (c, bot) in bots.into_iter().enumerate() {
            desk.run(Op::Start { c, bot }, 0);
        }
        desk
    }

    fn take_seat(&mut self, a: usize, c: usize) -> Result<bool, DomainError> {
        let taken = self.agents[a].apply(AgentCommand::TakeChat {
            conversation: conversation_id(c),
            at: self.now,
        })?;
        Ok(!taken.is_empty())
    }

    fn release_seat(&mut self, agent: AgentId, c: usize) {
        let a = (0..AGENTS).find(|a| agent_id(*a) == agent).unwrap();
        self.agents[a]
            .apply(AgentCommand::ReleaseChat {
                conversation: conversation_id(c),
                at: self.now,
            })
            .expect("a registered agent always releases a seat");
    }

    fn agent_snapshot(&self, a: usize) -> AgentSnapshot {
        self.agents[a].state.snapshot(agent_id(a))
    }

    fn converse(&mut self, c: usize, command: C) -> Result<Vec<Ev>, DomainError> {
        let before = self.conversations[c].state.clone();
        let events = self.conversations[c].apply(command)?;
        check_step(&before, &events);
        Ok(events)
    }

    fn run(&mut self, op: Op, minutes: u8) {
        self.now += Duration::minutes(i64::from(minutes));
        let at = self.now;
        let message =
            |c: usize, m: u8| MessageId::from(id(0x1000 + (c as u128) * 16 + u128::from(m)));
        // Refusals are expected: random commands are mostly wrong. Only the invariants count.
        let _ = match op {
            Op::Start { c, bot } => self.converse(
                c,
                C::Start {
                    conversation: conversation_id(c),
                    customer: customer(self.vip),
                    channel: Channel::Web,
                    order: (c == 0).then(|| OrderId::from("JD-1")),
                    bot_enabled: bot,
                    at,
                },
            ),
            Op::CustomerSays { c, m } => self.converse(
                c,
                C::RecordCustomerTurn {
                    message: message(c, m),
                    text: "hello".into(),
                    at,
                },
            ),
            Op::BotSays { c, m, retired } => self.converse(
                c,
                C::RecordBotTurn {
                    message: message(c, m),
                    text: "within 3 days".into(),
                    answer: Some(BotAnswerInput {
                        entry: entry(retired),
                        confidence: 0.4,
                    }),
                    candidates: vec![AnswerCandidate {
                        entry: KnowledgeEntryId::from(id(0xe)),
                        score: 0.4,
                    }],
                    at,
                },
            ),
            Op::Suggest { c, m, retired } => self.converse(
                c,
                C::SuggestAnswers {
                    message: message(c, m),
                    suggestions: vec![SuggestionInput {
                        entry: entry(retired),
                        score: 0.7,
                    }],
                    confidence: 0.6,
                    model_version: "faq-1".into(),
                    at,
                },
            ),
            Op::AgentSays { c, a, m } => self.converse(
                c,
                C::RecordAgentTurn {
                    agent: agent_id(a),
                    message: message(c, m),
                    text: "let me check".into(),
                    at,
                },
            ),
            Op::Assess { c, m, score } => {
                let score = f64::from(score) / 10.0;
                let label = if score < -0.3 {
                    EmotionLabel::Negative
                } else {
                    EmotionLabel::Neutral
                };
                self.converse(
                    c,
                    C::AssessEmotion {
                        message: message(c, m),
                        score,
                        label,
                        model_version: "emo-1".into(),
                        at,
                    },
                )
            }
            Op::HandOff { c, reason } => {
                let reason = [
                    HandoffReason::LowConfidence,
                    HandoffReason::NegativeEmotion,
                    HandoffReason::CustomerAsked,
                    HandoffReason::Vip,
                    HandoffReason::BotSwitchedOff,
                ][usize::from(reason)];
                self.converse(c, C::HandOff { reason, at })
            }
            Op::Route { c, q } => self.converse(
                c,
                C::Route {
                    queue: queue(q),
                    reasons: vec![RoutingReason::Fallback],
                    model_version: "router-1".into(),
                    features: Default::default(),
                    at,
                },
            ),
            Op::Enqueue { c, q } => self.converse(
                c,
                C::Enqueue {
                    queue: queue(q),
                    at,
                },
            ),
            Op::Assign { c, a } => {
                let newly_taken = match self.take_seat(a, c) {
                    Ok(newly) => newly,
                    Err(refused) => return drop(refused),
                };
                let agent = self.agent_snapshot(a);
                let result = self.converse(c, C::AssignAgent { agent, at });
                if result.is_err() && newly_taken {
                    self.release_seat(agent_id(a), c);
                }
                result
            }
            Op::TransferToAgent { c, from, to } => {
                let newly_taken = match self.take_seat(to, c) {
                    Ok(newly) => newly,
                    Err(refused) => return drop(refused),
                };
                let target = TransferTarget::Agent(self.agent_snapshot(to));
                let result = self.converse(
                    c,
                    C::Transfer {
                        from_agent: agent_id(from),
                        to: target,
                        reason: "specialist".into(),
                        at,
                    },
                );
                match &result {
                    Ok(_) => self.release_seat(agent_id(from), c),
                    Err(_) if newly_taken => self.release_seat(agent_id(to), c),
                    Err(_) => {}
                }
                result
            }
            Op::TransferToQueue { c, from } => {
                let result = self.converse(
                    c,
                    C::Transfer {
                        from_agent: agent_id(from),
                        to: TransferTarget::Queue(queue(0)),
                        reason: "wrong team".into(),
                        at,
                    },
                );
                if result.is_ok() {
                    self.release_seat(agent_id(from), c);
                }
                result
            }
            Op::Close { c, by } => {
                let by = match by {
                    0 => Party::Customer,
                    1 | 2 => Party::Agent {
                        agent: agent_id(usize::from(by) - 1),
                    },
                    3 => Party::Bot,
                    _ => Party::System,
                };
                let result = self.converse(
                    c,
                    C::Close {
                        by,
                        reason: CloseReason::Resolved,
                        at,
                    },
                );
                self.release_after_close(c, &result);
                result
            }
            Op::TimeOut { c } => {
                let result = self.converse(
                    c,
                    C::TimeOutIdle {
                        idle_after_secs: 2 * 60 * 60,
                        at,
                    },
                );
                self.release_after_close(c, &result);
                result
            }
            Op::Reopen { c } => self.converse(
                c,
                C::Reopen {
                    by: Party::Customer,
                    at,
                },
            ),
            Op::OfferSurvey { c } => self.converse(c, C::OfferSurvey { at }),
            Op::RemindSurvey { c } => self.converse(
                c,
                C::RemindSurvey {
                    after_secs: 10 * 60,
                    at,
                },
            ),
            Op::WarnSla { c, kind, tenths } => self.converse(
                c,
                C::WarnSla {
                    kind: sla_kind(kind),
                    fraction: f64::from(tenths) / 10.0,
                    at,
                },
            ),
            Op::BreachSla { c, kind } => self.converse(
                c,
                C::BreachSla {
                    kind: sla_kind(kind),
                    at,
                },
            ),
            Op::AnswerSurvey { c, score } => self.converse(
                c,
                C::AnswerSurvey {
                    score,
                    comment: None,
                    at,
                },
            ),
            Op::SetStatus { a, status } => {
                let status = [
                    AgentStatus::Online,
                    AgentStatus::Online,
                    AgentStatus::Away,
                    AgentStatus::Offline,
                ][usize::from(status)];
                return drop(self.agents[a].apply(AgentCommand::SetStatus { status, at }));
            }
            Op::ChangeLimit { a, limit } => {
                return drop(self.agents[a].apply(AgentCommand::ChangeCapacity {
                    max_concurrent: limit,
                    at,
                }));
            }
        };
    }

    fn release_after_close(&mut self, c: usize, result: &Result<Vec<Ev>, DomainError>) {
        let released = result.iter().flatten().find_map(|e| match e {
            Ev::ConversationClosed(closed) => closed.released_agent,
            _ => None,
        });
        if let Some(agent) = released {
            self.release_seat(agent, c);
        }
    }

    /// Seats and assignments agree, and no agent holds more than their limit.
    fn check_invariants(&self) {
        for (a, agent) in self.agents.iter().enumerate() {
            let AgentState::Registered(agent) = &agent.state else {
                panic!("agent {a} is not registered");
            };
            assert!(
                agent.active() <= agent.max_concurrent,
                "agent {a} over limit: {agent:?}"
            );
            if agent.status == AgentStatus::Offline {
                assert_eq!(agent.active(), 0, "offline agent {a} holds chats");
            }
            for held in &agent.active_chats {
                let c = (0..CONVERSATIONS)
                    .find(|c| conversation_id(*c) == *held)
                    .unwrap();
                let ConversationState::Started(conv) = &self.conversations[c].state else {
                    panic!("agent {a} holds a seat for unstarted conversation {c}");
                };
                assert!(
                    !conv.is_closed(),
                    "agent {a} holds a seat for closed conversation {c}"
                );
                assert_eq!(
                    conv.handling.agent(),
                    Some(agent.id),
                    "seat without assignment"
                );
            }
        }
        for (c, stream) in self.conversations.iter().enumerate() {
            if let ConversationState::Started(conv) = &stream.state
                && let (false, Some(agent)) = (conv.is_closed(), conv.handling.agent())
            {
                let a = (0..AGENTS).find(|a| agent_id(*a) == agent).unwrap();
                let AgentState::Registered(holder) = &self.agents[a].state else {
                    panic!("conversation {c} is with an unregistered agent");
                };
                assert!(
                    holder.active_chats.contains(&conv.id),
                    "assignment without seat"
                );
            }
            let answers = stream
                .history
                .iter()
                .filter(|e| matches!(e, Ev::SurveyAnswered(_)))
                .count();
            assert!(
                answers <= 1,
                "conversation {c} has {answers} survey answers"
            );
            check_sla_once_per_queueing(&stream.history);
        }
    }
}

fn sla_kind(first_response: bool) -> SlaKind {
    if first_response {
        SlaKind::FirstResponse
    } else {
        SlaKind::Resolution
    }
}

/// Between two queueings each target warns at most once and breaches at most once, every
/// breach is followed by its escalation, and a survey is reminded of at most once.
fn check_sla_once_per_queueing(history: &[Ev]) {
    let mut warned: Vec<SlaKind> = Vec::new();
    let mut breached: Vec<SlaKind> = Vec::new();
    let mut reminders = 0;
    for (i, event) in history.iter().enumerate() {
        match event {
            Ev::ConversationQueued(_) => {
                warned.clear();
                breached.clear();
            }
            Ev::SlaWarned(w) => {
                assert!(!warned.contains(&w.kind), "{:?} warned twice", w.kind);
                warned.push(w.kind);
            }
            Ev::SlaBreached(b) => {
                assert!(!breached.contains(&b.kind), "{:?} breached twice", b.kind);
                breached.push(b.kind);
                assert!(
                    matches!(history.get(i + 1), Some(Ev::ConversationEscalated(x)) if x.kind == b.kind),
                    "a breach without its escalation"
                );
            }
            Ev::SurveyReminded(_) => reminders += 1,
            _ => {}
        }
    }
    assert!(reminders <= 1, "{reminders} survey reminders");
}

/// What one accepted conversation command may record, given the state it was decided on.
fn check_step(before: &ConversationState, events: &[Ev]) {
    let ConversationState::Started(before) = before else {
        return;
    };
    for event in events {
        match event {
            Ev::CustomerTurnRecorded(_) | Ev::BotTurnRecorded(_) => {
                assert!(
                    !before.is_closed(),
                    "turn in a closed conversation: {event:?}"
                );
            }
            Ev::AgentTurnRecorded(turn) => {
                assert!(
                    !before.is_closed(),
                    "turn in a closed conversation: {event:?}"
                );
                assert_eq!(
                    before.handling.agent(),
                    Some(turn.agent),
                    "unassigned agent wrote"
                );
            }
            Ev::AnswersSuggested(s) => {
                assert!(!before.is_closed(), "suggested in a closed conversation");
                assert_ne!(
                    before.handling,
                    Handling::Bot,
                    "suggested to an agent while the bot has the chat"
                );
                assert!(
                    before
                        .turns
                        .iter()
                        .any(|t| t.message == s.message && t.speaker == Speaker::Customer),
                    "suggested for a turn the customer never wrote"
                );
            }
            Ev::SurveyOffered(_) => {
                assert!(before.is_closed(), "survey offered while open");
                assert_eq!(before.survey, Survey::NotOffered, "survey offered twice");
            }
            Ev::SurveyReminded(r) => {
                assert!(before.is_closed(), "reminded while open");
                assert!(
                    matches!(before.survey, Survey::Offered { at, reminded: false } if at == r.offered_at),
                    "reminded of a survey not outstanding: {:?}",
                    before.survey
                );
                assert!(
                    r.at >= r.offered_at + Duration::minutes(10),
                    "reminded early"
                );
            }
            Ev::SlaWarned(w) => {
                let clock = before.sla.as_ref().expect("warned without a clock");
                assert!(!before.is_closed(), "warned after close");
                assert!(w.at > clock.queued_at, "warned at the queueing");
                assert!(!clock.breached.contains(&w.kind), "warned after the breach");
                assert!(
                    !(w.kind == SlaKind::FirstResponse && clock.responded),
                    "warned after the reply"
                );
            }
            Ev::SlaBreached(b) => {
                let clock = before.sla.as_ref().expect("breached without a clock");
                assert!(!before.is_closed(), "breached after close");
                assert_eq!(clock.due(b.kind), Some(b.due));
                assert!(b.at >= b.due, "breached before due");
                assert!(
                    !(b.kind == SlaKind::FirstResponse && clock.responded),
                    "breached after the reply"
                );
            }
            Ev::ConversationEscalated(x) => {
                let clock = before.sla.as_ref().expect("escalated without a clock");
                assert_eq!(x.from_priority, clock.priority);
                assert_eq!(x.to_priority, clock.priority.saturating_sub(1).max(1));
                assert!(x.to_priority >= 1);
            }
            Ev::SurveyAnswered(answer) => {
                assert!(
                    matches!(before.survey, Survey::Offered { .. }),
                    "answered unoffered"
                );
                assert!((1..=5).contains(&answer.score));
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn conversations_and_agents_keep_their_invariants(
        vip in any::<bool>(),
        bots in any::<[bool; CONVERSATIONS]>(),
        ops in prop::collection::vec((op(), 0u8..15), 10..100),
    ) {
        let mut desk = Desk::new(vip, bots);
        for (op, minutes) in ops {
            desk.run(op, minutes);
            desk.check_invariants();
        }
        for conversation in &desk.conversations {
            conversation.check_replay();
        }
        for agent in &desk.agents {
            agent.check_replay();
        }
    }
}

#[derive(Debug, Clone)]
enum SeatOp {
    Take(usize),
    Release(usize),
    SetStatus(u8),
    ChangeLimit(u32),
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The agent stream alone, hammered with seat requests: the limit is never exceeded, even
    /// when the limit or the presence changes in between.
    #[test]
    fn an_agent_never_holds_more_chats_than_their_limit(
        limit in 1u32..4,
        ops in prop::collection::vec(prop_oneof![
            4 => (0..6usize).prop_map(SeatOp::Take),
            2 => (0..6usize).prop_map(SeatOp::Release),
            1 => (0u8..3).prop_map(SeatOp::SetStatus),
            1 => (1u32..4).prop_map(SeatOp::ChangeLimit),
        ], 1..60),
    ) {
        let mut agent = Stream::<AgentDecider>::new();
        let at = t0();
        agent.apply(AgentCommand::Register {
            agent: agent_id(0),
            name: "Li Wei".into(),
            skills: after_sales(),
            max_concurrent: limit,
            at,
        }).unwrap();
        for op in ops {
            let command = match op {
                SeatOp::Take(c) => AgentCommand::TakeChat { conversation: conversation_id(c), at },
                SeatOp::Release(c) => AgentCommand::ReleaseChat { conversation: conversation_id(c), at },
                SeatOp::SetStatus(s) => AgentCommand::SetStatus {
                    status: [AgentStatus::Online, AgentStatus::Away, AgentStatus::Offline][usize::from(s)],
                    at,
                },
                SeatOp::ChangeLimit(max_concurrent) => AgentCommand::ChangeCapacity { max_concurrent, at },
            };
            let before = agent.state.clone();
            if let Ok(events) = agent.apply(command) {
                let AgentState::Registered(before) = before else { unreachable!() };
                if events.iter().any(|e| matches!(e, kefu_domain::agent::AgentEvent::AgentChatTaken(_))) {
                    prop_assert_eq!(before.status, AgentStatus::Online, "an agent not online took a chat");
                }
            }
            let AgentState::Registered(now) = &agent.state else { unreachable!() };
            prop_assert!(now.active() <= now.max_concurrent, "{now:?}");
            prop_assert!(now.status != AgentStatus::Offline || now.active() == 0, "{now:?}");
        }
        agent.check_replay();
    }
}

/// The random runs above must be able to reach the interesting states; this walks the happy
/// path through the same harness so a broken harness cannot pass by refusing everything.
#[test]
fn the_harness_reaches_assignment_close_and_survey() {
    let mut desk = Desk::new(false, [true; CONVERSATIONS]);
    let script = [
        Op::CustomerSays { c: 0, m: 0 },
        Op::HandOff { c: 0, reason: 2 },
        Op::Route { c: 0, q: 0 },
        Op::Enqueue { c: 0, q: 0 },
        Op::Assign { c: 0, a: 1 },
        Op::AgentSays { c: 0, a: 1, m: 1 },
        Op::Close { c: 0, by: 2 },
        Op::OfferSurvey { c: 0 },
        Op::AnswerSurvey { c: 0, score: 5 },
    ];
    for op in script {
        desk.run(op, 1);
        desk.check_invariants();
    }
    let types: Vec<&str> = desk.conversations[0]
        .history
        .iter()
        .map(|e| e.event_type())
        .collect();
    assert!(types.contains(&"AgentAssigned"), "{types:?}");
    assert!(types.contains(&"AgentTurnRecorded"), "{types:?}");
    assert_eq!(types.last(), Some(&"SurveyAnswered"));
    let AgentState::Registered(agent) = &desk.agents[1].state else {
        panic!("agent 1 is not registered");
    };
    assert!(
        agent.active_chats.is_empty(),
        "the seat was not released on close"
    );
    desk.conversations[0].check_replay();
}

// ---- tickets ----

#[derive(Debug, Clone)]
enum TicketOp {
    Assign { retired: bool },
    Edit { priority: u8 },
    ChangeStatus { to: u8 },
    Comment { by_customer: bool, public: bool },
    Escalate,
    Merge { target: u8 },
    Reopen,
}

fn ticket_op() -> impl Strategy<Value = TicketOp> {
    prop_oneof![
        any::<bool>().prop_map(|retired| TicketOp::Assign { retired }),
        (0u8..4).prop_map(|priority| TicketOp::Edit { priority }),
        (0u8..5).prop_map(|to| TicketOp::ChangeStatus { to }),
        (any::<bool>(), any::<bool>()).prop_map(|(by_customer, public)| TicketOp::Comment {
            by_customer,
            public
        }),
        Just(TicketOp::Escalate),
        (0u8..4).prop_map(|target| TicketOp::Merge { target }),
        Just(TicketOp::Reopen),
    ]
}

const STATUSES: [TicketStatus; 5] = [
    TicketStatus::New,
    TicketStatus::Open,
    TicketStatus::Pending,
    TicketStatus::Solved,
    TicketStatus::Closed,
];

fn ticket_command(op: TicketOp, at: DateTime<Utc>) -> T {
    let agent = agent_id(0);
    let by = Party::Agent { agent };
    match op {
        TicketOp::Assign { retired } => T::Assign {
            assignee: if retired {
                AgentSnapshot::Retired(agent)
            } else {
                ticket_agent()
            },
            by,
            at,
        },
        TicketOp::Edit { priority } => T::Edit {
            edit: TicketEdit {
                priority: Some(
                    [
                        TicketPriority::Low,
                        TicketPriority::Normal,
                        TicketPriority::High,
                        TicketPriority::Urgent,
                    ][usize::from(priority)],
                ),
                ..TicketEdit::default()
            },
            by,
            at,
        },
        TicketOp::ChangeStatus { to } => T::ChangeStatus {
            to: STATUSES[usize::from(to)],
            by,
            at,
        },
        TicketOp::Comment {
            by_customer,
            public,
        } => T::Comment {
            author: if by_customer { Party::Customer } else { by },
            body: "any news?".into(),
            public,
            at,
        },
        TicketOp::Escalate => T::Escalate {
            reason: "angry customer".into(),
            by,
            at,
        },
        TicketOp::Merge { target } => T::Merge {
            into: merge_target(target),
            by,
            at,
        },
        TicketOp::Reopen => T::Reopen {
            reason: "not fixed".into(),
            by: Party::Customer,
            at,
        },
    }
}

/// The agent who opens, owns and works the tickets.
fn ticket_agent() -> AgentSnapshot {
    AgentSnapshot::Registered(Agent {
        id: agent_id(0),
        name: "Li Wei".into(),
        skills: after_sales(),
        max_concurrent: 3,
        status: AgentStatus::Online,
        active_chats: BTreeSet::new(),
    })
}

fn merge_target(n: u8) -> TicketSnapshot {
    let other = TicketId::from(id(0x72));
    let mut opened = Stream::<TicketDecider>::new();
    opened
        .apply(T::Open {
            ticket: other,
            customer: if n == 3 {
                CustomerId::from(id(0xcc))
            } else {
                CUSTOMER
            },
            origin: TicketOrigin::ByAgent(ticket_agent()),
            kind: TicketKind::Refund,
            priority: TicketPriority::Normal,
            subject: "duplicate".into(),
            description: "same refund".into(),
            order: None,
            at: t0(),
        })
        .unwrap();
    match n {
        0 => TicketSnapshot::Unknown(other),
        1 => TicketSnapshot::Known(match opened.state {
            TicketState::Opened(mut t) => {
                // Merging into itself.
                t.id = TicketId::from(id(0x71));
                t
            }
            TicketState::NotOpened => unreachable!(),
        }),
        _ => opened.state.snapshot(other),
    }
}

fn ticket_of(state: &TicketState) -> &kefu_domain::ticket::Ticket {
    match state {
        TicketState::Opened(t) => t,
        TicketState::NotOpened => panic!("ticket not opened"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn tickets_move_only_along_allowed_transitions(
        ops in prop::collection::vec(ticket_op(), 1..40),
    ) {
        let mut ticket = Stream::<TicketDecider>::new();
        let opened = T::Open {
            ticket: TicketId::from(id(0x71)),
            customer: CUSTOMER,
            origin: TicketOrigin::ByAgent(ticket_agent()),
            kind: TicketKind::Refund,
            priority: TicketPriority::Normal,
            subject: "refund missing".into(),
            description: "no refund yet".into(),
            order: None,
            at: t0(),
        };
        ticket.apply(opened).unwrap();
        for (step, op) in ops.into_iter().enumerate() {
            let before = ticket_of(&ticket.state).clone();
            let at = t0() + Duration::minutes(step as i64 + 1);
            let Ok(events) = ticket.apply(ticket_command(op, at)) else { continue };
            prop_assert!(
                before.status != TicketStatus::Closed || events.is_empty(),
                "a closed ticket recorded {events:?}"
            );
            let mut status = before.status;
            for event in &events {
                match event {
                    Tev::TicketStatusChanged(c) => {
                        prop_assert_eq!(c.from, status);
                        prop_assert!(c.from.can_change_to(c.to), "{:?} -> {:?}", c.from, c.to);
                        status = c.to;
                    }
                    Tev::TicketReopened(_) => {
                        prop_assert_eq!(status, TicketStatus::Solved);
                        status = TicketStatus::Open;
                    }
                    Tev::TicketMerged(_) => status = TicketStatus::Closed,
                    _ => {}
                }
            }
            let after = ticket_of(&ticket.state);
            prop_assert_eq!(after.status, status);
            prop_assert!(after.escalation_level <= MAX_ESCALATION_LEVEL);
            if after.status == TicketStatus::Solved {
                prop_assert!(after.assignee.is_some(), "solved without an assignee");
            }
        }
        ticket.check_replay();
    }
}
