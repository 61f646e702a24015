//! How long `kefu serve` takes to be ready on an existing log: the measure of issue 17's
//! warm starts.
//!
//! ```text
//! cargo build --release -p kefu-api --bin kefu -p kefu-tests --bin gen_history --bin cold_start
//! target/release/gen_history --store postgres://postgres@127.0.0.1:5432/kefu_cold1 --events 1000000 --seed 1
//! target/release/cold_start --kefu target/release/kefu --store postgres://postgres@127.0.0.1:5432/kefu_cold1 --restarts 3
//! ```
//!
//! Starts the server on the log `--store` names (the embedded store in `--data` when no
//! store is given), times from starting the process to `/readyz` answering 200, kills it
//! (SIGKILL, as a crash or an OOM kill would) and starts it again `--restarts` times on the
//! same data directory and store, so each restart finds the read models' and workers'
//! checkpoints. For each start it also says when the bot knew its knowledge base (its log
//! line) and whether that was a warm start (the entries it recorded) or a fold of the log.
//!
//! Options: `--kefu PATH` (required), `--store URL`, `--data DIR` (default: a temporary
//! directory, kept across the starts), `--restarts N` (3).

#[path = "support/server.rs"]
mod server;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use server::Server;

const KNOWS: &str = "the bot knows its knowledge base";
const WARM: &str = "warm start: the bot loaded";

struct Args {
    kefu: PathBuf,
    store: Option<String>,
    data: Option<PathBuf>,
    restarts: usize,
}

fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut a = Args {
        kefu: PathBuf::new(),
        store: None,
        data: None,
        restarts: 3,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--kefu" => a.kefu = value()?.into(),
            "--store" => a.store = Some(value()?),
            "--data" => a.data = Some(value()?.into()),
            "--restarts" => {
                let v = value()?;
                a.restarts = v
                    .parse()
                    .with_context(|| format!("--restarts: {v:?} is not a count"))?;
            }
            other => bail!("unknown option {other:?} (see the module docs of cold_start.rs)"),
        }
    }
    if a.kefu.as_os_str().is_empty() {
        bail!("--kefu PATH is required");
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse(std::env::args().skip(1))?;
    let temp = tempfile::tempdir()?;
    let data = args.data.unwrap_or_else(|| temp.path().join("data"));
    println!("| start | ready (s) | bot knew its KB (s) | how |");
    println!("|---|---:|---:|---|");
    for n in 0..=args.restarts {
        let server = Server::start(
            &args.kefu,
            args.store.as_deref(),
            Some(&data),
            &[KNOWS, WARM],
        )?;
        let ready = server.ready(Duration::from_secs(7200)).await?;
        // The bot starts before the server is ready; its line has come by now.
        let knew = server.said(KNOWS);
        let how = if server.said(WARM).is_some() {
            "warm: recorded entries"
        } else {
            "folded the log"
        };
        println!(
            "| {} | {:.2} | {} | {how} |",
            if n == 0 {
                "first".to_owned()
            } else {
                format!("restart {n}")
            },
            ready.as_secs_f64(),
            knew.map_or("-".to_owned(), |d| format!("{:.2}", d.as_secs_f64())),
        );
        drop(server);
    }
    Ok(())
}
