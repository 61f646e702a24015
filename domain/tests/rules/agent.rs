use kefu_domain::DomainError as E;
use kefu_domain::agent::{
    AgentCommand as C, AgentDecider, AgentEvent as Ev, AgentSnapshot, AgentState, AgentStatus,
};
use kefu_domain::ids::ConversationId;

use crate::assert_refused;
use crate::support::*;

type Agent = History<AgentDecider>;

fn chat(n: u128) -> ConversationId {
    ConversationId::from(uuid(0x2000 + n))
}

fn register(max_concurrent: u32) -> C {
    C::Register {
        agent: AGENT,
        name: "Li Wei".into(),
        skills: skills(&["after-sales"]),
        max_concurrent,
        at: t(0),
    }
}

fn status(status: AgentStatus) -> C {
    C::SetStatus { status, at: t(1) }
}

fn take(n: u128) -> C {
    C::TakeChat {
        conversation: chat(n),
        at: t(2),
    }
}

fn online(limit: u32) -> Agent {
    Agent::new()
        .given(register(limit))
        .given(status(AgentStatus::Online))
}

#[test]
fn a_new_agent_starts_offline_and_registers_once() {
    let registered = Agent::new().given(register(2));
    assert_refused!(registered.when(take(1)), E::AgentOffline { .. });
    assert_refused!(registered.when(register(2)), E::AlreadyExists { .. });
    assert_refused!(
        Agent::new().when(status(AgentStatus::Online)),
        E::NotCreated { .. }
    );
}

#[test]
fn the_chat_limit_is_between_one_and_fifty() {
    assert_refused!(
        Agent::new().when(register(0)),
        E::Validation {
            field: "max_concurrent",
            ..
        }
    );
    assert_refused!(
        Agent::new().when(register(51)),
        E::Validation {
            field: "max_concurrent",
            ..
        }
    );
}

#[test]
fn taking_chats_never_exceeds_the_limit() {
    let full = online(2).given(take(1)).given(take(2));
    assert_refused!(full.when(take(3)), E::AgentAtCapacity { limit: 2, .. });
    // A retried take of a seat already held changes nothing.
    assert_eq!(full.when(take(2)).unwrap(), vec![]);
    let freed = full.given(C::ReleaseChat {
        conversation: chat(1),
        at: t(3),
    });
    assert!(matches!(
        freed.when(take(3)).unwrap().as_slice(),
        [Ev::AgentChatTaken(e)] if e.active == 2
    ));
}

#[test]
fn an_away_agent_keeps_their_chats_but_takes_no_new_ones() {
    let away = online(3).given(take(1)).given(status(AgentStatus::Away));
    assert_refused!(away.when(take(2)), E::AgentAway { .. });
    assert_eq!(away.when(take(1)).unwrap(), vec![]);
}

#[test]
fn an_agent_holding_chats_cannot_go_offline_retire_or_shrink_below_them() {
    let busy = online(3).given(take(1)).given(take(2));
    assert_refused!(
        busy.when(status(AgentStatus::Offline)),
        E::AgentHasActiveChats { active: 2, .. }
    );
    assert_refused!(
        busy.when(C::Retire { at: t(5) }),
        E::AgentHasActiveChats { .. }
    );
    assert_refused!(
        busy.when(C::ChangeCapacity {
            max_concurrent: 1,
            at: t(5)
        }),
        E::CapacityBelowActiveChats {
            requested: 1,
            active: 2,
            ..
        }
    );
}

#[test]
fn releasing_a_seat_not_held_records_nothing() {
    assert_eq!(
        online(3)
            .when(C::ReleaseChat {
                conversation: chat(9),
                at: t(3)
            })
            .unwrap(),
        vec![]
    );
}

#[test]
fn a_retired_agent_refuses_everything_and_reads_as_retired() {
    let retired = online(3).given(C::Retire { at: t(5) });
    assert_refused!(
        retired.when(status(AgentStatus::Online)),
        E::AgentRetired { .. }
    );
    assert_refused!(retired.when(register(3)), E::AlreadyExists { .. });
    assert!(matches!(retired.state(), AgentState::Retired(_)));
    assert_eq!(
        retired.state().snapshot(AGENT),
        AgentSnapshot::Retired(AGENT)
    );
}

#[test]
fn repeated_presence_and_unchanged_skills_record_nothing() {
    let agent = online(3);
    assert_eq!(agent.when(status(AgentStatus::Online)).unwrap(), vec![]);
    assert_eq!(
        agent
            .when(C::ChangeSkills {
                skills: skills(&["after-sales"]),
                at: t(4)
            })
            .unwrap(),
        vec![]
    );
    assert_refused!(
        agent.when(C::ChangeSkills {
            skills: skills(&["after sales"]),
            at: t(4)
        }),
        E::Validation {
            field: "skills",
            ..
        }
    );
}
