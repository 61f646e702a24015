//! FAQ answering (DeepQA's shape): retrieve candidates with BM25, describe each by features,
//! re-rank them with a learned model, and decide from a calibrated confidence whether to
//! answer, ask the customer to pick among the top three, or hand over to a human.
//!
//! [`Engine`] is the knowledge base prepared: the retrieval index, per-text profiles, IDF,
//! per-entry n-gram likelihoods and tf-idf profile vectors, and a naive-Bayes category model
//! (`nb.rs`). It describes each candidate by 16 features ([`FEATURES`]): BM25 relative and
//! log-scaled, retrieval rank, IDF-weighted term coverage and Jaccard, entry coverage, character
//! bigram and trigram Dice, edit similarity, synonym coverage and Jaccard, profile cosine, entry
//! likelihood, category prior (optionally multiplied by the scenario prior), popularity, and locale
//! match. [`Faq`] ranks them with the model (`ranker.rs`) and decides from the confidence: at or
//! above `answer` it answers, at or above `clarify` it offers the top three, else it hands over
//! ([`Thresholds`], from configuration: `--answer-threshold` / `KEFU_BOT_ANSWER_THRESHOLD`,
//! `--clarify-threshold` / `KEFU_BOT_CLARIFY_THRESHOLD`).
//!
//! A near-exact match is answered ([`Faq::answer`], issue 14): when the top candidate's question or
//! a paraphrase is the query but for case, punctuation, spacing and one slip in ten characters
//! (edit similarity of at least 0.9 over the compact forms, for queries of 4 characters or more),
//! the bot answers whatever the calibrated confidence, instead of offering a list that holds what
//! was typed.

use std::collections::HashMap;

use kefu_domain::ids::KnowledgeEntryId;
use kefu_domain::knowledge::KnowledgeEntry;
use serde::{Deserialize, Serialize};

use crate::BotError;
use crate::kb::{KbEntry, entry_id};
use crate::nb::NaiveBayes;
use crate::ranker::RankerModel;
use crate::retrieval::{Hit, IndexedText, Retriever};
use crate::synonyms::concepts;
use crate::text::{self, cjk_bigrams, compact, dice, edit_similarity, gram_set, guess_locale};

/// How many documents BM25 returns, and how many distinct entries are ranked.
const RETRIEVE_DOCS: usize = 80;
const RANK_ENTRIES: usize = 30;
/// Character n-gram sizes of the entry profile (tf-idf cosine).
const PROFILE_GRAMS: [usize; 3] = [1, 2, 3];

/// An entry the bot can answer with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: KnowledgeEntryId,
    /// The id the KB file gave it (`zh-shipping-001`), or the UUID when it came from the log.
    pub external_id: String,
    pub question: String,
    pub paraphrases: Vec<String>,
    pub answer: String,
    pub category: String,
    pub locale: String,
    /// The entry's revision, recorded with each answer.
    pub revision: u32,
}

impl From<&KbEntry> for Entry {
    fn from(e: &KbEntry) -> Self {
        Entry {
            id: entry_id(&e.id),
            external_id: e.id.clone(),
            question: e.question.clone(),
            paraphrases: e.paraphrases.clone(),
            answer: e.answer.clone(),
            category: e.category.clone(),
            locale: e.locale.clone(),
            revision: 1,
        }
    }
}

impl From<&KnowledgeEntry> for Entry {
    fn from(e: &KnowledgeEntry) -> Self {
        Entry {
            id: e.id,
            external_id: e.id.to_string(),
            question: e.question.clone(),
            paraphrases: e.paraphrases.clone(),
            answer: e.answer.clone(),
            category: e.category.to_string(),
            locale: e.locale.to_string(),
            revision: e.revision,
        }
    }
}

impl Entry {
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.question.as_str()).chain(self.paraphrases.iter().map(String::as_str))
    }
}

/// What the ranker knows about one piece of text (a query, a question, a paraphrase).
#[derive(Debug, Clone)]
pub struct TextProfile {
    pub terms: Vec<String>,
    /// Term ids in the engine's vocabulary, sorted, distinct (unknown terms left out).
    pub term_ids: Vec<u32>,
    pub grams2: Vec<u64>,
    pub grams3: Vec<u64>,
    pub chars: Vec<char>,
    pub concepts: Vec<u16>,
    pub bigrams: Vec<String>,
    pub compact: String,
}

fn profile_text(text: &str) -> TextProfile {
    let compact = compact(text);
    TextProfile {
        terms: text::content_terms(text),
        term_ids: Vec::new(),
        grams2: gram_set(&compact, &[2]),
        grams3: gram_set(&compact, &[3]),
        // Edit distance is quadratic; its first 64 characters say enough about a text.
        chars: compact.chars().filter(|c| *c != ' ').take(64).collect(),
        concepts: concepts().of(&compact),
        bigrams: cjk_bigrams(&compact),
        compact,
    }
}

/// The names of the ranking features, in order; stored with a model, which refuses to load
/// against a different list.
pub const FEATURES: [&str; 16] = [
    "bm25_relative",
    "bm25_log",
    "retrieval_rank",
    "term_coverage_idf",
    "term_jaccard_idf",
    "entry_coverage_idf",
    "char_bigram_dice",
    "char_trigram_dice",
    "edit_similarity",
    "synonym_coverage",
    "synonym_jaccard",
    "profile_cosine",
    "entry_likelihood",
    "category_prior",
    "popularity",
    "locale_match",
];
pub const N_FEATURES: usize = FEATURES.len();

pub type Features = [f64; N_FEATURES];

/// A category distribution from outside the text (the scenario predicted from the order, or
/// the customer's choice), by KB category code.
pub type CategoryPrior = HashMap<String, f64>;

/// The KB, prepared: BM25 index, text profiles, vocabulary, category model.
pub struct Engine {
    entries: Vec<Entry>,
    texts: Vec<Vec<TextProfile>>,
    profile_vectors: Vec<Vec<(u64, f32)>>,
    /// Per entry, naive Bayes counts of its words and grams over all its texts (sorted), and
    /// the log of their smoothed total.
    likelihood_counts: Vec<Vec<(u64, f32)>>,
    likelihood_log_total: Vec<f64>,
    retriever: Retriever,
    vocabulary: HashMap<String, u32>,
    idf: Vec<f64>,
    unknown_idf: f64,
    gram_idf: HashMap<u64, f64>,
    categories: Vec<String>,
    category_of: Vec<usize>,
    category_model: NaiveBayes,
    popularity: Vec<f64>,
}

/// One candidate, described.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub entry: usize,
    pub hit: Hit,
    pub features: Features,
}

impl Engine {
    pub fn build(entries: Vec<Entry>) -> Result<Self, BotError> {
        if entries.is_empty() {
            return Err(BotError::EmptyKnowledgeBase);
        }
        let mut texts: Vec<Vec<TextProfile>> = entries
            .iter()
            .map(|e| e.texts().map(profile_text).collect())
            .collect();

        // Term document frequencies are over entries: a word every paraphrase of one entry
        // repeats is still one entry's word.
        let mut vocabulary: HashMap<String, u32> = HashMap::new();
        let mut df: Vec<f64> = Vec::new();
        for entry_texts in &texts {
            let mut seen: Vec<u32> = Vec::new();
            for t in entry_texts {
                for term in &t.terms {
                    let next = vocabulary.len() as u32;
                    let id = *vocabulary.entry(term.clone()).or_insert(next);
                    if id as usize == df.len() {
                        df.push(0.0);
                    }
                    seen.push(id);
                }
            }
            seen.sort_unstable();
            seen.dedup();
            for id in seen {
                df[id as usize] += 1.0;
            }
        }
        let n = entries.len() as f64;
        let idf: Vec<f64> = df
            .iter()
            .map(|d| ((n + 1.0) / (d + 1.0)).ln() + 1.0)
            .collect();
        let unknown_idf = (n + 1.0).ln() + 1.0;
        for entry_texts in &mut texts {
            for t in entry_texts.iter_mut() {
                t.term_ids = ids_of(&vocabulary, &t.terms);
            }
        }

        let mut gram_df: HashMap<u64, f64> = HashMap::new();
        let entry_grams: Vec<Vec<u64>> = texts
            .iter()
            .map(|ts| ts.iter().flat_map(profile_grams).collect())
            .collect();
        for grams in &entry_grams {
            let mut distinct = grams.clone();
            distinct.sort_unstable();
            distinct.dedup();
            for g in distinct {
                *gram_df.entry(g).or_default() += 1.0;
            }
        }
        let gram_idf: HashMap<u64, f64> = gram_df
            .into_iter()
            .map(|(g, d)| (g, ((n + 1.0) / (d + 1.0)).ln() + 1.0))
            .collect();
        let profile_vectors = entry_grams
            .iter()
            .map(|g| tfidf_vector(g, &gram_idf, unknown_idf))
            .collect();

        let mut likelihood_counts = Vec::with_capacity(entries.len());
        let mut vocabulary_of_grams: std::collections::HashSet<u64> =
            std::collections::HashSet::new();
        for ts in &texts {
            let mut counts: HashMap<u64, f32> = HashMap::new();
            for profile in ts {
                for f in likelihood_features(profile) {
                    *counts.entry(f).or_default() += 1.0;
                    vocabulary_of_grams.insert(f);
                }
            }
            let mut counts: Vec<(u64, f32)> = counts.into_iter().collect();
            counts.sort_unstable_by_key(|(f, _)| *f);
            likelihood_counts.push(counts);
        }
        let likelihood_vocabulary = vocabulary_of_grams.len() as f64;
        let likelihood_log_total = likelihood_counts
            .iter()
            .map(|c| {
                (c.iter().map(|(_, n)| f64::from(*n)).sum::<f64>()
                    + LIKELIHOOD_ALPHA * likelihood_vocabulary)
                    .ln()
            })
            .collect();

        let mut categories: Vec<String> = entries.iter().map(|e| e.category.clone()).collect();
        categories.sort();
        categories.dedup();
        let category_of: Vec<usize> = entries
            .iter()
            .map(|e| categories.binary_search(&e.category).unwrap_or(0))
            .collect();
        let docs: Vec<(Vec<u64>, usize)> = texts
            .iter()
            .zip(&category_of)
            .flat_map(|(ts, c)| ts.iter().map(move |t| (category_features(t), *c)))
            .collect();
        let category_model = NaiveBayes::train(categories.len(), &docs, 0.1);

        let retriever = Retriever::build(texts.iter().enumerate().flat_map(|(i, ts)| {
            ts.iter().map(move |t| IndexedText {
                entry: i as u32,
                terms: &t.terms,
                bigrams: &t.bigrams,
            })
        }))?;
        let popularity = vec![0.0; entries.len()];
        Ok(Engine {
            entries,
            texts,
            profile_vectors,
            likelihood_counts,
            likelihood_log_total,
            retriever,
            vocabulary,
            idf,
            unknown_idf,
            gram_idf,
            categories,
            category_of,
            category_model,
            popularity,
        })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// How often each entry was served (by entry id); the popularity feature is its log,
    /// relative to the most served entry.
    pub fn set_popularity(&mut self, served: &HashMap<KnowledgeEntryId, u64>) {
        let max = served.values().copied().max().unwrap_or(0) as f64;
        for (i, e) in self.entries.iter().enumerate() {
            let n = served.get(&e.id).copied().unwrap_or(0) as f64;
            self.popularity[i] = if max > 0.0 {
                (1.0 + n).ln() / (1.0 + max).ln()
            } else {
                0.0
            };
        }
    }

    /// The candidates for `query`, in BM25 order, with their features.
    pub fn candidates(
        &self,
        query: &str,
        prior: Option<&CategoryPrior>,
    ) -> Result<Vec<Candidate>, BotError> {
        let mut q = profile_text(query);
        q.term_ids = ids_of(&self.vocabulary, &q.terms);
        let hits = self
            .retriever
            .search(&q.terms, &q.bigrams, RETRIEVE_DOCS, RANK_ENTRIES)?;
        let Some(top) = hits.first().map(|h| h.score) else {
            return Ok(Vec::new());
        };
        let q_weight: f64 = q
            .terms
            .iter()
            .map(|t| self.term_idf(t))
            .sum::<f64>()
            .max(1e-9);
        let q_vector = tfidf_vector(&profile_grams(&q), &self.gram_idf, self.unknown_idf);
        let category_probs = self.category_probabilities(&q, prior);
        let locale = guess_locale(query);
        let q_likelihood = likelihood_features(&q);
        let mut candidates: Vec<Candidate> = hits
            .into_iter()
            .map(|hit| {
                let e = hit.entry as usize;
                let features = self.features(
                    &q,
                    q_weight,
                    &q_vector,
                    &category_probs,
                    locale,
                    e,
                    hit,
                    top,
                );
                Candidate {
                    entry: e,
                    hit,
                    features,
                }
            })
            .collect();
        // The likelihood only means something relative to the other candidates': per query
        // feature, how much less likely than the best candidate.
        let likelihoods: Vec<f64> = candidates
            .iter()
            .map(|c| self.log_likelihood(c.entry, &q_likelihood))
            .collect();
        let best = likelihoods
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let per = q_likelihood.len().max(1) as f64;
        for (c, l) in candidates.iter_mut().zip(likelihoods) {
            c.features[LIKELIHOOD_FEATURE] = (l - best) / per;
        }
        Ok(candidates)
    }

    fn log_likelihood(&self, e: usize, features: &[u64]) -> f64 {
        let counts = &self.likelihood_counts[e];
        let log_total = self.likelihood_log_total[e];
        features
            .iter()
            .map(|f| {
                let n = counts
                    .binary_search_by_key(f, |(g, _)| *g)
                    .map_or(0.0, |i| f64::from(counts[i].1));
                (n + LIKELIHOOD_ALPHA).ln() - log_total
            })
            .sum()
    }

    fn term_idf(&self, term: &str) -> f64 {
        self.vocabulary
            .get(term)
            .map_or(self.unknown_idf, |id| self.idf[*id as usize])
    }

    fn category_probabilities(&self, q: &TextProfile, prior: Option<&CategoryPrior>) -> Vec<f64> {
        let mut p = self
            .category_model
            .probabilities(&category_features(q), 4.0);
        if let Some(prior) = prior {
            // The order context only nudges: a customer with a parcel in transit may still
            // ask about an invoice.
            for (pi, name) in p.iter_mut().zip(&self.categories) {
                *pi *= 0.5 + prior.get(name).copied().unwrap_or(0.0);
            }
            let sum: f64 = p.iter().sum::<f64>().max(1e-12);
            p.iter_mut().for_each(|x| *x /= sum);
        }
        p
    }

    #[allow(clippy::too_many_arguments)]
    fn features(
        &self,
        q: &TextProfile,
        q_weight: f64,
        q_vector: &[(u64, f32)],
        category_probs: &[f64],
        locale: &str,
        e: usize,
        hit: Hit,
        top: f32,
    ) -> Features {
        let mut best = [0.0f64; 6];
        let mut entry_concepts: Vec<u16> = Vec::new();
        for t in &self.texts[e] {
            let shared = shared_ids(&q.term_ids, &t.term_ids);
            let shared_weight: f64 = shared.iter().map(|id| self.idf[*id as usize]).sum();
            let t_weight: f64 = t
                .term_ids
                .iter()
                .map(|id| self.idf[*id as usize])
                .sum::<f64>()
                .max(1e-9);
            let coverage = shared_weight / q_weight;
            let jaccard = shared_weight / (q_weight + t_weight - shared_weight).max(1e-9);
            let entry_coverage = shared_weight / t_weight;
            let g2 = dice(&q.grams2, &t.grams2);
            let g3 = dice(&q.grams3, &t.grams3);
            // Edit distance is the one quadratic feature: skip texts whose length difference
            // alone keeps them below the best similarity found so far.
            let (lq, lt) = (q.chars.len(), t.chars.len());
            let ceiling = 1.0 - lq.abs_diff(lt) as f64 / lq.max(lt).max(1) as f64;
            let ed = if ceiling > best[5] {
                edit_similarity(&q.chars, &t.chars)
            } else {
                0.0
            };
            for (b, v) in best
                .iter_mut()
                .zip([coverage, jaccard, entry_coverage, g2, g3, ed])
            {
                *b = b.max(v);
            }
            entry_concepts.extend_from_slice(&t.concepts);
        }
        entry_concepts.sort_unstable();
        entry_concepts.dedup();
        let (syn_cov, syn_jac) = if q.concepts.is_empty() {
            (0.0, 0.0)
        } else {
            let shared = text::intersect_count(&q.concepts, &entry_concepts) as f64;
            (
                shared / q.concepts.len() as f64,
                shared / (q.concepts.len() + entry_concepts.len()) as f64 * 2.0,
            )
        };
        let cosine = sparse_dot(q_vector, &self.profile_vectors[e]);
        let entry = &self.entries[e];
        let locale_match = f64::from(u8::from(entry.locale.starts_with(locale)));
        [
            f64::from(hit.score / top.max(1e-6)),
            f64::from(hit.score).ln_1p(),
            1.0 / (1.0 + hit.rank as f64),
            best[0],
            best[1],
            best[2],
            best[3],
            best[4],
            best[5],
            syn_cov,
            syn_jac,
            cosine,
            0.0,
            category_probs[self.category_of[e]],
            self.popularity[e],
            locale_match,
        ]
    }
}

/// What the profile cosine compares: character 1–3-grams, content words, and the shop
/// concepts (twice: a synonym match is worth more than one shared character).
fn profile_grams(profile: &TextProfile) -> Vec<u64> {
    let mut f = text::char_ngrams(&profile.compact, &PROFILE_GRAMS);
    f.extend(
        profile
            .terms
            .iter()
            .map(|w| text::hash(format!("w:{w}").as_bytes())),
    );
    for c in &profile.concepts {
        let h = text::hash(format!("c:{c}").as_bytes());
        f.push(h);
        f.push(h);
    }
    f
}

const LIKELIHOOD_ALPHA: f64 = 0.1;
const LIKELIHOOD_FEATURE: usize = 12;

/// What the entry likelihood counts: content words and character 1–3-grams.
fn likelihood_features(profile: &TextProfile) -> Vec<u64> {
    let mut f: Vec<u64> = profile
        .terms
        .iter()
        .map(|w| text::hash(format!("w:{w}").as_bytes()))
        .collect();
    f.extend(text::char_ngrams(&profile.compact, &PROFILE_GRAMS));
    f
}

fn ids_of(vocabulary: &HashMap<String, u32>, terms: &[String]) -> Vec<u32> {
    let mut ids: Vec<u32> = terms
        .iter()
        .filter_map(|t| vocabulary.get(t).copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn shared_ids(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn category_features(t: &TextProfile) -> Vec<u64> {
    let mut f: Vec<u64> = t.terms.iter().map(|w| text::hash(w.as_bytes())).collect();
    f.extend(text::char_ngrams(&t.compact, &[2]));
    f
}

/// L2-normalised tf-idf over hashed grams, sorted by gram.
fn tfidf_vector(grams: &[u64], idf: &HashMap<u64, f64>, unknown: f64) -> Vec<(u64, f32)> {
    let mut counts: HashMap<u64, f64> = HashMap::new();
    for g in grams {
        *counts.entry(*g).or_default() += 1.0;
    }
    let mut v: Vec<(u64, f64)> = counts
        .into_iter()
        .map(|(g, c)| (g, (1.0 + c.ln()) * idf.get(&g).copied().unwrap_or(unknown)))
        .collect();
    let norm = v.iter().map(|(_, x)| x * x).sum::<f64>().sqrt().max(1e-12);
    v.sort_unstable_by_key(|(g, _)| *g);
    v.into_iter().map(|(g, x)| (g, (x / norm) as f32)).collect()
}

fn sparse_dot(a: &[(u64, f32)], b: &[(u64, f32)]) -> f64 {
    let (mut i, mut j, mut s) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += f64::from(a[i].1) * f64::from(b[j].1);
                i += 1;
                j += 1;
            }
        }
    }
    s
}

/// Confidence thresholds: at or above `answer` the bot answers; at or above `clarify` it
/// offers the top three; below, a human takes over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub answer: f64,
    pub clarify: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            answer: 0.5,
            clarify: 0.25,
        }
    }
}

impl Thresholds {
    pub fn validate(&self) -> Result<(), BotError> {
        let ok = (0.0..=1.0).contains(&self.answer)
            && (0.0..=1.0).contains(&self.clarify)
            && self.clarify <= self.answer;
        if ok {
            Ok(())
        } else {
            Err(BotError::Thresholds {
                answer: self.answer,
                clarify: self.clarify,
            })
        }
    }
}

/// What the bot does with a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Answer,
    /// Ask the customer which of the top three they mean.
    Clarify,
    /// Not confident enough in anything: a human (`HandoffReason::LowConfidence`).
    Handoff,
}

pub fn decide(confidence: f64, thresholds: &Thresholds) -> Decision {
    if confidence >= thresholds.answer {
        Decision::Answer
    } else if confidence >= thresholds.clarify {
        Decision::Clarify
    } else {
        Decision::Handoff
    }
}

/// A ranked candidate, for `BotTurnRecorded::candidates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    pub entry: KnowledgeEntryId,
    pub external_id: String,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaqAnswer {
    /// Best first, at most [`RANK_ENTRIES`].
    pub ranked: Vec<Ranked>,
    /// Calibrated probability that the top entry answers the question.
    pub confidence: f64,
    pub decision: Decision,
    pub model_version: String,
}

impl FaqAnswer {
    pub fn top(&self) -> Option<&Ranked> {
        self.ranked.first()
    }

    /// What to offer when clarifying.
    pub fn suggestions(&self) -> &[Ranked] {
        &self.ranked[..self.ranked.len().min(3)]
    }
}

/// A query this much like a KB text (1 - edit distance / length, over the compact forms) is
/// that text: one slip in ten characters.
const NEAR_EXACT_SIMILARITY: f64 = 0.9;
/// Shorter queries ("退款", "refund") match a KB text by chance, not by asking it.
const NEAR_EXACT_MIN_CHARS: usize = 4;

/// The KB with its ranking model and thresholds: what answers a question.
pub struct Faq {
    pub engine: Engine,
    pub ranker: RankerModel,
    pub thresholds: Thresholds,
}

impl Faq {
    /// With `ranker` None, a model is trained from the KB's own paraphrases (see
    /// [`crate::ranker::train`]): the bot works out of the box on any KB.
    pub fn new(
        entries: Vec<Entry>,
        ranker: Option<RankerModel>,
        thresholds: Thresholds,
    ) -> Result<Self, BotError> {
        thresholds.validate()?;
        let ranker = match ranker {
            Some(r) => r,
            None => crate::ranker::train(&entries, &crate::ranker::TrainParams::default())?,
        };
        ranker.check()?;
        let engine = Engine::build(entries)?;
        Ok(Faq {
            engine,
            ranker,
            thresholds,
        })
    }

    pub fn answer(
        &self,
        query: &str,
        prior: Option<&CategoryPrior>,
    ) -> Result<FaqAnswer, BotError> {
        let candidates = self.engine.candidates(query, prior)?;
        let mut answer = self.rank(candidates);
        if answer.decision != Decision::Answer
            && let Some(top) = answer.ranked.first()
            && self.near_exact(query, top.entry)
        {
            answer.decision = Decision::Answer;
        }
        Ok(answer)
    }

    /// Refits the confidence on questions as customers ask them, each with the external id of
    /// the entry that answers it: the KB's own paraphrases, which the ranker is calibrated on
    /// by default, are shorter and cleaner than what customers write, so on real questions a
    /// confidence fitted on them is too sure of itself (see BENCHMARKS.md). Returns how many of
    /// the questions the ranking put right.
    pub fn calibrate(&mut self, questions: &[(&str, &str)]) -> Result<usize, BotError> {
        let mut rows = Vec::with_capacity(questions.len());
        for (i, (text, answer)) in questions.iter().enumerate() {
            if !self
                .engine
                .entries()
                .iter()
                .any(|e| e.external_id == *answer)
            {
                return Err(BotError::BadLine {
                    line: i + 1,
                    message: format!("answer_id {answer:?} is not in the knowledge base"),
                });
            }
            let candidates = self.engine.candidates(text, None)?;
            let mut scored: Vec<(f64, usize)> = candidates
                .iter()
                .enumerate()
                .map(|(k, c)| (self.ranker.score(&c.features), k))
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            let Some(&(_, best)) = scored.first() else {
                // Nothing retrieved: no ranking to be sure or unsure of.
                continue;
            };
            let scores: Vec<f64> = scored.iter().map(|s| s.0).collect();
            let right = self.engine.entries()[candidates[best].entry].external_id == *answer;
            rows.push((
                crate::ranker::calibration_inputs(&scores, &candidates[best].features),
                right,
            ));
        }
        if rows.is_empty() {
            return Err(BotError::NothingToTrainOn);
        }
        self.ranker.recalibrate(&rows);
        Ok(rows.iter().filter(|r| r.1).count())
    }

    /// Whether `query` is, but for case, punctuation, spacing and a typo or two, the question
    /// or a paraphrase of `entry`: the customer asked what the KB holds, so a list of choices
    /// would only make them pick what they already wrote.
    fn near_exact(&self, query: &str, entry: KnowledgeEntryId) -> bool {
        let q: Vec<char> = compact(query).chars().collect();
        if q.len() < NEAR_EXACT_MIN_CHARS {
            return false;
        }
        let Some(e) = self.engine.entries().iter().find(|e| e.id == entry) else {
            return false;
        };
        e.texts().any(|t| {
            let t: Vec<char> = compact(t).chars().collect();
            t.len().abs_diff(q.len()) * 10 <= q.len()
                && edit_similarity(&q, &t) >= NEAR_EXACT_SIMILARITY
        })
    }

    pub fn rank(&self, candidates: Vec<Candidate>) -> FaqAnswer {
        // (score, entry, the candidate's index)
        let mut scored: Vec<(f64, usize, usize)> = candidates
            .iter()
            .enumerate()
            .map(|(k, c)| (self.ranker.score(&c.features), c.entry, k))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let confidence = scored.first().map_or(0.0, |&(_, _, k)| {
            self.ranker.confidence(
                &scored.iter().map(|s| s.0).collect::<Vec<_>>(),
                &candidates[k].features,
            )
        });
        let decision = decide(confidence, &self.thresholds);
        let entries = self.engine.entries();
        FaqAnswer {
            ranked: scored
                .into_iter()
                .map(|(score, e, _)| Ranked {
                    entry: entries[e].id,
                    external_id: entries[e].external_id.clone(),
                    score,
                })
                .collect(),
            confidence,
            decision,
            model_version: self.ranker.version.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_follow_thresholds() {
        let t = Thresholds {
            answer: 0.6,
            clarify: 0.2,
        };
        assert_eq!(decide(0.6, &t), Decision::Answer);
        assert_eq!(decide(0.59, &t), Decision::Clarify);
        assert_eq!(decide(0.2, &t), Decision::Clarify);
        assert_eq!(decide(0.1, &t), Decision::Handoff);
        assert!(
            Thresholds {
                answer: 0.2,
                clarify: 0.6
            }
            .validate()
            .is_err()
        );
    }
}
