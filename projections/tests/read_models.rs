//! The read models on both stores: a scripted history gives the expected rows; a rebuild from
//! position 0 gives exactly what live processing built; a build that dies mid-batch and
//! starts again neither loses nor double-counts; blue-green swaps under a live runner; as-of
//! builds; bad queries are refused by name.
//!
//! On SQLite and PostgreSQL: the scripted history is written through the command service; a build
//! killed before any apply, or at any commit (every commit in turn), and restarted applies every
//! event exactly once; the as-of builds include a transcript read from the log that stops at the
//! as-of bound while the stream has gone on.

mod support;

use chrono::Duration;
use kefu_eventlog::{EventLog, Position, StreamId, read_whole_stream};
use kefu_projections::conversations::ConversationFilter;
use kefu_projections::runner::{Faults, Group, Member};
use kefu_projections::sql::{Record, Stmt};
use kefu_projections::stats::{StatsFilter, StatsGroup};
use kefu_projections::{
    Catalog, GenState, LiveProjections, ProjectionError, ReadModels, Until, rebuild,
};
use support::*;

macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::support::sqlite().await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(b) = super::support::postgres().await else { return };
                    super::$name(b).await;
                }
            )+
        }
    };
}

on_both!(
    scripted_history_gives_expected_rows,
    rebuild_equals_live_processing,
    dying_mid_catch_up_neither_loses_nor_double_counts,
    blue_green_swap_under_a_live_runner,
    as_of_builds_stop_at_their_bound,
    bad_queries_are_refused_by_name,
    a_generation_built_by_an_older_kefu_is_refused_by_name,
    figures_are_timed_per_queueing_and_hand_offs_counted_per_event,
    the_analysts_views_answer_the_same_across_a_replay,
);

async fn build_all(b: &Backend) -> ReadModels {
    rebuild(
        &*b.log,
        &b.store,
        kefu_projections::all(),
        Until::default(),
        |_| {},
    )
    .await
    .unwrap();
    ReadModels::open(b.store.clone()).await.unwrap()
}

/// Every table of every live projection, sorted.
async fn dump_live(models: &ReadModels) -> Vec<String> {
    let mut out = Vec::new();
    for p in kefu_projections::all() {
        let view = models.live(p.name()).await.unwrap();
        out.extend(view.dump(&p.tables()).await.unwrap());
    }
    out
}

async fn scripted_history_gives_expected_rows(b: Backend) {
    let mut s = Script::new(b.log.clone());
    s.all().await;
    let models = build_all(&b).await;

    // Queues: X4 waited longest, so it is served first.
    let queues = models.live("queues").await.unwrap();
    let now = support::t(40).timestamp_millis();
    let waiting = queues
        .waiting(Some(&Q_SELF.to_string()), now)
        .await
        .unwrap();
    let order: Vec<(String, usize, i64)> = waiting
        .iter()
        .map(|w| (w.entry.conversation.clone(), w.position, w.wait_secs))
        .collect();
    assert_eq!(
        order,
        vec![(X4.to_string(), 1, 15 * 60), (X3.to_string(), 2, 10 * 60)]
    );
    let counts = queues.queue_counts(now).await.unwrap();
    let own = counts
        .iter()
        .find(|c| c.queue.id == Q_SELF.to_string())
        .unwrap();
    assert_eq!((own.waiting, own.with_agent), (2, 0));
    assert_eq!(own.longest_wait_secs, 15 * 60);
    assert_eq!((own.agents_online, own.free_seats), (2, 3));
    let desk = queues.workbench(&A1.to_string()).await.unwrap().unwrap();
    assert_eq!(desk.agent.status, "online");
    assert!(desk.chats.is_empty(), "X2 closed, so A1 holds nothing");
    assert_eq!(desk.free_seats, 2);

    // Statistics.
    let stats = models.live("stats").await.unwrap();
    let total = stats
        .stats(
            &StatsFilter::default(),
            StatsGroup::Total,
            Duration::hours(8),
        )
        .await
        .unwrap();
    assert_eq!(total.len(), 1);
    let all = &total[0];
    assert_eq!(all.conversations, 4);
    assert_eq!(
        (all.closed, all.contained_by_bot, all.handed_off),
        (2, 1, 3)
    );
    assert_eq!(
        (all.surveys_offered, all.surveys_answered, all.satisfied),
        (2, 2, 1)
    );
    assert_eq!(all.response_rate, Some(1.0));
    assert_eq!(all.csat, Some(0.5));
    assert_eq!(all.mean_score, Some(4.0));
    assert_eq!(
        all.first_response_secs,
        Some(180.0),
        "queued 06:12, answered 06:15"
    );
    assert_eq!(all.resolution_secs, Some(390.0), "3 and 10 minutes");
    assert_eq!(all.containment_rate, Some(0.5));
    assert_eq!(all.scenario_match_rate, Some(0.5));
    assert_eq!(all.conversion, Some(0.25));

    let by_handler = stats
        .stats(
            &StatsFilter::default(),
            StatsGroup::HandledBy,
            Duration::zero(),
        )
        .await
        .unwrap();
    let handled: Vec<(Option<String>, i64)> = by_handler
        .iter()
        .map(|r| (r.key.clone(), r.conversations))
        .collect();
    assert_eq!(
        handled,
        vec![(Some("bot".into()), 1), (Some("human".into()), 3)]
    );
    let by_day = stats
        .stats(&StatsFilter::default(), StatsGroup::Day, Duration::hours(8))
        .await
        .unwrap();
    assert_eq!(by_day.len(), 1);
    assert_eq!(by_day[0].key.as_deref(), Some("2026-11-20"));
    let by_reason = stats
        .stats(
            &StatsFilter {
                handled_by: Some("human".into()),
                ..StatsFilter::default()
            },
            StatsGroup::HandoffReason,
            Duration::zero(),
        )
        .await
        .unwrap();
    let reasons: Vec<(Option<String>, i64)> = by_reason
        .iter()
        .map(|r| (r.key.clone(), r.conversations))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (Some("customer_asked".into()), 2),
            (Some("negative_emotion".into()), 1)
        ]
    );
    let by_line = stats
        .stats(
            &StatsFilter::default(),
            StatsGroup::BusinessLine,
            Duration::zero(),
        )
        .await
        .unwrap();
    assert_eq!(by_line.len(), 1, "orders and queues are all self-operated");
    assert_eq!(by_line[0].key.as_deref(), Some("self_operated"));
    let a1_only = stats
        .stats(
            &StatsFilter {
                agent: Some(A1.to_string()),
                ..StatsFilter::default()
            },
            StatsGroup::Total,
            Duration::zero(),
        )
        .await
        .unwrap();
    assert_eq!(a1_only[0].conversations, 1);
    assert_eq!(a1_only[0].csat, Some(0.0));

    // Conversation view.
    let conversations = models.live("conversations").await.unwrap();
    let x2 = conversations
        .conversation(&*b.log, &X2.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(x2.conversation.status, "closed");
    assert_eq!(
        x2.conversation.agent.as_deref(),
        Some(A1.to_string().as_str())
    );
    assert_eq!(x2.conversation.turns, 2);
    assert_eq!(x2.conversation.emotion_label.as_deref(), Some("angry"));
    assert_eq!(
        x2.conversation.scenario_predicted.as_deref(),
        Some("refund-progress")
    );
    assert_eq!(
        x2.conversation.scenario_settled.as_deref(),
        Some("return-exchange")
    );
    let speakers: Vec<&str> = x2
        .transcript
        .iter()
        .map(|t| t.turn.speaker.as_str())
        .collect();
    assert_eq!(speakers, vec!["customer", "agent"]);
    assert_eq!(
        x2.transcript[0].emotion.as_ref().map(|e| e.label.as_str()),
        Some("angry")
    );
    let kinds: Vec<&str> = x2.timeline.iter().map(|t| t.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "ConversationStarted",
            "ScenarioPredicted",
            "ScenarioCorrected",
            "RoutingDecided",
            "HandedToHuman",
            "ConversationQueued",
            "AgentAssigned",
            "ConversationClosed",
            "SurveyOffered",
            "SurveyAnswered",
            "OrderAttributed",
        ]
    );
    let queued = ConversationFilter {
        status: Some("queued".into()),
        ..ConversationFilter::default()
    };
    let first = conversations.conversations(&queued, None, 1).await.unwrap();
    assert_eq!(first.items.len(), 1);
    assert_eq!(first.items[0].id, X3.to_string(), "newest first");
    let second = conversations
        .conversations(&queued, first.next.as_deref(), 1)
        .await
        .unwrap();
    assert_eq!(second.items[0].id, X4.to_string());
    assert_eq!(second.next, None);

    // Ticket view.
    let tickets = models.live("tickets").await.unwrap();
    let t1 = tickets.ticket(&T1.to_string()).await.unwrap().unwrap();
    assert_eq!(t1.ticket.status, "pending");
    assert_eq!(t1.ticket.priority, "high");
    assert_eq!(t1.ticket.assignee.as_deref(), Some(A1.to_string().as_str()));
    assert_eq!(
        t1.ticket.conversation.as_deref(),
        Some(X2.to_string().as_str())
    );
    assert_eq!(t1.ticket.comments, 1);
    let changes: Vec<(Option<&str>, Option<&str>, Option<&str>)> = t1
        .history
        .iter()
        .map(|h| (h.field.as_deref(), h.before.as_deref(), h.after.as_deref()))
        .collect();
    assert_eq!(
        changes,
        vec![
            (None, None, None),
            (
                Some("assignee"),
                Some("null"),
                Some(format!("\"{A1}\"").as_str())
            ),
            (Some("status"), Some("\"new\""), Some("\"open\"")),
            (Some("priority"), Some("\"normal\""), Some("\"high\"")),
            (None, None, None),
            (Some("status"), Some("\"open\""), Some("\"pending\"")),
        ]
    );
}

async fn rebuild_equals_live_processing(b: Backend) {
    let mut s = Script::new(b.log.clone());
    let live = LiveProjections::spawn(b.log.clone(), b.store.clone(), kefu_projections::all);
    s.set_up().await;
    s.contained().await;
    live.wait_for(s.last).await;
    s.handed_over().await;
    s.ticket().await;
    s.waiting().await;
    live.wait_for(s.last).await;
    live.shutdown().await;
    let models = ReadModels::open(b.store.clone()).await.unwrap();
    let before = dump_live(&models).await;
    // Transcripts are read from the log up to what each conversation row applied; compare
    // them too, and that they hold the history.
    let transcripts = async || {
        let view = models.live("conversations").await.unwrap();
        let mut out = Vec::new();
        for x in [X1, X2, X3, X4] {
            out.push(view.conversation(&*b.log, &x.to_string()).await.unwrap());
        }
        out
    };
    let transcripts_before = transcripts().await;
    assert!(
        before.len() > 20 && transcripts_before.iter().all(|c| c.is_some()),
        "the live build holds the history: {} rows",
        before.len()
    );
    let turns: usize = transcripts_before
        .iter()
        .flatten()
        .map(|c| c.transcript.len() + c.timeline.len())
        .sum();
    assert!(turns > 30, "the transcripts hold the history: {turns}");
    // A table an earlier kefu kept in the generation being replaced goes with it.
    let former = "conversations_g1_turns";
    b.store
        .transaction(vec![Stmt::new(
            format!("CREATE TABLE {former} (conversation TEXT)"),
            vec![],
        )])
        .await
        .unwrap();

    let (rebuilt, _) = rebuild(
        &*b.log,
        &b.store,
        kefu_projections::all(),
        Until::default(),
        |_| {},
    )
    .await
    .unwrap();
    assert!(
        rebuilt
            .iter()
            .all(|r| r.replaced == Some(1) && r.generation.generation == 2)
    );
    assert_eq!(dump_live(&models).await, before);
    assert_eq!(transcripts().await, transcripts_before);
    assert!(
        b.store
            .query(&format!("SELECT conversation FROM {former}"), vec![])
            .await
            .is_err(),
        "{former} was dropped with generation 1"
    );
}

async fn dying_mid_catch_up_neither_loses_nor_double_counts(b: Backend) {
    let mut s = Script::new(b.log.clone());
    s.all().await;
    let models = build_all(&b).await;
    let reference = dump_live(&models).await;
    let total = b
        .log
        .read_all(Position::START, 100_000)
        .await
        .unwrap()
        .len() as i64;
    let catalog = Catalog::open(b.store.clone()).await.unwrap();

    // Die before the n-th apply (across the four projections), or at the n-th commit: every
    // commit of the build in turn, until one past the last (which completes).
    let faults = [1, 9, 40, 111, 170]
        .map(Faults::fail_at)
        .into_iter()
        .chain((1..).map(Faults::fail_at_commit));
    let mut commits_failed = 0;
    for fault in faults {
        let mut generations = Vec::new();
        let mut members = Vec::new();
        for p in kefu_projections::all() {
            let g = catalog
                .create(p.as_ref(), GenState::Building, Until::default())
                .await
                .unwrap();
            generations.push((p.name(), g.generation));
            members.push(Member::new(p, g));
        }
        let mut group = Group::new(b.store.clone(), members)
            .with_batch(7)
            .with_faults(fault.clone());
        let failed = group.catch_up(&*b.log, |_| {}).await;
        if fault.fail_at_commit.is_some() && failed.is_ok() {
            break;
        }
        assert!(failed.is_err(), "fault {fault:?} was not reached");
        commits_failed += usize::from(fault.fail_at_commit.is_some());
        // Start again from what was stored, as a restarted process would.
        let mut members = Vec::new();
        for p in kefu_projections::all() {
            let (_, generation) = generations.iter().find(|(n, _)| *n == p.name()).unwrap();
            let stored = catalog.get(p.name(), *generation).await.unwrap();
            members.push(Member::new(p, stored));
        }
        let mut group = Group::new(b.store.clone(), members).with_batch(7);
        group.catch_up(&*b.log, |_| {}).await.unwrap();
        for p in kefu_projections::all() {
            let (_, generation) = generations.iter().find(|(n, _)| *n == p.name()).unwrap();
            let g = catalog.get(p.name(), *generation).await.unwrap();
            assert_eq!(
                g.events,
                total,
                "{} after fault {fault:?}: every event applied once",
                p.name()
            );
            let view = models.generation(p.name(), *generation).await.unwrap();
            let live = models.live(p.name()).await.unwrap();
            assert_eq!(
                view.dump(&p.tables()).await.unwrap(),
                live.dump(&p.tables()).await.unwrap(),
                "{} after fault {fault:?}",
                p.name()
            );
            catalog
                .drop_generation(p.as_ref(), *generation)
                .await
                .unwrap();
        }
    }
    assert!(
        commits_failed > 20,
        "only {commits_failed} commits were tried"
    );

    // A rebuild that died and was never restarted is dropped by the next one, once idle.
    let stats = || {
        kefu_projections::by_names(&["stats".into()])
            .unwrap()
            .pop()
            .unwrap()
    };
    let g = catalog
        .create(stats().as_ref(), GenState::Building, Until::default())
        .await
        .unwrap();
    let mut group = Group::new(b.store.clone(), vec![Member::new(stats(), g.clone())])
        .with_faults(Faults::fail_at(5));
    assert!(group.catch_up(&*b.log, |_| {}).await.is_err());
    let kept = catalog
        .drop_abandoned(stats().as_ref(), Duration::hours(1))
        .await
        .unwrap();
    assert!(kept.is_empty(), "a recent build is not abandoned");
    let dropped = catalog
        .drop_abandoned(stats().as_ref(), Duration::zero())
        .await
        .unwrap();
    // (The loop above left its last, completed, build behind as well.)
    assert!(dropped.contains(&g.generation), "{dropped:?}");
    let facts = g.table(&kefu_projections::stats::FactRow::TABLE);
    assert!(!b.store.table_exists(&facts).await.unwrap());
    assert_eq!(dump_live(&models).await, reference);
}

async fn blue_green_swap_under_a_live_runner(b: Backend) {
    let mut s = Script::new(b.log.clone());
    let live = LiveProjections::spawn(b.log.clone(), b.store.clone(), kefu_projections::all);
    s.set_up().await;
    s.contained().await;
    live.wait_for(s.last).await;

    let (rebuilt, _) = rebuild(
        &*b.log,
        &b.store,
        kefu_projections::all(),
        Until::default(),
        |_| {},
    )
    .await
    .unwrap();
    assert!(rebuilt.iter().all(|r| r.replaced == Some(1)));
    let catalog = Catalog::open(b.store.clone()).await.unwrap();
    let generations = catalog.list().await.unwrap();
    assert_eq!(
        generations.len(),
        kefu_projections::NAMES.len(),
        "the old generations are dropped: {generations:?}"
    );
    assert!(
        generations
            .iter()
            .all(|g| g.state == GenState::Live && g.generation == 2)
    );

    // The live runner notices the swap on its next write and carries on in generation 2.
    s.handed_over().await;
    s.waiting().await;
    live.wait_for(s.last).await;
    live.shutdown().await;
    let models = ReadModels::open(b.store.clone()).await.unwrap();
    let stats = models.live("stats").await.unwrap();
    assert_eq!(stats.generation.generation, 2);
    let total = stats
        .stats(&StatsFilter::default(), StatsGroup::Total, Duration::zero())
        .await
        .unwrap();
    assert_eq!(total[0].conversations, 4);
    let live_dump = dump_live(&models).await;
    let fresh = build_all(&b).await;
    assert_eq!(
        dump_live(&fresh).await,
        live_dump,
        "what the live runner built after the swap"
    );
}

async fn as_of_builds_stop_at_their_bound(b: Backend) {
    let mut s = Script::new(b.log.clone());
    s.set_up().await;
    s.contained().await;
    let after_first = s.last;
    s.handed_over().await;
    s.waiting().await;
    let models = build_all(&b).await;

    let (built, report) = rebuild(
        &*b.log,
        &b.store,
        kefu_projections::by_names(&["stats".into()]).unwrap(),
        Until {
            position: Some(after_first),
            ..Until::default()
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        Some(report.read),
        b.log.count_through(after_first).await.unwrap(),
        "events read up to the bound, not the page read past it"
    );
    let g = &built[0].generation;
    assert_eq!(g.state, GenState::AsOf);
    assert_eq!(built[0].replaced, None);
    let then = models.generation("stats", g.generation).await.unwrap();
    let figures = then
        .stats(&StatsFilter::default(), StatsGroup::Total, Duration::zero())
        .await
        .unwrap();
    assert_eq!(figures[0].conversations, 1, "only X1 had started");
    let now = models.live("stats").await.unwrap();
    let figures = now
        .stats(&StatsFilter::default(), StatsGroup::Total, Duration::zero())
        .await
        .unwrap();
    assert_eq!(
        figures[0].conversations, 4,
        "the live generation is untouched"
    );

    // By time: before anything was recorded, nothing.
    let (built, _) = rebuild(
        &*b.log,
        &b.store,
        kefu_projections::by_names(&["stats".into()]).unwrap(),
        Until {
            time: Some(chrono::Utc::now() - Duration::days(1)),
            ..Until::default()
        },
        |_| {},
    )
    .await
    .unwrap();
    let empty = models
        .generation("stats", built[0].generation.generation)
        .await
        .unwrap();
    let figures = empty
        .stats(&StatsFilter::default(), StatsGroup::Total, Duration::zero())
        .await
        .unwrap();
    assert!(figures.is_empty() || figures[0].conversations == 0);

    // The conversation view as of X2's emotion assessment: its transcript, read from the log,
    // stops where the generation stopped, though the stream has gone on since.
    let x2_stream = read_whole_stream(&*b.log, &StreamId::of("conversation", X2).unwrap())
        .await
        .unwrap();
    let assessed = x2_stream
        .iter()
        .find(|e| e.event_type == "EmotionAssessed")
        .unwrap()
        .position;
    let (built, _) = rebuild(
        &*b.log,
        &b.store,
        kefu_projections::by_names(&["conversations".into()]).unwrap(),
        Until {
            position: Some(assessed),
            ..Until::default()
        },
        |_| {},
    )
    .await
    .unwrap();
    let then = models
        .generation("conversations", built[0].generation.generation)
        .await
        .unwrap();
    let x2 = then
        .conversation(&*b.log, &X2.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(x2.conversation.status, "bot");
    let texts: Vec<&str> = x2.transcript.iter().map(|t| t.turn.text.as_str()).collect();
    assert_eq!(texts, vec!["退货申请三天了还没人处理!!!"]);
    assert_eq!(
        x2.transcript[0].emotion.as_ref().map(|e| e.label.as_str()),
        Some("angry")
    );
    assert_eq!(x2.emotions.len(), 1);
    let kinds: Vec<&str> = x2.timeline.iter().map(|t| t.kind.as_str()).collect();
    assert_eq!(kinds, vec!["ConversationStarted", "ScenarioPredicted"]);
    let now = models
        .live("conversations")
        .await
        .unwrap()
        .conversation(&*b.log, &X2.to_string())
        .await
        .unwrap()
        .unwrap();
    let texts: Vec<&str> = now
        .transcript
        .iter()
        .map(|t| t.turn.text.as_str())
        .collect();
    assert_eq!(
        texts,
        vec![
            "退货申请三天了还没人处理!!!",
            "您好，我来帮您处理退货，请留下电话 13812345678 以便回访。"
        ],
        "the live generation reads the whole stream"
    );
}

async fn bad_queries_are_refused_by_name(b: Backend) {
    let models = ReadModels::open(b.store.clone()).await.unwrap();
    match models.live("stats").await {
        Err(ProjectionError::NotBuilt { projection }) => assert_eq!(projection, "stats"),
        other => panic!("expected NotBuilt, got {:?}", other.map(|v| v.generation)),
    }
    let models = build_all(&b).await;
    let conversations = models.live("conversations").await.unwrap();
    let all = ConversationFilter::default();
    for (limit, cursor) in [(0, None), (501, None), (10, Some("yesterday"))] {
        match conversations.conversations(&all, cursor, limit).await {
            Err(ProjectionError::Invalid(msg)) => {
                assert!(msg.contains("limit") || msg.contains("cursor"), "{msg}")
            }
            other => panic!("limit {limit} cursor {cursor:?}: {other:?}"),
        }
    }
    let stats = models.live("stats").await.unwrap();
    let backwards = StatsFilter {
        from: Some(support::t(10)),
        to: Some(support::t(0)),
        ..StatsFilter::default()
    };
    assert!(matches!(
        stats.stats(&backwards, StatsGroup::Total, Duration::zero()).await,
        Err(ProjectionError::Invalid(m)) if m.contains("empty")
    ));
    assert!(matches!(
        StatsGroup::parse("weekday"),
        Err(ProjectionError::Invalid(m)) if m.contains("weekday")
    ));
    assert!(matches!(
        kefu_projections::by_names(&["queue".into()]),
        Err(ProjectionError::UnknownProjection { name, .. }) if name == "queue"
    ));
    assert!(matches!(
        models.generation("stats", 99).await,
        Err(ProjectionError::UnknownGeneration { generation: 99, .. })
    ));
}

/// A live generation whose table lacks a column this build writes (an older kefu built it)
/// is refused with the fix named, and nothing in it is changed; a rebuild replaces it.
async fn a_generation_built_by_an_older_kefu_is_refused_by_name(b: Backend) {
    Script::new(b.log.clone()).all().await;
    let models = build_all(&b).await;
    let before = dump_live(&models).await;
    let catalog = Catalog::open(b.store.clone()).await.unwrap();
    let p = kefu_projections::by_names(&["conversations".into()])
        .unwrap()
        .remove(0);
    let live = catalog.live("conversations").await.unwrap().unwrap();
    let def = p.tables()[0];
    let column = def.column_names().last().unwrap();
    // An older kefu made no analysts' views, and its table lacked the column.
    b.store
        .transaction(vec![
            Stmt::new(format!("DROP VIEW conversations_{}", def.name), vec![]),
            Stmt::new(
                format!("ALTER TABLE {} DROP COLUMN {column}", live.table(def)),
                vec![],
            ),
        ])
        .await
        .unwrap();
    match catalog.attach_live(p.as_ref()).await {
        Err(e @ ProjectionError::Outdated { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("conversations") && msg.contains("kefu replay"),
                "{msg}"
            );
            assert!(msg.contains(column), "names the missing column: {msg}");
        }
        other => panic!("expected Outdated, got {:?}", other.map(|g| g.generation)),
    }
    let after = catalog.live("conversations").await.unwrap().unwrap();
    assert_eq!(
        after.position, live.position,
        "the refused generation is left as it was"
    );
    // A server started on it does not wait for someone to run `kefu replay`: it builds a
    // new generation from the log, swaps it in and follows the log from there.
    let running = LiveProjections::spawn(b.log.clone(), b.store.clone(), kefu_projections::all);
    running.wait_for(b.log.head().await.unwrap().unwrap()).await;
    running.shutdown().await;
    let rebuilt = catalog.live("conversations").await.unwrap().unwrap();
    assert!(rebuilt.generation > live.generation, "a new generation");
    assert_eq!(
        dump_live(&ReadModels::open(b.store.clone()).await.unwrap()).await,
        before,
        "a rebuild gives the rows back"
    );
}

/// A conversation left unanswered, reopened a day later and answered then counts two
/// queueings: one never answered, one answered in four minutes (not a day); the median and
/// 90th percentile are exact over the durations; hand-offs count events, each under its own
/// reason, beside conversations by their first reason; queues and agents carry their names;
/// weeks and months group the days.
async fn figures_are_timed_per_queueing_and_hand_offs_counted_per_event(b: Backend) {
    let mut script = Script::new(b.log.clone());
    script.all().await;
    script.reopened_next_day().await;
    let models = build_all(&b).await;
    let stats = models.live("stats").await.unwrap();
    let of = async |group: StatsGroup| {
        stats
            .stats(&StatsFilter::default(), group, Duration::hours(8))
            .await
            .unwrap()
    };
    let all = &of(StatsGroup::Total).await[0];
    // X2 (queued 06:12, taken 06:14, answered 06:15), X3 (waiting), X4 (waited and left; the
    // next day queued 06:26, taken 06:28, answered 06:30).
    assert_eq!((all.queueings, all.first_responses, all.waits), (4, 2, 2));
    assert_eq!(all.first_response_secs, Some(210.0), "3 and 4 minutes");
    assert_eq!(all.first_response_median_secs, Some(180.0));
    assert_eq!(all.first_response_p90_secs, Some(240.0));
    assert_eq!(
        (all.wait_secs, all.wait_median_secs, all.wait_p90_secs),
        (Some(120.0), Some(120.0), Some(120.0))
    );
    // Reopened, X4 is no longer closed: X1 in 3 minutes, X2 in 10.
    assert_eq!(all.closed, 2);
    assert_eq!(
        (
            all.resolution_secs,
            all.resolution_median_secs,
            all.resolution_p90_secs
        ),
        (Some(390.0), Some(180.0), Some(600.0))
    );
    assert_eq!((all.handed_off, all.handoffs), (3, 4));

    let by_reason: Vec<(Option<String>, i64, i64)> = of(StatsGroup::HandoffReason)
        .await
        .into_iter()
        .map(|r| (r.key, r.conversations, r.handoffs))
        .collect();
    assert_eq!(
        by_reason,
        vec![
            (None, 1, 0),
            (Some("customer_asked".into()), 2, 2),
            (Some("negative_emotion".into()), 1, 2),
        ],
        "conversations by their first reason, hand-offs each by its own"
    );

    let by_queue = of(StatsGroup::Queue).await;
    let own = by_queue
        .iter()
        .find(|r| r.key.as_deref() == Some(&*Q_SELF.to_string()))
        .unwrap();
    assert_eq!(own.name.as_deref(), Some("After-sales, self-operated"));
    assert_eq!(own.queueings, 4);
    let by_agent = of(StatsGroup::Agent).await;
    let li = by_agent
        .iter()
        .find(|r| r.key.as_deref() == Some(&*A1.to_string()))
        .unwrap();
    assert_eq!(li.name.as_deref(), Some("Li Wei"));
    assert_eq!(
        (li.first_responses, li.first_response_secs),
        (2, Some(210.0)),
        "A1 took both answered queueings"
    );

    let weeks: Vec<(Option<String>, i64)> = of(StatsGroup::Week)
        .await
        .into_iter()
        .map(|r| (r.key, r.conversations))
        .collect();
    assert_eq!(weeks, vec![(Some("2026-W47".into()), 4)]);
    let months: Vec<(Option<String>, i64, i64)> = of(StatsGroup::Month)
        .await
        .into_iter()
        .map(|r| (r.key, r.conversations, r.first_responses))
        .collect();
    assert_eq!(months, vec![(Some("2026-11".into()), 4, 2)]);
}

/// "As of T" is every event recorded at or before T, though the log's order is not the
/// order of its recorded times (writers' clocks and commits interleave by milliseconds); and
/// an analyst's "as of 14:12 business time" is every event that happened by then, whenever it
/// was written. The catalog says which clock a generation was bounded by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_a_time_admits_exactly_the_events_of_that_time_on_either_clock() {
    use kefu_eventlog::sqlite::{SqliteConfig, SqliteLog};
    use kefu_projections::Clock;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let log = std::sync::Arc::new(SqliteLog::open(SqliteConfig::new(&db)).await.unwrap());
    Script::new(log.clone()).all().await;
    let store = kefu_projections::ReadStore::open_sqlite(&dir.path().join("read.db")).unwrap();
    // Recorded times one millisecond apart in log order, then two neighbours of event k
    // swapped across the cutoff: k - 1 recorded just after it, k + 1 just before.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let base: i64 = 1_800_000_000_000_000;
    conn.execute(
        "UPDATE events SET recorded_at = ?1 + position * 1000",
        [base],
    )
    .unwrap();
    let events = log.read_all(Position::START, 10_000).await.unwrap();
    let k = events[events.len() / 2].position.0 as i64;
    let cutoff_micros = base + k * 1000;
    conn.execute(
        "UPDATE events SET recorded_at = ?1 + 1 WHERE position = ?2",
        [cutoff_micros, k - 1],
    )
    .unwrap();
    conn.execute(
        "UPDATE events SET recorded_at = ?1 - 1 WHERE position = ?2",
        [cutoff_micros, k + 1],
    )
    .unwrap();
    drop(conn);
    let cutoff = chrono::DateTime::from_timestamp_micros(cutoff_micros).unwrap();
    let events = log.read_all(Position::START, 10_000).await.unwrap();
    let count = |clock: Clock, at: chrono::DateTime<chrono::Utc>| {
        events.iter().filter(|e| clock.of(e) <= at).count() as i64
    };
    assert_eq!(
        count(Clock::Recorded, cutoff),
        k,
        "positions 1..=k, less k - 1, plus k + 1"
    );

    let built = |until: Until| {
        let (log, store) = (log.clone(), store.clone());
        async move {
            let (built, _) = rebuild(
                &*log,
                &store,
                kefu_projections::by_names(&["stats".into()]).unwrap(),
                until,
                |_| {},
            )
            .await
            .unwrap();
            built.into_iter().next().unwrap().generation
        }
    };
    let recorded = built(Until {
        time: Some(cutoff),
        ..Until::default()
    })
    .await;
    assert_eq!(
        recorded.events,
        count(Clock::Recorded, cutoff),
        "every event recorded at or before the cutoff, none after"
    );

    // Business time: 14:12 in Beijing, two minutes after X2 started; X3 and X4 came later.
    let business = built(Until {
        time: Some(t(12)),
        clock: Clock::Business,
        ..Until::default()
    })
    .await;
    assert_eq!(business.events, count(Clock::Business, t(12)));
    assert_eq!(business.until.clock, Clock::Business);
    let catalog = Catalog::open(store.clone()).await.unwrap();
    let stored = catalog.get("stats", business.generation).await.unwrap();
    assert_eq!(stored.until, business.until, "the catalog says which clock");
    let models = ReadModels::open(store.clone()).await.unwrap();
    let figures = models
        .generation("stats", business.generation)
        .await
        .unwrap()
        .stats(&StatsFilter::default(), StatsGroup::Total, Duration::zero())
        .await
        .unwrap();
    assert_eq!(
        figures[0].conversations, 2,
        "X1 and X2 had started by 14:12"
    );
}

/// BI tools query `stats_facts`, not `stats_g1_facts`: the views follow the live generation
/// through a replay, so a saved question answers the same after it; they show times as
/// timestamps, booleans as booleans and names beside ids.
async fn the_analysts_views_answer_the_same_across_a_replay(b: Backend) {
    Script::new(b.log.clone()).all().await;
    let live = LiveProjections::spawn(b.log.clone(), b.store.clone(), kefu_projections::all);
    live.wait_for(b.log.head().await.unwrap().unwrap()).await;
    live.shutdown().await;
    let question = "SELECT conversation, queue_name, agent_name, CAST(handed_off AS TEXT), \
                    CAST(started_at AS TEXT) FROM stats_facts ORDER BY conversation";
    let before = b.store.query(question, vec![]).await.unwrap();
    assert_eq!(before.len(), 4, "{before:?}");
    let x2 = before
        .iter()
        .find(|r| r[0].as_str() == Some(&*X2.to_string()))
        .unwrap();
    assert_eq!(x2[1].as_str(), Some("After-sales, self-operated"));
    assert_eq!(x2[2].as_str(), Some("Li Wei"));
    let started = x2[4].as_str().unwrap();
    assert!(
        started.contains("2026-11-20") && started.contains("06:10:00"),
        "a time, not milliseconds: {started}"
    );
    let (handed, type_of) = if b.store.is_postgres() {
        (
            "true",
            "SELECT CAST(pg_typeof(started_at) AS TEXT) FROM stats_facts LIMIT 1",
        )
    } else {
        ("1", "SELECT typeof(started_at) FROM stats_facts LIMIT 1")
    };
    assert_eq!(x2[3].as_str(), Some(handed));
    let ty = b.store.query(type_of, vec![]).await.unwrap();
    let expected = if b.store.is_postgres() {
        "timestamp with time zone"
    } else {
        "text"
    };
    assert_eq!(ty[0][0].as_str(), Some(expected));

    let old = Catalog::open(b.store.clone())
        .await
        .unwrap()
        .live("stats")
        .await
        .unwrap()
        .unwrap();
    build_all(&b).await;
    let new = Catalog::open(b.store.clone())
        .await
        .unwrap()
        .live("stats")
        .await
        .unwrap()
        .unwrap();
    assert!(
        new.generation > old.generation,
        "replayed into a new generation"
    );
    assert_eq!(
        b.store.query(question, vec![]).await.unwrap(),
        before,
        "the same question, the same answer"
    );
}
