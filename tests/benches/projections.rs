//! Projection rebuild rates against the raw read rate of the same log, on PostgreSQL, over a
//! generated history of a help desk (1,000,000 events by default). Not a test: figures go to
//! BENCHMARKS.md with the command that made them.
//!
//! ```text
//! cargo bench -p kefu-tests --bench projections
//! ```
//!
//! Environment: `KEFU_BENCH_URL` (default `postgres://postgres@127.0.0.1:5432/kefu_bench`),
//! `KEFU_BENCH_EVENTS` (default 1,000,000), `KEFU_BENCH_SCHEMA` (the log's schema, default
//! `bench_history`; the history is generated there when it is empty), `KEFU_BENCH_FRESH=1` to
//! regenerate it even if the schema already holds one.

use std::time::Instant;

use kefu_eventlog::postgres::PostgresLog;
use kefu_eventlog::{EventLog, Position};
use kefu_projections::{ReadStore, Until, rebuild};
use kefu_tests::bench::{history_log, sql, url};

const READ_SCHEMA: &str = "bench_read";

/// Pages through the whole log; returns events and seconds.
async fn read_everything(log: &PostgresLog, decode: bool) -> (u64, f64) {
    let started = Instant::now();
    let mut from = Position::START;
    let mut n = 0u64;
    loop {
        let page = log.read_all(from, 1000).await.expect("read");
        let Some(last) = page.last() else { break };
        from = last.position.next();
        n += page.len() as u64;
        if decode {
            for e in &page {
                std::hint::black_box(kefu_feed::decode_or_other(e));
            }
        }
    }
    (n, started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let url = url();
    let log = history_log().await;

    // Warm the server's cache so the first contender does not pay for the disk.
    read_everything(&log, false).await;
    let (n, raw_secs) = read_everything(&log, false).await;
    let raw = n as f64 / raw_secs;
    let (_, decode_secs) = read_everything(&log, true).await;
    let decoded = n as f64 / decode_secs;
    println!("history: {n} events");
    println!();
    println!("| what | events/s | seconds | of raw read |");
    println!("|---|---:|---:|---:|");
    println!("| raw read (`read_all`, pages of 1000) | {raw:.0} | {raw_secs:.1} | 100% |");
    println!(
        "| read + decode every event | {decoded:.0} | {decode_secs:.1} | {:.0}% |",
        decoded / raw * 100.0
    );

    sql(&format!("DROP SCHEMA IF EXISTS {READ_SCHEMA} CASCADE")).await;
    let store = ReadStore::open_postgres(&url, Some(READ_SCHEMA))
        .await
        .expect("read store");
    let mut runs: Vec<(String, Vec<Box<dyn kefu_projections::Projection>>)> =
        kefu_projections::NAMES
            .iter()
            .map(|name| {
                (
                    format!("rebuild `{name}` alone"),
                    kefu_projections::by_names(&[name.to_string()]).expect("known"),
                )
            })
            .collect();
    runs.push((
        "rebuild all four together (one read)".into(),
        kefu_projections::all(),
    ));
    // KEFU_BENCH_ONLY=stats,all runs only those (for profiling one projection).
    let only = std::env::var("KEFU_BENCH_ONLY").ok();
    let wanted = |label: &str| {
        only.as_deref().is_none_or(|o| {
            o.split(',').any(|w| {
                label.contains(&format!("`{w}`")) || (w == "all" && label.contains("all four"))
            })
        })
    };
    println!();
    println!(
        "Rebuilds: the whole blue-green `rebuild` (new generation, catch-up, secondary indexes, \
         swap, old generation dropped); in the last two columns, the catch-up alone."
    );
    println!();
    println!("| what | events/s | seconds | of raw read | catch-up events/s | of raw read |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, projections) in runs.into_iter().filter(|(l, _)| wanted(l)) {
        let started = Instant::now();
        let (_, report) = rebuild(&log, &store, projections, Until::default(), |_| {})
            .await
            .expect("rebuild");
        let secs = started.elapsed().as_secs_f64();
        let rate = report.read as f64 / secs;
        let catch_up = report.events_per_sec();
        println!(
            "| {label} | {rate:.0} | {secs:.1} | {:.0}% | {catch_up:.0} | {:.0}% |",
            rate / raw * 100.0,
            catch_up / raw * 100.0
        );
    }

    // What an analyst waits for: `kefu query stats` (View::stats) on the live statistics,
    // each grouping asked three times, the median kept.
    let Ok(stats) = kefu_projections::ReadModels::open(store.clone())
        .await
        .expect("read models")
        .live("stats")
        .await
    else {
        return;
    };
    println!();
    println!("| statistics grouped by | rows | median ms of 3 |");
    println!("|---|---:|---:|");
    use kefu_projections::stats::{StatsFilter, StatsGroup};
    for (label, group) in [
        ("total", StatsGroup::Total),
        ("day", StatsGroup::Day),
        ("week", StatsGroup::Week),
        ("hour", StatsGroup::Hour),
        ("queue", StatsGroup::Queue),
        ("agent", StatsGroup::Agent),
        ("handoff_reason", StatsGroup::HandoffReason),
    ] {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..3 {
            let started = Instant::now();
            rows = stats
                .stats(&StatsFilter::default(), group, chrono::Duration::hours(8))
                .await
                .expect("stats")
                .len();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!("| {label} | {rows} | {:.0} |", times[1]);
    }
}
