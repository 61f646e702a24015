//! `kefu log tail --follow` through a PostgreSQL outage: it waits the outage out and resumes
//! where it stopped (every event exactly once, in order), also when it starts while the store
//! is down; errors that waiting cannot cure still end it. The outage is a proxy between the
//! follower and the server, cut and restored: the server, which other tests share, is never
//! touched.

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kefu_eventlog::{
    Actor, ActorKind, AnyLog, EventLog, ExpectedVersion, Metadata, NewEvent, StoreConfig, StreamId,
    testing,
};
use proxy::Proxy;
use uuid::Uuid;

/// Long enough for a loaded CI machine; the tests poll, so a quick run ends sooner.
const DEADLINE: Duration = Duration::from_secs(90);

/// A fresh schema in the test database: its URL straight to the server and through a proxy.
struct Store {
    schema: String,
    direct: String,
    proxy: Proxy,
    log: AnyLog,
    stream: StreamId,
}

impl Store {
    async fn new() -> Option<Store> {
        let (schema, direct) = testing::fresh_schema_url().await?;
        let proxy = Proxy::start(upstream(&direct)).await;
        let log = StoreConfig::from_url(&direct)
            .unwrap()
            .open()
            .await
            .expect("open the test store");
        Some(Store {
            schema,
            direct,
            proxy,
            log,
            stream: StreamId::new(format!("conversation-{}", Uuid::now_v7())).unwrap(),
        })
    }

    /// The store's URL through the proxy.
    fn proxied(&self) -> String {
        let (scheme, rest) = self.direct.split_once("://").unwrap();
        let (authority, path) = rest.split_once('/').unwrap();
        let user = authority
            .rsplit_once('@')
            .map(|(u, _)| format!("{u}@"))
            .unwrap_or_default();
        format!("{scheme}://{user}{}/{path}", self.proxy.addr())
    }

    /// Appends `n` events straight to the server, one append each; their ids in order.
    async fn append(&self, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..n {
            let id = Uuid::now_v7();
            let event = NewEvent::new(
                "Noted",
                serde_json::json!({ "n": i }),
                Metadata::for_request(Actor::new(ActorKind::System, "test"), Uuid::now_v7()),
            )
            .with_id(id);
            self.log
                .append(&self.stream, ExpectedVersion::Any, vec![event])
                .await
                .expect("append");
            ids.push(id.to_string());
        }
        ids
    }

    async fn drop_schema(self) {
        testing::drop_schema(&self.schema).await;
    }
}

fn upstream(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split_once('/').unwrap().0;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host.to_socket_addrs()
        .expect("the test database's address")
        .next()
        .unwrap()
}

/// A running `kefu log tail --follow`, its output lines gathered as they come.
struct Follower {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Follower {
    fn start(store: &str) -> Follower {
        let dir = tempfile::tempdir().unwrap();
        let mut child = common::command(dir.path())
            // The notes that the store went away and came back are warnings and infos.
            .env("KEFU_LOG", "info")
            .args(["log", "tail", "--follow", "--store", store])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kefu log tail --follow");
        let stdout = gather(child.stdout.take().unwrap());
        let stderr = gather(child.stderr.take().unwrap());
        Follower {
            child,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// The ids of the events printed so far.
    fn ids(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .map(|line| {
                let event: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("stdout holds only events, not {line:?}: {e}"));
                event["id"].as_str().expect("an event id").to_owned()
            })
            .collect()
    }

    fn said(&self, words: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(words))
    }

    /// Waits until `done` holds, failing with what the follower printed if it does not
    /// within the deadline or the follower exits.
    fn wait_until(&mut self, what: &str, done: impl Fn(&Follower) -> bool) {
        let start = Instant::now();
        while !done(self) {
            let exited = self.child.try_wait().unwrap();
            assert!(
                exited.is_none() && start.elapsed() < DEADLINE,
                "waited for {what}; the follower {}\nstdout:\n{}\nstderr:\n{}",
                exited.map_or("is still running".into(), |s| format!("exited: {s}")),
                self.stdout.lock().unwrap().join("\n"),
                self.stderr.lock().unwrap().join("\n"),
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for_event(&mut self, id: &str) {
        self.wait_until(&format!("event {id}"), |f| f.ids().iter().any(|i| i == id));
    }

    /// Waits for the follower to exit on its own; its status and stderr.
    fn exit(mut self) -> (std::process::ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The readers see end of file once the process is gone.
                let stderr = loop {
                    if Arc::strong_count(&self.stderr) == 1 {
                        break self.stderr.lock().unwrap().join("\n");
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                return (status, stderr);
            }
            assert!(
                start.elapsed() < DEADLINE,
                "the follower did not exit; stderr:\n{}",
                self.stderr.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines from `pipe`, gathered by a thread of their own until the pipe closes.
fn gather(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let gathered = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            gathered.lock().unwrap().push(line);
        }
        drop(gathered);
    });
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_waits_out_an_outage_and_prints_every_event_once_in_order() {
    let Some(mut store) = Store::new().await else {
        return;
    };
    let mut follower = Follower::start(&store.proxied());
    let mut sent = store.append(3).await;
    follower.wait_for_event(sent.last().unwrap());

    store.proxy.cut().await;
    follower.wait_until("the note that the store went away", |f| {
        f.said("the store went away")
    });
    // Written while the follower cannot see the store: it must still print them, once.
    sent.extend(store.append(3).await);
    store.proxy.restore().await;
    follower.wait_until("the note that the store is back", |f| {
        f.said("the store is back")
    });
    sent.extend(store.append(3).await);
    printed_exactly_once(follower, store, sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_started_while_the_store_is_down_waits_for_it() {
    let Some(mut store) = Store::new().await else {
        return;
    };
    store.proxy.cut().await;
    let mut sent = store.append(2).await;
    let mut follower = Follower::start(&store.proxied());
    follower.wait_until("the note that the store is unavailable", |f| {
        f.said("the store is unavailable; waiting for it")
    });
    assert!(follower.ids().is_empty());
    store.proxy.restore().await;
    follower.wait_until("the note that the store is up", |f| {
        f.said("the store is up")
    });
    sent.extend(store.append(2).await);
    printed_exactly_once(follower, store, sent).await;
}

/// Asserts the follower printed `sent`, every event exactly once and in order. A marker is
/// written and waited for first: everything before it has been printed by the time it is, so
/// nothing more can come and the comparison is final without waiting on a clock.
async fn printed_exactly_once(mut follower: Follower, store: Store, mut sent: Vec<String>) {
    let marker = store.append(1).await;
    follower.wait_for_event(&marker[0]);
    sent.extend(marker);
    assert_eq!(follower.ids(), sent, "every event exactly once, in order");
    drop(follower);
    store.drop_schema().await;
}

#[tokio::test]
async fn a_follower_does_not_wait_for_what_waiting_cannot_fix() {
    if !testing::available().await {
        return;
    }
    let url = testing::url();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, _) = rest.split_once('/').unwrap();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let missing = format!("kefu_no_such_database_{}", Uuid::now_v7().simple());
    for (store, says) in [
        (
            format!("{scheme}://postgres@{host}/{missing}"),
            "does not exist",
        ),
        (
            format!("{scheme}://kefu_no_such_role@{host}/kefu_test"),
            "kefu_no_such_role",
        ),
        (
            format!("{scheme}://postgres@{name}:notaport/kefu_test"),
            "bad PostgreSQL URL",
        ),
    ] {
        let (status, stderr) = Follower::start(&store).exit();
        assert!(!status.success(), "{store}: {stderr}");
        assert!(stderr.contains(says), "{store}: {stderr}");
        assert!(!stderr.contains("waiting for it"), "{store}: {stderr}");
    }
}
