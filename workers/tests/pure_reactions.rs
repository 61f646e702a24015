//! The workers' reactions as pure functions, given/when/then: given a conversation (folded
//! from commands the domain accepts) and what the worker knows, when an event arrives, then
//! the intents it returns. No store, no clock.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use kefu_bot::emotion::{self, Mood};
use kefu_bot::faq::{Entry, Faq, Thresholds};
use kefu_domain::common::{Channel, Party};
use kefu_domain::conversation::{
    CloseReason, Conversation, ConversationCommand as C, ConversationDecider, ConversationEvent,
    ConversationState, EmotionLabel, HandoffReason, MAX_SUGGESTIONS, RoutingReason,
};
use kefu_domain::customer::{Customer, CustomerSnapshot, CustomerTier};
use kefu_domain::ids::QueueId;
use kefu_domain::ids::{ConversationId, CustomerId, KnowledgeEntryId, Locale, MessageId};
use kefu_domain::knowledge::{KnowledgeDecider, KnowledgeEntry, KnowledgeState};
use kefu_domain::switches::{Switch, SwitchBoard};
use kefu_domain::{Decider, Event, fold};
use kefu_projections::queues::QueueRow;
use kefu_workers::bot::{Knowledge, Recall, answer, reply_id};
use kefu_workers::router::{self, OrderSource, Seen};
use kefu_workers::shell::{Given, Intent};
use uuid::Uuid;

const CONVERSATION: ConversationId = ConversationId::from_uuid(Uuid::from_u128(0xc0));
const CUSTOMER: CustomerId = CustomerId::from_uuid(Uuid::from_u128(0xcafe));

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

fn msg(n: u128) -> MessageId {
    MessageId::from_uuid(Uuid::from_u128(0x1000 + n))
}

/// A conversation's stream, built from commands the domain must accept.
struct Stream {
    events: Vec<ConversationEvent>,
}

impl Stream {
    fn with_bot(bot_enabled: bool) -> Self {
        Stream { events: vec![] }.then(C::Start {
            conversation: CONVERSATION,
            customer: CustomerSnapshot::Known(Customer {
                id: CUSTOMER,
                tier: CustomerTier::Regular,
                locale: Locale::from("zh-CN"),
                orders: BTreeMap::new(),
            }),
            channel: Channel::App,
            order: None,
            bot_enabled,
            at: t(0),
        })
    }

    fn then(mut self, command: C) -> Self {
        let state = fold::<ConversationDecider>(&self.events);
        let events = ConversationDecider::decide(&state, command)
            .unwrap_or_else(|e| panic!("a given step was refused: {e}"));
        self.events.extend(events);
        self
    }

    fn says(self, n: u128, text: &str) -> Self {
        self.then(C::RecordCustomerTurn {
            message: msg(n),
            text: text.into(),
            at: t(n as i64),
        })
    }

    /// The turn's emotion as an earlier model judged it.
    fn judged(self, n: u128, score: f64, label: EmotionLabel) -> Self {
        self.then(C::AssessEmotion {
            message: msg(n),
            score,
            label,
            model_version: "an-older-model".into(),
            at: t(n as i64),
        })
    }

    fn conversation(&self) -> Box<Conversation> {
        match fold::<ConversationDecider>(&self.events) {
            ConversationState::Started(c) => c,
            ConversationState::NotStarted => panic!("not started"),
        }
    }

    /// The bot's answer to turn `n` (which must be in the stream), with no knowledge base.
    fn answer(&self, n: u128, board: &SwitchBoard) -> Vec<C> {
        self.answer_from(n, board, None, &BTreeMap::new())
    }

    /// The bot's answer to turn `n` from a knowledge base.
    fn answer_from(
        &self,
        n: u128,
        board: &SwitchBoard,
        faq: Option<&Faq>,
        kb: &BTreeMap<KnowledgeEntryId, KnowledgeEntry>,
    ) -> Vec<C> {
        self.answer_recalling(n, board, faq, kb, None)
    }

    /// The same, with what the model ranked before at hand.
    fn answer_recalling(
        &self,
        n: u128,
        board: &SwitchBoard,
        faq: Option<&Faq>,
        kb: &BTreeMap<KnowledgeEntryId, KnowledgeEntry>,
        recall: Option<&Recall>,
    ) -> Vec<C> {
        let turn = self
            .events
            .iter()
            .find_map(|e| match e {
                ConversationEvent::CustomerTurnRecorded(turn) if turn.message == msg(n) => {
                    Some(turn.clone())
                }
                _ => None,
            })
            .expect("the turn is in the stream");
        let conversation = self.conversation();
        let knows = Knowledge {
            board,
            faq,
            kb,
            recall,
        };
        let given = Given {
            conversation: &conversation,
            now: t(30),
        };
        let intents = answer(&knows, &given, &turn);
        assert!(intents.len() <= 1, "one decision per turn: {intents:?}");
        intents.into_iter().flat_map(commands).collect()
    }

    /// The stream's events, as the feed hands them to a worker.
    fn event(&self, at: usize) -> Event {
        Event::Conversation(self.events[at].clone())
    }

    fn given<R>(&self, then: impl FnOnce(&Given<'_>) -> R) -> R {
        let conversation = self.conversation();
        then(&Given {
            conversation: &conversation,
            now: t(30),
        })
    }
}

fn commands(intent: Intent) -> Vec<C> {
    match intent {
        Intent::Conversation(commands) => commands,
        other => panic!("not commands on the conversation: {other:?}"),
    }
}

fn on() -> SwitchBoard {
    SwitchBoard::default()
}

fn off(switch: Switch) -> SwitchBoard {
    SwitchBoard {
        off: [switch].into(),
    }
}

fn names(commands: &[C]) -> Vec<&'static str> {
    commands
        .iter()
        .map(|c| match c {
            C::AssessEmotion { .. } => "AssessEmotion",
            C::RecordBotTurn { .. } => "RecordBotTurn",
            C::HandOff { .. } => "HandOff",
            _ => "other",
        })
        .collect()
}

/// The demo knowledge base as the log would hold it, and the bot's model over it.
fn demo_kb() -> (Faq, BTreeMap<KnowledgeEntryId, KnowledgeEntry>) {
    let kb: BTreeMap<KnowledgeEntryId, KnowledgeEntry> = kefu_bot::kb::parse(kefu_bot::kb::DEMO_KB)
        .expect("the demo KB parses")
        .iter()
        .map(|e| {
            let created = KnowledgeDecider::decide(
                &KnowledgeDecider::initial_state(),
                e.create_command(t(0)),
            )
            .expect("a demo entry is valid");
            match fold::<KnowledgeDecider>(&created) {
                KnowledgeState::Active(entry) => (entry.id, entry),
                other => panic!("a created entry is active: {other:?}"),
            }
        })
        .collect();
    let entries = kb.values().map(Entry::from).collect();
    let faq = Faq::new(entries, None, Thresholds::default()).expect("the demo KB's model");
    (faq, kb)
}

fn handoff(commands: &[C]) -> Option<HandoffReason> {
    commands.iter().find_map(|c| match c {
        C::HandOff { reason, .. } => Some(*reason),
        _ => None,
    })
}

const ANNOYED: &str = "the parcel is late!!!";

/// The premise of the mood tests: the model finds `ANNOYED` angry, but not so angry that one
/// turn alone hands over.
fn annoyed_but_not_furious() {
    let a = emotion::assess(ANNOYED);
    assert!(
        a.mood == Mood::Angry && a.polarity > emotion::STRONG_ANGER,
        "the tests' premise no longer holds: {a:?}"
    );
}

#[test]
fn a_turn_is_answered_with_its_assessment_reply_and_hand_off_in_one_decision() {
    let given = Stream::with_bot(true).says(1, "how do I change my address?");
    let commands = given.answer(1, &on());
    // No knowledge base: the bot says a human is coming, and hands over.
    assert_eq!(
        names(&commands),
        ["AssessEmotion", "RecordBotTurn", "HandOff"]
    );
    match &commands[1] {
        C::RecordBotTurn { message, at, .. } => {
            assert_eq!(*message, reply_id(msg(1)), "the reply id is the turn's");
            assert_eq!(*at, t(30), "the shell's clock");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(handoff(&commands), Some(HandoffReason::LowConfidence));
    // The domain takes the decision whole.
    let state = fold::<ConversationDecider>(&given.events);
    kefu_domain::decide_all::<ConversationDecider>(&state, commands).expect("accepted");
}

#[test]
fn the_mood_history_is_the_one_the_stream_recorded() {
    annoyed_but_not_furious();
    // The same words before; what differs is how they were judged then.
    let judged_calm = Stream::with_bot(true)
        .says(1, ANNOYED)
        .judged(1, 0.0, EmotionLabel::Neutral)
        .says(2, ANNOYED);
    assert_eq!(
        handoff(&judged_calm.answer(2, &on())),
        Some(HandoffReason::LowConfidence),
        "one angry turn after a calm one is no sustained anger"
    );
    let judged_angry = Stream::with_bot(true)
        .says(1, ANNOYED)
        .judged(1, -0.6, EmotionLabel::Angry)
        .says(2, ANNOYED);
    assert_eq!(
        handoff(&judged_angry.answer(2, &on())),
        Some(HandoffReason::NegativeEmotion),
        "two angry turns in a row"
    );
}

#[test]
fn a_turn_assessed_already_is_not_assessed_again() {
    let given = Stream::with_bot(true)
        .says(1, "how do I change my address?")
        .judged(1, 0.0, EmotionLabel::Neutral);
    assert_eq!(names(&given.answer(1, &on())), ["RecordBotTurn", "HandOff"]);
}

#[test]
fn a_turn_the_bot_may_not_answer_is_still_assessed() {
    let without_bot = Stream::with_bot(false).says(1, ANNOYED);
    assert_eq!(names(&without_bot.answer(1, &on())), ["AssessEmotion"]);
    let handed_over = Stream::with_bot(true)
        .says(1, "hello")
        .then(C::HandOff {
            reason: HandoffReason::CustomerAsked,
            at: t(1),
        })
        .says(2, ANNOYED);
    assert_eq!(names(&handed_over.answer(2, &on())), ["AssessEmotion"]);
    // Nothing to say and nothing to assess: no intent at all.
    assert!(handed_over.answer(2, &off(Switch::Emotion)).is_empty());
}

#[test]
fn once_a_human_has_the_chat_the_bot_suggests_its_answers_to_them() {
    let (faq, kb) = demo_kb();
    let handed_over = Stream::with_bot(true)
        .says(1, "hello")
        .then(C::HandOff {
            reason: HandoffReason::CustomerAsked,
            at: t(1),
        })
        .says(2, "怎么开发票？");
    let commands = handed_over.answer_from(2, &on(), Some(&faq), &kb);
    let [
        C::AssessEmotion { .. },
        C::SuggestAnswers {
            message,
            suggestions,
            confidence,
            ..
        },
    ] = commands.as_slice()
    else {
        panic!("assessed and suggested, nothing said to the customer: {commands:?}");
    };
    assert_eq!(*message, msg(2));
    assert!((1..=MAX_SUGGESTIONS).contains(&suggestions.len()));
    assert!((0.0..=1.0).contains(confidence));
    let first = suggestions[0].entry.require_active().unwrap();
    assert!(first.question.contains("发票"), "{}", first.question);
    // The same conversation accepts them: one decision the domain takes.
    let state = fold::<ConversationDecider>(&handed_over.events);
    ConversationDecider::decide(&state, commands[1].clone()).expect("the domain takes them");
    // While the bot has the chat it answers the customer instead.
    let with_bot = Stream::with_bot(true).says(1, "怎么开发票？");
    assert!(
        !with_bot
            .answer_from(1, &on(), Some(&faq), &kb)
            .iter()
            .any(|c| matches!(c, C::SuggestAnswers { .. }))
    );
    // The bot switched off suggests nothing either.
    assert!(
        !handed_over
            .answer_from(2, &off(Switch::Bot), Some(&faq), &kb)
            .iter()
            .any(|c| matches!(c, C::SuggestAnswers { .. }))
    );
}

#[test]
fn a_customer_asking_for_a_person_is_told_one_is_coming_and_handed_over() {
    let given = Stream::with_bot(true).says(1, "转人工");
    let commands = given.answer(1, &on());
    assert_eq!(
        names(&commands),
        ["AssessEmotion", "RecordBotTurn", "HandOff"]
    );
    assert_eq!(handoff(&commands), Some(HandoffReason::CustomerAsked));
}

#[test]
fn the_switches_degrade_the_answer() {
    let given = Stream::with_bot(true).says(1, ANNOYED);
    assert_eq!(
        names(&given.answer(1, &off(Switch::Emotion))),
        ["RecordBotTurn", "HandOff"],
        "emotion off: no assessment"
    );
    let bot_off = given.answer(1, &off(Switch::Bot));
    assert_eq!(names(&bot_off), ["HandOff"]);
    assert_eq!(handoff(&bot_off), Some(HandoffReason::BotSwitchedOff));
}

// ---- the router ----

fn queue_row(n: u128, line: &str, skills: &[&str]) -> QueueRow {
    QueueRow {
        id: Uuid::from_u128(n).to_string(),
        name: format!("q{n}"),
        business_line: line.into(),
        categories: "[]".into(),
        skills: serde_json::to_string(skills).unwrap(),
        priority: 3,
        first_response_secs: 60,
        resolution_secs: 600,
        retired: false,
    }
}

/// What the router's lookup found: no order, and whether the customer asked to complain.
fn seen(complaint: bool) -> Option<Seen> {
    Some(Seen {
        order: None,
        source: OrderSource::NoOrder,
        complaint,
    })
}

#[test]
fn the_router_predicts_at_the_start_and_on_the_first_message_only() {
    let intents = router::intent_model().unwrap();
    let stream = Stream::with_bot(true)
        .says(1, "我的退款到哪了？")
        .says(2, "发票怎么开");
    let react = |at: usize| {
        stream.given(|given| router::react(&intents, &[], given, &stream.event(at), seen(false)))
    };
    for at in [0, 1] {
        let decided: Vec<C> = react(at).into_iter().flat_map(commands).collect();
        match decided.as_slice() {
            [C::PredictScenario { features, at, .. }] => {
                assert_eq!(features["order_gateway"], "no_order");
                assert_eq!(*at, t(30));
            }
            other => panic!("event {at}: {other:?}"),
        }
        let state = fold::<ConversationDecider>(&stream.events);
        kefu_domain::decide_all::<ConversationDecider>(&state, decided).expect("accepted");
    }
    assert!(react(2).is_empty(), "a later message is the conversation");
    assert!(
        stream
            .given(|given| router::react(&intents, &[], given, &stream.event(1), None))
            .is_empty(),
        "nothing looked up (a probe): nothing to do"
    );
}

#[test]
fn a_hand_off_is_routed_to_a_queue_of_its_line_and_a_complaint_says_so() {
    let intents = router::intent_model().unwrap();
    let stream = Stream::with_bot(true).says(1, "我要投诉").then(C::HandOff {
        reason: HandoffReason::CustomerAsked,
        at: t(2),
    });
    let handed = stream.events.len() - 1;
    let queues = [
        queue_row(1, "merchant:m-1", &["complaint"]),
        queue_row(2, "self_operated", &["after-sales"]),
    ];
    let routed = stream
        .given(|given| router::react(&intents, &queues, given, &stream.event(handed), seen(true)));
    match routed.as_slice() {
        [
            Intent::Route {
                queue, reasons, at, ..
            },
        ] => {
            assert_eq!(
                *queue,
                QueueId::from_uuid(Uuid::from_u128(2)),
                "the shop's own line"
            );
            assert!(
                reasons.contains(&RoutingReason::Other {
                    code: "customer_asked_complaint".into()
                }),
                "{reasons:?}"
            );
            assert_eq!(*at, t(30));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        stream
            .given(|given| router::react(&intents, &[], given, &stream.event(handed), seen(true)))
            .is_empty(),
        "no queue serves it: it waits for a supervisor"
    );
}

// ---- the survey offers ----

#[test]
fn a_close_is_answered_with_a_survey_offer_the_domain_takes_once() {
    let closed = Stream::with_bot(true).says(1, "谢谢").then(C::Close {
        by: Party::Customer,
        reason: CloseReason::Resolved,
        at: t(3),
    });
    let offer: Vec<C> = closed
        .given(kefu_workers::surveys::offer)
        .into_iter()
        .flat_map(commands)
        .collect();
    assert!(matches!(offer.as_slice(), [C::OfferSurvey { at }] if *at == t(30)));
    let offered = closed.then(offer[0].clone());
    let again = offered.given(kefu_workers::surveys::offer);
    let state = fold::<ConversationDecider>(&offered.events);
    assert_eq!(
        kefu_domain::decide_all::<ConversationDecider>(
            &state,
            again.into_iter().flat_map(commands)
        ),
        Ok(vec![]),
        "offered once: offering again records nothing"
    );
}

/// A text ranked before is answered from what the model said then, exactly as it would be
/// ranked again; with the ranker switched off nothing is recalled (retrieval order is another
/// answer to the same text).
#[test]
fn a_recalled_ranking_answers_as_a_fresh_one() {
    let (faq, kb) = demo_kb();
    let recall = Recall::default();
    let texts = [
        "退款多久能到账",
        "how long does a refund usually take?",
        "在吗",
        "my parcel never arrived and nobody answers!!!",
    ];
    for (i, text) in texts.iter().enumerate() {
        let n = i as u128 + 1;
        let given = Stream::with_bot(true).says(n, text);
        let fresh = given.answer_from(n, &on(), Some(&faq), &kb);
        let first = given.answer_recalling(n, &on(), Some(&faq), &kb, Some(&recall));
        let again = given.answer_recalling(n, &on(), Some(&faq), &kb, Some(&recall));
        assert_eq!(first, fresh, "{text}");
        assert_eq!(again, fresh, "{text}: recalled");
        let board = off(Switch::Ranker);
        assert_eq!(
            given.answer_recalling(n, &board, Some(&faq), &kb, Some(&recall)),
            given.answer_from(n, &board, Some(&faq), &kb),
            "{text}: ranker off"
        );
    }
    assert_eq!(recall.len(), texts.len());
}
