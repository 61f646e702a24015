//! The search index kept live beside the log, and rebuilt blue-green under a running server.

mod support;

use kefu_eventlog::EventLog;
use kefu_projections::search::{
    DocKind, LiveSearch, SearchHome, SearchIndex, SearchRequest, rebuild_search,
};
use support::*;

fn hits_for(reader: &kefu_projections::search::SearchReader, text: &str) -> usize {
    reader
        .search(&SearchRequest::new(text))
        .expect("search")
        .total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_search_follows_the_log_and_survives_a_rebuild() {
    let b = support::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let home = SearchHome::new(dir.path().join("search"));
    let live = LiveSearch::spawn(b.log.clone(), home.clone());
    let mut s = Script::new(b.log.clone());
    s.set_up().await;
    s.handed_over().await;
    s.ticket().await;
    live.wait_for(s.last).await;
    let reader = live.reader().expect("open once following");
    // Both turns say 退货 (the agent: 处理退货), the conversation, and the ticket.
    assert_eq!(hits_for(&reader, "退货申请"), 4);
    assert_eq!(hits_for(&reader, "仓库"), 1, "the ticket's comment");
    assert_eq!(
        hits_for(&reader, "13812345678"),
        0,
        "phone numbers are masked"
    );
    assert_eq!(home.live().unwrap(), Some(1));

    // Rebuild beside it while it runs, then write more: it reopens the new generation.
    let (generation, replaced, report) = rebuild_search(&*b.log, &home, |_| {}).await.unwrap();
    assert_eq!((generation, replaced), (2, Some(1)));
    assert_eq!(report.position, b.log.head().await.unwrap().unwrap().next());
    s.waiting().await;
    live.wait_for(s.last).await;
    let reader = live.reader().expect("reopened");
    assert_eq!(
        hits_for(&reader, "talk to a person"),
        2,
        "X3's message and conversation"
    );
    assert_eq!(
        hits_for(&reader, "退货申请"),
        4,
        "nothing lost or doubled by the swap"
    );
    live.shutdown().await;

    // Reopened by hand: the committed checkpoint is where the log ends.
    let index = SearchIndex::open(home.dir(2)).unwrap();
    assert_eq!(index.checkpoint(), b.log.head().await.unwrap());
    assert_eq!(index.count(DocKind::Conversation).unwrap(), 3);
    assert!(!home.dir(1).exists());
}

/// Search indexing switched off under traffic: the index stops at the flip and serves what
/// it has (stale); switched back on, it catches up from its checkpoint with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_indexing_switched_off_serves_stale_and_catches_up() {
    use kefu_domain::switches::{SWITCHBOARD, Switch, SwitchBoardDecider, SwitchCommand};
    use kefu_eventlog::{Actor, ActorKind, Metadata};

    let b = support::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let home = SearchHome::new(dir.path().join("search"));
    let live = LiveSearch::spawn(b.log.clone(), home.clone());
    let mut s = Script::new(b.log.clone());
    s.set_up().await;
    s.handed_over().await;
    live.wait_for(s.last).await;
    let svc = s.svc.clone();
    let flip = async |on: bool| {
        let meta =
            Metadata::for_request(Actor::new(ActorKind::System, "ops"), uuid::Uuid::now_v7());
        svc.execute::<SwitchBoardDecider>(
            SWITCHBOARD,
            SwitchCommand::Set {
                switch: Switch::SearchIndexing,
                on,
                reason: "drill".into(),
                at: t(100),
            },
            &meta,
        )
        .await
        .unwrap()
        .appended
        .unwrap()
        .last_position
    };
    let off = flip(false).await;
    s.waiting().await;
    let seen = live.handle().wait_seen(s.last).await;
    assert!(!seen.indexing && !live.handle().indexing());
    let reader = live.reader().unwrap();
    assert_eq!(hits_for(&reader, "退货申请"), 3, "what it had is served");
    assert_eq!(
        hits_for(&reader, "talk to a person"),
        0,
        "stale: X3 not indexed"
    );
    let on = flip(true).await;
    live.wait_for(on).await;
    assert!(live.handle().indexing());
    let reader = live.reader().unwrap();
    assert_eq!(hits_for(&reader, "talk to a person"), 2, "caught up");
    assert_eq!(hits_for(&reader, "退货申请"), 3, "nothing doubled");
    live.shutdown().await;
    let index = SearchIndex::open(home.dir(1)).unwrap();
    assert!(index.checkpoint() > Some(off));
    assert_eq!(index.checkpoint(), b.log.head().await.unwrap());
    drop(index);

    // A server started while indexing is off stays paused, then catches up.
    let off = flip(false).await;
    let live = LiveSearch::spawn(b.log.clone(), home.clone());
    let seen = live.handle().wait_seen(off).await;
    assert!(!seen.indexing);
    let on = flip(true).await;
    live.wait_for(on).await;
    live.shutdown().await;
}
