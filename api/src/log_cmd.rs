//! `kefu log …`: the log, as JSON lines on stdout. One event per line in the envelope the log
//! stores, so the output can be piped into `jq`, diffed, or kept as an audit extract.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use kefu_eventlog::{
    Actor, ActorKind, AnyLog, EventLog, ExpectedVersion, LogError, Metadata, NewEvent, Position,
    RecordedEvent, StreamId, Subscription, backoff,
};
use tracing::{info, warn};
use uuid::Uuid;

use kefu_projections::ReadModels;

use crate::config::StoreArgs;
use crate::output;
use crate::read_cmd::{audit_answer, built_read_store, caught_up_note};

const PAGE: usize = 1000;

#[derive(Subcommand)]
pub enum LogCommand {
    /// Append one event to a stream; prints where it landed.
    Append {
        /// e.g. conversation-0190f1c2-…
        stream: String,
        /// The event type, e.g. CustomerTurnRecorded.
        event_type: String,
        /// The payload: a JSON object.
        payload: String,
        /// any, no-stream, or the stream's current version.
        #[arg(long, default_value = "any")]
        expected: String,
        /// Who is writing, as KIND:ID (KIND: customer, agent, bot, system).
        #[arg(long, default_value = "system:cli")]
        actor: String,
        /// The request this belongs to; a fresh id when absent.
        #[arg(long)]
        correlation: Option<Uuid>,
        #[arg(long, default_value_t = 1)]
        schema_version: u32,
        /// The event's id: resending the same event with it is acknowledged without writing
        /// twice; another event (type or payload) under a stored id is refused.
        #[arg(long)]
        id: Option<Uuid>,
    },
    /// Print one stream from a version on.
    Read {
        stream: String,
        #[arg(long, default_value_t = 0)]
        from: u64,
    },
    /// Print the whole log from a global position on, in order; --follow keeps printing new
    /// events as they are appended.
    Tail {
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[arg(long)]
        follow: bool,
    },
    /// Print everything one request set off, across all streams, in log order (from the
    /// audit read model); the last line, `{"caught_up": …}`, says whether the audit index had
    /// read the whole log.
    Correlation { id: Uuid },
}

pub async fn run(store: &StoreArgs, cmd: LogCommand) -> Result<()> {
    if let LogCommand::Tail { from, follow: true } = cmd {
        return follow(store, Position(from)).await;
    }
    // Appending creates a store where there is none; reading one that is not there is a typo.
    let log = Arc::new(if matches!(cmd, LogCommand::Append { .. }) {
        store.open().await?
    } else {
        store.open_existing().await?
    });
    let mut out = std::io::stdout().lock();
    match cmd {
        LogCommand::Append {
            stream,
            event_type,
            payload,
            expected,
            actor,
            correlation,
            schema_version,
            id,
        } => {
            let stream = StreamId::new(stream)?;
            let expected = ExpectedVersion::parse(&expected)?;
            let payload: serde_json::Value =
                serde_json::from_str(&payload).context("the payload is not valid JSON")?;
            let correlation = correlation.unwrap_or_else(Uuid::now_v7);
            let mut event = NewEvent::new(
                event_type,
                payload,
                Metadata::for_request(parse_actor(&actor)?, correlation),
            )
            .with_schema_version(schema_version);
            if let Some(id) = id {
                event = event.with_id(id);
            }
            let appended = log.append(&stream, expected, vec![event]).await?;
            serde_json::to_writer(&mut out, &appended)?;
            writeln!(out)?;
        }
        LogCommand::Read { stream, from } => {
            let stream = StreamId::new(stream)?;
            let mut from = from;
            loop {
                let page = log.read_stream(&stream, from, PAGE).await?;
                let Some(last) = page.last() else { break };
                from = last.version + 1;
                print_all(&mut out, &page)?;
            }
        }
        // `--follow` went to `follow` above.
        LogCommand::Tail { from, .. } => {
            let mut from = Position(from);
            loop {
                let page = log.read_all(from, PAGE).await?;
                let Some(last) = page.last() else { break };
                from = last.position.next();
                print_all(&mut out, &page)?;
            }
        }
        LogCommand::Correlation { id } => {
            // The log keeps no correlation index on its hot table: the audit read model
            // says where the request's events are, and how far it has read the log.
            store.existing().await?;
            let models = ReadModels::open(built_read_store(store).await?).await?;
            let answer = audit_answer(store, &models, id, None).await?;
            let mut events: Vec<&RecordedEvent> =
                answer.trail.walk().into_iter().map(|(_, e)| e).collect();
            events.sort_by_key(|e| e.position);
            print_all(&mut out, events)?;
            // The extract's last line says whether it is whole, in a shape no event has.
            serde_json::to_writer(
                &mut out,
                &serde_json::json!({ "caught_up": answer.caught_up }),
            )?;
            writeln!(out)?;
            output::notice(&caught_up_note(&answer.caught_up));
        }
    }
    out.flush()?;
    Ok(())
}

/// `kefu log tail --follow`: every event from `from` on, then each as it is appended, for
/// as long as it runs. A store that goes away (a refused or dropped connection, a server
/// restarting) is waited out, before the first event as after the thousandth: the follower
/// says so on stderr, tries again on the workers' schedule (`kefu_eventlog::backoff`), and
/// resumes after the last event it printed. The log's settled prefix (`read_all`'s invariant) is what
/// makes that exact: no event is lost, none printed twice, the order kept. Anything waiting
/// cannot cure (a wrong URL, credentials or database name) ends it with the error.
async fn follow(store: &StoreArgs, from: Position) -> Result<()> {
    let log = Arc::new(open_waiting(store).await?);
    let mut sub = Subscription::new(log.clone(), from);
    let mut out = std::io::stdout().lock();
    loop {
        match sub.next().await {
            Ok(e) => {
                print_all(&mut out, std::slice::from_ref(&e))?;
                // Someone is watching: every event as it comes, not when a buffer fills.
                if sub.is_caught_up() {
                    out.flush()?;
                }
            }
            Err(e) if e.is_unavailable() => {
                out.flush()?;
                warn!(
                    store = %store.describe(),
                    error = %e,
                    resume_at = %sub.position(),
                    "the store went away; waiting for it"
                );
                wait_for(&*log).await?;
                info!(store = %store.describe(), resume_at = %sub.position(), "the store is back; following it again");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Opens the store for reading, waiting for it while it cannot be reached.
async fn open_waiting(store: &StoreArgs) -> Result<AnyLog> {
    let mut failures = 0;
    loop {
        match store.open_existing().await {
            Ok(log) => {
                if failures > 0 {
                    info!(store = %store.describe(), "the store is up; following it");
                }
                return Ok(log);
            }
            Err(e) if is_outage(&e) => {
                failures += 1;
                if failures == 1 {
                    warn!(store = %store.describe(), error = %format!("{e:#}"), "the store is unavailable; waiting for it");
                }
                tokio::time::sleep(backoff(failures)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Returns once the store answers again; an error that is no outage ends the wait.
async fn wait_for(log: &impl EventLog) -> Result<(), LogError> {
    let mut failures = 1;
    loop {
        tokio::time::sleep(backoff(failures)).await;
        match log.head().await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_unavailable() => failures += 1,
            Err(e) => return Err(e),
        }
    }
}

fn is_outage(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<LogError>()
            .is_some_and(LogError::is_unavailable)
    })
}

fn parse_actor(raw: &str) -> Result<Actor> {
    let Some((kind, id)) = raw.split_once(':') else {
        bail!("--actor must be KIND:ID (e.g. agent:a-17), not {raw:?}");
    };
    let kind: ActorKind = kind.parse().map_err(|_| {
        anyhow::anyhow!("--actor kind {kind:?} is not customer, agent, bot or system")
    })?;
    if id.is_empty() {
        bail!("--actor {raw:?} names no id");
    }
    Ok(Actor::new(kind, id))
}

fn print_all<'a>(
    out: &mut impl Write,
    events: impl IntoIterator<Item = &'a RecordedEvent>,
) -> Result<()> {
    for e in events {
        serde_json::to_writer(&mut *out, e)?;
        writeln!(out)?;
    }
    Ok(())
}
