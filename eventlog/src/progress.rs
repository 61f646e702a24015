//! How far the settled prefix of the log stands behind everything committed, and who holds it
//! back: what a server's health check reports as a stall.
//!
//! On PostgreSQL a reader sees only events below the oldest transaction still running in the
//! cluster (see `postgres.rs`), so one transaction left open anywhere freezes every follower
//! while writes go on. From outside that looks like nothing at all: every follower is "caught
//! up" with the settled prefix. Comparing the settled head with the committed one is what
//! makes it visible.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Position;

/// The log's two heads at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogProgress {
    /// The last position of the settled prefix (what followers can read), None when empty.
    pub settled: Option<Position>,
    /// The last position committed, settled or not.
    pub committed: Option<Position>,
    /// Committed events above the settled head: written, acknowledged, and not yet readable.
    pub unsettled: u64,
    /// The transaction holding the settled head back, when there is one and the store can
    /// name it.
    pub holder: Option<Holder>,
}

impl LogProgress {
    /// Settled and committed are one: what every store without a settling rule reports.
    pub fn settled_at(head: Option<Position>) -> Self {
        LogProgress {
            settled: head,
            committed: head,
            unsettled: 0,
            holder: None,
        }
    }

    /// Whether committed events wait above the settled head.
    pub fn held_back(&self) -> bool {
        self.unsettled > 0
    }
}

/// A database session whose open transaction holds the settled head back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// The server process id (`pg_terminate_backend` takes it).
    pub pid: i32,
    pub database: Option<String>,
    pub user: Option<String>,
    pub application: Option<String>,
    /// `active`, `idle in transaction`, ...; None when kefu's role may not see it.
    pub state: Option<String>,
    /// When its transaction began.
    pub transaction_start: Option<DateTime<Utc>>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgreSQL backend pid {}", self.pid)?;
        let named = [
            ("database", &self.database),
            ("user", &self.user),
            ("application", &self.application),
            ("state", &self.state),
        ];
        for (what, value) in named {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                write!(f, ", {what} {v:?}")?;
            }
        }
        if let Some(at) = self.transaction_start {
            write!(f, ", transaction open since {}", at.to_rfc3339())?;
        }
        Ok(())
    }
}
