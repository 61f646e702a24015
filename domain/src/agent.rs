//! The agent stream: a human agent's skills, how many chats they can handle at once, their
//! presence, and the chats they hold right now.
//!
//! This stream is the authority on capacity. Before a conversation records an assignment, the
//! command service takes a seat here with `TakeChat`, appended under optimistic concurrency;
//! two assigners racing for an agent's last seat therefore conflict on this stream, and one of
//! them is refused, so the limit holds however many assigners run.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{MAX_LABEL_CHARS, require_codes, require_text};
use crate::decider::{Decider, domain_events};
use crate::error::DomainError;
use crate::ids::{AgentId, ConversationId, Skill};

/// The most concurrent chats anyone may be given.
pub const MAX_CONCURRENT_LIMIT: u32 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Takes new chats.
    Online,
    /// Keeps their chats but takes no new ones.
    Away,
    /// Holds no chats.
    Offline,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: AgentId,
    pub name: String,
    pub skills: BTreeSet<Skill>,
    pub max_concurrent: u32,
    pub status: AgentStatus,
    pub active_chats: BTreeSet<ConversationId>,
}

impl Agent {
    pub fn active(&self) -> u32 {
        u32::try_from(self.active_chats.len()).unwrap_or(u32::MAX)
    }

    /// Whether this agent may be given `conversation` now: the one rule both this stream and
    /// the conversation stream apply, so they cannot disagree.
    pub fn check_can_take(&self, conversation: ConversationId) -> Result<(), DomainError> {
        match self.status {
            AgentStatus::Offline => return Err(DomainError::AgentOffline { agent: self.id }),
            // A seat already taken for this conversation stays valid even if the agent
            // stepped away in between; refusing it would strand the customer.
            _ if self.active_chats.contains(&conversation) => return Ok(()),
            AgentStatus::Away => return Err(DomainError::AgentAway { agent: self.id }),
            AgentStatus::Online => {}
        }
        if self.active() >= self.max_concurrent {
            return Err(DomainError::AgentAtCapacity {
                agent: self.id,
                limit: self.max_concurrent,
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum AgentState {
    Unregistered,
    Registered(Agent),
    Retired(Agent),
}

impl AgentState {
    pub fn snapshot(&self, id: AgentId) -> AgentSnapshot {
        match self {
            AgentState::Unregistered => AgentSnapshot::Unknown(id),
            AgentState::Retired(a) => AgentSnapshot::Retired(a.id),
            AgentState::Registered(a) => AgentSnapshot::Registered(a.clone()),
        }
    }
}

/// The agent stream as the command service loaded it for a cross-stream rule.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentSnapshot {
    Unknown(AgentId),
    Retired(AgentId),
    Registered(Agent),
}

impl AgentSnapshot {
    pub fn id(&self) -> AgentId {
        match self {
            AgentSnapshot::Unknown(id) | AgentSnapshot::Retired(id) => *id,
            AgentSnapshot::Registered(a) => a.id,
        }
    }

    pub fn require_registered(&self) -> Result<&Agent, DomainError> {
        match self {
            AgentSnapshot::Unknown(agent) => Err(DomainError::UnknownAgent { agent: *agent }),
            AgentSnapshot::Retired(agent) => Err(DomainError::AgentRetired { agent: *agent }),
            AgentSnapshot::Registered(a) => Ok(a),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum AgentCommand {
    Register {
        agent: AgentId,
        name: String,
        skills: BTreeSet<Skill>,
        max_concurrent: u32,
        at: DateTime<Utc>,
    },
    ChangeSkills {
        skills: BTreeSet<Skill>,
        at: DateTime<Utc>,
    },
    ChangeCapacity {
        max_concurrent: u32,
        at: DateTime<Utc>,
    },
    SetStatus {
        status: AgentStatus,
        at: DateTime<Utc>,
    },
    /// Reserve a seat for a conversation about to be assigned or transferred to this agent.
    TakeChat {
        conversation: ConversationId,
        at: DateTime<Utc>,
    },
    /// Free the seat when the conversation closes or moves elsewhere.
    ReleaseChat {
        conversation: ConversationId,
        at: DateTime<Utc>,
    },
    Retire {
        at: DateTime<Utc>,
    },
}

/// A new agent starts offline; they go online when they log in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentRegistered {
    pub agent: AgentId,
    pub name: String,
    pub skills: BTreeSet<Skill>,
    pub max_concurrent: u32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentSkillsChanged {
    pub from: BTreeSet<Skill>,
    pub to: BTreeSet<Skill>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentCapacityChanged {
    pub from: u32,
    pub to: u32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentStatusChanged {
    pub from: AgentStatus,
    pub to: AgentStatus,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentChatTaken {
    pub conversation: ConversationId,
    /// Chats held after taking this one.
    pub active: u32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentChatReleased {
    pub conversation: ConversationId,
    /// Chats held after releasing this one.
    pub active: u32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentRetired {
    pub at: DateTime<Utc>,
}

domain_events! {
    /// What happens in an `agent-<id>` stream.
    pub enum AgentEvent in "agent" {
        AgentRegistered = 1,
        AgentSkillsChanged = 1,
        AgentCapacityChanged = 1,
        AgentStatusChanged = 1,
        AgentChatTaken = 1,
        AgentChatReleased = 1,
        AgentRetired = 1,
    }
}

pub struct AgentDecider;

impl Decider for AgentDecider {
    type Id = AgentId;
    type State = AgentState;
    type Command = AgentCommand;
    type Event = AgentEvent;

    fn initial_state() -> AgentState {
        AgentState::Unregistered
    }

    fn decide(state: &AgentState, command: AgentCommand) -> Result<Vec<AgentEvent>, DomainError> {
        if let AgentCommand::Register {
            agent,
            name,
            skills,
            max_concurrent,
            at,
        } = command
        {
            if let AgentState::Registered(a) | AgentState::Retired(a) = state {
                return Err(DomainError::AlreadyExists {
                    kind: "agent",
                    id: a.id.to_string(),
                });
            }
            require_text("name", &name, MAX_LABEL_CHARS)?;
            require_codes("skills", skills.iter().map(Skill::as_str))?;
            validate_limit(max_concurrent)?;
            return Ok(vec![
                AgentRegistered {
                    agent,
                    name,
                    skills,
                    max_concurrent,
                    at,
                }
                .into(),
            ]);
        }
        let agent = match state {
            AgentState::Unregistered => return Err(DomainError::NotCreated { kind: "agent" }),
            AgentState::Retired(a) => return Err(DomainError::AgentRetired { agent: a.id }),
            AgentState::Registered(a) => a,
        };
        let events: Vec<AgentEvent> = match command {
            AgentCommand::Register { .. } => vec![],
            AgentCommand::ChangeSkills { skills, at } => {
                require_codes("skills", skills.iter().map(Skill::as_str))?;
                if skills == agent.skills {
                    vec![]
                } else {
                    vec![
                        AgentSkillsChanged {
                            from: agent.skills.clone(),
                            to: skills,
                            at,
                        }
                        .into(),
                    ]
                }
            }
            AgentCommand::ChangeCapacity { max_concurrent, at } => {
                validate_limit(max_concurrent)?;
                if max_concurrent < agent.active() {
                    return Err(DomainError::CapacityBelowActiveChats {
                        agent: agent.id,
                        requested: max_concurrent,
                        active: agent.active(),
                    });
                }
                if max_concurrent == agent.max_concurrent {
                    vec![]
                } else {
                    vec![
                        AgentCapacityChanged {
                            from: agent.max_concurrent,
                            to: max_concurrent,
                            at,
                        }
                        .into(),
                    ]
                }
            }
            AgentCommand::SetStatus { status, at } => {
                // Presence clients resend their state on reconnect; repeating it is harmless.
                if status == agent.status {
                    vec![]
                } else {
                    if status == AgentStatus::Offline && !agent.active_chats.is_empty() {
                        return Err(DomainError::AgentHasActiveChats {
                            agent: agent.id,
                            active: agent.active(),
                        });
                    }
                    vec![
                        AgentStatusChanged {
                            from: agent.status,
                            to: status,
                            at,
                        }
                        .into(),
                    ]
                }
            }
            AgentCommand::TakeChat { conversation, at } => {
                agent.check_can_take(conversation)?;
                if agent.active_chats.contains(&conversation) {
                    vec![]
                } else {
                    vec![
                        AgentChatTaken {
                            conversation,
                            active: agent.active() + 1,
                            at,
                        }
                        .into(),
                    ]
                }
            }
            AgentCommand::ReleaseChat { conversation, at } => {
                // Release follows close and transfer through a worker that may retry.
                if agent.active_chats.contains(&conversation) {
                    vec![
                        AgentChatReleased {
                            conversation,
                            active: agent.active() - 1,
                            at,
                        }
                        .into(),
                    ]
                } else {
                    vec![]
                }
            }
            AgentCommand::Retire { at } => {
                if !agent.active_chats.is_empty() {
                    return Err(DomainError::AgentHasActiveChats {
                        agent: agent.id,
                        active: agent.active(),
                    });
                }
                vec![AgentRetired { at }.into()]
            }
        };
        Ok(events)
    }

    fn evolve(state: AgentState, event: &AgentEvent) -> AgentState {
        match (state, event) {
            (AgentState::Unregistered, AgentEvent::AgentRegistered(e)) => {
                AgentState::Registered(Agent {
                    id: e.agent,
                    name: e.name.clone(),
                    skills: e.skills.clone(),
                    max_concurrent: e.max_concurrent,
                    status: AgentStatus::Offline,
                    active_chats: BTreeSet::new(),
                })
            }
            (AgentState::Registered(mut a), event) => {
                match event {
                    AgentEvent::AgentRegistered(_) => {}
                    AgentEvent::AgentSkillsChanged(e) => a.skills = e.to.clone(),
                    AgentEvent::AgentCapacityChanged(e) => a.max_concurrent = e.to,
                    AgentEvent::AgentStatusChanged(e) => a.status = e.to,
                    AgentEvent::AgentChatTaken(e) => {
                        a.active_chats.insert(e.conversation);
                    }
                    AgentEvent::AgentChatReleased(e) => {
                        a.active_chats.remove(&e.conversation);
                    }
                    AgentEvent::AgentRetired(_) => {
                        a.status = AgentStatus::Offline;
                        return AgentState::Retired(a);
                    }
                }
                AgentState::Registered(a)
            }
            (state, _) => state,
        }
    }
}

fn validate_limit(max_concurrent: u32) -> Result<(), DomainError> {
    if (1..=MAX_CONCURRENT_LIMIT).contains(&max_concurrent) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "max_concurrent",
            format!("{max_concurrent} is not between 1 and {MAX_CONCURRENT_LIMIT}"),
        ))
    }
}
