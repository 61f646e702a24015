//! `kefu serve`: the HTTP server. GraphQL over HTTP (`POST /graphql`) and WebSocket
//! (`/graphql/ws`, graphql-transport-ws), GraphiQL at `/`, `/healthz`, `/readyz` and
//! `/metrics`, with the read models, the search index and the event hub kept current in the
//! background.
//!
//! Every request gets a correlation id (from `X-Correlation-Id`, else from the W3C
//! `traceparent` trace id, else a new one), returned in `X-Correlation-Id` and stamped on
//! every event the request causes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_graphql::http::GraphiQLSource;
use async_graphql::{Data, ServerError};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use clap::Args;
use kefu_eventlog::faults::{FaultSettings, Faulty};
use kefu_eventlog::{EventLog, Position};
use kefu_projections::search::LiveSearch;
use kefu_projections::{LiveProjections, ReadModels};
use kefu_workers::{CommandService, Desk};
use tokio::sync::watch;
use uuid::Uuid;

use crate::auth::{self, AuthError, Principal, Tokens};
use crate::config::StoreArgs;
use crate::graphql::{self, Api, ApiError, Caller, Drills, KefuSchema, Limits};
use crate::hub::EventHub;
use crate::metrics::{Metrics, RateLimiter};
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
    /// /readyz answers 503 while any projection is more than this many events behind the log.
    #[arg(long, env = "KEFU_MAX_READ_LAG", default_value_t = 1000)]
    pub max_read_lag: usize,
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
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut f) => {
            std::io::Write::write_all(&mut f, secret.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(path = %path.display(), "made a token secret for development");
            Ok(secret.into_bytes())
        }
        // Another process made it first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(std::fs::read(path)?),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
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
    let search = LiveSearch::spawn(log.clone(), store.search_home());
    let (stop, stopped) = watch::channel(false);
    let workers = worker_cmd::spawn(
        &worker_names(&args.workers)?,
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
    });
    let app = App {
        schema: graphql::schema(api.clone()),
        api,
        tokens,
        rate: Arc::new(RateLimiter::new(args.rate_limit, args.rate_burst)),
        metrics,
        max_read_lag: args.max_read_lag,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // With port 0 the system picks one; say which (tests read this line).
    let local = listener
        .local_addr()
        .context("the listener has no address")?;
    tracing::info!(listen = %local, "kefu is serving");
    let served = axum::serve(listener, router(app, args.max_body_bytes))
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

fn router(app: App, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/", get(graphiql))
        .route("/graphql", get(graphiql).post(graphql_http))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn(move |req, next| {
            limit_body(max_body_bytes, req, next)
        }))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(app)
}

/// Refuses bodies over `max` bytes: at once when `Content-Length` says so, else when the
/// streamed body passes the limit (the GraphQL extractor reads the raw body stream, which
/// axum's `DefaultBodyLimit` does not cover).
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
    let (parts, body) = req.into_parts();
    let body = axum::body::Body::new(http_body_util::Limited::new(body, max));
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("kefu")
            .finish(),
    )
}

/// The request's correlation id and W3C trace id, from its headers.
fn correlation(headers: &HeaderMap) -> Result<(Uuid, Option<String>), ApiError> {
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
    if let Some(v) = headers.get("x-correlation-id") {
        let raw = v.to_str().unwrap_or_default();
        let id = raw
            .trim()
            .parse::<Uuid>()
            .map_err(|_| ApiError::Validation(format!("X-Correlation-Id {raw:?} is not a UUID")))?;
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

fn principal(tokens: &Tokens, header: Option<&str>) -> Result<Principal, AuthError> {
    tokens.verify(auth::bearer(header)?, Utc::now())
}

/// A GraphQL error response with an HTTP status, for requests refused before execution.
fn refused(status: StatusCode, error: ApiError, correlation: Option<Uuid>) -> Response {
    let code = error.code();
    let mut server_error = ServerError::new(error.message(), None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code.as_str());
    server_error.extensions = Some(ext);
    let body = async_graphql::Response::from_errors(vec![server_error]);
    let mut response = (status, Json(body)).into_response();
    if let Some(id) = correlation {
        set_correlation(&mut response, id);
    }
    response
}

fn set_correlation(response: &mut Response, id: Uuid) {
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-correlation-id", v);
    }
}

async fn graphql_http(
    State(app): State<App>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let started = Instant::now();
    let response = execute(&app, &headers, request).await;
    app.metrics
        .record_request(response.status().is_success(), started.elapsed());
    response
}

async fn execute(app: &App, headers: &HeaderMap, request: GraphQLRequest) -> Response {
    let (correlation, trace) = match correlation(headers) {
        Ok(c) => c,
        Err(e) => return refused(StatusCode::BAD_REQUEST, e, None),
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match principal(&app.tokens, authorization) {
        Ok(p) => p,
        Err(e) => {
            return refused(
                StatusCode::UNAUTHORIZED,
                ApiError::Unauthenticated(e.to_string()),
                Some(correlation),
            );
        }
    };
    if let Err(retry_after) = app
        .rate
        .check(&format!("{}:{}", principal.role, principal.id))
    {
        let mut response = refused(
            StatusCode::TOO_MANY_REQUESTS,
            ApiError::RateLimited(format!(
                "too many requests for this token; try again in {:.1} s",
                retry_after.as_secs_f64()
            )),
            Some(correlation),
        );
        if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let caller = Caller {
        principal,
        correlation,
        trace,
    };
    let span = tracing::info_span!("graphql", %correlation, role = %caller.principal.role);
    let _enter = span.enter();
    let request = request.into_inner().data(caller);
    drop(_enter);
    let mut result = app.schema.execute(request).await;
    graphql::code_unmarked(&mut result.errors);
    if result.is_err() {
        tracing::debug!(%correlation, errors = ?result.errors, "request answered with errors");
    }
    let mut response = GraphQLResponse::from(result).into_response();
    set_correlation(&mut response, correlation);
    response
}

async fn graphql_ws(
    State(app): State<App>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let (correlation, trace) = match correlation(&headers) {
        Ok(c) => c,
        Err(e) => return refused(StatusCode::BAD_REQUEST, e, None),
    };
    // Browsers cannot set headers on a WebSocket: the token may come in `connection_init`
    // instead ({"Authorization": "Bearer …"}).
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|h| principal(&app.tokens, Some(h)));
    let schema = app.schema.clone();
    let tokens = app.tokens.clone();
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let principal = match from_header {
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
                    .map_err(|e| {
                        async_graphql::Error::from(ApiError::Unauthenticated(e.to_string()))
                    })?;
                    let mut data = Data::default();
                    data.insert(Caller {
                        principal,
                        correlation,
                        trace,
                    });
                    Ok(data)
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
        let behind = app
            .api
            .log
            .read_all(next, cap + 1)
            .await
            .map_err(|e| format!("event store: {e}"))?
            .len();
        out.push((name, behind));
    }
    Ok(out)
}

/// Ready when the store answers and every projection is within `--max-read-lag` events of
/// the log.
async fn ready(State(app): State<App>) -> (StatusCode, String) {
    match lags(&app, app.max_read_lag).await {
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e),
        Ok(lags) => {
            let behind: Vec<String> = lags
                .iter()
                .filter(|(_, n)| *n > app.max_read_lag)
                .map(|(name, n)| format!("{name} is {n}+ events behind"))
                .collect();
            if behind.is_empty() {
                (StatusCode::OK, "ready".into())
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, behind.join("; "))
            }
        }
    }
}

/// Prometheus text format.
async fn metrics(State(app): State<App>) -> impl IntoResponse {
    const LAG_CAP: usize = 10_000;
    let lags = lags(&app, LAG_CAP).await.unwrap_or_default();
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
    let body = app.metrics.render(&lags, LAG_CAP, head, &queues);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
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
        let (id, trace) = correlation(&headers).unwrap();
        assert_eq!(trace.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(id.simple().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");

        headers.insert(
            "x-correlation-id",
            HeaderValue::from_static("0192e0a0-0000-7000-8000-000000000042"),
        );
        assert_eq!(
            correlation(&headers).unwrap().0.to_string(),
            "0192e0a0-0000-7000-8000-000000000042"
        );
    }

    #[test]
    fn malformed_tracing_headers_are_named() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static("00-zz-01"));
        let e = correlation(&headers).unwrap_err();
        assert!(e.message().contains("traceparent"), "{e:?}");
        let mut headers = HeaderMap::new();
        headers.insert("x-correlation-id", HeaderValue::from_static("nope"));
        let e = correlation(&headers).unwrap_err();
        assert!(e.message().contains("X-Correlation-Id"), "{e:?}");
        // All-zero trace ids are invalid by the W3C spec.
        assert_eq!(
            trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
    }
}
