//! The access policy against a real `kefu serve` (embedded store, no workers, no rate limit):
//!
//! - the role matrix, generated from `schemas/schema.graphql`: every root field, called with
//!   arguments built from its signature, by every role, with no token, with a forged and with
//!   an expired token; each cell is allowed or refused with its code, a refused cell wrote
//!   nothing (the log head did not move), and an operation this file has no expectation for
//!   fails the test, so a new field cannot ship unreviewed;
//! - the scope cells: an agent on another queue's conversation, search and queues; a
//!   supervisor on an agent outside their queues; a customer on another's ticket; a request
//!   with one refused mutation among allowed ones; a subscription whose chat is transferred
//!   away.

mod server;

use std::collections::HashMap;

use async_graphql::parser::types::{
    BaseType, InputValueDefinition, Type, TypeKind, TypeSystemDefinition,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use server::Server;
use uuid::Uuid;

/// Who may run each operation (space-separated roles); everyone else is refused with
/// `FORBIDDEN`. This is the test's own statement of the README's role table.
const EXPECTED: &[(&str, &str)] = &[
    (
        "Query.me",
        "customer agent supervisor analyst auditor admin integration",
    ),
    ("Query.node", "customer agent supervisor analyst admin"),
    ("Query.conversation", "agent supervisor"),
    ("Query.conversations", "agent supervisor"),
    ("Query.myConversation", "customer"),
    ("Query.myConversations", "customer"),
    ("Query.queues", "agent supervisor analyst admin"),
    ("Query.workbench", "agent supervisor admin"),
    ("Query.tickets", "agent supervisor admin"),
    ("Query.ticket", "agent supervisor admin"),
    ("Query.myTicket", "customer"),
    ("Query.myTickets", "customer"),
    ("Query.stats", "supervisor analyst admin"),
    ("Query.search", "agent supervisor analyst admin"),
    ("Query.forecast", "supervisor analyst admin"),
    ("Query.whatIf", "supervisor analyst admin"),
    ("Query.switches", "agent supervisor analyst admin"),
    ("Query.faults", "admin"),
    ("Query.probeRuns", "supervisor analyst admin"),
    ("Query.auditTrail", "auditor"),
    ("Query.streamEvents", "auditor"),
    ("Mutation.startConversation", "customer"),
    ("Mutation.sendMessage", "customer agent"),
    ("Mutation.confirmScenario", "customer"),
    ("Mutation.requestHuman", "customer"),
    ("Mutation.routeConversation", "supervisor admin"),
    ("Mutation.acceptConversation", "agent"),
    ("Mutation.assignConversation", "supervisor"),
    ("Mutation.transferConversation", "agent"),
    ("Mutation.addNote", "agent"),
    ("Mutation.closeConversation", "customer agent"),
    ("Mutation.reopenConversation", "customer agent"),
    ("Mutation.offerSurvey", "agent"),
    ("Mutation.answerSurvey", "customer"),
    ("Mutation.openTicket", "agent"),
    ("Mutation.updateTicket", "agent supervisor"),
    ("Mutation.commentTicket", "agent supervisor"),
    ("Mutation.defineQueue", "admin"),
    ("Mutation.changeQueue", "admin"),
    ("Mutation.setFault", "admin"),
    ("Mutation.setSwitch", "admin"),
    ("Mutation.retireQueue", "admin"),
    ("Mutation.registerAgent", "admin"),
    ("Mutation.changeAgent", "supervisor admin"),
    ("Mutation.setAgentStatus", "agent supervisor admin"),
    ("Mutation.createKnowledgeEntry", "admin"),
    ("Mutation.editKnowledgeEntry", "admin"),
    ("Mutation.retireKnowledgeEntry", "admin"),
    ("Mutation.recordOrder", "integration"),
    ("Mutation.recordCustomerProfile", "integration"),
    (
        "Subscription.conversationTurns",
        "customer agent supervisor",
    ),
    (
        "Subscription.conversationEvents",
        "customer agent supervisor",
    ),
    ("Subscription.queueChanges", "agent supervisor"),
    ("Subscription.ticketUpdates", "agent supervisor admin"),
];

/// One root field as the schema declares it.
struct Operation {
    root: &'static str,
    field: String,
    /// The whole document: `mutation { field(args) { __typename } }`.
    document: String,
}

/// The schema's named types, for building argument values and selections.
type Types = HashMap<String, TypeKind>;

/// A value for argument `name` of type `ty`, inside the range the request boundary allows
/// (so each cell reaches the access check), and harmless where it is accepted (no added
/// latency, no error rate, a switch turned on, fresh ids that name nothing).
fn literal(name: &str, ty: &Type, types: &Types) -> String {
    let BaseType::Named(ty_name) = &ty.base else {
        return "[]".into();
    };
    match ty_name.as_str() {
        // The short form: a UUID where one is read, and within every string limit.
        "String" | "ID" => format!("\"{}\"", Uuid::now_v7().simple()),
        "Int" if name == "latencyMs" => "0".into(),
        "Int" => "1".into(),
        "Float" if name == "errorRate" => "0.0".into(),
        "Float" if name == "serviceLevel" => "0.5".into(),
        "Float" => "1.0".into(),
        "Boolean" => "true".into(),
        "DateTime" => "\"2026-01-01T00:00:00Z\"".into(),
        other => match types.get(other) {
            Some(TypeKind::Enum(e)) => e.values[0].node.value.node.to_string(),
            Some(TypeKind::InputObject(o)) => {
                format!("{{{}}}", arguments(&o.fields, types))
            }
            _ => "\"x\"".into(),
        },
    }
}

/// The required arguments (non-null, no default), as `name: value, …`.
fn arguments(args: &[async_graphql::Positioned<InputValueDefinition>], types: &Types) -> String {
    args.iter()
        .filter(|a| !a.node.ty.node.nullable && a.node.default_value.is_none())
        .map(|a| {
            format!(
                "{}: {}",
                a.node.name.node,
                literal(&a.node.name.node, &a.node.ty.node, types)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(n) => n.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

/// Every root field of `schemas/schema.graphql`, with a document that calls it.
fn operations() -> Vec<Operation> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/schema.graphql");
    let sdl = std::fs::read_to_string(path).expect("schemas/schema.graphql");
    let doc = async_graphql::parser::parse_schema(&sdl).expect("the schema parses");
    let types: Types = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            TypeSystemDefinition::Type(t) => {
                Some((t.node.name.node.to_string(), t.node.kind.clone()))
            }
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for (root, keyword) in [
        ("Query", "query"),
        ("Mutation", "mutation"),
        ("Subscription", "subscription"),
    ] {
        let Some(TypeKind::Object(o)) = types.get(root) else {
            panic!("the schema has no {root} type");
        };
        for f in &o.fields {
            let f = &f.node;
            let args = arguments(&f.arguments, &types);
            let args = if args.is_empty() {
                String::new()
            } else {
                format!("({args})")
            };
            let selection = match types.get(named(&f.ty.node)) {
                Some(TypeKind::Object(_) | TypeKind::Interface(_) | TypeKind::Union(_)) => {
                    " { __typename }"
                }
                _ => "",
            };
            out.push(Operation {
                root,
                field: f.name.node.to_string(),
                document: format!("{keyword} {{ {}{args}{selection} }}", f.name.node),
            });
        }
    }
    out
}

/// The log's head position, as `/metrics` reports it.
async fn head(server: &Server) -> u64 {
    let bearer = format!("Bearer {}", server.token("admin", "metrics", &[]));
    let (status, _, body) = server
        .http("GET", "/metrics", &[("Authorization", &bearer)], "")
        .await;
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix("kefu_log_head_position "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no kefu_log_head_position in:\n{body}"))
}

/// What the "wrote nothing" checks compare: the log head on the embedded store, whose
/// positions count this store's events. PostgreSQL positions are transaction ids that any
/// other database activity moves, so there the checks compare nothing (the decisions
/// themselves are still asserted).
async fn written(server: &Server, exact: bool) -> u64 {
    if exact { head(server).await } else { 0 }
}

/// A correctly signed token that expired an hour ago.
fn expired_token() -> String {
    let now = chrono::Utc::now().timestamp();
    let header = B64.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = B64.encode(
        json!({"sub": "ops", "role": "admin", "exp": now - 3600, "iat": now - 7200}).to_string(),
    );
    let input = format!("{header}.{claims}");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(server::SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

struct Desk {
    queue_a: String,
    queue_b: String,
    agent_a: Uuid,
    agent_b: Uuid,
    agent_a2: Uuid,
    conversation: String,
    /// A word only the conversation holds, for search.
    word: String,
    tokens: HashMap<&'static str, String>,
}

/// Two queues (skills a and b) with a supervisor each, an agent for each and a second agent
/// for a; a customer's conversation waiting in queue a.
async fn desk(server: &Server) -> Desk {
    let admin = server.token("admin", "ops", &[]);
    let define = |name: &str, skill: &str| {
        format!(
            "mutation {{ defineQueue(input: {{name: \"{name}\", categories: [\"logistics\"], skills: [\"{skill}\"], firstResponseSecs: 60, resolutionSecs: 3600}}) {{ id }} }}"
        )
    };
    let queue_a = server.gql(&admin, &define("a", "a"), json!({})).await["defineQueue"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let queue_b = server.gql(&admin, &define("b", "b"), json!({})).await["defineQueue"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (agent_a, agent_b, agent_a2) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for (agent, skill) in [(agent_a, "a"), (agent_b, "b"), (agent_a2, "a")] {
        server
            .gql(
                &admin,
                "mutation($a: String!, $s: [String!]!) { registerAgent(agentId: $a, name: \"x\", skills: $s, maxConcurrent: 3) { id } }",
                json!({ "a": agent.to_string(), "s": [skill] }),
            )
            .await;
        server
            .gql(
                &server.token("agent", &agent.to_string(), &[]),
                "mutation { setAgentStatus(status: ONLINE) { position } }",
                json!({}),
            )
            .await;
    }
    let customer = Uuid::now_v7();
    let customer_token = server.token("customer", &customer.to_string(), &[]);
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
    let word = "zebracrossing";
    server
        .gql(
            &customer_token,
            "mutation($c: String!, $t: String!) { sendMessage(conversationId: $c, text: $t) { id } }",
            json!({ "c": conversation, "t": format!("my parcel {word} is lost") }),
        )
        .await;
    server
        .gql(
            &customer_token,
            "mutation($c: String!) { requestHuman(conversationId: $c) { position } }",
            json!({ "c": conversation }),
        )
        .await;
    let supervisor_a = server.token("supervisor", "lead-a", &[&queue_a]);
    server
        .gql(
            &supervisor_a,
            "mutation($c: String!, $q: String!) { routeConversation(conversationId: $c, queueId: $q) { position } }",
            json!({ "c": conversation, "q": queue_a }),
        )
        .await;
    let tokens = HashMap::from([
        ("customer", customer_token),
        (
            "other customer",
            server.token("customer", &Uuid::now_v7().to_string(), &[]),
        ),
        ("agent", server.token("agent", &agent_a.to_string(), &[])),
        ("agent b", server.token("agent", &agent_b.to_string(), &[])),
        (
            "agent a2",
            server.token("agent", &agent_a2.to_string(), &[]),
        ),
        ("supervisor", supervisor_a),
        (
            "supervisor b",
            server.token("supervisor", "lead-b", &[&queue_b]),
        ),
        ("analyst", server.token("analyst", "bi", &[])),
        ("auditor", server.token("auditor", "audit", &[])),
        ("admin", admin),
        ("integration", server.token("integration", "orders", &[])),
    ]);
    Desk {
        queue_a,
        queue_b,
        agent_a,
        agent_b,
        agent_a2,
        conversation,
        word: word.into(),
        tokens,
    }
}

fn policy_refusal(answer: &Value) -> Option<&Value> {
    answer["errors"]
        .as_array()?
        .iter()
        .find(|e| !e["extensions"]["field"].is_null())
}

/// Two root fields per mutation, above the default of one, so that the policy's judgement of
/// a whole mutation request is tested too.
const SERVE: [&str; 6] = [
    "--workers",
    "none",
    "--rate-limit",
    "0",
    "--max-root-mutations",
    "2",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_times_every_operation() {
    matrix(&Server::start(None, &SERVE), true).await;
}

/// The same on PostgreSQL, whose SQL the scoped listings also run on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_times_every_operation_on_postgres() {
    let Some((schema, url)) = kefu_eventlog::testing::fresh_schema_url().await else {
        return;
    };
    matrix(&Server::start(Some(&url), &SERVE), false).await;
    kefu_eventlog::testing::drop_schema(&schema).await;
}

async fn matrix(server: &Server, exact: bool) {
    let desk = desk(server).await;
    let expected: HashMap<&str, Vec<&str>> = EXPECTED
        .iter()
        .map(|(op, roles)| (*op, roles.split(' ').collect()))
        .collect();
    let operations = operations();
    let unreviewed: Vec<String> = operations
        .iter()
        .map(|o| format!("{}.{}", o.root, o.field))
        .filter(|op| !expected.contains_key(op.as_str()))
        .collect();
    assert!(
        unreviewed.is_empty(),
        "operations with no expected cell in this matrix (nor, likely, in the policy): {unreviewed:?}"
    );

    let roles = [
        "customer",
        "agent",
        "supervisor",
        "analyst",
        "auditor",
        "admin",
        "integration",
    ];
    let (mut cells, mut ws_cells) = (0, 0);
    for role in roles {
        let token = &desk.tokens[role];
        let (refused, allowed): (Vec<&Operation>, Vec<&Operation>) = operations
            .iter()
            .partition(|o| !expected[format!("{}.{}", o.root, o.field).as_str()].contains(&role));
        // Refused cells first, with the log head read around them: none of them writes.
        let before = written(server, exact).await;
        for op in &refused {
            let (status, _, answer) = server
                .gql_full(Some(token), &[], &op.document, json!({}))
                .await;
            let error = policy_refusal(&answer)
                .unwrap_or_else(|| panic!("a {role} ran {}: {status} {answer}", op.document));
            assert_eq!(error["extensions"]["code"], "FORBIDDEN", "{answer}");
            assert_eq!(
                error["extensions"]["field"],
                format!("{}.{}", op.root, op.field),
                "{answer}"
            );
            assert!(answer["data"].is_null(), "{answer}");
            assert_eq!(status, 403, "{answer}");
            cells += 1;
        }
        // The same cells over WebSocket, where every operation passes the same boundary.
        for op in &refused {
            let mut ws = server.subscribe(token, &op.document, json!({})).await;
            let m = ws.next().await;
            let answer = if m["type"] == "error" {
                json!({ "errors": m["payload"] })
            } else {
                m.clone()
            };
            let error = policy_refusal(&answer)
                .unwrap_or_else(|| panic!("a {role} ran {} over WebSocket: {m}", op.document));
            assert_eq!(error["extensions"]["code"], "FORBIDDEN", "{m}");
            assert_eq!(
                error["extensions"]["field"],
                format!("{}.{}", op.root, op.field),
                "{m}"
            );
            ws_cells += 1;
        }
        assert_eq!(
            written(server, exact).await,
            before,
            "a refused {role} cell wrote"
        );
        for op in allowed {
            let (status, _, answer) = server
                .gql_full(Some(token), &[], &op.document, json!({}))
                .await;
            assert!(
                policy_refusal(&answer).is_none() && status == 200,
                "a {role} should be let run {}: {status} {answer}",
                op.document
            );
            // Whatever the resolver then said (bad or unknown ids are expected), it said it
            // with a code.
            for e in answer["errors"].as_array().into_iter().flatten() {
                assert!(e["extensions"]["code"].is_string(), "{answer}");
            }
            cells += 1;
        }
    }

    // No token, a forged token and an expired one: every operation is 401 UNAUTHENTICATED.
    let admin = &desk.tokens["admin"];
    let forged = format!("{}x", &admin[..admin.len() - 1]);
    let expired = expired_token();
    let before = written(server, exact).await;
    for (who, token) in [
        ("no token", None),
        ("a forged token", Some(forged.as_str())),
        ("an expired token", Some(expired.as_str())),
    ] {
        for op in &operations {
            let (status, _, answer) = server.gql_full(token, &[], &op.document, json!({})).await;
            assert_eq!(status, 401, "{who}: {} answered {answer}", op.document);
            assert_eq!(
                answer["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
                "{answer}"
            );
            cells += 1;
        }
    }
    assert_eq!(
        written(server, exact).await,
        before,
        "an unauthenticated cell wrote"
    );
    assert_eq!(cells, operations.len() * (roles.len() + 3));
    assert!(
        ws_cells > operations.len(),
        "{ws_cells} refused cells over WebSocket"
    );
    scopes(server, &desk, exact).await;
}

/// The scope cells, on the same desk.
async fn scopes(server: &Server, desk: &Desk, exact: bool) {
    let t = |who: &str| desk.tokens[who].as_str();
    let c = desk.conversation.as_str();
    let read = "query($c: String!, $p: String) { conversation(id: $c, atLeast: $p) { uuid } }";
    // Everything so far is in the read models and the index before they are read.
    let at = head(server).await.to_string();

    // An agent of another queue cannot read the conversation waiting in queue a...
    let (code, _) = server
        .gql_error(t("agent b"), read, json!({ "c": c }))
        .await;
    assert_eq!(code, "NOT_FOUND");
    server
        .gql(t("agent"), read, json!({ "c": c, "p": at }))
        .await;
    let (code, _) = server
        .gql_error(t("supervisor b"), read, json!({ "c": c }))
        .await;
    assert_eq!(code, "NOT_FOUND");
    server
        .gql(t("supervisor"), read, json!({ "c": c, "p": at }))
        .await;

    // ...nor see queue a in the queues, nor find the conversation by search, totals included.
    let list = "query($p: String) { queues(atLeast: $p) { totalCount nodes { uuid waiting { conversation } } } }";
    let queues = server.gql(t("agent b"), list, json!({ "p": at })).await;
    let text = queues.to_string();
    assert!(
        text.contains(&desk.queue_b) && !text.contains(&desk.queue_a) && !text.contains(c),
        "{text}"
    );
    let queues = server.gql(t("agent"), list, json!({ "p": at })).await;
    let text = queues.to_string();
    assert!(
        text.contains(&desk.queue_a) && text.contains(c) && !text.contains(&desk.queue_b),
        "{text}"
    );
    let search = format!(
        "query {{ search(text: \"{}\", atLeast: \"{at}\") {{ totalCount edges {{ node {{ conversation }} }} }} }}",
        desk.word
    );
    // The analyst sees everything: the index has the conversation.
    let all = server.gql(t("analyst"), &search, json!({})).await;
    assert!(all["search"]["totalCount"].as_i64().unwrap() > 0, "{all}");
    for who in ["agent b", "supervisor b"] {
        let found = server.gql(t(who), &search, json!({})).await;
        assert_eq!(found["search"]["totalCount"], 0, "{who}: {found}");
        assert_eq!(found["search"]["edges"], json!([]), "{who}: {found}");
    }
    for who in ["agent", "supervisor"] {
        let found = server.gql(t(who), &search, json!({})).await;
        assert!(
            found["search"]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["node"]["conversation"] == c),
            "{who}: {found}"
        );
    }

    // A supervisor acts only on the agents serving their queues.
    let bench = "query($a: String) { workbench(agent: $a) { freeSeats } }";
    let a = desk.agent_a.to_string();
    server.gql(t("supervisor"), bench, json!({ "a": a })).await;
    let before = written(server, exact).await;
    for (query, vars) in [
        (bench, json!({ "a": a })),
        (
            "mutation($a: String!) { changeAgent(agentId: $a, maxConcurrent: 5) { position } }",
            json!({ "a": a }),
        ),
        (
            "mutation($a: String) { setAgentStatus(agentId: $a, status: AWAY) { position } }",
            json!({ "a": a }),
        ),
    ] {
        let (code, message) = server.gql_error(t("supervisor b"), query, vars).await;
        assert_eq!(code, "NOT_FOUND", "{query}: {message}");
    }
    // Nor may they hand their agent another queue's skill.
    let (code, message) = server
        .gql_error(
            t("supervisor"),
            "mutation($a: String!) { changeAgent(agentId: $a, skills: [\"a\", \"b\"]) { position } }",
            json!({ "a": a }),
        )
        .await;
    assert!(
        code == "FORBIDDEN" && message.contains("skills: "),
        "{code}: {message}"
    );
    assert_eq!(
        written(server, exact).await,
        before,
        "a refused supervisor wrote"
    );
    let b = desk.agent_b.to_string();
    server
        .gql(
            t("supervisor b"),
            "mutation($a: String) { setAgentStatus(agentId: $a, status: ONLINE) { position } }",
            json!({ "a": b }),
        )
        .await;

    // A customer sees their own tickets only.
    let customer = server
        .gql(t("customer"), "query { me { id } }", json!({}))
        .await["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let opened = server
        .gql(
            t("agent"),
            "mutation($c: String!) { openTicket(input: {customer: $c, kind: COMPLAINT, subject: \"s\", description: \"d\"}) { id position } }",
            json!({ "c": customer }),
        )
        .await["openTicket"]
        .clone();
    let ticket = opened["id"].as_str().unwrap().to_owned();
    let opened_at = opened["position"].clone();
    let see = "query($t: String!, $p: String) { ticket(id: $t, atLeast: $p) { uuid } }";
    // A customer reads their own view of it; another customer finds nothing.
    let mine = "query($t: String!, $p: String) { myTicket(id: $t, atLeast: $p) { status } }";
    server
        .gql(t("customer"), mine, json!({ "t": ticket, "p": opened_at }))
        .await;
    let (code, _) = server
        .gql_error(
            t("other customer"),
            mine,
            json!({ "t": ticket, "p": opened_at }),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    // Agents see the tickets assigned to or opened by them, supervisors those of the agents
    // serving their queues; outside that, a ticket is as unknown, to read, list or change.
    for who in ["agent", "supervisor", "admin"] {
        server
            .gql(t(who), see, json!({ "t": ticket, "p": opened_at }))
            .await;
    }
    let before = written(server, exact).await;
    for who in ["agent b", "supervisor b"] {
        let (code, _) = server
            .gql_error(t(who), see, json!({ "t": ticket, "p": opened_at }))
            .await;
        assert_eq!(code, "NOT_FOUND", "{who}");
        let (code, _) = server
            .gql_error(
                t(who),
                "mutation($t: String!) { updateTicket(ticketId: $t, priority: HIGH) { position } }",
                json!({ "t": ticket, "p": opened_at }),
            )
            .await;
        assert_eq!(code, "NOT_FOUND", "{who}");
    }
    assert_eq!(
        written(server, exact).await,
        before,
        "a refused ticket change wrote"
    );
    let list = "query($p: String) { tickets(atLeast: $p) { edges { cursor } } }";
    let my_list = "query($p: String) { myTickets(atLeast: $p) { edges { cursor } } }";
    for (who, sees) in [
        ("agent", true),
        ("supervisor", true),
        ("agent b", false),
        ("supervisor b", false),
        ("other customer", false),
        ("customer", true),
    ] {
        let query = if who.ends_with("customer") {
            my_list
        } else {
            list
        };
        let listed = server
            .gql(t(who), query, json!({ "p": opened_at }))
            .await
            .to_string();
        assert_eq!(listed.contains(&ticket), sees, "{who}: {listed}");
    }

    // One refused field refuses the whole request, through aliases and fragments.
    let before = written(server, exact).await;
    for query in [
        "query($c: String!) { myConversation(id: $c) { status } ...S } fragment S on Query { ... on Query { figures: stats(group: TOTAL) { conversations } } }",
        "mutation($c: String!) { sendMessage(conversationId: $c, text: \"hi\") { id } setSwitch(switch: BOT, on: true, reason: \"r\") { position } }",
        "mutation($c: String!) { ok: sendMessage(conversationId: $c, text: \"hi\") { id } ...M } fragment M on Mutation { ... on Mutation { off: setSwitch(switch: BOT, on: true, reason: \"r\") { position } } }",
    ] {
        let (code, _) = server
            .gql_error(t("customer"), query, json!({ "c": c }))
            .await;
        assert_eq!(code, "FORBIDDEN", "{query}");
    }
    assert_eq!(
        written(server, exact).await,
        before,
        "half of a refused request was written"
    );

    // Over WebSocket too, the policy refuses before the subscription starts.
    let mut refused = server
        .subscribe(
            t("customer"),
            "subscription { queueChanges(queues: []) { type } }",
            json!({}),
        )
        .await;
    let m = refused.next().await;
    let text = m.to_string();
    assert!(
        text.contains("FORBIDDEN") && text.contains("Subscription.queueChanges"),
        "{text}"
    );

    // An agent follows the chat they accepted; when it is transferred away, the subscription
    // ends with FORBIDDEN.
    server
        .gql(
            t("agent"),
            "mutation($c: String!) { acceptConversation(conversationId: $c) { position } }",
            json!({ "c": c }),
        )
        .await;
    let mut feed = server
        .subscribe(
            t("agent"),
            "subscription($c: String!) { conversationEvents(conversationId: $c) { type } }",
            json!({ "c": c }),
        )
        .await;
    // Whom the agent can hand it to: the other agent online in its queue with a free seat;
    // not themselves, not the agent of another queue.
    let now = head(server).await.to_string();
    let colleagues = server
        .gql(
            t("agent"),
            "query($c: String!, $p: String) { conversation(id: $c, atLeast: $p) { colleagues { uuid freeSeats } } }",
            json!({ "c": c, "p": now }),
        )
        .await;
    assert_eq!(
        colleagues["conversation"]["colleagues"],
        json!([{ "uuid": desk.agent_a2.to_string(), "freeSeats": 3 }]),
        "{colleagues}"
    );
    server
        .gql(
            t("agent"),
            "mutation($c: String!, $a: String) { transferConversation(conversationId: $c, toAgent: $a, reason: \"shift ends\") { position } }",
            json!({ "c": c, "a": desk.agent_a2.to_string() }),
        )
        .await;
    let mut last = feed.next().await;
    while last["errors"].is_null() && last["type"] != "complete" {
        last = feed.next().await;
    }
    assert_eq!(
        last["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{last}"
    );
    // The agent who has it now reads it; the one who gave it away no longer does.
    let now = head(server).await.to_string();
    server
        .gql(t("agent a2"), read, json!({ "c": c, "p": now }))
        .await;
    let (code, _) = server.gql_error(t("agent"), read, json!({ "c": c })).await;
    assert_eq!(code, "NOT_FOUND");

    // An agent following queue a stops hearing of it when they no longer serve it.
    let mut queue_feed = server
        .subscribe(
            t("agent"),
            "subscription($q: [String!]) { queueChanges(queues: $q) { type } }",
            json!({ "q": [desk.queue_a] }),
        )
        .await;
    server
        .gql(
            t("admin"),
            "mutation($a: String!) { changeAgent(agentId: $a, skills: [\"b\"]) { position } }",
            json!({ "a": desk.agent_a.to_string() }),
        )
        .await;
    let ended = queue_feed.next().await;
    assert_eq!(
        ended["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{ended}"
    );
}
