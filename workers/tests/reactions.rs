//! Every reaction keyed by its cause. A customer asks for a person and is served, start to
//! close, by the workers that react to the log (router, bot, assigner, surveys): killed
//! between any two of their appends and restarted from their checkpoints, or run twice side
//! by side, they leave exactly the reactions one clean run leaves: one per cause, one seat
//! per queueing, no seat held at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kefu_desk::CommandService;
use kefu_desk::{Desk, QueueDefinition};
use kefu_domain::agent::AgentStatus;
use kefu_domain::common::{BusinessLine, Channel, Party};
use kefu_domain::conversation::CloseReason;
use kefu_domain::ids::{AgentId, Category, ConversationId, CustomerId, MessageId, Skill};
use kefu_domain::queue::{OpeningHours, SlaTargets};
use kefu_eventlog::faults::{Faults, Faulty};
use kefu_eventlog::postgres::PostgresLog;
use kefu_eventlog::sqlite::{SqliteConfig, SqliteLog};
use kefu_eventlog::{
    Actor, ActorKind, EventLog, ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent,
    StreamId,
};
use kefu_projections::{LiveProjections, ReadModels, ReadStore};
use kefu_workers::assigner::Assigner;
use kefu_workers::bot::BotWorker;
use kefu_workers::gateway::OrderGateway;
use kefu_workers::router::Router;
use kefu_workers::runtime::Reactor;
use kefu_workers::surveys::SurveyOffers;
use uuid::Uuid;

/// The workers' view of the store: through a crash dial.
type Crashing<L> = Faulty<Arc<L>>;

struct World<L: EventLog> {
    _dir: Option<tempfile::TempDir>,
    log: Arc<L>,
    read: ReadStore,
    /// People's requests: never through the dial.
    desk: Desk<L>,
    /// The workers' desk, through the dial.
    crew_desk: Desk<Crashing<L>>,
    faults: Faults,
    projections: LiveProjections,
}

fn world_of<L: EventLog>(log: L, read: ReadStore, dir: Option<tempfile::TempDir>) -> World<L> {
    let log = Arc::new(log);
    let faults = Faults::new("worker");
    let projections = LiveProjections::spawn(log.clone(), read.clone(), kefu_projections::all);
    World {
        desk: Desk::new(CommandService::new(log.clone())),
        crew_desk: Desk::new(CommandService::new(Arc::new(Faulty::new(
            log.clone(),
            faults.clone(),
        )))),
        faults,
        log,
        read,
        projections,
        _dir: dir,
    }
}

async fn sqlite_world() -> World<SqliteLog> {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(SqliteConfig::new(dir.path().join("kefu.db")))
        .await
        .unwrap();
    let read = ReadStore::open_sqlite(&dir.path().join("kefu.read.db")).unwrap();
    world_of(log, read, Some(dir))
}

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

/// The log's settled prefix once it covers everything committed so far: a fence appended now
/// lands above all of it (on PostgreSQL another test's open transaction may hold `head()`
/// back for a while).
async fn settled<L: EventLog>(log: &L) -> Position {
    let stream = StreamId::new(format!("fence-{}", Uuid::now_v7())).unwrap();
    let fence = log
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![NewEvent::new("Fence", serde_json::json!({}), meta())],
        )
        .await
        .unwrap();
    loop {
        if let Some(head) = log.head().await.unwrap()
            && head >= fence.last_position
        {
            return head;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The workers that react to events, each with its checkpoint (the next position it reads).
struct Crew<L: EventLog> {
    router: Router<Crashing<L>>,
    bot: BotWorker<Crashing<L>>,
    assigner: Assigner<Crashing<L>>,
    surveys: SurveyOffers<Crashing<L>>,
    next: [Position; 4],
    /// How many times a worker died and was started again.
    restarts: usize,
}

const ROUTER: usize = 0;
const BOT: usize = 1;
const ASSIGNER: usize = 2;
const SURVEYS: usize = 3;

impl<L: EventLog> Crew<L> {
    async fn start(w: &World<L>, from: Position) -> Self {
        Crew {
            router: router(w).await,
            bot: bot(w).await,
            assigner: assigner(w).await,
            surveys: SurveyOffers::new(w.crew_desk.clone()),
            next: [from; 4],
            restarts: 0,
        }
    }

    /// A new instance of worker `i`: what a restart after `kill -9` starts with.
    async fn restart(&mut self, w: &World<L>, i: usize) {
        match i {
            ROUTER => self.router = router(w).await,
            BOT => self.bot = bot(w).await,
            ASSIGNER => self.assigner = assigner(w).await,
            _ => self.surveys = SurveyOffers::new(w.crew_desk.clone()),
        }
        self.restarts += 1;
    }

    async fn react(&mut self, i: usize, batch: &[RecordedEvent]) -> bool {
        let outcome = match i {
            ROUTER => self.router.react(batch).await,
            BOT => self.bot.react(batch).await,
            ASSIGNER => self.assigner.react(batch).await,
            _ => self.surveys.react(batch).await,
        };
        outcome.is_ok()
    }
}

/// Feeds the crews' workers what the log holds past their checkpoints until nothing new is
/// left, each batch to every crew at once. A worker whose store died under it is restarted
/// (the dial revived) and fed the same batch again: its checkpoint did not move.
async fn settle<L: EventLog>(w: &World<L>, crews: &mut [Crew<L>]) {
    loop {
        let mut news = false;
        for i in [ROUTER, BOT, ASSIGNER, SURVEYS] {
            let batch = w.log.read_all(crews[0].next[i], 100).await.unwrap();
            let Some(last) = batch.last() else { continue };
            news |= batch.iter().any(|e| e.event_type != "Fence");
            let outcomes = match crews {
                [one] => [one.react(i, &batch).await, true],
                [one, two] => {
                    let (a, b) = tokio::join!(one.react(i, &batch), two.react(i, &batch));
                    [a, b]
                }
                _ => unreachable!("one crew or two"),
            };
            if outcomes.iter().all(|ok| *ok) {
                for crew in crews.iter_mut() {
                    crew.next[i] = last.position.next();
                }
                continue;
            }
            assert!(w.faults.is_dead(), "worker {i} failed with its store up");
            w.faults.revive();
            for (crew, ok) in crews.iter_mut().zip(outcomes) {
                if !ok {
                    crew.restart(w, i).await;
                }
            }
        }
        if !news {
            // Only fences since the last look: done once nothing committed is still unseen.
            let head = settled(&*w.log).await;
            let mut unseen = false;
            for i in [ROUTER, BOT, ASSIGNER, SURVEYS] {
                let rest = w.log.read_all(crews[0].next[i], 100).await.unwrap();
                unseen |= rest
                    .iter()
                    .any(|e| e.position <= head && e.event_type != "Fence");
            }
            if !unseen {
                return;
            }
        }
    }
}

/// Trained once for the whole test binary: training is deterministic, and slow unoptimised.
static INTENTS: std::sync::LazyLock<kefu_bot::intent::IntentModel> =
    std::sync::LazyLock::new(|| kefu_workers::router::intent_model().unwrap());

async fn router<L: EventLog>(w: &World<L>) -> Router<Crashing<L>> {
    Router::with_intents(
        w.crew_desk.clone(),
        ReadModels::open(w.read.clone()).await.unwrap(),
        OrderGateway::new(w.crew_desk.commands().clone(), Faults::new("order gateway")),
        INTENTS.clone(),
    )
}

async fn bot<L: EventLog>(w: &World<L>) -> BotWorker<Crashing<L>> {
    BotWorker::start(w.crew_desk.clone(), Default::default())
        .await
        .unwrap()
        .0
}

async fn assigner<L: EventLog>(w: &World<L>) -> Assigner<Crashing<L>> {
    Assigner::new(
        w.crew_desk.clone(),
        ReadModels::open(w.read.clone()).await.unwrap(),
        w.projections.positions(),
    )
}

/// A queue and two online agents who can serve it.
async fn desk_open<L: EventLog>(w: &World<L>) -> Vec<AgentId> {
    w.desk
        .define_queue(
            QueueDefinition {
                name: "售后".into(),
                business_line: BusinessLine::SelfOperated,
                categories: BTreeSet::from([Category::new("phones")]),
                skills: BTreeSet::from([Skill::new("after-sales")]),
                priority: 3,
                sla: SlaTargets {
                    first_response_secs: 600,
                    resolution_secs: 3600,
                },
                hours: OpeningHours::Always,
            },
            &meta(),
        )
        .await
        .unwrap();
    let mut agents = Vec::new();
    for name in ["王芳", "李雷"] {
        let agent = AgentId::from_uuid(Uuid::now_v7());
        w.desk
            .register_agent(
                agent,
                name.into(),
                BTreeSet::from([Skill::new("after-sales")]),
                2,
                &meta(),
            )
            .await
            .unwrap();
        w.desk
            .set_agent_status(agent, AgentStatus::Online, &meta())
            .await
            .unwrap();
        agents.push(agent);
    }
    agents
}

/// What one run left: the workers' reactions as (stream category, reaction) counts, plus
/// the checks every run must pass whatever the crash point.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    reactions: BTreeMap<String, usize>,
    restarts: usize,
}

/// One customer, start to close, with the crew's store dying after its `crash_at`-th append
/// (never, with None).
async fn serve_one_customer<L: EventLog>(w: &World<L>, crash_at: Option<u64>) -> Outcome {
    let agents = desk_open(w).await;
    let mut crew = Crew::start(w, settled(&*w.log).await.next()).await;
    if let Some(k) = crash_at {
        w.faults.die_after_appends(k);
    }
    let conversation = w
        .desk
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
        .value;
    w.desk
        .customer_message(
            conversation,
            MessageId::from_uuid(Uuid::now_v7()),
            "我要转人工客服".into(),
            &meta(),
        )
        .await
        .unwrap();
    settle(w, std::slice::from_mut(&mut crew)).await;
    let agent = assigned_to(w, conversation).await;
    w.desk
        .close(
            conversation,
            Party::Agent { agent },
            CloseReason::Resolved,
            &meta(),
        )
        .await
        .unwrap();
    settle(w, std::slice::from_mut(&mut crew)).await;
    w.faults.revive();
    let events = everything(w).await;
    once_per_cause(&events);
    no_seat_held(w, &agents).await;
    Outcome {
        reactions: reactions(&events),
        restarts: crew.restarts,
    }
}

async fn assigned_to<L: EventLog>(w: &World<L>, conversation: ConversationId) -> AgentId {
    let stream = StreamId::new(format!("conversation-{conversation}")).unwrap();
    let events = kefu_eventlog::read_whole_stream(&*w.log, &stream)
        .await
        .unwrap();
    let assigned: Vec<&RecordedEvent> = events
        .iter()
        .filter(|e| e.event_type == "AgentAssigned")
        .collect();
    assert_eq!(assigned.len(), 1, "assigned once: {events:#?}");
    AgentId::from_uuid(
        assigned[0].payload["agent"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    )
}

async fn everything<L: EventLog>(w: &World<L>) -> Vec<RecordedEvent> {
    let head = settled(&*w.log).await;
    let mut out: Vec<RecordedEvent> = Vec::new();
    let mut from = Position::START;
    while out.last().is_none_or(|e| e.position < head) {
        let page = w.log.read_all(from, 500).await.unwrap();
        from = page.last().unwrap().position.next();
        out.extend(page);
    }
    out
}

fn once_per_cause(events: &[RecordedEvent]) {
    let repeated = kefu_workers::reactions::repeated_reactions(events);
    assert!(
        repeated.is_empty(),
        "reacted twice to one cause: {repeated:#?}"
    );
}

async fn no_seat_held<L: EventLog>(w: &World<L>, agents: &[AgentId]) {
    for agent in agents {
        let loaded = w
            .desk
            .commands()
            .load::<kefu_domain::agent::AgentDecider>(*agent)
            .await
            .unwrap();
        let kefu_domain::agent::AgentState::Registered(a) = loaded.state else {
            panic!("agent {agent} not registered");
        };
        assert!(
            a.active_chats.is_empty(),
            "{agent} holds {:?}",
            a.active_chats
        );
    }
}

/// The workers' reactions, counted by stream category and event type.
fn reactions(events: &[RecordedEvent]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| kefu_workers::reactions::is_reaction(e))
    {
        let category = e.stream_id.as_str().split('-').next().unwrap_or_default();
        *out.entry(format!("{category}/{}", e.event_type))
            .or_default() += 1;
    }
    out
}

/// A clean run, then one run per crash point: the crew dies right after each of its appends
/// in turn, is restarted from its checkpoints, and leaves exactly the clean run's reactions.
async fn a_crash_after_any_append_changes_no_reaction<L: EventLog, F, Fut>(world: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = World<L>>,
{
    let w = world().await;
    let clean = serve_one_customer(&w, None).await;
    let appends = w.faults.appends();
    w.projections.shutdown().await;
    assert_eq!(clean.restarts, 0);
    for (kind, n) in [
        ("conversation/ScenarioPredicted", 2),
        ("conversation/EmotionAssessed", 1),
        ("conversation/BotTurnRecorded", 1),
        ("conversation/HandedToHuman", 1),
        ("conversation/RoutingDecided", 1),
        ("conversation/ConversationQueued", 1),
        ("agent/AgentChatTaken", 1),
        ("conversation/AgentAssigned", 1),
        ("conversation/SurveyOffered", 1),
    ] {
        assert_eq!(clean.reactions.get(kind), Some(&n), "{kind}: {clean:?}");
    }
    // Predictions (2), the bot's answer (1: assessment, reply and hand-off at once), routing
    // with queueing (1), seat and assignment (2), survey offer (1).
    assert!(appends >= 7, "the crew appended {appends} times");
    for k in 1..=appends {
        let w = world().await;
        let crashed = serve_one_customer(&w, Some(k)).await;
        w.projections.shutdown().await;
        assert_eq!(crashed.restarts, 1, "crash point {k} of {appends}");
        assert_eq!(
            crashed.reactions, clean.reactions,
            "crash after append {k} of {appends}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_any_append_changes_no_reaction_on_sqlite() {
    a_crash_after_any_append_changes_no_reaction(sqlite_world).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_any_append_changes_no_reaction_on_postgres() {
    if pg_world().await.is_none() {
        return;
    }
    a_crash_after_any_append_changes_no_reaction(async || pg_world().await.unwrap()).await;
}

/// Two crews follow the same log side by side, every batch handed to both at once: the log
/// holds what one crew alone leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_crews_side_by_side_react_once_per_cause() {
    let w = sqlite_world().await;
    let alone = serve_one_customer(&w, None).await;
    w.projections.shutdown().await;

    let w = sqlite_world().await;
    let agents = desk_open(&w).await;
    let from = settled(&*w.log).await.next();
    let mut crews = [Crew::start(&w, from).await, Crew::start(&w, from).await];
    let conversation = w
        .desk
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
        .value;
    w.desk
        .customer_message(
            conversation,
            MessageId::from_uuid(Uuid::now_v7()),
            "我要转人工客服".into(),
            &meta(),
        )
        .await
        .unwrap();
    settle(&w, &mut crews).await;
    let agent = assigned_to(&w, conversation).await;
    w.desk
        .close(
            conversation,
            Party::Agent { agent },
            CloseReason::Resolved,
            &meta(),
        )
        .await
        .unwrap();
    settle(&w, &mut crews).await;
    let events = everything(&w).await;
    once_per_cause(&events);
    no_seat_held(&w, &agents).await;
    assert_eq!(reactions(&events), alone.reactions);
    w.projections.shutdown().await;
}
