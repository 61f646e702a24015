use kefu_domain::DomainError as E;
use kefu_domain::common::BusinessLine;
use kefu_domain::common::Money;
use kefu_domain::customer::{
    CustomerCommand as C, CustomerDecider, CustomerEvent as Ev, CustomerTier, Order, OrderStatus,
};
use kefu_domain::ids::Locale;

use crate::assert_refused;
use crate::support::*;

type Customer = History<CustomerDecider>;

fn profile(tier: CustomerTier, locale: &str) -> C {
    C::RecordProfile {
        customer: CUSTOMER,
        tier,
        locale: Locale::from(locale),
        at: t(0),
    }
}

fn import(order: Order) -> C {
    C::ImportOrder { order, at: t(1) }
}

fn jd1(status: OrderStatus, status_minute: i64) -> Order {
    let mut o = order("JD-1", BusinessLine::SelfOperated, status);
    o.status_at = t(status_minute);
    o
}

fn known() -> Customer {
    Customer::new()
        .given(profile(CustomerTier::Regular, "zh-CN"))
        .given(import(jd1(OrderStatus::Shipped, 0)))
}

#[test]
fn a_profile_update_records_each_change() {
    let events = known().when(profile(CustomerTier::Vip, "en-US")).unwrap();
    assert!(matches!(
        events.as_slice(),
        [Ev::CustomerTierChanged(t), Ev::CustomerLocaleChanged(_)] if t.to == CustomerTier::Vip
    ));
    assert_eq!(
        known()
            .when(profile(CustomerTier::Regular, "zh-CN"))
            .unwrap(),
        vec![]
    );
    assert_refused!(
        known().when(C::RecordProfile {
            customer: OTHER_CUSTOMER,
            tier: CustomerTier::Regular,
            locale: Locale::from("zh-CN"),
            at: t(0)
        }),
        E::CustomerMismatch { .. }
    );
    assert_refused!(
        Customer::new().when(profile(CustomerTier::Regular, "中文")),
        E::Validation {
            field: "locale",
            ..
        }
    );
}

#[test]
fn orders_need_a_known_customer() {
    assert_refused!(
        Customer::new().when(import(jd1(OrderStatus::Paid, 0))),
        E::NotCreated { .. }
    );
}

#[test]
fn order_status_only_moves_forward_and_stale_snapshots_are_ignored() {
    let history = known();
    assert!(matches!(
        history.when(import(jd1(OrderStatus::Delivered, 5))).unwrap().as_slice(),
        [Ev::OrderStatusChanged(c)] if c.from == OrderStatus::Shipped && c.to == OrderStatus::Delivered
    ));
    // The gateway redelivered an older snapshot.
    assert_eq!(
        history.when(import(jd1(OrderStatus::Paid, -10))).unwrap(),
        vec![]
    );
    assert_refused!(
        history.when(import(jd1(OrderStatus::Paid, 5))),
        E::InvalidOrderTransition { .. }
    );
}

#[test]
fn order_facts_other_than_status_are_fixed() {
    let mut other_seller = jd1(OrderStatus::Delivered, 5);
    other_seller.seller = merchant_line();
    assert_refused!(
        known().when(import(other_seller)),
        E::OrderFactsChanged {
            field: "seller",
            ..
        }
    );
}

#[test]
fn only_a_refunded_order_has_a_refund_of_at_most_its_total() {
    let mut too_much = jd1(OrderStatus::Refunded, 5);
    too_much.refunded = Some(Money::cny(too_much.total.minor_units + 1));
    assert_refused!(
        known().when(import(too_much)),
        E::Validation {
            field: "refunded",
            ..
        }
    );
    let mut early = jd1(OrderStatus::Delivered, 5);
    early.refunded = Some(Money::cny(100));
    assert_refused!(
        known().when(import(early)),
        E::Validation {
            field: "refunded",
            ..
        }
    );
}
