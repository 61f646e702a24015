//! Idempotency keys through a real `kefu serve`, on both stores: every creating or
//! state-changing mutation resent with its key answers the first receipt (id, position,
//! correlation id) and writes nothing, as `kefu log tail` reads the log; a key reused for
//! another request is refused by code and writes nothing; keys are per caller; a resend racing
//! the first send runs the mutation once; after the window a key runs again.

mod server;

use serde_json::{Value, json};
use server::Server;
use uuid::Uuid;

/// A keyed mutation sent, then resent as a client that lost the answer would: the receipt
/// of the first, checked against the log.
async fn twice(server: &Server, token: &str, query: &str, vars: Value) -> Value {
    let field = query
        .split_once('{')
        .and_then(|(_, rest)| rest.trim_start().split(['(', ' ']).next())
        .unwrap()
        .to_owned();
    let before = server.log_events().len();
    let (status, headers, first) = server.gql_full(Some(token), &[], query, vars.clone()).await;
    assert!(
        status == 200 && first.get("errors").is_none(),
        "{query}: {first}"
    );
    let receipt = first["data"][&field].clone();
    let written = server.log_events();
    assert!(written.len() > before, "{field} wrote nothing");
    // The answer's correlation header names the key's correlation, which the events carry.
    let correlation = receipt["correlationId"].as_str().unwrap();
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "x-correlation-id" && v == correlation),
        "{field}: {headers:?}"
    );
    for e in &written[before..] {
        assert_eq!(e["metadata"]["correlation_id"], correlation, "{field}: {e}");
    }
    let again = server.gql(token, query, vars).await;
    assert_eq!(
        again[&field], receipt,
        "{field}: a resend answered another receipt"
    );
    assert_eq!(
        server.log_events(),
        written,
        "{field}: a resend wrote to the log"
    );
    receipt
}

async fn every_mutation_answers_a_resend_with_its_first_receipt(server: &Server) {
    let admin = server.token("admin", "ops", &[]);
    let (customer, agent) = (Uuid::now_v7(), Uuid::now_v7());
    let customer_token = server.token("customer", &customer.to_string(), &[]);
    let agent_token = server.token("agent", &agent.to_string(), &[]);
    let k = |name: &str| format!("{name}-{}", Uuid::now_v7());

    let queue = twice(
        server,
        &admin,
        "mutation($k: IdempotencyKey) { defineQueue(input: {name: \"退款 refunds\", categories: [\"refunds\"], firstResponseSecs: 60, resolutionSecs: 3600}, idempotencyKey: $k) { id position correlationId } }",
        json!({ "k": k("queue") }),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let supervisor = server.token("supervisor", "lead", &[&queue]);
    twice(
        server,
        &admin,
        "mutation($a: String!, $k: IdempotencyKey) { registerAgent(agentId: $a, name: \"小周\", skills: [], maxConcurrent: 2, idempotencyKey: $k) { id position correlationId } }",
        json!({ "a": agent.to_string(), "k": k("agent") }),
    )
    .await;
    twice(
        server,
        &agent_token,
        "mutation($k: IdempotencyKey) { setAgentStatus(status: ONLINE, idempotencyKey: $k) { id position correlationId } }",
        json!({ "k": k("status") }),
    )
    .await;
    let entry = twice(
        server,
        &admin,
        "mutation($k: IdempotencyKey) { createKnowledgeEntry(question: \"多久发货\", answer: \"48 小时内\", category: \"物流\", locale: \"zh-CN\", idempotencyKey: $k) { id position correlationId } }",
        json!({ "k": k("entry") }),
    )
    .await;
    assert!(entry["id"].is_string(), "{entry}");
    let started = twice(
        server,
        &customer_token,
        "mutation($k: IdempotencyKey) { startConversation(channel: WEB, idempotencyKey: $k) { id position correlationId } }",
        json!({ "k": k("start") }),
    )
    .await;
    let c = started["id"].as_str().unwrap().to_owned();
    let message = twice(
        server,
        &customer_token,
        "mutation($c: String!, $k: IdempotencyKey) { sendMessage(conversationId: $c, text: \"还没发货\", idempotencyKey: $k) { id position correlationId } }",
        json!({ "c": c, "k": k("message") }),
    )
    .await;
    assert!(message["id"].is_string(), "{message}");
    let conversation = json!({ "c": c, "q": queue });
    for (token, query, name) in [
        (
            &customer_token,
            "mutation($c: String!, $k: IdempotencyKey) { requestHuman(conversationId: $c, idempotencyKey: $k) { id position correlationId } }",
            "human",
        ),
        (
            &supervisor,
            "mutation($c: String!, $q: String!, $k: IdempotencyKey) { routeConversation(conversationId: $c, queueId: $q, idempotencyKey: $k) { id position correlationId } }",
            "route",
        ),
        (
            &agent_token,
            "mutation($c: String!, $k: IdempotencyKey) { acceptConversation(conversationId: $c, idempotencyKey: $k) { id position correlationId } }",
            "accept",
        ),
    ] {
        let mut vars = conversation.clone();
        vars["k"] = json!(k(name));
        twice(server, token, query, vars).await;
    }
    let ticket = twice(
        server,
        &agent_token,
        "mutation($c: String!, $cu: String!, $k: IdempotencyKey) { openTicket(input: {customer: $cu, conversationId: $c, kind: DELIVERY, subject: \"未发货\", description: \"三天了\"}, idempotencyKey: $k) { id position correlationId } }",
        json!({ "c": c, "cu": customer.to_string(), "k": k("ticket") }),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    twice(
        server,
        &agent_token,
        "mutation($t: String!, $k: IdempotencyKey) { updateTicket(ticketId: $t, priority: HIGH, status: OPEN, idempotencyKey: $k) { id position correlationId } }",
        json!({ "t": ticket, "k": k("update") }),
    )
    .await;
    // Closing again without a key is a CONFLICT; with the key, the first close's receipt.
    twice(
        server,
        &agent_token,
        "mutation($c: String!, $k: IdempotencyKey) { closeConversation(conversationId: $c, idempotencyKey: $k) { id position correlationId } }",
        json!({ "c": c, "k": k("close") }),
    )
    .await;
    let (code, message) = server
        .gql_error(
            &agent_token,
            "mutation($c: String!) { closeConversation(conversationId: $c) { position } }",
            json!({ "c": c }),
        )
        .await;
    assert_eq!(code, "CONFLICT", "{message}");
}

async fn a_key_names_one_request_of_one_caller(server: &Server) {
    let alice = server.token("customer", &Uuid::now_v7().to_string(), &[]);
    let bob = server.token("customer", &Uuid::now_v7().to_string(), &[]);
    let start = "mutation($ch: Channel!, $k: IdempotencyKey) { startConversation(channel: $ch, idempotencyKey: $k) { id position correlationId } }";
    let key = format!("order-42-help-{}", Uuid::now_v7());
    let first = server
        .gql(&alice, start, json!({ "ch": "WEB", "k": key }))
        .await["startConversation"]
        .clone();
    let log = server.log_events();

    // The same key for another request: refused by code, naming the key and its first use.
    let (code, message) = server
        .gql_error(&alice, start, json!({ "ch": "APP", "k": key }))
        .await;
    assert_eq!(code, "IDEMPOTENCY_KEY_REUSED", "{message}");
    assert!(
        message.contains(&key) && message.contains("startConversation"),
        "{message}"
    );
    let (code, message) = server
        .gql_error(
            &alice,
            "mutation($c: String!, $k: IdempotencyKey) { closeConversation(conversationId: $c, idempotencyKey: $k) { position } }",
            json!({ "c": first["id"], "k": key }),
        )
        .await;
    assert_eq!(code, "IDEMPOTENCY_KEY_REUSED", "{message}");
    assert_eq!(server.log_events(), log, "a refused key wrote something");

    // Another caller's same key is theirs: a conversation of their own, never alice's receipt.
    let theirs = server
        .gql(&bob, start, json!({ "ch": "WEB", "k": key }))
        .await["startConversation"]
        .clone();
    assert_ne!(theirs["id"], first["id"]);
    assert_ne!(theirs["correlationId"], first["correlationId"]);

    // A malformed key is refused naming the argument, and nothing is written.
    let log = server.log_events();
    for bad in ["has space".to_owned(), String::new(), "k".repeat(129)] {
        let (code, message) = server
            .gql_error(&alice, start, json!({ "ch": "WEB", "k": bad }))
            .await;
        assert_eq!(code, "VALIDATION", "{message}");
        assert!(message.contains("idempotencyKey"), "{message}");
    }
    assert_eq!(server.log_events(), log);
}

/// Sends racing one another under one key run the mutation once; every one of them gets
/// the receipt of that one run.
async fn racing_resends_run_once(server: &Server) {
    let customer = server.token("customer", &Uuid::now_v7().to_string(), &[]);
    let before = server.log_events().len();
    let key = Uuid::now_v7().to_string();
    let start = "mutation($k: IdempotencyKey) { startConversation(channel: WEB, idempotencyKey: $k) { id position correlationId } }";
    let vars = json!({ "k": key });
    let sends = (0..6).map(|_| server.gql(&customer, start, vars.clone()));
    let receipts: Vec<Value> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|answer| answer["startConversation"].clone())
        .collect();
    assert!(receipts.windows(2).all(|w| w[0] == w[1]), "{receipts:?}");
    let written = &server.log_events()[before..];
    let types: Vec<&str> = written
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["CustomerProfileRecorded", "ConversationStarted"]);
}

async fn all(server: &Server) {
    every_mutation_answers_a_resend_with_its_first_receipt(server).await;
    a_key_names_one_request_of_one_caller(server).await;
    racing_resends_run_once(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_on_the_embedded_store() {
    let server = Server::start(None, &["--workers", "none"]);
    all(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_on_postgres() {
    let Some((schema, url)) = kefu_eventlog::testing::fresh_schema_url().await else {
        return;
    };
    {
        let server = Server::start(Some(&url), &["--workers", "none"]);
        all(&server).await;
    }
    kefu_eventlog::testing::drop_schema(&schema).await;
}

/// The window runs on the commands' clock, so a drill clock moves it: a resend a moment
/// inside the window answers the first receipt; one after it runs again. Restarting the
/// server keeps the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_kept_for_its_window_and_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    std::fs::write(&clock, "2026-03-10T08:00:00Z").unwrap();
    let clock_arg = clock.to_str().unwrap();
    let server = Server::start(
        None,
        &[
            "--workers",
            "none",
            "--drill-clock-file",
            clock_arg,
            "--idempotency-window-hours",
            "2",
        ],
    );
    let customer = server.token("customer", &Uuid::now_v7().to_string(), &[]);
    let start = "mutation($k: IdempotencyKey) { startConversation(channel: WEB, idempotencyKey: $k) { id position correlationId } }";
    let vars = json!({ "k": "same-key" });
    let first = server.gql(&customer, start, vars.clone()).await["startConversation"].clone();
    std::fs::write(&clock, "2026-03-10T10:00:00Z").unwrap();
    assert_eq!(
        server.gql(&customer, start, vars.clone()).await["startConversation"],
        first
    );
    std::fs::write(&clock, "2026-03-10T10:00:01Z").unwrap();
    let later = server.gql(&customer, start, vars.clone()).await["startConversation"].clone();
    assert_ne!(later["id"], first["id"], "a key past its window runs again");
    let restarted = server.restart(&[
        "--workers",
        "none",
        "--drill-clock-file",
        clock_arg,
        "--idempotency-window-hours",
        "2",
    ]);
    assert_eq!(
        restarted.gql(&customer, start, vars).await["startConversation"],
        later,
        "the key outlives the server process"
    );
}
