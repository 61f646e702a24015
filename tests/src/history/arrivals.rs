//! When conversations start: a non-homogeneous Poisson process with hour-of-day and
//! day-of-week seasonality in Beijing time, conditioned on the number of conversations.
//!
//! Given how many arrivals a Poisson process had over a period, their times are independent
//! draws from its intensity normalised over the period; so drawing exactly `n` times from the
//! intensity and sorting them is an exact sample of the process with `n` arrivals. The
//! intensity is piecewise constant over ten-minute slots.

use chrono::{DateTime, Datelike, Duration, FixedOffset, Timelike, Utc};
use rand::Rng;
use rand::rngs::StdRng;

use super::world::LOCAL_OFFSET_MINUTES;

/// Relative traffic at each local hour on a weekday: quiet at night, a peak around 10:00, a
/// lunch dip, and the evening peak around 20:00-21:00 when people shop from the sofa.
const WEEKDAY_HOURS: [f64; 24] = [
    0.22, 0.12, 0.07, 0.05, 0.05, 0.08, 0.18, 0.38, 0.68, 0.92, 1.00, 0.95, 0.78, 0.80, 0.86, 0.84,
    0.80, 0.76, 0.78, 0.92, 1.05, 1.08, 0.85, 0.50,
];
/// Weekends start later and stay busy through the afternoon.
const WEEKEND_HOURS: [f64; 24] = [
    0.30, 0.18, 0.10, 0.06, 0.05, 0.06, 0.12, 0.25, 0.45, 0.70, 0.88, 0.95, 0.85, 0.84, 0.88, 0.90,
    0.86, 0.82, 0.84, 0.95, 1.08, 1.10, 0.90, 0.58,
];
/// Monday carries the weekend's backlog; Saturday is the quietest day.
const WEEKDAY_LEVEL: [f64; 7] = [1.12, 1.04, 1.00, 0.98, 0.95, 0.86, 0.92];

const SLOT_MINUTES: i64 = 10;

pub(crate) fn local(at: DateTime<Utc>) -> DateTime<FixedOffset> {
    let offset = FixedOffset::east_opt(LOCAL_OFFSET_MINUTES * 60).expect("UTC+8 is a valid offset");
    at.with_timezone(&offset)
}

/// The intensity's shape at a local time, before the day's own level.
pub(crate) fn intensity(at: DateTime<Utc>) -> f64 {
    let t = local(at);
    let weekday = t.weekday().num_days_from_monday() as usize;
    let hours = if weekday >= 5 {
        &WEEKEND_HOURS
    } else {
        &WEEKDAY_HOURS
    };
    let hour = t.hour() as usize;
    let frac = f64::from(t.minute()) / 60.0;
    let next = hours[(hour + 1) % 24];
    (hours[hour] * (1.0 - frac) + next * frac) * WEEKDAY_LEVEL[weekday]
}

/// `n` arrival times over `days` from `start`, sorted.
pub(crate) fn arrival_times(
    rng: &mut StdRng,
    start: DateTime<Utc>,
    days: u32,
    n: u64,
) -> Vec<DateTime<Utc>> {
    let slots_per_day = 24 * 60 / SLOT_MINUTES;
    // Each day has its own level too (weather, a campaign e-mail): forecasts must cope.
    let day_levels: Vec<f64> = (0..days).map(|_| (0.07 * normal(rng)).exp()).collect();
    let slots = i64::from(days) * slots_per_day;
    let mut cumulative = Vec::with_capacity(usize::try_from(slots).unwrap_or(0));
    let mut total = 0.0;
    for slot in 0..slots {
        let mid = start + Duration::minutes(slot * SLOT_MINUTES + SLOT_MINUTES / 2);
        let day = usize::try_from(slot / slots_per_day).unwrap_or(0);
        total += intensity(mid) * day_levels[day];
        cumulative.push(total);
    }
    let slot_ms = SLOT_MINUTES * 60_000;
    let mut times: Vec<i64> = (0..n)
        .map(|_| {
            let u = rng.random::<f64>() * total;
            let slot = cumulative
                .partition_point(|c| *c <= u)
                .min(cumulative.len() - 1);
            i64::try_from(slot).unwrap_or(0) * slot_ms + rng.random_range(0..slot_ms)
        })
        .collect();
    times.sort_unstable();
    times
        .into_iter()
        .map(|ms| start + Duration::milliseconds(ms))
        .collect()
}

/// A standard normal draw (Box-Muller).
pub(crate) fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// An exponential draw with the given mean.
pub(crate) fn exponential(rng: &mut StdRng, mean: f64) -> f64 {
    let u: f64 = rng.random();
    -mean * (1.0 - u).ln()
}
