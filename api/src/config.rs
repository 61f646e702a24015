//! Where the store is, from flags and the environment.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
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
            None => {
                std::fs::create_dir_all(&self.data_dir).with_context(|| {
                    format!(
                        "cannot create the data directory {}",
                        self.data_dir.display()
                    )
                })?;
                Ok(StoreConfig::embedded(&self.data_dir))
            }
        }
    }

    pub async fn open(&self) -> Result<AnyLog> {
        let config = self.config()?;
        let where_ = self.describe();
        if let StoreConfig::Postgres(pg) = &config {
            // A newcomer's `createdb` step, done for them; a role without CREATEDB gets the
            // server's refusal, named.
            kefu_eventlog::postgres::ensure_database(&pg.url)
                .await
                .with_context(|| format!("cannot reach or create the database ({where_})"))?;
        }
        config
            .open()
            .await
            .with_context(|| format!("cannot open the event store ({where_})"))
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
    pub fn search_home(&self) -> SearchHome {
        SearchHome::new(self.data_dir.join("search"))
    }

    /// The store's location without credentials, for logs and errors.
    pub fn describe(&self) -> String {
        match &self.store_url() {
            Some(url) => match url.split_once("://") {
                Some((scheme, rest)) => {
                    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                    format!("{scheme}://{host}")
                }
                None => url.clone(),
            },
            None => format!("embedded, {}", self.data_dir.join("kefu.db").display()),
        }
    }
}
