//! Choosing a backend from configuration.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use crate::archive::{Archive, ArchiveEntry, ArchiveStore, ArchiverLock, Registry, StreamRange};
use crate::postgres::{PostgresConfig, PostgresLog};
use crate::sqlite::{SqliteConfig, SqliteLog};
use crate::{
    Appended, EventLog, ExpectedVersion, Limits, LogError, NewEvent, Position, RecordedEvent,
    StreamId,
};

/// Where the log lives.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Sqlite(SqliteConfig),
    Postgres(PostgresConfig),
    #[cfg(feature = "kurrentdb")]
    Kurrent(crate::kurrent::KurrentConfig),
}

impl StoreConfig {
    /// The no-configuration default: `<data_dir>/kefu.db`, archived events in
    /// `<data_dir>/archive`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        let mut config = SqliteConfig::new(data_dir.join("kefu.db"));
        config.archive = Some(data_dir.join("archive"));
        StoreConfig::Sqlite(config)
    }

    /// Where archived events live, for the backends that archive (not KurrentDB, which
    /// keeps its own history).
    pub fn archive_mut(&mut self) -> Option<&mut Option<PathBuf>> {
        match self {
            StoreConfig::Sqlite(c) => Some(&mut c.archive),
            StoreConfig::Postgres(c) => Some(&mut c.archive),
            #[cfg(feature = "kurrentdb")]
            StoreConfig::Kurrent(_) => None,
        }
    }

    /// Reads a store URL: `postgres://…` / `postgresql://…`, `kurrentdb://…` / `esdb://…`
    /// (with the `kurrentdb` feature), or `sqlite:PATH` / a plain file path.
    pub fn from_url(url: &str) -> Result<Self, LogError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreConfig::Postgres(PostgresConfig::new(url)));
        }
        if url.starts_with("kurrentdb://")
            || url.starts_with("kurrentdb+discover://")
            || url.starts_with("esdb://")
            || url.starts_with("esdb+discover://")
        {
            #[cfg(feature = "kurrentdb")]
            return Ok(StoreConfig::Kurrent(crate::kurrent::KurrentConfig::new(
                url,
            )));
            #[cfg(not(feature = "kurrentdb"))]
            return Err(LogError::Config(
                "this kefu was built without KurrentDB support: rebuild with `--features kurrentdb`"
                    .into(),
            ));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() {
            return Err(LogError::Config("empty store URL".into()));
        }
        if path.contains("://") {
            return Err(LogError::Config(format!(
                "unknown store URL {url:?}: use postgres://…, kurrentdb://…, or a file path"
            )));
        }
        Ok(StoreConfig::Sqlite(SqliteConfig::new(path)))
    }

    pub fn limits_mut(&mut self) -> &mut Limits {
        match self {
            StoreConfig::Sqlite(c) => &mut c.limits,
            StoreConfig::Postgres(c) => &mut c.limits,
            #[cfg(feature = "kurrentdb")]
            StoreConfig::Kurrent(c) => &mut c.limits,
        }
    }

    pub fn poll_interval_mut(&mut self) -> &mut Duration {
        match self {
            StoreConfig::Sqlite(c) => &mut c.poll_interval,
            StoreConfig::Postgres(c) => &mut c.poll_interval,
            #[cfg(feature = "kurrentdb")]
            StoreConfig::Kurrent(c) => &mut c.poll_interval,
        }
    }

    /// Opens the store, applying migrations where the backend has them.
    pub async fn open(self) -> Result<AnyLog, LogError> {
        Ok(match self {
            StoreConfig::Sqlite(c) => AnyLog::Sqlite(SqliteLog::open(c).await?),
            StoreConfig::Postgres(c) => AnyLog::Postgres(PostgresLog::open(c).await?),
            #[cfg(feature = "kurrentdb")]
            StoreConfig::Kurrent(c) => {
                AnyLog::Kurrent(Box::new(crate::kurrent::KurrentLog::open(c).await?))
            }
        })
    }
}

/// Whichever backend configuration chose, behind one type.
pub enum AnyLog {
    Sqlite(SqliteLog),
    Postgres(PostgresLog),
    // Boxed: the client's settings make it several times larger than the others.
    #[cfg(feature = "kurrentdb")]
    Kurrent(Box<crate::kurrent::KurrentLog>),
}

macro_rules! each_backend {
    ($self:expr, $log:ident => $body:expr) => {
        match $self {
            AnyLog::Sqlite($log) => $body,
            AnyLog::Postgres($log) => $body,
            #[cfg(feature = "kurrentdb")]
            AnyLog::Kurrent($log) => $body,
        }
    };
}

impl EventLog for AnyLog {
    fn backend(&self) -> &'static str {
        each_backend!(self, l => l.backend())
    }

    fn limits(&self) -> &Limits {
        each_backend!(self, l => l.limits())
    }

    async fn append_holding(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        hold: Duration,
    ) -> Result<Appended, LogError> {
        each_backend!(self, l => l.append_holding(stream, expected, events, hold).await)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        each_backend!(self, l => l.read_stream(stream, from, max).await)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>, LogError> {
        each_backend!(self, l => l.stream_version(stream).await)
    }

    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, LogError> {
        each_backend!(self, l => l.read_all(from, max).await)
    }

    async fn head(&self) -> Result<Option<Position>, LogError> {
        each_backend!(self, l => l.head().await)
    }

    async fn progress(&self) -> Result<crate::LogProgress, LogError> {
        each_backend!(self, l => l.progress().await)
    }

    async fn count_through(&self, through: Position) -> Result<Option<u64>, LogError> {
        each_backend!(self, l => l.count_through(through).await)
    }

    async fn read_correlation(&self, correlation_id: Uuid) -> Result<Vec<RecordedEvent>, LogError> {
        each_backend!(self, l => l.read_correlation(correlation_id).await)
    }

    fn appended_signal(&self) -> watch::Receiver<Position> {
        each_backend!(self, l => l.appended_signal())
    }

    fn poll_interval(&self) -> Duration {
        each_backend!(self, l => l.poll_interval())
    }
}

#[cfg(feature = "kurrentdb")]
fn no_archive() -> LogError {
    LogError::Config("KurrentDB keeps its own history: kefu does not archive it".into())
}

impl ArchiveStore for AnyLog {
    fn archive(&self) -> Option<&std::sync::Arc<Archive>> {
        match self {
            AnyLog::Sqlite(l) => l.archive(),
            AnyLog::Postgres(l) => l.archive(),
            #[cfg(feature = "kurrentdb")]
            AnyLog::Kurrent(_) => None,
        }
    }

    async fn count_hot(&self, ranges: &[StreamRange]) -> Result<u64, LogError> {
        match self {
            AnyLog::Sqlite(l) => l.count_hot(ranges).await,
            AnyLog::Postgres(l) => l.count_hot(ranges).await,
            #[cfg(feature = "kurrentdb")]
            AnyLog::Kurrent(_) => Err(no_archive()),
        }
    }

    async fn remove_archived(&self, entry: &ArchiveEntry) -> Result<u64, LogError> {
        match self {
            AnyLog::Sqlite(l) => l.remove_archived(entry).await,
            AnyLog::Postgres(l) => l.remove_archived(entry).await,
            #[cfg(feature = "kurrentdb")]
            AnyLog::Kurrent(_) => Err(no_archive()),
        }
    }

    async fn register(&self, entry: &ArchiveEntry) -> Result<(), LogError> {
        match self {
            AnyLog::Sqlite(l) => l.register(entry).await,
            AnyLog::Postgres(l) => l.register(entry).await,
            #[cfg(feature = "kurrentdb")]
            AnyLog::Kurrent(_) => Err(no_archive()),
        }
    }

    async fn registered(&self) -> Result<std::sync::Arc<Registry>, LogError> {
        match self {
            AnyLog::Sqlite(l) => l.registered().await,
            AnyLog::Postgres(l) => l.registered().await,
            #[cfg(feature = "kurrentdb")]
            AnyLog::Kurrent(_) => Err(no_archive()),
        }
    }

    async fn try_lock_archiver(&self) -> Result<Option<ArchiverLock>, LogError> {
        match self {
            AnyLog::Sqlite(l) => l.try_lock_archiver().await,
            AnyLog::Postgres(l) => l.try_lock_archiver().await,
            #[cfg(feature = "kurrentdb")]
            AnyLog::Kurrent(_) => Err(no_archive()),
        }
    }

    async fn release_archiver(&self, lock: ArchiverLock) {
        match self {
            AnyLog::Sqlite(l) => l.release_archiver(lock).await,
            AnyLog::Postgres(l) => l.release_archiver(lock).await,
            #[cfg(feature = "kurrentdb")]
            AnyLog::Kurrent(_) => drop(lock),
        }
    }
}
