//! The GraphQL API: the one protocol every terminal speaks (web, app, PC, the agent desk,
//! dashboards). Mutations are the desk's operations ([`kefu_desk::Desk`]) and return the log
//! position their events reached; queries read the projections and accept `atLeast`, a
//! position to wait for, so a client reads its own writes; subscriptions follow the log.
//!
//! Start at [`Api`] (what every resolver can reach) and [`Caller`] (who is asking, and the
//! correlation id their request stamps on every event). Access rules live in `policy.rs`,
//! error codes in `error.rs`.

pub mod bounds;
mod error;
pub mod idempotency;
mod integration;
mod mutation;
pub(crate) mod policy;
mod query;
#[cfg(test)]
mod schema_check;
mod subscription;
mod types;
mod views;
mod whatif;

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Context, Schema};
use kefu_desk::Desk;
use kefu_eventlog::{Actor, ActorKind, AnyLog, Metadata, Position};
use kefu_projections::ReadModels;
use kefu_projections::search::SearchHandle;
use tokio::sync::watch;
use uuid::Uuid;

use crate::auth::{Principal, Role};
use crate::hub::EventHub;

pub use error::{ApiError, code_unmarked};
pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;

pub type KefuSchema = Schema<Query, Mutation, Subscription>;

/// Limits on what one request may ask.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
    /// Longest `atLeast` wait before the answer is `UNAVAILABLE`.
    pub read_wait: Duration,
    /// Longest message, note or comment, in characters (the domain's own limit is 5 000).
    pub max_message_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 12,
            max_complexity: 1000,
            read_wait: Duration::from_secs(10),
            max_message_chars: 2000,
        }
    }
}

/// What every resolver can reach.
pub struct Api {
    pub log: Arc<ServerLog>,
    pub desk: Desk<ServerLog>,
    /// The drills' fault dials of this server.
    pub faults: Drills,
    /// How often the probes run (names the slots whose runs `probeRuns` reads).
    pub probe_every: std::time::Duration,
    pub read: ReadModels,
    /// Where each live projection's next read starts.
    pub projections: watch::Receiver<Vec<(String, Position)>>,
    pub search: SearchHandle,
    pub hub: EventHub,
    pub limits: Limits,
    /// The idempotency keys of mutations.
    pub keys: idempotency::Keys,
    /// The log's heads as last sampled: what says why a read waited in vain.
    pub log_health: watch::Receiver<crate::health::LogHealth>,
    /// The bot's thresholds this deployment runs with: a what-if's unchanged replay uses them.
    pub bot_thresholds: kefu_bot::faq::Thresholds,
    /// One what-if replay at a time.
    pub whatif: Arc<tokio::sync::Semaphore>,
}

impl Api {
    /// Why the read side may not have moved: the stall, when the log's settled head is held
    /// back right now; empty otherwise.
    fn stalled(&self) -> String {
        self.log_health
            .borrow()
            .stall(chrono::Utc::now(), Duration::ZERO)
            .map_or_else(String::new, |why| format!(": {why}"))
    }
}

/// The log as the server reaches it: through the store's fault dial.
pub type ServerLog = kefu_eventlog::faults::Faulty<AnyLog>;

/// This server's fault dials (drills; in memory, per process).
#[derive(Clone)]
pub struct Drills {
    pub store: kefu_eventlog::faults::Faults,
    pub gateway: kefu_eventlog::faults::Faults,
}

impl Drills {
    pub fn new() -> Self {
        Drills {
            store: kefu_eventlog::faults::Faults::new("store"),
            gateway: kefu_eventlog::faults::Faults::new("order gateway"),
        }
    }
}

impl Drills {
    pub fn dial(&self, target: types::FaultTarget) -> &kefu_eventlog::faults::Faults {
        match target {
            types::FaultTarget::Store => &self.store,
            types::FaultTarget::OrderGateway => &self.gateway,
        }
    }

    pub fn state(&self, target: types::FaultTarget) -> types::FaultState {
        let dial = self.dial(target);
        let s = dial.settings();
        types::FaultState {
            target,
            latency_ms: i32::try_from(s.latency.as_millis()).unwrap_or(i32::MAX),
            error_rate: s.error_rate,
            injected: dial.injected().to_string(),
        }
    }
}

impl Default for Drills {
    fn default() -> Self {
        Self::new()
    }
}

/// Who is asking, and the ids their request stamps on every event it causes.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub correlation: Uuid,
    /// The W3C trace id, when the client sent `traceparent`.
    pub trace: Option<String>,
}

impl Caller {
    /// The log's metadata for a command this request issues.
    pub fn metadata(&self) -> Metadata {
        let p = &self.principal;
        let actor = match p.role {
            Role::Customer => Actor::new(ActorKind::Customer, p.id.clone()),
            Role::Agent => Actor::new(ActorKind::Agent, p.id.clone()),
            Role::Supervisor => Actor::new(ActorKind::Agent, format!("supervisor:{}", p.id)),
            Role::Analyst | Role::Auditor | Role::Admin | Role::Integration => {
                Actor::new(ActorKind::System, format!("{}:{}", p.role, p.id))
            }
        };
        let mut meta = Metadata::for_request(actor, self.correlation);
        meta.trace_id = self.trace.clone();
        meta
    }
}

pub fn schema(api: Arc<Api>) -> KefuSchema {
    let limits = api.limits.clone();
    Schema::build(Query, Mutation, Subscription)
        .data(api)
        // No extensions: with any installed, async-graphql resolves every field through a
        // slower path (see `serve::admit`, which judges the policy instead).
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .finish()
}

/// The schema in SDL, as `schemas/schema.graphql` holds it.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, Subscription).finish().sdl()
}

pub(crate) fn api<'a>(ctx: &Context<'a>) -> &'a Arc<Api> {
    ctx.data_unchecked::<Arc<Api>>()
}

pub(crate) fn caller<'a>(ctx: &Context<'a>) -> Result<&'a Caller, ApiError> {
    ctx.data_opt::<Caller>().ok_or(ApiError::Unauthenticated(
        "no bearer token: send `Authorization: Bearer <token>`".into(),
    ))
}

/// Reads an id argument: a UUID, or the global id of a view (`Conversation:<uuid>`).
pub(crate) fn uuid(field: &str, raw: &str) -> Result<Uuid, ApiError> {
    let raw = raw.trim();
    let bare = raw.split_once(':').map_or(raw, |(_, id)| id);
    bare.parse()
        .map_err(|_| ApiError::Validation(format!("{field}: {raw:?} is not a UUID")))
}

/// Reads a position a client passed back (`atLeast`); positions travel as decimal strings
/// because they outgrow GraphQL's 32-bit `Int`.
pub(crate) fn position(field: &str, raw: &str) -> Result<Position, ApiError> {
    raw.trim()
        .parse::<u64>()
        .map(Position)
        .map_err(|_| ApiError::Validation(format!("{field}: {raw:?} is not a log position")))
}

/// Waits until every live projection has applied the event at `at_least` (a client reading
/// its own write), for at most the configured time.
pub(crate) async fn caught_up(api: &Api, at_least: Option<&str>) -> Result<(), ApiError> {
    let Some(raw) = at_least else {
        return Ok(());
    };
    let target = position("atLeast", raw)?;
    let mut rx = api.projections.clone();
    let waited = tokio::time::timeout(
        api.limits.read_wait,
        rx.wait_for(|ps| !ps.is_empty() && ps.iter().all(|(_, p)| *p > target)),
    )
    .await;
    match waited {
        Ok(Ok(_)) => Ok(()),
        _ => Err(ApiError::Unavailable(format!(
            "the read models have not reached position {raw} within {} s; try again{}",
            api.limits.read_wait.as_secs(),
            api.stalled()
        ))),
    }
}

/// The same for the search index.
pub(crate) async fn search_caught_up(api: &Api, at_least: Option<&str>) -> Result<(), ApiError> {
    let Some(raw) = at_least else {
        return Ok(());
    };
    let target = position("atLeast", raw)?;
    tokio::time::timeout(api.limits.read_wait, api.search.wait_for(target))
        .await
        .map_err(|_| {
            ApiError::Unavailable(format!(
                "the search index has not reached position {raw} within {} s; try again{}",
                api.limits.read_wait.as_secs(),
                api.stalled()
            ))
        })
}

#[cfg(test)]
mod tests {
    /// `schemas/schema.graphql` is what frontends build against: it must be this code's
    /// schema. `KEFU_BLESS=1 cargo test -p kefu-api schema_file` rewrites it.
    #[test]
    fn schema_file_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/schema.graphql");
        let sdl = super::sdl();
        if std::env::var_os("KEFU_BLESS").is_some() {
            let stored = std::fs::read_to_string(path).unwrap_or_default();
            let undeclared = undeclared_breaks(&stored, &sdl);
            assert!(
                undeclared.is_empty(),
                "not blessed: breaking changes not declared in schemas/breaking-changes.md:\n{}",
                undeclared.join("\n")
            );
            std::fs::write(path, &sdl).expect("write schemas/schema.graphql");
            return;
        }
        let stored = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            stored == sdl,
            "schemas/schema.graphql is stale: regenerate it with \
             `KEFU_BLESS=1 cargo test -p kefu-api schema_file` and commit it"
        );
    }

    /// The breaking changes from `stored` to `sdl` that `schemas/breaking-changes.md` does not
    /// declare.
    fn undeclared_breaks(stored: &str, sdl: &str) -> Vec<String> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/breaking-changes.md"
        );
        let declarations = std::fs::read_to_string(path).unwrap_or_default();
        if stored.is_empty() {
            return Vec::new();
        }
        super::schema_check::undeclared(stored, sdl, &declarations)
            .expect("schemas/schema.graphql and this code's schema parse")
    }

    /// A frontend's saved queries must not break silently: every breaking change between the
    /// committed schema and this code's is declared, with its reason.
    #[test]
    fn schema_changes_are_declared() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/schema.graphql");
        let stored = std::fs::read_to_string(path).expect("read schemas/schema.graphql");
        let undeclared = undeclared_breaks(&stored, &super::sdl());
        assert!(
            undeclared.is_empty(),
            "breaking changes to the schema not declared in schemas/breaking-changes.md \
             (add `- `Name`: reason` lines, or make the change additive):\n{}",
            undeclared.join("\n")
        );
    }
}
