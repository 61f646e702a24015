//! What-if replay (issue 19): the customers of a recorded time window played again through the
//! production reactions, on a scratch log, with one setting changed, to see what would have
//! happened.
//!
//! - [`History::from_events`] reads the window out of a log: everything before it (copied
//!   into the scratch log as it stands: the knowledge base, the queues, the agents, the
//!   customers and their orders), the outside inputs inside it (customers' profiles and
//!   orders, knowledge-base edits, switch flips: copied at their recorded time), and every
//!   chat that started in it as the customer's own acts (start, each message with its text and
//!   time, their close).
//! - [`replay`] plays those acts on a virtual clock into a [`MemoryLog`] (never the production
//!   log) through the real command layer ([`Desk`]), and after each act lets the production
//!   reactions run until they are idle: the bot ([`BotWorker`], with the [`Settings`]' answer
//!   thresholds) and triage ([`Triage`]: predictions, and the route to a queue when a chat goes
//!   to a human, read from the production queues projection applied in memory,
//!   [`QueuesInMemory`]).
//! - [`outcomes`] reads what became of each chat (handed to a person or not, and why; the
//!   bot's answers) from a log; the same function reads the recorded log and the replayed one,
//!   so the two are measured alike. [`Report`] puts them side by side per hour.
//!
//! **Validated before it is believed**: every report replays the window unchanged first
//! (the baseline) and says how many chats came out differently from the record; a change is
//! read against the baseline as well as against the record.
//!
//! **Behaviour model, stated**: a customer writes what they wrote, when they wrote it, and
//! closes when they closed, whatever the replay answered (a customer the bot answers where a
//! person did in the record still writes their recorded words; these are the chats to read
//! with care, and the report counts them). The bot and triage are deterministic given the
//! log, so one replay is the whole answer: there is no spread over seeds to report.
//!
//! **Not yet replayed** (the next steps of issue 19): people's side (agents' shifts from their
//! recorded status changes, handling times drawn per queue and hour, abandonment from the
//! recorded patience), so waits, SLA breaches, assignments and satisfaction are not
//! reported yet; only the bot's and triage's part of a chat is.

pub mod queues;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Timelike, Utc};
use kefu_bot::faq::Thresholds;
use kefu_desk::Desk;
use kefu_desk::command::{CommandError, CommandService};
use kefu_domain::common::Party;
use kefu_domain::conversation::{
    CloseReason, ConversationDecider, ConversationEvent as C, HandoffReason,
};
use kefu_domain::ids::{ConversationId, CustomerId, Locale, MessageId, OrderId};
use kefu_domain::{Decider, Event};
use kefu_eventlog::memory::MemoryLog;
use kefu_eventlog::{
    Actor, ActorKind, EventLog, ExpectedVersion, LogError, Metadata, NewEvent, Position,
    RecordedEvent,
};
use kefu_projections::ProjectionError;
use kefu_workers::bot::BotWorker;
use kefu_workers::gateway::OrderGateway;
use kefu_workers::router::Triage;
use kefu_workers::runtime::{Reactor, WorkerError};
use kefu_workers::surveys::SurveyOffers;
use serde::Serialize;

pub use queues::QueuesInMemory;

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
    #[error("the window is empty: it must end after it starts (from {from}, to {to})")]
    EmptyWindow {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    #[error("the reactions still had work after {rounds} rounds")]
    Unsettled { rounds: usize },
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

/// A customer's own act in a recorded chat.
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
}

/// Events that come from outside the reactions the replay runs: customers' profiles and
/// orders (the shop), the knowledge base, the switches and the queues (admins), and the
/// agents' registrations, skills, seats and presence. Inside the window they are copied at
/// their recorded time. An agent taking or releasing a chat is the desk's doing, and the
/// conversations are re-enacted, so neither is copied.
fn is_outside_input(event: &Event) -> bool {
    use kefu_domain::agent::AgentEvent as A;
    match event {
        Event::Customer(_) | Event::Knowledge(_) | Event::Switches(_) | Event::Queue(_) => true,
        Event::Agent(a) => !matches!(a, A::AgentChatTaken(_) | A::AgentChatReleased(_)),
        _ => false,
    }
}

impl History {
    /// The window out of a whole log's events, in position order.
    pub fn from_events(events: Vec<RecordedEvent>, window: Window) -> Self {
        // A chat belongs to the window by its start; everything about it is the customer's
        // acts (re-enacted) or the desk's reactions (replayed, so left out).
        let mut in_window: BTreeSet<ConversationId> = BTreeSet::new();
        // Once the window's first step is met, nothing more goes into `before`.
        let mut stepped = false;
        let mut before = Vec::new();
        let mut steps = Vec::new();
        let mut chats = Vec::new();
        let mut recorded_events = Vec::new();
        for e in events {
            let at = time_of(&e);
            let chat = ConversationDecider::id_of_stream(e.stream_id.as_str());
            let decoded = kefu_feed::decode_or_other(&e);
            if let (Some(chat), Event::Conversation(C::ConversationStarted(s))) = (chat, &decoded)
                && window.holds(s.at)
            {
                in_window.insert(chat);
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
                && in_window.contains(&chat)
            {
                match decoded {
                    Event::Conversation(C::CustomerTurnRecorded(t)) => steps.push(Step::Customer {
                        chat,
                        at,
                        act: Act::Writes {
                            message: t.message,
                            text: t.text,
                        },
                    }),
                    Event::Conversation(C::ConversationClosed(c))
                        if matches!(c.by, Party::Customer) =>
                    {
                        steps.push(Step::Customer {
                            chat,
                            at,
                            act: Act::Closes,
                        })
                    }
                    _ => {}
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
        History {
            window,
            before,
            steps,
            chats,
            recorded,
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
}

/// What became of a chat, as far as the bot and triage go.
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
}

/// What became of every chat in `events` (one log's, any order within a chat's stream).
pub fn outcomes(events: &[RecordedEvent]) -> BTreeMap<ConversationId, Outcome> {
    let mut out: BTreeMap<ConversationId, Outcome> = BTreeMap::new();
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
            _ => {}
        }
    }
    out
}

/// What a replay changes: today, the bot's answer thresholds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Settings {
    pub answer_threshold: f64,
    pub clarify_threshold: f64,
}

impl Settings {
    pub fn from_thresholds(t: Thresholds) -> Self {
        Settings {
            answer_threshold: t.answer,
            clarify_threshold: t.clarify,
        }
    }

    fn thresholds(&self) -> Thresholds {
        Thresholds {
            answer: self.answer_threshold,
            clarify: self.clarify_threshold,
        }
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

/// A replayed window: each recorded chat's outcome in the replay, and how many of the
/// customers' acts the desk refused there (a message to a chat the replay had closed).
pub struct Replayed {
    pub outcomes: BTreeMap<ConversationId, Outcome>,
    pub refused: usize,
}

/// Plays `history` again with `settings` on a scratch log (see the crate docs).
pub async fn replay(history: &History, settings: &Settings) -> Result<Replayed, WhatIfError> {
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
        bot,
        triage,
        surveys: SurveyOffers::new(desk.clone()),
        queues: QueuesInMemory::default(),
        next: log.head().await?.map_or(Position::START, |p| p.next()),
    };
    // Recorded chat id to the replay's (the desk mints its own), with its customer.
    let mut ids: BTreeMap<ConversationId, (ConversationId, CustomerId)> = BTreeMap::new();
    let mut refused = 0;
    for step in &history.steps {
        match step {
            Step::Copy(e) => {
                clock.set(time_of(e));
                copy(&log, e).await?;
            }
            Step::Customer { chat, at, act } => {
                clock.set(*at);
                let done = customer_acts(&desk, &mut ids, *chat, act).await;
                match done {
                    Ok(()) => {}
                    Err(CommandError::Rejected(reason)) => {
                        tracing::debug!(%chat, %reason, "the replay refused a customer's act");
                        refused += 1;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        crew.settle().await?;
    }
    let replayed = log.snapshot();
    let by_replay_id = outcomes(&replayed);
    let outcomes = ids
        .iter()
        .map(|(recorded, (replayed, _))| {
            (
                *recorded,
                by_replay_id.get(replayed).cloned().unwrap_or_default(),
            )
        })
        .collect();
    Ok(Replayed { outcomes, refused })
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

async fn customer_acts(
    desk: &Desk<MemoryLog>,
    ids: &mut BTreeMap<ConversationId, (ConversationId, CustomerId)>,
    chat: ConversationId,
    act: &Act,
) -> Result<(), CommandError> {
    let request = |customer: CustomerId| {
        Metadata::for_request(
            Actor::new(ActorKind::Customer, customer.to_string()),
            desk.commands().new_id(),
        )
    };
    match act {
        Act::Starts {
            customer,
            locale,
            channel,
            order,
            bot_enabled,
        } => {
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
            ids.insert(chat, (started.value, *customer));
        }
        Act::Writes { message, text } => {
            let Some(&(replayed, customer)) = ids.get(&chat) else {
                return Ok(());
            };
            desk.customer_message(replayed, *message, text.clone(), &request(customer))
                .await?;
        }
        Act::Closes => {
            let Some(&(replayed, customer)) = ids.get(&chat) else {
                return Ok(());
            };
            desk.close(
                replayed,
                Party::Customer,
                CloseReason::CustomerLeft,
                &request(customer),
            )
            .await?;
        }
    }
    Ok(())
}

/// The production reactions the replay runs, each at its own position in the scratch log.
struct Crew {
    log: Arc<MemoryLog>,
    bot: BotWorker<MemoryLog>,
    triage: Triage<MemoryLog>,
    surveys: SurveyOffers<MemoryLog>,
    queues: QueuesInMemory,
    /// The next position the crew reads: all three take every batch, in log order.
    next: Position,
}

impl Crew {
    /// Reacts to everything appended since the last call, and to what the reactions
    /// themselves append, until nothing new is there.
    async fn settle(&mut self) -> Result<(), WhatIfError> {
        const ROUNDS: usize = 1000;
        for _ in 0..ROUNDS {
            let batch = self.log.read_all(self.next, 256).await?;
            let Some(last) = batch.last().map(|e| e.position) else {
                return Ok(());
            };
            self.bot.react(&batch).await?;
            let work = Triage::<MemoryLog>::work(&batch);
            let queues = if Triage::<MemoryLog>::needs_queues(&work) {
                let head = self.log.head().await?.unwrap_or(last);
                self.queues.catch_up(&*self.log, head).await?;
                self.queues.queues()?
            } else {
                Vec::new()
            };
            self.triage.react(work, &queues).await?;
            self.surveys.react(&batch).await?;
            self.next = last.next();
        }
        Err(WhatIfError::Unsettled { rounds: ROUNDS })
    }
}

/// One hour's chats (by their recorded start), as recorded and as replayed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HourFigures {
    pub hour: String,
    pub chats: usize,
    /// Never handed to a person (within the window).
    pub kept: usize,
    /// Kept, and served at least one knowledge-base answer: what the bot resolved, as far as
    /// a replay can tell. (The stats read model counts chats closed without a person; the
    /// replay does not close chats for agents yet, so it cannot use that denominator.)
    pub contained: usize,
    pub handed_off: usize,
    pub by_reason: BTreeMap<String, usize>,
    pub bot_answers: usize,
}

impl HourFigures {
    /// The share of chats the bot contained.
    pub fn containment(&self) -> f64 {
        if self.chats == 0 {
            0.0
        } else {
            self.contained as f64 / self.chats as f64
        }
    }
}

/// Figures per hour of the chats' recorded start, and for the whole window (hour "all").
pub fn figures(
    chats: &[ConversationId],
    started: &BTreeMap<ConversationId, Outcome>,
    outcomes: &BTreeMap<ConversationId, Outcome>,
) -> Vec<HourFigures> {
    let mut by_hour: BTreeMap<String, HourFigures> = BTreeMap::new();
    let mut all = HourFigures {
        hour: "all".into(),
        ..Default::default()
    };
    for chat in chats {
        let hour = started
            .get(chat)
            .and_then(|o| o.started_at)
            .and_then(|t| t.with_minute(0))
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .map(|t| t.format("%Y-%m-%dT%H:00Z").to_string())
            .unwrap_or_default();
        let o = outcomes.get(chat).cloned().unwrap_or_default();
        for f in [
            by_hour.entry(hour.clone()).or_insert_with(|| HourFigures {
                hour: hour.clone(),
                ..Default::default()
            }),
            &mut all,
        ] {
            f.chats += 1;
            f.bot_answers += o.bot_answers;
            match o.handed_off {
                Some(reason) => {
                    f.handed_off += 1;
                    *f.by_reason.entry(reason_name(reason)).or_default() += 1;
                }
                None => {
                    f.kept += 1;
                    f.contained += usize::from(o.bot_answers > 0);
                }
            }
        }
    }
    let mut rows: Vec<HourFigures> = by_hour.into_values().collect();
    rows.push(all);
    rows
}

fn reason_name(reason: HandoffReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{reason:?}"))
}

/// The chats whose outcome differs between two runs: the hand-off (or not) and its reason.
pub fn differing(
    chats: &[ConversationId],
    a: &BTreeMap<ConversationId, Outcome>,
    b: &BTreeMap<ConversationId, Outcome>,
) -> usize {
    chats
        .iter()
        .filter(|c| a.get(c).map(|o| o.handed_off) != b.get(c).map(|o| o.handed_off))
        .count()
}

/// The report a supervisor reads: the record, the unchanged replay (how far it is off), and
/// the change, per hour.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub window: Window,
    pub chats: usize,
    pub baseline_settings: Settings,
    pub changed_settings: Settings,
    /// Chats whose outcome the unchanged replay did not reproduce, and their share: the
    /// replay's error on this window.
    pub baseline_differs: usize,
    pub baseline_differs_share: f64,
    /// Chats whose outcome the change moved, against the baseline.
    pub changed_differs: usize,
    pub rows: Vec<ReportRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    pub hour: String,
    pub recorded: HourFigures,
    pub baseline: HourFigures,
    pub changed: HourFigures,
}

impl Report {
    /// Replays `history` unchanged (`baseline`, the settings it was recorded with) and with
    /// `changed`, and compares both with the record.
    pub async fn run(
        history: &History,
        baseline: Settings,
        changed: Settings,
    ) -> Result<Report, WhatIfError> {
        let base = replay(history, &baseline).await?;
        let change = replay(history, &changed).await?;
        let chats = &history.chats;
        let recorded = figures(chats, &history.recorded, &history.recorded);
        let base_rows = figures(chats, &history.recorded, &base.outcomes);
        let change_rows = figures(chats, &history.recorded, &change.outcomes);
        let rows = recorded
            .into_iter()
            .zip(base_rows)
            .zip(change_rows)
            .map(|((recorded, baseline), changed)| ReportRow {
                hour: recorded.hour.clone(),
                recorded,
                baseline,
                changed,
            })
            .collect();
        let baseline_differs = differing(chats, &history.recorded, &base.outcomes);
        Ok(Report {
            window: history.window,
            chats: chats.len(),
            baseline_settings: baseline,
            changed_settings: changed,
            baseline_differs,
            baseline_differs_share: if chats.is_empty() {
                0.0
            } else {
                baseline_differs as f64 / chats.len() as f64
            },
            changed_differs: differing(chats, &base.outcomes, &change.outcomes),
            rows,
        })
    }

    /// One CSV line per hour (and "all"): containment and hand-offs recorded, replayed
    /// unchanged, and replayed with the change.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "hour,chats,recorded_kept,baseline_kept,changed_kept,recorded_contained,baseline_contained,changed_contained,recorded_handed_off,baseline_handed_off,changed_handed_off,recorded_bot_answers,baseline_bot_answers,changed_bot_answers\n",
        );
        for r in &self.rows {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                r.hour,
                r.recorded.chats,
                r.recorded.kept,
                r.baseline.kept,
                r.changed.kept,
                r.recorded.contained,
                r.baseline.contained,
                r.changed.contained,
                r.recorded.handed_off,
                r.baseline.handed_off,
                r.changed.handed_off,
                r.recorded.bot_answers,
                r.baseline.bot_answers,
                r.changed.bot_answers,
            ));
        }
        out
    }

    /// A chart of the bot's containment per hour (the share of each hour's chats it
    /// contained), recorded, replayed unchanged and replayed with the change, as SVG.
    pub fn svg(&self) -> String {
        let hours: Vec<&ReportRow> = self.rows.iter().filter(|r| r.hour != "all").collect();
        let (w, h, left, top, bottom) = (720.0, 360.0, 56.0, 40.0, 60.0);
        let plot_w = w - left - 24.0;
        let plot_h = h - top - bottom;
        let n = hours.len().max(1) as f64;
        let x = |i: usize| left + plot_w * (i as f64 + 0.5) / n;
        let y = |share: f64| top + plot_h * (1.0 - share.clamp(0.0, 1.0));
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n<text x=\"{left}\" y=\"20\" font-size=\"13\">Bot containment by hour (UTC): recorded, replayed unchanged, answer threshold {} / clarify {}</text>\n",
            self.changed_settings.answer_threshold, self.changed_settings.clarify_threshold
        );
        for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
            let ty = y(tick);
            out.push_str(&format!(
                "<line x1=\"{left}\" y1=\"{ty:.1}\" x2=\"{:.1}\" y2=\"{ty:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}%</text>\n",
                left + plot_w,
                left - 6.0,
                ty + 4.0,
                tick * 100.0
            ));
        }
        for (i, r) in hours.iter().enumerate() {
            // The hour of day (UTC) under its point.
            let label = r.hour.get(11..13).unwrap_or(&r.hour);
            out.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>\n",
                x(i),
                top + plot_h + 16.0
            ));
        }
        // The record wide and pale under the unchanged replay, so a baseline that matches it
        // shows as one line inside the other.
        type Series = (
            &'static str,
            &'static str,
            f64,
            &'static str,
            fn(&ReportRow) -> &HourFigures,
        );
        let series: [Series; 3] = [
            ("recorded", "#bbb", 6.0, "", |r| &r.recorded),
            ("replayed unchanged", "#2b7bb9", 2.0, "6 3", |r| &r.baseline),
            ("replayed with the change", "#d9534f", 2.0, "", |r| {
                &r.changed
            }),
        ];
        for (k, (name, colour, width, dash, pick)) in series.iter().enumerate() {
            let points: Vec<String> = hours
                .iter()
                .enumerate()
                .map(|(i, r)| format!("{:.1},{:.1}", x(i), y(pick(r).containment())))
                .collect();
            out.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width}\" stroke-dasharray=\"{dash}\" points=\"{}\"/>\n",
                points.join(" ")
            ));
            let ly = h - 18.0;
            let lx = left + 200.0 * k as f64;
            out.push_str(&format!(
                "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{:.1}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"{width}\" stroke-dasharray=\"{dash}\"/><text x=\"{:.1}\" y=\"{:.1}\">{name}</text>\n",
                lx + 24.0,
                lx + 30.0,
                ly + 4.0
            ));
        }
        out.push_str("</svg>\n");
        out
    }

    /// The report as JSON lines: a summary line, then one line per hour.
    pub fn jsonl(&self) -> String {
        let mut out = serde_json::json!({
            "window": self.window,
            "chats": self.chats,
            "baseline_settings": self.baseline_settings,
            "changed_settings": self.changed_settings,
            "baseline_differs": self.baseline_differs,
            "baseline_differs_share": self.baseline_differs_share,
            "changed_differs": self.changed_differs,
        })
        .to_string();
        out.push('\n');
        for r in &self.rows {
            out.push_str(&serde_json::to_string(r).unwrap_or_default());
            out.push('\n');
        }
        out
    }
}
