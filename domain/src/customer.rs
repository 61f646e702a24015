//! The customer stream: the profile and orders the gateway imports from the shop, which triage
//! needs to predict what the customer is about to ask and which team should answer.
//!
//! The shop is the source of truth, and its gateway delivers at least once and not always in
//! order, so importing is an upsert: a duplicate or older snapshot of an order records nothing,
//! while an order that moves backwards in its lifecycle is refused as a gateway fault.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{BusinessLine, Money, require_code, require_locale, require_money};
use crate::decider::{Decider, domain_events};
use crate::error::DomainError;
use crate::ids::{Category, CustomerId, Locale, OrderId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CustomerTier {
    Regular,
    /// Paying membership (JD PLUS).
    Plus,
    Vip,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Paid,
    Shipped,
    Delivered,
    Returned,
    Refunded,
}

impl OrderStatus {
    /// The shop's order lifecycle: it only moves forward (the declaration order), may skip
    /// steps the gateway missed, and a parcel that never shipped cannot come back.
    pub fn can_become(self, to: OrderStatus) -> bool {
        to > self && !(self == OrderStatus::Paid && to == OrderStatus::Returned)
    }
}

/// An order as the shop's order system describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Order {
    pub order: OrderId,
    pub seller: BusinessLine,
    pub category: Category,
    pub status: OrderStatus,
    pub total: Money,
    /// What was paid back, once the order is refunded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded: Option<Money>,
    pub placed_at: DateTime<Utc>,
    /// When the shop moved the order into `status`.
    pub status_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: CustomerId,
    pub tier: CustomerTier,
    pub locale: Locale,
    pub orders: BTreeMap<OrderId, Order>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CustomerState {
    Unknown,
    Known(Customer),
}

impl CustomerState {
    /// What another stream's command needs to know about this customer.
    pub fn snapshot(&self, id: CustomerId) -> CustomerSnapshot {
        match self {
            CustomerState::Unknown => CustomerSnapshot::Unknown(id),
            CustomerState::Known(c) => CustomerSnapshot::Known(c.clone()),
        }
    }
}

/// The customer stream as the command service loaded it for a cross-stream rule.
#[derive(Debug, Clone, PartialEq)]
pub enum CustomerSnapshot {
    Unknown(CustomerId),
    Known(Customer),
}

impl CustomerSnapshot {
    pub fn require_known(&self) -> Result<&Customer, DomainError> {
        match self {
            CustomerSnapshot::Unknown(customer) => Err(DomainError::UnknownCustomer {
                customer: *customer,
            }),
            CustomerSnapshot::Known(c) => Ok(c),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CustomerCommand {
    /// The gateway's view of the profile: creates the customer or records what changed.
    RecordProfile {
        customer: CustomerId,
        tier: CustomerTier,
        locale: Locale,
        at: DateTime<Utc>,
    },
    /// The gateway's latest snapshot of one order.
    ImportOrder { order: Order, at: DateTime<Utc> },
}

/// The gateway saw this customer for the first time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerProfileRecorded {
    pub customer: CustomerId,
    pub tier: CustomerTier,
    pub locale: Locale,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerTierChanged {
    pub from: CustomerTier,
    pub to: CustomerTier,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerLocaleChanged {
    pub from: Locale,
    pub to: Locale,
    pub at: DateTime<Utc>,
}

/// An order the customer placed, first seen through the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderImported {
    pub order: Order,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderStatusChanged {
    pub order: OrderId,
    pub from: OrderStatus,
    pub to: OrderStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded: Option<Money>,
    /// When the shop changed the status.
    pub status_at: DateTime<Utc>,
    /// When kefu imported the change.
    pub at: DateTime<Utc>,
}

domain_events! {
    /// What happens in a `customer-<id>` stream.
    pub enum CustomerEvent in "customer" {
        CustomerProfileRecorded = 1,
        CustomerTierChanged = 1,
        CustomerLocaleChanged = 1,
        OrderImported = 1,
        OrderStatusChanged = 1,
    }
}

pub struct CustomerDecider;

impl Decider for CustomerDecider {
    type Id = CustomerId;
    type State = CustomerState;
    type Command = CustomerCommand;
    type Event = CustomerEvent;

    fn initial_state() -> CustomerState {
        CustomerState::Unknown
    }

    fn decide(
        state: &CustomerState,
        command: CustomerCommand,
    ) -> Result<Vec<CustomerEvent>, DomainError> {
        match command {
            CustomerCommand::RecordProfile {
                customer,
                tier,
                locale,
                at,
            } => record_profile(state, customer, tier, locale, at),
            CustomerCommand::ImportOrder { order, at } => import_order(state, order, at),
        }
    }

    fn evolve(state: CustomerState, event: &CustomerEvent) -> CustomerState {
        match (state, event) {
            (CustomerState::Unknown, CustomerEvent::CustomerProfileRecorded(e)) => {
                CustomerState::Known(Customer {
                    id: e.customer,
                    tier: e.tier,
                    locale: e.locale.clone(),
                    orders: BTreeMap::new(),
                })
            }
            (CustomerState::Known(mut c), event) => {
                match event {
                    CustomerEvent::CustomerProfileRecorded(e) => {
                        c.tier = e.tier;
                        c.locale = e.locale.clone();
                    }
                    CustomerEvent::CustomerTierChanged(e) => c.tier = e.to,
                    CustomerEvent::CustomerLocaleChanged(e) => c.locale = e.to.clone(),
                    CustomerEvent::OrderImported(e) => {
                        c.orders.insert(e.order.order.clone(), e.order.clone());
                    }
                    CustomerEvent::OrderStatusChanged(e) => {
                        if let Some(order) = c.orders.get_mut(&e.order) {
                            order.status = e.to;
                            order.status_at = e.status_at;
                            if e.refunded.is_some() {
                                order.refunded = e.refunded.clone();
                            }
                        }
                    }
                }
                CustomerState::Known(c)
            }
            (state, _) => state,
        }
    }
}

fn record_profile(
    state: &CustomerState,
    customer: CustomerId,
    tier: CustomerTier,
    locale: Locale,
    at: DateTime<Utc>,
) -> Result<Vec<CustomerEvent>, DomainError> {
    require_locale(&locale)?;
    let CustomerState::Known(known) = state else {
        return Ok(vec![
            CustomerProfileRecorded {
                customer,
                tier,
                locale,
                at,
            }
            .into(),
        ]);
    };
    if known.id != customer {
        return Err(DomainError::CustomerMismatch {
            expected: known.id,
            actual: customer,
        });
    }
    let mut events = Vec::new();
    if known.tier != tier {
        events.push(
            CustomerTierChanged {
                from: known.tier,
                to: tier,
                at,
            }
            .into(),
        );
    }
    if known.locale != locale {
        events.push(
            CustomerLocaleChanged {
                from: known.locale.clone(),
                to: locale,
                at,
            }
            .into(),
        );
    }
    Ok(events)
}

fn import_order(
    state: &CustomerState,
    order: Order,
    at: DateTime<Utc>,
) -> Result<Vec<CustomerEvent>, DomainError> {
    let CustomerState::Known(customer) = state else {
        return Err(DomainError::NotCreated { kind: "customer" });
    };
    validate_order(&order)?;
    let Some(known) = customer.orders.get(&order.order) else {
        return Ok(vec![OrderImported { order, at }.into()]);
    };
    let fixed: [(&'static str, bool); 4] = [
        ("seller", known.seller == order.seller),
        ("category", known.category == order.category),
        ("total", known.total == order.total),
        ("placed_at", known.placed_at == order.placed_at),
    ];
    if let Some((field, _)) = fixed.iter().find(|(_, same)| !same) {
        return Err(DomainError::OrderFactsChanged {
            order: order.order,
            field,
        });
    }
    // A replayed or late snapshot: the shop has already told us something newer.
    if order.status_at <= known.status_at || order.status == known.status {
        return Ok(vec![]);
    }
    if !known.status.can_become(order.status) {
        return Err(DomainError::InvalidOrderTransition {
            order: order.order,
            from: known.status,
            to: order.status,
        });
    }
    Ok(vec![
        OrderStatusChanged {
            order: order.order,
            from: known.status,
            to: order.status,
            refunded: order.refunded,
            status_at: order.status_at,
            at,
        }
        .into(),
    ])
}

fn validate_order(order: &Order) -> Result<(), DomainError> {
    require_code("order", order.order.as_str())?;
    require_code("category", order.category.as_str())?;
    if let BusinessLine::Merchant { merchant } = &order.seller {
        require_code("seller.merchant", merchant.as_str())?;
    }
    require_money("total", &order.total)?;
    if order.status_at < order.placed_at {
        return Err(DomainError::invalid(
            "status_at",
            "the status cannot change before the order was placed",
        ));
    }
    match (&order.refunded, order.status) {
        (Some(refunded), OrderStatus::Refunded) => {
            require_money("refunded", refunded)?;
            if refunded.currency != order.total.currency
                || refunded.minor_units > order.total.minor_units
            {
                return Err(DomainError::invalid(
                    "refunded",
                    "must be in the order's currency and at most its total",
                ));
            }
        }
        (Some(_), _) => {
            return Err(DomainError::invalid(
                "refunded",
                "only a refunded order has a refunded amount",
            ));
        }
        (None, _) => {}
    }
    Ok(())
}
