//! One rule per command: each checks the conversation as it stands and decides the events.

use super::*;

pub(super) fn require_open(conv: &Conversation) -> Result<(), DomainError> {
    if conv.is_closed() {
        Err(DomainError::ConversationClosed {
            conversation: conv.id,
        })
    } else {
        Ok(())
    }
}

pub(super) fn require_assigned(conv: &Conversation, agent: AgentId) -> Result<(), DomainError> {
    if conv.handling.agent() == Some(agent) {
        Ok(())
    } else {
        Err(DomainError::NotAssignedToAgent {
            agent,
            conversation: conv.id,
        })
    }
}

/// Clients resend a message when they miss the acknowledgement; the same message id from the
/// same speaker is the same message. A message id reused by someone else is a client bug.
pub(super) fn already_recorded(
    conv: &Conversation,
    message: MessageId,
    speaker: &Speaker,
) -> Result<bool, DomainError> {
    match conv.turn(message) {
        None => Ok(false),
        Some(turn) if turn.speaker == *speaker => Ok(true),
        Some(_) => Err(DomainError::invalid(
            "message",
            format!("message id {message} was already used by another speaker"),
        )),
    }
}

pub(super) fn check_agent_fits(
    conv: &Conversation,
    agent: &crate::agent::Agent,
    skills: &BTreeSet<Skill>,
) -> Result<(), DomainError> {
    agent.check_can_take(conv.id)?;
    let lacking = missing(skills, &agent.skills);
    if !lacking.is_empty() {
        return Err(DomainError::AgentLacksSkills {
            agent: agent.id,
            missing: lacking.into_iter().map(|s| s.0).collect(),
        });
    }
    Ok(())
}

pub(super) fn start(
    state: &ConversationState,
    conversation: ConversationId,
    customer: &CustomerSnapshot,
    channel: Channel,
    order: Option<OrderId>,
    bot_enabled: bool,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    if let ConversationState::Started(c) = state {
        return Err(DomainError::AlreadyExists {
            kind: "conversation",
            id: c.id.to_string(),
        });
    }
    let customer = customer.require_known()?;
    let order = match order {
        None => None,
        Some(id) => {
            let known = customer
                .orders
                .get(&id)
                .ok_or(DomainError::UnknownOrder { order: id })?;
            Some(OrderContext {
                order: known.order.clone(),
                seller: known.seller.clone(),
                category: known.category.clone(),
                status: known.status,
            })
        }
    };
    let mut events: Vec<ConversationEvent> = vec![
        ConversationStarted {
            conversation,
            customer: customer.id,
            tier: customer.tier,
            locale: customer.locale.clone(),
            channel,
            order,
            bot_enabled,
            at,
        }
        .into(),
    ];
    if !bot_enabled {
        events.push(
            HandedToHuman {
                reason: HandoffReason::BotSwitchedOff,
                at,
            }
            .into(),
        );
    }
    Ok(events)
}

pub(super) fn bot_turn(
    conv: &Conversation,
    message: MessageId,
    text: String,
    answer: Option<BotAnswerInput>,
    candidates: Vec<AnswerCandidate>,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    if already_recorded(conv, message, &Speaker::Bot)? {
        return Ok(vec![]);
    }
    conv.takes_bot_replies()?;
    require_text("text", &text, MAX_TEXT_CHARS)?;
    if candidates.len() > MAX_CANDIDATES {
        return Err(DomainError::invalid(
            "candidates",
            format!("at most {MAX_CANDIDATES}"),
        ));
    }
    let mut seen = BTreeSet::new();
    for c in &candidates {
        require_unit_interval("candidates.score", c.score)?;
        if !seen.insert(c.entry) {
            return Err(DomainError::invalid(
                "candidates",
                format!("entry {} is listed twice", c.entry),
            ));
        }
    }
    let answer = match answer {
        None => None,
        Some(input) => {
            let entry = input.entry.require_active()?;
            require_unit_interval("answer.confidence", input.confidence)?;
            if !candidates.is_empty() && !seen.contains(&entry.id) {
                return Err(DomainError::invalid(
                    "answer",
                    "the answer must be one of the candidates the bot considered",
                ));
            }
            Some(BotAnswer {
                entry: entry.id,
                revision: entry.revision,
                confidence: input.confidence,
            })
        }
    };
    Ok(vec![
        BotTurnRecorded {
            message,
            text,
            answer,
            candidates,
            at,
        }
        .into(),
    ])
}

pub(super) fn suggest_answers(
    conv: &Conversation,
    message: MessageId,
    suggestions: Vec<SuggestionInput>,
    confidence: f64,
    model_version: String,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    conv.takes_suggestions()?;
    conv.turn(message)
        .filter(|t| t.speaker == Speaker::Customer)
        .ok_or(DomainError::UnknownTurn { message })?;
    if suggestions.is_empty() || suggestions.len() > MAX_SUGGESTIONS {
        return Err(DomainError::invalid(
            "suggestions",
            format!("{} given; from 1 to {MAX_SUGGESTIONS}", suggestions.len()),
        ));
    }
    require_unit_interval("confidence", confidence)?;
    require_code("model_version", &model_version)?;
    let mut seen = BTreeSet::new();
    let mut suggested = Vec::with_capacity(suggestions.len());
    for s in suggestions {
        let entry = s.entry.require_active()?;
        require_unit_interval("suggestions.score", s.score)?;
        if !seen.insert(entry.id) {
            return Err(DomainError::invalid(
                "suggestions",
                format!("entry {} is listed twice", entry.id),
            ));
        }
        suggested.push(SuggestedAnswer {
            entry: entry.id,
            revision: entry.revision,
            question: entry.question.clone(),
            answer: entry.answer.clone(),
            score: s.score,
        });
    }
    Ok(vec![
        AnswersSuggested {
            message,
            suggestions: suggested,
            confidence,
            model_version,
            at,
        }
        .into(),
    ])
}

pub(super) fn assess_emotion(
    conv: &Conversation,
    message: MessageId,
    score: f64,
    label: EmotionLabel,
    model_version: String,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    // Assessment runs asynchronously and may land after close; it describes a turn that
    // happened while the conversation was open, so it is accepted.
    let turn = conv
        .turn(message)
        .filter(|t| t.speaker == Speaker::Customer)
        .ok_or(DomainError::UnknownTurn { message })?;
    if turn.emotion.is_some() {
        return Err(DomainError::TurnAlreadyAssessed { message });
    }
    if !(-1.0..=1.0).contains(&score) {
        return Err(DomainError::invalid(
            "score",
            format!("{score} is not between -1 and 1"),
        ));
    }
    require_code("model_version", &model_version)?;
    let trend = match conv.last_emotion {
        Some(previous) if score - previous.score > EMOTION_TREND_THRESHOLD => {
            EmotionTrend::Improving
        }
        Some(previous) if previous.score - score > EMOTION_TREND_THRESHOLD => {
            EmotionTrend::Worsening
        }
        _ => EmotionTrend::Steady,
    };
    Ok(vec![
        EmotionAssessed {
            message,
            score,
            label,
            trend,
            model_version,
            at,
        }
        .into(),
    ])
}

pub(super) fn predict_scenario(
    conv: &Conversation,
    mut candidates: Vec<ScenarioCandidate>,
    model_version: String,
    features: Features,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    require_features(&features)?;
    require_open(conv)?;
    // A settled scenario is ground truth for the match rate; predicting again would blur it.
    if conv.scenario.as_ref().is_some_and(|s| s.settled.is_some()) {
        return Err(DomainError::ScenarioAlreadySettled);
    }
    if candidates.is_empty() || candidates.len() > MAX_SCENARIOS {
        return Err(DomainError::invalid(
            "candidates",
            format!("a prediction has 1 to {MAX_SCENARIOS} candidates"),
        ));
    }
    require_code("model_version", &model_version)?;
    let mut seen = BTreeSet::new();
    let mut total = 0.0;
    for c in &candidates {
        require_code("candidates.scenario", c.scenario.as_str())?;
        require_unit_interval("candidates.probability", c.probability)?;
        if !seen.insert(&c.scenario) {
            return Err(DomainError::invalid(
                "candidates",
                format!("scenario {} is listed twice", c.scenario),
            ));
        }
        total += c.probability;
    }
    if total > 1.0 + 1e-6 {
        return Err(DomainError::invalid(
            "candidates",
            format!("probabilities add up to {total}, more than 1"),
        ));
    }
    candidates.sort_by(|a, b| {
        b.probability
            .total_cmp(&a.probability)
            .then_with(|| a.scenario.cmp(&b.scenario))
    });
    Ok(vec![
        ScenarioPredicted {
            candidates,
            model_version,
            features,
            at,
        }
        .into(),
    ])
}

pub(super) fn settle_scenario(
    conv: &Conversation,
    actual: ScenarioCode,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    require_open(conv)?;
    let prediction = conv
        .scenario
        .as_ref()
        .ok_or(DomainError::ScenarioNotPredicted)?;
    if prediction.settled.is_some() {
        return Err(DomainError::ScenarioAlreadySettled);
    }
    require_code("actual", actual.as_str())?;
    let Some(top) = prediction.candidates.first() else {
        return Err(DomainError::ScenarioNotPredicted);
    };
    if top.scenario == actual {
        return Ok(vec![
            ScenarioConfirmed {
                scenario: actual,
                at,
            }
            .into(),
        ]);
    }
    Ok(vec![
        ScenarioCorrected {
            predicted: top.scenario.clone(),
            actual_was_candidate: prediction.candidates.iter().any(|c| c.scenario == actual),
            actual,
            at,
        }
        .into(),
    ])
}

pub(super) fn route(
    conv: &Conversation,
    queue: &QueueSnapshot,
    reasons: Vec<RoutingReason>,
    model_version: String,
    features: Features,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    require_features(&features)?;
    require_open(conv)?;
    if !matches!(
        conv.handling,
        Handling::Bot | Handling::AwaitingHuman { .. }
    ) {
        return Err(conv.wrong_phase("be routed (transfer it instead)"));
    }
    let queue = queue.require_active()?;
    conv.check_business_line(queue)?;
    if reasons.is_empty() || reasons.len() > 10 {
        return Err(DomainError::invalid(
            "reasons",
            "a routing decision gives 1 to 10 reasons",
        ));
    }
    for reason in &reasons {
        if let RoutingReason::Other { code } = reason {
            require_code("reasons.code", code)?;
        }
    }
    require_code("model_version", &model_version)?;
    Ok(vec![
        RoutingDecided {
            queue: queue.id,
            reasons,
            model_version,
            features,
            at,
        }
        .into(),
    ])
}

pub(super) fn hand_off(
    conv: &Conversation,
    reason: HandoffReason,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    require_open(conv)?;
    if conv.handling != Handling::Bot {
        return Err(conv.wrong_phase("be handed to a human"));
    }
    let unjustified = |why| Err(DomainError::HandoffNotJustified { reason, why });
    match reason {
        HandoffReason::Vip if conv.tier != CustomerTier::Vip => {
            return unjustified("the customer is not VIP");
        }
        HandoffReason::NegativeEmotion
            if !conv.last_emotion.is_some_and(|e| e.label.is_negative()) =>
        {
            return unjustified("the latest emotion assessment is not negative");
        }
        HandoffReason::LowConfidence if !conv.turns.iter().any(|t| t.speaker == Speaker::Bot) => {
            return unjustified("the bot has not answered yet");
        }
        _ => {}
    }
    Ok(vec![HandedToHuman { reason, at }.into()])
}

pub(super) fn transfer(
    conv: &Conversation,
    from_agent: AgentId,
    to: &TransferTarget,
    reason: String,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    require_open(conv)?;
    require_assigned(conv, from_agent)?;
    require_text("reason", &reason, MAX_LABEL_CHARS)?;
    match to {
        TransferTarget::Agent(agent) => {
            let agent = agent.require_registered()?;
            if agent.id == from_agent {
                return Err(DomainError::invalid(
                    "to",
                    "cannot transfer a conversation to the agent who has it",
                ));
            }
            let Handling::WithAgent { skills, .. } = &conv.handling else {
                return Err(conv.wrong_phase("be transferred"));
            };
            check_agent_fits(conv, agent, skills)?;
            Ok(vec![
                ConversationTransferred {
                    from_agent,
                    to: TransferredTo::Agent { agent: agent.id },
                    reason,
                    at,
                }
                .into(),
            ])
        }
        TransferTarget::Queue(queue) => {
            let queue = queue.require_active()?;
            conv.check_business_line(queue)?;
            let queued = conv.queued_event(queue, at)?;
            Ok(vec![
                ConversationTransferred {
                    from_agent,
                    to: TransferredTo::Queue { queue: queue.id },
                    reason,
                    at,
                }
                .into(),
                queued,
            ])
        }
    }
}

pub(super) fn close(
    conv: &Conversation,
    by: Party,
    reason: CloseReason,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    require_open(conv)?;
    match &by {
        Party::Agent { agent } => require_assigned(conv, *agent)?,
        Party::Bot if conv.handling != Handling::Bot => {
            return Err(conv.wrong_phase("be closed by the bot"));
        }
        _ => {}
    }
    if reason == CloseReason::IdleTimeout {
        return Err(DomainError::invalid(
            "reason",
            "idle timeouts are recorded by the idle-timeout command, which checks the idle time",
        ));
    }
    Ok(vec![
        ConversationClosed {
            by,
            reason,
            released_agent: conv.handling.agent(),
            at,
        }
        .into(),
    ])
}

pub(super) fn remind_survey(
    conv: &Conversation,
    after_secs: u32,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    if after_secs < MIN_SURVEY_REMINDER_SECS {
        return Err(DomainError::invalid(
            "after_secs",
            format!("must be at least {MIN_SURVEY_REMINDER_SECS}"),
        ));
    }
    let offered_at = match conv.survey {
        Survey::NotOffered => {
            return Err(DomainError::SurveyNotOffered {
                conversation: conv.id,
            });
        }
        Survey::Answered { .. } => {
            return Err(DomainError::SurveyAlreadyAnswered {
                conversation: conv.id,
            });
        }
        Survey::Offered { reminded: true, .. } => {
            return Err(DomainError::SurveyAlreadyReminded {
                conversation: conv.id,
            });
        }
        Survey::Offered { at, .. } => at,
    };
    // A reopened conversation is being talked about again; a survey reminder would be out
    // of place until it closes once more.
    if !conv.is_closed() {
        return Err(DomainError::ConversationNotClosed {
            conversation: conv.id,
        });
    }
    let due = offered_at + Duration::seconds(i64::from(after_secs));
    if at < due {
        return Err(DomainError::SurveyReminderNotDue { offered_at, due });
    }
    Ok(vec![SurveyReminded { offered_at, at }.into()])
}

/// The running clock for `kind`, with its due time, or why there is nothing to time.
pub(super) fn running_clock(
    conv: &Conversation,
    kind: SlaKind,
) -> Result<(&SlaClock, DateTime<Utc>), DomainError> {
    let not_running = || DomainError::SlaNotRunning {
        conversation: conv.id,
    };
    let clock = conv.sla.as_ref().ok_or_else(not_running)?;
    let due = clock.due(kind).ok_or_else(not_running)?;
    if conv.is_closed() {
        return Err(DomainError::SlaTargetMet {
            kind,
            how: "the conversation is closed",
        });
    }
    if kind == SlaKind::FirstResponse && clock.responded {
        return Err(DomainError::SlaTargetMet {
            kind,
            how: "an agent has replied since the queueing",
        });
    }
    if clock.breached.contains(&kind) {
        return Err(DomainError::SlaAlreadyBreached { kind });
    }
    Ok((clock, due))
}

pub(super) fn warn_sla(
    conv: &Conversation,
    kind: SlaKind,
    fraction: f64,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    require_warning_fraction(fraction)?;
    let (clock, due) = running_clock(conv, kind)?;
    if clock.warned.contains(&kind) {
        return Err(DomainError::SlaAlreadyWarned { kind });
    }
    let warn_at = warning_time(clock.queued_at, due, fraction);
    if at < warn_at {
        return Err(DomainError::SlaNotDue {
            kind,
            step: "warning",
            due: warn_at,
        });
    }
    Ok(vec![
        SlaWarned {
            kind,
            queue: clock.queue,
            due,
            at,
        }
        .into(),
    ])
}

pub(super) fn breach_sla(
    conv: &Conversation,
    kind: SlaKind,
    at: DateTime<Utc>,
) -> Result<Vec<ConversationEvent>, DomainError> {
    let (clock, due) = running_clock(conv, kind)?;
    if at < due {
        return Err(DomainError::SlaNotDue {
            kind,
            step: "breach",
            due,
        });
    }
    Ok(vec![
        SlaBreached {
            kind,
            queue: clock.queue,
            due,
            at,
        }
        .into(),
        ConversationEscalated {
            kind,
            queue: clock.queue,
            from_priority: clock.priority,
            to_priority: crate::queue::one_step_up(clock.priority),
            at,
        }
        .into(),
    ])
}
