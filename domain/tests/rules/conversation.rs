use chrono::Duration;
use kefu_domain::DomainError as E;
use kefu_domain::agent::{AgentSnapshot, AgentStatus};
use kefu_domain::common::{BusinessLine, Channel, Money, Party};
use kefu_domain::conversation::{
    AnswerCandidate, BotAnswerInput, CloseReason, ConversationCommand as C, ConversationDecider,
    ConversationEvent as Ev, ConversationState, EmotionLabel, EmotionTrend, Handling,
    HandoffReason, RoutingReason, ScenarioCandidate, SlaKind, SuggestionInput, TransferTarget,
    TransferredTo,
};
use kefu_domain::customer::{CustomerSnapshot, CustomerTier};
use kefu_domain::ids::{MessageId, OrderId, QueueId, ScenarioCode};
use kefu_domain::knowledge::KnowledgeEntrySnapshot;
use kefu_domain::queue::{OpeningHours, OpeningWindow, QueueSnapshot, Weekday};

use crate::assert_refused;
use crate::support::*;

type Conv = History<ConversationDecider>;

fn msg(n: u128) -> MessageId {
    MessageId::from(uuid(0x1000 + n))
}

fn start(tier: CustomerTier, order: Option<&str>, bot_enabled: bool) -> C {
    C::Start {
        conversation: CONVERSATION,
        customer: customer(tier),
        channel: Channel::App,
        order: order.map(OrderId::from),
        bot_enabled,
        at: t(0),
    }
}

fn customer_says(n: u128, minute: i64) -> C {
    C::RecordCustomerTurn {
        message: msg(n),
        text: "我的退款到哪了？".into(),
        at: t(minute),
    }
}

fn bot_says(n: u128, answer: Option<KnowledgeEntrySnapshot>) -> C {
    C::RecordBotTurn {
        message: msg(n),
        text: "Refunds take 3 working days.".into(),
        answer: answer.map(|entry| BotAnswerInput {
            entry,
            confidence: 0.42,
        }),
        candidates: vec![AnswerCandidate {
            entry: ENTRY,
            score: 0.42,
        }],
        at: t(1),
    }
}

fn route(queue: QueueSnapshot) -> C {
    C::Route {
        queue,
        reasons: vec![RoutingReason::Fallback],
        model_version: "router-2025.03".into(),
        features: Default::default(),
        at: t(2),
    }
}

fn assign(agent: AgentSnapshot) -> C {
    C::AssignAgent { agent, at: t(3) }
}

fn agent_says(agent: kefu_domain::ids::AgentId, n: u128, minute: i64) -> C {
    C::RecordAgentTurn {
        agent,
        message: msg(n),
        text: "您好，我来帮您查一下。".into(),
        at: t(minute),
    }
}

fn close_by_agent(minute: i64) -> C {
    C::Close {
        by: Party::Agent { agent: AGENT },
        reason: CloseReason::Resolved,
        at: t(minute),
    }
}

fn with_bot() -> Conv {
    Conv::new()
        .given(start(CustomerTier::Regular, Some("JD-1"), true))
        .given(customer_says(1, 0))
}

fn queued() -> Conv {
    with_bot()
        .given(C::HandOff {
            reason: HandoffReason::CustomerAsked,
            at: t(1),
        })
        .given(route(queue()))
        .given(C::Enqueue {
            queue: queue(),
            at: t(2),
        })
}

fn with_agent() -> Conv {
    queued().given(assign(agent(AGENT)))
}

fn closed() -> Conv {
    with_agent().given(close_by_agent(10))
}

fn conversation(history: &Conv) -> Box<kefu_domain::conversation::Conversation> {
    match history.state() {
        ConversationState::Started(c) => c,
        ConversationState::NotStarted => panic!("the conversation was not started"),
    }
}

// ---- starting ----

#[test]
fn start_copies_the_confirmed_order_and_the_customer_tier() {
    let events = Conv::new()
        .when(start(CustomerTier::Vip, Some("POP-1"), true))
        .unwrap();
    let [Ev::ConversationStarted(started)] = events.as_slice() else {
        panic!("expected one ConversationStarted, got {events:?}");
    };
    assert_eq!(started.tier, CustomerTier::Vip);
    let order = started.order.as_ref().expect("the order context");
    assert_eq!(order.seller, merchant_line());
}

#[test]
fn start_with_the_bot_switched_off_hands_over_at_once() {
    let events = Conv::new()
        .when(start(CustomerTier::Regular, None, false))
        .unwrap();
    assert!(matches!(
        events.as_slice(),
        [Ev::ConversationStarted(_), Ev::HandedToHuman(h)] if h.reason == HandoffReason::BotSwitchedOff
    ));
}

#[test]
fn start_refuses_unknown_customers_orders_and_a_second_start() {
    let unknown = C::Start {
        conversation: CONVERSATION,
        customer: CustomerSnapshot::Unknown(CUSTOMER),
        channel: Channel::Web,
        order: None,
        bot_enabled: true,
        at: t(0),
    };
    assert_refused!(Conv::new().when(unknown), E::UnknownCustomer { .. });
    assert_refused!(
        Conv::new().when(start(CustomerTier::Regular, Some("JD-404"), true)),
        E::UnknownOrder { .. }
    );
    assert_refused!(
        with_bot().when(start(CustomerTier::Regular, None, true)),
        E::AlreadyExists { .. }
    );
}

#[test]
fn commands_before_start_are_refused() {
    assert_refused!(Conv::new().when(customer_says(1, 0)), E::NotCreated { .. });
}

// ---- turns ----

#[test]
fn a_closed_conversation_takes_no_turns_until_reopened() {
    let history = closed();
    assert_refused!(
        history.when(customer_says(7, 11)),
        E::ConversationClosed { .. }
    );
    assert_refused!(
        history.when(agent_says(AGENT, 8, 11)),
        E::ConversationClosed { .. }
    );
    let reopened = history.given(C::Reopen {
        by: Party::Customer,
        at: t(20),
    });
    assert_eq!(reopened.when(customer_says(7, 21)).unwrap().len(), 1);
}

#[test]
fn a_resent_message_is_recorded_once_and_a_reused_id_is_refused() {
    let history = with_bot();
    assert_eq!(history.when(customer_says(1, 0)).unwrap(), vec![]);
    assert_refused!(
        history.when(bot_says(1, Some(entry()))),
        E::Validation {
            field: "message",
            ..
        }
    );
}

#[test]
fn only_the_assigned_agent_may_write() {
    let history = with_agent();
    assert_refused!(
        history.when(agent_says(OTHER_AGENT, 5, 4)),
        E::NotAssignedToAgent { .. }
    );
    assert_refused!(
        queued().when(agent_says(AGENT, 5, 4)),
        E::NotAssignedToAgent { .. }
    );
}

#[test]
fn the_first_agent_reply_is_marked_for_the_first_response_sla() {
    let history = with_agent().given(agent_says(AGENT, 5, 4));
    assert!(matches!(
        history.when(agent_says(AGENT, 6, 5)).unwrap().as_slice(),
        [Ev::AgentTurnRecorded(turn)] if !turn.first_response
    ));
    assert_eq!(conversation(&history).first_agent_response_at, Some(t(4)));
}

#[test]
fn the_bot_answers_with_an_active_entry_and_records_its_revision() {
    let events = with_bot().when(bot_says(2, Some(entry()))).unwrap();
    assert!(matches!(
        events.as_slice(),
        [Ev::BotTurnRecorded(turn)] if turn.answer.as_ref().is_some_and(|a| a.revision == 2)
    ));
    assert_refused!(
        with_bot().when(bot_says(2, Some(KnowledgeEntrySnapshot::Retired(ENTRY)))),
        E::KnowledgeEntryRetired { .. }
    );
    assert_refused!(
        with_bot().when(bot_says(2, Some(KnowledgeEntrySnapshot::Unknown(ENTRY)))),
        E::UnknownKnowledgeEntry { .. }
    );
}

#[test]
fn the_bot_answers_only_with_a_candidate_it_considered() {
    let C::RecordBotTurn {
        message,
        text,
        answer,
        at,
        ..
    } = bot_says(2, Some(entry()))
    else {
        unreachable!()
    };
    let other = AnswerCandidate {
        entry: kefu_domain::ids::KnowledgeEntryId::from(uuid(0xee)),
        score: 0.3,
    };
    let command = C::RecordBotTurn {
        message,
        text,
        answer,
        candidates: vec![other],
        at,
    };
    assert_refused!(
        with_bot().when(command),
        E::Validation {
            field: "answer",
            ..
        }
    );
}

#[test]
fn the_bot_stays_quiet_once_a_human_is_on_the_way_or_it_is_switched_off() {
    assert_refused!(queued().when(bot_says(2, None)), E::WrongPhase { .. });
    let switched_off = Conv::new().given(start(CustomerTier::Regular, None, false));
    assert_refused!(
        switched_off.when(bot_says(2, None)),
        E::BotSwitchedOff { .. }
    );
}

// ---- answers suggested to the agent ----

fn suggest(n: u128, entries: Vec<KnowledgeEntrySnapshot>) -> C {
    C::SuggestAnswers {
        message: msg(n),
        suggestions: entries
            .into_iter()
            .map(|entry| SuggestionInput { entry, score: 0.8 })
            .collect(),
        confidence: 0.64,
        model_version: "faq-7".into(),
        at: t(4),
    }
}

#[test]
fn the_bot_suggests_answers_to_the_agent_once_a_human_has_the_chat() {
    // While the bot has the chat it answers the customer itself.
    assert_refused!(
        with_bot().when(suggest(1, vec![entry()])),
        E::WrongPhase { .. }
    );
    let history = with_agent().given(customer_says(2, 4));
    let events = history.when(suggest(2, vec![entry()])).unwrap();
    let [Ev::AnswersSuggested(s)] = events.as_slice() else {
        panic!("one suggestion event: {events:?}");
    };
    assert_eq!(s.message, msg(2));
    assert_eq!(
        (
            s.suggestions[0].entry,
            s.suggestions[0].revision,
            s.confidence
        ),
        (ENTRY, 2, 0.64),
        "the entry's revision as the agent was shown it"
    );
    assert!(!s.suggestions[0].answer.is_empty());
    // Waiting in the queue, the agent-to-be gets them too.
    assert!(queued().when(suggest(1, vec![entry()])).is_ok());
}

#[test]
fn suggestions_name_a_customer_turn_and_active_entries_once_each() {
    let history = with_agent();
    assert_refused!(
        history.when(suggest(99, vec![entry()])),
        E::UnknownTurn { .. }
    );
    assert_refused!(
        history.when(suggest(1, vec![KnowledgeEntrySnapshot::Retired(ENTRY)])),
        E::KnowledgeEntryRetired { .. }
    );
    assert_refused!(
        history.when(suggest(1, vec![entry(), entry()])),
        E::Validation { .. }
    );
    assert_refused!(history.when(suggest(1, vec![])), E::Validation { .. });
    assert_refused!(
        closed().when(suggest(1, vec![entry()])),
        E::ConversationClosed { .. }
    );
}

// ---- emotion and scenario ----

fn assess(n: u128, score: f64, label: EmotionLabel) -> C {
    C::AssessEmotion {
        message: msg(n),
        score,
        label,
        model_version: "emo-7".into(),
        at: t(1),
    }
}

#[test]
fn emotion_is_assessed_once_per_customer_turn_and_gives_the_trend() {
    let history = with_bot()
        .given(assess(1, 0.5, EmotionLabel::Positive))
        .given(customer_says(2, 1));
    assert_refused!(
        history.when(assess(1, 0.1, EmotionLabel::Neutral)),
        E::TurnAlreadyAssessed { .. }
    );
    assert_refused!(
        history.when(assess(99, 0.1, EmotionLabel::Neutral)),
        E::UnknownTurn { .. }
    );
    assert!(matches!(
        history.when(assess(2, -0.6, EmotionLabel::Angry)).unwrap().as_slice(),
        [Ev::EmotionAssessed(e)] if e.trend == EmotionTrend::Worsening
    ));
}

fn predict(candidates: &[(&str, f64)]) -> C {
    C::PredictScenario {
        candidates: candidates
            .iter()
            .map(|(s, p)| ScenarioCandidate {
                scenario: ScenarioCode::from(*s),
                probability: *p,
            })
            .collect(),
        model_version: "triage-3".into(),
        features: Default::default(),
        at: t(1),
    }
}

fn settle(actual: &str) -> C {
    C::SettleScenario {
        actual: ScenarioCode::from(actual),
        at: t(2),
    }
}

#[test]
fn the_customer_confirms_or_corrects_the_predicted_scenario_once() {
    assert_refused!(with_bot().when(settle("refund")), E::ScenarioNotPredicted);
    let predicted = with_bot().given(predict(&[("delivery", 0.2), ("refund", 0.7)]));
    assert!(matches!(
        predicted.when(settle("refund")).unwrap().as_slice(),
        [Ev::ScenarioConfirmed(_)]
    ));
    assert!(matches!(
        predicted.when(settle("delivery")).unwrap().as_slice(),
        [Ev::ScenarioCorrected(c)] if c.actual_was_candidate && c.predicted.as_str() == "refund"
    ));
    let settled = predicted.given(settle("refund"));
    assert_refused!(settled.when(settle("delivery")), E::ScenarioAlreadySettled);
    assert_refused!(
        settled.when(predict(&[("refund", 0.9)])),
        E::ScenarioAlreadySettled
    );
}

#[test]
fn scenario_probabilities_may_not_add_up_to_more_than_one() {
    assert_refused!(
        with_bot().when(predict(&[("refund", 0.8), ("delivery", 0.7)])),
        E::Validation {
            field: "candidates",
            ..
        }
    );
}

// ---- handoff, routing, queueing ----

#[test]
fn a_handoff_reason_must_be_backed_by_the_conversation() {
    let hand_off = |reason| C::HandOff { reason, at: t(1) };
    assert_refused!(
        with_bot().when(hand_off(HandoffReason::Vip)),
        E::HandoffNotJustified { .. }
    );
    assert_refused!(
        with_bot().when(hand_off(HandoffReason::NegativeEmotion)),
        E::HandoffNotJustified { .. }
    );
    assert_refused!(
        with_bot().when(hand_off(HandoffReason::LowConfidence)),
        E::HandoffNotJustified { .. }
    );
    let angry = with_bot().given(assess(1, -0.8, EmotionLabel::Angry));
    assert!(angry.when(hand_off(HandoffReason::NegativeEmotion)).is_ok());
    assert_refused!(
        queued().when(hand_off(HandoffReason::CustomerAsked)),
        E::WrongPhase { .. }
    );
}

#[test]
fn routing_refuses_unknown_retired_and_wrong_business_line_queues() {
    assert_refused!(
        with_bot().when(route(QueueSnapshot::Unknown(QUEUE))),
        E::UnknownQueue { .. }
    );
    assert_refused!(
        with_bot().when(route(QueueSnapshot::Retired(QUEUE))),
        E::QueueRetired { .. }
    );
    let merchant_queue = QueueSnapshot::Active(queue_with(merchant_line(), OpeningHours::Always));
    assert_refused!(
        with_bot().when(route(merchant_queue)),
        E::BusinessLineMismatch { .. }
    );
}

/// Complaints about a merchant's goods, account and payment matters go to the shop's own
/// teams whoever sold the order; a merchant's team never gets another seller's order.
#[test]
fn the_shops_own_queues_take_a_merchants_order_but_not_the_reverse() {
    let merchant_order = Conv::new()
        .given(start(CustomerTier::Regular, Some("POP-1"), true))
        .given(customer_says(1, 0));
    let self_operated =
        QueueSnapshot::Active(queue_with(BusinessLine::SelfOperated, OpeningHours::Always));
    let events = merchant_order.when(route(self_operated)).unwrap();
    assert!(matches!(events[..], [Ev::RoutingDecided(_)]));
    let other_merchant = BusinessLine::Merchant {
        merchant: kefu_domain::ids::MerchantId::from("pop-9"),
    };
    assert_refused!(
        merchant_order.when(route(QueueSnapshot::Active(queue_with(
            other_merchant,
            OpeningHours::Always
        )))),
        E::BusinessLineMismatch { .. }
    );
}

#[test]
fn a_conversation_joins_only_the_queue_it_was_routed_to() {
    let awaiting = with_bot().given(C::HandOff {
        reason: HandoffReason::CustomerAsked,
        at: t(1),
    });
    assert_refused!(
        awaiting.when(C::Enqueue {
            queue: queue(),
            at: t(2)
        }),
        E::NotRoutedToQueue { routed: None, .. }
    );
    let routed = awaiting.given(route(queue()));
    let mut elsewhere = queue_with(BusinessLine::SelfOperated, OpeningHours::Always);
    elsewhere.id = QueueId::from(uuid(0x99));
    assert_refused!(
        routed.when(C::Enqueue {
            queue: QueueSnapshot::Active(elsewhere),
            at: t(2)
        }),
        E::NotRoutedToQueue { .. }
    );
}

#[test]
fn a_queue_outside_its_opening_hours_takes_no_one() {
    // 08:00-09:00 Beijing time on Mondays; t(2) is 17:02 in Beijing.
    let hours = OpeningHours::Weekly {
        utc_offset_minutes: 8 * 60,
        windows: vec![OpeningWindow {
            day: Weekday::Mon,
            opens_minute: 8 * 60,
            closes_minute: 9 * 60,
        }],
    };
    let closed_queue = QueueSnapshot::Active(queue_with(BusinessLine::SelfOperated, hours));
    let routed = with_bot()
        .given(C::HandOff {
            reason: HandoffReason::CustomerAsked,
            at: t(1),
        })
        .given(route(closed_queue.clone()));
    assert_refused!(
        routed.when(C::Enqueue {
            queue: closed_queue,
            at: t(2)
        }),
        E::QueueClosed { .. }
    );
}

#[test]
fn vip_customers_queue_one_priority_step_ahead() {
    let vip = Conv::new()
        .given(start(CustomerTier::Vip, None, true))
        .given(C::HandOff {
            reason: HandoffReason::Vip,
            at: t(1),
        })
        .given(route(queue()));
    let events = vip
        .when(C::Enqueue {
            queue: queue(),
            at: t(2),
        })
        .unwrap();
    assert!(matches!(
        events.as_slice(),
        [Ev::ConversationQueued(q)] if q.priority == 2 && q.first_response_due == t(2) + Duration::seconds(30)
    ));
}

// ---- assignment ----

#[test]
fn assignment_never_goes_to_an_offline_away_full_or_unskilled_agent() {
    let history = queued();
    let with = |status, limit, held: &[_]| {
        AgentSnapshot::Registered(agent_with(AGENT, status, limit, held))
    };
    let others = [uuid(1).into(), uuid(2).into()];
    assert_refused!(
        history.when(assign(with(AgentStatus::Offline, 3, &[]))),
        E::AgentOffline { .. }
    );
    assert_refused!(
        history.when(assign(with(AgentStatus::Away, 3, &[]))),
        E::AgentAway { .. }
    );
    assert_refused!(
        history.when(assign(with(AgentStatus::Online, 2, &others))),
        E::AgentAtCapacity { limit: 2, .. }
    );
    let mut unskilled = agent_with(AGENT, AgentStatus::Online, 3, &[]);
    unskilled.skills = skills(&["presales"]);
    assert_refused!(
        history.when(assign(AgentSnapshot::Registered(unskilled))),
        E::AgentLacksSkills { .. }
    );
    assert_refused!(
        history.when(assign(AgentSnapshot::Retired(AGENT))),
        E::AgentRetired { .. }
    );
    assert_refused!(
        history.when(assign(AgentSnapshot::Unknown(AGENT))),
        E::UnknownAgent { .. }
    );
}

#[test]
fn a_seat_the_agent_stream_already_reserved_counts_as_this_conversation() {
    // The agent's last seat is taken by this very conversation (TakeChat came first).
    let full = agent_with(AGENT, AgentStatus::Online, 1, &[CONVERSATION]);
    let events = queued()
        .when(assign(AgentSnapshot::Registered(full)))
        .unwrap();
    assert!(matches!(events.as_slice(), [Ev::AgentAssigned(a)] if a.waited_secs == 60));
}

#[test]
fn only_a_queued_conversation_is_assigned() {
    assert_refused!(with_bot().when(assign(agent(AGENT))), E::WrongPhase { .. });
    assert_refused!(
        with_agent().when(assign(agent(OTHER_AGENT))),
        E::WrongPhase { .. }
    );
}

// ---- transfer and notes ----

#[test]
fn a_transfer_to_an_agent_follows_the_assignment_rules() {
    let history = with_agent();
    let transfer = |to| C::Transfer {
        from_agent: AGENT,
        to,
        reason: "needs a refund specialist".into(),
        at: t(5),
    };
    let full = agent_with(OTHER_AGENT, AgentStatus::Online, 1, &[uuid(0x5).into()]);
    assert_refused!(
        history.when(transfer(TransferTarget::Agent(AgentSnapshot::Registered(
            full
        )))),
        E::AgentAtCapacity { .. }
    );
    assert_refused!(
        history.when(transfer(TransferTarget::Agent(agent(AGENT)))),
        E::Validation { field: "to", .. }
    );
    let moved = history.given(transfer(TransferTarget::Agent(agent(OTHER_AGENT))));
    assert_eq!(conversation(&moved).handling.agent(), Some(OTHER_AGENT));
    assert_refused!(
        moved.when(agent_says(AGENT, 9, 6)),
        E::NotAssignedToAgent { .. }
    );
}

#[test]
fn a_transfer_to_a_queue_requeues_the_conversation() {
    let events = with_agent()
        .when(C::Transfer {
            from_agent: AGENT,
            to: TransferTarget::Queue(queue()),
            reason: "wrong team".into(),
            at: t(5),
        })
        .unwrap();
    assert!(matches!(
        events.as_slice(),
        [Ev::ConversationTransferred(tr), Ev::ConversationQueued(_)]
            if tr.to == TransferredTo::Queue { queue: QUEUE } && tr.from_agent == AGENT
    ));
    assert_refused!(
        with_agent().when(C::Transfer {
            from_agent: OTHER_AGENT,
            to: TransferTarget::Queue(queue()),
            reason: "wrong team".into(),
            at: t(5),
        }),
        E::NotAssignedToAgent { .. }
    );
}

#[test]
fn internal_notes_need_a_registered_author_and_are_allowed_after_close() {
    let note = |author| C::AddInternalNote {
        author,
        text: "customer was polite; refund approved".into(),
        at: t(30),
    };
    assert!(closed().when(note(agent(AGENT))).is_ok());
    assert_refused!(
        closed().when(note(AgentSnapshot::Unknown(AGENT))),
        E::UnknownAgent { .. }
    );
}

// ---- idle timeout, close, reopen ----

#[test]
fn idle_timeout_needs_real_idleness_and_frees_the_agent() {
    let history = with_agent();
    assert_refused!(
        history.when(C::TimeOutIdle {
            idle_after_secs: 600,
            at: t(5)
        }),
        E::NotIdle { .. }
    );
    assert_refused!(
        history.when(C::TimeOutIdle {
            idle_after_secs: 5,
            at: t(50)
        }),
        E::Validation {
            field: "idle_after_secs",
            ..
        }
    );
    let events = history
        .when(C::TimeOutIdle {
            idle_after_secs: 600,
            at: t(13),
        })
        .unwrap();
    assert!(matches!(
        events.as_slice(),
        [Ev::ConversationIdleTimedOut(_), Ev::ConversationClosed(c)]
            if c.reason == CloseReason::IdleTimeout && c.released_agent == Some(AGENT)
    ));
}

#[test]
fn closing_needs_the_assigned_agent_and_happens_once() {
    assert_refused!(
        with_agent().when(C::Close {
            by: Party::Agent { agent: OTHER_AGENT },
            reason: CloseReason::Resolved,
            at: t(9)
        }),
        E::NotAssignedToAgent { .. }
    );
    assert_refused!(
        with_agent().when(C::Close {
            by: Party::Customer,
            reason: CloseReason::IdleTimeout,
            at: t(9)
        }),
        E::Validation {
            field: "reason",
            ..
        }
    );
    assert_refused!(
        closed().when(close_by_agent(11)),
        E::ConversationClosed { .. }
    );
}

#[test]
fn reopening_needs_a_closed_conversation_within_the_window() {
    assert_refused!(
        with_bot().when(C::Reopen {
            by: Party::Customer,
            at: t(5)
        }),
        E::ConversationNotClosed { .. }
    );
    assert_refused!(
        closed().when(C::Reopen {
            by: Party::Customer,
            at: t(10 + 73 * 60)
        }),
        E::ReopenWindowExpired { .. }
    );
    let reopened = closed().given(C::Reopen {
        by: Party::Customer,
        at: t(20),
    });
    assert_eq!(conversation(&reopened).handling, Handling::Bot);
}

// ---- survey ----

fn answer(score: u8) -> C {
    C::AnswerSurvey {
        score,
        comment: Some("快，态度好".into()),
        at: t(12),
    }
}

#[test]
fn a_survey_is_offered_only_after_close_and_only_once_asking_again_is_harmless() {
    assert_refused!(
        with_agent().when(C::OfferSurvey { at: t(5) }),
        E::ConversationNotClosed { .. }
    );
    let offered = closed().given(C::OfferSurvey { at: t(11) });
    // Asking again finds the offer standing: nothing new is recorded, and nothing refused.
    assert_eq!(offered.when(C::OfferSurvey { at: t(12) }).unwrap(), vec![]);
    let answered = offered.given(answer(5));
    assert_refused!(
        answered.when(C::OfferSurvey { at: t(13) }),
        E::SurveyAlreadyAnswered { .. }
    );
}

#[test]
fn a_probe_conversation_is_never_surveyed() {
    let probe = Conv::new()
        .given(C::Start {
            conversation: CONVERSATION,
            customer: customer(CustomerTier::Regular),
            channel: Channel::Probe,
            order: None,
            bot_enabled: true,
            at: t(0),
        })
        .given(C::Close {
            by: Party::System,
            reason: CloseReason::Resolved,
            at: t(1),
        });
    assert_eq!(probe.when(C::OfferSurvey { at: t(2) }).unwrap(), vec![]);
}

#[test]
fn a_survey_is_answered_once_with_one_to_five_stars() {
    assert_refused!(closed().when(answer(5)), E::SurveyNotOffered { .. });
    let offered = closed().given(C::OfferSurvey { at: t(11) });
    assert_refused!(offered.when(answer(0)), E::ScoreOutOfRange { score: 0 });
    assert_refused!(offered.when(answer(6)), E::ScoreOutOfRange { score: 6 });
    let answered = offered.given(answer(5));
    assert_refused!(answered.when(answer(4)), E::SurveyAlreadyAnswered { .. });
    assert_refused!(
        answered.when(C::OfferSurvey { at: t(13) }),
        E::SurveyAlreadyAnswered { .. }
    );
}

// ---- conversion ----

fn attribute(customer: kefu_domain::ids::CustomerId, placed_minute: i64) -> C {
    C::AttributeOrder {
        customer,
        order: OrderId::from("JD-2"),
        amount: Money::cny(12_900),
        placed_at: t(placed_minute),
        at: t(placed_minute + 1),
    }
}

#[test]
fn an_order_is_attributed_once_within_the_window_to_the_same_customer() {
    let history = closed();
    assert_refused!(
        history.when(attribute(OTHER_CUSTOMER, 30)),
        E::CustomerMismatch { .. }
    );
    assert_refused!(
        history.when(attribute(CUSTOMER, 10 + 25 * 60)),
        E::OutsideAttributionWindow { .. }
    );
    assert_refused!(
        history.when(attribute(CUSTOMER, -5)),
        E::OutsideAttributionWindow { .. }
    );
    let attributed = history.given(attribute(CUSTOMER, 30));
    assert_eq!(attributed.when(attribute(CUSTOMER, 30)).unwrap(), vec![]);
}

#[test]
fn a_prediction_records_its_features_within_limits() {
    let with = |features: kefu_domain::conversation::Features| {
        let mut c = predict(&[("delivery", 0.6)]);
        if let C::PredictScenario { features: f, .. } = &mut c {
            *f = features;
        }
        c
    };
    let seen = kefu_domain::conversation::Features::from([
        ("order_status".to_owned(), serde_json::json!("shipped")),
        ("days_in_status".to_owned(), serde_json::json!(3)),
    ]);
    assert!(matches!(
        with_bot().when(with(seen.clone())).unwrap().as_slice(),
        [Ev::ScenarioPredicted(p)] if p.features == seen
    ));
    let too_many = (0..=kefu_domain::conversation::MAX_FEATURES)
        .map(|i| (format!("f{i}"), serde_json::json!(i)))
        .collect();
    assert_refused!(
        with_bot().when(with(too_many)),
        E::Validation {
            field: "features",
            ..
        }
    );
    let bad_name =
        kefu_domain::conversation::Features::from([("has space".to_owned(), serde_json::json!(1))]);
    assert_refused!(with_bot().when(with(bad_name)), E::Validation { .. });
}

// ---- SLA timers ----

fn secs_after_queueing(secs: i64) -> chrono::DateTime<chrono::Utc> {
    t(2) + Duration::seconds(secs)
}

fn warn(kind: SlaKind, secs: i64) -> C {
    C::WarnSla {
        kind,
        fraction: 0.8,
        at: secs_after_queueing(secs),
    }
}

fn breach(kind: SlaKind, secs: i64) -> C {
    C::BreachSla {
        kind,
        at: secs_after_queueing(secs),
    }
}

#[test]
fn an_sla_warning_is_due_at_its_fraction_of_the_target_and_comes_once() {
    // The queue's first-response target is 30 s: 80 % of it is 24 s.
    let history = queued();
    assert_refused!(
        history.when(warn(SlaKind::FirstResponse, 23)),
        E::SlaNotDue {
            kind: SlaKind::FirstResponse,
            step: "warning",
            ..
        }
    );
    let events = history.when(warn(SlaKind::FirstResponse, 24)).unwrap();
    assert!(matches!(
        events.as_slice(),
        [Ev::SlaWarned(w)] if w.kind == SlaKind::FirstResponse && w.queue == QUEUE
            && w.due == secs_after_queueing(30)
    ));
    let warned = queued().given(warn(SlaKind::FirstResponse, 24));
    assert_refused!(
        warned.when(warn(SlaKind::FirstResponse, 25)),
        E::SlaAlreadyWarned { .. }
    );
    // The resolution target (30 min) warns on its own clock.
    assert_refused!(
        warned.when(warn(SlaKind::Resolution, 25)),
        E::SlaNotDue { .. }
    );
    assert!(warned.when(warn(SlaKind::Resolution, 24 * 60)).is_ok());
    for fraction in [0.0, 1.0, -0.5, f64::NAN] {
        assert_refused!(
            history.when(C::WarnSla {
                kind: SlaKind::FirstResponse,
                fraction,
                at: t(50),
            }),
            E::Validation {
                field: "fraction",
                ..
            }
        );
    }
}

#[test]
fn a_breach_is_due_at_the_target_comes_once_and_escalates_one_step() {
    let history = queued();
    assert_refused!(
        history.when(breach(SlaKind::FirstResponse, 29)),
        E::SlaNotDue { step: "breach", .. }
    );
    let events = history.when(breach(SlaKind::FirstResponse, 30)).unwrap();
    assert!(matches!(
        events.as_slice(),
        [Ev::SlaBreached(b), Ev::ConversationEscalated(x)]
            if b.kind == SlaKind::FirstResponse && x.kind == SlaKind::FirstResponse
                && x.queue == QUEUE && x.from_priority == 3 && x.to_priority == 2
    ));
    let breached = queued().given(breach(SlaKind::FirstResponse, 30));
    assert_refused!(
        breached.when(breach(SlaKind::FirstResponse, 31)),
        E::SlaAlreadyBreached { .. }
    );
    // A warning after the breach is moot.
    assert_refused!(
        breached.when(warn(SlaKind::FirstResponse, 31)),
        E::SlaAlreadyBreached { .. }
    );
    // The resolution breach escalates again, from where the first left it.
    let events = breached.when(breach(SlaKind::Resolution, 1800)).unwrap();
    assert!(matches!(
        events.as_slice(),
        [Ev::SlaBreached(_), Ev::ConversationEscalated(x)]
            if x.from_priority == 2 && x.to_priority == 1
    ));
}

#[test]
fn escalation_never_goes_past_the_top_priority() {
    let mut top = queue_with(BusinessLine::SelfOperated, OpeningHours::Always);
    top.priority = 1;
    let history = with_bot()
        .given(C::HandOff {
            reason: HandoffReason::CustomerAsked,
            at: t(1),
        })
        .given(route(QueueSnapshot::Active(top.clone())))
        .given(C::Enqueue {
            queue: QueueSnapshot::Active(top),
            at: t(2),
        });
    let events = history.when(breach(SlaKind::FirstResponse, 30)).unwrap();
    assert!(matches!(
        events.as_slice(),
        [Ev::SlaBreached(_), Ev::ConversationEscalated(x)]
            if x.from_priority == 1 && x.to_priority == 1
    ));
}

#[test]
fn a_met_target_neither_warns_nor_breaches() {
    // An agent replied in time: the first-response target is met; resolution still runs.
    let replied = with_agent().given(agent_says(AGENT, 7, 2));
    assert_refused!(
        replied.when(warn(SlaKind::FirstResponse, 24)),
        E::SlaTargetMet { .. }
    );
    assert_refused!(
        replied.when(breach(SlaKind::FirstResponse, 31)),
        E::SlaTargetMet { .. }
    );
    assert!(replied.when(breach(SlaKind::Resolution, 1800)).is_ok());
    // Closed: both met (or moot).
    for kind in SlaKind::ALL {
        assert_refused!(closed().when(breach(kind, 3600)), E::SlaTargetMet { .. });
    }
    // Never queued: no clock.
    assert_refused!(
        with_bot().when(breach(SlaKind::FirstResponse, 3600)),
        E::SlaNotRunning { .. }
    );
    // Reopened: the clock stopped with the close, and the bot has the customer again.
    let reopened = closed().given(C::Reopen {
        by: Party::Customer,
        at: t(20),
    });
    assert_refused!(
        reopened.when(breach(SlaKind::Resolution, 3600)),
        E::SlaNotRunning { .. }
    );
}

#[test]
fn a_transfer_to_a_queue_starts_a_new_clock() {
    let history = with_agent()
        .given(breach(SlaKind::FirstResponse, 30))
        .given(agent_says(AGENT, 7, 4))
        .given(C::Transfer {
            from_agent: AGENT,
            to: TransferTarget::Queue(queue()),
            reason: "wrong team".into(),
            at: t(5),
        });
    let clock = conversation(&history).sla.unwrap();
    assert_eq!(clock.queued_at, t(5));
    assert!(!clock.responded && clock.breached.is_empty() && clock.warned.is_empty());
    // The new queue's agents owe a reply of their own, warned of and breached once more.
    assert!(
        history
            .when(C::BreachSla {
                kind: SlaKind::FirstResponse,
                at: t(5) + Duration::seconds(30),
            })
            .is_ok()
    );
    // Its priority is the queue's again (3), not the escalated one.
    assert_eq!(clock.priority, 3);
}

// ---- survey reminder ----

fn remind(minute: i64) -> C {
    C::RemindSurvey {
        after_secs: 3600,
        at: t(minute),
    }
}

#[test]
fn a_survey_reminder_comes_once_after_the_delay_and_not_after_an_answer_or_a_reopen() {
    assert_refused!(closed().when(remind(200)), E::SurveyNotOffered { .. });
    let offered = || closed().given(C::OfferSurvey { at: t(11) });
    assert_refused!(offered().when(remind(70)), E::SurveyReminderNotDue { .. });
    assert_refused!(
        offered().when(C::RemindSurvey {
            after_secs: 5,
            at: t(200),
        }),
        E::Validation {
            field: "after_secs",
            ..
        }
    );
    let events = offered().when(remind(71)).unwrap();
    assert!(matches!(
        events.as_slice(),
        [Ev::SurveyReminded(r)] if r.offered_at == t(11) && r.at == t(71)
    ));
    let reminded = offered().given(remind(71));
    assert_refused!(reminded.when(remind(80)), E::SurveyAlreadyReminded { .. });
    // The reminder does not stop the answer.
    assert!(reminded.when(answer(4)).is_ok());
    assert_refused!(
        offered().given(answer(4)).when(remind(80)),
        E::SurveyAlreadyAnswered { .. }
    );
    assert_refused!(
        offered()
            .given(C::Reopen {
                by: Party::Customer,
                at: t(20),
            })
            .when(remind(80)),
        E::ConversationNotClosed { .. }
    );
}
