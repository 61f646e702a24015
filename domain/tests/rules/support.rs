//! Fixtures shared by the given/when/then tests: fixed times and ids, and the other streams'
//! snapshots a command carries.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use kefu_domain::agent::{Agent, AgentSnapshot, AgentStatus};
use kefu_domain::common::{BusinessLine, Money};
use kefu_domain::customer::{Customer, CustomerSnapshot, CustomerTier, Order, OrderStatus};
use kefu_domain::ids::{
    AgentId, Category, ConversationId, CustomerId, KnowledgeEntryId, Locale, MerchantId, OrderId,
    QueueId, Skill, TicketId,
};
use kefu_domain::knowledge::{KnowledgeEntry, KnowledgeEntrySnapshot};
use kefu_domain::queue::{OpeningHours, Queue, QueueSnapshot, SlaTargets};
use kefu_domain::{Decider, DomainError, DomainEvent, fold};
use uuid::Uuid;

/// A stream's history, built by running commands that must be accepted (the "given"), so
/// the tests exercise the same rules the command service does.
pub struct History<D: Decider> {
    pub events: Vec<D::Event>,
}

impl<D: Decider> History<D> {
    pub fn new() -> Self {
        History { events: Vec::new() }
    }

    /// Records what `command` decides, as read back from the log: every event goes through
    /// `encode` and `decode` on the way.
    pub fn given(mut self, command: D::Command) -> Self {
        let events = self
            .when(command)
            .unwrap_or_else(|e| panic!("a given step was refused: {e}"));
        for event in events {
            let stored = event.encode().expect("every event encodes");
            let read = D::Event::decode(stored.event_type, stored.schema_version, stored.payload)
                .expect("every encoded event decodes");
            assert_eq!(
                read, event,
                "{} changed on its way through the log",
                stored.event_type
            );
            self.events.push(read);
        }
        self
    }

    pub fn when(&self, command: D::Command) -> Result<Vec<D::Event>, DomainError> {
        D::decide(&self.state(), command)
    }

    pub fn state(&self) -> D::State {
        fold::<D>(&self.events)
    }
}

/// Monday 2025-03-03 09:00 UTC plus `minutes`.
pub fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0).unwrap() + Duration::minutes(minutes)
}

pub fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

pub const CONVERSATION: ConversationId = ConversationId::from_uuid(Uuid::from_u128(0xc0));
pub const CUSTOMER: CustomerId = CustomerId::from_uuid(Uuid::from_u128(0xcafe));
pub const OTHER_CUSTOMER: CustomerId = CustomerId::from_uuid(Uuid::from_u128(0xcc));
pub const QUEUE: QueueId = QueueId::from_uuid(Uuid::from_u128(0x9));
pub const AGENT: AgentId = AgentId::from_uuid(Uuid::from_u128(0xa1));
pub const OTHER_AGENT: AgentId = AgentId::from_uuid(Uuid::from_u128(0xa2));
pub const ENTRY: KnowledgeEntryId = KnowledgeEntryId::from_uuid(Uuid::from_u128(0xe));
pub const TICKET: TicketId = TicketId::from_uuid(Uuid::from_u128(0x71));
pub const OTHER_TICKET: TicketId = TicketId::from_uuid(Uuid::from_u128(0x72));

pub fn skills(names: &[&str]) -> BTreeSet<Skill> {
    names.iter().map(|s| Skill::from(*s)).collect()
}

pub fn merchant_line() -> BusinessLine {
    BusinessLine::Merchant {
        merchant: MerchantId::from("pop-4711"),
    }
}

pub fn order(id: &str, seller: BusinessLine, status: OrderStatus) -> Order {
    Order {
        order: OrderId::from(id),
        seller,
        category: Category::from("mobile-phones"),
        status,
        total: Money::cny(399_900),
        refunded: None,
        placed_at: t(-3 * 24 * 60),
        status_at: t(-2 * 24 * 60),
    }
}

/// A customer with one self-operated order `JD-1` and one merchant order `POP-1`.
pub fn customer(tier: CustomerTier) -> CustomerSnapshot {
    let orders = [
        order("JD-1", BusinessLine::SelfOperated, OrderStatus::Delivered),
        order("POP-1", merchant_line(), OrderStatus::Shipped),
    ];
    CustomerSnapshot::Known(Customer {
        id: CUSTOMER,
        tier,
        locale: Locale::from("zh-CN"),
        orders: orders
            .into_iter()
            .map(|o| (o.order.clone(), o))
            .collect::<BTreeMap<_, _>>(),
    })
}

pub fn queue_with(business_line: BusinessLine, hours: OpeningHours) -> Queue {
    Queue {
        id: QUEUE,
        name: "After-sales, self-operated".into(),
        business_line,
        categories: [Category::from("mobile-phones")].into(),
        skills: skills(&["after-sales"]),
        priority: 3,
        sla: SlaTargets {
            first_response_secs: 30,
            resolution_secs: 1800,
        },
        hours,
    }
}

/// An active self-operated queue, open around the clock, needing the `after-sales` skill.
pub fn queue() -> QueueSnapshot {
    QueueSnapshot::Active(queue_with(BusinessLine::SelfOperated, OpeningHours::Always))
}

pub fn agent_with(id: AgentId, status: AgentStatus, limit: u32, held: &[ConversationId]) -> Agent {
    Agent {
        id,
        name: "Li Wei".into(),
        skills: skills(&["after-sales", "lang:zh"]),
        max_concurrent: limit,
        status,
        active_chats: held.iter().copied().collect(),
    }
}

/// An online agent with the `after-sales` skill and room for 3 chats.
pub fn agent(id: AgentId) -> AgentSnapshot {
    AgentSnapshot::Registered(agent_with(id, AgentStatus::Online, 3, &[]))
}

pub fn entry() -> KnowledgeEntrySnapshot {
    KnowledgeEntrySnapshot::Active(KnowledgeEntry {
        id: ENTRY,
        question: "Where is my refund?".into(),
        paraphrases: vec!["When do I get my money back?".into()],
        answer: "Refunds reach your account within 3 working days.".into(),
        category: Category::from("refunds"),
        locale: Locale::from("zh-CN"),
        revision: 2,
    })
}

/// Asserts that `result` is the error matched by `pattern`, showing what came instead.
#[macro_export]
macro_rules! assert_refused {
    ($result:expr, $pattern:pat) => {
        match $result {
            Err($pattern) => {}
            other => panic!("expected {}, got {other:?}", stringify!($pattern)),
        }
    };
}
