//! The desk's fixed shape: queues, skills, knowledge entries, customers and their orders, as
//! the simulator keeps them beside the streams.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use kefu_domain::common::{BusinessLine, Money};
use kefu_domain::customer::{CustomerDecider, CustomerTier, Order, OrderStatus};
use kefu_domain::ids::{Category, MerchantId, OrderId, Skill};
use kefu_domain::knowledge::KnowledgeDecider;
use kefu_domain::queue::{OpeningHours, OpeningWindow, QueueDecider, SlaTargets, Weekday};

use super::stream::Stream;
use super::texts::{Lang, MERCHANTS, SERVICE_CATEGORIES, TOPICS};

/// Merchants the generator knows.
pub(crate) const MERCHANT_COUNT: usize = MERCHANTS.len();
/// Merchants a default desk has.
pub(crate) const DEFAULT_MERCHANTS: usize = 4;
/// China Standard Time, the desk's local time.
pub(crate) const LOCAL_OFFSET_MINUTES: i32 = 8 * 60;

pub(crate) fn knowledge_capacity() -> usize {
    TOPICS.len() * 4
}

// ---- skills ----

/// Skills as bits, so the assigner compares them without allocating: the self-operated
/// specialities, then one bit per merchant team.
pub(crate) const SKILL_LOGISTICS: u32 = 1 << 0;
pub(crate) const SKILL_AFTER_SALES: u32 = 1 << 1;
pub(crate) const SKILL_BILLING: u32 = 1 << 2;
pub(crate) const SKILL_ACCOUNT: u32 = 1 << 3;
pub(crate) const SKILL_VIP: u32 = 1 << 4;
pub(crate) const SKILL_ENGLISH: u32 = 1 << 5;
/// Every self-operated agent has it and every self-operated queue requires it, so merchant
/// teams never pick up JD's own conversations.
pub(crate) const SKILL_RETAIL: u32 = 1 << 6;
const SKILL_NAMES: [&str; 7] = [
    "logistics",
    "after-sales",
    "billing",
    "account",
    "vip",
    "lang:en",
    "jd-retail",
];
pub(crate) const SPECIALITIES: [u32; 4] = [
    SKILL_LOGISTICS,
    SKILL_AFTER_SALES,
    SKILL_BILLING,
    SKILL_ACCOUNT,
];

pub(crate) fn merchant_skill(merchant: usize) -> u32 {
    1 << (SKILL_NAMES.len() + merchant)
}

pub(crate) fn skill_set(mask: u32) -> BTreeSet<Skill> {
    let mut skills = BTreeSet::new();
    for (bit, name) in SKILL_NAMES.iter().enumerate() {
        if mask & (1 << bit) != 0 {
            skills.insert(Skill::from(*name));
        }
    }
    for (m, merchant) in MERCHANTS.iter().enumerate() {
        if mask & merchant_skill(m) != 0 {
            skills.insert(Skill::new(format!("merchant:{}", merchant.id)));
        }
    }
    skills
}

// ---- queues ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueRole {
    /// Serves the self-operated service categories listed.
    Specialist,
    General,
    Vip,
    English,
    Merchant(usize),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Hours {
    Always,
    /// 08:00-23:00 every day.
    Daytime,
    /// 09:00-21:00 on weekdays, 10:00-18:00 at weekends.
    Office,
}

pub(crate) struct QueueSpec {
    pub name: &'static str,
    pub role: QueueRole,
    pub categories: &'static [&'static str],
    pub skills: u32,
    pub priority: u8,
    pub first_response_secs: u32,
    pub resolution_secs: u32,
    pub hours: Hours,
}

pub(crate) const SELF_OPERATED: [QueueSpec; 8] = [
    QueueSpec {
        name: "自营-物流配送",
        role: QueueRole::Specialist,
        categories: &["shipping", "delays"],
        skills: SKILL_RETAIL | SKILL_LOGISTICS,
        priority: 3,
        first_response_secs: 60,
        resolution_secs: 1_800,
        hours: Hours::Always,
    },
    QueueSpec {
        name: "自营-售后退换",
        role: QueueRole::Specialist,
        categories: &["returns", "refunds", "warranty"],
        skills: SKILL_RETAIL | SKILL_AFTER_SALES,
        priority: 2,
        first_response_secs: 45,
        resolution_secs: 2_400,
        hours: Hours::Always,
    },
    QueueSpec {
        name: "自营-发票",
        role: QueueRole::Specialist,
        categories: &["invoices"],
        skills: SKILL_RETAIL | SKILL_BILLING,
        priority: 4,
        first_response_secs: 120,
        resolution_secs: 3_600,
        hours: Hours::Daytime,
    },
    QueueSpec {
        name: "自营-支付与优惠",
        role: QueueRole::Specialist,
        categories: &["payment", "coupons"],
        skills: SKILL_RETAIL | SKILL_BILLING,
        priority: 3,
        first_response_secs: 60,
        resolution_secs: 1_800,
        hours: Hours::Always,
    },
    QueueSpec {
        name: "自营-账户安全",
        role: QueueRole::Specialist,
        categories: &["account"],
        skills: SKILL_RETAIL | SKILL_ACCOUNT,
        priority: 3,
        first_response_secs: 60,
        resolution_secs: 1_800,
        hours: Hours::Daytime,
    },
    QueueSpec {
        name: "自营-综合服务",
        role: QueueRole::General,
        categories: &SERVICE_CATEGORIES,
        skills: SKILL_RETAIL,
        priority: 4,
        first_response_secs: 90,
        resolution_secs: 2_400,
        hours: Hours::Always,
    },
    QueueSpec {
        name: "自营-VIP专线",
        role: QueueRole::Vip,
        categories: &SERVICE_CATEGORIES,
        skills: SKILL_RETAIL | SKILL_VIP,
        priority: 1,
        first_response_secs: 20,
        resolution_secs: 1_200,
        hours: Hours::Always,
    },
    QueueSpec {
        name: "Self-operated English desk",
        role: QueueRole::English,
        categories: &SERVICE_CATEGORIES,
        skills: SKILL_RETAIL | SKILL_ENGLISH,
        priority: 3,
        first_response_secs: 90,
        resolution_secs: 2_400,
        hours: Hours::Daytime,
    },
];

pub(crate) fn opening_hours(hours: Hours) -> OpeningHours {
    let every_day = |opens: u16, closes: u16, days: &[Weekday]| -> Vec<OpeningWindow> {
        days.iter()
            .map(|day| OpeningWindow {
                day: *day,
                opens_minute: opens,
                closes_minute: closes,
            })
            .collect()
    };
    use Weekday::*;
    match hours {
        Hours::Always => OpeningHours::Always,
        Hours::Daytime => OpeningHours::Weekly {
            utc_offset_minutes: LOCAL_OFFSET_MINUTES,
            windows: every_day(8 * 60, 23 * 60, &[Mon, Tue, Wed, Thu, Fri, Sat, Sun]),
        },
        Hours::Office => {
            let mut windows = every_day(9 * 60, 21 * 60, &[Mon, Tue, Wed, Thu, Fri]);
            windows.extend(every_day(10 * 60, 18 * 60, &[Sat, Sun]));
            OpeningHours::Weekly {
                utc_offset_minutes: LOCAL_OFFSET_MINUTES,
                windows,
            }
        }
    }
}

pub(crate) fn sla(first_response_secs: u32, resolution_secs: u32) -> SlaTargets {
    SlaTargets {
        first_response_secs,
        resolution_secs,
    }
}

pub(crate) fn categories(codes: &[&str]) -> BTreeSet<Category> {
    codes.iter().map(|c| Category::from(*c)).collect()
}

pub(crate) fn merchant_line(merchant: usize) -> BusinessLine {
    BusinessLine::Merchant {
        merchant: MerchantId::from(MERCHANTS[merchant].id),
    }
}

pub(crate) struct QueueSim {
    pub stream: Stream<QueueDecider>,
    pub role: QueueRole,
    pub name: String,
    pub skills: u32,
    pub hours: OpeningHours,
    /// Service categories served (specialist queues).
    pub categories: &'static [&'static str],
    pub retired: bool,
}

impl QueueSim {
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        !self.retired && self.hours.is_open_at(at)
    }
}

// ---- knowledge ----

pub(crate) struct KbSim {
    pub stream: Stream<KnowledgeDecider>,
    pub topic: usize,
    pub lang: Lang,
    pub merchant: bool,
    pub active: bool,
}

/// Where the bot looks for answers: entries grouped by category, language and seller.
pub(crate) fn kb_group(category: usize, lang: Lang, merchant: bool) -> usize {
    category * 4 + usize::from(lang == Lang::En) * 2 + usize::from(merchant)
}

pub(crate) fn category_index(code: &str) -> usize {
    SERVICE_CATEGORIES
        .iter()
        .position(|c| *c == code)
        .unwrap_or(0)
}

/// The order in which the knowledge base is filled: every category, language and seller
/// gets its first topic before any gets its second, so a small knowledge base still covers
/// every group.
pub(crate) fn knowledge_plan() -> Vec<(usize, Lang, bool)> {
    let mut by_category: Vec<Vec<usize>> = vec![Vec::new(); SERVICE_CATEGORIES.len()];
    for (t, topic) in TOPICS.iter().enumerate() {
        by_category[category_index(topic.category)].push(t);
    }
    let depth = by_category.iter().map(Vec::len).max().unwrap_or(0);
    let mut plan = Vec::new();
    for rank in 0..depth {
        for topics in &by_category {
            if let Some(&t) = topics.get(rank) {
                for (lang, merchant) in [
                    (Lang::Zh, false),
                    (Lang::Zh, true),
                    (Lang::En, false),
                    (Lang::En, true),
                ] {
                    plan.push((t, lang, merchant));
                }
            }
        }
    }
    plan
}

// ---- customers and orders ----

#[derive(Debug, Clone)]
pub(crate) struct OrderSim {
    pub id: OrderId,
    /// `None` for self-operated.
    pub merchant: Option<usize>,
    pub product: usize,
    pub item: usize,
    pub total_fen: i64,
    pub placed_at: DateTime<Utc>,
    /// The order's life as the shop will report it, including steps still in the future.
    pub steps: Vec<(OrderStatus, DateTime<Utc>)>,
}

impl OrderSim {
    pub fn seller(&self) -> BusinessLine {
        match self.merchant {
            None => BusinessLine::SelfOperated,
            Some(m) => merchant_line(m),
        }
    }

    /// The last step that has happened by `at`.
    pub fn status_at(&self, at: DateTime<Utc>) -> (OrderStatus, DateTime<Utc>) {
        self.steps
            .iter()
            .rev()
            .find(|(_, t)| *t <= at)
            .copied()
            .unwrap_or((OrderStatus::Paid, self.placed_at))
    }

    /// The gateway's snapshot of this order at a step.
    pub fn snapshot(&self, status: OrderStatus, status_at: DateTime<Utc>) -> Order {
        Order {
            order: self.id.clone(),
            seller: self.seller(),
            category: Category::from(super::texts::PRODUCT_CATEGORIES[self.product].code),
            status,
            total: Money::cny(self.total_fen),
            refunded: (status == OrderStatus::Refunded).then(|| Money::cny(self.total_fen)),
            placed_at: self.placed_at,
            status_at,
        }
    }

    /// Adds a return and the refund after it, when a conversation set one in motion.
    pub fn plan_return(
        &mut self,
        from: DateTime<Utc>,
        returned_after: Duration,
        refunded_after: Duration,
    ) -> bool {
        let (status, _) = self.status_at(from);
        let already = self
            .steps
            .iter()
            .any(|(s, _)| matches!(s, OrderStatus::Returned | OrderStatus::Refunded));
        if status != OrderStatus::Delivered || already {
            return false;
        }
        let returned = from + returned_after;
        self.steps.push((OrderStatus::Returned, returned));
        self.steps
            .push((OrderStatus::Refunded, returned + refunded_after));
        true
    }
}

pub(crate) struct CustomerSim {
    pub stream: Stream<CustomerDecider>,
    pub tier: CustomerTier,
    pub locale: &'static str,
    pub orders: Vec<OrderSim>,
    pub last_contact: DateTime<Utc>,
    /// Tickets of this customer not known to be closed, oldest first (indices).
    pub open_tickets: Vec<usize>,
    pub phone: String,
    pub email: String,
}

impl CustomerSim {
    pub fn lang(&self) -> Lang {
        if self.locale.starts_with("en") {
            Lang::En
        } else {
            Lang::Zh
        }
    }
}
