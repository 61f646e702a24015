//! The search index fed with scripted events, built from the domain's own event types and
//! encoded as the command service would append them.
//!
//! What it covers: Chinese paraphrases, English, filters, snippets, masking, the checkpoint across
//! a reopen, idempotent replays, and bad requests refused.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, TimeZone, Utc};
use kefu_domain::DomainEvent;
use kefu_domain::common::{Channel, Party};
use kefu_domain::conversation::{
    AgentAssigned, AgentTurnRecorded, BotTurnRecorded, CloseReason, ConversationClosed,
    ConversationEvent, ConversationQueued, ConversationReopened, ConversationStarted,
    ConversationTransferred, CustomerTurnRecorded, HandedToHuman, HandoffReason, InternalNoteAdded,
    TransferredTo,
};
use kefu_domain::customer::CustomerTier;
use kefu_domain::ids::{
    AgentId, Category, ConversationId, CustomerId, KnowledgeEntryId, Locale, MessageId, QueueId,
    TicketId,
};
use kefu_domain::knowledge::{
    KnowledgeEntryCreated, KnowledgeEntryEdited, KnowledgeEntryRetired, KnowledgeEvent,
};
use kefu_domain::ticket::{
    FieldChange, TicketCommented, TicketEvent, TicketFieldChanged, TicketKind, TicketOpened,
    TicketPriority, TicketSource, TicketStatus, TicketStatusChanged,
};
use kefu_eventlog::{Actor, Metadata, Position, RecordedEvent, StreamId};
use kefu_projections::search::{
    ConversationStatus, DocKind, EMAIL_MASK, MAX_LIMIT, PHONE_MASK, SearchCursor, SearchError,
    SearchHit, SearchIndex, SearchRequest, SearchScope, SpeakerKind,
};
use serde_json::json;
use uuid::Uuid;

// ---- scripting events ----

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 18, 9, 0, 0).unwrap() + Duration::minutes(minute)
}

const fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0197_0000_0000_7000_8000_0000_0000_0000 | n)
}

/// A log being written: events get the next version of their stream and the next position
/// (positions step by 3, as real logs leave holes).
#[derive(Default)]
struct Script {
    events: Vec<RecordedEvent>,
    versions: HashMap<String, u64>,
    next_id: u128,
}

impl Script {
    fn record(
        &mut self,
        stream: String,
        event_type: &str,
        schema_version: u32,
        payload: serde_json::Value,
    ) -> RecordedEvent {
        let next = self.versions.entry(stream.clone()).or_insert(0);
        let version = *next;
        *next += 1;
        self.next_id += 1;
        let recorded = RecordedEvent {
            id: id(0xe000_0000 + self.next_id),
            stream_id: StreamId::new(stream).unwrap(),
            version,
            position: Position(3 * self.events.len() as u64 + 1),
            event_type: event_type.to_owned(),
            schema_version,
            payload,
            recorded_at: at(0),
            metadata: Metadata::for_request(Actor::system("test"), id(0xf000_0000 + self.next_id)),
        };
        self.events.push(recorded.clone());
        recorded
    }

    fn domain<E: DomainEvent>(&mut self, entity: Uuid, event: E) -> RecordedEvent {
        let encoded = event.encode().unwrap();
        self.record(
            format!("{}-{entity}", E::CATEGORY),
            encoded.event_type,
            encoded.schema_version,
            encoded.payload,
        )
    }

    fn conv(&mut self, c: ConversationId, event: impl Into<ConversationEvent>) -> RecordedEvent {
        self.domain(c.as_uuid(), event.into())
    }

    fn ticket(&mut self, t: TicketId, event: impl Into<TicketEvent>) -> RecordedEvent {
        self.domain(t.as_uuid(), event.into())
    }

    fn knowledge(
        &mut self,
        k: KnowledgeEntryId,
        event: impl Into<KnowledgeEvent>,
    ) -> RecordedEvent {
        self.domain(k.as_uuid(), event.into())
    }

    fn start(&mut self, c: ConversationId, customer: CustomerId, minute: i64) {
        self.conv(
            c,
            ConversationStarted {
                conversation: c,
                customer,
                tier: CustomerTier::Regular,
                locale: Locale::new("zh-CN"),
                channel: Channel::App,
                order: None,
                bot_enabled: true,
                at: at(minute),
            },
        );
    }

    fn customer_says(&mut self, c: ConversationId, message: MessageId, text: &str, minute: i64) {
        self.conv(
            c,
            CustomerTurnRecorded {
                message,
                text: text.into(),
                at: at(minute),
            },
        );
    }

    fn bot_says(&mut self, c: ConversationId, message: MessageId, text: &str, minute: i64) {
        self.conv(
            c,
            BotTurnRecorded {
                message,
                text: text.into(),
                answer: None,
                candidates: vec![],
                at: at(minute),
            },
        );
    }

    fn agent_says(
        &mut self,
        c: ConversationId,
        agent: AgentId,
        message: MessageId,
        text: &str,
        minute: i64,
    ) {
        self.conv(
            c,
            AgentTurnRecorded {
                agent,
                message,
                text: text.into(),
                first_response: false,
                at: at(minute),
            },
        );
    }

    /// Hand-off, queueing and assignment, as triage and the assigner record them.
    fn hand_to_agent(&mut self, c: ConversationId, queue: QueueId, agent: AgentId, minute: i64) {
        self.conv(
            c,
            HandedToHuman {
                reason: HandoffReason::CustomerAsked,
                at: at(minute),
            },
        );
        self.queue(c, queue, minute);
        self.conv(
            c,
            AgentAssigned {
                agent,
                queue,
                waited_secs: 30,
                at: at(minute),
            },
        );
    }

    fn queue(&mut self, c: ConversationId, queue: QueueId, minute: i64) {
        self.conv(
            c,
            ConversationQueued {
                queue,
                priority: 3,
                skills: BTreeSet::new(),
                first_response_due: at(minute + 1),
                resolution_due: Some(at(minute + 30)),
                at: at(minute),
            },
        );
    }

    fn close(&mut self, c: ConversationId, agent: Option<AgentId>, minute: i64) {
        self.conv(
            c,
            ConversationClosed {
                by: Party::System,
                reason: CloseReason::Resolved,
                released_agent: agent,
                at: at(minute),
            },
        );
    }
}

fn index_of(events: &[RecordedEvent]) -> SearchIndex {
    let mut index = SearchIndex::in_memory().unwrap();
    apply_all(&mut index, events);
    index
}

fn apply_all(index: &mut SearchIndex, events: &[RecordedEvent]) {
    for event in events {
        index.apply(event).unwrap();
    }
    index.commit().unwrap();
}

fn search(index: &SearchIndex, request: SearchRequest) -> Vec<SearchHit> {
    index.search(&request).unwrap().hits
}

fn messages(hits: &[SearchHit]) -> Vec<MessageId> {
    hits.iter().filter_map(|h| h.message).collect()
}

fn conversations(hits: &[SearchHit]) -> Vec<ConversationId> {
    hits.iter().filter_map(|h| h.conversation).collect()
}

const C1: ConversationId = ConversationId::from_uuid(id(0xc1));
const C2: ConversationId = ConversationId::from_uuid(id(0xc2));
const CUSTOMER: CustomerId = CustomerId::from_uuid(id(0xcc));
const Q_DELIVERY: QueueId = QueueId::from_uuid(id(0x91));
const Q_REFUND: QueueId = QueueId::from_uuid(id(0x92));
const ALICE: AgentId = AgentId::from_uuid(id(0xa1));
const BOB: AgentId = AgentId::from_uuid(id(0xa2));

const fn m(n: u128) -> MessageId {
    MessageId::from_uuid(id(0x1000 + n))
}

// ---- language ----

#[test]
fn a_chinese_query_finds_a_message_that_says_it_with_other_words_in_between() {
    let mut s = Script::default();
    s.start(C1, CUSTOMER, 0);
    s.customer_says(C1, m(1), "我的快递三天了还没有到", 1);
    s.customer_says(C1, m(2), "我想修改收货地址", 2);
    let index = index_of(&s.events);

    let hits = search(
        &index,
        SearchRequest::new("快递没到").kind(DocKind::Message),
    );

    assert_eq!(messages(&hits), vec![m(1)]);
    assert_eq!(hits[0].speaker, Some(SpeakerKind::Customer));
    assert_eq!(hits[0].conversation, Some(C1));
    assert!(hits[0].score.is_some_and(|s| s > 0.0));
}

#[test]
fn english_words_are_found_whatever_their_case() {
    let mut s = Script::default();
    s.start(C1, CUSTOMER, 0);
    s.customer_says(C1, m(1), "Where is my REFUND? 我的iPhone退货了", 1);
    s.customer_says(C1, m(2), "Thanks, bye", 2);
    let index = index_of(&s.events);

    for query in ["refund", "Refund", "REFUND", "iphone", "IPHONE"] {
        let hits = search(&index, SearchRequest::new(query).kind(DocKind::Message));
        assert_eq!(messages(&hits), vec![m(1)], "query {query:?}");
    }
}

#[test]
fn english_word_forms_find_each_other() {
    let mut s = Script::default();
    s.start(C1, CUSTOMER, 0);
    s.customer_says(C1, m(1), "I was refunded twice", 1);
    s.customer_says(C1, m(2), "Two refunds are missing", 2);
    s.customer_says(C1, m(3), "Where is my parcel?", 3);
    let index = index_of(&s.events);

    for query in ["refund", "refunds", "REFUNDED", "refunding"] {
        let hits = search(&index, SearchRequest::new(query).kind(DocKind::Message));
        let found: BTreeSet<MessageId> = messages(&hits).into_iter().collect();
        assert_eq!(found, BTreeSet::from([m(1), m(2)]), "query {query:?}");
    }
}

/// A query of several Chinese words ranks the documents that hold them all first: a long
/// message asking for the special VAT invoice comes before short ones that say only some of
/// its words (增值税发票, 专用发票) or only 发票, however often.
#[test]
fn documents_with_all_the_words_of_a_chinese_query_come_first() {
    let mut s = Script::default();
    s.start(C1, CUSTOMER, 0);
    s.customer_says(C1, m(1), "发票发票发票，我的发票呢", 1);
    s.customer_says(C1, m(2), "增值税发票", 2);
    s.customer_says(C1, m(3), "专用发票", 3);
    s.customer_says(
        C1,
        m(4),
        "您好，我们公司上个月在贵店采购了一批办公用品，现在财务那边要求补开增值税专用发票，请问需要提供哪些资料",
        4,
    );
    s.customer_says(C1, m(5), "电子发票在哪里下载", 5);
    let index = index_of(&s.events);

    let hits = search(
        &index,
        SearchRequest::new("增值税专用发票").kind(DocKind::Message),
    );

    let ranked = messages(&hits);
    assert_eq!(ranked.len(), 5, "every message says 发票: {ranked:?}");
    assert_eq!(ranked[0], m(4), "{ranked:?}");
}

#[test]
fn the_snippet_highlights_the_matched_words() {
    let mut s = Script::default();
    s.start(C1, CUSTOMER, 0);
    s.customer_says(C1, m(1), "你好，我的快递三天了还没有到 <急>", 1);
    let index = index_of(&s.events);

    let hits = search(&index, SearchRequest::new("快递").kind(DocKind::Message));

    let snippet = &hits[0].snippet;
    assert!(snippet.fragment.contains("快递三天了"), "{snippet:?}");
    assert_eq!(snippet.matches().collect::<Vec<_>>(), vec!["快递"]);
    let html = snippet.to_html();
    assert!(html.contains("<b>快递</b>"), "{html}");
    assert!(html.contains("&lt;急&gt;"), "text is escaped: {html}");
}

// ---- filters ----

/// C1: a delivery question answered by Alice in the delivery queue, then transferred to
/// Bob. C2: a refund handled by Bob in the refund queue, closed.
fn two_conversations() -> Script {
    let mut s = Script::default();
    s.start(C1, CUSTOMER, 0);
    s.customer_says(C1, m(1), "快递什么时候到", 1);
    s.bot_says(C1, m(2), "快递一般三天内送达", 2);
    s.hand_to_agent(C1, Q_DELIVERY, ALICE, 3);
    s.customer_says(C1, m(3), "快递还是没到，转人工", 4);
    s.agent_says(C1, ALICE, m(4), "我帮您查一下快递", 5);
    s.conv(
        C1,
        ConversationTransferred {
            from_agent: ALICE,
            to: TransferredTo::Agent { agent: BOB },
            reason: "shift ended".into(),
            at: at(6),
        },
    );
    s.agent_says(C1, BOB, m(5), "快递明天到", 7);

    s.start(C2, CUSTOMER, 10);
    s.customer_says(C2, m(11), "退款什么时候到账，快递已经退回", 11);
    s.hand_to_agent(C2, Q_REFUND, BOB, 12);
    s.agent_says(C2, BOB, m(12), "退款已处理", 13);
    s.close(C2, Some(BOB), 14);
    s
}

#[test]
fn messages_are_filtered_by_the_queue_and_agent_of_their_conversation_when_written() {
    let index = index_of(&two_conversations().events);
    let query = || SearchRequest::new("快递").kind(DocKind::Message);

    let in_delivery = search(&index, query().queue(Q_DELIVERY));
    let mut found = messages(&in_delivery);
    found.sort();
    // m(1) and m(2) were written while the bot had the conversation: no queue yet.
    assert_eq!(found, vec![m(3), m(4), m(5)]);

    let with_alice = messages(&search(&index, query().agent(ALICE)));
    assert_eq!(
        with_alice.iter().collect::<BTreeSet<_>>(),
        [m(3), m(4)].iter().collect()
    );

    // m(11) mentions 快递 too, but was written before Bob took C2.
    assert_eq!(messages(&search(&index, query().agent(BOB))), vec![m(5)]);

    let while_with_bot = messages(&search(&index, query().status(ConversationStatus::Bot)));
    assert_eq!(
        while_with_bot.iter().collect::<BTreeSet<_>>(),
        [m(1), m(2), m(11)].iter().collect()
    );
}

#[test]
fn conversations_are_filtered_by_their_current_queue_agent_and_status() {
    let index = index_of(&two_conversations().events);
    let query = || SearchRequest::new("快递").kind(DocKind::Conversation);

    assert_eq!(conversations(&search(&index, query())).len(), 2);
    assert_eq!(
        conversations(&search(&index, query().queue(Q_DELIVERY))),
        vec![C1]
    );
    // Alice handed C1 over to Bob: C1 is Bob's now, and Alice has none.
    assert!(search(&index, query().agent(ALICE)).is_empty());
    let mut bobs = conversations(&search(&index, query().agent(BOB)));
    bobs.sort();
    assert_eq!(bobs, vec![C1, C2]);
    assert_eq!(
        conversations(&search(
            &index,
            query().status(ConversationStatus::WithAgent)
        )),
        vec![C1]
    );
    let closed = search(&index, query().status(ConversationStatus::Closed));
    assert_eq!(conversations(&closed), vec![C2]);
    assert_eq!(closed[0].status, Some(ConversationStatus::Closed.into()));
    assert_eq!(
        closed[0].queue,
        Some(Q_REFUND),
        "a closed conversation keeps its queue"
    );
}

#[test]
fn documents_are_filtered_by_date_from_inclusive_to_exclusive() {
    let index = index_of(&two_conversations().events);
    let query = || SearchRequest::new("快递").kind(DocKind::Message);

    let window = messages(&search(&index, query().between(at(4), at(7))));
    assert_eq!(
        window.iter().collect::<BTreeSet<_>>(),
        [m(3), m(4)].iter().collect()
    );
    let late = messages(&search(&index, query().since(at(11))));
    assert_eq!(late, vec![m(11)]);
    let early = messages(&search(&index, query().before(at(2))));
    assert_eq!(early, vec![m(1)]);
}

#[test]
fn without_text_the_filtered_documents_are_listed_newest_first() {
    let index = index_of(&two_conversations().events);

    let results = index
        .search(&SearchRequest::default().agent(BOB).kind(DocKind::Message))
        .unwrap();

    assert_eq!(results.total, 2);
    assert_eq!(messages(&results.hits), vec![m(12), m(5)]);
    assert!(results.hits.iter().all(|h| h.score.is_none()));
    assert!(
        results
            .hits
            .iter()
            .all(|h| h.snippet.highlighted.is_empty())
    );
    assert_eq!(results.hits[0].snippet.fragment, "退款已处理");
}

#[test]
fn results_come_in_pages() {
    let mut s = Script::default();
    s.start(C1, CUSTOMER, 0);
    for n in 1..=7 {
        s.customer_says(C1, m(n), &format!("第{n}次问：快递在哪"), n as i64);
    }
    let index = index_of(&s.events);
    let page = |limit, offset| {
        index
            .search(
                &SearchRequest::new("快递")
                    .kind(DocKind::Message)
                    .page(limit, offset),
            )
            .unwrap()
    };

    let first = page(3, 0);
    let second = page(3, 3);
    let last = page(3, 6);
    assert_eq!(first.total, 7);
    assert_eq!(
        (first.hits.len(), second.hits.len(), last.hits.len()),
        (3, 3, 1)
    );
    let all: BTreeSet<_> = [first, second, last]
        .iter()
        .flat_map(|p| messages(&p.hits))
        .collect();
    assert_eq!(all.len(), 7, "pages do not overlap");
}

// ---- kept current ----

#[test]
fn a_status_change_replaces_the_conversation_document() {
    let mut s = Script::default();
    s.start(C1, CUSTOMER, 0);
    s.customer_says(C1, m(1), "快递丢了", 1);
    s.hand_to_agent(C1, Q_DELIVERY, ALICE, 2);
    s.close(C1, Some(ALICE), 3);
    s.conv(
        C1,
        ConversationReopened {
            by: Party::Customer,
            at: at(4),
        },
    );
    let mut index = SearchIndex::in_memory().unwrap();

    for event in &s.events {
        index.apply(event).unwrap();
        index.commit().unwrap();
        assert_eq!(
            index.count(DocKind::Conversation).unwrap(),
            1,
            "after {}",
            event.event_type
        );
    }

    let hits = search(
        &index,
        SearchRequest::new("快递").kind(DocKind::Conversation),
    );
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].status,
        Some(ConversationStatus::Bot.into()),
        "reopened: back with the bot"
    );
    assert_eq!((hits[0].queue, hits[0].agent), (None, None));
    assert!(
        search(
            &index,
            SearchRequest::default().status(ConversationStatus::Closed)
        )
        .is_empty()
    );
}

#[test]
fn internal_notes_are_indexed_as_internal_messages_and_stay_out_of_the_conversation_text() {
    let mut s = Script::default();
    s.start(C1, CUSTOMER, 0);
    s.customer_says(C1, m(1), "我要投诉", 1);
    s.hand_to_agent(C1, Q_DELIVERY, ALICE, 2);
    s.conv(
        C1,
        InternalNoteAdded {
            author: BOB,
            text: "客户情绪激动，优先处理".into(),
            at: at(3),
        },
    );
    let index = index_of(&s.events);

    let hits = search(&index, SearchRequest::new("情绪激动"));
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].kind, DocKind::Message);
    assert!(hits[0].internal);
    assert_eq!(hits[0].message, None);
    assert_eq!(hits[0].agent, Some(BOB));
    // Found by the conversation's agent at the time and by its author.
    for agent in [ALICE, BOB] {
        assert_eq!(
            search(&index, SearchRequest::new("情绪").agent(agent)).len(),
            1
        );
    }
}

#[test]
fn ticket_subject_description_and_comments_are_searchable_and_kept_current() {
    let ticket = TicketId::from_uuid(id(0x71));
    let mut s = Script::default();
    s.ticket(
        ticket,
        TicketOpened {
            ticket,
            customer: CUSTOMER,
            source: TicketSource::Conversation { conversation: C1 },
            kind: TicketKind::Refund,
            priority: TicketPriority::Normal,
            subject: "退款未到账".into(),
            description: "客户说七天前申请的退款还没有收到".into(),
            order: None,
            at: at(1),
        },
    );
    s.ticket(
        ticket,
        TicketFieldChanged {
            change: FieldChange::Assignee {
                before: None,
                after: Some(ALICE),
            },
            by: Party::System,
            at: at(2),
        },
    );
    s.ticket(
        ticket,
        TicketStatusChanged {
            from: TicketStatus::New,
            to: TicketStatus::Open,
            by: Party::System,
            at: at(2),
        },
    );
    s.ticket(
        ticket,
        TicketCommented {
            author: Party::Agent { agent: ALICE },
            body: "已联系财务 Finance team, 预计明天到账".into(),
            public: false,
            at: at(3),
        },
    );
    let index = index_of(&s.events);

    for query in ["退款", "申请", "finance", "财务"] {
        let hits = search(&index, SearchRequest::new(query).kind(DocKind::Ticket));
        assert_eq!(hits.len(), 1, "query {query:?}");
        assert_eq!(hits[0].ticket, Some(ticket));
        assert_eq!(hits[0].conversation, Some(C1));
    }
    assert_eq!(index.count(DocKind::Ticket).unwrap(), 1);
    // 退款 is in the subject and the description once each: the subject is shown.
    let hits = search(&index, SearchRequest::new("退款").kind(DocKind::Ticket));
    assert_eq!(hits[0].snippet.to_html(), "<b>退款</b>未到账");
    let open_for_alice = search(
        &index,
        SearchRequest::new("到账")
            .status(TicketStatus::Open)
            .agent(ALICE),
    );
    assert_eq!(open_for_alice.len(), 1);
    assert_eq!(open_for_alice[0].status, Some(TicketStatus::Open.into()));
    assert!(search(&index, SearchRequest::new("到账").status(TicketStatus::New)).is_empty());
    // A ticket status does not filter conversations or messages.
    assert!(
        search(
            &index,
            SearchRequest::new("到账")
                .kind(DocKind::Message)
                .status(TicketStatus::Open)
        )
        .is_empty()
    );
}

#[test]
fn knowledge_entries_are_found_by_paraphrase_follow_edits_and_go_when_retired() {
    let entry = KnowledgeEntryId::from_uuid(id(0x51));
    let other = KnowledgeEntryId::from_uuid(id(0x52));
    let mut s = Script::default();
    s.knowledge(
        entry,
        KnowledgeEntryCreated {
            entry,
            question: "怎么申请退货".into(),
            paraphrases: vec![
                "东西不想要了能退吗".into(),
                "How do I return an item".into(),
            ],
            answer: "在订单详情页点击申请售后".into(),
            category: Category::new("after-sales"),
            locale: Locale::new("zh-CN"),
            at: at(0),
        },
    );
    s.knowledge(
        other,
        KnowledgeEntryCreated {
            entry: other,
            question: "发票怎么开".into(),
            paraphrases: vec![],
            answer: "在订单详情页申请电子发票".into(),
            category: Category::new("invoice"),
            locale: Locale::new("zh-CN"),
            at: at(0),
        },
    );
    let mut index = index_of(&s.events);
    let entries = |index: &SearchIndex, query: &str| -> Vec<KnowledgeEntryId> {
        search(index, SearchRequest::new(query).kind(DocKind::Knowledge))
            .iter()
            .filter_map(|h| h.entry)
            .collect()
    };

    assert_eq!(entries(&index, "不想要了"), vec![entry]);
    assert_eq!(entries(&index, "RETURN"), vec![entry]);

    let edited = s.knowledge(
        entry,
        KnowledgeEntryEdited {
            revision: 2,
            question: None,
            paraphrases: None,
            answer: Some("七天无理由退货，在我的订单里点退换货".into()),
            category: None,
            locale: None,
            at: at(5),
        },
    );
    apply_all(&mut index, &[edited]);
    assert_eq!(entries(&index, "无理由"), vec![entry]);
    assert!(entries(&index, "售后").is_empty(), "the old answer is gone");

    let retired = s.knowledge(
        entry,
        KnowledgeEntryRetired {
            reason: "merged into the returns guide".into(),
            at: at(6),
        },
    );
    apply_all(&mut index, &[retired]);
    assert!(entries(&index, "退货").is_empty());
    assert!(
        search(&index, SearchRequest::default().kind(DocKind::Knowledge))
            .iter()
            .all(|h| h.entry == Some(other))
    );
    assert_eq!(index.count(DocKind::Knowledge).unwrap(), 1);

    // Replaying the whole stream does not bring the retired entry back.
    apply_all(&mut index, &s.events);
    assert!(entries(&index, "退货").is_empty());
    assert_eq!(index.count(DocKind::Knowledge).unwrap(), 1);
}

// ---- masking ----

#[test]
fn phone_numbers_and_e_mail_addresses_never_reach_the_index() {
    let mut s = Script::default();
    s.start(C1, CUSTOMER, 0);
    s.customer_says(
        C1,
        m(1),
        "快递员联系不上我，我的电话是 138-1234-5678，邮箱 zhang.san@example.com",
        1,
    );
    s.customer_says(C1, m(2), "座机 010-87654321 也可以", 2);
    let index = index_of(&s.events);

    for raw in [
        "13812345678",
        "138-1234-5678",
        "138 1234 5678",
        "5678",
        "zhang.san@example.com",
        "zhang.san",
        "example.com",
        "010-87654321",
        "87654321",
    ] {
        let hits = search(&index, SearchRequest::new(raw));
        assert!(hits.is_empty(), "{raw:?} found {hits:?}");
    }

    let hits = search(&index, SearchRequest::new("快递员").kind(DocKind::Message));
    let fragment = &hits[0].snippet.fragment;
    assert!(fragment.contains(PHONE_MASK), "{fragment}");
    assert!(fragment.contains(EMAIL_MASK), "{fragment}");
    assert!(
        !fragment.contains("5678") && !fragment.contains("zhang"),
        "{fragment}"
    );
    let conversation = search(
        &index,
        SearchRequest::new("座机").kind(DocKind::Conversation),
    );
    assert!(!conversation[0].snippet.fragment.contains("87654321"));
}

// ---- checkpoint, reopen and replay ----

#[test]
fn the_checkpoint_survives_a_reopen_and_uncommitted_work_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let events = two_conversations().events;
    let (first, rest) = events.split_at(8);
    let mut index = SearchIndex::open(dir.path()).unwrap();
    assert_eq!(index.checkpoint(), None);
    assert_eq!(index.resume_from(), Position::START);

    apply_all(&mut index, first);
    let committed = first.last().unwrap().position;
    assert_eq!(index.checkpoint(), Some(committed));
    let messages_committed = index.count(DocKind::Message).unwrap();
    for event in rest {
        index.apply(event).unwrap();
    }
    drop(index); // a crash: no commit

    let mut index = SearchIndex::open(dir.path()).unwrap();
    assert_eq!(index.checkpoint(), Some(committed));
    assert_eq!(index.resume_from(), committed.next());
    // What an operator's `kefu projections list` reads, from another process's reader.
    assert_eq!(
        SearchIndex::open_reader(dir.path())
            .unwrap()
            .committed()
            .unwrap(),
        Some(kefu_projections::search::CommitPayload {
            format: kefu_projections::search::FORMAT,
            position: Some(committed),
        })
    );
    assert_eq!(index.count(DocKind::Message).unwrap(), messages_committed);
    assert_eq!(index.count(DocKind::Conversation).unwrap(), 1);
    assert!(search(&index, SearchRequest::new("退款")).is_empty());

    // Resuming where the checkpoint says gives the same index as one uninterrupted run.
    let resumed: Vec<_> = events
        .iter()
        .filter(|e| e.position >= index.resume_from())
        .cloned()
        .collect();
    apply_all(&mut index, &resumed);
    let whole = index_of(&events);
    for kind in DocKind::ALL {
        assert_eq!(
            index.count(kind).unwrap(),
            whole.count(kind).unwrap(),
            "{kind:?}"
        );
    }
    assert_eq!(index.checkpoint(), Some(events.last().unwrap().position));
    // The conversation state read back from disk gave the later messages their queue.
    let bobs = search(
        &index,
        SearchRequest::new("处理").agent(BOB).queue(Q_REFUND),
    );
    assert_eq!(messages(&bobs), vec![m(12)]);
}

#[test]
fn replaying_events_already_indexed_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = two_conversations();
    let ticket = TicketId::from_uuid(id(0x72));
    s.ticket(
        ticket,
        TicketOpened {
            ticket,
            customer: CUSTOMER,
            source: TicketSource::Agent { agent: ALICE },
            kind: TicketKind::Delivery,
            priority: TicketPriority::High,
            subject: "快递丢件".into(),
            description: "包裹显示已签收但客户没收到".into(),
            order: None,
            at: at(20),
        },
    );
    s.ticket(
        ticket,
        TicketCommented {
            author: Party::Agent { agent: ALICE },
            body: "已联系快递站点".into(),
            public: true,
            at: at(21),
        },
    );
    let events = s.events;
    let counts = |index: &SearchIndex| -> Vec<u64> {
        DocKind::ALL
            .iter()
            .map(|k| index.count(*k).unwrap())
            .collect()
    };
    /// What a search shows of a hit, score aside.
    type Shown = (Option<MessageId>, Option<AgentId>, Option<QueueId>, String);
    let snapshot = |index: &SearchIndex| -> Vec<Shown> {
        search(index, SearchRequest::new("快递").page(MAX_LIMIT, 0))
            .into_iter()
            .map(|h| (h.message, h.agent, h.queue, h.snippet.fragment))
            .collect()
    };
    let mut index = SearchIndex::open(dir.path()).unwrap();
    apply_all(&mut index, &events);
    let before = (counts(&index), snapshot(&index));
    assert_eq!(before.0, vec![7, 2, 1, 0]);

    // Within one batch, and again after a reopen (state read back from disk).
    apply_all(&mut index, &events);
    assert_eq!((counts(&index), snapshot(&index)), before);
    drop(index);
    let mut index = SearchIndex::open(dir.path()).unwrap();
    apply_all(&mut index, &events[3..]);
    assert_eq!((counts(&index), snapshot(&index)), before);
    let ticket_hits = search(&index, SearchRequest::new("站点").kind(DocKind::Ticket));
    assert_eq!(ticket_hits.len(), 1);
    assert_eq!(
        ticket_hits[0].snippet.matches().count(),
        1,
        "the comment is in the ticket once: {:?}",
        ticket_hits[0].snippet
    );
    assert_eq!(index.checkpoint(), Some(events.last().unwrap().position));
}

#[test]
fn events_of_other_streams_only_move_the_checkpoint() {
    let mut s = Script::default();
    let customer = s.record(
        format!("customer-{}", id(0xcc)),
        "CustomerRegistered",
        1,
        json!({"anything": "customers are not indexed"}),
    );
    let mut index = index_of(std::slice::from_ref(&customer));
    assert_eq!(index.checkpoint(), Some(customer.position));
    assert!(DocKind::ALL.iter().all(|k| index.count(*k).unwrap() == 0));
    assert_eq!(index.commit().unwrap(), Some(customer.position));
}

// ---- errors ----

#[test]
fn an_event_that_does_not_decode_stops_the_projection_naming_stream_and_version() {
    let mut s = Script::default();
    s.start(C1, CUSTOMER, 0);
    let bad = s.record(
        format!("conversation-{C1}"),
        "CustomerTurnRecorded",
        1,
        json!({"text": "我的快递到哪了"}),
    );
    let mut index = SearchIndex::in_memory().unwrap();
    index.apply(&s.events[0]).unwrap();

    let error = index.apply(&bad).unwrap_err();

    assert!(
        matches!(error, SearchError::Decode { version: 1, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&format!("conversation-{C1}")), "{message}");
    assert!(message.contains("event 1"), "{message}");
    assert!(
        message.contains("message"),
        "names the missing field: {message}"
    );
    assert_eq!(index.commit().unwrap(), Some(s.events[0].position));
}

#[test]
fn an_event_about_a_conversation_the_index_never_saw_is_an_error() {
    let mut s = Script::default();
    s.start(C1, CUSTOMER, 0);
    s.customer_says(C1, m(1), "你好", 1);
    let mut index = SearchIndex::in_memory().unwrap();

    let error = index.apply(&s.events[1]).unwrap_err();

    assert!(
        matches!(error, SearchError::UnknownEntity { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("rebuild"), "{error}");
}

#[test]
fn bad_requests_are_refused_and_say_what_is_wrong() {
    let index = index_of(&two_conversations().events);
    let refused = |request: SearchRequest| index.search(&request).unwrap_err();

    assert!(matches!(
        refused(SearchRequest::new("")),
        SearchError::EmptyQuery
    ));
    assert!(matches!(
        refused(SearchRequest::new(" ，。!? ")),
        SearchError::EmptyQuery
    ));
    let too_many = refused(SearchRequest::new("快递").page(MAX_LIMIT + 1, 0));
    assert!(matches!(
        too_many,
        SearchError::BadLimit {
            limit: 101,
            max: 100
        }
    ));
    assert!(too_many.to_string().contains("101"), "{too_many}");
    assert!(matches!(
        refused(SearchRequest::new("快递").page(0, 0)),
        SearchError::BadLimit { .. }
    ));
    assert!(matches!(
        refused(SearchRequest::new("快递").page(10, 1_000_000)),
        SearchError::BadOffset { .. }
    ));
    assert!(matches!(
        refused(SearchRequest::new("快".repeat(501))),
        SearchError::QueryTooLong { chars: 501, .. }
    ));
    let backwards = refused(SearchRequest::new("快递").between(at(5), at(1)));
    assert!(matches!(backwards, SearchError::BadDateRange { .. }));
    assert!(backwards.to_string().contains("after"), "{backwards}");
    // Punctuation with a filter lists, like empty text with a filter.
    assert!(!search(&index, SearchRequest::new("？").queue(Q_REFUND)).is_empty());
}

#[test]
fn an_index_with_another_schema_is_refused_with_a_rebuild_hint() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut schema = tantivy::schema::Schema::builder();
        schema.add_text_field("something_else", tantivy::schema::TEXT);
        tantivy::Index::create_in_dir(dir.path(), schema.build()).unwrap();
    }

    let error = SearchIndex::open(dir.path()).unwrap_err();

    assert!(
        matches!(error, SearchError::Incompatible { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("rebuild"), "{error}");

    let mut index = SearchIndex::recreate(dir.path()).unwrap();
    assert_eq!(index.checkpoint(), None);
    apply_all(&mut index, &two_conversations().events);
    drop(index);
    assert!(
        SearchIndex::open(dir.path())
            .unwrap()
            .checkpoint()
            .is_some()
    );
}

#[test]
fn recreate_refuses_a_directory_that_is_not_an_index() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not an index").unwrap();

    let error = SearchIndex::recreate(dir.path()).unwrap_err();

    assert!(matches!(error, SearchError::NotAnIndex { .. }), "{error:?}");
    assert!(dir.path().join("notes.txt").exists());
}

#[test]
fn rollback_discards_what_was_applied_since_the_last_commit() {
    let events = two_conversations().events;
    let mut index = index_of(&events[..4]);
    for event in &events[4..] {
        index.apply(event).unwrap();
    }

    index.rollback().unwrap();
    index.commit().unwrap();

    assert_eq!(index.checkpoint(), Some(events[3].position));
    assert_eq!(index.count(DocKind::Conversation).unwrap(), 1);
    apply_all(&mut index, &events[4..]);
    assert_eq!(index.count(DocKind::Conversation).unwrap(), 2);
}

#[test]
fn a_reader_handle_sees_each_commit_from_another_thread() {
    let mut s = Script::default();
    s.start(C1, CUSTOMER, 0);
    s.customer_says(C1, m(1), "发票怎么开", 1);
    let mut index = SearchIndex::in_memory().unwrap();
    let reader = index.reader();
    let found = |reader: &kefu_projections::search::SearchReader| {
        std::thread::scope(|scope| {
            scope
                .spawn(|| reader.search(&SearchRequest::new("发票")).unwrap().total)
                .join()
                .unwrap()
        })
    };

    for event in &s.events {
        index.apply(event).unwrap();
    }
    assert_eq!(found(&reader), 0, "nothing committed yet");
    index.commit().unwrap();
    assert_eq!(found(&reader), 2, "the message and its conversation");
}

#[test]
fn a_scope_filters_inside_the_query_so_totals_and_pages_count_only_what_it_lets_through() {
    let index = index_of(&two_conversations().events);
    let within = |queues: Vec<QueueId>, agents: Vec<AgentId>| {
        SearchRequest::new("快递").scope(SearchScope::Within {
            queues,
            waiting_only: false,
            agents,
            ticket_assignees: Vec::new(),
        })
    };
    // The delivery queue's: m3, m4, m5 and C1. C2 is the refund queue's; m1, m2 and m11 were
    // written before a queue had them.
    let delivery = index
        .search(&within(vec![Q_DELIVERY], vec![]).page(100, 0))
        .unwrap();
    assert_eq!(delivery.total, 4, "{delivery:?}");
    assert!(delivery.hits.iter().all(|h| h.queue == Some(Q_DELIVERY)));
    let first = index
        .search(&within(vec![Q_DELIVERY], vec![]).page(1, 0))
        .unwrap();
    assert_eq!((first.total, first.hits.len()), (4, 1));
    // Bob's: m5, which he wrote, and C1 and C2, which he holds.
    let bobs = index
        .search(&within(vec![], vec![BOB]).page(100, 0))
        .unwrap();
    assert_eq!(bobs.total, 3, "{bobs:?}");
    // An empty scope finds the knowledge base only (none here), and says so in the total.
    let nothing = index.search(&within(vec![], vec![])).unwrap();
    assert_eq!((nothing.total, nothing.hits.len()), (0, 0));
    // Without a scope, everything: six messages and two conversations.
    assert_eq!(index.search(&SearchRequest::new("快递")).unwrap().total, 8);
}

/// Cursors page on where offsets stop (10,000): every hit once, in order (relevance, newest
/// first, then document id), though 40 documents at a time tie on both score and time, with
/// text and without; the first pages match the offset pages; a cursor from elsewhere is
/// refused by name.
#[test]
fn cursors_page_past_ten_thousand_hits_with_ties_kept_in_order() {
    let mut s = Script::default();
    let per_conversation = 50u128;
    let mut n = 0u128;
    for c in 0..201u128 {
        let conversation = ConversationId::from_uuid(id(0x10_0000 + c));
        s.start(conversation, CUSTOMER, 0);
        for _ in 0..per_conversation {
            n += 1;
            // The same words and, forty at a time, the same minute: ties on score and time.
            s.customer_says(conversation, m(n), "快递在哪", (n / 40) as i64);
        }
    }
    let index = index_of(&s.events);
    let total = n as usize;
    assert!(total > 10_000);
    for text in ["快递", ""] {
        let request = || SearchRequest::new(text).kind(DocKind::Message).page(100, 0);
        let mut seen: Vec<(DateTime<Utc>, MessageId)> = Vec::new();
        let mut after: Option<SearchCursor> = None;
        loop {
            let mut r = request();
            r.after = after.clone();
            let page = index.search(&r).unwrap();
            assert_eq!(page.total, total);
            seen.extend(page.hits.iter().map(|h| (h.time, h.message.unwrap())));
            let Some(last) = page.hits.last() else { break };
            if !page.more {
                break;
            }
            after = Some(SearchCursor::decode(&last.cursor).unwrap());
        }
        assert_eq!(seen.len(), total, "{text:?}: every hit once");
        let distinct: BTreeSet<_> = seen.iter().map(|(_, m)| *m).collect();
        assert_eq!(distinct.len(), total, "{text:?}: no hit twice");
        assert!(
            seen.windows(2).all(|w| w[0].0 > w[1].0
                || (w[0].0 == w[1].0 && w[0].1.to_string() < w[1].1.to_string())),
            "{text:?}: newest first, ties by id"
        );
        // Where offsets still reach, they give the same pages.
        let by_offset = index.search(&request().page(100, 300)).unwrap();
        let by_cursor: Vec<MessageId> = seen[300..400].iter().map(|(_, m)| *m).collect();
        assert_eq!(messages(&by_offset.hits), by_cursor, "{text:?}");
    }

    let mut r = SearchRequest::new("快递");
    r.after = Some(SearchCursor::decode("3f800000.1.message:x").unwrap());
    r.offset = 20;
    assert!(matches!(
        index.search(&r),
        Err(SearchError::CursorAndOffset)
    ));
    let err = SearchCursor::decode("not-a-cursor")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not-a-cursor"), "{err}");
}
