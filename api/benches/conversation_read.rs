//! Latency of one `conversation` read as the agent desk makes it: a real `kefu serve` on the
//! embedded store, over HTTP, one request at a time. The conversation is written first
//! (customer turns, a hand-off, routing, an agent's replies and notes, a close) with the
//! workers off, so every run reads the same events.
//!
//! `KEFU_BENCH_READS` (default 2000) sets how many reads are timed, after 200 untimed ones.
//! Its figures are in BENCHMARKS.md.

#[path = "../tests/server/mod.rs"]
mod server;

use std::time::Instant;

use serde_json::json;
use server::Server;
use uuid::Uuid;

/// The read a desk makes to show one conversation: every field of the typed view, as the
/// JSON one before it (`conversation(id: $c)`, commit 6955bd3) returned every column.
const READ: &str = "query($c: String!, $p: String) { conversation(id: $c, atLeast: $p) {
    id uuid customer channel locale tier orderId seller category status queue agent botEnabled
    startedAt closedAt closeReason closedBy { kind agent } lastActivityAt turnCount
    emotionScore emotionLabel emotionTrend scenarioPredicted scenarioSettled handoffReason
    surveyScore surveyOfferedAt reopened orders version position
    sla { priority queuedAt firstResponseDue resolutionDue responded firstResponseWarned
          firstResponseBreached resolutionWarned resolutionBreached }
    turns { message version speaker agent text internal answerEntry confidence at
            emotion { score label trend } }
    emotions { message version score label trend modelVersion at }
    timeline { version kind at queue agent toAgent reason
               scenario { candidates { scenario probability } modelVersion }
               scenarioSettled scenarioPredicted
               routing { queue reasons { kind value } modelVersion }
               handoffReason priority previousPriority skills firstResponseDue resolutionDue
               waitedSecs by { kind agent } closeReason surveyScore surveyComment order
               amount { minorUnits currency } slaKind due channel }
} }";

#[tokio::main]
async fn main() {
    let read = READ;
    let reads: usize = std::env::var("KEFU_BENCH_READS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let server = Server::start(
        None,
        &[
            "--workers",
            "none",
            "--rate-limit",
            "1000000",
            "--rate-burst",
            "1000000",
        ],
    );
    let (customer, agent) = (Uuid::now_v7(), Uuid::now_v7());
    let admin = server.token("admin", "ops", &[]);
    let queue = server
        .gql(
            &admin,
            "mutation { defineQueue(input: {name: \"bench\", categories: [\"logistics\"], skills: [\"after-sales\"], firstResponseSecs: 60, resolutionSecs: 3600}) { id } }",
            json!({}),
        )
        .await["defineQueue"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .gql(
            &admin,
            "mutation($a: String!) { registerAgent(agentId: $a, name: \"小王\", skills: [\"after-sales\"], maxConcurrent: 3) { id } }",
            json!({ "a": agent.to_string() }),
        )
        .await;
    let agent_token = server.token("agent", &agent.to_string(), &[]);
    let customer_token = server.token("customer", &customer.to_string(), &[]);
    let supervisor = server.token("supervisor", "lead", &[&queue]);
    server
        .gql(
            &agent_token,
            "mutation { setAgentStatus(status: ONLINE) { position } }",
            json!({}),
        )
        .await;
    let conversation = server
        .gql(
            &customer_token,
            "mutation { startConversation(channel: APP) { id } }",
            json!({}),
        )
        .await["startConversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let send = "mutation($c: String!, $t: String!) { sendMessage(conversationId: $c, text: $t) { position } }";
    for i in 0..15 {
        server
            .gql(
                &customer_token,
                send,
                json!({ "c": conversation, "t": format!("我的快递第{i}天还没到，订单号 JD{i:08}，请帮我查一下物流") }),
            )
            .await;
    }
    let c = json!({ "c": conversation });
    server
        .gql(
            &customer_token,
            "mutation($c: String!) { requestHuman(conversationId: $c) { position } }",
            c.clone(),
        )
        .await;
    server
        .gql(
            &supervisor,
            "mutation($c: String!, $q: String!) { routeConversation(conversationId: $c, queueId: $q) { position } }",
            json!({ "c": conversation, "q": queue }),
        )
        .await;
    server
        .gql(
            &agent_token,
            "mutation($c: String!) { acceptConversation(conversationId: $c) { position } }",
            c.clone(),
        )
        .await;
    for i in 0..15 {
        server
            .gql(
                &agent_token,
                send,
                json!({ "c": conversation, "t": format!("您好，第{i}条：已为您催促仓库，预计明天送达") }),
            )
            .await;
        if i % 3 == 0 {
            server
                .gql(
                    &agent_token,
                    "mutation($c: String!, $t: String!) { addNote(conversationId: $c, text: $t) { position } }",
                    json!({ "c": conversation, "t": format!("内部备注 {i}：仓库延误") }),
                )
                .await;
        }
    }
    let closed = server
        .gql(
            &agent_token,
            "mutation($c: String!) { closeConversation(conversationId: $c, reason: RESOLVED) { position } }",
            c.clone(),
        )
        .await;
    // A supervisor of the queue reads it (the agent's access ends with the chat).
    let reader = supervisor;
    let first = server
        .gql(
            &reader,
            read,
            json!({ "c": conversation, "p": closed["closeConversation"]["position"] }),
        )
        .await;
    let size = first.to_string().len();
    let mut times = Vec::with_capacity(reads);
    for i in 0..200 + reads {
        let started = Instant::now();
        let answer = server.gql(&reader, read, c.clone()).await;
        let took = started.elapsed();
        assert!(!answer["conversation"].is_null(), "{answer}");
        if i >= 200 {
            times.push(took);
        }
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "conversation read ({size} bytes of data), {reads} reads: p50 {:.3} ms, p99 {:.3} ms",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    );
}
