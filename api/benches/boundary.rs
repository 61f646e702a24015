//! The request boundary's worst cases: how long `kefu serve` takes to answer the most
//! expensive requests an attacker can fit under the body limit (256 KiB), end to end over
//! HTTP on one connection per request, next to a trivial query for scale.
//!
//! `cargo bench -p kefu-api --bench boundary` (KEFU_BENCH_ROUNDS, default 200 per case).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "kefu benchmarks use this secret, 32 bytes or more";
const LIMIT: usize = 256 * 1024;

fn body(query: &str, variables: serde_json::Value) -> String {
    json!({ "query": query, "variables": variables }).to_string()
}

/// Cases, each as large as the body limit allows.
fn cases() -> Vec<(&'static str, String)> {
    let fill = |unit: &dyn Fn(usize) -> String, wrap: &dyn Fn(&str) -> String| {
        let mut inner = String::new();
        let mut i = 0;
        while body(&wrap(&(inner.clone() + &unit(i))), json!({})).len() < LIMIT - 64 {
            inner.push_str(&unit(i));
            i += 1;
        }
        body(&wrap(&inner), json!({}))
    };
    let mut out = vec![(
        "trivial query (baseline)",
        body("{ __typename }", json!({})),
    )];
    // 100 fragments (the most allowed), each spreading the next twice: 2^100 once expanded.
    let mut bomb = String::from("query { ...F0 }");
    for i in 0..99 {
        bomb.push_str(&format!(
            " fragment F{i} on Query {{ ...F{} ...F{} }}",
            i + 1,
            i + 1
        ));
    }
    bomb.push_str(" fragment F99 on Query { __typename }");
    out.push(("fragment bomb, 100 fragments", body(&bomb, json!({}))));
    // The same, the body filled with spreads: every fragment spreads the next as often as fits.
    let per = (LIMIT - 4096) / 100 / 8;
    let mut wide = String::from("query { ...F0 }");
    for i in 0..99 {
        wide.push_str(&format!(
            " fragment F{i} on Query {{ {} }}",
            format!("...F{} ", i + 1).repeat(per)
        ));
    }
    wide.push_str(" fragment F99 on Query { __typename }");
    out.push((
        "wide fragment bomb, body full of spreads",
        body(&wide, json!({})),
    ));
    out.push((
        "aliases, body full",
        fill(&|i| format!("a{i}:__typename "), &|s| format!("{{{s}}}")),
    ));
    out.push((
        "directives, body full",
        fill(&|_| "@include(if:true)".into(), &|s| {
            format!("{{__typename {s}}}")
        }),
    ));
    out.push((
        "brackets, body full",
        body(
            &format!(
                "{}{}",
                "{".repeat(LIMIT / 2 - 64),
                "}".repeat(LIMIT / 2 - 64)
            ),
            json!({}),
        ),
    ));
    out.push((
        "a 250 KiB string argument",
        body(
            "mutation($t: String!) { sendMessage(conversationId: \"x\", text: $t) { position } }",
            json!({ "t": "字".repeat(80 * 1024) }),
        ),
    ));
    // Just under the query-text cap (32 KiB), so parsed in full before the shape refuses it.
    let aliases: String = (0..1950).map(|i| format!("a{i}:__typename ")).collect();
    out.push((
        "1 950 aliases, 32 KiB of query (parsed)",
        body(&format!("{{{aliases}}}"), json!({})),
    ));
    let names: String = (0..1360).map(|i| format!("f{i:0>22} ")).collect();
    out.push((
        "1 360 long field names, 32 KiB of query (parsed)",
        body(&format!("{{{names}}}"), json!({})),
    ));
    // The largest request admitted: 500 nodes, then async-graphql validates and runs it.
    let admitted: String = (0..499).map(|i| format!("a{i}: __typename ")).collect();
    out.push((
        "largest admitted query (499 aliases)",
        body(&format!("{{ {admitted} }}"), json!({})),
    ));
    for (name, b) in &out {
        assert!(b.len() <= LIMIT, "{name} is {} bytes", b.len());
    }
    out
}

async fn post(addr: &str, token: &str, body: &str) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let took = started.elapsed();
    let status = String::from_utf8_lossy(&out[..out.len().min(64)])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, took)
}

fn main() {
    let rounds: usize = std::env::var("KEFU_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "none",
            "--rate-limit",
            "0",
        ])
        .env("KEFU_DATA_DIR", dir.path())
        .env("KEFU_TOKEN_SECRET", SECRET)
        .env("KEFU_LOG", "info")
        .env_remove("KEFU_STORE")
        .env_remove("DATABASE_URL")
        .env_remove("KEFU_READ_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kefu serve");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("kefu serve says where it listens")
            .unwrap();
        if let Some(at) = line.find("listen=") {
            break line[at + 7..].split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let token = String::from_utf8(
        Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(["token", "--role", "admin", "--id", "bench"])
            .env("KEFU_TOKEN_SECRET", SECRET)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| request | body bytes | status | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    runtime.block_on(async {
        for (name, b) in cases() {
            let mut times = Vec::with_capacity(rounds);
            let mut status = 0;
            for _ in 0..rounds {
                let (s, took) = post(&addr, &token, &b).await;
                status = s;
                times.push(took);
            }
            times.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
            println!(
                "| {name} | {} | {status} | {:.2} | {:.2} | {:.2} |",
                b.len(),
                ms(p(0.5)),
                ms(p(0.99)),
                ms(*times.last().unwrap())
            );
        }
    });
    let _ = child.kill();
    let _ = child.wait();
}
