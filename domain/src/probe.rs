//! Probe runs (the seed's daily automated verification): on a schedule, kefu asks its own bot
//! questions whose right answer is known, through the customer's entry point, and records how
//! many it answered right. One stream per run, `probe-<run id>`, the id derived from the
//! schedule slot ([`ProbeRunId::for_slot`]): two probe workers waking for the same slot name
//! the same stream, and the second one's `Start` finds the run started and is refused, so a
//! slot is probed once.
//!
//! The decider judges the checks: a probe passes only when the bot answered, and answered
//! with the expected entry. Offering a choice, handing over, or saying nothing in time fail.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::common::{MAX_TEXT_CHARS, require_text};
use crate::decider::{Decider, domain_events};
use crate::error::DomainError;
use crate::ids::{ConversationId, KnowledgeEntryId, ProbeRunId};

/// Most questions one run asks.
pub const MAX_PROBES: u32 = 1000;

/// Mixed into a slot's start (epoch milliseconds) to make its run id.
const SLOT_MASK: u128 = 0x6b65_6675_7072_6f62_6500_0000_0000_0000;

impl ProbeRunId {
    /// The run of the schedule slot starting at `slot`: a version 8 (custom) UUID fixed by the
    /// slot, so it never equals a minted UUIDv7.
    pub fn for_slot(slot: DateTime<Utc>) -> Self {
        let millis = u128::from(slot.timestamp_millis().max(0).unsigned_abs());
        ProbeRunId::from_uuid(
            uuid::Builder::from_u128(SLOT_MASK ^ millis)
                .with_version(uuid::Version::Custom)
                .with_variant(uuid::Variant::RFC4122)
                .into_uuid(),
        )
    }

    /// Whether this id is some slot's run (as opposed to an id from elsewhere).
    pub fn is_slot_run(&self) -> bool {
        let id: Uuid = self.as_uuid();
        id.get_version_num() == 8
    }
}

/// What the bot did with one probe question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeReply {
    /// It answered with this entry.
    Answered { entry: KnowledgeEntryId },
    /// It replied without an answer (offered a choice, or said a human is coming), having
    /// considered these entries, best first.
    NotAnswered { candidates: Vec<KnowledgeEntryId> },
    /// It handed the probe to a human.
    HandedOver,
    /// No reply within the probe's bound.
    NoReply,
    /// The probe could not be asked (the store refused, say).
    Failed { message: String },
}

/// One question asked, and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProbeCheck {
    pub question: String,
    pub expected: KnowledgeEntryId,
    /// The probe's conversation, when one was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationId>,
    pub reply: ProbeReply,
}

impl ProbeCheck {
    pub fn passed(&self) -> bool {
        matches!(self.reply, ProbeReply::Answered { entry } if entry == self.expected)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProbeCommand {
    /// Claims the run of a slot before asking anything.
    Start {
        run: ProbeRunId,
        slot: DateTime<Utc>,
        questions: u32,
        at: DateTime<Utc>,
    },
    /// Records what every question got.
    Complete {
        checks: Vec<ProbeCheck>,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProbeRunStarted {
    pub run: ProbeRunId,
    /// The start of the schedule slot this run probes.
    pub slot: DateTime<Utc>,
    pub questions: u32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProbeRunCompleted {
    pub checked: u32,
    pub passed: u32,
    /// The checks that did not pass, with what came back instead.
    pub failures: Vec<ProbeCheck>,
    pub at: DateTime<Utc>,
}

domain_events! {
    /// What happens in a `probe-<run id>` stream.
    pub enum ProbeEvent in "probe" {
        ProbeRunStarted = 1,
        ProbeRunCompleted = 1,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProbeRun {
    NotStarted,
    Started {
        run: ProbeRunId,
        slot: DateTime<Utc>,
        questions: u32,
    },
    Completed {
        run: ProbeRunId,
        slot: DateTime<Utc>,
        checked: u32,
        passed: u32,
    },
}

pub struct ProbeDecider;

impl Decider for ProbeDecider {
    type Id = ProbeRunId;
    type State = ProbeRun;
    type Command = ProbeCommand;
    type Event = ProbeEvent;

    fn initial_state() -> ProbeRun {
        ProbeRun::NotStarted
    }

    fn decide(state: &ProbeRun, command: ProbeCommand) -> Result<Vec<ProbeEvent>, DomainError> {
        match command {
            ProbeCommand::Start {
                run,
                slot,
                questions,
                at,
            } => {
                if !matches!(state, ProbeRun::NotStarted) {
                    return Err(DomainError::AlreadyExists {
                        kind: "probe run",
                        id: run.to_string(),
                    });
                }
                if questions == 0 || questions > MAX_PROBES {
                    return Err(DomainError::invalid(
                        "questions",
                        format!("a probe run asks 1 to {MAX_PROBES} questions, not {questions}"),
                    ));
                }
                Ok(vec![
                    ProbeRunStarted {
                        run,
                        slot,
                        questions,
                        at,
                    }
                    .into(),
                ])
            }
            ProbeCommand::Complete { checks, at } => {
                let questions = match state {
                    ProbeRun::NotStarted => {
                        return Err(DomainError::NotCreated { kind: "probe run" });
                    }
                    ProbeRun::Completed { run, .. } => {
                        return Err(DomainError::AlreadyExists {
                            kind: "completed probe run",
                            id: run.to_string(),
                        });
                    }
                    ProbeRun::Started { questions, .. } => *questions,
                };
                if checks.len() != questions as usize {
                    return Err(DomainError::invalid(
                        "checks",
                        format!(
                            "the run was started for {questions} questions, {} were checked",
                            checks.len()
                        ),
                    ));
                }
                for c in &checks {
                    require_text("question", &c.question, MAX_TEXT_CHARS)?;
                }
                let passed = checks.iter().filter(|c| c.passed()).count() as u32;
                let failures = checks.into_iter().filter(|c| !c.passed()).collect();
                Ok(vec![
                    ProbeRunCompleted {
                        checked: questions,
                        passed,
                        failures,
                        at,
                    }
                    .into(),
                ])
            }
        }
    }

    fn evolve(state: ProbeRun, event: &ProbeEvent) -> ProbeRun {
        match (state, event) {
            (_, ProbeEvent::ProbeRunStarted(e)) => ProbeRun::Started {
                run: e.run,
                slot: e.slot,
                questions: e.questions,
            },
            (ProbeRun::Started { run, slot, .. }, ProbeEvent::ProbeRunCompleted(e)) => {
                ProbeRun::Completed {
                    run,
                    slot,
                    checked: e.checked,
                    passed: e.passed,
                }
            }
            (state, _) => state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 3, 0, 0).unwrap()
    }

    fn entry(n: u128) -> KnowledgeEntryId {
        KnowledgeEntryId::from_uuid(Uuid::from_u128(n))
    }

    fn check(expected: u128, reply: ProbeReply) -> ProbeCheck {
        ProbeCheck {
            question: "怎么退货".into(),
            expected: entry(expected),
            conversation: None,
            reply,
        }
    }

    #[test]
    fn a_slot_names_one_run() {
        let slot = at();
        assert_eq!(ProbeRunId::for_slot(slot), ProbeRunId::for_slot(slot));
        assert_ne!(
            ProbeRunId::for_slot(slot),
            ProbeRunId::for_slot(slot + chrono::Duration::hours(1))
        );
        assert!(ProbeRunId::for_slot(slot).is_slot_run());
        assert!(!ProbeRunId::from_uuid(Uuid::now_v7()).is_slot_run());
    }

    #[test]
    fn a_run_is_started_once_and_judged_by_the_decider() {
        let run = ProbeRunId::for_slot(at());
        let start = |questions| ProbeCommand::Start {
            run,
            slot: at(),
            questions,
            at: at(),
        };
        let state = ProbeDecider::initial_state();
        assert!(ProbeDecider::decide(&state, start(0)).is_err());
        let started = ProbeDecider::decide(&state, start(3)).unwrap();
        let state = started.iter().fold(state, ProbeDecider::evolve);
        assert!(matches!(
            ProbeDecider::decide(&state, start(3)),
            Err(DomainError::AlreadyExists { .. })
        ));
        let checks = vec![
            check(1, ProbeReply::Answered { entry: entry(1) }),
            check(2, ProbeReply::Answered { entry: entry(9) }),
            check(
                3,
                ProbeReply::NotAnswered {
                    candidates: vec![entry(3)],
                },
            ),
        ];
        assert!(
            ProbeDecider::decide(
                &state,
                ProbeCommand::Complete {
                    checks: checks[..2].to_vec(),
                    at: at()
                }
            )
            .is_err(),
            "every question started must be checked"
        );
        let done = ProbeDecider::decide(
            &state,
            ProbeCommand::Complete {
                checks: checks.clone(),
                at: at(),
            },
        )
        .unwrap();
        let ProbeEvent::ProbeRunCompleted(c) = &done[0] else {
            panic!("{done:?}")
        };
        assert_eq!((c.checked, c.passed), (3, 1));
        assert_eq!(c.failures, checks[1..].to_vec());
        let state = done.iter().fold(state, ProbeDecider::evolve);
        assert!(ProbeDecider::decide(&state, ProbeCommand::Complete { checks, at: at() }).is_err());
    }
}
