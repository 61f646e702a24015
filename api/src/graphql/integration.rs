//! What the shop's order system sends kefu: customer profiles and order snapshots, which
//! triage reads to predict what a customer is about to ask. Only the `integration` role may
//! send them; the domain validates them (codes, money, an order's lifecycle only moving
//! forward) and an order resent unchanged records nothing.

use async_graphql::{Enum, InputObject};
use chrono::{DateTime, Utc};
use kefu_domain::common::{BusinessLine, Money};
use kefu_domain::customer::Order;
use kefu_domain::ids::{Category, MerchantId, OrderId};

use super::ApiError;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kefu_domain::customer::OrderStatus")]
pub enum OrderStatus {
    Paid,
    Shipped,
    Delivered,
    Returned,
    Refunded,
}

/// An amount in minor units of its currency (fen for CNY).
#[derive(InputObject, Debug, Clone)]
pub struct MoneyInput {
    /// Minor units (fen for CNY); not negative.
    pub minor_units: i64,
    /// ISO 4217 code, e.g. `CNY`.
    pub currency: String,
}

impl From<MoneyInput> for Money {
    fn from(m: MoneyInput) -> Self {
        Money {
            minor_units: m.minor_units,
            currency: m.currency,
        }
    }
}

/// The order system's latest snapshot of one order.
#[derive(InputObject, Debug, Clone)]
pub struct OrderInput {
    /// The customer who placed it (a UUID, as in their token).
    pub customer_id: String,
    /// The shop's order number.
    pub order_id: String,
    /// The merchant who sells it; absent for the self-operated business.
    pub merchant: Option<String>,
    /// The product category (a code such as `phones`).
    pub category: String,
    pub status: OrderStatus,
    pub total: MoneyInput,
    /// What was paid back; only for a refunded order.
    pub refunded: Option<MoneyInput>,
    pub placed_at: DateTime<Utc>,
    /// When the shop moved the order into `status`.
    pub status_at: DateTime<Utc>,
}

impl OrderInput {
    /// The domain's order; the domain checks the rest when it decides.
    pub fn into_order(self) -> Result<Order, ApiError> {
        if self.order_id.trim().is_empty() {
            return Err(ApiError::Validation("orderId: must not be empty".into()));
        }
        Ok(Order {
            order: OrderId::new(self.order_id),
            seller: match self.merchant {
                Some(m) => BusinessLine::Merchant {
                    merchant: MerchantId::new(m),
                },
                None => BusinessLine::SelfOperated,
            },
            category: Category::new(self.category),
            status: self.status.into(),
            total: self.total.into(),
            refunded: self.refunded.map(Into::into),
            placed_at: self.placed_at,
            status_at: self.status_at,
        })
    }
}
