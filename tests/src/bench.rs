//! What the read-side benchmarks share: their settings from the environment, and a log on
//! PostgreSQL holding a generated history (generated on first use).

use std::time::Instant;

use kefu_eventlog::EventLog;
use kefu_eventlog::postgres::{PostgresConfig, PostgresLog, ensure_database};
use tokio_postgres::NoTls;

use crate::history::{HistoryConfig, write};

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// `KEFU_BENCH_URL`, default `postgres://postgres@127.0.0.1:5432/kefu_bench`.
pub fn url() -> String {
    env_or(
        "KEFU_BENCH_URL",
        "postgres://postgres@127.0.0.1:5432/kefu_bench",
    )
}

/// Runs SQL against the benchmark database.
pub async fn sql(statements: &str) {
    let (client, conn) = tokio_postgres::connect(&url(), NoTls)
        .await
        .expect("connect to the benchmark database");
    tokio::spawn(conn);
    client.batch_execute(statements).await.expect("run SQL");
}

/// The log in schema `KEFU_BENCH_SCHEMA` (default `bench_history`), holding a history of
/// about `KEFU_BENCH_EVENTS` events (default 1,000,000) generated with seed 1 when the schema
/// is empty, or when `KEFU_BENCH_FRESH=1`.
pub async fn history_log() -> PostgresLog {
    let url = url();
    let events: u64 = env_or("KEFU_BENCH_EVENTS", "1000000")
        .parse()
        .expect("KEFU_BENCH_EVENTS is a number");
    let schema = env_or("KEFU_BENCH_SCHEMA", "bench_history");
    ensure_database(&url).await.expect("the benchmark database");
    if env_or("KEFU_BENCH_FRESH", "0") == "1" {
        sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
    }
    let log = PostgresLog::open(PostgresConfig::new(&url).with_schema(&schema))
        .await
        .expect("open the log");
    if log.head().await.expect("head").is_none() {
        let started = Instant::now();
        let summary = write(&log, &HistoryConfig::for_events(events), 16)
            .await
            .expect("generate the history");
        eprintln!(
            "generated {} events in {:.0} s: {}",
            summary.events,
            started.elapsed().as_secs_f64(),
            summary.to_json()
        );
    }
    log
}
