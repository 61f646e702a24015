//! Append throughput and latency on PostgreSQL, against the ceiling of plain INSERTs.
//!
//! `cargo bench -p kefu-eventlog --bench append`
//!
//! For 1, 8 and 64 concurrent writers and batches of 1 and 10 events, each writer appends to a
//! stream of its own with an exact expected version (what the command service does) for a fixed
//! time; then the same writers INSERT rows of the same size into a bare table (no keys, no
//! indexes) over the same pool, one autocommit INSERT per batch, taking a pooled connection
//! for each as the log does. No event store on this server
//! can beat the second figure; the ratio is what the log's guarantees cost.
//!
//! Environment: `KEFU_BENCH_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/kefu_bench`), `KEFU_BENCH_SECONDS` per measurement
//! (default 5), `KEFU_BENCH_ROUNDS` (default 3: each side is measured that many times,
//! alternating which goes first, and the median round is reported), `KEFU_BENCH_APPEND_CONCURRENCY`
//! (the log's appender tasks; default `DEFAULT_APPEND_CONCURRENCY`). Prints a Markdown table
//! for BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kefu_eventlog::postgres::{PostgresConfig, PostgresLog, ensure_database};
use kefu_eventlog::{Actor, ActorKind, EventLog, ExpectedVersion, Metadata, NewEvent, StreamId};
use serde_json::json;
use uuid::Uuid;

const WRITERS: [usize; 3] = [1, 8, 64];
const BATCHES: [usize; 2] = [1, 10];

struct Run {
    events: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l[((l.len() as f64 - 1.0) * p).round() as usize]
    }
}

fn payload(n: u64) -> serde_json::Value {
    // About the size of a customer turn: a sentence, a few ids and flags.
    json!({
        "conversation_id": Uuid::now_v7(),
        "turn": n,
        "text": "我的快递三天了还没到，订单号 8812345678，能帮我查一下吗？",
        "channel": "app",
        "locale": "zh",
    })
}

fn batch(size: usize, n: u64) -> Vec<NewEvent> {
    let correlation = Uuid::now_v7();
    (0..size as u64)
        .map(|i| {
            NewEvent::new(
                "CustomerTurnRecorded",
                payload(n + i),
                Metadata::for_request(Actor::new(ActorKind::Customer, "c-42"), correlation),
            )
        })
        .collect()
}

async fn run_log(log: Arc<PostgresLog>, writers: usize, size: usize, time: Duration) -> Run {
    let start = Instant::now();
    let deadline = start + time;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                let stream = StreamId::of("conversation", Uuid::now_v7()).unwrap();
                let mut expected = ExpectedVersion::NoStream;
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let events = batch(size, n);
                    let t = Instant::now();
                    let a = log
                        .append(&stream, expected, events)
                        .await
                        .unwrap_or_else(|e| panic!("writer {w}: {e}"));
                    latencies.push(t.elapsed());
                    expected = ExpectedVersion::Exact(a.last_version);
                    n += size as u64;
                }
                latencies
            })
        })
        .collect();
    collect(tasks, size, start).await
}

async fn run_plain(log: Arc<PostgresLog>, writers: usize, size: usize, time: Duration) -> Run {
    let start = Instant::now();
    let deadline = start + time;
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let log = log.clone();
            tokio::spawn(async move {
                let values: Vec<String> = (1..=size)
                    .map(|i| {
                        let b = (i - 1) * 7;
                        format!(
                            "(${}, ${}, ${}, ${}, 1, ${}::text::jsonb, 'customer', 'c-42', ${}, ${}, NULL)",
                            b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7
                        )
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO bench_plain (id, stream_id, version, event_type, schema_version, \
                     payload, actor_kind, actor_id, correlation_id, causation_id, trace_id) VALUES {}",
                    values.join(", ")
                );
                let stream = format!("conversation-{}", Uuid::now_v7());
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let events = batch(size, n);
                    let rows: Vec<(Uuid, i64, String, Uuid, Uuid)> = events
                        .iter()
                        .enumerate()
                        .map(|(i, e)| {
                            (
                                e.id,
                                (n + i as u64) as i64,
                                serde_json::to_string(&e.payload).unwrap(),
                                e.metadata.correlation_id,
                                e.metadata.causation_id,
                            )
                        })
                        .collect();
                    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
                    for r in &rows {
                        params.push(&r.0);
                        params.push(&stream);
                        params.push(&r.1);
                        params.push(&"CustomerTurnRecorded");
                        params.push(&r.2);
                        params.push(&r.3);
                        params.push(&r.4);
                    }
                    let t = Instant::now();
                    // A connection from the pool per INSERT, as the log takes one per append.
                    let client = log.pool().get().await.expect("pool");
                    let stmt = client.prepare_cached(&sql).await.expect("prepare");
                    client.execute(&stmt, &params).await.expect("insert");
                    latencies.push(t.elapsed());
                    n += size as u64;
                }
                latencies
            })
        })
        .collect();
    collect(tasks, size, start).await
}

async fn collect(
    tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>,
    size: usize,
    start: Instant,
) -> Run {
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("writer"));
    }
    let elapsed = start.elapsed();
    let batches = latencies.len() as u64;
    Run {
        events: batches * size as u64,
        elapsed,
        latencies,
    }
}

/// The round with the median rate.
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.events_per_sec().total_cmp(&b.events_per_sec()));
    runs.swap_remove(runs.len() / 2)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo bench` passes `--bench`; this binary takes no arguments of its own.
    let url = std::env::var("KEFU_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/kefu_bench".to_owned());
    let secs: u64 = std::env::var("KEFU_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rounds: usize = std::env::var("KEFU_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let time = Duration::from_secs(secs);
    ensure_database(&url).await.expect("bench database");
    let schema = format!("bench_{}", Uuid::now_v7().simple());
    let mut config = PostgresConfig::new(&url).with_schema(&schema);
    config.pool_size = 64;
    if let Some(n) = std::env::var("KEFU_BENCH_APPEND_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        config.append_concurrency = n;
    }
    println!(
        "append_concurrency = {}, {secs} s a measurement, {rounds} rounds\n",
        config.append_concurrency
    );
    let log = Arc::new(PostgresLog::open(config).await.expect("open log"));
    {
        let client = log.pool().get().await.unwrap();
        client
            .batch_execute(
                "CREATE TABLE bench_plain (
                    id uuid, stream_id text, version bigint, event_type text,
                    schema_version integer, payload jsonb, recorded_at timestamptz DEFAULT now(),
                    actor_kind text, actor_id text, correlation_id uuid, causation_id uuid,
                    trace_id text)",
            )
            .await
            .unwrap();
    }
    // Warm the pool and the caches so the first measurement does not pay for connecting.
    run_log(log.clone(), 64, 1, Duration::from_millis(500)).await;
    run_plain(log.clone(), 64, 1, Duration::from_millis(500)).await;

    println!(
        "| writers | batch | log events/s | log p50 ms | log p99 ms | plain INSERT events/s | plain p50 ms | plain p99 ms | log / plain |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for writers in WRITERS {
        for size in BATCHES {
            // Alternate which side goes first, so drift in the server (checkpoints, autovacuum,
            // the disk's cache) does not always land on the same side; report the median round.
            let (mut logs, mut plains) = (Vec::new(), Vec::new());
            for round in 0..rounds {
                if round % 2 == 0 {
                    logs.push(run_log(log.clone(), writers, size, time).await);
                    plains.push(run_plain(log.clone(), writers, size, time).await);
                } else {
                    plains.push(run_plain(log.clone(), writers, size, time).await);
                    logs.push(run_log(log.clone(), writers, size, time).await);
                }
            }
            let (l, p) = (median(logs), median(plains));
            println!(
                "| {writers} | {size} | {:.0} | {} | {} | {:.0} | {} | {} | {:.0}% |",
                l.events_per_sec(),
                ms(l.percentile(0.5)),
                ms(l.percentile(0.99)),
                p.events_per_sec(),
                ms(p.percentile(0.5)),
                ms(p.percentile(0.99)),
                100.0 * l.events_per_sec() / p.events_per_sec(),
            );
        }
    }
    let client = log.pool().get().await.unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}
