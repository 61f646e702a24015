//! What-if replay (`kefu_whatif`) on recorded histories made by the simulation of the desk,
//! whose log is written by the production reactions: played again unchanged it must give the
//! record back; with a higher answer threshold the bot must keep fewer chats.

use chrono::{TimeZone, Utc};
use kefu_tests::sim::{self, SimConfig};
use kefu_whatif::{History, Report, Settings, Window, differing, replay};

/// A recorded day of a small desk whose reactions keep up with people, as production's do
/// (the replay's model: the bot answers each message before the customer writes again), with
/// no faults, and more customers and steps than CI's many seeds.
fn recorded(seed: u64) -> Vec<kefu_eventlog::RecordedEvent> {
    let config = SimConfig {
        customers: 40,
        agents: 3,
        steps: 700,
        faults: false,
        keep_up: true,
    };
    sim::run_blocking(seed, &config)
        .expect("the simulation runs")
        .events
}

fn the_day() -> Window {
    Window::new(
        Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 3, 3, 0, 0, 0).unwrap(),
    )
    .unwrap()
}

fn defaults() -> Settings {
    Settings::from_thresholds(kefu_bot::faq::Thresholds::default())
}

/// The simulation runs on its own paused-clock runtime; the replay on another.
fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn an_unchanged_replay_gives_the_record_back_and_a_higher_answer_threshold_keeps_fewer_chats() {
    // Contained chats, without and with the change, over the seeds.
    let mut contained = (0, 0);
    for seed in 1..=6 {
        let events = recorded(seed);
        let history = History::from_events(events, the_day());
        assert!(
            history.chats.len() >= 20,
            "seed {seed}: only {} chats recorded",
            history.chats.len()
        );
        let base = block(replay(&history, &defaults())).unwrap();
        let off = differing(&history.chats, &history.recorded, &base.outcomes);
        for chat in &history.chats {
            let (r, b) = (&history.recorded[chat], &base.outcomes[chat]);
            if r.handed_off != b.handed_off {
                eprintln!("seed {seed}, chat {chat}:\n recorded {r:?}\n replayed {b:?}");
            }
        }
        assert_eq!(
            off,
            0,
            "seed {seed}: the unchanged replay handed {off} of {} chats over differently from the record",
            history.chats.len()
        );
        for chat in &history.chats {
            let (r, b) = (&history.recorded[chat], &base.outcomes[chat]);
            assert_eq!(
                (r.bot_replies, r.bot_answers, &r.routed_to.is_some()),
                (b.bot_replies, b.bot_answers, &b.routed_to.is_some()),
                "seed {seed}, chat {chat}: recorded {r:?}, replayed {b:?}"
            );
        }

        let strict = Settings {
            answer_threshold: 0.99,
            ..defaults()
        };
        let report = block(Report::run(&history, defaults(), strict)).unwrap();
        let all = report.rows.last().unwrap();
        assert_eq!(all.hour, "all");
        assert_eq!(report.baseline_differs, 0);
        assert!(
            all.recorded.bot_answers > 0,
            "seed {seed}: the record has no bot answers to lose"
        );
        assert!(
            all.changed.bot_answers < all.baseline.bot_answers,
            "seed {seed}: answers {} with the strict threshold, {} without",
            all.changed.bot_answers,
            all.baseline.bot_answers
        );
        eprintln!(
            "seed {seed}: chats {} kept {} / {}, contained {} / {}, answers {} / {}",
            all.recorded.chats,
            all.baseline.kept,
            all.changed.kept,
            all.baseline.contained,
            all.changed.contained,
            all.baseline.bot_answers,
            all.changed.bot_answers
        );
        contained.0 += all.baseline.contained;
        contained.1 += all.changed.contained;
        assert!(all.changed.contained <= all.baseline.contained);
        let csv = report.csv();
        assert_eq!(csv.lines().count(), report.rows.len() + 1, "{csv}");
        assert_eq!(report.jsonl().lines().count(), report.rows.len() + 1);
        let svg = report.svg();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 3, "{svg}");
    }
    assert!(
        contained.1 < contained.0,
        "contained {} with the strict threshold, {} without",
        contained.1,
        contained.0
    );
}

/// The replay reads the recorded log and writes only its own scratch log.
#[test]
fn a_replay_leaves_the_recorded_log_as_it_was() {
    let events = recorded(3);
    block(replays_leave_the_log(events));
}

async fn replays_leave_the_log(events: Vec<kefu_eventlog::RecordedEvent>) {
    let log = kefu_eventlog::memory::MemoryLog::new();
    for e in &events {
        let copy = kefu_eventlog::NewEvent::copy_of(e);
        use kefu_eventlog::EventLog;
        log.append(
            &e.stream_id,
            kefu_eventlog::ExpectedVersion::Any,
            vec![copy],
        )
        .await
        .unwrap();
    }
    let before = log.snapshot();
    let history = History::read(&log, the_day()).await.unwrap();
    let strict = Settings {
        answer_threshold: 0.99,
        ..defaults()
    };
    Report::run(&history, defaults(), strict).await.unwrap();
    assert_eq!(log.snapshot(), before);
}

#[test]
fn a_window_must_end_after_it_starts() {
    let at = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
    let e = Window::new(at, at).unwrap_err();
    assert!(e.to_string().contains("must end after it starts"), "{e}");
}
