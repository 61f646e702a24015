//! Where the store is, from flags and the environment.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use kefu_eventlog::storage::{self, Target};
use kefu_eventlog::{AnyLog, StoreConfig};
use kefu_projections::search::SearchHome;
use kefu_projections::{ReadStore, ReadStoreConfig};

#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// The event store: postgres://…, kurrentdb://… (builds with the `kurrentdb` feature), or
    /// a SQLite file path. Unset: `DATABASE_URL` if set, else the embedded store in
    /// --data-dir.
    #[arg(long, global = true, env = "KEFU_STORE")]
    pub store: Option<String>,
    /// Where the embedded store, the embedded read models and indexes keep their files.
    #[arg(long, global = true, env = "KEFU_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Where read models (queues, statistics, views) live: postgres://… or a SQLite file path.
    /// Unset: the event store's PostgreSQL database, or `<data dir>/kefu.read.db`.
    #[arg(long, global = true, env = "KEFU_READ_STORE")]
    pub read_store: Option<String>,
    /// Where archived events live (gzip'd JSON lines and their manifest). Unset:
    /// `<data dir>/archive`. Every process reading one store needs the same directory.
    #[arg(long, global = true, env = "KEFU_ARCHIVE_DIR")]
    pub archive_dir: Option<PathBuf>,
}

impl StoreArgs {
    /// `--store`, else `KEFU_STORE`, else `DATABASE_URL` (the name hosting platforms set).
    fn store_url(&self) -> Option<String> {
        self.store.clone().or_else(|| {
            std::env::var("DATABASE_URL")
                .ok()
                .filter(|u| !u.trim().is_empty())
        })
    }

    pub fn config(&self) -> Result<StoreConfig> {
        let mut config = self.hot_config()?;
        if let Some(archive) = config.archive_mut() {
            *archive = Some(self.archive_dir());
        }
        Ok(config)
    }

    /// `--archive-dir`, else `<data dir>/archive`.
    pub fn archive_dir(&self) -> PathBuf {
        self.archive_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("archive"))
    }

    fn hot_config(&self) -> Result<StoreConfig> {
        match &self.store_url() {
            Some(url) => StoreConfig::from_url(url).context("--store / KEFU_STORE / DATABASE_URL"),
            None => Ok(StoreConfig::embedded(&self.data_dir)),
        }
    }

    /// Opens the store for a command that writes (or serves): a missing data directory or
    /// PostgreSQL database is created.
    pub async fn open(&self) -> Result<AnyLog> {
        let config = self.config()?;
        let where_ = self.describe();
        if let StoreConfig::Postgres(pg) = &config {
            // A newcomer's `createdb` step, done for them; a role without CREATEDB gets the
            // server's refusal, named.
            kefu_eventlog::postgres::ensure_database(&pg.url)
                .await
                .with_context(|| format!("cannot reach or create the database ({where_})"))?;
        } else if self.store_url().is_none() {
            std::fs::create_dir_all(&self.data_dir).map_err(|e| {
                io_problem(
                    &self.data_dir,
                    Target::Dir,
                    e,
                    "cannot create the data directory",
                )
            })?;
        }
        config
            .open()
            .await
            .with_context(|| format!("cannot open the event store ({where_})"))
    }

    /// Opens the store for a command that only reads it, creating nothing: a missing data
    /// directory, store file or PostgreSQL database is an error naming it. Created, a typo'd
    /// name would answer "no data" and leave an empty store behind.
    pub async fn open_existing(&self) -> Result<AnyLog> {
        self.existing()
            .await?
            .open()
            .await
            .with_context(|| format!("cannot open the event store ({})", self.describe()))
    }

    /// The store's configuration, once it is known to exist (see `open_existing`).
    pub async fn existing(&self) -> Result<StoreConfig> {
        let config = self.config()?;
        if let StoreConfig::Sqlite(sqlite) = &config {
            self.file_must_exist(&sqlite.path, "event store")?;
        }
        if let StoreConfig::Postgres(pg) = &config {
            database_must_exist(&pg.url, "--store / KEFU_STORE / DATABASE_URL").await?;
        }
        Ok(config)
    }

    fn file_must_exist(&self, path: &Path, what: &str) -> Result<()> {
        if path.exists() {
            return Ok(());
        }
        if path.starts_with(&self.data_dir) && !self.data_dir.exists() {
            bail!(
                "there is no data directory {}: give the one kefu keeps its data in \
                 (--data-dir / KEFU_DATA_DIR), or the store (--store / KEFU_STORE); \
                 this command only reads, and creates nothing",
                self.data_dir.display()
            );
        }
        bail!(
            "there is no {what} at {}: this command only reads, and creates nothing \
             (`kefu migrate` creates a store, `kefu serve` too)",
            path.display()
        )
    }

    /// Where read models live: `--read-store`, else the event store's PostgreSQL database,
    /// else `<data dir>/kefu.read.db`. URLs are read as `--store` reads them.
    pub fn read_store_config(&self) -> Result<ReadStoreConfig> {
        if let Some(url) = &self.read_store {
            let config = StoreConfig::from_url(url).context("--read-store / KEFU_READ_STORE")?;
            if let StoreConfig::Postgres(pg) = config {
                return Ok(ReadStoreConfig::Postgres {
                    url: pg.url,
                    schema: None,
                });
            }
            // Not a `match`: the KurrentDB variant exists whenever kefu-eventlog is built with
            // it, which this crate's own features do not tell.
            let StoreConfig::Sqlite(sqlite) = config else {
                anyhow::bail!(
                    "--read-store / KEFU_READ_STORE: read models need PostgreSQL or a SQLite file, not KurrentDB"
                );
            };
            return Ok(ReadStoreConfig::Sqlite(sqlite.path));
        }
        Ok(match self.config()? {
            StoreConfig::Postgres(pg) => ReadStoreConfig::Postgres {
                url: pg.url,
                schema: None,
            },
            _ => ReadStoreConfig::Sqlite(self.data_dir.join("kefu.read.db")),
        })
    }

    /// The read models for a command that only reads them, creating nothing: None when none
    /// were ever built here (no SQLite file); a missing PostgreSQL database is an error
    /// naming it.
    pub async fn open_read_store_existing(&self) -> Result<Option<ReadStore>> {
        let config = self.read_store_config()?;
        match &config {
            ReadStoreConfig::Sqlite(path) if !path.exists() => return Ok(None),
            ReadStoreConfig::Sqlite(_) => {}
            ReadStoreConfig::Postgres { url, .. } => {
                database_must_exist(url, "--read-store / KEFU_READ_STORE, or --store").await?;
            }
        }
        ReadStore::open(&config)
            .await
            .map(Some)
            .context("cannot open the read-model store")
    }

    /// Where the read models would be, for messages.
    pub fn describe_read_store(&self) -> String {
        match self.read_store_config() {
            Ok(ReadStoreConfig::Sqlite(path)) => path.display().to_string(),
            Ok(ReadStoreConfig::Postgres { url, .. }) => without_credentials(&url),
            Err(e) => format!("{e:#}"),
        }
    }

    pub async fn open_read_store(&self) -> Result<ReadStore> {
        let config = self.read_store_config()?;
        if let ReadStoreConfig::Postgres { url, .. } = &config {
            kefu_eventlog::postgres::ensure_database(url)
                .await
                .context("cannot reach or create the read-model database")?;
        }
        ReadStore::open(&config)
            .await
            .context("cannot open the read-model store")
    }

    /// Where the search index keeps its generations: `<data dir>/search`.
    pub fn search_dir(&self) -> PathBuf {
        self.data_dir.join("search")
    }

    pub fn search_home(&self) -> SearchHome {
        SearchHome::new(self.search_dir())
    }

    /// The store's location without credentials, for logs and errors.
    pub fn describe(&self) -> String {
        match &self.store_url() {
            Some(url) => without_credentials(url),
            None => format!("embedded, {}", self.data_dir.join("kefu.db").display()),
        }
    }
}

/// An I/O error on one of kefu's own files or directories, as the storage problem behind it
/// (read-only, full, permission, missing directory) when there is one, else as `doing` it.
pub fn io_problem(path: &Path, target: Target, e: std::io::Error, doing: &str) -> anyhow::Error {
    match storage::diagnose(path, target, &e) {
        Some(problem) => problem.into(),
        None => anyhow::Error::new(e).context(format!("{doing} {}", path.display())),
    }
}

/// A store URL without its user and password.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        None => url.to_owned(),
    }
}

async fn database_must_exist(url: &str, flag: &str) -> Result<()> {
    let where_ = without_credentials(url);
    let exists = kefu_eventlog::postgres::database_exists(url)
        .await
        .with_context(|| format!("cannot reach PostgreSQL ({where_})"))?;
    if !exists {
        bail!(
            "the PostgreSQL database of {where_} does not exist: check its name in {flag}; \
             this command only reads, and creates nothing (`kefu migrate` creates it)"
        );
    }
    Ok(())
}
