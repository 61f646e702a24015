//! The `gen_history` binary as a newcomer runs it: pointed at a PostgreSQL database that does
//! not exist yet, it creates it (as `kefu` does) and writes the history there.

use std::process::Command;

use kefu_eventlog::testing;

#[tokio::test]
async fn gen_history_creates_a_missing_postgres_database() {
    if !testing::available().await {
        return;
    }
    let name = format!("kefu_gen_{}", uuid::Uuid::now_v7().simple());
    let base = testing::url();
    let (server, _) = base
        .rsplit_once('/')
        .expect("the test URL names a database");
    let url = format!("{server}/{name}");
    let out = Command::new(env!("CARGO_BIN_EXE_gen_history"))
        .args(["--store", &url, "--conversations", "20", "--seed", "3"])
        .output()
        .expect("run gen_history");
    let admin = testing::client().await;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some();
    if exists {
        admin
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .unwrap();
    }
    assert!(
        out.status.success(),
        "gen_history failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(exists, "database {name} was not created");
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("a JSON summary line");
    assert!(summary["events"].as_u64().unwrap() > 0, "{summary}");
}
