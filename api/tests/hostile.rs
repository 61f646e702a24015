//! Hostile input against a real `kefu serve`: malformed bodies, fragment bombs, floods of
//! aliases and directives, giant strings, numeric extremes, oversize and expired WebSocket
//! sessions. Every answer must be a GraphQL error with `extensions.code`; afterwards the
//! server is healthy, answers a normal query, and the log head has not moved (nothing was
//! written). Work is bounded by counts; nothing here measures time.

mod server;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use server::{HANG, SECRET, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

/// One raw HTTP/1.1 exchange (the body may be any bytes, the head any headers); the status
/// and the body, lossily decoded.
async fn raw(server: &Server, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(HANG, stream.read_to_end(&mut out))
        .await
        .expect("an answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, body.to_owned())
}

/// A POST with the given content type and body bytes.
async fn post(
    server: &Server,
    token: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut head = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(c) = content_type {
        head.push_str(&format!("Content-Type: {c}\r\n"));
    }
    head.push_str("\r\n");
    raw(server, &head, body).await
}

/// The first error's code of a JSON answer (which must be one).
fn code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    let code = v["errors"][0]["extensions"]["code"].as_str();
    code.unwrap_or_else(|| panic!("no extensions.code: {body}"))
        .to_owned()
}

/// The log's head position as `/metrics` tells an admin.
async fn log_head(server: &Server, admin: &str) -> String {
    let bearer = format!("Bearer {admin}");
    let (status, _, body) = server
        .http("GET", "/metrics", &[("Authorization", &bearer)], "")
        .await;
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix("kefu_log_head_position "))
        .unwrap_or("none")
        .to_owned()
}

fn gql_body(query: &str, variables: Value) -> Vec<u8> {
    json!({ "query": query, "variables": variables })
        .to_string()
        .into_bytes()
}

/// `n` fragments each spreading the next twice: 2^n fields once expanded, ~40 bytes each.
fn fragment_bomb(n: usize) -> String {
    let mut q = String::from("query { ...F0 }");
    for i in 0..n {
        q.push_str(&format!(
            " fragment F{i} on Query {{ ...F{} ...F{} }}",
            i + 1,
            i + 1
        ));
    }
    q.push_str(&format!(" fragment F{n} on Query {{ me {{ role }} }}"));
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http_requests_are_coded_and_write_nothing() {
    let server = Server::start(None, &["--workers", "none", "--rate-limit", "0"]);
    let admin = server.token("admin", "ops", &[]);
    let customer = server.token("customer", &Uuid::now_v7().to_string(), &[]);
    let agent = server.token("agent", &Uuid::now_v7().to_string(), &[]);
    // Something in the log, and a conversation a flood could write to.
    let started = server
        .gql(
            &customer,
            "mutation { startConversation(channel: WEB) { id } }",
            json!({}),
        )
        .await;
    let conversation = started["startConversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let head = log_head(&server, &admin).await;
    assert_ne!(head, "none");

    let json_type = Some("application/json");
    let bad_bodies: Vec<(&str, Option<&str>, Vec<u8>, u16)> = vec![
        ("bad JSON", json_type, b"{\"query\": ".to_vec(), 400),
        ("empty body", json_type, Vec::new(), 400),
        (
            "invalid UTF-8",
            json_type,
            b"{\"query\": \"\xff\xfe\"}".to_vec(),
            400,
        ),
        (
            "text/plain",
            Some("text/plain"),
            gql_body("{ me { role } }", json!({})),
            415,
        ),
        (
            "no content type",
            None,
            gql_body("{ me { role } }", json!({})),
            415,
        ),
        (
            "batched",
            json_type,
            br#"[{"query": "{ me { role } }"}, {"query": "{ me { role } }"}]"#.to_vec(),
            400,
        ),
        ("a JSON number", json_type, b"42".to_vec(), 400),
        (
            "query not a string",
            json_type,
            br#"{"query": 5}"#.to_vec(),
            400,
        ),
        (
            "variables not an object",
            json_type,
            br#"{"query": "{ me { role } }", "variables": "x"}"#.to_vec(),
            400,
        ),
        (
            "NaN",
            json_type,
            br#"{"query": "{ me { role } }", "variables": {"x": NaN}}"#.to_vec(),
            400,
        ),
        (
            "Infinity",
            json_type,
            br#"{"query": "{ me { role } }", "variables": {"x": Infinity}}"#.to_vec(),
            400,
        ),
        (
            "1e400",
            json_type,
            br#"{"query": "{ me { role } }", "variables": {"x": 1e400}}"#.to_vec(),
            400,
        ),
        (
            "deep JSON",
            json_type,
            format!(
                "{{\"query\": \"{{ me {{ role }} }}\", \"variables\": {{\"x\": {}1{}}}}}",
                "[".repeat(100_000),
                "]".repeat(100_000)
            )
            .into_bytes(),
            400,
        ),
    ];
    for (what, content_type, body, status) in bad_bodies {
        let (got, answer) = post(&server, &admin, content_type, &body).await;
        assert_eq!(got, status, "{what}: {answer}");
        assert_eq!(code(&answer), "VALIDATION", "{what}: {answer}");
    }

    let aliases: String = (0..5000).map(|i| format!("a{i}: __typename ")).collect();
    let directives = "@include(if: true)".repeat(5000);
    let sends: String = (0..200)
        .map(|i| format!("m{i}: sendMessage(conversationId: $c, text: \"hi\") {{ position }} "))
        .collect();
    let operations: String = (0..50)
        .map(|i| format!("query Q{i} {{ __typename }} "))
        .collect();
    let cycle = "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
    let corpus: Vec<(&str, String, Value)> = vec![
        ("fragment bomb", fragment_bomb(30), json!({})),
        ("fragment cycle", cycle.into(), json!({})),
        ("deep nesting", format!("{}{}", "{ me ".repeat(5000), "}".repeat(5000)), json!({})),
        ("deep list literal", format!("{{ search(text: \"x\", kinds: {}MESSAGE{}) {{ totalCount }} }}", "[".repeat(5000), "]".repeat(5000)), json!({})),
        ("5000 aliases", format!("{{ {aliases} }}"), json!({})),
        ("5000 directives", format!("{{ __typename {directives} }}"), json!({})),
        ("50 operations", operations, json!({})),
        ("200 sendMessage aliases", format!("mutation($c: String!) {{ {sends} }}"), json!({ "c": conversation })),
        ("giant locale", "mutation($l: String) { startConversation(channel: WEB, locale: $l) { id } }".into(), json!({ "l": "x".repeat(200 * 1024) })),
        ("ahtSecs 1e300", "{ forecast(ahtSecs: 1e300) { hours { expected } } }".into(), json!({})),
        ("utcOffsetMinutes overflow", "query($o: Int!) { forecast(utcOffsetMinutes: $o) { hours { expected } } }".into(), json!({ "o": 2_147_483_647 })),
        ("first: 10^12", "{ conversations(first: 1000000000000) { edges { node { id } } } }".into(), json!({})),
        ("a search page of -1", "{ search(text: \"x\", first: -1) { totalCount } }".into(), json!({})),
        ("serviceLevel 1e308", "query($s: Float!) { forecast(serviceLevel: $s) { hours { expected } } }".into(), json!({ "s": 1e308 })),
        ("priority 2^31", "mutation { defineQueue(input: {name: \"q\", priority: 2147483647, firstResponseSecs: 60, resolutionSecs: 60}) { id } }".into(), json!({})),
        ("maxConcurrent -1", "mutation { registerAgent(name: \"n\", skills: [], maxConcurrent: -1) { id } }".into(), json!({})),
        ("1000 skills", "mutation($s: [String!]!) { registerAgent(name: \"n\", skills: $s, maxConcurrent: 1) { id } }".into(), json!({ "s": vec!["x"; 1000] })),
        ("a 100 KiB id", "query($c: String!) { conversation(id: $c) }".into(), json!({ "c": "9".repeat(100 * 1024) })),
        ("does not parse", "{ me { role }".into(), json!({})),
    ];
    for (what, query, variables) in corpus {
        let body = gql_body(&query, variables);
        assert!(body.len() < 256 * 1024, "{what} is under the body limit");
        let (status, answer) = post(&server, &admin, json_type, &body).await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert_eq!(code(&answer), "VALIDATION", "{what}: {answer}");
    }
    // Cursors are strings, read by the field that gave them: a forged one is named there.
    for cursor in ["10001", "-1", "x", "18446744073709551616"] {
        let query = format!("{{ search(text: \"x\", after: \"{cursor}\") {{ totalCount }} }}");
        let (_, answer) = post(&server, &admin, json_type, &gql_body(&query, json!({}))).await;
        assert_eq!(code(&answer), "VALIDATION", "cursor {cursor}: {answer}");
        assert!(
            answer.contains("after: "),
            "the error names the argument: {answer}"
        );
    }

    // The HTTP edges: no token, a forged one, an oversize body, GET for a mutation.
    let (status, answer) = post(
        &server,
        "not-a-token",
        json_type,
        &gql_body("{ me { role } }", json!({})),
    )
    .await;
    assert_eq!(
        (status, code(&answer).as_str()),
        (401, "UNAUTHENTICATED"),
        "{answer}"
    );
    let oversize = gql_body("{ me { role } }", json!({ "x": "y".repeat(300 * 1024) }));
    let (status, answer) = post(&server, &admin, json_type, &oversize).await;
    assert_eq!(
        (status, code(&answer).as_str()),
        (413, "VALIDATION"),
        "{answer}"
    );
    // Without Content-Length, the body is cut off as it streams in.
    let chunk = vec![b' '; 64 * 1024];
    let mut chunked = Vec::new();
    for _ in 0..5 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let chunked_head = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let (status, answer) = raw(&server, &chunked_head, &chunked).await;
    assert_eq!(
        (status, code(&answer).as_str()),
        (413, "VALIDATION"),
        "{answer}"
    );
    let bearer = format!("Bearer {admin}");
    let (status, _, answer) = server
        .http("GET", "/graphql?query=mutation%20%7B%20startConversation(channel%3A%20WEB)%20%7B%20id%20%7D%20%7D", &[("Authorization", &bearer)], "")
        .await;
    assert_eq!(
        (status, code(&answer).as_str()),
        (405, "VALIDATION"),
        "{answer}"
    );
    let (status, _, answer) = server
        .http(
            "GET",
            "/graphql?query=%7B%20me%20%7B%20role%20%7D%20%7D",
            &[("Authorization", &bearer)],
            "",
        )
        .await;
    assert_eq!(status, 200, "a query by GET is answered: {answer}");
    let (status, _, answer) = server
        .http(
            "GET",
            "/graphql?variables=%7B",
            &[("Authorization", &bearer)],
            "",
        )
        .await;
    assert_eq!(
        (status, code(&answer).as_str()),
        (400, "VALIDATION"),
        "{answer}"
    );
    let (_, _, answer) = server
        .gql_full(
            Some(&admin),
            &[("traceparent", "00-zz")],
            "{ me { role } }",
            json!({}),
        )
        .await;
    assert_eq!(answer["errors"][0]["extensions"]["code"], "VALIDATION");
    // Paths, methods and upgrades the server does not serve are coded too.
    for (method, path, status) in [
        ("GET", "/nope", 404),
        ("PUT", "/graphql", 405),
        ("GET", "/graphql/ws", 400),
    ] {
        let (got, _, answer) = server.http(method, path, &[], "").await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert!(!code(&answer).is_empty());
    }
    // /metrics is not for everyone.
    let (status, _, answer) = server.http("GET", "/metrics", &[], "").await;
    assert_eq!((status, code(&answer).as_str()), (401, "UNAUTHENTICATED"));
    let agent_bearer = format!("Bearer {agent}");
    let (status, _, answer) = server
        .http("GET", "/metrics", &[("Authorization", &agent_bearer)], "")
        .await;
    assert_eq!((status, code(&answer).as_str()), (403, "FORBIDDEN"));

    // Still healthy, still answering, and nothing was written.
    let (status, _, body) = server.http("GET", "/healthz", &[], "").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let me = server.gql(&customer, "{ me { role } }", json!({})).await;
    assert_eq!(me["me"]["role"], "CUSTOMER", "{me}");
    assert_eq!(
        log_head(&server, &admin).await,
        head,
        "a refused request wrote"
    );
}

/// Each root field of a mutation costs one request of the caller's rate: ten `sendMessage`
/// aliases are ten requests, refused whole when the budget has fewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_mutation_fields_count_against_the_rate() {
    let server = Server::start(
        None,
        &[
            "--max-root-mutations",
            "10",
            "--workers",
            "none",
            "--rate-limit",
            "0.000001",
            "--rate-burst",
            "6",
        ],
    );
    let customer = server.token("customer", &Uuid::now_v7().to_string(), &[]);
    let admin = server.token("admin", "ops", &[]);
    let started = server
        .gql(
            &customer,
            "mutation { startConversation(channel: WEB) { id } }",
            json!({}),
        )
        .await;
    let conversation = started["startConversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let head = log_head(&server, &admin).await;
    let sends: String = (0..10)
        .map(|i| format!("m{i}: sendMessage(conversationId: $c, text: \"hi {i}\") {{ position }} "))
        .collect();
    let (status, _, answer) = server
        .gql_full(
            Some(&customer),
            &[],
            &format!("mutation($c: String!) {{ {sends} }}"),
            json!({ "c": conversation }),
        )
        .await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(
        log_head(&server, &admin).await,
        head,
        "a refused request wrote"
    );
}

/// A token for `role` that expires `secs` seconds from now, signed as `kefu token` signs
/// (which mints whole hours only).
fn short_token(role: &str, id: &str, secs: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims =
        B64.encode(json!({ "sub": id, "role": role, "exp": now + secs, "iat": now }).to_string());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{header}.{claims}").as_bytes());
    format!(
        "{header}.{claims}.{}",
        B64.encode(mac.finalize().into_bytes())
    )
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn ws_connect(server: &Server, token: &str) -> Ws {
    let mut request = format!("ws://{}/graphql/ws", server.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init =
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
    ws.send(Message::text(init.to_string())).await.unwrap();
    assert_eq!(ws_next(&mut ws).await.unwrap()["type"], "connection_ack");
    ws
}

/// The next text message, or None when the connection closed.
async fn ws_next(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(HANG, ws.next())
            .await
            .expect("a message in time")
        {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

async fn ws_subscribe(ws: &mut Ws, id: &str, query: &str, variables: Value) {
    let start =
        json!({"id": id, "type": "subscribe", "payload": {"query": query, "variables": variables}});
    ws.send(Message::text(start.to_string())).await.unwrap();
}

/// The code of the first error the operation `id` answers with.
async fn ws_error_code(ws: &mut Ws, id: &str) -> String {
    loop {
        let m = ws_next(ws)
            .await
            .expect("an answer before the connection closed");
        if m["id"] != id {
            continue;
        }
        let errors = if m["type"] == "error" {
            &m["payload"]
        } else {
            &m["payload"]["errors"]
        };
        if let Some(code) = errors[0]["extensions"]["code"].as_str() {
            return code.to_owned();
        }
        panic!("an uncoded answer: {m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sessions_get_the_same_limits_and_end_with_their_token() {
    let server = Server::start(None, &["--workers", "none", "--rate-limit", "0"]);
    let admin = server.token("admin", "ops", &[]);
    let customer_id = Uuid::now_v7().to_string();
    let customer = server.token("customer", &customer_id, &[]);
    let started = server
        .gql(
            &customer,
            "mutation { startConversation(channel: WEB) { id } }",
            json!({}),
        )
        .await;
    let conversation = started["startConversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let head = log_head(&server, &admin).await;

    // The validation bounds and argument ranges apply to every operation.
    let mut ws = ws_connect(&server, &customer).await;
    ws_subscribe(&mut ws, "bomb", &fragment_bomb(30), json!({})).await;
    assert_eq!(ws_error_code(&mut ws, "bomb").await, "VALIDATION");
    let sends: String = (0..50)
        .map(|i| format!("m{i}: sendMessage(conversationId: $c, text: \"hi\") {{ position }} "))
        .collect();
    ws_subscribe(
        &mut ws,
        "flood",
        &format!("mutation($c: String!) {{ {sends} }}"),
        json!({ "c": conversation }),
    )
    .await;
    assert_eq!(ws_error_code(&mut ws, "flood").await, "VALIDATION");
    // A message far larger than the connection's read buffer (4 KiB) is read whole.
    ws_subscribe(
        &mut ws,
        "large",
        "subscription($c: String!) { conversationEvents(conversationId: $c) { type } }",
        json!({ "c": "x".repeat(100 * 1024) }),
    )
    .await;
    assert_eq!(ws_error_code(&mut ws, "large").await, "VALIDATION");
    ws_subscribe(&mut ws, "unknown", "{ noSuchField }", json!({})).await;
    assert_eq!(
        ws_error_code(&mut ws, "unknown").await,
        "VALIDATION",
        "async-graphql's own errors are coded too"
    );
    // A message over the size limit ends the connection.
    let huge = json!({"id": "huge", "type": "subscribe", "payload": {"query": "{ me { role } }", "variables": {"x": "y".repeat(300 * 1024)}}});
    let _ = ws.send(Message::text(huge.to_string())).await;
    // (What was still on its way, such as the last operation's `complete`, may come first.)
    let mut before_close = 0;
    while let Some(m) = ws_next(&mut ws).await {
        assert_ne!(m["id"], "huge", "an oversize message is not run: {m}");
        before_close += 1;
        assert!(
            before_close < 10,
            "an oversize message closes the connection"
        );
    }

    // A token that expires: its running subscription ends with UNAUTHENTICATED, and a new
    // operation on the connection is refused.
    let expiring = short_token("customer", &customer_id, 3);
    let mut ws = ws_connect(&server, &expiring).await;
    ws_subscribe(
        &mut ws,
        "turns",
        "subscription($c: String!) { conversationTurns(conversationId: $c) { type } }",
        json!({ "c": conversation }),
    )
    .await;
    assert_eq!(ws_error_code(&mut ws, "turns").await, "UNAUTHENTICATED");
    ws_subscribe(&mut ws, "after", "{ me { role } }", json!({})).await;
    assert_eq!(ws_error_code(&mut ws, "after").await, "UNAUTHENTICATED");

    let me = server.gql(&customer, "{ me { role } }", json!({})).await;
    assert_eq!(me["me"]["role"], "CUSTOMER");
    assert_eq!(
        log_head(&server, &admin).await,
        head,
        "a refused operation wrote"
    );
}

/// GraphiQL comes from kefu itself: every script and style the page names is served here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_loads_nothing_from_elsewhere() {
    let server = Server::start(None, &["--workers", "none"]);
    let (status, _, page) = server.http("GET", "/graphiql", &[], "").await;
    assert_eq!(status, 200);
    let mut urls = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in page.split(attr).skip(1) {
            urls.push(part.split('"').next().unwrap().to_owned());
        }
    }
    assert!(!urls.is_empty());
    for url in urls {
        assert!(
            url.starts_with('/') && !url.starts_with("//"),
            "{url} is not same-origin"
        );
        let head = format!(
            "GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept-Encoding: gzip\r\n\r\n"
        );
        let (status, _) = raw(&server, &head, b"").await;
        assert_eq!(status, 200, "{url} is served");
    }
}

/// A request that outlives `--request-timeout-secs` is answered TIMEOUT, coded, over HTTP and
/// WebSocket alike. The store is made slower than the deadline with the drills' fault dial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_is_answered_timeout() {
    let server = Server::start(
        None,
        &[
            "--workers",
            "none",
            "--rate-limit",
            "0",
            "--request-timeout-secs",
            "1",
        ],
    );
    // The faults below slow and fail the store the read models start from: let them start
    // first, or /readyz would rightly say they have not.
    let mut tries = 0;
    while server.http("GET", "/readyz", &[], "").await.0 != 200 {
        tries += 1;
        assert!(tries < 600, "the read models never started");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let admin = server.token("admin", "ops", &[]);
    let customer_id = Uuid::now_v7().to_string();
    let customer = server.token("customer", &customer_id, &[]);
    let fault = "mutation($ms: Int!) { setFault(target: STORE, latencyMs: $ms, errorRate: 0) { latencyMs } }";
    server.gql(&admin, fault, json!({ "ms": 30_000 })).await;
    let start = "mutation { startConversation(channel: WEB) { id } }";
    let (status, _, answer) = server
        .gql_full(Some(&customer), &[], start, json!({}))
        .await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "TIMEOUT",
        "{answer}"
    );
    let mut ws = ws_connect(&server, &customer).await;
    ws_subscribe(&mut ws, "slow", start, json!({})).await;
    assert_eq!(ws_error_code(&mut ws, "slow").await, "TIMEOUT");
    server.gql(&admin, fault, json!({ "ms": 0 })).await;
    let (status, _, body) = server.http("GET", "/healthz", &[], "").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    server.gql(&customer, start, json!({})).await;

    // A store that fails every call: /readyz says so with a coded body, then recovers.
    let failing = "mutation($r: Float!) { setFault(target: STORE, latencyMs: 0, errorRate: $r) { errorRate } }";
    server.gql(&admin, failing, json!({ "r": 1.0 })).await;
    let (status, _, body) = server.http("GET", "/readyz", &[], "").await;
    assert_eq!(status, 503, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("a GraphQL error body");
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "UNAVAILABLE",
        "{body}"
    );
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("event store"),
        "{body}"
    );
    server.gql(&admin, failing, json!({ "r": 0.0 })).await;
    let (status, _, body) = server.http("GET", "/readyz", &[], "").await;
    assert_eq!((status, body.as_str()), (200, "ready"));
}

/// The start-up log tells a newcomer where GraphiQL is and a command that mints a token:
/// the page answers at that address, and the command, run as printed, gives a token the
/// server takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_line_shows_the_way_in() {
    let server = Server::start(None, &["--workers", "none"]);
    let welcome = &server.welcome;
    let page = format!("http://{}/graphiql", server.addr);
    assert!(welcome.contains(&page), "{welcome}");
    let (status, _, html) = server.http("GET", "/graphiql", &[], "").await;
    assert_eq!(status, 200);
    assert!(html.contains("graphiql"), "{html}");
    let command = welcome
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in {welcome}"));
    // The test server's secret comes from the environment, which the line says to repeat.
    let command = command
        .strip_prefix("KEFU_TOKEN_SECRET=<the same secret> ")
        .unwrap_or_else(|| panic!("the line should say the secret is needed: {command}"));
    let mut words = command.split_whitespace();
    assert_eq!(words.next(), Some("kefu"), "{command}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(words)
        .env("KEFU_TOKEN_SECRET", server::SECRET)
        .output()
        .unwrap();
    assert!(out.status.success(), "{command}: {out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let me = server.gql(&token, "{ me { role id } }", json!({})).await;
    assert_eq!(me["me"], json!({ "role": "ADMIN", "id": "dev" }), "{me}");
}
