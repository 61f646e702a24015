//! `decide` dispatches each command to its rule (`rules.rs`); `evolve` folds the events.

use super::rules::*;
use super::*;

pub struct ConversationDecider;

impl Decider for ConversationDecider {
    type Id = ConversationId;
    type State = ConversationState;
    type Command = ConversationCommand;
    type Event = ConversationEvent;

    fn initial_state() -> ConversationState {
        ConversationState::NotStarted
    }

    fn decide(
        state: &ConversationState,
        command: ConversationCommand,
    ) -> Result<Vec<ConversationEvent>, DomainError> {
        use ConversationCommand as C;
        if let C::Start {
            conversation,
            customer,
            channel,
            order,
            bot_enabled,
            at,
        } = command
        {
            return start(
                state,
                conversation,
                &customer,
                channel,
                order,
                bot_enabled,
                at,
            );
        }
        let ConversationState::Started(conv) = state else {
            return Err(DomainError::NotCreated {
                kind: "conversation",
            });
        };
        match command {
            C::Start { .. } => Ok(vec![]),
            C::RecordCustomerTurn { message, text, at } => {
                if already_recorded(conv, message, &Speaker::Customer)? {
                    return Ok(vec![]);
                }
                require_open(conv)?;
                require_text("text", &text, MAX_TEXT_CHARS)?;
                Ok(vec![CustomerTurnRecorded { message, text, at }.into()])
            }
            C::RecordBotTurn {
                message,
                text,
                answer,
                candidates,
                at,
            } => bot_turn(conv, message, text, answer, candidates, at),
            C::AssessEmotion {
                message,
                score,
                label,
                model_version,
                at,
            } => assess_emotion(conv, message, score, label, model_version, at),
            C::SuggestAnswers {
                message,
                suggestions,
                confidence,
                model_version,
                at,
            } => suggest_answers(conv, message, suggestions, confidence, model_version, at),
            C::PredictScenario {
                candidates,
                model_version,
                features,
                at,
            } => predict_scenario(conv, candidates, model_version, features, at),
            C::SettleScenario { actual, at } => settle_scenario(conv, actual, at),
            C::Route {
                queue,
                reasons,
                model_version,
                features,
                at,
            } => route(conv, &queue, reasons, model_version, features, at),
            C::HandOff { reason, at } => hand_off(conv, reason, at),
            C::Enqueue { queue, at } => {
                require_open(conv)?;
                match conv.handling {
                    Handling::AwaitingHuman { .. } => {}
                    _ => return Err(conv.wrong_phase("join a queue")),
                }
                let queue = queue.require_active()?;
                let routed = conv.routing.as_ref().map(|r| r.queue);
                if routed != Some(queue.id) {
                    return Err(DomainError::NotRoutedToQueue {
                        conversation: conv.id,
                        queue: queue.id,
                        routed,
                    });
                }
                conv.check_business_line(queue)?;
                Ok(vec![conv.queued_event(queue, at)?])
            }
            C::AssignAgent { agent, at } => {
                require_open(conv)?;
                let Handling::Queued {
                    queue,
                    skills,
                    since,
                } = &conv.handling
                else {
                    return Err(conv.wrong_phase("be assigned to an agent"));
                };
                let agent = agent.require_registered()?;
                check_agent_fits(conv, agent, skills)?;
                Ok(vec![
                    AgentAssigned {
                        agent: agent.id,
                        queue: *queue,
                        waited_secs: (at - *since).num_seconds().max(0),
                        at,
                    }
                    .into(),
                ])
            }
            C::RecordAgentTurn {
                agent,
                message,
                text,
                at,
            } => {
                if already_recorded(conv, message, &Speaker::Agent { agent })? {
                    return Ok(vec![]);
                }
                require_open(conv)?;
                require_assigned(conv, agent)?;
                require_text("text", &text, MAX_TEXT_CHARS)?;
                Ok(vec![
                    AgentTurnRecorded {
                        agent,
                        message,
                        text,
                        first_response: conv.first_agent_response_at.is_none(),
                        at,
                    }
                    .into(),
                ])
            }
            C::Transfer {
                from_agent,
                to,
                reason,
                at,
            } => transfer(conv, from_agent, &to, reason, at),
            C::AddInternalNote { author, text, at } => {
                // Notes are allowed after close: agents annotate finished chats for QA.
                let author = author.require_registered()?;
                require_text("text", &text, MAX_TEXT_CHARS)?;
                Ok(vec![
                    InternalNoteAdded {
                        author: author.id,
                        text,
                        at,
                    }
                    .into(),
                ])
            }
            C::TimeOutIdle {
                idle_after_secs,
                at,
            } => {
                require_open(conv)?;
                if idle_after_secs < MIN_IDLE_TIMEOUT_SECS {
                    return Err(DomainError::invalid(
                        "idle_after_secs",
                        format!("must be at least {MIN_IDLE_TIMEOUT_SECS}"),
                    ));
                }
                let idle_secs = (at - conv.last_activity_at).num_seconds();
                if idle_secs < i64::from(idle_after_secs) {
                    return Err(DomainError::NotIdle {
                        idle_secs,
                        required_secs: idle_after_secs,
                    });
                }
                Ok(vec![
                    ConversationIdleTimedOut {
                        last_activity_at: conv.last_activity_at,
                        at,
                    }
                    .into(),
                    ConversationClosed {
                        by: Party::System,
                        reason: CloseReason::IdleTimeout,
                        released_agent: conv.handling.agent(),
                        at,
                    }
                    .into(),
                ])
            }
            C::Close { by, reason, at } => close(conv, by, reason, at),
            C::Reopen { by, at } => {
                let Some(closure) = &conv.closed else {
                    return Err(DomainError::ConversationNotClosed {
                        conversation: conv.id,
                    });
                };
                if by == Party::Bot {
                    return Err(DomainError::invalid(
                        "by",
                        "the bot does not reopen conversations",
                    ));
                }
                if at - closure.at > Duration::hours(REOPEN_WINDOW_HOURS) {
                    return Err(DomainError::ReopenWindowExpired {
                        closed_at: closure.at,
                        window_hours: REOPEN_WINDOW_HOURS,
                    });
                }
                let mut events: Vec<ConversationEvent> =
                    vec![ConversationReopened { by, at }.into()];
                if !conv.bot_enabled {
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
            C::OfferSurvey { at } => {
                if !conv.is_closed() {
                    return Err(DomainError::ConversationNotClosed {
                        conversation: conv.id,
                    });
                }
                match conv.survey {
                    // A probe is the desk asking itself: nobody to survey, nothing to count.
                    Survey::NotOffered if conv.channel == Channel::Probe => Ok(vec![]),
                    Survey::NotOffered => Ok(vec![SurveyOffered { at }.into()]),
                    // The offer stands: asking again (an agent after the survey worker, or a
                    // resent request) is a harmless retry, not a conflict.
                    Survey::Offered { .. } => Ok(vec![]),
                    Survey::Answered { .. } => Err(DomainError::SurveyAlreadyAnswered {
                        conversation: conv.id,
                    }),
                }
            }
            C::RemindSurvey { after_secs, at } => remind_survey(conv, after_secs, at),
            C::WarnSla { kind, fraction, at } => warn_sla(conv, kind, fraction, at),
            C::BreachSla { kind, at } => breach_sla(conv, kind, at),
            C::AnswerSurvey { score, comment, at } => {
                match conv.survey {
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
                    Survey::Offered { .. } => {}
                }
                if !(1..=5).contains(&score) {
                    return Err(DomainError::ScoreOutOfRange { score });
                }
                let comment = comment.filter(|c| !c.trim().is_empty());
                if let Some(c) = &comment {
                    require_text("comment", c, MAX_TEXT_CHARS)?;
                }
                Ok(vec![
                    SurveyAnswered {
                        score,
                        comment,
                        legacy_score_0_to_10: None,
                        at,
                    }
                    .into(),
                ])
            }
            C::AttributeOrder {
                customer,
                order,
                amount,
                placed_at,
                at,
            } => {
                if customer != conv.customer {
                    return Err(DomainError::CustomerMismatch {
                        expected: conv.customer,
                        actual: customer,
                    });
                }
                require_code("order", order.as_str())?;
                require_money("amount", &amount)?;
                let window_end = conv
                    .closed
                    .as_ref()
                    .map(|c| c.at + Duration::hours(ATTRIBUTION_WINDOW_HOURS));
                if placed_at < conv.started_at || window_end.is_some_and(|end| placed_at > end) {
                    return Err(DomainError::OutsideAttributionWindow { placed_at });
                }
                // The order worker may see the same order twice; count it once.
                if conv.attributed_orders.contains_key(&order) {
                    return Ok(vec![]);
                }
                Ok(vec![
                    OrderAttributed {
                        order,
                        amount,
                        placed_at,
                        at,
                    }
                    .into(),
                ])
            }
        }
    }

    fn evolve(state: ConversationState, event: &ConversationEvent) -> ConversationState {
        use ConversationEvent as E;
        let mut conv = match (state, event) {
            (ConversationState::NotStarted, E::ConversationStarted(e)) => {
                return ConversationState::Started(Box::new(Conversation {
                    id: e.conversation,
                    customer: e.customer,
                    tier: e.tier,
                    locale: e.locale.clone(),
                    channel: e.channel,
                    order: e.order.clone(),
                    bot_enabled: e.bot_enabled,
                    started_at: e.at,
                    handling: Handling::Bot,
                    closed: None,
                    turns: Vec::new(),
                    last_emotion: None,
                    emotion_trend: None,
                    scenario: None,
                    routing: None,
                    first_agent_response_at: None,
                    last_activity_at: e.at,
                    notes: 0,
                    reopened: 0,
                    survey: Survey::NotOffered,
                    attributed_orders: BTreeMap::new(),
                    sla: None,
                }));
            }
            (ConversationState::Started(conv), _) => conv,
            (state, _) => return state,
        };
        match event {
            E::ConversationStarted(_) => {}
            E::CustomerTurnRecorded(e) => {
                conv.turns.push(Turn {
                    message: e.message,
                    speaker: Speaker::Customer,
                    at: e.at,
                    emotion: None,
                    confidence: None,
                });
                conv.last_activity_at = e.at;
            }
            E::BotTurnRecorded(e) => {
                conv.turns.push(Turn {
                    message: e.message,
                    speaker: Speaker::Bot,
                    at: e.at,
                    emotion: None,
                    confidence: Some(e.answer.as_ref().map_or(0.0, |a| a.confidence)),
                });
                conv.last_activity_at = e.at;
            }
            E::EmotionAssessed(e) => {
                let emotion = Emotion {
                    score: e.score,
                    label: e.label,
                };
                if let Some(turn) = conv.turns.iter_mut().find(|t| t.message == e.message) {
                    turn.emotion = Some(emotion);
                }
                conv.last_emotion = Some(emotion);
                conv.emotion_trend = Some(e.trend);
            }
            // Shown to the agent only: nothing the rules read, and no activity in the chat.
            E::AnswersSuggested(_) => {}
            E::ScenarioPredicted(e) => {
                conv.scenario = Some(ScenarioPrediction {
                    candidates: e.candidates.clone(),
                    model_version: e.model_version.clone(),
                    settled: None,
                });
            }
            E::ScenarioConfirmed(e) => {
                if let Some(s) = conv.scenario.as_mut() {
                    s.settled = Some(e.scenario.clone());
                }
            }
            E::ScenarioCorrected(e) => {
                if let Some(s) = conv.scenario.as_mut() {
                    s.settled = Some(e.actual.clone());
                }
            }
            E::RoutingDecided(e) => {
                conv.routing = Some(RoutingDecision {
                    queue: e.queue,
                    reasons: e.reasons.clone(),
                    model_version: e.model_version.clone(),
                    at: e.at,
                });
            }
            E::HandedToHuman(e) => conv.handling = Handling::AwaitingHuman { reason: e.reason },
            E::ConversationQueued(e) => {
                conv.handling = Handling::Queued {
                    queue: e.queue,
                    skills: e.skills.clone(),
                    since: e.at,
                };
                conv.sla = Some(SlaClock {
                    queue: e.queue,
                    priority: e.priority,
                    queued_at: e.at,
                    first_response_due: e.first_response_due,
                    resolution_due: e.resolution_due,
                    responded: false,
                    warned: BTreeSet::new(),
                    breached: BTreeSet::new(),
                });
            }
            E::AgentAssigned(e) => {
                let skills = match &conv.handling {
                    Handling::Queued { skills, .. } => skills.clone(),
                    _ => BTreeSet::new(),
                };
                conv.handling = Handling::WithAgent {
                    agent: e.agent,
                    queue: e.queue,
                    skills,
                };
                conv.last_activity_at = e.at;
            }
            E::AgentTurnRecorded(e) => {
                conv.turns.push(Turn {
                    message: e.message,
                    speaker: Speaker::Agent { agent: e.agent },
                    at: e.at,
                    emotion: None,
                    confidence: None,
                });
                conv.first_agent_response_at.get_or_insert(e.at);
                conv.last_activity_at = e.at;
                if let Some(clock) = conv.sla.as_mut() {
                    clock.responded = true;
                }
            }
            E::ConversationTransferred(e) => {
                // A transfer to a queue is followed by `ConversationQueued`, which moves the
                // handling; only an agent-to-agent transfer changes it here.
                if let (
                    TransferredTo::Agent { agent },
                    Handling::WithAgent { agent: current, .. },
                ) = (&e.to, &mut conv.handling)
                {
                    *current = *agent;
                }
            }
            E::InternalNoteAdded(_) => conv.notes += 1,
            E::ConversationIdleTimedOut(_) => {}
            E::ConversationClosed(e) => {
                conv.closed = Some(Closure {
                    by: e.by.clone(),
                    reason: e.reason,
                    at: e.at,
                });
            }
            E::ConversationReopened(e) => {
                conv.closed = None;
                conv.handling = Handling::Bot;
                conv.routing = None;
                conv.sla = None;
                conv.reopened += 1;
                conv.last_activity_at = e.at;
            }
            E::SurveyOffered(e) => {
                conv.survey = Survey::Offered {
                    at: e.at,
                    reminded: false,
                }
            }
            E::SurveyReminded(_) => {
                if let Survey::Offered { reminded, .. } = &mut conv.survey {
                    *reminded = true;
                }
            }
            E::SlaWarned(e) => {
                if let Some(clock) = conv.sla.as_mut() {
                    clock.warned.insert(e.kind);
                }
            }
            E::SlaBreached(e) => {
                if let Some(clock) = conv.sla.as_mut() {
                    clock.breached.insert(e.kind);
                }
            }
            E::ConversationEscalated(e) => {
                if let Some(clock) = conv.sla.as_mut() {
                    clock.priority = e.to_priority;
                }
            }
            E::SurveyAnswered(e) => {
                conv.survey = Survey::Answered {
                    score: e.score,
                    at: e.at,
                }
            }
            E::OrderAttributed(e) => {
                conv.attributed_orders
                    .insert(e.order.clone(), e.amount.clone());
            }
        }
        ConversationState::Started(conv)
    }
}
