//! Searching: requests, how they become tantivy queries, and hits.
//!
//! Retrieval does not go through tantivy's `QueryParser`: it turns a run of Chinese tokens
//! into a phrase query, so `快递没到` would only find those words adjacent and in that order,
//! and a customer who wrote `我的快递三天了还没有到` would not be found. Instead the query text
//! goes through the same analyzer as the documents, and each of its terms becomes a `SHOULD`
//! term query on the text fields: a document matches on any shared word and ranks (BM25) by
//! how many, how rare and how often. A query of several words adds one more `SHOULD` clause
//! that only a document holding all of them matches, boosted, so that such documents come
//! first: 增值税专用发票 ranks the messages about that invoice above every message that only
//! says 发票. Filters are `MUST` clauses that do not score.

use std::ops::{Bound, Range};

use chrono::{DateTime, Utc};
use kefu_domain::ids::{AgentId, ConversationId, KnowledgeEntryId, MessageId, QueueId, TicketId};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocAddress, IndexReader, Order, Searcher, TantivyDocument, Term};

use super::SearchError;
use super::analyzer;
use super::record::{DocKind, DocStatus, Record, SpeakerKind, to_tantivy_time};
use super::schema::{Fields, TIME_FIELD};

/// Most hits one page may ask for.
pub const MAX_LIMIT: usize = 100;
/// The page size when a request does not set one.
pub const DEFAULT_LIMIT: usize = 20;
/// Deepest offset a page may start at: tantivy collects `offset + limit` hits per page, and
/// nobody reads results that far down anyway.
pub const MAX_OFFSET: usize = 10_000;
/// Longest query text, in characters.
pub const MAX_QUERY_CHARS: usize = 500;

/// A match in a ticket's subject or an FAQ's question says more than one in a long body.
const TITLE_BOOST: f32 = 2.0;
/// How much the all-words clause adds, as a multiple of those words' own scores: enough that
/// a document with every word outranks one repeating the commonest of them.
const ALL_WORDS_BOOST: f32 = 3.0;
/// How much text a snippet shows, in bytes (tantivy counts bytes): about 80 Chinese
/// characters or 240 Latin ones.
const SNIPPET_BYTES: usize = 240;
/// How much punctuation after a fragment's last word a snippet keeps.
const TRAILING_BYTES: usize = 32;

/// What to look for. Build it with [`SearchRequest::new`] and the setters, or fill the fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// Words to look for, in Chinese and/or English. May be empty when a filter is set: then
    /// the matching documents are listed newest first.
    pub text: String,
    /// Only these kinds of document; empty means all.
    pub kinds: Vec<DocKind>,
    pub queue: Option<QueueId>,
    pub agent: Option<AgentId>,
    pub status: Option<DocStatus>,
    /// Documents dated at or after this (see [`DocKind`] for what each is dated by).
    pub from: Option<DateTime<Utc>>,
    /// Documents dated before this.
    pub to: Option<DateTime<Utc>>,
    /// Page size, 1 to [`MAX_LIMIT`].
    pub limit: usize,
    /// Hits to skip, up to [`MAX_OFFSET`].
    pub offset: usize,
    /// Start after this hit (its [`SearchHit::cursor`]) instead of at an offset: pages as deep
    /// as the results go, each as cheap as the first.
    pub after: Option<SearchCursor>,
    /// What the caller may see; applied inside the query, so totals and pages count only
    /// what passes.
    pub scope: SearchScope,
}

/// The documents a caller may find. The knowledge base is open to every scope.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum SearchScope {
    #[default]
    Everything,
    Within {
        /// Conversations and their messages routed to these queues...
        queues: Vec<QueueId>,
        /// ...only while they wait in them (an agent sees the waiting chats they could take,
        /// not what colleagues handled).
        waiting_only: bool,
        /// Conversations and messages these agents held or wrote.
        agents: Vec<AgentId>,
        /// Tickets assigned to these agents.
        ticket_assignees: Vec<AgentId>,
    },
}

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest {
            text: String::new(),
            kinds: Vec::new(),
            queue: None,
            agent: None,
            status: None,
            from: None,
            to: None,
            limit: DEFAULT_LIMIT,
            offset: 0,
            after: None,
            scope: SearchScope::Everything,
        }
    }
}

impl SearchRequest {
    pub fn new(text: impl Into<String>) -> Self {
        SearchRequest {
            text: text.into(),
            ..SearchRequest::default()
        }
    }

    /// Adds a kind of document to look in.
    pub fn kind(mut self, kind: DocKind) -> Self {
        if !self.kinds.contains(&kind) {
            self.kinds.push(kind);
        }
        self
    }

    pub fn queue(mut self, queue: QueueId) -> Self {
        self.queue = Some(queue);
        self
    }

    pub fn agent(mut self, agent: AgentId) -> Self {
        self.agent = Some(agent);
        self
    }

    pub fn status(mut self, status: impl Into<DocStatus>) -> Self {
        self.status = Some(status.into());
        self
    }

    /// Only documents dated in `[from, to)`.
    pub fn between(mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        self.from = Some(from);
        self.to = Some(to);
        self
    }

    pub fn since(mut self, from: DateTime<Utc>) -> Self {
        self.from = Some(from);
        self
    }

    pub fn before(mut self, to: DateTime<Utc>) -> Self {
        self.to = Some(to);
        self
    }

    pub fn scope(mut self, scope: SearchScope) -> Self {
        self.scope = scope;
        self
    }

    pub fn page(mut self, limit: usize, offset: usize) -> Self {
        self.limit = limit;
        self.offset = offset;
        self
    }

    fn has_filter(&self) -> bool {
        !self.kinds.is_empty()
            || self.queue.is_some()
            || self.agent.is_some()
            || self.status.is_some()
            || self.from.is_some()
            || self.to.is_some()
    }

    fn validate(&self) -> Result<(), SearchError> {
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(SearchError::BadLimit {
                limit: self.limit,
                max: MAX_LIMIT,
            });
        }
        if self.after.is_some() && self.offset > 0 {
            return Err(SearchError::CursorAndOffset);
        }
        if self.offset > MAX_OFFSET {
            return Err(SearchError::BadOffset {
                offset: self.offset,
                max: MAX_OFFSET,
            });
        }
        let chars = self.text.chars().count();
        if chars > MAX_QUERY_CHARS {
            return Err(SearchError::QueryTooLong {
                chars,
                max: MAX_QUERY_CHARS,
            });
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(SearchError::BadDateRange { from, to });
        }
        Ok(())
    }
}

/// A stretch of a document's text around what matched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snippet {
    pub fragment: String,
    /// Byte ranges of `fragment` that matched the query, in order and not overlapping.
    pub highlighted: Vec<Range<usize>>,
}

impl Snippet {
    /// The fragment as HTML, HTML-escaped, with matches in `<b>…</b>`.
    pub fn to_html(&self) -> String {
        let mut html = String::with_capacity(self.fragment.len() + 16);
        let mut copied = 0;
        for range in &self.highlighted {
            escape_into(&mut html, &self.fragment[copied..range.start]);
            html.push_str("<b>");
            escape_into(&mut html, &self.fragment[range.clone()]);
            html.push_str("</b>");
            copied = range.end;
        }
        escape_into(&mut html, &self.fragment[copied..]);
        html
    }

    /// The matched parts, in order.
    pub fn matches(&self) -> impl Iterator<Item = &str> {
        self.highlighted.iter().map(|r| &self.fragment[r.clone()])
    }

    /// `snippet` of `text`, with what follows its last word up to the next word (punctuation,
    /// a mask) kept: tantivy ends a fragment at its last word, which cuts a `？` or a masked
    /// number off.
    fn from_tantivy(snippet: &tantivy::snippet::Snippet, text: &str) -> Snippet {
        let range = snippet.fragment_range();
        if snippet.highlighted().is_empty() || text.get(range.clone()).is_none() {
            return Snippet::default();
        }
        let mut end = range.end;
        for (offset, c) in text[range.end..].char_indices() {
            let after = offset + c.len_utf8();
            if c.is_alphanumeric() || after > TRAILING_BYTES {
                break;
            }
            end = range.end + after;
        }
        let mut ranges = snippet.highlighted().to_vec();
        ranges.sort_by_key(|r| (r.start, r.end));
        // jieba's search mode gives overlapping words (北京, 北京大学), and each may match.
        let mut highlighted: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
        for range in ranges {
            match highlighted.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => highlighted.push(range),
            }
        }
        Snippet {
            fragment: text[range.start..end].to_owned(),
            highlighted,
        }
    }

    /// The start of `text`, for hits listed without a query.
    fn head(text: &str) -> Snippet {
        let end = text.floor_char_boundary(SNIPPET_BYTES.min(text.len()));
        Snippet {
            fragment: text[..end].to_owned(),
            highlighted: Vec::new(),
        }
    }
}

fn escape_into(html: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#39;"),
            c => html.push(c),
        }
    }
}

/// One document found.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub kind: DocKind,
    /// The conversation of a message or conversation, or the one a ticket was opened from.
    pub conversation: Option<ConversationId>,
    /// The message id of a turn (internal notes have none).
    pub message: Option<MessageId>,
    pub ticket: Option<TicketId>,
    pub entry: Option<KnowledgeEntryId>,
    /// BM25 relevance; None when the hits were listed newest first without a query text.
    pub score: Option<f32>,
    /// Where this hit lies in the results (`SearchCursor::encode`): the next page starts
    /// after it.
    pub cursor: String,
    /// What the document is dated by (see [`DocKind`]).
    pub time: DateTime<Utc>,
    /// Who wrote a message.
    pub speaker: Option<SpeakerKind>,
    /// An internal note (agents only).
    pub internal: bool,
    /// A message's conversation's queue when the message was written; a conversation's
    /// current queue.
    pub queue: Option<QueueId>,
    /// Who wrote a message (else its conversation's agent when it was written); a
    /// conversation's current agent; a ticket's assignee.
    pub agent: Option<AgentId>,
    /// A message's conversation's status when written; a conversation's or ticket's current
    /// status.
    pub status: Option<DocStatus>,
    pub snippet: Snippet,
}

/// A hit's place in the order results come in: relevance (0 when listing without words),
/// then newest first, then document id. A cursor names the hit a page ends at; the next page
/// starts after it. Between two pages the index may have changed: a cursor then still starts
/// after the same place, which new documents may fill in before or after.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchCursor {
    pub score: f32,
    pub time_micros: i64,
    pub doc_id: String,
}

impl SearchCursor {
    /// Opaque to callers: `<score bits in hex>.<time>.<document id>`.
    pub fn encode(&self) -> String {
        format!(
            "{:08x}.{}.{}",
            self.score.to_bits(),
            self.time_micros,
            self.doc_id
        )
    }

    pub fn decode(cursor: &str) -> Result<Self, SearchError> {
        let bad = |reason: &str| SearchError::BadCursor {
            cursor: cursor.chars().take(100).collect(),
            reason: reason.into(),
        };
        let mut parts = cursor.splitn(3, '.');
        let (Some(score), Some(time), Some(doc_id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected three parts"));
        };
        let score = u32::from_str_radix(score, 16)
            .map(f32::from_bits)
            .map_err(|_| bad("the score is not hexadecimal"))?;
        if !score.is_finite() {
            return Err(bad("the score is not a number"));
        }
        let time_micros = time.parse().map_err(|_| bad("the time is not a number"))?;
        if doc_id.is_empty() {
            return Err(bad("no document id"));
        }
        Ok(SearchCursor {
            score,
            time_micros,
            doc_id: doc_id.to_owned(),
        })
    }
}

/// What a page's documents were collected by: whether two keys (score, time) may stand on
/// either side of where the collector cut off.
#[derive(Clone, Copy)]
enum Collected {
    Time,
    Both,
}

impl Collected {
    fn ties(self, a: &(f32, i64), b: &(f32, i64)) -> bool {
        match self {
            Collected::Time => a.1 == b.1,
            Collected::Both => a == b,
        }
    }
}

/// A document's place while collecting: by score, then (read only when scores tie, which is
/// seldom with words to rank by) by time, newest first. Reading every match's time up front
/// cost a third more on a query matching a good share of the index.
#[derive(Clone)]
struct Ranked {
    score: f32,
    doc: tantivy::DocId,
    times: Option<std::sync::Arc<tantivy::columnar::Column<tantivy::DateTime>>>,
}

impl Ranked {
    fn time(&self) -> i64 {
        self.times
            .as_ref()
            .and_then(|c| c.first(self.doc))
            .map_or(i64::MIN, |t| t.into_timestamp_micros())
    }
}

impl std::fmt::Debug for Ranked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {})", self.score, self.time())
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.partial_cmp(other) == Some(std::cmp::Ordering::Equal)
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match self.score.partial_cmp(&other.score)? {
            std::cmp::Ordering::Equal => Some(self.time().cmp(&other.time())),
            unequal => Some(unequal),
        }
    }
}

/// A page of hits.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResults {
    /// How many documents match in all, for paging.
    pub total: usize,
    pub hits: Vec<SearchHit>,
    /// Whether hits follow this page (start the next one after the last hit's cursor).
    pub more: bool,
}

fn filter(query: Box<dyn Query>) -> (Occur, Box<dyn Query>) {
    // Filters decide what matches, never how well.
    (Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0)))
}

fn term_query(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    ))
}

/// Any of `values` in `field`.
fn any_of(field: Field, values: impl IntoIterator<Item = String>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(
        values
            .into_iter()
            .map(|v| (Occur::Should, term_query(field, &v)))
            .collect(),
    ))
}

/// The documents a scope lets through, as one query; None for [`SearchScope::Everything`].
fn scope_query(fields: &Fields, scope: &SearchScope) -> Option<Box<dyn Query>> {
    let SearchScope::Within {
        queues,
        waiting_only,
        agents,
        ticket_assignees,
    } = scope
    else {
        return None;
    };
    let chats = || {
        any_of(
            fields.kind,
            [DocKind::Message, DocKind::Conversation].map(|k| k.as_str().to_owned()),
        )
    };
    let mut open: Vec<(Occur, Box<dyn Query>)> = vec![(
        Occur::Should,
        term_query(fields.kind, DocKind::Knowledge.as_str()),
    )];
    if !queues.is_empty() {
        let mut of_queues: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, chats()),
            (
                Occur::Must,
                any_of(fields.queue, queues.iter().map(|q| q.to_string())),
            ),
        ];
        if *waiting_only {
            let queued = DocStatus::Conversation(super::ConversationStatus::Queued);
            of_queues.push((Occur::Must, term_query(fields.status, queued.as_str())));
        }
        open.push((Occur::Should, Box::new(BooleanQuery::new(of_queues))));
    }
    if !agents.is_empty() {
        open.push((
            Occur::Should,
            Box::new(BooleanQuery::new(vec![
                (Occur::Must, chats()),
                (
                    Occur::Must,
                    any_of(fields.agent, agents.iter().map(|a| a.to_string())),
                ),
            ])),
        ));
    }
    if !ticket_assignees.is_empty() {
        open.push((
            Occur::Should,
            Box::new(BooleanQuery::new(vec![
                (
                    Occur::Must,
                    term_query(fields.kind, DocKind::Ticket.as_str()),
                ),
                (
                    Occur::Must,
                    any_of(fields.agent, ticket_assignees.iter().map(|a| a.to_string())),
                ),
            ])),
        ));
    }
    Some(Box::new(BooleanQuery::new(open)))
}

/// The read side of a [`SearchIndex`]: cheap to clone, and usable from other threads while
/// the index is being fed. It sees what was committed, from the moment the commit returns.
#[derive(Clone)]
pub struct SearchReader {
    pub(crate) reader: IndexReader,
    pub(crate) fields: Fields,
    pub(crate) analyzer: TextAnalyzer,
}

impl std::fmt::Debug for SearchReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchReader").finish_non_exhaustive()
    }
}

impl SearchReader {
    /// What the last commit recorded (record format, checkpoint), for operators: None for an
    /// index nothing was committed to.
    pub fn committed(&self) -> Result<Option<super::CommitPayload>, SearchError> {
        let metas = self.reader.searcher().index().load_metas()?;
        metas
            .payload
            .map(|p| super::CommitPayload::parse(&p).map_err(SearchError::Corrupt))
            .transpose()
    }

    /// How many committed documents of `kind` the index holds.
    pub fn count(&self, kind: DocKind) -> Result<u64, SearchError> {
        let query = term_query(self.fields.kind, kind.as_str());
        Ok(self.reader.searcher().search(&*query, &Count)? as u64)
    }

    /// Searches what was committed.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResults, SearchError> {
        request.validate()?;
        let terms = analyzer::terms(&mut self.analyzer.clone(), &request.text);
        if terms.is_empty() && !request.has_filter() {
            return Err(SearchError::EmptyQuery);
        }
        let Some(query) = self.build_query(request, &terms) else {
            return Ok(SearchResults {
                total: 0,
                hits: Vec::new(),
                more: false,
            });
        };
        let searcher = self.reader.searcher();
        let snippets = if terms.is_empty() {
            None
        } else {
            Some(Snippets::new(&searcher, &*query, &self.fields)?)
        };
        let scored = !terms.is_empty();
        // Documents tied on (score, time) are ordered by id, which only the stored document
        // holds: collect a few more than the page, and more again while a tie might run past
        // what was collected.
        let mut slack = 16;
        let mut total = None;
        let (hits, more) = loop {
            let want = request.offset + request.limit + slack;
            // A first page collects by score (or time) alone, which lets tantivy skip what
            // cannot make the top; a page after a cursor must look at every match's place.
            let (count, found, by) = if request.after.is_none() && !scored {
                // Newest first: tantivy's own fast-field order, which skips what cannot make
                // the top.
                let (count, docs) = searcher.search(
                    &query,
                    &(
                        Count,
                        TopDocs::with_limit(want)
                            .order_by_fast_field::<tantivy::DateTime>(TIME_FIELD, Order::Desc),
                    ),
                )?;
                let found: Vec<(Option<(f32, i64)>, DocAddress)> = docs
                    .into_iter()
                    .map(|(t, a)| (t.map(|t| (0.0, t.into_timestamp_micros())), a))
                    .collect();
                (count, found, Collected::Time)
            } else {
                let after = request.after.clone();
                let collector = TopDocs::with_limit(want).tweak_score(
                    move |segment: &tantivy::SegmentReader| {
                        let times = segment
                            .fast_fields()
                            .date(TIME_FIELD)
                            .ok()
                            .map(std::sync::Arc::new);
                        let after = after.clone();
                        move |doc: tantivy::DocId, score: tantivy::Score| {
                            let key = Ranked {
                                score: if scored { score } else { 0.0 },
                                doc,
                                times: times.clone(),
                            };
                            match &after {
                                None => Some(key),
                                Some(a) if key.score < a.score => Some(key),
                                Some(a) if key.score == a.score => {
                                    (key.time() <= a.time_micros).then_some(key)
                                }
                                Some(_) => None,
                            }
                        }
                    },
                );
                let (count, docs) = searcher.search(&query, &(Count, collector))?;
                let found = docs
                    .into_iter()
                    .map(|(k, a)| (k.map(|k| (k.score, k.time())), a))
                    .collect();
                (count, found, Collected::Both)
            };
            total.get_or_insert(count);
            let full = found.len() == want;
            let mut keyed: Vec<((f32, i64), DocAddress)> = found
                .into_iter()
                .filter_map(|(k, a)| Some((k?, a)))
                .collect();
            let order = |a: &(f32, i64), b: &(f32, i64)| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1));
            keyed.sort_by(|a, b| order(&a.0, &b.0).then(a.1.cmp(&b.1)));
            let read = |address: DocAddress| -> Result<(String, Record), SearchError> {
                let doc: TantivyDocument = searcher.doc(address)?;
                let record = Record::from_document(&doc, &self.fields)?;
                Ok((record.doc_id(), record))
            };
            // Ties with the cursor lead the list: those at or before its document id were on
            // an earlier page.
            let mut skip_tied = 0;
            if let Some(a) = &request.after {
                while let Some((key, address)) = keyed.get(skip_tied) {
                    if *key != (a.score, a.time_micros) {
                        break;
                    }
                    let (id, _) = read(*address)?;
                    if id.as_str() > a.doc_id.as_str() {
                        break;
                    }
                    skip_tied += 1;
                }
            }
            let keyed = &keyed[skip_tied..];
            let (first, end) = (request.offset, request.offset + request.limit);
            if full && keyed.len() < end {
                // The cursor's ties took what was collected; there may be more.
                slack *= 4;
                continue;
            }
            if keyed.len() <= first {
                break (Vec::new(), false);
            }
            let last = end.min(keyed.len()) - 1;
            // The page's edges may cut through documents tied on (score, time): read the whole
            // tie at each edge and order it by id, so a page never depends on how tantivy
            // happened to order equal keys.
            if full && keyed.last().is_some_and(|k| by.ties(&k.0, &keyed[last].0)) {
                slack *= 4;
                continue;
            }
            let lo = keyed[..first]
                .iter()
                .rposition(|k| k.0 != keyed[first].0)
                .map_or(0, |i| i + 1);
            let hi = keyed[last..]
                .iter()
                .position(|k| k.0 != keyed[last].0)
                .map_or(keyed.len(), |i| last + i);
            let mut window = Vec::with_capacity(hi - lo);
            for (key, address) in &keyed[lo..hi] {
                let (id, record) = read(*address)?;
                window.push((*key, id, record));
            }
            window.sort_by(|a, b| order(&a.0, &b.0).then_with(|| a.1.cmp(&b.1)));
            let more = keyed.len() > end;
            let hits = window
                .into_iter()
                .skip(first - lo)
                .take(request.limit)
                .map(|((score, time), doc_id, record)| {
                    let cursor = SearchCursor {
                        score,
                        time_micros: time,
                        doc_id,
                    }
                    .encode();
                    hit(record, scored.then_some(score), cursor, snippets.as_ref())
                })
                .collect::<Result<Vec<_>, SearchError>>()?;
            break (hits, more);
        };
        Ok(SearchResults {
            total: total.unwrap_or(0),
            hits,
            more,
        })
    }

    /// None when the filters exclude every kind of document.
    fn build_query(&self, request: &SearchRequest, terms: &[String]) -> Option<Box<dyn Query>> {
        let fields = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if !terms.is_empty() {
            let mut words: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len() * 2 + 1);
            let mut all_words: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len());
            for term in terms {
                let word = |field: Field| -> Box<dyn Query> {
                    Box::new(TermQuery::new(
                        Term::from_field_text(field, term),
                        IndexRecordOption::WithFreqs,
                    ))
                };
                let in_title: Box<dyn Query> =
                    Box::new(BoostQuery::new(word(fields.title), TITLE_BOOST));
                words.push((Occur::Should, in_title.box_clone()));
                words.push((Occur::Should, word(fields.body)));
                all_words.push((
                    Occur::Must,
                    Box::new(BooleanQuery::new(vec![
                        (Occur::Should, in_title),
                        (Occur::Should, word(fields.body)),
                    ])),
                ));
            }
            if terms.len() > 1 {
                words.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(
                        Box::new(BooleanQuery::new(all_words)),
                        ALL_WORDS_BOOST,
                    )),
                ));
            }
            // Inside a query with MUST clauses, SHOULD clauses are optional; nested as one
            // MUST clause, at least one word has to match.
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(words))));
        }

        // Always restrict the kinds, if only to keep tombstones out.
        let mut kinds: Vec<DocKind> = if request.kinds.is_empty() {
            DocKind::ALL.to_vec()
        } else {
            request.kinds.clone()
        };
        if let Some(status) = request.status {
            kinds.retain(|k| status.kinds().contains(k));
            clauses.push(filter(term_query(fields.status, status.as_str())));
        }
        if kinds.is_empty() {
            // e.g. a ticket status asked of messages only
            return None;
        }
        let kinds = kinds
            .into_iter()
            .map(|k| (Occur::Should, term_query(fields.kind, k.as_str())))
            .collect();
        clauses.push(filter(Box::new(BooleanQuery::new(kinds))));

        if let Some(queue) = request.queue {
            clauses.push(filter(term_query(fields.queue, &queue.to_string())));
        }
        if let Some(agent) = request.agent {
            clauses.push(filter(term_query(fields.agent, &agent.to_string())));
        }
        if request.from.is_some() || request.to.is_some() {
            let bound = |at: DateTime<Utc>| Term::from_field_date(fields.time, to_tantivy_time(at));
            let lower = request
                .from
                .map_or(Bound::Unbounded, |at| Bound::Included(bound(at)));
            let upper = request
                .to
                .map_or(Bound::Unbounded, |at| Bound::Excluded(bound(at)));
            clauses.push(filter(Box::new(RangeQuery::new(lower, upper))));
        }
        if let Some(scope) = scope_query(fields, &request.scope) {
            clauses.push(filter(scope));
        }
        Some(Box::new(BooleanQuery::new(clauses)))
    }
}

struct Snippets {
    title: SnippetGenerator,
    body: SnippetGenerator,
}

impl Snippets {
    fn new(searcher: &Searcher, query: &dyn Query, fields: &Fields) -> Result<Self, SearchError> {
        let generator = |field| -> Result<SnippetGenerator, SearchError> {
            let mut generator = SnippetGenerator::create(searcher, query, field)?;
            generator.set_max_num_chars(SNIPPET_BYTES);
            Ok(generator)
        };
        Ok(Snippets {
            title: generator(fields.title)?,
            body: generator(fields.body)?,
        })
    }

    /// The snippet of whichever text matched more words; the title when both matched as many.
    fn of(&self, title: &str, body: &str) -> Snippet {
        let title_snippet = Snippet::from_tantivy(&self.title.snippet(title), title);
        let body_snippet = Snippet::from_tantivy(&self.body.snippet(body), body);
        if body_snippet.highlighted.len() > title_snippet.highlighted.len() {
            body_snippet
        } else if !title_snippet.highlighted.is_empty() {
            title_snippet
        } else {
            // A hit always matched somewhere; this only guards against showing nothing.
            Snippet::head(if body.is_empty() { title } else { body })
        }
    }
}

fn hit(
    record: Record,
    score: Option<f32>,
    cursor: String,
    snippets: Option<&Snippets>,
) -> Result<SearchHit, SearchError> {
    let kind = record
        .kind()
        .ok_or_else(|| SearchError::Corrupt("a tombstone matched a search".into()))?;
    let (title, body) = record.texts();
    let snippet = match snippets {
        Some(snippets) => snippets.of(&title, &body),
        None if title.is_empty() => Snippet::head(&body),
        None => Snippet::head(&title),
    };
    let mut hit = SearchHit {
        kind,
        conversation: None,
        message: None,
        ticket: None,
        entry: None,
        score,
        cursor,
        time: record.time(),
        speaker: None,
        internal: false,
        queue: record.queue(),
        agent: None,
        status: record.status(),
        snippet,
    };
    match record {
        Record::Message(m) => {
            hit.conversation = Some(m.conversation);
            hit.message = m.message;
            hit.speaker = Some(m.speaker);
            hit.internal = m.internal;
            hit.agent = m.author.or(m.agent);
        }
        Record::Conversation(c) => {
            hit.conversation = Some(c.conversation);
            hit.agent = c.agent;
        }
        Record::Ticket(t) => {
            hit.conversation = t.conversation;
            hit.ticket = Some(t.ticket);
            hit.agent = t.assignee;
        }
        Record::Knowledge(k) => hit.entry = Some(k.entry),
        Record::Retired(_) => {}
    }
    Ok(hit)
}
