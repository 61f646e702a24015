//! Events crossing the log boundary: stream names, encoding with schema versions, the upcaster
//! for old versions, and the published JSON Schemas.
//!
//! `schemas/events/` is generated from the event types. When this test reports it stale,
//! regenerate it with `KEFU_BLESS=1 cargo test -p kefu-domain --test events` and commit the
//! result with the change that caused it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kefu_domain::agent::{AgentDecider, AgentEvent};
use kefu_domain::conversation::{
    ConversationDecider, ConversationEvent, ConversationState, Survey, SurveyAnswered,
};
use kefu_domain::customer::{CustomerDecider, CustomerEvent};
use kefu_domain::ids::{ConversationId, QueueId, TicketId};
use kefu_domain::knowledge::{KnowledgeDecider, KnowledgeEvent};
use kefu_domain::probe::{ProbeDecider, ProbeEvent};
use kefu_domain::queue::{QueueDecider, QueueEvent};
use kefu_domain::switches::{SwitchBoardDecider, SwitchEvent};
use kefu_domain::ticket::{TicketDecider, TicketEvent};
use kefu_domain::upcast::stars_from_0_to_10;
use kefu_domain::{Decider, DomainError, DomainEvent, fold, schema};
use serde_json::{Value, json};
use uuid::Uuid;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn decode_stored(stored: &Value) -> Result<ConversationEvent, DomainError> {
    ConversationEvent::decode(
        stored["event_type"].as_str().expect("event_type"),
        u32::try_from(stored["schema_version"].as_u64().expect("schema_version")).unwrap(),
        stored["payload"].clone(),
    )
}

// ---- stream names ----

#[test]
fn each_stream_is_named_category_dash_id() {
    let id = Uuid::from_u128(0x0193_a1f2_7c4e_7d2a_9b1e_3f5a_6c7d_8e9f);
    let stream = ConversationDecider::stream_id(ConversationId::from(id));
    assert_eq!(stream, "conversation-0193a1f2-7c4e-7d2a-9b1e-3f5a6c7d8e9f");
    assert_eq!(
        ConversationDecider::id_of_stream(&stream),
        Some(ConversationId::from(id))
    );
    assert_eq!(QueueDecider::id_of_stream(&stream), None::<QueueId>);
    assert_eq!(
        TicketDecider::id_of_stream("ticket-not-a-uuid"),
        None::<TicketId>
    );
    let categories = [
        CustomerDecider::stream_id(id.into()),
        ConversationDecider::stream_id(id.into()),
        QueueDecider::stream_id(id.into()),
        AgentDecider::stream_id(id.into()),
        TicketDecider::stream_id(id.into()),
        KnowledgeDecider::stream_id(id.into()),
        SwitchBoardDecider::stream_id(id.into()),
        ProbeDecider::stream_id(id.into()),
    ]
    .map(|s| s.split_once('-').map(|(c, _)| c.to_owned()).unwrap());
    assert_eq!(
        categories,
        [
            "customer",
            "conversation",
            "queue",
            "agent",
            "ticket",
            "knowledge",
            "switches",
            "probe"
        ]
        .map(String::from)
    );
}

#[test]
fn event_type_names_are_unique_across_streams() {
    let all = [
        CustomerEvent::EVENT_TYPES,
        ConversationEvent::EVENT_TYPES,
        QueueEvent::EVENT_TYPES,
        AgentEvent::EVENT_TYPES,
        TicketEvent::EVENT_TYPES,
        KnowledgeEvent::EVENT_TYPES,
        SwitchEvent::EVENT_TYPES,
        ProbeEvent::EVENT_TYPES,
    ]
    .concat();
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "duplicate event type in {all:?}");
    assert_eq!(schema::event_schemas().len(), all.len());
}

// ---- encoding and versions ----

#[test]
fn encoding_moves_the_type_out_of_the_payload_and_back_on_decode() {
    let event = ConversationEvent::from(SurveyAnswered {
        score: 4,
        comment: None,
        legacy_score_0_to_10: None,
        at: "2025-03-03T09:00:00Z".parse().unwrap(),
    });
    let encoded = event.encode().unwrap();
    assert_eq!(encoded.event_type, "SurveyAnswered");
    assert_eq!(encoded.schema_version, 2);
    assert_eq!(
        encoded.payload,
        json!({ "score": 4, "at": "2025-03-03T09:00:00Z" })
    );
    let decoded =
        ConversationEvent::decode(encoded.event_type, encoded.schema_version, encoded.payload)
            .unwrap();
    assert_eq!(decoded, event);
}

#[test]
fn unknown_types_future_versions_and_malformed_payloads_are_refused() {
    let payload = json!({ "score": 4, "at": "2025-03-03T09:00:00Z" });
    assert!(matches!(
        ConversationEvent::decode("QueueDefined", 1, payload.clone()),
        Err(DomainError::UnknownEventType {
            category: "conversation",
            ..
        })
    ));
    assert!(matches!(
        ConversationEvent::decode("SurveyAnswered", 3, payload.clone()),
        Err(DomainError::UnsupportedSchemaVersion {
            version: 3,
            current: 2,
            ..
        })
    ));
    assert!(matches!(
        ConversationEvent::decode("SurveyAnswered", 0, payload),
        Err(DomainError::UnsupportedSchemaVersion { version: 0, .. })
    ));
    assert!(matches!(
        ConversationEvent::decode("SurveyAnswered", 2, json!({ "score": "five" })),
        Err(DomainError::MalformedEvent { version: 2, .. })
    ));
    assert!(matches!(
        ConversationEvent::decode("SurveyAnswered", 2, json!([4])),
        Err(DomainError::MalformedEvent { .. })
    ));
}

// ---- the upcaster ----

#[test]
fn a_v1_survey_answer_is_read_as_v2_stars_keeping_the_original_score() {
    let decoded = decode_stored(&fixture("SurveyAnswered.v1.json")).unwrap();
    let ConversationEvent::SurveyAnswered(answer) = decoded else {
        panic!("expected SurveyAnswered, got {decoded:?}");
    };
    assert_eq!(answer.score, 5);
    assert_eq!(answer.legacy_score_0_to_10, Some(9));
    assert_eq!(answer.comment.as_deref(), Some("问题解决了，客服很耐心"));
    // Re-encoding writes the current version, never v1 again.
    assert_eq!(
        ConversationEvent::from(answer)
            .encode()
            .unwrap()
            .schema_version,
        2
    );
}

#[test]
fn the_zero_to_ten_scale_maps_onto_five_stars_rounding_half_up() {
    let stars: Vec<u8> = (0..=10).map(stars_from_0_to_10).collect();
    assert_eq!(stars, vec![1, 1, 2, 2, 3, 3, 3, 4, 4, 5, 5]);
}

#[test]
fn a_v1_score_outside_zero_to_ten_is_malformed() {
    let mut stored = fixture("SurveyAnswered.v1.json");
    stored["payload"]["score"] = json!(11);
    assert!(matches!(
        decode_stored(&stored),
        Err(DomainError::MalformedEvent { version: 1, .. })
    ));
}

#[test]
fn a_stream_holding_a_v1_survey_still_loads() {
    let stream = [
        json!({ "event_type": "ConversationStarted", "schema_version": 1, "payload": {
            "conversation": "0193a1f2-7c4e-7d2a-9b1e-3f5a6c7d8e9f",
            "customer": "0193a1f2-0000-7000-8000-000000000001",
            "tier": "regular", "locale": "zh-CN", "channel": "app", "bot_enabled": true,
            "at": "2024-11-11T13:50:00Z" } }),
        json!({ "event_type": "ConversationClosed", "schema_version": 1, "payload": {
            "by": { "kind": "customer" }, "reason": "resolved", "at": "2024-11-11T14:00:00Z" } }),
        json!({ "event_type": "SurveyOffered", "schema_version": 1, "payload": {
            "at": "2024-11-11T14:00:01Z" } }),
        fixture("SurveyAnswered.v1.json"),
    ];
    let events: Vec<ConversationEvent> = stream
        .iter()
        .map(|stored| decode_stored(stored).unwrap())
        .collect();
    let ConversationState::Started(conversation) = fold::<ConversationDecider>(&events) else {
        panic!("the stream did not load");
    };
    assert!(matches!(
        conversation.survey,
        Survey::Answered { score: 5, .. }
    ));
}

// ---- published JSON Schemas ----

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/events")
}

#[test]
fn published_event_schemas_are_up_to_date() {
    let expected: BTreeMap<String, String> = schema::event_schemas()
        .iter()
        .map(|s| (schema::file_name(s), schema::file_contents(s)))
        .collect();
    let dir = schema_dir();
    if std::env::var_os("KEFU_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        for stale in json_files(&dir)
            .keys()
            .filter(|f| !expected.contains_key(*f))
        {
            std::fs::remove_file(dir.join(stale)).unwrap();
        }
        for (name, contents) in &expected {
            std::fs::write(dir.join(name), contents).unwrap();
        }
        return;
    }
    let actual = json_files(&dir);
    let mut problems = Vec::new();
    for (name, contents) in &expected {
        match actual.get(name) {
            None => problems.push(format!("missing {name}")),
            Some(found) if found != contents => problems.push(format!("stale {name}")),
            Some(_) => {}
        }
    }
    problems.extend(
        actual
            .keys()
            .filter(|f| !expected.contains_key(*f))
            .map(|f| format!("no longer an event type: {f}")),
    );
    assert!(
        problems.is_empty(),
        "schemas/events/ does not match the event types ({}); regenerate it with \
         `KEFU_BLESS=1 cargo test -p kefu-domain --test events`",
        problems.join(", ")
    );
}

#[test]
fn schemas_name_their_stream_and_version() {
    for s in schema::event_schemas() {
        assert_eq!(s.schema["x-kefu-stream-category"], json!(s.category));
        assert_eq!(s.schema["x-kefu-schema-version"], json!(s.schema_version));
        assert_eq!(s.schema["title"], json!(s.event_type));
    }
    let survey = schema::event_schemas()
        .into_iter()
        .find(|s| s.event_type == "SurveyAnswered")
        .unwrap();
    assert_eq!(survey.schema_version, 2);
}

fn json_files(dir: &Path) -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}
