//! Waking the subscribers of other processes on PostgreSQL.
//!
//! A subscription that has caught up waits for its own process's append signal or the poll interval
//! (100 ms). Appends made by another process (a `kefu worker` beside `kefu serve`, a second server)
//! signal nothing here, so without this module their events reach this process's subscribers up to
//! one poll late: that was about a fifth of the bot's replies on PostgreSQL (issue 18). Here every
//! process announces its appends with `NOTIFY` and listens for the others' (a `LISTEN` connection,
//! started by the first subscriber), bumping its local signal; the poll stays as the fallback for a
//! lost notification or a listener that is reconnecting. Listeners ignore their own process's
//! announcements and other schemas'.
//!
//! What a notification carries is only a hint to read again: subscribers still read the settled
//! prefix of the log (`postgres.rs`), so a notification that arrives before the event has settled
//! cannot make one skip it.
//!
//! The `NOTIFY` is never part of an append: a transaction that notifies takes a database-wide lock
//! at commit, which inside the append would serialize every append in the cluster. Announcements go
//! out in transactions of their own instead, coalesced: while one `NOTIFY` is in flight, further
//! appends collapse into the next one, and announcements are spaced [`SPACING`] apart, so a busy
//! writer sends at most about a thousand a second, whatever its append rate. They commit with
//! `synchronous_commit = off` (a notification is not worth a disk flush; one lost in a crash costs
//! a poll).

use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;

use crate::Position;

/// The channel every kefu log announces its appends on; the payload names the schema, so
/// logs in other schemas of the same database ignore them.
pub const CHANNEL: &str = "kefu_appended";

/// The least time between two announcements of one process.
const SPACING: Duration = Duration::from_millis(1);

/// The longest wait between two attempts to (re)connect the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Who a log is among the processes sharing its database: announcements carry it so a log
/// ignores its own.
pub fn origin() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// What a log announces: `schema position origin`.
fn payload(schema: &str, position: Position, origin: &str) -> String {
    format!("{schema} {} {origin}", position.0)
}

/// The position of another log's announcement for `schema`; `None` for this log's own, for
/// another schema's, and for a payload kefu did not write.
pub fn parse(payload: &str, schema: &str, own_origin: &str) -> Option<Position> {
    let mut parts = payload.split(' ');
    let (s, p, o) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || s != schema || o == own_origin {
        return None;
    }
    p.parse().ok().map(Position)
}

/// Announces this log's appends until the log is dropped (its `appended` sender with it).
/// Failures are logged at debug level and otherwise ignored: the others' poll covers them.
pub async fn announce(
    pool: Pool,
    mut appended: watch::Receiver<Position>,
    schema: String,
    origin: String,
) {
    while appended.changed().await.is_ok() {
        let position = *appended.borrow_and_update();
        // The schema is checked to be lower-case ASCII, digits and '_' (`check_schema_name`),
        // the origin is digits and '.', so the literal needs no escaping.
        let sql = format!(
            "BEGIN; SET LOCAL synchronous_commit = off; SELECT pg_notify('{CHANNEL}', '{}'); COMMIT",
            payload(&schema, position, &origin)
        );
        match pool.get().await {
            Ok(client) => {
                if let Err(e) = client.batch_execute(&sql).await {
                    tracing::debug!(error = %e, "could not announce an append to other processes");
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "no connection to announce an append to other processes")
            }
        }
        tokio::time::sleep(SPACING).await;
    }
}

/// Listens for other processes' announcements and bumps `signal` with their positions, until
/// the log is dropped. Reconnects with a doubling back-off after the connection is lost.
pub async fn listen(
    config: tokio_postgres::Config,
    signal: Weak<watch::Sender<Position>>,
    schema: String,
    origin: String,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(mut alive) = signal.upgrade().map(|s| s.subscribe()) else {
            return;
        };
        match crate::postgres::connect(&config).await {
            Ok((client, mut connection)) => {
                let (tx, mut notifications) = mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    while let Some(message) =
                        std::future::poll_fn(|cx| connection.poll_message(cx)).await
                    {
                        match message {
                            Ok(AsyncMessage::Notification(n)) => {
                                if tx.send(n.payload().to_owned()).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::debug!(error = %e, "the append listener's connection failed");
                                return;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(100);
                        loop {
                            tokio::select! {
                                n = notifications.recv() => match n {
                                    Some(payload) => {
                                        let Some(position) = parse(&payload, &schema, &origin) else {
                                            continue;
                                        };
                                        let Some(signal) = signal.upgrade() else {
                                            break;
                                        };
                                        signal.send_modify(|p| *p = (*p).max(position));
                                    }
                                    // The connection ended: reconnect below.
                                    None => break,
                                },
                                // Every local append changes it; only the log going away ends it.
                                changed = alive.changed() => if changed.is_err() {
                                    break;
                                },
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "could not LISTEN for other processes' appends")
                    }
                }
                drop(client);
                driver.abort();
            }
            Err(e) => tracing::debug!(error = %e, "could not connect the append listener"),
        }
        if signal.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_hears_only_other_logs_of_its_schema() {
        let p = payload("kefu_a", Position(42 << 16), "7.1");
        assert_eq!(parse(&p, "kefu_a", "7.2"), Some(Position(42 << 16)));
        assert_eq!(parse(&p, "kefu_a", "7.1"), None, "its own");
        assert_eq!(parse(&p, "kefu_b", "7.2"), None, "another schema");
        for junk in ["", "kefu_a", "kefu_a x 7.1", "kefu_a 1 7.1 extra"] {
            assert_eq!(parse(junk, "kefu_a", "7.2"), None, "{junk:?}");
        }
    }

    #[test]
    fn origins_differ_within_a_process() {
        assert_ne!(origin(), origin());
    }
}
