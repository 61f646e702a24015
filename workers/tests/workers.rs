//! Workers on a real log and real read models (the embedded stores): two instances of the same
//! worker never act twice on one event, and a worker restarted from its checkpoint (or with
//! none) loses and doubles nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use kefu_desk::CommandService;
use kefu_desk::{Desk, MANUAL_ROUTING, QueueDefinition};
use kefu_domain::Decider;
use kefu_domain::agent::{AgentCommand, AgentDecider, AgentStatus};
use kefu_domain::common::{BusinessLine, Channel, Party};
use kefu_domain::conversation::{CloseReason, ConversationDecider, HandoffReason, RoutingReason};
use kefu_domain::ids::{AgentId, Category, ConversationId, CustomerId, QueueId, Skill};
use kefu_domain::queue::{OpeningHours, SlaTargets};
use kefu_eventlog::postgres::PostgresLog;
use kefu_eventlog::sqlite::{SqliteConfig, SqliteLog};
use kefu_eventlog::{Actor, ActorKind, EventLog, Metadata, Position, RecordedEvent, Subscription};
use kefu_projections::{LiveProjections, ReadModels, ReadStore};
use kefu_workers::assigner::{Assigner, OrphanedSeats};
use kefu_workers::runtime::Sweep;
use kefu_workers::runtime::{self, Checkpoints, Start};
use kefu_workers::surveys::SurveyOffers;
use tokio::sync::watch;
use uuid::Uuid;

struct World<L = SqliteLog> {
    _dir: Option<tempfile::TempDir>,
    log: Arc<L>,
    read: ReadStore,
    desk: Desk<L>,
    projections: LiveProjections,
}

fn world_of<L: EventLog>(log: L, read: ReadStore, dir: Option<tempfile::TempDir>) -> World<L> {
    let log = Arc::new(log);
    let projections = LiveProjections::spawn(log.clone(), read.clone(), kefu_projections::all);
    World {
        desk: Desk::new(CommandService::new(log.clone())),
        log,
        read,
        projections,
        _dir: dir,
    }
}

/// The embedded stores.
async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(SqliteConfig::new(dir.path().join("kefu.db")))
        .await
        .unwrap();
    let read = ReadStore::open_sqlite(&dir.path().join("kefu.read.db")).unwrap();
    world_of(log, read, Some(dir))
}

/// PostgreSQL, a fresh schema for the log and the read models; None when the test skips.
async fn pg_world() -> Option<World<PostgresLog>> {
    let config = kefu_eventlog::testing::fresh_config().await?;
    let schema = config.schema.clone();
    let log = PostgresLog::open(config).await.unwrap();
    let read = ReadStore::open_postgres(&kefu_eventlog::testing::url(), schema.as_deref())
        .await
        .unwrap();
    Some(world_of(log, read, None))
}

fn meta() -> Metadata {
    Metadata::for_request(Actor::new(ActorKind::System, "test"), Uuid::now_v7())
}

/// A queue, `agents` online agents with `seats` each, and `waiting` conversations queued.
async fn busy_day(w: &World, agents: usize, seats: u32, waiting: usize) -> Vec<AgentId> {
    busy_day_on(w, agents, seats, waiting).await
}

/// A queue with `sla`, `agents` online agents with `seats` each, and `waiting` conversations
/// queued in it.
async fn busy_queue<L: EventLog>(
    w: &World<L>,
    sla: SlaTargets,
    agents: usize,
    seats: u32,
    waiting: usize,
) -> (QueueId, Vec<AgentId>) {
    let queue = w
        .desk
        .define_queue(
            QueueDefinition {
                name: "after-sales".into(),
                business_line: BusinessLine::SelfOperated,
                categories: BTreeSet::from([Category::new("logistics")]),
                skills: BTreeSet::from([Skill::new("after-sales")]),
                priority: 3,
                sla,
                hours: OpeningHours::Always,
            },
            &meta(),
        )
        .await
        .unwrap()
        .value;
    let mut ids = Vec::new();
    for i in 0..agents {
        let agent = AgentId::from_uuid(Uuid::now_v7());
        w.desk
            .register_agent(
                agent,
                format!("agent {i}"),
                BTreeSet::from([Skill::new("after-sales")]),
                seats,
                &meta(),
            )
            .await
            .unwrap();
        w.desk
            .set_agent_status(agent, AgentStatus::Online, &meta())
            .await
            .unwrap();
        ids.push(agent);
    }
    for _ in 0..waiting {
        let c = new_conversation(w).await;
        w.desk
            .hand_off(c, HandoffReason::CustomerAsked, &meta())
            .await
            .unwrap();
        w.desk
            .route(
                c,
                queue,
                vec![RoutingReason::Fallback],
                MANUAL_ROUTING,
                Default::default(),
                &meta(),
            )
            .await
            .unwrap();
    }
    (queue, ids)
}

/// A conversation a new customer starts in the app, with the bot.
async fn new_conversation<L: EventLog>(w: &World<L>) -> ConversationId {
    w.desk
        .start_conversation(
            CustomerId::from_uuid(Uuid::now_v7()),
            None,
            Channel::App,
            None,
            true,
            &meta(),
        )
        .await
        .unwrap()
        .value
}

/// A new conversation and a customer's first message in it; the events the message wrote.
async fn customer_writes(w: &World, text: &str) -> (ConversationId, Vec<RecordedEvent>) {
    let c = new_conversation(w).await;
    let before = w.log.head().await.unwrap().unwrap();
    w.desk
        .customer_message(
            c,
            kefu_domain::ids::MessageId::from_uuid(Uuid::now_v7()),
            text.into(),
            &meta(),
        )
        .await
        .unwrap();
    (c, w.log.read_all(Position(before.0 + 1), 10).await.unwrap())
}

/// The log's settled prefix once it covers everything committed so far. On PostgreSQL a
/// transaction held open anywhere in the cluster (another test's) holds the prefix back
/// (the settled-prefix invariant of `read_all`, ARCHITECTURE.md), so `head()` alone may stop short of what this
/// test has just written; a fence appended now lands above all of it.
async fn settled<L: EventLog>(log: &Arc<L>) -> Position {
    let stream = kefu_eventlog::StreamId::new(format!("fence-{}", Uuid::now_v7())).unwrap();
    let fence = log
        .append(
            &stream,
            kefu_eventlog::ExpectedVersion::NoStream,
            vec![kefu_eventlog::NewEvent::new(
                "Fence",
                serde_json::json!({}),
                meta(),
            )],
        )
        .await
        .unwrap();
    for _ in 0..3000 {
        if let Some(head) = log.head().await.unwrap()
            && head >= fence.last_position
        {
            return head;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!(
        "the log's settled prefix never reached {:?}",
        fence.last_position
    );
}

async fn everything<L: EventLog>(log: &Arc<L>) -> Vec<RecordedEvent> {
    let head = settled(log).await;
    let mut sub = Subscription::new(log.clone(), Position::START);
    let mut out = Vec::new();
    while out.last().is_none_or(|e: &RecordedEvent| e.position < head) {
        out.push(sub.next().await.unwrap());
    }
    out
}

/// Two assigners plan the same rounds from the same read model and race to carry them out:
/// every conversation is assigned at most once, nobody beyond their seats, and together they
/// fill every seat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_assigners_never_assign_twice_or_overfill() {
    let w = world().await;
    let agents = busy_day(&w, 3, 2, 10).await;
    let models = ReadModels::open(w.read.clone()).await.unwrap();
    let head = w.log.head().await.unwrap().unwrap();
    let mut one = Assigner::new(w.desk.clone(), models.clone(), w.projections.positions());
    let mut two = Assigner::new(w.desk.clone(), models, w.projections.positions());
    let (a, b) = tokio::join!(one.round(Some(head)), two.round(Some(head)));
    let (a, b) = (a.unwrap(), b.unwrap());
    let assigned = a.assigned.len() + b.assigned.len();
    assert_eq!(assigned, 6, "3 agents x 2 seats: {a:?} {b:?}");

    let events = everything(&w.log).await;
    let mut per_conversation: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_agent: BTreeMap<String, usize> = BTreeMap::new();
    for e in events.iter().filter(|e| e.event_type == "AgentAssigned") {
        *per_conversation.entry(e.stream_id.as_str()).or_default() += 1;
        *per_agent
            .entry(e.payload["agent"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_conversation.len(), 6);
    assert!(
        per_conversation.values().all(|n| *n == 1),
        "{per_conversation:?}"
    );
    for agent in &agents {
        assert_eq!(per_agent.get(&agent.to_string()), Some(&2), "{per_agent:?}");
        assert_eq!(one.seats_of(*agent).await.unwrap(), 2);
    }
    // Every assignment answers its conversation's queueing: same correlation, that event as
    // the cause.
    for e in events.iter().filter(|e| e.event_type == "AgentAssigned") {
        let queued = events
            .iter()
            .find(|q| q.stream_id == e.stream_id && q.event_type == "ConversationQueued")
            .unwrap();
        assert_eq!(e.metadata.causation_id, queued.id);
        assert_eq!(e.metadata.correlation_id, queued.metadata.correlation_id);
    }
    w.projections.shutdown().await;
}

/// Two survey workers follow the same closes; each conversation gets one offer. Restarted
/// with no checkpoint at all, they replay every close and offer nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_survey_workers_offer_once_and_a_replay_offers_nothing() {
    let w = world().await;
    let agents = busy_day(&w, 1, 5, 5).await;
    let mut conversations = Vec::new();
    let models = ReadModels::open(w.read.clone()).await.unwrap();
    let mut assigner = Assigner::new(w.desk.clone(), models, w.projections.positions());
    let head = w.log.head().await.unwrap().unwrap();
    for (c, agent) in assigner.round(Some(head)).await.unwrap().assigned {
        assert_eq!(agent, agents[0]);
        w.desk
            .close(c, Party::Agent { agent }, CloseReason::Resolved, &meta())
            .await
            .unwrap();
        conversations.push(c);
    }
    assert_eq!(conversations.len(), 5);
    let last = w.log.head().await.unwrap().unwrap();

    let offers = |events: &[RecordedEvent]| -> BTreeMap<ConversationId, usize> {
        let mut n = BTreeMap::new();
        for e in events.iter().filter(|e| e.event_type == "SurveyOffered") {
            let id = e.stream_id.as_str().trim_start_matches("conversation-");
            *n.entry(ConversationId::from_uuid(id.parse().unwrap()))
                .or_default() += 1;
        }
        n
    };
    let run_two = || {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let checkpoints = w.read.clone();
            let (log, desk, stopped) = (w.log.clone(), w.desk.clone(), stopped.clone());
            tasks.push(tokio::spawn(async move {
                let checkpoints = Checkpoints::open(checkpoints).await.unwrap();
                runtime::run(
                    log,
                    checkpoints,
                    SurveyOffers::new(desk),
                    Start::Beginning,
                    stopped,
                )
                .await;
            }));
        }
        (stop, tasks)
    };

    // Wait (for a condition, not a time) until every close has its offer.
    let (stop, tasks) = run_two();
    let mut sub = Subscription::new(w.log.clone(), Position(last.0 + 1));
    let mut offered = BTreeSet::new();
    while offered.len() < conversations.len() {
        let e = sub.next().await.unwrap();
        if e.event_type == "SurveyOffered" {
            offered.insert(e.stream_id.clone());
        }
    }
    let checkpoints = Checkpoints::open(w.read.clone()).await.unwrap();
    stop.send(true).unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let counts = offers(&everything(&w.log).await);
    assert_eq!(counts.len(), 5);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");

    // A replay from the beginning (the checkpoint lost) finds every offer made.
    checkpoints.save("surveys", Position::START).await.unwrap();
    let head_before = w.log.head().await.unwrap();
    let (stop, tasks) = run_two();
    // Wait until the replay has passed every close: its checkpoint moves past the last one.
    loop {
        let at = checkpoints
            .get("surveys")
            .await
            .unwrap()
            .unwrap_or(Position::START);
        if at > last {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        w.log.head().await.unwrap(),
        head_before,
        "the replay wrote nothing"
    );
    w.projections.shutdown().await;
}

/// Two bots react to the same customer turn: one assessment, one reply. Reacting again (a
/// replay after a crash) adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bots_answer_a_turn_once() {
    use kefu_eventlog::{StreamId, read_whole_stream};
    use kefu_workers::bot::{BotWorker, seed_demo_kb};
    use kefu_workers::runtime::Reactor;

    let w = world().await;
    assert_eq!(seed_demo_kb(&w.desk, 0).await.unwrap(), 340);
    let (mut one, _) = BotWorker::start(w.desk.clone(), Default::default())
        .await
        .unwrap();
    let (mut two, _) = BotWorker::start(w.desk.clone(), Default::default())
        .await
        .unwrap();
    assert_eq!((one.entries(), two.entries()), (340, 340));
    assert_eq!(
        seed_demo_kb(&w.desk, one.entries()).await.unwrap(),
        0,
        "seeded once"
    );

    let (c, turn) = customer_writes(&w, "How do I return a pair of shoes that don't fit?").await;
    let (a, b) = tokio::join!(one.react(&turn), two.react(&turn));
    a.unwrap();
    b.unwrap();
    let stream = StreamId::new(format!("conversation-{c}")).unwrap();
    let count =
        |events: &[RecordedEvent], t: &str| events.iter().filter(|e| e.event_type == t).count();
    let events = read_whole_stream(&*w.log, &stream).await.unwrap();
    assert_eq!(count(&events, "EmotionAssessed"), 1);
    assert_eq!(count(&events, "BotTurnRecorded"), 1);
    let reply = events
        .iter()
        .find(|e| e.event_type == "BotTurnRecorded")
        .unwrap();
    let customer = events
        .iter()
        .find(|e| e.event_type == "CustomerTurnRecorded")
        .unwrap();
    assert_eq!(
        reply.metadata.causation_id, customer.id,
        "the reply answers the turn"
    );
    assert_eq!(
        reply.metadata.correlation_id,
        customer.metadata.correlation_id
    );

    one.react(&turn).await.unwrap();
    assert_eq!(
        read_whole_stream(&*w.log, &stream).await.unwrap().len(),
        events.len()
    );
    w.projections.shutdown().await;
}

/// A bot given labelled customer questions fits its confidence on them: told its ranking is
/// wrong on each of the KB's own questions (each labelled with the next entry), it stops
/// trusting its rankings and answers fewer of the questions customers write than the bot
/// fitted on the KB's paraphrases (near-exact matches it still answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_fitted_on_labelled_questions_answers_by_that_fit() {
    use kefu_workers::bot::{BotWorker, seed_demo_kb};
    use kefu_workers::runtime::Reactor;

    let w = world().await;
    seed_demo_kb(&w.desk, 0).await.unwrap();
    let kb = kefu_bot::kb::parse(kefu_bot::kb::DEMO_KB).unwrap();
    let labelled: Vec<(String, String)> = kb
        .iter()
        .zip(kb.iter().cycle().skip(1))
        .map(|(e, next)| (e.question.clone(), next.id.clone()))
        .collect();
    let asked: Vec<String> = include_str!("../../bot/data/faq-queries.jsonl")
        .lines()
        .take(120)
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let (mut plain, _) = BotWorker::start(w.desk.clone(), Default::default())
        .await
        .unwrap();
    let (fitted, _) = BotWorker::start(w.desk.clone(), Default::default())
        .await
        .unwrap();
    let mut fitted = fitted.with_calibration(labelled);
    let mut answered = Vec::new();
    for bot in [&mut plain, &mut fitted] {
        let mut n = 0;
        for question in &asked {
            let (c, turn) = customer_writes(&w, question).await;
            bot.react(&turn).await.unwrap();
            let stream = kefu_eventlog::StreamId::new(format!("conversation-{c}")).unwrap();
            let events = kefu_eventlog::read_whole_stream(&*w.log, &stream)
                .await
                .unwrap();
            n +=
                usize::from(events.iter().any(|e| {
                    e.event_type == "BotTurnRecorded" && e.payload.get("answer").is_some()
                }));
        }
        answered.push(n);
    }
    assert!(
        answered[1] < answered[0],
        "answered of {}: fitted on labelled questions {}, on paraphrases {}",
        asked.len(),
        answered[1],
        answered[0]
    );
    w.projections.shutdown().await;
}

/// A typed request for a person hands over at once with reason `customer_asked`, whatever the
/// FAQ would have offered and even on the conversation's first turn; "我要投诉" said later in
/// a conversation about a parcel goes to the complaints team, not the logistics one. One
/// furious turn hands over too (negative emotion); a neutral question is answered with no
/// words of comfort.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_who_ask_for_a_person_get_one_and_complaints_reach_the_complaints_team() {
    use kefu_eventlog::{StreamId, read_whole_stream};
    use kefu_workers::bot::{BotWorker, seed_demo_kb};
    use kefu_workers::gateway::OrderGateway;
    use kefu_workers::router::Router;
    use kefu_workers::runtime::Reactor;

    let w = world().await;
    seed_demo_kb(&w.desk, 0).await.unwrap();
    let queue = async |name: &str, skill: &str| {
        w.desk
            .define_queue(
                QueueDefinition {
                    name: name.into(),
                    business_line: BusinessLine::SelfOperated,
                    categories: BTreeSet::from([Category::new("phones")]),
                    skills: BTreeSet::from([Skill::new(skill)]),
                    priority: 3,
                    sla: SlaTargets {
                        first_response_secs: 60,
                        resolution_secs: 3600,
                    },
                    hours: OpeningHours::Always,
                },
                &meta(),
            )
            .await
            .unwrap()
            .value
    };
    let logistics = queue("物流", "logistics").await;
    let complaints = queue("投诉", "complaints").await;
    let (mut bot, _) = BotWorker::start(w.desk.clone(), Default::default())
        .await
        .unwrap();
    let mut router = Router::new(
        w.desk.clone(),
        ReadModels::open(w.read.clone()).await.unwrap(),
        OrderGateway::new(
            w.desk.commands().clone(),
            kefu_eventlog::faults::Faults::new("order gateway"),
        ),
    )
    .unwrap();
    // The customer writes each line in turn; the bot and the router react to what each wrote.
    let talk =
        async |bot: &mut BotWorker<SqliteLog>, router: &mut Router<SqliteLog>, lines: &[&str]| {
            let c = new_conversation(&w).await;
            for line in lines {
                let before = w.log.head().await.unwrap().unwrap();
                w.desk
                    .customer_message(
                        c,
                        kefu_domain::ids::MessageId::from_uuid(Uuid::now_v7()),
                        (*line).into(),
                        &meta(),
                    )
                    .await
                    .unwrap();
                let turn = w.log.read_all(before.next(), 100).await.unwrap();
                router.react(&turn).await.unwrap();
                bot.react(&turn).await.unwrap();
                let reaction = w
                    .log
                    .read_all(turn.last().unwrap().position.next(), 100)
                    .await
                    .unwrap();
                caught_up(&w).await;
                router.react(&reaction).await.unwrap();
            }
            let stream = StreamId::new(format!("conversation-{c}")).unwrap();
            read_whole_stream(&*w.log, &stream).await.unwrap()
        };
    let handed = |events: &[RecordedEvent]| {
        events
            .iter()
            .find(|e| e.event_type == "HandedToHuman")
            .map(|e| e.payload["reason"].as_str().unwrap().to_owned())
    };
    let bot_said = |events: &[RecordedEvent]| {
        events
            .iter()
            .filter(|e| e.event_type == "BotTurnRecorded")
            .map(|e| e.payload["text"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };

    for line in [
        "转人工",
        "人工客服",
        "找真人",
        "转人公！！",
        "I want a human",
        "let me talk to a real person",
        "agent please",
    ] {
        let events = talk(&mut bot, &mut router, &[line]).await;
        assert_eq!(handed(&events).as_deref(), Some("customer_asked"), "{line}");
        let said = bot_said(&events);
        assert_eq!(said.len(), 1, "{line}: {said:?}");
        assert!(
            !said[0].contains('1') && !said[0].contains("抱歉") && !said[0].contains("sorry"),
            "no list of choices, no apology: {line}: {said:?}"
        );
    }

    let events = talk(&mut bot, &mut router, &["我的快递到哪了", "我要投诉"]).await;
    assert_eq!(handed(&events).as_deref(), Some("customer_asked"));
    let queued = events
        .iter()
        .find(|e| e.event_type == "ConversationQueued")
        .expect("routed");
    assert_eq!(
        queued.payload["queue"],
        complaints.to_string(),
        "{queued:?}"
    );
    let routed = events
        .iter()
        .find(|e| e.event_type == "RoutingDecided")
        .expect("a routing decision");
    assert!(
        routed.payload["reasons"]
            .to_string()
            .contains("customer_asked_complaint"),
        "{routed:?}"
    );

    let events = talk(&mut bot, &mut router, &["转人工"]).await;
    let queued = events
        .iter()
        .find(|e| e.event_type == "ConversationQueued")
        .expect("routed");
    assert_ne!(
        queued.payload["queue"],
        complaints.to_string(),
        "only a complaint goes there"
    );

    let events = talk(
        &mut bot,
        &mut router,
        &["你们这什么破服务！！！快递一个星期了还没到，打客服电话也没人接，气死我了！！！"],
    )
    .await;
    assert_eq!(
        handed(&events).as_deref(),
        Some("negative_emotion"),
        "one furious turn"
    );

    let events = talk(&mut bot, &mut router, &["怎么修改收货地址？"]).await;
    assert_eq!(handed(&events), None);
    let said = bot_said(&events);
    assert!(
        !said[0].contains("抱歉") && !said[0].contains("别着急"),
        "a neutral question gets no comfort: {said:?}"
    );
    let _ = logistics;
    w.projections.shutdown().await;
}

/// An idle sweep closes what nobody has written in for the timeout (freeing the agent's
/// seat), leaves what is fresh, and a second sweep closes nothing more. Time is the desk's
/// clock, set ahead: nothing waits for time to pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_sweep_closes_idle_conversations_once() {
    use kefu_workers::idle::IdleTimeout;

    let w = world().await;
    let agents = busy_day(&w, 1, 5, 3).await;
    let models = ReadModels::open(w.read.clone()).await.unwrap();
    let mut assigner = Assigner::new(w.desk.clone(), models.clone(), w.projections.positions());
    let head = w.log.head().await.unwrap().unwrap();
    assert_eq!(assigner.round(Some(head)).await.unwrap().assigned.len(), 3);

    // Half an hour later by the idle worker's clock, everything is idle...
    let later = Desk::new(CommandService::new(w.log.clone())).with_clock(Arc::new(|| {
        chrono::Utc::now() + chrono::Duration::minutes(31)
    }));
    let idle = IdleTimeout::new(later.clone(), models, 30 * 60).unwrap();
    // ...except a conversation started "now" by its clock, which is fresh.
    later
        .start_conversation(
            CustomerId::from_uuid(Uuid::now_v7()),
            None,
            Channel::Web,
            None,
            true,
            &meta(),
        )
        .await
        .unwrap();
    let head = w.log.head().await.unwrap().unwrap();
    w.projections.wait_for(head).await;
    assert_eq!(idle.sweep().await.unwrap(), 3);
    assert_eq!(
        assigner.seats_of(agents[0]).await.unwrap(),
        0,
        "seats freed"
    );
    let head = w.log.head().await.unwrap().unwrap();
    w.projections.wait_for(head).await;
    assert_eq!(idle.sweep().await.unwrap(), 0, "closed once");
    let events = everything(&w.log).await;
    let timed_out = events
        .iter()
        .filter(|e| e.event_type == "ConversationIdleTimedOut")
        .count();
    assert_eq!(timed_out, 3);
    assert!(
        IdleTimeout::new(
            w.desk.clone(),
            ReadModels::open(w.read.clone()).await.unwrap(),
            5
        )
        .is_err()
    );
    w.projections.shutdown().await;
}

/// Each degradation switch, flipped while customers write: the bot stops assessing moods
/// (emotion off), answers in retrieval order without claiming confidence (ranker off), hands
/// everyone to humans (bot off), and is itself again when they are back on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_degrade_the_bot_and_it_recovers() {
    use kefu_domain::switches::Switch;
    use kefu_eventlog::{StreamId, read_whole_stream};
    use kefu_workers::bot::{BotWorker, seed_demo_kb};
    use kefu_workers::runtime::Reactor;

    let w = world().await;
    seed_demo_kb(&w.desk, 0).await.unwrap();
    let (mut bot, _) = BotWorker::start(w.desk.clone(), Default::default())
        .await
        .unwrap();
    // One customer turn in a new conversation; what the bot recorded in reply.
    let turn = async |bot: &mut BotWorker<SqliteLog>| {
        let (c, events) = customer_writes(&w, "运费是怎么收取的？太慢了!!!").await;
        bot.react(&events).await.unwrap();
        let stream = StreamId::new(format!("conversation-{c}")).unwrap();
        read_whole_stream(&*w.log, &stream)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.version > 1)
            .map(|e| (e.event_type.clone(), e.payload))
            .collect::<Vec<_>>()
    };
    let types =
        |r: &[(String, serde_json::Value)]| r.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>();
    let flip = async |s: Switch, on: bool| {
        w.desk
            .set_switch(s, on, "drill".into(), &meta())
            .await
            .unwrap();
    };

    let normal = turn(&mut bot).await;
    assert_eq!(
        types(&normal)[..2],
        ["EmotionAssessed", "BotTurnRecorded"],
        "{normal:?}"
    );

    flip(Switch::Emotion, false).await;
    let no_emotion = turn(&mut bot).await;
    assert_eq!(types(&no_emotion), ["BotTurnRecorded"], "{no_emotion:?}");

    flip(Switch::Ranker, false).await;
    let no_ranker = turn(&mut bot).await;
    let reply = &no_ranker[0].1;
    assert!(
        reply["answer"].is_null(),
        "no confidence to answer on: {reply}"
    );
    let scores: Vec<f64> = reply["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|p| p[0] >= p[1]) && !scores.is_empty(),
        "{reply}"
    );

    flip(Switch::Bot, false).await;
    let no_bot = turn(&mut bot).await;
    assert_eq!(types(&no_bot), ["HandedToHuman"], "{no_bot:?}");
    assert_eq!(no_bot[0].1["reason"], "bot_switched_off");

    for s in Switch::ALL {
        flip(s, true).await;
    }
    let recovered = turn(&mut bot).await;
    assert_eq!(
        types(&recovered)[..2],
        ["EmotionAssessed", "BotTurnRecorded"],
        "{recovered:?}"
    );
    assert!(w.desk.switchboard().await.unwrap().off.is_empty());
    w.projections.shutdown().await;
}

// ---- SLA timers and survey reminders ----

/// A desk whose clock stands `secs` after `base`, moved by the test (no sleeps).
fn clocked<L: EventLog>(
    w: &World<L>,
    base: chrono::DateTime<chrono::Utc>,
) -> (Desk<L>, Arc<AtomicI64>) {
    let offset = Arc::new(AtomicI64::new(0));
    let at = offset.clone();
    let desk = Desk::new(CommandService::new(w.log.clone())).with_clock(Arc::new(move || {
        base + chrono::Duration::seconds(at.load(Ordering::SeqCst))
    }));
    (desk, offset)
}

async fn caught_up<L: EventLog>(w: &World<L>) {
    let head = settled(&w.log).await;
    w.projections.wait_for(head).await;
}

fn of_type<'a>(events: &'a [RecordedEvent], stream: &str, t: &str) -> Vec<&'a RecordedEvent> {
    events
        .iter()
        .filter(|e| e.stream_id.as_str() == stream && e.event_type == t)
        .collect()
}

/// A slow agent's conversation is warned of at 80 % of the first-response target, breached
/// and escalated at it (each caused by the queueing, in its correlation); a fast agent's gets
/// nothing; a new worker instance (a restart) warns nobody twice; two instances sweeping at
/// once record each event once; the waiting conversation moves up its queue.
async fn slow_agents_are_warned_breached_and_escalated<L: EventLog>(w: World<L>) {
    use kefu_workers::sla::{SlaSweep, SlaTimers};

    // Targets long enough that the test's own running time never moves a step.
    let sla = SlaTargets {
        first_response_secs: 600,
        resolution_secs: 6000,
    };
    let (queue, agents) = busy_queue(&w, sla, 1, 2, 3).await;
    let models = ReadModels::open(w.read.clone()).await.unwrap();
    let mut assigner = Assigner::new(w.desk.clone(), models.clone(), w.projections.positions());
    let head = settled(&w.log).await;
    let assigned = assigner.round(Some(head)).await.unwrap().assigned;
    assert_eq!(assigned.len(), 2);
    let (fast, slow) = (assigned[0].0, assigned[1].0);
    w.desk
        .agent_message(
            fast,
            agents[0],
            kefu_domain::ids::MessageId::from_uuid(Uuid::now_v7()),
            "您好，我来帮您查一下。".into(),
            &meta(),
        )
        .await
        .unwrap();
    w.desk
        .close(
            fast,
            Party::Agent { agent: agents[0] },
            CloseReason::Resolved,
            &meta(),
        )
        .await
        .unwrap();
    caught_up(&w).await;

    let (desk, offset) = clocked(&w, chrono::Utc::now());
    let one = SlaTimers::new(desk.clone(), models.clone(), 0.8).unwrap();
    let two = SlaTimers::new(desk.clone(), models.clone(), 0.8).unwrap();
    assert!(SlaTimers::new(desk.clone(), models.clone(), 1.0).is_err());

    assert_eq!(
        one.sweep_once().await.unwrap(),
        SlaSweep::default(),
        "nothing due yet"
    );
    // 500 s in: 83 % of the first-response target for the slow one and the one waiting.
    offset.store(500, Ordering::SeqCst);
    let (a, b) = tokio::join!(one.sweep_once(), two.sweep_once());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.warned + b.warned, 2, "{a:?} {b:?}");
    assert_eq!(a.breached + b.breached, 0);
    caught_up(&w).await;
    // A restarted worker (a new instance, the same store) finds nothing more to say.
    let restarted = SlaTimers::new(desk.clone(), models.clone(), 0.8).unwrap();
    assert_eq!(restarted.sweep_once().await.unwrap(), SlaSweep::default());

    // 601 s in: the target has passed unmet.
    offset.store(601, Ordering::SeqCst);
    let (a, b) = tokio::join!(one.sweep_once(), two.sweep_once());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        (a.warned + b.warned, a.breached + b.breached),
        (0, 2),
        "{a:?} {b:?}"
    );
    caught_up(&w).await;
    assert_eq!(restarted.sweep_once().await.unwrap(), SlaSweep::default());

    let events = everything(&w.log).await;
    let fast_stream = format!("conversation-{fast}");
    for t in ["SlaWarned", "SlaBreached", "ConversationEscalated"] {
        assert!(
            of_type(&events, &fast_stream, t).is_empty(),
            "the fast agent got {t}"
        );
    }
    let slow_stream = format!("conversation-{slow}");
    let queued = of_type(&events, &slow_stream, "ConversationQueued")[0];
    let mut order = Vec::new();
    for t in ["SlaWarned", "SlaBreached", "ConversationEscalated"] {
        let found = of_type(&events, &slow_stream, t);
        assert_eq!(found.len(), 1, "{t} once: {found:?}");
        let e = found[0];
        assert_eq!(e.payload["kind"], "first_response");
        assert_eq!(e.payload["queue"], queue.to_string());
        assert_eq!(
            e.metadata.causation_id, queued.id,
            "{t} answers the queueing"
        );
        assert_eq!(e.metadata.correlation_id, queued.metadata.correlation_id);
        order.push(e.position);
    }
    assert!(
        order.windows(2).all(|p| p[0] < p[1]),
        "warning, breach, escalation"
    );
    let escalated = of_type(&events, &slow_stream, "ConversationEscalated")[0];
    assert_eq!(escalated.payload["from_priority"], 3);
    assert_eq!(escalated.payload["to_priority"], 2);

    // The one still waiting was escalated too, and its queue serves it sooner.
    let view = models.live(kefu_projections::queues::NAME).await.unwrap();
    let waiting = view
        .waiting(
            Some(&queue.to_string()),
            chrono::Utc::now().timestamp_millis(),
        )
        .await
        .unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].entry.priority, 2);
    let counts = |t: &str| events.iter().filter(|e| e.event_type == t).count();
    assert_eq!(
        (
            counts("SlaWarned"),
            counts("SlaBreached"),
            counts("ConversationEscalated")
        ),
        (2, 2, 2)
    );
    // The statistics count the breaches by queue.
    let stats = models.live(kefu_projections::stats::NAME).await.unwrap();
    let rows = stats
        .stats(
            &kefu_projections::stats::StatsFilter::default(),
            kefu_projections::stats::StatsGroup::Queue,
            chrono::Duration::zero(),
        )
        .await
        .unwrap();
    let row = rows
        .iter()
        .find(|r| r.key.as_deref() == Some(queue.to_string().as_str()))
        .unwrap();
    assert_eq!(
        (row.first_response_breaches, row.resolution_breaches),
        (2, 0)
    );
    w.projections.shutdown().await;
}

/// One reminder for an unanswered survey after the delay, none for an answered one, none
/// before the delay; two instances at once remind once, a restart adds nothing.
async fn an_unanswered_survey_is_reminded_of_once<L: EventLog>(w: World<L>) {
    use kefu_workers::runtime::Sweep;
    use kefu_workers::surveys::SurveyReminders;

    let agents = busy_day_on(&w, 1, 2, 2).await;
    let models = ReadModels::open(w.read.clone()).await.unwrap();
    let mut assigner = Assigner::new(w.desk.clone(), models.clone(), w.projections.positions());
    let head = settled(&w.log).await;
    let assigned = assigner.round(Some(head)).await.unwrap().assigned;
    assert_eq!(assigned.len(), 2);
    for (c, _) in &assigned {
        w.desk
            .close(
                *c,
                Party::Agent { agent: agents[0] },
                CloseReason::Resolved,
                &meta(),
            )
            .await
            .unwrap();
        w.desk.offer_survey(*c, &meta()).await.unwrap();
    }
    let (answered, silent) = (assigned[0].0, assigned[1].0);
    w.desk
        .answer_survey(answered, 5, None, &meta())
        .await
        .unwrap();
    caught_up(&w).await;

    let day = 24 * 3600;
    let (desk, offset) = clocked(&w, chrono::Utc::now());
    let one = SurveyReminders::new(desk.clone(), models.clone(), day).unwrap();
    let two = SurveyReminders::new(desk.clone(), models.clone(), day).unwrap();
    assert!(SurveyReminders::new(desk.clone(), models.clone(), 5).is_err());
    assert_eq!(one.sweep().await.unwrap(), 0, "not yet");
    offset.store(i64::from(day) + 60, Ordering::SeqCst);
    let (a, b) = tokio::join!(one.sweep(), two.sweep());
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    caught_up(&w).await;
    let restarted = SurveyReminders::new(desk, models, day).unwrap();
    assert_eq!(restarted.sweep().await.unwrap(), 0);

    let events = everything(&w.log).await;
    assert!(
        of_type(
            &events,
            &format!("conversation-{answered}"),
            "SurveyReminded"
        )
        .is_empty()
    );
    let stream = format!("conversation-{silent}");
    let reminded = of_type(&events, &stream, "SurveyReminded");
    assert_eq!(reminded.len(), 1);
    let offered = of_type(&events, &stream, "SurveyOffered")[0];
    assert_eq!(reminded[0].metadata.causation_id, offered.id);
    assert_eq!(
        reminded[0].metadata.correlation_id,
        offered.metadata.correlation_id
    );
    w.projections.shutdown().await;
}

async fn busy_day_on<L: EventLog>(
    w: &World<L>,
    agents: usize,
    seats: u32,
    waiting: usize,
) -> Vec<AgentId> {
    let sla = SlaTargets {
        first_response_secs: 60,
        resolution_secs: 600,
    };
    busy_queue(w, sla, agents, seats, waiting).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_timers_on_sqlite() {
    slow_agents_are_warned_breached_and_escalated(world().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_timers_on_postgres() {
    if let Some(w) = pg_world().await {
        slow_agents_are_warned_breached_and_escalated(w).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survey_reminders_on_sqlite() {
    an_unanswered_survey_is_reminded_of_once(world().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survey_reminders_on_postgres() {
    if let Some(w) = pg_world().await {
        an_unanswered_survey_is_reminded_of_once(w).await;
    }
}

/// An assigner that died between taking a seat and recording the assignment leaves the seat
/// taken. The seat sweep leaves it while the chat still waits (an assignment may be on its
/// way) and frees it once the chat is given to someone else, caused by that assignment; two
/// sweepers free it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_left_by_a_dead_assigner_is_freed_once_its_chat_is_elsewhere() {
    let w = world().await;
    let agents = busy_day(&w, 2, 2, 1).await;
    let (a, b) = (agents[0], agents[1]);
    let events = everything(&w.log).await;
    let queued = events
        .iter()
        .find(|e| e.event_type == "ConversationQueued")
        .unwrap();
    let chat = ConversationDecider::id_of_stream(queued.stream_id.as_str()).unwrap();
    // The dead assigner's half: a's seat taken, no assignment recorded.
    w.desk
        .commands()
        .execute::<AgentDecider>(
            a,
            AgentCommand::TakeChat {
                conversation: chat,
                at: w.desk.now(),
            },
            &meta(),
        )
        .await
        .unwrap();
    let models = ReadModels::open(w.read.clone()).await.unwrap();
    let sweep = OrphanedSeats::new(w.desk.clone(), models.clone());
    let seats = Assigner::new(w.desk.clone(), models.clone(), w.projections.positions());
    caught_up(&w).await;
    assert_eq!(sweep.sweep().await.unwrap(), 0, "the chat still waits");
    assert_eq!(seats.seats_of(a).await.unwrap(), 1);

    w.desk.assign(chat, b, &meta()).await.unwrap();
    caught_up(&w).await;
    let other = OrphanedSeats::new(w.desk.clone(), models);
    let (one, two) = tokio::join!(sweep.sweep(), other.sweep());
    assert_eq!(one.unwrap() + two.unwrap(), 1, "freed once");
    assert_eq!(seats.seats_of(a).await.unwrap(), 0);
    assert_eq!(seats.seats_of(b).await.unwrap(), 1, "b's seat is in use");
    let events = everything(&w.log).await;
    let released: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "AgentChatReleased")
        .collect();
    assert_eq!(released.len(), 1);
    let cause = events
        .iter()
        .find(|e| e.id == released[0].metadata.causation_id)
        .unwrap();
    assert_eq!(cause.event_type, "AgentAssigned");
    assert_eq!(cause.stream_id, queued.stream_id);
    assert_eq!(
        released[0].metadata.correlation_id,
        cause.metadata.correlation_id
    );
    caught_up(&w).await;
    assert_eq!(sweep.sweep().await.unwrap(), 0, "nothing left to free");
    w.projections.shutdown().await;
}

/// A close whose seat release was lost (the close landed, the release did not) frees the seat
/// as soon as the assigner sees the close, caused by it, not at the next sweep; seeing the
/// close again frees nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_frees_its_seat_when_the_release_was_lost() {
    use kefu_domain::conversation::ConversationCommand as Cmd;
    use kefu_workers::runtime::Reactor;

    let w = world().await;
    let agents = busy_day(&w, 1, 1, 1).await;
    let a = agents[0];
    let events = everything(&w.log).await;
    let queued = events
        .iter()
        .find(|e| e.event_type == "ConversationQueued")
        .unwrap();
    let chat = ConversationDecider::id_of_stream(queued.stream_id.as_str()).unwrap();
    w.desk.assign(chat, a, &meta()).await.unwrap();
    // The close alone, as when the desk's release after it failed.
    let before = w.log.head().await.unwrap().unwrap();
    w.desk
        .commands()
        .execute::<ConversationDecider>(
            chat,
            Cmd::Close {
                by: Party::Agent { agent: a },
                reason: CloseReason::Resolved,
                at: w.desk.now(),
            },
            &meta(),
        )
        .await
        .unwrap();
    let models = ReadModels::open(w.read.clone()).await.unwrap();
    let mut assigner = Assigner::new(w.desk.clone(), models, w.projections.positions());
    assert_eq!(
        assigner.seats_of(a).await.unwrap(),
        1,
        "held after the close"
    );
    let close = w.log.read_all(before.next(), 10).await.unwrap();
    assert_eq!(close[0].event_type, "ConversationClosed");
    assigner.react(&close).await.unwrap();
    assert_eq!(assigner.seats_of(a).await.unwrap(), 0, "freed on the close");
    assigner.react(&close).await.unwrap();
    let events = everything(&w.log).await;
    let released: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "AgentChatReleased")
        .collect();
    assert_eq!(released.len(), 1, "freed once");
    assert_eq!(released[0].metadata.causation_id, close[0].id);
    w.projections.shutdown().await;
}

/// The bot (and the router) running in the background over `w`'s log, with the demo KB.
async fn bot_running(w: &World) -> (watch::Sender<bool>, Vec<tokio::task::JoinHandle<()>>) {
    use kefu_eventlog::faults::Faults;
    use kefu_workers::bot::{BotWorker, seed_demo_kb};
    use kefu_workers::gateway::OrderGateway;
    use kefu_workers::router::Router;
    seed_demo_kb(&w.desk, 0).await.unwrap();
    let (bot, read_to) = BotWorker::start(w.desk.clone(), Default::default())
        .await
        .unwrap();
    let checkpoints = Checkpoints::open(w.read.clone()).await.unwrap();
    let models = ReadModels::open(w.read.clone()).await.unwrap();
    let router = Router::new(
        w.desk.clone(),
        models,
        OrderGateway::new(w.desk.commands().clone(), Faults::new("order gateway")),
    )
    .unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(runtime::run(
            w.log.clone(),
            checkpoints.clone(),
            bot,
            Start::At(read_to),
            stop.clone(),
        )),
        tokio::spawn(runtime::run(
            w.log.clone(),
            checkpoints,
            router,
            Start::At(read_to),
            stop,
        )),
    ];
    (stop_tx, tasks)
}

fn slot() -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap()
}

/// Probes ask the demo KB's questions through the customer's entry point: the bot answers
/// them right, a probe expecting the wrong entry fails and is recorded as failed, and the
/// probe conversations are closed, never routed to a human, and counted in no statistics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_pass_on_the_demo_kb_and_a_wrong_expectation_fails() {
    use kefu_domain::probe::ProbeReply;
    use kefu_projections::stats::{StatsFilter, StatsGroup};
    use kefu_workers::probes::{Probes, demo_questions};

    let w = world().await;
    let (stop, tasks) = bot_running(&w).await;
    let mut questions: Vec<_> = demo_questions().into_iter().step_by(60).collect();
    let mut wrong = questions[0].clone();
    wrong.expected = questions[1].expected;
    questions.push(wrong.clone());
    let probes = Probes::new(
        w.desk.clone(),
        questions.clone(),
        std::time::Duration::from_secs(86_400),
    )
    .with_sample(0);
    let done = probes
        .run_slot(slot())
        .await
        .unwrap()
        .expect("the slot's run");
    assert_eq!(done.checked as usize, questions.len());
    // The wrong expectation fails, recorded with what the bot answered instead.
    let wrong_failures: Vec<_> = done
        .failures
        .iter()
        .filter(|f| f.expected == wrong.expected && f.question == wrong.question)
        .collect();
    assert_eq!(wrong_failures.len(), 1, "{:?}", done.failures);
    assert_eq!(
        wrong_failures[0].reply,
        ProbeReply::Answered {
            entry: questions[0].expected
        }
    );
    // The demo questions pass, but for the model's known misses: a question the bot offers
    // the right entry for (first) instead of answering (5 of these 6 are answered outright).
    for f in done
        .failures
        .iter()
        .filter(|f| f.question != wrong.question)
    {
        match &f.reply {
            ProbeReply::NotAnswered { candidates } => {
                assert_eq!(candidates.first(), Some(&f.expected), "{f:?}")
            }
            other => panic!("a demo question failed: {f:?} {other:?}"),
        }
    }
    assert!(
        done.passed as usize >= questions.len() - 2,
        "{:?}",
        done.failures
    );
    // Recorded as events in the run's stream.
    let runs = kefu_workers::probes::recent_runs(
        &w.desk,
        std::time::Duration::from_secs(86_400),
        slot(),
        3,
    )
    .await
    .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].completed.as_ref(), Some(&done));

    // Every probe conversation is closed and none was routed or queued.
    let all = everything(&w.log).await;
    let probe_convs: BTreeSet<String> = all
        .iter()
        .filter(|e| e.event_type == "ConversationStarted" && e.payload["channel"] == "probe")
        .map(|e| e.stream_id.to_string())
        .collect();
    assert_eq!(probe_convs.len(), questions.len());
    for c in &probe_convs {
        let types: Vec<&str> = all
            .iter()
            .filter(|e| e.stream_id.as_str() == c)
            .map(|e| e.event_type.as_str())
            .collect();
        assert!(types.contains(&"ConversationClosed"), "{types:?}");
        assert!(
            !types.contains(&"RoutingDecided") && !types.contains(&"ConversationQueued"),
            "{types:?}"
        );
    }
    // Statistics count no probe.
    let head = w.log.head().await.unwrap().unwrap();
    let mut positions = w.projections.positions();
    positions
        .wait_for(|ps| ps.iter().all(|(_, p)| *p > head))
        .await
        .unwrap();
    let view = ReadModels::open(w.read.clone())
        .await
        .unwrap()
        .live(kefu_projections::stats::NAME)
        .await
        .unwrap();
    let rows = view
        .stats(
            &StatsFilter::default(),
            StatsGroup::Channel,
            chrono::Duration::zero(),
        )
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.conversations).sum::<i64>(),
        0,
        "{rows:?}"
    );
    let _ = stop.send(true);
    for t in tasks {
        t.await.unwrap();
    }
    w.projections.shutdown().await;
}

/// Two probe workers waking in the same slot: one probes it, the other finds it claimed; a
/// restart within the slot probes nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_probe_workers_probe_a_slot_once() {
    use kefu_workers::probes::{Probes, demo_questions};

    let w = world().await;
    let (stop, tasks) = bot_running(&w).await;
    let every = std::time::Duration::from_secs(3600);
    let one = Probes::new(w.desk.clone(), demo_questions(), every).with_sample(3);
    let two = Probes::new(w.desk.clone(), demo_questions(), every).with_sample(3);
    let (a, b) = tokio::join!(one.run_slot(slot()), two.run_slot(slot()));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.is_some() != b.is_some(), "exactly one runs: {a:?} {b:?}");
    assert!(one.run_slot(slot()).await.unwrap().is_none(), "a restart");
    let all = everything(&w.log).await;
    let started = all
        .iter()
        .filter(|e| e.event_type == "ConversationStarted" && e.payload["channel"] == "probe")
        .count();
    assert_eq!(started, 3, "three questions asked once");
    assert_eq!(
        all.iter()
            .filter(|e| e.stream_id.category() == "probe")
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        ["ProbeRunStarted", "ProbeRunCompleted"]
    );
    // The next slot is a new run.
    let next = slot() + chrono::Duration::hours(1);
    assert!(one.run_slot(next).await.unwrap().is_some());
    let _ = stop.send(true);
    for t in tasks {
        t.await.unwrap();
    }
    w.projections.shutdown().await;
}

/// The order gateway under traffic: on, the prediction reads the order as the shop knows it
/// now (days in status, an open refund); switched off, or failing under an injected error
/// rate, triage predicts from no order prior and says so; back on, it reads orders again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_gateway_switch_and_faults_degrade_triage_and_it_recovers() {
    use kefu_domain::customer::{CustomerCommand, CustomerDecider, Order, OrderStatus};
    use kefu_domain::ids::OrderId;
    use kefu_domain::switches::Switch;
    use kefu_eventlog::faults::{FaultSettings, Faults};
    use kefu_workers::gateway::OrderGateway;
    use kefu_workers::router::Router;
    use kefu_workers::runtime::Reactor;

    let w = world().await;
    let faults = Faults::new("order gateway");
    let models = ReadModels::open(w.read.clone()).await.unwrap();
    let mut router = Router::new(
        w.desk.clone(),
        models,
        OrderGateway::new(w.desk.commands().clone(), faults.clone()),
    )
    .unwrap();
    let customer = CustomerId::from_uuid(Uuid::now_v7());
    let order = OrderId::new("o-77");
    let now = w.desk.now();
    w.desk
        .commands()
        .execute::<CustomerDecider>(
            customer,
            CustomerCommand::RecordProfile {
                customer,
                tier: kefu_domain::customer::CustomerTier::Regular,
                locale: kefu_domain::ids::Locale::new("zh-CN"),
                at: now,
            },
            &meta(),
        )
        .await
        .unwrap();
    w.desk
        .commands()
        .execute::<CustomerDecider>(
            customer,
            CustomerCommand::ImportOrder {
                order: Order {
                    order: order.clone(),
                    seller: BusinessLine::SelfOperated,
                    category: Category::new("phones"),
                    status: OrderStatus::Returned,
                    total: kefu_domain::common::Money {
                        minor_units: 99_900,
                        currency: "CNY".into(),
                    },
                    refunded: None,
                    placed_at: now - chrono::Duration::days(10),
                    status_at: now - chrono::Duration::days(3),
                },
                at: now,
            },
            &meta(),
        )
        .await
        .unwrap();
    // A conversation about the order; the features of the router's prediction at its start.
    let predicted = async |router: &mut Router<SqliteLog>| {
        let before = w.log.head().await.unwrap().unwrap();
        let c = w
            .desk
            .start_conversation(
                customer,
                None,
                Channel::App,
                Some(order.clone()),
                true,
                &meta(),
            )
            .await
            .unwrap()
            .value;
        let events = w.log.read_all(before.next(), 10).await.unwrap();
        router.react(&events).await.unwrap();
        let stream = kefu_eventlog::StreamId::new(format!("conversation-{c}")).unwrap();
        kefu_eventlog::read_whole_stream(&*w.log, &stream)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.event_type == "ScenarioPredicted")
            .expect("a prediction")
            .payload["features"]
            .clone()
    };
    let on = predicted(&mut router).await;
    assert_eq!(on["order_gateway"], "on", "{on}");
    assert_eq!(on["days_in_status"], 3, "{on}");
    assert_eq!(on["open_refund"], true, "{on}");

    w.desk
        .set_switch(Switch::OrderGateway, false, "drill".into(), &meta())
        .await
        .unwrap();
    let off = predicted(&mut router).await;
    assert_eq!(off["order_gateway"], "switched_off", "{off}");
    assert!(
        off["order"].is_null() && off.get("status").is_none(),
        "{off}"
    );
    w.desk
        .set_switch(Switch::OrderGateway, true, "drill over".into(), &meta())
        .await
        .unwrap();

    faults
        .set(FaultSettings {
            error_rate: 1.0,
            ..FaultSettings::default()
        })
        .unwrap();
    let failing = predicted(&mut router).await;
    assert_eq!(failing["order_gateway"], "unavailable", "{failing}");
    assert!(faults.injected() >= 1);
    faults.set(FaultSettings::default()).unwrap();
    let recovered = predicted(&mut router).await;
    assert_eq!(recovered, on, "itself again");
    w.projections.shutdown().await;
}

/// An injected store error rate: a command whose append fails is resent and lands once; one
/// whose read fails is refused with the store named unavailable and writes nothing; at rate
/// 0 the store is itself again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_store_error_rate_degrades_commands_and_they_recover() {
    use kefu_desk::CommandError;
    use kefu_eventlog::LogError;
    use kefu_eventlog::faults::{FaultSettings, Faults, Faulty};

    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new("store");
    let log = Arc::new(Faulty::new(
        SqliteLog::open(SqliteConfig::new(dir.path().join("kefu.db")))
            .await
            .unwrap(),
        faults.clone(),
    ));
    let desk = Desk::new(CommandService::new(log.clone()));
    let register = async |n: u32| {
        desk.register_agent(
            AgentId::from_uuid(Uuid::now_v7()),
            format!("agent {n}"),
            BTreeSet::from([Skill::new("after-sales")]),
            3,
            &meta(),
        )
        .await
    };
    register(0).await.unwrap();
    let healthy = log.inner().head().await.unwrap();
    // Every second call fails: the load (call 1) passes, the append (call 2) fails and is
    // resent (call 3), which lands.
    faults
        .set(FaultSettings {
            error_rate: 0.5,
            ..FaultSettings::default()
        })
        .unwrap();
    register(1).await.unwrap();
    let after_resend = log.inner().head().await.unwrap();
    assert!(after_resend > healthy);
    // The next load (call 4) fails: the caller is told the store is unavailable, and why.
    match register(2).await {
        Err(CommandError::Log(LogError::Unavailable { message, .. })) => {
            assert!(message.contains("injected fault"), "{message}")
        }
        other => panic!("expected the store to be unavailable, got {other:?}"),
    }
    assert_eq!(
        log.inner().head().await.unwrap(),
        after_resend,
        "nothing written"
    );
    faults
        .set(FaultSettings {
            error_rate: 1.0,
            ..FaultSettings::default()
        })
        .unwrap();
    assert!(register(3).await.is_err());
    faults.set(FaultSettings::default()).unwrap();
    register(4).await.unwrap();
    let agents = log
        .inner()
        .read_all(Position::START, 100)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == "AgentRegistered")
        .count();
    assert_eq!(agents, 3, "agents 0, 1 (once, despite the resend) and 4");
}
