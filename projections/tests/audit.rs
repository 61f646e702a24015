//! The audit trail: one customer request followed through the bot, emotion and routing, across
//! streams, as a causation tree, from the audit read model; and what the answer says while
//! that read model has not read the whole log.
//!
//! Also an old PostgreSQL store (migrations 1 to 3) migrated in place, with every audit answer
//! kept.

use std::sync::Arc;

use kefu_eventlog::sqlite::{SqliteConfig, SqliteLog};
use kefu_eventlog::{
    Actor, ActorKind, EventLog, ExpectedVersion, Metadata, NewEvent, Position, StreamId,
};
use kefu_projections::audit::{AuditProjection, NAME};
use kefu_projections::{LiveProjections, Projection, ReadModels, ReadStore, Until, rebuild};
use serde_json::json;
use uuid::Uuid;

fn audit_only() -> Vec<Box<dyn Projection>> {
    vec![Box::new(AuditProjection)]
}

#[tokio::test]
async fn one_request_is_a_tree_of_causes_across_streams() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        SqliteLog::open(SqliteConfig::new(dir.path().join("kefu.db")))
            .await
            .unwrap(),
    );
    let store = ReadStore::open_sqlite(&dir.path().join("kefu.read.db")).unwrap();
    let conversation = StreamId::new("conversation-c1").unwrap();
    let agent = StreamId::new("agent-a1").unwrap();
    let request = Uuid::now_v7();
    let append = |stream: &StreamId, event: NewEvent| {
        let log = log.clone();
        let stream = stream.clone();
        async move {
            log.append(&stream, ExpectedVersion::Any, vec![event])
                .await
                .unwrap()
        }
    };
    let customer = Metadata::for_request(Actor::new(ActorKind::Customer, "c-7"), request);
    let turn = NewEvent::new("CustomerTurnRecorded", json!({"text": "转人工"}), customer);
    append(&conversation, turn.clone()).await;
    // Another request's event in between: not part of the trail.
    let other = Metadata::for_request(Actor::system("test"), Uuid::now_v7());
    append(
        &agent,
        NewEvent::new("AgentStatusChanged", json!({}), other),
    )
    .await;

    let stored = log.read_all(Position::START, 10).await.unwrap();
    let turn_recorded = stored[0].clone();
    let bot = Metadata::caused_by(Actor::new(ActorKind::Bot, "jimi"), &turn_recorded);
    let emotion = NewEvent::new("EmotionAssessed", json!({}), bot.clone());
    let handoff = NewEvent::new("HandedToHuman", json!({}), bot);
    append(&conversation, emotion).await;
    append(&conversation, handoff.clone()).await;
    let stored = log.read_all(Position::START, 10).await.unwrap();
    let handed = stored.iter().find(|e| e.id == handoff.id).unwrap().clone();
    let assigner = Metadata::caused_by(Actor::system("assigner"), &handed);
    let taken = append(
        &agent,
        NewEvent::new("AgentChatTaken", json!({}), assigner.clone()),
    )
    .await;

    rebuild(&*log, &store, audit_only(), Until::default(), |_| {})
        .await
        .unwrap();
    let models = ReadModels::open(store.clone()).await.unwrap();
    let answer = models
        .live(NAME)
        .await
        .unwrap()
        .audit_trail(&*log, request)
        .await
        .unwrap();
    assert_eq!(answer.trail.events, 4);
    let shape: Vec<(usize, &str, &str)> = answer
        .trail
        .walk()
        .into_iter()
        .map(|(depth, e)| (depth, e.event_type.as_str(), e.stream_id.as_str()))
        .collect();
    assert_eq!(
        shape,
        vec![
            (0, "CustomerTurnRecorded", "conversation-c1"),
            (1, "EmotionAssessed", "conversation-c1"),
            (1, "HandedToHuman", "conversation-c1"),
            (2, "AgentChatTaken", "agent-a1"),
        ]
    );
    // The events are the log's own, payloads and all.
    assert_eq!(answer.trail.walk()[0].1.payload, json!({"text": "转人工"}));
    assert!(answer.caught_up.complete);
    assert_eq!(answer.caught_up.through, Some(taken.last_position.0));
    assert_eq!(answer.caught_up.head, Some(taken.last_position.0));

    // An event the read model has not read yet: the answer says the trail is incomplete.
    let released = append(
        &agent,
        NewEvent::new("AgentChatReleased", json!({}), assigner),
    )
    .await;
    let view = models.live(NAME).await.unwrap();
    let behind = view.audit_trail(&*log, request).await.unwrap();
    assert_eq!(behind.trail.events, 4);
    assert!(!behind.caught_up.complete, "{:?}", behind.caught_up);
    assert_eq!(behind.caught_up.through, Some(taken.last_position.0));
    assert_eq!(behind.caught_up.head, Some(released.last_position.0));

    // Followed live, like every read model, it catches up.
    let live = LiveProjections::spawn(log.clone(), store.clone(), audit_only);
    live.wait_for(released.last_position).await;
    live.shutdown().await;
    let view = models.live(NAME).await.unwrap();
    let caught = view.audit_trail(&*log, request).await.unwrap();
    assert_eq!(caught.trail.events, 5);
    assert!(caught.caught_up.complete);
    let unknown = view.audit_trail(&*log, Uuid::now_v7()).await.unwrap();
    assert_eq!(unknown.trail.events, 0);
    assert!(unknown.caught_up.complete);
}

/// A store an earlier kefu left (migrations 1 to 3: four indexes on the hot table, event ids
/// unique across the log), filled through its own append function, then opened by this build:
/// the event-id index is gone, the data is all there, and the audit read model built on it
/// answers every request as the old correlation index did.
#[tokio::test]
async fn an_old_postgres_store_is_migrated_in_place_and_keeps_every_audit_answer() {
    use kefu_eventlog::postgres::{PostgresConfig, PostgresLog};
    use kefu_eventlog::testing as pg;
    use kefu_projections::audit::causation_tree;
    use std::collections::BTreeMap;

    if !pg::available().await {
        return;
    }
    let schema = pg::fresh_schema();
    pg::create_store_at_version(&schema, 3).await;
    let client = pg::client().await;
    client
        .batch_execute(&format!("SET search_path TO {schema}"))
        .await
        .unwrap();
    // Twelve requests, each a root in a conversation, what the bot did about it, and what
    // the assigner did about that, across shared agent streams; some in two-event batches.
    let old_append = |stream: String, events: Vec<(Uuid, Uuid, Uuid)>| {
        let client = &client;
        async move {
            let n = events.len();
            let ids: Vec<Uuid> = events.iter().map(|e| e.0).collect();
            let correlations: Vec<Uuid> = events.iter().map(|e| e.1).collect();
            let causations: Vec<Uuid> = events.iter().map(|e| e.2).collect();
            client
                .query(
                    "SELECT * FROM kefu_append($1, -1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    &[
                        &stream,
                        &ids,
                        &vec!["Happened"; n],
                        &vec![1i32; n],
                        &vec![r#"{"n": 1}"#; n],
                        &vec!["system"; n],
                        &vec!["test"; n],
                        &correlations,
                        &causations,
                        &vec![None::<String>; n],
                    ],
                )
                .await
                .expect("the old append function");
        }
    };
    let mut requests = Vec::new();
    for r in 0..12u32 {
        let request = Uuid::now_v7();
        requests.push(request);
        let (root, bot, felt, taken) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        old_append(format!("conversation-c{r}"), vec![(root, request, request)]).await;
        old_append(
            format!("conversation-c{r}"),
            vec![(bot, request, root), (felt, request, root)],
        )
        .await;
        old_append(format!("agent-a{}", r % 3), vec![(taken, request, bot)]).await;
    }
    // The answers as the old store gave them: its correlation index, in position order.
    let mut before = BTreeMap::new();
    for request in &requests {
        let rows = client
            .query(
                "SELECT id FROM events WHERE correlation_id = $1 ORDER BY position",
                &[request],
            )
            .await
            .unwrap();
        let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(ids.len(), 4);
        before.insert(*request, ids);
    }

    let log = Arc::new(
        PostgresLog::open(PostgresConfig::new(pg::url()).with_schema(&schema))
            .await
            .expect("open and migrate the old store"),
    );
    let indexes: Vec<String> = client
        .query(
            "SELECT indexname::text FROM pg_indexes \
             WHERE schemaname = $1 AND tablename = 'events' ORDER BY 1",
            &[&schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(indexes, ["events_pkey", "events_stream_version_key"]);
    let all = log.read_all(Position::START, 1000).await.unwrap();
    assert_eq!(all.len(), 48, "every event is still there");

    let store = ReadStore::open_postgres(&pg::url(), Some(&schema))
        .await
        .unwrap();
    rebuild(&*log, &store, audit_only(), Until::default(), |_| {})
        .await
        .unwrap();
    let view = ReadModels::open(store)
        .await
        .unwrap()
        .live(NAME)
        .await
        .unwrap();
    for (request, ids) in &before {
        let answer = view.audit_trail(&*log, *request).await.unwrap();
        assert!(answer.caught_up.complete);
        let mut got: Vec<&kefu_eventlog::RecordedEvent> =
            answer.trail.walk().into_iter().map(|(_, e)| e).collect();
        got.sort_by_key(|e| e.position);
        assert_eq!(&got.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
        let scanned = all
            .iter()
            .filter(|e| e.metadata.correlation_id == *request)
            .cloned()
            .collect();
        assert_eq!(answer.trail, causation_tree(*request, scanned));
        assert_eq!(
            answer
                .trail
                .walk()
                .iter()
                .map(|(d, _)| *d)
                .collect::<Vec<_>>(),
            [0, 1, 2, 1]
        );
    }

    // Idempotency is per stream now: an id stored in one stream may be written to another.
    let reused = all[0].clone();
    let again = NewEvent::new(
        "Happened",
        json!({"n": 1}),
        Metadata::for_request(Actor::system("test"), Uuid::now_v7()),
    )
    .with_id(reused.id);
    log.append(
        &StreamId::new("conversation-elsewhere").unwrap(),
        ExpectedVersion::NoStream,
        vec![again],
    )
    .await
    .expect("an id of another stream");
    drop(log);
    pg::drop_schema(&schema).await;
}
