//! Deterministic simulation of the whole desk (issue 17, step 7).
//!
//! From a seed, [`run`] plays a small help desk on an in-memory log
//! ([`kefu_eventlog::memory::MemoryLog`]): customers start chats, ask questions, lose their
//! temper, ask for a person, close and answer surveys; agents go online and offline, reply,
//! hand chats back to the queue and close them. Between people's requests the production
//! workers take their next events, a few at a time, in an order the seed picks: the bot
//! ([`BotWorker`], whole), the router's reactions ([`Triage`]: what `Router` does once it has
//! the queue list), the survey offers ([`SurveyOffers`], whole) and the assigner (its pure
//! [`plan`] over the queues read model, carried out by [`carry_out`] through the desk's
//! seat-first protocol, with seats freed after closes by [`free_closed_seats`]), and now and
//! then the assigner's seat sweep (`Desk::free_orphaned_seats`). Everything goes through the
//! real command layer ([`CommandService`], [`Desk`]) and the real shell. Half the chats are
//! about an order the shop's gateway imported, which the router looks up through
//! [`OrderGateway`].
//! The queues read model is the production projection applied in memory ([`QueuesInMemory`]), read
//! at a seeded lag behind the log, as a live read model lags.
//!
//! Now and then an admin adds a knowledge-base entry, retires one or rewrites an answer; a
//! restarted bot starts warm from the entries it recorded (`KnownEntries`, in a SQLite
//! read-model store of the run's own), and after the run it must hold exactly what a bot
//! folding the whole log holds.
//!
//! Faults come from `kefu_eventlog::faults`, one dial per process (each worker, the seat
//! sweep, the people's clients, and the order gateway): store errors at a seeded rate, added
//! latency (past the gateway's deadline, too), and crash points
//! (`die_after_appends`): a worker whose store died under it is "killed" between two of its
//! appends and started again from its last checkpoint, as `kefu serve` would be after
//! `kill -9`.
//!
//! **One seed, one run.** Time is simulated (the desk's clock and the log's `recorded_at`
//! read one [`SimClock`]), every id is minted from it and a seeded RNG (the command
//! service's [`Ids`]), and the run is one task on a current-thread runtime with tokio's clock
//! paused, so latency and resend pauses are virtual and fire in one order. Nothing reads the
//! wall clock. `tests/tests/sim.rs` runs a seed twice and compares the logs byte for byte.
//!
//! After each run [`check`] holds the log to the desk's invariants; a failing seed is
//! replayed with [`replay_command`].

mod check;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use kefu_bot::kb::KbEntry;
use kefu_desk::command::{CommandError, CommandService, Ids};
use kefu_desk::{Desk, QueueDefinition, Transfer};
use kefu_domain::agent::AgentStatus;
use kefu_domain::common::{BusinessLine, Channel, Money, Party};
use kefu_domain::conversation::CloseReason;
use kefu_domain::customer::{CustomerTier, Order, OrderStatus};
use kefu_domain::ids::{
    AgentId, Category, ConversationId, CustomerId, Locale, MessageId, OrderId, QueueId, Skill,
};
use kefu_domain::knowledge::{KnowledgeDecider, KnowledgeEdit};
use kefu_domain::queue::{OpeningHours, SlaTargets};
use kefu_eventlog::faults::{FaultSettings, Faults, Faulty};
use kefu_eventlog::memory::MemoryLog;
use kefu_eventlog::{Actor, ActorKind, EventLog, LogError, Metadata, Position, RecordedEvent};
use kefu_projections::{ProjectionError, ReadStore};
use kefu_workers::assigner::{self, AssignerError, carry_out, free_closed_seats, plan};
use kefu_workers::bot::{BotWorker, KnownEntries, seed_kb};
use kefu_workers::gateway::OrderGateway;
use kefu_workers::router::Triage;
use kefu_workers::runtime::{Reactor, WorkerError};
use kefu_workers::surveys::SurveyOffers;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

pub use check::{Violation, check};
use kefu_whatif::{QueuesInMemory, WhatIfError};

use crate::history::texts::{
    ANGRY_PREFIXES, ANGRY_SUFFIXES, ASK_FOR_HUMAN, GENERIC_FOLLOW_UPS, STILL_UNCLEAR, THANKS,
};

/// The seed to replay, alone.
pub const SEED_ENV: &str = "KEFU_SIM_SEED";
/// How many seeds to run (from 0), for a nightly-style run.
pub const SEEDS_ENV: &str = "KEFU_SIM_SEEDS";

/// The store every simulated process (a worker, the people's clients) reaches the log
/// through: its own fault dial over the one in-memory log.
pub type Store = Faulty<Arc<MemoryLog>>;

/// How big a world each seed plays.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Conversations started, at most.
    pub customers: usize,
    pub agents: usize,
    /// Steps (a person's request or a worker's batch) before the workers are left to settle.
    pub steps: usize,
    /// Store errors, latency and crashes.
    pub faults: bool,
    /// After every person's request the workers take everything there is before anyone acts
    /// again, as production's reactions (milliseconds) keep up with people (seconds): no
    /// customer writes twice before the bot has answered. Off, the workers lag by a seeded
    /// number of steps, where the interleavings are.
    pub keep_up: bool,
}

impl SimConfig {
    /// What CI runs hundreds of: a few customers and agents, enough steps for chats to go
    /// from start to survey with workers crashing on the way.
    pub fn small() -> Self {
        SimConfig {
            customers: 6,
            agents: 3,
            steps: 120,
            faults: true,
            keep_up: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
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
    #[error(transparent)]
    WhatIf(#[from] WhatIfError),
    #[error("cannot start the simulation's runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// A worker failed with its store up and no fault injected: a bug, not a drill.
    #[error("the {worker} failed with no fault injected: {error}")]
    Unprovoked { worker: &'static str, error: String },
    #[error("the workers still had work after {rounds} rounds with every fault off")]
    Unsettled { rounds: usize },
}

/// What happened in a run, beside the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// People's requests made, and those the domain refused (a chat closed meanwhile, an
    /// agent with chats going offline) or the store failed.
    pub requests: usize,
    pub refused: usize,
    pub failed_requests: usize,
    /// Batches the workers took, batches that failed (to be taken again), and restarts.
    pub batches: usize,
    pub failed_batches: usize,
    pub restarts: usize,
    /// Seats the seat sweep freed (left behind by an assigner killed between a seat and
    /// its assignment).
    pub seats_freed: usize,
    /// Store calls the dials failed.
    pub injected: u64,
}

/// One seed's run.
pub struct Run {
    pub seed: u64,
    /// The whole log, in position order.
    pub events: Vec<RecordedEvent>,
    pub tally: Tally,
}

impl Run {
    /// The log as JSON lines: what two runs of one seed must agree on byte for byte.
    pub fn log_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.events {
            // A recorded event always serialises (its payload is JSON already).
            out.extend(serde_json::to_vec(e).unwrap_or_default());
            out.push(b'\n');
        }
        out
    }

    pub fn violations(&self) -> Vec<Violation> {
        check(&self.events)
    }
}

/// The command that replays `seed` alone.
pub fn replay_command(seed: u64) -> String {
    format!("{SEED_ENV}={seed} cargo test -p kefu-tests --test sim")
}

/// Runs `seed` on a runtime of its own: one thread, tokio's clock paused.
pub fn run_blocking(seed: u64, config: &SimConfig) -> Result<Run, SimError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?
        .block_on(run(seed, config))
}

/// The simulated time: the desk's clock, the log's `recorded_at` and the ids' timestamps.
/// It only moves forward, when the driver says.
#[derive(Clone)]
pub struct SimClock(Arc<AtomicI64>);

impl SimClock {
    fn starting_at(at: DateTime<Utc>) -> Self {
        SimClock(Arc::new(AtomicI64::new(at.timestamp_micros())))
    }

    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0.load(Ordering::SeqCst)).unwrap_or_default()
    }

    fn advance(&self, by: chrono::Duration) {
        self.0
            .fetch_add(by.num_microseconds().unwrap_or(0).max(0), Ordering::SeqCst);
    }

    fn as_fn(&self) -> Arc<dyn Fn() -> DateTime<Utc> + Send + Sync> {
        let clock = self.clone();
        Arc::new(move || clock.now())
    }
}

/// UUIDv7s from the simulated time and a seeded RNG, as the history generator mints them
/// (`history::stream::Sink::mint`), so they sort by simulated time and repeat with the seed.
fn seeded_ids(seed: u64, clock: SimClock) -> Ids {
    let rng = Mutex::new(StdRng::seed_from_u64(seed ^ 0x1d5_5eed));
    Arc::new(move || {
        let mut random = [0u8; 10];
        rng.lock()
            .unwrap_or_else(|p| p.into_inner())
            .fill_bytes(&mut random);
        let millis = u64::try_from(clock.now().timestamp_millis()).unwrap_or(0);
        uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
    })
}

/// The workers the driver steps, in the order their checkpoints are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bot,
    Router,
    Surveys,
    Assigner,
}

const KINDS: [Kind; 4] = [Kind::Bot, Kind::Router, Kind::Surveys, Kind::Assigner];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bot => "bot",
            Kind::Router => "router",
            Kind::Surveys => "surveys",
            Kind::Assigner => "assigner",
        }
    }
}

enum Worker {
    Bot(Box<BotWorker<Store>>),
    Router(Box<Triage<Store>>),
    Surveys(SurveyOffers<Store>),
    /// The assigner's state is whether it has run its first round since it started (the
    /// first batch after a start runs one whatever it holds, as `Assigner::react` does).
    Assigner {
        started: bool,
    },
}

/// A worker process: its own store dial, its desk through it, and its checkpoint.
struct Process {
    kind: Kind,
    faults: Faults,
    desk: Desk<Store>,
    worker: Worker,
    /// The next position it reads: the checkpoint, moved after a batch's reactions.
    next: Position,
}

/// The simulated world: the log, the clock, the people and the crew.
struct Sim {
    rng: StdRng,
    config: SimConfig,
    clock: SimClock,
    ids: Ids,
    log: Arc<MemoryLog>,
    people_faults: Faults,
    people: Desk<Store>,
    crew: Vec<Process>,
    /// The assigner's sweep for seats no assignment will use (`OrphanedSeats`), a process of
    /// its own with its own dial.
    sweeper_faults: Faults,
    sweeper: Desk<Store>,
    /// The shop's order gateway the router asks (`OrderGateway`): another system, so its dial
    /// outlives a router's restart.
    gateway_faults: Faults,
    queues: QueuesInMemory,
    agents: Vec<AgentId>,
    /// Every chat started, and those not closed yet as far as the people know.
    conversations: Vec<ConversationId>,
    open: Vec<ConversationId>,
    /// What customers ask: questions the run's knowledge base answers, and questions of
    /// entries it does not hold.
    known: Vec<String>,
    unknown: Vec<String>,
    /// The knowledge base as the admin left it: entries held, never created, and retired
    /// (a retired entry's id cannot be created again).
    held: Vec<KbEntry>,
    spare: Vec<KbEntry>,
    retired: Vec<KbEntry>,
    /// The read-model store the bot records its entries in for a warm restart
    /// ([`KnownEntries`]), in a directory of the run's own.
    known_entries: KnownEntries,
    _read_dir: tempfile::TempDir,
    tally: Tally,
}

/// Plays one seed: set-up, `config.steps` steps, then every fault off and the workers left
/// to settle. The log is returned whole; the caller checks it.
pub async fn run(seed: u64, config: &SimConfig) -> Result<Run, SimError> {
    let start = Utc
        .with_ymd_and_hms(2026, 3, 2, 1, 0, 0)
        .single()
        .unwrap_or_default();
    let clock = SimClock::starting_at(start);
    let ids = seeded_ids(seed, clock.clone());
    let log = Arc::new(MemoryLog::new().with_clock(clock.as_fn()));
    let people_faults = Faults::new("people's store");
    let people = desk_on(&log, &people_faults, &ids, &clock);
    let sweeper_faults = Faults::new("seat sweep");
    let sweeper = desk_on(&log, &sweeper_faults, &ids, &clock);
    let read_dir = tempfile::tempdir()?;
    let read = ReadStore::open_sqlite(&read_dir.path().join("read.db"))
        .map_err(kefu_workers::runtime::WorkerError::from)?;
    let known_entries = KnownEntries::open(read).await?;
    let mut sim = Sim {
        rng: StdRng::seed_from_u64(seed),
        config: config.clone(),
        clock,
        ids,
        log,
        people_faults,
        people,
        crew: Vec::new(),
        sweeper_faults,
        sweeper,
        gateway_faults: Faults::new("order gateway"),
        queues: QueuesInMemory::default(),
        agents: Vec::new(),
        conversations: Vec::new(),
        open: Vec::new(),
        known: Vec::new(),
        unknown: Vec::new(),
        held: Vec::new(),
        spare: Vec::new(),
        retired: Vec::new(),
        known_entries,
        _read_dir: read_dir,
        tally: Tally::default(),
    };
    sim.set_up().await?;
    for _ in 0..config.steps {
        sim.step().await?;
    }
    sim.settle().await?;
    sim.check_knowledge().await?;
    sim.tally.injected = sim.people_faults.injected()
        + sim.sweeper_faults.injected()
        + sim.crew.iter().map(|p| p.faults.injected()).sum::<u64>();
    Ok(Run {
        seed,
        events: sim.log.snapshot(),
        tally: sim.tally,
    })
}

fn desk_on(log: &Arc<MemoryLog>, faults: &Faults, ids: &Ids, clock: &SimClock) -> Desk<Store> {
    let store = Arc::new(Faulty::new(log.clone(), faults.clone()));
    Desk::new(CommandService::new(store).with_ids(ids.clone())).with_clock(clock.as_fn())
}

/// A worker as a process starts it: the bot reads its knowledge base from the log at its
/// first start (no checkpoint) and from the entries it recorded at a restart, the router
/// gets its (once trained) model, the assigner has run no round yet.
async fn start_worker(
    kind: Kind,
    desk: &Desk<Store>,
    gateway: &Faults,
    checkpoint: Option<Position>,
    known: &KnownEntries,
) -> Result<Worker, SimError> {
    Ok(match kind {
        Kind::Bot => Worker::Bot(Box::new(
            BotWorker::resume(desk.clone(), Default::default(), checkpoint, known.clone())
                .await?
                .0,
        )),
        Kind::Router => Worker::Router(Box::new(Triage::new(
            desk.clone(),
            OrderGateway::new(desk.commands().clone(), gateway.clone()),
            kefu_workers::router::intent_model()?,
        ))),
        Kind::Surveys => Worker::Surveys(SurveyOffers::new(desk.clone())),
        Kind::Assigner => Worker::Assigner { started: false },
    })
}

impl Sim {
    fn request(&self, kind: ActorKind, id: impl std::fmt::Display) -> Metadata {
        Metadata::for_request(Actor::new(kind, id.to_string()), (self.ids)())
    }

    fn admin(&self) -> Metadata {
        self.request(ActorKind::System, "sim-admin")
    }

    /// The desk before the first customer: a knowledge base, three queues, agents with
    /// skills and seats from the seed (the first can serve every queue), the workers started
    /// past all of it.
    async fn set_up(&mut self) -> Result<(), SimError> {
        let demo = demo_kb();
        // A dozen entries of the demo knowledge base, by the seed: a small world, since every
        // bot start trains its ranker on the whole knowledge base.
        for (i, e) in demo.iter().enumerate() {
            if self.held.len() < KB_ENTRIES
                && self.rng.random_range(0..demo.len() - i) < KB_ENTRIES - self.held.len()
            {
                self.held.push(e.clone());
            } else {
                self.spare.push(e.clone());
            }
        }
        seed_kb(&self.people, &self.held).await?;
        self.questions();
        let skills = ["general", "after-sales", "complaints"];
        for (name, skill, priority) in [
            ("综合", skills[0], 5),
            ("售后", skills[1], 3),
            ("投诉", skills[2], 2),
        ] {
            self.people
                .define_queue(
                    QueueDefinition {
                        name: name.into(),
                        business_line: BusinessLine::SelfOperated,
                        categories: [Category::new("shipping"), Category::new("returns")].into(),
                        skills: [Skill::new(skill)].into(),
                        priority,
                        sla: SlaTargets {
                            first_response_secs: 300,
                            resolution_secs: 3600,
                        },
                        hours: OpeningHours::Always,
                    },
                    &self.admin(),
                )
                .await?;
        }
        for i in 0..self.config.agents {
            let agent = AgentId::from_uuid((self.ids)());
            let has: std::collections::BTreeSet<Skill> = skills
                .iter()
                .filter(|_| i == 0 || self.rng.random_bool(0.5))
                .map(|s| Skill::new(*s))
                .collect();
            let seats = self.rng.random_range(1..=3);
            self.people
                .register_agent(agent, format!("agent-{i}"), has, seats, &self.admin())
                .await?;
            // Most start the run at their desks.
            if self.rng.random_bool(0.8) {
                self.people
                    .set_agent_status(agent, AgentStatus::Online, &self.admin())
                    .await?;
            }
            self.agents.push(agent);
        }
        let head = self.log.head().await?.unwrap_or(Position::START);
        self.queues.catch_up(&*self.log, head).await?;
        for kind in KINDS {
            let faults = Faults::new(kind.name());
            let desk = desk_on(&self.log, &faults, &self.ids, &self.clock);
            let worker =
                start_worker(kind, &desk, &self.gateway_faults, None, &self.known_entries).await?;
            self.crew.push(Process {
                kind,
                faults,
                desk,
                worker,
                next: head.next(),
            });
        }
        Ok(())
    }

    /// One step: time moves on, then a person acts, a worker takes its next events, or the
    /// seat sweep runs.
    async fn step(&mut self) -> Result<(), SimError> {
        let secs = self.rng.random_range(1..=40);
        self.clock.advance(chrono::Duration::seconds(secs));
        let faults = self.config.faults;
        match self.rng.random_range(0..100) {
            0..40 => {
                self.person_acts().await?;
                self.keep_up().await
            }
            40..44 => self.sweep_seats(faults).await.map(|_| ()),
            44..46 => {
                self.admin_edits_the_kb().await?;
                self.keep_up().await
            }
            _ => {
                let w = self.rng.random_range(0..self.crew.len());
                self.worker_step(w, faults).await.map(|_| ())
            }
        }
    }

    /// What customers ask: the held entries' questions and paraphrases, and the questions of
    /// entries the knowledge base does not hold (never created, or retired).
    fn questions(&mut self) {
        self.known = self
            .held
            .iter()
            .flat_map(|e| std::iter::once(&e.question).chain(&e.paraphrases))
            .cloned()
            .collect();
        self.unknown = self
            .spare
            .iter()
            .chain(&self.retired)
            .map(|e| e.question.clone())
            .collect();
    }

    /// An admin changes the knowledge base while chats go on: adds an entry, retires one or
    /// rewrites an answer. The bot learns it as it follows the log, and a bot restarted
    /// after it must know it from the entries it recorded (checked after the run,
    /// [`Self::check_knowledge`]).
    async fn admin_edits_the_kb(&mut self) -> Result<(), SimError> {
        let meta = self.admin();
        let outcome = match self.rng.random_range(0..3) {
            0 if !self.spare.is_empty() && self.held.len() < KB_ENTRIES + 4 => {
                let i = self.rng.random_range(0..self.spare.len());
                let entry = self.spare[i].clone();
                let created = self
                    .people
                    .commands()
                    .execute::<KnowledgeDecider>(
                        entry.entry_id(),
                        entry.create_command(self.people.now()),
                        &meta,
                    )
                    .await;
                // A create whose answer the store lost may still be in the log; the
                // admin does not know, and customers keep taking its questions as unknown.
                if created.is_ok() {
                    self.held.push(self.spare.swap_remove(i));
                }
                created.map(|_| ())
            }
            1 if self.held.len() > KB_ENTRIES / 2 => {
                let i = self.rng.random_range(0..self.held.len());
                let id = self.held[i].entry_id();
                let retired = self.people.retire_entry(id, "outdated".into(), &meta).await;
                if retired.is_ok() {
                    self.retired.push(self.held.swap_remove(i));
                }
                retired.map(|_| ())
            }
            _ if !self.held.is_empty() => {
                let i = self.rng.random_range(0..self.held.len());
                let edit = KnowledgeEdit {
                    answer: Some(format!("{}（已更新）", self.held[i].answer)),
                    ..KnowledgeEdit::default()
                };
                let id = self.held[i].entry_id();
                self.people.edit_entry(id, edit, &meta).await.map(|_| ())
            }
            _ => return Ok(()),
        };
        self.questions();
        self.count(outcome.map(|()| true))
    }

    /// After the run, the bot (restarted from its recorded entries any number of times)
    /// must hold exactly the entries a bot folding the whole log holds.
    async fn check_knowledge(&self) -> Result<(), SimError> {
        for p in &self.crew {
            if let Worker::Bot(bot) = &p.worker {
                let (folded, _) = BotWorker::start(p.desk.clone(), Default::default()).await?;
                let (held, truth) = (bot.entry_ids(), folded.entry_ids());
                if held != truth {
                    let missing: Vec<_> = truth.iter().filter(|id| !held.contains(id)).collect();
                    let extra: Vec<_> = held.iter().filter(|id| !truth.contains(id)).collect();
                    return Err(SimError::Unprovoked {
                        worker: "bot",
                        error: format!(
                            "its knowledge base is not the log's: missing {missing:?}, retired or never created {extra:?}"
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The assigner's seat sweep (`OrphanedSeats`): frees each agent's seats that no
    /// assignment will use (`Desk::free_orphaned_seats`). The sweep asks the queues view
    /// whom to check; here every agent is checked, which the streams decide the same way.
    /// A sweep the store failed is tried at the next. How many seats it freed.
    async fn sweep_seats(&mut self, faults: bool) -> Result<usize, SimError> {
        if faults && self.rng.random_bool(0.25) {
            self.sweeper_faults
                .set(FaultSettings {
                    latency: Duration::ZERO,
                    error_rate: 0.25,
                })
                .ok();
        } else {
            self.sweeper_faults.set(FaultSettings::default()).ok();
        }
        let actor = assigner_actor();
        let mut freed = 0;
        for agent in self.agents.clone() {
            let before = self.sweeper_faults.injected();
            match self.sweeper.free_orphaned_seats(agent, &actor).await {
                Ok(n) => {
                    freed += n;
                    self.tally.seats_freed += n;
                }
                Err(_) if self.sweeper_faults.injected() > before => {}
                Err(error) => {
                    return Err(SimError::Unprovoked {
                        worker: "seat sweep",
                        error: error.to_string(),
                    });
                }
            }
        }
        Ok(freed)
    }

    /// Every fault off; the workers take what is left until none has anything new.
    /// With [`SimConfig::keep_up`], every worker takes what is there until none has anything.
    async fn keep_up(&mut self) -> Result<(), SimError> {
        if !self.config.keep_up {
            return Ok(());
        }
        for _ in 0..SETTLE_ROUNDS {
            if !self.every_worker_steps(self.config.faults).await? {
                return Ok(());
            }
        }
        Err(SimError::Unsettled {
            rounds: SETTLE_ROUNDS,
        })
    }

    /// One round: each worker in turn takes its next events. Whether any had something.
    async fn every_worker_steps(&mut self, faults: bool) -> Result<bool, SimError> {
        let mut busy = false;
        for w in 0..self.crew.len() {
            busy |= self.worker_step(w, faults).await?;
        }
        Ok(busy)
    }

    async fn settle(&mut self) -> Result<(), SimError> {
        self.people_faults.set(FaultSettings::default()).ok();
        for p in &self.crew {
            p.faults.set(FaultSettings::default()).ok();
            // Disarms a crash point not reached yet.
            p.faults.revive();
        }
        self.sweeper_faults.set(FaultSettings::default()).ok();
        for _ in 0..SETTLE_ROUNDS {
            self.clock.advance(chrono::Duration::seconds(5));
            let busy = self.every_worker_steps(false).await?;
            // Once the workers are idle, a last sweep; the seats it frees may seat someone.
            if !busy && self.sweep_seats(false).await? == 0 {
                return Ok(());
            }
        }
        Err(SimError::Unsettled {
            rounds: SETTLE_ROUNDS,
        })
    }

    /// Worker `w` takes up to a few events past its checkpoint and reacts. With `faults`, its
    /// dial may first be set to fail calls or add latency, or to kill it after its next
    /// appends. A killed worker is started again and its checkpoint stays; a batch that
    /// failed is taken again later. Whether there was anything to take.
    async fn worker_step(&mut self, w: usize, faults: bool) -> Result<bool, SimError> {
        // One event or a few at a time, where the interleavings are; or everything that is
        // there, as a worker that was busy meanwhile takes it.
        let size = if self.rng.random_bool(0.6) {
            self.rng.random_range(1..=3)
        } else {
            64
        };
        let batch = self.log.read_all(self.crew[w].next, size).await?;
        let Some(last) = batch.last().map(|e| e.position) else {
            return Ok(false);
        };
        if faults {
            self.turn_dial(w);
        }
        let injected_before = self.crew[w].faults.injected();
        let lag = self.rng.random_range(0..=3u64);
        let outcome = self.react(w, &batch, lag).await;
        self.tally.batches += 1;
        let p = &mut self.crew[w];
        if p.faults.is_dead() {
            // The process starts again with a healthy store: what a restart after the
            // store came back meets.
            p.faults.revive();
            p.faults.set(FaultSettings::default()).ok();
            p.worker = start_worker(
                p.kind,
                &p.desk,
                &self.gateway_faults,
                Some(p.next),
                &self.known_entries,
            )
            .await?;
            self.tally.restarts += 1;
            tracing::debug!(worker = p.kind.name(), from = %p.next, "worker killed and started again");
            return Ok(true);
        }
        match outcome {
            Ok(()) => p.next = last.next(),
            Err(_) if p.faults.injected() > injected_before => self.tally.failed_batches += 1,
            Err(error) => {
                return Err(SimError::Unprovoked {
                    worker: p.kind.name(),
                    error: error.to_string(),
                });
            }
        }
        Ok(true)
    }

    /// Sets worker `w`'s dial from the seed: mostly off, sometimes failing a share of calls
    /// with some latency, sometimes armed to die right after one of its next appends.
    fn turn_dial(&mut self, w: usize) {
        let faults = &self.crew[w].faults;
        let settings = if self.rng.random_bool(0.25) {
            FaultSettings {
                latency: Duration::from_millis(self.rng.random_range(0..=400)),
                error_rate: [0.1, 0.25, 0.5][self.rng.random_range(0..3)],
            }
        } else {
            FaultSettings::default()
        };
        faults.set(settings).ok();
        if self.rng.random_bool(0.15) {
            faults.die_after_appends(self.rng.random_range(1..=3));
        }
        // The router's order gateway: now and then failing, or slower than its deadline.
        if self.crew[w].kind == Kind::Router {
            let gateway = match self.rng.random_range(0..10) {
                0 => FaultSettings {
                    latency: Duration::ZERO,
                    error_rate: 1.0,
                },
                1 => FaultSettings {
                    latency: Duration::from_secs(3),
                    error_rate: 0.0,
                },
                _ => FaultSettings::default(),
            };
            self.gateway_faults.set(gateway).ok();
        }
    }

    async fn react(&mut self, w: usize, batch: &[RecordedEvent], lag: u64) -> Result<(), SimError> {
        let head = batch.last().map_or(Position::START, |e| e.position);
        let log_head = self.log.head().await?.unwrap_or(head);
        // The read model is as far as it got, at most `lag` events behind the log.
        let read_model_at = Position(log_head.0.saturating_sub(lag));
        let p = &mut self.crew[w];
        match &mut p.worker {
            Worker::Bot(bot) => bot.react(batch).await?,
            Worker::Surveys(surveys) => surveys.react(batch).await?,
            Worker::Router(triage) => {
                let work = Triage::<Store>::work(batch);
                let queues = if Triage::<Store>::needs_queues(&work) {
                    self.queues.catch_up(&*self.log, read_model_at).await?;
                    self.queues.queues()?
                } else {
                    Vec::new()
                };
                triage.react(work, &queues).await?;
            }
            Worker::Assigner { started } => {
                free_closed_seats(&p.desk, &assigner_actor(), batch).await?;
                let trigger = batch
                    .iter()
                    .rev()
                    .find(|e| assigner::Assigner::<Store>::wants(e))
                    .map(|e| e.position);
                if trigger.is_none() && *started {
                    return Ok(());
                }
                *started = true;
                // As the assigner waits for the read model to apply its trigger, and may
                // find it further on.
                let through = trigger.unwrap_or(head).max(read_model_at);
                self.queues.catch_up(&*self.log, through).await?;
                let matches = plan(&self.queues.waiting()?, &self.queues.agents()?);
                carry_out(&p.desk, &assigner_actor(), matches).await?;
            }
        }
        Ok(())
    }

    /// A person does something: a customer starts a chat, writes, closes it or answers the
    /// survey; an agent goes online or offline, or takes up a chat on their workbench (the
    /// queues read model's chats, as the desk shows them): replies, sends it back to the
    /// queue or closes it. A request the domain refuses is what people meet at a real desk
    /// (the chat closed meanwhile, a workbench a moment behind) and is only counted; so is one
    /// the store failed (with faults on, the people's dial fails some requests).
    async fn person_acts(&mut self) -> Result<(), SimError> {
        if self.config.faults && self.rng.random_bool(0.2) {
            self.people_faults
                .set(FaultSettings {
                    latency: Duration::ZERO,
                    error_rate: 0.3,
                })
                .ok();
        } else {
            self.people_faults.set(FaultSettings::default()).ok();
        }
        // Customers keep arriving while few chats are open, until all have come.
        let can_start = self.conversations.len() < self.config.customers;
        let arrivals = if self.open.len() < 2 { 35 } else { 10 };
        let outcome = match self.rng.random_range(0..100) {
            roll if roll < arrivals && can_start => self.start_chat().await,
            0..45 => self.customer_writes().await,
            45..55 => self.agent_presence().await,
            55..90 => self.agent_works().await?,
            90..93 => self.customer_closes().await,
            93..100 => self.customer_answers_survey().await,
            _ if can_start => self.start_chat().await,
            _ => return Ok(()),
        };
        self.count(outcome)
    }

    /// Counts a person's request (`Ok(false)`: none was made): refused by the domain, or
    /// failed by the store, is part of the drill; any other error is not.
    fn count(&mut self, outcome: Result<bool, CommandError>) -> Result<(), SimError> {
        match outcome {
            Ok(false) => {}
            Ok(true) => self.tally.requests += 1,
            Err(CommandError::Rejected(_) | CommandError::Contended { .. }) => {
                self.tally.requests += 1;
                self.tally.refused += 1;
            }
            Err(CommandError::Log(e)) if e.is_unavailable() => {
                self.tally.requests += 1;
                self.tally.failed_requests += 1;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// An order of the self-operated shop, placed a few days ago, in a seeded state.
    fn order(&mut self) -> Order {
        let now = self.clock.now();
        let categories = ["shipping", "delays", "returns", "refunds"];
        let statuses = [
            OrderStatus::Paid,
            OrderStatus::Shipped,
            OrderStatus::Delivered,
            OrderStatus::Returned,
        ];
        Order {
            order: OrderId::new(format!(
                "JD{:010}",
                self.rng.random_range(0..10_000_000_000u64)
            )),
            seller: BusinessLine::SelfOperated,
            category: Category::new(categories[self.rng.random_range(0..categories.len())]),
            status: statuses[self.rng.random_range(0..statuses.len())],
            total: Money {
                minor_units: self.rng.random_range(1_000..100_000),
                currency: "CNY".into(),
            },
            refunded: None,
            placed_at: now - chrono::Duration::days(self.rng.random_range(2..10)),
            status_at: now - chrono::Duration::hours(self.rng.random_range(1..40)),
        }
    }

    /// A chat still open, mostly (a customer sometimes writes to one closed meanwhile).
    fn pick_open(&mut self) -> Option<ConversationId> {
        let chats = if self.open.is_empty() || self.rng.random_bool(0.05) {
            &self.conversations
        } else {
            &self.open
        };
        (!chats.is_empty()).then(|| chats[self.rng.random_range(0..chats.len())])
    }

    /// Any chat started so far.
    fn pick_any(&mut self) -> Option<ConversationId> {
        let n = self.conversations.len();
        (n > 0).then(|| self.conversations[self.rng.random_range(0..n)])
    }

    fn closed(&mut self, conversation: ConversationId) {
        self.open.retain(|c| *c != conversation);
    }

    /// A customer starts a chat, half of them about an order the shop's gateway imports
    /// first (the imports belong to the customer's request, as the history has them).
    async fn start_chat(&mut self) -> Result<bool, CommandError> {
        let customer = CustomerId::from_uuid((self.ids)());
        // Some chats start without the bot (a channel or a customer it does not serve).
        let bot = self.rng.random_bool(0.9);
        let meta = self.request(ActorKind::Customer, customer);
        let order = if self.rng.random_bool(0.5) {
            self.people
                .record_customer_profile(
                    customer,
                    CustomerTier::Regular,
                    Locale::new(kefu_desk::DEFAULT_LOCALE),
                    &meta,
                )
                .await?;
            let order = self.order();
            Some(
                self.people
                    .record_order(customer, order, &meta)
                    .await?
                    .value,
            )
        } else {
            None
        };
        let done = self
            .people
            .start_conversation(customer, None, Channel::App, order, bot, &meta)
            .await?;
        self.conversations.push(done.value);
        self.open.push(done.value);
        Ok(true)
    }

    async fn customer_writes(&mut self) -> Result<bool, CommandError> {
        let Some(conversation) = self.pick_open() else {
            return Ok(false);
        };
        let text = self.customer_text();
        let meta = self.request(ActorKind::Customer, conversation);
        let message = MessageId::from_uuid((self.ids)());
        self.people
            .customer_message(conversation, message, text, &meta)
            .await?;
        Ok(true)
    }

    /// What a customer writes: a question the knowledge base answers (or one it does not), a
    /// follow-up, anger, or a request for a person.
    fn customer_text(&mut self) -> String {
        let pick = |rng: &mut StdRng, texts: &[(&'static str, &'static str)]| {
            texts[rng.random_range(0..texts.len())].0.to_owned()
        };
        let ask = |rng: &mut StdRng, questions: &[String]| match questions.len() {
            0 => pick(rng, GENERIC_FOLLOW_UPS),
            n => questions[rng.random_range(0..n)].clone(),
        };
        match self.rng.random_range(0..100) {
            0..35 => ask(&mut self.rng, &self.known),
            35..40 => ask(&mut self.rng, &self.unknown),
            40..55 => pick(&mut self.rng, ASK_FOR_HUMAN),
            55..67 => format!(
                "{}{}{}",
                pick(&mut self.rng, ANGRY_PREFIXES),
                pick(&mut self.rng, STILL_UNCLEAR),
                ANGRY_SUFFIXES[self.rng.random_range(0..ANGRY_SUFFIXES.len())]
            ),
            67..85 => pick(&mut self.rng, GENERIC_FOLLOW_UPS),
            _ => pick(&mut self.rng, THANKS),
        }
    }

    async fn customer_closes(&mut self) -> Result<bool, CommandError> {
        let Some(conversation) = self.pick_open() else {
            return Ok(false);
        };
        let meta = self.request(ActorKind::Customer, conversation);
        self.people
            .close(
                conversation,
                Party::Customer,
                CloseReason::CustomerLeft,
                &meta,
            )
            .await?;
        self.closed(conversation);
        Ok(true)
    }

    async fn customer_answers_survey(&mut self) -> Result<bool, CommandError> {
        let Some(conversation) = self.pick_any() else {
            return Ok(false);
        };
        let score = self.rng.random_range(1..=5);
        let meta = self.request(ActorKind::Customer, conversation);
        self.people
            .answer_survey(conversation, score, None, &meta)
            .await?;
        Ok(true)
    }

    async fn agent_presence(&mut self) -> Result<bool, CommandError> {
        let agent = self.agents[self.rng.random_range(0..self.agents.len())];
        let status = if self.rng.random_bool(0.7) {
            AgentStatus::Online
        } else {
            AgentStatus::Offline
        };
        let meta = self.request(ActorKind::Agent, agent);
        self.people.set_agent_status(agent, status, &meta).await?;
        Ok(true)
    }

    /// An agent takes up a chat from their workbench: replies (most often), closes it as
    /// resolved, or sends it back to its queue for a colleague.
    async fn agent_works(&mut self) -> Result<Result<bool, CommandError>, SimError> {
        let head = self.log.head().await?.unwrap_or(Position::START);
        let behind = self.rng.random_range(0..=2u64);
        self.queues
            .catch_up(&*self.log, Position(head.0.saturating_sub(behind)))
            .await?;
        let chats = self.queues.chats()?;
        if chats.is_empty() {
            return Ok(Ok(false));
        }
        let chat = &chats[self.rng.random_range(0..chats.len())];
        let (Ok(conversation), Ok(agent), Ok(queue)) = (
            chat.conversation.parse().map(ConversationId::from_uuid),
            chat.agent.parse().map(AgentId::from_uuid),
            chat.queue.parse().map(QueueId::from_uuid),
        ) else {
            return Ok(Ok(false));
        };
        let meta = self.request(ActorKind::Agent, agent);
        let done = match self.rng.random_range(0..100) {
            0..60 => {
                let message = MessageId::from_uuid((self.ids)());
                self.people
                    .agent_message(
                        conversation,
                        agent,
                        message,
                        "您好，我来帮您看一下".into(),
                        &meta,
                    )
                    .await
                    .map(|_| true)
            }
            60..85 => {
                let done = self
                    .people
                    .close(
                        conversation,
                        Party::Agent { agent },
                        CloseReason::Resolved,
                        &meta,
                    )
                    .await;
                if done.is_ok() {
                    self.closed(conversation);
                }
                done.map(|_| true)
            }
            _ => self
                .people
                .transfer(
                    conversation,
                    agent,
                    Transfer::ToQueue(queue),
                    "转给同事".into(),
                    &meta,
                )
                .await
                .map(|_| true),
        };
        Ok(done)
    }
}

fn assigner_actor() -> Actor {
    Actor::new(ActorKind::System, assigner::NAME)
}

/// How many rounds of every worker's steps the workers get to run out of work.
const SETTLE_ROUNDS: usize = 200;

/// How many entries a run's knowledge base holds.
const KB_ENTRIES: usize = 12;

/// The Chinese entries of the demo knowledge base (customers' chats start in Chinese).
fn demo_kb() -> &'static [KbEntry] {
    static DEMO: LazyLock<Vec<KbEntry>> = LazyLock::new(|| {
        kefu_bot::kb::parse(kefu_bot::kb::DEMO_KB)
            .map(|entries| entries.into_iter().filter(|e| e.locale == "zh").collect())
            .unwrap_or_default()
    });
    &DEMO
}
