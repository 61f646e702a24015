use kefu_domain::DomainError as E;
use kefu_domain::agent::AgentSnapshot;
use kefu_domain::common::{Channel, Party};
use kefu_domain::conversation::{ConversationCommand, ConversationDecider, ConversationSnapshot};
use kefu_domain::customer::CustomerTier;
use kefu_domain::ids::OrderId;
use kefu_domain::ticket::{
    FieldChange, TicketCommand as C, TicketDecider, TicketEvent as Ev, TicketKind, TicketOrigin,
    TicketPriority, TicketSnapshot, TicketState, TicketStatus,
};

use crate::assert_refused;
use crate::support::*;

type Ticket = History<TicketDecider>;

const ALL: [TicketStatus; 5] = [
    TicketStatus::New,
    TicketStatus::Open,
    TicketStatus::Pending,
    TicketStatus::Solved,
    TicketStatus::Closed,
];

fn open(origin: TicketOrigin) -> C {
    C::Open {
        ticket: TICKET,
        customer: CUSTOMER,
        origin,
        kind: TicketKind::Refund,
        priority: TicketPriority::Normal,
        subject: "Refund not received".into(),
        description: "Customer returned the phone on 1 March; no refund yet.".into(),
        order: None,
        at: t(0),
    }
}

fn by_agent() -> Ticket {
    Ticket::new().given(open(TicketOrigin::ByAgent(agent(AGENT))))
}

fn assigned() -> Ticket {
    by_agent().given(C::Assign {
        assignee: agent(AGENT),
        by: Party::Agent { agent: AGENT },
        at: t(1),
    })
}

fn status(to: TicketStatus) -> C {
    C::ChangeStatus {
        to,
        by: Party::Agent { agent: AGENT },
        at: t(2),
    }
}

fn comment(author: Party, public: bool) -> C {
    C::Comment {
        author,
        body: "Any news?".into(),
        public,
        at: t(3),
    }
}

/// A ticket brought to `target` along the shortest allowed path. Assigning a new ticket opens
/// it, so only the unassigned ticket is New.
fn at_status(target: TicketStatus) -> Ticket {
    let path: &[TicketStatus] = match target {
        TicketStatus::New => return by_agent(),
        TicketStatus::Open => &[],
        TicketStatus::Pending => &[TicketStatus::Pending],
        TicketStatus::Solved => &[TicketStatus::Solved],
        TicketStatus::Closed => &[TicketStatus::Solved, TicketStatus::Closed],
    };
    path.iter()
        .fold(assigned(), |history, to| history.given(status(*to)))
}

fn status_of(history: &Ticket) -> TicketStatus {
    match history.state() {
        TicketState::Opened(t) => t.status,
        TicketState::NotOpened => panic!("no ticket"),
    }
}

#[test]
fn status_changes_follow_the_state_machine() {
    for from in ALL {
        let history = at_status(from);
        assert_eq!(status_of(&history), from);
        for to in ALL {
            let result = history.when(status(to));
            if from.can_change_to(to) {
                assert!(
                    matches!(result.as_deref(), Ok([Ev::TicketStatusChanged(c)]) if c.from == from && c.to == to),
                    "{from:?} -> {to:?} should be allowed, got {result:?}"
                );
            } else {
                assert_refused!(result, E::InvalidTransition { .. });
            }
        }
    }
    let allowed: Vec<_> = ALL
        .iter()
        .flat_map(|f| ALL.iter().map(move |t| (*f, *t)))
        .filter(|(f, t)| f.can_change_to(*t))
        .collect();
    use TicketStatus::*;
    assert_eq!(
        allowed,
        vec![
            (New, Open),
            (New, Pending),
            (Open, Pending),
            (Open, Solved),
            (Pending, Open),
            (Pending, Solved),
            (Solved, Closed)
        ]
    );
}

#[test]
fn a_ticket_is_solved_only_once_someone_owns_it() {
    // New → Pending needs no owner (waiting for the customer's photos, say); solving does.
    let pending = by_agent().given(status(TicketStatus::Pending));
    assert_refused!(
        pending.when(status(TicketStatus::Solved)),
        E::TicketUnassigned { .. }
    );
}

#[test]
fn picking_up_a_new_ticket_opens_it_and_records_the_assignee_change() {
    let events = by_agent()
        .when(C::Assign {
            assignee: agent(AGENT),
            by: Party::System,
            at: t(1),
        })
        .unwrap();
    assert!(matches!(
        events.as_slice(),
        [Ev::TicketFieldChanged(f), Ev::TicketStatusChanged(s)]
            if f.change == FieldChange::Assignee { before: None, after: Some(AGENT) }
                && s.to == TicketStatus::Open
    ));
    assert_refused!(
        by_agent().when(C::Assign {
            assignee: AgentSnapshot::Retired(OTHER_AGENT),
            by: Party::System,
            at: t(1)
        }),
        E::AgentRetired { .. }
    );
}

#[test]
fn field_edits_record_before_and_after() {
    let events = by_agent()
        .when(C::Edit {
            edit: kefu_domain::ticket::TicketEdit {
                priority: Some(TicketPriority::Urgent),
                kind: Some(TicketKind::Refund),
                order: Some(Some(OrderId::from("JD-1"))),
                ..Default::default()
            },
            by: Party::Agent { agent: AGENT },
            at: t(4),
        })
        .unwrap();
    let changes: Vec<_> = events
        .iter()
        .map(|e| match e {
            Ev::TicketFieldChanged(f) => f.change.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            FieldChange::Priority {
                before: TicketPriority::Normal,
                after: TicketPriority::Urgent
            },
            FieldChange::Order {
                before: None,
                after: Some(OrderId::from("JD-1"))
            },
        ]
    );
}

#[test]
fn a_customer_reply_puts_the_ticket_back_in_the_team_court() {
    assert!(matches!(
        at_status(TicketStatus::Pending).when(comment(Party::Customer, true)).unwrap().as_slice(),
        [Ev::TicketCommented(_), Ev::TicketStatusChanged(s)] if s.to == TicketStatus::Open
    ));
    let reopened = at_status(TicketStatus::Solved).given(comment(Party::Customer, true));
    assert_eq!(status_of(&reopened), TicketStatus::Open);
    assert_refused!(
        by_agent().when(comment(Party::Customer, false)),
        E::Validation {
            field: "public",
            ..
        }
    );
}

#[test]
fn a_closed_ticket_takes_nothing_more() {
    let closed = at_status(TicketStatus::Closed);
    assert_refused!(
        closed.when(comment(Party::Agent { agent: AGENT }, false)),
        E::TicketClosed { .. }
    );
    assert_refused!(
        closed.when(C::Reopen {
            reason: "customer called".into(),
            by: Party::Customer,
            at: t(9)
        }),
        E::TicketClosed { .. }
    );
}

#[test]
fn only_a_solved_ticket_is_reopened() {
    let reopen = || C::Reopen {
        reason: "the refund bounced".into(),
        by: Party::Customer,
        at: t(9),
    };
    assert_refused!(
        assigned().when(reopen()),
        E::InvalidTransition {
            from: TicketStatus::Open,
            ..
        }
    );
    let reopened = at_status(TicketStatus::Solved).given(reopen());
    assert_eq!(status_of(&reopened), TicketStatus::Open);
}

#[test]
fn escalation_raises_priority_and_stops_at_the_top_level() {
    let escalate = || C::Escalate {
        reason: "customer threatens to complain to the regulator".into(),
        by: Party::Agent { agent: AGENT },
        at: t(5),
    };
    assert!(matches!(
        assigned().when(escalate()).unwrap().as_slice(),
        [Ev::TicketEscalated(e), Ev::TicketFieldChanged(f)]
            if e.level == 1 && matches!(f.change, FieldChange::Priority { after: TicketPriority::High, .. })
    ));
    let top = assigned()
        .given(escalate())
        .given(escalate())
        .given(escalate());
    assert_refused!(top.when(escalate()), E::EscalationLimit { level: 3, .. });
    assert_refused!(
        at_status(TicketStatus::Solved).when(escalate()),
        E::Validation {
            field: "status",
            ..
        }
    );
}

#[test]
fn a_ticket_merges_only_into_another_open_ticket_of_the_same_customer() {
    let merge = |into| C::Merge {
        into,
        by: Party::Agent { agent: AGENT },
        at: t(6),
    };
    let mut target = match by_agent().state() {
        TicketState::Opened(t) => t,
        TicketState::NotOpened => unreachable!(),
    };
    assert_refused!(
        by_agent().when(merge(TicketSnapshot::Known(target.clone()))),
        E::InvalidMerge { .. }
    );
    target.id = OTHER_TICKET;
    let merged = by_agent().given(merge(TicketSnapshot::Known(target.clone())));
    assert_eq!(status_of(&merged), TicketStatus::Closed);
    assert_refused!(
        by_agent().when(merge(TicketSnapshot::Unknown(OTHER_TICKET))),
        E::UnknownTicket { .. }
    );
    let mut foreign = target.clone();
    foreign.customer = OTHER_CUSTOMER;
    assert_refused!(
        by_agent().when(merge(TicketSnapshot::Known(foreign))),
        E::InvalidMerge { .. }
    );
    target.status = TicketStatus::Closed;
    assert_refused!(
        by_agent().when(merge(TicketSnapshot::Known(target))),
        E::InvalidMerge { .. }
    );
}

#[test]
fn a_ticket_from_a_conversation_belongs_to_its_customer_and_inherits_its_order() {
    let conversation = History::<ConversationDecider>::new()
        .given(ConversationCommand::Start {
            conversation: CONVERSATION,
            customer: customer(CustomerTier::Regular),
            channel: Channel::Web,
            order: Some(OrderId::from("JD-1")),
            bot_enabled: true,
            at: t(0),
        })
        .state()
        .snapshot(CONVERSATION);
    let events = Ticket::new()
        .when(open(TicketOrigin::FromConversation(conversation.clone())))
        .unwrap();
    assert!(matches!(
        events.as_slice(),
        [Ev::TicketOpened(o)] if o.order == Some(OrderId::from("JD-1"))
    ));
    let C::Open {
        ticket,
        origin,
        kind,
        priority,
        subject,
        description,
        order,
        at,
        ..
    } = open(TicketOrigin::FromConversation(conversation))
    else {
        unreachable!()
    };
    let someone_else = C::Open {
        ticket,
        customer: OTHER_CUSTOMER,
        origin,
        kind,
        priority,
        subject,
        description,
        order,
        at,
    };
    assert_refused!(Ticket::new().when(someone_else), E::CustomerMismatch { .. });
    assert_refused!(
        Ticket::new().when(open(TicketOrigin::FromConversation(
            ConversationSnapshot::Unknown(CONVERSATION)
        ))),
        E::UnknownConversation { .. }
    );
    assert_refused!(
        by_agent().when(open(TicketOrigin::ByAgent(agent(AGENT)))),
        E::AlreadyExists { .. }
    );
}

// ---- several changes as one decision ----

fn priority(to: TicketPriority) -> C {
    C::Edit {
        edit: kefu_domain::ticket::TicketEdit {
            priority: Some(to),
            ..Default::default()
        },
        by: Party::Agent { agent: AGENT },
        at: t(2),
    }
}

#[test]
fn several_changes_decide_as_one_each_seeing_the_ones_before() {
    // Assigning opens a new ticket, so solving it in the same decision is allowed.
    let events = kefu_domain::decide_all::<TicketDecider>(
        &by_agent().state(),
        [
            C::Assign {
                assignee: agent(AGENT),
                by: Party::Agent { agent: AGENT },
                at: t(1),
            },
            status(TicketStatus::Solved),
        ],
    )
    .unwrap();
    assert!(matches!(events.last(), Some(Ev::TicketStatusChanged(_))));
    // Alone, the same status change is refused: a new ticket is not being worked on.
    assert_refused!(
        by_agent().when(status(TicketStatus::Solved)),
        E::InvalidTransition { .. }
    );
}

#[test]
fn a_refusal_anywhere_refuses_the_whole_decision() {
    let solved = at_status(TicketStatus::Solved);
    let decided = kefu_domain::decide_all::<TicketDecider>(
        &solved.state(),
        [priority(TicketPriority::Urgent), status(TicketStatus::New)],
    );
    assert!(
        matches!(decided, Err(E::InvalidTransition { .. })),
        "{decided:?}"
    );
    // The priority change alone would have been recorded.
    assert!(
        !solved
            .when(priority(TicketPriority::Urgent))
            .unwrap()
            .is_empty()
    );
}
