//! The access policy: what each role may do (one table, [`TABLE`], every root field of the
//! schema against every role) and what each may see (the scope functions below). It is the
//! only place that decides access:
//!
//! - before a request runs, [`judge`] checks every root field it selects (through aliases,
//!   fragment spreads and inline fragments) against the table, so a request is allowed or
//!   refused whole and a refused one runs nothing;
//! - resolvers ask the same table again ([`require`]) and then the scope of what they read or
//!   change: a conversation ([`conversation`]), an agent ([`manage_agent`]), the queues
//!   ([`queue_scope`]), search ([`search_scope`], applied inside the index query);
//! - subscriptions re-ask [`conversation`] on every event that can change who may see it.
//!
//! Decisions about one conversation, agent or queue are taken against its stream, folded from
//! the log (the truth), never against a read model that may lag behind. Something outside the
//! caller's scope answers `NOT_FOUND`, exactly as something that does not exist, so ids cannot
//! be probed; a role refused an operation outright gets `FORBIDDEN`.

use std::collections::{BTreeSet, HashSet};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{Pos, ServerError};
use kefu_domain::agent::{Agent, AgentDecider, AgentState};
use kefu_domain::conversation::{Conversation, ConversationSnapshot, Handling};
use kefu_domain::ids::{AgentId, ConversationId, CustomerId, QueueId, Skill, TicketId};
use kefu_domain::queue::{QueueDecider, QueueState, can_serve};
use kefu_domain::ticket::{Ticket, TicketDecider, TicketSource, TicketState};
use kefu_eventlog::RecordedEvent;
use kefu_projections::search::SearchScope;
use kefu_projections::tickets::TicketFilter;
use uuid::Uuid;

use super::{Api, ApiError, Caller};
use crate::auth::{Principal, Role};

/// The root types of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Query,
    Mutation,
    Subscription,
}

impl Root {
    pub fn as_str(self) -> &'static str {
        match self {
            Root::Query => "Query",
            Root::Mutation => "Mutation",
            Root::Subscription => "Subscription",
        }
    }
}

/// Who may run one root field.
#[derive(Debug)]
pub struct Rule {
    pub root: Root,
    pub field: &'static str,
    pub roles: &'static [Role],
    /// What the field does, for refusals ("a customer may not {what}").
    pub what: &'static str,
}

const fn rule(root: Root, field: &'static str, roles: &'static [Role], what: &'static str) -> Rule {
    Rule {
        root,
        field,
        roles,
        what,
    }
}

use Role::{Admin, Agent as Ag, Analyst, Auditor, Customer, Integration, Supervisor};
use Root::{Mutation as M, Query as Q, Subscription as S};

/// Every operation and the roles that may run it; the scope each role then gets is in the
/// functions below and in the README's role table. A root field missing here is refused to
/// everyone (and fails the schema test), so a new operation cannot ship unreviewed.
pub const TABLE: &[Rule] = &[
    rule(Q, "me", &Role::ALL, "ask who they are"),
    rule(
        Q,
        "node",
        &[Customer, Ag, Supervisor, Analyst, Admin],
        "look things up by global id",
    ),
    rule(
        Q,
        "conversation",
        &[Ag, Supervisor],
        "read the desk's view of a conversation (a customer reads myConversation)",
    ),
    rule(
        Q,
        "conversations",
        &[Ag, Supervisor],
        "list the desk's conversations (a customer reads myConversations)",
    ),
    rule(
        Q,
        "myConversation",
        &[Customer],
        "read a conversation as its customer",
    ),
    rule(
        Q,
        "myConversations",
        &[Customer],
        "list their own conversations",
    ),
    rule(
        Q,
        "queues",
        &[Ag, Supervisor, Analyst, Admin],
        "see the queues",
    ),
    rule(Q, "workbench", &[Ag, Supervisor, Admin], "see a workbench"),
    rule(
        Q,
        "tickets",
        &[Ag, Supervisor, Admin],
        "list the desk's tickets (a customer reads myTickets)",
    ),
    rule(
        Q,
        "ticket",
        &[Ag, Supervisor, Admin],
        "see the desk's view of a ticket (a customer reads myTicket)",
    ),
    rule(Q, "myTicket", &[Customer], "read a ticket as its customer"),
    rule(Q, "myTickets", &[Customer], "list their own tickets"),
    rule(Q, "stats", &[Analyst, Supervisor, Admin], "read statistics"),
    rule(Q, "search", &[Ag, Supervisor, Analyst, Admin], "search"),
    rule(
        Q,
        "forecast",
        &[Supervisor, Analyst, Admin],
        "read forecasts",
    ),
    rule(
        Q,
        "whatIf",
        &[Supervisor, Analyst, Admin],
        "replay history with changes",
    ),
    rule(
        Q,
        "switches",
        &[Admin, Supervisor, Analyst, Ag],
        "see the switches",
    ),
    rule(Q, "faults", &[Admin], "see the drills' faults"),
    rule(
        Q,
        "probeRuns",
        &[Admin, Supervisor, Analyst],
        "see the probe runs",
    ),
    rule(Q, "auditTrail", &[Auditor], "read the audit trail"),
    rule(Q, "streamEvents", &[Auditor], "read the event history"),
    rule(M, "startConversation", &[Customer], "start a conversation"),
    rule(M, "sendMessage", &[Customer, Ag], "send messages"),
    rule(M, "confirmScenario", &[Customer], "confirm a scenario"),
    rule(M, "requestHuman", &[Customer], "ask for a human"),
    rule(
        M,
        "routeConversation",
        &[Supervisor, Admin],
        "route conversations",
    ),
    rule(M, "acceptConversation", &[Ag], "accept conversations"),
    rule(
        M,
        "assignConversation",
        &[Supervisor],
        "assign conversations",
    ),
    rule(M, "transferConversation", &[Ag], "transfer conversations"),
    rule(M, "addNote", &[Ag], "add notes"),
    rule(
        M,
        "closeConversation",
        &[Customer, Ag],
        "close conversations",
    ),
    rule(
        M,
        "reopenConversation",
        &[Customer, Ag],
        "reopen conversations",
    ),
    rule(M, "offerSurvey", &[Ag], "offer surveys"),
    rule(M, "answerSurvey", &[Customer], "answer surveys"),
    rule(M, "openTicket", &[Ag], "open tickets"),
    rule(M, "updateTicket", &[Ag, Supervisor], "update tickets"),
    rule(M, "commentTicket", &[Ag, Supervisor], "comment on tickets"),
    rule(M, "defineQueue", &[Admin], "define queues"),
    rule(M, "changeQueue", &[Admin], "change queues"),
    rule(M, "setFault", &[Admin], "inject faults"),
    rule(M, "setSwitch", &[Admin], "flip switches"),
    rule(M, "retireQueue", &[Admin], "retire queues"),
    rule(M, "registerAgent", &[Admin], "register agents"),
    rule(M, "changeAgent", &[Admin, Supervisor], "change agents"),
    rule(
        M,
        "setAgentStatus",
        &[Ag, Supervisor, Admin],
        "set agent status",
    ),
    rule(
        M,
        "createKnowledgeEntry",
        &[Admin],
        "edit the knowledge base",
    ),
    rule(M, "editKnowledgeEntry", &[Admin], "edit the knowledge base"),
    rule(
        M,
        "retireKnowledgeEntry",
        &[Admin],
        "edit the knowledge base",
    ),
    // The order system's feed (issue 13); the integration role may do nothing else.
    rule(M, "recordOrder", &[Integration], "record orders"),
    rule(
        M,
        "recordCustomerProfile",
        &[Integration],
        "record customer profiles",
    ),
    rule(
        S,
        "conversationTurns",
        &[Customer, Ag, Supervisor],
        "follow conversations",
    ),
    rule(
        S,
        "conversationEvents",
        &[Customer, Ag, Supervisor],
        "follow conversations",
    ),
    rule(S, "queueChanges", &[Ag, Supervisor], "follow queues"),
    rule(
        S,
        "ticketUpdates",
        &[Ag, Supervisor, Admin],
        "follow tickets",
    ),
];

/// Introspection is open to every caller with a token: the schema is public anyway.
const INTROSPECTION: [&str; 3] = ["__typename", "__schema", "__type"];

/// The table's entry for a root field.
pub fn rule_of(root: Root, field: &str) -> Option<&'static Rule> {
    TABLE.iter().find(|r| r.root == root && r.field == field)
}

/// Whether `role` may run `field` of `root`; the refusal names who may.
pub fn decide(role: Role, root: Root, field: &str) -> Result<(), ApiError> {
    if INTROSPECTION.contains(&field) {
        return Ok(());
    }
    let Some(rule) = rule_of(root, field) else {
        return Err(ApiError::Forbidden(format!(
            "{}.{field} has no entry in the access policy, so no one may run it",
            root.as_str()
        )));
    };
    if rule.roles.contains(&role) {
        return Ok(());
    }
    let allowed: Vec<&str> = rule.roles.iter().map(|r| r.as_str()).collect();
    Err(ApiError::Forbidden(format!(
        "a {role} may not {} (allowed: {})",
        rule.what,
        allowed.join(", ")
    )))
}

/// A resolver's own check against the table (the request was checked whole already; this
/// keeps a resolver safe wherever the schema runs without the boundary's [`judge`]).
pub(crate) fn require<'c>(
    caller: &'c Caller,
    root: Root,
    field: &str,
) -> Result<&'c Principal, ApiError> {
    decide(caller.principal.role, root, field).map(|()| &caller.principal)
}

/// The root fields an operation selects, through fragment spreads and inline fragments (each
/// fragment walked once), with where each is written. None when the document does not say
/// which operation runs; async-graphql then refuses it itself.
fn root_fields(
    doc: &ExecutableDocument,
    operation: Option<&str>,
) -> Option<(Root, Vec<(String, Pos)>)> {
    let op = match (&doc.operations, operation) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name)?,
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next()?,
        (DocumentOperations::Multiple(_), None) => return None,
    };
    let root = match op.node.ty {
        OperationType::Query => Root::Query,
        OperationType::Mutation => Root::Mutation,
        OperationType::Subscription => Root::Subscription,
    };
    fn walk(
        set: &SelectionSet,
        doc: &ExecutableDocument,
        seen: &mut HashSet<String>,
        out: &mut Vec<(String, Pos)>,
    ) {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => out.push((f.node.name.node.to_string(), f.pos)),
                Selection::InlineFragment(i) => walk(&i.node.selection_set.node, doc, seen, out),
                Selection::FragmentSpread(s) => {
                    let name = &s.node.fragment_name.node;
                    if seen.insert(name.to_string())
                        && let Some(fragment) = doc.fragments.get(name)
                    {
                        walk(&fragment.node.selection_set.node, doc, seen, out);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &op.node.selection_set.node,
        doc,
        &mut HashSet::new(),
        &mut out,
    );
    Some((root, out))
}

/// The request-wide decision, taken by the boundary (`serve::admit`, HTTP and WebSocket
/// alike) before anything runs: when any root field the request selects is not allowed to
/// the caller's role, the request is refused whole, one FORBIDDEN error per field. Fields
/// under `@skip`/`@include` count too: a request is judged by everything it names.
///
/// A name the table does not know is left to async-graphql's validation, which answers that
/// the schema has no such field; a root field the schema has and the table lacks is refused
/// by its resolver's [`require`] (and fails the role matrix, `api/tests/policy.rs`).
pub fn judge(
    doc: &ExecutableDocument,
    operation: Option<&str>,
    role: Role,
) -> Result<(), Vec<ServerError>> {
    let Some((root, fields)) = root_fields(doc, operation) else {
        return Ok(());
    };
    let mut refused = Vec::new();
    let mut judged = HashSet::new();
    for (field, pos) in fields {
        if !judged.insert(field.clone()) || rule_of(root, &field).is_none() {
            continue;
        }
        if let Err(e) = decide(role, root, &field) {
            let mut error = async_graphql::Error::from(e).into_server_error(pos);
            error.message.push_str("; nothing in this request was run");
            // Names the operation refused, so a client (and the role matrix) can tell the
            // policy's refusal from a resolver's.
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("field", format!("{}.{field}", root.as_str()));
            refused.push(error);
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused)
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

/// Loads a conversation the caller may see, or says why not. Customers see their own; agents
/// those assigned to them and those waiting in a queue they serve; supervisors those of their
/// queues. Unknown conversations and conversations the caller may not see get the same
/// answer, so ids cannot be probed.
pub(crate) async fn conversation(
    api: &Api,
    caller: &Caller,
    id: ConversationId,
) -> Result<Box<Conversation>, ApiError> {
    may_see_conversation(api, caller, id, api.desk.conversation(id).await?).await
}

/// [`conversation`], keeping the events the decision was folded from, for a read that
/// shows them: the stream is read once.
pub(crate) async fn conversation_events(
    api: &Api,
    caller: &Caller,
    id: ConversationId,
) -> Result<Vec<RecordedEvent>, ApiError> {
    let (snapshot, events) = api.desk.conversation_with_events(id).await?;
    may_see_conversation(api, caller, id, snapshot).await?;
    Ok(events)
}

async fn may_see_conversation(
    api: &Api,
    caller: &Caller,
    id: ConversationId,
    snapshot: ConversationSnapshot,
) -> Result<Box<Conversation>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no conversation {id} that you may see"));
    let ConversationSnapshot::Known(conv) = snapshot else {
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

/// Whether a conversation waits in a queue whose skills the agent has.
async fn serves_queue_of(api: &Api, agent: AgentId, conv: &Conversation) -> Result<bool, ApiError> {
    let Handling::Queued { skills, .. } = &conv.handling else {
        return Ok(false);
    };
    Ok(registered_agent(api, agent)
        .await?
        .is_some_and(|a| can_serve(skills, &a.skills)))
}

/// The agent as their stream says, if registered and not retired.
async fn registered_agent(api: &Api, agent: AgentId) -> Result<Option<Agent>, ApiError> {
    Ok(
        match api.desk.commands().load::<AgentDecider>(agent).await?.state {
            AgentState::Registered(a) => Some(a),
            _ => None,
        },
    )
}

/// Whether `agent` serves `queue`: the queue is active and the agent has its skills.
pub(crate) async fn serves(api: &Api, agent: &Agent, queue: QueueId) -> Result<bool, ApiError> {
    Ok(
        match api.desk.commands().load::<QueueDecider>(queue).await?.state {
            QueueState::Active(q) => can_serve(&q.skills, &agent.skills),
            _ => false,
        },
    )
}

/// Checks that an agent serves every one of `queues`; the refusal names the first that they
/// do not (unknown, retired, or needing skills they lack).
pub(crate) async fn serves_all(
    api: &Api,
    agent: AgentId,
    queues: &[QueueId],
) -> Result<(), ApiError> {
    let Some(agent) = registered_agent(api, agent).await? else {
        return Err(ApiError::Forbidden("you are not a registered agent".into()));
    };
    for q in queues {
        if !serves(api, &agent, *q).await? {
            return Err(ApiError::Forbidden(format!(
                "queue {q} is not a queue you serve (unknown, retired, or needs skills you lack)"
            )));
        }
    }
    Ok(())
}

/// The queues an agent serves, among those the read model lists (each checked against its
/// stream).
async fn served_queues(api: &Api, agent: AgentId) -> Result<Vec<QueueId>, ApiError> {
    let Some(agent) = registered_agent(api, agent).await? else {
        return Ok(Vec::new());
    };
    let view = api.read.live("queues").await?;
    let mut served = Vec::new();
    for row in view.queues().await? {
        let Ok(id) = row.id.parse::<Uuid>().map(QueueId::from_uuid) else {
            continue;
        };
        if serves(api, &agent, id).await? {
            served.push(id);
        }
    }
    Ok(served)
}

/// The queues of a supervisor's token.
fn token_queues(p: &Principal) -> Vec<QueueId> {
    p.queues
        .iter()
        .filter_map(|q| q.parse::<Uuid>().ok().map(QueueId::from_uuid))
        .collect()
}

/// The registered agents who serve any of `queues` (read model list, stream-checked).
async fn agents_serving(api: &Api, queues: &[QueueId]) -> Result<Vec<AgentId>, ApiError> {
    let view = api.read.live("queues").await?;
    let mut out = Vec::new();
    for row in view.agents().await? {
        let Ok(id) = row.id.parse::<Uuid>().map(AgentId::from_uuid) else {
            continue;
        };
        if let Some(agent) = registered_agent(api, id).await? {
            for q in queues {
                if serves(api, &agent, *q).await? {
                    out.push(id);
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// Which queues a caller may see in the `queues` listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueueScope {
    All,
    Only(BTreeSet<String>),
}

impl QueueScope {
    pub(crate) fn admits(&self, queue: &str) -> bool {
        match self {
            QueueScope::All => true,
            QueueScope::Only(qs) => qs.contains(queue),
        }
    }
}

/// Agents see the queues they serve; supervisors theirs; analysts and admins all.
pub(crate) async fn queue_scope(api: &Api, caller: &Caller) -> Result<QueueScope, ApiError> {
    let p = &caller.principal;
    Ok(match p.role {
        Role::Agent => QueueScope::Only(
            served_queues(api, agent_id(p)?)
                .await?
                .iter()
                .map(|q| q.to_string())
                .collect(),
        ),
        Role::Supervisor => QueueScope::Only(p.queues.clone()),
        Role::Analyst | Role::Admin => QueueScope::All,
        Role::Customer | Role::Auditor | Role::Integration => QueueScope::Only(BTreeSet::new()),
    })
}

/// What a caller's search may find (see [`SearchScope`]): agents, the waiting chats of the
/// queues they serve, what they held or wrote and the tickets assigned to them; supervisors,
/// their queues' conversations and the tickets of the agents serving them; analysts and admins
/// everything; everyone, the knowledge base.
pub(crate) async fn search_scope(api: &Api, caller: &Caller) -> Result<SearchScope, ApiError> {
    let p = &caller.principal;
    Ok(match p.role {
        Role::Analyst | Role::Admin => SearchScope::Everything,
        Role::Agent => {
            let me = agent_id(p)?;
            SearchScope::Within {
                queues: served_queues(api, me).await?,
                waiting_only: true,
                agents: vec![me],
                ticket_assignees: vec![me],
            }
        }
        Role::Supervisor => {
            let queues = token_queues(p);
            SearchScope::Within {
                ticket_assignees: agents_serving(api, &queues).await?,
                queues,
                waiting_only: false,
                agents: Vec::new(),
            }
        }
        Role::Customer | Role::Auditor | Role::Integration => SearchScope::Within {
            queues: Vec::new(),
            waiting_only: false,
            agents: Vec::new(),
            ticket_assignees: Vec::new(),
        },
    })
}

/// Checks that the caller may read or act on `agent`: agents on themselves, supervisors on
/// the agents who serve one of their queues, admins on all. An agent outside a supervisor's
/// queues answers `NOT_FOUND`, as an unknown one.
pub(crate) async fn manage_agent(
    api: &Api,
    caller: &Caller,
    agent: AgentId,
) -> Result<(), ApiError> {
    let p = &caller.principal;
    match p.role {
        Role::Admin => Ok(()),
        Role::Agent if agent == agent_id(p)? => Ok(()),
        Role::Supervisor => {
            if let Some(a) = registered_agent(api, agent).await? {
                for q in token_queues(p) {
                    if serves(api, &a, q).await? {
                        return Ok(());
                    }
                }
            }
            Err(ApiError::NotFound(format!(
                "no agent {agent} serving one of your queues"
            )))
        }
        _ => Err(ApiError::Forbidden(format!(
            "a {} may not act on agent {agent}",
            p.role
        ))),
    }
}

/// A supervisor changes only the skills their queues need: adding another queue's skill
/// would let them staff (or empty) queues that are not theirs. Other roles pass.
pub(crate) async fn skills_change(
    api: &Api,
    caller: &Caller,
    agent: AgentId,
    skills: &BTreeSet<Skill>,
) -> Result<(), ApiError> {
    if caller.principal.role != Role::Supervisor {
        return Ok(());
    }
    let Some(agent) = registered_agent(api, agent).await? else {
        return Ok(());
    };
    let mut theirs = BTreeSet::new();
    for q in token_queues(&caller.principal) {
        if let QueueState::Active(queue) = api.desk.commands().load::<QueueDecider>(q).await?.state
        {
            theirs.extend(queue.skills);
        }
    }
    let foreign: Vec<&str> = agent
        .skills
        .symmetric_difference(skills)
        .filter(|s| !theirs.contains(*s))
        .map(Skill::as_str)
        .collect();
    if foreign.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "skills: a supervisor adds or removes only the skills their queues need, not {}",
            foreign.join(", ")
        )))
    }
}

/// Whose tickets a caller may see and edit: customers their own; agents those assigned to
/// them or opened by them; supervisors those assigned to or opened by an agent serving one of
/// their queues; admins all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TicketScope {
    All,
    Customer(CustomerId),
    Agents(Vec<AgentId>),
}

pub(crate) async fn ticket_scope(api: &Api, caller: &Caller) -> Result<TicketScope, ApiError> {
    let p = &caller.principal;
    Ok(match p.role {
        Role::Admin => TicketScope::All,
        Role::Customer => TicketScope::Customer(customer_id(p)?),
        Role::Agent => TicketScope::Agents(vec![agent_id(p)?]),
        Role::Supervisor => TicketScope::Agents(agents_serving(api, &token_queues(p)).await?),
        Role::Analyst | Role::Auditor | Role::Integration => TicketScope::Agents(Vec::new()),
    })
}

impl TicketScope {
    /// Narrows a ticket listing to the scope (inside the query, so pages hold only what the
    /// caller may see).
    pub(crate) fn narrow(&self, filter: &mut TicketFilter) {
        match self {
            TicketScope::All => {}
            TicketScope::Customer(c) => filter.customer = Some(c.to_string()),
            TicketScope::Agents(agents) => {
                filter.agents = Some(agents.iter().map(|a| a.to_string()).collect());
            }
        }
    }

    fn admits(&self, ticket: &Ticket) -> bool {
        match self {
            TicketScope::All => true,
            TicketScope::Customer(c) => ticket.customer == *c,
            TicketScope::Agents(agents) => {
                let opener = match &ticket.source {
                    TicketSource::Agent { agent } => Some(*agent),
                    TicketSource::Conversation { .. } => None,
                };
                ticket
                    .assignee
                    .iter()
                    .chain(opener.iter())
                    .any(|a| agents.contains(a))
            }
        }
    }
}

/// Loads a ticket the caller may see (from its stream), or answers `NOT_FOUND` as for an
/// unknown one.
///
/// An agent also reaches a ticket opened from a conversation they may see (the chat they
/// hold, or one waiting in a queue they serve): the agent who opens a ticket from a chat
/// works it, though the ticket does not record who opened it.
pub(crate) async fn ticket(api: &Api, caller: &Caller, id: TicketId) -> Result<Ticket, ApiError> {
    let scope = ticket_scope(api, caller).await?;
    let not_found = || ApiError::NotFound(format!("no ticket {id} that you may see"));
    match api.desk.commands().load::<TicketDecider>(id).await?.state {
        TicketState::Opened(t) if scope.admits(&t) => Ok(t),
        TicketState::Opened(t) if caller.principal.role == Role::Agent => match t.source {
            TicketSource::Conversation { conversation } => {
                match self::conversation(api, caller, conversation).await {
                    Ok(_) => Ok(t),
                    Err(ApiError::NotFound(_)) => Err(not_found()),
                    Err(e) => Err(e),
                }
            }
            TicketSource::Agent { .. } => Err(not_found()),
        },
        _ => Err(not_found()),
    }
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

/// Analysts and admins may name any queue; supervisors their own.
pub(crate) fn require_queue_unless_analyst(
    caller: &Caller,
    queue: QueueId,
) -> Result<(), ApiError> {
    if caller.principal.role == Role::Analyst {
        return Ok(());
    }
    require_queue(caller, queue)
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

#[cfg(test)]
mod tests {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

    use super::*;

    /// What the order system may do besides asking who it is.
    const ORDER_FEED: [&str; 2] = ["recordOrder", "recordCustomerProfile"];

    /// Every root field of the schema (as `schemas/schema.graphql` holds it).
    fn schema_fields() -> Vec<(Root, String)> {
        let sdl = super::super::sdl();
        let doc = async_graphql::parser::parse_schema(&sdl).expect("the SDL parses");
        let mut out = Vec::new();
        for def in doc.definitions {
            let TypeSystemDefinition::Type(t) = def else {
                continue;
            };
            let root = match t.node.name.node.as_str() {
                "Query" => Root::Query,
                "Mutation" => Root::Mutation,
                "Subscription" => Root::Subscription,
                _ => continue,
            };
            if let TypeKind::Object(o) = &t.node.kind {
                out.extend(
                    o.fields
                        .iter()
                        .map(|f| (root, f.node.name.node.to_string())),
                );
            }
        }
        out
    }

    #[test]
    fn every_operation_of_the_schema_has_an_entry_and_every_entry_an_operation() {
        let fields = schema_fields();
        assert!(
            fields.len() > 40,
            "the SDL walk found {} fields",
            fields.len()
        );
        let missing: Vec<String> = fields
            .iter()
            .filter(|(root, f)| rule_of(*root, f).is_none())
            .map(|(root, f)| format!("{}.{f}", root.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "operations with no entry in policy::TABLE: {missing:?}"
        );
        for rule in TABLE {
            assert!(
                fields
                    .iter()
                    .any(|(r, f)| *r == rule.root && f == rule.field),
                "{}.{} is in the table but not in the schema",
                rule.root.as_str(),
                rule.field
            );
            assert!(!rule.roles.is_empty(), "{} is open to no one", rule.field);
        }
    }

    #[test]
    fn the_integration_role_may_record_orders_and_nothing_else() {
        for rule in TABLE {
            let allowed = decide(Role::Integration, rule.root, rule.field).is_ok();
            assert_eq!(
                allowed,
                ORDER_FEED.contains(&rule.field) || rule.field == "me",
                "{}",
                rule.field
            );
        }
    }

    fn fields_of(query: &str, operation: Option<&str>) -> (Root, Vec<String>) {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        let (root, fields) = root_fields(&doc, operation).unwrap();
        (root, fields.into_iter().map(|(f, _)| f).collect())
    }

    #[test]
    fn root_fields_are_found_through_aliases_and_fragments() {
        let (root, fields) = fields_of(
            "mutation { a: sendMessage(conversationId: \"x\", text: \"y\") { id } \
             ...F ... on Mutation { c: setSwitch(switch: BOT, on: true, reason: \"r\") { id } } } \
             fragment F on Mutation { b: defineQueue(input: {}) { id } ...G } \
             fragment G on Mutation { ...F retireQueue(queueId: \"q\", reason: \"r\") { id } }",
            None,
        );
        assert_eq!(root, Root::Mutation);
        assert_eq!(
            fields,
            ["sendMessage", "defineQueue", "retireQueue", "setSwitch"]
        );
        let (root, fields) = fields_of(
            "query A { me { id } } mutation B { addNote(conversationId: \"x\", text: \"y\") { id } }",
            Some("B"),
        );
        assert_eq!((root, fields), (Root::Mutation, vec!["addNote".to_owned()]));
        let doc = async_graphql::parser::parse_query("query A { me { id } } query B { me { id } }")
            .unwrap();
        assert!(
            root_fields(&doc, None).is_none(),
            "which operation is ambiguous"
        );
    }

    #[test]
    fn refusals_name_who_may() {
        let e = decide(Role::Customer, Root::Mutation, "defineQueue").unwrap_err();
        assert!(
            matches!(&e, ApiError::Forbidden(m) if m.contains("allowed: admin")),
            "{e:?}"
        );
        assert!(decide(Role::Customer, Root::Query, "__schema").is_ok());
        assert!(matches!(
            decide(Role::Admin, Root::Query, "somethingNew"),
            Err(ApiError::Forbidden(m)) if m.contains("no entry")
        ));
    }
}
