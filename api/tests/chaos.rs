//! Chaos: `kefu serve` is killed with SIGKILL while customers write in, and again while agents
//! close their chats, on the embedded store and on PostgreSQL. Clients retry what failed
//! (messages with their `messageId`, so a resend is recorded once). After the last restart the
//! raw log is audited: every worker's reaction recorded once for its cause
//! (`kefu_workers::reactions`), one seat per queueing, every hand-off assigned once, every
//! close offered one survey, and no agent left holding a seat; the seat sweep is set to a day,
//! so a lost release must be made good by the close itself.
//!
//! Nothing waits for a duration: every wait is for a condition, bounded by `HANG`.

mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use kefu_eventlog::{EventLog, Position, RecordedEvent};
use serde_json::{Value, json};
use server::{HANG, Server, try_gql};
use tokio::sync::RwLock;
use uuid::Uuid;

const CUSTOMERS: usize = 32;
const AGENTS: usize = 3;
/// What each customer writes: a question the bot may answer, then a demand for a person.
const LINES: [&str; 2] = ["运费是怎么收取的？", "我要转人工客服"];

const START: &str = "mutation { startConversation(channel: APP) { id } }";
const SEND: &str = "mutation($c: String!, $t: String!, $m: String!) { sendMessage(conversationId: $c, text: $t, messageId: $m) { id } }";
const CLOSE: &str = "mutation($c: String!) { closeConversation(conversationId: $c, reason: RESOLVED) { position } }";

/// The server's current address: a restart moves it.
type Addr = Arc<RwLock<String>>;

/// Sends until the server answers: a request cut by a kill, or refused while the server
/// comes back, is sent again. `idempotent` says whether a resend is safe; one that is not
/// is sent once per answer, and a lost answer is the caller's to tolerate.
async fn until_answered(addr: &Addr, token: &str, query: &str, vars: Value) -> Value {
    let started = Instant::now();
    loop {
        let at = addr.read().await.clone();
        match try_gql(&at, token, query, vars.clone()).await {
            Ok(data) => return data,
            Err(why) => {
                assert!(started.elapsed() < HANG, "{query} never answered: {why}");
                // Wait for the restart to publish its address, or for the store to come back.
                tokio::task::yield_now().await;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// One customer: starts a chat and writes each line, resending a line until it is recorded.
async fn customer(addr: Addr, token: String, written: Arc<AtomicUsize>) -> String {
    let conversation =
        until_answered(&addr, &token, START, json!({})).await["startConversation"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    for line in LINES {
        let message = Uuid::now_v7().to_string();
        until_answered(
            &addr,
            &token,
            SEND,
            json!({ "c": conversation, "t": line, "m": message }),
        )
        .await;
        written.fetch_add(1, Ordering::SeqCst);
    }
    conversation
}

/// Waits until `ready` holds, counting it a hang after `HANG`.
async fn until<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !ready().await {
        assert!(started.elapsed() < HANG, "waited too long for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The whole log, read straight from the store.
async fn everything<L: EventLog>(log: &L) -> Vec<RecordedEvent> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    let mut from = Position::START;
    loop {
        let page = log.read_all(from, 1000).await.unwrap();
        let Some(last) = page.last() else {
            return out;
        };
        from = last.position.next();
        out.extend(page);
    }
}

fn count(events: &[RecordedEvent], stream: &str, t: &str) -> usize {
    events
        .iter()
        .filter(|e| e.stream_id.as_str() == stream && e.event_type == t)
        .count()
}

/// The lag of every worker as /metrics says, once it answers.
async fn worker_lags(server: &Server, admin: &str) -> Option<BTreeMap<String, u64>> {
    let bearer = format!("Bearer {admin}");
    let (status, _, body) = server::try_http(
        &server.addr,
        "GET",
        "/metrics",
        &[("Authorization", &bearer)],
        "",
    )
    .await
    .ok()?;
    if status != 200 {
        return None;
    }
    Some(
        body.lines()
            .filter_map(|l| l.strip_prefix("kefu_worker_lag_events{worker=\""))
            .filter_map(|l| l.split_once("\"} "))
            .map(|(w, n)| (w.to_owned(), n.trim().parse().unwrap_or(u64::MAX)))
            .collect(),
    )
}

async fn chaos<L: EventLog>(store: Option<&str>, open: impl AsyncFnOnce(&Server) -> L) {
    let mut server = Server::start(
        store,
        &[
            "--workers",
            "bot,router,assigner,surveys",
            "--seat-sweep-secs",
            "86400",
            "--rate-limit",
            "0",
        ],
    );
    let admin = server.token("admin", "ops", &[]);
    server
        .gql(
            &admin,
            "mutation { defineQueue(input: {name: \"售后\", categories: [\"logistics\"], skills: [\"after-sales\"], firstResponseSecs: 600, resolutionSecs: 3600}) { id } }",
            json!({}),
        )
        .await;
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        let id = Uuid::now_v7().to_string();
        server
            .gql(
                &admin,
                "mutation($a: String!, $n: String!) { registerAgent(agentId: $a, name: $n, skills: [\"after-sales\"], maxConcurrent: 20) { id } }",
                json!({ "a": id, "n": format!("agent {i}") }),
            )
            .await;
        let token = server.token("agent", &id, &[]);
        server
            .gql(
                &token,
                "mutation { setAgentStatus(status: ONLINE) { position } }",
                json!({}),
            )
            .await;
        agents.push((id, token));
    }

    // Customers write in; the server is killed once a third of their lines are in.
    let addr: Addr = Arc::new(RwLock::new(server.addr.clone()));
    let written = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..CUSTOMERS)
        .map(|_| {
            let token = server.token("customer", &Uuid::now_v7().to_string(), &[]);
            tokio::spawn(customer(addr.clone(), token, written.clone()))
        })
        .collect();
    until("a third of the lines", async || {
        written.load(Ordering::SeqCst) >= CUSTOMERS * LINES.len() / 3
    })
    .await;
    server.kill_and_restart();
    *addr.write().await = server.addr.clone();
    let mut conversations = Vec::new();
    for t in tasks {
        conversations.push(t.await.unwrap());
    }

    // Agents close every chat handed to them; the server is killed again half-way.
    let log = open(&server).await;
    // Asking for a person always gets one: the bot hands every conversation over.
    let handed: BTreeSet<String> = conversations
        .iter()
        .map(|c| format!("conversation-{c}"))
        .collect();
    until("every customer handed to a person", async || {
        let events = everything(&log).await;
        handed
            .iter()
            .all(|s| count(&events, s, "HandedToHuman") >= 1)
    })
    .await;
    until("every hand-off assigned", async || {
        let events = everything(&log).await;
        handed
            .iter()
            .all(|s| count(&events, s, "AgentAssigned") >= 1)
    })
    .await;
    let events = everything(&log).await;
    let mut held: Vec<(String, String)> = Vec::new();
    for s in &handed {
        let agent = events
            .iter()
            .find(|e| e.stream_id.as_str() == s && e.event_type == "AgentAssigned")
            .and_then(|e| e.payload["agent"].as_str())
            .unwrap()
            .to_owned();
        let token = agents
            .iter()
            .find(|(id, _)| *id == agent)
            .unwrap()
            .1
            .clone();
        held.push((s.trim_start_matches("conversation-").to_owned(), token));
    }
    for (i, (conversation, token)) in held.iter().enumerate() {
        if i == held.len() / 2 {
            server.kill_and_restart();
            *addr.write().await = server.addr.clone();
        }
        // A close cut by the kill may have been recorded: then a resend is refused as closed
        // already, which is the close we wanted.
        let at = addr.read().await.clone();
        if try_gql(&at, token, CLOSE, json!({ "c": conversation }))
            .await
            .is_err()
        {
            let events = everything(&log).await;
            if count(
                &events,
                &format!("conversation-{conversation}"),
                "ConversationClosed",
            ) == 0
            {
                until_answered(&addr, token, CLOSE, json!({ "c": conversation })).await;
            }
        }
    }

    // The workers follow up: each close gets its survey, each seat comes free.
    until(
        "every close offered a survey and the workers caught up",
        async || {
            let events = everything(&log).await;
            let offered = handed
                .iter()
                .all(|s| count(&events, s, "SurveyOffered") >= 1);
            offered
                && worker_lags(&server, &admin)
                    .await
                    .is_some_and(|lags| !lags.is_empty() && lags.values().all(|n| *n == 0))
        },
    )
    .await;
    until("every seat free", async || {
        let events = everything(&log).await;
        agents.iter().all(|(id, _)| {
            let stream = format!("agent-{id}");
            let last = events
                .iter()
                .rev()
                .find(|e| {
                    e.stream_id.as_str() == stream
                        && matches!(
                            e.event_type.as_str(),
                            "AgentChatTaken" | "AgentChatReleased"
                        )
                })
                .map(|e| e.payload["active"].as_u64().unwrap());
            last.is_none_or(|active| active == 0)
        })
    })
    .await;

    let events = everything(&log).await;
    let repeated = kefu_workers::reactions::repeated_reactions(&events);
    assert!(repeated.is_empty(), "reacted twice: {repeated:#?}");
    for s in &handed {
        assert_eq!(count(&events, s, "HandedToHuman"), 1, "{s}");
        assert_eq!(count(&events, s, "AgentAssigned"), 1, "{s}");
        assert_eq!(count(&events, s, "ConversationClosed"), 1, "{s}");
        assert_eq!(count(&events, s, "SurveyOffered"), 1, "{s}");
    }
    println!(
        "chaos: {} customers, {} handed to a person, {} events, killed twice",
        conversations.len(),
        handed.len(),
        events.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_twice_under_load_on_the_embedded_store() {
    chaos(None, async |server: &Server| {
        kefu_eventlog::sqlite::SqliteLog::open(kefu_eventlog::sqlite::SqliteConfig::new(
            server.data_dir().join("kefu.db"),
        ))
        .await
        .unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_twice_under_load_on_postgres() {
    let Some((schema, url)) = kefu_eventlog::testing::fresh_schema_url().await else {
        return;
    };
    chaos(Some(&url), async |_: &Server| {
        kefu_eventlog::postgres::PostgresLog::open(
            kefu_eventlog::postgres::PostgresConfig::new(kefu_eventlog::testing::url())
                .with_schema(schema.clone()),
        )
        .await
        .unwrap()
    })
    .await;
}
