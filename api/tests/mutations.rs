//! Mutations as decisions, through a real `kefu serve`: a mutation that changes several
//! things on one stream is refused whole or written whole; asking for what already stands
//! (a survey offer) is not a conflict; the order system records profiles and orders that
//! triage then reads; a queue needs the categories it serves.

mod server;

use serde_json::{Value, json};
use server::Server;
use uuid::Uuid;

/// The raw events of a stream, as an auditor reads them.
async fn stream(server: &Server, auditor: &str, stream: &str) -> Vec<Value> {
    let answer = server
        .gql(
            auditor,
            "query($s: String!) { streamEvents(stream: $s, first: 100) { type payload } }",
            json!({ "s": stream }),
        )
        .await;
    answer["streamEvents"].as_array().unwrap().clone()
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_refused_update_writes_nothing(server: &Server) {
    let admin = server.token("admin", "ops", &[]);
    let auditor = server.token("auditor", "audit", &[]);
    let agent = Uuid::now_v7();
    server
        .gql(
            &admin,
            "mutation($a: String!) { registerAgent(agentId: $a, name: \"小李\", skills: [], maxConcurrent: 2) { id } }",
            json!({ "a": agent.to_string() }),
        )
        .await;
    let agent_token = server.token("agent", &agent.to_string(), &[]);
    let opened = server
        .gql(
            &agent_token,
            "mutation($c: String!) { openTicket(input: {customer: $c, kind: REFUND, subject: \"退款未到账\", description: \"七天了\"}) { id position } }",
            json!({ "c": Uuid::now_v7().to_string() }),
        )
        .await;
    let ticket = opened["openTicket"]["id"].as_str().unwrap().to_owned();
    // Id arguments take the global id too.
    let read = server
        .gql(
            &agent_token,
            "query($t: String!, $p: String) { ticket(id: $t, atLeast: $p) { uuid } }",
            json!({ "t": format!("Ticket:{ticket}"), "p": opened["openTicket"]["position"] }),
        )
        .await;
    assert_eq!(read["ticket"]["uuid"], ticket.as_str(), "{read}");
    let update = "mutation($t: String!, $a: String, $p: TicketPriority, $s: TicketStatus) { updateTicket(ticketId: $t, assignee: $a, priority: $p, status: $s) { position } }";
    // Assigning and solving in one request: one decision, one append.
    let before = stream(server, &auditor, &format!("ticket-{ticket}"))
        .await
        .len();
    server
        .gql(
            &agent_token,
            update,
            json!({ "t": ticket, "a": agent.to_string(), "s": "SOLVED" }),
        )
        .await;
    let solved = stream(server, &auditor, &format!("ticket-{ticket}")).await;
    assert!(
        types(&solved).ends_with(&["TicketStatusChanged".to_owned()]),
        "{:?}",
        types(&solved)
    );
    assert!(solved.len() > before);

    // A solved ticket cannot go back to new: the priority change in the same request is
    // refused with it.
    let (code, message) = server
        .gql_error(
            &agent_token,
            update,
            json!({ "t": ticket, "p": "URGENT", "s": "NEW" }),
        )
        .await;
    assert_eq!(code, "CONFLICT", "{message}");
    let after = stream(server, &auditor, &format!("ticket-{ticket}")).await;
    assert_eq!(after, solved, "a refused update wrote part of itself");

    // An agent's skills and seats change together or not at all: seats of 0 are refused, and
    // the skills asked for in the same request are not recorded.
    let agent_stream = format!("agent-{agent}");
    let before = stream(server, &auditor, &agent_stream).await;
    let (code, message) = server
        .gql_error(
            &admin,
            "mutation($a: String!) { changeAgent(agentId: $a, skills: [\"refunds\"], maxConcurrent: 0) { position } }",
            json!({ "a": agent.to_string() }),
        )
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
    assert_eq!(stream(server, &auditor, &agent_stream).await, before);
}

const SHIPPED_AT: &str = "2026-11-21T09:30:00Z";

async fn the_order_system_feeds_triage(server: &Server) {
    let integration = server.token("integration", "oms", &[]);
    let auditor = server.token("auditor", "audit", &[]);
    let customer = Uuid::now_v7();
    let customer_token = server.token("customer", &customer.to_string(), &[]);
    let order_id = format!("JD{}", customer.simple());
    let record_order = "mutation($o: OrderInput!) { recordOrder(input: $o) { id position } }";
    let order = |status: &str, status_at: &str| {
        json!({
            "customerId": customer.to_string(),
            "orderId": order_id,
            "category": "phones",
            "status": status,
            "total": { "minorUnits": 399_900, "currency": "CNY" },
            "placedAt": "2026-11-20T08:00:00Z",
            "statusAt": status_at,
        })
    };

    // An order of a customer kefu does not know is refused, naming what to do.
    let (code, message) = server
        .gql_error(
            &integration,
            record_order,
            json!({ "o": order("SHIPPED", SHIPPED_AT) }),
        )
        .await;
    assert_eq!(code, "NOT_FOUND", "{message}");

    server
        .gql(
            &integration,
            "mutation($c: String!) { recordCustomerProfile(customerId: $c, tier: PLUS, locale: \"zh-CN\") { id } }",
            json!({ "c": customer.to_string() }),
        )
        .await;
    let recorded = server
        .gql(
            &integration,
            record_order,
            json!({ "o": order("SHIPPED", SHIPPED_AT) }),
        )
        .await;
    assert_eq!(recorded["recordOrder"]["id"], order_id);
    assert!(recorded["recordOrder"]["position"].is_string());
    // The gateway delivers at least once: the same snapshot again records nothing.
    let resent = server
        .gql(
            &integration,
            record_order,
            json!({ "o": order("SHIPPED", SHIPPED_AT) }),
        )
        .await;
    assert!(resent["recordOrder"]["position"].is_null(), "{resent}");
    // A late snapshot (older than what was recorded) records nothing either.
    let late = server
        .gql(
            &integration,
            record_order,
            json!({ "o": order("PAID", "2026-11-20T08:05:00Z") }),
        )
        .await;
    assert!(late["recordOrder"]["position"].is_null(), "{late}");
    // A newer snapshot that moves the order backwards is a gateway fault, refused.
    let (code, message) = server
        .gql_error(
            &integration,
            record_order,
            json!({ "o": order("PAID", "2026-11-22T10:00:00Z") }),
        )
        .await;
    assert_eq!(code, "CONFLICT", "{message}");
    // Bad input names the field.
    let mut negative = order("DELIVERED", "2026-11-22T10:00:00Z");
    negative["total"]["minorUnits"] = json!(-1);
    let (code, message) = server
        .gql_error(&integration, record_order, json!({ "o": negative }))
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
    assert!(message.contains("total"), "{message}");
    let events = stream(server, &auditor, &format!("customer-{customer}")).await;
    assert_eq!(
        types(&events),
        ["CustomerProfileRecorded", "OrderImported"],
        "refused or resent orders wrote nothing"
    );

    // Only the order system records orders, and it does nothing else.
    let (code, _) = server
        .gql_error(
            &customer_token,
            record_order,
            json!({ "o": order("DELIVERED", "2026-11-22T10:00:00Z") }),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    let (code, _) = server
        .gql_error(
            &integration,
            "mutation { startConversation(channel: WEB) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");

    // The customer opens a chat from the order; triage predicts from what the order system
    // recorded.
    let started = server
        .gql(
            &customer_token,
            "mutation($o: String) { startConversation(channel: APP, orderId: $o) { id } }",
            json!({ "o": order_id }),
        )
        .await;
    let conversation = started["startConversation"]["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + server::HANG;
    let predicted = loop {
        let events = stream(server, &auditor, &format!("conversation-{conversation}")).await;
        if let Some(p) = events.iter().find(|e| e["type"] == "ScenarioPredicted") {
            break p.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no prediction: {events:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(predicted["payload"]["features"]["status"], "shipped");
    assert_eq!(predicted["payload"]["features"]["category"], "phones");
}

async fn asking_again_for_a_survey_is_not_a_conflict(server: &Server) {
    let admin = server.token("admin", "ops", &[]);
    let auditor = server.token("auditor", "audit", &[]);
    let (customer, agent) = (Uuid::now_v7(), Uuid::now_v7());
    let queue = server
        .gql(
            &admin,
            "mutation { defineQueue(input: {name: \"退款 refunds\", categories: [\"refunds\"], firstResponseSecs: 60, resolutionSecs: 3600}) { id } }",
            json!({}),
        )
        .await["defineQueue"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .gql(
            &admin,
            "mutation($a: String!) { registerAgent(agentId: $a, name: \"小周\", skills: [], maxConcurrent: 2) { id } }",
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
    let c = server
        .gql(
            &customer_token,
            "mutation { startConversation(channel: WEB) { id } }",
            json!({}),
        )
        .await["startConversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let vars = json!({ "c": c, "q": queue });
    server
        .gql(
            &customer_token,
            "mutation($c: String!) { requestHuman(conversationId: $c) { position } }",
            vars.clone(),
        )
        .await;
    server
        .gql(
            &supervisor,
            "mutation($c: String!, $q: String!) { routeConversation(conversationId: $c, queueId: $q) { position } }",
            vars.clone(),
        )
        .await;
    let events = stream(server, &auditor, &format!("conversation-{c}")).await;
    let routed: Vec<String> = types(&events)
        .into_iter()
        .filter(|t| t == "RoutingDecided" || t == "ConversationQueued")
        .collect();
    assert_eq!(routed, ["RoutingDecided", "ConversationQueued"]);
    for m in [
        "mutation($c: String!) { acceptConversation(conversationId: $c) { position } }",
        "mutation($c: String!) { closeConversation(conversationId: $c, reason: RESOLVED) { position } }",
    ] {
        server.gql(&agent_token, m, vars.clone()).await;
    }
    let offer = "mutation($c: String!) { offerSurvey(conversationId: $c) { position } }";
    let first = server.gql(&agent_token, offer, vars.clone()).await;
    assert!(first["offerSurvey"]["position"].is_string(), "{first}");
    let again = server.gql(&agent_token, offer, vars.clone()).await;
    assert!(again["offerSurvey"]["position"].is_null(), "{again}");
    let offers = types(&stream(server, &auditor, &format!("conversation-{c}")).await)
        .into_iter()
        .filter(|t| t == "SurveyOffered")
        .count();
    assert_eq!(offers, 1);
}

async fn a_queue_serves_named_categories(server: &Server) {
    let admin = server.token("admin", "ops", &[]);
    let (code, message) = server
        .gql_error(
            &admin,
            "mutation { defineQueue(input: {name: \"综合\", firstResponseSecs: 60, resolutionSecs: 3600}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
    assert!(message.contains("categories"), "{message}");
    let (code, message) = server
        .gql_error(
            &admin,
            "mutation { defineQueue(input: {name: \"综合\", categories: [], firstResponseSecs: 60, resolutionSecs: 3600}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
    assert!(message.contains("categor"), "{message}");
}

/// `queues` is a Relay connection: pages follow each other without a gap or a repeat, the
/// total counts every queue, and a cursor it never gave is refused by name.
async fn queues_page_by_cursor(server: &Server) {
    let admin = server.token("admin", "ops", &[]);
    let mut at = String::new();
    for i in 0..3 {
        let defined = server
            .gql(
                &admin,
                "mutation($n: String!) { defineQueue(input: {name: $n, categories: [\"logistics\"], firstResponseSecs: 60, resolutionSecs: 3600}) { id position } }",
                json!({ "n": format!("分页 {i} {}", Uuid::now_v7()) }),
            )
            .await;
        at = defined["defineQueue"]["position"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let page = "query($p: String, $after: String) { queues(first: 2, after: $after, atLeast: $p) { totalCount pageInfo { hasNextPage endCursor } nodes { uuid } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let total = loop {
        let answer = server
            .gql(&admin, page, json!({ "p": at, "after": after }))
            .await;
        let queues = &answer["queues"];
        let nodes = queues["nodes"].as_array().unwrap();
        assert!(nodes.len() <= 2, "{answer}");
        seen.extend(nodes.iter().map(|n| n["uuid"].as_str().unwrap().to_owned()));
        if queues["pageInfo"]["hasNextPage"] != true {
            break queues["totalCount"].as_i64().unwrap();
        }
        after = queues["pageInfo"]["endCursor"].clone();
    };
    assert!(total >= 3, "{total}");
    assert_eq!(seen.len() as i64, total, "every queue once: {seen:?}");
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no queue twice: {seen:?}");
    let (code, message) = server
        .gql_error(&admin, page, json!({ "p": at, "after": "no-such-queue" }))
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
    assert!(message.contains("after"), "{message}");
}

/// A request is one decision: a mutation that names a second root field is refused before
/// anything runs, so an allowed field cannot be written beside a refused one.
async fn a_second_mutation_field_is_refused_whole(server: &Server) {
    let auditor = server.token("auditor", "audit", &[]);
    let customer = Uuid::now_v7();
    let token = server.token("customer", &customer.to_string(), &[]);
    let started = server
        .gql(
            &token,
            "mutation { startConversation(channel: WEB) { id } }",
            json!({}),
        )
        .await;
    let conversation = started["startConversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stream_name = format!("conversation-{conversation}");
    let before = stream(server, &auditor, &stream_name).await;
    let (status, _, answer) = server
        .gql_full(
            Some(&token),
            &[],
            "mutation($c: String!, $d: String!) { mine: sendMessage(conversationId: $c, text: \"还在吗\") { position } theirs: closeConversation(conversationId: $d) { position } }",
            json!({ "c": conversation, "d": Uuid::now_v7().to_string() }),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "VALIDATION",
        "{answer}"
    );
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("--max-root-mutations"),
        "the error names the limit: {answer}"
    );
    assert_eq!(
        types(&stream(server, &auditor, &stream_name).await),
        types(&before),
        "the allowed field was not written either"
    );
    // Alone, the allowed field runs.
    let sent = server
        .gql(
            &token,
            "mutation($c: String!) { sendMessage(conversationId: $c, text: \"还在吗\") { position } }",
            json!({ "c": conversation }),
        )
        .await;
    assert!(sent["sendMessage"]["position"].is_string(), "{sent}");
}

async fn all(server: &Server) {
    queues_page_by_cursor(server).await;
    a_second_mutation_field_is_refused_whole(server).await;
    a_refused_update_writes_nothing(server).await;
    asking_again_for_a_survey_is_not_a_conflict(server).await;
    a_queue_serves_named_categories(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_on_the_embedded_store() {
    let server = Server::start(None, &["--workers", "none"]);
    all(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_on_postgres() {
    let Some((schema, url)) = kefu_eventlog::testing::fresh_schema_url().await else {
        return;
    };
    {
        let server = Server::start(Some(&url), &["--workers", "none"]);
        all(&server).await;
    }
    kefu_eventlog::testing::drop_schema(&schema).await;
}

/// With the router running, what the order system records reaches triage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_system_feeds_triage_on_the_embedded_store() {
    let server = Server::start(None, &["--workers", "router"]);
    the_order_system_feeds_triage(&server).await;
}
