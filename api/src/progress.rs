//! `kefu replay`'s progress bar, on stderr and only for a person at a terminal: counted in
//! events (positions jump by transaction ids on PostgreSQL, so they say little about what is
//! left), redrawn in place, and cleared before any log line is written so the two never share
//! a line. Piped or redirected, stderr gets only the summary.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kefu_projections::Progress;

/// Whether a bar is on the terminal's last line right now.
static SHOWN: AtomicBool = AtomicBool::new(false);

/// Moves to the start of the line and erases it.
const CLEAR_LINE: &[u8] = b"\r\x1b[2K";

pub struct Bar {
    label: &'static str,
    /// Events to read, when the store can count them.
    total: Option<u64>,
    tty: bool,
    last_draw: Option<Instant>,
}

impl Bar {
    pub fn new(label: &'static str, total: Option<u64>) -> Self {
        Bar {
            label,
            total,
            tty: std::io::stderr().is_terminal(),
            last_draw: None,
        }
    }

    pub fn line(&self, p: &Progress) -> String {
        let rate = format!("{:.0} events/s", p.events_per_sec());
        let Some(total) = self.total.filter(|t| *t > 0) else {
            return format!("{}  {} events  {rate}", self.label, p.read);
        };
        let done = p.read.min(total);
        let f = done as f64 / total as f64;
        let filled = (f * 30.0).floor() as usize;
        let left = if done == 0 {
            "--:--".to_owned()
        } else {
            let secs = p
                .elapsed
                .mul_f64((total - done) as f64 / done as f64)
                .as_secs();
            format!("{}:{:02}", secs / 60, secs % 60)
        };
        format!(
            "{} [{}{}] {:>3}%  {done} of {total} events  {rate}  left {left}",
            self.label,
            "#".repeat(filled),
            "-".repeat(30 - filled),
            (f * 100.0).floor() as u64,
        )
    }

    pub fn draw(&mut self, p: &Progress) {
        if !self.tty {
            return;
        }
        // Redrawing for every batch would cost more than the batch on a fast machine; a bar a
        // log line just cleared is drawn again at once.
        if SHOWN.load(Ordering::Relaxed)
            && self
                .last_draw
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last_draw = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(CLEAR_LINE);
        let _ = err.write_all(self.line(p).as_bytes());
        let _ = err.flush();
        SHOWN.store(true, Ordering::Relaxed);
    }

    /// Takes the bar away and says what was done: `applied` events, into `what`.
    pub fn finish(&mut self, p: &Progress, applied: u64, what: &str) {
        let mut err = std::io::stderr().lock();
        if SHOWN.swap(false, Ordering::Relaxed) {
            let _ = err.write_all(CLEAR_LINE);
        }
        let _ = writeln!(err, "{}", summary(self.label, p, applied, what));
    }
}

fn summary(label: &str, p: &Progress, applied: u64, what: &str) -> String {
    format!(
        "{label} done: {applied} events applied to {what} in {:.1} s ({:.0} events/s read)",
        p.elapsed.as_secs_f64(),
        p.events_per_sec(),
    )
}

/// stderr for the log, clearing a progress bar off its line before each log line.
#[derive(Clone, Copy)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = ClearingBar<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        ClearingBar(std::io::stderr())
    }
}

pub struct ClearingBar<W>(W);

impl<W: Write> Write for ClearingBar<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if SHOWN.swap(false, Ordering::Relaxed) {
            self.0.write_all(CLEAR_LINE)?;
        }
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_eventlog::Position;

    fn progress(read: u64, secs: u64) -> Progress {
        Progress {
            read,
            position: Position(read),
            target: None,
            start: Position::START,
            elapsed: Duration::from_secs(secs),
        }
    }

    #[test]
    fn the_bar_counts_events_not_positions() {
        // 1,000 events of a million read in a second: nowhere near done, most of it left.
        let bar = Bar::new("replay", Some(1_000_000));
        let line = bar.line(&progress(1_000, 1));
        assert!(line.contains("  0%  1000 of 1000000 events"), "{line}");
        assert!(line.contains("left 16:39"), "{line}");
        let half = bar.line(&progress(500_000, 10));
        assert!(
            half.contains(" 50%") && half.contains("left 0:10"),
            "{half}"
        );
        // Events appended since the count do not take it past the end.
        let over = bar.line(&progress(1_000_100, 20));
        assert!(
            over.contains("100%") && over.contains("left 0:00"),
            "{over}"
        );
        // A store that cannot count: events and rate, no share.
        let blind = Bar::new("replay", None).line(&progress(1_000, 1));
        assert_eq!(blind, "replay  1000 events  1000 events/s");
    }

    #[test]
    fn the_summary_says_how_many_events_were_applied() {
        assert_eq!(
            summary("replay", &progress(4, 2), 4, "queues, stats"),
            "replay done: 4 events applied to queues, stats in 2.0 s (2 events/s read)"
        );
    }

    #[test]
    fn a_log_line_clears_the_bar_off_its_line_first() {
        let mut buf = Vec::new();
        SHOWN.store(true, Ordering::Relaxed);
        ClearingBar(&mut buf)
            .write_all(b"INFO swapped in\n")
            .unwrap();
        ClearingBar(&mut buf).write_all(b"INFO next\n").unwrap();
        assert_eq!(buf, b"\r\x1b[2KINFO swapped in\nINFO next\n");
        assert!(
            !SHOWN.load(Ordering::Relaxed),
            "drawn again before the next update"
        );
    }
}
