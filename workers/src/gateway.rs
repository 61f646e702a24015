//! The order-system gateway: a customer's order as the shop's order system knows it now
//! (status, seller, category, how long it has been in that status, whether a refund is open),
//! for triage's order prior.
//!
//! kefu mirrors the shop's order system into the customer streams (`OrderImported`,
//! `OrderStatusChanged`, see `domain/src/customer.rs`), so the gateway reads the customer's
//! stream: the order as last imported, not as it stood when the chat began (which is all the
//! conversation itself carries). It is the one place a dependency on the order system sits,
//! so it is where that dependency is switched off (`Switch::OrderGateway`) and where a drill
//! injects latency and errors ([`Faults`]); a lookup that takes longer than its deadline is
//! as unavailable as one that fails. Callers degrade rather than fail: the router predicts
//! from the words alone.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kefu_bot::scenario::OrderFacts;
use kefu_domain::customer::{CustomerDecider, CustomerState, Order, OrderStatus};
use kefu_domain::ids::{CustomerId, OrderId};
use kefu_eventlog::EventLog;
use kefu_eventlog::faults::Faults;

use kefu_desk::command::{CommandError, CommandService};

/// How long a lookup may take before it counts as unavailable.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the order gateway is unavailable: {0}")]
    Unavailable(String),
    #[error("the order gateway did not answer within {0:?}")]
    Timeout(Duration),
}

pub struct OrderGateway<L> {
    commands: CommandService<L>,
    faults: Faults,
    deadline: Duration,
}

impl<L> Clone for OrderGateway<L> {
    fn clone(&self) -> Self {
        OrderGateway {
            commands: self.commands.clone(),
            faults: self.faults.clone(),
            deadline: self.deadline,
        }
    }
}

impl<L: EventLog> OrderGateway<L> {
    /// A gateway over the customer streams; `faults` is its drill dial.
    pub fn new(commands: CommandService<L>, faults: Faults) -> Self {
        OrderGateway {
            commands,
            faults,
            deadline: DEFAULT_DEADLINE,
        }
    }

    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The order's facts as of `now`; `None` when the shop has no such order for the
    /// customer.
    pub async fn order(
        &self,
        customer: CustomerId,
        order: &OrderId,
        now: DateTime<Utc>,
    ) -> Result<Option<OrderFacts>, GatewayError> {
        let lookup = async {
            self.faults
                .before_call()
                .await
                .map_err(|f| GatewayError::Unavailable(f.to_string()))?;
            let loaded = self
                .commands
                .load::<CustomerDecider>(customer)
                .await
                .map_err(|e: CommandError| GatewayError::Unavailable(e.to_string()))?;
            Ok(match loaded.state {
                CustomerState::Known(c) => c.orders.get(order).map(|o| facts(o, now)),
                CustomerState::Unknown => None,
            })
        };
        tokio::time::timeout(self.deadline, lookup)
            .await
            .map_err(|_| GatewayError::Timeout(self.deadline))?
    }
}

/// What the scenario model reads of an order at `now`. A refund is open when the goods are
/// back (`Returned`) and the shop has not yet paid back (`Refunded` records the amount): the
/// order system has no separate refund-request record.
pub fn facts(order: &Order, now: DateTime<Utc>) -> OrderFacts {
    OrderFacts {
        status: order.status,
        seller: order.seller.clone(),
        category: order.category.clone(),
        days_in_status: u32::try_from((now - order.status_at).num_days().max(0))
            .unwrap_or(u32::MAX),
        open_refund: order.status == OrderStatus::Returned && order.refunded.is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use kefu_domain::common::{BusinessLine, Money};
    use kefu_domain::ids::Category;

    fn order(status: OrderStatus, refunded: Option<Money>) -> Order {
        Order {
            order: OrderId::new("o-1"),
            seller: BusinessLine::SelfOperated,
            category: Category::new("phones"),
            status,
            total: Money {
                minor_units: 100,
                currency: "CNY".into(),
            },
            refunded,
            placed_at: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
            status_at: Utc.with_ymd_and_hms(2026, 11, 3, 12, 0, 0).unwrap(),
        }
    }

    #[test]
    fn days_in_status_and_open_refund_come_from_the_order() {
        let now = Utc.with_ymd_and_hms(2026, 11, 7, 11, 0, 0).unwrap();
        let f = facts(&order(OrderStatus::Returned, None), now);
        assert_eq!((f.days_in_status, f.open_refund), (3, true));
        let paid = Money {
            minor_units: 100,
            currency: "CNY".into(),
        };
        let f = facts(&order(OrderStatus::Refunded, Some(paid)), now);
        assert!(!f.open_refund);
        let before = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        assert_eq!(
            facts(&order(OrderStatus::Shipped, None), before).days_in_status,
            0,
            "a clock behind the shop's never makes negative days"
        );
    }
}
