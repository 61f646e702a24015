//! The GraphQL API end to end: a real `kefu serve`, over real HTTP and WebSocket, on the
//! embedded store and on PostgreSQL. A customer writes, asks for a human, is routed and
//! queued; an agent accepts and replies; the conversation closes; the survey is answered; and
//! the queues, the statistics, search and the audit trail all show it. Then every role is
//! refused what it may not do, and a refused request writes nothing.

mod server;

use serde_json::{Value, json};
use server::Server;
use uuid::Uuid;

const START: &str = "mutation($channel: Channel!) { startConversation(channel: $channel) { id position correlationId } }";
const SEND: &str = "mutation($c: String!, $t: String!) { sendMessage(conversationId: $c, text: $t) { id position correlationId } }";

fn position(receipt: &Value) -> String {
    receipt["position"].as_str().expect("a position").to_owned()
}

/// A conversation's stored events, as an auditor reads them (type, payload, actor).
async fn stored_events(server: &Server, auditor: &str, conversation: &str) -> Vec<Value> {
    let history = server
        .gql(
            auditor,
            "query($s: String!) { streamEvents(stream: $s, first: 100) { type payload actor { id } } }",
            json!({ "s": format!("conversation-{conversation}") }),
        )
        .await;
    history["streamEvents"].as_array().unwrap().clone()
}

/// Reads a subscription until an event of `event_type` arrives; returns it.
async fn until(sub: &mut server::Subscription, field: &str, event_type: &str) -> Value {
    loop {
        let m = sub.next().await;
        let event = &m["data"][field];
        assert!(!event.is_null(), "{m}");
        if event["type"] == event_type {
            return event.clone();
        }
    }
}

/// With `workers`, the assigner gives the chat to the agent and the survey worker offers the
/// survey; without, the agent accepts and offers by hand.
async fn scripted_day(server: &Server, workers: bool) {
    let (customer, agent, other_customer) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let admin = server.token("admin", "ops", &[]);
    // Every conversation below comes after this (the server stamps with the system clock).
    let began = chrono::Utc::now();

    // The admin sets up a queue and an agent.
    let q = server
        .gql(
            &admin,
            "mutation { defineQueue(input: {name: \"售后 after-sales\", categories: [\"logistics\"], skills: [\"after-sales\"], firstResponseSecs: 60, resolutionSecs: 3600}) { id position } }",
            json!({}),
        )
        .await;
    let queue = q["defineQueue"]["id"].as_str().unwrap().to_owned();
    server
        .gql(
            &admin,
            "mutation($a: String!) { registerAgent(agentId: $a, name: \"小王\", skills: [\"after-sales\"], maxConcurrent: 3) { id } }",
            json!({ "a": agent.to_string() }),
        )
        .await;
    server
        .gql(
            &admin,
            "mutation($a: String!) { changeAgent(agentId: $a, maxConcurrent: 4) { position } }",
            json!({ "a": agent.to_string() }),
        )
        .await;
    server
        .gql(
            &admin,
            "mutation($q: String!) { changeQueue(queueId: $q, priority: 3) { position } }",
            json!({ "q": queue }),
        )
        .await;
    let agent_token = server.token("agent", &agent.to_string(), &[]);
    let customer_token = server.token("customer", &customer.to_string(), &[]);
    let supervisor = server.token("supervisor", "lead-1", &[&queue]);
    let analyst = server.token("analyst", "bi", &[]);
    let auditor = server.token("auditor", "audit", &[]);
    server
        .gql(
            &agent_token,
            "mutation { setAgentStatus(status: ONLINE) { position } }",
            json!({}),
        )
        .await;

    // The customer starts a chat and follows it over WebSocket.
    let started = server
        .gql(&customer_token, START, json!({ "channel": "APP" }))
        .await["startConversation"]
        .clone();
    let conversation = started["id"].as_str().unwrap().to_owned();
    let mut turns = server
        .subscribe(
            &customer_token,
            "subscription($c: String!) { conversationTurns(conversationId: $c) { type payload actor { kind } } }",
            json!({ "c": conversation }),
        )
        .await;
    let mut window = server
        .subscribe(
            &customer_token,
            "subscription($c: String!) { conversationEvents(conversationId: $c) { type position } }",
            json!({ "c": conversation }),
        )
        .await;
    let mut queue_feed = server
        .subscribe(
            &agent_token,
            "subscription($q: [String!]) { queueChanges(queues: $q) { type stream } }",
            json!({ "q": [queue] }),
        )
        .await;

    // A customer's request carrying a correlation id of their choosing: a customer may not
    // pick the trail their events join, so the server names a new one and says which.
    let claimed = Uuid::now_v7();
    let (status, headers, sent) = server
        .gql_full(
            Some(&customer_token),
            &[("X-Correlation-Id", &claimed.to_string())],
            SEND,
            json!({ "c": conversation, "t": "运费是怎么收取的？" }),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    let request_id: Uuid = sent["data"]["sendMessage"]["correlationId"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .expect("a correlation id");
    assert_ne!(request_id, claimed, "the customer's id is not taken");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "x-correlation-id" && *v == request_id.to_string()),
        "the correlation id comes back: {headers:?}"
    );
    let turn = turns.next().await;
    assert_eq!(
        turn["data"]["conversationTurns"]["type"], "CustomerTurnRecorded",
        "{turn}"
    );
    if workers {
        // The bot answers from the demo knowledge base the server seeded on first start.
        let bot = until(&mut turns, "conversationTurns", "BotTurnRecorded").await;
        assert_eq!(bot["actor"]["kind"], "bot", "{bot}");
        let shipping_fees = kefu_bot::kb::entry_id("zh-shipping-001").to_string();
        assert_eq!(
            bot["payload"]["candidates"][0]["entry"],
            shipping_fees.as_str(),
            "{bot}"
        );
        // Answered outright, or offered first among the top three, as its confidence says.
        let text = bot["payload"]["text"].as_str().unwrap();
        match bot["payload"]["answer"]["entry"].as_str() {
            Some(entry) => assert_eq!(entry, shipping_fees, "{bot}"),
            None => assert!(text.contains("1. 运费是怎么收取的？"), "{bot}"),
        }
    }

    // 转人工, then the supervisor routes it to the queue; the agent's feed sees it arrive.
    server
        .gql(
            &customer_token,
            "mutation($c: String!) { requestHuman(conversationId: $c) { position } }",
            json!({ "c": conversation }),
        )
        .await;
    // The router sends it to the queue (the only one of the self-operated line); without the
    // workers, the supervisor does.
    let routed_at = if workers {
        None
    } else {
        let routed = server
            .gql(
                &supervisor,
                "mutation($c: String!, $q: String!) { routeConversation(conversationId: $c, queueId: $q) { position } }",
                json!({ "c": conversation, "q": queue }),
            )
            .await;
        Some(position(&routed["routeConversation"]))
    };
    let mut seen = Vec::new();
    while !seen.contains(&"ConversationQueued".to_owned()) {
        let change = queue_feed.next().await;
        seen.push(
            change["data"]["queueChanges"]["type"]
                .as_str()
                .unwrap_or_else(|| panic!("{change}"))
                .to_owned(),
        );
    }
    if workers {
        // The assigner gives it to the only agent who has the skill and a seat.
        let assigned = until(&mut window, "conversationEvents", "AgentAssigned").await;
        // Triage left its reasoning in the log: predictions before and after the first
        // message, and the routing decision with its model version.
        let events = stored_events(server, &auditor, &conversation).await;
        let history = json!(events);
        let of = |t: &str| events.iter().filter(|e| e["type"] == t).count();
        assert_eq!(of("ScenarioPredicted"), 2, "{history}");
        assert_eq!(of("RoutingDecided"), 1, "{history}");
        let routing = events
            .iter()
            .find(|e| e["type"] == "RoutingDecided")
            .unwrap();
        assert_eq!(routing["actor"]["id"], "router");
        assert_eq!(routing["payload"]["queue"], queue.as_str(), "{routing}");
        assert!(
            routing["payload"]["model_version"]
                .as_str()
                .is_some_and(|v| !v.is_empty())
        );
        let bench = server
            .gql(
                &agent_token,
                "query($p: String) { workbench(atLeast: $p) { chats { conversation } } }",
                json!({ "p": assigned["position"] }),
            )
            .await;
        assert_eq!(
            bench["workbench"]["chats"][0]["conversation"],
            conversation.as_str(),
            "{bench}"
        );
    } else {
        let queues = server
            .gql(
                &agent_token,
                "query($p: String) { queues(atLeast: $p) { totalCount nodes { uuid waiting { conversation placeInLine } } } }",
                json!({ "p": routed_at }),
            )
            .await;
        let ours = queues["queues"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["uuid"] == queue.as_str())
            .unwrap_or_else(|| panic!("the queue is listed: {queues}"));
        assert_eq!(
            ours["waiting"],
            json!([{ "conversation": conversation, "placeInLine": 1 }]),
            "the conversation waits in the queue: {queues}"
        );
        // Its customer sees their place in line; the agent online has free seats, so no wait
        // is expected.
        let line = server
            .gql(
                &customer_token,
                "query($c: String!) { myConversation(id: $c) { status placeInLine expectedWaitSecs } }",
                json!({ "c": conversation }),
            )
            .await;
        assert_eq!(
            line["myConversation"],
            json!({ "status": "QUEUED", "placeInLine": 1, "expectedWaitSecs": 0 }),
            "{line}"
        );
        server
            .gql(
                &agent_token,
                "mutation($c: String!) { acceptConversation(conversationId: $c) { position } }",
                json!({ "c": conversation }),
            )
            .await;
    }

    // The agent replies; the customer sees the reply.
    server
        .gql(
            &agent_token,
            SEND,
            json!({ "c": conversation, "t": "您好，我是小王，马上为您查询物流" }),
        )
        .await;
    let reply = until(&mut turns, "conversationTurns", "AgentTurnRecorded").await;
    assert_eq!(reply["actor"]["kind"], "agent", "{reply}");

    // Closed, surveyed, answered.
    server
        .gql(
            &agent_token,
            "mutation($c: String!) { closeConversation(conversationId: $c, reason: RESOLVED) { position } }",
            json!({ "c": conversation }),
        )
        .await;
    if workers {
        until(&mut window, "conversationEvents", "SurveyOffered").await;
    } else {
        server
            .gql(
                &agent_token,
                "mutation($c: String!) { offerSurvey(conversationId: $c) { position } }",
                json!({ "c": conversation }),
            )
            .await;
    }
    let answered = server
        .gql(
            &customer_token,
            "mutation($c: String!) { answerSurvey(conversationId: $c, score: 5, comment: \"很快\") { position } }",
            json!({ "c": conversation }),
        )
        .await;
    let last = position(&answered["answerSurvey"]);

    // Read your own writes: the conversation view, the statistics, search, the audit trail.
    let view = server
        .gql(
            &customer_token,
            "query($c: String!, $p: String) { myConversation(id: $c, atLeast: $p) { turns { speaker text } } }",
            json!({ "c": conversation, "p": last }),
        )
        .await;
    let turns = &view["myConversation"]["turns"];
    assert_eq!(
        turns[0],
        json!({ "speaker": "CUSTOMER", "text": "运费是怎么收取的？" }),
        "{view}"
    );
    assert!(
        turns
            .as_array()
            .unwrap()
            .contains(&json!({ "speaker": "AGENT", "text": "您好，我是小王，马上为您查询物流" })),
        "{view}"
    );
    let mine = server
        .gql(
            &customer_token,
            "query($p: String) { myConversations(atLeast: $p) { totalCount edges { node { uuid status survey { score } } } } }",
            json!({ "p": last }),
        )
        .await;
    assert_eq!(mine["myConversations"]["totalCount"], 1, "{mine}");
    assert_eq!(
        mine["myConversations"]["edges"][0]["node"],
        json!({ "uuid": conversation, "status": "CLOSED", "survey": { "score": 5 } })
    );
    let stats = server
        .gql(
            &analyst,
            "query($p: String) { stats(group: QUEUE, atLeast: $p) { key conversations closed handedOff surveysAnswered satisfied csat firstResponseSecs } }",
            json!({ "p": last }),
        )
        .await;
    let row = stats["stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == queue.as_str())
        .unwrap_or_else(|| panic!("a statistics row for the queue: {stats}"))
        .clone();
    assert_eq!(
        (
            &row["conversations"],
            &row["closed"],
            &row["handedOff"],
            &row["surveysAnswered"],
            &row["satisfied"],
            &row["csat"]
        ),
        (
            &json!(1),
            &json!(1),
            &json!(1),
            &json!(1),
            &json!(1),
            &json!(1.0)
        ),
        "{row}"
    );
    assert!(row["firstResponseSecs"].is_number(), "{row}");
    let forecast = server
        .gql(
            &analyst,
            "query($q: String, $p: String) { forecast(queue: $q, hours: 24, atLeast: $p) { trainedOnHours ahtSecs hours { hour expected agentsNeeded } today { hour expected actual } } }",
            json!({ "q": queue, "p": last }),
        )
        .await;
    assert_eq!(
        forecast["forecast"]["trainedOnHours"],
        28 * 24,
        "{forecast}"
    );
    assert_eq!(forecast["forecast"]["hours"].as_array().unwrap().len(), 24);
    assert!(forecast["forecast"]["ahtSecs"].as_f64().unwrap() > 0.0);
    // Today against the forecast: 24 consecutive hours, counted up to the current one.
    let today = forecast["forecast"]["today"].as_array().unwrap();
    assert_eq!(today.len(), 24, "{forecast}");
    let hour = |h: &Value| {
        chrono::DateTime::parse_from_rfc3339(h["hour"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    assert!(
        today
            .windows(2)
            .all(|w| hour(&w[1]) - hour(&w[0]) == chrono::Duration::hours(1)),
        "{forecast}"
    );
    let begun = today.iter().take_while(|h| h["actual"].is_i64()).count();
    assert!(begun >= 1, "the current hour has begun: {forecast}");
    assert!(
        today[begun..].iter().all(|h| h["actual"].is_null()),
        "{forecast}"
    );
    // No history before today: nothing was expected.
    assert!(today.iter().all(|h| h["expected"] == 0.0), "{forecast}");
    // The queue's one conversation came today, unless the day turned since the test began.
    if hour(&today[0]) <= began {
        let came: i64 = today.iter().filter_map(|h| h["actual"].as_i64()).sum();
        assert_eq!(came, 1, "{forecast}");
    }
    let found = server
        .gql(
            &analyst,
            "query($p: String) { search(text: \"运费 查询\", kinds: [MESSAGE], atLeast: $p) { totalCount edges { node { kind conversation snippet } } } }",
            json!({ "p": last }),
        )
        .await;
    assert!(
        found["search"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["node"]["kind"] == "MESSAGE"),
        "{found}"
    );
    assert!(
        found["search"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["node"]["conversation"] == conversation.as_str()),
        "{found}"
    );
    // One hit a page, by the cursors the connection gives: every hit once, then no next page.
    let (mut after, mut paged) = (serde_json::Value::Null, Vec::new());
    loop {
        let page = server
            .gql(
                &analyst,
                "query($p: String, $a: String) { search(text: \"运费 查询\", kinds: [MESSAGE], first: 1, after: $a, atLeast: $p) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { message } } } }",
                json!({ "p": last, "a": after }),
            )
            .await;
        let search = &page["search"];
        let edges = search["edges"].as_array().unwrap();
        assert_eq!(edges.len(), 1, "{page}");
        assert_eq!(edges[0]["cursor"], search["pageInfo"]["endCursor"]);
        paged.push(edges[0]["node"]["message"].clone());
        if search["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = search["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(
        paged.len(),
        found["search"]["totalCount"].as_u64().unwrap() as usize,
        "{paged:?}"
    );
    let trail = server
        .gql(
            &auditor,
            "query($id: String!, $p: String) { auditTrail(correlationId: $id, atLeast: $p) { entries { depth event { type stream correlationId } } caughtUp { through head complete } } }",
            json!({ "id": request_id.to_string(), "p": last }),
        )
        .await;
    let nodes = trail["auditTrail"]["entries"].as_array().unwrap();
    let caught_up = &trail["auditTrail"]["caughtUp"];
    assert!(
        caught_up["through"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= last.parse::<u64>().unwrap(),
        "{trail}"
    );
    assert_eq!(nodes[0]["event"]["type"], "CustomerTurnRecorded", "{trail}");
    if workers {
        // What the workers did in reaction carries the request's correlation id too: the
        // auditor follows one customer request through the bot and triage.
        let caused: Vec<(&str, i64)> = nodes
            .iter()
            .map(|n| {
                (
                    n["event"]["type"].as_str().unwrap(),
                    n["depth"].as_i64().unwrap(),
                )
            })
            .collect();
        for reaction in ["EmotionAssessed", "BotTurnRecorded", "ScenarioPredicted"] {
            assert!(
                caused.contains(&(reaction, 1)),
                "{reaction} under the turn: {trail}"
            );
        }
    }
    assert!(
        nodes
            .iter()
            .all(|n| n["event"]["correlationId"] == request_id.to_string())
    );

    // The bot's degradation switch, flipped by an admin: a conversation started meanwhile goes
    // straight to the humans; flipped back, the next one starts with the bot again.
    let flip = "mutation($on: Boolean!) { setSwitch(switch: BOT, on: $on, reason: \"drill\") { position } }";
    server.gql(&admin, flip, json!({ "on": false })).await;
    let switches = server
        .gql(&analyst, "query { switches { switch on } }", json!({}))
        .await;
    assert!(
        switches["switches"]
            .as_array()
            .unwrap()
            .contains(&json!({ "switch": "BOT", "on": false })),
        "{switches}"
    );
    let degraded = server
        .gql(&customer_token, START, json!({ "channel": "WEB" }))
        .await["startConversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let history = stored_events(server, &auditor, &degraded).await;
    assert_eq!(history[1]["type"], "HandedToHuman", "{history:?}");
    assert_eq!(history[1]["payload"]["reason"], "bot_switched_off");
    server.gql(&admin, flip, json!({ "on": true })).await;
    let again = server
        .gql(&customer_token, START, json!({ "channel": "WEB" }))
        .await["startConversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let history = stored_events(server, &auditor, &again).await;
    assert!(
        history.iter().all(|e| e["type"] != "HandedToHuman"),
        "the bot is back: {history:?}"
    );

    refusals(
        server,
        &conversation,
        &queue,
        &customer_token,
        &agent_token,
        &analyst,
        &auditor,
        other_customer,
    )
    .await;
}

#[allow(clippy::too_many_arguments)]
async fn refusals(
    server: &Server,
    conversation: &str,
    queue: &str,
    customer: &str,
    agent: &str,
    analyst: &str,
    auditor: &str,
    other_customer: Uuid,
) {
    let stranger = server.token("customer", &other_customer.to_string(), &[]);
    let stream = format!("conversation-{conversation}");
    let before = stored_events(server, auditor, conversation).await.len();

    let cases: Vec<(&str, &str, Value, &str)> = vec![
        // Customers: no admin work, no one else's conversation.
        (
            customer,
            "mutation { defineQueue(input: {name: \"x\", categories: [\"x\"], firstResponseSecs: 1, resolutionSecs: 2}) { id } }",
            json!({}),
            "FORBIDDEN",
        ),
        (
            &stranger,
            SEND,
            json!({ "c": conversation, "t": "hello?" }),
            "NOT_FOUND",
        ),
        (
            &stranger,
            "query($c: String!) { myConversation(id: $c) { uuid } }",
            json!({ "c": conversation }),
            "NOT_FOUND",
        ),
        (
            &stranger,
            "query($c: ID!) { node(id: $c) { id } }",
            json!({ "c": format!("Conversation:{conversation}") }),
            "NOT_FOUND",
        ),
        // The desk's views are not the customer's.
        (
            customer,
            "query($c: String!) { conversation(id: $c) { uuid } }",
            json!({ "c": conversation }),
            "FORBIDDEN",
        ),
        (
            customer,
            "query { tickets { totalCount } }",
            json!({}),
            "FORBIDDEN",
        ),
        (
            customer,
            "query { stats(group: DAY) { key } }",
            json!({}),
            "FORBIDDEN",
        ),
        (
            agent,
            "mutation($q: String!) { changeQueue(queueId: $q, priority: 1) { position } }",
            json!({ "q": queue }),
            "FORBIDDEN",
        ),
        (
            agent,
            "mutation { setSwitch(switch: BOT, on: false, reason: \"x\") { position } }",
            json!({}),
            "FORBIDDEN",
        ),
        (
            agent,
            "query { forecast { hours { expected } } }",
            json!({}),
            "FORBIDDEN",
        ),
        (
            analyst,
            "query { forecast(serviceLevel: 1.5) { hours { expected } } }",
            json!({}),
            "VALIDATION",
        ),
        // Agents: no audit trail, no admin work, no other agent's workbench.
        (
            agent,
            "query($id: String!) { auditTrail(correlationId: $id) { entries { depth } } }",
            json!({ "id": Uuid::now_v7().to_string() }),
            "FORBIDDEN",
        ),
        (
            agent,
            "mutation { registerAgent(name: \"x\", skills: [], maxConcurrent: 1) { id } }",
            json!({}),
            "FORBIDDEN",
        ),
        (
            agent,
            "query($a: String) { workbench(agent: $a) { freeSeats } }",
            json!({ "a": Uuid::now_v7().to_string() }),
            "FORBIDDEN",
        ),
        // Analysts and auditors are read-only.
        (
            analyst,
            SEND,
            json!({ "c": conversation, "t": "x" }),
            "FORBIDDEN",
        ),
        (
            analyst,
            "query($s: String!) { streamEvents(stream: $s) { version } }",
            json!({ "s": stream }),
            "FORBIDDEN",
        ),
        (
            auditor,
            "mutation($c: String!) { closeConversation(conversationId: $c) { position } }",
            json!({ "c": conversation }),
            "FORBIDDEN",
        ),
        (
            auditor,
            "query { search(text: \"快递\") { totalCount } }",
            json!({}),
            "FORBIDDEN",
        ),
        // Bad input is named.
        (
            customer,
            SEND,
            json!({ "c": conversation, "t": "长".repeat(2001) }),
            "VALIDATION",
        ),
        (
            customer,
            SEND,
            json!({ "c": "not-a-uuid", "t": "x" }),
            "VALIDATION",
        ),
        (
            customer,
            "query { myConversations(first: 1000) { edges { cursor } } }",
            json!({}),
            "VALIDATION",
        ),
        (customer, "query { nope }", json!({}), "VALIDATION"),
        // Deeper than the limit (12).
        (
            customer,
            "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } }",
            json!({}),
            "VALIDATION",
        ),
        // A closed conversation takes no more messages: a rule, not bad input.
        (
            customer,
            SEND,
            json!({ "c": conversation, "t": "还在吗" }),
            "CONFLICT",
        ),
        (
            agent,
            "mutation($c: String!, $q: String!) { routeConversation(conversationId: $c, queueId: $q) { position } }",
            json!({ "c": conversation, "q": queue }),
            "FORBIDDEN",
        ),
    ];
    for (token, query, variables, code) in cases {
        let (got, message) = server.gql_error(token, query, variables).await;
        assert_eq!(got, code, "{query}: {message}");
        assert!(!message.is_empty());
    }

    // No token, a forged token: 401 UNAUTHENTICATED.
    let (status, _, answer) = server
        .gql_full(None, &[], "query { me { role } }", json!({}))
        .await;
    assert_eq!(status, 401);
    assert_eq!(answer["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let forged = format!("{}x", &customer[..customer.len() - 1]);
    let (status, _, _) = server
        .gql_full(Some(&forged), &[], "query { me { role } }", json!({}))
        .await;
    assert_eq!(status, 401);

    // Nothing any refused request tried was written.
    let after = stored_events(server, auditor, conversation).await.len();
    assert_eq!(before, after, "a refused request wrote nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_day_on_the_embedded_store() {
    let server = Server::start(None, &[]);
    scripted_day(&server, true).await;
    probes_and_metrics(&server).await;
}

/// The same day by hand: no bot, a supervisor routes, the agent accepts and offers the survey.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_day_by_hand_on_the_embedded_store() {
    let server = Server::start(None, &["--workers", "none"]);
    scripted_day(&server, false).await;
}

async fn on_postgres(workers: bool) {
    let Some((schema, url)) = kefu_eventlog::testing::fresh_schema_url().await else {
        return;
    };
    {
        let extra: &[&str] = if workers { &[] } else { &["--workers", "none"] };
        let server = Server::start(Some(&url), extra);
        scripted_day(&server, workers).await;
    }
    kefu_eventlog::testing::drop_schema(&schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_day_on_postgres() {
    on_postgres(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_day_by_hand_on_postgres() {
    on_postgres(false).await;
}

async fn probes_and_metrics(server: &Server) {
    let (status, _, body) = server.http("GET", "/healthz", &[], "").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, _, body) = server.http("GET", "/readyz", &[], "").await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = server.http("GET", "/metrics", &[], "").await;
    assert_eq!(status, 401, "/metrics wants a token: {body}");
    let analyst = format!("Bearer {}", server.token("analyst", "bi", &[]));
    let (status, _, body) = server
        .http("GET", "/metrics", &[("Authorization", &analyst)], "")
        .await;
    assert_eq!(status, 200);
    for metric in [
        "kefu_graphql_requests_total{outcome=\"ok\"}",
        "kefu_graphql_request_duration_seconds_bucket",
        "kefu_events_appended_total",
        "kefu_projection_lag_events{projection=\"queues\"}",
        "kefu_queue_waiting{queue=",
        "kefu_worker_lag_events{worker=\"bot\"}",
        "kefu_search_up 1",
        "kefu_projections_up 1",
        "kefu_search_failures_total",
        "kefu_search_lag_events",
    ] {
        assert!(body.contains(metric), "{metric} missing from:\n{body}");
    }
    // The desk at the root, its assets beside it, GraphiQL at /graphiql.
    let (status, _, page) = server.http("GET", "/", &[], "").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("/assets/desk.js"),
        "the desk is served at /: {page}"
    );
    let (status, headers, _) = server.http("GET", "/assets/desk.js", &[], "").await;
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/javascript")),
        "{headers:?}"
    );
    let (status, _, body) = server.http("GET", "/graphiql", &[], "").await;
    assert_eq!(status, 200);
    assert!(body.contains("graphiql"), "GraphiQL is served at /graphiql");
    // A body over the limit (256 KiB by default) is refused before it is read.
    let huge = format!("{{\"query\": \"{}\"}}", "x".repeat(300 * 1024));
    let (status, _, _) = server
        .http(
            "POST",
            "/graphql",
            &[("Content-Type", "application/json")],
            &huge,
        )
        .await;
    assert_eq!(status, 413);
}

/// A token that spends its burst is refused with RATE_LIMITED and a Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_is_refused() {
    let server = Server::start(None, &["--rate-limit", "0.000001", "--rate-burst", "3"]);
    let token = server.token("analyst", "bi", &[]);
    for _ in 0..3 {
        server.gql(&token, "query { me { role } }", json!({})).await;
    }
    let (status, headers, answer) = server
        .gql_full(Some(&token), &[], "query { me { role } }", json!({}))
        .await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert!(headers.iter().any(|(k, _)| k == "retry-after"));
    // Another token has its own budget.
    let other = server.token("analyst", "bi-2", &[]);
    server.gql(&other, "query { me { role } }", json!({})).await;
}

/// A supervisor following their queues hears of an SLA breach: the sla worker escalates a chat
/// that waited past its first-response target, and `queueChanges` delivers the breach and the
/// escalation (both name the queue). Time is the drill clock's, moved by the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_hears_of_an_escalation() {
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    let write = |at: &str| {
        let next = clock.with_extension("next");
        std::fs::write(&next, at).unwrap();
        std::fs::rename(&next, &clock).unwrap();
    };
    write("2025-03-10T09:00:00Z");
    let server = Server::start(
        None,
        &[
            "--workers",
            "sla",
            "--sla-sweep-secs",
            "1",
            "--drill-clock-file",
            clock.to_str().unwrap(),
        ],
    );
    let admin = server.token("admin", "ops", &[]);
    let q = server
        .gql(
            &admin,
            "mutation { defineQueue(input: {name: \"售后 after-sales\", categories: [\"logistics\"], skills: [\"after-sales\"], firstResponseSecs: 60, resolutionSecs: 3600}) { id } }",
            json!({}),
        )
        .await;
    let queue = q["defineQueue"]["id"].as_str().unwrap().to_owned();
    let supervisor = server.token("supervisor", "lead-1", &[&queue]);
    let mut feed = server
        .subscribe(
            &supervisor,
            "subscription { queueChanges { type stream payload } }",
            json!({}),
        )
        .await;
    let customer = server.token("customer", &Uuid::now_v7().to_string(), &[]);
    let started = server
        .gql(&customer, START, json!({ "channel": "APP" }))
        .await;
    let conversation = started["startConversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .gql(
            &customer,
            "mutation($c: String!) { requestHuman(conversationId: $c) { position } }",
            json!({ "c": conversation }),
        )
        .await;
    server
        .gql(
            &supervisor,
            "mutation($c: String!, $q: String!) { routeConversation(conversationId: $c, queueId: $q) { position } }",
            json!({ "c": conversation, "q": queue }),
        )
        .await;
    until(&mut feed, "queueChanges", "ConversationQueued").await;
    // Nobody takes it; two minutes pass.
    write("2025-03-10T09:02:00Z");
    let breach = until(&mut feed, "queueChanges", "SlaBreached").await;
    assert_eq!(breach["payload"]["kind"], "first_response", "{breach}");
    let escalated = until(&mut feed, "queueChanges", "ConversationEscalated").await;
    assert_eq!(
        escalated["stream"],
        format!("conversation-{conversation}"),
        "{escalated}"
    );
    assert_eq!(escalated["payload"]["queue"], queue.as_str(), "{escalated}");
    assert_eq!(
        escalated["payload"]["to_priority"].as_u64().unwrap() + 1,
        escalated["payload"]["from_priority"].as_u64().unwrap(),
        "{escalated}"
    );
}

/// Each audience reads its own typed view: the desk sees internal notes, triage, routing and
/// private ticket comments; the customer's view of the same conversation and ticket carries
/// none of them, and shows their place in line and expected wait while queued. `node(id:)`
/// answers each with their view; listings count their nodes.
#[tokio::test]
async fn customers_and_the_desk_read_different_views() {
    let server = Server::start(None, &["--workers", "none"]);
    let (customer, agent) = (Uuid::now_v7(), Uuid::now_v7());
    let admin = server.token("admin", "ops", &[]);
    let queue = server
        .gql(
            &admin,
            "mutation { defineQueue(input: {name: \"售后\", categories: [\"logistics\"], skills: [\"after-sales\"], firstResponseSecs: 60, resolutionSecs: 3600}) { id } }",
            json!({}),
        )
        .await["defineQueue"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .gql(
            &admin,
            "mutation($a: String!) { registerAgent(agentId: $a, name: \"小王\", skills: [\"after-sales\"], maxConcurrent: 2) { id } }",
            json!({ "a": agent.to_string() }),
        )
        .await;
    let customer_token = server.token("customer", &customer.to_string(), &[]);
    let agent_token = server.token("agent", &agent.to_string(), &[]);
    let supervisor = server.token("supervisor", "lead", &[&queue]);
    let conversation = server
        .gql(&customer_token, START, json!({ "channel": "WEB" }))
        .await["startConversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = json!({ "c": conversation });
    server
        .gql(
            &customer_token,
            SEND,
            json!({ "c": conversation, "t": "快递丢了" }),
        )
        .await;
    server
        .gql(
            &customer_token,
            "mutation($c: String!) { requestHuman(conversationId: $c) { position } }",
            c.clone(),
        )
        .await;
    let routed = server
        .gql(
            &supervisor,
            "mutation($c: String!, $q: String!) { routeConversation(conversationId: $c, queueId: $q) { position } }",
            json!({ "c": conversation, "q": queue }),
        )
        .await;
    let line = "query($c: String!, $p: String) { myConversation(id: $c, atLeast: $p) { status placeInLine expectedWaitSecs } }";
    // Queued with no agent online: first in line, and no wait can be promised.
    let waiting = server
        .gql(
            &customer_token,
            line,
            json!({ "c": conversation, "p": position(&routed["routeConversation"]) }),
        )
        .await;
    assert_eq!(
        waiting["myConversation"],
        json!({ "status": "QUEUED", "placeInLine": 1, "expectedWaitSecs": null }),
        "{waiting}"
    );
    let online = server
        .gql(
            &agent_token,
            "mutation { setAgentStatus(status: ONLINE) { position } }",
            json!({}),
        )
        .await;
    let waiting = server
        .gql(
            &customer_token,
            line,
            json!({ "c": conversation, "p": position(&online["setAgentStatus"]) }),
        )
        .await;
    assert_eq!(
        waiting["myConversation"],
        json!({ "status": "QUEUED", "placeInLine": 1, "expectedWaitSecs": 0 }),
        "an agent with a free seat is online: {waiting}"
    );
    server
        .gql(
            &agent_token,
            "mutation($c: String!) { acceptConversation(conversationId: $c) { position } }",
            c.clone(),
        )
        .await;
    server
        .gql(
            &agent_token,
            "mutation($c: String!) { addNote(conversationId: $c, text: \"内部：疑似刷单\") { position } }",
            c.clone(),
        )
        .await;
    let replied = server
        .gql(
            &agent_token,
            SEND,
            json!({ "c": conversation, "t": "已为您补发" }),
        )
        .await;
    let at = position(&replied["sendMessage"]);

    // The desk: the note, the hand-off and the routing decision, typed.
    let desk = server
        .gql(
            &agent_token,
            "query($c: String!, $p: String) { conversation(id: $c, atLeast: $p) { id status handoffReason turns { speaker text internal } timeline { kind handoffReason routing { queue reasons { kind } } } } }",
            json!({ "c": conversation, "p": at }),
        )
        .await["conversation"]
        .clone();
    assert_eq!(desk["id"], format!("Conversation:{conversation}"));
    assert_eq!(desk["status"], "WITH_AGENT");
    assert_eq!(desk["handoffReason"], "CUSTOMER_ASKED");
    assert!(
        desk["turns"]
            .as_array()
            .unwrap()
            .contains(&json!({ "speaker": "AGENT", "text": "内部：疑似刷单", "internal": true })),
        "{desk}"
    );
    let timeline = desk["timeline"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .any(|t| t["kind"] == "ROUTING_DECIDED" && t["routing"]["queue"] == queue.as_str()),
        "{desk}"
    );
    assert!(
        timeline
            .iter()
            .any(|t| t["kind"] == "HANDED_TO_HUMAN" && t["handoffReason"] == "CUSTOMER_ASKED"),
        "{desk}"
    );

    // The customer: their turns and the agent's reply, never the note.
    let mine = server
        .gql(
            &customer_token,
            "query($c: String!) { myConversation(id: $c) { status placeInLine turns { speaker text } } }",
            c.clone(),
        )
        .await;
    assert_eq!(
        mine["myConversation"],
        json!({
            "status": "WITH_AGENT",
            "placeInLine": null,
            "turns": [
                { "speaker": "CUSTOMER", "text": "快递丢了" },
                { "speaker": "AGENT", "text": "已为您补发" },
            ],
        }),
        "{mine}"
    );

    // node(id:) answers each audience with its own view of the same global id.
    let node = "query($id: ID!) { node(id: $id) { __typename id } }";
    let global = format!("Conversation:{conversation}");
    for (token, typename) in [
        (&agent_token, "Conversation"),
        (&customer_token, "CustomerConversation"),
    ] {
        let found = server.gql(token, node, json!({ "id": global })).await;
        assert_eq!(
            found["node"],
            json!({ "__typename": typename, "id": global }),
            "{found}"
        );
    }
    let me = server
        .gql(
            &agent_token,
            node,
            json!({ "id": format!("Agent:{agent}") }),
        )
        .await;
    assert_eq!(me["node"]["__typename"], "Agent", "{me}");
    let (code, _) = server
        .gql_error(
            &agent_token,
            node,
            json!({ "id": format!("Agent:{}", Uuid::now_v7()) }),
        )
        .await;
    assert_eq!(code, "NOT_FOUND", "another agent is not the agent's to see");

    // A ticket with a public and a private comment, and a priority change.
    let ticket = server
        .gql(
            &agent_token,
            "mutation($cu: String!, $c: String!) { openTicket(input: {customer: $cu, conversationId: $c, kind: DELIVERY, subject: \"补发\", description: \"快递丢失\"}) { id } }",
            json!({ "cu": customer.to_string(), "c": conversation }),
        )
        .await["openTicket"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let comment = "mutation($t: String!, $b: String!, $p: Boolean!) { commentTicket(ticketId: $t, body: $b, public: $p) { position } }";
    server
        .gql(
            &agent_token,
            comment,
            json!({ "t": ticket, "b": "补发单已提交", "p": true }),
        )
        .await;
    server
        .gql(
            &agent_token,
            comment,
            json!({ "t": ticket, "b": "客户历史投诉多，注意", "p": false }),
        )
        .await;
    let changed = server
        .gql(
            &agent_token,
            "mutation($t: String!) { updateTicket(ticketId: $t, priority: HIGH) { position } }",
            json!({ "t": ticket }),
        )
        .await;
    let at = position(&changed["updateTicket"]);
    let desk = server
        .gql(
            &agent_token,
            "query($t: String!, $p: String) { ticket(id: $t, atLeast: $p) { priority comments { body public } history { kind field before { priority } after { priority } } } }",
            json!({ "t": ticket, "p": at }),
        )
        .await["ticket"]
        .clone();
    assert_eq!(desk["priority"], "HIGH");
    assert_eq!(
        desk["comments"],
        json!([
            { "body": "补发单已提交", "public": true },
            { "body": "客户历史投诉多，注意", "public": false },
        ])
    );
    assert!(
        desk["history"].as_array().unwrap().contains(&json!({
            "kind": "FIELD_CHANGED",
            "field": "PRIORITY",
            "before": { "priority": "NORMAL" },
            "after": { "priority": "HIGH" },
        })),
        "{desk}"
    );
    let mine = server
        .gql(
            &customer_token,
            "query($t: String!) { myTicket(id: $t) { status comments { author body } } }",
            json!({ "t": ticket }),
        )
        .await;
    assert_eq!(
        mine["myTicket"],
        json!({ "status": "NEW", "comments": [{ "author": "AGENT", "body": "补发单已提交" }] }),
        "{mine}"
    );

    // Listings count their nodes, whatever the page.
    let listed = server
        .gql(
            &customer_token,
            "query { myTickets(first: 1) { totalCount edges { node { uuid } } } myConversations(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed,
        json!({
            "myTickets": { "totalCount": 1, "edges": [{ "node": { "uuid": ticket } }] },
            "myConversations": { "totalCount": 1 },
        })
    );
    let desk_list = server
        .gql(
            &agent_token,
            "query { conversations(first: 1) { totalCount edges { node { uuid turnCount } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        desk_list["conversations"],
        json!({ "totalCount": 1, "edges": [{ "node": { "uuid": conversation, "turnCount": 2 } }] }),
        "{desk_list}"
    );
}
