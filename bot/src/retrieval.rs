//! Candidate retrieval: BM25 over every question and paraphrase, in a tantivy index in RAM.
//!
//! One document per text (question or paraphrase), so an entry is found by its closest
//! wording rather than by the sum of all of them. Two fields: the analyzer's terms
//! ([`crate::text::terms`]) and the character bigrams of Chinese runs (robust to jieba cutting
//! a phrase differently, and to typos). Both are fed pre-cut, space-separated, to a whitespace
//! tokenizer, so indexing and querying share exactly one tokenization (ours). Queries are a
//! `BooleanQuery` of `TermQuery`s built from those terms, never tantivy's `QueryParser`,
//! which turns a run of Chinese words into a phrase query.

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{TextAnalyzer, WhitespaceTokenizer};
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

use crate::BotError;

const TOKENIZER: &str = "kefu_pre_cut";

/// What one indexed text is made of.
pub struct IndexedText<'a> {
    pub entry: u32,
    pub terms: &'a [String],
    pub bigrams: &'a [String],
}

pub struct Retriever {
    reader: IndexReader,
    words: Field,
    grams: Field,
    /// `doc_entry[segment][doc]`: the entry each document belongs to. The index never changes
    /// after it is built, so this is read once instead of from a fast field per hit.
    doc_entry: Vec<Vec<u32>>,
}

/// An entry found, with its best document's BM25 score and rank.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub entry: u32,
    pub score: f32,
    /// 0 for the best hit.
    pub rank: usize,
}

impl Retriever {
    pub fn build<'a>(texts: impl IntoIterator<Item = IndexedText<'a>>) -> Result<Self, BotError> {
        let mut schema = Schema::builder();
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs);
        let options = TextOptions::default().set_indexing_options(indexing);
        let words = schema.add_text_field("words", options.clone());
        let grams = schema.add_text_field("grams", options);
        let entry = schema.add_u64_field("entry", NumericOptions::default().set_fast());
        let index = Index::create_in_ram(schema.build());
        index.tokenizers().register(
            TOKENIZER,
            TextAnalyzer::from(WhitespaceTokenizer::default()),
        );
        let texts: Vec<IndexedText<'a>> = texts.into_iter().collect();
        // One thread: one segment in practice, and no background merging to wait for. The
        // writer's arena is allocated and zeroed whole at every build (a knowledge-base edit,
        // every what-if replay), so it is sized to the texts: tantivy's least for a small
        // knowledge base, 50 MB (one segment for a 10,000-entry one) at most.
        let bytes: usize = texts
            .iter()
            .map(|t| {
                t.terms
                    .iter()
                    .chain(t.bigrams)
                    .map(|w| w.len() + 1)
                    .sum::<usize>()
                    + 16
            })
            .sum();
        let budget = (bytes * 16).clamp(15_000_000, 50_000_000);
        let mut writer = index.writer_with_num_threads(1, budget)?;
        for text in texts {
            let mut doc = TantivyDocument::default();
            doc.add_text(words, text.terms.join(" "));
            doc.add_text(grams, text.bigrams.join(" "));
            doc.add_u64(entry, u64::from(text.entry));
            writer.add_document(doc)?;
        }
        writer.commit()?;
        writer.wait_merging_threads()?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let searcher = reader.searcher();
        let mut doc_entry = Vec::new();
        for segment in searcher.segment_readers() {
            let column = segment.fast_fields().u64("entry")?;
            let entries = (0..segment.max_doc())
                .map(|doc| column.first(doc).unwrap_or(0) as u32)
                .collect();
            doc_entry.push(entries);
        }
        Ok(Retriever {
            reader,
            words,
            grams,
            doc_entry,
        })
    }

    /// The best entries for the query's terms and bigrams, at most `entries` of them, looking
    /// at the best `docs` documents.
    pub fn search(
        &self,
        terms: &[String],
        bigrams: &[String],
        docs: usize,
        entries: usize,
    ) -> Result<Vec<Hit>, BotError> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for t in terms {
            clauses.push((
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_text(self.words, t),
                    IndexRecordOption::WithFreqs,
                )),
            ));
        }
        for g in bigrams {
            clauses.push((
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_text(self.grams, g),
                    IndexRecordOption::WithFreqs,
                )),
            ));
        }
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let found = searcher.search(&query, &TopDocs::with_limit(docs).order_by_score())?;
        let mut hits: Vec<Hit> = Vec::with_capacity(entries);
        for (score, address) in found {
            let entry = self.doc_entry[address.segment_ord as usize][address.doc_id as usize];
            if hits.iter().any(|h| h.entry == entry) {
                continue;
            }
            let rank = hits.len();
            hits.push(Hit { entry, score, rank });
            if hits.len() == entries {
                break;
            }
        }
        Ok(hits)
    }
}
