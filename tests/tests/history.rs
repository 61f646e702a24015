//! The history generator: the same seed gives the same history, every event is one the
//! deciders accept and read back, the history looks like a help desk's, and it lands in a
//! real log in order, causes before their effects.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use kefu_domain::agent::{AgentDecider, AgentEvent, AgentState, AgentStatus};
use kefu_domain::conversation::{ConversationDecider, ConversationEvent, ConversationState};
use kefu_domain::customer::{CustomerDecider, CustomerEvent, CustomerState};
use kefu_domain::knowledge::{KnowledgeDecider, KnowledgeEvent, KnowledgeState};
use kefu_domain::queue::{QueueDecider, QueueEvent, QueueState};
use kefu_domain::ticket::{TicketDecider, TicketEvent, TicketState};
use kefu_domain::{Decider, DomainError, DomainEvent};
use kefu_eventlog::sqlite::{SqliteConfig, SqliteLog};
use kefu_eventlog::{
    ActorKind, EventLog, ExpectedVersion, NewEvent, Position, RecordedEvent, read_whole_stream,
};
use kefu_tests::history::{
    HistoryConfig, HistoryError, HistorySummary, PlannedAppend, caused_by, plan, write,
};
use uuid::Uuid;

/// A few hundred conversations over two days.
fn small_config() -> HistoryConfig {
    HistoryConfig::for_conversations(300).with_seed(7)
}

/// About 60,000 events, enough for every event type to occur.
fn medium_config() -> HistoryConfig {
    HistoryConfig::for_events(60_000).with_seed(11)
}

fn collect(config: &HistoryConfig) -> (Vec<PlannedAppend>, HistorySummary) {
    let mut plan = plan(config);
    let appends = plan
        .by_ref()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("the plan failed: {e}"));
    (appends, plan.summary())
}

fn small() -> &'static (Vec<PlannedAppend>, HistorySummary) {
    static SMALL: OnceLock<(Vec<PlannedAppend>, HistorySummary)> = OnceLock::new();
    SMALL.get_or_init(|| collect(&small_config()))
}

fn medium() -> &'static (Vec<PlannedAppend>, HistorySummary) {
    static MEDIUM: OnceLock<(Vec<PlannedAppend>, HistorySummary)> = OnceLock::new();
    MEDIUM.get_or_init(|| collect(&medium_config()))
}

fn events(appends: &[PlannedAppend]) -> impl Iterator<Item = (&PlannedAppend, &NewEvent)> {
    appends
        .iter()
        .flat_map(|a| a.events.iter().map(move |e| (a, e)))
}

/// Each stream's events in plan order.
fn by_stream(appends: &[PlannedAppend]) -> BTreeMap<String, Vec<&NewEvent>> {
    let mut streams: BTreeMap<String, Vec<&NewEvent>> = BTreeMap::new();
    for (append, event) in events(appends) {
        streams
            .entry(append.stream.to_string())
            .or_default()
            .push(event);
    }
    streams
}

fn decode_all<D: Decider>(events: &[&NewEvent]) -> Result<Vec<D::Event>, DomainError> {
    events
        .iter()
        .map(|e| D::Event::decode(&e.event_type, e.schema_version, e.payload.clone()))
        .collect()
}

/// Decodes a stream's events as the command service would, checks that encoding them again
/// gives the stored payloads, and folds them.
fn fold_stream<D: Decider>(events: &[&NewEvent]) -> D::State {
    let decoded =
        decode_all::<D>(events).unwrap_or_else(|e| panic!("a stored event does not decode: {e}"));
    for (event, stored) in decoded.iter().zip(events) {
        let again = event.encode().expect("a decoded event encodes");
        assert_eq!(again.event_type, stored.event_type);
        assert_eq!(again.schema_version, stored.schema_version);
        assert_eq!(
            again.payload, stored.payload,
            "{} changed on a round trip",
            stored.event_type
        );
    }
    kefu_domain::fold::<D>(&decoded)
}

fn all_event_types() -> Vec<&'static str> {
    [
        CustomerEvent::EVENT_TYPES,
        ConversationEvent::EVENT_TYPES,
        QueueEvent::EVENT_TYPES,
        AgentEvent::EVENT_TYPES,
        TicketEvent::EVENT_TYPES,
        KnowledgeEvent::EVENT_TYPES,
    ]
    .concat()
}

fn at_of(event: &NewEvent) -> DateTime<Utc> {
    let at = event.payload["at"]
        .as_str()
        .unwrap_or_else(|| panic!("{} has no time", event.event_type));
    at.parse().expect("an RFC 3339 time")
}

// ---- determinism ----

#[test]
fn the_same_seed_plans_the_same_history_byte_for_byte() {
    let (first, _) = small();
    let (again, _) = collect(&small_config());
    assert_eq!(first.len(), again.len());
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(a.stream, b.stream);
        assert_eq!(a.expected, b.expected);
        assert_eq!(a.at, b.at);
        assert_eq!(a.events.len(), b.events.len());
        for (x, y) in a.events.iter().zip(&b.events) {
            assert_eq!(x.id, y.id);
            assert_eq!(x.event_type, y.event_type);
            assert_eq!(x.schema_version, y.schema_version);
            assert_eq!(x.metadata, y.metadata);
            assert_eq!(
                serde_json::to_vec(&x.payload).unwrap(),
                serde_json::to_vec(&y.payload).unwrap()
            );
        }
    }
}

#[test]
fn another_seed_plans_another_history() {
    let (first, summary) = small();
    let (other, other_summary) = collect(&small_config().with_seed(8));
    let ids = |appends: &[PlannedAppend]| -> HashSet<Uuid> {
        events(appends).map(|(_, e)| e.id).collect()
    };
    assert!(
        ids(first).is_disjoint(&ids(&other)),
        "two seeds shared event ids"
    );
    assert_ne!(summary.by_event_type, other_summary.by_event_type);
    let texts = |appends: &[PlannedAppend]| -> Vec<String> {
        events(appends)
            .filter(|(_, e)| e.event_type == "CustomerTurnRecorded")
            .take(50)
            .map(|(_, e)| e.payload["text"].to_string())
            .collect()
    };
    assert_ne!(texts(first), texts(&other));
}

// ---- every event is a real one ----

#[test]
fn every_planned_stream_decodes_and_folds() {
    let (appends, summary) = small();
    let streams = by_stream(appends);
    assert_eq!(streams.len() as u64, summary.streams);
    let mut categories = BTreeSet::new();
    for (stream, events) in &streams {
        let category = stream.split_once('-').map(|(c, _)| c).unwrap_or_default();
        categories.insert(category.to_owned());
        let created = match category {
            "conversation" => matches!(
                fold_stream::<ConversationDecider>(events),
                ConversationState::Started(_)
            ),
            "customer" => matches!(
                fold_stream::<CustomerDecider>(events),
                CustomerState::Known(_)
            ),
            "queue" => !matches!(fold_stream::<QueueDecider>(events), QueueState::Undefined),
            "agent" => !matches!(
                fold_stream::<AgentDecider>(events),
                AgentState::Unregistered
            ),
            "ticket" => matches!(fold_stream::<TicketDecider>(events), TicketState::Opened(_)),
            "knowledge" => !matches!(
                fold_stream::<KnowledgeDecider>(events),
                KnowledgeState::Absent
            ),
            other => panic!("unexpected stream category {other:?}"),
        };
        assert!(created, "{stream} does not fold to an existing entity");
    }
    let expected: BTreeSet<String> = [
        "agent",
        "conversation",
        "customer",
        "knowledge",
        "queue",
        "ticket",
    ]
    .map(String::from)
    .into();
    assert_eq!(categories, expected);
}

#[test]
fn expected_versions_count_up_from_zero_in_every_stream() {
    let (appends, summary) = small();
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for append in appends {
        assert!(!append.events.is_empty());
        let next = match versions.get(append.stream.as_str()) {
            None => {
                assert_eq!(
                    append.expected,
                    ExpectedVersion::NoStream,
                    "{}'s first append",
                    append.stream
                );
                0
            }
            Some(&count) => {
                assert_eq!(
                    append.expected,
                    ExpectedVersion::Exact(count - 1),
                    "an append to {}",
                    append.stream
                );
                count
            }
        };
        versions.insert(append.stream.as_str(), next + append.events.len() as u64);
    }
    assert_eq!(versions.values().sum::<u64>(), summary.events);
    assert_eq!(appends.len() as u64, summary.appends);
}

#[test]
fn the_plan_runs_in_simulated_time_order() {
    let (appends, summary) = small();
    for pair in appends.windows(2) {
        assert!(
            pair[0].at <= pair[1].at,
            "{} after {}",
            pair[1].at,
            pair[0].at
        );
    }
    for (stream, events) in by_stream(appends) {
        for pair in events.windows(2) {
            assert!(
                at_of(pair[0]) <= at_of(pair[1]),
                "{stream}: {} goes back in time",
                pair[1].event_type
            );
        }
    }
    let start = small_config().start;
    assert!(
        summary.first_at < Some(start),
        "set-up happens before the traffic"
    );
    assert!(summary.last_at > Some(small_config().end()));
}

// ---- what the history looks like ----

#[test]
fn the_medium_history_is_plausible() {
    let (appends, s) = medium();
    let config = medium_config();
    assert_eq!(s.conversations, config.conversations);
    assert_eq!(s.events, events(appends).count() as u64);
    assert!(
        s.events >= 60_000 && s.events < 66_000,
        "for_events(60000) gave {} events",
        s.events
    );
    let share = |part: u64| part as f64 / s.conversations as f64;
    assert!(
        (0.5..0.8).contains(&s.containment_rate()),
        "containment {}",
        s.containment_rate()
    );
    assert!(
        (0.4..0.7).contains(&s.survey_response_rate()),
        "survey response {}",
        s.survey_response_rate()
    );
    assert!(
        (0.02..0.07).contains(&share(s.tickets)),
        "tickets {}",
        s.tickets
    );
    assert!(
        (0.25..0.42).contains(&share(s.orders_attributed)),
        "attributed {}",
        s.orders_attributed
    );
    assert!(
        (0.01..0.06).contains(&share(s.reopened)),
        "reopened {}",
        s.reopened
    );
    assert!(
        s.abandoned_in_queue > 0 && (s.abandoned_in_queue as f64) < 0.15 * s.handed_over as f64
    );
    assert!(
        s.max_wait_secs > 60,
        "nobody ever waited: capacity was never tight"
    );
    // Every handed-over conversation that was not abandoned reached an agent.
    let assigned = by_stream(appends)
        .values()
        .filter(|events| events.iter().any(|e| e.event_type == "AgentAssigned"))
        .count() as u64;
    assert!(assigned + s.abandoned_in_queue <= s.handed_over + s.reopened);
    assert!(assigned as f64 > 0.8 * s.handed_over as f64);
}

#[test]
fn traffic_has_daily_peaks_and_quiet_nights() {
    let (appends, _) = medium();
    let mut per_local_hour = [0u32; 24];
    for (append, event) in events(appends) {
        if event.event_type == "ConversationStarted" {
            let hour = (append.at.timestamp().rem_euclid(86_400) / 3_600 + 8) % 24;
            per_local_hour[hour as usize] += 1;
        }
    }
    let night = per_local_hour[2] + per_local_hour[3] + per_local_hour[4];
    let morning = per_local_hour[9] + per_local_hour[10] + per_local_hour[11];
    let evening = per_local_hour[19] + per_local_hour[20] + per_local_hour[21];
    assert!(morning > 5 * night, "{per_local_hour:?}");
    assert!(evening > 5 * night, "{per_local_hour:?}");
}

/// Every event type of the domain occurs; so do every hand-off reason, close reason and
/// channel. (None is left out: see the module docs of `kefu_tests::history`.)
#[test]
fn every_event_type_occurs_in_a_medium_history() {
    let (appends, summary) = medium();
    let missing: Vec<&str> = all_event_types()
        .into_iter()
        .filter(|t| !summary.by_event_type.contains_key(*t))
        .collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
    let values = |event_type: &str, field: &str| -> BTreeSet<String> {
        events(appends)
            .filter(|(_, e)| e.event_type == event_type)
            .map(|(_, e)| e.payload[field].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let set =
        |items: &[&str]| -> BTreeSet<String> { items.iter().map(|s| s.to_string()).collect() };
    assert_eq!(
        values("HandedToHuman", "reason"),
        set(&[
            "bot_switched_off",
            "customer_asked",
            "low_confidence",
            "negative_emotion",
            "vip"
        ])
    );
    assert_eq!(
        values("ConversationClosed", "reason"),
        set(&[
            "customer_left",
            "idle_timeout",
            "moved_to_ticket",
            "resolved",
            "spam"
        ])
    );
    assert_eq!(
        values("ConversationStarted", "channel"),
        set(&["app", "ivr", "pc", "web"])
    );
}

#[test]
fn agents_never_hold_more_chats_than_their_limit() {
    let (appends, _) = medium();
    let mut at_limit = 0;
    for (stream, events) in by_stream(appends) {
        if !stream.starts_with("agent-") {
            continue;
        }
        let decoded = decode_all::<AgentDecider>(&events).expect("agent events decode");
        let mut state = AgentDecider::initial_state();
        for event in &decoded {
            state = AgentDecider::evolve(state, event);
            let (AgentState::Registered(agent) | AgentState::Retired(agent)) = &state else {
                panic!("{stream} is not registered");
            };
            assert!(
                agent.active() <= agent.max_concurrent,
                "{stream} holds {} chats, limit {}",
                agent.active(),
                agent.max_concurrent
            );
            if agent.status == AgentStatus::Offline {
                assert_eq!(agent.active(), 0, "{stream} went offline holding chats");
            }
            if let AgentEvent::AgentChatTaken(taken) = event {
                assert!(taken.active <= agent.max_concurrent);
                if taken.active == agent.max_concurrent {
                    at_limit += 1;
                }
            }
        }
    }
    assert!(
        at_limit > 0,
        "no agent was ever full, so the limit was never tested"
    );
}

#[test]
fn causation_chains_resolve_within_their_correlation() {
    let (appends, _) = medium();
    let mut seen: HashMap<Uuid, Uuid> = HashMap::new();
    let mut roots = 0;
    let mut reactions = 0;
    for (append, event) in events(appends) {
        let m = &event.metadata;
        if m.causation_id == m.correlation_id {
            // A request: its id is no event's id.
            assert!(
                !seen.contains_key(&m.causation_id),
                "{} reuses an event id as a request id",
                event.event_type
            );
            assert_ne!(
                m.actor.kind,
                ActorKind::Bot,
                "the bot only reacts: {}",
                event.event_type
            );
            roots += 1;
        } else {
            let cause = seen.get(&m.causation_id).unwrap_or_else(|| {
                panic!(
                    "{} in {} names a cause that is not an earlier event",
                    event.event_type, append.stream
                )
            });
            assert_eq!(
                *cause, m.correlation_id,
                "{} left its cause's correlation",
                event.event_type
            );
            reactions += 1;
        }
        seen.insert(event.id, m.correlation_id);
    }
    assert!(
        roots > 0 && reactions > roots / 2,
        "{roots} requests, {reactions} reactions"
    );
}

/// Business times obey causation: an effect never happens before what caused it (a seat
/// taken before the queueing that called for it, a close before the event it reacts to).
#[test]
fn no_effect_is_dated_before_its_cause() {
    for (appends, _) in [small(), medium()] {
        let mut at: HashMap<Uuid, (&str, DateTime<Utc>)> = HashMap::new();
        let mut checked = 0;
        let mut late = Vec::new();
        for (append, event) in events(appends) {
            let m = &event.metadata;
            let own = event.payload["at"].as_str().map(|_| at_of(event));
            if let (Some((cause_type, cause_at)), Some(own)) = (at.get(&m.causation_id), own) {
                checked += 1;
                if own < *cause_at {
                    late.push(format!(
                        "{} in {} at {own} is caused by {cause_type} at {cause_at}",
                        event.event_type, append.stream
                    ));
                }
            }
            // An event without a time of its own happens when its request arrives.
            at.insert(event.id, (&event.event_type, own.unwrap_or(append.at)));
        }
        assert!(checked > 100, "only {checked} effects had a dated cause");
        assert!(
            late.is_empty(),
            "{} effects before their causes, e.g.:\n{}",
            late.len(),
            late[..late.len().min(10)].join("\n")
        );
    }
}

#[test]
fn reactions_are_made_by_the_workers_that_own_them() {
    let (appends, _) = medium();
    let mut actors: BTreeMap<&str, BTreeSet<(&str, String)>> = BTreeMap::new();
    for (_, event) in events(appends) {
        let actor = &event.metadata.actor;
        let id = match actor.kind {
            ActorKind::Customer | ActorKind::Agent => String::new(),
            _ => actor.id.clone(),
        };
        actors
            .entry(event.event_type.as_str())
            .or_default()
            .insert((actor.kind.as_str(), id));
    }
    let only = |t: &str, kind: ActorKind, id: &str| {
        assert_eq!(
            actors[t],
            BTreeSet::from([(kind.as_str(), id.to_owned())]),
            "{t}"
        );
    };
    only("BotTurnRecorded", ActorKind::Bot, "jimi");
    only("EmotionAssessed", ActorKind::System, "emotion-model");
    only("ScenarioPredicted", ActorKind::System, "triage");
    only("RoutingDecided", ActorKind::System, "router");
    only("AgentAssigned", ActorKind::System, "assigner");
    only("AgentChatReleased", ActorKind::System, "assigner");
    only("CustomerTurnRecorded", ActorKind::Customer, "");
    only("AgentTurnRecorded", ActorKind::Agent, "");
    only("ConversationIdleTimedOut", ActorKind::System, "idle-timer");
    only("SurveyOffered", ActorKind::System, "survey");
    only("OrderAttributed", ActorKind::System, "attribution");
}

#[test]
fn caused_by_links_a_planned_event_as_the_cause() {
    let (appends, _) = small();
    let cause = &appends[0].events[0];
    let metadata = caused_by(kefu_eventlog::Actor::system("test"), cause);
    assert_eq!(metadata.causation_id, cause.id);
    assert_eq!(metadata.correlation_id, cause.metadata.correlation_id);
    assert_eq!(metadata.trace_id, cause.metadata.trace_id);
}

#[test]
fn for_events_sizes_the_history_near_the_target() {
    let (_, summary) = medium();
    let target = 60_000;
    assert!(summary.events >= target, "{} < {target}", summary.events);
    assert!(
        summary.events as f64 <= target as f64 * 1.1,
        "{}",
        summary.events
    );
}

#[test]
fn an_invalid_config_is_refused() {
    let mut config = small_config();
    config.agents = 3;
    let mut plan = plan(&config);
    assert!(matches!(
        plan.next(),
        Some(Err(HistoryError::InvalidConfig(_)))
    ));
    assert!(plan.next().is_none());
}

// ---- on a real log ----

/// SQLite syncs every commit; on a RAM disk that costs nothing, which keeps these tests
/// fast where one exists.
fn scratch_dir() -> tempfile::TempDir {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix("kefu-history-")
        .tempdir_in(base)
        .expect("a scratch directory")
}

async fn sqlite(dir: &tempfile::TempDir) -> SqliteLog {
    SqliteLog::open(SqliteConfig::new(dir.path().join("kefu.db")))
        .await
        .expect("the SQLite log opens")
}

async fn read_everything(log: &SqliteLog) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut from = Position::START;
    loop {
        let page = log.read_all(from, 1_000).await.expect("read_all");
        let Some(last) = page.last() else { return all };
        from = last.position.next();
        all.extend(page);
    }
}

#[tokio::test]
async fn writing_to_sqlite_stores_exactly_the_plan_in_plan_order() {
    let dir = scratch_dir();
    let log = sqlite(&dir).await;
    let (appends, planned) = small();
    let written = write(&log, &small_config(), 1)
        .await
        .expect("the history is written");
    assert_eq!(&written, planned);
    let stored = read_everything(&log).await;
    assert_eq!(stored.len() as u64, planned.events);
    for ((_, event), recorded) in events(appends).zip(&stored) {
        assert_eq!(recorded.id, event.id);
        assert_eq!(recorded.event_type, event.event_type);
        assert_eq!(recorded.payload, event.payload);
        assert_eq!(recorded.metadata, event.metadata);
    }
    let some_conversation = &appends
        .iter()
        .find(|a| a.stream.category() == "conversation")
        .expect("a conversation")
        .stream;
    let versions: Vec<u64> = read_whole_stream(&log, some_conversation)
        .await
        .expect("the stream reads")
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, (0..versions.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn concurrent_writing_keeps_each_stream_in_order_and_causes_first() {
    let dir = scratch_dir();
    let log = sqlite(&dir).await;
    let (appends, planned) = small();
    let written = write(&log, &small_config(), 8)
        .await
        .expect("the history is written");
    assert_eq!(written.events, planned.events);
    let stored = read_everything(&log).await;
    assert_eq!(stored.len() as u64, planned.events);
    let position: HashMap<Uuid, Position> = stored.iter().map(|e| (e.id, e.position)).collect();
    let planned_streams = by_stream(appends);
    let mut stored_streams: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
    for event in &stored {
        stored_streams
            .entry(event.stream_id.to_string())
            .or_default()
            .push(event.id);
        if let Some(cause) = position.get(&event.metadata.causation_id) {
            assert!(
                *cause < event.position,
                "{} was stored before its cause",
                event.event_type
            );
        }
    }
    for (stream, events) in planned_streams {
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        assert_eq!(
            stored_streams.get(&stream),
            Some(&ids),
            "{stream} is out of order"
        );
    }
}
