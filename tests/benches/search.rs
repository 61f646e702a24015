//! Search: building the index from the log, and query latency against PostgreSQL full-text
//! search (a GIN index on `to_tsvector`) over the same messages, in the same run. Not a test:
//! figures go to BENCHMARKS.md with the command that made them.
//!
//! ```text
//! cargo bench -p kefu-tests --bench search
//! ```
//!
//! Environment as for the `projections` bench (`KEFU_BENCH_URL`, `KEFU_BENCH_SCHEMA`, …), plus
//! `KEFU_BENCH_QUERIES` (default 1000). PostgreSQL's parser does not split Chinese into words,
//! so it is given the very words kefu's analyzer makes (jieba), space-separated, in a stored
//! `tsvector` column with a GIN index, and each query as those words OR'ed: both engines
//! answer the same question, ranked (BM25 against `ts_rank`), top 10.

use std::time::{Duration, Instant};

use kefu_domain::DomainEvent;
use kefu_domain::conversation::ConversationEvent as C;
use kefu_eventlog::{EventLog, Position};
use kefu_projections::search::{DocKind, SearchIndex, SearchRequest, catch_up_search, terms};
use kefu_tests::bench::{env_or, history_log, url};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tokio_postgres::NoTls;

const FTS_SCHEMA: &str = "bench_fts";

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let url = url();
    let queries: usize = env_or("KEFU_BENCH_QUERIES", "1000")
        .parse()
        .expect("a number");
    let log = history_log().await;

    // The index, built from the log.
    let dir = tempfile::tempdir().expect("temp dir");
    let index = SearchIndex::recreate(dir.path().join("index")).expect("index");
    let (index, report) = catch_up_search(&log, index, |_| {}).await.expect("build");
    let reader = index.reader();
    let indexed = reader.count(DocKind::Message).expect("count");

    // The same messages, for PostgreSQL.
    let (client, conn) = tokio_postgres::connect(&url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {FTS_SCHEMA} CASCADE; CREATE SCHEMA {FTS_SCHEMA};
             CREATE TABLE {FTS_SCHEMA}.messages (
                 id bigserial PRIMARY KEY,
                 words text NOT NULL,
                 tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', words)) STORED
             );"
        ))
        .await
        .expect("create the table");
    let mut texts: Vec<String> = Vec::new();
    let mut from = Position::START;
    loop {
        let page = log.read_all(from, 1000).await.expect("read");
        let Some(last) = page.last() else { break };
        from = last.position.next();
        for e in page
            .iter()
            .filter(|e| e.stream_id.category() == "conversation")
        {
            let Ok(event) = C::decode(&e.event_type, e.schema_version, e.payload.clone()) else {
                continue;
            };
            let text = match event {
                C::CustomerTurnRecorded(t) => t.text,
                C::BotTurnRecorded(t) => t.text,
                C::AgentTurnRecorded(t) => t.text,
                C::InternalNoteAdded(n) => n.text,
                _ => continue,
            };
            texts.push(terms(&text).join(" "));
        }
    }
    let loading = Instant::now();
    for chunk in texts.chunks(5000) {
        client
            .execute(
                &format!("INSERT INTO {FTS_SCHEMA}.messages (words) SELECT unnest($1::text[])"),
                &[&chunk],
            )
            .await
            .expect("load messages");
    }
    client
        .batch_execute(&format!(
            "CREATE INDEX messages_fts ON {FTS_SCHEMA}.messages USING gin (tsv);
             ANALYZE {FTS_SCHEMA}.messages;"
        ))
        .await
        .expect("index messages");
    let pg_load = loading.elapsed();

    // Queries: two or three words taken from random messages, as a customer would type them.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let candidates: Vec<Vec<&str>> = texts
        .iter()
        .map(|t| {
            t.split(' ')
                .filter(|w| w.chars().count() > 1)
                .collect::<Vec<_>>()
        })
        .filter(|w| w.len() >= 3)
        .collect();
    let asked: Vec<Vec<String>> = (0..queries)
        .map(|_| {
            let words = candidates.choose(&mut rng).expect("messages with words");
            let n = rng.random_range(2..=3);
            let start = rng.random_range(0..=words.len() - n);
            words[start..start + n]
                .iter()
                .map(|w| w.to_string())
                .collect()
        })
        .collect();

    let stmt = client
        .prepare(&format!(
            "SELECT id, ts_rank(tsv, q) AS rank
             FROM {FTS_SCHEMA}.messages, to_tsquery('simple', $1) q
             WHERE tsv @@ q ORDER BY rank DESC LIMIT 10"
        ))
        .await
        .expect("prepare");
    let mut kefu_times = Vec::with_capacity(queries);
    let mut pg_times = Vec::with_capacity(queries);
    let (mut kefu_found, mut pg_found) = (0usize, 0usize);
    for words in &asked {
        let request = SearchRequest::new(words.join(" "))
            .kind(DocKind::Message)
            .page(10, 0);
        let t = Instant::now();
        let hits = reader.search(&request).expect("search");
        kefu_times.push(t.elapsed());
        kefu_found += usize::from(!hits.hits.is_empty());

        let quoted: Vec<String> = words
            .iter()
            .map(|w| format!("'{}'", w.replace('\'', "''").replace('\\', "\\\\")))
            .collect();
        let t = Instant::now();
        let rows = client
            .query(&stmt, &[&quoted.join(" | ")])
            .await
            .expect("pg search");
        pg_times.push(t.elapsed());
        pg_found += usize::from(!rows.is_empty());
    }
    kefu_times.sort();
    pg_times.sort();
    println!(
        "index build: {} events in {:.1} s ({:.0} events/s), {indexed} message documents",
        report.read,
        report.elapsed.as_secs_f64(),
        report.events_per_sec()
    );
    println!(
        "PostgreSQL: {} messages loaded and GIN-indexed in {:.1} s",
        texts.len(),
        pg_load.as_secs_f64()
    );
    println!();
    println!("| engine | p50 ms | p99 ms | max ms | queries with a hit |");
    println!("|---|---:|---:|---:|---:|");
    for (name, times, found) in [
        (
            "kefu (tantivy + jieba, BM25 top 10)",
            &kefu_times,
            kefu_found,
        ),
        (
            "PostgreSQL (GIN to_tsvector, ts_rank top 10)",
            &pg_times,
            pg_found,
        ),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {found} / {queries} |",
            percentile(times, 0.5),
            percentile(times, 0.99),
            percentile(times, 1.0),
        );
    }
    println!();
    println!(
        "p99 ratio: PostgreSQL / kefu = {:.1}x; p50 ratio = {:.1}x",
        percentile(&pg_times, 0.99) / percentile(&kefu_times, 0.99),
        percentile(&pg_times, 0.5) / percentile(&kefu_times, 0.5)
    );
    drop(index);
}
