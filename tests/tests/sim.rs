//! The deterministic simulation of the desk (`kefu_tests::sim`): many seeds with faults, each
//! run checked against the desk's invariants; one seed replayed byte for byte; and the checks
//! themselves shown to fail on a log that breaks them.
//!
//! - `KEFU_SIM_SEED=<n>` runs seed `n` alone (the command a failure prints).
//! - `KEFU_SIM_SEEDS=<n>` runs seeds `0..n` (200 by default); the nightly run is
//!   `KEFU_SIM_SEEDS=10000 cargo test --release -p kefu-tests --test sim`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kefu_desk::CommandService;
use kefu_desk::{Desk, QueueDefinition};
use kefu_domain::DomainEvent;
use kefu_domain::agent::{AgentChatTaken, AgentEvent, AgentStatus};
use kefu_domain::common::{BusinessLine, Channel};
use kefu_domain::conversation::{
    AgentAssigned, ConversationEvent, Features, HandoffReason, RoutingReason,
};
use kefu_domain::ids::{AgentId, Category, CustomerId, MessageId, QueueId, Skill};
use kefu_domain::queue::{OpeningHours, SlaTargets};
use kefu_eventlog::memory::MemoryLog;
use kefu_eventlog::{Actor, ActorKind, EventLog, ExpectedVersion, Metadata, NewEvent, StreamId};
use kefu_tests::sim::{self, SimConfig, Violation};
use uuid::Uuid;

/// The seeds this run covers: the one asked for, or `0..KEFU_SIM_SEEDS` (200 by default).
fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var(sim::SEED_ENV) {
        return vec![seed.trim().parse().expect("KEFU_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var(sim::SEEDS_ENV)
        .ok()
        .map(|n| n.trim().parse().expect("KEFU_SIM_SEEDS is a number"))
        .unwrap_or(200);
    (0..n).collect()
}

/// Every seed with faults (store errors, latency, workers killed between appends): the run
/// ends settled and its log keeps every invariant. Seeds are shared out over the cores, each
/// run on a runtime of its own, so the order they run in changes nothing.
#[test]
fn every_seed_keeps_the_desks_invariants_under_faults() {
    let seeds = seeds();
    let config = SimConfig::small();
    let next = AtomicU64::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut failed = Vec::new();
                    let mut totals = sim::Tally::default();
                    let mut types: BTreeMap<String, usize> = BTreeMap::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst) as usize;
                        let Some(&seed) = seeds.get(i) else {
                            return (failed, totals, types);
                        };
                        match sim::run_blocking(seed, &config) {
                            Ok(run) => {
                                let violations = run.violations();
                                if !violations.is_empty() {
                                    failed.push(format!(
                                        "seed {seed}: {} violations, e.g. {:#?}\n  replay: {}",
                                        violations.len(),
                                        &violations[..violations.len().min(3)],
                                        sim::replay_command(seed)
                                    ));
                                }
                                add(&mut totals, &run.tally);
                                for e in &run.events {
                                    *types.entry(e.event_type.clone()).or_default() += 1;
                                }
                            }
                            Err(e) => failed.push(format!(
                                "seed {seed}: the run failed: {e}\n  replay: {}",
                                sim::replay_command(seed)
                            )),
                        }
                    }
                })
            })
            .collect();
        let mut failures = Vec::new();
        let mut totals = sim::Tally::default();
        let mut types: BTreeMap<String, usize> = BTreeMap::new();
        for w in workers {
            let (failed, tally, seen) = w.join().expect("a simulation thread panicked");
            failures.extend(failed);
            add(&mut totals, &tally);
            for (t, n) in seen {
                *types.entry(t).or_default() += n;
            }
        }
        eprintln!("{} seeds: {totals:?}\nevents: {types:?}", seeds.len());
        // The faults and the desk's whole round must have happened for the runs to prove
        // anything.
        if seeds.len() >= 50 {
            assert!(
                totals.restarts > 0 && totals.failed_batches > 0,
                "{totals:?}"
            );
            assert!(totals.injected > 0 && totals.refused > 0, "{totals:?}");
            for t in [
                "BotTurnRecorded",
                "EmotionAssessed",
                "HandedToHuman",
                "ScenarioPredicted",
                "RoutingDecided",
                "ConversationQueued",
                "AgentChatTaken",
                "AgentAssigned",
                "AgentTurnRecorded",
                "ConversationTransferred",
                "ConversationClosed",
                "AgentChatReleased",
                "SurveyOffered",
                "SurveyAnswered",
                "KnowledgeEntryCreated",
                "KnowledgeEntryEdited",
                "KnowledgeEntryRetired",
            ] {
                assert!(types.contains_key(t), "no {t} in any run: {types:?}");
            }
        }
        failures
    });
    for f in &failures {
        eprintln!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed; each line above says how to replay it",
        failures.len(),
        seeds.len()
    );
}

fn add(totals: &mut sim::Tally, t: &sim::Tally) {
    totals.requests += t.requests;
    totals.refused += t.refused;
    totals.failed_requests += t.failed_requests;
    totals.batches += t.batches;
    totals.failed_batches += t.failed_batches;
    totals.restarts += t.restarts;
    totals.seats_freed += t.seats_freed;
    totals.injected += t.injected;
}

/// One seed is one run: the same seed twice writes the same log, byte for byte; another seed
/// another log.
#[test]
fn a_seed_replays_its_run_byte_for_byte() {
    // A longer run than CI's many, so that much happens in it.
    let config = SimConfig {
        customers: 8,
        steps: 300,
        ..SimConfig::small()
    };
    let seed = seeds()[0];
    let first = sim::run_blocking(seed, &config).expect("first run");
    let again = sim::run_blocking(seed, &config).expect("second run");
    assert!(first.events.len() > 150, "{} events", first.events.len());
    assert_eq!(first.tally, again.tally);
    assert!(
        first.log_bytes() == again.log_bytes(),
        "seed {seed} wrote two different logs; replay: {}",
        sim::replay_command(seed)
    );
    let other = sim::run_blocking(seed + 1, &config).expect("another seed");
    assert_ne!(first.log_bytes(), other.log_bytes());
}

fn request() -> Metadata {
    Metadata::for_request(Actor::new(ActorKind::System, "test"), Uuid::now_v7())
}

/// A hand-made log that breaks the invariants: the checks name every break.
#[tokio::test]
async fn the_checks_catch_a_log_that_breaks_the_invariants() {
    let log = Arc::new(MemoryLog::new());
    let desk = Desk::new(CommandService::new(log.clone()));
    let queue = desk
        .define_queue(
            QueueDefinition {
                name: "售后".into(),
                business_line: BusinessLine::SelfOperated,
                categories: [Category::new("returns")].into(),
                skills: [Skill::new("after-sales")].into(),
                priority: 3,
                sla: SlaTargets {
                    first_response_secs: 300,
                    resolution_secs: 3600,
                },
                hours: OpeningHours::Always,
            },
            &request(),
        )
        .await
        .unwrap()
        .value;
    let (a, b) = (
        AgentId::from_uuid(Uuid::now_v7()),
        AgentId::from_uuid(Uuid::now_v7()),
    );
    for agent in [a, b] {
        desk.register_agent(
            agent,
            agent.to_string(),
            [Skill::new("after-sales")].into(),
            1,
            &request(),
        )
        .await
        .unwrap();
        desk.set_agent_status(agent, AgentStatus::Online, &request())
            .await
            .unwrap();
    }
    // A chat served by the book: handed over, routed, queued, seated with agent A.
    let served = start(&desk).await;
    desk.customer_message(
        served,
        MessageId::from_uuid(Uuid::now_v7()),
        "转人工".into(),
        &request(),
    )
    .await
    .unwrap();
    desk.hand_off(served, HandoffReason::CustomerAsked, &request())
        .await
        .unwrap();
    route(&desk, served, queue).await;
    desk.assign(served, a, &request()).await.unwrap();
    assert_eq!(sim::check(&log.snapshot()), [], "a log written by the book");

    // Then what no desk may write: the chat given to B while A holds it, ...
    let conversation_stream = StreamId::new(format!("conversation-{served}")).unwrap();
    let forged = ConversationEvent::AgentAssigned(AgentAssigned {
        agent: b,
        queue,
        waited_secs: 0,
        at: chrono::Utc::now(),
    });
    append(&log, &conversation_stream, &forged, request()).await;
    // ... a second seat for A, whose one seat is taken, ...
    let agent_stream = StreamId::new(format!("agent-{a}")).unwrap();
    let second_seat = AgentEvent::AgentChatTaken(AgentChatTaken {
        conversation: start(&desk).await,
        active: 2,
        at: chrono::Utc::now(),
    });
    append(&log, &agent_stream, &second_seat, request()).await;
    // ... a customer turn the bot never answered, in a chat still with the bot, ...
    let ignored = start(&desk).await;
    desk.customer_message(
        ignored,
        MessageId::from_uuid(Uuid::now_v7()),
        "怎么退货？".into(),
        &request(),
    )
    .await
    .unwrap();
    // ... and a reaction to an event the log does not hold.
    let orphan = Metadata {
        causation_id: Uuid::now_v7(),
        ..request()
    };
    let stray = AgentEvent::AgentChatTaken(AgentChatTaken {
        conversation: ignored,
        active: 1,
        at: chrono::Utc::now(),
    });
    append(
        &log,
        &StreamId::new(format!("agent-{b}")).unwrap(),
        &stray,
        orphan,
    )
    .await;

    let found = sim::check(&log.snapshot());
    let kinds: Vec<&str> = found
        .iter()
        .map(|v| match v {
            Violation::DoubleAssignment { .. } => "double assignment",
            Violation::OverCapacity { .. } => "over capacity",
            Violation::Unanswered { .. } => "unanswered",
            Violation::CauseMissing { .. } => "cause missing",
            Violation::BeforeItsCause { .. } => "before its cause",
            Violation::Repeated(_) => "repeated",
            Violation::SeatLeftBehind { .. } => "seat left behind",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "double assignment",
            "over capacity",
            "unanswered",
            "cause missing",
            // A's seat for the chat now (by the forged event) with B.
            "seat left behind"
        ],
        "{found:#?}"
    );
    let Violation::DoubleAssignment { holder, to, .. } = &found[0] else {
        unreachable!()
    };
    assert_eq!((*holder, *to), (a, b));
}

/// A reaction dated before its cause, and one recorded twice for its cause, are named too.
#[tokio::test]
async fn the_checks_catch_a_reaction_before_its_cause_or_twice() {
    let log = Arc::new(MemoryLog::new());
    let desk = Desk::new(CommandService::new(log.clone()));
    let conversation = start(&desk).await;
    let turn = desk
        .customer_message(
            conversation,
            MessageId::from_uuid(Uuid::now_v7()),
            "在吗".into(),
            &request(),
        )
        .await
        .unwrap()
        .position
        .unwrap();
    let cause = log.read_all(turn, 1).await.unwrap().remove(0);
    let stream = cause.stream_id.clone();
    // The bot's hand-off for that turn, dated an hour before the turn, written twice.
    let early = ConversationEvent::HandedToHuman(kefu_domain::conversation::HandedToHuman {
        reason: HandoffReason::LowConfidence,
        at: cause.recorded_at - chrono::Duration::hours(1),
    });
    let reaction = Metadata::caused_by(Actor::new(ActorKind::Bot, "jimi"), &cause);
    append(&log, &stream, &early, reaction.clone()).await;
    append(&log, &stream, &early, reaction).await;
    let found = sim::check(&log.snapshot());
    assert!(
        found
            .iter()
            .any(|v| matches!(v, Violation::BeforeItsCause { event_type, .. } if event_type == "HandedToHuman")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|v| matches!(v, Violation::Repeated(r) if r.times == 2)),
        "{found:#?}"
    );
}

async fn start(desk: &Desk<MemoryLog>) -> kefu_domain::ids::ConversationId {
    desk.start_conversation(
        CustomerId::from_uuid(Uuid::now_v7()),
        None,
        Channel::App,
        None,
        true,
        &request(),
    )
    .await
    .unwrap()
    .value
}

async fn route(
    desk: &Desk<MemoryLog>,
    conversation: kefu_domain::ids::ConversationId,
    queue: QueueId,
) {
    desk.route(
        conversation,
        queue,
        vec![RoutingReason::Fallback],
        "manual",
        Features::new(),
        &request(),
    )
    .await
    .unwrap();
}

/// Appends a domain event as is, past the deciders: what a buggy writer would do.
async fn append<E: DomainEvent>(log: &MemoryLog, stream: &StreamId, event: &E, meta: Metadata) {
    let encoded = event.encode().unwrap();
    log.append(
        stream,
        ExpectedVersion::Any,
        vec![
            NewEvent::new(encoded.event_type, encoded.payload, meta)
                .with_schema_version(encoded.schema_version),
        ],
    )
    .await
    .unwrap();
}
