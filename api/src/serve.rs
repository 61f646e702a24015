//! `kefu serve`: the HTTP server, with the read models kept current in the background. For now
//! it serves the probes; the GraphQL API (issue 5) mounts on the same router.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use clap::Args;
use kefu_eventlog::{AnyLog, EventLog, Position};
use kefu_projections::LiveProjections;
use kefu_projections::search::LiveSearch;

use crate::config::StoreArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEFU_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

pub async fn run(store: &StoreArgs, args: ServeArgs) -> Result<()> {
    let log = Arc::new(store.open().await?);
    tracing::info!(store = %store.describe(), backend = log.backend(), "event store open");
    let read = store.open_read_store().await?;
    // Read models follow the log in the background, apart from the write path.
    let projections = LiveProjections::spawn(log.clone(), read, kefu_projections::all);
    let search = LiveSearch::spawn(log.clone(), store.search_home());
    let app = router(log);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(listen = %args.listen, "kefu is serving");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        })
        .await
        .context("the HTTP server failed");
    projections.shutdown().await;
    search.shutdown().await;
    served
}

pub fn router(log: Arc<AnyLog>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(log)
}

/// Ready when the store answers a read.
async fn ready(State(log): State<Arc<AnyLog>>) -> (StatusCode, String) {
    match log.read_all(Position::START, 1).await {
        Ok(_) => (StatusCode::OK, "ready".into()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("event store: {e}")),
    }
}
