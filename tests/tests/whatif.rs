//! What-if replay (`kefu_whatif`) on recorded histories made by the simulation of the desk,
//! whose log is written by the production reactions: played again unchanged it must give the
//! record back; with a higher answer threshold the bot must keep fewer chats.

use chrono::{TimeZone, Utc};
use kefu_tests::sim::{self, SimConfig};
use kefu_whatif::people::StaffChange;
use kefu_whatif::report::{Chart, Figures};
use kefu_whatif::{History, Outcome, Report, Settings, Window, replay};

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

/// Every figure of a chat the replay gives back when nothing changed, but for who took it.
fn people_side(o: &Outcome) -> impl PartialEq + std::fmt::Debug {
    (
        o.queued_at,
        o.first_wait_secs,
        o.first_agent_reply_at,
        o.abandoned,
        o.closed_at,
        o.survey_score,
    )
}

/// The bot's side is given back exactly. The people's side is given back within the stated
/// tolerance, not exactly: the recorded assigner read its queues a few events behind the log
/// (as a live read model lags, and as the simulation has it), the replay's reads them
/// up to date, so now and then an agent is seen free a moment earlier and later chats wait
/// differently.
#[test]
fn an_unchanged_replay_gives_the_record_back_bot_and_people_alike() {
    let (mut chats, mut queued, mut off, mut other_agent) = (0, 0, 0, 0);
    for seed in 1..=6 {
        let history = History::from_events(recorded(seed), the_day());
        assert!(
            history.chats.len() >= 20,
            "seed {seed}: only {} chats recorded",
            history.chats.len()
        );
        // Nothing changed in either run: the two must agree to the last figure, seed for seed.
        let report = Report::run(&history, defaults(), defaults(), &[1, 2]).unwrap();
        assert!(
            report.within_tolerance,
            "seed {seed}: {:?}",
            report.baseline_off
        );
        assert_eq!(report.baseline_differs, 0, "seed {seed}: hand-offs differ");
        for row in &report.rows {
            assert_eq!(
                row.baseline, row.changed,
                "seed {seed}: two unchanged replays differ"
            );
        }
        let base = block(replay(&history, &defaults(), 1)).unwrap();
        for chat in &history.chats {
            let (r, b) = (&history.recorded[chat], &base.outcomes[chat]);
            assert_eq!(
                (
                    r.handed_off,
                    r.bot_replies,
                    r.bot_answers,
                    &r.routed_to.is_some(),
                    r.queue
                ),
                (
                    b.handed_off,
                    b.bot_replies,
                    b.bot_answers,
                    &b.routed_to.is_some(),
                    b.queue
                ),
                "seed {seed}, chat {chat}: recorded {r:?}, replayed {b:?}"
            );
            off += usize::from(people_side(r) != people_side(b));
            other_agent += usize::from(r.agents != b.agents);
        }
        chats += history.chats.len();
        queued += history
            .recorded
            .values()
            .filter(|o| o.queued_at.is_some())
            .count();
    }
    eprintln!(
        "{off} of {chats} chats waited or were served differently; {other_agent} went to other agents; {queued} queued"
    );
    assert!(
        queued >= 100,
        "only {queued} chats waited for a person over the seeds"
    );
    assert!(
        off * 20 <= chats,
        "{off} of {chats} chats came out differently"
    );
    assert!(
        other_agent * 10 <= queued,
        "{other_agent} of {queued} chats went to other agents"
    );
}

#[test]
fn a_higher_answer_threshold_keeps_fewer_chats() {
    // Contained chats, without and with the change, over the seeds.
    let mut contained = (0, 0);
    for seed in 1..=6 {
        let history = History::from_events(recorded(seed), the_day());
        let strict = Settings {
            answer_threshold: 0.99,
            ..defaults()
        };
        let report = Report::run(&history, defaults(), strict, &[1, 2]).unwrap();
        assert_eq!(report.baseline_differs, 0);
        assert!(report.within_tolerance, "{:?}", report.baseline_off);
        let all = report.row("all", "all").unwrap();
        let [recorded, base, changed, change, _] = all.compare(|f| Some(f.bot_answers as f64));
        assert!(
            recorded.unwrap() > 0.0,
            "seed {seed}: the record has no bot answers to lose"
        );
        assert!(
            change.unwrap() < 0.0,
            "seed {seed}: answers {changed:?} with the strict threshold, {base:?} without",
        );
        let [_, base, changed, ..] = all.compare(|f| Some(f.contained as f64));
        eprintln!("seed {seed}: contained {base:?} / {changed:?}");
        contained.0 += base.unwrap() as usize;
        contained.1 += changed.unwrap() as usize;
        assert!(changed <= base);
        let csv = report.csv();
        assert_eq!(csv.lines().count(), report.rows.len() + 1, "{csv}");
        assert_eq!(report.jsonl().lines().count(), report.rows.len() + 1);
        let svg = report.svg(Chart::Containment, "all");
        assert!(svg.starts_with("<svg"), "{svg}");
    }
    assert!(
        contained.1 < contained.0,
        "contained {} with the strict threshold, {} without",
        contained.1,
        contained.0
    );
}

/// Each queue's recorded figures over the whole day.
fn queues_of(report: &Report) -> Vec<&kefu_whatif::report::ReportRow> {
    report
        .rows
        .iter()
        .filter(|r| r.hour == "all" && r.queue != "all")
        .collect()
}

fn adding(queue: &str, count: i32) -> Settings {
    Settings {
        staff: vec![StaffChange {
            queue: queue.into(),
            count,
            seats: 3,
            shift: None,
        }],
        ..defaults()
    }
}

#[test]
fn adding_agents_to_an_overloaded_queue_lowers_its_waits() {
    let mut tried = 0;
    for seed in 1..=6 {
        let history = History::from_events(recorded(seed), the_day());
        let unchanged = Report::run(&history, defaults(), defaults(), &[1]).unwrap();
        // The queue its customers waited longest in.
        let Some(busiest) = queues_of(&unchanged)
            .into_iter()
            .filter(|r| r.recorded.wait_mean_secs().is_some_and(|w| w >= 60.0))
            .max_by(|a, b| {
                a.recorded
                    .wait_mean_secs()
                    .partial_cmp(&b.recorded.wait_mean_secs())
                    .unwrap()
            })
        else {
            continue;
        };
        tried += 1;
        let queue = busiest.queue.clone();
        let report = Report::run(&history, defaults(), adding(&queue, 3), &[1, 2, 3]).unwrap();
        let row = report.row("all", &queue).unwrap();
        let [recorded, base, changed, change, sd] = row.compare(Figures::wait_mean_secs);
        eprintln!(
            "seed {seed}, {queue}: mean wait recorded {recorded:?}, unchanged {base:?}, with 3 more agents {changed:?} (change {change:?} ± {sd:?})"
        );
        assert!(
            change.unwrap() < 0.0,
            "seed {seed}: adding agents to {queue} did not lower its waits"
        );
        // Nobody waits longer, so nobody more leaves the queue. (SLA breaches may not fall: a
        // customer who left before the deadline in the record is now served, by a drawn
        // handling that may reply late.)
        let [_, base, changed, ..] = row.compare(|f| Some(f.abandoned as f64));
        assert!(
            changed <= base,
            "seed {seed}: left the queue {base:?} -> {changed:?}"
        );
        // The added agents took chats.
        let added: f64 = report
            .agents
            .iter()
            .filter(|a| a.name.starts_with("what-if "))
            .map(|a| a.changed)
            .sum();
        assert!(added > 0.0, "seed {seed}: the added agents took no chat");
    }
    assert!(tried >= 3, "only {tried} seeds had a queue that overloaded");
}

#[test]
fn a_change_to_a_queue_that_never_overloaded_changes_nothing() {
    let mut tried = 0;
    for seed in 1..=6 {
        let history = History::from_events(recorded(seed), the_day());
        let unchanged = Report::run(&history, defaults(), defaults(), &[1]).unwrap();
        // A queue whose every chat was taken at once, and no customer left, in the replay.
        for calm in queues_of(&unchanged).into_iter().filter(|r| {
            r.baseline[0].queued > 0
                && r.baseline[0].wait_max_secs == 0
                && r.baseline[0].abandoned == 0
                && r.baseline[0].assigned == r.baseline[0].queued
        }) {
            tried += 1;
            let report = Report::run(&history, defaults(), adding(&calm.queue, 2), &[1]).unwrap();
            eprintln!("seed {seed}: {} never overloaded", calm.queue);
            for row in &report.rows {
                let (b, c) = (&row.baseline[0], &row.changed[0]);
                assert_eq!(
                    (
                        b.queued,
                        b.assigned,
                        b.abandoned,
                        b.wait_total_secs,
                        b.sla_breaches
                    ),
                    (
                        c.queued,
                        c.assigned,
                        c.abandoned,
                        c.wait_total_secs,
                        c.sla_breaches
                    ),
                    "seed {seed}: more agents in {} changed {} at {}",
                    calm.queue,
                    row.queue,
                    row.hour
                );
                assert_eq!(
                    (b.kept, b.contained, b.csat()),
                    (c.kept, c.contained, c.csat())
                );
            }
        }
    }
    assert!(tried >= 1, "no seed had a queue that never overloaded");
}

#[test]
fn a_retired_queue_sends_its_chats_to_the_others() {
    let mut moved = 0.0;
    for seed in 1..=3 {
        let history = History::from_events(recorded(seed), the_day());
        let changed = Settings {
            retired_queues: vec!["投诉".into()],
            ..defaults()
        };
        let report = Report::run(&history, defaults(), changed, &[1]).unwrap();
        let queued = |queue: &str, run: fn(&kefu_whatif::report::ReportRow) -> &Figures| {
            report.row("all", queue).map_or(0, |r| run(r).queued)
        };
        let complaints = queued("投诉", |r| &r.baseline[0]);
        assert_eq!(queued("投诉", |r| &r.changed[0]), 0, "seed {seed}");
        // Every chat still reaches a person: the others take the complaints.
        let others = |run: fn(&kefu_whatif::report::ReportRow) -> &Figures| {
            queued("综合", run) + queued("售后", run)
        };
        assert_eq!(
            others(|r| &r.changed[0]),
            others(|r| &r.baseline[0]) + complaints,
            "seed {seed}"
        );
        let all = report.row("all", "all").unwrap();
        assert_eq!(all.baseline[0].handed_off, all.changed[0].handed_off);
        moved += complaints as f64;
    }
    assert!(moved > 0.0, "no complaint was queued on any seed");
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
    Report::run(&history, defaults(), strict, &[1]).unwrap();
    assert_eq!(log.snapshot(), before);
}

#[test]
fn a_window_must_end_after_it_starts() {
    let at = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
    let e = Window::new(at, at).unwrap_err();
    assert!(e.to_string().contains("must end after it starts"), "{e}");
}
