//! Whether the read side is really moving: the log's settled head against its committed head,
//! sampled once a second, and what `/readyz` and `/metrics` say about it.
//!
//! Followers read only the settled prefix of the log (on PostgreSQL, the events below the
//! oldest transaction still open anywhere in the cluster). A transaction left open freezes
//! every follower while writes go on, and from the followers' side that is silence: each is
//! caught up with a head that does not move. So the stall is judged here, from the heads
//! themselves: committed events waiting above a settled head that has stood still for
//! `--stall-after-secs` is a stall, named with the session holding it and since when.
//! A settled head that moves (however far behind, as under load) is not a stall; the
//! followers' own lags say how far behind they are.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kefu_eventlog::{EventLog, LogProgress};
use tokio::sync::watch;

/// How often the sampler asks the store for its heads.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// What the sampler last saw of the log. Pure: [`LogHealth::observe`] folds one sample in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogHealth {
    /// The last heads read, if any read has succeeded.
    pub progress: Option<LogProgress>,
    /// Since when committed events have waited above the same settled head.
    pub held_since: Option<DateTime<Utc>>,
    /// Why the last sample failed, when it did.
    pub error: Option<String>,
}

impl LogHealth {
    /// The state after a sample taken at `now`. A failed sample keeps what was known and says
    /// why it failed: the store being unreachable is reported by the followers' checks, and a
    /// stall that was running is still running as far as anyone knows.
    pub fn observe(self, sample: Result<LogProgress, String>, now: DateTime<Utc>) -> LogHealth {
        let progress = match sample {
            Err(error) => {
                return LogHealth {
                    error: Some(error),
                    ..self
                };
            }
            Ok(p) => p,
        };
        let held_since = if !progress.held_back() {
            None
        } else {
            let same_settled = self
                .progress
                .as_ref()
                .is_some_and(|before| before.settled == progress.settled && before.held_back());
            match self.held_since {
                Some(since) if same_settled => Some(since),
                _ => Some(now),
            }
        };
        LogHealth {
            progress: Some(progress),
            held_since,
            error: None,
        }
    }

    /// How long the settled head has stood still with events above it (zero when it has not).
    pub fn held_for(&self, now: DateTime<Utc>) -> Duration {
        self.held_since
            .and_then(|since| (now - since).to_std().ok())
            .unwrap_or_default()
    }

    /// What `/readyz` says when the settled head has stood still behind committed events for
    /// at least `after`; None otherwise.
    pub fn stall(&self, now: DateTime<Utc>, after: Duration) -> Option<String> {
        let since = self.held_since?;
        let held = self.held_for(now);
        if held < after {
            return None;
        }
        let p = self.progress.as_ref()?;
        let at =
            |pos: Option<kefu_eventlog::Position>| pos.map_or("none".into(), |p| p.0.to_string());
        let mut why = format!(
            "the log is stalled: its settled head (position {}) has not moved for {} s (since {}) \
             while {} committed event(s) wait above it (committed head {}); every read model, \
             worker and subscription is frozen there",
            at(p.settled),
            held.as_secs(),
            since.to_rfc3339(),
            p.unsettled,
            at(p.committed),
        );
        match &p.holder {
            Some(h) => why.push_str(&format!(
                ". Held back by {h}: end that transaction (SELECT pg_terminate_backend({})), and \
                 set idle_in_transaction_session_timeout so the server ends such sessions itself",
                h.pid
            )),
            None => why.push_str(
                ". The transaction holding it is not visible to kefu's database role (or is a \
                 prepared transaction): look in pg_stat_activity and pg_prepared_xacts for the \
                 oldest backend_xid",
            ),
        }
        Some(why)
    }
}

/// Samples `log`'s heads every [`SAMPLE_EVERY`] until `stopped`, publishing what it sees.
pub fn spawn_sampler<L: EventLog>(
    log: std::sync::Arc<L>,
    mut stopped: watch::Receiver<bool>,
) -> watch::Receiver<LogHealth> {
    let (tx, rx) = watch::channel(LogHealth::default());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            let sample = log
                .progress()
                .await
                .map_err(|e| format!("event store: {e}"));
            let now = Utc::now();
            tx.send_modify(|h| *h = std::mem::take(h).observe(sample, now));
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_eventlog::{Holder, Position};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + secs, 0).unwrap()
    }

    fn heads(settled: u64, committed: u64) -> LogProgress {
        LogProgress {
            settled: Some(Position(settled)),
            committed: Some(Position(committed)),
            unsettled: committed.saturating_sub(settled).min(1),
            holder: None,
        }
    }

    const AFTER: Duration = Duration::from_secs(5);

    #[test]
    fn a_settled_head_standing_still_behind_committed_events_is_a_stall_from_the_first_sample() {
        let h = LogHealth::default()
            .observe(Ok(heads(10, 20)), at(0))
            .observe(Ok(heads(10, 25)), at(3));
        assert_eq!(h.held_since, Some(at(0)));
        assert_eq!(h.stall(at(4), AFTER), None, "not yet past the threshold");
        let h = h.observe(Ok(heads(10, 30)), at(6));
        let why = h.stall(at(6), AFTER).expect("a stall");
        assert!(why.contains("position 10") && why.contains("6 s"), "{why}");
        assert!(why.contains(&at(0).to_rfc3339()), "says since when: {why}");
        assert!(why.contains("pg_prepared_xacts"), "no holder named: {why}");
        assert_eq!(h.held_for(at(6)), Duration::from_secs(6));
    }

    #[test]
    fn a_moving_settled_head_is_not_a_stall_however_far_behind() {
        let mut h = LogHealth::default();
        for i in 0..100 {
            h = h.observe(Ok(heads(i * 10, i * 10 + 50)), at(i as i64));
            assert_eq!(h.stall(at(i as i64), AFTER), None);
            assert_eq!(
                h.held_since,
                Some(at(i as i64)),
                "restarts when the head moves"
            );
        }
    }

    #[test]
    fn heads_that_meet_end_the_stall() {
        let h = LogHealth::default()
            .observe(Ok(heads(10, 20)), at(0))
            .observe(Ok(heads(20, 20)), at(10));
        assert_eq!(h.held_since, None);
        assert_eq!(h.stall(at(10), AFTER), None);
        assert_eq!(h.held_for(at(10)), Duration::ZERO);
    }

    #[test]
    fn a_failed_sample_keeps_what_was_known_and_says_why() {
        let h = LogHealth::default()
            .observe(Ok(heads(10, 20)), at(0))
            .observe(Err("event store: unavailable".into()), at(7));
        assert_eq!(h.error.as_deref(), Some("event store: unavailable"));
        assert_eq!(h.held_since, Some(at(0)));
        assert!(h.stall(at(7), AFTER).is_some());
        let h = h.observe(Ok(heads(10, 20)), at(8));
        assert_eq!(h.error, None);
        assert_eq!(h.held_since, Some(at(0)), "still the same stall");
    }

    #[test]
    fn the_holder_is_named_with_what_to_do() {
        let mut p = heads(10, 20);
        p.holder = Some(Holder {
            pid: 4242,
            database: Some("shop".into()),
            user: Some("report".into()),
            application: Some("psql".into()),
            state: Some("idle in transaction".into()),
            transaction_start: Some(at(-30)),
        });
        let why = LogHealth::default()
            .observe(Ok(p), at(0))
            .stall(at(9), AFTER)
            .unwrap();
        for needle in [
            "pid 4242",
            "\"shop\"",
            "\"idle in transaction\"",
            "pg_terminate_backend(4242)",
            "idle_in_transaction_session_timeout",
        ] {
            assert!(why.contains(needle), "{needle} in {why}");
        }
    }
}
