//! The tantivy schema: which fields exist and how each is indexed.

use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, STORED, STRING, Schema,
    TextFieldIndexing, TextOptions,
};

use super::analyzer::TOKENIZER;

pub(crate) const TIME_FIELD: &str = "time";

/// The fields of every document. Which ones a document fills depends on its kind.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    /// Unique per document (`message:<conversation>:<message>`, `conversation:<id>`, …): the
    /// term every replace deletes by.
    pub doc_id: Field,
    /// `message`, `conversation`, `ticket`, `knowledge`, or `retired` (a tombstone).
    pub kind: Field,
    /// Filters (raw strings, one term each). `agent` may hold several values.
    pub queue: Field,
    pub agent: Field,
    pub status: Field,
    /// What the document is dated by (see `DocKind`); fast, for ranges and newest-first.
    pub time: Field,
    /// Short, prominent text: a ticket's subject, a knowledge entry's question and
    /// paraphrases, a conversation's first customer message.
    pub title: Field,
    /// The rest: a message's text, a conversation's turns, a ticket's description and
    /// comments, a knowledge entry's answer.
    pub body: Field,
    /// The document's record as JSON: what hits are built from and what a replace starts
    /// from. The text fields are not stored separately.
    pub data: Field,
}

impl Fields {
    pub(crate) fn schema() -> (Schema, Fields) {
        let mut builder = Schema::builder();
        // Frequencies feed BM25; positions would only serve phrase queries, which retrieval
        // never builds (see `query.rs`), so they are not kept.
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        // Microseconds, as the domain records them, so newest-first order is exact; range
        // filters run on the fast column, not on the (seconds-precision) inverted index.
        let time = DateOptions::default()
            .set_fast()
            .set_precision(DateTimePrecision::Microseconds);
        let fields = Fields {
            doc_id: builder.add_text_field("doc_id", STRING),
            kind: builder.add_text_field("kind", STRING),
            queue: builder.add_text_field("queue", STRING),
            agent: builder.add_text_field("agent", STRING),
            status: builder.add_text_field("status", STRING),
            time: builder.add_date_field(TIME_FIELD, time),
            title: builder.add_text_field("title", text.clone()),
            body: builder.add_text_field("body", text),
            data: builder.add_text_field("data", STORED),
        };
        (builder.build(), fields)
    }
}
