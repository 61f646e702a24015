//! The log contract on the embedded SQLite backend.

mod contract;

use std::sync::Arc;

use kefu_eventlog::sqlite::{SqliteConfig, SqliteLog};

struct Sqlite {
    dir: tempfile::TempDir,
    log: Arc<SqliteLog>,
}

fn file_in(dir: &str) -> std::path::PathBuf {
    std::path::Path::new(dir).join("data").join("kefu.db")
}

impl contract::Harness for Sqlite {
    type Log = SqliteLog;

    async fn fresh() -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = Self::open_at(dir.path().to_str().expect("utf-8 temp path")).await;
        Some(Sqlite { dir, log })
    }

    fn log(&self) -> Arc<SqliteLog> {
        self.log.clone()
    }

    fn locator(&self) -> String {
        self.dir
            .path()
            .to_str()
            .expect("utf-8 temp path")
            .to_owned()
    }

    async fn open_at(locator: &str) -> Arc<SqliteLog> {
        let mut config = SqliteConfig::new(file_in(locator));
        // Small enough that the oversized-payload test stays quick.
        config.limits.max_payload_bytes = 64 * 1024;
        config.limits.max_batch = 1000;
        Arc::new(SqliteLog::open(config).await.expect("open sqlite log"))
    }
}

contract_suite!(Sqlite);

#[tokio::test]
async fn two_handles_on_one_file_share_the_log() {
    use contract::Harness;
    use kefu_eventlog::{EventLog, ExpectedVersion};
    let h = Sqlite::fresh().await.unwrap();
    let other = Sqlite::open_at(&h.locator()).await;
    let s = contract::stream("conversation-shared");
    h.log()
        .append(&s, ExpectedVersion::NoStream, contract::events(0..1))
        .await
        .unwrap();
    let r = other
        .append(&s, ExpectedVersion::NoStream, contract::events(1..2))
        .await;
    assert!(r.unwrap_err().is_conflict());
    assert_eq!(other.stream_version(&s).await.unwrap(), Some(0));
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_in(dir.path().to_str().unwrap());
    SqliteLog::open(SqliteConfig::new(&path)).await.unwrap();
    rusqlite_set_user_version(&path, 99);
    let err = SqliteLog::open(SqliteConfig::new(&path))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("newer than this build"), "{err}");
}

fn rusqlite_set_user_version(path: &std::path::Path, v: i64) {
    // Leaves the file the way a newer kefu would have.
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "user_version", v).unwrap();
}
