//! Reaching the test PostgreSQL server: every test gets its own schema in database
//! `kefu_test`, created on first use. Outside CI a missing server skips the test with a note;
//! with `CI=true` (or `KEFU_REQUIRE_POSTGRES=1`) it fails instead.
#![allow(dead_code)]

use tokio_postgres::NoTls;

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/kefu_test";

pub fn url() -> String {
    std::env::var("KEFU_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("KEFU_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Makes sure the test database exists; false (or a panic, when Postgres is required) when
/// no server answers.
pub async fn available() -> bool {
    let url = url();
    match kefu_eventlog::postgres::ensure_database(&url).await {
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

pub fn fresh_schema() -> String {
    format!("t_{}", uuid::Uuid::now_v7().simple())
}

pub async fn client() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&url(), NoTls)
        .await
        .expect("connect");
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
