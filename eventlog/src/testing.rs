//! How kefu's tests (in every crate) reach their PostgreSQL server: each test gets a schema
//! of its own in database `kefu_test` (created on first use). Outside CI a missing server
//! skips the test with a note; with `CI=true` (or `KEFU_REQUIRE_POSTGRES=1`) it fails instead,
//! so CI can never pass by skipping.

use tokio_postgres::NoTls;

use crate::postgres::{PostgresConfig, ensure_database};

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/kefu_test";

/// `KEFU_TEST_DATABASE_URL`, or [`DEFAULT_URL`].
pub fn url() -> String {
    std::env::var("KEFU_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("KEFU_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Makes sure the test database exists. False when no server answers, after saying the test
/// is skipped; a panic instead when PostgreSQL is required.
pub async fn available() -> bool {
    let url = url();
    match ensure_database(&url).await {
        Ok(()) => true,
        Err(e) => {
            assert!(
                !required(),
                "PostgreSQL is required here but {url} refused: {e}"
            );
            eprintln!("skipped: no PostgreSQL at {url} ({e}); set KEFU_TEST_DATABASE_URL");
            false
        }
    }
}

/// A schema name no other test uses.
pub fn fresh_schema() -> String {
    format!("t_{}", uuid::Uuid::now_v7().simple())
}

/// A fresh schema for a whole process under test (a server, a command) to keep its store in:
/// its name and the store URL that points there, or None when the test must skip.
pub async fn fresh_schema_url() -> Option<(String, String)> {
    if !available().await {
        return None;
    }
    let schema = fresh_schema();
    client()
        .await
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create a test schema");
    let url = format!("{}?options=-c%20search_path%3D{schema}", url());
    Some((schema, url))
}

/// A log configuration in a fresh schema, or None when the test must skip.
pub async fn fresh_config() -> Option<PostgresConfig> {
    if !available().await {
        return None;
    }
    Some(PostgresConfig::new(url()).with_schema(fresh_schema()))
}

/// A plain connection to the test database, for a test's own SQL.
pub async fn client() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&url(), NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(conn);
    client
}

pub async fn drop_schema(schema: &str) {
    client()
        .await
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .expect("drop test schema");
}

/// Creates `schema` as a store an earlier kefu left: only its first `version` migrations
/// applied, recorded as that build recorded them; for upgrade tests, which fill it through
/// the old schema's own append function and then open it with this build.
pub async fn create_store_at_version(schema: &str, version: usize) {
    let client = client().await;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path TO {schema};
             CREATE TABLE kefu_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .await
        .expect("create an old store's schema");
    for (i, (name, sql)) in crate::postgres::MIGRATIONS.iter().take(version).enumerate() {
        client.batch_execute(sql).await.expect("an old migration");
        client
            .execute(
                "INSERT INTO kefu_migrations (version, name) VALUES ($1, $2)",
                &[&(i as i32 + 1), name],
            )
            .await
            .expect("record an old migration");
    }
}

/// Creates an embedded store file as an earlier kefu left it: only its first `version`
/// schema steps applied, for upgrade tests that fill it as that build did and then open it
/// with this one.
pub fn create_sqlite_store_at_version(path: &std::path::Path, version: usize) {
    let conn = rusqlite::Connection::open(path).expect("create an old store file");
    for sql in crate::sqlite::MIGRATIONS.iter().take(version) {
        conn.execute_batch(sql).expect("an old schema step");
    }
    conn.execute_batch(&format!("PRAGMA user_version = {version}"))
        .expect("record the old schema version");
}
