//! Forecasting: hourly conversation volume per queue from history, and the agents needed to
//! answer it within a service level (Erlang C).
//!
//! The volume model is seasonal and multiplicative: the mean count at each hour of the day
//! (over the training window), times a factor for the day of the week (that weekday's volume
//! against the mean day, shrunk towards 1 when few weeks have been seen, so one odd Monday
//! does not make every Monday odd). Hours are local (`utc_offset`), as the desk's traffic is.
//! [`backtest`] scores it against the seasonal-naive forecast (the same hour a day earlier).
//!
//! Staffing: chats are served `concurrency` at a time, so an agent is that many Erlang C
//! servers; the answer is the fewest agents whose servers meet the service level.
//!
//! The history is [`View::hourly_arrivals`](crate::view::View::hourly_arrivals): conversations per
//! hour, by when they first joined the queue (or started, over all queues), read from the
//! statistics facts. [`day_against_actual`] sets today's hours, forecast by the model fitted on the
//! days before today (the day's own arrivals would flatter it), against what came. Everything here
//! is pure but the two `View` reads; the `forecast` GraphQL query serves it (`Forecast.today` is
//! the dashboard's chart).

use chrono::{DateTime, Datelike, Duration, FixedOffset, Timelike, Utc};

use crate::error::ProjectionError;
use crate::sql::Val;
use crate::stats::FactRow;
use crate::view::View;

/// How many days of a weekday's history count as much as the all-days mean (shrinkage).
const WEEKDAY_PRIOR_DAYS: f64 = 1.0;

/// A fitted volume model.
#[derive(Debug, Clone, PartialEq)]
pub struct Seasonal {
    /// Mean conversations in each local hour of the day.
    pub hourly: [f64; 24],
    /// Each local weekday's volume against the mean day (Monday first).
    pub weekday: [f64; 7],
    pub utc_offset: FixedOffset,
}

/// Fits the model to hourly counts, `counts[i]` being the hour starting at
/// `start + i hours` (`start` on an hour boundary).
pub fn fit(counts: &[f64], start: DateTime<Utc>, utc_offset: FixedOffset) -> Seasonal {
    let mut hour_sum = [0.0; 24];
    let mut hour_n = [0.0; 24];
    let mut day_totals: std::collections::BTreeMap<(i32, u32), (u32, f64, u32)> =
        Default::default();
    for (i, c) in counts.iter().enumerate() {
        let local = (start + Duration::hours(i as i64)).with_timezone(&utc_offset);
        let h = local.hour() as usize;
        hour_sum[h] += c;
        hour_n[h] += 1.0;
        let day = day_totals
            .entry((local.year(), local.ordinal()))
            .or_insert((local.weekday().num_days_from_monday(), 0.0, 0));
        day.1 += c;
        day.2 += 1;
    }
    let hourly = std::array::from_fn(|h| {
        if hour_n[h] > 0.0 {
            hour_sum[h] / hour_n[h]
        } else {
            0.0
        }
    });
    // Only whole days say what a weekday is like.
    let whole: Vec<(u32, f64)> = day_totals
        .values()
        .filter(|(_, _, hours)| *hours == 24)
        .map(|(d, total, _)| (*d, *total))
        .collect();
    let mean_day = if whole.is_empty() {
        0.0
    } else {
        whole.iter().map(|(_, t)| t).sum::<f64>() / whole.len() as f64
    };
    let weekday = std::array::from_fn(|d| {
        let days: Vec<f64> = whole
            .iter()
            .filter(|(wd, _)| *wd as usize == d)
            .map(|(_, t)| *t)
            .collect();
        if mean_day <= 0.0 {
            return 1.0;
        }
        let n = days.len() as f64;
        let observed = days.iter().sum::<f64>() / mean_day;
        (observed + WEEKDAY_PRIOR_DAYS) / (n + WEEKDAY_PRIOR_DAYS)
    });
    Seasonal {
        hourly,
        weekday,
        utc_offset,
    }
}

impl Seasonal {
    /// Expected conversations in the hour starting at `at`.
    pub fn predict(&self, at: DateTime<Utc>) -> f64 {
        let local = at.with_timezone(&self.utc_offset);
        self.hourly[local.hour() as usize]
            * self.weekday[local.weekday().num_days_from_monday() as usize]
    }
}

/// Where the local day holding `at` starts.
pub fn day_start(at: DateTime<Utc>, utc_offset: FixedOffset) -> DateTime<Utc> {
    let local = at.with_timezone(&utc_offset);
    at - Duration::seconds(i64::from(local.num_seconds_from_midnight()))
        - Duration::nanoseconds(i64::from(at.timestamp_subsec_nanos()))
}

/// One hour of a day: what the forecast made before the day began expected, and what came.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HourAgainstActual {
    pub hour: DateTime<Utc>,
    pub expected: f64,
    /// None for an hour that has not begun.
    pub actual: Option<f64>,
}

/// The 24 hours of the day starting at `day`, each with the forecast the model fitted on the
/// hours before `day` makes for it (so the day's own arrivals cannot flatter it) and the
/// arrivals counted so far. `counts[i]` is the hour starting at `start + i hours`, `start`
/// being `day` less the history and the counts reaching at least the hour holding `now`.
pub fn day_against_actual(
    counts: &[f64],
    start: DateTime<Utc>,
    utc_offset: FixedOffset,
    day: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<HourAgainstActual> {
    let history = usize::try_from((day - start).num_hours())
        .unwrap_or(0)
        .min(counts.len());
    let model = fit(&counts[..history], start, utc_offset);
    (0..24)
        .map(|h| {
            let hour = day + Duration::hours(h);
            HourAgainstActual {
                hour,
                expected: model.predict(hour),
                actual: (hour <= now)
                    .then(|| counts.get(history + h as usize).copied())
                    .flatten(),
            }
        })
        .collect()
}

/// The forecast's and the seasonal-naive forecast's errors over a held-out stretch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backtest {
    /// Weighted absolute percentage error: the sum of |error| over the sum of actuals.
    pub wape: f64,
    /// The same for "as the same hour a day earlier".
    pub naive_wape: f64,
    pub hours: usize,
}

/// Fits on all but the last `held_out` hours of `counts` and scores the rest.
pub fn backtest(
    counts: &[f64],
    start: DateTime<Utc>,
    utc_offset: FixedOffset,
    held_out: usize,
) -> Option<Backtest> {
    if held_out == 0 || counts.len() < held_out + 24 {
        return None;
    }
    let split = counts.len() - held_out;
    let model = fit(&counts[..split], start, utc_offset);
    let (mut err, mut naive_err, mut actual) = (0.0, 0.0, 0.0);
    for (i, c) in counts.iter().enumerate().skip(split) {
        let at = start + Duration::hours(i as i64);
        err += (model.predict(at) - c).abs();
        naive_err += (counts[i - 24] - c).abs();
        actual += c;
    }
    (actual > 0.0).then(|| Backtest {
        wape: err / actual,
        naive_wape: naive_err / actual,
        hours: held_out,
    })
}

/// The probability an arrival waits (Erlang C) with `servers` servers and `traffic` erlangs,
/// computed through the Erlang B recursion, which stays finite for large `servers`.
pub fn erlang_c(servers: u32, traffic: f64) -> f64 {
    if traffic <= 0.0 {
        return 0.0;
    }
    let n = f64::from(servers);
    if n <= traffic {
        return 1.0;
    }
    let mut b = 1.0;
    for k in 1..=servers {
        b = traffic * b / (f64::from(k) + traffic * b);
    }
    n * b / (n - traffic * (1.0 - b))
}

/// The share of arrivals answered within `target_secs`.
pub fn service_level(servers: u32, traffic: f64, aht_secs: f64, target_secs: f64) -> f64 {
    if traffic <= 0.0 {
        return 1.0;
    }
    let n = f64::from(servers);
    if n <= traffic {
        return 0.0;
    }
    1.0 - erlang_c(servers, traffic) * (-(n - traffic) * target_secs / aht_secs).exp()
}

/// What staffing is asked to achieve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Staffing {
    /// Mean handling time of a chat, seconds.
    pub aht_secs: f64,
    /// Answered within this many seconds...
    pub target_secs: f64,
    /// ...this share of the time (0 to 1).
    pub service_level: f64,
    /// Chats an agent handles at once.
    pub concurrency: u32,
}

/// The fewest agents for `arrivals_per_hour`.
pub fn agents_needed(arrivals_per_hour: f64, s: &Staffing) -> u32 {
    let traffic = arrivals_per_hour * s.aht_secs / 3600.0;
    if traffic <= 0.0 {
        return 0;
    }
    let concurrency = s.concurrency.max(1);
    let mut servers = traffic.floor() as u32 + 1;
    while service_level(servers, traffic, s.aht_secs, s.target_secs) < s.service_level {
        servers += 1;
    }
    servers.div_ceil(concurrency)
}

impl View {
    /// Conversations arriving in each hour of `[from, to)`: joining `queue` (by when they
    /// first queued), or starting at all when `queue` is `None`. Read from the statistics
    /// facts.
    pub async fn hourly_arrivals(
        &self,
        queue: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<f64>, ProjectionError> {
        let hours = ((to - from).num_hours()).max(0) as usize;
        let (column, cond, mut params) = match queue {
            Some(q) => (
                "first_queued_at",
                "queue = $1 AND ",
                vec![Val::Text(q.to_owned())],
            ),
            None => ("started_at", "", vec![]),
        };
        let n = params.len();
        params.push(Val::Int(from.timestamp_millis()));
        params.push(Val::Int(to.timestamp_millis()));
        let rows = self
            .rows(
                &format!(
                    "SELECT {column} FROM {} WHERE {cond}{column} >= ${} AND {column} < ${}",
                    self.table::<FactRow>(),
                    n + 1,
                    n + 2
                ),
                params,
            )
            .await?;
        let mut counts = vec![0.0; hours];
        let from_ms = from.timestamp_millis();
        for r in rows {
            if let Some(at) = r.first().and_then(Val::as_i64) {
                let slot = ((at - from_ms) / 3_600_000) as usize;
                if let Some(c) = counts.get_mut(slot) {
                    *c += 1.0;
                }
            }
        }
        Ok(counts)
    }

    /// Mean seconds from first queueing to close of the human-handled conversations of
    /// `queue` since `from`; `None` when there are none.
    pub async fn handling_secs(
        &self,
        queue: &str,
        from: DateTime<Utc>,
    ) -> Result<Option<f64>, ProjectionError> {
        // Sums and counts as BIGINT, divided here: the dialect both engines share.
        let rows = self
            .rows(
                &format!(
                    "SELECT CAST(SUM(closed_at - first_queued_at) AS BIGINT), CAST(COUNT(*) AS BIGINT) \
                     FROM {} WHERE queue = $1 AND first_queued_at >= $2 \
                     AND closed_at IS NOT NULL AND first_response_at IS NOT NULL",
                    self.table::<FactRow>()
                ),
                vec![Val::Text(queue.to_owned()), Val::Int(from.timestamp_millis())],
            )
            .await?;
        let row = rows.first();
        let total = row.and_then(|r| r.first()).and_then(Val::as_i64);
        let n = row
            .and_then(|r| r.get(1))
            .and_then(Val::as_i64)
            .unwrap_or(0);
        Ok(total
            .filter(|_| n > 0)
            .map(|ms| ms as f64 / n as f64 / 1000.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn beijing() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    #[test]
    fn erlang_c_matches_the_textbook() {
        // 10 erlangs on 12 servers: P(wait) = 0.4494 (standard tables).
        assert!(
            (erlang_c(12, 10.0) - 0.4494).abs() < 1e-3,
            "{}",
            erlang_c(12, 10.0)
        );
        assert_eq!(erlang_c(10, 10.0), 1.0);
        // 100 calls an hour of 3 minutes, 80% within 20 s: 8 agents (5 erlangs).
        let s = Staffing {
            aht_secs: 180.0,
            target_secs: 20.0,
            service_level: 0.8,
            concurrency: 1,
        };
        assert_eq!(agents_needed(100.0, &s), 8);
        assert_eq!(agents_needed(0.0, &s), 0);
        // Three chats at a time need a third of the agents, rounded up.
        assert_eq!(
            agents_needed(
                100.0,
                &Staffing {
                    concurrency: 3,
                    ..s
                }
            ),
            3
        );
    }

    #[test]
    fn a_day_is_forecast_from_the_days_before_it_and_set_against_what_came() {
        // Two weeks of 3 an hour, then a day of 10 an hour so far: the forecast for that day
        // stays at 3 (it was made before the day), the actuals are the day's own.
        let day = Utc.with_ymd_and_hms(2026, 11, 15, 16, 0, 0).unwrap(); // midnight in Beijing
        let start = day - Duration::days(14);
        let now = day + Duration::minutes(150); // 02:30 local
        let mut counts = vec![3.0; 24 * 14];
        counts.extend([10.0, 11.0, 12.0]);
        let hours = day_against_actual(&counts, start, beijing(), day, now);
        assert_eq!(hours.len(), 24);
        assert_eq!(hours[0].hour, day);
        assert_eq!(hours[23].hour, day + Duration::hours(23));
        assert!(
            hours.iter().all(|h| (h.expected - 3.0).abs() < 1e-9),
            "{hours:?}"
        );
        let actual: Vec<Option<f64>> = hours.iter().map(|h| h.actual).take(4).collect();
        assert_eq!(actual, [Some(10.0), Some(11.0), Some(12.0), None]);
        assert_eq!(day_start(now, beijing()), day);
        assert_eq!(day_start(day, beijing()), day);
    }

    #[test]
    fn the_model_learns_the_day_and_the_week() {
        // Three weeks: busy afternoons, quiet nights, Mondays twice as busy.
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 16, 0, 0).unwrap(); // Monday 00:00 in Beijing
        let counts: Vec<f64> = (0..24 * 21)
            .map(|i| {
                let local = (start + Duration::hours(i)).with_timezone(&beijing());
                let base = if (13..18).contains(&local.hour()) {
                    20.0
                } else {
                    4.0
                };
                if local.weekday().num_days_from_monday() == 0 {
                    base * 2.0
                } else {
                    base
                }
            })
            .collect();
        let bt = backtest(&counts, start, beijing(), 24 * 7).unwrap();
        assert!(bt.wape < 0.2, "{bt:?}");
        assert!(bt.wape < bt.naive_wape, "{bt:?}");
        assert!(backtest(&counts[..10], start, beijing(), 24).is_none());
    }
}
