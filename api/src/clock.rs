//! The clock commands are stamped with: the system clock, or, for drills and tests only, a
//! simulated time read from a file (`--drill-clock-file`).
//!
//! Time reaches the domain only with commands (the desk reads its clock once per command), so
//! this one clock decides when a conversation counts as idle and when a target falls due. A
//! drill or an end-to-end test that writes the time into a file can run a day of traffic in
//! minutes, and make the timers fall due exactly when it says, in every process that reads the
//! file (`kefu serve` and `kefu worker NAME` alike). The file is read again by every command,
//! so once the writer has replaced it, the next command in any process sees the new time: no
//! polling, nothing to wait for. Only commands follow it: tokens, checkpoints and metrics keep
//! the system clock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use kefu_desk::Clock;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClockArgs {
    /// For drills and tests only, never in production: stamp commands with the time written
    /// in this file (RFC 3339, e.g. 2025-03-10T08:00:00+08:00), read again by every command,
    /// instead of the system clock. Time never goes backwards: an earlier time in the file is
    /// ignored until the file passes the latest time read.
    #[arg(long, env = "KEFU_DRILL_CLOCK_FILE", hide = true)]
    pub drill_clock_file: Option<PathBuf>,
}

impl ClockArgs {
    /// The system clock, or the drill clock when `--drill-clock-file` is set (which must then
    /// hold a time already).
    pub fn clock(&self) -> Result<Clock> {
        let Some(path) = self.drill_clock_file.clone() else {
            return Ok(Arc::new(Utc::now));
        };
        let first = read(&path).with_context(|| {
            format!(
                "--drill-clock-file / KEFU_DRILL_CLOCK_FILE: cannot read a time from {}",
                path.display()
            )
        })?;
        tracing::warn!(
            path = %path.display(),
            now = %first,
            "commands are stamped with the drill clock, not the system clock: for drills and tests only"
        );
        let latest = Mutex::new(first);
        Ok(Arc::new(move || {
            let mut latest = latest.lock().unwrap_or_else(PoisonError::into_inner);
            match read(&path) {
                Ok(t) => *latest = (*latest).max(t),
                // Mid-replace or removed: the last time read stands, and the drill hears of it.
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read the drill clock; keeping the last time read")
                }
            }
            *latest
        }))
    }
}

fn read(path: &Path) -> Result<DateTime<Utc>> {
    let raw = std::fs::read_to_string(path)?;
    let at = DateTime::parse_from_rfc3339(raw.trim())
        .with_context(|| format!("{:?} is not an RFC 3339 time", raw.trim()))?;
    Ok(at.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn without_a_file_it_is_the_system_clock() {
        let before = Utc::now();
        let now = ClockArgs::default().clock().unwrap()();
        assert!(now >= before && now <= Utc::now());
    }

    #[test]
    fn the_drill_clock_follows_its_file_forwards_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock");
        std::fs::write(&path, "2025-03-10T08:00:00+08:00\n").unwrap();
        let clock = ClockArgs {
            drill_clock_file: Some(path.clone()),
        }
        .clock()
        .unwrap();
        assert_eq!(clock(), at("2025-03-10T00:00:00Z"));
        std::fs::write(&path, "2025-03-10T02:30:00Z").unwrap();
        assert_eq!(clock(), at("2025-03-10T02:30:00Z"), "seen by the next read");
        std::fs::write(&path, "2025-03-10T01:00:00Z").unwrap();
        assert_eq!(clock(), at("2025-03-10T02:30:00Z"), "never backwards");
        std::fs::write(&path, "half past").unwrap();
        assert_eq!(
            clock(),
            at("2025-03-10T02:30:00Z"),
            "a bad read keeps the last"
        );
    }

    #[test]
    fn a_drill_clock_without_a_time_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock");
        let args = ClockArgs {
            drill_clock_file: Some(path.clone()),
        };
        let missing = format!("{:#}", args.clock().err().unwrap());
        assert!(missing.contains("--drill-clock-file"), "{missing}");
        std::fs::write(&path, "tomorrow").unwrap();
        let bad = format!("{:#}", args.clock().err().unwrap());
        assert!(
            bad.contains("\"tomorrow\" is not an RFC 3339 time"),
            "{bad}"
        );
    }
}
