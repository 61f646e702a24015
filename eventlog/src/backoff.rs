//! How long whatever follows the log (the workers, the projections) waits after failing, before
//! it tries again: doubling from a quarter of a second, and never more than two seconds, so
//! that once the store is back every follower is back within a couple of seconds of it. A
//! store that stays down sees each follower try every two seconds, which no store minds.

use std::time::Duration;

/// The longest wait.
pub const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// The wait after the `failures`-th failure in a row (1 for the first).
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (Duration::from_millis(250) * 2u32.pow(doublings)).min(BACKOFF_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_a_quarter_second_to_two_seconds_and_stays() {
        let waits: Vec<u128> = (1..=6).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(waits, vec![250, 500, 1000, 2000, 2000, 2000]);
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }
}
