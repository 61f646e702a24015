//! What each document holds, as a Rust record stored (as JSON) in the document itself.
//!
//! Hits are built from the record, and a conversation, ticket or knowledge entry that an
//! event changes is read back from its record, changed and written again. All text in a
//! record has been masked (`mask.rs`) before the record was made.

use chrono::{DateTime, Utc};
use kefu_domain::common::{Channel, Party};
use kefu_domain::ids::{
    AgentId, Category, ConversationId, CustomerId, KnowledgeEntryId, Locale, MessageId, OrderId,
    QueueId, TicketId,
};
use kefu_domain::ticket::{TicketKind, TicketPriority, TicketStatus};
use serde::{Deserialize, Serialize};
use tantivy::TantivyDocument;
use tantivy::schema::Value;

use super::SearchError;
use super::schema::Fields;

/// The longest turn text a conversation document keeps, in bytes. Later turns are still
/// found through their own message documents; the conversation document only needs enough
/// to rank the conversation as a whole, and it is rewritten on every turn.
pub(crate) const MAX_CONVERSATION_TEXT_BYTES: usize = 32 * 1024;

/// The kinds of document the index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    /// One turn of a conversation (customer, bot or agent) or an internal note. Dated by when
    /// it was written.
    Message,
    /// A whole conversation, kept current. Dated by when it started.
    Conversation,
    /// A ticket (工单), kept current. Dated by when it was opened.
    Ticket,
    /// A knowledge-base (FAQ) entry, kept current; retired entries are removed. Dated by when
    /// it was created.
    Knowledge,
}

impl DocKind {
    pub const ALL: [DocKind; 4] = [
        DocKind::Message,
        DocKind::Conversation,
        DocKind::Ticket,
        DocKind::Knowledge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Message => "message",
            DocKind::Conversation => "conversation",
            DocKind::Ticket => "ticket",
            DocKind::Knowledge => "knowledge",
        }
    }
}

/// The `kind` of a tombstone: never searched, only there to remember a retired entry.
pub(crate) const RETIRED_KIND: &str = "retired";

/// Who looks after a conversation, as the search filters name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    Bot,
    AwaitingHuman,
    Queued,
    WithAgent,
    Closed,
}

impl ConversationStatus {
    pub const ALL: [ConversationStatus; 5] = [
        ConversationStatus::Bot,
        ConversationStatus::AwaitingHuman,
        ConversationStatus::Queued,
        ConversationStatus::WithAgent,
        ConversationStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Bot => "bot",
            ConversationStatus::AwaitingHuman => "awaiting_human",
            ConversationStatus::Queued => "queued",
            ConversationStatus::WithAgent => "with_agent",
            ConversationStatus::Closed => "closed",
        }
    }
}

/// A conversation's or a ticket's status: what hits report and filters take. A conversation
/// status also filters messages, by the status their conversation had when they were
/// written; a ticket status filters tickets only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocStatus {
    Conversation(ConversationStatus),
    Ticket(TicketStatus),
}

impl DocStatus {
    /// The status as indexed: `with_agent`, `pending`, … (both kinds have a `closed`; the
    /// kind of document tells them apart).
    pub fn as_str(self) -> &'static str {
        match self {
            DocStatus::Conversation(status) => status.as_str(),
            DocStatus::Ticket(TicketStatus::New) => "new",
            DocStatus::Ticket(TicketStatus::Open) => "open",
            DocStatus::Ticket(TicketStatus::Pending) => "pending",
            DocStatus::Ticket(TicketStatus::Solved) => "solved",
            DocStatus::Ticket(TicketStatus::Closed) => "closed",
        }
    }

    /// The kinds of document that have this kind of status.
    pub(crate) fn kinds(self) -> &'static [DocKind] {
        match self {
            DocStatus::Conversation(_) => &[DocKind::Message, DocKind::Conversation],
            DocStatus::Ticket(_) => &[DocKind::Ticket],
        }
    }
}

impl From<ConversationStatus> for DocStatus {
    fn from(status: ConversationStatus) -> Self {
        DocStatus::Conversation(status)
    }
}

impl From<TicketStatus> for DocStatus {
    fn from(status: TicketStatus) -> Self {
        DocStatus::Ticket(status)
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeakerKind {
    Customer,
    Bot,
    /// An agent's turn, or an internal note (then the message is marked internal).
    Agent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MessageRecord {
    pub conversation: ConversationId,
    /// None for internal notes, which have no message id of their own.
    pub message: Option<MessageId>,
    pub speaker: SpeakerKind,
    /// The agent who wrote it, for agent turns and notes.
    pub author: Option<AgentId>,
    /// Internal notes are for agents only.
    pub internal: bool,
    pub text: String,
    pub at: DateTime<Utc>,
    /// The conversation's queue, agent and status when the message was written.
    pub queue: Option<QueueId>,
    pub agent: Option<AgentId>,
    pub status: ConversationStatus,
    /// Unique within the conversation: the message id, or for a note the event id.
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConversationRecord {
    pub conversation: ConversationId,
    pub customer: CustomerId,
    pub channel: Channel,
    pub locale: Locale,
    pub status: ConversationStatus,
    pub queue: Option<QueueId>,
    pub agent: Option<AgentId>,
    pub started_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub first_customer_message: Option<String>,
    /// Customer, bot and agent turns, one per line, up to `MAX_CONVERSATION_TEXT_BYTES`.
    /// Internal notes stay out: a conversation hit may be shown where notes may not.
    pub turns: String,
    /// The stream version of the last event folded into this record.
    pub version: u64,
}

impl ConversationRecord {
    pub(crate) fn push_turn(&mut self, text: &str) {
        let room = MAX_CONVERSATION_TEXT_BYTES.saturating_sub(self.turns.len());
        if room <= 1 {
            return;
        }
        if !self.turns.is_empty() {
            self.turns.push('\n');
        }
        let room = room - 1;
        let end = if text.len() <= room {
            text.len()
        } else {
            text.floor_char_boundary(room)
        };
        self.turns.push_str(&text[..end]);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TicketComment {
    pub author: Party,
    pub body: String,
    pub public: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TicketRecord {
    pub ticket: TicketId,
    pub customer: CustomerId,
    /// The conversation it was opened from, if any.
    pub conversation: Option<ConversationId>,
    pub subject: String,
    pub description: String,
    pub comments: Vec<TicketComment>,
    pub status: TicketStatus,
    pub priority: TicketPriority,
    pub kind: TicketKind,
    pub assignee: Option<AgentId>,
    pub order: Option<OrderId>,
    pub escalation_level: u8,
    pub merged_into: Option<TicketId>,
    pub opened_at: DateTime<Utc>,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct KnowledgeRecord {
    pub entry: KnowledgeEntryId,
    pub question: String,
    pub paraphrases: Vec<String>,
    pub answer: String,
    pub category: Category,
    pub locale: Locale,
    pub revision: u32,
    pub created_at: DateTime<Utc>,
    pub version: u64,
}

/// What is left of a retired knowledge entry: enough to recognise its older events when the
/// log is replayed over the index, so they do not bring the entry back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RetiredRecord {
    pub entry: KnowledgeEntryId,
    pub created_at: DateTime<Utc>,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub(crate) enum Record {
    Message(MessageRecord),
    Conversation(ConversationRecord),
    Ticket(TicketRecord),
    Knowledge(KnowledgeRecord),
    Retired(RetiredRecord),
}

pub(crate) fn conversation_doc_id(id: ConversationId) -> String {
    format!("conversation:{id}")
}

pub(crate) fn ticket_doc_id(id: TicketId) -> String {
    format!("ticket:{id}")
}

pub(crate) fn knowledge_doc_id(id: KnowledgeEntryId) -> String {
    format!("knowledge:{id}")
}

impl Record {
    pub(crate) fn doc_id(&self) -> String {
        match self {
            // Message ids come from the sender's client; scoping them by conversation keeps a
            // client that reuses one across chats from overwriting another chat's message.
            Record::Message(m) => format!("message:{}:{}", m.conversation, m.key),
            Record::Conversation(c) => conversation_doc_id(c.conversation),
            Record::Ticket(t) => ticket_doc_id(t.ticket),
            Record::Knowledge(k) => knowledge_doc_id(k.entry),
            Record::Retired(r) => knowledge_doc_id(r.entry),
        }
    }

    /// Whether later events read this record back (and so it is worth remembering until the
    /// next commit).
    pub(crate) fn is_entity(&self) -> bool {
        !matches!(self, Record::Message(_))
    }

    pub(crate) fn kind_term(&self) -> &'static str {
        match self {
            Record::Message(_) => DocKind::Message.as_str(),
            Record::Conversation(_) => DocKind::Conversation.as_str(),
            Record::Ticket(_) => DocKind::Ticket.as_str(),
            Record::Knowledge(_) => DocKind::Knowledge.as_str(),
            Record::Retired(_) => RETIRED_KIND,
        }
    }

    pub(crate) fn kind(&self) -> Option<DocKind> {
        match self {
            Record::Message(_) => Some(DocKind::Message),
            Record::Conversation(_) => Some(DocKind::Conversation),
            Record::Ticket(_) => Some(DocKind::Ticket),
            Record::Knowledge(_) => Some(DocKind::Knowledge),
            Record::Retired(_) => None,
        }
    }

    pub(crate) fn time(&self) -> DateTime<Utc> {
        match self {
            Record::Message(m) => m.at,
            Record::Conversation(c) => c.started_at,
            Record::Ticket(t) => t.opened_at,
            Record::Knowledge(k) => k.created_at,
            Record::Retired(r) => r.created_at,
        }
    }

    pub(crate) fn queue(&self) -> Option<QueueId> {
        match self {
            Record::Message(m) => m.queue,
            Record::Conversation(c) => c.queue,
            _ => None,
        }
    }

    /// The agents the `agent` filter finds this document by.
    pub(crate) fn agents(&self) -> Vec<AgentId> {
        let mut agents = Vec::new();
        match self {
            Record::Message(m) => {
                agents.extend(m.agent);
                agents.extend(m.author.filter(|a| Some(*a) != m.agent));
            }
            Record::Conversation(c) => agents.extend(c.agent),
            Record::Ticket(t) => agents.extend(t.assignee),
            Record::Knowledge(_) | Record::Retired(_) => {}
        }
        agents
    }

    pub(crate) fn status(&self) -> Option<DocStatus> {
        match self {
            Record::Message(m) => Some(m.status.into()),
            Record::Conversation(c) => Some(c.status.into()),
            Record::Ticket(t) => Some(t.status.into()),
            Record::Knowledge(_) | Record::Retired(_) => None,
        }
    }

    /// The `title` and `body` texts, as indexed.
    pub(crate) fn texts(&self) -> (String, String) {
        match self {
            Record::Message(m) => (String::new(), m.text.clone()),
            Record::Conversation(c) => (
                c.first_customer_message.clone().unwrap_or_default(),
                c.turns.clone(),
            ),
            Record::Ticket(t) => {
                let mut body = t.description.clone();
                for comment in &t.comments {
                    body.push('\n');
                    body.push_str(&comment.body);
                }
                (t.subject.clone(), body)
            }
            Record::Knowledge(k) => {
                let mut title = k.question.clone();
                for paraphrase in &k.paraphrases {
                    title.push('\n');
                    title.push_str(paraphrase);
                }
                (title, k.answer.clone())
            }
            Record::Retired(_) => (String::new(), String::new()),
        }
    }

    pub(crate) fn to_document(&self, fields: &Fields) -> Result<TantivyDocument, SearchError> {
        let mut doc = TantivyDocument::new();
        doc.add_text(fields.doc_id, self.doc_id());
        doc.add_text(fields.kind, self.kind_term());
        if let Some(queue) = self.queue() {
            doc.add_text(fields.queue, queue.to_string());
        }
        for agent in self.agents() {
            doc.add_text(fields.agent, agent.to_string());
        }
        if let Some(status) = self.status() {
            doc.add_text(fields.status, status.as_str());
        }
        doc.add_date(fields.time, to_tantivy_time(self.time()));
        let (title, body) = self.texts();
        if !title.is_empty() {
            doc.add_text(fields.title, title);
        }
        if !body.is_empty() {
            doc.add_text(fields.body, body);
        }
        let data = serde_json::to_string(self)
            .map_err(|e| SearchError::Corrupt(format!("cannot encode a record: {e}")))?;
        doc.add_text(fields.data, data);
        Ok(doc)
    }

    pub(crate) fn from_document(
        doc: &TantivyDocument,
        fields: &Fields,
    ) -> Result<Self, SearchError> {
        let data = doc
            .get_first(fields.data)
            .and_then(|v| v.as_str())
            .ok_or_else(|| SearchError::Corrupt("a document has no stored record".into()))?;
        serde_json::from_str(data)
            .map_err(|e| SearchError::Corrupt(format!("a stored record does not parse: {e}")))
    }
}

pub(crate) fn to_tantivy_time(at: DateTime<Utc>) -> tantivy::DateTime {
    tantivy::DateTime::from_timestamp_micros(at.timestamp_micros())
}
