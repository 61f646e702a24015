//! A real `kefu serve` in a child process, and clients for it over real HTTP and WebSocket.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub const SECRET: &str = "kefu end-to-end tests use this secret, 32+ bytes";

/// Longest any wait in these tests may take before it is called a hang; no test waits for a
/// duration to pass, only for a condition.
pub const HANG: Duration = Duration::from_secs(60);

pub struct Server {
    child: Child,
    pub addr: String,
    /// The start-up line that tells a newcomer where GraphiQL is and how to get a token.
    pub welcome: String,
    dir: tempfile::TempDir,
    store: Option<String>,
    extra: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `kefu serve` on a free port with the embedded store (or `store`), and waits for
    /// it to say where it listens.
    pub fn start(store: Option<&str>, extra: &[&str]) -> Server {
        Self::start_in(tempfile::tempdir().unwrap(), store, extra)
    }

    /// [`Server::start`] with a directory the test has prepared (its `data` is the data
    /// directory).
    pub fn start_in(dir: tempfile::TempDir, store: Option<&str>, extra: &[&str]) -> Server {
        let extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
        let (child, addr, welcome) = spawn(dir.path(), store, &extra);
        Server {
            child,
            addr,
            welcome,
            dir,
            store: store.map(str::to_owned),
            extra,
        }
    }

    /// SIGKILL (no shutdown, nothing flushed), then the same server started again on the same
    /// data directory and store, on a new port.
    pub fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let (child, addr, welcome) = spawn(self.dir.path(), self.store.as_deref(), &self.extra);
        (self.child, self.addr, self.welcome) = (child, addr, welcome);
    }

    /// The data directory (`KEFU_DATA_DIR`): the embedded store lives there.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// Stops this server and starts another on the same data directory and store, with
    /// `extra` as its arguments.
    pub fn restart(mut self, extra: &[&str]) -> Server {
        self.extra = extra.iter().map(|a| (*a).to_owned()).collect();
        self.kill_and_restart();
        self
    }

    /// Every event the server's log holds once everything committed so far is readable, as
    /// `kefu log tail` prints them (read apart from the server, so nothing it answers can hide
    /// a write). PostgreSQL shows only a settled prefix (a transaction open anywhere in the
    /// cluster holds it back), so a marker is appended after everything the caller waited
    /// for and the log read until it shows: every earlier commit is then in it. Markers are
    /// left out.
    pub fn log_events(&self) -> Vec<Value> {
        let marker = format!("marker-{}", uuid::Uuid::now_v7());
        self.kefu(&["log", "append", &marker, "Marker", "{}"]);
        let deadline = std::time::Instant::now() + HANG;
        loop {
            let events: Vec<Value> = String::from_utf8(self.kefu(&["log", "tail"]))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect();
            if events.iter().any(|e| e["stream_id"] == marker.as_str()) {
                return events
                    .into_iter()
                    .filter(|e| !e["stream_id"].as_str().unwrap().starts_with("marker-"))
                    .collect();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{marker} never became readable"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `kefu` on this server's store; what it printed.
    fn kefu(&self, args: &[&str]) -> Vec<u8> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kefu"));
        command
            .args(args)
            .env("KEFU_DATA_DIR", self.dir.path().join("data"))
            .env("KEFU_LOG", "warn")
            .env_remove("KEFU_READ_STORE")
            .env_remove("DATABASE_URL");
        match &self.store {
            Some(s) => command.env("KEFU_STORE", s),
            None => command.env_remove("KEFU_STORE"),
        };
        let out = command.output().expect("run kefu");
        assert!(
            out.status.success(),
            "kefu {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub fn token(&self, role: &str, id: &str, queues: &[&str]) -> String {
        let mut args = vec!["token", "--role", role, "--id", id];
        for q in queues {
            args.extend(["--queue", q]);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(&args)
            .env("KEFU_TOKEN_SECRET", SECRET)
            .env("KEFU_DATA_DIR", self.dir.path().join("data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// One HTTP/1.1 request; the status, the headers (lower-cased names) and the body.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Vec<(String, String)>, String) {
        try_http(&self.addr, method, path, headers, body)
            .await
            .unwrap()
    }

    /// A GraphQL request; the HTTP status and the JSON answer.
    pub async fn gql_full(
        &self,
        token: Option<&str>,
        extra_headers: &[(&str, &str)],
        query: &str,
        variables: Value,
    ) -> (u16, Vec<(String, String)>, Value) {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(b) = &bearer {
            headers.push(("Authorization", b));
        }
        headers.extend_from_slice(extra_headers);
        let body = json!({ "query": query, "variables": variables }).to_string();
        let (status, headers, body) = self.http("POST", "/graphql", &headers, &body).await;
        let value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
        (status, headers, value)
    }

    /// A GraphQL request that must succeed; its `data`.
    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, _, answer) = self.gql_full(Some(token), &[], query, variables).await;
        assert!(
            status == 200 && answer.get("errors").is_none(),
            "{query}\nanswered {status}: {answer}"
        );
        answer["data"].clone()
    }

    /// A GraphQL request that must fail; the `extensions.code` of its first error.
    pub async fn gql_error(&self, token: &str, query: &str, variables: Value) -> (String, String) {
        let (_, _, answer) = self.gql_full(Some(token), &[], query, variables).await;
        let error = &answer["errors"][0];
        assert!(!error.is_null(), "{query} should have failed: {answer}");
        (
            error["extensions"]["code"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            error["message"].as_str().unwrap_or("").to_owned(),
        )
    }

    /// Opens a graphql-transport-ws subscription, authenticated in `connection_init`.
    pub async fn subscribe(&self, token: &str, query: &str, variables: Value) -> Subscription {
        let mut request = format!("ws://{}/graphql/ws", self.addr)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
        ws.send(Message::text(init.to_string())).await.unwrap();
        let ack = next_json(&mut ws).await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        let start = json!({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}});
        ws.send(Message::text(start.to_string())).await.unwrap();
        Subscription { ws }
    }
}

/// One HTTP/1.1 request to `addr`; the status, the headers (lower-cased names) and the body,
/// or why there was no answer (a server killed mid-request, say).
pub async fn try_http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, Vec<(String, String)>, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        addr,
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let raw = String::from_utf8(raw).map_err(|e| std::io::Error::other(e.to_string()))?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("the connection closed before a response"))?;
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, headers, body))
}

/// A GraphQL request to `addr` that may fail: its `data`, or the reason (no connection, a
/// status other than 200, or the errors it answered).
pub async fn try_gql(
    addr: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> Result<Value, String> {
    let bearer = format!("Bearer {token}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", bearer.as_str()),
    ];
    let body = json!({ "query": query, "variables": variables }).to_string();
    let (status, _, body) = try_http(addr, "POST", "/graphql", &headers, &body)
        .await
        .map_err(|e| e.to_string())?;
    let answer: Value =
        serde_json::from_str(&body).map_err(|e| format!("{status}: {e}: {body}"))?;
    if status != 200 || answer.get("errors").is_some() {
        return Err(format!("{status}: {answer}"));
    }
    Ok(answer["data"].clone())
}

/// Runs `kefu serve` in `dir` and waits for it to say where it listens.
fn spawn(dir: &std::path::Path, store: Option<&str>, extra: &[String]) -> (Child, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kefu"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("KEFU_DATA_DIR", dir.join("data"))
        .env("KEFU_TOKEN_SECRET", SECRET)
        .env("KEFU_LOG", "info")
        .env_remove("KEFU_READ_STORE")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match store {
        Some(s) => command.env("KEFU_STORE", s),
        None => command.env_remove("KEFU_STORE"),
    };
    let mut child = command.spawn().expect("start kefu serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut addr, mut sent) = (None, false);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if addr.is_none()
                && let Some(at) = line.find("listen=")
            {
                addr = line[at + 7..].split_whitespace().next().map(str::to_owned);
            }
            // The welcome line is logged right after the address.
            if !sent
                && line.contains("GraphiQL:")
                && let Some(addr) = addr.clone()
            {
                let _ = tx.send(Ok((addr, line.clone())));
                sent = true;
            }
            if line.contains("ERROR") || line.starts_with("error:") {
                let _ = tx.send(Err(line));
            }
        }
    });
    let (addr, welcome) = match rx.recv_timeout(HANG) {
        Ok(Ok(started)) => started,
        Ok(Err(line)) => panic!("kefu serve failed: {line}"),
        Err(_) => panic!("kefu serve did not start"),
    };
    (child, addr, welcome)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

pub struct Subscription {
    ws: Ws,
}

impl Subscription {
    /// The next `next` message's data (or its errors, as they came).
    pub async fn next(&mut self) -> Value {
        loop {
            let m = next_json(&mut self.ws).await;
            match m["type"].as_str() {
                Some("next") => return m["payload"].clone(),
                Some("error") | Some("complete") => return m,
                _ => continue,
            }
        }
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(HANG, ws.next())
            .await
            .expect("a WebSocket message in time")
            .expect("the WebSocket is open")
            .expect("a WebSocket frame");
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
