//! The switchboard: degradation switches an admin turns off and on at run time (the seed's
//! 降级开关), one stream for the whole desk (`switches-<SWITCHBOARD>`). Every server reads
//! the same stream, so a switch flipped through one server holds on all of them, survives
//! restarts, and the audit trail shows who flipped it and why.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::common::{MAX_LABEL_CHARS, require_text};
use crate::decider::{Decider, domain_events};
use crate::error::DomainError;
use crate::ids::SwitchBoardId;

/// The desk's one switchboard.
pub const SWITCHBOARD: SwitchBoardId =
    SwitchBoardId::from_uuid(Uuid::from_u128(0x6b65_6675_7377_6974_6368_6573_0000_0001));

/// What can be switched off.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Switch {
    /// The bot: new conversations go straight to humans, and the bot answers no one.
    Bot,
    /// The learned ranker: the bot answers in retrieval (BM25) order.
    Ranker,
    /// Emotion recognition: no assessments, no mood-driven hand-offs.
    Emotion,
    /// Search indexing: the index stops at the flip and serves what it has (stale); switched
    /// back on, it catches up from its checkpoint with nothing lost.
    SearchIndexing,
    /// The order-system gateway: triage predicts from the customer's words alone, with no
    /// order prior.
    OrderGateway,
}

impl Switch {
    pub const ALL: [Switch; 5] = [
        Switch::Bot,
        Switch::Ranker,
        Switch::Emotion,
        Switch::SearchIndexing,
        Switch::OrderGateway,
    ];
}

/// Which switches are off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SwitchBoard {
    pub off: BTreeSet<Switch>,
}

impl SwitchBoard {
    pub fn is_on(&self, switch: Switch) -> bool {
        !self.off.contains(&switch)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SwitchCommand {
    Set {
        switch: Switch,
        on: bool,
        /// Why: a drill, an incident number.
        reason: String,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SwitchFlipped {
    pub switch: Switch,
    pub on: bool,
    pub reason: String,
    pub at: DateTime<Utc>,
}

domain_events! {
    /// What happens on the switchboard.
    pub enum SwitchEvent in "switches" {
        SwitchFlipped = 1,
    }
}

pub struct SwitchBoardDecider;

impl Decider for SwitchBoardDecider {
    type Id = SwitchBoardId;
    type State = SwitchBoard;
    type Command = SwitchCommand;
    type Event = SwitchEvent;

    fn initial_state() -> SwitchBoard {
        SwitchBoard::default()
    }

    fn decide(
        state: &SwitchBoard,
        command: SwitchCommand,
    ) -> Result<Vec<SwitchEvent>, DomainError> {
        let SwitchCommand::Set {
            switch,
            on,
            reason,
            at,
        } = command;
        require_text("reason", &reason, MAX_LABEL_CHARS)?;
        // Setting a switch to where it is changes nothing and records nothing.
        if state.is_on(switch) == on {
            return Ok(vec![]);
        }
        Ok(vec![
            SwitchFlipped {
                switch,
                on,
                reason,
                at,
            }
            .into(),
        ])
    }

    fn evolve(mut state: SwitchBoard, event: &SwitchEvent) -> SwitchBoard {
        let SwitchEvent::SwitchFlipped(f) = event;
        if f.on {
            state.off.remove(&f.switch);
        } else {
            state.off.insert(f.switch);
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn set(switch: Switch, on: bool) -> SwitchCommand {
        SwitchCommand::Set {
            switch,
            on,
            reason: "drill 12".into(),
            at: Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap(),
        }
    }

    #[test]
    fn a_switch_flips_once_and_back() {
        let board = SwitchBoardDecider::initial_state();
        assert!(Switch::ALL.iter().all(|s| board.is_on(*s)));
        assert!(
            SwitchBoardDecider::decide(&board, set(Switch::Bot, true))
                .unwrap()
                .is_empty()
        );
        let off = SwitchBoardDecider::decide(&board, set(Switch::Bot, false)).unwrap();
        let board = off.iter().fold(board, SwitchBoardDecider::evolve);
        assert!(!board.is_on(Switch::Bot) && board.is_on(Switch::Ranker));
        assert!(
            SwitchBoardDecider::decide(&board, set(Switch::Bot, false))
                .unwrap()
                .is_empty()
        );
        let on = SwitchBoardDecider::decide(&board, set(Switch::Bot, true)).unwrap();
        assert!(
            on.iter()
                .fold(board, SwitchBoardDecider::evolve)
                .is_on(Switch::Bot)
        );
        let mut no_reason = set(Switch::Emotion, false);
        let SwitchCommand::Set { reason, .. } = &mut no_reason;
        reason.clear();
        assert!(SwitchBoardDecider::decide(&SwitchBoard::default(), no_reason).is_err());
    }
}
