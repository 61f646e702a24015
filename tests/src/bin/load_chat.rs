//! An open-loop load of customers chatting with the bot through a real `kefu serve`, each
//! customer's window subscribed to its conversation over the WebSocket as a chat widget is:
//! the measure of issue 18.
//!
//! ```text
//! cargo build --release --workspace --bins
//! target/release/load_chat --kefu target/release/kefu --rate 18 --secs 60 --windows 600
//! target/release/load_chat --kefu target/release/kefu --store postgres://postgres@127.0.0.1:5432/kefu_load ...
//! ```
//!
//! It starts the server itself (a fresh data directory, or a fresh schema of the PostgreSQL
//! database given with `--store`), with the demo knowledge base and no rate limit. Before the
//! load, `--windows` idle windows are opened (a conversation each, subscribed and left open:
//! the customers who are reading, not typing) and the server's memory is read before and
//! after. Then chats arrive on a fixed schedule: turn `i` of the run is due at `i / rate`
//! seconds, a chat is `--turns` turns `--gap-ms` apart, and its window closes when it ends.
//! Open loop: a turn's send latency counts from when it was due, not from when it went out,
//! so a server that falls behind shows it as queueing instead of slowing the load down.
//!
//! Reported: `sendMessage` latency, the time from `sendMessage` returning to the bot's answer
//! arriving on the window (its reply, or its hand-off to a person, which ends the chat's bot
//! part; 0 when the answer came first), the same for chats' first turns alone (on stderr, or
//! `first_reply_ms` with `--json`), answers that never came within
//! `--reply-timeout-ms`, failures, and the CPU the server and this generator used over the
//! load (both share the machine; so does PostgreSQL, which is not counted). Before the
//! clock starts, one chat is answered end to end (what the server does once, at its first
//! turn, is not load); turns due in the first `--warmup-secs` go out and are not counted.
//!
//! Options: `--kefu PATH` (required), `--store URL` (default: the embedded store), `--rate R`
//! turns/s (18), `--secs S` (60), `--windows N` (0), `--turns T` (3), `--gap-ms G` (4000),
//! `--customers C` tokens shared by the chats (20), `--kb FILE` (bot/data/demo-kb.jsonl: the
//! questions asked are its questions and paraphrases), `--reply-timeout-ms` (10000),
//! `--warmup-secs` (5),
//! `--json` (one JSON line instead of the table).

#[path = "support/server.rs"]
mod server;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use server::{Server, cpu_of, read_response};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const START: &str = "mutation { startConversation(channel: WEB) { id } }";
const SEND: &str =
    "mutation($c: String!, $t: String!) { sendMessage(conversationId: $c, text: $t) { position } }";
const WINDOW: &str =
    "subscription($c: String!) { conversationEvents(conversationId: $c) { type } }";

struct Args {
    kefu: PathBuf,
    store: Option<String>,
    rate: f64,
    secs: f64,
    windows: usize,
    turns: usize,
    gap: Duration,
    customers: usize,
    kb: PathBuf,
    reply_timeout: Duration,
    warmup: Duration,
    json: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut a = Args {
        kefu: PathBuf::new(),
        store: None,
        rate: 18.0,
        secs: 60.0,
        windows: 0,
        turns: 3,
        gap: Duration::from_millis(4000),
        customers: 20,
        kb: PathBuf::from("bot/data/demo-kb.jsonl"),
        reply_timeout: Duration::from_millis(10_000),
        warmup: Duration::from_secs(5),
        json: false,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--kefu" => a.kefu = value()?.into(),
            "--store" => a.store = Some(value()?),
            "--rate" => a.rate = value()?.parse().context("--rate")?,
            "--secs" => a.secs = value()?.parse().context("--secs")?,
            "--windows" => a.windows = value()?.parse().context("--windows")?,
            "--turns" => a.turns = value()?.parse().context("--turns")?,
            "--gap-ms" => a.gap = Duration::from_millis(value()?.parse().context("--gap-ms")?),
            "--customers" => a.customers = value()?.parse().context("--customers")?,
            "--kb" => a.kb = value()?.into(),
            "--reply-timeout-ms" => {
                a.reply_timeout =
                    Duration::from_millis(value()?.parse().context("--reply-timeout-ms")?)
            }
            "--warmup-secs" => {
                a.warmup = Duration::from_secs_f64(value()?.parse().context("--warmup-secs")?)
            }
            "--json" => a.json = true,
            "-h" | "--help" => {
                println!(
                    "load_chat --kefu PATH [--store URL] [--rate R] [--secs S] [--windows N] [--turns T] [--gap-ms G] [--customers C] [--kb FILE] [--reply-timeout-ms MS] [--warmup-secs W] [--json]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if a.kefu.as_os_str().is_empty() {
        bail!("--kefu PATH (the kefu binary to load) is required");
    }
    if !(a.rate > 0.0 && a.secs > 0.0 && a.turns > 0 && a.customers > 0) {
        bail!("--rate, --secs, --turns and --customers must be positive");
    }
    Ok(a)
}

/// Keep-alive HTTP/1.1 connections to the server, as a browser keeps them.
struct Http {
    addr: String,
    idle: Mutex<Vec<TcpStream>>,
}

impl Http {
    async fn post(&self, token: &str, query: &str, variables: Value) -> anyhow::Result<Value> {
        let body = json!({ "query": query, "variables": variables }).to_string();
        let request = format!(
            "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => TcpStream::connect(&self.addr).await?,
        };
        conn.set_nodelay(true)?;
        conn.write_all(request.as_bytes()).await?;
        let (status, body) = read_response(&mut conn).await?;
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        let answer: Value = serde_json::from_slice(&body)?;
        if status != 200 || !answer["errors"].is_null() {
            bail!("HTTP {status}: {answer}");
        }
        Ok(answer["data"].clone())
    }
}

/// A customer's window: the types of the events it is shown, as they arrive.
struct Window {
    events: mpsc::UnboundedReceiver<(String, Instant)>,
    closer: tokio::sync::oneshot::Sender<()>,
}

async fn open_window(addr: &str, token: &str, conversation: &str) -> anyhow::Result<Window> {
    let mut request = format!("ws://{addr}/graphql/ws").into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    let init =
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
    ws.send(Message::text(init.to_string())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("connection_ack") => break,
            Some(Ok(Message::Text(t))) => bail!("the window was refused: {t}"),
            Some(Ok(_)) => continue,
            _ => bail!("the window closed before it was acknowledged"),
        }
    }
    let start = json!({"id": "1", "type": "subscribe", "payload": {"query": WINDOW, "variables": {"c": conversation}}});
    ws.send(Message::text(start.to_string())).await?;
    let (tx, events) = mpsc::unbounded_channel();
    let (closer, mut closed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                m = ws.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        let at = Instant::now();
                        if let Ok(v) = serde_json::from_str::<Value>(&t)
                            && let Some(kind) = v["payload"]["data"]["conversationEvents"]["type"].as_str()
                        {
                            let _ = tx.send((kind.to_owned(), at));
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                },
                _ = &mut closed => {
                    let _ = ws.close(None).await;
                    return;
                }
            }
        }
    });
    Ok(Window { events, closer })
}

#[derive(Default)]
struct Tally {
    send_ms: Vec<f64>,
    reply_ms: Vec<f64>,
    /// The replies to a chat's first turn, apart: issue 18 saw them slower than later ones.
    first_reply_ms: Vec<f64>,
    no_reply: usize,
    handed_over: usize,
    failed: usize,
    errors: Vec<String>,
}

/// What every chat shares.
struct Run {
    http: Arc<Http>,
    lines: Arc<Vec<String>>,
    reply_timeout: Duration,
    /// Turns due before this are warm-up, not counted.
    measured_from: Instant,
    tally: Arc<Mutex<Tally>>,
}

/// One chat: its window opens, its turns go out when due, each waits for the bot's reply.
async fn chat(run: Arc<Run>, token: String, due: Vec<Instant>, first_line: usize) {
    let Run {
        http,
        lines,
        reply_timeout,
        measured_from,
        tally,
    } = &*run;
    let (reply_timeout, measured_from) = (*reply_timeout, *measured_from);
    let fail = |why: String| {
        let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
        t.failed += 1;
        if t.errors.len() < 5 {
            t.errors.push(why);
        }
    };
    let conversation = match http.post(&token, START, json!({})).await {
        Ok(d) => d["startConversation"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        Err(e) => return fail(format!("startConversation: {e}")),
    };
    let mut window = match open_window(&http.addr, &token, &conversation).await {
        Ok(w) => w,
        Err(e) => return fail(format!("window: {e}")),
    };
    for (k, at) in due.into_iter().enumerate() {
        tokio::time::sleep_until(at.into()).await;
        let text = &lines[(first_line + k) % lines.len()];
        let sent = http
            .post(&token, SEND, json!({ "c": conversation, "t": text }))
            .await;
        let returned = Instant::now();
        if let Err(e) = sent {
            fail(format!("sendMessage: {e}"));
            continue;
        }
        let send_ms = returned.duration_since(at).as_secs_f64() * 1e3;
        // The bot's answer to this turn is its first reply or hand-off after the turn.
        let mut saw: Vec<String> = Vec::new();
        let reply = tokio::time::timeout(reply_timeout, async {
            let mut seen_turn = false;
            while let Some((kind, arrived)) = window.events.recv().await {
                saw.push(kind.clone());
                match kind.as_str() {
                    "CustomerTurnRecorded" => seen_turn = true,
                    "BotTurnRecorded" if seen_turn => return Some((Some(arrived), false)),
                    "HandedToHuman" if seen_turn => return Some((Some(arrived), true)),
                    // A hand-off that followed the turn before: a person answers this one.
                    "HandedToHuman" => return Some((None, true)),
                    _ => {}
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let counted = at >= measured_from;
        if send_ms > 1000.0 {
            let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
            if t.errors.len() < 5 {
                t.errors
                    .push(format!("turn {k} ({text:?}) took {send_ms:.0} ms to send"));
            }
        }
        let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
        if counted {
            t.send_ms.push(send_ms);
        }
        match reply {
            Some((arrived, handed_over)) => {
                if counted && let Some(arrived) = arrived {
                    let ms = arrived.saturating_duration_since(returned).as_secs_f64() * 1e3;
                    t.reply_ms.push(ms);
                    if k == 0 {
                        t.first_reply_ms.push(ms);
                    }
                }
                if handed_over {
                    // The customer now waits for a person: the chat's bot part is over.
                    t.handed_over += 1;
                    break;
                }
            }
            None if counted => {
                t.no_reply += 1;
                if t.errors.len() < 5 {
                    t.errors.push(format!(
                        "no answer to {text:?} within {} ms (sent in {send_ms:.0} ms; the window showed {saw:?})",
                        reply_timeout.as_millis()
                    ));
                }
            }
            None => {}
        }
    }
    let _ = window.closer.send(());
}

/// A schema of its own in the database `url` names (created if missing), so every run
/// starts from an empty log.
async fn fresh_schema(url: &str) -> anyhow::Result<String> {
    kefu_eventlog::postgres::ensure_database(url).await?;
    let schema = format!("load_{}", uuid::Uuid::now_v7().simple());
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await?;
    Ok(schema)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn questions(kb: &PathBuf) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(kb).with_context(|| format!("--kb {}", kb.display()))?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).context("a KB line")?;
        if let Some(q) = entry["question"].as_str() {
            out.push(q.to_owned());
        }
        for p in entry["paraphrases"].as_array().into_iter().flatten() {
            out.extend(p.as_str().map(str::to_owned));
        }
    }
    if out.is_empty() {
        bail!("{} holds no questions", kb.display());
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse(std::env::args().skip(1))?;
    let lines = Arc::new(questions(&args.kb)?);
    let schema = match &args.store {
        Some(url) if url.starts_with("postgres") => Some(fresh_schema(url).await?),
        _ => None,
    };
    let store = match (&args.store, &schema) {
        (Some(url), Some(schema)) => Some(format!(
            "{url}{}options=-c%20search_path%3D{schema}",
            if url.contains('?') { '&' } else { '?' }
        )),
        (store, _) => store.clone(),
    };
    let server = Server::start(&args.kefu, store.as_deref(), None, &[])?;
    let http = Arc::new(Http {
        addr: server.addr.clone(),
        idle: Mutex::new(Vec::new()),
    });
    let tokens: Vec<String> = (0..args.customers)
        .map(|_| server.token("customer", &uuid::Uuid::now_v7().to_string()))
        .collect::<anyhow::Result<_>>()?;
    // Wait for the read side to be up, as a load balancer would.
    server.ready(Duration::from_secs(300)).await?;

    // One chat answered end to end before the clock starts: what a server does once, at its
    // first turn (the router's model, the bot's knowledge base), is not load.
    let primed = Instant::now();
    let token = &tokens[0];
    let id = http.post(token, START, json!({})).await?["startConversation"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut window = open_window(&server.addr, token, &id).await?;
    http.post(token, SEND, json!({ "c": id, "t": lines[0] }))
        .await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(300), window.events.recv()).await {
            Ok(Some((kind, _))) if kind == "BotTurnRecorded" || kind == "HandedToHuman" => break,
            Ok(Some(_)) => continue,
            _ => bail!("the first turn was never answered"),
        }
    }
    let _ = window.closer.send(());
    eprintln!(
        "primed: the first turn answered in {:.1} s",
        primed.elapsed().as_secs_f64()
    );

    let rss_before = server.rss();
    let mut idle = Vec::new();
    for i in 0..args.windows {
        let token = &tokens[i % tokens.len()];
        let id = http.post(token, START, json!({})).await?["startConversation"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        idle.push(open_window(&server.addr, token, &id).await?);
    }
    let rss_windows = server.rss();

    let total_turns = (args.rate * args.secs).round() as usize;
    let chats = total_turns.div_ceil(args.turns);
    // Chats open a second before their first turn, so a window is up when it is due.
    let lead = Duration::from_secs(1);
    let t0 = Instant::now() + lead;
    // Turns due in the warm-up go out like the others and are not counted.
    let run = Arc::new(Run {
        http: http.clone(),
        lines: lines.clone(),
        reply_timeout: args.reply_timeout,
        measured_from: t0 + args.warmup,
        tally: Arc::new(Mutex::new(Tally::default())),
    });
    let (server_cpu0, own_cpu0) = (server.cpu(), cpu_of("/proc/self/stat"));
    let mut tasks = Vec::new();
    for c in 0..chats {
        // Chat c takes turns c*T .. c*T+T-1 of the schedule's first turns, then keeps its
        // gap: turn i of the run is due at i / rate in aggregate.
        let first = t0 + Duration::from_secs_f64((c * args.turns) as f64 / args.rate);
        let due: Vec<Instant> = (0..args.turns)
            .filter(|k| c * args.turns + k < total_turns)
            .map(|k| first + args.gap * k as u32)
            .collect();
        let opens = first.checked_sub(lead).unwrap_or(first);
        let (run, token) = (run.clone(), tokens[c % tokens.len()].clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(opens.into()).await;
            chat(run, token, due, c * 7).await;
        }));
    }
    for t in tasks {
        t.await?;
    }
    let wall = t0.elapsed().as_secs_f64();
    let (server_cpu, own_cpu) = (
        server.cpu() - server_cpu0,
        cpu_of("/proc/self/stat") - own_cpu0,
    );
    let rss_after = server.rss();
    drop(idle);
    drop(server);
    if let (Some(url), Some(schema)) = (&args.store, &schema) {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await?;
    }

    let mut t = std::mem::take(&mut *run.tally.lock().unwrap_or_else(|p| p.into_inner()));
    t.send_ms.sort_by(f64::total_cmp);
    t.reply_ms.sort_by(f64::total_cmp);
    t.first_reply_ms.sort_by(f64::total_cmp);
    let store = if args.store.is_some() {
        "postgres"
    } else {
        "embedded"
    };
    let per_window = if args.windows > 0 {
        rss_windows.saturating_sub(rss_before) as f64 / args.windows as f64 / 1024.0
    } else {
        0.0
    };
    let report = json!({
        "store": store,
        "rate": args.rate,
        "secs": args.secs,
        "windows": args.windows,
        "turns": t.send_ms.len(),
        "failed": t.failed,
        "no_reply": t.no_reply,
        "handed_over": t.handed_over,
        "send_ms": { "p50": percentile(&t.send_ms, 50.0), "p90": percentile(&t.send_ms, 90.0), "p99": percentile(&t.send_ms, 99.0), "max": percentile(&t.send_ms, 100.0) },
        "reply_ms": { "p50": percentile(&t.reply_ms, 50.0), "p90": percentile(&t.reply_ms, 90.0), "p99": percentile(&t.reply_ms, 99.0), "max": percentile(&t.reply_ms, 100.0) },
        "first_reply_ms": { "n": t.first_reply_ms.len(), "p50": percentile(&t.first_reply_ms, 50.0), "p90": percentile(&t.first_reply_ms, 90.0), "p99": percentile(&t.first_reply_ms, 99.0) },
        "server_cpu_share": server_cpu / wall,
        "generator_cpu_share": own_cpu / wall,
        "server_rss_mib": rss_after as f64 / (1024.0 * 1024.0),
        "kib_per_idle_window": per_window,
        "errors": t.errors,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "| store | turns/s | idle windows | turns counted | failed | no reply | handed over | send p50 / p99 / max ms | reply p50 / p99 / max ms | server CPU | generator CPU | KiB per idle window |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {store} | {} | {} | {} | {} | {} | {} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:.0}% | {:.0}% | {:.1} |",
            args.rate,
            args.windows,
            t.send_ms.len(),
            t.failed,
            t.no_reply,
            t.handed_over,
            percentile(&t.send_ms, 50.0),
            percentile(&t.send_ms, 99.0),
            percentile(&t.send_ms, 100.0),
            percentile(&t.reply_ms, 50.0),
            percentile(&t.reply_ms, 99.0),
            percentile(&t.reply_ms, 100.0),
            100.0 * server_cpu / wall,
            100.0 * own_cpu / wall,
            per_window,
        );
        eprintln!(
            "replies to a chat's first turn ({}): p50 / p90 / p99 {:.1} / {:.1} / {:.1} ms",
            t.first_reply_ms.len(),
            percentile(&t.first_reply_ms, 50.0),
            percentile(&t.first_reply_ms, 90.0),
            percentile(&t.first_reply_ms, 99.0),
        );
        for e in &t.errors {
            eprintln!("error: {e}");
        }
    }
    Ok(())
}
