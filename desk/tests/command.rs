//! The command service on real logs: SQLite always, PostgreSQL when it answers (always in CI):
//! every event stamped with the command's metadata, refusals write nothing, racing commands decided
//! again, retries bounded (against a log where another editor always gets in first), and a stream
//! this build cannot read named.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use kefu_desk::{CommandError, CommandService};
use kefu_domain::common::Channel;
use kefu_domain::conversation::{ConversationCommand, ConversationDecider, ConversationEvent};
use kefu_domain::customer::{CustomerCommand, CustomerDecider, CustomerTier};
use kefu_domain::ids::{Category, ConversationId, CustomerId, KnowledgeEntryId, Locale, MessageId};
use kefu_domain::knowledge::{KnowledgeCommand, KnowledgeDecider, KnowledgeEdit, KnowledgeState};
use kefu_domain::{Decider, DomainError, DomainEvent};
use kefu_eventlog::postgres::PostgresLog;
use kefu_eventlog::sqlite::{SqliteConfig, SqliteLog};
use kefu_eventlog::testing as pg;
use kefu_eventlog::{
    Actor, ActorKind, Appended, EventLog, ExpectedVersion, Limits, LogError, Metadata, NewEvent,
    Position, RecordedEvent, StreamId, read_whole_stream,
};
use serde_json::json;
use uuid::Uuid;

fn at(minute: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 18, 10, minute, 0).unwrap()
}

fn request() -> Metadata {
    let mut m = Metadata::for_request(Actor::new(ActorKind::Agent, "a-17"), Uuid::now_v7());
    m.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    m
}

fn create(entry: KnowledgeEntryId) -> KnowledgeCommand {
    KnowledgeCommand::Create {
        entry,
        question: "快递几天能到？".into(),
        paraphrases: vec!["多久发货".into()],
        answer: "自营商品一般 1-3 天送达。".into(),
        category: Category::new("shipping"),
        locale: Locale::new("zh-CN"),
        at: at(0),
    }
}

fn edit_answer(answer: &str, minute: u32) -> KnowledgeCommand {
    KnowledgeCommand::Edit {
        edit: KnowledgeEdit {
            answer: Some(answer.into()),
            ..KnowledgeEdit::default()
        },
        at: at(minute),
    }
}

async fn stored<L: EventLog>(log: &L, stream: String) -> Vec<RecordedEvent> {
    read_whole_stream(log, &StreamId::new(stream).unwrap())
        .await
        .unwrap()
}

async fn appends_stamped_events<L: EventLog>(log: Arc<L>) {
    let service = CommandService::new(log.clone());
    let entry = KnowledgeEntryId::from_uuid(Uuid::now_v7());
    let meta = request();
    let done = service
        .execute::<KnowledgeDecider>(entry, create(entry), &meta)
        .await
        .unwrap();
    assert_eq!(done.attempts, 1);
    assert_eq!(done.appended.unwrap().last_version, 0);
    assert!(matches!(done.state, KnowledgeState::Active(_)));

    // A command caused by that event: same correlation, the event as causation.
    let first = stored(&*log, KnowledgeDecider::stream_id(entry)).await;
    let caused = Metadata::caused_by(Actor::system("editor"), &first[0]);
    service
        .execute::<KnowledgeDecider>(entry, edit_answer("一般 1-2 天送达。", 5), &caused)
        .await
        .unwrap();

    let events = stored(&*log, KnowledgeDecider::stream_id(entry)).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event_type, "KnowledgeEntryCreated");
    assert_eq!(events[0].metadata, meta);
    assert_eq!(events[1].event_type, "KnowledgeEntryEdited");
    assert_eq!(events[1].metadata.correlation_id, meta.correlation_id);
    assert_eq!(events[1].metadata.causation_id, events[0].id);
    assert_eq!(events[1].metadata.actor, Actor::system("editor"));
    assert_eq!(events[1].metadata.trace_id, meta.trace_id);
    // The auditors' view: one request, both events.
    assert_eq!(
        log.read_correlation(meta.correlation_id)
            .await
            .unwrap()
            .len(),
        2
    );

    let loaded = service.load::<KnowledgeDecider>(entry).await.unwrap();
    assert_eq!(loaded.version, Some(1));
    let KnowledgeState::Active(e) = loaded.state else {
        panic!("entry not active")
    };
    assert_eq!(e.answer, "一般 1-2 天送达。");
}

async fn refusals_write_nothing<L: EventLog>(log: Arc<L>) {
    let service = CommandService::new(log.clone());
    let entry = KnowledgeEntryId::from_uuid(Uuid::now_v7());
    service
        .execute::<KnowledgeDecider>(entry, create(entry), &request())
        .await
        .unwrap();
    let again = service
        .execute::<KnowledgeDecider>(entry, create(entry), &request())
        .await;
    assert!(
        matches!(
            again,
            Err(CommandError::Rejected(DomainError::AlreadyExists { .. }))
        ),
        "{again:?}"
    );
    let unknown = KnowledgeEntryId::from_uuid(Uuid::now_v7());
    let r = service
        .execute::<KnowledgeDecider>(unknown, edit_answer("x", 1), &request())
        .await;
    assert!(matches!(r, Err(CommandError::Rejected(_))), "{r:?}");
    assert_eq!(
        stored(&*log, KnowledgeDecider::stream_id(entry))
            .await
            .len(),
        1
    );
    assert!(
        stored(&*log, KnowledgeDecider::stream_id(unknown))
            .await
            .is_empty()
    );
}

/// Customers type fast: turns sent at once to one conversation all land, each decided
/// against the state it follows.
async fn racing_commands_are_decided_again<L: EventLog>(log: Arc<L>) {
    let service = CommandService::new(log.clone()).with_max_attempts(50);
    let customer = CustomerId::from_uuid(Uuid::now_v7());
    service
        .execute::<CustomerDecider>(
            customer,
            CustomerCommand::RecordProfile {
                customer,
                tier: CustomerTier::Vip,
                locale: Locale::new("zh-CN"),
                at: at(0),
            },
            &request(),
        )
        .await
        .unwrap();
    let snapshot = service
        .load::<CustomerDecider>(customer)
        .await
        .unwrap()
        .state
        .snapshot(customer);
    let conversation = ConversationId::from_uuid(Uuid::now_v7());
    service
        .execute::<ConversationDecider>(
            conversation,
            ConversationCommand::Start {
                conversation,
                customer: snapshot,
                channel: Channel::App,
                order: None,
                bot_enabled: true,
                at: at(1),
            },
            &request(),
        )
        .await
        .unwrap();

    let turns: Vec<_> = (0..8)
        .map(|n| {
            let service = service.clone();
            tokio::spawn(async move {
                service
                    .execute::<ConversationDecider>(
                        conversation,
                        ConversationCommand::RecordCustomerTurn {
                            message: MessageId::from_uuid(Uuid::now_v7()),
                            text: format!("第 {n} 条消息"),
                            at: at(2),
                        },
                        &request(),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in turns {
        t.await.unwrap();
    }
    let events = stored(&*log, ConversationDecider::stream_id(conversation)).await;
    let turns = events
        .iter()
        .filter(|e| e.event_type == "CustomerTurnRecorded")
        .count();
    assert_eq!(turns, 8);
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| e.version == i as u64)
    );
    for e in &events {
        ConversationEvent::decode(&e.event_type, e.schema_version, e.payload.clone()).unwrap();
    }
}

/// A log on which another editor changes a knowledge-base entry just before each of the
/// service's appends, through a command service of its own: the service can never win.
struct Interloper<L> {
    inner: Arc<L>,
}

impl<L: EventLog> EventLog for Interloper<L> {
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
        let entry = KnowledgeDecider::id_of_stream(stream.as_str()).expect("a knowledge stream");
        let answer = format!("另一位编辑 {}", Uuid::now_v7());
        CommandService::new(self.inner.clone())
            .execute::<KnowledgeDecider>(entry, edit_answer(&answer, 9), &request())
            .await
            .expect("the other editor's change");
        self.inner
            .append_holding(stream, expected, events, hold)
            .await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_stream(stream, from, max).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>, LogError> {
        self.inner.stream_version(stream).await
    }
    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_all(from, max).await
    }
    async fn head(&self) -> Result<Option<Position>, LogError> {
        self.inner.head().await
    }
    async fn read_correlation(&self, id: Uuid) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_correlation(id).await
    }
    fn appended_signal(&self) -> tokio::sync::watch::Receiver<Position> {
        self.inner.appended_signal()
    }
    fn poll_interval(&self) -> Duration {
        self.inner.poll_interval()
    }
}

async fn retries_are_bounded<L: EventLog>(log: Arc<L>) {
    let entry = KnowledgeEntryId::from_uuid(Uuid::now_v7());
    CommandService::new(log.clone())
        .execute::<KnowledgeDecider>(entry, create(entry), &request())
        .await
        .unwrap();
    let contested =
        CommandService::new(Arc::new(Interloper { inner: log.clone() })).with_max_attempts(3);
    let r = contested
        .execute::<KnowledgeDecider>(entry, edit_answer("我的修改", 10), &request())
        .await;
    assert!(
        matches!(r, Err(CommandError::Contended { attempts: 3, .. })),
        "{r:?}"
    );
    // The creation and the other editor's three changes; none of ours.
    let events = stored(&*log, KnowledgeDecider::stream_id(entry)).await;
    assert_eq!(events.len(), 4);
    assert!(
        events
            .iter()
            .all(|e| !e.payload.to_string().contains("我的修改"))
    );
}

async fn a_stream_this_build_cannot_read_is_named<L: EventLog>(log: Arc<L>) {
    let entry = KnowledgeEntryId::from_uuid(Uuid::now_v7());
    let stream = StreamId::new(KnowledgeDecider::stream_id(entry)).unwrap();
    log.append(
        &stream,
        ExpectedVersion::NoStream,
        vec![NewEvent::new(
            "KnowledgeEntryTeleported",
            json!({}),
            request(),
        )],
    )
    .await
    .unwrap();
    let r = CommandService::new(log.clone())
        .execute::<KnowledgeDecider>(entry, edit_answer("x", 1), &request())
        .await;
    let Err(CommandError::Load { version: 0, .. }) = &r else {
        panic!("{r:?}")
    };
    assert!(
        r.unwrap_err()
            .to_string()
            .contains("KnowledgeEntryTeleported")
    );
    assert_eq!(stored(&*log, stream.to_string()).await.len(), 1);
}

macro_rules! suite {
    ($open:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn appends_stamped_events() {
            let Some((log, _keep)) = $open.await else {
                return;
            };
            super::appends_stamped_events(log).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn refusals_write_nothing() {
            let Some((log, _keep)) = $open.await else {
                return;
            };
            super::refusals_write_nothing(log).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn racing_commands_are_decided_again() {
            let Some((log, _keep)) = $open.await else {
                return;
            };
            super::racing_commands_are_decided_again(log).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn retries_are_bounded() {
            let Some((log, _keep)) = $open.await else {
                return;
            };
            super::retries_are_bounded(log).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_stream_this_build_cannot_read_is_named() {
            let Some((log, _keep)) = $open.await else {
                return;
            };
            super::a_stream_this_build_cannot_read_is_named(log).await;
        }
    };
}

mod sqlite {
    use super::*;

    async fn open() -> Option<(Arc<SqliteLog>, tempfile::TempDir)> {
        let dir = tempfile::tempdir().unwrap();
        let log = SqliteLog::open(SqliteConfig::new(dir.path().join("kefu.db")))
            .await
            .unwrap();
        Some((Arc::new(log), dir))
    }

    suite!(open());
}

mod postgres {
    use super::*;

    async fn open() -> Option<(Arc<PostgresLog>, ())> {
        let config = pg::fresh_config().await?;
        Some((Arc::new(PostgresLog::open(config).await.unwrap()), ()))
    }

    suite!(open());
}
