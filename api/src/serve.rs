//! `kefu serve`: the HTTP server. For now it serves the probes; the GraphQL API (issue 5)
//! mounts on the same router.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use clap::Args;
use kefu_eventlog::{AnyLog, EventLog, Position};

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
    let app = router(log);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(listen = %args.listen, "kefu is serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        })
        .await
        .context("the HTTP server failed")
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
