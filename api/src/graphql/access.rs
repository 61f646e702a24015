//! Who may do what. Decisions about one conversation are taken against its stream, folded
//! from the log (the truth), never against a read model that may lag behind.
//!
//! | role | may |
//! |---|---|
//! | customer | their own conversations: start, write, settle the scenario, ask for a human, close, reopen, answer the survey |
//! | agent | conversations assigned to them, and those waiting in queues whose skills they have; their own status |
//! | supervisor | conversations and agents of the queues their token names; routing, assignment |
//! | analyst | statistics and search (read-only) |
//! | auditor | the audit trail and the raw event history (read-only) |
//! | admin | queues, agents, the knowledge base |

use kefu_domain::agent::AgentDecider;
use kefu_domain::conversation::{Conversation, ConversationSnapshot, Handling};
use kefu_domain::ids::{AgentId, ConversationId, CustomerId, QueueId};
use uuid::Uuid;

use super::{Api, ApiError, Caller};
use crate::auth::{Principal, Role};

/// Refuses callers whose role is not one of `roles`.
pub(crate) fn require<'c>(
    caller: &'c Caller,
    roles: &[Role],
    what: &str,
) -> Result<&'c Principal, ApiError> {
    let p = &caller.principal;
    if roles.contains(&p.role) {
        Ok(p)
    } else {
        let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::Forbidden(format!(
            "a {} may not {what} (allowed: {})",
            p.role,
            allowed.join(", ")
        )))
    }
}

fn uuid_of(p: &Principal) -> Result<Uuid, ApiError> {
    p.id.parse().map_err(|_| {
        ApiError::Unauthenticated(format!(
            "a {} token must carry a UUID as its subject, not {:?}",
            p.role, p.id
        ))
    })
}

pub(crate) fn customer_id(p: &Principal) -> Result<CustomerId, ApiError> {
    uuid_of(p).map(CustomerId::from_uuid)
}

pub(crate) fn agent_id(p: &Principal) -> Result<AgentId, ApiError> {
    uuid_of(p).map(AgentId::from_uuid)
}

/// The queue a conversation is in or was routed to.
pub(crate) fn queue_of(conv: &Conversation) -> Option<QueueId> {
    match &conv.handling {
        Handling::Queued { queue, .. } | Handling::WithAgent { queue, .. } => Some(*queue),
        _ => conv.routing.as_ref().map(|r| r.queue),
    }
}

/// Loads a conversation the caller may see, or says why not. Unknown conversations and
/// conversations the caller may not see get the same answer, so ids cannot be probed.
pub(crate) async fn conversation(
    api: &Api,
    caller: &Caller,
    id: ConversationId,
) -> Result<Box<Conversation>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no conversation {id} that you may see"));
    let ConversationSnapshot::Known(conv) = api.desk.conversation(id).await? else {
        return Err(not_found());
    };
    let p = &caller.principal;
    let allowed = match p.role {
        Role::Customer => conv.customer == customer_id(p)?,
        Role::Agent => {
            let me = agent_id(p)?;
            conv.handling.agent() == Some(me) || serves_queue_of(api, me, &conv).await?
        }
        Role::Supervisor => queue_of(&conv).is_some_and(|q| p.queues.contains(&q.to_string())),
        Role::Analyst | Role::Auditor | Role::Admin | Role::Integration => false,
    };
    if allowed { Ok(conv) } else { Err(not_found()) }
}

/// An agent serves a queue when they have every skill it requires.
async fn serves_queue_of(api: &Api, agent: AgentId, conv: &Conversation) -> Result<bool, ApiError> {
    let Handling::Queued { skills, .. } = &conv.handling else {
        return Ok(false);
    };
    let state = api.desk.commands().load::<AgentDecider>(agent).await?.state;
    Ok(match state {
        kefu_domain::agent::AgentState::Registered(a) => skills.is_subset(&a.skills),
        _ => false,
    })
}

/// A supervisor's read must name one of their queues (`queue`); other roles pass.
pub(crate) fn supervisor_names_a_queue(
    caller: &Caller,
    queue: Option<&str>,
    what: &str,
) -> Result<(), ApiError> {
    if caller.principal.role != Role::Supervisor {
        return Ok(());
    }
    let q = queue.ok_or_else(|| {
        ApiError::Validation(format!("queue: a supervisor {what} one of their queues"))
    })?;
    require_queue(caller, QueueId::from_uuid(super::uuid("queue", q)?))
}

/// Supervisors act on their queues only; admins on all.
pub(crate) fn require_queue(caller: &Caller, queue: QueueId) -> Result<(), ApiError> {
    let p = &caller.principal;
    match p.role {
        Role::Admin => Ok(()),
        Role::Supervisor if p.queues.contains(&queue.to_string()) => Ok(()),
        _ => Err(ApiError::Forbidden(format!(
            "queue {queue} is not one of your queues"
        ))),
    }
}

/// The agent an agent-or-manager operation is about: an agent names themselves (or no one:
/// then it is them); supervisors and admins must name one.
pub(crate) fn target_agent(
    p: &Principal,
    asked: Option<&str>,
    what: &str,
) -> Result<AgentId, ApiError> {
    let asked = asked
        .map(|a| super::uuid("agent", a).map(AgentId::from_uuid))
        .transpose()?;
    match (p.role, asked) {
        (Role::Agent, None) => agent_id(p),
        (Role::Agent, Some(a)) if a == agent_id(p)? => Ok(a),
        (Role::Agent, Some(_)) => Err(ApiError::Forbidden(format!(
            "an agent may {what} of their own only"
        ))),
        (_, Some(a)) => Ok(a),
        (_, None) => Err(ApiError::Validation(format!("agent: whose {what}?"))),
    }
}
