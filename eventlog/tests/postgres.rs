//! The log contract on PostgreSQL, and what only PostgreSQL needs proven.

mod contract;
use kefu_eventlog::testing as pg;

use std::sync::Arc;

use kefu_eventlog::postgres::{PostgresConfig, PostgresLog};
use kefu_eventlog::{EventLog, ExpectedVersion, Position};

struct Postgres {
    schema: String,
    log: Arc<PostgresLog>,
}

fn config(schema: &str) -> PostgresConfig {
    let mut config = PostgresConfig::new(pg::url()).with_schema(schema);
    // Writers that hold their transactions open must not starve the subscribers of connections.
    config.pool_size = 24;
    config.limits.max_payload_bytes = 64 * 1024;
    config.limits.max_batch = 1000;
    config
}

impl contract::Harness for Postgres {
    type Log = PostgresLog;

    async fn fresh() -> Option<Self> {
        if !pg::available().await {
            return None;
        }
        let schema = pg::fresh_schema();
        let log = Self::open_at(&schema).await;
        Some(Postgres { schema, log })
    }

    fn log(&self) -> Arc<PostgresLog> {
        self.log.clone()
    }

    fn locator(&self) -> String {
        self.schema.clone()
    }

    async fn open_at(schema: &str) -> Arc<PostgresLog> {
        Arc::new(
            PostgresLog::open(config(schema))
                .await
                .expect("open postgres log"),
        )
    }

    async fn cleanup(self) {
        drop(self.log);
        pg::drop_schema(&self.schema).await;
    }
}

contract_suite!(Postgres);

/// The hole Postgres event stores fall into, made on purpose: a transaction holds a position
/// while a later one commits. A reader must not move past the open one.
#[tokio::test]
async fn a_reader_never_passes_an_open_transaction() {
    use contract::Harness;
    let Some(h) = Postgres::fresh().await else {
        return;
    };
    let log = h.log();

    let mut slow = pg::client().await;
    slow.batch_execute(&format!("SET search_path = {}", h.schema))
        .await
        .unwrap();
    let tx = slow.transaction().await.unwrap();
    let slow_event = contract::event(1);
    let row = tx
        .query_one(
            "SELECT last_position FROM kefu_append('conversation-slow', -1, $1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &vec![slow_event.id],
                &vec!["TestHappened"],
                &vec![1i32],
                &vec![slow_event.payload.to_string()],
                &vec!["customer"],
                &vec!["c-1"],
                &vec![slow_event.metadata.correlation_id],
                &vec![slow_event.metadata.causation_id],
                &vec![None::<String>],
            ],
        )
        .await
        .unwrap();
    let slow_position = Position(row.get::<_, i64>(0) as u64);

    // A later transaction commits while the slow one is still open.
    let fast = log
        .append(
            &contract::stream("conversation-fast"),
            ExpectedVersion::Any,
            contract::events(2..3),
        )
        .await
        .unwrap();
    assert!(
        fast.last_position > slow_position,
        "positions follow transaction order"
    );
    assert!(
        log.read_all(Position::START, 100).await.unwrap().is_empty(),
        "the committed event must wait behind the open transaction"
    );

    tx.commit().await.unwrap();
    // Open transactions of other tests on this server may hold the bound back a while longer,
    // so wait the way a projection would.
    let mut sub = kefu_eventlog::Subscription::new(log.clone(), Position::START);
    let first = sub.next().await.unwrap().position;
    let second = sub.next().await.unwrap().position;
    assert_eq!([first, second], [slow_position, fast.last_position]);
    h.cleanup().await;
}

/// Two processes starting at once must not both try to create the schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_are_safe_to_run_concurrently_and_twice() {
    if !pg::available().await {
        return;
    }
    let schema = pg::fresh_schema();
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let schema = schema.clone();
            tokio::spawn(async move { PostgresLog::open(config(&schema)).await.map(|_| ()) })
        })
        .collect();
    for o in opens {
        o.await.unwrap().expect("concurrent open");
    }
    PostgresLog::open(config(&schema))
        .await
        .expect("open again");
    let applied: i64 = pg::client()
        .await
        .query_one(
            &format!("SELECT count(*) FROM {schema}.kefu_migrations"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, 1);
    pg::drop_schema(&schema).await;
}

#[tokio::test]
async fn bad_configuration_is_named() {
    let err = PostgresLog::open(
        PostgresConfig::new("postgres://nobody@127.0.0.1:1/x").with_schema("Bad-Name"),
    )
    .await
    .err()
    .expect("refused");
    assert!(err.to_string().contains("schema name"), "{err}");
    let err = PostgresLog::open(PostgresConfig::new("not a url at all ==="))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("PostgreSQL URL"), "{err}");
}
