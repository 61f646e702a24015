//! `/metrics` in Prometheus' text format, and the per-token rate limit. Both are small enough
//! that a metrics or rate-limiting crate would cost more build time than it saves.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kefu_domain::Event;
use kefu_domain::probe::ProbeEvent;
use kefu_eventlog::LogProgress;
use kefu_projections::Liveness;
use kefu_projections::queues::QueueCounts;

/// Upper bounds of the request-latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Cumulative counts per bucket, then +Inf.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    latency_micros: AtomicU64,
    events: AtomicU64,
    probes_passed: AtomicU64,
    probes_failed: AtomicU64,
    probe_runs: AtomicU64,
    /// The last completed run's passed share, in millionths.
    probe_ratio_millionths: AtomicU64,
}

impl Metrics {
    /// One HTTP GraphQL request: answered with a 2xx status or not, and how long it took.
    pub fn record_request(&self, ok: bool, took: Duration) {
        if ok { &self.ok } else { &self.failed }.fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.latency_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// An event appended to the log (by this server or anyone else), as the hub saw it. A
    /// completed probe run (whichever server's probes ran it) counts its checks.
    pub fn record_event(&self, e: &Event) {
        self.events.fetch_add(1, Ordering::Relaxed);
        if let Event::Probe(ProbeEvent::ProbeRunCompleted(c)) = e {
            let passed = u64::from(c.passed);
            let failed = u64::from(c.checked.saturating_sub(c.passed));
            self.probes_passed.fetch_add(passed, Ordering::Relaxed);
            self.probes_failed.fetch_add(failed, Ordering::Relaxed);
            let ratio = passed * 1_000_000 / u64::from(c.checked.max(1));
            self.probe_ratio_millionths.store(ratio, Ordering::Relaxed);
            self.probe_runs.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, r: &Readings<'_>) -> String {
        let Readings {
            lags,
            workers,
            lag_cap,
            head,
            queues,
            ..
        } = *r;
        let mut out = String::new();
        let ok = self.ok.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP kefu_graphql_requests_total GraphQL requests over HTTP, by outcome."
        );
        let _ = writeln!(out, "# TYPE kefu_graphql_requests_total counter");
        let _ = writeln!(out, "kefu_graphql_requests_total{{outcome=\"ok\"}} {ok}");
        let _ = writeln!(
            out,
            "kefu_graphql_requests_total{{outcome=\"refused\"}} {failed}"
        );
        let _ = writeln!(
            out,
            "# HELP kefu_graphql_request_duration_seconds Time to answer a GraphQL request."
        );
        let _ = writeln!(
            out,
            "# TYPE kefu_graphql_request_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "kefu_graphql_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "kefu_graphql_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "kefu_graphql_request_duration_seconds_sum {}",
            self.latency_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "kefu_graphql_request_duration_seconds_count {cumulative}"
        );
        let _ = writeln!(
            out,
            "# HELP kefu_events_appended_total Events appended to the log since this server started."
        );
        let _ = writeln!(out, "# TYPE kefu_events_appended_total counter");
        let _ = writeln!(
            out,
            "kefu_events_appended_total {}",
            self.events.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP kefu_probe_checks_total Probe questions checked since this server started, by outcome."
        );
        let _ = writeln!(out, "# TYPE kefu_probe_checks_total counter");
        let _ = writeln!(
            out,
            "kefu_probe_checks_total{{outcome=\"passed\"}} {}",
            self.probes_passed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "kefu_probe_checks_total{{outcome=\"failed\"}} {}",
            self.probes_failed.load(Ordering::Relaxed)
        );
        let ratio = self.probe_ratio_millionths.load(Ordering::Relaxed);
        if self.probe_runs.load(Ordering::Relaxed) > 0 {
            let _ = writeln!(
                out,
                "# HELP kefu_probe_last_run_pass_ratio The share of the last probe run's questions the bot answered right."
            );
            let _ = writeln!(out, "# TYPE kefu_probe_last_run_pass_ratio gauge");
            let _ = writeln!(out, "kefu_probe_last_run_pass_ratio {}", ratio as f64 / 1e6);
        }
        if let Some(head) = head {
            let _ = writeln!(
                out,
                "# HELP kefu_log_head_position The last settled position of the log."
            );
            let _ = writeln!(out, "# TYPE kefu_log_head_position gauge");
            let _ = writeln!(out, "kefu_log_head_position {head}");
        }
        let _ = writeln!(
            out,
            "# HELP kefu_projection_lag_events Events in the log a projection has not applied yet (counted up to {}).",
            lag_cap + 1
        );
        let _ = writeln!(out, "# TYPE kefu_projection_lag_events gauge");
        for (name, lag) in lags {
            let _ = writeln!(
                out,
                "kefu_projection_lag_events{{projection=\"{name}\"}} {lag}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP kefu_worker_lag_events Events in the log a worker this server runs has not reacted to yet (counted up to {}).",
            lag_cap + 1
        );
        let _ = writeln!(out, "# TYPE kefu_worker_lag_events gauge");
        for (name, lag) in workers {
            let _ = writeln!(out, "kefu_worker_lag_events{{worker=\"{name}\"}} {lag}");
        }
        if let Some(p) = &r.log {
            let mut one = |name: &str, help: &str, value: String| {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} gauge");
                let _ = writeln!(out, "{name} {value}");
            };
            let at = |pos: Option<kefu_eventlog::Position>| pos.map_or(0, |p| p.0).to_string();
            one(
                "kefu_log_settled_position",
                "The last position followers can read (the settled prefix), as last sampled.",
                at(p.settled),
            );
            one(
                "kefu_log_committed_position",
                "The last position committed, settled or not, as last sampled.",
                at(p.committed),
            );
            one(
                "kefu_log_unsettled_events",
                "Committed events above the settled head: acknowledged, not yet readable by any follower.",
                p.unsettled.to_string(),
            );
            one(
                "kefu_log_stall_seconds",
                "How long the settled head has stood still with committed events above it (0 when it moves or none wait).",
                format!("{}", r.stall.as_secs_f64()),
            );
        }
        for (name, l) in [("projections", &r.projections), ("search", &r.search)] {
            let _ = writeln!(
                out,
                "# HELP kefu_{name}_up 1 while the {name} follower runs, 0 while it fails and is being retried."
            );
            let _ = writeln!(out, "# TYPE kefu_{name}_up gauge");
            let _ = writeln!(out, "kefu_{name}_up {}", u8::from(l.failing.is_none()));
            let _ = writeln!(
                out,
                "# HELP kefu_{name}_failures_total Failures of the {name} follower since this server started."
            );
            let _ = writeln!(out, "# TYPE kefu_{name}_failures_total counter");
            let _ = writeln!(out, "kefu_{name}_failures_total {}", l.failures_total);
        }
        if let Some(lag) = r.search_lag {
            let _ = writeln!(
                out,
                "# HELP kefu_search_lag_events Events in the log the search index has not read yet (counted up to {}).",
                lag_cap + 1
            );
            let _ = writeln!(out, "# TYPE kefu_search_lag_events gauge");
            let _ = writeln!(out, "kefu_search_lag_events {lag}");
        }
        let mut gauge = |name: &str, help: &str, value: fn(&QueueCounts) -> i64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for q in queues {
                let _ = writeln!(
                    out,
                    "{name}{{queue=\"{}\",name=\"{}\"}} {}",
                    q.queue.id,
                    escape(&q.queue.name),
                    value(q)
                );
            }
        };
        gauge(
            "kefu_queue_waiting",
            "Conversations waiting in a queue.",
            |q| q.waiting,
        );
        gauge(
            "kefu_queue_with_agent",
            "Conversations of a queue with an agent.",
            |q| q.with_agent,
        );
        out
    }
}

/// What one scrape reports besides the counters the server keeps itself.
#[derive(Clone, Copy)]
pub struct Readings<'a> {
    /// Each projection's lag, in events (counted up to `lag_cap` + 1).
    pub lags: &'a [(String, usize)],
    /// Each log-following worker's lag.
    pub workers: &'a [(String, usize)],
    pub lag_cap: usize,
    /// The settled head.
    pub head: Option<u64>,
    pub queues: &'a [QueueCounts],
    /// The log's heads as last sampled (`health.rs`).
    pub log: Option<&'a LogProgress>,
    /// How long the settled head has stood still behind committed events.
    pub stall: Duration,
    pub projections: &'a Liveness,
    pub search: &'a Liveness,
    /// How many events the search index has still to read.
    pub search_lag: Option<usize>,
}

/// A label value as Prometheus reads it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A token bucket per caller: `burst` requests at once, refilled at `per_sec`.
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_sec` of 0 turns the limit off.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        RateLimiter {
            per_sec: per_sec.max(0.0),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket, or says how long until one is there.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_n(key, 1)
    }

    /// Takes `n` requests at once (a mutation's root fields), or none and says how long
    /// until there are `n`.
    pub fn check_n(&self, key: &str, n: u64) -> Result<(), Duration> {
        let n = n as f64;
        if self.per_sec == 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        // Forget callers whose buckets are full again, so the map does not grow forever.
        if buckets.len() > 100_000 {
            let full = self.burst / self.per_sec;
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs_f64() < full);
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
        *at = now;
        if *tokens >= n {
            *tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((n - *tokens) / self.per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gets_its_burst_then_waits() {
        // A refill so slow that no test run sees a token come back.
        let limiter = RateLimiter::new(1e-6, 3);
        for _ in 0..3 {
            assert!(limiter.check("agent:a").is_ok());
        }
        assert!(limiter.check("agent:a").is_err());
        assert!(limiter.check("agent:b").is_ok(), "buckets are per token");
        assert!(RateLimiter::new(0.0, 1).check("x").is_ok());
        let limiter = RateLimiter::new(1e-6, 10);
        assert!(limiter.check_n("agent:a", 8).is_ok());
        assert!(limiter.check_n("agent:a", 3).is_err(), "all or nothing");
        assert!(limiter.check_n("agent:a", 2).is_ok());
    }

    #[test]
    fn metrics_render_in_prometheus_text() {
        let m = Metrics::default();
        m.record_request(true, Duration::from_millis(3));
        m.record_request(false, Duration::from_secs(9));
        let event = |event_type: &str, payload: serde_json::Value| kefu_eventlog::RecordedEvent {
            id: uuid::Uuid::now_v7(),
            stream_id: kefu_eventlog::StreamId::new("probe-1").unwrap(),
            version: 0,
            position: kefu_eventlog::Position(1),
            event_type: event_type.into(),
            schema_version: 1,
            payload,
            recorded_at: chrono::Utc::now(),
            metadata: kefu_eventlog::Metadata::for_request(
                kefu_eventlog::Actor::new(kefu_eventlog::ActorKind::System, "probes"),
                uuid::Uuid::now_v7(),
            ),
        };
        m.record_event(&kefu_feed::decode_or_other(&event(
            "CustomerTurnRecorded",
            serde_json::json!({}),
        )));
        let idle = Liveness::default();
        let quiet = Readings {
            lags: &[],
            workers: &[],
            lag_cap: 10_000,
            head: None,
            queues: &[],
            log: None,
            stall: Duration::ZERO,
            projections: &idle,
            search: &idle,
            search_lag: None,
        };
        let text = m.render(&quiet);
        assert!(
            !text.contains("kefu_probe_last_run_pass_ratio"),
            "no run yet"
        );
        m.record_event(&kefu_feed::decode_or_other(&event(
            "ProbeRunCompleted",
            serde_json::json!({"checked": 4, "passed": 3, "failures": [], "at": "2026-11-30T03:00:00Z"}),
        )));
        let failing = Liveness {
            failing: Some(kefu_projections::Failing {
                since: chrono::Utc::now(),
                error: "No space left on device".into(),
                in_a_row: 2,
            }),
            failures_total: 5,
        };
        let heads = LogProgress {
            settled: Some(kefu_eventlog::Position(42)),
            committed: Some(kefu_eventlog::Position(99)),
            unsettled: 7,
            holder: None,
        };
        let text = m.render(&Readings {
            lags: &[("queues".into(), 2)],
            workers: &[("bot".into(), 3)],
            head: Some(42),
            log: Some(&heads),
            stall: Duration::from_millis(12_500),
            search: &failing,
            search_lag: Some(11),
            ..quiet
        });
        assert!(
            text.contains("kefu_graphql_requests_total{outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("kefu_graphql_request_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("kefu_graphql_request_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("kefu_projection_lag_events{projection=\"queues\"} 2"));
        assert!(text.contains("kefu_worker_lag_events{worker=\"bot\"} 3"));
        assert!(text.contains("kefu_events_appended_total 2"));
        assert!(text.contains("kefu_probe_checks_total{outcome=\"passed\"} 3"));
        assert!(text.contains("kefu_probe_checks_total{outcome=\"failed\"} 1"));
        assert!(
            text.contains("kefu_probe_last_run_pass_ratio 0.75"),
            "{text}"
        );
        assert!(text.contains("kefu_log_head_position 42"));
        for line in [
            "kefu_log_settled_position 42",
            "kefu_log_committed_position 99",
            "kefu_log_unsettled_events 7",
            "kefu_log_stall_seconds 12.5",
            "kefu_projections_up 1",
            "kefu_projections_failures_total 0",
            "kefu_search_up 0",
            "kefu_search_failures_total 5",
            "kefu_search_lag_events 11",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }
}
