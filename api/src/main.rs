//! `kefu`: the server and the operator's command-line tool.
//!
//! With no configuration every command uses the embedded store under `./data`; `--store` (or
//! `KEFU_STORE`) points it at PostgreSQL or, in builds with the `kurrentdb` feature, KurrentDB.

mod archive_cmd;
mod auth;
mod bot_cmd;
mod clock;
mod config;
mod desk;
mod graphiql;
mod graphql;
mod health;
mod hub;
mod log_cmd;
mod metrics;
mod output;
mod progress;
mod read_cmd;
mod serve;
mod whatif_cmd;
mod worker_cmd;

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
    /// Run the server: GraphQL on --listen (POST /graphql, WebSocket /graphql/ws, GraphiQL at
    /// /), /healthz, /readyz and /metrics.
    Serve(serve::ServeArgs),
    /// Run one worker alone, against the PostgreSQL store a `kefu serve` keeps read models in.
    Worker {
        #[arg(value_enum)]
        name: worker_cmd::WorkerName,
        #[command(flatten)]
        tuning: worker_cmd::WorkerArgs,
    },
    /// Mint a bearer token for development and tests (signed with the server's secret).
    Token(TokenArgs),
    /// Print the GraphQL schema (SDL), as schemas/schema.graphql holds it.
    Schema,
    /// Open the store, apply its migrations, and exit.
    Migrate,
    /// Read and write the event log directly (analysts, auditors, operators).
    #[command(subcommand)]
    Log(log_cmd::LogCommand),
    /// The archive of old events: `list`, `verify`, `recover`.
    #[command(subcommand)]
    Archive(archive_cmd::ArchiveCommand),
    /// Rebuild read models from the log beside the live ones and swap them in (blue-green),
    /// or build them as of a past time or position for analysts.
    Replay(read_cmd::ReplayArgs),
    /// The read models' generations and checkpoints.
    #[command(subcommand)]
    Projections(read_cmd::ProjectionsCommand),
    /// Ask the read models: queues, statistics, conversations, tickets, audit trails (as
    /// JSON lines, JSON, CSV or a table: --format).
    Query {
        #[command(flatten)]
        options: read_cmd::QueryOptions,
        #[command(subcommand)]
        query: read_cmd::QueryCommand,
    },
    /// Evaluate the bot's models on labelled files (no store): intents, faq, emotion.
    #[command(subcommand)]
    Eval(bot_cmd::EvalCommand),
    /// Train the bot's models: `ranker`.
    #[command(subcommand)]
    Train(bot_cmd::TrainCommand),
    /// The knowledge base: `import`.
    #[command(subcommand)]
    Kb(bot_cmd::KbCommand),
    /// Play a recorded window of chats again through the production bot and triage, on a
    /// scratch log (never the store), unchanged and with other bot thresholds, and compare
    /// both with the record per hour.
    Whatif(whatif_cmd::WhatIfArgs),
}

#[derive(clap::Args)]
struct TokenArgs {
    /// customer, agent, supervisor, analyst, auditor, admin or integration (the order system).
    #[arg(long)]
    role: String,
    /// The customer's or agent's UUID; a name for the other roles.
    #[arg(long)]
    id: String,
    /// A queue a supervisor runs (repeat for several).
    #[arg(long = "queue")]
    queues: Vec<String>,
    /// How long the token is valid.
    #[arg(long, default_value_t = 24)]
    ttl_hours: i64,
    #[command(flatten)]
    secret: serve::SecretArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        // `kefu query … | head`: the reader has what it wanted.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
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
        .with_writer(progress::LogWriter)
        // Colour codes only for a person at a terminal, not in log files or pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(&cli.store, args).await,
        Command::Worker { name, tuning } => worker_cmd::run(&cli.store, name, &tuning).await,
        Command::Token(args) => {
            let tokens = args.secret.tokens(&cli.store)?;
            let role: auth::Role = args.role.parse()?;
            if matches!(role, auth::Role::Customer | auth::Role::Agent) {
                args.id.parse::<uuid::Uuid>().map_err(|_| {
                    anyhow::anyhow!("--id: a {role} is named by a UUID, not {:?}", args.id)
                })?;
            }
            if args.ttl_hours <= 0 {
                anyhow::bail!("--ttl-hours must be positive");
            }
            let who = auth::Principal {
                role,
                id: args.id,
                queues: args.queues.into_iter().collect(),
            };
            let token = tokens.mint(
                &who,
                chrono::Utc::now(),
                chrono::Duration::hours(args.ttl_hours),
            );
            println!("{token}");
            Ok(())
        }
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::Migrate => {
            let log = cli.store.open().await?;
            tracing::info!(
                backend = kefu_eventlog::EventLog::backend(&log),
                "store is up to date"
            );
            Ok(())
        }
        Command::Log(cmd) => log_cmd::run(&cli.store, cmd).await,
        Command::Archive(cmd) => archive_cmd::run(&cli.store, cmd).await,
        Command::Replay(args) => read_cmd::replay(&cli.store, args).await,
        Command::Projections(cmd) => read_cmd::projections(&cli.store, cmd).await,
        Command::Query { options, query } => read_cmd::query(&cli.store, options, query).await,
        Command::Eval(cmd) => bot_cmd::eval(cmd),
        Command::Train(cmd) => bot_cmd::train(cmd),
        Command::Kb(cmd) => bot_cmd::kb(&cli.store, cmd).await,
        Command::Whatif(args) => whatif_cmd::run(&cli.store, args).await,
    }
}
