//! The read side from the command line: `kefu replay` (blue-green and as-of rebuilds, with a
//! progress bar), `kefu projections` (generations and checkpoints), and `kefu query` (what
//! the read models say, as JSON lines, for analysts and auditors, contact and card numbers
//! masked).

use std::io::{IsTerminal, Write};
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Duration, FixedOffset, Utc};
use clap::{Args, Subcommand};
use kefu_eventlog::{EventLog, Position};
use kefu_projections::conversations::ConversationFilter;
use kefu_projections::search::{
    ConversationStatus, DocKind, DocStatus, SearchRequest, rebuild_search,
};
use kefu_projections::stats::{StatsFilter, StatsGroup};
use kefu_projections::tickets::TicketFilter;
use kefu_projections::view::Page;
use kefu_projections::{Catalog, Clock, Progress, ReadModels, Until, View, rebuild};
use serde::Serialize;
use uuid::Uuid;

use crate::config::StoreArgs;

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
    /// Every generation of every projection: state, checkpoint, events applied.
    List,
    /// Drop an as-of (or abandoned) generation and its tables.
    Drop { projection: String, generation: i64 },
}

#[derive(Args, Debug)]
pub struct Which {
    /// Read this generation (an as-of build) instead of the live one.
    #[arg(long, global = true)]
    pub generation: Option<i64>,
}

#[derive(Subcommand, Debug)]
pub enum QueryCommand {
    /// Live counts per queue and the waiting conversations in serving order.
    Queues {
        /// Only this queue's waiting list.
        #[arg(long)]
        queue: Option<String>,
        /// Measure waits up to this time (RFC 3339); default now, or an as-of build's time.
        #[arg(long)]
        at: Option<String>,
    },
    /// An agent's chats and free seats.
    Workbench { agent: String },
    /// Satisfaction and service figures, one JSON line per group.
    Stats(StatsArgs),
    /// One conversation: transcript, emotions, timeline.
    Conversation { id: String },
    /// Conversations, newest first.
    Conversations {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        queue: Option<String>,
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        customer: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The cursor printed after the previous page.
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
        #[arg(long)]
        after: Option<String>,
    },
    /// Everything one request set off, as a causation tree (one line per event, with depth).
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
    #[arg(long)]
    pub queue: Option<Uuid>,
    #[arg(long)]
    pub agent: Option<Uuid>,
    /// A conversation status: bot, awaiting_human, queued, with_agent, closed.
    #[arg(long, conflicts_with = "ticket_status")]
    pub status: Option<String>,
    /// A ticket status: new, open, pending, solved, closed.
    #[arg(long)]
    pub ticket_status: Option<String>,
    /// From (inclusive, RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// To (exclusive, RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
}

fn search_request(a: SearchArgs) -> Result<SearchRequest> {
    let mut r = SearchRequest::new(a.text).page(a.limit, a.offset);
    for k in &a.kind {
        let kind = DocKind::ALL
            .into_iter()
            .find(|d| d.as_str() == k)
            .with_context(|| {
                format!("--kind {k:?}: use message, conversation, ticket or knowledge")
            })?;
        r = r.kind(kind);
    }
    if let Some(q) = a.queue {
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
        r = r.since(time("--from", &f)?);
    }
    if let Some(t) = a.to {
        r = r.before(time("--to", &t)?);
    }
    Ok(r)
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// total, day, hour, queue, agent, handled_by, scenario, channel, business_line,
    /// handoff_reason.
    #[arg(long, default_value = "total")]
    pub group: String,
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
    /// Conversations started at or after (RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Conversations started before (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    /// The time zone of day and hour buckets, e.g. +08:00.
    #[arg(long, default_value = "+08:00")]
    pub utc_offset: String,
}

fn time(flag: &str, s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| {
            format!("{flag} {s:?} is not an RFC 3339 time such as 2026-11-20T14:00:00+08:00")
        })
}

fn offset(s: &str) -> Result<Duration> {
    let probe = format!("2000-01-01T00:00:00{s}");
    let parsed: DateTime<FixedOffset> = DateTime::parse_from_rfc3339(&probe)
        .with_context(|| format!("--utc-offset {s:?} is not an offset such as +08:00"))?;
    Ok(Duration::seconds(i64::from(
        parsed.offset().local_minus_utc(),
    )))
}

/// One line per item, then `{"next": cursor}` when there is more.
fn print_page<T: Serialize>(out: &mut impl Write, page: &Page<T>) -> Result<()> {
    for item in &page.items {
        print_json(out, item)?;
    }
    if let Some(next) = &page.next {
        print_json(out, &serde_json::json!({ "next": next }))?;
    }
    Ok(())
}

/// One JSON line, with phone, e-mail, ID-card and bank card numbers in every string masked
/// as the search index masks them: what `kefu query` prints lands in terminals, tickets and
/// chat logs.
fn print_json(out: &mut impl Write, v: &impl Serialize) -> Result<()> {
    let mut value = serde_json::to_value(v)?;
    mask_strings(&mut value);
    serde_json::to_writer(&mut *out, &value)?;
    writeln!(out)?;
    Ok(())
}

fn mask_strings(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(masked) = kefu_projections::search::mask(s) {
                *s = masked;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_strings),
        Value::Object(fields) => fields.values_mut().for_each(mask_strings),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
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
    let log = store.open().await?;
    let mut out = std::io::stdout().lock();
    if with_search {
        let home = store.search_home();
        let mut bar = Bar::new("search");
        let (generation, replaced, report) = rebuild_search(&log, &home, |p| bar.draw(p)).await?;
        bar.finish(&report);
        print_json(
            &mut out,
            &serde_json::json!({
                "projection": "search",
                "generation": generation,
                "state": "live",
                "position": report.position,
                "replaced": replaced,
                "events_per_sec": report.events_per_sec().round(),
                "seconds": report.elapsed.as_secs_f64(),
            }),
        )?;
    }
    if projections.is_empty() {
        return Ok(());
    }
    let read = store.open_read_store().await?;
    let mut bar = Bar::new("replay");
    let (rebuilt, report) = rebuild(&log, &read, projections, until, |p| bar.draw(p)).await?;
    bar.finish(&report);
    if until.is_bounded() && rebuilt.iter().all(|r| r.generation.events == 0) {
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
        print_json(
            &mut out,
            &serde_json::json!({
                "projection": r.generation.projection,
                "generation": r.generation.generation,
                "state": r.generation.state,
                "events": r.generation.events,
                "position": r.generation.position,
                "until": r.generation.until,
                "replaced": r.replaced,
                "events_per_sec": report.events_per_sec().round(),
                "seconds": report.elapsed.as_secs_f64(),
            }),
        )?;
    }
    Ok(())
}

/// The progress bar on stderr: redrawn in place on a terminal, a line per tenth otherwise.
struct Bar {
    label: &'static str,
    tty: bool,
    last_tenth: i64,
    last_draw: Option<Instant>,
}

impl Bar {
    fn new(label: &'static str) -> Self {
        Bar {
            label,
            tty: std::io::stderr().is_terminal(),
            last_tenth: -1,
            last_draw: None,
        }
    }

    fn line(&self, p: &Progress) -> String {
        let f = p.fraction();
        let filled = (f * 30.0).round() as usize;
        let eta = p.eta().map_or_else(
            || "--:--".to_owned(),
            |d| {
                let s = d.as_secs();
                format!("{}:{:02}", s / 60, s % 60)
            },
        );
        format!(
            "{} [{}{}] {:>3.0}%  {} events  {:.0} events/s  left {eta}",
            self.label,
            "#".repeat(filled),
            "-".repeat(30 - filled),
            f * 100.0,
            p.read,
            p.events_per_sec(),
        )
    }

    fn draw(&mut self, p: &Progress) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            // Redrawing for every batch would cost more than the batch on a fast machine.
            if self
                .last_draw
                .is_some_and(|t| t.elapsed() < StdDuration::from_millis(100))
            {
                return;
            }
            self.last_draw = Some(Instant::now());
            let _ = write!(err, "\r{}", self.line(p));
        } else {
            let tenth = (p.fraction() * 10.0).floor() as i64;
            if tenth > self.last_tenth {
                self.last_tenth = tenth;
                let _ = writeln!(err, "{}", self.line(p));
            }
        }
    }

    fn finish(&mut self, p: &Progress) {
        let mut err = std::io::stderr().lock();
        let done = format!(
            "{} done: {} events in {:.1} s ({:.0} events/s)",
            self.label,
            p.read,
            p.elapsed.as_secs_f64(),
            p.events_per_sec()
        );
        if self.tty {
            let _ = writeln!(err, "\r{}\n{done}", self.line(p));
        } else {
            let _ = writeln!(err, "{done}");
        }
    }
}

pub async fn projections(store: &StoreArgs, cmd: ProjectionsCommand) -> Result<()> {
    let read = store.open_read_store().await?;
    let catalog = Catalog::open(read).await?;
    let mut out = std::io::stdout().lock();
    match cmd {
        ProjectionsCommand::List => {
            let log = store.open().await?;
            let head = log.head().await?;
            for g in catalog.list().await? {
                let caught_up = head.is_none_or(|h| g.position > h);
                print_json(
                    &mut out,
                    &serde_json::json!({ "generation": g, "log_head": head, "caught_up": caught_up }),
                )?;
            }
        }
        ProjectionsCommand::Drop {
            projection,
            generation,
        } => {
            let p = kefu_projections::by_names(std::slice::from_ref(&projection))?
                .pop()
                .context("no such projection")?;
            let g = catalog.get(&projection, generation).await?;
            if g.state == kefu_projections::GenState::Live {
                bail!(
                    "generation {generation} of {projection} is live; rebuild it with `kefu replay {projection}` instead"
                );
            }
            catalog.drop_generation(p.as_ref(), generation).await?;
            print_json(&mut out, &serde_json::json!({ "dropped": g }))?;
        }
    }
    Ok(())
}

/// The generation of `projection` a query reads: the live one, or `--generation N`.
async fn view(store: &StoreArgs, projection: &str, generation: Option<i64>) -> Result<View> {
    let models = ReadModels::open(store.open_read_store().await?).await?;
    Ok(models.pick(projection, generation).await?)
}

pub async fn query(store: &StoreArgs, which: Which, cmd: QueryCommand) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let generation = which.generation;
    match cmd {
        QueryCommand::Audit { correlation } => {
            let log = store.open().await?;
            let trail = kefu_projections::audit::audit_trail(&log, correlation).await?;
            if trail.events == 0 {
                bail!("no event carries correlation id {correlation}");
            }
            for (depth, event) in trail.walk() {
                print_json(
                    &mut out,
                    &serde_json::json!({ "depth": depth, "event": event }),
                )?;
            }
        }
        QueryCommand::Search(a) => {
            let request = search_request(a)?;
            let reader = store.search_home().open_reader()?;
            let results = reader.search(&request)?;
            for hit in &results.hits {
                print_json(
                    &mut out,
                    &serde_json::json!({
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
                    }),
                )?;
            }
            print_json(&mut out, &serde_json::json!({ "total": results.total }))?;
        }
        QueryCommand::Queues { queue, at } => {
            let view = view(store, "queues", generation).await?;
            let now = match at {
                Some(t) => time("--at", &t)?,
                None => view.generation.until.time.unwrap_or_else(Utc::now),
            };
            let now = now.timestamp_millis();
            for c in view.queue_counts(now).await? {
                print_json(&mut out, &serde_json::json!({ "queue": c }))?;
            }
            for w in view.waiting(queue.as_deref(), now).await? {
                print_json(&mut out, &serde_json::json!({ "waiting": w }))?;
            }
        }
        QueryCommand::Workbench { agent } => {
            let view = view(store, "queues", generation).await?;
            let desk = view
                .workbench(&agent)
                .await?
                .with_context(|| format!("no agent {agent}"))?;
            print_json(&mut out, &desk)?;
        }
        QueryCommand::Stats(a) => {
            let view = view(store, "stats", generation).await?;
            let filter = StatsFilter {
                queue: a.queue,
                agent: a.agent,
                handled_by: a.handled_by,
                scenario: a.scenario,
                channel: a.channel,
                business_line: a.business_line,
                from: a.from.as_deref().map(|t| time("--from", t)).transpose()?,
                to: a.to.as_deref().map(|t| time("--to", t)).transpose()?,
            };
            let group = StatsGroup::parse(&a.group)?;
            for row in view.stats(&filter, group, offset(&a.utc_offset)?).await? {
                print_json(&mut out, &row)?;
            }
        }
        QueryCommand::Conversation { id } => {
            let view = view(store, "conversations", generation).await?;
            let log = store.open().await?;
            let c = view
                .conversation(&log, &id)
                .await?
                .with_context(|| format!("no conversation {id}"))?;
            print_json(&mut out, &c)?;
        }
        QueryCommand::Conversations {
            status,
            queue,
            agent,
            customer,
            limit,
            after,
        } => {
            let view = view(store, "conversations", generation).await?;
            let filter = ConversationFilter {
                status,
                queue,
                agent,
                customer,
                ..ConversationFilter::default()
            };
            let page = view.conversations(&filter, after.as_deref(), limit).await?;
            print_page(&mut out, &page)?;
        }
        QueryCommand::Ticket { id } => {
            let view = view(store, "tickets", generation).await?;
            let t = view
                .ticket(&id)
                .await?
                .with_context(|| format!("no ticket {id}"))?;
            print_json(&mut out, &t)?;
        }
        QueryCommand::Tickets {
            status,
            assignee,
            limit,
            after,
        } => {
            let view = view(store, "tickets", generation).await?;
            let filter = TicketFilter {
                status,
                assignee,
                ..TicketFilter::default()
            };
            let page = view.tickets(&filter, after.as_deref(), limit).await?;
            print_page(&mut out, &page)?;
        }
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
