//! The archiver on a real log and real read models (the embedded stores): it archives closed
//! conversations once they are old enough (two archivers at once move each once), and the
//! archived history still reads by id, replays into the same rows, audits, and reopens.

use std::sync::Arc;

use kefu_desk::CommandService;
use kefu_desk::Desk;
use kefu_domain::common::{Channel, Party};
use kefu_domain::conversation::CloseReason;
use kefu_domain::ids::{ConversationId, CustomerId, MessageId};
use kefu_eventlog::archive::ArchiveStore;
use kefu_eventlog::sqlite::{SqliteConfig, SqliteLog};
use kefu_eventlog::{Actor, ActorKind, EventLog, Metadata, StreamId, read_whole_stream};
use kefu_projections::{LiveProjections, ReadModels, ReadStore, Until, rebuild};
use kefu_workers::archiver::Archiver;
use uuid::Uuid;

struct World {
    _dir: tempfile::TempDir,
    log: Arc<SqliteLog>,
    read: ReadStore,
    desk: Desk<SqliteLog>,
    projections: LiveProjections,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SqliteConfig::new(dir.path().join("kefu.db"));
    config.archive = Some(dir.path().join("archive"));
    let log = Arc::new(SqliteLog::open(config).await.unwrap());
    let read = ReadStore::open_sqlite(&dir.path().join("kefu.read.db")).unwrap();
    let projections = LiveProjections::spawn(log.clone(), read.clone(), kefu_projections::all);
    World {
        desk: Desk::new(CommandService::new(log.clone())),
        log,
        read,
        projections,
        _dir: dir,
    }
}

fn request() -> Metadata {
    Metadata::for_request(Actor::new(ActorKind::Customer, "c-1"), Uuid::now_v7())
}

/// A conversation with two customer turns; closed unless `open`. The correlation of its
/// second turn.
async fn conversation(w: &World, open: bool) -> (ConversationId, Uuid) {
    let c = w
        .desk
        .start_conversation(
            CustomerId::from_uuid(Uuid::now_v7()),
            None,
            Channel::App,
            None,
            true,
            &request(),
        )
        .await
        .unwrap()
        .value;
    let mut correlation = Uuid::nil();
    for text in ["我的快递到哪了", "还没到"] {
        let meta = request();
        correlation = meta.correlation_id;
        w.desk
            .customer_message(c, MessageId::from_uuid(Uuid::now_v7()), text.into(), &meta)
            .await
            .unwrap();
    }
    if !open {
        w.desk
            .close(c, Party::Customer, CloseReason::Resolved, &request())
            .await
            .unwrap();
    }
    (c, correlation)
}

async fn dump_live(models: &ReadModels) -> Vec<String> {
    let mut out = Vec::new();
    for p in kefu_projections::all() {
        let view = models.live(p.name()).await.unwrap();
        out.extend(view.dump(&p.tables()).await.unwrap());
    }
    out
}

fn stream_of(c: ConversationId) -> StreamId {
    StreamId::of("conversation", c).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_conversations_read_replay_audit_and_reopen() {
    let w = world().await;
    let mut closed = Vec::new();
    for _ in 0..5 {
        closed.push(conversation(&w, false).await);
    }
    let (open, _) = conversation(&w, true).await;
    let head = w.log.head().await.unwrap().unwrap();
    w.projections.wait_for(head).await;
    let models = ReadModels::open(w.read.clone()).await.unwrap();
    let rows_before = dump_live(&models).await;
    // The audit read model indexes events by request; the trail's events are read from the
    // log, archived ones too.
    let log = w.log.clone();
    let audit = |models: &ReadModels, correlation: uuid::Uuid| {
        let (models, log) = (models.clone(), log.clone());
        async move {
            models
                .live(kefu_projections::audit::NAME)
                .await
                .unwrap()
                .audit_trail(&*log, correlation)
                .await
                .unwrap()
                .trail
        }
    };
    let view = models
        .live(kefu_projections::conversations::NAME)
        .await
        .unwrap();
    let mut views_before = Vec::new();
    let mut audits_before = Vec::new();
    for (c, correlation) in &closed {
        views_before.push(view.conversation(&*w.log, &c.to_string()).await.unwrap());
        audits_before.push(audit(&models, *correlation).await);
    }

    // Not yet: 89 days after the close by the archiver's clock.
    let at = |days: i64| {
        let log = w.log.clone();
        Desk::new(CommandService::new(log)).with_clock(Arc::new(move || {
            chrono::Utc::now() + chrono::Duration::days(days)
        }))
    };
    let early = Archiver::new(at(89), models.clone(), 90, 2).unwrap();
    assert_eq!(early.sweep().await.unwrap().conversations, 0);

    // 91 days on, two archivers sweep at once: each closed conversation is archived once.
    let a = Archiver::new(at(91), models.clone(), 90, 2).unwrap();
    let b = Archiver::new(at(91), models.clone(), 90, 2).unwrap();
    let (x, y) = tokio::join!(a.sweep(), b.sweep());
    let (x, y) = (x.unwrap(), y.unwrap());
    assert!(!(x.yielded && y.yielded));
    let again = a.sweep().await.unwrap();
    assert_eq!(
        x.conversations + y.conversations + again.conversations,
        5,
        "{x:?} {y:?} {again:?}"
    );
    assert_eq!(a.sweep().await.unwrap().conversations, 0, "archived once");
    let entries = w.log.archive().unwrap().entries().unwrap();
    let archived: u64 = entries.iter().map(|(e, _)| e.events).sum();
    let mut expected = 0;
    for (c, _) in &closed {
        let stream = stream_of(*c);
        let whole = read_whole_stream(&*w.log, &stream).await.unwrap();
        expected += whole.len() as u64 - 1;
        assert_eq!(
            w.log.archive().unwrap().last_version(&stream).unwrap(),
            Some(whole.len() as u64 - 2)
        );
    }
    assert_eq!(
        archived, expected,
        "every event but each stream's last, once"
    );
    let open_stream = stream_of(open);
    assert_eq!(
        w.log.archive().unwrap().last_version(&open_stream).unwrap(),
        None,
        "an open conversation stays hot"
    );

    // Read by id and audited as before.
    for (i, (c, correlation)) in closed.iter().enumerate() {
        assert_eq!(
            view.conversation(&*w.log, &c.to_string()).await.unwrap(),
            views_before[i]
        );
        assert_eq!(audit(&models, *correlation).await, audits_before[i]);
    }

    // Replayed from position 0: the rebuilt rows are the live ones.
    rebuild(
        &*w.log,
        &w.read,
        kefu_projections::all(),
        Until::default(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(dump_live(&models).await, rows_before);

    // Reopened (within the reopen window by the real clock), it carries on where it stopped.
    let (c, _) = closed[0];
    let before = read_whole_stream(&*w.log, &stream_of(c)).await.unwrap();
    w.desk.reopen(c, Party::Customer, &request()).await.unwrap();
    w.desk
        .customer_message(
            c,
            MessageId::from_uuid(Uuid::now_v7()),
            "又来了".into(),
            &request(),
        )
        .await
        .unwrap();
    let after = read_whole_stream(&*w.log, &stream_of(c)).await.unwrap();
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(after[before.len()].event_type, "ConversationReopened");
    assert_eq!(after.last().unwrap().version, after.len() as u64 - 1);
    let head = w.log.head().await.unwrap().unwrap();
    w.projections.wait_for(head).await;
    let models = ReadModels::open(w.read.clone()).await.unwrap();
    let reopened = models
        .live(kefu_projections::conversations::NAME)
        .await
        .unwrap()
        .conversation(&*w.log, &c.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reopened.conversation.status, "bot");
    assert_eq!(reopened.transcript.len(), 3);
    w.projections.shutdown().await;
}

#[tokio::test]
async fn the_archiver_refuses_a_window_shorter_than_the_reopen_window() {
    let w = world().await;
    let models = ReadModels::open(w.read.clone()).await.unwrap();
    assert!(Archiver::new(w.desk.clone(), models.clone(), 2, 10).is_err());
    assert!(Archiver::new(w.desk.clone(), models.clone(), 90, 0).is_err());
    assert!(Archiver::new(w.desk.clone(), models, 90, 10).is_ok());
    w.projections.shutdown().await;
}
