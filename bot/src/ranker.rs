//! The learned re-ranker and its calibration.
//!
//! **Training data from the KB alone.** Each entry's paraphrases are split into three folds; for
//! each fold an engine is built from the KB without that fold's paraphrases, and each held-out
//! paraphrase is asked as a query. The candidates BM25 returns are the examples: the paraphrase's
//! own entry is the positive, every other candidate a near miss (retrieved, so it shares words, but
//! wrong).
//!
//! **Model.** A linear score over standardised features, trained pairwise (the logistic loss on the
//! difference between a query's right candidate and each of its near misses) by SGD with a seeded
//! shuffle, so a KB always trains to the same model: what matters is the order within one query,
//! not the absolute level. (A listwise softmax loss was tried and ranked the evaluation queries no
//! better.) The model is JSON with a kind, the feature list (checked on load) and a version
//! (`pairwise-lr-<hash of the weights>`) that every answer carries. Without a model file the bot
//! trains one from its knowledge base at start (about 2 s for the demo KB in a debug build).
//!
//! **Calibration.** A fifth of the queries (by a hash of their text) are held out of training. On
//! them, Platt scaling fits P(top candidate is right) over the top score and its margin over the
//! runner-up ([`Calibration`]); that probability is the bot's confidence. Paraphrases are shorter
//! and cleaner than what customers write, so [`Faq::calibrate`](crate::faq::Faq::calibrate) refits
//! it on labelled customer questions, adding the top candidate's coverage of the question (term and
//! entry coverage, profile cosine: fitted on paraphrases, they made the confidence worse on real
//! questions). That is `--bot-calibration` for the bot worker (which maps a KB file's ids to the
//! log's entry ids) and `kefu train ranker --calibrate`.

use serde::{Deserialize, Serialize};

use crate::BotError;
use crate::faq::{Engine, Entry, FEATURES, Features, N_FEATURES};
use crate::text::hash;

pub const MODEL_KIND: &str = "kefu-ranker/pairwise-logistic/1";

/// P(top candidate is right) = σ(top·s₁ + margin·(s₁ − s₂) + the top candidate's coverage
/// features + bias). The score alone is a poor judge of a long, rambling question: how much of
/// the question the entry covers, how much of the entry the question covers, and how like the
/// entry's words it is say more (on the calibration half of `bot/data/faq-queries.jsonl`, fitted
/// there, the area under the ROC curve rose from 0.70 with the score and margin to 0.78).
/// Models written before these inputs existed read them as 0: the score and margin alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub top: f64,
    pub margin: f64,
    pub bias: f64,
    #[serde(default)]
    pub term_coverage: f64,
    #[serde(default)]
    pub entry_coverage: f64,
    #[serde(default)]
    pub profile: f64,
}

/// The candidate features the calibration reads, by their index in [`FEATURES`].
const TERM_COVERAGE: usize = 3;
const ENTRY_COVERAGE: usize = 5;
const PROFILE: usize = 11;
/// The calibration's inputs: score, margin and the three features above.
pub const INPUTS: usize = 5;

/// What the calibration reads of one ranking: `scores` sorted best first, `top` the best
/// candidate's features.
pub fn calibration_inputs(scores: &[f64], top: &Features) -> [f64; INPUTS] {
    [
        scores.first().copied().unwrap_or(0.0),
        margin(scores),
        top[TERM_COVERAGE],
        top[ENTRY_COVERAGE],
        top[PROFILE],
    ]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub entries: usize,
    pub training_queries: usize,
    pub pairs: usize,
    pub held_out_queries: usize,
    /// P@1 on the held-out queries, BM25's order and the ranker's.
    pub held_out_p_at_1_bm25: f64,
    pub held_out_p_at_1_ranker: f64,
    /// Share of held-out queries whose entry BM25 retrieved at all.
    pub held_out_recall: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankerModel {
    pub kind: String,
    /// `pairwise-lr-<hash>`: names exactly these weights; recorded with every answer.
    pub version: String,
    pub features: Vec<String>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub calibration: Calibration,
    pub report: TrainReport,
}

#[derive(Debug, Clone)]
pub struct TrainParams {
    pub folds: usize,
    pub epochs: usize,
    pub learning_rate: f64,
    pub l2: f64,
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            folds: 3,
            epochs: 30,
            learning_rate: 0.05,
            l2: 1e-4,
            seed: 7,
        }
    }
}

impl RankerModel {
    pub fn check(&self) -> Result<(), BotError> {
        let expected: Vec<String> = FEATURES.iter().map(|f| (*f).to_owned()).collect();
        if self.kind != MODEL_KIND || self.features != expected {
            return Err(BotError::ModelMismatch {
                found: format!("{} over {:?}", self.kind, self.features),
                expected: format!("{MODEL_KIND} over {expected:?}"),
            });
        }
        let n = N_FEATURES;
        if self.mean.len() != n || self.scale.len() != n || self.weights.len() != n {
            return Err(BotError::ModelMismatch {
                found: "weights of the wrong length".into(),
                expected: format!("{n} of each"),
            });
        }
        Ok(())
    }

    pub fn score(&self, f: &Features) -> f64 {
        f.iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .zip(&self.weights)
            .map(|(((x, m), s), w)| (x - m) / s * w)
            .sum()
    }

    /// Calibrated confidence in the best of `scores` (sorted best first), whose features are
    /// `top`.
    pub fn confidence(&self, scores: &[f64], top: &Features) -> f64 {
        if scores.is_empty() {
            return 0.0;
        }
        let x = calibration_inputs(scores, top);
        let c = &self.calibration;
        let w = [
            c.top,
            c.margin,
            c.term_coverage,
            c.entry_coverage,
            c.profile,
        ];
        sigmoid(w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>() + c.bias)
    }

    /// Refits the calibration on `rows` (what [`calibration_inputs`] read of a question's
    /// ranking, and whether its top candidate was right), and names the model anew.
    pub fn recalibrate(&mut self, rows: &[([f64; INPUTS], bool)]) {
        self.calibration = platt(rows);
        self.version = format!("pairwise-lr-{:016x}", version_hash(self));
    }

    pub fn from_json(text: &str) -> Result<Self, BotError> {
        let model: RankerModel =
            serde_json::from_str(text).map_err(|e| BotError::BadModel(e.to_string()))?;
        model.check()?;
        Ok(model)
    }
}

/// The runner-up may be missing; a lone candidate gets a fixed, comfortable margin.
fn margin(scores: &[f64]) -> f64 {
    match scores {
        [a, b, ..] => a - b,
        _ => 3.0,
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// One training query: its candidates' features, and which candidate is right (if any).
struct Query {
    features: Vec<Features>,
    positive: Option<usize>,
    held_out: bool,
}

/// Trains a ranker from the paraphrases of `entries`.
pub fn train(entries: &[Entry], params: &TrainParams) -> Result<RankerModel, BotError> {
    let folds = params.folds.max(2);
    let mut queries = Vec::new();
    for fold in 0..folds {
        let in_fold = |i: usize, j: usize| (i * 7 + j) % folds == fold;
        let reduced: Vec<Entry> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut e = e.clone();
                e.paraphrases = e
                    .paraphrases
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| !in_fold(i, *j))
                    .map(|(_, p)| p.clone())
                    .collect();
                e
            })
            .collect();
        let engine = Engine::build(reduced)?;
        for (i, e) in entries.iter().enumerate() {
            for (j, p) in e.paraphrases.iter().enumerate() {
                if !in_fold(i, j) {
                    continue;
                }
                let candidates = engine.candidates(p, None)?;
                queries.push(Query {
                    positive: candidates.iter().position(|c| c.entry == i),
                    features: candidates.into_iter().map(|c| c.features).collect(),
                    held_out: hash(p.as_bytes()).is_multiple_of(5),
                });
            }
        }
    }
    if queries
        .iter()
        .filter(|q| !q.held_out && q.positive.is_some())
        .count()
        == 0
    {
        return Err(BotError::NothingToTrainOn);
    }

    let rows: Vec<&Features> = queries
        .iter()
        .filter(|q| !q.held_out)
        .flat_map(|q| q.features.iter())
        .collect();
    let (mean, scale) = standardisation(&rows);
    let standard = |f: &Features| -> Features {
        let mut out = [0.0; N_FEATURES];
        for k in 0..N_FEATURES {
            out[k] = (f[k] - mean[k]) / scale[k];
        }
        out
    };

    let lists: Vec<(Vec<Features>, usize)> = queries
        .iter()
        .filter(|q| !q.held_out)
        .filter_map(|q| {
            let p = q.positive?;
            Some((q.features.iter().map(&standard).collect(), p))
        })
        .collect();
    let mut pair_rows: Vec<Features> = Vec::new();
    for (features, p) in &lists {
        for (k, f) in features.iter().enumerate() {
            if k != *p {
                let mut d = [0.0; N_FEATURES];
                for m in 0..N_FEATURES {
                    d[m] = features[*p][m] - f[m];
                }
                pair_rows.push(d);
            }
        }
    }
    let pairs = pair_rows.len();
    let weights = sgd_pairwise(&pair_rows, params);

    let mut model = RankerModel {
        kind: MODEL_KIND.to_owned(),
        version: String::new(),
        features: FEATURES.iter().map(|f| (*f).to_owned()).collect(),
        mean,
        scale,
        weights,
        calibration: Calibration {
            top: 0.0,
            margin: 1.0,
            bias: 0.0,
            term_coverage: 0.0,
            entry_coverage: 0.0,
            profile: 0.0,
        },
        report: TrainReport {
            entries: entries.len(),
            training_queries: queries.iter().filter(|q| !q.held_out).count(),
            pairs,
            held_out_queries: 0,
            held_out_p_at_1_bm25: 0.0,
            held_out_p_at_1_ranker: 0.0,
            held_out_recall: 0.0,
        },
    };

    // Calibration and the held-out report.
    let mut calibration_rows = Vec::new();
    let (mut bm25_hits, mut ranker_hits, mut found, mut n) = (0usize, 0usize, 0usize, 0usize);
    for q in queries.iter().filter(|q| q.held_out) {
        n += 1;
        let mut scored: Vec<(f64, usize)> = q
            .features
            .iter()
            .enumerate()
            .map(|(k, f)| (model.score(f), k))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let right = q.positive.is_some() && scored.first().map(|s| s.1) == q.positive;
        bm25_hits += usize::from(q.positive == Some(0));
        ranker_hits += usize::from(right);
        found += usize::from(q.positive.is_some());
        if let Some(&(_, k)) = scored.first() {
            let scores: Vec<f64> = scored.iter().map(|s| s.0).collect();
            // Only the score and margin: on paraphrases, short and clean, the coverage inputs
            // mean something other than on what customers write (fitted here they made the
            // confidence worse on real questions), so they are left to `Faq::calibrate`
            // on labelled questions.
            let mut x = calibration_inputs(&scores, &q.features[k]);
            x[2..].fill(0.0);
            calibration_rows.push((x, right));
        }
    }
    model.calibration = platt(&calibration_rows);
    let share = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    model.report.held_out_queries = n;
    model.report.held_out_p_at_1_bm25 = share(bm25_hits);
    model.report.held_out_p_at_1_ranker = share(ranker_hits);
    model.report.held_out_recall = share(found);
    model.version = format!("pairwise-lr-{:016x}", version_hash(&model));
    Ok(model)
}

fn version_hash(model: &RankerModel) -> u64 {
    let mut bytes = Vec::new();
    for v in model
        .mean
        .iter()
        .chain(&model.scale)
        .chain(&model.weights)
        .chain([
            &model.calibration.top,
            &model.calibration.margin,
            &model.calibration.bias,
            &model.calibration.term_coverage,
            &model.calibration.entry_coverage,
            &model.calibration.profile,
        ])
    {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    hash(&bytes)
}

fn standardisation(rows: &[&Features]) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len().max(1) as f64;
    let mut mean = vec![0.0; N_FEATURES];
    for r in rows {
        for k in 0..N_FEATURES {
            mean[k] += r[k] / n;
        }
    }
    let mut var = vec![0.0; N_FEATURES];
    for r in rows {
        for k in 0..N_FEATURES {
            var[k] += (r[k] - mean[k]).powi(2) / n;
        }
    }
    // A constant feature (popularity on a fresh KB) gets scale 1 and stays at 0.
    let scale = var
        .into_iter()
        .map(|v| if v > 1e-12 { v.sqrt() } else { 1.0 })
        .collect();
    (mean, scale)
}

/// A small deterministic generator, so a KB always trains to the same model.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn sgd_pairwise(pairs: &[Features], params: &TrainParams) -> Vec<f64> {
    let mut w = vec![0.0; N_FEATURES];
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    let mut rng = XorShift(params.seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for epoch in 0..params.epochs {
        for i in (1..order.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let lr = params.learning_rate / (1.0 + epoch as f64 * 0.2);
        for &i in &order {
            let d = &pairs[i];
            let s: f64 = d.iter().zip(&w).map(|(x, wi)| x * wi).sum();
            // d/dw of ln(1 + e^{-s})
            let g = sigmoid(-s);
            for k in 0..N_FEATURES {
                w[k] += lr * (g * d[k] - params.l2 * w[k]);
            }
        }
    }
    w
}

/// Logistic regression on the calibration's inputs by Newton's method (six parameters;
/// converges in a few steps), with a weak prior keeping it finite when the classes separate.
fn platt(rows: &[([f64; INPUTS], bool)]) -> Calibration {
    const N: usize = INPUTS + 1;
    let mut theta = [0.0f64; N];
    if rows.is_empty() {
        return Calibration {
            top: 0.0,
            margin: 1.0,
            bias: 0.0,
            term_coverage: 0.0,
            entry_coverage: 0.0,
            profile: 0.0,
        };
    }
    // Platt's targets: not 0 and 1 but slightly inside, by the class counts.
    let positives = rows.iter().filter(|r| r.1).count() as f64;
    let negatives = rows.len() as f64 - positives;
    let hi = (positives + 1.0) / (positives + 2.0);
    let lo = 1.0 / (negatives + 2.0);
    for _ in 0..50 {
        let mut grad = [0.0f64; N];
        let mut hess = [[0.0f64; N]; N];
        for (x, y) in rows {
            let mut v = [1.0f64; N];
            v[..INPUTS].copy_from_slice(x);
            let p = sigmoid(theta.iter().zip(&v).map(|(t, v)| t * v).sum());
            let t = if *y { hi } else { lo };
            for a in 0..N {
                grad[a] += (p - t) * v[a];
                for b in 0..N {
                    hess[a][b] += p * (1.0 - p) * v[a] * v[b];
                }
            }
        }
        for a in 0..N {
            grad[a] += 1e-3 * theta[a];
            hess[a][a] += 1e-3;
        }
        let Some(step) = solve(hess, grad) else {
            break;
        };
        for a in 0..N {
            theta[a] -= step[a];
        }
        if step.iter().map(|s| s.abs()).sum::<f64>() < 1e-9 {
            break;
        }
    }
    Calibration {
        top: theta[0],
        margin: theta[1],
        term_coverage: theta[2],
        entry_coverage: theta[3],
        profile: theta[4],
        bias: theta[5],
    }
}

/// Solves `m x = b` by Gaussian elimination with partial pivoting; `None` when `m` is singular.
fn solve<const N: usize>(mut m: [[f64; N]; N], mut b: [f64; N]) -> Option<[f64; N]> {
    for col in 0..N {
        let pivot = (col..N).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[pivot][col].abs() < 1e-15 {
            return None;
        }
        m.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..N {
            let f = m[row][col] / m[col][col];
            let pivot_row = m[col];
            for (x, p) in m[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; N];
    for row in (0..N).rev() {
        let tail: f64 = (row + 1..N).map(|k| m[row][k] * x[k]).sum();
        x[row] = (b[row] - tail) / m[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platt_separates_and_orders() {
        let rows: Vec<([f64; INPUTS], bool)> = (0..200)
            .map(|i| {
                let x = i as f64 / 20.0 - 5.0;
                (
                    [x, 0.0, 0.0, 0.0, 0.0],
                    (i * 37 % 100) as f64 / 100.0 < sigmoid(x),
                )
            })
            .collect();
        let c = platt(&rows);
        assert!(c.top > 0.3, "{c:?}");
        let p = |x: f64| sigmoid(c.top * x + c.bias);
        assert!(p(3.0) > 0.8 && p(-3.0) < 0.2);
    }

    #[test]
    fn solves_a_linear_system() {
        let x = solve(
            [[0.0, 4.0, 0.0], [2.0, 0.0, 0.0], [1.0, 0.0, 1.0]],
            [8.0, 2.0, 4.0],
        )
        .unwrap();
        assert!(
            (x[0] - 1.0).abs() < 1e-12 && (x[1] - 2.0).abs() < 1e-12 && (x[2] - 3.0).abs() < 1e-12
        );
        assert_eq!(solve([[1.0, 2.0], [2.0, 4.0]], [1.0, 2.0]), None);
    }

    #[test]
    fn the_calibration_reads_the_features_it_names() {
        assert_eq!(FEATURES[TERM_COVERAGE], "term_coverage_idf");
        assert_eq!(FEATURES[ENTRY_COVERAGE], "entry_coverage_idf");
        assert_eq!(FEATURES[PROFILE], "profile_cosine");
    }

    #[test]
    fn a_model_from_before_the_coverage_inputs_still_loads() {
        let c: Calibration =
            serde_json::from_str(r#"{"top": 1.5, "margin": 0.5, "bias": -1.0}"#).unwrap();
        assert_eq!(
            (c.term_coverage, c.entry_coverage, c.profile),
            (0.0, 0.0, 0.0)
        );
    }
}
