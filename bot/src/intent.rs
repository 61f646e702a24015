//! The text intent classifier (triage after the first message): multinomial logistic
//! regression over words, character n-grams and shop concepts, trained by SGD from
//! `{"text","label"}` examples.
//!
//! Features: stemmed jieba words, character 1–3-grams of the compact text (Chinese needs no
//! segmentation for them, English gets sub-word evidence for typos and inflections), and the
//! synonym concepts ([`crate::synonyms`]), which generalise from 42 examples per label to words
//! the examples never used. Each text's vector is log-scaled and L2-normalised, so a long
//! message does not shout down a short one.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::BotError;
use crate::eval::Labelled;
use crate::nb::softmax;
use crate::synonyms::concepts;
use crate::text::{self, compact, hash};

#[derive(Debug, Clone, PartialEq)]
pub struct IntentParams {
    pub epochs: usize,
    pub learning_rate: f64,
    pub l2: f64,
    pub seed: u64,
    pub grams: Vec<usize>,
    pub concept_weight: f64,
    pub word_weight: f64,
}

impl Default for IntentParams {
    fn default() -> Self {
        IntentParams {
            epochs: 40,
            learning_rate: 0.8,
            l2: 1e-4,
            seed: 11,
            grams: vec![1, 2, 3],
            concept_weight: 2.0,
            word_weight: 1.0,
        }
    }
}

/// A sparse, L2-normalised feature vector: (feature hash, value).
pub type Vector = Vec<(u64, f64)>;

/// Log-scaled term frequencies of a text's words, n-grams and concepts, unnormalised.
pub fn raw_features(text: &str, params: &IntentParams) -> Vector {
    let c = compact(text);
    let mut counts: HashMap<u64, f64> = HashMap::new();
    if params.word_weight > 0.0 {
        for t in text::terms(text) {
            *counts.entry(hash(format!("w:{t}").as_bytes())).or_default() += params.word_weight;
        }
    }
    for g in text::char_ngrams(&c, &params.grams) {
        *counts.entry(g).or_default() += 1.0;
    }
    if params.concept_weight > 0.0 {
        for id in concepts().of(&c) {
            *counts
                .entry(hash(format!("c:{id}").as_bytes()))
                .or_default() += params.concept_weight;
        }
    }
    let mut v: Vector = counts.into_iter().map(|(f, n)| (f, 1.0 + n.ln())).collect();
    v.sort_unstable_by_key(|(f, _)| *f);
    v
}

/// Weighted by inverse document frequency (features unknown to `idf` are dropped: the model
/// has no weight for them anyway), L2-normalised.
fn vectorize(raw: Vector, idf: &HashMap<u64, f64>) -> Vector {
    let mut v: Vector = raw
        .into_iter()
        .filter_map(|(f, x)| idf.get(&f).map(|w| (f, x * w)))
        .collect();
    let norm = v.iter().map(|(_, x)| x * x).sum::<f64>().sqrt().max(1e-12);
    v.iter_mut().for_each(|(_, x)| *x /= norm);
    v
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentModel {
    version: String,
    labels: Vec<String>,
    /// Per feature, one weight per label.
    weights: HashMap<u64, Vec<f64>>,
    bias: Vec<f64>,
    idf: HashMap<u64, f64>,
    #[serde(skip)]
    params: IntentParams,
}

/// Label probabilities, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentScores {
    pub ranked: Vec<(String, f64)>,
}

impl IntentScores {
    pub fn best(&self) -> &str {
        self.ranked.first().map_or("", |(l, _)| l.as_str())
    }

    pub fn probability(&self, label: &str) -> f64 {
        self.ranked
            .iter()
            .find(|(l, _)| l == label)
            .map_or(0.0, |(_, p)| *p)
    }
}

impl IntentModel {
    pub fn train(examples: &[Labelled], params: &IntentParams) -> Result<Self, BotError> {
        if examples.is_empty() {
            return Err(BotError::NothingToTrainOn);
        }
        let labels: Vec<String> = examples
            .iter()
            .map(|e| e.label.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let k = labels.len();
        let raw: Vec<Vector> = examples
            .iter()
            .map(|e| raw_features(&e.text, params))
            .collect();
        let mut df: HashMap<u64, f64> = HashMap::new();
        for v in &raw {
            for (f, _) in v {
                *df.entry(*f).or_default() += 1.0;
            }
        }
        let n = raw.len() as f64;
        let idf: HashMap<u64, f64> = df
            .into_iter()
            .map(|(f, d)| (f, ((1.0 + n) / (1.0 + d)).ln() + 1.0))
            .collect();
        let data: Vec<(Vector, usize)> = raw
            .into_iter()
            .zip(examples)
            .map(|(v, e)| {
                (
                    vectorize(v, &idf),
                    labels.binary_search(&e.label).unwrap_or(0),
                )
            })
            .collect();
        let mut weights: HashMap<u64, Vec<f64>> = HashMap::new();
        for (v, _) in &data {
            for (f, _) in v {
                weights.entry(*f).or_insert_with(|| vec![0.0; k]);
            }
        }
        let mut bias = vec![0.0; k];
        let mut order: Vec<usize> = (0..data.len()).collect();
        let mut state = params.seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for epoch in 0..params.epochs {
            for i in (1..order.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                order.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let lr = params.learning_rate / (1.0 + epoch as f64 * 0.1);
            for &i in &order {
                let (v, y) = &data[i];
                let mut scores = bias.clone();
                for (f, x) in v {
                    let w = &weights[f];
                    for c in 0..k {
                        scores[c] += w[c] * x;
                    }
                }
                let p = softmax(&scores);
                for c in 0..k {
                    let g = p[c] - f64::from(u8::from(c == *y));
                    bias[c] -= lr * g * 0.1;
                    for (f, x) in v {
                        let w = weights.get_mut(f).expect("feature seen in training");
                        w[c] -= lr * (g * x + params.l2 * w[c]);
                    }
                }
            }
        }
        let mut model = IntentModel {
            version: String::new(),
            labels,
            weights,
            bias,
            idf,
            params: params.clone(),
        };
        model.version = format!("intent-lr-{:016x}", model.fingerprint());
        Ok(model)
    }

    fn fingerprint(&self) -> u64 {
        let mut keys: Vec<&u64> = self.weights.keys().collect();
        keys.sort_unstable();
        let mut bytes: Vec<u8> = self.labels.join(",").into_bytes();
        for key in keys.iter().take(64) {
            bytes.extend_from_slice(&key.to_le_bytes());
            for w in &self.weights[*key] {
                bytes.extend_from_slice(&w.to_le_bytes());
            }
        }
        bytes.extend_from_slice(&(keys.len() as u64).to_le_bytes());
        hash(&bytes)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn classify(&self, text: &str) -> IntentScores {
        let v = vectorize(raw_features(text, &self.params), &self.idf);
        let mut scores = self.bias.clone();
        for (f, x) in &v {
            if let Some(w) = self.weights.get(f) {
                for (s, wc) in scores.iter_mut().zip(w) {
                    *s += wc * x;
                }
            }
        }
        let p = softmax(&scores);
        let mut ranked: Vec<(String, f64)> = self.labels.iter().cloned().zip(p).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        IntentScores { ranked }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(text: &str, label: &str) -> Labelled {
        Labelled {
            text: text.into(),
            label: label.into(),
        }
    }

    #[test]
    fn learns_labels_and_generalises_through_synonyms() {
        let train = vec![
            ex("where is my parcel", "parcel"),
            ex("my package has not arrived", "parcel"),
            ex("快递到哪了", "parcel"),
            ex("I want a refund", "refund"),
            ex("money back please", "refund"),
            ex("退款什么时候到账", "refund"),
        ];
        let m = IntentModel::train(&train, &IntentParams::default()).unwrap();
        assert_eq!(m.classify("where is my package").best(), "parcel");
        assert_eq!(m.classify("包裹到哪儿了").best(), "parcel");
        assert_eq!(m.classify("when will I get my refund").best(), "refund");
        let s = m.classify("退钱");
        let total: f64 = s.ranked.iter().map(|r| r.1).sum();
        assert!((total - 1.0).abs() < 1e-9);
    }

    #[test]
    fn no_examples_is_an_error() {
        assert!(IntentModel::train(&[], &IntentParams::default()).is_err());
    }
}
