//! The audit trail: one customer request followed through the bot, emotion and routing, across
//! streams, as a causation tree, from the audit read model; and what the answer says while
//! that read model has not read the whole log.

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

