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
    let config: tokio_postgres::Config = url.parse().expect("KEFU_TEST_DATABASE_URL");
    match config.connect(NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            drop(client);
            true
        }
        Err(e) if e.as_db_error().is_some_and(|d| d.code().code() == "3D000") => {
            create_database(&config).await;
            true
        }
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

async fn create_database(config: &tokio_postgres::Config) {
    let name = config
        .get_dbname()
        .expect("database name in the URL")
        .to_owned();
    let mut admin = config.clone();
    admin.dbname("postgres");
    let (client, conn) = admin
        .connect(NoTls)
        .await
        .expect("connect to database postgres");
    tokio::spawn(conn);
    if let Err(e) = client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
    {
        // Another test created it first: "already exists", or a unique violation when both
        // got past the catalog check at once.
        assert!(
            e.as_db_error()
                .is_some_and(|d| matches!(d.code().code(), "42P04" | "23505")),
            "cannot create database {name}: {e}"
        );
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
