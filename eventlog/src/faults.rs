//! Fault injection for drills: added latency and errors on a dependency, set at run time.
//!
//! [`Faults`] is one dependency's dial (the store, the order gateway): every call first waits
//! the added latency, then fails if the error rate says so. Errors are spread evenly and
//! deterministically rather than drawn at random: with rate `r` the `k`-th call since the
//! dial was set fails exactly when `floor(k·r)` steps up, so 0.5 fails every second call,
//! 0.1 every tenth, 1 all of them. A drill's outcome, and a test's, then follows from the
//! setting alone.
//!
//! [`Faulty`] wraps an [`EventLog`] with a dial: every read and append of the wrapped log goes
//! through it, and an injected error is [`LogError::Unavailable`], the error a store that does
//! not answer gives, so the command service's resends and the followers' retries are what
//! the drill exercises. The dial is per process, in memory, on purpose: a fault set in the
//! log could not be turned off through a failing log.
//!
//! A dial also has a crash point ([`Faults::die_after_appends`]): the `n`-th append from then
//! on commits, and the process is as good as dead from that moment: that append's answer and
//! every later call fail until [`Faults::revive`]. Tests use it to stop a worker between any
//! two of its appends, the way `kill -9` would, and to check what a restart makes of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::{
    Appended, EventLog, ExpectedVersion, Limits, LogError, NewEvent, Position, RecordedEvent,
    StreamId,
};

/// The longest latency a drill may add to each call.
pub const MAX_LATENCY: Duration = Duration::from_secs(60);

/// What a dial injects.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultSettings {
    /// Added to every call before it runs.
    pub latency: Duration,
    /// The share of calls that fail, in [0, 1].
    pub error_rate: f64,
}

impl FaultSettings {
    pub fn is_off(&self) -> bool {
        self.latency.is_zero() && self.error_rate == 0.0
    }
}

/// A setting a dial refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error("error rate {0} is not between 0 and 1")]
    ErrorRate(f64),
    #[error("added latency {0:?} is over the limit of {MAX_LATENCY:?}")]
    Latency(Duration),
}

/// The error a call was made to fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("injected fault (drill): {dependency} error rate {rate}, call {call}")]
pub struct InjectedFault {
    pub dependency: &'static str,
    pub rate: f64,
    pub call: u64,
}

struct Dial {
    settings: FaultSettings,
    /// `error_rate` in thousandths, so the spread is exact integer arithmetic.
    permille: u64,
}

/// Where a dial's crash point stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum CrashPoint {
    #[default]
    Unset,
    /// This many more appends commit; the last of them is the process's last act.
    After(u64),
    Dead,
}

/// One dependency's fault dial, shared by every clone.
#[derive(Clone)]
pub struct Faults {
    dependency: &'static str,
    dial: Arc<Mutex<Dial>>,
    /// Calls since the dial was last set.
    calls: Arc<AtomicU64>,
    injected: Arc<AtomicU64>,
    crash: Arc<Mutex<CrashPoint>>,
    /// Appends committed through the dial since the process started.
    appends: Arc<AtomicU64>,
}

impl Faults {
    /// A dial for `dependency` (named in the errors it injects), off.
    pub fn new(dependency: &'static str) -> Self {
        Faults {
            dependency,
            dial: Arc::new(Mutex::new(Dial {
                settings: FaultSettings::default(),
                permille: 0,
            })),
            calls: Arc::new(AtomicU64::new(0)),
            injected: Arc::new(AtomicU64::new(0)),
            crash: Arc::new(Mutex::new(CrashPoint::Unset)),
            appends: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Sets the crash point: the `n`-th append from now on (counting from 1) commits, then
    /// it and every later call fail as if the process had died after the commit.
    pub fn die_after_appends(&self, n: u64) {
        *self.crash.lock().unwrap_or_else(|p| p.into_inner()) = if n == 0 {
            CrashPoint::Dead
        } else {
            CrashPoint::After(n)
        };
    }

    /// Clears the crash point: the restarted process.
    pub fn revive(&self) {
        *self.crash.lock().unwrap_or_else(|p| p.into_inner()) = CrashPoint::Unset;
    }

    /// Whether the crash point was reached.
    pub fn is_dead(&self) -> bool {
        *self.crash.lock().unwrap_or_else(|p| p.into_inner()) == CrashPoint::Dead
    }

    /// Appends committed through this dial since the process started.
    pub fn appends(&self) -> u64 {
        self.appends.load(Ordering::SeqCst)
    }

    /// Counts a committed append; whether it was the last act before the crash point.
    fn committed(&self) -> bool {
        self.appends.fetch_add(1, Ordering::SeqCst);
        let mut crash = self.crash.lock().unwrap_or_else(|p| p.into_inner());
        match *crash {
            CrashPoint::After(1) => {
                *crash = CrashPoint::Dead;
                true
            }
            CrashPoint::After(n) => {
                *crash = CrashPoint::After(n - 1);
                false
            }
            CrashPoint::Unset | CrashPoint::Dead => false,
        }
    }

    fn dead(&self) -> Option<InjectedFault> {
        self.is_dead().then(|| InjectedFault {
            dependency: self.dependency,
            rate: 1.0,
            call: self.calls.load(Ordering::SeqCst),
        })
    }

    pub fn dependency(&self) -> &'static str {
        self.dependency
    }

    /// Sets the dial; refused settings change nothing.
    pub fn set(&self, settings: FaultSettings) -> Result<(), FaultError> {
        if !(0.0..=1.0).contains(&settings.error_rate) {
            return Err(FaultError::ErrorRate(settings.error_rate));
        }
        if settings.latency > MAX_LATENCY {
            return Err(FaultError::Latency(settings.latency));
        }
        let mut dial = self.dial.lock().unwrap_or_else(|p| p.into_inner());
        dial.settings = settings;
        dial.permille = (settings.error_rate * 1000.0).round() as u64;
        self.calls.store(0, Ordering::SeqCst);
        Ok(())
    }

    pub fn settings(&self) -> FaultSettings {
        self.dial.lock().unwrap_or_else(|p| p.into_inner()).settings
    }

    /// How many calls this dial has failed since the process started.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Runs before each call: waits the added latency, then fails the call or lets it go.
    pub async fn before_call(&self) -> Result<(), InjectedFault> {
        if let Some(dead) = self.dead() {
            return Err(dead);
        }
        let (settings, permille) = {
            let dial = self.dial.lock().unwrap_or_else(|p| p.into_inner());
            (dial.settings, dial.permille)
        };
        if settings.is_off() {
            return Ok(());
        }
        if !settings.latency.is_zero() {
            tokio::time::sleep(settings.latency).await;
        }
        let k = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if k * permille / 1000 > (k - 1) * permille / 1000 {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(InjectedFault {
                dependency: self.dependency,
                rate: settings.error_rate,
                call: k,
            });
        }
        Ok(())
    }
}

/// An [`EventLog`] whose every read and append goes through a fault dial first.
pub struct Faulty<L> {
    inner: L,
    faults: Faults,
}

impl<L: EventLog> Faulty<L> {
    pub fn new(inner: L, faults: Faults) -> Self {
        Faulty { inner, faults }
    }

    pub fn inner(&self) -> &L {
        &self.inner
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    async fn gate(&self) -> Result<(), LogError> {
        self.faults
            .before_call()
            .await
            .map_err(|f| LogError::Unavailable {
                backend: self.inner.backend(),
                message: f.to_string(),
            })
    }
}

impl<L: EventLog> EventLog for Faulty<L> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn limits(&self) -> &Limits {
        self.inner.limits()
    }

    async fn append_holding(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        hold: Duration,
    ) -> Result<Appended, LogError> {
        self.gate().await?;
        let appended = self
            .inner
            .append_holding(stream, expected, events, hold)
            .await?;
        if self.faults.committed() {
            return Err(LogError::Unavailable {
                backend: self.inner.backend(),
                message: format!(
                    "injected crash (drill): {} died after this append committed",
                    self.faults.dependency
                ),
            });
        }
        Ok(appended)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.gate().await?;
        self.inner.read_stream(stream, from, max).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>, LogError> {
        self.gate().await?;
        self.inner.stream_version(stream).await
    }

    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, LogError> {
        self.gate().await?;
        self.inner.read_all(from, max).await
    }

    async fn head(&self) -> Result<Option<Position>, LogError> {
        self.gate().await?;
        self.inner.head().await
    }

    async fn progress(&self) -> Result<crate::LogProgress, LogError> {
        self.gate().await?;
        self.inner.progress().await
    }

    async fn count_through(&self, through: Position) -> Result<Option<u64>, LogError> {
        self.gate().await?;
        self.inner.count_through(through).await
    }

    async fn read_correlation(
        &self,
        correlation_id: uuid::Uuid,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.gate().await?;
        self.inner.read_correlation(correlation_id).await
    }

    fn appended_signal(&self) -> watch::Receiver<Position> {
        self.inner.appended_signal()
    }

    fn poll_interval(&self) -> Duration {
        self.inner.poll_interval()
    }
}

/// The archiver's calls go through the dial like every other call on the store; giving the
/// archiver's lock back does not, so a drill never strands it.
impl<L: crate::archive::ArchiveStore> crate::archive::ArchiveStore for Faulty<L> {
    fn archive(&self) -> Option<&Arc<crate::archive::Archive>> {
        self.inner.archive()
    }

    async fn count_hot(&self, ranges: &[crate::archive::StreamRange]) -> Result<u64, LogError> {
        self.gate().await?;
        self.inner.count_hot(ranges).await
    }

    async fn remove_archived(&self, entry: &crate::archive::ArchiveEntry) -> Result<u64, LogError> {
        self.gate().await?;
        self.inner.remove_archived(entry).await
    }

    async fn register(&self, entry: &crate::archive::ArchiveEntry) -> Result<(), LogError> {
        self.gate().await?;
        self.inner.register(entry).await
    }

    async fn registered(&self) -> Result<Arc<crate::archive::Registry>, LogError> {
        self.gate().await?;
        self.inner.registered().await
    }

    async fn try_lock_archiver(&self) -> Result<Option<crate::archive::ArchiverLock>, LogError> {
        self.gate().await?;
        self.inner.try_lock_archiver().await
    }

    async fn release_archiver(&self, lock: crate::archive::ArchiverLock) {
        self.inner.release_archiver(lock).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn outcomes(faults: &Faults, n: usize) -> Vec<bool> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(faults.before_call().await.is_err());
        }
        out
    }

    #[tokio::test]
    async fn errors_are_spread_evenly_and_exactly() {
        let f = Faults::new("store");
        assert!(outcomes(&f, 10).await.iter().all(|e| !e), "off by default");
        f.set(FaultSettings {
            error_rate: 0.5,
            ..FaultSettings::default()
        })
        .unwrap();
        assert_eq!(
            outcomes(&f, 6).await,
            [false, true, false, true, false, true]
        );
        f.set(FaultSettings {
            error_rate: 0.1,
            ..FaultSettings::default()
        })
        .unwrap();
        let tenth = outcomes(&f, 100).await;
        assert_eq!(tenth.iter().filter(|e| **e).count(), 10);
        assert!(tenth[9] && !tenth[8]);
        f.set(FaultSettings {
            error_rate: 1.0,
            ..FaultSettings::default()
        })
        .unwrap();
        assert!(outcomes(&f, 5).await.iter().all(|e| *e));
        assert_eq!(f.injected(), 3 + 10 + 5);
        f.set(FaultSettings::default()).unwrap();
        assert!(outcomes(&f, 5).await.iter().all(|e| !e), "recovered");
    }

    #[tokio::test]
    async fn bad_settings_are_refused_and_change_nothing() {
        let f = Faults::new("gateway");
        let before = f.settings();
        assert_eq!(
            f.set(FaultSettings {
                error_rate: 1.5,
                ..FaultSettings::default()
            }),
            Err(FaultError::ErrorRate(1.5))
        );
        assert!(
            f.set(FaultSettings {
                latency: Duration::from_secs(3600),
                error_rate: 0.0
            })
            .is_err()
        );
        assert_eq!(f.settings(), before);
    }

    /// The crash point: the n-th append commits and its answer is lost, like the process that
    /// made it; nothing gets through until revived.
    #[tokio::test]
    async fn a_crash_point_lets_its_append_commit_and_stops_everything_after() {
        use crate::sqlite::{SqliteConfig, SqliteLog};
        use crate::{Actor, ActorKind, Metadata};
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults::new("worker");
        let log = Faulty::new(
            SqliteLog::open(SqliteConfig::new(dir.path().join("kefu.db")))
                .await
                .unwrap(),
            faults.clone(),
        );
        let stream = StreamId::new("crash-1").unwrap();
        let event = || {
            vec![NewEvent::new(
                "Happened",
                serde_json::json!({}),
                Metadata::for_request(Actor::new(ActorKind::System, "test"), uuid::Uuid::now_v7()),
            )]
        };
        faults.die_after_appends(2);
        log.append(&stream, ExpectedVersion::Any, event())
            .await
            .unwrap();
        assert!(!faults.is_dead());
        let lost = log.append(&stream, ExpectedVersion::Any, event()).await;
        assert!(
            matches!(lost, Err(LogError::Unavailable { .. })),
            "{lost:?}"
        );
        assert!(faults.is_dead());
        assert!(log.read_stream(&stream, 0, 10).await.is_err(), "dead");
        faults.revive();
        assert_eq!(
            log.read_stream(&stream, 0, 10).await.unwrap().len(),
            2,
            "the last append committed"
        );
        assert_eq!(faults.appends(), 2);
    }

    /// Latency is a tokio sleep: on a paused clock it shows as virtual time, not waiting.
    #[tokio::test(start_paused = true)]
    async fn latency_is_added_before_each_call() {
        let f = Faults::new("gateway");
        f.set(FaultSettings {
            latency: Duration::from_secs(5),
            error_rate: 0.0,
        })
        .unwrap();
        let started = tokio::time::Instant::now();
        f.before_call().await.unwrap();
        f.before_call().await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert!(
            tokio::time::timeout(Duration::from_secs(1), f.before_call())
                .await
                .is_err(),
            "a caller with a deadline gives up"
        );
    }
}
