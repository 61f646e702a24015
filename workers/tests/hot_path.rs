//! The hot path of a chat turn, counted and gated through a wrapper around the real log: the
//! customer's message and the bot's answer each fold the conversation's stream once and append
//! once; the bot answers different conversations side by side and one conversation's turns in
//! order. A restarted bot loads the knowledge-base entries it recorded and reads none of the
//! log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kefu_desk::{CommandService, Desk};
use kefu_domain::common::Channel;
use kefu_domain::conversation::{ConversationDecider, ConversationEvent};
use kefu_domain::ids::{ConversationId, CustomerId, MessageId};
use kefu_domain::{Decider, Event};
use kefu_eventlog::sqlite::{SqliteConfig, SqliteLog};
use kefu_eventlog::{
    Actor, ActorKind, Appended, EventLog, ExpectedVersion, Limits, LogError, LogProgress, Metadata,
    NewEvent, Position, RecordedEvent, StreamId,
};
use kefu_workers::bot::{BotWorker, seed_demo_kb};
use kefu_workers::runtime::Reactor;
use tokio::sync::watch;
use uuid::Uuid;

/// What the wrapper saw, per stream.
#[derive(Default)]
struct Seen {
    /// Reads starting at version 0: folds of the whole stream.
    folds: HashMap<String, usize>,
    appends: HashMap<String, usize>,
    /// Pages read from the whole log (`read_all`).
    log_pages: usize,
}

/// The real log, with reads and appends counted per stream, and optionally the appends to
/// one stream held until another stream has been appended to.
struct Counting<L> {
    inner: L,
    seen: Mutex<Seen>,
    gate: Mutex<Option<Gate>>,
}

/// Appends to `held` wait until an append to `until` has committed.
struct Gate {
    held: String,
    until: String,
    open: watch::Sender<bool>,
}

impl<L: EventLog> Counting<L> {
    fn new(inner: L) -> Self {
        Counting {
            inner,
            seen: Mutex::new(Seen::default()),
            gate: Mutex::new(None),
        }
    }

    fn reset(&self) {
        *self.seen.lock().unwrap() = Seen::default();
    }

    fn folds(&self, stream: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .folds
            .get(stream)
            .copied()
            .unwrap_or(0)
    }

    fn log_pages(&self) -> usize {
        self.seen.lock().unwrap().log_pages
    }

    fn appends(&self, stream: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .appends
            .get(stream)
            .copied()
            .unwrap_or(0)
    }
}

impl<L: EventLog> EventLog for Counting<L> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn limits(&self) -> &Limits {
        self.inner.limits()
    }

    async fn append_holding(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        hold: Duration,
    ) -> Result<Appended, LogError> {
        let wait = self
            .gate
            .lock()
            .unwrap()
            .as_ref()
            .filter(|g| g.held == stream.as_str())
            .map(|g| g.open.subscribe());
        if let Some(mut open) = wait {
            open.wait_for(|open| *open).await.expect("the gate stays");
        }
        let appended = self
            .inner
            .append_holding(stream, expected, events, hold)
            .await?;
        *self
            .seen
            .lock()
            .unwrap()
            .appends
            .entry(stream.to_string())
            .or_default() += 1;
        if let Some(g) = self.gate.lock().unwrap().as_ref()
            && g.until == stream.as_str()
        {
            g.open.send_replace(true);
        }
        Ok(appended)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        if from == 0 {
            *self
                .seen
                .lock()
                .unwrap()
                .folds
                .entry(stream.to_string())
                .or_default() += 1;
        }
        self.inner.read_stream(stream, from, max).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>, LogError> {
        self.inner.stream_version(stream).await
    }

    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, LogError> {
        self.seen.lock().unwrap().log_pages += 1;
        self.inner.read_all(from, max).await
    }

    async fn head(&self) -> Result<Option<Position>, LogError> {
        self.inner.head().await
    }

    async fn progress(&self) -> Result<LogProgress, LogError> {
        self.inner.progress().await
    }

    async fn read_correlation(&self, correlation_id: Uuid) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_correlation(correlation_id).await
    }

    fn appended_signal(&self) -> tokio::sync::watch::Receiver<Position> {
        self.inner.appended_signal()
    }

    fn poll_interval(&self) -> Duration {
        self.inner.poll_interval()
    }
}

struct World {
    _dir: tempfile::TempDir,
    log: Arc<Counting<SqliteLog>>,
    desk: Desk<Counting<SqliteLog>>,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(SqliteConfig::new(dir.path().join("kefu.db")))
        .await
        .unwrap();
    let log = Arc::new(Counting::new(log));
    let desk = Desk::new(CommandService::new(log.clone()));
    seed_demo_kb(&desk, 0).await.unwrap();
    World {
        _dir: dir,
        log,
        desk,
    }
}

fn meta() -> Metadata {
    Metadata::for_request(Actor::new(ActorKind::System, "test"), Uuid::now_v7())
}

async fn new_conversation(w: &World) -> ConversationId {
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

async fn says(w: &World, c: ConversationId, text: &str) {
    w.desk
        .customer_message(
            c,
            MessageId::from_uuid(Uuid::now_v7()),
            text.into(),
            &meta(),
        )
        .await
        .unwrap();
}

/// Everything appended from `from` on.
async fn since(w: &World, from: Position) -> Vec<RecordedEvent> {
    w.log.read_all(from, 1000).await.unwrap()
}

async fn next_position(w: &World) -> Position {
    w.log
        .head()
        .await
        .unwrap()
        .map_or(Position::START, |p| Position(p.0 + 1))
}

fn stream(c: ConversationId) -> String {
    ConversationDecider::stream_id(c)
}

fn bot_turns(events: &[RecordedEvent], c: ConversationId) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.stream_id.as_str() == stream(c))
        .filter(|e| {
            matches!(
                kefu_feed::decode_or_other(e),
                Event::Conversation(ConversationEvent::BotTurnRecorded(_))
            )
        })
        .map(|e| e.position.0)
        .collect()
}

#[tokio::test]
async fn a_chat_turn_folds_the_conversation_once_per_command_and_appends_once() {
    let w = world().await;
    let (bot, _) = BotWorker::start(w.desk.clone(), Default::default())
        .await
        .unwrap();
    let mut bot = bot;
    let c = new_conversation(&w).await;
    let from = next_position(&w).await;

    w.log.reset();
    says(&w, c, "运费是怎么收取的？太慢了!!!").await;
    assert_eq!(
        (w.log.folds(&stream(c)), w.log.appends(&stream(c))),
        (1, 1),
        "the customer's message: one fold, one append"
    );

    let turn = since(&w, from).await;
    w.log.reset();
    bot.react(&turn).await.unwrap();
    assert_eq!(
        (w.log.folds(&stream(c)), w.log.appends(&stream(c))),
        (1, 1),
        "the bot's answer (assessment, reply, hand-off): one fold, one append"
    );
    let answered = since(&w, from).await;
    let types: Vec<&str> = answered
        .iter()
        .filter(|e| e.stream_id.as_str() == stream(c))
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        types[..3],
        ["CustomerTurnRecorded", "EmotionAssessed", "BotTurnRecorded"]
    );
    let answer = &answered[1..];
    assert!(
        answer.iter().all(|e| e.metadata.causation_id == turn[0].id),
        "every event of the answer is caused by the turn"
    );

    // Answering it again (a replay after a crash) changes nothing, and still reads it once.
    w.log.reset();
    bot.react(&turn).await.unwrap();
    assert_eq!((w.log.folds(&stream(c)), w.log.appends(&stream(c))), (1, 0));
}

/// The first conversation's answer is held until the second's is in: a bot that answered one
/// conversation after the other would wait for ever (the hang guard fails the test).
#[tokio::test]
async fn a_conversation_held_up_does_not_hold_up_another_and_each_stays_in_order() {
    let w = world().await;
    let (mut bot, _) = BotWorker::start(w.desk.clone(), Default::default())
        .await
        .unwrap();
    let (slow, fast) = (new_conversation(&w).await, new_conversation(&w).await);
    let from = next_position(&w).await;
    says(&w, slow, "运费是怎么收取的？").await;
    says(&w, fast, "运费是怎么收取的？").await;
    says(&w, slow, "发票怎么开").await;
    says(&w, fast, "发票怎么开").await;
    let turns = since(&w, from).await;
    assert_eq!(turns.len(), 4);

    *w.log.gate.lock().unwrap() = Some(Gate {
        held: stream(slow),
        until: stream(fast),
        open: watch::channel(false).0,
    });
    tokio::time::timeout(Duration::from_secs(60), bot.react(&turns))
        .await
        .expect("the held conversation held up the other")
        .unwrap();

    let answered = since(&w, from).await;
    for c in [slow, fast] {
        let replies = bot_turns(&answered, c);
        assert_eq!(replies.len(), 2, "both turns of {c} answered");
        let replied_to: Vec<Uuid> = answered
            .iter()
            .filter(|e| replies.contains(&e.position.0))
            .map(|e| e.metadata.causation_id)
            .collect();
        let asked: Vec<Uuid> = turns
            .iter()
            .filter(|e| e.stream_id.as_str() == stream(c))
            .map(|e| e.id)
            .collect();
        assert_eq!(replied_to, asked, "{c}'s turns answered in order");
    }
    assert!(
        bot_turns(&answered, fast)[0] < bot_turns(&answered, slow)[0],
        "the second conversation was answered while the first was held"
    );
}

/// Issue 17, step 6: with a checkpoint and its recorded entries, a restart reads no page of
/// the log and knows what a bot folding the whole log knows; without a checkpoint it folds.
#[tokio::test]
async fn a_restarted_bot_loads_its_recorded_entries_and_reads_none_of_the_log() {
    use kefu_desk::NewEntry;
    use kefu_domain::ids::{Category, KnowledgeEntryId, Locale};
    use kefu_domain::knowledge::KnowledgeDecider;
    use kefu_projections::ReadStore;
    use kefu_workers::bot::{KnownEntries, NAME};
    use kefu_workers::runtime::Checkpoints;

    let w = world().await;
    let read = ReadStore::open_sqlite(&w._dir.path().join("kefu.read.db")).unwrap();
    let checkpoints = Checkpoints::open(read.clone()).await.unwrap();
    let known = KnownEntries::open(read.clone()).await.unwrap();
    let resume = async || {
        let at = checkpoints.get(NAME).await.unwrap();
        BotWorker::resume(w.desk.clone(), Default::default(), at, known.clone())
            .await
            .unwrap()
    };

    // No checkpoint yet: the whole log is read, and what it holds recorded.
    w.log.reset();
    let (mut bot, read_to) = resume().await;
    assert!(w.log.log_pages() > 0, "a first start folds the log");
    let demo = bot.entries();
    assert!(demo > 10);

    // The bot follows the log: two entries created, one retired, and turns besides.
    let from = read_to;
    let created = [Uuid::now_v7(), Uuid::now_v7()].map(KnowledgeEntryId::from_uuid);
    for (i, id) in created.iter().enumerate() {
        w.desk
            .create_entry(
                *id,
                NewEntry {
                    question: format!("礼品卡{i}号怎么用？"),
                    paraphrases: vec![format!("礼品卡{i}号的用法")],
                    answer: "在结算页选择礼品卡抵扣即可。".into(),
                    category: Category::new("payment"),
                    locale: Locale::new("zh-CN"),
                },
                &meta(),
            )
            .await
            .unwrap();
    }
    let retired = bot.entry_ids()[0];
    w.desk
        .retire_entry(retired, "outdated".into(), &meta())
        .await
        .unwrap();
    let c = new_conversation(&w).await;
    says(&w, c, "礼品卡1号怎么用").await;
    let events = since(&w, from).await;
    bot.react(&events).await.unwrap();
    let next = Position(events.last().unwrap().position.0 + 1);
    checkpoints.save(NAME, next).await.unwrap();
    assert_eq!(bot.entries(), demo + 1);

    // A restart with the checkpoint: no page of the log, the same entries as a full fold.
    w.log.reset();
    let (warm, resumes_at) = resume().await;
    assert_eq!(w.log.log_pages(), 0, "a warm start reads none of the log");
    assert_eq!(resumes_at, next);
    let folds = |id| w.log.folds(&KnowledgeDecider::stream_id(id));
    assert!(
        created.iter().all(|id| folds(*id) == 1),
        "each entry it holds loaded once"
    );
    assert_eq!(folds(retired), 0, "a retired entry is not loaded");
    let (cold, _) = BotWorker::start(w.desk.clone(), Default::default())
        .await
        .unwrap();
    assert_eq!(warm.entry_ids(), cold.entry_ids());
    assert!(!warm.entry_ids().contains(&retired));
    assert!(created.iter().all(|id| warm.entry_ids().contains(id)));

    // A new read-model store (no checkpoint) folds the log again.
    let fresh = ReadStore::open_sqlite(&w._dir.path().join("fresh.read.db")).unwrap();
    w.log.reset();
    let (again, _) = BotWorker::resume(
        w.desk.clone(),
        Default::default(),
        Checkpoints::open(fresh.clone())
            .await
            .unwrap()
            .get(NAME)
            .await
            .unwrap(),
        KnownEntries::open(fresh).await.unwrap(),
    )
    .await
    .unwrap();
    assert!(w.log.log_pages() > 0);
    assert_eq!(again.entry_ids(), cold.entry_ids());
}
