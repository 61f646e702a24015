//! From events to documents.

use kefu_domain::conversation::{ConversationDecider, ConversationEvent, TransferredTo};
use kefu_domain::knowledge::{KnowledgeDecider, KnowledgeEvent};
use kefu_domain::ticket::{FieldChange, TicketDecider, TicketEvent, TicketSource, TicketStatus};
use kefu_domain::{Decider, DomainEvent, Event};
use kefu_eventlog::RecordedEvent;
use tantivy::collector::TopDocs;
use tantivy::query::TermQuery;
use tantivy::schema::IndexRecordOption;
use tantivy::{TantivyDocument, Term};

use super::mask::mask;
use super::record::{
    ConversationRecord, ConversationStatus, KnowledgeRecord, MessageRecord, Record, RetiredRecord,
    SpeakerKind, TicketComment, TicketRecord, conversation_doc_id, knowledge_doc_id, ticket_doc_id,
};
use super::{SearchError, SearchIndex};

/// The categories the index covers. Events of the others only move the position on, and are
/// not decoded: a rebuild of the index need not pay for them.
const INDEXED: [&str; 3] = [
    ConversationEvent::CATEGORY,
    TicketEvent::CATEGORY,
    KnowledgeEvent::CATEGORY,
];

fn decode_error(event: &RecordedEvent, reason: String) -> SearchError {
    SearchError::Decode {
        stream: event.stream_id.to_string(),
        version: event.version,
        event_type: event.event_type.clone(),
        reason,
    }
}

fn entity_id<D: Decider>(event: &RecordedEvent) -> Result<D::Id, SearchError> {
    D::id_of_stream(event.stream_id.as_str()).ok_or_else(|| {
        decode_error(
            event,
            format!(
                "the stream id is not `{}-<uuid>`",
                event.stream_id.category()
            ),
        )
    })
}

fn unknown(event: &RecordedEvent, entity: &'static str) -> SearchError {
    SearchError::UnknownEntity {
        stream: event.stream_id.to_string(),
        version: event.version,
        event_type: event.event_type.clone(),
        entity,
    }
}

fn masked(text: &str) -> String {
    mask(text).into_owned()
}

impl SearchIndex {
    /// Applies one event of the log. Events must come in log order; events of streams the
    /// index does not cover (customers, queues, agents) only move the position on.
    ///
    /// The effect is buffered until [`SearchIndex::commit`]. An event that does not decode is
    /// an error and leaves the index as it was before the event.
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), SearchError> {
        if INDEXED.contains(&event.stream_id.category()) {
            match kefu_feed::decode(event)
                .map_err(|err| decode_error(event, err.reason.to_string()))?
            {
                Event::Conversation(e) => self.apply_conversation(event, e)?,
                Event::Ticket(e) => self.apply_ticket(event, e)?,
                Event::Knowledge(e) => self.apply_knowledge(event, e)?,
                _ => {}
            }
        }
        if self.applied.is_none_or(|applied| event.position > applied) {
            self.applied = Some(event.position);
        }
        Ok(())
    }

    fn apply_conversation(
        &mut self,
        event: &RecordedEvent,
        domain_event: ConversationEvent,
    ) -> Result<(), SearchError> {
        use ConversationEvent as E;
        let relevant = matches!(
            domain_event,
            E::ConversationStarted(_)
                | E::CustomerTurnRecorded(_)
                | E::BotTurnRecorded(_)
                | E::AgentTurnRecorded(_)
                | E::InternalNoteAdded(_)
                | E::HandedToHuman(_)
                | E::ConversationQueued(_)
                | E::AgentAssigned(_)
                | E::ConversationTransferred(_)
                | E::ConversationClosed(_)
                | E::ConversationReopened(_)
        );
        if !relevant {
            return Ok(());
        }
        let id = entity_id::<ConversationDecider>(event)?;
        let current = self.load(&conversation_doc_id(id))?;
        if let E::ConversationStarted(started) = domain_event {
            if current.is_some() {
                self.already_applied(event);
                return Ok(());
            }
            return self.write(Record::Conversation(ConversationRecord {
                conversation: id,
                customer: started.customer,
                channel: started.channel,
                locale: started.locale,
                status: ConversationStatus::Bot,
                queue: None,
                agent: None,
                started_at: started.at,
                closed_at: None,
                first_customer_message: None,
                turns: String::new(),
                version: event.version,
            }));
        }
        let mut conv = match current {
            Some(Record::Conversation(conv)) => conv,
            Some(_) => return Err(SearchError::Corrupt(format!("{id} is not a conversation"))),
            None => return Err(unknown(event, "conversation")),
        };
        if conv.version >= event.version {
            self.already_applied(event);
            return Ok(());
        }
        conv.version = event.version;

        let written = match &domain_event {
            E::CustomerTurnRecorded(t) => Some((
                SpeakerKind::Customer,
                None,
                false,
                Some(t.message),
                &t.text,
                t.at,
            )),
            E::BotTurnRecorded(t) => Some((
                SpeakerKind::Bot,
                None,
                false,
                Some(t.message),
                &t.text,
                t.at,
            )),
            E::AgentTurnRecorded(t) => Some((
                SpeakerKind::Agent,
                Some(t.agent),
                false,
                Some(t.message),
                &t.text,
                t.at,
            )),
            E::InternalNoteAdded(n) => Some((
                SpeakerKind::Agent,
                Some(n.author),
                true,
                None,
                &n.text,
                n.at,
            )),
            _ => None,
        }
        .map(
            |(speaker, author, internal, message, text, at)| MessageRecord {
                conversation: id,
                message,
                speaker,
                author,
                internal,
                text: masked(text),
                at,
                // The conversation as it is when the message is written (a turn does not change
                // it, so the event's own effect below does not matter).
                queue: conv.queue,
                agent: conv.agent,
                status: conv.status,
                // A note has no message id; its event id is as stable under replay.
                key: message.map_or_else(|| format!("note-{}", event.id), |m| m.to_string()),
            },
        );
        match domain_event {
            E::HandedToHuman(_) => conv.status = ConversationStatus::AwaitingHuman,
            E::ConversationQueued(queued) => {
                conv.status = ConversationStatus::Queued;
                conv.queue = Some(queued.queue);
                conv.agent = None;
            }
            E::AgentAssigned(assigned) => {
                conv.status = ConversationStatus::WithAgent;
                conv.queue = Some(assigned.queue);
                conv.agent = Some(assigned.agent);
            }
            E::ConversationTransferred(transferred) => {
                // A transfer to a queue is followed by `ConversationQueued`, which moves the
                // conversation; only a transfer to another agent changes it here.
                if let TransferredTo::Agent { agent } = transferred.to
                    && conv.status == ConversationStatus::WithAgent
                {
                    conv.agent = Some(agent);
                }
            }
            E::ConversationClosed(closed) => {
                // Queue and agent stay: a closed conversation is still found by who handled it.
                conv.status = ConversationStatus::Closed;
                conv.closed_at = Some(closed.at);
            }
            E::ConversationReopened(_) => {
                conv.status = ConversationStatus::Bot;
                conv.queue = None;
                conv.agent = None;
                conv.closed_at = None;
            }
            _ => {}
        }
        if let Some(message) = written {
            if !message.internal {
                if message.speaker == SpeakerKind::Customer && conv.first_customer_message.is_none()
                {
                    conv.first_customer_message = Some(message.text.clone());
                }
                conv.push_turn(&message.text);
            }
            self.write(Record::Message(message))?;
        }
        // Also after a note: the conversation's version must move past every event that
        // wrote a document, or a replay would write that document again.
        self.write(Record::Conversation(conv))
    }

    fn apply_ticket(
        &mut self,
        event: &RecordedEvent,
        domain_event: TicketEvent,
    ) -> Result<(), SearchError> {
        let id = entity_id::<TicketDecider>(event)?;
        let current = self.load(&ticket_doc_id(id))?;
        if let TicketEvent::TicketOpened(opened) = domain_event {
            if current.is_some() {
                self.already_applied(event);
                return Ok(());
            }
            let conversation = match opened.source {
                TicketSource::Conversation { conversation } => Some(conversation),
                TicketSource::Agent { .. } => None,
            };
            return self.write(Record::Ticket(TicketRecord {
                ticket: id,
                customer: opened.customer,
                conversation,
                subject: masked(&opened.subject),
                description: masked(&opened.description),
                comments: Vec::new(),
                status: TicketStatus::New,
                priority: opened.priority,
                kind: opened.kind,
                assignee: None,
                order: opened.order,
                escalation_level: 0,
                merged_into: None,
                opened_at: opened.at,
                version: event.version,
            }));
        }
        let mut ticket = match current {
            Some(Record::Ticket(ticket)) => ticket,
            Some(_) => return Err(SearchError::Corrupt(format!("{id} is not a ticket"))),
            None => return Err(unknown(event, "ticket")),
        };
        if ticket.version >= event.version {
            self.already_applied(event);
            return Ok(());
        }
        ticket.version = event.version;
        match domain_event {
            TicketEvent::TicketOpened(_) => {}
            TicketEvent::TicketFieldChanged(changed) => match changed.change {
                FieldChange::Kind { after, .. } => ticket.kind = after,
                FieldChange::Priority { after, .. } => ticket.priority = after,
                FieldChange::Subject { after, .. } => ticket.subject = masked(&after),
                FieldChange::Order { after, .. } => ticket.order = after,
                FieldChange::Assignee { after, .. } => ticket.assignee = after,
            },
            TicketEvent::TicketStatusChanged(changed) => ticket.status = changed.to,
            TicketEvent::TicketCommented(comment) => ticket.comments.push(TicketComment {
                author: comment.author,
                body: masked(&comment.body),
                public: comment.public,
                at: comment.at,
            }),
            TicketEvent::TicketEscalated(escalated) => ticket.escalation_level = escalated.level,
            TicketEvent::TicketMerged(merged) => {
                ticket.merged_into = Some(merged.into);
                ticket.status = TicketStatus::Closed;
            }
            TicketEvent::TicketReopened(_) => ticket.status = TicketStatus::Open,
        }
        self.write(Record::Ticket(ticket))
    }

    fn apply_knowledge(
        &mut self,
        event: &RecordedEvent,
        domain_event: KnowledgeEvent,
    ) -> Result<(), SearchError> {
        let id = entity_id::<KnowledgeDecider>(event)?;
        let current = self.load(&knowledge_doc_id(id))?;
        if let KnowledgeEvent::KnowledgeEntryCreated(created) = domain_event {
            if current.is_some() {
                self.already_applied(event);
                return Ok(());
            }
            return self.write(Record::Knowledge(KnowledgeRecord {
                entry: id,
                question: masked(&created.question),
                paraphrases: created.paraphrases.iter().map(|p| masked(p)).collect(),
                answer: masked(&created.answer),
                category: created.category,
                locale: created.locale,
                revision: 1,
                created_at: created.at,
                version: event.version,
            }));
        }
        let mut entry = match current {
            Some(Record::Knowledge(entry)) if entry.version < event.version => entry,
            Some(Record::Knowledge(_)) => {
                self.already_applied(event);
                return Ok(());
            }
            Some(Record::Retired(retired)) => {
                if retired.version < event.version {
                    // The domain refuses to edit a retired entry, so this is a log written
                    // around it; the entry stays retired.
                    tracing::warn!(
                        stream = %event.stream_id,
                        version = event.version,
                        event_type = %event.event_type,
                        "event after the knowledge entry was retired; ignored"
                    );
                }
                return Ok(());
            }
            Some(_) => return Err(SearchError::Corrupt(format!("{id} is not an entry"))),
            None => return Err(unknown(event, "knowledge entry")),
        };
        match domain_event {
            KnowledgeEvent::KnowledgeEntryCreated(_) => Ok(()),
            KnowledgeEvent::KnowledgeEntryEdited(edited) => {
                entry.version = event.version;
                entry.revision = edited.revision;
                if let Some(question) = edited.question {
                    entry.question = masked(&question);
                }
                if let Some(paraphrases) = edited.paraphrases {
                    entry.paraphrases = paraphrases.iter().map(|p| masked(p)).collect();
                }
                if let Some(answer) = edited.answer {
                    entry.answer = masked(&answer);
                }
                if let Some(category) = edited.category {
                    entry.category = category;
                }
                if let Some(locale) = edited.locale {
                    entry.locale = locale;
                }
                self.write(Record::Knowledge(entry))
            }
            KnowledgeEvent::KnowledgeEntryRetired(_) => {
                self.write(Record::Retired(RetiredRecord {
                    entry: id,
                    created_at: entry.created_at,
                    version: event.version,
                }))
            }
        }
    }

    fn already_applied(&self, event: &RecordedEvent) {
        tracing::debug!(
            stream = %event.stream_id,
            version = event.version,
            "event already in the search index; skipped"
        );
    }

    /// The current record of a conversation, ticket or entry: the one written since the last
    /// commit if any, else the committed one.
    fn load(&self, doc_id: &str) -> Result<Option<Record>, SearchError> {
        if let Some(record) = self.pending.get(doc_id) {
            return Ok(Some(record.clone()));
        }
        let searcher = self.reads.reader.searcher();
        let query = TermQuery::new(
            Term::from_field_text(self.fields.doc_id, doc_id),
            IndexRecordOption::Basic,
        );
        let found = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
        let Some((_, address)) = found.first() else {
            return Ok(None);
        };
        let doc: TantivyDocument = searcher.doc(*address)?;
        Record::from_document(&doc, &self.fields).map(Some)
    }

    /// Replaces the document with `record`'s id by `record`.
    fn write(&mut self, record: Record) -> Result<(), SearchError> {
        let doc_id = record.doc_id();
        let doc = record.to_document(&self.fields)?;
        self.writer
            .delete_term(Term::from_field_text(self.fields.doc_id, &doc_id));
        self.writer.add_document(doc)?;
        self.dirty = true;
        if record.is_entity() {
            self.pending.insert(doc_id, record);
        }
        Ok(())
    }
}
