//! `kefu`: the server and the operator's command-line tool.
//!
//! With no configuration every command uses the embedded store under `./data`; `--store` (or
//! `KEFU_STORE`) points it at PostgreSQL or, in builds with the `kurrentdb` feature, KurrentDB.

mod config;
mod log_cmd;
mod serve;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::StoreArgs;

#[derive(Parser)]
#[command(
    name = "kefu",
    version,
    about = "Event-sourced customer-service backend"
)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTP on --listen).
    Serve(serve::ServeArgs),
    /// Open the store, apply its migrations, and exit.
    Migrate,
    /// Read and write the event log directly (analysts, auditors, operators).
    #[command(subcommand)]
    Log(log_cmd::LogCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes on one line; a backtrace is for bugs, not for bad input.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEFU_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(&cli.store, args).await,
        Command::Migrate => {
            let log = cli.store.open().await?;
            tracing::info!(
                backend = kefu_eventlog::EventLog::backend(&log),
                "store is up to date"
            );
            Ok(())
        }
        Command::Log(cmd) => log_cmd::run(&cli.store, cmd).await,
    }
}
