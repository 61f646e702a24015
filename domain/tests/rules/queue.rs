use chrono::{TimeZone, Utc};
use kefu_domain::DomainError as E;
use kefu_domain::common::BusinessLine;
use kefu_domain::ids::Category;
use kefu_domain::queue::{
    OpeningHours, OpeningWindow, QueueChanges, QueueCommand as C, QueueDecider, QueueEvent as Ev,
    QueueSnapshot, SlaTargets, Weekday,
};

use crate::assert_refused;
use crate::support::*;

type Queue = History<QueueDecider>;

fn define_with(priority: u8, sla: SlaTargets, hours: OpeningHours) -> C {
    C::Define {
        queue: QUEUE,
        name: "After-sales, self-operated".into(),
        business_line: BusinessLine::SelfOperated,
        categories: [Category::from("mobile-phones")].into(),
        skills: skills(&["after-sales"]),
        priority,
        sla,
        hours,
        at: t(0),
    }
}

const SLA: SlaTargets = SlaTargets {
    first_response_secs: 30,
    resolution_secs: 1800,
};

fn defined() -> Queue {
    Queue::new().given(define_with(3, SLA, OpeningHours::Always))
}

fn weekdays_nine_to_six_beijing() -> OpeningHours {
    OpeningHours::Weekly {
        utc_offset_minutes: 8 * 60,
        windows: [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ]
        .into_iter()
        .map(|day| OpeningWindow {
            day,
            opens_minute: 9 * 60,
            closes_minute: 18 * 60,
        })
        .collect(),
    }
}

#[test]
fn a_queue_is_defined_once_with_valid_priority_sla_and_hours() {
    assert_refused!(
        defined().when(define_with(3, SLA, OpeningHours::Always)),
        E::AlreadyExists { .. }
    );
    assert_refused!(
        Queue::new().when(define_with(6, SLA, OpeningHours::Always)),
        E::Validation {
            field: "priority",
            ..
        }
    );
    let slower_first_response = SlaTargets {
        first_response_secs: 3600,
        resolution_secs: 1800,
    };
    assert_refused!(
        Queue::new().when(define_with(3, slower_first_response, OpeningHours::Always)),
        E::Validation { field: "sla", .. }
    );
    let no_windows = OpeningHours::Weekly {
        utc_offset_minutes: 480,
        windows: vec![],
    };
    assert_refused!(
        Queue::new().when(define_with(3, SLA, no_windows)),
        E::Validation {
            field: "hours.windows",
            ..
        }
    );
}

#[test]
fn opening_hours_are_read_in_the_queue_local_time() {
    let hours = weekdays_nine_to_six_beijing();
    // Monday 01:30 UTC is 09:30 in Beijing; Friday 10:30 UTC is 18:30 there.
    assert!(hours.is_open_at(Utc.with_ymd_and_hms(2025, 3, 3, 1, 30, 0).unwrap()));
    assert!(!hours.is_open_at(Utc.with_ymd_and_hms(2025, 3, 7, 10, 30, 0).unwrap()));
    // Sunday 17:00 UTC is already Monday 01:00 in Beijing: still closed.
    assert!(!hours.is_open_at(Utc.with_ymd_and_hms(2025, 3, 2, 17, 0, 0).unwrap()));
}

#[test]
fn a_change_records_only_what_changed() {
    let change = C::Change {
        changes: QueueChanges {
            priority: Some(1),
            name: Some("After-sales, self-operated".into()),
            ..QueueChanges::default()
        },
        at: t(5),
    };
    let events = defined().when(change).unwrap();
    assert!(matches!(
        events.as_slice(),
        [Ev::QueueChanged(c)] if c.priority == Some(1) && c.name.is_none()
    ));
    let no_change = C::Change {
        changes: QueueChanges::default(),
        at: t(5),
    };
    assert_eq!(defined().when(no_change).unwrap(), vec![]);
}

#[test]
fn a_retired_or_undefined_queue_cannot_be_changed() {
    let retire = || C::Retire {
        reason: "merged into the phones queue".into(),
        at: t(9),
    };
    let retired = defined().given(retire());
    assert_refused!(retired.when(retire()), E::QueueRetired { .. });
    let empty_categories = C::Change {
        changes: QueueChanges {
            categories: Some([].into()),
            ..QueueChanges::default()
        },
        at: t(10),
    };
    assert_refused!(
        retired.when(empty_categories.clone()),
        E::QueueRetired { .. }
    );
    assert_refused!(Queue::new().when(retire()), E::NotCreated { .. });
    assert_refused!(
        defined().when(empty_categories),
        E::Validation {
            field: "categories",
            ..
        }
    );
    assert_eq!(
        retired.state().snapshot(QUEUE),
        QueueSnapshot::Retired(QUEUE)
    );
}
