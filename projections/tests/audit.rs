//! The audit trail: one customer request followed through the bot, emotion and routing, across
//! streams, as a causation tree.

use kefu_eventlog::sqlite::{SqliteConfig, SqliteLog};
use kefu_eventlog::{
    Actor, ActorKind, EventLog, ExpectedVersion, Metadata, NewEvent, Position, StreamId,
};
use kefu_projections::audit::audit_trail;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn one_request_is_a_tree_of_causes_across_streams() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(SqliteConfig::new(dir.path().join("kefu.db")))
        .await
        .unwrap();
    let conversation = StreamId::new("conversation-c1").unwrap();
    let agent = StreamId::new("agent-a1").unwrap();
    let request = Uuid::now_v7();
    let append = |stream: &StreamId, event: NewEvent| {
        let log = &log;
        let stream = stream.clone();
        async move {
            log.append(&stream, ExpectedVersion::Any, vec![event])
                .await
                .unwrap();
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
    append(&agent, NewEvent::new("AgentChatTaken", json!({}), assigner)).await;

    let trail = audit_trail(&log, request).await.unwrap();
    assert_eq!(trail.events, 4);
    let shape: Vec<(usize, &str, &str)> = trail
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
    assert_eq!(audit_trail(&log, Uuid::now_v7()).await.unwrap().events, 0);
}
