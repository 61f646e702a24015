//! The bot worker: answers customer turns with the JIMI bot (`kefu-bot`), and hands the
//! conversation to a human when its confidence, the customer's mood or the customer asks.
//!
//! For each `CustomerTurnRecorded` of a conversation still with the bot it records, in order:
//! the turn's emotion (`AssessEmotion`), the bot's reply (`RecordBotTurn`: an answer, the top
//! three to choose from, or a word that a human is coming) and, when needed, the hand-off
//! (`HandOff`: low confidence or anger). A typed request for a person or to complain ("转人工",
//! "I want a human", "我要投诉": `kefu_bot::transfer`) skips the FAQ: the reply says a person
//! is coming and the hand-off's reason is `customer_asked` (the router then sends a complaint
//! to the complaints team). The reply's message id is derived from the
//! customer's (`reply_id`), so reacting twice to one turn records one reply: a second
//! instance, or a replay after a crash, finds it recorded.
//!
//! The knowledge base the bot answers from is folded from the log's `KnowledgeEntry*` events:
//! read from the beginning at start, then kept current as they arrive; a server whose log has
//! none seeds the demo knowledge base ([`seed_demo_kb`]).

use std::collections::BTreeMap;

use kefu_bot::emotion::{self, Assessment};
use kefu_bot::faq::{Decision, Entry, Faq, FaqAnswer, Thresholds};
use kefu_bot::kb;
use kefu_bot::transfer::{self, Request};
use kefu_domain::conversation::{
    AnswerCandidate, BotAnswerInput, ConversationCommand as C, ConversationDecider,
    ConversationEvent, CustomerTurnRecorded, HandoffReason,
};
use kefu_domain::ids::{ConversationId, KnowledgeEntryId, MessageId};
use kefu_domain::knowledge::{KnowledgeDecider, KnowledgeEntry, KnowledgeState};
use kefu_domain::switches::Switch;
use kefu_domain::{Decider, DomainError, Event};
use kefu_eventlog::{
    Actor, ActorKind, EventLog, Metadata, Position, RecordedEvent, StreamId, read_whole_stream,
};
use uuid::Uuid;

use crate::command::CommandError;
use crate::desk::Desk;
use crate::runtime::{Reactor, WorkerError};

pub const NAME: &str = "bot";

/// Mixed into a customer message id to make the bot's reply id (see the module docs).
const REPLY_MASK: u128 = 0x6b65_6675_626f_7472_6570_6c79_0000_0001;

/// The id of the bot's reply to `customer`'s message: a version 8 (custom) UUID, so it can
/// never equal a client's UUIDv7.
pub fn reply_id(customer: MessageId) -> MessageId {
    let bits = customer.as_uuid().as_u128() ^ REPLY_MASK;
    MessageId::from_uuid(
        uuid::Builder::from_u128(bits)
            .with_version(uuid::Version::Custom)
            .with_variant(uuid::Variant::RFC4122)
            .into_uuid(),
    )
}

pub struct BotWorker<L> {
    desk: Desk<L>,
    actor: Actor,
    thresholds: Thresholds,
    /// The active entries, by id.
    kb: BTreeMap<KnowledgeEntryId, KnowledgeEntry>,
    /// Built from `kb` when first needed after a change.
    faq: Option<Faq>,
    /// Labelled customer questions (text, the answering entry's external id) the confidence
    /// is fitted on whenever `faq` is built; empty: the ranker's own fit on paraphrases.
    calibration: Vec<(String, String)>,
}

impl<L: EventLog> BotWorker<L> {
    /// Reads the knowledge base from the log; also returns where that read ended, for a
    /// first start to follow from.
    pub async fn start(
        desk: Desk<L>,
        thresholds: Thresholds,
    ) -> Result<(Self, Position), WorkerError> {
        let mut worker = BotWorker {
            desk,
            actor: Actor::new(ActorKind::Bot, "jimi"),
            thresholds,
            kb: BTreeMap::new(),
            faq: None,
            calibration: Vec::new(),
        };
        let log = worker.desk.commands().log().clone();
        let mut from = Position::START;
        loop {
            let page = log.read_all(from, 1000).await?;
            let Some(last) = page.last() else { break };
            from = Position(last.position.0 + 1);
            for e in &page {
                worker.learn(e).await?;
            }
        }
        Ok((worker, from))
    }

    pub fn entries(&self) -> usize {
        self.kb.len()
    }

    /// Folds a knowledge-base event into the bot's copy of the knowledge base.
    async fn learn(&mut self, e: &RecordedEvent) -> Result<(), WorkerError> {
        // Only the stream matters: the entry is loaded whole below, so the event is not decoded
        // (this runs over the whole log at every start).
        let Some(id) = KnowledgeDecider::id_of_stream(e.stream_id.as_str()) else {
            return Ok(());
        };
        // The entry as the decider folds it: one definition of what an entry is.
        let loaded = self.desk.commands().load::<KnowledgeDecider>(id).await?;
        match loaded.state {
            KnowledgeState::Active(entry) => {
                self.kb.insert(id, entry);
            }
            _ => {
                self.kb.remove(&id);
            }
        }
        self.faq = None;
        Ok(())
    }

    /// Fits the confidence on labelled customer questions rather than on the KB's paraphrases
    /// (`Faq::calibrate`), each time the model is built: the questions whose entry is not (or
    /// no longer) in the KB are left out.
    pub fn with_calibration(mut self, questions: Vec<(String, String)>) -> Self {
        self.calibration = questions;
        self.faq = None;
        self
    }

    fn faq(&mut self) -> Result<Option<&Faq>, WorkerError> {
        if self.faq.is_none() && !self.kb.is_empty() {
            let entries: Vec<Entry> = self.kb.values().map(Entry::from).collect();
            match Faq::new(entries, None, self.thresholds) {
                Ok(mut faq) => {
                    if !self.calibration.is_empty() {
                        // The log knows an entry by its id; a KB file's entry by the id it
                        // had there (`kb import` derives the one from the other).
                        let held =
                            |id: &str| faq.engine.entries().iter().any(|e| e.external_id == id);
                        let labels: Vec<(&str, String)> = self
                            .calibration
                            .iter()
                            .filter_map(|(t, label)| {
                                let imported = kefu_bot::kb::entry_id(label).to_string();
                                [label.clone(), imported]
                                    .into_iter()
                                    .find(|id| held(id))
                                    .map(|id| (t.as_str(), id))
                            })
                            .collect();
                        let known: Vec<(&str, &str)> =
                            labels.iter().map(|(t, id)| (*t, id.as_str())).collect();
                        match faq.calibrate(&known) {
                            Ok(right) => tracing::info!(
                                questions = known.len(),
                                left_out = self.calibration.len() - known.len(),
                                ranked_right = right,
                                "the bot's confidence is fitted on labelled questions"
                            ),
                            Err(e) => tracing::warn!(
                                error = %e,
                                questions = self.calibration.len(),
                                in_the_kb = known.len(),
                                "cannot fit the bot's confidence on the labelled questions; it stays fitted on the KB's paraphrases"
                            ),
                        }
                    }
                    self.faq = Some(faq)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot build the bot's FAQ model; handing customers to humans");
                    return Ok(None);
                }
            }
        }
        Ok(self.faq.as_ref())
    }

    /// Answers one customer turn.
    async fn answer(
        &mut self,
        e: &RecordedEvent,
        turn: &CustomerTurnRecorded,
    ) -> Result<(), WorkerError> {
        let Some(conversation) = ConversationDecider::id_of_stream(e.stream_id.as_str()) else {
            return Ok(());
        };
        let (message, text) = (turn.message, turn.text.as_str());
        let meta = Metadata::caused_by(self.actor.clone(), e);
        let board = self.desk.switchboard().await?;
        if !board.is_on(Switch::Bot) {
            // Switched off: whoever still talks to the bot goes to a human.
            let command = C::HandOff {
                reason: HandoffReason::BotSwitchedOff,
                at: self.desk_now(),
            };
            self.run(conversation, command, &meta).await?;
            return Ok(());
        }
        let strategy = if board.is_on(Switch::Emotion) {
            let history = self.moods(&e.stream_id, e.version).await?;
            let assessment = *history.last().unwrap_or(&emotion::assess(text));
            let assess = C::AssessEmotion {
                message,
                score: assessment.polarity.clamp(-1.0, 1.0),
                label: assessment.mood.domain_label(),
                model_version: emotion::MODEL_VERSION.to_owned(),
                at: self.desk_now(),
            };
            if !self.run(conversation, assess, &meta).await? {
                return Ok(());
            }
            emotion::strategy(&history, self.locale_of(text))
        } else {
            // No moods: no soothing, no mood-driven hand-off.
            emotion::strategy(&[], self.locale_of(text))
        };
        if let Some(request) = transfer::request(text) {
            let reply = C::RecordBotTurn {
                message: reply_id(message),
                text: transfer_reply(request, self.locale_of(text)).to_owned(),
                answer: None,
                candidates: vec![],
                at: self.desk_now(),
            };
            if self.run(conversation, reply, &meta).await? {
                let command = C::HandOff {
                    reason: HandoffReason::CustomerAsked,
                    at: self.desk_now(),
                };
                self.run(conversation, command, &meta).await?;
            }
            return Ok(());
        }
        let ranked = board.is_on(Switch::Ranker);
        let answer = match self.faq()? {
            Some(faq) => Some(
                if ranked {
                    faq.answer(text, None)
                } else {
                    retrieval_order(faq, text)
                }
                .map_err(|e| {
                    WorkerError::Command(CommandError::Rejected(DomainError::Validation {
                        field: "text",
                        reason: e.to_string(),
                    }))
                })?,
            ),
            None => None,
        };
        let (reply, handoff) = self.reply(answer.as_ref(), &strategy.soothing, text);
        let reply = match reply {
            Some(r) => r,
            None => return Ok(()),
        };
        let command = C::RecordBotTurn {
            message: reply_id(message),
            text: reply.text,
            answer: reply.answer,
            candidates: reply.candidates,
            at: self.desk_now(),
        };
        if !self.run(conversation, command, &meta).await? {
            return Ok(());
        }
        let reason = if strategy.handoff {
            Some(HandoffReason::NegativeEmotion)
        } else {
            handoff
        };
        if let Some(reason) = reason {
            let command = C::HandOff {
                reason,
                at: self.desk_now(),
            };
            self.run(conversation, command, &meta).await?;
        }
        Ok(())
    }

    /// The customer's moods so far, one per customer turn up to `version`, assessed again
    /// from their words (the assessment is a pure function of them).
    async fn moods(&self, stream: &StreamId, version: u64) -> Result<Vec<Assessment>, WorkerError> {
        let events = read_whole_stream(&**self.desk.commands().log(), stream).await?;
        Ok(events
            .iter()
            .filter(|e| e.version <= version)
            .filter_map(|e| match kefu_feed::decode_or_other(e) {
                Event::Conversation(ConversationEvent::CustomerTurnRecorded(turn)) => {
                    Some(emotion::assess(&turn.text))
                }
                _ => None,
            })
            .collect())
    }

    fn locale_of(&self, text: &str) -> &'static str {
        if text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)) {
            "zh"
        } else {
            "en"
        }
    }

    fn desk_now(&self) -> chrono::DateTime<chrono::Utc> {
        self.desk.now()
    }

    /// What the bot says, and whether a human must take over.
    fn reply(
        &self,
        answer: Option<&FaqAnswer>,
        soothing: &Option<String>,
        text: &str,
    ) -> (Option<Reply>, Option<HandoffReason>) {
        let zh = self.locale_of(text) == "zh";
        let prefix = soothing.clone().map(|s| s + " ").unwrap_or_default();
        let candidates: Vec<AnswerCandidate> = answer
            .map(|a| {
                a.ranked
                    .iter()
                    .take(kefu_domain::conversation::MAX_CANDIDATES)
                    .map(|r| AnswerCandidate {
                        entry: r.entry,
                        // Ranker scores are unbounded; the log keeps them in [0, 1].
                        score: 1.0 / (1.0 + (-r.score).exp()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let handover = if zh {
            "这个问题我先为您转接人工客服，请稍等。"
        } else {
            "Let me bring in a colleague who can help with this; one moment please."
        };
        let Some(answer) = answer else {
            return (
                Some(Reply {
                    text: format!("{prefix}{handover}"),
                    answer: None,
                    candidates,
                }),
                Some(HandoffReason::LowConfidence),
            );
        };
        match answer.decision {
            Decision::Answer => {
                let Some(top) = answer.top().and_then(|t| self.kb.get(&t.entry)) else {
                    return (None, Some(HandoffReason::LowConfidence));
                };
                (
                    Some(Reply {
                        text: format!("{prefix}{}", top.answer),
                        answer: Some(BotAnswerInput {
                            entry: kefu_domain::knowledge::KnowledgeEntrySnapshot::Active(
                                top.clone(),
                            ),
                            confidence: answer.confidence.clamp(0.0, 1.0),
                        }),
                        candidates,
                    }),
                    None,
                )
            }
            Decision::Clarify => {
                let options: Vec<String> = answer
                    .suggestions()
                    .iter()
                    .filter_map(|r| self.kb.get(&r.entry))
                    .enumerate()
                    .map(|(i, e)| format!("{}. {}", i + 1, e.question))
                    .collect();
                let ask = if zh {
                    "您想问的是下面哪一个？"
                } else {
                    "Which of these do you mean?"
                };
                (
                    Some(Reply {
                        text: format!("{prefix}{ask}\n{}", options.join("\n")),
                        answer: None,
                        candidates,
                    }),
                    None,
                )
            }
            Decision::Handoff => (
                Some(Reply {
                    text: format!("{prefix}{handover}"),
                    answer: None,
                    candidates,
                }),
                Some(HandoffReason::LowConfidence),
            ),
        }
    }

    /// Runs one command; false when the domain refused it (the conversation has moved on:
    /// closed, with a human, the bot switched off), which ends this turn's reaction.
    async fn run(
        &self,
        conversation: ConversationId,
        command: C,
        meta: &Metadata,
    ) -> Result<bool, WorkerError> {
        match self
            .desk
            .commands()
            .execute::<ConversationDecider>(conversation, command, meta)
            .await
        {
            Ok(_) => Ok(true),
            // Assessed already (a replay after a crash, or another instance): go on to the
            // reply, which is just as idempotent.
            Err(CommandError::Rejected(DomainError::TurnAlreadyAssessed { .. })) => Ok(true),
            Err(CommandError::Rejected(reason)) => {
                tracing::debug!(%conversation, %reason, "the bot has nothing to do here");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// With the ranker switched off: the candidates in retrieval (BM25) order, offered as the
/// top three, since without the ranker there is no calibrated confidence to answer on.
fn retrieval_order(faq: &Faq, text: &str) -> Result<FaqAnswer, kefu_bot::BotError> {
    let entries = faq.engine.entries();
    let ranked = faq
        .engine
        .candidates(text, None)?
        .iter()
        .enumerate()
        .map(|(i, c)| kefu_bot::faq::Ranked {
            entry: entries[c.entry].id,
            external_id: entries[c.entry].external_id.clone(),
            // Descending by retrieval rank; the bot's reply squashes it into (0, 1).
            score: -(i as f64),
        })
        .collect();
    Ok(FaqAnswer {
        ranked,
        confidence: 0.0,
        decision: Decision::Clarify,
        model_version: "retrieval-order".to_owned(),
    })
}

/// What the bot says when the customer asked for a person: no comfort words and no FAQ, only
/// that the person is coming.
fn transfer_reply(request: Request, locale: &str) -> &'static str {
    match (request, locale == "zh") {
        (Request::Human, true) => "好的，正在为您转接人工客服，请稍等。",
        (Request::Human, false) => "Of course; I'm connecting you with a colleague now.",
        (Request::Complaint, true) => "好的，正在为您转接投诉专员，请稍等。",
        (Request::Complaint, false) => {
            "Of course; I'm connecting you with our complaints team now."
        }
    }
}

struct Reply {
    text: String,
    answer: Option<BotAnswerInput>,
    candidates: Vec<AnswerCandidate>,
}

impl<L: EventLog> Reactor for BotWorker<L> {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn react(&mut self, events: &[RecordedEvent]) -> Result<(), WorkerError> {
        for e in events {
            match kefu_feed::decode_or_other(e) {
                Event::Knowledge(_) => self.learn(e).await?,
                Event::Conversation(ConversationEvent::CustomerTurnRecorded(turn)) => {
                    self.answer(e, &turn).await?
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Imports the demo knowledge base when the log has no knowledge-base entry at all (a new
/// server's first start). Returns how many entries it wrote.
pub async fn seed_demo_kb<L: EventLog>(
    desk: &Desk<L>,
    existing: usize,
) -> Result<usize, WorkerError> {
    if existing > 0 {
        return Ok(0);
    }
    let entries = kb::parse(kb::DEMO_KB).map_err(|e| {
        WorkerError::Command(CommandError::Rejected(DomainError::Validation {
            field: "demo knowledge base",
            reason: e.to_string(),
        }))
    })?;
    let meta = Metadata::for_request(Actor::new(ActorKind::System, "kb-seed"), Uuid::now_v7());
    for e in &entries {
        desk.commands()
            .execute::<KnowledgeDecider>(e.entry_id(), e.create_command(desk.now()), &meta)
            .await?;
    }
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_id_is_fixed_by_the_message_and_is_no_client_id() {
        let customer = MessageId::from_uuid(Uuid::now_v7());
        let reply = reply_id(customer);
        assert_eq!(reply, reply_id(customer));
        assert_ne!(reply, customer);
        assert_eq!(reply.as_uuid().get_version_num(), 8);
        assert_ne!(reply_id(MessageId::from_uuid(Uuid::now_v7())), reply);
    }
}
