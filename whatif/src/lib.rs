//! What-if replay (issue 19): the customers of a recorded time window played again through the
//! production reactions, on a scratch log, with something changed (the bot's thresholds, the
//! agents on duty, the SLA targets), to see what would have happened.
//!
//! - [`History::from_events`] reads the window out of a log: everything before it (copied
//!   into the scratch log as it stands: the knowledge base, the queues, the agents, the
//!   customers and their orders), the outside inputs inside it (customers' profiles and
//!   orders, knowledge-base edits, switch flips, agents' status changes: copied at their
//!   recorded time), every chat that started in it as the customer's own acts (start, each
//!   message with its text and time, a close while the bot held the chat), and the people's
//!   side of those chats as behaviour models ([`people`]: agents' handling per assignment,
//!   customers' patience in the queue, survey answers).
//! - [`replay`] plays them on a virtual clock into a [`MemoryLog`] (never the production
//!   log) through the real command layer ([`Desk`]). After each act the production reactions
//!   run until they are idle: the bot ([`BotWorker`], with the [`Settings`]' thresholds),
//!   triage ([`Triage`]: predictions, and the route to a queue when a chat goes to a person),
//!   survey offers ([`SurveyOffers`]) and the assigner ([`plan`] over the production queues
//!   projection applied in memory, [`QueuesInMemory`], carried out by [`carry_out`]). What the
//!   replay's own log then says (a chat queued, assigned, closed) schedules the people's
//!   next acts on the same clock.
//! - [`outcomes`] reads what became of each chat (handed over or not and why, the bot's
//!   answers, the wait for an agent, the first reply against the SLA, who took it, whether the
//!   customer left the queue, the survey score) from a log; the same function reads the
//!   recorded log and the replayed one, so the two are measured alike. [`report::Report`] puts
//!   them side by side per queue and hour, over several seeds.
//!
//! **Validated before it is believed**: every report replays the window unchanged first (the
//! baseline), says how far it came out from the record, and whether that is within the
//! stated tolerance ([`report::TOLERANCE`]); a change is read against the baseline.
//!
//! **Behaviour model, stated**: a customer writes what they wrote, when they wrote it, and
//! closes a chat the bot held when they closed it, whatever the replay answered. The people's
//! side is in [`people`]. The seed only matters where the replay leaves the record (a chat
//! assigned more often than it was, a customer waiting longer than they did): there the
//! handling and the patience are drawn, and the report shows the spread over seeds.
//!
//! **Not replayed**: the SLA timers' escalations (a breach raises a waiting chat's priority in
//! production; the replay measures breaches but does not re-rank), the idle timeout, reopens,
//! tickets, and agents' transfers to a named colleague (replayed as a transfer back to the
//! chat's queue).

pub mod people;
pub mod queues;
pub mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use kefu_bot::faq::Thresholds;
use kefu_desk::command::{CommandError, CommandService};
use kefu_desk::{Desk, Transfer};
use kefu_domain::agent::{AgentDecider, AgentEvent as A, AgentStatus};
use kefu_domain::common::Party;
use kefu_domain::conversation::{
    CloseReason, ConversationDecider, ConversationEvent as C, HandoffReason, TransferredTo,
};
use kefu_domain::ids::Skill;
use kefu_domain::ids::{AgentId, ConversationId, CustomerId, Locale, MessageId, OrderId, QueueId};
use kefu_domain::queue::{QueueDecider, QueueEvent as Q};
use kefu_domain::{Decider, Event};
use kefu_eventlog::memory::MemoryLog;
use kefu_eventlog::{
    Actor, ActorKind, EventLog, ExpectedVersion, LogError, Metadata, NewEvent, Position,
    RecordedEvent,
};
use kefu_projections::ProjectionError;
use kefu_workers::assigner::{self, AssignerError, carry_out, free_closed_seats, plan};
use kefu_workers::bot::BotWorker;
use kefu_workers::gateway::OrderGateway;
use kefu_workers::router::Triage;
use kefu_workers::runtime::{Reactor, WorkerError};
use kefu_workers::surveys::SurveyOffers;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use people::{Handling, Patience, Queueing, Segment, SegmentAct, StaffChange};
pub use queues::QueuesInMemory;
pub use report::Report;

#[derive(Debug, thiserror::Error)]
pub enum WhatIfError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error(transparent)]
    Assigner(#[from] AssignerError),
    #[error("the window is empty: it must end after it starts (from {from}, to {to})")]
    EmptyWindow {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    #[error("the reactions still had work after {rounds} rounds")]
    Unsettled { rounds: usize },
    #[error("cannot start a replay's runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("a replay's thread stopped before it had finished")]
    Stopped,
    #[error("the change {change:?} cannot be made: {reason}")]
    BadChange { change: String, reason: String },
}

/// The recorded time the replay covers: chats that started in `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Self, WhatIfError> {
        if to <= from {
            return Err(WhatIfError::EmptyWindow { from, to });
        }
        Ok(Window { from, to })
    }

    fn holds(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.to
    }
}

/// When an event happened in the business (its payload's `at`), else when it was recorded.
fn time_of(e: &RecordedEvent) -> DateTime<Utc> {
    kefu_feed::business_time(&e.payload).unwrap_or(e.recorded_at)
}

fn secs_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

/// A customer's own act in a recorded chat, replayed at its recorded time.
#[derive(Debug, Clone)]
pub enum Act {
    Starts {
        customer: CustomerId,
        locale: Locale,
        channel: kefu_domain::common::Channel,
        order: Option<OrderId>,
        bot_enabled: bool,
    },
    Writes {
        message: MessageId,
        text: String,
    },
    /// A close while the bot held the chat (closes in a queue or with an agent are the
    /// people's models').
    Closes,
}

/// What the replay plays, in the recorded order.
#[derive(Debug, Clone)]
enum Step {
    /// An outside input, copied as it was recorded.
    Copy(RecordedEvent),
    /// A customer's act in a chat of the window.
    Customer {
        chat: ConversationId,
        at: DateTime<Utc>,
        act: Act,
    },
}

/// A recorded survey answer, as long after the close as it came.
#[derive(Debug, Clone)]
struct SurveyAnswer {
    after_close: Duration,
    score: u8,
    comment: Option<String>,
}

/// A queue as its definition stood at the end of the record.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueInfo {
    pub name: String,
    pub skills: BTreeSet<Skill>,
    pub first_response_secs: i64,
}

/// An agent as registered (the last registration's name and skills).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentInfo {
    pub name: String,
    pub skills: BTreeSet<Skill>,
}

/// A recorded window, ready to replay.
pub struct History {
    pub window: Window,
    /// Everything recorded before the window's first step, copied into the scratch log first.
    before: Vec<RecordedEvent>,
    steps: Vec<Step>,
    /// The chats that started in the window, in the order they started.
    pub chats: Vec<ConversationId>,
    /// What became of them in the record.
    pub recorded: BTreeMap<ConversationId, Outcome>,
    /// Each chat's recorded queueings, for its customer's patience.
    queueings: BTreeMap<ConversationId, Vec<Queueing>>,
    pub patience: Patience,
    pub handling: Handling,
    surveys: BTreeMap<ConversationId, SurveyAnswer>,
    pub queues: BTreeMap<QueueId, QueueInfo>,
    pub agents: BTreeMap<AgentId, AgentInfo>,
}

/// Events that come from outside the reactions the replay runs: customers' profiles and
/// orders (the shop), the knowledge base, the switches and the queues (admins), and the
/// agents' registrations, skills, seats and presence. Inside the window they are copied at
/// their recorded time. An agent taking or releasing a chat is the desk's doing, and the
/// conversations are re-enacted, so neither is copied.
fn is_outside_input(event: &Event) -> bool {
    match event {
        Event::Customer(_) | Event::Knowledge(_) | Event::Switches(_) | Event::Queue(_) => true,
        Event::Agent(a) => !matches!(a, A::AgentChatTaken(_) | A::AgentChatReleased(_)),
        _ => false,
    }
}

/// A recorded chat's people's side, followed through its events.
#[derive(Default)]
struct Trace {
    waiting_since: Option<DateTime<Utc>>,
    segment: Option<(DateTime<Utc>, Segment)>,
    closed_at: Option<DateTime<Utc>>,
    queueings: Vec<Queueing>,
    segments: Vec<Segment>,
}

impl Trace {
    fn act(&mut self, at: DateTime<Utc>, act: SegmentAct) {
        if let Some((start, segment)) = &mut self.segment {
            let offset = (at - *start).num_microseconds().unwrap_or(i64::MAX);
            segment.acts.push((offset, act));
        }
    }

    fn end_segment(&mut self) {
        if let Some((_, segment)) = self.segment.take() {
            self.segments.push(segment);
        }
    }
}

impl History {
    /// The window out of a whole log's events, in position order.
    pub fn from_events(events: Vec<RecordedEvent>, window: Window) -> Self {
        // A chat belongs to the window by its start; everything about it is the customer's
        // acts (re-enacted), the people's models (below), or the desk's reactions (replayed,
        // so left out).
        let mut traces: BTreeMap<ConversationId, Trace> = BTreeMap::new();
        // Once the window's first step is met, nothing more goes into `before`.
        let mut stepped = false;
        let mut before = Vec::new();
        let mut steps = Vec::new();
        let mut chats = Vec::new();
        let mut recorded_events = Vec::new();
        let mut surveys = BTreeMap::new();
        let mut queues: BTreeMap<QueueId, QueueInfo> = BTreeMap::new();
        let mut agents: BTreeMap<AgentId, AgentInfo> = BTreeMap::new();
        let mut end = window.from;
        for e in events {
            let at = time_of(&e);
            end = end.max(at);
            let chat = ConversationDecider::id_of_stream(e.stream_id.as_str());
            let decoded = kefu_feed::decode_or_other(&e);
            learn_names(&e, &decoded, &mut queues, &mut agents);
            // kefu's own probes are not customers: their chats are left out.
            if let (Some(chat), Event::Conversation(C::ConversationStarted(s))) = (chat, &decoded)
                && window.holds(s.at)
                && s.channel != kefu_domain::common::Channel::Probe
            {
                traces.insert(chat, Trace::default());
                chats.push(chat);
                stepped = true;
                steps.push(Step::Customer {
                    chat,
                    at,
                    act: Act::Starts {
                        customer: s.customer,
                        locale: s.locale.clone(),
                        channel: s.channel,
                        order: s.order.as_ref().map(|o| o.order.clone()),
                        bot_enabled: s.bot_enabled,
                    },
                });
                recorded_events.push(e);
                continue;
            }
            if let Some(chat) = chat
                && let Some(trace) = traces.get_mut(&chat)
            {
                if let Event::Conversation(event) = decoded
                    && let Some(act) = trace_people(trace, event, &mut surveys, chat)
                {
                    steps.push(Step::Customer { chat, at, act });
                }
                recorded_events.push(e);
                continue;
            }
            if !stepped && at < window.from {
                before.push(e);
            } else if at < window.to && is_outside_input(&decoded) {
                stepped = true;
                steps.push(Step::Copy(e));
            }
        }
        let recorded = outcomes(&recorded_events);
        let mut observations = Vec::new();
        let mut queueings = BTreeMap::new();
        let mut segments = BTreeMap::new();
        for (chat, mut trace) in traces {
            trace.end_segment();
            // Still waiting when the record ends: a patience longer than that wait.
            if let (Some(since), Some(last)) = (trace.waiting_since, trace.queueings.last_mut())
                && last.served_after.is_none()
                && last.left_after.is_none()
            {
                last.served_after = Some(secs_between(since, end));
            }
            for q in &trace.queueings {
                match (q.left_after, q.served_after) {
                    (Some(left), _) => observations.push((left, true)),
                    (None, Some(served)) => observations.push((served, false)),
                    (None, None) => {}
                }
            }
            queueings.insert(chat, trace.queueings);
            if !trace.segments.is_empty() {
                segments.insert(chat, trace.segments);
            }
        }
        History {
            window,
            before,
            steps,
            chats,
            recorded,
            queueings,
            patience: Patience::estimate(observations),
            handling: Handling::new(segments),
            surveys,
            queues,
            agents,
        }
    }

    /// Reads the whole log, then [`Self::from_events`].
    pub async fn read<L: EventLog>(log: &L, window: Window) -> Result<Self, WhatIfError> {
        let mut events = Vec::new();
        let mut next = Position::START;
        loop {
            let page = log.read_all(next, 1024).await?;
            let Some(last) = page.last().map(|e| e.position) else {
                break;
            };
            next = last.next();
            events.extend(page);
        }
        Ok(Self::from_events(events, window))
    }

    /// The queue named `name`.
    pub fn queue_named(&self, name: &str) -> Result<(QueueId, &QueueInfo), WhatIfError> {
        self.queues
            .iter()
            .find(|(_, q)| q.name == name)
            .map(|(id, q)| (*id, q))
            .ok_or_else(|| WhatIfError::BadChange {
                change: name.to_owned(),
                reason: format!(
                    "no queue is named {name:?}; the record's queues are {}",
                    self.queues
                        .values()
                        .map(|q| format!("{:?}", q.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }
}

/// Queue and agent names and skills, as the record defines them.
fn learn_names(
    e: &RecordedEvent,
    decoded: &Event,
    queues: &mut BTreeMap<QueueId, QueueInfo>,
    agents: &mut BTreeMap<AgentId, AgentInfo>,
) {
    match decoded {
        Event::Queue(q) => {
            let Some(id) = QueueDecider::id_of_stream(e.stream_id.as_str()) else {
                return;
            };
            let info = queues.entry(id).or_default();
            match q {
                Q::QueueDefined(d) => {
                    info.name = d.name.clone();
                    info.skills = d.skills.clone();
                    info.first_response_secs = i64::from(d.sla.first_response_secs);
                }
                Q::QueueChanged(c) => {
                    if let Some(name) = &c.name {
                        info.name = name.clone();
                    }
                    if let Some(skills) = &c.skills {
                        info.skills = skills.clone();
                    }
                    if let Some(sla) = &c.sla {
                        info.first_response_secs = i64::from(sla.first_response_secs);
                    }
                }
                _ => {}
            }
        }
        Event::Agent(a) => {
            let Some(id) = AgentDecider::id_of_stream(e.stream_id.as_str()) else {
                return;
            };
            match a {
                A::AgentRegistered(r) => {
                    agents.insert(
                        id,
                        AgentInfo {
                            name: r.name.clone(),
                            skills: r.skills.clone(),
                        },
                    );
                }
                A::AgentSkillsChanged(s) => agents.entry(id).or_default().skills = s.to.clone(),
                _ => {}
            }
        }
        _ => {}
    }
}

/// Follows a recorded chat's event: the people's side goes into the trace, and a customer's
/// act replayed at its recorded time comes back.
fn trace_people(
    trace: &mut Trace,
    event: C,
    surveys: &mut BTreeMap<ConversationId, SurveyAnswer>,
    chat: ConversationId,
) -> Option<Act> {
    match event {
        C::CustomerTurnRecorded(t) => {
            return Some(Act::Writes {
                message: t.message,
                text: t.text,
            });
        }
        C::ConversationQueued(q) => {
            trace.end_segment();
            trace.waiting_since = Some(q.at);
            trace.queueings.push(Queueing {
                served_after: None,
                left_after: None,
            });
        }
        C::AgentAssigned(a) => {
            if let (Some(since), Some(last)) =
                (trace.waiting_since.take(), trace.queueings.last_mut())
            {
                last.served_after = Some(secs_between(since, a.at));
            }
            trace.segment = Some((a.at, Segment::new(a.queue, a.at)));
        }
        C::AgentTurnRecorded(t) => trace.act(t.at, SegmentAct::Replies { text: t.text }),
        C::ConversationTransferred(t) => {
            let queue = match t.to {
                TransferredTo::Queue { queue } => Some(queue),
                TransferredTo::Agent { .. } => trace.segment.as_ref().map(|(_, s)| s.queue),
            };
            if let Some(queue) = queue {
                trace.act(
                    t.at,
                    SegmentAct::TransfersToQueue {
                        queue,
                        reason: t.reason,
                    },
                );
            }
            trace.end_segment();
        }
        C::ConversationClosed(c) => {
            trace.closed_at = Some(c.at);
            let by_customer = matches!(c.by, Party::Customer);
            if trace.segment.is_some() {
                trace.act(
                    c.at,
                    if by_customer {
                        SegmentAct::CustomerCloses
                    } else {
                        SegmentAct::Closes { reason: c.reason }
                    },
                );
                trace.end_segment();
            } else if let Some(since) = trace.waiting_since.take() {
                if let (true, Some(last)) = (by_customer, trace.queueings.last_mut()) {
                    last.left_after = Some(secs_between(since, c.at));
                }
            } else if by_customer {
                return Some(Act::Closes);
            }
        }
        C::SurveyAnswered(s) => {
            if let Some(closed) = trace.closed_at {
                surveys.entry(chat).or_insert(SurveyAnswer {
                    after_close: s.at - closed,
                    score: s.score,
                    comment: s.comment,
                });
            }
        }
        _ => {}
    }
    None
}

/// What became of a chat.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcome {
    pub started_at: Option<DateTime<Utc>>,
    /// The first hand-off to a person and its reason; `None`: the bot kept the chat.
    pub handed_off: Option<HandoffReason>,
    pub handed_off_at: Option<DateTime<Utc>>,
    /// The bot's replies, and those that served a knowledge-base answer.
    pub bot_replies: usize,
    pub bot_answers: usize,
    pub customer_turns: usize,
    /// The queue triage routed it to, by id.
    pub routed_to: Option<String>,
    /// The queue it first waited in, when, and its first-response deadline there.
    pub queue: Option<QueueId>,
    pub queued_at: Option<DateTime<Utc>>,
    pub first_response_due: Option<DateTime<Utc>>,
    /// Seconds it waited in its first queueing before an agent took it.
    pub first_wait_secs: Option<i64>,
    pub first_agent_reply_at: Option<DateTime<Utc>>,
    /// The agents it was assigned to, in order.
    pub agents: Vec<AgentId>,
    /// The customer closed it while it waited in a queue.
    pub abandoned: bool,
    pub closed_at: Option<DateTime<Utc>>,
    pub survey_score: Option<u8>,
}

impl Outcome {
    /// Whether the first response missed its target (`target_secs` from the first queueing,
    /// else the deadline the queue set): late, or never given by a close after the deadline
    /// or by the end. `None`: it never waited for a person.
    pub fn breached(&self, target_secs: Option<i64>) -> Option<bool> {
        let due = match (target_secs, self.queued_at) {
            (Some(secs), Some(at)) => at + Duration::seconds(secs),
            _ => self.first_response_due?,
        };
        Some(match (self.first_agent_reply_at, self.closed_at) {
            (Some(reply), _) => reply > due,
            (None, Some(closed)) => closed > due,
            (None, None) => true,
        })
    }
}

/// What became of every chat in `events` (one log's, any order within a chat's stream).
pub fn outcomes(events: &[RecordedEvent]) -> BTreeMap<ConversationId, Outcome> {
    let mut out: BTreeMap<ConversationId, Outcome> = BTreeMap::new();
    // Chats waiting in a queue now.
    let mut waiting: BTreeSet<ConversationId> = BTreeSet::new();
    for e in events {
        let Some(chat) = ConversationDecider::id_of_stream(e.stream_id.as_str()) else {
            continue;
        };
        let Event::Conversation(event) = kefu_feed::decode_or_other(e) else {
            continue;
        };
        let o = out.entry(chat).or_default();
        match event {
            C::ConversationStarted(s) => o.started_at = Some(s.at),
            C::CustomerTurnRecorded(_) => o.customer_turns += 1,
            C::BotTurnRecorded(b) => {
                o.bot_replies += 1;
                o.bot_answers += usize::from(b.answer.is_some());
            }
            C::HandedToHuman(h) if o.handed_off.is_none() => {
                o.handed_off = Some(h.reason);
                o.handed_off_at = Some(h.at);
            }
            C::RoutingDecided(r) if o.routed_to.is_none() => {
                o.routed_to = Some(r.queue.to_string())
            }
            C::ConversationQueued(q) => {
                waiting.insert(chat);
                if o.queued_at.is_none() {
                    o.queue = Some(q.queue);
                    o.queued_at = Some(q.at);
                    o.first_response_due = Some(q.first_response_due);
                }
            }
            C::AgentAssigned(a) => {
                waiting.remove(&chat);
                if o.agents.is_empty() {
                    o.first_wait_secs = Some(a.waited_secs);
                }
                o.agents.push(a.agent);
            }
            C::AgentTurnRecorded(t) if o.first_agent_reply_at.is_none() => {
                o.first_agent_reply_at = Some(t.at)
            }
            C::ConversationClosed(c) => {
                if waiting.remove(&chat) && matches!(c.by, Party::Customer) {
                    o.abandoned = true;
                }
                o.closed_at.get_or_insert(c.at);
            }
            C::SurveyAnswered(s) if o.survey_score.is_none() => o.survey_score = Some(s.score),
            _ => {}
        }
    }
    out
}

/// What a replay runs with: the bot's thresholds, staffing changes and SLA targets.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Settings {
    pub answer_threshold: f64,
    pub clarify_threshold: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub staff: Vec<StaffChange>,
    /// First-response targets in seconds, by queue name, in place of the queues' own. They
    /// change what counts as a breach; the replay does not escalate on them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub first_response_secs: BTreeMap<String, i64>,
    /// Queues retired for the window, by name: triage routes the chats they would have had
    /// to the other queues by its own rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retired_queues: Vec<String>,
}

impl Settings {
    pub fn from_thresholds(t: Thresholds) -> Self {
        Settings {
            answer_threshold: t.answer,
            clarify_threshold: t.clarify,
            ..Default::default()
        }
    }

    fn thresholds(&self) -> Thresholds {
        Thresholds {
            answer: self.answer_threshold,
            clarify: self.clarify_threshold,
        }
    }

    /// Every queue these settings name exists in `history`.
    pub fn check(&self, history: &History) -> Result<(), WhatIfError> {
        for name in self
            .staff
            .iter()
            .map(|s| &s.queue)
            .chain(self.first_response_secs.keys())
            .chain(&self.retired_queues)
        {
            history.queue_named(name)?;
        }
        Ok(())
    }
}

/// The replay's clock: it moves only when the driver sets it.
#[derive(Clone)]
struct VirtualClock(Arc<AtomicI64>);

impl VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0.load(Ordering::SeqCst)).unwrap_or_default()
    }

    /// Moves to `at`, never back.
    fn set(&self, at: DateTime<Utc>) {
        self.0.fetch_max(at.timestamp_micros(), Ordering::SeqCst);
    }
}

/// A replayed window: each recorded chat's outcome in the replay, how many of the people's
/// acts the desk refused there (a message to a chat the replay had closed), and the names of
/// the agents it added.
pub struct Replayed {
    pub outcomes: BTreeMap<ConversationId, Outcome>,
    pub refused: usize,
    pub added_agents: BTreeMap<AgentId, String>,
    /// Assignments played with a drawn segment (the record had none of the chat's own), and
    /// customers who left the queue at a drawn patience (they waited longer than they did).
    pub drawn_segments: usize,
    pub left_on_drawn_patience: usize,
}

/// What the replay does next, at its time on the agenda.
#[derive(Debug, Clone)]
enum Action {
    /// The history's step at this index.
    Step(usize),
    AddAgent {
        name: String,
        skills: BTreeSet<Skill>,
        seats: u32,
        agent: AgentId,
    },
    Status {
        agent: AgentId,
        status: AgentStatus,
    },
    RetireQueue {
        queue: QueueId,
    },
    /// An act of the `segment`-th assignment of a replayed chat.
    Segment {
        chat: ConversationId,
        segment: usize,
        agent: AgentId,
        act: SegmentAct,
    },
    /// The customer of a replayed chat leaves its `queueing`-th queueing if still in it;
    /// `drawn`: at a patience drawn from the estimate, not their recorded one.
    Leaves {
        chat: ConversationId,
        queueing: usize,
        drawn: bool,
    },
    Survey {
        chat: ConversationId,
    },
}

/// A replayed chat as the driver follows it.
#[derive(Debug)]
struct Live {
    recorded: ConversationId,
    customer: CustomerId,
    queueings: usize,
    waiting: bool,
    assignments: usize,
    closed: bool,
}

impl Live {
    /// Whether the chat still waits in its `queueing`-th queueing.
    fn still_waiting(&self, queueing: usize) -> bool {
        self.waiting && !self.closed && self.queueings == queueing + 1
    }
}

/// The times the replay will act at, each with its actions in the order they were planned.
#[derive(Default)]
struct Agenda {
    at: BTreeMap<(DateTime<Utc>, u64), Action>,
    planned: u64,
}

impl Agenda {
    fn plan(&mut self, at: DateTime<Utc>, action: Action) {
        self.planned += 1;
        self.at.insert((at, self.planned), action);
    }

    fn next(&mut self) -> Option<(DateTime<Utc>, Action)> {
        self.at.pop_first().map(|((at, _), a)| (at, a))
    }
}

/// Plays `history` again with `settings` on a scratch log (see the crate docs); `seed` picks
/// what is drawn where the replay leaves the record.
pub async fn replay(
    history: &History,
    settings: &Settings,
    seed: u64,
) -> Result<Replayed, WhatIfError> {
    settings.check(history)?;
    let start = history
        .before
        .last()
        .map(time_of)
        .unwrap_or(history.window.from);
    let clock = VirtualClock(Arc::new(AtomicI64::new(start.timestamp_micros())));
    let now = {
        let clock = clock.clone();
        Arc::new(move || clock.now())
    };
    let log = Arc::new(MemoryLog::new().with_clock(now.clone()));
    for e in &history.before {
        copy(&log, e).await?;
    }
    let desk = Desk::new(CommandService::new(log.clone())).with_clock(now);
    let (bot, _) = BotWorker::start(desk.clone(), settings.thresholds()).await?;
    let triage = Triage::new(
        desk.clone(),
        OrderGateway::new(
            desk.commands().clone(),
            kefu_eventlog::faults::Faults::new("order gateway"),
        ),
        kefu_workers::router::intent_model()?,
    );
    let mut crew = Crew {
        log: log.clone(),
        desk: desk.clone(),
        bot,
        triage,
        surveys: SurveyOffers::new(desk.clone()),
        queues: QueuesInMemory::default(),
        next: log.head().await?.map_or(Position::START, |p| p.next()),
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut agenda = Agenda::default();
    let (changes, added_agents) = plan_changes(history, settings, &mut agenda)?;
    for (i, step) in history.steps.iter().enumerate() {
        let at = match step {
            Step::Copy(e) => time_of(e),
            Step::Customer { at, .. } => *at,
        };
        agenda.plan(at, Action::Step(i));
    }
    // Replayed chats by the replay's id, and the recorded id to the replay's.
    let mut live: BTreeMap<ConversationId, Live> = BTreeMap::new();
    let mut ids: BTreeMap<ConversationId, ConversationId> = BTreeMap::new();
    let mut refused = 0;
    let (mut drawn_segments, mut left_on_drawn_patience) = (0, 0);
    // How far the driver has read the scratch log for what the reactions did.
    let mut watched = crew.next;
    while let Some((at, action)) = agenda.next() {
        clock.set(at);
        if let Action::Leaves {
            chat,
            queueing,
            drawn: true,
        } = &action
            && live.get(chat).is_some_and(|l| l.still_waiting(*queueing))
        {
            left_on_drawn_patience += 1;
        }
        let done = act(history, &log, &desk, &mut live, &mut ids, &changes, action).await;
        match done {
            Ok(()) => {}
            Err(WhatIfError::Command(CommandError::Rejected(reason))) => {
                tracing::debug!(%reason, "the replay refused a person's act");
                refused += 1;
            }
            Err(e) => return Err(e),
        }
        crew.settle().await?;
        // What the reactions did plans the people's next acts.
        loop {
            let batch = log.read_all(watched, 256).await?;
            let Some(last) = batch.last().map(|e| e.position) else {
                break;
            };
            watched = last.next();
            for e in &batch {
                let Some(chat) = ConversationDecider::id_of_stream(e.stream_id.as_str()) else {
                    continue;
                };
                let Some(l) = live.get_mut(&chat) else {
                    continue;
                };
                let Event::Conversation(event) = kefu_feed::decode_or_other(e) else {
                    continue;
                };
                match event {
                    C::ConversationQueued(q) => {
                        let k = l.queueings;
                        l.queueings += 1;
                        l.waiting = true;
                        let recorded = history
                            .queueings
                            .get(&l.recorded)
                            .and_then(|qs| qs.get(k))
                            .copied();
                        let (patience, drawn) = match recorded {
                            Some(Queueing {
                                left_after: Some(left),
                                ..
                            }) => (Some(left), false),
                            other => {
                                let waited = other.and_then(|q| q.served_after).unwrap_or(0.0);
                                (history.patience.draw(waited, &mut rng), true)
                            }
                        };
                        if let Some(secs) = patience {
                            let micros = (secs * 1e6).round() as i64;
                            agenda.plan(
                                q.at + Duration::microseconds(micros),
                                Action::Leaves {
                                    chat,
                                    queueing: k,
                                    drawn,
                                },
                            );
                        }
                    }
                    C::AgentAssigned(a) => {
                        let k = l.assignments;
                        l.assignments += 1;
                        l.waiting = false;
                        let own = history
                            .handling
                            .segments
                            .get(&l.recorded)
                            .is_some_and(|s| s.len() > k);
                        drawn_segments += usize::from(!own);
                        let segment = history
                            .handling
                            .for_assignment(l.recorded, k, a.queue, a.at, &mut rng);
                        for (offset, act) in segment.map(|s| s.acts.as_slice()).unwrap_or(&[]) {
                            agenda.plan(
                                a.at + Duration::microseconds(*offset),
                                Action::Segment {
                                    chat,
                                    segment: k,
                                    agent: a.agent,
                                    act: act.clone(),
                                },
                            );
                        }
                    }
                    C::ConversationTransferred(_) => l.waiting = false,
                    C::ConversationClosed(c) => {
                        l.waiting = false;
                        if !l.closed
                            && let Some(s) = history.surveys.get(&l.recorded)
                        {
                            agenda.plan(c.at + s.after_close, Action::Survey { chat });
                        }
                        l.closed = true;
                    }
                    _ => {}
                }
            }
        }
    }
    let replayed = log.snapshot();
    let by_replay_id = outcomes(&replayed);
    let outcomes = ids
        .iter()
        .map(|(recorded, replayed)| {
            (
                *recorded,
                by_replay_id.get(replayed).cloned().unwrap_or_default(),
            )
        })
        .collect();
    Ok(Replayed {
        outcomes,
        refused,
        added_agents,
        drawn_segments,
        left_on_drawn_patience,
    })
}

/// Puts the routing and staffing changes on the agenda: queues retired at the window's
/// start; added agents registered at the window's start
/// and online through it or in their shift each day; agents kept away set offline at the
/// start (their recorded status changes are then left out). Returns who is kept away and the
/// added agents' names.
fn plan_changes(
    history: &History,
    settings: &Settings,
    agenda: &mut Agenda,
) -> Result<(Changes, BTreeMap<AgentId, String>), WhatIfError> {
    let window = history.window;
    let mut kept_away = BTreeSet::new();
    let mut added = BTreeMap::new();
    let mut retired = BTreeSet::new();
    for name in &settings.retired_queues {
        let (queue, _) = history.queue_named(name)?;
        retired.insert(queue);
        // A queue defined inside the window is retired as its definition is copied.
        let defined_before = history
            .before
            .iter()
            .any(|e| QueueDecider::id_of_stream(e.stream_id.as_str()) == Some(queue));
        if defined_before {
            agenda.plan(window.from, Action::RetireQueue { queue });
        }
    }
    for change in &settings.staff {
        let (_, queue) = history.queue_named(&change.queue)?;
        if change.count < 0 {
            let serving: Vec<AgentId> = history
                .agents
                .iter()
                .filter(|(id, a)| !kept_away.contains(*id) && queue.skills.is_subset(&a.skills))
                .map(|(id, _)| *id)
                .collect();
            let away = change.count.unsigned_abs() as usize;
            if serving.len() < away {
                return Err(WhatIfError::BadChange {
                    change: format!("{}={}", change.queue, change.count),
                    reason: format!(
                        "the queue has {} agents with its skills, fewer than {away}",
                        serving.len()
                    ),
                });
            }
            for agent in serving.into_iter().take(away) {
                kept_away.insert(agent);
                agenda.plan(
                    window.from,
                    Action::Status {
                        agent,
                        status: AgentStatus::Offline,
                    },
                );
            }
            continue;
        }
        for n in 1..=change.count {
            let name = format!("what-if {} {n}", change.queue);
            let agent = added_agent_id(&name);
            added.insert(agent, name.clone());
            agenda.plan(
                window.from,
                Action::AddAgent {
                    name,
                    skills: queue.skills.clone(),
                    seats: change.seats,
                    agent,
                },
            );
            let Some((from, to)) = change.shift else {
                agenda.plan(
                    window.from,
                    Action::Status {
                        agent,
                        status: AgentStatus::Online,
                    },
                );
                continue;
            };
            let mut day = window.from.date_naive();
            while let Some(midnight) = day.and_hms_opt(0, 0, 0) {
                let midnight = Utc.from_utc_datetime(&midnight);
                if midnight >= window.to {
                    break;
                }
                let on = (midnight + Duration::hours(from.into())).max(window.from);
                let off = midnight + Duration::hours(to.into());
                if off > window.from && on < window.to {
                    agenda.plan(
                        on,
                        Action::Status {
                            agent,
                            status: AgentStatus::Online,
                        },
                    );
                    agenda.plan(
                        off,
                        Action::Status {
                            agent,
                            status: AgentStatus::Offline,
                        },
                    );
                }
                let Some(next) = day.succ_opt() else { break };
                day = next;
            }
        }
    }
    Ok((Changes { kept_away, retired }, added))
}

/// What the driver holds back or adds as it copies the record.
#[derive(Default)]
struct Changes {
    /// Agents whose recorded status changes are left out.
    kept_away: BTreeSet<AgentId>,
    /// Queues retired for the window.
    retired: BTreeSet<QueueId>,
}

/// The same added agent has the same id in every replay (the report sums their load over
/// seeds by id): a hash of the name, in a UUID.
fn added_agent_id(name: &str) -> AgentId {
    // FNV-1a, 128 bits.
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in format!("kefu whatif agent {name}").bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    AgentId::from_uuid(uuid::Uuid::from_u128(h))
}

/// Carries one action out through the desk.
async fn act(
    history: &History,
    log: &MemoryLog,
    desk: &Desk<MemoryLog>,
    live: &mut BTreeMap<ConversationId, Live>,
    ids: &mut BTreeMap<ConversationId, ConversationId>,
    changes: &Changes,
    action: Action,
) -> Result<(), WhatIfError> {
    let as_agent = |agent: AgentId| request(desk, ActorKind::Agent, agent);
    let as_supervisor = || request(desk, ActorKind::System, "whatif");
    match action {
        Action::Step(i) => match &history.steps[i] {
            Step::Copy(e) => {
                let away = AgentDecider::id_of_stream(e.stream_id.as_str())
                    .is_some_and(|a| changes.kept_away.contains(&a))
                    && e.event_type == "AgentStatusChanged";
                if !away {
                    copy(log, e).await?;
                }
                if let Some(queue) = QueueDecider::id_of_stream(e.stream_id.as_str())
                    && changes.retired.contains(&queue)
                    && e.event_type == "QueueDefined"
                {
                    desk.retire_queue(
                        queue,
                        "what-if: retired for the window".into(),
                        &as_supervisor(),
                    )
                    .await?;
                }
            }
            Step::Customer { chat, act, .. } => customer_acts(desk, live, ids, *chat, act).await?,
        },
        Action::AddAgent {
            name,
            skills,
            seats,
            agent,
        } => {
            desk.register_agent(agent, name, skills, seats, &as_supervisor())
                .await?;
        }
        Action::Status { agent, status } => {
            desk.set_agent_status(agent, status, &as_supervisor())
                .await?;
        }
        Action::RetireQueue { queue } => {
            desk.retire_queue(
                queue,
                "what-if: retired for the window".into(),
                &as_supervisor(),
            )
            .await?;
        }
        Action::Segment {
            chat,
            segment,
            agent,
            act,
        } => {
            let Some(l) = live.get(&chat) else {
                return Ok(());
            };
            // The assignment has ended meanwhile (the chat was closed or went on).
            if l.closed || l.assignments != segment + 1 || l.waiting {
                return Ok(());
            }
            match act {
                SegmentAct::Replies { text } => {
                    let message = MessageId::from_uuid(desk.commands().new_id());
                    desk.agent_message(chat, agent, message, text, &as_agent(agent))
                        .await?;
                }
                SegmentAct::Closes { reason } => {
                    desk.close(chat, Party::Agent { agent }, reason, &as_agent(agent))
                        .await?;
                }
                SegmentAct::TransfersToQueue { queue, reason } => {
                    desk.transfer(
                        chat,
                        agent,
                        Transfer::ToQueue(queue),
                        reason,
                        &as_agent(agent),
                    )
                    .await?;
                }
                SegmentAct::CustomerCloses => customer_leaves(desk, chat, l.customer).await?,
            }
        }
        Action::Leaves { chat, queueing, .. } => {
            let Some(l) = live.get(&chat) else {
                return Ok(());
            };
            if l.still_waiting(queueing) {
                customer_leaves(desk, chat, l.customer).await?;
            }
        }
        Action::Survey { chat } => {
            let Some(l) = live.get(&chat) else {
                return Ok(());
            };
            if let Some(s) = history.surveys.get(&l.recorded) {
                let meta = request(desk, ActorKind::Customer, l.customer);
                desk.answer_survey(chat, s.score, s.comment.clone(), &meta)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Appends a recorded event to the scratch log as it was (its id, type, payload and
/// metadata); the stream's version follows from the copies before it.
async fn copy(log: &MemoryLog, e: &RecordedEvent) -> Result<(), LogError> {
    log.append(
        &e.stream_id,
        ExpectedVersion::Any,
        vec![NewEvent::copy_of(e)],
    )
    .await
    .map(|_| ())
}

/// A new request by a person (or the replay's supervisor), as the replay makes one.
fn request(desk: &Desk<MemoryLog>, kind: ActorKind, id: impl std::fmt::Display) -> Metadata {
    Metadata::for_request(Actor::new(kind, id.to_string()), desk.commands().new_id())
}

/// The customer closes the chat and leaves: from the bot, from a queue, or from an agent.
async fn customer_leaves(
    desk: &Desk<MemoryLog>,
    chat: ConversationId,
    customer: CustomerId,
) -> Result<(), CommandError> {
    let meta = request(desk, ActorKind::Customer, customer);
    desk.close(chat, Party::Customer, CloseReason::CustomerLeft, &meta)
        .await
        .map(|_| ())
}

async fn customer_acts(
    desk: &Desk<MemoryLog>,
    live: &mut BTreeMap<ConversationId, Live>,
    ids: &mut BTreeMap<ConversationId, ConversationId>,
    chat: ConversationId,
    act: &Act,
) -> Result<(), CommandError> {
    let request = |customer: CustomerId| request(desk, ActorKind::Customer, customer);
    if let Act::Starts {
        customer,
        locale,
        channel,
        order,
        bot_enabled,
    } = act
    {
        let started = desk
            .start_conversation(
                *customer,
                Some(locale.clone()),
                *channel,
                order.clone(),
                *bot_enabled,
                &request(*customer),
            )
            .await?;
        ids.insert(chat, started.value);
        live.insert(
            started.value,
            Live {
                recorded: chat,
                customer: *customer,
                queueings: 0,
                waiting: false,
                assignments: 0,
                closed: false,
            },
        );
        return Ok(());
    }
    let Some(&replayed) = ids.get(&chat) else {
        return Ok(());
    };
    let customer = live[&replayed].customer;
    match act {
        Act::Starts { .. } => {}
        Act::Writes { message, text } => {
            desk.customer_message(replayed, *message, text.clone(), &request(customer))
                .await?;
        }
        Act::Closes => customer_leaves(desk, replayed, customer).await?,
    }
    Ok(())
}

/// The production reactions the replay runs, each at its own position in the scratch log.
struct Crew {
    log: Arc<MemoryLog>,
    desk: Desk<MemoryLog>,
    bot: BotWorker<MemoryLog>,
    triage: Triage<MemoryLog>,
    surveys: SurveyOffers<MemoryLog>,
    queues: QueuesInMemory,
    /// The next position the crew reads: all of them take every batch, in log order.
    next: Position,
}

impl Crew {
    /// Reacts to everything appended since the last call, and to what the reactions
    /// themselves append, until nothing new is there.
    async fn settle(&mut self) -> Result<(), WhatIfError> {
        const ROUNDS: usize = 1000;
        let assigner = Actor::new(ActorKind::System, assigner::NAME);
        for _ in 0..ROUNDS {
            let batch = self.log.read_all(self.next, 256).await?;
            let Some(last) = batch.last().map(|e| e.position) else {
                return Ok(());
            };
            self.bot.react(&batch).await?;
            let work = Triage::<MemoryLog>::work(&batch);
            let head = self.log.head().await?.unwrap_or(last);
            let queues = if Triage::<MemoryLog>::needs_queues(&work) {
                self.queues.catch_up(&*self.log, head).await?;
                self.queues.queues()?
            } else {
                Vec::new()
            };
            self.triage.react(work, &queues).await?;
            self.surveys.react(&batch).await?;
            free_closed_seats(&self.desk, &assigner, &batch).await?;
            if batch.iter().any(assigner::Assigner::<MemoryLog>::wants) {
                let head = self.log.head().await?.unwrap_or(last);
                self.queues.catch_up(&*self.log, head).await?;
                let matches = plan(&self.queues.waiting()?, &self.queues.agents()?);
                carry_out(&self.desk, &assigner, matches).await?;
            }
            self.next = last.next();
        }
        Err(WhatIfError::Unsettled { rounds: ROUNDS })
    }
}
