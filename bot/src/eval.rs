//! Evaluation: the metrics, and runners that put labelled files through the production code
//! path (the same `Faq`, `IntentModel` and `emotion::assess` the workers call).
//!
//! The metrics: accuracy, macro-F1, MRR@k, Pearson, and sign F1 over the non-neutral gold. Each
//! runner keeps one [`Prediction`] per example, for `--predictions FILE`.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::BotError;
use crate::emotion::{self, Mood};
use crate::faq::{Decision, Entry, Faq, Thresholds};
use crate::intent::{IntentModel, IntentParams};
use crate::ranker::RankerModel;
use crate::text::guess_locale;

/// Parses JSON Lines, naming the first bad line; blank lines are skipped.
pub fn parse_jsonl<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, BotError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| BotError::BadLine {
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labelled {
    pub text: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaqQuery {
    pub text: String,
    pub answer_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmotionExample {
    pub text: String,
    #[serde(default)]
    pub polarity: Option<f64>,
    #[serde(default)]
    pub label: Option<String>,
}

/// One example as kefu saw it, for `kefu eval … --predictions FILE` (one JSON line each), so
/// anyone can score kefu with their own tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub text: String,
    /// The gold label (intent, KB entry id, mood); `None` for an emotion line with only a score.
    pub gold: Option<String>,
    /// kefu's label (best intent, top KB entry, mood); `None` when the bot found no entry.
    pub prediction: Option<String>,
    /// kefu's score for its prediction: the intent's probability, the FAQ's calibrated
    /// confidence, the emotion's polarity in [-1, 1].
    pub score: f64,
    /// The gold polarity of an emotion line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold_polarity: Option<f64>,
    /// What the bot did with a FAQ query (answer, clarify, handoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Where the gold entry is in the FAQ's ranking (0 = top); `None` when it is not there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold_rank: Option<usize>,
}

/// Predictions as JSON Lines.
pub fn predictions_jsonl(predictions: &[Prediction]) -> String {
    let mut out = String::new();
    for p in predictions {
        out.push_str(&serde_json::to_string(p).expect("a prediction serialises"));
        out.push('\n');
    }
    out
}

pub fn accuracy<T: PartialEq>(gold: &[T], predicted: &[T]) -> f64 {
    if gold.is_empty() {
        return 0.0;
    }
    let right = gold.iter().zip(predicted).filter(|(g, p)| g == p).count();
    right as f64 / gold.len() as f64
}

/// The mean of the per-class F1 over every class that occurs in the gold or the predictions
/// (a class never predicted and never true does not count; one never predicted counts 0).
pub fn macro_f1<T: Ord + Clone>(gold: &[T], predicted: &[T]) -> f64 {
    let classes: BTreeSet<T> = gold.iter().chain(predicted).cloned().collect();
    mean_f1_over(gold, predicted, &classes)
}

/// The mean of the per-class F1 over `classes` only: a prediction of another class is a miss
/// for the gold class and a false alarm for none of them.
pub fn mean_f1_over<T: Ord>(gold: &[T], predicted: &[T], classes: &BTreeSet<T>) -> f64 {
    if classes.is_empty() {
        return 0.0;
    }
    let mut sum = 0.0;
    for c in classes {
        let tp = gold
            .iter()
            .zip(predicted)
            .filter(|(g, p)| *g == c && *p == c)
            .count() as f64;
        let fp = predicted.iter().filter(|p| *p == c).count() as f64 - tp;
        let fn_ = gold.iter().filter(|g| *g == c).count() as f64 - tp;
        let f1 = if tp == 0.0 {
            0.0
        } else {
            2.0 * tp / (2.0 * tp + fp + fn_)
        };
        sum += f1;
    }
    sum / classes.len() as f64
}

/// Pearson's correlation; None when either side is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len().min(b.len());
    if n < 2 {
        return None;
    }
    let ma = a[..n].iter().sum::<f64>() / n as f64;
    let mb = b[..n].iter().sum::<f64>() / n as f64;
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        cov += (a[i] - ma) * (b[i] - mb);
        va += (a[i] - ma).powi(2);
        vb += (b[i] - mb).powi(2);
    }
    if va == 0.0 || vb == 0.0 {
        return None;
    }
    Some(cov / (va * vb).sqrt())
}

/// Mean reciprocal rank, counting only ranks within the first `k` (0-based ranks).
pub fn mrr_at(ranks: &[Option<usize>], k: usize) -> f64 {
    if ranks.is_empty() {
        return 0.0;
    }
    ranks
        .iter()
        .map(|r| match r {
            Some(r) if *r < k => 1.0 / (*r as f64 + 1.0),
            _ => 0.0,
        })
        .sum::<f64>()
        / ranks.len() as f64
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationFigures {
    pub examples: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
}

fn figures(gold: &[String], predicted: &[String]) -> ClassificationFigures {
    ClassificationFigures {
        examples: gold.len(),
        accuracy: round(accuracy(gold, predicted)),
        macro_f1: round(macro_f1(gold, predicted)),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentReport {
    pub task: &'static str,
    pub train_examples: usize,
    pub test_examples: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub by_locale: BTreeMap<String, ClassificationFigures>,
    pub model_version: String,
    #[serde(skip)]
    pub predictions: Vec<Prediction>,
}

/// Trains on `train`, classifies `test`.
pub fn eval_intents(train: &[Labelled], test: &[Labelled]) -> Result<IntentReport, BotError> {
    let model = IntentModel::train(train, &IntentParams::default())?;
    let gold: Vec<String> = test.iter().map(|t| t.label.clone()).collect();
    let mut predicted = Vec::with_capacity(test.len());
    let mut predictions = Vec::with_capacity(test.len());
    for t in test {
        let scores = model.classify(&t.text);
        let best = scores.best().to_owned();
        predictions.push(Prediction {
            text: t.text.clone(),
            gold: Some(t.label.clone()),
            prediction: Some(best.clone()),
            score: scores.probability(&best),
            gold_polarity: None,
            decision: None,
            gold_rank: None,
        });
        predicted.push(best);
    }
    let overall = figures(&gold, &predicted);
    Ok(IntentReport {
        task: "intents",
        train_examples: train.len(),
        test_examples: test.len(),
        accuracy: overall.accuracy,
        macro_f1: overall.macro_f1,
        by_locale: by_locale(test.iter().map(|t| t.text.as_str()), &gold, &predicted),
        model_version: model.version().to_owned(),
        predictions,
    })
}

fn by_locale<'a>(
    texts: impl Iterator<Item = &'a str>,
    gold: &[String],
    predicted: &[String],
) -> BTreeMap<String, ClassificationFigures> {
    let mut split: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for ((text, g), p) in texts.zip(gold).zip(predicted) {
        let e = split.entry(guess_locale(text).to_owned()).or_default();
        e.0.push(g.clone());
        e.1.push(p.clone());
    }
    split
        .into_iter()
        .map(|(k, (g, p))| (k, figures(&g, &p)))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaqFigures {
    pub queries: usize,
    pub p_at_1: f64,
    pub mrr_at_10: f64,
    pub answered: f64,
    pub clarified: f64,
    pub handed_over: f64,
    /// Of the answered queries, the share answered with the right entry.
    pub answered_precision: f64,
    /// Of the clarified queries, the share whose right entry was among the three suggestions.
    pub clarified_contains_answer: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaqReport {
    pub task: &'static str,
    #[serde(flatten)]
    pub overall: FaqFigures,
    pub by_locale: BTreeMap<String, FaqFigures>,
    pub thresholds: Thresholds,
    pub model_version: String,
    #[serde(skip)]
    pub predictions: Vec<Prediction>,
}

struct FaqOutcome {
    locale: String,
    rank: Option<usize>,
    decision: Decision,
}

fn faq_figures(outcomes: &[&FaqOutcome]) -> FaqFigures {
    let n = outcomes.len().max(1) as f64;
    let ranks: Vec<Option<usize>> = outcomes.iter().map(|o| o.rank).collect();
    let with = |d: Decision| outcomes.iter().filter(move |o| o.decision == d);
    let answered = with(Decision::Answer).count();
    let answered_right = with(Decision::Answer).filter(|o| o.rank == Some(0)).count();
    let clarified = with(Decision::Clarify).count();
    let clarified_right = with(Decision::Clarify)
        .filter(|o| o.rank.is_some_and(|r| r < 3))
        .count();
    let share = |a: usize, b: usize| {
        if b == 0 {
            0.0
        } else {
            round(a as f64 / b as f64)
        }
    };
    FaqFigures {
        queries: outcomes.len(),
        p_at_1: round(ranks.iter().filter(|r| **r == Some(0)).count() as f64 / n),
        mrr_at_10: round(mrr_at(&ranks, 10)),
        answered: share(answered, outcomes.len()),
        clarified: share(clarified, outcomes.len()),
        handed_over: share(with(Decision::Handoff).count(), outcomes.len()),
        answered_precision: share(answered_right, answered),
        clarified_contains_answer: share(clarified_right, clarified),
    }
}

/// Builds the bot on `kb` (training a ranker from its paraphrases unless `model` is given)
/// and asks it every query.
pub fn eval_faq(
    kb: Vec<Entry>,
    queries: &[FaqQuery],
    model: Option<RankerModel>,
    thresholds: Thresholds,
) -> Result<FaqReport, BotError> {
    let known: BTreeSet<String> = kb.iter().map(|e| e.external_id.clone()).collect();
    if let Some((i, q)) = queries
        .iter()
        .enumerate()
        .find(|(_, q)| !known.contains(&q.answer_id))
    {
        return Err(BotError::BadLine {
            line: i + 1,
            message: format!("answer_id {:?} is not in the knowledge base", q.answer_id),
        });
    }
    let faq = Faq::new(kb, model, thresholds)?;
    let mut outcomes = Vec::with_capacity(queries.len());
    let mut predictions = Vec::with_capacity(queries.len());
    for q in queries {
        let answer = faq.answer(&q.text, None)?;
        let rank = answer
            .ranked
            .iter()
            .position(|r| r.external_id == q.answer_id);
        predictions.push(Prediction {
            text: q.text.clone(),
            gold: Some(q.answer_id.clone()),
            prediction: answer.top().map(|r| r.external_id.clone()),
            score: answer.confidence,
            gold_polarity: None,
            decision: Some(answer.decision),
            gold_rank: rank,
        });
        outcomes.push(FaqOutcome {
            locale: guess_locale(&q.text).to_owned(),
            rank,
            decision: answer.decision,
        });
    }
    let all: Vec<&FaqOutcome> = outcomes.iter().collect();
    let mut locales: BTreeMap<String, Vec<&FaqOutcome>> = BTreeMap::new();
    for o in &outcomes {
        locales.entry(o.locale.clone()).or_default().push(o);
    }
    Ok(FaqReport {
        task: "faq",
        overall: faq_figures(&all),
        by_locale: locales
            .into_iter()
            .map(|(k, v)| (k, faq_figures(&v)))
            .collect(),
        thresholds,
        model_version: faq.ranker.version.clone(),
        predictions,
    })
}

/// The sign of a polarity: within ±0.1 (the neutral band of the data sets) is neutral.
pub fn sign(polarity: f64) -> i8 {
    if polarity > 0.1 {
        1
    } else if polarity < -0.1 {
        -1
    } else {
        0
    }
}

fn sign_of_mood(mood: Mood) -> i8 {
    match mood {
        Mood::Satisfied => 1,
        Mood::Neutral => 0,
        Mood::Angry | Mood::Anxious | Mood::Sad => -1,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmotionFigures {
    pub examples: usize,
    /// Three-way sign (negative, neutral, positive).
    pub sign_accuracy: f64,
    pub sign_macro_f1: f64,
    /// Over the examples whose gold is positive or negative: the mean F1 of those two signs
    /// (a neutral prediction is a miss), as the baselines report it.
    pub sign_f1_non_neutral: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_macro_f1: Option<f64>,
    /// Pearson's r between the gold polarity and ours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmotionReport {
    pub task: &'static str,
    #[serde(flatten)]
    pub overall: EmotionFigures,
    pub by_locale: BTreeMap<String, EmotionFigures>,
    pub model_version: &'static str,
    #[serde(skip)]
    pub predictions: Vec<Prediction>,
}

pub fn eval_emotion(test: &[EmotionExample]) -> Result<EmotionReport, BotError> {
    eval_emotion_with(test, &emotion::Learned::shipped())
}

/// [`eval_emotion`] with other learned models or another blend (what the training example
/// compares candidates by).
pub fn eval_emotion_with(
    test: &[EmotionExample],
    learned: &emotion::Learned,
) -> Result<EmotionReport, BotError> {
    let mut rows = Vec::with_capacity(test.len());
    for (i, ex) in test.iter().enumerate() {
        let gold_label = match &ex.label {
            Some(l) => Some(Mood::parse(l).ok_or_else(|| BotError::BadLine {
                line: i + 1,
                message: format!(
                    "label {l:?} is not one of angry, anxious, sad, neutral, satisfied"
                ),
            })?),
            None => None,
        };
        if ex.polarity.is_none() && gold_label.is_none() {
            return Err(BotError::BadLine {
                line: i + 1,
                message: "needs a polarity or a label".into(),
            });
        }
        if let Some(p) = ex.polarity
            && !(-1.0..=1.0).contains(&p)
        {
            return Err(BotError::BadLine {
                line: i + 1,
                message: format!("polarity {p} is outside [-1, 1]"),
            });
        }
        let a = emotion::assess_with(&ex.text, learned);
        rows.push((guess_locale(&ex.text), ex.polarity, gold_label, a));
    }
    let figures = |rows: &[&(&str, Option<f64>, Option<Mood>, emotion::Assessment)]| {
        let gold_sign: Vec<i8> = rows
            .iter()
            .map(|r| {
                r.1.map_or_else(|| sign_of_mood(r.2.unwrap_or(Mood::Neutral)), sign)
            })
            .collect();
        let our_sign: Vec<i8> = rows.iter().map(|r| sign(r.3.polarity)).collect();
        let labelled: Vec<(Mood, Mood)> = rows
            .iter()
            .filter_map(|r| r.2.map(|g| (g, r.3.mood)))
            .collect();
        let scored: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| r.1.map(|g| (g, r.3.polarity)))
            .collect();
        let (lg, lp): (Vec<Mood>, Vec<Mood>) = labelled.into_iter().unzip();
        let (ng, np): (Vec<i8>, Vec<i8>) = gold_sign
            .iter()
            .zip(&our_sign)
            .filter(|(g, _)| **g != 0)
            .map(|(g, p)| (*g, *p))
            .unzip();
        let (sg, sp): (Vec<f64>, Vec<f64>) = scored.into_iter().unzip();
        EmotionFigures {
            examples: rows.len(),
            sign_accuracy: round(accuracy(&gold_sign, &our_sign)),
            sign_macro_f1: round(macro_f1(&gold_sign, &our_sign)),
            sign_f1_non_neutral: round(mean_f1_over(&ng, &np, &BTreeSet::from([-1, 1]))),
            label_accuracy: (!lg.is_empty()).then(|| round(accuracy(&lg, &lp))),
            label_macro_f1: (!lg.is_empty()).then(|| round(macro_f1(&lg, &lp))),
            correlation: pearson(&sg, &sp).map(round),
        }
    };
    let all: Vec<_> = rows.iter().collect();
    let mut locales: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for r in &rows {
        locales.entry(r.0.to_owned()).or_default().push(r);
    }
    let predictions = test
        .iter()
        .zip(&rows)
        .map(|(ex, r)| Prediction {
            text: ex.text.clone(),
            gold: r.2.map(|m| m.as_str().to_owned()),
            prediction: Some(r.3.mood.as_str().to_owned()),
            score: r.3.polarity,
            gold_polarity: r.1,
            decision: None,
            gold_rank: None,
        })
        .collect();
    Ok(EmotionReport {
        task: "emotion",
        overall: figures(&all),
        by_locale: locales.into_iter().map(|(k, v)| (k, figures(&v))).collect(),
        model_version: emotion::MODEL_VERSION,
        predictions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_and_macro_f1_by_hand() {
        let gold = ["a", "a", "b", "c"];
        let pred = ["a", "b", "b", "b"];
        assert!((accuracy(&gold, &pred) - 0.5).abs() < 1e-12);
        // a: tp1 fp0 fn1 -> 2/3; b: tp1 fp2 fn0 -> 2/4; c: 0
        let expected = (2.0 / 3.0 + 0.5 + 0.0) / 3.0;
        assert!((macro_f1(&gold, &pred) - expected).abs() < 1e-12);
    }

    #[test]
    fn mrr_counts_ranks_within_k() {
        let ranks = [Some(0), Some(1), None, Some(10)];
        assert!((mrr_at(&ranks, 10) - (1.0 + 0.5) / 4.0).abs() < 1e-12);
    }

    #[test]
    fn pearson_by_hand() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        assert!(pearson(&[1.0, 1.0], &[1.0, 2.0]).is_none());
    }

    #[test]
    fn emotion_eval_on_a_tiny_set() {
        let test: Vec<EmotionExample> = parse_jsonl(
            r#"{"text":"Thank you, great help!","polarity":0.8,"label":"satisfied"}
{"text":"This is terrible, I am furious!!!","polarity":-0.9,"label":"angry"}
{"text":"How do I change my address?","polarity":0.0,"label":"neutral"}"#,
        )
        .unwrap();
        let r = eval_emotion(&test).unwrap();
        assert_eq!(r.overall.examples, 3);
        assert_eq!(r.overall.sign_accuracy, 1.0);
        assert_eq!(r.overall.label_accuracy, Some(1.0));
        assert!(r.overall.correlation.unwrap() > 0.9);
    }

    #[test]
    fn sign_f1_over_non_neutral_gold_counts_a_neutral_guess_as_a_miss() {
        let gold = [1, 1, -1, -1];
        let pred = [1, 0, -1, 1];
        // +1: tp 1, fp 1, fn 1 -> 1/2; -1: tp 1, fp 0, fn 1 -> 2/3.
        let expected = (0.5 + 2.0 / 3.0) / 2.0;
        let f = mean_f1_over(&gold, &pred, &BTreeSet::from([-1, 1]));
        assert!((f - expected).abs() < 1e-12, "{f}");
    }

    /// The predictions file says, line for line, what the figures were computed from: scoring
    /// it again gives the report's figures.
    #[test]
    fn predictions_agree_with_the_figures() {
        let test: Vec<EmotionExample> = parse_jsonl(
            r#"{"text":"Thank you, great help!","polarity":0.8,"label":"satisfied"}
{"text":"This is terrible, I am furious!!!","polarity":-0.9}
{"text":"How do I change my address?","label":"neutral"}
{"text":"快递怎么还没到？？？","polarity":-0.4,"label":"anxious"}"#,
        )
        .unwrap();
        let r = eval_emotion(&test).unwrap();
        let lines: Vec<Prediction> = parse_jsonl(&predictions_jsonl(&r.predictions)).unwrap();
        assert_eq!(lines.len(), test.len());
        for (p, ex) in lines.iter().zip(&test) {
            assert_eq!(p.text, ex.text);
            assert_eq!(p.gold, ex.label);
            assert_eq!(p.gold_polarity, ex.polarity);
            let a = emotion::assess(&ex.text);
            assert_eq!(p.prediction.as_deref(), Some(a.mood.as_str()));
            assert!((p.score - a.polarity).abs() < 1e-12);
        }
        let scored: Vec<(f64, f64)> = lines
            .iter()
            .filter_map(|p| p.gold_polarity.map(|g| (g, p.score)))
            .collect();
        let (g, s): (Vec<f64>, Vec<f64>) = scored.into_iter().unzip();
        assert_eq!(pearson(&g, &s).map(round), r.overall.correlation);
        let labelled: Vec<(&str, &str)> = lines
            .iter()
            .filter_map(|p| Some((p.gold.as_deref()?, p.prediction.as_deref()?)))
            .collect();
        let right = labelled.iter().filter(|(g, p)| g == p).count() as f64;
        assert_eq!(
            Some(round(right / labelled.len() as f64)),
            r.overall.label_accuracy
        );
    }

    #[test]
    fn intent_and_faq_predictions_name_gold_and_guess() {
        let train: Vec<Labelled> = parse_jsonl(
            r#"{"text":"where is my parcel","label":"parcel"}
{"text":"快递到哪了","label":"parcel"}
{"text":"I want my money back","label":"refund"}
{"text":"退款什么时候到","label":"refund"}"#,
        )
        .unwrap();
        let test = vec![Labelled {
            text: "where is my package".into(),
            label: "parcel".into(),
        }];
        let r = eval_intents(&train, &test).unwrap();
        let p = &r.predictions[0];
        assert_eq!(p.gold.as_deref(), Some("parcel"));
        let best = p.prediction.as_deref().unwrap();
        assert!(["parcel", "refund"].contains(&best), "{p:?}");
        assert!(p.score >= 0.5 && p.score <= 1.0, "{p:?}");
        assert_eq!(r.accuracy, if best == "parcel" { 1.0 } else { 0.0 });

        let kb: Vec<Entry> = crate::kb::parse(crate::kb::DEMO_KB)
            .unwrap()
            .iter()
            .map(Entry::from)
            .collect();
        let queries = vec![FaqQuery {
            text: "运费是怎么收取的？".into(),
            answer_id: "zh-shipping-001".into(),
        }];
        let r = eval_faq(kb, &queries, None, Thresholds::default()).unwrap();
        let p = &r.predictions[0];
        assert_eq!(p.gold.as_deref(), Some("zh-shipping-001"));
        assert_eq!(p.prediction.as_deref(), Some("zh-shipping-001"));
        assert_eq!(p.gold_rank, Some(0));
        assert!(p.decision.is_some());
        assert!((0.0..=1.0).contains(&p.score));
    }

    #[test]
    fn bad_lines_are_named() {
        let err = parse_jsonl::<Labelled>("{\"text\":\"a\",\"label\":\"b\"}\n\n{oops").unwrap_err();
        assert!(matches!(err, BotError::BadLine { line: 3, .. }), "{err}");
        let err = eval_emotion(&[EmotionExample {
            text: "x".into(),
            polarity: None,
            label: Some("furious".into()),
        }])
        .unwrap_err();
        assert!(err.to_string().contains("furious"));
    }
}
