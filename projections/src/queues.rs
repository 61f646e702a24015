//! Agent queues: the conversations waiting in each queue (served by priority, then by how
//! long they have waited), the chats each agent holds and their free seats, and live counts
//! per queue.

use std::collections::{BTreeMap, BTreeSet};

use kefu_domain::agent::AgentEvent as A;
use kefu_domain::conversation::{ConversationEvent as C, TransferredTo};
use kefu_domain::queue::QueueEvent as Q;

use crate::error::ProjectionError;
use crate::record;
use crate::rows::{KeyRequests, RowSet};
use kefu_domain::Event;

use crate::runner::{Envelope, Projection};
use crate::sql::{Record, TableDef, Val};
use crate::view::{View, code, json, ms, seller};

pub const NAME: &str = "queues";

record! {
    pub struct QueueRow in "queues", key 1 {
        pub id: String,
        pub name: String,
        pub business_line: String,
        /// JSON list.
        #[serde(serialize_with = "crate::view::as_json")]
        pub categories: String,
        /// JSON list.
        #[serde(serialize_with = "crate::view::as_json")]
        pub skills: String,
        pub priority: i64,
        pub first_response_secs: i64,
        pub resolution_secs: i64,
        pub retired: bool,
    }
}

record! {
    /// A conversation waiting for an agent.
    pub struct WaitingRow in "waiting", key 1 {
        pub conversation: String,
        pub queue: String,
        /// 1 is served first.
        pub priority: i64,
        /// JSON list of the skills the agent must have.
        #[serde(serialize_with = "crate::view::as_json")]
        pub skills: String,
        pub enqueued_at: i64,
        pub first_response_due: i64,
        /// Log position of the queueing, to break ties in arrival order.
        pub position: i64,
    }
    indexes: [["queue", "priority", "enqueued_at"]]
}

record! {
    pub struct AgentRow in "agents", key 1 {
        pub id: String,
        pub name: String,
        /// JSON list.
        #[serde(serialize_with = "crate::view::as_json")]
        pub skills: String,
        pub max_concurrent: i64,
        /// online, away or offline.
        pub status: String,
        pub status_since: i64,
        /// Chats held, as the agent's own stream counts them.
        pub active: i64,
        pub retired: bool,
    }
}

record! {
    /// A chat an agent is holding.
    pub struct ChatRow in "chats", key 1 {
        pub conversation: String,
        pub agent: String,
        pub queue: String,
        pub since: i64,
    }
    indexes: [["agent"], ["queue"]]
}

#[derive(Default)]
pub struct QueuesProjection;

impl Projection for QueuesProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> Vec<&'static TableDef> {
        vec![
            &QueueRow::TABLE,
            &WaitingRow::TABLE,
            &AgentRow::TABLE,
            &ChatRow::TABLE,
        ]
    }

    fn prefetch(&self, e: Envelope<'_>, want: &mut KeyRequests) {
        match e.decoded {
            Event::Queue(Q::QueueDefined(_)) | Event::Agent(A::AgentRegistered(_)) => {}
            Event::Queue(_) => want.want::<QueueRow>(e.entity()),
            Event::Agent(_) => want.want::<AgentRow>(e.entity()),
            Event::Conversation(C::ConversationTransferred(_)) => want.want::<ChatRow>(e.entity()),
            Event::Conversation(C::ConversationEscalated(_)) => want.want::<WaitingRow>(e.entity()),
            _ => {}
        }
    }

    fn apply(&mut self, e: Envelope<'_>, rows: &mut RowSet) -> Result<(), ProjectionError> {
        let key = vec![Val::Text(e.entity().to_owned())];
        match e.decoded {
            Event::Queue(event) => {
                if let Q::QueueDefined(d) = event {
                    return rows.put(QueueRow {
                        id: e.entity().to_owned(),
                        name: d.name.clone(),
                        business_line: seller(&d.business_line),
                        categories: json(&d.categories),
                        skills: json(&d.skills),
                        priority: i64::from(d.priority),
                        first_response_secs: i64::from(d.sla.first_response_secs),
                        resolution_secs: i64::from(d.sla.resolution_secs),
                        retired: false,
                    });
                }
                let Some(mut q) = rows.get::<QueueRow>(&key)? else {
                    return Ok(());
                };
                match event {
                    Q::QueueChanged(c) => {
                        if let Some(name) = &c.name {
                            q.name = name.clone();
                        }
                        if let Some(categories) = &c.categories {
                            q.categories = json(categories);
                        }
                        if let Some(skills) = &c.skills {
                            q.skills = json(skills);
                        }
                        if let Some(priority) = c.priority {
                            q.priority = i64::from(priority);
                        }
                        if let Some(sla) = &c.sla {
                            q.first_response_secs = i64::from(sla.first_response_secs);
                            q.resolution_secs = i64::from(sla.resolution_secs);
                        }
                    }
                    Q::QueueRetired(_) => q.retired = true,
                    Q::QueueDefined(_) => {}
                }
                rows.put(q)
            }
            Event::Agent(event) => {
                if let A::AgentRegistered(r) = event {
                    return rows.put(AgentRow {
                        id: e.entity().to_owned(),
                        name: r.name.clone(),
                        skills: json(&r.skills),
                        max_concurrent: i64::from(r.max_concurrent),
                        status: "offline".into(),
                        status_since: ms(r.at),
                        active: 0,
                        retired: false,
                    });
                }
                let Some(mut a) = rows.get::<AgentRow>(&key)? else {
                    return Ok(());
                };
                match event {
                    A::AgentRegistered(_) => {}
                    A::AgentSkillsChanged(c) => a.skills = json(&c.to),
                    A::AgentCapacityChanged(c) => a.max_concurrent = i64::from(c.to),
                    A::AgentStatusChanged(c) => {
                        a.status = code(&c.to);
                        a.status_since = ms(c.at);
                    }
                    A::AgentChatTaken(t) => a.active = i64::from(t.active),
                    A::AgentChatReleased(r) => a.active = i64::from(r.active),
                    A::AgentRetired(_) => {
                        a.retired = true;
                        a.status = "offline".into();
                    }
                }
                rows.put(a)
            }
            Event::Conversation(event) => match event {
                C::ConversationQueued(q) => rows.put(WaitingRow {
                    conversation: e.entity().to_owned(),
                    queue: q.queue.to_string(),
                    priority: i64::from(q.priority),
                    skills: json(&q.skills),
                    enqueued_at: ms(q.at),
                    first_response_due: ms(q.first_response_due),
                    position: e.event.position.0 as i64,
                }),
                C::AgentAssigned(a) => {
                    rows.delete::<WaitingRow>(key)?;
                    rows.put(ChatRow {
                        conversation: e.entity().to_owned(),
                        agent: a.agent.to_string(),
                        queue: a.queue.to_string(),
                        since: ms(a.at),
                    })
                }
                C::ConversationTransferred(t) => match &t.to {
                    TransferredTo::Agent { agent } => match rows.get::<ChatRow>(&key)? {
                        Some(mut chat) => {
                            chat.agent = agent.to_string();
                            chat.since = ms(t.at);
                            rows.put(chat)
                        }
                        None => Ok(()),
                    },
                    TransferredTo::Queue { .. } => rows.delete::<ChatRow>(key),
                },
                // Still waiting: served sooner from here on.
                C::ConversationEscalated(x) => match rows.get::<WaitingRow>(&key)? {
                    Some(mut waiting) => {
                        waiting.priority = i64::from(x.to_priority);
                        rows.put(waiting)
                    }
                    None => Ok(()),
                },
                C::ConversationClosed(_) => {
                    rows.delete::<WaitingRow>(key.clone())?;
                    rows.delete::<ChatRow>(key)
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// A waiting conversation with its place in its queue.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WaitingEntry {
    pub entry: WaitingRow,
    /// 1 is next to be served.
    pub position: usize,
    pub wait_secs: i64,
}

/// Live figures for one queue.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueueCounts {
    pub queue: QueueRow,
    pub waiting: i64,
    pub with_agent: i64,
    pub longest_wait_secs: i64,
    /// Online agents who have every skill the queue requires.
    pub agents_online: i64,
    /// Free seats among those agents.
    pub free_seats: i64,
    /// All their seats (each agent's concurrency), busy or free.
    pub seats: i64,
}

/// An agent's desk: who they are, the chats they hold and how many more they can take.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Workbench {
    pub agent: AgentRow,
    pub chats: Vec<ChatRow>,
    pub free_seats: i64,
}

/// The agents among `agents` who have every skill `queue` needs: the domain's rule.
fn able<'a>(agents: &'a [AgentRow], queue: &QueueRow) -> Vec<&'a AgentRow> {
    let needs = skills_of(&queue.skills);
    agents
        .iter()
        .filter(|a| kefu_domain::queue::can_serve(&needs, &skills_of(&a.skills)))
        .collect()
}

/// Waiting rows in serving order (by queue, then priority, then since when, then arrival),
/// each with its place in its queue and its wait up to `now_ms`: what `View::waiting` lists,
/// and what a copy of this read model kept in memory (the simulation's) lists the same way.
pub fn serving_order(mut rows: Vec<WaitingRow>, now_ms: i64) -> Vec<WaitingEntry> {
    rows.sort_by(|a, b| {
        (&a.queue, a.priority, a.enqueued_at, a.position).cmp(&(
            &b.queue,
            b.priority,
            b.enqueued_at,
            b.position,
        ))
    });
    let mut place: BTreeMap<String, usize> = BTreeMap::new();
    rows.into_iter()
        .map(|entry| {
            let n = place.entry(entry.queue.clone()).or_default();
            *n += 1;
            WaitingEntry {
                position: *n,
                wait_secs: (now_ms - entry.enqueued_at).max(0) / 1000,
                entry,
            }
        })
        .collect()
}

fn skills_of(json: &str) -> BTreeSet<String> {
    serde_json::from_str(json).unwrap_or_default()
}

impl View {
    /// The waiting conversations of one queue (or of all, queue by queue), in serving order.
    /// `now_ms` is the moment waits are measured to.
    pub async fn waiting(
        &self,
        queue: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<WaitingEntry>, ProjectionError> {
        let (cond, params) = match queue {
            Some(q) => ("WHERE queue = $1", vec![q.into()]),
            None => ("", vec![]),
        };
        let rows = self
            .select::<WaitingRow>(
                &format!("{cond} ORDER BY queue, priority, enqueued_at, position"),
                params,
            )
            .await?;
        Ok(serving_order(rows, now_ms))
    }

    /// Every queue defined, retired ones too.
    pub async fn queues(&self) -> Result<Vec<QueueRow>, ProjectionError> {
        self.select::<QueueRow>("ORDER BY id", vec![]).await
    }

    pub async fn agents(&self) -> Result<Vec<AgentRow>, ProjectionError> {
        self.select::<AgentRow>("ORDER BY name, id", vec![]).await
    }

    pub async fn workbench(&self, agent: &str) -> Result<Option<Workbench>, ProjectionError> {
        let Some(a) = self
            .select::<AgentRow>("WHERE id = $1", vec![agent.into()])
            .await?
            .pop()
        else {
            return Ok(None);
        };
        let chats = self
            .select::<ChatRow>("WHERE agent = $1 ORDER BY since", vec![agent.into()])
            .await?;
        let free_seats = if a.status == "online" {
            (a.max_concurrent - a.active).max(0)
        } else {
            0
        };
        Ok(Some(Workbench {
            agent: a,
            chats,
            free_seats,
        }))
    }

    async fn online_agents(&self) -> Result<Vec<AgentRow>, ProjectionError> {
        self.select::<AgentRow>(
            "WHERE status = 'online' AND retired = 0 ORDER BY name, id",
            vec![],
        )
        .await
    }

    /// The agents online who serve `queue` (they have every skill it needs) and have a free
    /// seat, but `except`: whom a chat of that queue can be transferred to. None when the
    /// queue is unknown.
    pub async fn colleagues(
        &self,
        queue: &str,
        except: Option<&str>,
    ) -> Result<Vec<AgentRow>, ProjectionError> {
        let Some(queue) = self
            .select::<QueueRow>("WHERE id = $1", vec![queue.into()])
            .await?
            .pop()
        else {
            return Ok(Vec::new());
        };
        let agents = self.online_agents().await?;
        Ok(able(&agents, &queue)
            .into_iter()
            .filter(|a| a.max_concurrent > a.active && Some(a.id.as_str()) != except)
            .cloned()
            .collect())
    }

    /// Counts for every queue that is not retired.
    pub async fn queue_counts(&self, now_ms: i64) -> Result<Vec<QueueCounts>, ProjectionError> {
        let queues = self
            .select::<QueueRow>("WHERE retired = 0 ORDER BY priority, name", vec![])
            .await?;
        let waiting = self
            .rows(
                &format!(
                    "SELECT queue, CAST(COUNT(*) AS BIGINT), CAST(MIN(enqueued_at) AS BIGINT) \
                     FROM {} GROUP BY queue",
                    self.table::<WaitingRow>()
                ),
                vec![],
            )
            .await?;
        let chats = self
            .rows(
                &format!(
                    "SELECT queue, CAST(COUNT(*) AS BIGINT) FROM {} GROUP BY queue",
                    self.table::<ChatRow>()
                ),
                vec![],
            )
            .await?;
        let agents = self.online_agents().await?;
        let count = |rows: &[Vec<Val>], q: &str, col: usize| {
            rows.iter()
                .find(|r| r[0].as_str() == Some(q))
                .and_then(|r| r[col].as_i64())
        };
        Ok(queues
            .into_iter()
            .map(|queue| {
                let able = able(&agents, &queue);
                QueueCounts {
                    waiting: count(&waiting, &queue.id, 1).unwrap_or(0),
                    longest_wait_secs: count(&waiting, &queue.id, 2)
                        .map_or(0, |t| (now_ms - t).max(0) / 1000),
                    with_agent: count(&chats, &queue.id, 1).unwrap_or(0),
                    agents_online: able.len() as i64,
                    free_seats: able
                        .iter()
                        .map(|a| (a.max_concurrent - a.active).max(0))
                        .sum(),
                    seats: able.iter().map(|a| a.max_concurrent).sum(),
                    queue,
                }
            })
            .collect())
    }
}
