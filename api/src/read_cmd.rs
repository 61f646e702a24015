//! The read side from the command line: `kefu replay` (blue-green and as-of rebuilds, with a
//! progress bar), `kefu projections` (generations and checkpoints), and `kefu query` (what
//! the read models say, for analysts and auditors, in the formats of `output.rs`). The
//! commands that only read create nothing: a missing store or read model is an error naming
//! it.

use std::io::Write;

use anyhow::{Context, Result, bail};
use chrono::{
    DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
};
use clap::{Args, Subcommand};
use kefu_eventlog::{AnyLog, EventLog, Position};
use kefu_projections::audit::{AuditAnswer, CaughtUp};
use kefu_projections::conversations::ConversationFilter;
use kefu_projections::search::{
    ConversationStatus, DocKind, DocStatus, SearchRequest, rebuild_search,
};
use kefu_projections::stats::{StatsFilter, StatsGroup};
use kefu_projections::tickets::TicketFilter;
use kefu_projections::view::Page;
use kefu_projections::{Catalog, Clock, ReadModels, ReadStore, Until, View, rebuild};
use serde::Serialize;
use uuid::Uuid;

use crate::config::StoreArgs;
use crate::output::{self, Node, Output, OutputArgs};
use crate::progress::Bar;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Projections to rebuild (queues, stats, conversations, tickets, search); all when none
    /// given.
    pub projections: Vec<String>,
    /// Build as of this time (RFC 3339, e.g. 2026-11-20T14:00:00+08:00): every event recorded
    /// at or before it, none recorded later, and the copy is kept beside the live one for
    /// `kefu query --generation N` instead of being swapped in.
    #[arg(long, conflicts_with_all = ["until_position", "as_of_business"])]
    pub as_of: Option<String>,
    /// Build as of this business time: every event that happened (its own `at`: the
    /// customer wrote, the agent answered, the chat closed) at or before it, whenever it was
    /// recorded. Kept beside the live copy likewise.
    #[arg(long, conflicts_with = "until_position")]
    pub as_of_business: Option<String>,
    /// Build up to and including this global position, kept beside the live copy likewise.
    #[arg(long)]
    pub until_position: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum ProjectionsCommand {
    /// Every generation of every projection and the search index: state, checkpoint, events
    /// applied.
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Drop an as-of (or abandoned) generation and its tables.
    Drop { projection: String, generation: i64 },
}

#[derive(Args, Debug)]
pub struct QueryOptions {
    /// Read this generation (an as-of build) instead of the live one.
    #[arg(long, global = true)]
    pub generation: Option<i64>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Subcommand, Debug)]
pub enum QueryCommand {
    /// Live counts per queue: waiting, with an agent, longest wait, agents and seats.
    Queues {
        /// Only this queue (its id or name).
        #[arg(long)]
        queue: Option<String>,
        /// Measure waits up to this time (RFC 3339 or a date); default now, or an as-of
        /// build's time.
        #[arg(long)]
        at: Option<String>,
    },
    /// The waiting conversations, queue by queue, in serving order.
    Waiting {
        /// Only this queue (its id or name).
        #[arg(long)]
        queue: Option<String>,
        /// Measure waits up to this time (RFC 3339 or a date); default now, or an as-of
        /// build's time.
        #[arg(long)]
        at: Option<String>,
    },
    /// An agent's chats and free seats.
    Workbench { agent: String },
    /// Satisfaction and service figures, one row per group.
    Stats(StatsArgs),
    /// One conversation: transcript, emotions, timeline.
    Conversation { id: String },
    /// Conversations, newest first.
    Conversations {
        #[arg(long)]
        status: Option<String>,
        /// A queue's id or name.
        #[arg(long)]
        queue: Option<String>,
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        customer: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The cursor the previous page named on stderr.
        #[arg(long)]
        after: Option<String>,
    },
    /// One ticket with the history of every field.
    Ticket { id: String },
    /// Tickets, newest first.
    Tickets {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        assignee: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The cursor the previous page named on stderr.
        #[arg(long)]
        after: Option<String>,
    },
    /// Everything one request set off, as a causation tree (one row per event, with depth).
    Audit { correlation: Uuid },
    /// Full-text search over messages, conversations, tickets and the knowledge base.
    Search(SearchArgs),
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// What to look for, in Chinese or English; may be empty when a filter is given.
    #[arg(default_value = "")]
    pub text: String,
    /// message, conversation, ticket or knowledge (repeatable); all when absent.
    #[arg(long)]
    pub kind: Vec<String>,
    /// A queue's id or name.
    #[arg(long)]
    pub queue: Option<String>,
    #[arg(long)]
    pub agent: Option<Uuid>,
    /// A conversation status: bot, awaiting_human, queued, with_agent, closed.
    #[arg(long, conflicts_with = "ticket_status")]
    pub status: Option<String>,
    /// A ticket status: new, open, pending, solved, closed.
    #[arg(long)]
    pub ticket_status: Option<String>,
    /// From (inclusive): RFC 3339, or a date (its midnight at --utc-offset, else UTC).
    #[arg(long)]
    pub from: Option<String>,
    /// To (exclusive): RFC 3339, or a date (its midnight at --utc-offset, else UTC).
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[arg(long, default_value_t = 0, conflicts_with = "after")]
    pub offset: usize,
    /// Start after this hit (the `cursor` a hit carries): pages as deep as the hits go,
    /// where --offset stops at 10,000.
    #[arg(long)]
    pub after: Option<String>,
}

fn search_request(a: SearchArgs, queue: Option<Uuid>, zone: FixedOffset) -> Result<SearchRequest> {
    let mut r = SearchRequest::new(a.text).page(a.limit, a.offset);
    if let Some(after) = &a.after {
        r.after = Some(kefu_projections::search::SearchCursor::decode(after).context("--after")?);
    }
    for k in &a.kind {
        let kind = DocKind::ALL
            .into_iter()
            .find(|d| d.as_str() == k)
            .with_context(|| {
                format!("--kind {k:?}: use message, conversation, ticket or knowledge")
            })?;
        r = r.kind(kind);
    }
    if let Some(q) = queue {
        r = r.queue(q.into());
    }
    if let Some(agent) = a.agent {
        r = r.agent(agent.into());
    }
    if let Some(s) = a.status {
        let status = ConversationStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .with_context(|| {
                format!("--status {s:?}: use bot, awaiting_human, queued, with_agent or closed")
            })?;
        r = r.status(DocStatus::Conversation(status));
    }
    if let Some(s) = a.ticket_status {
        use kefu_domain::ticket::TicketStatus as T;
        let status = [T::New, T::Open, T::Pending, T::Solved, T::Closed]
            .into_iter()
            .find(|t| DocStatus::Ticket(*t).as_str() == s)
            .with_context(|| {
                format!("--ticket-status {s:?}: use new, open, pending, solved or closed")
            })?;
        r = r.status(DocStatus::Ticket(status));
    }
    if let Some(f) = a.from {
        r = r.since(instant("--from", &f, zone)?);
    }
    if let Some(t) = a.to {
        r = r.before(instant("--to", &t, zone)?);
    }
    Ok(r)
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// total, day, hour, queue, agent, handled_by, scenario, channel, business_line,
    /// handoff_reason.
    #[arg(long, default_value = "total")]
    pub group: String,
    /// A queue's id or name.
    #[arg(long)]
    pub queue: Option<String>,
    #[arg(long)]
    pub agent: Option<String>,
    /// bot or human.
    #[arg(long)]
    pub handled_by: Option<String>,
    #[arg(long)]
    pub scenario: Option<String>,
    #[arg(long)]
    pub channel: Option<String>,
    #[arg(long)]
    pub business_line: Option<String>,
    /// Conversations started at or after: RFC 3339, or a date (its midnight in the buckets'
    /// time zone).
    #[arg(long)]
    pub from: Option<String>,
    /// Conversations started before: RFC 3339, or a date (its midnight in the buckets' time
    /// zone).
    #[arg(long)]
    pub to: Option<String>,
}

/// The time zone of statistics' day and hour buckets without --utc-offset: the help desk's,
/// China's.
const STATS_ZONE: &str = "+08:00";

pub(crate) fn time(flag: &str, s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| {
            format!("{flag} {s:?} is not an RFC 3339 time such as 2026-11-20T14:00:00+08:00")
        })
}

/// An RFC 3339 time, or a date meaning its midnight in `zone`.
fn instant(flag: &str, s: &str, zone: FixedOffset) -> Result<DateTime<Utc>> {
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let midnight = date.and_time(NaiveTime::MIN);
        return zone
            .from_local_datetime(&midnight)
            .single()
            .map(|t| t.with_timezone(&Utc))
            .with_context(|| format!("{flag} {s:?}: no midnight at {zone}"));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| {
            format!(
                "{flag} {s:?} is not an RFC 3339 time such as 2026-11-20T14:00:00+08:00, \
                 nor a date such as 2026-11-20"
            )
        })
}

/// An hour bucket's key (`2026-11-20T14`) as the RFC 3339 time it starts at, in the
/// buckets' time zone: every time kefu prints is RFC 3339. Other keys are left as they are
/// (a day bucket's key is its date).
fn hour_bucket(key: &str, zone: FixedOffset) -> Option<String> {
    let hour = NaiveDateTime::parse_from_str(&format!("{key}:00"), "%Y-%m-%dT%H:%M").ok()?;
    let start = zone.from_local_datetime(&hour).single()?;
    Some(output::rfc3339(start.with_timezone(&Utc), Some(zone)))
}

pub async fn replay(store: &StoreArgs, args: ReplayArgs) -> Result<()> {
    let until = match (&args.as_of, &args.as_of_business) {
        (_, Some(t)) => Until {
            time: Some(time("--as-of-business", t)?),
            clock: Clock::Business,
            ..Until::default()
        },
        (Some(t), None) => Until {
            time: Some(time("--as-of", t)?),
            ..Until::default()
        },
        (None, None) => Until {
            position: args.until_position.map(Position),
            ..Until::default()
        },
    };
    let named_search = args.projections.iter().any(|p| p == "search");
    if named_search && until.is_bounded() {
        bail!(
            "the search index is only built up to now: replay `search` without --as-of / --until-position"
        );
    }
    let sql_names: Vec<String> = args
        .projections
        .iter()
        .filter(|p| *p != "search")
        .cloned()
        .collect();
    // Every projection when none is named; only search when only search is.
    let with_sql = !(named_search && sql_names.is_empty());
    let with_search = named_search || (args.projections.is_empty() && !until.is_bounded());
    let projections = if with_sql {
        kefu_projections::by_names(&sql_names)?
    } else {
        Vec::new()
    };
    // The log is what is replayed: a missing one is a typo, not something to create.
    let log = store.open_existing().await?;
    let mut out = Output::new(std::io::stdout().lock(), &OutputArgs::default());
    if with_search {
        let home = store.search_home();
        let mut bar = Bar::new("search", events_through(&log, None).await?);
        let (generation, replaced, report) = rebuild_search(&log, &home, |p| bar.draw(p)).await?;
        bar.finish(&report, report.read, "the search index");
        out.row(&serde_json::json!({
            "projection": "search",
            "generation": generation,
            "state": "live",
            "position": report.position,
            "replaced": replaced,
            "events_per_sec": report.events_per_sec().round(),
            "seconds": report.elapsed.as_secs_f64(),
        }))?;
    }
    if !projections.is_empty() {
        let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
        let what = names.join(", ");
        let read = store.open_read_store().await?;
        let mut bar = Bar::new("replay", events_through(&log, until.position).await?);
        let (rebuilt, report) = rebuild(&log, &read, projections, until, |p| bar.draw(p)).await?;
        let applied = rebuilt
            .iter()
            .map(|r| u64::try_from(r.generation.events).unwrap_or(0))
            .max()
            .unwrap_or(0);
        bar.finish(&report, applied, &what);
        if until.is_bounded() && applied == 0 {
            // An empty copy answers every question with zeros, as if nothing had happened: a
            // bound before the first event (or a typo in it) is an error, and leaves nothing.
            let catalog = Catalog::open(read.clone()).await?;
            for r in &rebuilt {
                let names = std::slice::from_ref(&r.generation.projection);
                for p in kefu_projections::by_names(names)? {
                    catalog
                        .drop_generation(p.as_ref(), r.generation.generation)
                        .await?;
                }
            }
            bail!(
                "the bound selects no events ({}): nothing was kept",
                bound_text(&until)
            );
        }
        for r in rebuilt {
            out.row(&serde_json::json!({
                "projection": r.generation.projection,
                "generation": r.generation.generation,
                "state": r.generation.state,
                "events": r.generation.events,
                "position": r.generation.position,
                "until": r.generation.until,
                "replaced": r.replaced,
                "events_per_sec": report.events_per_sec().round(),
                "seconds": report.elapsed.as_secs_f64(),
            }))?;
        }
    }
    out.finish()
}

/// How many events a build will read: through the log's head now, or `bound` if earlier.
async fn events_through(log: &AnyLog, bound: Option<Position>) -> Result<Option<u64>> {
    let Some(head) = log.head().await? else {
        return Ok(Some(0));
    };
    let through = bound.map_or(head, |b| b.min(head));
    Ok(log.count_through(through).await?)
}

/// One row of `kefu projections list`: a generation of a read model, or the search index.
#[derive(Serialize)]
struct Listed {
    projection: String,
    generation: i64,
    /// live, building, as_of or retired; the search index: live, or incompatible (built by
    /// another version of kefu, to be built again by `kefu serve` or `kefu replay search`).
    state: String,
    /// Where its next read starts: every event before it is applied.
    position: Position,
    /// Events applied (read models).
    events: Option<i64>,
    /// Documents held (the search index).
    documents: Option<u64>,
    /// The search index's record format.
    format: Option<u32>,
    until: Option<Until>,
    updated_at: Option<DateTime<Utc>>,
    log_head: Option<Position>,
    caught_up: bool,
}

pub async fn projections(store: &StoreArgs, cmd: ProjectionsCommand) -> Result<()> {
    match cmd {
        ProjectionsCommand::List { output } => {
            let log = store.open_existing().await?;
            let head = log.head().await?;
            let caught_up = |next: Position| head.is_none_or(|h| next > h);
            let mut rows = Vec::new();
            if let Some(read) = store.open_read_store_existing().await? {
                for g in Catalog::open(read).await?.list().await? {
                    rows.push(Listed {
                        caught_up: caught_up(g.position),
                        projection: g.projection,
                        generation: g.generation,
                        state: g.state.as_str().to_owned(),
                        position: g.position,
                        events: Some(g.events),
                        documents: None,
                        format: None,
                        until: Some(g.until),
                        updated_at: Some(g.updated_at),
                        log_head: head,
                    });
                }
            }
            if rows.is_empty() {
                output::notice(&format!(
                    "no read models built yet ({}): `kefu replay` builds them, `kefu serve` keeps them current",
                    store.describe_read_store()
                ));
            }
            match search_listed(store)? {
                Some(mut search) => {
                    search.caught_up = caught_up(search.position);
                    search.log_head = head;
                    rows.push(search);
                }
                None => output::notice(&format!(
                    "no search index built yet ({}): `kefu replay search` builds it, `kefu serve` keeps it current",
                    store.search_dir().display()
                )),
            }
            let mut out = Output::new(std::io::stdout().lock(), &output);
            for row in &rows {
                out.row(row)?;
            }
            out.finish()?;
        }
        ProjectionsCommand::Drop {
            projection,
            generation,
        } => {
            let p = kefu_projections::by_names(std::slice::from_ref(&projection))?
                .pop()
                .context("no such projection")?;
            let catalog = Catalog::open(built_read_store(store).await?).await?;
            let g = catalog.get(&projection, generation).await?;
            if g.state == kefu_projections::GenState::Live {
                bail!(
                    "generation {generation} of {projection} is live; rebuild it with `kefu replay {projection}` instead"
                );
            }
            catalog.drop_generation(p.as_ref(), generation).await?;
            let mut out = Output::new(std::io::stdout().lock(), &OutputArgs::default());
            out.row(&serde_json::json!({ "dropped": g }))?;
            out.finish()?;
        }
    }
    Ok(())
}

/// The search index's live generation as `kefu projections list` shows it; None when none
/// was built.
fn search_listed(store: &StoreArgs) -> Result<Option<Listed>> {
    let home = store.search_home();
    let Some(generation) = home.live()? else {
        return Ok(None);
    };
    let row = |state: &str, position, documents, format| Listed {
        projection: "search".into(),
        generation: i64::try_from(generation).unwrap_or(i64::MAX),
        state: state.into(),
        position,
        events: None,
        documents,
        format,
        until: None,
        updated_at: None,
        log_head: None,
        caught_up: false,
    };
    let reader = match home.open_reader() {
        Ok(reader) => reader,
        Err(e @ kefu_projections::search::SearchError::Incompatible { .. }) => {
            output::notice(&format!("the search index: {e}"));
            return Ok(Some(row("incompatible", Position::START, None, None)));
        }
        Err(e) => return Err(e.into()),
    };
    let committed = reader.committed()?;
    let format = committed.map(|c| c.format);
    let state = if format.is_none_or(|f| f == kefu_projections::search::FORMAT) {
        "live"
    } else {
        "incompatible"
    };
    let next = committed
        .and_then(|c| c.position)
        .map_or(Position::START, Position::next);
    let mut documents = 0;
    for kind in DocKind::ALL {
        documents += reader.count(kind)?;
    }
    Ok(Some(row(state, next, Some(documents), format)))
}

/// The read models a query reads, or an error naming where none were built. Nothing is
/// created.
pub async fn built_read_store(store: &StoreArgs) -> Result<ReadStore> {
    store.open_read_store_existing().await?.with_context(|| {
        format!(
            "no read models built yet ({}): build them with `kefu replay`, or run `kefu serve`",
            store.describe_read_store()
        )
    })
}

/// The audit trail of `correlation` from the audit read model (the live generation, or
/// `generation`), its events read from the log; an error when no event indexed carries it,
/// saying whether the index had read the whole log.
pub async fn audit_answer(
    store: &StoreArgs,
    models: &ReadModels,
    correlation: Uuid,
    generation: Option<i64>,
) -> Result<AuditAnswer> {
    let view = models
        .pick(kefu_projections::audit::NAME, generation)
        .await?;
    let log = store.open_existing().await?;
    let answer = view.audit_trail(&log, correlation).await?;
    if answer.trail.events == 0 {
        bail!(
            "no event carries correlation id {correlation} ({})",
            caught_up_note(&answer.caught_up)
        );
    }
    Ok(answer)
}

/// How far the audit index had read when it answered, for a person: an auditor must know
/// whether the trail can still grow.
pub fn caught_up_note(c: &CaughtUp) -> String {
    let through = c
        .through
        .map_or("nothing".to_owned(), |p| format!("position {p}"));
    match (c.complete, c.head) {
        (true, Some(head)) => format!(
            "complete: the audit index has read the whole log (through {through}, head {head})"
        ),
        (true, None) => "complete: the log is empty".to_owned(),
        (false, head) => format!(
            "INCOMPLETE: the audit index has read through {through} of the log's head {}; \
             events after it are not in this trail yet",
            head.map_or("none".to_owned(), |h| h.to_string())
        ),
    }
}

/// `--queue` of a query that reads another projection than the queues: checked against
/// the live queues (queues are never deleted, only retired, so every queue an as-of build can
/// know is there).
async fn live_queue(models: &ReadModels, given: Option<String>) -> Result<Option<String>> {
    match given {
        Some(q) => Ok(Some(queue_id(&models.live("queues").await?, &q).await?)),
        None => Ok(None),
    }
}

/// The queue `--queue` names, by id or by name. A filter naming no queue would answer with
/// nothing, which reads as "no traffic there": it is an error instead.
async fn queue_id(queues: &View, given: &str) -> Result<String> {
    let all = queues.queues().await?;
    if let Some(q) = all.iter().find(|q| q.id == given) {
        return Ok(q.id.clone());
    }
    let named: Vec<&str> = all
        .iter()
        .filter(|q| q.name == given)
        .map(|q| q.id.as_str())
        .collect();
    match named.as_slice() {
        [id] => Ok((*id).to_owned()),
        [] => bail!(
            "--queue {given:?} names no queue (by id or name); `kefu query queues` lists them"
        ),
        ids => bail!(
            "--queue {given:?}: {} queues have that name ({}); give one's id",
            ids.len(),
            ids.join(", ")
        ),
    }
}

pub async fn query(store: &StoreArgs, opts: QueryOptions, cmd: QueryCommand) -> Result<()> {
    let generation = opts.generation;
    let zone = opts.output.utc_offset.unwrap_or(Utc.fix());
    let mut out = Output::new(std::io::stdout().lock(), &opts.output);
    // The read models, opened by the queries that read them (not the audit trail, nor a
    // search without --queue). Neither they nor the log are created by a question.
    let mut opened: Option<ReadModels> = None;
    let mut models = async || -> Result<ReadModels> {
        if let Some(m) = &opened {
            return Ok(m.clone());
        }
        // A missing store is named before read models that were never built from it.
        store.existing().await?;
        let m = ReadModels::open(built_read_store(store).await?).await?;
        opened = Some(m.clone());
        Ok(m)
    };
    match cmd {
        QueryCommand::Audit { correlation } => {
            let answer = audit_answer(store, &models().await?, correlation, generation).await?;
            for (depth, event) in answer.trail.walk() {
                out.row(&serde_json::json!({ "depth": depth, "event": event }))?;
            }
            output::notice(&caught_up_note(&answer.caught_up));
        }
        QueryCommand::Search(a) => {
            let queue = match &a.queue {
                Some(q) => {
                    let id = queue_id(&models().await?.live("queues").await?, q).await?;
                    Some(
                        id.parse::<Uuid>()
                            .with_context(|| format!("queue id {id:?} is not a UUID"))?,
                    )
                }
                None => None,
            };
            let request = search_request(a, queue, zone)?;
            let reader = store.search_home().open_reader()?;
            let results = reader.search(&request)?;
            for hit in &results.hits {
                out.row(&serde_json::json!({
                    "kind": hit.kind,
                    "conversation": hit.conversation.map(|c| c.to_string()),
                    "message": hit.message.map(|m| m.to_string()),
                    "ticket": hit.ticket.map(|t| t.to_string()),
                    "entry": hit.entry.map(|e| e.to_string()),
                    "score": hit.score,
                    "time": hit.time,
                    "queue": hit.queue.map(|q| q.to_string()),
                    "agent": hit.agent.map(|a| a.to_string()),
                    "status": hit.status.map(|s| s.as_str()),
                    "internal": hit.internal,
                    "snippet": hit.snippet.to_html(),
                    "cursor": hit.cursor,
                }))?;
            }
            output::notice(&format!(
                "{} hits in all{}",
                results.total,
                match (results.more, results.hits.last()) {
                    (true, Some(last)) => format!("; more with --after {}", last.cursor),
                    _ => String::new(),
                }
            ));
        }
        QueryCommand::Queues { queue, at } => {
            let view = models().await?.pick("queues", generation).await?;
            let queue = match queue {
                Some(q) => Some(queue_id(&view, &q).await?),
                None => None,
            };
            let now = waits_until(&view, at.as_deref(), zone)?;
            for c in view.queue_counts(now).await? {
                if queue.as_ref().is_none_or(|q| *q == c.queue.id) {
                    out.row(&c)?;
                }
            }
        }
        QueryCommand::Waiting { queue, at } => {
            let view = models().await?.pick("queues", generation).await?;
            let queue = match queue {
                Some(q) => Some(queue_id(&view, &q).await?),
                None => None,
            };
            let now = waits_until(&view, at.as_deref(), zone)?;
            for w in view.waiting(queue.as_deref(), now).await? {
                out.row(&w)?;
            }
        }
        QueryCommand::Workbench { agent } => {
            let view = models().await?.pick("queues", generation).await?;
            let desk = view
                .workbench(&agent)
                .await?
                .with_context(|| format!("no agent {agent}"))?;
            out.row(&desk)?;
        }
        QueryCommand::Stats(a) => {
            let view = models().await?.pick("stats", generation).await?;
            // Buckets and date-only bounds are in the help desk's time zone unless asked.
            let zone = match opts.output.utc_offset {
                Some(z) => z,
                None => output::parse_offset(STATS_ZONE).map_err(anyhow::Error::msg)?,
            };
            let filter = StatsFilter {
                queue: live_queue(&models().await?, a.queue).await?,
                agent: a.agent,
                handled_by: a.handled_by,
                scenario: a.scenario,
                channel: a.channel,
                business_line: a.business_line,
                from: a
                    .from
                    .as_deref()
                    .map(|t| instant("--from", t, zone))
                    .transpose()?,
                to: a
                    .to
                    .as_deref()
                    .map(|t| instant("--to", t, zone))
                    .transpose()?,
            };
            let group = StatsGroup::parse(&a.group)?;
            let span = Duration::seconds(i64::from(zone.local_minus_utc()));
            for row in view.stats(&filter, group, span).await? {
                let mut row = Node::of(&row)?;
                if group == StatsGroup::Hour
                    && let Some(Node::String(key)) = row.field_mut("key")
                    && let Some(start) = hour_bucket(key, zone)
                {
                    *key = start;
                }
                out.row(&row)?;
            }
        }
        QueryCommand::Conversation { id } => {
            let view = models().await?.pick("conversations", generation).await?;
            let log = store.open_existing().await?;
            let c = view
                .conversation(&log, &id)
                .await?
                .with_context(|| format!("no conversation {id}"))?;
            out.row(&c)?;
        }
        QueryCommand::Conversations {
            status,
            queue,
            agent,
            customer,
            limit,
            after,
        } => {
            let view = models().await?.pick("conversations", generation).await?;
            let filter = ConversationFilter {
                status,
                queue: live_queue(&models().await?, queue).await?,
                agent,
                customer,
                ..ConversationFilter::default()
            };
            let page = view.conversations(&filter, after.as_deref(), limit).await?;
            print_page(&mut out, &page)?;
        }
        QueryCommand::Ticket { id } => {
            let view = models().await?.pick("tickets", generation).await?;
            let t = view
                .ticket(&id)
                .await?
                .with_context(|| format!("no ticket {id}"))?;
            out.row(&t)?;
        }
        QueryCommand::Tickets {
            status,
            assignee,
            limit,
            after,
        } => {
            let view = models().await?.pick("tickets", generation).await?;
            let filter = TicketFilter {
                status,
                assignee,
                ..TicketFilter::default()
            };
            let page = view.tickets(&filter, after.as_deref(), limit).await?;
            print_page(&mut out, &page)?;
        }
    }
    out.finish()
}

/// The moment waits are measured to: `--at`, else an as-of build's time, else now.
fn waits_until(view: &View, at: Option<&str>, zone: FixedOffset) -> Result<i64> {
    let now = match at {
        Some(t) => instant("--at", t, zone)?,
        None => view.generation.until.time.unwrap_or_else(Utc::now),
    };
    Ok(now.timestamp_millis())
}

/// A page's rows; where there are more, the cursor to ask for them goes to stderr, never
/// among the rows.
fn print_page<T: Serialize>(out: &mut Output<impl Write>, page: &Page<T>) -> Result<()> {
    for item in &page.items {
        out.row(item)?;
    }
    if let Some(next) = &page.next {
        output::notice(&format!("more: add --after {next}"));
    }
    Ok(())
}

/// A build's bound as an analyst gave it.
fn bound_text(until: &Until) -> String {
    match (until.position, until.time) {
        (Some(p), _) => format!("up to position {}", p.0),
        (None, Some(t)) => format!(
            "{} time at or before {}",
            until.clock.as_str(),
            t.to_rfc3339()
        ),
        (None, None) => "no bound".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_is_its_midnight_in_the_zone_given() {
        let west = output::parse_offset("-05:00").unwrap();
        assert_eq!(
            instant("--from", "2026-11-20", west).unwrap().to_rfc3339(),
            "2026-11-20T05:00:00+00:00"
        );
        assert_eq!(
            instant("--from", "2026-11-20T14:00:00+08:00", west)
                .unwrap()
                .to_rfc3339(),
            "2026-11-20T06:00:00+00:00"
        );
        let e = instant("--to", "20/11/2026", west).unwrap_err().to_string();
        assert!(
            e.contains("--to \"20/11/2026\"") && e.contains("date"),
            "{e}"
        );
    }

    #[test]
    fn hour_buckets_print_as_the_rfc_3339_time_they_start() {
        let china = output::parse_offset("+08:00").unwrap();
        assert_eq!(
            hour_bucket("2026-11-20T14", china).as_deref(),
            Some("2026-11-20T14:00:00+08:00")
        );
        assert_eq!(hour_bucket("2026-11-20", china), None);
        assert_eq!(hour_bucket("queue-1", china), None);
    }

    /// Times are recognised by name (`output::is_time_field`): every integer column of every
    /// read model is a time by its name or listed here as not one, so a time column named
    /// otherwise cannot slip out as epoch milliseconds.
    #[test]
    fn every_integer_column_is_a_time_or_not_by_name() {
        use kefu_projections::sql::{ColType, Record, TableDef};
        use kefu_projections::{conversations, queues, tickets};
        const NOT_TIMES: &[&str] = &[
            "priority",
            "first_response_secs",
            "resolution_secs",
            "position",
            "max_concurrent",
            "active",
            "turns",
            "survey_score",
            "reopened",
            "orders",
            "queued_position",
            "survey_offered_position",
            "version",
            "escalation_level",
            "comments",
            // Booleans are integer columns too.
            "retired",
            "bot_enabled",
            "responded",
            "first_response_warned",
            "first_response_breached",
            "resolution_warned",
            "resolution_breached",
            "survey_reminded",
        ];
        let tables: [TableDef; 7] = [
            queues::QueueRow::TABLE,
            queues::WaitingRow::TABLE,
            queues::AgentRow::TABLE,
            queues::ChatRow::TABLE,
            conversations::ConversationRow::TABLE,
            tickets::TicketRow::TABLE,
            tickets::TicketHistoryRow::TABLE,
        ];
        for table in tables {
            for (name, ty, _) in table.columns {
                if *ty == ColType::Int && !output::is_time_field(name) {
                    assert!(
                        NOT_TIMES.contains(name),
                        "{}.{name}: a time (name it *_at, *_due or *_since) or not (list it here)?",
                        table.name
                    );
                }
            }
        }
    }
}
