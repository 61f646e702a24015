//! A day at the help desk, end to end: a real `kefu serve` on PostgreSQL with every worker but
//! the assigner, and `kefu worker assigner` alone as a process of its own on the same store.
//! A few hundred seeded customers write in over a simulated day (the drill clock: a file both
//! processes stamp their commands from, moved by this test), agents answer, some slowly, and
//! the assigner is killed with SIGKILL in the evening peak and started again.
//!
//! What it proves, from the log and from GraphQL: the bot contains most KB questions; triage
//! routes hand-offs to the queue of their business line and skill; every waiting conversation
//! is assigned exactly once, never beyond an agent's seats, fairly; idle chats close with the
//! idle event; every closed conversation is offered one survey; every worker's command carries
//! its cause's correlation id; the killed assigner resumes from its checkpoint with nothing
//! lost or doubled.
//!
//! Nothing here waits for a duration: every wait is for a condition (positions, checkpoints,
//! events), bounded by `HANG`. Simulated time moves only when the test writes the clock file.

mod server;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::join_all;
use kefu_desk::CommandService;
use kefu_domain::common::{BusinessLine, Money};
use kefu_domain::customer::{CustomerCommand, CustomerDecider, CustomerTier, Order, OrderStatus};
use kefu_domain::ids::{Category, CustomerId, Locale, MerchantId, OrderId};
use kefu_eventlog::postgres::{PostgresConfig, PostgresLog};
use kefu_eventlog::testing as pg;
use kefu_eventlog::{Actor, ActorKind, EventLog, Metadata, Position, RecordedEvent};
use serde_json::{Value, json};
use server::{HANG, Server};
use uuid::Uuid;

const SEED: u64 = 0x6b65_6675_0007;
/// Closes conversations nobody wrote in for two hours; slots are three hours apart and each
/// is over well within two, so only the chats customers leave ever fall idle.
const IDLE_TIMEOUT_SECS: i64 = 7200;
/// The day's slots: the Beijing hour it starts, customers arriving, and whether it is the
/// evening peak (more people want a human; the assigner is killed in it).
const SLOTS: [(u32, usize, bool); 6] = [
    (7, 30, false),
    (10, 45, false),
    (13, 40, false),
    (16, 40, false),
    (19, 75, true),
    (22, 30, false),
];
/// Of the peak's customers, how many arrive while the assigner is down.
const PEAK_LATE: usize = 25;
/// The server's workers, each with a checkpoint in `kefu_workers` (the idle timeout sweeps
/// instead), and the assigner beside them.
const SERVER_WORKERS: [&str; 3] = ["bot", "router", "surveys"];
const ALL_WORKERS: [&str; 4] = ["bot", "router", "surveys", "assigner"];

/// Questions the demo knowledge base does not cover: the bot should hand these over.
const OFF_TOPIC: [&str; 8] = [
    "你们公司招聘兼职客服吗，简历投到哪里",
    "我想和贵司谈一下仓库租赁的合作",
    "能不能帮我写一首关于春天的诗",
    "我家猫不吃饭怎么办",
    "How do I become a supplier for your warehouse?",
    "Can you recommend a good restaurant near the city centre?",
    "明天会下雨吗，我要不要带伞",
    "我想投诉隔壁邻居装修太吵",
];

// ---- the script's inputs ----

/// splitmix64: a seeded stream, so the day is the same day on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Asks something the knowledge base answers.
    Faq,
    /// Asks something it does not.
    OffTopic,
    /// Writes in anger, twice.
    Angry,
    /// Asks a KB question, then presses 转人工.
    Human,
}

struct Customer {
    id: Uuid,
    token: String,
    order: String,
    merchant: bool,
    locale: &'static str,
    kind: Kind,
    /// What they write: one message, two for the angry.
    texts: Vec<String>,
    /// A satisfied FAQ customer who just goes away (the chat falls idle) instead of closing.
    leaves: bool,
    answers_survey: bool,
    slot: usize,
    /// Arrives in the peak while the assigner is down.
    late: bool,
}

fn plan_customers(rng: &mut Rng) -> Vec<Customer> {
    let kb = kefu_bot::kb::parse(kefu_bot::kb::DEMO_KB).expect("the demo KB parses");
    let angry: Vec<String> = include_str!("../../bot/data/emotion-zh-test.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["label"] == "angry")
        .filter_map(|v| v["text"].as_str().map(str::to_owned))
        .collect();
    let mut customers = Vec::new();
    for (slot, &(_, arriving, peak)) in SLOTS.iter().enumerate() {
        for i in 0..arriving {
            let roll = rng.below(100);
            let kind = match (peak, roll) {
                (false, 0..55) | (true, 0..25) => Kind::Faq,
                (false, 55..70) | (true, 25..45) => Kind::OffTopic,
                (false, 70..80) | (true, 45..70) => Kind::Angry,
                _ => Kind::Human,
            };
            let locale = if rng.chance(80) { "zh" } else { "en" };
            let question = |rng: &mut Rng| {
                let entries: Vec<_> = kb.iter().filter(|e| e.locale == locale).collect();
                let entry = rng.pick(&entries);
                rng.pick(&entry.paraphrases).clone()
            };
            let texts = match kind {
                Kind::Faq | Kind::Human => vec![question(rng)],
                Kind::OffTopic => vec![rng.pick(&OFF_TOPIC).to_string()],
                Kind::Angry => {
                    let first = rng.below(angry.len());
                    let second = (first + 1 + rng.below(angry.len() - 1)) % angry.len();
                    vec![angry[first].clone(), angry[second].clone()]
                }
            };
            let n = customers.len();
            customers.push(Customer {
                id: Uuid::from_u128((u128::from(rng.next()) << 64) | u128::from(rng.next())),
                token: String::new(),
                order: format!("o-{n:04}"),
                merchant: rng.chance(35),
                locale: if kind == Kind::Angry { "zh" } else { locale },
                kind,
                texts,
                leaves: kind == Kind::Faq && rng.chance(30),
                answers_survey: rng.chance(80),
                slot,
                late: peak && i >= arriving - PEAK_LATE,
            });
        }
    }
    customers
}

struct QueueSpec {
    name: &'static str,
    merchant: Option<&'static str>,
    skills: &'static [&'static str],
    priority: u8,
    first_response_secs: u32,
}

/// Self-operated logistics and after-sales, a self-operated desk that takes complaints and,
/// as the highest priority of its line, whatever no skill names; and one merchant's team.
const QUEUES: [QueueSpec; 4] = [
    QueueSpec {
        name: "自营 物流 logistics",
        merchant: None,
        skills: &["logistics"],
        priority: 5,
        first_response_secs: 300,
    },
    QueueSpec {
        name: "自营 售后 after-sales",
        merchant: None,
        skills: &["after-sales"],
        priority: 5,
        first_response_secs: 600,
    },
    QueueSpec {
        name: "自营 综合 desk",
        merchant: None,
        skills: &["complaints"],
        priority: 3,
        first_response_secs: 180,
    },
    QueueSpec {
        name: "商家 m-1 店铺客服",
        merchant: Some("m-1"),
        skills: &["m1-team"],
        priority: 5,
        first_response_secs: 600,
    },
];

struct AgentSpec {
    name: &'static str,
    skills: &'static [&'static str],
    seats: i64,
    /// Answers ten minutes after the others.
    slow: bool,
}

const CATEGORIES: [&str; 4] = ["mobile-phones", "laptops", "apparel", "home-appliances"];

const SELF_SKILLS: &[&str] = &["logistics", "after-sales", "complaints"];
const AGENTS: [AgentSpec; 7] = [
    AgentSpec {
        name: "小王",
        skills: SELF_SKILLS,
        seats: 3,
        slow: false,
    },
    AgentSpec {
        name: "小李",
        skills: SELF_SKILLS,
        seats: 3,
        slow: false,
    },
    AgentSpec {
        name: "小张",
        skills: SELF_SKILLS,
        seats: 3,
        slow: false,
    },
    AgentSpec {
        name: "小赵",
        skills: SELF_SKILLS,
        seats: 3,
        slow: true,
    },
    AgentSpec {
        name: "小陈",
        skills: SELF_SKILLS,
        seats: 3,
        slow: true,
    },
    AgentSpec {
        name: "店小二",
        skills: &["m1-team"],
        seats: 2,
        slow: false,
    },
    AgentSpec {
        name: "店小三",
        skills: &["m1-team"],
        seats: 2,
        slow: true,
    },
];

// ---- the machinery: clock, worker process, waits, the log as read back ----

/// The drill clock: the file `--drill-clock-file` names, replaced atomically.
struct DrillClock {
    path: PathBuf,
    now: DateTime<Utc>,
}

impl DrillClock {
    fn new(dir: &Path, now: DateTime<Utc>) -> Self {
        let clock = DrillClock {
            path: dir.join("clock"),
            now,
        };
        clock.write();
        clock
    }

    fn write(&self) {
        let next = self.path.with_extension("next");
        std::fs::write(&next, self.now.to_rfc3339()).unwrap();
        std::fs::rename(&next, &self.path).unwrap();
    }

    fn set(&mut self, at: DateTime<Utc>) {
        assert!(at >= self.now, "the script moves time forwards only");
        self.now = at;
        self.write();
    }

    fn advance_minutes(&mut self, minutes: i64) {
        self.set(self.now + TimeDelta::minutes(minutes));
    }
}

/// `kefu worker NAME` in a child process; its stderr kept for the test to read.
struct WorkerProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl WorkerProcess {
    fn start(name: &str, store: &str, clock: &Path, dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(["worker", name, "--drill-clock-file"])
            .arg(clock)
            .env("KEFU_STORE", store)
            .env("KEFU_DATA_DIR", dir.join("worker-data"))
            .env("KEFU_LOG", "info")
            .env_remove("KEFU_READ_STORE")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kefu worker");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        WorkerProcess { child, lines }
    }

    /// Where it says it resumes following the log.
    async fn resumes_from(&mut self) -> u64 {
        let patience = Patience::new("the worker to say where it resumes");
        loop {
            let found = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains("following the log"))
                .cloned();
            if let Some(line) = found {
                let from = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("from="))
                    .unwrap_or_else(|| panic!("no from= in {line:?}"));
                return from.parse().unwrap();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("kefu worker exited ({status}): {:?}", self.lines.lock());
            }
            patience.wait().await;
        }
    }

    /// SIGKILL: no shutdown, no last checkpoint.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bounded wait for a condition the caller checks between polls.
struct Patience {
    what: String,
    until: Instant,
}

impl Patience {
    fn new(what: impl Into<String>) -> Self {
        Patience {
            what: what.into(),
            until: Instant::now() + HANG,
        }
    }

    async fn wait(&self) {
        assert!(
            Instant::now() < self.until,
            "{} did not happen within {HANG:?}",
            self.what
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The log as this test has read it back, indexed by stream and by event id.
struct Ledger {
    log: PostgresLog,
    events: Vec<RecordedEvent>,
    by_stream: HashMap<String, Vec<usize>>,
    by_id: HashMap<Uuid, usize>,
}

impl Ledger {
    async fn read_to(&mut self, through: u64) {
        let patience = Patience::new(format!("the log to settle through {through}"));
        loop {
            let from = self.events.last().map_or(0, |e| e.position.0 + 1);
            let batch = self.log.read_all(Position(from), 1000).await.unwrap();
            for e in batch {
                let i = self.events.len();
                self.by_stream
                    .entry(e.stream_id.as_str().to_owned())
                    .or_default()
                    .push(i);
                self.by_id.insert(e.id, i);
                self.events.push(e);
            }
            if self.events.last().is_some_and(|e| e.position.0 >= through) {
                return;
            }
            patience.wait().await;
        }
    }

    fn conversation(&self, id: &str) -> impl Iterator<Item = &RecordedEvent> {
        self.by_stream
            .get(&format!("conversation-{id}"))
            .into_iter()
            .flatten()
            .map(|&i| &self.events[i])
    }

    fn count(&self, id: &str, event_type: &str) -> usize {
        self.conversation(id)
            .filter(|e| e.event_type == event_type)
            .count()
    }

    fn first(&self, id: &str, event_type: &str) -> Option<&RecordedEvent> {
        self.conversation(id).find(|e| e.event_type == event_type)
    }

    fn last(&self) -> u64 {
        self.events.last().map_or(0, |e| e.position.0)
    }
}

// ---- GraphQL ----

const START: &str =
    "mutation($o: String) { startConversation(channel: APP, orderId: $o) { id position } }";
const SEND: &str =
    "mutation($c: String!, $t: String!) { sendMessage(conversationId: $c, text: $t) { position } }";
const HUMAN: &str = "mutation($c: String!) { requestHuman(conversationId: $c) { position } }";
const CLOSE: &str = "mutation($c: String!) { closeConversation(conversationId: $c, reason: RESOLVED) { position } }";
const SURVEY: &str =
    "mutation($c: String!, $s: Int!) { answerSurvey(conversationId: $c, score: $s) { position } }";

/// Tokens minted in parallel (each is a `kefu token` run).
fn tokens(server: &Server, role: &str, ids: &[String]) -> Vec<String> {
    std::thread::scope(|s| {
        let chunks: Vec<_> = ids
            .chunks(ids.len().div_ceil(4).max(1))
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|id| server.token(role, id, &[]))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        chunks.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

struct Agent {
    id: String,
    token: String,
    spec: &'static AgentSpec,
}

struct Queue {
    id: String,
    spec: &'static QueueSpec,
}

impl Queue {
    fn line(&self) -> String {
        match self.spec.merchant {
            Some(m) => format!("merchant:{m}"),
            None => "self_operated".into(),
        }
    }
}

/// One conversation of the day.
struct Chat {
    id: String,
    customer: usize,
}

struct Day {
    server: Server,
    schema: String,
    store_url: String,
    dir: tempfile::TempDir,
    clock: DrillClock,
    ledger: Ledger,
    admin: String,
    queues: Vec<Queue>,
    agents: Vec<Agent>,
    customers: Vec<Customer>,
    chats: Vec<Chat>,
    assigner: Option<WorkerProcess>,
    surveys_answered: usize,
    /// What the kill showed: the checkpoint before, where the restarted worker resumed.
    kill: Option<(u64, u64)>,
}

impl Day {
    async fn checkpoints(&self) -> BTreeMap<String, u64> {
        pg::client()
            .await
            .query(
                &format!("SELECT name, position FROM {}.kefu_workers", self.schema),
                &[],
            )
            .await
            .map(|rows| {
                rows.iter()
                    .map(|r| (r.get(0), u64::try_from(r.get::<_, i64>(1)).unwrap()))
                    .collect()
            })
            // Before any worker has finished a batch the table may not exist yet.
            .unwrap_or_default()
    }

    /// The last committed position (not only the settled prefix a reader sees).
    async fn committed(&self) -> u64 {
        let row = pg::client()
            .await
            .query_one(
                &format!(
                    "SELECT COALESCE(MAX(position), 0) FROM {}.events",
                    self.schema
                ),
                &[],
            )
            .await
            .unwrap();
        u64::try_from(row.get::<_, i64>(0)).unwrap()
    }

    /// Waits until `workers` have reacted to everything committed and nothing new comes of it:
    /// each one's checkpoint is past the last committed event, and no event was committed
    /// meanwhile (a reaction is committed before its worker's checkpoint moves). Then reads
    /// the log that far.
    async fn settle(&mut self, workers: &[&str]) {
        let patience = Patience::new(format!("{workers:?} to settle"));
        loop {
            let head = self.committed().await;
            let caught_up = |c: &BTreeMap<String, u64>| {
                workers.iter().all(|w| c.get(*w).is_some_and(|p| *p > head))
            };
            while !caught_up(&self.checkpoints().await) {
                patience.wait().await;
            }
            if self.committed().await == head {
                self.ledger.read_to(head).await;
                return;
            }
        }
    }

    fn workers_now(&self) -> &'static [&'static str] {
        if self.assigner.is_some() {
            &ALL_WORKERS
        } else {
            &SERVER_WORKERS
        }
    }

    async fn settle_all(&mut self) {
        self.settle(self.workers_now()).await;
    }

    fn handed_off(&self, chat: &Chat) -> bool {
        self.ledger.count(&chat.id, "HandedToHuman") > 0
    }

    fn closed(&self, chat: &Chat) -> bool {
        self.ledger.count(&chat.id, "ConversationClosed") > 0
    }

    /// The agent holding the chat now, if any.
    fn holder(&self, chat: &Chat) -> Option<&Agent> {
        if self.closed(chat) {
            return None;
        }
        let assigned = self.ledger.first(&chat.id, "AgentAssigned")?;
        let id = assigned.payload["agent"].as_str().unwrap();
        self.agents.iter().find(|a| a.id == id)
    }

    fn waiting(&self) -> Vec<&Chat> {
        self.chats
            .iter()
            .filter(|c| {
                self.ledger.count(&c.id, "ConversationQueued") > 0
                    && self.holder(c).is_none()
                    && !self.closed(c)
            })
            .collect()
    }

    /// Customers of `who` start their chats and write their first message.
    async fn arrive(&mut self, who: &[usize]) {
        let server = &self.server;
        let started = join_all(who.iter().map(|&n| {
            let c = &self.customers[n];
            async move {
                let start = server.gql(&c.token, START, json!({ "o": c.order })).await;
                let id = start["startConversation"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                server
                    .gql(&c.token, SEND, json!({ "c": id, "t": c.texts[0] }))
                    .await;
                Chat { id, customer: n }
            }
        }))
        .await;
        self.chats.extend(started);
    }

    /// What each new chat's customer does once the bot has had its say: the satisfied close
    /// (or just leave), the angry write again, and whoever is still with the bot but wanted
    /// more presses 转人工.
    async fn follow_up(&mut self, chats: &[usize]) {
        self.settle_all().await;
        self.clock.advance_minutes(1);
        let server = &self.server;
        let second: Vec<_> = chats
            .iter()
            .map(|&i| (&self.chats[i], &self.customers[self.chats[i].customer]))
            .filter(|(chat, c)| c.kind == Kind::Angry && !self.handed_off(chat))
            .collect();
        join_all(
            second.iter().map(|(chat, c)| {
                server.gql(&c.token, SEND, json!({ "c": chat.id, "t": c.texts[1] }))
            }),
        )
        .await;
        self.settle_all().await;
        self.clock.advance_minutes(1);
        let server = &self.server;
        let next: Vec<_> = chats
            .iter()
            .map(|&i| (&self.chats[i], &self.customers[self.chats[i].customer]))
            .filter(|(chat, _)| !self.handed_off(chat))
            .filter(|(_, c)| !c.leaves)
            .map(|(chat, c)| {
                let m = if c.kind == Kind::Faq { CLOSE } else { HUMAN };
                (chat, c, m)
            })
            .collect();
        join_all(
            next.iter()
                .map(|(chat, c, m)| server.gql(&c.token, m, json!({ "c": chat.id }))),
        )
        .await;
        self.settle_all().await;
    }

    /// Every agent answers the chats they hold (the slow ones ten minutes later) and closes
    /// them. How many they closed.
    async fn agents_work(&mut self) -> usize {
        let held: Vec<(String, usize)> = self
            .chats
            .iter()
            .filter_map(|c| {
                let agent = self.holder(c)?;
                let n = self.agents.iter().position(|a| a.id == agent.id).unwrap();
                Some((c.id.clone(), n))
            })
            .collect();
        for slow in [false, true] {
            self.clock.advance_minutes(if slow { 10 } else { 2 });
            let replying: Vec<&str> = held
                .iter()
                .filter(|(_, n)| self.agents[*n].spec.slow == slow)
                .map(|(chat, _)| chat.as_str())
                .collect();
            self.overdue_first_responses_breach(&replying).await;
            let server = &self.server;
            join_all(
                held.iter()
                    .filter(|(_, n)| self.agents[*n].spec.slow == slow)
                    .map(|(chat, n)| {
                        server.gql(
                            &self.agents[*n].token,
                            SEND,
                            json!({ "c": chat, "t": "您好，我来帮您处理，请稍等" }),
                        )
                    }),
            )
            .await;
        }
        self.clock.advance_minutes(1);
        // One close at a time, each read by the assigner before the next is sent: which agent
        // gets a freed seat must not depend on whether the assigner happened to read two
        // concurrent closes in one batch or in two (the fairness check once failed on that).
        for (chat, n) in &held {
            self.server
                .gql(&self.agents[*n].token, CLOSE, json!({ "c": chat }))
                .await;
            if self.assigner.is_some() {
                self.settle(&["assigner"]).await;
            }
        }
        held.len()
    }

    /// Waits until every chat of `chats` whose first agent reply is overdue at the clock has
    /// its first-response breach: the sla worker sweeps every second at the simulated time,
    /// which stands still meanwhile, so a reply sent after this wait is late exactly when the
    /// log says the target was breached.
    async fn overdue_first_responses_breach(&mut self, chats: &[&str]) {
        let now = self.clock.now;
        let patience = Patience::new("overdue first responses to breach");
        loop {
            let head = self.committed().await;
            self.ledger.read_to(head).await;
            let missing = chats
                .iter()
                .filter(|c| {
                    self.ledger.count(c, "AgentTurnRecorded") == 0
                        && first_response_due(&self.ledger, c) <= now
                        && first_response_breaches(&self.ledger, c) == 0
                })
                .count();
            if missing == 0 {
                return;
            }
            patience.wait().await;
        }
    }

    /// Agents work until no chat of the slot waits or is held.
    async fn work_the_queues(&mut self) {
        self.settle_all().await;
        loop {
            let waiting = self.waiting().len();
            if self.agents_work().await == 0 {
                assert_eq!(waiting, 0, "chats wait, yet nobody holds any");
                return;
            }
            self.settle_all().await;
        }
    }

    /// Customers answer the surveys offered for the chats they closed or an agent closed; the
    /// slow agents' customers are less pleased.
    async fn answer_surveys(&mut self, slot: usize) {
        let mut answers = Vec::new();
        for chat in &self.chats {
            let c = &self.customers[chat.customer];
            if c.slot != slot || !c.answers_survey || c.leaves {
                continue;
            }
            assert_eq!(
                self.ledger.count(&chat.id, "SurveyOffered"),
                1,
                "{:?}: {:?}",
                c.kind,
                self.ledger
                    .conversation(&chat.id)
                    .map(|e| (&e.event_type, &e.payload))
                    .collect::<Vec<_>>()
            );
            let slow = self
                .ledger
                .first(&chat.id, "AgentAssigned")
                .map(|e| e.payload["agent"].as_str().unwrap())
                .and_then(|id| self.agents.iter().find(|a| a.id == id))
                .is_some_and(|a| a.spec.slow);
            let score = if slow { 3 } else { 5 };
            answers.push((chat.id.clone(), c.token.clone(), score));
        }
        let server = &self.server;
        join_all(answers.iter().map(|(chat, token, score)| {
            server.gql(token, SURVEY, json!({ "c": chat, "s": score }))
        }))
        .await;
        self.surveys_answered += answers.len();
    }

    /// Chats customers left in `slot` close as idle once the clock has passed the timeout.
    async fn idle_chats_close(&mut self, slot: usize) {
        let left: Vec<String> = self
            .chats
            .iter()
            .filter(|c| {
                self.customers[c.customer].slot == slot && self.customers[c.customer].leaves
            })
            .filter(|c| !self.handed_off(c))
            .map(|c| c.id.clone())
            .collect();
        let patience = Patience::new(format!("{} idle chats of slot {slot} to close", left.len()));
        loop {
            let committed = self.committed().await;
            self.ledger.read_to(committed).await;
            if left
                .iter()
                .all(|c| self.ledger.count(c, "ConversationIdleTimedOut") == 1)
            {
                break;
            }
            patience.wait().await;
        }
        self.settle_all().await;
    }

    /// The evening peak's drill: with chats waiting for seats, SIGKILL the assigner once its
    /// checkpoint is past everything; agents work and more customers hand over while it is
    /// down; start it again and see it resume from that checkpoint.
    async fn kill_the_assigner(&mut self, late: &[usize]) {
        self.settle(&ALL_WORKERS).await;
        let waiting = self.waiting().len();
        assert!(waiting > 0, "the peak leaves chats waiting for a seat");
        let checkpoint = self.checkpoints().await["assigner"];
        let killed_at = self.ledger.last();
        assert!(checkpoint > killed_at);
        self.assigner.take().unwrap().kill();

        // Down: agents free their seats, and more customers come and hand over.
        self.clock.advance_minutes(1);
        self.agents_work().await;
        let first = self.chats.len();
        self.arrive(late).await;
        let new: Vec<usize> = (first..self.chats.len()).collect();
        self.follow_up(&new).await;
        self.settle(&SERVER_WORKERS).await;
        let taken: Vec<&RecordedEvent> = self
            .ledger
            .events
            .iter()
            .filter(|e| e.position.0 > killed_at)
            .filter(|e| matches!(e.event_type.as_str(), "AgentChatTaken" | "AgentAssigned"))
            .collect();
        assert!(
            taken.is_empty(),
            "only the assigner process assigns, and it is down: {taken:?}"
        );
        assert_eq!(self.checkpoints().await["assigner"], checkpoint);
        let waiting_now = self.waiting().len();
        assert!(
            waiting_now > waiting,
            "more wait: {waiting} then {waiting_now}"
        );

        let mut restarted = WorkerProcess::start(
            "assigner",
            &self.store_url,
            &self.clock.path,
            self.dir.path(),
        );
        let from = restarted.resumes_from().await;
        self.assigner = Some(restarted);
        self.kill = Some((checkpoint, from));
        assert_eq!(from, checkpoint, "the assigner resumes from its checkpoint");
    }

    async fn slot(&mut self, slot: usize, start: DateTime<Utc>) {
        self.clock.set(start);
        if slot > 0 {
            self.idle_chats_close(slot - 1).await;
        }
        let (_, _, peak) = SLOTS[slot];
        let (on_time, late): (Vec<usize>, Vec<usize>) = (0..self.customers.len())
            .filter(|&n| self.customers[n].slot == slot)
            .partition(|&n| !self.customers[n].late);
        let first = self.chats.len();
        self.arrive(&on_time).await;
        let new: Vec<usize> = (first..self.chats.len()).collect();
        self.follow_up(&new).await;
        if peak {
            self.kill_the_assigner(&late).await;
        }
        self.work_the_queues().await;
        self.answer_surveys(slot).await;
        self.settle_all().await;
    }
}

/// When the chat's first agent reply was due (its queueing; the day never transfers).
fn first_response_due(ledger: &Ledger, chat: &str) -> DateTime<Utc> {
    ledger.first(chat, "ConversationQueued").unwrap().payload["first_response_due"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The chat's recorded breaches of its first-response target.
fn first_response_breaches(ledger: &Ledger, chat: &str) -> usize {
    ledger
        .conversation(chat)
        .filter(|e| e.event_type == "SlaBreached" && e.payload["kind"] == "first_response")
        .count()
}

// ---- the day ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_day_of_traffic_with_the_assigner_killed_and_restarted() {
    let Some((schema, store_url)) = kefu_eventlog::testing::fresh_schema_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Monday 10 March 2025, 07:00 in Beijing.
    let morning: DateTime<Utc> = "2025-03-09T23:00:00Z".parse().unwrap();
    let clock = DrillClock::new(dir.path(), morning);
    let clock_path = clock.path.to_string_lossy().into_owned();
    let idle = IDLE_TIMEOUT_SECS.to_string();
    let server = Server::start(
        Some(&store_url),
        &[
            "--workers",
            "bot,router,surveys,idle,sla",
            "--idle-timeout-secs",
            &idle,
            "--idle-sweep-secs",
            "1",
            "--sla-sweep-secs",
            "1",
            "--rate-limit",
            "0",
            "--drill-clock-file",
            &clock_path,
        ],
    );
    let log = PostgresLog::open(PostgresConfig::new(pg::url()).with_schema(schema.clone()))
        .await
        .unwrap();
    let admin = server.token("admin", "ops", &[]);
    let mut rng = Rng(SEED);
    let mut customers = plan_customers(&mut rng);
    let ids: Vec<String> = customers.iter().map(|c| c.id.to_string()).collect();
    for (c, token) in customers.iter_mut().zip(tokens(&server, "customer", &ids)) {
        c.token = token;
    }
    let mut day = Day {
        server,
        schema: schema.clone(),
        store_url,
        dir,
        clock,
        ledger: Ledger {
            log,
            events: Vec::new(),
            by_stream: HashMap::new(),
            by_id: HashMap::new(),
        },
        admin,
        queues: Vec::new(),
        agents: Vec::new(),
        customers,
        chats: Vec::new(),
        assigner: None,
        surveys_answered: 0,
        kill: None,
    };
    day.open_the_desk(&mut rng).await;
    let mut assigner =
        WorkerProcess::start("assigner", &day.store_url, &day.clock.path, day.dir.path());
    assigner.resumes_from().await;
    day.assigner = Some(assigner);
    for (slot, &(hour, _, _)) in SLOTS.iter().enumerate() {
        day.slot(slot, morning + TimeDelta::hours(i64::from(hour) - 7))
            .await;
    }
    // Overnight: the last slot's idle chats close.
    day.clock.set(morning + TimeDelta::hours(24));
    day.idle_chats_close(SLOTS.len() - 1).await;
    day.settle_all().await;
    day.check().await;
    drop(day);
    pg::drop_schema(&schema).await;
}

impl Day {
    /// Queues, agents online, and each customer's profile and order from the shop: the test
    /// plays the shop's order system, whose orders kefu mirrors into customer streams (where
    /// the order gateway reads them), through the command service, as the sync would.
    async fn open_the_desk(&mut self, rng: &mut Rng) {
        for spec in &QUEUES {
            let done = self
                .server
                .gql(
                    &self.admin,
                    "mutation($i: QueueInput!) { defineQueue(input: $i) { id } }",
                    json!({ "i": {
                        "name": spec.name,
                        "merchant": spec.merchant,
                        "skills": spec.skills,
                        // Every queue serves every category, so skills alone tell them apart.
                        "categories": CATEGORIES,
                        "priority": spec.priority,
                        "firstResponseSecs": spec.first_response_secs,
                        "resolutionSecs": 4 * 3600,
                    }}),
                )
                .await;
            self.queues.push(Queue {
                id: done["defineQueue"]["id"].as_str().unwrap().to_owned(),
                spec,
            });
        }
        let ids: Vec<String> = AGENTS
            .iter()
            .map(|_| {
                Uuid::from_u128((u128::from(rng.next()) << 64) | u128::from(rng.next())).to_string()
            })
            .collect();
        let agent_tokens = tokens(&self.server, "agent", &ids);
        for ((spec, id), token) in AGENTS.iter().zip(ids).zip(agent_tokens) {
            self.server
                .gql(
                    &self.admin,
                    "mutation($a: String!, $n: String!, $s: [String!]!, $m: Int!) { registerAgent(agentId: $a, name: $n, skills: $s, maxConcurrent: $m) { id } }",
                    json!({ "a": id, "n": spec.name, "s": spec.skills, "m": spec.seats }),
                )
                .await;
            self.server
                .gql(
                    &token,
                    "mutation { setAgentStatus(status: ONLINE) { position } }",
                    json!({}),
                )
                .await;
            self.agents.push(Agent { id, token, spec });
        }
        let gateway = CommandService::new(Arc::new(
            PostgresLog::open(PostgresConfig::new(pg::url()).with_schema(self.schema.clone()))
                .await
                .unwrap(),
        ));
        let now = self.clock.now;
        let statuses = [
            OrderStatus::Paid,
            OrderStatus::Shipped,
            OrderStatus::Delivered,
        ];
        join_all(self.customers.iter().map(|c| {
            let gateway = &gateway;
            let category = CATEGORIES[usize::try_from(c.id.as_u128() % 4).unwrap()];
            let status = statuses[usize::try_from(c.id.as_u128() / 4 % 3).unwrap()];
            async move {
                let customer = CustomerId::from_uuid(c.id);
                let meta = Metadata::for_request(
                    Actor::new(ActorKind::System, "order-gateway"),
                    Uuid::now_v7(),
                );
                let profile = CustomerCommand::RecordProfile {
                    customer,
                    tier: CustomerTier::Regular,
                    locale: Locale::new(c.locale),
                    at: now,
                };
                gateway
                    .execute::<CustomerDecider>(customer, profile, &meta)
                    .await
                    .unwrap();
                let order = Order {
                    order: OrderId::new(c.order.clone()),
                    seller: if c.merchant {
                        BusinessLine::Merchant {
                            merchant: MerchantId::new("m-1"),
                        }
                    } else {
                        BusinessLine::SelfOperated
                    },
                    category: Category::new(category),
                    status,
                    total: Money::cny(19_900),
                    refunded: None,
                    placed_at: now - TimeDelta::days(3),
                    status_at: now - TimeDelta::days(1),
                };
                gateway
                    .execute::<CustomerDecider>(
                        customer,
                        CustomerCommand::ImportOrder { order, at: now },
                        &meta,
                    )
                    .await
                    .unwrap();
            }
        }))
        .await;
    }

    /// Everything the day must show, from the log and from GraphQL.
    async fn check(&mut self) {
        let chats = &self.chats;
        let ledger = &self.ledger;
        let of = |chat: &Chat, t: &str| ledger.count(&chat.id, t);
        let kind = |chat: &Chat| self.customers[chat.customer].kind;
        assert_eq!(chats.len(), self.customers.len());

        // The bot contains what it can: most KB questions never reach a human.
        let contained = chats.iter().filter(|c| of(c, "HandedToHuman") == 0).count();
        let faq: Vec<&Chat> = chats.iter().filter(|c| kind(c) == Kind::Faq).collect();
        let faq_contained = faq.iter().filter(|c| of(c, "HandedToHuman") == 0).count();
        let reasons: BTreeMap<String, usize> = chats
            .iter()
            .filter_map(|c| ledger.first(&c.id, "HandedToHuman"))
            .fold(BTreeMap::new(), |mut m, e| {
                *m.entry(e.payload["reason"].as_str().unwrap().to_owned())
                    .or_default() += 1;
                m
            });
        eprintln!(
            "day: {} chats, {contained} contained by the bot ({} of {} KB questions); hand-offs by reason {reasons:?}",
            chats.len(),
            faq_contained,
            faq.len()
        );
        assert!(
            faq_contained * 100 >= faq.len() * 85,
            "the bot contains at least 85% of KB questions: {faq_contained} of {}",
            faq.len()
        );
        assert!(contained * 100 >= chats.len() * 35, "{contained}");
        for reason in ["low_confidence", "negative_emotion", "customer_asked"] {
            assert!(reasons.contains_key(reason), "{reason}: {reasons:?}");
        }
        let off_topic_handed = chats
            .iter()
            .filter(|c| kind(c) == Kind::OffTopic)
            .filter_map(|c| ledger.first(&c.id, "HandedToHuman"))
            .filter(|e| e.payload["reason"] == "low_confidence")
            .count();
        assert!(
            off_topic_handed > 0,
            "the bot hands over what it cannot answer"
        );

        // Triage routes each hand-off once, to the queue of its business line and skill.
        let handoffs: Vec<&Chat> = chats
            .iter()
            .filter(|c| of(c, "HandedToHuman") == 1)
            .collect();
        assert_eq!(
            contained + handoffs.len(),
            chats.len(),
            "no chat handed over twice"
        );
        for chat in &handoffs {
            assert_eq!(of(chat, "RoutingDecided"), 1, "{}", chat.id);
            assert_eq!(of(chat, "ConversationQueued"), 1, "{}", chat.id);
            let routing = ledger.first(&chat.id, "RoutingDecided").unwrap();
            let queued = ledger.first(&chat.id, "ConversationQueued").unwrap();
            assert_eq!(routing.payload["queue"], queued.payload["queue"]);
            let queue = self
                .queues
                .iter()
                .find(|q| q.id == routing.payload["queue"].as_str().unwrap())
                .unwrap();
            let service = routing.payload["features"]["service"].as_str().unwrap();
            let shop_only = ["complaints", "account", "finance"].contains(&service);
            let line = if self.customers[chat.customer].merchant && !shop_only {
                "merchant:m-1"
            } else {
                "self_operated"
            };
            assert_eq!(queue.line(), line, "{}: {routing:?}", chat.id);
            let of_line: Vec<&Queue> = self.queues.iter().filter(|q| q.line() == line).collect();
            let expected = of_line
                .iter()
                .find(|q| q.spec.skills.contains(&service))
                .or_else(|| of_line.iter().min_by_key(|q| q.spec.priority))
                .unwrap();
            assert_eq!(
                queue.id, expected.id,
                "{service} goes to {}",
                expected.spec.name
            );
        }

        // Every waiting chat is assigned exactly once, to an agent with the skills.
        let mut assigned: BTreeMap<&str, usize> = BTreeMap::new();
        for chat in &handoffs {
            assert_eq!(of(chat, "AgentAssigned"), 1, "{}", chat.id);
            let e = ledger.first(&chat.id, "AgentAssigned").unwrap();
            let agent = self
                .agents
                .iter()
                .find(|a| a.id == e.payload["agent"].as_str().unwrap())
                .unwrap();
            let queue = self
                .queues
                .iter()
                .find(|q| q.id == e.payload["queue"].as_str().unwrap())
                .unwrap();
            assert!(
                queue
                    .spec
                    .skills
                    .iter()
                    .all(|s| agent.spec.skills.contains(s)),
                "{} lacks {:?}",
                agent.spec.name,
                queue.spec.skills
            );
            *assigned.entry(agent.spec.name).or_default() += 1;
        }
        // No agent above their seats at any point: the seat events folded in log order.
        let mut held: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut peak: BTreeMap<String, usize> = BTreeMap::new();
        for e in &ledger.events {
            let Some(agent) = e.stream_id.as_str().strip_prefix("agent-") else {
                continue;
            };
            let seats = held.entry(agent.to_owned()).or_default();
            let conversation = e.payload["conversation"].as_str().unwrap_or("").to_owned();
            match e.event_type.as_str() {
                "AgentChatTaken" => {
                    assert!(seats.insert(conversation), "a seat taken twice: {e:?}")
                }
                "AgentChatReleased" => {
                    assert!(seats.remove(&conversation), "a seat freed twice: {e:?}")
                }
                _ => continue,
            }
            let spec = self.agents.iter().find(|a| a.id == agent).unwrap().spec;
            assert!(
                i64::try_from(seats.len()).unwrap() <= spec.seats,
                "{} above {} seats at {}",
                spec.name,
                spec.seats,
                e.position
            );
            let top = peak.entry(spec.name.to_owned()).or_default();
            *top = (*top).max(seats.len());
        }
        assert!(
            held.values().all(BTreeSet::is_empty),
            "every seat is free at the end of the day: {held:?}"
        );
        // Fair: equally able agents (same skills, same seats) got a like share.
        eprintln!("day: assignments per agent {assigned:?}; most seats held at once {peak:?}");
        for team in [SELF_SKILLS, &["m1-team"][..]] {
            let counts: Vec<usize> = AGENTS
                .iter()
                .filter(|a| a.skills == team)
                .map(|a| assigned.get(a.name).copied().unwrap_or(0))
                .collect();
            let (min, max) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
            let mean = counts.iter().sum::<usize>() / counts.len();
            assert!(
                min > 0 && max - min <= 2 + mean / 5,
                "fair within 2 + 20% of the mean ({mean}): {counts:?} for {team:?}"
            );
        }

        // Idle chats closed with the idle event, and only those.
        for chat in chats {
            let left = self.customers[chat.customer].leaves && of(chat, "HandedToHuman") == 0;
            assert_eq!(
                of(chat, "ConversationIdleTimedOut"),
                usize::from(left),
                "{}",
                chat.id
            );
            assert_eq!(of(chat, "ConversationClosed"), 1, "{} closed once", chat.id);
            if left {
                let closed = ledger.first(&chat.id, "ConversationClosed").unwrap();
                assert_eq!(closed.payload["reason"], "idle_timeout");
            }
            // Surveys go out once for every closed conversation.
            assert_eq!(of(chat, "SurveyOffered"), 1, "{}", chat.id);
            // Nothing doubled: one bot reply and one mood per customer turn at most.
            let turns = of(chat, "CustomerTurnRecorded");
            assert!(of(chat, "BotTurnRecorded") <= turns, "{}", chat.id);
            assert!(of(chat, "EmotionAssessed") <= turns, "{}", chat.id);
        }
        let answered: usize = chats.iter().map(|c| of(c, "SurveyAnswered")).sum();
        assert_eq!(answered, self.surveys_answered);

        // Every worker's command carries its cause's correlation id, and names that cause.
        let workers = ["jimi", "router", "assigner", "surveys", "idle", "sla"];
        let mut caused = 0;
        for e in &ledger.events {
            if !workers.contains(&e.metadata.actor.id.as_str()) {
                continue;
            }
            let cause = ledger
                .by_id
                .get(&e.metadata.causation_id)
                .map(|&i| &ledger.events[i])
                .unwrap_or_else(|| panic!("the cause of {e:?} is in the log"));
            assert!(cause.position < e.position);
            assert_eq!(
                cause.metadata.correlation_id, e.metadata.correlation_id,
                "{e:?}"
            );
            let expected_cause = match e.event_type.as_str() {
                "AgentAssigned"
                | "AgentChatTaken"
                | "SlaWarned"
                | "SlaBreached"
                | "ConversationEscalated" => Some("ConversationQueued"),
                "SurveyOffered" => Some("ConversationClosed"),
                "BotTurnRecorded" | "EmotionAssessed" => Some("CustomerTurnRecorded"),
                "RoutingDecided" => Some("HandedToHuman"),
                _ => None,
            };
            if let Some(t) = expected_cause {
                assert_eq!(cause.event_type, t, "{e:?}");
            }
            caused += 1;
        }
        assert!(caused > 1000, "{caused}");

        // The assigner's kill.
        let (checkpoint, from) = self.kill.expect("the assigner was killed in the peak");
        eprintln!(
            "day: the assigner was killed at checkpoint {checkpoint} and resumed from {from}"
        );

        // SLA: slow agents breach first-response targets. A chat breaches exactly when its
        // first agent reply came after the target (replies wait for overdue breaches, see
        // `overdue_first_responses_breach`); every breach escalates one priority step; a
        // warning comes at most once per target, and before its breach.
        let late: Vec<&Chat> = handoffs
            .iter()
            .copied()
            .filter(|c| {
                let reply: DateTime<Utc> =
                    ledger.first(&c.id, "AgentTurnRecorded").unwrap().payload["at"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                // A target is breached at its due time: a reply then is late.
                reply >= first_response_due(ledger, &c.id)
            })
            .collect();
        eprintln!(
            "day: {} of {} hand-offs answered at or after their first-response target",
            late.len(),
            handoffs.len()
        );
        assert!(!late.is_empty() && late.len() < handoffs.len());
        for chat in &handoffs {
            let is_late = late.iter().any(|l| l.id == chat.id);
            assert_eq!(
                first_response_breaches(ledger, &chat.id),
                usize::from(is_late),
                "{}: first response late: {is_late}",
                chat.id
            );
            let events: Vec<&RecordedEvent> = ledger.conversation(&chat.id).collect();
            for kind in ["first_response", "resolution"] {
                let at = |t: &str| {
                    events
                        .iter()
                        .filter(|e| e.event_type == t && e.payload["kind"] == kind)
                        .map(|e| e.version)
                        .collect::<Vec<_>>()
                };
                let (warned, breached) = (at("SlaWarned"), at("SlaBreached"));
                assert!(warned.len() <= 1 && breached.len() <= 1, "{}", chat.id);
                if let (Some(w), Some(b)) = (warned.first(), breached.first()) {
                    assert!(w < b, "{}: the warning comes first", chat.id);
                }
            }
            for (i, e) in events.iter().enumerate() {
                if e.event_type == "SlaBreached" {
                    let next = events.get(i + 1).expect("an escalation follows a breach");
                    assert_eq!(next.event_type, "ConversationEscalated", "{}", chat.id);
                    let (from, to) = (
                        next.payload["from_priority"].as_u64().unwrap(),
                        next.payload["to_priority"].as_u64().unwrap(),
                    );
                    assert_eq!(to, from.saturating_sub(1).max(1), "{}", chat.id);
                }
            }
        }

        // GraphQL agrees with the log: statistics, queues empty, every workbench clear.
        let at = self.ledger.last().to_string();
        let stats = self
            .server
            .gql(
                &self.admin,
                "query($p: String) { stats(group: TOTAL, atLeast: $p) { conversations closed containedByBot handedOff surveysOffered surveysAnswered } }",
                json!({ "p": at }),
            )
            .await;
        let row = &stats["stats"][0];
        let expect = json!({
            "conversations": chats.len(),
            "closed": chats.len(),
            "containedByBot": contained,
            "handedOff": handoffs.len(),
            "surveysOffered": chats.len(),
            "surveysAnswered": answered,
        });
        for (k, v) in expect.as_object().unwrap() {
            assert_eq!(&row[k], v, "stats {k}: {row}");
        }
        let queues = self
            .server
            .gql(
                &self.admin,
                "query($p: String) { queues(atLeast: $p) { nodes { waitingCount waiting { conversation } } } }",
                json!({ "p": at }),
            )
            .await;
        for queue in queues["queues"]["nodes"].as_array().unwrap() {
            assert_eq!(
                (&queue["waitingCount"], &queue["waiting"]),
                (&json!(0), &json!([])),
                "{queues}"
            );
        }
        for agent in &self.agents {
            let bench = self
                .server
                .gql(
                    &agent.token,
                    "query($p: String) { workbench(atLeast: $p) { chats { conversation } freeSeats } }",
                    json!({ "p": at }),
                )
                .await;
            assert_eq!(bench["workbench"]["chats"], json!([]), "{bench}");
            assert_eq!(
                bench["workbench"]["freeSeats"],
                json!(agent.spec.seats),
                "{bench}"
            );
        }
    }
}
