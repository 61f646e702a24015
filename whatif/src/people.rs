//! People's side of a replay: what agents and waiting customers do, read from the record.
//!
//! - **Agents' handling** ([`Segment`]): each time a recorded chat was assigned, what its agent
//!   did from then on, as offsets from the assignment: replies, and how the assignment ended
//!   (closed, or transferred back to a queue; or the customer closed it meanwhile). In the
//!   replay the k-th assignment of a chat plays the chat's own k-th recorded segment, by
//!   whichever agent the assigner picked, offset from the replayed assignment; a chat the record
//!   never assigned that often (the replay handed it over where the bot kept it, or a transfer
//!   more) plays a segment drawn from those recorded for its queue in the same hour of day,
//!   else for its queue, else any ([`Handling`]).
//! - **Customers' patience** ([`Patience`]): a customer who left the queue in the record
//!   leaves the replay's queue after as long a wait; one who was served after `w` seconds waits
//!   at least `w`, and past that leaves at a time drawn from the record's patience: the
//!   Kaplan-Meier estimate over every recorded queueing (a left queue is an observed patience,
//!   a served one a patience known to be longer), conditioned on having waited `w`. Where the
//!   estimate never falls further, the customer waits for as long as it takes.
//! - **Surveys**: a customer answers the survey as long after the close as they did in the
//!   record, with the same score and comment, if the replay offered one.
//! - **Staffing changes** ([`StaffChange`]): agents added to a queue (with its skills, their
//!   seats and an optional daily shift), or recorded agents of a queue kept away for the whole
//!   window.
//!
//! Recorded agents come and go as their status changes were recorded (copied at their times).

use std::collections::BTreeMap;

use chrono::{DateTime, Timelike, Utc};
use kefu_domain::conversation::CloseReason;
use kefu_domain::ids::{ConversationId, QueueId};
use rand::Rng;
use serde::Serialize;

use crate::WhatIfError;

/// What an agent (or, meanwhile, the customer) did in an assignment, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SegmentAct {
    Replies {
        text: String,
    },
    Closes {
        reason: CloseReason,
    },
    TransfersToQueue {
        queue: QueueId,
        reason: String,
    },
    /// The customer closed the chat while the agent held it.
    CustomerCloses,
}

/// One recorded assignment of a chat: its queue, the hour of day (UTC) it began, and what
/// followed, as microseconds after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub queue: QueueId,
    pub hour: u32,
    pub acts: Vec<(i64, SegmentAct)>,
}

impl Segment {
    pub(crate) fn new(queue: QueueId, at: DateTime<Utc>) -> Self {
        Segment {
            queue,
            hour: at.hour(),
            acts: Vec::new(),
        }
    }
}

/// One recorded queueing of a chat, as far as the customer's patience goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Queueing {
    /// Seconds waited before an agent took it (a patience known to be at least this).
    pub served_after: Option<f64>,
    /// Seconds waited before the customer left the queue (their patience).
    pub left_after: Option<f64>,
}

/// The customers' patience in a queue, from every recorded queueing.
#[derive(Debug, Clone, Default)]
pub struct Patience {
    /// The Kaplan-Meier survival just after each time a customer left: (seconds, share still
    /// waiting), in time order.
    steps: Vec<(f64, f64)>,
    /// Queueings observed, and how many ended with the customer leaving.
    pub observed: usize,
    pub left: usize,
}

impl Patience {
    /// From observations `(seconds, left)`: `left` false is a wait cut short by service (or by
    /// the end of the record), a patience longer than `seconds`.
    pub fn estimate(mut observations: Vec<(f64, bool)>) -> Self {
        observations.sort_by(|a, b| a.0.total_cmp(&b.0));
        let observed = observations.len();
        let left = observations.iter().filter(|o| o.1).count();
        let mut steps = Vec::new();
        let mut survival = 1.0;
        let mut i = 0;
        while i < observations.len() {
            let t = observations[i].0;
            let at_risk = observations.len() - i;
            let mut leaving = 0;
            let mut j = i;
            while j < observations.len() && observations[j].0 == t {
                leaving += usize::from(observations[j].1);
                j += 1;
            }
            if leaving > 0 {
                survival *= 1.0 - leaving as f64 / at_risk as f64;
                steps.push((t, survival));
            }
            i = j;
        }
        Patience {
            steps,
            observed,
            left,
        }
    }

    fn survival(&self, secs: f64) -> f64 {
        self.steps
            .iter()
            .take_while(|(t, _)| *t <= secs)
            .last()
            .map_or(1.0, |s| s.1)
    }

    /// How long a customer who has waited `waited` seconds waits in all, drawn from the
    /// estimate; `None`: as long as it takes.
    pub fn draw(&self, waited: f64, rng: &mut impl Rng) -> Option<f64> {
        let target = self.survival(waited) * rng.random::<f64>();
        self.steps
            .iter()
            .find(|(t, s)| *t > waited && *s <= target)
            .map(|s| s.0)
    }
}

/// Every recorded segment, and where to draw one for a chat that has none of its own.
#[derive(Debug, Clone, Default)]
pub struct Handling {
    pub segments: BTreeMap<ConversationId, Vec<Segment>>,
    by_queue_hour: BTreeMap<(QueueId, u32), Vec<(ConversationId, usize)>>,
    by_queue: BTreeMap<QueueId, Vec<(ConversationId, usize)>>,
    all: Vec<(ConversationId, usize)>,
}

impl Handling {
    pub fn new(segments: BTreeMap<ConversationId, Vec<Segment>>) -> Self {
        let mut h = Handling {
            segments,
            ..Default::default()
        };
        for (chat, list) in &h.segments {
            for (i, s) in list.iter().enumerate() {
                h.by_queue_hour
                    .entry((s.queue, s.hour))
                    .or_default()
                    .push((*chat, i));
                h.by_queue.entry(s.queue).or_default().push((*chat, i));
                h.all.push((*chat, i));
            }
        }
        h
    }

    pub fn count(&self) -> usize {
        self.all.len()
    }

    /// The chat's own `k`-th segment, else one drawn for its queue and hour.
    pub fn for_assignment(
        &self,
        chat: ConversationId,
        k: usize,
        queue: QueueId,
        at: DateTime<Utc>,
        rng: &mut impl Rng,
    ) -> Option<&Segment> {
        if let Some(own) = self.segments.get(&chat).and_then(|l| l.get(k)) {
            return Some(own);
        }
        let pool = [
            self.by_queue_hour.get(&(queue, at.hour())),
            self.by_queue.get(&queue),
            Some(&self.all),
        ]
        .into_iter()
        .flatten()
        .find(|p| !p.is_empty())?;
        let (chat, i) = pool[rng.random_range(0..pool.len())];
        self.segments.get(&chat).and_then(|l| l.get(i))
    }
}

/// A staffing change: `count` agents added to a queue (negative: recorded agents who serve it
/// kept away), with `seats` chats at once and an optional daily shift (UTC hours, `from` up
/// to `to`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffChange {
    pub queue: String,
    pub count: i32,
    pub seats: u32,
    pub shift: Option<(u32, u32)>,
}

impl StaffChange {
    /// A change from its parts (`seats`: 2 unless given), with every check
    /// [`StaffChange::parse`] makes beyond the syntax; the error is the reason.
    pub fn new(
        queue: &str,
        count: i32,
        seats: Option<u32>,
        shift: Option<(u32, u32)>,
    ) -> Result<Self, String> {
        let queue = queue.trim();
        if queue.is_empty() {
            return Err("the queue name is empty".into());
        }
        if let Some((from, to)) = shift {
            if let Some(h) = [from, to].into_iter().find(|h| *h > 24) {
                return Err(format!("{h} is not an hour from 0 to 24"));
            }
            if from >= to {
                return Err(format!("the shift must end after it starts ({from}-{to})"));
            }
        }
        if count == 0 || count.abs() > 1000 {
            return Err(format!("{count} agents: add or remove from 1 to 1000"));
        }
        if count < 0 && (shift.is_some() || seats.is_some()) {
            return Err("agents kept away are away all window: no seats or shift".into());
        }
        let seats = seats.unwrap_or(2);
        if !(1..=50).contains(&seats) {
            return Err(format!("{seats} seats: from 1 to 50"));
        }
        Ok(StaffChange {
            queue: queue.to_owned(),
            count,
            seats,
            shift,
        })
    }

    /// `QUEUE=N[xSEATS][@HH-HH]`: `售后=3`, `售后=+2x3@08-20`, `综合=-1`.
    pub fn parse(spec: &str) -> Result<Self, WhatIfError> {
        let bad = |reason: String| WhatIfError::BadChange {
            change: spec.to_owned(),
            reason,
        };
        let (queue, rest) = spec
            .split_once('=')
            .ok_or_else(|| bad("expected QUEUE=N[xSEATS][@HH-HH]".into()))?;
        let (rest, shift) = match rest.split_once('@') {
            Some((rest, shift)) => {
                let (from, to) = shift
                    .split_once('-')
                    .ok_or_else(|| bad(format!("the shift {shift:?} is not HH-HH")))?;
                let hour = |h: &str| {
                    h.trim()
                        .parse::<u32>()
                        .map_err(|_| bad(format!("{h:?} is not an hour from 0 to 24")))
                };
                (rest, Some((hour(from)?, hour(to)?)))
            }
            None => (rest, None),
        };
        let (count, seats) = match rest.split_once('x') {
            Some((count, seats)) => (count, Some(seats)),
            None => (rest, None),
        };
        let count: i32 = count
            .trim()
            .trim_start_matches('+')
            .parse()
            .map_err(|_| bad(format!("{count:?} is not a whole number of agents")))?;
        let seats = seats
            .map(|s| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|_| bad(format!("{s:?} seats: from 1 to 50")))
            })
            .transpose()?;
        StaffChange::new(queue, count, seats, shift).map_err(bad)
    }
}

/// `QUEUE=SECS`: a first-response target for a queue.
pub fn parse_sla(spec: &str) -> Result<(String, i64), WhatIfError> {
    let bad = |reason: String| WhatIfError::BadChange {
        change: spec.to_owned(),
        reason,
    };
    let (queue, secs) = spec
        .split_once('=')
        .ok_or_else(|| bad("expected QUEUE=SECONDS".into()))?;
    let secs = secs
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|s| (1..=7 * 24 * 3600).contains(s))
        .ok_or_else(|| bad(format!("{secs:?}: seconds from 1 to a week")))?;
    if queue.trim().is_empty() {
        return Err(bad("the queue name is empty".into()));
    }
    Ok((queue.trim().to_owned(), secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn a_customer_who_left_sets_the_survival_and_a_served_one_only_the_risk() {
        // Four queueings: left at 10 s and 30 s, served after 20 s and 40 s.
        let p = Patience::estimate(vec![
            (10.0, true),
            (20.0, false),
            (30.0, true),
            (40.0, false),
        ]);
        assert_eq!(p.steps.len(), 2);
        assert!((p.steps[0].1 - 0.75).abs() < 1e-9);
        // At 30 s two remain at risk, one leaves: 0.75 * 1/2.
        assert!((p.steps[1].1 - 0.375).abs() < 1e-9);
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            // Someone who waited 35 s already outlasted every observed departure.
            assert_eq!(p.draw(35.0, &mut rng), None);
            if let Some(t) = p.draw(15.0, &mut rng) {
                assert_eq!(t, 30.0);
            }
        }
    }

    #[test]
    fn nobody_leaves_where_nobody_left() {
        let p = Patience::estimate(vec![(5.0, false), (50.0, false)]);
        assert_eq!(p.draw(0.0, &mut StdRng::seed_from_u64(3)), None);
    }

    #[test]
    fn staffing_changes_parse_and_bad_ones_name_what_is_wrong() {
        assert_eq!(
            StaffChange::parse("售后=+2x3@08-20").unwrap(),
            StaffChange {
                queue: "售后".into(),
                count: 2,
                seats: 3,
                shift: Some((8, 20))
            }
        );
        assert_eq!(StaffChange::parse("综合=-1").unwrap().count, -1);
        for (spec, names) in [
            ("售后", "QUEUE=N"),
            ("=2", "queue name"),
            ("售后=two", "whole number"),
            ("售后=0", "from 1 to 1000"),
            ("售后=2x0", "seats"),
            ("售后=2@20-08", "end after it starts"),
            ("售后=2@8", "HH-HH"),
            ("售后=-1x2", "away all window"),
        ] {
            let e = StaffChange::parse(spec).unwrap_err().to_string();
            assert!(e.contains(names), "{spec}: {e}");
            assert!(e.contains(spec), "{spec}: {e}");
        }
        assert_eq!(parse_sla("投诉=120").unwrap(), ("投诉".into(), 120));
        assert!(parse_sla("投诉=-5").is_err());
        assert!(parse_sla("投诉").is_err());
    }
}
