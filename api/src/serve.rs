//! `kefu serve`: the HTTP server. GraphQL over HTTP (`POST /graphql`, queries also by GET)
//! and WebSocket (`/graphql/ws`, graphql-transport-ws), GraphiQL at `/graphiql`, `/healthz`,
//! `/readyz` and `/metrics`, with the read models, the search index and the event hub kept
//! current in the background.
//!
//! This file is the request boundary: every request is read here (our own body handling, so
//! every refusal is a GraphQL error with `extensions.code`), admitted (`admit`: rate limit,
//! then `graphql::bounds` on the parsed document) and run under `--request-timeout-secs`,
//! over HTTP and WebSocket alike.
//!
//! Every request gets a correlation id, returned in `X-Correlation-Id` and stamped on every
//! event the request causes: an admin's or the order system's `X-Correlation-Id` (else
//! `traceparent` trace id) is taken; anyone else gets a new one, their header kept as the
//! trace id.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use std::sync::OnceLock;

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Data, ServerError};
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use clap::Args;
use futures_util::stream::{self, BoxStream, StreamExt};
use kefu_desk::{CommandService, Desk};
use kefu_eventlog::faults::{FaultSettings, Faulty};
use kefu_eventlog::storage::Target;
use kefu_eventlog::{EventLog, Position};
use kefu_projections::search::LiveSearch;
use kefu_projections::{LiveProjections, Liveness, ReadModels};
use kefu_workers::runtime::Checkpoints;
use tokio::sync::watch;
use uuid::Uuid;

use crate::auth::{self, AuthError, Principal, Role, Tokens};
use crate::config::StoreArgs;
use crate::graphql::bounds::{self, Admitted, Shape};
use crate::graphql::policy;
use crate::graphql::{self, Api, ApiError, Caller, Drills, KefuSchema, Limits};
use crate::health;
use crate::hub::EventHub;
use crate::metrics::{Metrics, RateLimiter, Readings};
use crate::worker_cmd;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEFU_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub secret: SecretArgs,
    #[command(flatten)]
    pub tuning: worker_cmd::WorkerArgs,
    /// /readyz answers 503 while any projection, worker or the search index is more than
    /// this many events behind the log.
    #[arg(long, env = "KEFU_MAX_READ_LAG", default_value_t = 1000)]
    pub max_read_lag: usize,
    /// /readyz answers 503 once the log's settled head has stood still this many seconds
    /// with committed events above it (a transaction held open in the database), or the read
    /// models or the search index writer have kept failing this long.
    #[arg(long, env = "KEFU_STALL_AFTER_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_after_secs: u64,
    /// Requests per second each token may make on average (0: no limit).
    #[arg(long, env = "KEFU_RATE_LIMIT", default_value_t = 50.0)]
    pub rate_limit: f64,
    /// Requests a token may make at once before the average applies.
    #[arg(long, env = "KEFU_RATE_BURST", default_value_t = 100)]
    pub rate_burst: u32,
    /// Largest request body, in bytes.
    #[arg(long, env = "KEFU_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// Deepest query accepted.
    #[arg(long, env = "KEFU_MAX_QUERY_DEPTH", default_value_t = 12)]
    pub max_query_depth: usize,
    /// Most complex query accepted (async-graphql's count of fields, lists weighted).
    #[arg(long, env = "KEFU_MAX_QUERY_COMPLEXITY", default_value_t = 1000)]
    pub max_query_complexity: usize,
    /// Most fields, fragment spreads and directives in one request, every alias and every
    /// use of a fragment counted (checked before anything expands them).
    #[arg(long, env = "KEFU_MAX_QUERY_NODES", default_value_t = 500)]
    pub max_query_nodes: u64,
    /// Most root fields of one mutation request; each counts against the rate limit. One, so
    /// that a refused request writes nothing; above one, a field refused does not undo the
    /// fields before it.
    #[arg(long, env = "KEFU_MAX_ROOT_MUTATIONS", default_value_t = 1)]
    pub max_root_mutations: u64,
    /// Longest a request may take, body and execution, in seconds; then it is answered
    /// TIMEOUT.
    #[arg(long, env = "KEFU_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// A bearer token Prometheus may scrape `/metrics` with (besides admin and analyst
    /// tokens). At least 32 bytes.
    #[arg(long, env = "KEFU_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// The workers to run inside the server: bot, router, assigner, surveys, idle, sla,
    /// survey-reminders, archiver, probes (comma-separated), or none.
    #[arg(
        long,
        env = "KEFU_WORKERS",
        value_delimiter = ',',
        default_value = "bot,router,assigner,surveys,idle,sla,survey-reminders,archiver,probes"
    )]
    pub workers: Vec<String>,
    /// Longest message, internal note or comment, in characters.
    #[arg(long, env = "KEFU_MAX_MESSAGE_CHARS", default_value_t = 2000)]
    pub max_message_chars: usize,
    /// How long a query with `atLeast` waits for the read models, in seconds.
    #[arg(long, env = "KEFU_READ_WAIT_SECS", default_value_t = 10)]
    pub read_wait_secs: u64,
    /// How long a mutation's idempotency key is kept, in hours: a resend with the same key
    /// within it answers the first receipt; after it, the key is forgotten and runs again.
    #[arg(long, env = "KEFU_IDEMPOTENCY_WINDOW_HOURS", default_value_t = 24,
          value_parser = clap::value_parser!(u64).range(1..=24 * 366))]
    pub idempotency_window_hours: u64,
    #[command(flatten)]
    pub faults: FaultArgs,
}

/// Faults a drill starts the server with (the `setFault` mutation changes them at run time).
#[derive(Args, Debug, Clone)]
pub struct FaultArgs {
    /// Milliseconds added to every read and append of the event store.
    #[arg(long, env = "KEFU_FAULT_STORE_LATENCY_MS", default_value_t = 0)]
    pub fault_store_latency_ms: u64,
    /// Share of event-store calls that fail (0 to 1, spread evenly).
    #[arg(long, env = "KEFU_FAULT_STORE_ERROR_RATE", default_value_t = 0.0)]
    pub fault_store_error_rate: f64,
    /// Milliseconds added to every order-gateway lookup.
    #[arg(long, env = "KEFU_FAULT_GATEWAY_LATENCY_MS", default_value_t = 0)]
    pub fault_gateway_latency_ms: u64,
    /// Share of order-gateway lookups that fail (0 to 1, spread evenly).
    #[arg(long, env = "KEFU_FAULT_GATEWAY_ERROR_RATE", default_value_t = 0.0)]
    pub fault_gateway_error_rate: f64,
}

impl FaultArgs {
    fn drills(&self) -> Result<Drills> {
        let drills = Drills::new();
        drills
            .store
            .set(FaultSettings {
                latency: Duration::from_millis(self.fault_store_latency_ms),
                error_rate: self.fault_store_error_rate,
            })
            .context("--fault-store-latency-ms / --fault-store-error-rate")?;
        drills
            .gateway
            .set(FaultSettings {
                latency: Duration::from_millis(self.fault_gateway_latency_ms),
                error_rate: self.fault_gateway_error_rate,
            })
            .context("--fault-gateway-latency-ms / --fault-gateway-error-rate")?;
        Ok(drills)
    }
}

/// Where the token secret comes from (also used by `kefu token`).
#[derive(Args, Debug, Clone)]
pub struct SecretArgs {
    /// The HS256 secret that signs bearer tokens (at least 32 bytes). Unset: a random secret
    /// kept in `<data dir>/token-secret`, made on first use.
    #[arg(long, env = "KEFU_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
}

impl SecretArgs {
    pub fn tokens(&self, store: &StoreArgs) -> Result<Tokens> {
        let secret = match &self.token_secret {
            Some(s) => s.clone().into_bytes(),
            None => local_secret(&store.data_dir.join("token-secret"))?,
        };
        Tokens::new(&secret).context("--token-secret / KEFU_TOKEN_SECRET")
    }
}

/// The development secret: random, made once, readable by its owner only.
fn local_secret(path: &std::path::Path) -> Result<Vec<u8>> {
    if let Ok(existing) = std::fs::read(path) {
        return Ok(existing);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| crate::config::io_problem(dir, Target::Dir, e, "cannot create"))?;
    }
    let secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut f) => {
            if let Err(e) = std::io::Write::write_all(&mut f, secret.as_bytes()) {
                // An empty secret left behind would be read, and refused, on every start.
                let _ = std::fs::remove_file(path);
                return Err(crate::config::io_problem(
                    path,
                    Target::File,
                    e,
                    "cannot write",
                ));
            }
            tracing::info!(path = %path.display(), "made a token secret for development");
            Ok(secret.into_bytes())
        }
        // Another process made it first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(std::fs::read(path)?),
        Err(e) => Err(crate::config::io_problem(
            path,
            Target::File,
            e,
            "cannot create",
        )),
    }
}

/// What the HTTP handlers share.
#[derive(Clone)]
struct App {
    schema: KefuSchema,
    api: Arc<Api>,
    tokens: Tokens,
    rate: Arc<RateLimiter>,
    metrics: Arc<Metrics>,
    max_read_lag: usize,
    stall_after: Duration,
    projections_liveness: watch::Receiver<Liveness>,
    /// The workers this server runs that follow the log, by checkpoint name: /readyz and
    /// /metrics say how far behind each is.
    followers: Vec<&'static str>,
    checkpoints: Checkpoints,
    shape: Shape,
    timeout: Duration,
    max_body_bytes: usize,
    metrics_token: Option<String>,
    documents: Arc<Documents>,
}

/// Parsed query documents by their text. A frontend sends the same few queries over and
/// over, and async-graphql's parser costs more than anything else at the boundary (a
/// 1.2 KB query took about a tenth of a typed conversation read's time to parse).
/// Bounded: only texts up to [`Documents::LONGEST`] are kept (a frontend's queries; a
/// parsed document takes some ten times its text), and when full the cache starts again
/// empty, so a client sending ever new texts costs a few megabytes at most.
struct Documents {
    parsed: std::sync::Mutex<std::collections::HashMap<String, ExecutableDocument>>,
}

impl Documents {
    /// Most documents kept.
    const CAPACITY: usize = 256;
    /// Longest text kept, in bytes.
    const LONGEST: usize = 4 * 1024;

    fn new() -> Self {
        Documents {
            parsed: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn parse(&self, query: &str) -> Result<ExecutableDocument, Refusal> {
        let lock = || self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(doc) = lock().get(query) {
            return Ok(doc.clone());
        }
        let doc = async_graphql::parser::parse_query(query)
            .map_err(|e| bad_request(format!("the query does not parse: {e}")))?;
        if query.len() > Self::LONGEST {
            return Ok(doc);
        }
        let mut parsed = lock();
        if parsed.len() >= Self::CAPACITY {
            parsed.clear();
        }
        parsed.insert(query.to_owned(), doc.clone());
        Ok(doc)
    }
}

pub async fn run(store: &StoreArgs, args: ServeArgs) -> Result<()> {
    let tokens = args.secret.tokens(store)?;
    let drills = args.faults.drills()?;
    let log = Arc::new(Faulty::new(store.open().await?, drills.store.clone()));
    tracing::info!(store = %store.describe(), backend = log.backend(), "event store open");
    let read = store.open_read_store().await?;
    let models = ReadModels::open(read.clone()).await?;
    // Read models follow the log in the background, apart from the write path.
    let read_for_workers = read.clone();
    let projections = LiveProjections::spawn(log.clone(), read, kefu_projections::all);
    // The index is fed in the background; a directory it cannot write is said now, once.
    store
        .search_home()
        .prepare()
        .context("cannot keep the search index")?;
    let search = LiveSearch::spawn(log.clone(), store.search_home());
    let (stop, stopped) = watch::channel(false);
    let names = worker_names(&args.workers)?;
    let followers: Vec<&'static str> = names.iter().filter_map(|n| n.checkpoint()).collect();
    let checkpoints = Checkpoints::open(read_for_workers.clone()).await?;
    // Beside the workers' checkpoints: the read-model store every server on this store
    // shares, and survives restarts.
    let keys = graphql::idempotency::Keys::open(
        read_for_workers.clone(),
        Duration::from_secs(args.idempotency_window_hours * 3600),
        args.tuning.clock.clock()?,
    )
    .await
    .context("the idempotency keys' table")?;
    let workers = worker_cmd::spawn(
        &names,
        &args.tuning,
        log.clone(),
        worker_cmd::ReadSide {
            store: read_for_workers,
            models: models.clone(),
            positions: projections.positions(),
        },
        drills.gateway.clone(),
        stopped.clone(),
    )
    .await?;
    let metrics = Arc::new(Metrics::default());
    let log_health = health::spawn_sampler(log.clone(), stopped.clone());
    let hub = EventHub::spawn(log.clone(), stopped, metrics.clone());
    let api = Arc::new(Api {
        log: log.clone(),
        desk: Desk::new(CommandService::new(log.clone())).with_clock(args.tuning.clock.clock()?),
        faults: drills,
        probe_every: args.tuning.probe_every(),
        read: models,
        projections: projections.positions(),
        search: search.handle(),
        hub,
        limits: Limits {
            max_depth: args.max_query_depth,
            max_complexity: args.max_query_complexity,
            read_wait: Duration::from_secs(args.read_wait_secs),
            max_message_chars: args.max_message_chars,
        },
        keys,
        log_health,
        bot_thresholds: args.tuning.bot.thresholds(),
        whatif: Arc::new(tokio::sync::Semaphore::new(1)),
    });
    let app = App {
        schema: graphql::schema(api.clone()),
        api,
        tokens,
        rate: Arc::new(RateLimiter::new(args.rate_limit, args.rate_burst)),
        metrics,
        max_read_lag: args.max_read_lag,
        stall_after: Duration::from_secs(args.stall_after_secs),
        projections_liveness: projections.liveness(),
        followers,
        checkpoints,
        shape: Shape {
            max_depth: args.max_query_depth,
            max_nodes: args.max_query_nodes,
            max_root_mutations: args.max_root_mutations,
            ..Shape::default()
        },
        timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
        max_body_bytes: args.max_body_bytes,
        metrics_token: args.metrics_token.clone(),
        documents: Arc::new(Documents::new()),
    };
    if let Some(t) = &app.metrics_token
        && t.len() < auth::MIN_SECRET_BYTES
    {
        anyhow::bail!(
            "--metrics-token must be at least {} bytes",
            auth::MIN_SECRET_BYTES
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // With port 0 the system picks one; say which (tests read this line).
    let local = listener
        .local_addr()
        .context("the listener has no address")?;
    tracing::info!(listen = %local, "kefu is serving");
    tracing::info!(
        "The desk: http://{local}/ ; GraphiQL: http://{local}/graphiql ; GraphQL: http://{local}/graphql ; a development token: `{}`",
        token_command(store, &args.secret)
    );
    // Small answers go out at once: with Nagle's algorithm a WebSocket frame written in two
    // parts waited for the client's delayed ACK (about 40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let served = axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed");
    // In-flight requests have drained; now the workers and the background followers.
    let _ = stop.send(true);
    for w in workers {
        let _ = w.await;
    }
    projections.shutdown().await;
    search.shutdown().await;
    served
}

fn worker_names(raw: &[String]) -> Result<Vec<worker_cmd::WorkerName>> {
    use clap::ValueEnum;
    let mut names = Vec::new();
    for r in raw.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
        if r == "none" {
            continue;
        }
        let name = worker_cmd::WorkerName::from_str(r, true).map_err(|_| {
            anyhow::anyhow!(
                "--workers: {r:?} is not a worker; use bot, router, assigner, surveys, idle, sla, survey-reminders, archiver, probes or none"
            )
        })?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: draining in-flight requests");
}

fn router(app: App) -> Router {
    let max_body_bytes = app.max_body_bytes;
    Router::new()
        .route("/", get(desk))
        .route("/assets/{asset}", get(desk_asset))
        .route("/graphiql", get(graphiql))
        .route("/graphiql/{asset}", get(graphiql_asset))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|uri: axum::http::Uri| async move {
            refused(
                StatusCode::NOT_FOUND,
                ApiError::NotFound(format!("kefu serves no {}", uri.path())),
                None,
            )
        })
        .method_not_allowed_fallback(
            |method: axum::http::Method, uri: axum::http::Uri| async move {
                refused(
                    StatusCode::METHOD_NOT_ALLOWED,
                    ApiError::Validation(format!("{method} is not served at {}", uri.path())),
                    None,
                )
            },
        )
        .layer(axum::middleware::from_fn(move |req, next| {
            limit_body(max_body_bytes, req, next)
        }))
        .with_state(app)
}

/// Refuses bodies over `max` bytes at once when `Content-Length` says so; bodies without
/// one are cut off at `max` while they are read (`read_body`).
async fn limit_body(
    max: usize,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = declared.filter(|n| *n > max) {
        return refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation(format!(
                "the request body is {n} bytes; the limit is {max} (--max-body-bytes)"
            )),
            None,
        );
    }
    next.run(req).await
}

async fn desk() -> Html<&'static str> {
    Html(crate::desk::PAGE)
}

async fn desk_asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    // Not cached for long: the desk's file names stay the same from one build to the next.
    let headers = [(header::CACHE_CONTROL, "no-cache")];
    embedded(crate::desk::asset(&name), headers, || {
        format!("no desk asset {name:?}")
    })
}

async fn graphiql() -> Html<&'static str> {
    Html(crate::graphiql::PAGE)
}

async fn graphiql_asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let headers = [
        (header::CONTENT_ENCODING, "gzip"),
        (header::CACHE_CONTROL, "public, max-age=86400"),
    ];
    embedded(crate::graphiql::asset(&name), headers, || {
        format!("no GraphiQL asset {name:?}")
    })
}

/// A file compiled into the binary (content type and bytes), with `headers`; 404 naming it
/// when there is none by that name.
fn embedded<const N: usize>(
    found: Option<(&'static str, &'static [u8])>,
    headers: [(header::HeaderName, &'static str); N],
    missing: impl FnOnce() -> String,
) -> Response {
    match found {
        Some((content_type, body)) => {
            ([(header::CONTENT_TYPE, content_type)], headers, body).into_response()
        }
        None => refused(StatusCode::NOT_FOUND, ApiError::NotFound(missing()), None),
    }
}

/// Whether a role's `X-Correlation-Id` is taken as the request's correlation id. A caller
/// who may choose it can put their events into another request's audit trail, so only
/// admins and the order system (relaying its own ids, so its records and kefu's share one
/// trail) may; everyone else's header is kept as the trace id, and the correlation id is new.
fn trusts_correlation(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Integration)
}

/// The request's correlation id and W3C trace id, from its headers: a trusted caller's
/// `X-Correlation-Id` or `traceparent` trace id names the correlation; anyone else's are
/// kept as the trace id only.
fn correlation(headers: &HeaderMap, trusted: bool) -> Result<(Uuid, Option<String>), ApiError> {
    let trace = match headers.get("traceparent").map(|v| v.to_str()) {
        None => None,
        Some(Ok(tp)) => Some(trace_id(tp).ok_or_else(|| {
            ApiError::Validation(format!(
                "traceparent {tp:?} is not `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`"
            ))
        })?),
        Some(Err(_)) => {
            return Err(ApiError::Validation("traceparent is not ASCII".into()));
        }
    };
    let claimed = match headers.get("x-correlation-id") {
        None => None,
        Some(v) => {
            let raw = v.to_str().unwrap_or_default();
            Some(raw.trim().parse::<Uuid>().map_err(|_| {
                ApiError::Validation(format!("X-Correlation-Id {raw:?} is not a UUID"))
            })?)
        }
    };
    if !trusted {
        let trace = trace.or_else(|| claimed.map(|c| c.simple().to_string()));
        return Ok((Uuid::now_v7(), trace));
    }
    if let Some(id) = claimed {
        return Ok((id, trace));
    }
    let id = match &trace {
        // The trace id is 128 bits, like a UUID: one id follows the request across systems.
        Some(t) => Uuid::from_u128(u128::from_str_radix(t, 16).unwrap_or_default()),
        None => Uuid::now_v7(),
    };
    Ok((id, trace))
}

/// The trace id of a W3C `traceparent` header (version 00).
fn trace_id(traceparent: &str) -> Option<String> {
    let parts: Vec<&str> = traceparent.trim().split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    match parts[..] {
        [version, trace, parent, flags]
            if hex(version, 2)
                && hex(trace, 32)
                && hex(parent, 16)
                && hex(flags, 2)
                && trace.bytes().any(|b| b != b'0') =>
        {
            Some(trace.to_ascii_lowercase())
        }
        _ => None,
    }
}

fn principal(
    tokens: &Tokens,
    header: Option<&str>,
) -> Result<(Principal, DateTime<Utc>), AuthError> {
    tokens.verify_until(auth::bearer(header)?, Utc::now())
}

/// A GraphQL error response with an HTTP status, for requests refused before execution.
fn refused(status: StatusCode, error: ApiError, correlation: Option<Uuid>) -> Response {
    answered(status, vec![coded(error)], correlation)
}

fn answered(status: StatusCode, errors: Vec<ServerError>, correlation: Option<Uuid>) -> Response {
    let body = async_graphql::Response::from_errors(errors);
    let mut response = (status, Json(body)).into_response();
    if let Some(id) = correlation {
        set_correlation(&mut response, id);
    }
    response
}

fn coded(error: ApiError) -> ServerError {
    let mut server_error = ServerError::new(error.message(), None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", error.code().as_str());
    server_error.extensions = Some(ext);
    server_error
}

fn set_correlation(response: &mut Response, id: Uuid) {
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-correlation-id", v);
    }
}

/// A request refused at the boundary: its status and coded errors (and when to retry, for
/// the rate limit).
struct Refusal {
    status: StatusCode,
    errors: Vec<ServerError>,
    retry_after: Option<Duration>,
}

impl Refusal {
    fn new(status: StatusCode, error: ApiError) -> Self {
        Refusal {
            status,
            errors: vec![coded(error)],
            retry_after: None,
        }
    }

    fn into_response(self, correlation: Option<Uuid>) -> Response {
        let mut response = answered(self.status, self.errors, correlation);
        if let Some(after) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

fn bad_request(message: String) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, ApiError::Validation(message))
}

/// Reads a POST body into one GraphQL request. async-graphql-axum's extractor answers a
/// bare-text 400 on any of these; here each gets a coded error naming what was wrong.
async fn read_body(
    headers: &HeaderMap,
    body: axum::body::Body,
    max: usize,
) -> Result<async_graphql::Request, Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not ASCII)"));
    let json = content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(format!(
                "Content-Type is {}; send application/json",
                content_type.map_or("missing".to_owned(), |c| format!("{c:?}"))
            )),
        ));
    }
    let bytes = axum::body::to_bytes(body, max).await.map_err(|e| {
        let too_long = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_long {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ApiError::Validation(format!(
                    "the request body is over {max} bytes (--max-body-bytes)"
                )),
            )
        } else {
            bad_request(format!("the request body could not be read: {e}"))
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_request(
            "the request body is empty; send {\"query\": \"…\", \"variables\": {…}}".into(),
        ));
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        bad_request(format!(
            "the request body is not UTF-8 (bad byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| bad_request(format!("the request body is not JSON: {e}")))?;
    request_of(value)
}

/// One GraphQL request from its JSON object. Batches (arrays) are refused: each operation is
/// its own request, with its own deadline, rate-limit cost and answer.
fn request_of(value: serde_json::Value) -> Result<async_graphql::Request, Refusal> {
    match &value {
        serde_json::Value::Object(fields) => {
            match fields.get("query") {
                Some(serde_json::Value::String(_)) => {}
                Some(_) => return Err(bad_request("query: must be a string".into())),
                None => return Err(bad_request("query: missing".into())),
            }
            if let Some(v) = fields.get("variables")
                && !(v.is_object() || v.is_null())
            {
                return Err(bad_request("variables: must be a JSON object".into()));
            }
        }
        serde_json::Value::Array(_) => {
            return Err(bad_request(
                "batched requests are not supported: send one operation per request".into(),
            ));
        }
        _ => {
            return Err(bad_request(
                "the request body must be a JSON object {\"query\": …}".into(),
            ));
        }
    }
    serde_json::from_value(value)
        .map_err(|e| bad_request(format!("the request body is not a GraphQL request: {e}")))
}

/// Who is calling over HTTP, and the ids their request stamps; or why not, with a fresh
/// correlation id for the answer.
fn http_caller(app: &App, headers: &HeaderMap) -> Result<Caller, (Refusal, Uuid)> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (principal, _) = principal(&app.tokens, authorization).map_err(|e| {
        (
            Refusal::new(
                StatusCode::UNAUTHORIZED,
                ApiError::Unauthenticated(e.to_string()),
            ),
            Uuid::now_v7(),
        )
    })?;
    let (correlation, trace) = correlation(headers, trusts_correlation(principal.role))
        .map_err(|e| (Refusal::new(StatusCode::BAD_REQUEST, e), Uuid::now_v7()))?;
    Ok(Caller {
        principal,
        correlation,
        trace,
    })
}

fn rate_limited(retry_after: Duration) -> Refusal {
    Refusal {
        status: StatusCode::TOO_MANY_REQUESTS,
        errors: vec![coded(ApiError::RateLimited(format!(
            "too many requests for this token; try again in {:.1} s",
            retry_after.as_secs_f64()
        )))],
        retry_after: Some(retry_after),
    }
}

/// The boundary's checks on a request, in order of cost: one token of the caller's rate,
/// the text's bracket nesting, the parse, the shape with fragments counted but not
/// expanded, the arguments, a mutation only where `mutations` (POST and WebSocket, not GET), the access policy's judgement of every root field (refused:
/// FORBIDDEN, with nothing run), then one more token per root mutation field after the
/// first. The parsed document is handed to async-graphql, which does not parse it again.
///
/// The policy is judged here rather than in an async-graphql extension because any
/// extension sends every field of every response through async-graphql's slow path (a
/// registry lookup and a boxed future per field): a typed conversation read took 1.7 times
/// as long with one installed (BENCHMARKS.md).
fn admit(
    app: &App,
    who: &Principal,
    mutations: bool,
    request: &mut async_graphql::Request,
) -> Result<Admitted, Refusal> {
    let key = who.identity();
    app.rate.check(&key).map_err(rate_limited)?;
    let invalid = |e| Refusal::new(StatusCode::BAD_REQUEST, e);
    bounds::check_text(&request.query, app.shape.max_nesting, app.shape.max_tokens)
        .map_err(invalid)?;
    let doc = app.documents.parse(&request.query)?;
    let admitted = bounds::check_shape(&doc, request.operation_name.as_deref(), &app.shape)
        .and_then(|a| bounds::check_arguments(&doc, &request.variables).map(|()| a))
        .map_err(invalid)?;
    if admitted.kind == OperationType::Mutation && !mutations {
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Validation("a mutation is sent with POST, not GET".into()),
        ));
    }
    policy::judge(&doc, request.operation_name.as_deref(), who.role).map_err(|errors| Refusal {
        status: StatusCode::FORBIDDEN,
        errors,
        retry_after: None,
    })?;
    if admitted.root_mutations > 1 {
        app.rate
            .check_n(&key, admitted.root_mutations - 1)
            .map_err(rate_limited)?;
    }
    request.set_parsed_query(doc);
    Ok(admitted)
}

async fn graphql_post(
    State(app): State<App>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Response {
    let read = read_body(&headers, request.into_body(), app.max_body_bytes);
    answer(&app, &headers, true, read).await
}

/// GET /graphql?query=…&variables=…&operationName=…: queries only (a link or a prefetch
/// must not write); without a query string, the explorer.
async fn graphql_get(State(app): State<App>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let Some(query) = uri.query().filter(|q| !q.is_empty()) else {
        return Redirect::to("/graphiql").into_response();
    };
    let read = std::future::ready(query_string_request(query));
    answer(&app, &headers, false, read).await
}

fn query_string_request(query: &str) -> Result<async_graphql::Request, Refusal> {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| bad_request(format!("the query string is not URL-encoded: {e}")))?;
    let mut object = serde_json::Map::new();
    for (k, v) in params {
        let value = match k.as_str() {
            "variables" | "extensions" => {
                serde_json::from_str(&v).map_err(|e| bad_request(format!("{k}: not JSON: {e}")))?
            }
            _ => serde_json::Value::String(v),
        };
        object.insert(k, value);
    }
    request_of(serde_json::Value::Object(object))
}

/// Reads, admits and runs one HTTP request under the deadline, and counts it.
async fn answer(
    app: &App,
    headers: &HeaderMap,
    mutations: bool,
    read: impl Future<Output = Result<async_graphql::Request, Refusal>>,
) -> Response {
    let started = Instant::now();
    let response =
        match tokio::time::timeout(app.timeout, run_http(app, headers, mutations, read)).await {
            Ok(r) => r,
            Err(_) => refused(
                StatusCode::SERVICE_UNAVAILABLE,
                timed_out(app.timeout),
                None,
            ),
        };
    app.metrics
        .record_request(response.status().is_success(), started.elapsed());
    response
}

fn timed_out(limit: Duration) -> ApiError {
    ApiError::Timeout(format!(
        "the request took longer than {} s (--request-timeout-secs); a mutation's outcome is unknown: read it back",
        limit.as_secs()
    ))
}

async fn run_http(
    app: &App,
    headers: &HeaderMap,
    mutations: bool,
    read: impl Future<Output = Result<async_graphql::Request, Refusal>>,
) -> Response {
    let caller = match http_caller(app, headers) {
        Ok(c) => c,
        Err((refusal, id)) => return refusal.into_response(Some(id)),
    };
    let correlation = caller.correlation;
    let mut request = match read.await {
        Ok(r) => r,
        Err(refusal) => return refusal.into_response(Some(correlation)),
    };
    if let Err(refusal) = admit(app, &caller.principal, mutations, &mut request) {
        return refusal.into_response(Some(correlation));
    }
    let span = tracing::info_span!("graphql", %correlation, role = %caller.principal.role);
    let request = request.data(caller);
    let mut result = {
        use tracing::Instrument;
        app.schema.execute(request).instrument(span).await
    };
    graphql::code_unmarked(&mut result.errors);
    if result.is_err() {
        tracing::debug!(%correlation, errors = ?result.errors, "request answered with errors");
    }
    let mut response = GraphQLResponse::from(result).into_response();
    // A mutation under an idempotency key has named its key's correlation id already.
    if !response.headers().contains_key("x-correlation-id") {
        set_correlation(&mut response, correlation);
    }
    response
}

/// What a WebSocket connection learns at `connection_init`: who is calling, until when.
#[derive(Clone)]
struct Session {
    caller: Caller,
    expires: DateTime<Utc>,
}

/// The schema as one WebSocket connection reaches it: every operation passes the same
/// boundary as an HTTP request (rate limit, shape, arguments), queries and mutations run
/// under the deadline, errors are coded, and nothing runs past the token's expiry (a new
/// operation is refused, a running subscription ends with an UNAUTHENTICATED error).
#[derive(Clone)]
struct Guarded {
    app: App,
    session: Arc<OnceLock<Session>>,
}

fn error_response(e: ApiError) -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![coded(e)])
}

fn expired(at: DateTime<Utc>) -> ApiError {
    ApiError::Unauthenticated(format!(
        "token expired at {at}; connect again with a fresh token"
    ))
}

impl async_graphql::Executor for Guarded {
    fn execute(
        &self,
        request: async_graphql::Request,
    ) -> impl Future<Output = async_graphql::Response> + Send {
        let mut stream = self.execute_stream(request, None);
        async move { stream.next().await.unwrap_or_default() }
    }

    fn execute_stream(
        &self,
        mut request: async_graphql::Request,
        _: Option<Arc<Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        let fail = |e| stream::once(std::future::ready(error_response(e))).boxed();
        let Some(session) = self.session.get().cloned() else {
            return fail(ApiError::Unauthenticated(
                "send connection_init with a token first".into(),
            ));
        };
        let now = Utc::now();
        if session.expires <= now {
            return fail(expired(session.expires));
        }
        let admitted = match admit(&self.app, &session.caller.principal, true, &mut request) {
            Ok(a) => a,
            Err(refusal) => {
                let answer = async_graphql::Response::from_errors(refusal.errors);
                return stream::once(std::future::ready(answer)).boxed();
            }
        };
        let schema = self.app.schema.clone();
        let request = request.data(session.caller.clone());
        let coded_unmarked = |mut r: async_graphql::Response| {
            graphql::code_unmarked(&mut r.errors);
            r
        };
        if admitted.kind != OperationType::Subscription {
            let limit = self.app.timeout;
            return stream::once(async move {
                match tokio::time::timeout(limit, schema.execute(request)).await {
                    Ok(r) => coded_unmarked(r),
                    Err(_) => error_response(timed_out(limit)),
                }
            })
            .boxed();
        }
        let events = schema.execute_stream(request);
        let left = (session.expires - now).to_std().unwrap_or_default();
        let deadline = Box::pin(tokio::time::sleep(left));
        stream::unfold(Some((events, deadline)), move |state| async move {
            let (mut events, mut deadline) = state?;
            tokio::select! {
                next = events.next() => next.map(|r| (coded_unmarked(r), Some((events, deadline)))),
                () = &mut deadline => Some((error_response(expired(session.expires)), None)),
            }
        })
        .boxed()
    }
}

/// A WebSocket connection's read buffer, in bytes.
const WS_READ_BUFFER: usize = 4 * 1024;

async fn graphql_ws(
    State(app): State<App>,
    headers: HeaderMap,
    protocol: Result<GraphQLProtocol, StatusCode>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let (protocol, upgrade) = match (protocol, upgrade) {
        (Ok(p), Ok(u)) => (p, u),
        (_, Err(e)) => {
            return refused(
                e.status(),
                ApiError::Validation(format!("not a WebSocket upgrade: {}", e.body_text())),
                None,
            );
        }
        (Err(_), _) => {
            return refused(
                StatusCode::BAD_REQUEST,
                ApiError::Validation(
                    "Sec-WebSocket-Protocol must be graphql-transport-ws or graphql-ws".into(),
                ),
                None,
            );
        }
    };
    // Browsers cannot set headers on a WebSocket: the token may come in `connection_init`
    // instead ({"Authorization": "Bearer …"}).
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|h| principal(&app.tokens, Some(h)));
    let session = Arc::new(OnceLock::new());
    let executor = Guarded {
        app: app.clone(),
        session: session.clone(),
    };
    let tokens = app.tokens.clone();
    // A message over the body limit closes the connection (1009, message too big).
    // tungstenite zero-fills the free part of its read buffer before every read: at its
    // default of 128 KiB that memset was a fifth of the server's CPU with many windows open,
    // and 128 KiB of memory each. A window's messages are small; a larger frame reserves
    // its own length.
    upgrade
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(app.max_body_bytes)
        .max_frame_size(app.max_body_bytes)
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            GraphQLWebSocket::new(socket, executor, protocol)
                .on_connection_init(move |payload| async move {
                    let unauthenticated = |e: AuthError| {
                        async_graphql::Error::from(ApiError::Unauthenticated(e.to_string()))
                    };
                    let (principal, expires) = match from_header {
                        Some(p) => p,
                        None => {
                            let value = ["Authorization", "authorization", "token"]
                                .iter()
                                .find_map(|k| payload.get(*k).and_then(|v| v.as_str()))
                                .map(|v| {
                                    if v.contains(' ') {
                                        v.to_owned()
                                    } else {
                                        format!("Bearer {v}")
                                    }
                                });
                            principal(&tokens, value.as_deref())
                        }
                    }
                    .map_err(unauthenticated)?;
                    let (correlation, trace) =
                        correlation(&headers, trusts_correlation(principal.role))?;
                    let _ = session.set(Session {
                        caller: Caller {
                            principal,
                            correlation,
                            trace,
                        },
                        expires,
                    });
                    Ok(Data::default())
                })
                .serve()
                .await
        })
}

/// How far behind the log each live projection is, in events (counted up to `cap + 1`).
async fn lags(app: &App, cap: usize) -> Result<Vec<(String, usize)>, String> {
    let positions = app.api.projections.borrow().clone();
    if positions.is_empty() {
        return Err("the read models have not started yet".into());
    }
    let mut out = Vec::new();
    for (name, next) in positions {
        out.push((name, events_from(app, next, cap).await?));
    }
    Ok(out)
}

/// How many events the log holds from `next` on, counted up to `cap` + 1: a follower's lag
/// (positions are transaction ids, not counts, so their difference means nothing).
async fn events_from(app: &App, next: Position, cap: usize) -> Result<usize, String> {
    Ok(app
        .api
        .log
        .read_all(next, cap + 1)
        .await
        .map_err(|e| format!("event store: {e}"))?
        .len())
}

/// How far behind the log each worker this server runs is (up to `cap` + 1 events). A worker
/// with no checkpoint yet has just started at the head, so is not behind.
async fn worker_lags(app: &App, cap: usize) -> Result<Vec<(String, usize)>, String> {
    let mut out = Vec::new();
    for name in &app.followers {
        let next = app
            .checkpoints
            .get(name)
            .await
            .map_err(|e| format!("worker checkpoints: {e}"))?;
        let behind = match next {
            None => 0,
            Some(next) => events_from(app, next, cap).await?,
        };
        out.push(((*name).to_owned(), behind));
    }
    Ok(out)
}

/// What keeps this server from being ready, each said in full; empty when it is ready. Not
/// ready: the log stalled (its settled head standing still behind committed events past
/// `--stall-after-secs`), the read models or the search index writer failing that long, or
/// any projection, worker or the search index more than `--max-read-lag` events behind.
/// Err when the store cannot be asked.
async fn not_ready(app: &App) -> Result<Vec<String>, String> {
    let now = Utc::now();
    let mut out = Vec::new();
    if let Some(stall) = app.api.log_health.borrow().stall(now, app.stall_after) {
        out.push(stall);
    }
    let search = app.api.search.writer();
    let failing = [
        ("the read models", app.projections_liveness.borrow().clone()),
        ("the search index writer", search),
    ];
    for (what, liveness) in failing {
        if let Some(f) = liveness.failing
            && (now - f.since).to_std().unwrap_or_default() >= app.stall_after
        {
            out.push(format!(
                "{what} has been failing since {} ({} failure(s) in a row, retried every few seconds): {}",
                f.since.to_rfc3339(),
                f.in_a_row,
                f.error
            ));
        }
    }
    let cap = app.max_read_lag;
    for (name, n) in lags(app, cap).await? {
        if n > cap {
            out.push(format!("{name} is {n}+ events behind"));
        }
    }
    for (name, n) in worker_lags(app, cap).await? {
        if n > cap {
            out.push(format!("worker {name} is {n}+ events behind"));
        }
    }
    let search = search_lag(app, cap).await?;
    if search > cap {
        out.push(format!("the search index is {search}+ events behind"));
    }
    Ok(out)
}

/// How many events the search index has still to read (up to `cap` + 1): counted from where
/// it has read to, so that switching indexing off (a degradation switch) is not a lag.
async fn search_lag(app: &App, cap: usize) -> Result<usize, String> {
    events_from(app, app.api.search.seen().next, cap).await
}

/// 200 `ready`, or 503 with a coded error body naming everything that is not ready (every
/// non-2xx answer of the server has one); see [`not_ready`].
async fn ready(State(app): State<App>) -> Response {
    match not_ready(&app).await {
        Ok(problems) if problems.is_empty() => "ready".into_response(),
        Ok(problems) => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unavailable(problems.join("; ")),
            None,
        ),
        Err(e) => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unavailable(e),
            None,
        ),
    }
}

/// Prometheus text format.
async fn metrics(State(app): State<App>, headers: HeaderMap) -> Response {
    const LAG_CAP: usize = 10_000;
    if let Err(refusal) = metrics_access(&app, &headers) {
        return refusal.into_response(None);
    }
    let lags = lags(&app, LAG_CAP).await.unwrap_or_default();
    let workers = worker_lags(&app, LAG_CAP).await.unwrap_or_default();
    let head = app
        .api
        .log
        .head()
        .await
        .ok()
        .flatten()
        .map(|p: Position| p.0);
    let queues = match app.api.read.live("queues").await {
        Ok(view) => view
            .queue_counts(app.api.desk.now().timestamp_millis())
            .await
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let search_lag = search_lag(&app, LAG_CAP).await.ok();
    let log = app.api.log_health.borrow().clone();
    let body = app.metrics.render(&Readings {
        lags: &lags,
        workers: &workers,
        lag_cap: LAG_CAP,
        head,
        queues: &queues,
        log: log.progress.as_ref(),
        stall: log.held_for(Utc::now()),
        projections: &app.projections_liveness.borrow().clone(),
        search: &app.api.search.writer(),
        search_lag,
    });
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// `/metrics` names queues and the log head: it answers the scrape token
/// (`--metrics-token`) and admin and analyst tokens only.
fn metrics_access(app: &App, headers: &HeaderMap) -> Result<(), Refusal> {
    let unauthenticated = |e: AuthError| {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            ApiError::Unauthenticated(e.to_string()),
        )
    };
    let raw = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = auth::bearer(raw).map_err(unauthenticated)?;
    if let Some(expected) = &app.metrics_token
        && same_secret(token.as_bytes(), expected.as_bytes())
    {
        return Ok(());
    }
    let who = app
        .tokens
        .verify(token, Utc::now())
        .map_err(unauthenticated)?;
    if matches!(who.role, Role::Admin | Role::Analyst) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            ApiError::Forbidden(format!(
                "a {} may not read /metrics; use an admin or analyst token or --metrics-token",
                who.role
            )),
        ))
    }
}

/// Compares in time that depends on the length only, not on where the bytes differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The command that mints a development token for this server's secret.
fn token_command(store: &StoreArgs, secret: &SecretArgs) -> String {
    let mut command = String::new();
    if secret.token_secret.is_some() {
        command.push_str("KEFU_TOKEN_SECRET=<the same secret> ");
    }
    command.push_str("kefu token --role admin --id dev");
    if store.data_dir != std::path::Path::new("data") {
        command.push_str(&format!(" --data-dir {}", store.data_dir.display()));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_gives_the_correlation_id() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let (id, trace) = correlation(&headers, true).unwrap();
        assert_eq!(trace.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(id.simple().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");

        headers.insert(
            "x-correlation-id",
            HeaderValue::from_static("0192e0a0-0000-7000-8000-000000000042"),
        );
        assert_eq!(
            correlation(&headers, true).unwrap().0.to_string(),
            "0192e0a0-0000-7000-8000-000000000042"
        );
        // An untrusted caller's header is kept as the trace, and the correlation is new.
        let (id, trace) = correlation(&headers, false).unwrap();
        assert_ne!(id.to_string(), "0192e0a0-0000-7000-8000-000000000042");
        assert_eq!(trace.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        headers.remove("traceparent");
        let (id, trace) = correlation(&headers, false).unwrap();
        assert_ne!(id.to_string(), "0192e0a0-0000-7000-8000-000000000042");
        assert_eq!(trace.as_deref(), Some("0192e0a0000070008000000000000042"));
    }

    #[test]
    fn malformed_tracing_headers_are_named() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static("00-zz-01"));
        let e = correlation(&headers, true).unwrap_err();
        assert!(e.message().contains("traceparent"), "{e:?}");
        let mut headers = HeaderMap::new();
        headers.insert("x-correlation-id", HeaderValue::from_static("nope"));
        let e = correlation(&headers, true).unwrap_err();
        assert!(e.message().contains("X-Correlation-Id"), "{e:?}");
        // All-zero trace ids are invalid by the W3C spec.
        assert_eq!(
            trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
    }
}
