//! Health that tells the truth, through a real `kefu serve`: a transaction held open in the
//! database shows on `/readyz` and `/metrics` as a stall naming the session and since when,
//! and a search index writer stopped by a full disk shows as failing until the disk has room
//! again, then catches up. Nothing waits for a duration: every wait is for a condition,
//! bounded by `HANG`.

#[path = "common/mounts.rs"]
mod mounts;
mod server;

use std::future::Future;
use std::time::Instant;

use mounts::{Mount, fill, root};
use serde_json::json;
use server::{HANG, Server};

/// Waits until `check` gives Some, counting it a hang after `HANG`.
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(out) = check().await {
            return out;
        }
        assert!(started.elapsed() < HANG, "waited too long for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// One metric's value from a `/metrics` text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn metrics(server: &Server, admin: &str) -> String {
    let bearer = format!("Bearer {admin}");
    let (status, _, body) = server
        .http("GET", "/metrics", &[("Authorization", &bearer)], "")
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn ready(server: &Server) -> (u16, String) {
    let (status, _, body) = server.http("GET", "/readyz", &[], "").await;
    (status, body)
}

/// A customer's new chat.
async fn start(server: &Server, customer: &str) -> String {
    let started = server
        .gql(
            customer,
            "mutation { startConversation(channel: WEB) { id } }",
            json!({}),
        )
        .await;
    started["startConversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A customer's message: what makes the workers and projections write. Its position.
async fn send(server: &Server, customer: &str, conversation: &str, text: &str) -> String {
    let sent = server
        .gql(
            customer,
            "mutation($c: String!, $t: String!) { sendMessage(conversationId: $c, text: $t) { position } }",
            json!({ "c": conversation, "t": text }),
        )
        .await;
    sent["sendMessage"]["position"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_held_open_is_reported_as_a_stall_naming_its_session() {
    let Some((schema, url)) = kefu_eventlog::testing::fresh_schema_url().await else {
        return;
    };
    let server = Server::start(
        Some(&url),
        &["--stall-after-secs", "1", "--read-wait-secs", "1"],
    );
    let admin = server.token("admin", "ops", &[]);
    let customer = server.token("customer", &uuid::Uuid::now_v7().to_string(), &[]);
    until("ready", || async {
        (ready(&server).await.0 == 200).then_some(())
    })
    .await;
    let conversation = start(&server, &customer).await;

    // What a report, a psql session or a stuck job elsewhere in the cluster does: a
    // transaction with an id, left open.
    let holder = kefu_eventlog::testing::client().await;
    let pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    holder
        .batch_execute(
            "BEGIN; SET LOCAL application_name = 'held-by-health-test'; SELECT pg_current_xact_id()",
        )
        .await
        .unwrap();
    // Writes go on (they are acknowledged) and wait above the settled head.
    let written = send(&server, &customer, &conversation, "运费是怎么收取的？").await;

    // Other tests' transactions on this server come and go; ours stays, so in the end it is
    // the one named.
    let why = until("/readyz to name the held transaction", || async {
        let (status, body) = ready(&server).await;
        (status == 503 && body.contains(&format!("pid {pid}"))).then_some(body)
    })
    .await;
    eprintln!("/readyz during the stall: {why}");
    for needle in [
        "UNAVAILABLE",
        "the log is stalled",
        "held-by-health-test",
        "idle in transaction",
        &format!("pg_terminate_backend({pid})"),
        "idle_in_transaction_session_timeout",
        "since 20",
    ] {
        assert!(why.contains(needle), "{needle} in {why}");
    }
    // A client reading its own write is told why it waits in vain.
    let (code, message) = server
        .gql_error(
            &admin,
            "query($p: String) { search(text: \"运费\", atLeast: $p) { totalCount } }",
            json!({ "p": written }),
        )
        .await;
    assert_eq!(code, "UNAVAILABLE", "{message}");
    assert!(
        message.contains("has not reached position") && message.contains("the log is stalled"),
        "{message}"
    );
    let text = metrics(&server, &admin).await;
    let unsettled = metric(&text, "kefu_log_unsettled_events").expect(&text);
    assert!(unsettled >= 1.0, "the message waits: {text}");
    assert!(metric(&text, "kefu_log_stall_seconds").expect(&text) > 0.0);
    let settled = metric(&text, "kefu_log_settled_position").expect(&text);
    let committed = metric(&text, "kefu_log_committed_position").expect(&text);
    assert!(committed > settled, "{text}");

    holder.batch_execute("ROLLBACK").await.unwrap();
    until("/readyz to be ready again", || async {
        (ready(&server).await.0 == 200).then_some(())
    })
    .await;
    let text = until("the heads to meet in /metrics", || async {
        let text = metrics(&server, &admin).await;
        (metric(&text, "kefu_log_unsettled_events") == Some(0.0)).then_some(text)
    })
    .await;
    assert_eq!(metric(&text, "kefu_log_stall_seconds"), Some(0.0), "{text}");
    drop(server);
    kefu_eventlog::testing::drop_schema(&schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_writer_stopped_by_a_full_disk_is_reported_then_recovers() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let search = dir.path().join("data").join("search");
    let _mount = Mount::tmpfs(&search, "size=8m");
    let server = Server::start_in(dir, None, &["--stall-after-secs", "1"]);
    let admin = server.token("admin", "ops", &[]);
    let customer = server.token("customer", &uuid::Uuid::now_v7().to_string(), &[]);
    until("ready", || async {
        (ready(&server).await.0 == 200).then_some(())
    })
    .await;
    let conversation = start(&server, &customer).await;
    send(&server, &customer, &conversation, "运费是怎么收取的？").await;
    let found = |word: &'static str| {
        let (server, admin) = (&server, &admin);
        async move {
            let data = server
                .gql(
                    admin,
                    "query($t: String!) { search(text: $t, kinds: [MESSAGE]) { totalCount } }",
                    json!({ "t": word }),
                )
                .await;
            data["search"]["totalCount"].as_i64().unwrap()
        }
    };
    until("the first message to be searchable", || async {
        (found("运费").await > 0).then_some(())
    })
    .await;

    let filler = search.join("filler");
    let full = fill(&filler);
    assert_eq!(full.raw_os_error(), Some(28), "ENOSPC, not {full}");
    send(&server, &customer, &conversation, "发票抬头写错了怎么办").await;
    let why = until("/readyz to name the failing search writer", || async {
        let (status, body) = ready(&server).await;
        (status == 503 && body.contains("the search index writer has been failing")).then_some(body)
    })
    .await;
    eprintln!("/readyz with the disk full: {why}");
    assert!(
        why.contains("no space left on device") && why.contains("ENOSPC"),
        "says why: {why}"
    );
    let text = metrics(&server, &admin).await;
    assert_eq!(metric(&text, "kefu_search_up"), Some(0.0), "{text}");
    assert!(metric(&text, "kefu_search_failures_total").expect(&text) >= 1.0);
    assert_eq!(metric(&text, "kefu_projections_up"), Some(1.0), "{text}");
    assert_eq!(found("发票").await, 0, "not indexed while the disk is full");

    std::fs::remove_file(&filler).unwrap();
    until("/readyz to be ready again", || async {
        (ready(&server).await.0 == 200).then_some(())
    })
    .await;
    until(
        "the message written while the disk was full to be searchable",
        || async { (found("发票").await > 0).then_some(()) },
    )
    .await;
    // The bot's reply may still be on its way to the index: wait for it, not for a time.
    until("the search writer up and caught up in /metrics", || async {
        let text = metrics(&server, &admin).await;
        (metric(&text, "kefu_search_up") == Some(1.0)
            && metric(&text, "kefu_search_lag_events") == Some(0.0))
        .then_some(())
    })
    .await;
    drop(server);
}
