//! The queue stream: where conversations wait for a human, which business line and categories
//! a queue serves, what skills its agents need, its SLA targets and opening hours.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{BusinessLine, MAX_LABEL_CHARS, require_code, require_codes, require_text};
use crate::decider::{Decider, domain_events};
use crate::error::DomainError;
use crate::ids::{Category, QueueId, Skill};

/// Queue priorities run from 1 (served first) to this.
pub const LOWEST_PRIORITY: u8 = 5;

/// One priority step towards the front (a VIP's queueing, an escalation), never past 1.
pub fn one_step_up(priority: u8) -> u8 {
    priority.saturating_sub(1).max(1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl From<chrono::Weekday> for Weekday {
    fn from(day: chrono::Weekday) -> Self {
        match day {
            chrono::Weekday::Mon => Weekday::Mon,
            chrono::Weekday::Tue => Weekday::Tue,
            chrono::Weekday::Wed => Weekday::Wed,
            chrono::Weekday::Thu => Weekday::Thu,
            chrono::Weekday::Fri => Weekday::Fri,
            chrono::Weekday::Sat => Weekday::Sat,
            chrono::Weekday::Sun => Weekday::Sun,
        }
    }
}

/// One staffed stretch of a weekday, in minutes after local midnight: `[opens, closes)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct OpeningWindow {
    pub day: Weekday,
    pub opens_minute: u16,
    pub closes_minute: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpeningHours {
    /// Staffed around the clock.
    Always,
    /// Staffed in these windows of the queue's local time (a fixed UTC offset, because
    /// service centres publish hours in local time and China has no daylight saving).
    Weekly {
        utc_offset_minutes: i32,
        windows: Vec<OpeningWindow>,
    },
}

impl OpeningHours {
    pub fn is_open_at(&self, at: DateTime<Utc>) -> bool {
        match self {
            OpeningHours::Always => true,
            OpeningHours::Weekly {
                utc_offset_minutes,
                windows,
            } => {
                let Some(offset) = FixedOffset::east_opt(utc_offset_minutes * 60) else {
                    return false;
                };
                let local = at.with_timezone(&offset);
                let day = Weekday::from(local.weekday());
                let minute = local.hour() * 60 + local.minute();
                windows.iter().any(|w| {
                    w.day == day
                        && u32::from(w.opens_minute) <= minute
                        && minute < u32::from(w.closes_minute)
                })
            }
        }
    }

    fn validate(&self) -> Result<(), DomainError> {
        let OpeningHours::Weekly {
            utc_offset_minutes,
            windows,
        } = self
        else {
            return Ok(());
        };
        if !(-14 * 60..=14 * 60).contains(utc_offset_minutes) {
            return Err(DomainError::invalid(
                "hours.utc_offset_minutes",
                "must be within ±14 hours",
            ));
        }
        if windows.is_empty() {
            return Err(DomainError::invalid(
                "hours.windows",
                "a queue with weekly hours needs at least one window (retire it instead)",
            ));
        }
        if let Some(w) = windows
            .iter()
            .find(|w| w.opens_minute >= w.closes_minute || w.closes_minute > 24 * 60)
        {
            return Err(DomainError::invalid(
                "hours.windows",
                format!(
                    "{:?} {}-{} must open before it closes, within the day",
                    w.day, w.opens_minute, w.closes_minute
                ),
            ));
        }
        Ok(())
    }
}

/// Service-level targets the queue is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SlaTargets {
    /// Seconds from joining the queue to the first agent reply.
    pub first_response_secs: u32,
    /// Seconds from joining the queue to close.
    pub resolution_secs: u32,
}

impl SlaTargets {
    fn validate(&self) -> Result<(), DomainError> {
        if self.first_response_secs == 0 || self.first_response_secs > self.resolution_secs {
            return Err(DomainError::invalid(
                "sla",
                "the first-response target must be positive and no longer than the resolution target",
            ));
        }
        Ok(())
    }
}

/// Whether an agent with skills `has` may serve work that needs `needs`: they must have every
/// skill it names. The one rule for "an agent serves this queue": the assigner, the read
/// models and the API's access policy all ask it, over skill codes as each of them stores them.
pub fn can_serve<S: Ord>(needs: &BTreeSet<S>, has: &BTreeSet<S>) -> bool {
    needs.is_subset(has)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    pub id: QueueId,
    pub name: String,
    pub business_line: BusinessLine,
    pub categories: BTreeSet<Category>,
    pub skills: BTreeSet<Skill>,
    pub priority: u8,
    pub sla: SlaTargets,
    pub hours: OpeningHours,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QueueState {
    Undefined,
    Active(Queue),
    Retired(Queue),
}

impl QueueState {
    pub fn snapshot(&self, id: QueueId) -> QueueSnapshot {
        match self {
            QueueState::Undefined => QueueSnapshot::Unknown(id),
            QueueState::Retired(q) => QueueSnapshot::Retired(q.id),
            QueueState::Active(q) => QueueSnapshot::Active(q.clone()),
        }
    }
}

/// The queue stream as the command service loaded it for a cross-stream rule.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueSnapshot {
    Unknown(QueueId),
    Retired(QueueId),
    Active(Queue),
}

impl QueueSnapshot {
    pub fn id(&self) -> QueueId {
        match self {
            QueueSnapshot::Unknown(id) | QueueSnapshot::Retired(id) => *id,
            QueueSnapshot::Active(q) => q.id,
        }
    }

    pub fn require_active(&self) -> Result<&Queue, DomainError> {
        match self {
            QueueSnapshot::Unknown(queue) => Err(DomainError::UnknownQueue { queue: *queue }),
            QueueSnapshot::Retired(queue) => Err(DomainError::QueueRetired { queue: *queue }),
            QueueSnapshot::Active(q) => Ok(q),
        }
    }
}

/// What may change about a queue; `None` keeps the current value. The business line is not
/// here on purpose: conversations already waiting were routed by it, so a queue that changes
/// sides is a new queue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueChanges {
    pub name: Option<String>,
    pub categories: Option<BTreeSet<Category>>,
    pub skills: Option<BTreeSet<Skill>>,
    pub priority: Option<u8>,
    pub sla: Option<SlaTargets>,
    pub hours: Option<OpeningHours>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QueueCommand {
    Define {
        queue: QueueId,
        name: String,
        business_line: BusinessLine,
        categories: BTreeSet<Category>,
        skills: BTreeSet<Skill>,
        priority: u8,
        sla: SlaTargets,
        hours: OpeningHours,
        at: DateTime<Utc>,
    },
    Change {
        changes: QueueChanges,
        at: DateTime<Utc>,
    },
    Retire {
        reason: String,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueueDefined {
    pub queue: QueueId,
    pub name: String,
    pub business_line: BusinessLine,
    pub categories: BTreeSet<Category>,
    pub skills: BTreeSet<Skill>,
    /// 1 is served first.
    pub priority: u8,
    pub sla: SlaTargets,
    pub hours: OpeningHours,
    pub at: DateTime<Utc>,
}

/// Only the fields that changed are present, with their new values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueueChanged {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<BTreeSet<Category>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<BTreeSet<Skill>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<SlaTargets>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<OpeningHours>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueueRetired {
    pub reason: String,
    pub at: DateTime<Utc>,
}

domain_events! {
    /// What happens in a `queue-<id>` stream.
    pub enum QueueEvent in "queue" {
        QueueDefined = 1,
        QueueChanged = 1,
        QueueRetired = 1,
    }
}

pub struct QueueDecider;

impl Decider for QueueDecider {
    type Id = QueueId;
    type State = QueueState;
    type Command = QueueCommand;
    type Event = QueueEvent;

    fn initial_state() -> QueueState {
        QueueState::Undefined
    }

    fn decide(state: &QueueState, command: QueueCommand) -> Result<Vec<QueueEvent>, DomainError> {
        match command {
            QueueCommand::Define {
                queue,
                name,
                business_line,
                categories,
                skills,
                priority,
                sla,
                hours,
                at,
            } => {
                if let QueueState::Active(q) | QueueState::Retired(q) = state {
                    return Err(DomainError::AlreadyExists {
                        kind: "queue",
                        id: q.id.to_string(),
                    });
                }
                validate_name(&name)?;
                validate_business_line(&business_line)?;
                validate_categories(&categories)?;
                validate_skills(&skills)?;
                validate_priority(priority)?;
                sla.validate()?;
                hours.validate()?;
                Ok(vec![
                    QueueDefined {
                        queue,
                        name,
                        business_line,
                        categories,
                        skills,
                        priority,
                        sla,
                        hours,
                        at,
                    }
                    .into(),
                ])
            }
            QueueCommand::Change { changes, at } => {
                let current = active(state)?;
                let changed = QueueChanged {
                    name: changes.name.filter(|n| *n != current.name),
                    categories: changes.categories.filter(|c| *c != current.categories),
                    skills: changes.skills.filter(|s| *s != current.skills),
                    priority: changes.priority.filter(|p| *p != current.priority),
                    sla: changes.sla.filter(|s| *s != current.sla),
                    hours: changes.hours.filter(|h| *h != current.hours),
                    at,
                };
                if let Some(name) = &changed.name {
                    validate_name(name)?;
                }
                if let Some(categories) = &changed.categories {
                    validate_categories(categories)?;
                }
                if let Some(skills) = &changed.skills {
                    validate_skills(skills)?;
                }
                if let Some(priority) = changed.priority {
                    validate_priority(priority)?;
                }
                if let Some(sla) = &changed.sla {
                    sla.validate()?;
                }
                if let Some(hours) = &changed.hours {
                    hours.validate()?;
                }
                let nothing_changed = changed.name.is_none()
                    && changed.categories.is_none()
                    && changed.skills.is_none()
                    && changed.priority.is_none()
                    && changed.sla.is_none()
                    && changed.hours.is_none();
                Ok(if nothing_changed {
                    vec![]
                } else {
                    vec![changed.into()]
                })
            }
            QueueCommand::Retire { reason, at } => {
                active(state)?;
                require_text("reason", &reason, MAX_LABEL_CHARS)?;
                Ok(vec![QueueRetired { reason, at }.into()])
            }
        }
    }

    fn evolve(state: QueueState, event: &QueueEvent) -> QueueState {
        match (state, event) {
            (QueueState::Undefined, QueueEvent::QueueDefined(e)) => QueueState::Active(Queue {
                id: e.queue,
                name: e.name.clone(),
                business_line: e.business_line.clone(),
                categories: e.categories.clone(),
                skills: e.skills.clone(),
                priority: e.priority,
                sla: e.sla,
                hours: e.hours.clone(),
            }),
            (QueueState::Active(mut q), QueueEvent::QueueChanged(e)) => {
                if let Some(name) = &e.name {
                    q.name = name.clone();
                }
                if let Some(categories) = &e.categories {
                    q.categories = categories.clone();
                }
                if let Some(skills) = &e.skills {
                    q.skills = skills.clone();
                }
                if let Some(priority) = e.priority {
                    q.priority = priority;
                }
                if let Some(sla) = e.sla {
                    q.sla = sla;
                }
                if let Some(hours) = &e.hours {
                    q.hours = hours.clone();
                }
                QueueState::Active(q)
            }
            (QueueState::Active(q), QueueEvent::QueueRetired(_)) => QueueState::Retired(q),
            (state, _) => state,
        }
    }
}

fn active(state: &QueueState) -> Result<&Queue, DomainError> {
    match state {
        QueueState::Undefined => Err(DomainError::NotCreated { kind: "queue" }),
        QueueState::Retired(q) => Err(DomainError::QueueRetired { queue: q.id }),
        QueueState::Active(q) => Ok(q),
    }
}

fn validate_name(name: &str) -> Result<(), DomainError> {
    require_text("name", name, MAX_LABEL_CHARS)
}

fn validate_business_line(line: &BusinessLine) -> Result<(), DomainError> {
    match line {
        BusinessLine::SelfOperated => Ok(()),
        BusinessLine::Merchant { merchant } => {
            require_code("business_line.merchant", merchant.as_str())
        }
    }
}

fn validate_categories(categories: &BTreeSet<Category>) -> Result<(), DomainError> {
    if categories.is_empty() {
        return Err(DomainError::invalid(
            "categories",
            "a queue serves at least one category",
        ));
    }
    require_codes("categories", categories.iter().map(Category::as_str))
}

fn validate_skills(skills: &BTreeSet<Skill>) -> Result<(), DomainError> {
    require_codes("skills", skills.iter().map(Skill::as_str))
}

fn validate_priority(priority: u8) -> Result<(), DomainError> {
    if (1..=LOWEST_PRIORITY).contains(&priority) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "priority",
            format!("{priority} is not between 1 and {LOWEST_PRIORITY}"),
        ))
    }
}
