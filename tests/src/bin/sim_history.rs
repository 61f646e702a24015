//! Writes a history made by the simulation of the desk (`kefu_tests::sim`) into a store and
//! prints a one-line JSON summary: a history whose bot replies, hand-offs and routes are the
//! production reactions' own, with the reactions keeping up with people as they do in
//! production. It is what `kefu whatif` can replay and compare against (the README's worked
//! example); `gen_history` writes far bigger histories faster, but restates the reactions
//! instead of running them, so a replay does not reproduce its bot's decisions.
//!
//! ```text
//! cargo run --release -p kefu-tests --bin sim_history -- --store data/kefu.db --customers 200 --seed 1
//! ```
//!
//! Options: `--store URL` (a PostgreSQL URL or an SQLite path; required; write into an empty
//! store), `--customers N` (chats started, at most; default 200), `--agents N` (6),
//! `--steps N` (people's requests and workers' batches; default 12 per customer),
//! `--seed S` (1). The simulated day starts on 2026-03-02 at 01:00 UTC.

use anyhow::{Context, bail};
use kefu_eventlog::{EventLog, ExpectedVersion, NewEvent, StoreConfig};
use kefu_tests::sim::{self, SimConfig};
use serde_json::json;

fn main() -> anyhow::Result<()> {
    let mut store = String::new();
    let (mut customers, mut agents, mut steps, mut seed) = (200usize, 6usize, None, 1u64);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--store" => store = value()?,
            "--customers" => customers = value()?.parse().context("--customers")?,
            "--agents" => agents = value()?.parse().context("--agents")?,
            "--steps" => steps = Some(value()?.parse().context("--steps")?),
            "--seed" => seed = value()?.parse().context("--seed")?,
            "-h" | "--help" => {
                println!(
                    "sim_history --store URL [--customers N] [--agents N] [--steps N] [--seed S]"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if store.is_empty() {
        bail!("--store URL is required (a postgres:// URL or an SQLite file path)");
    }
    if customers == 0 || agents == 0 {
        bail!("--customers and --agents must be at least 1");
    }
    let config = SimConfig {
        customers,
        agents,
        steps: steps.unwrap_or(customers * 12),
        faults: false,
        keep_up: true,
    };
    let run = sim::run_blocking(seed, &config).context("the simulation failed")?;
    let violations = run.violations();
    if !violations.is_empty() {
        bail!("the simulated history breaks the desk's invariants: {violations:?}");
    }
    tokio::runtime::Runtime::new()?.block_on(async {
        let config = StoreConfig::from_url(&store)?;
        if let StoreConfig::Postgres(pg) = &config {
            kefu_eventlog::postgres::ensure_database(&pg.url)
                .await
                .context("cannot reach or create the database")?;
        }
        let log = config.open().await.context("opening the store")?;
        if log.head().await?.is_some() {
            bail!("{store} already holds events: write a simulated history into an empty store");
        }
        for e in &run.events {
            log.append(
                &e.stream_id,
                ExpectedVersion::Any,
                vec![NewEvent::copy_of(e)],
            )
            .await?;
        }
        let first = run
            .events
            .first()
            .and_then(|e| kefu_feed::business_time(&e.payload));
        let last = run
            .events
            .last()
            .and_then(|e| kefu_feed::business_time(&e.payload));
        println!(
            "{}",
            json!({
                "backend": log.backend(),
                "seed": seed,
                "events": run.events.len(),
                "customers": customers,
                "agents": agents,
                "from": first,
                "to": last,
            })
        );
        Ok(())
    })
}
