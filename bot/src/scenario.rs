//! Scenario prediction and routing (分流).
//!
//! Before the customer types, the order the chat is about says a lot: a parcel shipped five
//! days ago means "where is it", one delivered yesterday means returns, an open refund means
//! "where is my money". [`prior`] turns order facts into a distribution over the scenarios
//! (the intent labels) from a hand-written table: there is no labelled history of order
//! contexts yet, and a table is a reason an agent can read. Once it exists, the same features
//! (which every prediction records) train a model in its place. After the first message,
//! [`combine`] multiplies the prior, tempered, into the text classifier's probabilities.
//! [`route`] then picks the business line, category and service type.

use std::collections::BTreeMap;

use kefu_domain::common::BusinessLine;
use kefu_domain::conversation::{RoutingReason, ScenarioCandidate};
use kefu_domain::customer::OrderStatus;
use kefu_domain::ids::{Category, ScenarioCode, Skill};
use serde::{Deserialize, Serialize};

use crate::intent::IntentScores;

pub const PRIOR_VERSION: &str = "scenario-prior-table-1";
pub const ROUTING_VERSION: &str = "routing-rules-1";

/// The scenarios: the intent labels of `bot/data/intents-*.jsonl`.
pub const SCENARIOS: [&str; 12] = [
    "where_is_my_parcel",
    "return_or_exchange",
    "refund_progress",
    "invoice",
    "presale_question",
    "complaint",
    "payment_issue",
    "coupon_promotion",
    "account_issue",
    "warranty_repair",
    "change_order",
    "other",
];

/// How much the order prior counts against the text once the customer has written.
const PRIOR_WEIGHT: f64 = 0.5;

/// What the order context says, as the conversation's start knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderFacts {
    pub status: OrderStatus,
    pub seller: BusinessLine,
    pub category: Category,
    /// Whole days since the order moved into `status`.
    pub days_in_status: u32,
    pub open_refund: bool,
}

/// A prediction with what it was made from, for the `ScenarioPredicted` event and for
/// training a successor model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Most probable first, at most three.
    pub candidates: Vec<ScenarioCandidate>,
    pub model_version: String,
    pub features: BTreeMap<String, serde_json::Value>,
}

fn weights(order: Option<&OrderFacts>) -> [f64; 12] {
    use OrderStatus::*;
    // Everything stays possible.
    let mut w = [0.5; 12];
    let mut add = |scenario: &str, x: f64| {
        if let Some(i) = SCENARIOS.iter().position(|s| *s == scenario) {
            w[i] += x;
        }
    };
    let Some(o) = order else {
        add("presale_question", 2.0);
        add("other", 2.0);
        add("account_issue", 1.0);
        add("coupon_promotion", 1.0);
        return w;
    };
    let d = o.days_in_status;
    match o.status {
        Paid => {
            add("where_is_my_parcel", if d >= 2 { 4.0 } else { 2.0 });
            add("change_order", 3.0);
            add("payment_issue", 1.5);
            add("invoice", 1.0);
            add("coupon_promotion", 1.0);
            if d >= 3 {
                add("complaint", 1.0);
            }
        }
        Shipped => {
            add("where_is_my_parcel", if d >= 3 { 7.0 } else { 4.0 });
            add("change_order", 1.0);
            if d >= 4 {
                add("complaint", 2.0);
            }
        }
        Delivered => {
            if d <= 7 {
                add("return_or_exchange", 4.0);
                add("warranty_repair", 1.5);
                add("complaint", 1.0);
                add("invoice", 1.5);
            } else {
                add("warranty_repair", 3.0);
                add("invoice", 2.0);
                add("return_or_exchange", 1.5);
            }
        }
        Returned => {
            add("refund_progress", 5.0);
            add("return_or_exchange", 2.0);
        }
        Refunded => {
            add("refund_progress", 3.0);
            add("invoice", 1.0);
            add("other", 1.0);
        }
    }
    if o.open_refund {
        add("refund_progress", 5.0);
    }
    if matches!(o.seller, BusinessLine::Merchant { .. }) {
        let i = SCENARIOS
            .iter()
            .position(|s| *s == "complaint")
            .unwrap_or(5);
        w[i] *= 1.5;
    }
    w
}

fn normalise(w: &[f64]) -> Vec<f64> {
    let sum: f64 = w.iter().sum::<f64>().max(1e-12);
    w.iter().map(|x| x / sum).collect()
}

fn order_features(order: Option<&OrderFacts>) -> BTreeMap<String, serde_json::Value> {
    let mut f = BTreeMap::new();
    match order {
        None => {
            f.insert("order".into(), serde_json::Value::Null);
        }
        Some(o) => {
            f.insert("status".into(), serde_json::json!(o.status));
            f.insert(
                "seller".into(),
                serde_json::json!(match o.seller {
                    BusinessLine::SelfOperated => "self_operated",
                    BusinessLine::Merchant { .. } => "merchant",
                }),
            );
            f.insert("category".into(), serde_json::json!(o.category));
            f.insert("days_in_status".into(), serde_json::json!(o.days_in_status));
            f.insert("open_refund".into(), serde_json::json!(o.open_refund));
        }
    }
    f
}

fn top3(p: &[f64], labels: &[&str]) -> Vec<ScenarioCandidate> {
    let mut ranked: Vec<(usize, f64)> = p.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
        .into_iter()
        .take(3)
        .map(|(i, p)| ScenarioCandidate {
            scenario: ScenarioCode::new(labels[i]),
            probability: (p * 10_000.0).round() / 10_000.0,
        })
        .collect()
}

/// The distribution over [`SCENARIOS`] before the customer types.
pub fn prior_distribution(order: Option<&OrderFacts>) -> Vec<f64> {
    normalise(&weights(order))
}

/// The top three scenarios before the customer types.
pub fn prior(order: Option<&OrderFacts>) -> Prediction {
    Prediction {
        candidates: top3(&prior_distribution(order), &SCENARIOS),
        model_version: PRIOR_VERSION.to_owned(),
        features: order_features(order),
    }
}

/// After the first message: the text classifier's probabilities times the tempered prior.
/// Labels the classifier does not know keep only the prior's word.
pub fn combine(
    text: &IntentScores,
    text_model_version: &str,
    order: Option<&OrderFacts>,
) -> Prediction {
    let prior = prior_distribution(order);
    let uniform = 1.0 / SCENARIOS.len() as f64;
    let posterior: Vec<f64> = SCENARIOS
        .iter()
        .zip(&prior)
        .map(|(s, p)| text.probability(s).max(1e-6) * (p / uniform).powf(PRIOR_WEIGHT))
        .collect();
    let mut features = order_features(order);
    features.insert(
        "text_top".into(),
        serde_json::json!(text.ranked.iter().take(3).collect::<Vec<_>>()),
    );
    Prediction {
        candidates: top3(&normalise(&posterior), &SCENARIOS),
        model_version: format!("{PRIOR_VERSION}+{text_model_version}"),
        features,
    }
}

/// The KB categories a scenario's questions usually fall in.
pub fn kb_categories(scenario: &str) -> &'static [&'static str] {
    match scenario {
        "where_is_my_parcel" => &["shipping", "delivery_delay"],
        "return_or_exchange" => &["returns_exchanges"],
        "refund_progress" => &["refunds"],
        "invoice" => &["invoices"],
        "presale_question" => &["shipping", "payment", "coupons"],
        "complaint" => &["merchant_disputes", "delivery_delay"],
        "payment_issue" => &["payment"],
        "coupon_promotion" => &["coupons"],
        "account_issue" => &["account"],
        "warranty_repair" => &["warranty"],
        "change_order" => &["shipping", "payment"],
        _ => &[],
    }
}

/// The prediction as a prior over KB categories, for the FAQ ranker's category feature.
pub fn category_prior(prediction: &Prediction) -> crate::faq::CategoryPrior {
    let mut prior = crate::faq::CategoryPrior::new();
    for c in &prediction.candidates {
        let categories = kb_categories(c.scenario.as_str());
        for k in categories {
            *prior.entry((*k).to_owned()).or_default() += c.probability / categories.len() as f64;
        }
    }
    prior
}

/// The kind of help a scenario needs, which picks the team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceType {
    PreSales,
    Logistics,
    AfterSales,
    Finance,
    Complaints,
    Account,
    General,
}

impl ServiceType {
    pub fn of(scenario: &str) -> ServiceType {
        match scenario {
            "presale_question" | "coupon_promotion" => ServiceType::PreSales,
            "where_is_my_parcel" | "change_order" => ServiceType::Logistics,
            "return_or_exchange" | "warranty_repair" => ServiceType::AfterSales,
            "refund_progress" | "invoice" | "payment_issue" => ServiceType::Finance,
            "complaint" => ServiceType::Complaints,
            "account_issue" => ServiceType::Account,
            _ => ServiceType::General,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::PreSales => "pre-sales",
            ServiceType::Logistics => "logistics",
            ServiceType::AfterSales => "after-sales",
            ServiceType::Finance => "finance",
            ServiceType::Complaints => "complaints",
            ServiceType::Account => "account",
            ServiceType::General => "general",
        }
    }
}

/// Where a conversation should go: the workers map it onto a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// The shop's own team, or the merchant's.
    pub business_line: BusinessLine,
    pub category: Option<Category>,
    pub service: ServiceType,
    pub reasons: Vec<RoutingReason>,
    pub model_version: String,
}

impl Route {
    /// The skills a queue for this route requires, e.g. `after-sales`, `line:merchant`,
    /// `category:mobile-phones`.
    pub fn skills(&self) -> Vec<Skill> {
        let mut s = vec![Skill::new(self.service.as_str())];
        s.push(Skill::new(match self.business_line {
            BusinessLine::SelfOperated => "line:self-operated".to_owned(),
            BusinessLine::Merchant { ref merchant } => format!("line:merchant:{merchant}"),
        }));
        if let Some(c) = &self.category {
            s.push(Skill::new(format!("category:{c}")));
        }
        s
    }
}

/// Routes on the settled or top scenario and the order. Merchants answer for their own
/// goods, except complaints about them and account or payment matters, which only the shop
/// can settle.
pub fn route(scenario: &ScenarioCode, order: Option<&OrderFacts>) -> Route {
    let service = ServiceType::of(scenario.as_str());
    let mut reasons = vec![RoutingReason::Scenario {
        scenario: scenario.clone(),
    }];
    let business_line = match order {
        Some(o) => {
            reasons.push(RoutingReason::OrderSeller {
                seller: o.seller.clone(),
            });
            let shop_only = matches!(
                service,
                ServiceType::Complaints | ServiceType::Account | ServiceType::Finance
            );
            if shop_only {
                BusinessLine::SelfOperated
            } else {
                o.seller.clone()
            }
        }
        None => BusinessLine::SelfOperated,
    };
    let category = order.map(|o| o.category.clone());
    if let Some(c) = &category {
        reasons.push(RoutingReason::Category {
            category: c.clone(),
        });
    }
    Route {
        business_line,
        category,
        service,
        reasons,
        model_version: ROUTING_VERSION.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use kefu_domain::ids::MerchantId;

    use super::*;

    fn order(status: OrderStatus, days: u32, open_refund: bool) -> OrderFacts {
        OrderFacts {
            status,
            seller: BusinessLine::Merchant {
                merchant: MerchantId::new("m-1"),
            },
            category: Category::new("mobile-phones"),
            days_in_status: days,
            open_refund,
        }
    }

    fn top(p: &Prediction) -> &str {
        p.candidates[0].scenario.as_str()
    }

    #[test]
    fn the_order_predicts_the_scenario() {
        assert_eq!(
            top(&prior(Some(&order(OrderStatus::Shipped, 5, false)))),
            "where_is_my_parcel"
        );
        assert_eq!(
            top(&prior(Some(&order(OrderStatus::Delivered, 1, false)))),
            "return_or_exchange"
        );
        assert_eq!(
            top(&prior(Some(&order(OrderStatus::Delivered, 1, true)))),
            "refund_progress"
        );
        let p = prior(None);
        assert_eq!(p.candidates.len(), 3);
        assert_eq!(p.model_version, PRIOR_VERSION);
    }

    #[test]
    fn the_text_outweighs_the_prior_when_it_is_clear() {
        let text = IntentScores {
            ranked: vec![("invoice".into(), 0.9), ("where_is_my_parcel".into(), 0.1)],
        };
        let o = order(OrderStatus::Shipped, 5, false);
        let p = combine(&text, "intent-test", Some(&o));
        assert_eq!(top(&p), "invoice");
        assert!(p.features.contains_key("status"));
    }

    #[test]
    fn routing_follows_the_seller_except_for_shop_matters() {
        let o = order(OrderStatus::Delivered, 1, false);
        let r = route(&ScenarioCode::new("return_or_exchange"), Some(&o));
        assert!(matches!(r.business_line, BusinessLine::Merchant { .. }));
        assert_eq!(r.service, ServiceType::AfterSales);
        assert_eq!(r.reasons.len(), 3);
        let r = route(&ScenarioCode::new("complaint"), Some(&o));
        assert_eq!(r.business_line, BusinessLine::SelfOperated);
        assert!(r.skills().iter().any(|s| s.as_str() == "complaints"));
    }
}
