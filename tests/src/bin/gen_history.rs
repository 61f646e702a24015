//! Writes a generated customer-service history into a store and prints a one-line JSON
//! summary.
//!
//! ```text
//! cargo run --release -p kefu-tests --bin gen_history -- \
//!     --store postgres://postgres@127.0.0.1:5432/kefu_bench --events 1000000 --seed 1
//! ```
//!
//! Options: `--store URL` (a PostgreSQL URL or an SQLite path; required), `--events N`
//! (about N events, default 1,000,000) or `--conversations N`, `--seed S` (default 1),
//! `--days D` (override the period), `--concurrency C` (appends in flight, default 32).
//! Write into an empty store: the plan creates every stream it writes to. A PostgreSQL
//! database that does not exist yet is created, as `kefu` creates it.

use std::time::Instant;

use anyhow::{Context, bail};
use kefu_eventlog::{EventLog, StoreConfig};
use kefu_tests::history::{HistoryConfig, write};
use serde_json::json;

struct Args {
    store: String,
    events: Option<u64>,
    conversations: Option<u64>,
    seed: u64,
    days: Option<u32>,
    concurrency: usize,
}

fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut parsed = Args {
        store: String::new(),
        events: None,
        conversations: None,
        seed: 1,
        days: None,
        concurrency: 32,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--store" => parsed.store = value()?,
            "--events" => parsed.events = Some(value()?.parse().context("--events")?),
            "--conversations" => {
                parsed.conversations = Some(value()?.parse().context("--conversations")?)
            }
            "--seed" => parsed.seed = value()?.parse().context("--seed")?,
            "--days" => parsed.days = Some(value()?.parse().context("--days")?),
            "--concurrency" => parsed.concurrency = value()?.parse().context("--concurrency")?,
            "-h" | "--help" => {
                println!(
                    "gen_history --store URL [--events N | --conversations N] [--seed S] [--days D] [--concurrency C]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if parsed.store.is_empty() {
        bail!("--store URL is required (a postgres:// URL or an SQLite file path)");
    }
    if parsed.events.is_some() && parsed.conversations.is_some() {
        bail!("give --events or --conversations, not both");
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse(std::env::args().skip(1))?;
    let mut config = match args.conversations {
        Some(n) => HistoryConfig::for_conversations(n),
        None => HistoryConfig::for_events(args.events.unwrap_or(1_000_000)),
    }
    .with_seed(args.seed);
    if let Some(days) = args.days {
        config.days = days;
    }
    config.validate()?;
    let mut store = StoreConfig::from_url(&args.store)?;
    if let StoreConfig::Postgres(pg) = &mut store {
        pg.pool_size = args.concurrency.max(1);
        // As `kefu` does: a demo database is one command, not a `createdb` first.
        kefu_eventlog::postgres::ensure_database(&pg.url)
            .await
            .context("cannot reach or create the database")?;
    }
    let log = store.open().await.context("opening the store")?;
    let backend = log.backend();
    let started = Instant::now();
    let summary = write(&log, &config, args.concurrency).await?;
    let seconds = started.elapsed().as_secs_f64();
    let line = json!({
        "backend": backend,
        "seed": config.seed,
        "days": config.days,
        "agents": config.agents,
        "events": summary.events,
        "appends": summary.appends,
        "streams": summary.streams,
        "conversations": summary.conversations,
        "contained_by_bot": summary.contained_by_bot,
        "handed_over": summary.handed_over,
        "surveys_answered": summary.surveys_answered,
        "tickets": summary.tickets,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "events_per_sec": (summary.events as f64 / seconds.max(1e-9)).round(),
    });
    println!("{line}");
    Ok(())
}
