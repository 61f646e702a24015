//! Queries: the read models, search, the audit trail and the raw log. Every query that reads a
//! projection takes `atLeast` (a position a mutation returned) and waits for it.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Duration, Utc};
use kefu_domain::ids::{AgentId, ConversationId, QueueId, TicketId};
use kefu_eventlog::{EventLog, StreamId};
use kefu_projections::audit;
use kefu_projections::conversations::ConversationFilter;
use kefu_projections::search::{DocStatus, SearchCursor, SearchRequest};
use kefu_projections::stats::StatsFilter;
use kefu_projections::tickets::TicketFilter;

use super::policy::{self, Root, require};
use super::types::{
    AuditEntry, AuditTrail, Event, FaultState, FaultTarget, Forecast, ForecastHour,
    HourAgainstActual, Me, ProbeRunResult, SearchHit, SearchKind, StatsGroup, SwitchState,
};
use super::views::{
    self, Conversation, CustomerConversation, CustomerTicket, Node, NodeKind, Queue, StatisticsRow,
    Ticket, Total, Workbench,
};
use super::{ApiError, api, caller, caught_up, search_caught_up, uuid};
use crate::auth::Role;

/// Largest page a listing returns.
pub const MAX_PAGE: usize = 100;

pub struct Query;

fn page_size(first: Option<i32>) -> Result<usize, ApiError> {
    match first {
        None => Ok(20),
        Some(n) if (1..=MAX_PAGE as i32).contains(&n) => Ok(n as usize),
        Some(n) => Err(ApiError::Validation(format!(
            "first: {n} is out of range; ask for 1 to {MAX_PAGE}"
        ))),
    }
}

/// One conversation the caller may see, read from the conversations view once it has
/// reached `at_least`; each audience's type is built from it.
async fn conversation_view(
    api: &super::Api,
    caller: &super::Caller,
    id: &str,
    at_least: Option<&str>,
) -> Result<kefu_projections::conversations::ConversationView, ApiError> {
    let conversation = ConversationId::from_uuid(uuid("id", id)?);
    let events = policy::conversation_events(api, caller, conversation).await?;
    caught_up(api, at_least).await?;
    let view = api
        .read
        .live("conversations")
        .await
        .map_err(ApiError::from)?;
    let found = view
        .conversation_from(&*api.log, &conversation.to_string(), events)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation {id} in the read model yet")))?;
    Ok(found)
}

/// One ticket the caller may see, read from the tickets view once it has reached
/// `at_least`; each audience's type is built from it. The view is asked by the ticket's
/// bare id, so a global id (`Ticket:<uuid>`) finds it too.
async fn ticket_view(
    api: &super::Api,
    caller: &super::Caller,
    id: &str,
    at_least: Option<&str>,
) -> Result<kefu_projections::tickets::TicketView, ApiError> {
    let ticket = TicketId::from_uuid(uuid("id", id)?);
    policy::ticket(api, caller, ticket).await?;
    caught_up(api, at_least).await?;
    let view = api.read.live("tickets").await.map_err(ApiError::from)?;
    view.ticket(&ticket.to_string())
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::NotFound(format!("no ticket {id} that you may see")))
}

/// A page of rows as a Relay connection with its total, each edge's cursor from its row
/// (the last one's is the page's own, which the view pages by).
fn connection<R, N>(
    after: bool,
    page: kefu_projections::view::Page<R>,
    total: i64,
    cursor_of: impl Fn(&R) -> String,
    node: impl Fn(R) -> Result<N, ApiError>,
) -> Result<Connection<String, N, Total>, ApiError>
where
    N: async_graphql::OutputType,
{
    let mut connection = Connection::with_additional_fields(
        after,
        page.next.is_some(),
        Total { total_count: total },
    );
    let last = page.items.len().saturating_sub(1);
    for (i, row) in page.items.into_iter().enumerate() {
        let cursor = match &page.next {
            Some(next) if i == last => next.clone(),
            _ => cursor_of(&row),
        };
        connection.edges.push(Edge::new(cursor, node(row)?));
    }
    Ok(connection)
}

/// The caller may not see what a global id names: NOT_FOUND, as for an unknown id, so that
/// ids cannot be probed.
fn hidden(e: async_graphql::Error, id: &ID) -> async_graphql::Error {
    let forbidden = e
        .extensions
        .as_ref()
        .and_then(|x| x.get("code"))
        .is_some_and(|c| *c == async_graphql::Value::from("FORBIDDEN"));
    if forbidden {
        ApiError::NotFound(format!("no {} that you may see", id.as_str())).into()
    } else {
        e
    }
}

#[Object]
impl Query {
    /// Who the token says you are.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        let p = &caller(ctx)?.principal;
        Ok(Me {
            role: p.role,
            id: p.id.clone(),
            queues: p.queues.iter().cloned().collect(),
        })
    }

    /// Anything with a global id (`<Type>:<uuid>`: Conversation, Ticket, Queue, Agent), as the
    /// typed field for it answers the caller: a customer gets their own view
    /// (`CustomerConversation`, `CustomerTicket`). What the caller may not see is NOT_FOUND.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Node> {
        let (kind, bare) = views::parse_global_id(&id)?;
        let customer = caller(ctx)?.principal.role == Role::Customer;
        let not_found = || ApiError::NotFound(format!("no {} that you may see", id.as_str()));
        let found = match kind {
            NodeKind::Conversation if customer => self
                .my_conversation(ctx, bare, None)
                .await
                .map(|c| Node::CustomerConversation(Box::new(c))),
            NodeKind::Conversation => self
                .conversation(ctx, bare, None)
                .await
                .map(|c| Node::Conversation(Box::new(c))),
            NodeKind::Ticket if customer => self
                .my_ticket(ctx, bare, None)
                .await
                .map(|t| Node::CustomerTicket(Box::new(t))),
            NodeKind::Ticket => self
                .ticket(ctx, bare, None)
                .await
                .map(|t| Node::Ticket(Box::new(t))),
            NodeKind::Queue => self
                .queues(ctx, Some(bare), None, None, None)
                .await
                .and_then(|qs| {
                    qs.edges
                        .into_iter()
                        .next()
                        .map(|q| Node::Queue(Box::new(q.node)))
                        .ok_or_else(|| not_found().into())
                }),
            NodeKind::Agent => self
                .workbench(ctx, Some(bare), None)
                .await
                .map(|w| Node::Agent(Box::new(w.agent))),
        };
        found.map_err(|e| hidden(e, &id))
    }

    /// One conversation as the desk sees it: transcript with internal notes, emotions,
    /// triage, routing. Customers read `myConversation`.
    async fn conversation(
        &self,
        ctx: &Context<'_>,
        id: String,
        at_least: Option<String>,
    ) -> Result<Conversation> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        require(caller, Root::Query, "conversation")?;
        let found = conversation_view(api, caller, &id, at_least.as_deref()).await?;
        Ok(Conversation::of_view(found)?)
    }

    /// One of the caller's own conversations, as a customer sees it: no internal notes, no
    /// triage, routing or emotion data; their place in line and expected wait while queued.
    async fn my_conversation(
        &self,
        ctx: &Context<'_>,
        id: String,
        at_least: Option<String>,
    ) -> Result<CustomerConversation> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        require(caller, Root::Query, "myConversation")?;
        let found = conversation_view(api, caller, &id, at_least.as_deref()).await?;
        Ok(CustomerConversation::of_view(found)?)
    }

    /// The caller's own conversations, newest first, as their customer sees them.
    async fn my_conversations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        at_least: Option<String>,
    ) -> Result<Connection<String, CustomerConversation, Total>> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        let p = require(caller, Root::Query, "myConversations")?;
        let filter = ConversationFilter {
            customer: Some(policy::customer_id(p)?.to_string()),
            ..ConversationFilter::default()
        };
        let limit = page_size(first)?;
        caught_up(api, at_least.as_deref()).await?;
        let view = api
            .read
            .live("conversations")
            .await
            .map_err(ApiError::from)?;
        let page = view
            .conversations(&filter, after.as_deref(), limit)
            .await
            .map_err(ApiError::from)?;
        let total = view
            .count_conversations(&filter)
            .await
            .map_err(ApiError::from)?;
        Ok(connection(
            after.is_some(),
            page,
            total,
            cursor_of,
            CustomerConversation::of_row,
        )?)
    }

    /// Conversations, newest first, as a Relay connection: agents see those assigned to them;
    /// supervisors those of one of their queues (`queue` required). Customers read
    /// `myConversations`.
    #[allow(clippy::too_many_arguments)]
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<String>,
        queue: Option<String>,
        agent: Option<String>,
        customer: Option<String>,
        at_least: Option<String>,
    ) -> Result<Connection<String, Conversation, Total>> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        let p = require(caller, Root::Query, "conversations")?;
        let mut filter = ConversationFilter {
            status,
            queue,
            agent,
            customer,
            ..ConversationFilter::default()
        };
        match p.role {
            Role::Customer => filter.customer = Some(policy::customer_id(p)?.to_string()),
            Role::Agent => filter.agent = Some(policy::agent_id(p)?.to_string()),
            _ => policy::supervisor_names_a_queue(caller, filter.queue.as_deref(), "lists")?,
        }
        let limit = page_size(first)?;
        caught_up(api, at_least.as_deref()).await?;
        let view = api
            .read
            .live("conversations")
            .await
            .map_err(ApiError::from)?;
        let page = view
            .conversations(&filter, after.as_deref(), limit)
            .await
            .map_err(ApiError::from)?;
        let total = view
            .count_conversations(&filter)
            .await
            .map_err(ApiError::from)?;
        Ok(connection(
            after.is_some(),
            page,
            total,
            cursor_of,
            Conversation::of_row,
        )?)
    }

    /// The queues the caller may see (or the one `queue` names), by priority then name,
    /// with their live figures and waiting lists. A cursor is a queue's id.
    async fn queues(
        &self,
        ctx: &Context<'_>,
        queue: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        at_least: Option<String>,
    ) -> Result<Connection<String, Queue, Total>> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        require(caller, Root::Query, "queues")?;
        caught_up(api, at_least.as_deref()).await?;
        let view = api.read.live("queues").await.map_err(ApiError::from)?;
        let now = api.desk.now().timestamp_millis();
        let scope = policy::queue_scope(api, caller).await?;
        let mut counts = view.queue_counts(now).await.map_err(ApiError::from)?;
        counts.retain(|c| scope.admits(&c.queue.id));
        let mut waiting = view
            .waiting(queue.as_deref(), now)
            .await
            .map_err(ApiError::from)?;
        waiting.retain(|w| scope.admits(&w.entry.queue));
        counts.retain(|c| queue.as_ref().is_none_or(|q| *q == c.queue.id));
        let total = i64::try_from(counts.len()).unwrap_or(i64::MAX);
        let start = match after.as_deref() {
            None => 0,
            Some(cursor) => {
                counts
                    .iter()
                    .position(|c| c.queue.id == cursor)
                    .ok_or_else(|| {
                        ApiError::Validation(format!(
                            "after: {cursor:?} is not a queue of this listing"
                        ))
                    })?
                    + 1
            }
        };
        let size = page_size(first)?;
        let more = counts.len() > start + size;
        let items: Vec<_> = counts.into_iter().skip(start).take(size).collect();
        let page = kefu_projections::view::Page {
            next: more
                .then(|| items.last().map(|c| c.queue.id.clone()))
                .flatten(),
            items,
        };
        Ok(connection(
            start > 0,
            page,
            total,
            |c| c.queue.id.clone(),
            |c| Queue::of(c, &waiting),
        )?)
    }

    /// An agent's chats and free seats. Agents see their own.
    async fn workbench(
        &self,
        ctx: &Context<'_>,
        agent: Option<String>,
        at_least: Option<String>,
    ) -> Result<Workbench> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        let p = require(caller, Root::Query, "workbench")?;
        let agent = policy::target_agent(p, agent.as_deref(), "see the workbench")?;
        policy::manage_agent(api, caller, agent).await?;
        caught_up(api, at_least.as_deref()).await?;
        let view = api.read.live("queues").await.map_err(ApiError::from)?;
        let bench = view
            .workbench(&agent.to_string())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("no agent {agent}")))?;
        Ok(Workbench::of(bench)?)
    }

    /// Tickets, newest first, as the desk sees them. Customers read `myTickets`.
    async fn tickets(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<String>,
        assignee: Option<String>,
        at_least: Option<String>,
    ) -> Result<Connection<String, Ticket, Total>> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        require(caller, Root::Query, "tickets")?;
        let mut filter = TicketFilter {
            status,
            assignee,
            ..TicketFilter::default()
        };
        policy::ticket_scope(api, caller).await?.narrow(&mut filter);
        let limit = page_size(first)?;
        caught_up(api, at_least.as_deref()).await?;
        let view = api.read.live("tickets").await.map_err(ApiError::from)?;
        let page = view
            .tickets(&filter, after.as_deref(), limit)
            .await
            .map_err(ApiError::from)?;
        let total = view.count_tickets(&filter).await.map_err(ApiError::from)?;
        Ok(connection(
            after.is_some(),
            page,
            total,
            ticket_cursor,
            Ticket::of_row,
        )?)
    }

    /// The caller's own tickets, newest first, as their customer sees them.
    async fn my_tickets(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        at_least: Option<String>,
    ) -> Result<Connection<String, CustomerTicket, Total>> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        let p = require(caller, Root::Query, "myTickets")?;
        let filter = TicketFilter {
            customer: Some(policy::customer_id(p)?.to_string()),
            ..TicketFilter::default()
        };
        let limit = page_size(first)?;
        caught_up(api, at_least.as_deref()).await?;
        let view = api.read.live("tickets").await.map_err(ApiError::from)?;
        let page = view
            .tickets(&filter, after.as_deref(), limit)
            .await
            .map_err(ApiError::from)?;
        let total = view.count_tickets(&filter).await.map_err(ApiError::from)?;
        Ok(connection(
            after.is_some(),
            page,
            total,
            ticket_cursor,
            CustomerTicket::of_row,
        )?)
    }

    /// One ticket and the history of every field, as the desk sees it. Customers read
    /// `myTicket`.
    async fn ticket(
        &self,
        ctx: &Context<'_>,
        id: String,
        at_least: Option<String>,
    ) -> Result<Ticket> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        require(caller, Root::Query, "ticket")?;
        let ticket = ticket_view(api, caller, &id, at_least.as_deref()).await?;
        Ok(Ticket::of_view(ticket)?)
    }

    /// One of the caller's own tickets, as a customer sees it: public comments only.
    async fn my_ticket(
        &self,
        ctx: &Context<'_>,
        id: String,
        at_least: Option<String>,
    ) -> Result<CustomerTicket> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        require(caller, Root::Query, "myTicket")?;
        let ticket = ticket_view(api, caller, &id, at_least.as_deref()).await?;
        Ok(CustomerTicket::of_view(ticket)?)
    }

    /// Service and satisfaction statistics, one row per value of `group`. `generation` reads
    /// an as-of build
    /// (`kefu replay --as-of`).
    #[allow(clippy::too_many_arguments)]
    async fn stats(
        &self,
        ctx: &Context<'_>,
        group: StatsGroup,
        queue: Option<String>,
        agent: Option<String>,
        handled_by: Option<String>,
        scenario: Option<String>,
        channel: Option<String>,
        business_line: Option<String>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        #[graphql(desc = "Minutes east of UTC for day and hour buckets (default 480, Beijing).")]
        utc_offset_minutes: Option<i32>,
        generation: Option<i64>,
        at_least: Option<String>,
    ) -> Result<Vec<StatisticsRow>> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        require(caller, Root::Query, "stats")?;
        policy::supervisor_names_a_queue(caller, queue.as_deref(), "reads")?;
        let offset = utc_offset_minutes.unwrap_or(480);
        if !(-14 * 60..=14 * 60).contains(&offset) {
            return Err(ApiError::Validation(format!(
                "utcOffsetMinutes: {offset} is not an offset on Earth"
            ))
            .into());
        }
        let group = kefu_projections::stats::StatsGroup::from(group);
        let filter = StatsFilter {
            queue,
            agent,
            handled_by,
            scenario,
            channel,
            business_line,
            from,
            to,
        };
        caught_up(api, at_least.as_deref()).await?;
        let view = api
            .read
            .pick("stats", generation)
            .await
            .map_err(ApiError::from)?;
        let rows = view
            .stats(&filter, group, Duration::minutes(i64::from(offset)))
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(StatisticsRow::from).collect())
    }

    /// Full-text search over messages, conversations, tickets and the knowledge base
    /// (Chinese and English), best first. Only what the caller may see is searched, so
    /// `totalCount` counts nothing else. A cursor is where the next page starts.
    #[allow(clippy::too_many_arguments)]
    async fn search(
        &self,
        ctx: &Context<'_>,
        text: String,
        kinds: Option<Vec<SearchKind>>,
        queue: Option<String>,
        agent: Option<String>,
        status: Option<views::ConversationStatus>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        first: Option<i32>,
        after: Option<String>,
        at_least: Option<String>,
    ) -> Result<Connection<String, SearchHit, Total>> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        require(caller, Root::Query, "search")?;
        let after = after
            .as_deref()
            .map(SearchCursor::decode)
            .transpose()
            .map_err(|e| ApiError::Validation(format!("after: {e}")))?;
        let paged = after.is_some();
        let mut request = SearchRequest::new(text).page(page_size(first)?, 0);
        request.after = after;
        request = request.scope(policy::search_scope(api, caller).await?);
        for kind in kinds.unwrap_or_default() {
            request = request.kind(kind.into());
        }
        if let Some(q) = queue {
            request = request.queue(QueueId::from_uuid(uuid("queue", &q)?));
        }
        if let Some(a) = agent {
            request = request.agent(AgentId::from_uuid(uuid("agent", &a)?));
        }
        if let Some(s) = status {
            request = request.status(DocStatus::Conversation(s.into()));
        }
        // The request's fields are public; its builder has no `until` alone.
        request.from = from;
        request.to = to;
        search_caught_up(api, at_least.as_deref()).await?;
        let reader = api.search.reader().ok_or_else(|| {
            ApiError::Unavailable("the search index is still opening; try again".into())
        })?;
        let results = tokio::task::spawn_blocking(move || reader.search(&request))
            .await
            .map_err(|e| ApiError::Unavailable(format!("search failed: {e}")))?
            .map_err(ApiError::from)?;
        let next = results
            .more
            .then(|| results.hits.last().map(|h| h.cursor.clone()))
            .flatten();
        let page = kefu_projections::view::Page {
            items: results.hits,
            next,
        };
        Ok(connection(
            paged,
            page,
            i64::try_from(results.total).unwrap_or(i64::MAX),
            |h| h.cursor.clone(),
            |h| {
                Ok(SearchHit {
                    kind: h.kind.into(),
                    conversation: h.conversation.map(|c| c.to_string()),
                    message: h.message.map(|m| m.to_string()),
                    ticket: h.ticket.map(|t| t.to_string()),
                    entry: h.entry.map(|e| e.to_string()),
                    score: h.score.map(f64::from),
                    time: h.time,
                    queue: h.queue.map(|q| q.to_string()),
                    agent: h.agent.map(|a| a.to_string()),
                    conversation_status: match h.status {
                        Some(DocStatus::Conversation(c)) => Some(c.into()),
                        _ => None,
                    },
                    ticket_status: match h.status {
                        Some(DocStatus::Ticket(t)) => Some(t.into()),
                        _ => None,
                    },
                    internal: h.internal,
                    snippet: h.snippet.to_html(),
                })
            },
        )?)
    }

    /// Hourly conversation volume forecast for a queue (or all arrivals), from the last
    /// `historyDays` of statistics, and the agents needed for the service level: `serviceLevel`
    /// of chats answered within `answerWithinSecs`, agents taking `concurrency` chats at once.
    #[allow(clippy::too_many_arguments)]
    async fn forecast(
        &self,
        ctx: &Context<'_>,
        queue: Option<String>,
        #[graphql(default = 24)] hours: i32,
        #[graphql(default = 28)] history_days: i32,
        aht_secs: Option<f64>,
        #[graphql(default = 60.0)] answer_within_secs: f64,
        #[graphql(default = 0.8)] service_level: f64,
        #[graphql(default = 3)] concurrency: i32,
        #[graphql(default = 480)] utc_offset_minutes: i32,
        at_least: Option<String>,
    ) -> Result<Forecast> {
        use kefu_projections::forecast::{
            Staffing, agents_needed, day_against_actual, day_start, fit,
        };
        let (api, caller) = (api(ctx), caller(ctx)?);
        require(caller, Root::Query, "forecast")?;
        policy::supervisor_names_a_queue(caller, queue.as_deref(), "forecasts")?;
        let bad = |m: String| -> async_graphql::Error { ApiError::Validation(m).into() };
        if !(1..=24 * 14).contains(&hours) {
            return Err(bad(format!("hours: {hours} is not 1 to 336")));
        }
        if !(1..=366).contains(&history_days) {
            return Err(bad(format!("historyDays: {history_days} is not 1 to 366")));
        }
        if !(service_level > 0.0 && service_level < 1.0) {
            return Err(bad(format!(
                "serviceLevel: {service_level} is not between 0 and 1"
            )));
        }
        // Written to refuse NaN too.
        if answer_within_secs.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
            || !(1..=50).contains(&concurrency)
        {
            return Err(bad(
                "answerWithinSecs must be positive and concurrency 1 to 50".into(),
            ));
        }
        let offset = chrono::FixedOffset::east_opt(utc_offset_minutes * 60).ok_or_else(|| {
            bad(format!(
                "utcOffsetMinutes: {utc_offset_minutes} is not an offset"
            ))
        })?;
        caught_up(api, at_least.as_deref()).await?;
        let view = api.read.live("stats").await.map_err(ApiError::from)?;
        let now = api.desk.now();
        let this_hour =
            chrono::DateTime::from_timestamp(now.timestamp().div_euclid(3600) * 3600, 0)
                .unwrap_or(now);
        let from = this_hour - Duration::days(i64::from(history_days));
        let counts = view
            .hourly_arrivals(queue.as_deref(), from, this_hour)
            .await
            .map_err(ApiError::from)?;
        let aht = match (aht_secs, &queue) {
            (Some(a), _) if a > 0.0 => a,
            (Some(a), _) => return Err(bad(format!("ahtSecs: {a} must be positive"))),
            (None, Some(q)) => view
                .handling_secs(q, from)
                .await
                .map_err(ApiError::from)?
                .unwrap_or(600.0),
            (None, None) => 600.0,
        };
        let model = fit(&counts, from, offset);
        let day = day_start(now, offset);
        let day_from = day - Duration::days(i64::from(history_days));
        let today = day_against_actual(
            &view
                .hourly_arrivals(queue.as_deref(), day_from, this_hour + Duration::hours(1))
                .await
                .map_err(ApiError::from)?,
            day_from,
            offset,
            day,
            now,
        );
        let staffing = Staffing {
            aht_secs: aht,
            target_secs: answer_within_secs,
            service_level,
            concurrency: u32::try_from(concurrency).unwrap_or(1),
        };
        Ok(Forecast {
            queue,
            aht_secs: aht,
            trained_on_hours: i32::try_from(counts.len()).unwrap_or(i32::MAX),
            hours: (0..hours)
                .map(|h| {
                    let hour = this_hour + Duration::hours(i64::from(h));
                    let expected = model.predict(hour);
                    ForecastHour {
                        hour,
                        expected,
                        agents_needed: i32::try_from(agents_needed(expected, &staffing))
                            .unwrap_or(i32::MAX),
                    }
                })
                .collect(),
            today: today
                .into_iter()
                .map(|h| HourAgainstActual {
                    hour: h.hour,
                    expected: h.expected,
                    actual: h.actual.map(|n| n as i32),
                })
                .collect(),
        })
    }

    /// What would have happened: the chats that started in `[from, to)` (at most 31 days)
    /// replayed through the production bot, triage and assigner with the recorded customers'
    /// and agents' behaviour, unchanged and with `change`, each over `seeds` seeds (1 to 5),
    /// side by side with the record per queue and hour (`kefu whatif`, README "What if").
    /// Analysts and admins change anything; a supervisor changes agents and targets of their
    /// own queues and sees their queues' rows. One replay runs at a time per server.
    async fn what_if(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        change: super::whatif::WhatIfChange,
        #[graphql(default = 3)] seeds: i32,
    ) -> Result<super::whatif::WhatIfReport> {
        super::whatif::run(ctx, from, to, change, seeds).await
    }

    /// The degradation switches.
    async fn switches(&self, ctx: &Context<'_>) -> Result<Vec<SwitchState>> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        require(caller, Root::Query, "switches")?;
        let board = api.desk.switchboard().await.map_err(ApiError::from)?;
        Ok(kefu_domain::switches::Switch::ALL
            .into_iter()
            .map(|s| SwitchState {
                switch: s.into(),
                on: board.is_on(s),
            })
            .collect())
    }

    /// The drills' faults on this server's dependencies.
    async fn faults(&self, ctx: &Context<'_>) -> Result<Vec<FaultState>> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        require(caller, Root::Query, "faults")?;
        Ok([FaultTarget::Store, FaultTarget::OrderGateway]
            .into_iter()
            .map(|t| api.faults.state(t))
            .collect())
    }

    /// The probe runs of the last `slots` schedule slots (1 to 100, default 7), newest
    /// first; slots never probed are left out.
    async fn probe_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 7)] slots: i32,
    ) -> Result<Vec<ProbeRunResult>> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        require(caller, Root::Query, "probeRuns")?;
        let n = usize::try_from(slots)
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::Validation(format!("slots: {slots} is not 1 to 100")))?;
        let runs = kefu_workers::probes::recent_runs(&api.desk, api.probe_every, api.desk.now(), n)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        Ok(runs
            .into_iter()
            .map(|r| ProbeRunResult {
                run: r.run.to_string(),
                slot: r.slot,
                questions: i32::try_from(r.questions).unwrap_or(i32::MAX),
                checked: r.completed.as_ref().map(|c| c.checked as i32),
                passed: r.completed.as_ref().map(|c| c.passed as i32),
                failures: r
                    .completed
                    .map(|c| c.failures.into_iter().map(Into::into).collect())
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// Everything one request set off, as a causation tree (depth-first), from the audit
    /// read model, with how far it had read the log (`caughtUp.complete`). `atLeast`: a log
    /// position the read models must have passed first (the last event the caller knows of).
    async fn audit_trail(
        &self,
        ctx: &Context<'_>,
        correlation_id: String,
        at_least: Option<String>,
    ) -> Result<AuditTrail> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        require(caller, Root::Query, "auditTrail")?;
        let id = uuid("correlationId", &correlation_id)?;
        caught_up(api, at_least.as_deref()).await?;
        let view = api.read.live(audit::NAME).await.map_err(ApiError::from)?;
        let answer = view
            .audit_trail(&*api.log, id)
            .await
            .map_err(ApiError::from)?;
        if answer.trail.events == 0 {
            let missing = if answer.caught_up.complete {
                "the audit index has read the whole log"
            } else {
                "the audit index has not read the whole log yet: ask again"
            };
            return Err(ApiError::NotFound(format!(
                "no event carries correlation id {id} ({missing})"
            ))
            .into());
        }
        Ok(AuditTrail {
            entries: answer
                .trail
                .walk()
                .into_iter()
                .map(|(depth, e)| AuditEntry {
                    depth: i32::try_from(depth).unwrap_or(i32::MAX),
                    event: Event::from(e),
                })
                .collect(),
            caught_up: answer.caught_up.into(),
        })
    }

    /// The raw events of one stream, from a version on.
    async fn stream_events(
        &self,
        ctx: &Context<'_>,
        stream: String,
        from_version: Option<i32>,
        first: Option<i32>,
    ) -> Result<Vec<Event>> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        require(caller, Root::Query, "streamEvents")?;
        let stream = StreamId::new(stream).map_err(ApiError::from)?;
        let from = u64::try_from(from_version.unwrap_or(0))
            .map_err(|_| ApiError::Validation("fromVersion: must not be negative".into()))?;
        let events = api
            .log
            .read_stream(&stream, from, page_size(first)?)
            .await
            .map_err(ApiError::from)?;
        Ok(events.iter().map(Event::from).collect())
    }
}

/// A listing cursor in the form the views page by (`<started_at ms>:<id>`).
fn cursor_of(row: &kefu_projections::conversations::ConversationRow) -> String {
    format!("{}:{}", row.started_at, row.id)
}

/// The same for tickets (`<opened_at ms>:<id>`).
fn ticket_cursor(row: &kefu_projections::tickets::TicketRow) -> String {
    format!("{}:{}", row.opened_at, row.id)
}
