//! Multinomial naive Bayes over hashed features: small, exact to train, and good with little
//! data. Used for the category prior of FAQ ranking and inside the intent classifier.

use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct NaiveBayes {
    classes: usize,
    log_prior: Vec<f64>,
    /// log P(feature | class) for every feature seen in training.
    log_likelihood: HashMap<u64, Vec<f64>>,
}

impl NaiveBayes {
    /// `docs`: (features with repeats, class index); `alpha`: additive smoothing.
    pub fn train(classes: usize, docs: &[(Vec<u64>, usize)], alpha: f64) -> Self {
        let mut counts: HashMap<u64, Vec<f64>> = HashMap::new();
        let mut totals = vec![0.0; classes];
        let mut docs_per_class = vec![0.0; classes];
        for (features, class) in docs {
            docs_per_class[*class] += 1.0;
            for f in features {
                counts.entry(*f).or_insert_with(|| vec![0.0; classes])[*class] += 1.0;
                totals[*class] += 1.0;
            }
        }
        let vocabulary = counts.len().max(1) as f64;
        let denominators: Vec<f64> = totals.iter().map(|t| t + alpha * vocabulary).collect();
        let n_docs: f64 = docs_per_class.iter().sum::<f64>().max(1.0);
        let log_prior = docs_per_class
            .iter()
            .map(|d| ((d + 1.0) / (n_docs + classes as f64)).ln())
            .collect();
        let log_likelihood = counts
            .into_iter()
            .map(|(f, c)| {
                let l = c
                    .iter()
                    .zip(&denominators)
                    .map(|(n, d)| ((n + alpha) / d).ln())
                    .collect();
                (f, l)
            })
            .collect();
        NaiveBayes {
            classes,
            log_prior,
            log_likelihood,
        }
    }

    /// Unnormalised log posteriors; features never seen in training are ignored rather than
    /// charged the smoothing mass, which would favour the classes with the least text.
    pub fn log_scores(&self, features: &[u64], with_prior: bool) -> Vec<f64> {
        let mut s = if with_prior {
            self.log_prior.clone()
        } else {
            vec![0.0; self.classes]
        };
        for f in features {
            if let Some(l) = self.log_likelihood.get(f) {
                for (si, li) in s.iter_mut().zip(l) {
                    *si += li;
                }
            }
        }
        s
    }

    /// P(class | features), tempered: naive Bayes is overconfident because it counts
    /// correlated features (overlapping n-grams) as independent evidence.
    pub fn probabilities(&self, features: &[u64], temperature: f64) -> Vec<f64> {
        let s = self.log_scores(features, true);
        softmax(&s.iter().map(|x| x / temperature).collect::<Vec<_>>())
    }

    pub fn classes(&self) -> usize {
        self.classes
    }
}

pub fn softmax(scores: &[f64]) -> Vec<f64> {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return vec![1.0 / scores.len().max(1) as f64; scores.len()];
    }
    let exp: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_which_class_a_feature_belongs_to() {
        let docs = vec![
            (vec![1, 2, 2], 0),
            (vec![1, 2], 0),
            (vec![3, 4], 1),
            (vec![3, 4, 4], 1),
        ];
        let nb = NaiveBayes::train(2, &docs, 0.5);
        let p = nb.probabilities(&[2], 1.0);
        assert!(p[0] > 0.8, "{p:?}");
        let p = nb.probabilities(&[4, 3], 1.0);
        assert!(p[1] > 0.8, "{p:?}");
        let sum: f64 = p.iter().sum();
        assert!((sum - 1.0).abs() < 1e-9);
    }
}
