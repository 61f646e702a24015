//! The knowledge-base import format and its validation.
//!
//! One JSON object a line: `{"id","question","paraphrases","answer","category","locale"}`.
//! Every line is checked before anything is written, with the same rules the knowledge
//! decider applies (it is asked to decide a `Create` against an empty stream), plus what only
//! a file can get wrong: JSON, missing or unknown fields, ids repeated in the file. Each bad
//! line is reported with its number.
//!
//! **Entry ids.** A KB id such as `zh-shipping-001` becomes the domain's `KnowledgeEntryId` by
//! UUIDv5 over a fixed kefu namespace ([`entry_id`]). Deterministic ids need no lookup table
//! (which would be a second truth beside the log) and make re-importing idempotent: the same
//! line always lands on the same stream, where it is an edit that changes nothing.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use kefu_domain::Decider;
use kefu_domain::ids::{Category, KnowledgeEntryId, Locale};
use kefu_domain::knowledge::{KnowledgeCommand, KnowledgeDecider, KnowledgeState};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The demo knowledge base, built in: the server loads it on first start.
pub const DEMO_KB: &str = include_str!("../data/demo-kb.jsonl");

/// The UUIDv5 namespace of knowledge-base ids (a random UUID chosen once for kefu; never
/// change it, or every imported entry gets a new stream).
pub const KB_NAMESPACE: Uuid = Uuid::from_u128(0x6b65_6675_2d6b_4b62_9a1e_5f0d_3c2a_7e11);

/// The domain id of the entry a KB file calls `external`.
pub fn entry_id(external: &str) -> KnowledgeEntryId {
    KnowledgeEntryId(Uuid::new_v5(&KB_NAMESPACE, external.as_bytes()))
}

/// One knowledge-base entry as the import format has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KbEntry {
    pub id: String,
    pub question: String,
    pub paraphrases: Vec<String>,
    pub answer: String,
    pub category: String,
    pub locale: String,
}

impl KbEntry {
    pub fn entry_id(&self) -> KnowledgeEntryId {
        entry_id(&self.id)
    }

    /// The command that creates this entry.
    pub fn create_command(&self, at: DateTime<Utc>) -> KnowledgeCommand {
        KnowledgeCommand::Create {
            entry: self.entry_id(),
            question: self.question.clone(),
            paraphrases: self.paraphrases.clone(),
            answer: self.answer.clone(),
            category: Category::new(self.category.clone()),
            locale: Locale::new(self.locale.clone()),
            at,
        }
    }
}

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    pub message: String,
}

/// Every bad line of a file, in order.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} bad line(s): {}", .errors.len(), .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ImportErrors {
    pub errors: Vec<LineError>,
}

/// Parses and validates a whole file; blank lines are skipped. Either every entry, or every
/// bad line.
pub fn parse(text: &str) -> Result<Vec<KbEntry>, ImportErrors> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let entry: KbEntry = match serde_json::from_str(raw) {
            Ok(e) => e,
            Err(e) => {
                errors.push(LineError {
                    line,
                    message: format!("not a knowledge-base entry: {e}"),
                });
                continue;
            }
        };
        if let Err(message) = check(&entry) {
            errors.push(LineError { line, message });
            continue;
        }
        if let Some(first) = seen.insert(entry.id.clone(), line) {
            errors.push(LineError {
                line,
                message: format!("id {:?} was already used on line {first}", entry.id),
            });
            continue;
        }
        entries.push(entry);
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(ImportErrors { errors })
    }
}

fn check(entry: &KbEntry) -> Result<(), String> {
    if entry.id.trim().is_empty() {
        return Err("id: must not be empty".into());
    }
    if entry.id.len() > 64
        || !entry
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "id: {:?} may hold only ASCII letters, digits and - _ . (at most 64)",
            entry.id
        ));
    }
    // The decider's own rules, so a file that passes here is never refused when written.
    KnowledgeDecider::decide(
        &KnowledgeState::Absent,
        entry.create_command(DateTime::<Utc>::UNIX_EPOCH),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"id":"en-a-001","question":"Where is my parcel?","paraphrases":["parcel status"],"answer":"Look in Orders.","category":"shipping","locale":"en"}"#;

    #[test]
    fn the_demo_kb_is_valid() {
        let entries = parse(DEMO_KB).unwrap();
        assert_eq!(entries.len(), 340);
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let text = format!(
            "{GOOD}\nnot json\n\n{}\n{}\n{GOOD}\n",
            GOOD.replace("en-a-001", "en-a-002")
                .replace("Look in Orders.", ""),
            GOOD.replace("\"locale\":\"en\"", "\"locale\":\"en\",\"extra\":1")
        );
        let errors = parse(&text).unwrap_err().errors;
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 4, 5, 6], "{errors:?}");
        assert!(errors[1].message.contains("answer"), "{errors:?}");
        assert!(errors[2].message.contains("extra"), "{errors:?}");
        assert!(errors[3].message.contains("line 1"), "{errors:?}");
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        assert_eq!(entry_id("zh-shipping-001"), entry_id("zh-shipping-001"));
        assert_ne!(entry_id("zh-shipping-001"), entry_id("zh-shipping-002"));
    }
}
