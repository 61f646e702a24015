//! The knowledge-base stream: one FAQ entry the bot can answer with. The bot's answer id is the
//! entry id, so a retired entry must never be served again.
//!
//! A real shop's knowledge base must import as it is (issue 14). An entry's category is a *name*
//! (`common::require_name`: 1 to 64 characters of any script, no control characters, tabs, line
//! breaks, runs of spaces or `" \ < >`), not a code: it only feeds the bot's own category model and
//! the scenario prior, so no ASCII slug is needed. Queue and order categories stay codes
//! (`require_code`). An entry carries up to [`MAX_PARAPHRASES`] paraphrases and
//! [`MAX_PARAPHRASE_CHARS`] characters of them together, so that at 4 bytes a character its event
//! stays inside the log's 1 MiB payload limit; `kefu kb import` names the line and the limit it
//! broke.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{MAX_LABEL_CHARS, MAX_TEXT_CHARS, require_locale, require_name, require_text};
use crate::decider::{Decider, domain_events};
use crate::error::DomainError;
use crate::ids::{Category, KnowledgeEntryId, Locale};

/// Longest question or paraphrase, in characters.
pub const MAX_QUESTION_CHARS: usize = 500;
/// Most paraphrases one entry may carry. A real shop's KB collects the ways customers asked
/// over years (a few hundred for its busiest questions); beyond this an entry is a dump of
/// chat logs, not paraphrases.
pub const MAX_PARAPHRASES: usize = 1_000;
/// Most characters all of an entry's paraphrases may hold together: at 4 bytes a character at
/// worst, with the question and the answer, an entry's event stays well inside the log's
/// default payload limit of 1 MiB.
pub const MAX_PARAPHRASE_CHARS: usize = 150_000;

#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeEntry {
    pub id: KnowledgeEntryId,
    pub question: String,
    pub paraphrases: Vec<String>,
    pub answer: String,
    pub category: Category,
    pub locale: Locale,
    /// 1 when created, +1 for each edit; the bot logs which revision it served.
    pub revision: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KnowledgeState {
    Absent,
    Active(KnowledgeEntry),
    Retired(KnowledgeEntry),
}

impl KnowledgeState {
    pub fn snapshot(&self, id: KnowledgeEntryId) -> KnowledgeEntrySnapshot {
        match self {
            KnowledgeState::Absent => KnowledgeEntrySnapshot::Unknown(id),
            KnowledgeState::Retired(e) => KnowledgeEntrySnapshot::Retired(e.id),
            KnowledgeState::Active(e) => KnowledgeEntrySnapshot::Active(e.clone()),
        }
    }
}

/// A knowledge-base entry as the command service loaded it for a cross-stream rule.
#[derive(Debug, Clone, PartialEq)]
pub enum KnowledgeEntrySnapshot {
    Unknown(KnowledgeEntryId),
    Retired(KnowledgeEntryId),
    Active(KnowledgeEntry),
}

impl KnowledgeEntrySnapshot {
    pub fn id(&self) -> KnowledgeEntryId {
        match self {
            KnowledgeEntrySnapshot::Unknown(id) | KnowledgeEntrySnapshot::Retired(id) => *id,
            KnowledgeEntrySnapshot::Active(e) => e.id,
        }
    }

    pub fn require_active(&self) -> Result<&KnowledgeEntry, DomainError> {
        match self {
            KnowledgeEntrySnapshot::Unknown(entry) => {
                Err(DomainError::UnknownKnowledgeEntry { entry: *entry })
            }
            KnowledgeEntrySnapshot::Retired(entry) => {
                Err(DomainError::KnowledgeEntryRetired { entry: *entry })
            }
            KnowledgeEntrySnapshot::Active(e) => Ok(e),
        }
    }
}

/// What an edit changes; `None` keeps the current value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KnowledgeEdit {
    pub question: Option<String>,
    pub paraphrases: Option<Vec<String>>,
    pub answer: Option<String>,
    pub category: Option<Category>,
    pub locale: Option<Locale>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KnowledgeCommand {
    Create {
        entry: KnowledgeEntryId,
        question: String,
        paraphrases: Vec<String>,
        answer: String,
        category: Category,
        locale: Locale,
        at: DateTime<Utc>,
    },
    Edit {
        edit: KnowledgeEdit,
        at: DateTime<Utc>,
    },
    Retire {
        reason: String,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KnowledgeEntryCreated {
    pub entry: KnowledgeEntryId,
    pub question: String,
    /// Other ways customers ask the same question; the bot's matcher indexes them all.
    pub paraphrases: Vec<String>,
    pub answer: String,
    pub category: Category,
    pub locale: Locale,
    pub at: DateTime<Utc>,
}

/// Only the fields that changed are present, with their new values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KnowledgeEntryEdited {
    /// The entry's revision after this edit.
    pub revision: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paraphrases: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KnowledgeEntryRetired {
    pub reason: String,
    pub at: DateTime<Utc>,
}

domain_events! {
    /// What happens in a `knowledge-<id>` stream.
    pub enum KnowledgeEvent in "knowledge" {
        KnowledgeEntryCreated = 1,
        KnowledgeEntryEdited = 1,
        KnowledgeEntryRetired = 1,
    }
}

pub struct KnowledgeDecider;

impl Decider for KnowledgeDecider {
    type Id = KnowledgeEntryId;
    type State = KnowledgeState;
    type Command = KnowledgeCommand;
    type Event = KnowledgeEvent;

    fn initial_state() -> KnowledgeState {
        KnowledgeState::Absent
    }

    fn decide(
        state: &KnowledgeState,
        command: KnowledgeCommand,
    ) -> Result<Vec<KnowledgeEvent>, DomainError> {
        match command {
            KnowledgeCommand::Create {
                entry,
                question,
                paraphrases,
                answer,
                category,
                locale,
                at,
            } => {
                if let KnowledgeState::Active(e) | KnowledgeState::Retired(e) = state {
                    return Err(DomainError::AlreadyExists {
                        kind: "knowledge-base entry",
                        id: e.id.to_string(),
                    });
                }
                require_text("question", &question, MAX_QUESTION_CHARS)?;
                validate_paraphrases(&question, &paraphrases)?;
                require_text("answer", &answer, MAX_TEXT_CHARS)?;
                require_name("category", category.as_str())?;
                require_locale(&locale)?;
                Ok(vec![
                    KnowledgeEntryCreated {
                        entry,
                        question,
                        paraphrases,
                        answer,
                        category,
                        locale,
                        at,
                    }
                    .into(),
                ])
            }
            KnowledgeCommand::Edit { edit, at } => {
                let current = active(state)?;
                let edited = KnowledgeEntryEdited {
                    revision: current.revision + 1,
                    question: edit.question.filter(|q| *q != current.question),
                    paraphrases: edit.paraphrases.filter(|p| *p != current.paraphrases),
                    answer: edit.answer.filter(|a| *a != current.answer),
                    category: edit.category.filter(|c| *c != current.category),
                    locale: edit.locale.filter(|l| *l != current.locale),
                    at,
                };
                let question = edited.question.as_ref().unwrap_or(&current.question);
                require_text("question", question, MAX_QUESTION_CHARS)?;
                validate_paraphrases(
                    question,
                    edited.paraphrases.as_ref().unwrap_or(&current.paraphrases),
                )?;
                if let Some(answer) = &edited.answer {
                    require_text("answer", answer, MAX_TEXT_CHARS)?;
                }
                if let Some(category) = &edited.category {
                    require_name("category", category.as_str())?;
                }
                if let Some(locale) = &edited.locale {
                    require_locale(locale)?;
                }
                let nothing_changed = edited.question.is_none()
                    && edited.paraphrases.is_none()
                    && edited.answer.is_none()
                    && edited.category.is_none()
                    && edited.locale.is_none();
                Ok(if nothing_changed {
                    vec![]
                } else {
                    vec![edited.into()]
                })
            }
            KnowledgeCommand::Retire { reason, at } => {
                active(state)?;
                require_text("reason", &reason, MAX_LABEL_CHARS)?;
                Ok(vec![KnowledgeEntryRetired { reason, at }.into()])
            }
        }
    }

    fn evolve(state: KnowledgeState, event: &KnowledgeEvent) -> KnowledgeState {
        match (state, event) {
            (KnowledgeState::Absent, KnowledgeEvent::KnowledgeEntryCreated(e)) => {
                KnowledgeState::Active(KnowledgeEntry {
                    id: e.entry,
                    question: e.question.clone(),
                    paraphrases: e.paraphrases.clone(),
                    answer: e.answer.clone(),
                    category: e.category.clone(),
                    locale: e.locale.clone(),
                    revision: 1,
                })
            }
            (KnowledgeState::Active(mut entry), KnowledgeEvent::KnowledgeEntryEdited(e)) => {
                entry.revision = e.revision;
                if let Some(q) = &e.question {
                    entry.question = q.clone();
                }
                if let Some(p) = &e.paraphrases {
                    entry.paraphrases = p.clone();
                }
                if let Some(a) = &e.answer {
                    entry.answer = a.clone();
                }
                if let Some(c) = &e.category {
                    entry.category = c.clone();
                }
                if let Some(l) = &e.locale {
                    entry.locale = l.clone();
                }
                KnowledgeState::Active(entry)
            }
            (KnowledgeState::Active(entry), KnowledgeEvent::KnowledgeEntryRetired(_)) => {
                KnowledgeState::Retired(entry)
            }
            (state, _) => state,
        }
    }
}

fn active(state: &KnowledgeState) -> Result<&KnowledgeEntry, DomainError> {
    match state {
        KnowledgeState::Absent => Err(DomainError::NotCreated {
            kind: "knowledge-base entry",
        }),
        KnowledgeState::Retired(e) => Err(DomainError::KnowledgeEntryRetired { entry: e.id }),
        KnowledgeState::Active(e) => Ok(e),
    }
}

/// Duplicate paraphrases would skew the matcher's ranking toward this entry.
fn validate_paraphrases(question: &str, paraphrases: &[String]) -> Result<(), DomainError> {
    if paraphrases.len() > MAX_PARAPHRASES {
        return Err(DomainError::invalid(
            "paraphrases",
            format!(
                "{} given; at most {MAX_PARAPHRASES} per entry",
                paraphrases.len()
            ),
        ));
    }
    let chars: usize = paraphrases.iter().map(|p| p.chars().count()).sum();
    if chars > MAX_PARAPHRASE_CHARS {
        return Err(DomainError::invalid(
            "paraphrases",
            format!("hold {chars} characters together; the limit is {MAX_PARAPHRASE_CHARS}"),
        ));
    }
    let mut seen = BTreeSet::new();
    seen.insert(question.trim().to_lowercase());
    for p in paraphrases {
        require_text("paraphrases", p, MAX_QUESTION_CHARS)?;
        if !seen.insert(p.trim().to_lowercase()) {
            return Err(DomainError::invalid(
                "paraphrases",
                format!("{p:?} repeats the question or another paraphrase"),
            ));
        }
    }
    Ok(())
}
