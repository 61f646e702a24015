//! Value types several streams share, and the input checks every `decide` uses.

use std::collections::BTreeSet;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::ids::{AgentId, Locale, MerchantId};

/// Who sells an order, and so which team's queue may answer about it: JD's own retail team
/// or the third-party (POP) merchant. Triage splits on this first.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusinessLine {
    SelfOperated,
    Merchant { merchant: MerchantId },
}

impl fmt::Display for BusinessLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusinessLine::SelfOperated => f.write_str("self-operated"),
            BusinessLine::Merchant { merchant } => write!(f, "merchant {merchant}"),
        }
    }
}

/// Where a conversation came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Web,
    App,
    Pc,
    /// The phone voice menu.
    Ivr,
    /// kefu's own probes asking the bot known questions (`workers/src/probes.rs`): never
    /// counted in statistics, never routed to a human.
    Probe,
}

/// An amount of money in minor units (fen for CNY), so sums are exact.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Money {
    pub minor_units: i64,
    /// ISO 4217 code, e.g. `CNY`.
    pub currency: String,
}

impl Money {
    pub fn cny(fen: i64) -> Self {
        Money {
            minor_units: fen,
            currency: "CNY".into(),
        }
    }
}

/// Who did something, as the domain records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Party {
    Customer,
    Agent {
        agent: AgentId,
    },
    Bot,
    /// A kefu component such as the idle-timeout worker.
    System,
}

// ---- input checks ----

/// Longest free text in a turn, note or comment, in characters.
pub const MAX_TEXT_CHARS: usize = 5_000;
/// Longest short label (names, subjects, reasons), in characters.
pub const MAX_LABEL_CHARS: usize = 200;

pub(crate) fn require_text(
    field: &'static str,
    value: &str,
    max_chars: usize,
) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(DomainError::invalid(
            field,
            format!("is {chars} characters long; the limit is {max_chars}"),
        ));
    }
    Ok(())
}

/// Codes (skills, categories, scenario codes, model versions, external ids) travel in URLs,
/// metrics labels and routing reasons, so they stay short and free of spaces.
pub(crate) fn require_code(field: &'static str, value: &str) -> Result<(), DomainError> {
    if value.is_empty() || value.len() > 64 {
        return Err(DomainError::invalid(field, "must be 1 to 64 bytes long"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
    {
        return Err(DomainError::invalid(
            field,
            format!("{value:?} may hold only ASCII letters, digits and - _ . : /"),
        ));
    }
    Ok(())
}

/// A name a person chose and reads (a knowledge-base category such as 售后服务 or
/// "Returns & refunds"): 1 to 64 characters of any script, no control characters, no
/// whitespace at either end or in runs, and none of the characters that break a path or a
/// label (`"` `\\` `<` `>`).
pub(crate) fn require_name(field: &'static str, value: &str) -> Result<(), DomainError> {
    let chars = value.chars().count();
    if chars == 0 || chars > 64 {
        return Err(DomainError::invalid(
            field,
            "must be 1 to 64 characters long",
        ));
    }
    if value.trim() != value || value.contains("  ") {
        return Err(DomainError::invalid(
            field,
            format!("{value:?} must not begin or end with spaces or hold a run of them"),
        ));
    }
    if let Some(bad) = value.chars().find(|c| {
        c.is_control() || (c.is_whitespace() && *c != ' ') || matches!(c, '"' | '\\' | '<' | '>')
    }) {
        return Err(DomainError::invalid(
            field,
            format!(
                "{value:?} holds {bad:?}, which a name may not hold (control characters, tabs, line breaks, \" \\ < >)"
            ),
        ));
    }
    Ok(())
}

pub(crate) fn require_codes<'a>(
    field: &'static str,
    values: impl IntoIterator<Item = &'a str>,
) -> Result<(), DomainError> {
    values.into_iter().try_for_each(|v| require_code(field, v))
}

pub(crate) fn require_locale(locale: &Locale) -> Result<(), DomainError> {
    let tag = locale.as_str();
    let well_formed = (2..=35).contains(&tag.len())
        && tag.split('-').all(|part| {
            !part.is_empty() && part.len() <= 8 && part.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        && tag.as_bytes()[0].is_ascii_alphabetic();
    if well_formed {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "locale",
            format!("{tag:?} is not a language tag such as zh-CN"),
        ))
    }
}

pub(crate) fn require_money(field: &'static str, money: &Money) -> Result<(), DomainError> {
    if money.minor_units < 0 {
        return Err(DomainError::invalid(field, "must not be negative"));
    }
    if money.currency.len() != 3 || !money.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(DomainError::invalid(
            field,
            format!("currency {:?} is not an ISO 4217 code", money.currency),
        ));
    }
    Ok(())
}

/// Probabilities, confidences and similarity scores. NaN is refused too: it would make the
/// state unequal to itself and break replay comparisons.
pub(crate) fn require_unit_interval(field: &'static str, value: f64) -> Result<(), DomainError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!("{value} is not between 0 and 1"),
        ))
    }
}

pub(crate) fn missing<T: Ord + Clone>(required: &BTreeSet<T>, have: &BTreeSet<T>) -> Vec<T> {
    required.difference(have).cloned().collect()
}
