//! The volume forecast backtested on generated history: three weeks of a help desk's
//! arrivals (seasonal by hour of day and day of week, Poisson noise), the model fitted on the
//! first two and scored on the third against the seasonal-naive forecast. The figures are
//! printed for BENCHMARKS.md (`cargo test -p kefu-tests --test forecast -- --nocapture`).

use chrono::FixedOffset;
use kefu_projections::forecast::backtest;
use kefu_tests::history::{HistoryConfig, plan};

#[test]
fn the_forecast_beats_seasonal_naive_on_generated_history() {
    let mut config = HistoryConfig::for_conversations(6_000);
    config.days = 21;
    let hours = config.days as usize * 24;
    let mut counts = vec![0.0; hours];
    for append in plan(&config) {
        let append = append.expect("the generator plans only what the deciders accept");
        for e in &append.events {
            if e.event_type == "ConversationStarted" {
                let slot = (append.at - config.start).num_hours();
                if let Some(c) = usize::try_from(slot).ok().and_then(|s| counts.get_mut(s)) {
                    *c += 1.0;
                }
            }
        }
    }
    let total: f64 = counts.iter().sum();
    assert_eq!(total, 6_000.0, "every conversation counted once");
    let beijing = FixedOffset::east_opt(8 * 3600).unwrap();
    let week = 24 * 7;
    let bt = backtest(&counts, config.start, beijing, week).unwrap();
    println!(
        "forecast backtest: {} conversations over {} days, last {} hours held out: WAPE {:.3}, seasonal-naive WAPE {:.3}",
        total, config.days, bt.hours, bt.wape, bt.naive_wape
    );
    assert!(bt.wape < bt.naive_wape, "{bt:?}");
    assert!(bt.wape < 0.5, "{bt:?}");
    // Shorter history still gives a forecast, if a worse one.
    let first_week = backtest(&counts[..week + 24], config.start, beijing, 24).unwrap();
    assert!(first_week.wape.is_finite());
}
