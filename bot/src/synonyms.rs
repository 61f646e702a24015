//! Shop-domain concepts (`bot/lexicon/synonyms.tsv`, written for kefu): words that mean the
//! same thing to a customer-service desk (快递, 包裹, parcel, package) map to one concept, so a
//! query and an entry that share a concept but no word still meet.

use std::sync::OnceLock;

use crate::text::{compact, is_cjk};

const SYNONYMS: &str = include_str!("../lexicon/synonyms.tsv");

pub struct Concepts {
    names: Vec<String>,
    /// Chinese terms, matched as substrings of the compact text.
    zh: Vec<(String, u16)>,
    /// English terms, space-padded, matched as whole words of the padded compact text.
    en: Vec<(String, u16)>,
}

pub fn concepts() -> &'static Concepts {
    static CONCEPTS: OnceLock<Concepts> = OnceLock::new();
    CONCEPTS.get_or_init(|| {
        let mut c = Concepts {
            names: Vec::new(),
            zh: Vec::new(),
            en: Vec::new(),
        };
        for line in SYNONYMS.lines() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, terms) = line.split_once('\t').expect("concept<TAB>terms");
            let id = c.names.len() as u16;
            c.names.push(name.to_owned());
            for term in terms.split('|') {
                let term = compact(term);
                if term.is_empty() {
                    continue;
                }
                if term.chars().any(is_cjk) {
                    c.zh.push((term, id));
                } else {
                    c.en.push((format!(" {term} "), id));
                }
            }
        }
        c
    })
}

impl Concepts {
    /// The concepts in a compact text (see [`crate::text::compact`]), sorted, distinct.
    pub fn of(&self, compact: &str) -> Vec<u16> {
        let mut out = Vec::new();
        if compact.chars().any(is_cjk) {
            for (term, id) in &self.zh {
                if compact.contains(term.as_str()) {
                    out.push(*id);
                }
            }
        }
        let padded = format!(" {compact} ");
        for (term, id) in &self.en {
            if padded.contains(term.as_str()) {
                out.push(*id);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn name(&self, id: u16) -> &str {
        &self.names[usize::from(id)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synonyms_share_a_concept() {
        let c = concepts();
        let a = c.of(&compact("我的包裹到哪了"));
        let b = c.of(&compact("Where is my package?"));
        let shared: Vec<&str> = a
            .iter()
            .filter(|x| b.contains(x))
            .map(|x| c.name(*x))
            .collect();
        assert!(shared.contains(&"parcel"), "{shared:?}");
        assert!(
            c.of(&compact("packages"))
                .iter()
                .any(|x| c.name(*x) == "parcel")
        );
        let late = c.of(&compact("It hasn't arrived"));
        assert!(late.iter().any(|x| c.name(*x) == "late"), "{late:?}");
        assert!(c.of(&compact("unpackaged")).is_empty());
    }
}
