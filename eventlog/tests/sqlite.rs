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

/// A store of schema 2 (event ids unique across the log), with data, opened by this build:
/// migrated in place (issue 20), every event kept at its position, positions going on from
/// the highest, and an id of one stream now writable in another.
#[tokio::test]
async fn a_store_of_schema_2_is_migrated_in_place() {
    use kefu_eventlog::{DEFAULT_PAGE, EventLog, ExpectedVersion, Position, StreamId};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kefu.db");
    kefu_eventlog::testing::create_sqlite_store_at_version(&path, 2);
    let ids: Vec<uuid::Uuid> = (0..4).map(|_| uuid::Uuid::now_v7()).collect();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (i, (stream, version)) in [
            ("conversation-a", 0),
            ("conversation-a", 1),
            ("conversation-b", 0),
            ("conversation-a", 2),
        ]
        .iter()
        .enumerate()
        {
            conn.execute(
                "INSERT INTO events (id, stream_id, version, event_type, schema_version, payload, \
                 recorded_at, actor_kind, actor_id, correlation_id, causation_id, trace_id) \
                 VALUES (?1, ?2, ?3, 'Happened', 1, '{\"n\": 1}', 0, 'system', 'test', ?1, ?1, NULL)",
                rusqlite::params![ids[i].to_string(), stream, version],
            )
            .unwrap();
        }
    }
    let log = SqliteLog::open(SqliteConfig::new(&path)).await.unwrap();
    let all = log.read_all(Position::START, DEFAULT_PAGE).await.unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert_eq!(
        all.iter().map(|e| e.position.0).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let a = StreamId::new("conversation-a").unwrap();
    let next = log
        .append(&a, ExpectedVersion::Exact(2), contract::events(0..1))
        .await
        .unwrap();
    assert_eq!((next.first_version, next.first_position.0), (3, 5));
    let reused = contract::event(7).with_id(ids[2]);
    let elsewhere = log
        .append(
            &StreamId::new("conversation-c").unwrap(),
            ExpectedVersion::NoStream,
            vec![reused],
        )
        .await
        .expect("an id of another stream");
    assert_eq!(elsewhere.first_position.0, 6);
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
}
