//! A scripted stretch of a help desk's day, written through the real command service, and
//! the stores the projections are tested on.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kefu_desk::CommandService;
use kefu_domain::Decider;
use kefu_domain::agent::{AgentCommand, AgentDecider, AgentStatus};
use kefu_domain::common::{BusinessLine, Channel, Money, Party};
use kefu_domain::conversation::{
    AnswerCandidate, BotAnswerInput, CloseReason, ConversationCommand as Cmd, ConversationDecider,
    EmotionLabel, HandoffReason, RoutingReason, ScenarioCandidate,
};
use kefu_domain::customer::{CustomerCommand, CustomerDecider, CustomerTier, Order, OrderStatus};
use kefu_domain::ids::{
    AgentId, Category, ConversationId, CustomerId, KnowledgeEntryId, Locale, MerchantId, MessageId,
    OrderId, QueueId, ScenarioCode, Skill, TicketId,
};
use kefu_domain::knowledge::{KnowledgeCommand, KnowledgeDecider};
use kefu_domain::queue::{OpeningHours, QueueCommand, QueueDecider, SlaTargets};
use kefu_domain::ticket::{
    TicketCommand, TicketDecider, TicketEdit, TicketKind, TicketOrigin, TicketPriority,
    TicketStatus,
};
use kefu_eventlog::sqlite::{SqliteConfig, SqliteLog};
use kefu_eventlog::{Actor, ActorKind, AnyLog, EventLog, Metadata, Position, StoreConfig};
use kefu_projections::ReadStore;
use uuid::Uuid;

/// Friday 2026-11-20 06:00 UTC (14:00 in Beijing) plus `minutes`.
pub fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 6, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

pub const Q_SELF: QueueId = QueueId::from_uuid(Uuid::from_u128(0x9001));
pub const Q_POP: QueueId = QueueId::from_uuid(Uuid::from_u128(0x9002));
pub const A1: AgentId = AgentId::from_uuid(Uuid::from_u128(0xa001));
pub const A2: AgentId = AgentId::from_uuid(Uuid::from_u128(0xa002));
pub const C1: CustomerId = CustomerId::from_uuid(Uuid::from_u128(0xc001));
pub const C2: CustomerId = CustomerId::from_uuid(Uuid::from_u128(0xc002));
pub const K1: KnowledgeEntryId = KnowledgeEntryId::from_uuid(Uuid::from_u128(0xe001));
/// Contained by the bot, survey 5.
pub const X1: ConversationId = ConversationId::from_uuid(Uuid::from_u128(0x1001));
/// Angry, handed over, served by A1, survey 3, one order attributed; ticket T1 from it.
pub const X2: ConversationId = ConversationId::from_uuid(Uuid::from_u128(0x1002));
/// Waiting in Q_SELF since minute 30.
pub const X3: ConversationId = ConversationId::from_uuid(Uuid::from_u128(0x1003));
/// Waiting in Q_SELF since minute 25 (ahead of X3).
pub const X4: ConversationId = ConversationId::from_uuid(Uuid::from_u128(0x1004));
pub const T1: TicketId = TicketId::from_uuid(Uuid::from_u128(0x7001));

pub struct Script<L: EventLog> {
    pub svc: CommandService<L>,
    next: u128,
    /// Correlation id of each request, in order.
    pub requests: Vec<Uuid>,
    pub last: Position,
}

impl<L: EventLog> Script<L> {
    pub fn new(log: Arc<L>) -> Self {
        Script {
            svc: CommandService::new(log),
            next: 0x5000,
            requests: Vec::new(),
            last: Position::START,
        }
    }

    fn fresh(&mut self) -> Uuid {
        self.next += 1;
        id(self.next)
    }

    fn meta(&mut self, kind: ActorKind, who: &str) -> Metadata {
        let request = self.fresh();
        self.requests.push(request);
        Metadata::for_request(Actor::new(kind, who), request)
    }

    pub async fn run<D: Decider>(&mut self, id: D::Id, cmd: D::Command, kind: ActorKind)
    where
        D::Command: Clone,
    {
        let meta = self.meta(kind, "script");
        let done = self
            .svc
            .execute::<D>(id, cmd, &meta)
            .await
            .unwrap_or_else(|e| panic!("scripted command refused on {}: {e}", D::stream_id(id)));
        if let Some(a) = done.appended {
            self.last = self.last.max(a.last_position);
        }
    }

    async fn conv(&mut self, x: ConversationId, cmd: Cmd) {
        self.run::<ConversationDecider>(x, cmd, ActorKind::Customer)
            .await;
    }

    async fn agent_snapshot(&self, a: AgentId) -> kefu_domain::agent::AgentSnapshot {
        self.svc
            .load::<AgentDecider>(a)
            .await
            .unwrap()
            .state
            .snapshot(a)
    }

    async fn queue_snapshot(&self, q: QueueId) -> kefu_domain::queue::QueueSnapshot {
        self.svc
            .load::<QueueDecider>(q)
            .await
            .unwrap()
            .state
            .snapshot(q)
    }

    async fn customer_snapshot(&self, c: CustomerId) -> kefu_domain::customer::CustomerSnapshot {
        self.svc
            .load::<CustomerDecider>(c)
            .await
            .unwrap()
            .state
            .snapshot(c)
    }

    pub async fn customer_turn(
        &mut self,
        x: ConversationId,
        text: &str,
        at: DateTime<Utc>,
    ) -> MessageId {
        let message = MessageId::from(self.fresh());
        self.conv(
            x,
            Cmd::RecordCustomerTurn {
                message,
                text: text.into(),
                at,
            },
        )
        .await;
        message
    }

    pub async fn start(
        &mut self,
        x: ConversationId,
        c: CustomerId,
        order: bool,
        at: DateTime<Utc>,
    ) {
        let customer = self.customer_snapshot(c).await;
        self.conv(
            x,
            Cmd::Start {
                conversation: x,
                customer,
                channel: if order { Channel::App } else { Channel::Web },
                order: order.then(|| OrderId::from("JD-1")),
                bot_enabled: true,
                at,
            },
        )
        .await;
    }

    /// Routes to Q_SELF, hands to a human and queues.
    async fn hand_over(&mut self, x: ConversationId, reason: HandoffReason, at: DateTime<Utc>) {
        let queue = self.queue_snapshot(Q_SELF).await;
        let reasons = if x == X2 {
            vec![RoutingReason::OrderSeller {
                seller: BusinessLine::SelfOperated,
            }]
        } else {
            vec![RoutingReason::Fallback]
        };
        self.conv(
            x,
            Cmd::Route {
                queue: queue.clone(),
                reasons,
                model_version: "router-1".into(),
                features: Default::default(),
                at,
            },
        )
        .await;
        self.conv(x, Cmd::HandOff { reason, at }).await;
        self.conv(x, Cmd::Enqueue { queue, at }).await;
    }

    async fn assign(&mut self, x: ConversationId, a: AgentId, at: DateTime<Utc>) {
        self.run::<AgentDecider>(
            a,
            AgentCommand::TakeChat {
                conversation: x,
                at,
            },
            ActorKind::System,
        )
        .await;
        let agent = self.agent_snapshot(a).await;
        self.conv(x, Cmd::AssignAgent { agent, at }).await;
    }

    /// Queues, agents, a customer with an order, and a knowledge-base entry.
    pub async fn set_up(&mut self) {
        for (q, name, line, priority) in [
            (
                Q_SELF,
                "After-sales, self-operated",
                BusinessLine::SelfOperated,
                3,
            ),
            (
                Q_POP,
                "Merchant pop-4711",
                BusinessLine::Merchant {
                    merchant: MerchantId::from("pop-4711"),
                },
                2,
            ),
        ] {
            self.run::<QueueDecider>(
                q,
                QueueCommand::Define {
                    queue: q,
                    name: name.into(),
                    business_line: line,
                    categories: [Category::from("mobile-phones")].into(),
                    skills: [Skill::from("after-sales")].into(),
                    priority,
                    sla: SlaTargets {
                        first_response_secs: 60,
                        resolution_secs: 1800,
                    },
                    hours: OpeningHours::Always,
                    at: t(-60),
                },
                ActorKind::System,
            )
            .await;
        }
        for (a, name, limit) in [(A1, "Li Wei", 2), (A2, "Wang Fang", 1)] {
            self.run::<AgentDecider>(
                a,
                AgentCommand::Register {
                    agent: a,
                    name: name.into(),
                    skills: [Skill::from("after-sales"), Skill::from("lang:zh")].into(),
                    max_concurrent: limit,
                    at: t(-50),
                },
                ActorKind::System,
            )
            .await;
            self.run::<AgentDecider>(
                a,
                AgentCommand::SetStatus {
                    status: AgentStatus::Online,
                    at: t(-5),
                },
                ActorKind::Agent,
            )
            .await;
        }
        for (c, tier) in [(C1, CustomerTier::Regular), (C2, CustomerTier::Vip)] {
            self.run::<CustomerDecider>(
                c,
                CustomerCommand::RecordProfile {
                    customer: c,
                    tier,
                    locale: Locale::from("zh-CN"),
                    at: t(-40),
                },
                ActorKind::System,
            )
            .await;
            self.run::<CustomerDecider>(
                c,
                CustomerCommand::ImportOrder {
                    order: Order {
                        order: OrderId::from("JD-1"),
                        seller: BusinessLine::SelfOperated,
                        category: Category::from("mobile-phones"),
                        status: OrderStatus::Delivered,
                        total: Money::cny(399_900),
                        refunded: None,
                        placed_at: t(-4000),
                        status_at: t(-1000),
                    },
                    at: t(-40),
                },
                ActorKind::System,
            )
            .await;
        }
        self.run::<KnowledgeDecider>(
            K1,
            KnowledgeCommand::Create {
                entry: K1,
                question: "我的快递到哪了".into(),
                paraphrases: vec!["快递什么时候到".into(), "Where is my parcel?".into()],
                answer: "您可以在订单详情页查看物流轨迹。".into(),
                category: Category::from("shipping"),
                locale: Locale::from("zh-CN"),
                at: t(-30),
            },
            ActorKind::System,
        )
        .await;
    }

    /// X1: the bot answers and the customer is satisfied.
    pub async fn contained(&mut self) {
        self.start(X1, C1, true, t(0)).await;
        self.conv(
            X1,
            Cmd::PredictScenario {
                candidates: vec![
                    scenario("where-is-my-parcel", 0.7),
                    scenario("return-exchange", 0.2),
                ],
                model_version: "prior-1".into(),
                features: Default::default(),
                at: t(0),
            },
        )
        .await;
        self.customer_turn(X1, "我的快递到哪了?", t(1)).await;
        let entry = self
            .svc
            .load::<KnowledgeDecider>(K1)
            .await
            .unwrap()
            .state
            .snapshot(K1);
        let message = MessageId::from(self.fresh());
        self.conv(
            X1,
            Cmd::RecordBotTurn {
                message,
                text: "您可以在订单详情页查看物流轨迹。".into(),
                answer: Some(BotAnswerInput {
                    entry,
                    confidence: 0.92,
                }),
                candidates: vec![AnswerCandidate {
                    entry: K1,
                    score: 0.92,
                }],
                at: t(1),
            },
        )
        .await;
        self.conv(
            X1,
            Cmd::SettleScenario {
                actual: ScenarioCode::from("where-is-my-parcel"),
                at: t(2),
            },
        )
        .await;
        self.conv(
            X1,
            Cmd::Close {
                by: Party::Customer,
                reason: CloseReason::Resolved,
                at: t(3),
            },
        )
        .await;
        self.conv(X1, Cmd::OfferSurvey { at: t(3) }).await;
        self.conv(
            X1,
            Cmd::AnswerSurvey {
                score: 5,
                comment: Some("很快".into()),
                at: t(4),
            },
        )
        .await;
    }

    /// X2: an angry customer, handed to A1, survey 3, an order attributed, a ticket.
    pub async fn handed_over(&mut self) {
        self.start(X2, C1, true, t(10)).await;
        self.conv(
            X2,
            Cmd::PredictScenario {
                candidates: vec![
                    scenario("refund-progress", 0.6),
                    scenario("return-exchange", 0.3),
                ],
                model_version: "prior-1".into(),
                features: Default::default(),
                at: t(10),
            },
        )
        .await;
        let message = self
            .customer_turn(X2, "退货申请三天了还没人处理!!!", t(11))
            .await;
        self.conv(
            X2,
            Cmd::AssessEmotion {
                message,
                score: -0.8,
                label: EmotionLabel::Angry,
                model_version: "emo-1".into(),
                at: t(11),
            },
        )
        .await;
        self.conv(
            X2,
            Cmd::SettleScenario {
                actual: ScenarioCode::from("return-exchange"),
                at: t(12),
            },
        )
        .await;
        self.hand_over(X2, HandoffReason::NegativeEmotion, t(12))
            .await;
        self.assign(X2, A1, t(14)).await;
        let message = MessageId::from(self.fresh());
        self.conv(
            X2,
            Cmd::RecordAgentTurn {
                agent: A1,
                message,
                text: "您好，我来帮您处理退货，请留下电话 13812345678 以便回访。".into(),
                at: t(15),
            },
        )
        .await;
        self.conv(
            X2,
            Cmd::Close {
                by: Party::Agent { agent: A1 },
                reason: CloseReason::Resolved,
                at: t(20),
            },
        )
        .await;
        self.run::<AgentDecider>(
            A1,
            AgentCommand::ReleaseChat {
                conversation: X2,
                at: t(20),
            },
            ActorKind::System,
        )
        .await;
        self.conv(X2, Cmd::OfferSurvey { at: t(20) }).await;
        self.conv(
            X2,
            Cmd::AnswerSurvey {
                score: 3,
                comment: None,
                at: t(21),
            },
        )
        .await;
        self.conv(
            X2,
            Cmd::AttributeOrder {
                customer: C1,
                order: OrderId::from("JD-2"),
                amount: Money::cny(12_900),
                placed_at: t(30),
                at: t(31),
            },
        )
        .await;
    }

    /// T1, opened from X2 and worked on.
    pub async fn ticket(&mut self) {
        let conversation = self
            .svc
            .load::<ConversationDecider>(X2)
            .await
            .unwrap()
            .state
            .snapshot(X2);
        let agent = Party::Agent { agent: A1 };
        self.run::<TicketDecider>(
            T1,
            TicketCommand::Open {
                ticket: T1,
                customer: C1,
                origin: TicketOrigin::FromConversation(conversation),
                kind: TicketKind::Return,
                priority: TicketPriority::Normal,
                subject: "退货未处理".into(),
                description: "客户的退货申请三天未处理".into(),
                order: None,
                at: t(22),
            },
            ActorKind::Agent,
        )
        .await;
        let assignee = self.agent_snapshot(A1).await;
        self.run::<TicketDecider>(
            T1,
            TicketCommand::Assign {
                assignee,
                by: agent.clone(),
                at: t(23),
            },
            ActorKind::Agent,
        )
        .await;
        self.run::<TicketDecider>(
            T1,
            TicketCommand::Edit {
                edit: TicketEdit {
                    priority: Some(TicketPriority::High),
                    ..TicketEdit::default()
                },
                by: agent.clone(),
                at: t(24),
            },
            ActorKind::Agent,
        )
        .await;
        self.run::<TicketDecider>(
            T1,
            TicketCommand::Comment {
                author: agent.clone(),
                body: "已联系仓库".into(),
                public: false,
                at: t(25),
            },
            ActorKind::Agent,
        )
        .await;
        self.run::<TicketDecider>(
            T1,
            TicketCommand::ChangeStatus {
                to: TicketStatus::Pending,
                by: agent,
                at: t(26),
            },
            ActorKind::Agent,
        )
        .await;
    }

    /// X4 (minute 25) and X3 (minute 30) ask for a human and wait in Q_SELF.
    pub async fn waiting(&mut self) {
        self.start(X4, C2, false, t(24)).await;
        self.customer_turn(X4, "转人工", t(25)).await;
        self.hand_over(X4, HandoffReason::CustomerAsked, t(25))
            .await;
        self.start(X3, C1, false, t(29)).await;
        self.customer_turn(X3, "I want to talk to a person", t(30))
            .await;
        self.hand_over(X3, HandoffReason::CustomerAsked, t(30))
            .await;
    }

    /// After [`Script::all`]: X4's customer gives up waiting and leaves; the next day they
    /// reopen it, ask again, and A1 takes it and answers. Its first queueing was never
    /// answered; the second was, two minutes after the agent took it.
    pub async fn reopened_next_day(&mut self) {
        self.conv(
            X4,
            Cmd::Close {
                by: Party::Customer,
                reason: CloseReason::CustomerLeft,
                at: t(40),
            },
        )
        .await;
        self.conv(
            X4,
            Cmd::Reopen {
                by: Party::Customer,
                at: t(1465),
            },
        )
        .await;
        let message = self
            .customer_turn(X4, "昨天等了半天没人理！！", t(1466))
            .await;
        self.conv(
            X4,
            Cmd::AssessEmotion {
                message,
                score: -0.8,
                label: EmotionLabel::Angry,
                model_version: "emo-1".into(),
                at: t(1466),
            },
        )
        .await;
        self.hand_over(X4, HandoffReason::NegativeEmotion, t(1466))
            .await;
        self.assign(X4, A1, t(1468)).await;
        let message = MessageId::from(self.fresh());
        self.conv(
            X4,
            Cmd::RecordAgentTurn {
                agent: A1,
                message,
                text: "您好，昨天让您久等了，我来处理。".into(),
                at: t(1470),
            },
        )
        .await;
    }

    pub async fn all(&mut self) {
        self.set_up().await;
        self.contained().await;
        self.handed_over().await;
        self.ticket().await;
        self.waiting().await;
    }
}

fn scenario(code: &str, p: f64) -> ScenarioCandidate {
    ScenarioCandidate {
        scenario: ScenarioCode::from(code),
        probability: p,
    }
}

/// A log and a read store on one backend.
pub struct Backend {
    pub log: Arc<AnyLog>,
    pub store: ReadStore,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(SqliteConfig::new(dir.path().join("kefu.db")))
        .await
        .unwrap();
    let store = ReadStore::open_sqlite(&dir.path().join("kefu.read.db")).unwrap();
    Backend {
        log: Arc::new(AnyLog::Sqlite(log)),
        store,
        _dir: Some(dir),
    }
}

/// None when PostgreSQL is not available (and not required).
pub async fn postgres() -> Option<Backend> {
    let config = kefu_eventlog::testing::fresh_config().await?;
    let schema = config.schema.clone();
    let log = StoreConfig::Postgres(config).open().await.unwrap();
    let store = ReadStore::open_postgres(&kefu_eventlog::testing::url(), schema.as_deref())
        .await
        .unwrap();
    Some(Backend {
        log: Arc::new(log),
        store,
        _dir: None,
    })
}
