//! An analyst's check, kept apart from the code it checks: kefu's statistics on a generated
//! history against SQL over the raw log (PostgreSQL's own `percentile_disc`, grouping and
//! JSON operators), figure by figure. Written as an analyst with psql would, from the event
//! types and their fields alone.

use std::collections::BTreeMap;

use chrono::Duration;
use kefu_eventlog::postgres::{PostgresConfig, PostgresLog};
use kefu_eventlog::testing;
use kefu_projections::stats::{StatsFilter, StatsGroup};
use kefu_projections::{ReadModels, ReadStore, Until, rebuild};
use kefu_tests::history::{HistoryConfig, write};

/// The first agent reply after each queueing (and before the conversation closes or queues
/// again, dated no earlier than the queueing), in whole milliseconds as kefu keeps times.
const FIRST_RESPONSES: &str = "
    WITH q AS (
        SELECT stream_id, version, payload->>'queue' AS queue,
               floor(extract(epoch FROM (payload->>'at')::timestamptz) * 1000) AS at
        FROM events WHERE event_type = 'ConversationQueued'),
    r AS (
        SELECT stream_id, version,
               floor(extract(epoch FROM (payload->>'at')::timestamptz) * 1000) AS at
        FROM events WHERE event_type = 'AgentTurnRecorded'),
    b AS (
        SELECT stream_id, version FROM events
        WHERE event_type IN ('ConversationQueued', 'ConversationClosed')),
    answered AS (
        SELECT q.queue, (
            SELECT r.at FROM r
            WHERE r.stream_id = q.stream_id AND r.version > q.version AND r.at >= q.at
              AND NOT EXISTS (SELECT 1 FROM b WHERE b.stream_id = q.stream_id
                                AND b.version > q.version AND b.version < r.version)
            ORDER BY r.version LIMIT 1) - q.at AS ms
        FROM q)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statistics_agree_with_sql_over_the_raw_log() {
    if !testing::available().await {
        return;
    }
    let (log_schema, read_schema) = (testing::fresh_schema(), testing::fresh_schema());
    let log =
        PostgresLog::open(PostgresConfig::new(testing::url()).with_schema(log_schema.clone()))
            .await
            .unwrap();
    let summary = write(
        &log,
        &HistoryConfig::for_conversations(1200).with_seed(15),
        4,
    )
    .await
    .unwrap();
    assert!(summary.conversations >= 1000, "{summary:?}");
    let store = ReadStore::open_postgres(&testing::url(), Some(&read_schema))
        .await
        .unwrap();
    rebuild(
        &log,
        &store,
        kefu_projections::by_names(&["stats".into()]).unwrap(),
        Until::default(),
        |_| {},
    )
    .await
    .unwrap();
    let stats = ReadModels::open(store)
        .await
        .unwrap()
        .live("stats")
        .await
        .unwrap();
    let kefu = async |group| {
        stats
            .stats(&StatsFilter::default(), group, Duration::hours(8))
            .await
            .unwrap()
    };
    let sql = testing::client().await;
    sql.batch_execute(&format!("SET search_path TO {log_schema}"))
        .await
        .unwrap();

    // Conversations per day in Beijing.
    let by_day: BTreeMap<String, i64> = sql
        .query(
            "SELECT to_char((payload->>'at')::timestamptz AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD'),
                    COUNT(*)
             FROM events WHERE event_type = 'ConversationStarted'
               AND payload->>'channel' <> 'probe'
             GROUP BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let ours: BTreeMap<String, i64> = kefu(StatsGroup::Day)
        .await
        .into_iter()
        .map(|r| (r.key.unwrap(), r.conversations))
        .collect();
    assert_eq!(ours, by_day);
    assert!(by_day.len() >= 2, "{by_day:?}");

    // Hand-offs by reason: every hand-off event, under its own reason.
    let handoffs: BTreeMap<String, i64> = sql
        .query(
            "SELECT payload->>'reason', COUNT(*) FROM events
             WHERE event_type = 'HandedToHuman' GROUP BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let ours: BTreeMap<String, i64> = kefu(StatsGroup::HandoffReason)
        .await
        .into_iter()
        .filter_map(|r| Some((r.key?, r.handoffs)))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(ours, handoffs);

    // First response per queueing: count, mean, median and 90th percentile, overall and per
    // queue.
    let first: BTreeMap<String, (i64, f64, f64, f64)> = sql
        .query(
            &format!(
                "{FIRST_RESPONSES}
                 SELECT COALESCE(queue, 'all'), COUNT(ms), CAST(AVG(ms) AS float8),
                        CAST(percentile_disc(0.5) WITHIN GROUP (ORDER BY ms) AS float8),
                        CAST(percentile_disc(0.9) WITHIN GROUP (ORDER BY ms) AS float8)
                 FROM answered WHERE ms IS NOT NULL
                 GROUP BY GROUPING SETS ((queue), ())"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let secs = |i: usize| r.get::<_, f64>(i) / 1000.0;
            (r.get(0), (r.get(1), secs(2), secs(3), secs(4)))
        })
        .collect();
    let figures = |r: &kefu_projections::stats::StatsRow| {
        (
            r.first_responses,
            r.first_response_secs.unwrap(),
            r.first_response_median_secs.unwrap(),
            r.first_response_p90_secs.unwrap(),
        )
    };
    let mut ours: BTreeMap<String, (i64, f64, f64, f64)> = kefu(StatsGroup::Queue)
        .await
        .into_iter()
        .filter(|r| r.first_responses > 0)
        .map(|r| (r.key.clone().unwrap(), figures(&r)))
        .collect();
    ours.insert("all".into(), figures(&kefu(StatsGroup::Total).await[0]));
    assert_eq!(ours.len(), first.len(), "{ours:?}\n{first:?}");
    for (queue, (n, mean, median, p90)) in &first {
        let (on, omean, omedian, op90) = ours[queue];
        assert_eq!((on, omedian, op90), (*n, *median, *p90), "queue {queue}");
        assert!(
            (omean - mean).abs() < 1e-6,
            "queue {queue}: {omean} against {mean}"
        );
    }

    // Resolution: start to close, over the conversations closed now (not reopened since).
    let row = sql
        .query_one(
            "WITH s AS (
                 SELECT stream_id, floor(extract(epoch FROM (payload->>'at')::timestamptz) * 1000) AS at
                 FROM events WHERE event_type = 'ConversationStarted'),
             c AS (
                 SELECT DISTINCT ON (stream_id) stream_id, event_type,
                        floor(extract(epoch FROM (payload->>'at')::timestamptz) * 1000) AS at
                 FROM events WHERE event_type IN ('ConversationClosed', 'ConversationReopened')
                 ORDER BY stream_id, version DESC)
             SELECT COUNT(*),
                    CAST(percentile_disc(0.5) WITHIN GROUP (ORDER BY c.at - s.at) AS float8),
                    CAST(percentile_disc(0.9) WITHIN GROUP (ORDER BY c.at - s.at) AS float8)
             FROM s JOIN c USING (stream_id) WHERE c.event_type = 'ConversationClosed'",
            &[],
        )
        .await
        .unwrap();
    let total = &kefu(StatsGroup::Total).await[0];
    assert_eq!(total.closed, row.get::<_, i64>(0));
    assert_eq!(
        (total.resolution_median_secs, total.resolution_p90_secs),
        (
            Some(row.get::<_, f64>(1) / 1000.0),
            Some(row.get::<_, f64>(2) / 1000.0)
        )
    );

    testing::drop_schema(&log_schema).await;
    testing::drop_schema(&read_schema).await;
}
