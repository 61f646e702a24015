//! The bot worker: answers customer turns with the JIMI bot (`kefu-bot`), and hands the
//! conversation to a human when its confidence, the customer's mood or the customer asks.
//!
//! Its answer to a `CustomerTurnRecorded` is [`answer`], a pure function of the conversation as its
//! stream folds, what the bot knows ([`Knowledge`]: the knowledge base and the switches) and the
//! time; [`crate::shell`] runs it. The answer is one decision and one append: the turn's emotion
//! (`AssessEmotion`), the bot's reply (`RecordBotTurn`: an answer, the top three to choose from, or
//! a word that a human is coming) and, when needed, the hand-off (`HandOff`: low confidence or
//! anger), all recorded or none, so a crash leaves all of an answer or none. A turn the bot may not
//! answer (`Conversation::takes_bot_replies`, the domain's rule: the conversation is with a human,
//! closed, or started without the bot) is still assessed, and while a human has the chat (or is on
//! the way) the bot's best answers go to them instead (`SuggestAnswers`, recorded as
//! `AnswersSuggested`: the bot's top three entries as the agent is shown them, revision and text,
//! with its confidence in the first), in the same decision. The workbench shows them beside the
//! chat (`Turn.suggested`): the bot's retrieval serves the agent instead of the customer, and what
//! an agent was offered stays in the audit trail. A typed request for a person or to complain
//! ("转人工", "I want a human", "我要投诉": `kefu_bot::transfer`) skips the FAQ: the reply says a
//! person is coming (no list, no apology) and the hand-off's reason is `customer_asked` (the router
//! then sends a complaint to the complaints team).
//!
//! The mood history the reply strategy reads is the stream's: the assessments recorded for the
//! earlier turns (`Assessment::recorded`), and this turn's. Assessing every earlier turn again made
//! a chat quadratic, and could disagree with the log once the emotion model changed: a new model
//! does not rewrite how earlier turns were judged.
//!
//! Reacting twice to one turn records one answer: the answer's events are keyed by their cause
//! (`command.rs`), and the reply's message id is derived from the customer's ([`reply_id`]). A turn
//! whose assessment a crash of an older bot left alone is answered without assessing it again.
//!
//! The knowledge base the bot answers from is folded from the log's `KnowledgeEntry*` events and
//! kept current as they arrive (the turns before a change are answered before it); a server whose
//! log has none seeds the demo knowledge base ([`seed_demo_kb`]). The switchboard is read once per
//! batch of turns. Bot off: whoever still talks to the bot is handed to a human (`BotSwitchedOff`),
//! and `startConversation` starts conversations without the bot. Emotion off: no assessment and no
//! mood-driven hand-off. Ranker off: the top three in retrieval order, offered rather than answered
//! (there is no calibrated confidence).
//!
//! # Warm starts
//!
//! Which entries exist is kept in the read-model store beside the bot's checkpoint
//! ([`KnownEntries`], table `kefu_bot_entries`), so a restart loads those entries' streams instead
//! of reading the whole log for them: start-up no longer grows with the log (issue 17, step 6).
//! Every knowledge-base event the bot learns is recorded there before its checkpoint can move past
//! it, so with a checkpoint the table is complete for everything the bot will not read again
//! (`workers/tests/hot_path.rs`). Without either (a first start, a new read-model store, an upgrade
//! from a bot without the table) the bot folds from the beginning, as it always did, and writes the
//! table. The entries are loaded as they stand now: after a restart, turns between the checkpoint
//! and a later edit are answered with the edited entry, where an uninterrupted bot would have used
//! the old one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use kefu_bot::emotion::{self, Assessment};
use kefu_bot::faq::{Decision, Entry, Faq, FaqAnswer, Thresholds};
use kefu_bot::kb::{self, KbEntry};
use kefu_bot::transfer::{self, Request};
use kefu_domain::conversation::{
    AnswerCandidate, BotAnswerInput, Conversation, ConversationCommand as C, ConversationEvent,
    CustomerTurnRecorded, HandoffReason, MAX_SUGGESTIONS, Speaker, SuggestionInput,
};
use kefu_domain::ids::{KnowledgeEntryId, MessageId};
use kefu_domain::knowledge::{
    KnowledgeDecider, KnowledgeEntry, KnowledgeEntrySnapshot, KnowledgeState,
};
use kefu_domain::switches::{Switch, SwitchBoard};
use kefu_domain::{Decider, DomainError, Event};
use kefu_eventlog::{Actor, ActorKind, EventLog, Metadata, Position, RecordedEvent};
use kefu_projections::ReadStore;
use kefu_projections::sql::{Stmt, Val};

use crate::runtime::{Reactor, WorkerError};
use crate::shell::{self, Given, Intent, Shell};
use kefu_desk::Desk;
use kefu_desk::command::CommandError;

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
    shell: Shell<L>,
    thresholds: Thresholds,
    /// The active entries, by id.
    kb: BTreeMap<KnowledgeEntryId, KnowledgeEntry>,
    /// Built from `kb` when first needed after a change, with what it has ranked since: the
    /// two are dropped together, so a ranking never outlives the model that made it.
    faq: Option<(Faq, Recall)>,
    /// Labelled customer questions (text, the answering entry's external id) the confidence
    /// is fitted on whenever `faq` is built; empty: the ranker's own fit on paraphrases.
    calibration: Vec<(String, String)>,
    /// Where the entries it holds are recorded for the next start; `None`: nowhere (tests).
    known: Option<KnownEntries>,
}

impl<L: EventLog> BotWorker<L> {
    /// Reads the knowledge base from the whole log; also returns where that read ended, for a
    /// first start to follow from. Records nothing for a warm start: see [`Self::resume`].
    pub async fn start(
        desk: Desk<L>,
        thresholds: Thresholds,
    ) -> Result<(Self, Position), WorkerError> {
        let mut worker = Self::empty(desk, thresholds);
        let from = worker.fold_log().await?;
        Ok((worker, from))
    }

    /// Loads the entries `known` recorded when the bot has a `checkpoint` to resume from (a
    /// warm start: no log read), or else folds the whole log as [`Self::start`] does and
    /// records what it found. Keeps `known` current from then on. Returns where a bot
    /// without a checkpoint follows from.
    pub async fn resume(
        desk: Desk<L>,
        thresholds: Thresholds,
        checkpoint: Option<Position>,
        known: KnownEntries,
    ) -> Result<(Self, Position), WorkerError> {
        let mut worker = Self::empty(desk, thresholds);
        let resumed = match checkpoint {
            Some(at) => known.load().await?.map(|ids| (ids, at)),
            None => None,
        };
        let from = match resumed {
            Some((ids, at)) => {
                for id in ids {
                    worker.learn_entry(id).await?;
                }
                tracing::info!(
                    entries = worker.kb.len(),
                    "warm start: the bot loaded its recorded knowledge-base entries"
                );
                at
            }
            None => {
                let from = worker.fold_log().await?;
                known.replace(worker.kb.keys()).await?;
                from
            }
        };
        worker.known = Some(known);
        Ok((worker, from))
    }

    fn empty(desk: Desk<L>, thresholds: Thresholds) -> Self {
        BotWorker {
            shell: Shell::new(desk, NAME, Actor::new(ActorKind::Bot, "jimi")),
            thresholds,
            kb: BTreeMap::new(),
            faq: None,
            calibration: Vec::new(),
            known: None,
        }
    }

    /// Learns every entry the log has events of, each loaded once however often it
    /// changed; where the read ended.
    async fn fold_log(&mut self) -> Result<Position, WorkerError> {
        let log = self.shell.desk().commands().log().clone();
        let mut from = Position::START;
        let mut ids = BTreeSet::new();
        loop {
            let page = log.read_all(from, 1000).await?;
            let Some(last) = page.last() else { break };
            from = last.position.next();
            ids.extend(
                page.iter()
                    .filter_map(|e| KnowledgeDecider::id_of_stream(e.stream_id.as_str())),
            );
        }
        for id in ids {
            self.learn_entry(id).await?;
        }
        Ok(from)
    }

    pub fn entries(&self) -> usize {
        self.kb.len()
    }

    /// The active entries it answers from, in id order.
    pub fn entry_ids(&self) -> Vec<KnowledgeEntryId> {
        self.kb.keys().copied().collect()
    }

    /// Folds a change to entry `id` into the bot's copy of the knowledge base; whether the
    /// entry is active now.
    async fn learn_entry(&mut self, id: KnowledgeEntryId) -> Result<bool, WorkerError> {
        // Only the stream matters: the entry is loaded whole, so the event is not decoded.
        // The entry as the decider folds it: one definition of what an entry is.
        let loaded = self
            .shell
            .desk()
            .commands()
            .load::<KnowledgeDecider>(id)
            .await?;
        self.faq = None;
        Ok(match loaded.state {
            KnowledgeState::Active(entry) => {
                self.kb.insert(id, entry);
                true
            }
            _ => {
                self.kb.remove(&id);
                false
            }
        })
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
                    self.faq = Some((faq, Recall::default()))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot build the bot's FAQ model; handing customers to humans");
                    return Ok(None);
                }
            }
        }
        Ok(self.faq.as_ref().map(|(faq, _)| faq))
    }

    /// Answers the customer turns among `events` (none of them a knowledge-base change).
    async fn answer_turns(&mut self, events: &[RecordedEvent]) -> Result<(), WorkerError> {
        let work = shell::conversation_work(events, |e| {
            matches!(
                e,
                Event::Conversation(ConversationEvent::CustomerTurnRecorded(_))
            )
        });
        if work.is_empty() {
            return Ok(());
        }
        let board = self.shell.desk().switchboard().await?;
        self.faq()?;
        let knows = Knowledge {
            board: &board,
            faq: self.faq.as_ref().map(|(faq, _)| faq),
            kb: &self.kb,
            recall: self.faq.as_ref().map(|(_, recall)| recall),
        };
        self.shell
            .react(work, |given, work| match &work.event {
                Event::Conversation(ConversationEvent::CustomerTurnRecorded(turn)) => {
                    answer(&knows, given, turn)
                }
                _ => Vec::new(),
            })
            .await
    }
}

/// What the bot answers from besides the conversation.
pub struct Knowledge<'a> {
    pub board: &'a SwitchBoard,
    /// The model over `kb`; `None` when there is none (an empty knowledge base, or one the
    /// model cannot be built from): every question goes to a human.
    pub faq: Option<&'a Faq>,
    /// The active entries, by id.
    pub kb: &'a BTreeMap<KnowledgeEntryId, KnowledgeEntry>,
    /// What `faq` has ranked already (`None`: rank every turn afresh).
    pub recall: Option<&'a Recall>,
}

/// The FAQ model's rankings of texts it has ranked before, for the one model they came from.
/// Customers write the same words again and again ("在吗", "人工", "退款多久到账"); the
/// ranking of a text is a pure function of the text and the model, so a repeat costs a
/// lookup instead of retrieval and ranking. A what-if replay of a week ranks each of its
/// recorded texts once instead of once per turn. Bounded: when full, it starts over.
#[derive(Default)]
pub struct Recall(Mutex<HashMap<String, FaqAnswer>>);

impl Recall {
    /// Texts remembered at most; about a kilobyte each.
    const MAX: usize = 50_000;

    /// How many texts it holds.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |held| held.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, text: &str) -> Option<FaqAnswer> {
        self.0.lock().ok()?.get(text).cloned()
    }

    fn keep(&self, text: &str, answer: &FaqAnswer) {
        if let Ok(mut held) = self.0.lock() {
            if held.len() >= Self::MAX {
                held.clear();
            }
            held.insert(text.to_owned(), answer.clone());
        }
    }
}

/// The bot's answer to a customer's turn: at most one intent, the commands of one decision.
pub fn answer(
    knows: &Knowledge<'_>,
    given: &Given<'_>,
    turn: &CustomerTurnRecorded,
) -> Vec<Intent> {
    let (conv, now) = (given.conversation, given.now);
    let (message, text) = (turn.message, turn.text.as_str());
    let locale = locale_of(text);
    if !knows.board.is_on(Switch::Bot) {
        // Switched off: whoever still talks to the bot goes to a human.
        return vec![Intent::Conversation(vec![C::HandOff {
            reason: HandoffReason::BotSwitchedOff,
            at: now,
        }])];
    }
    let mut commands = Vec::new();
    let strategy = if knows.board.is_on(Switch::Emotion) {
        let assessment = emotion::assess(text);
        if !assessed(conv, message) {
            commands.push(C::AssessEmotion {
                message,
                score: assessment.polarity.clamp(-1.0, 1.0),
                label: assessment.mood.domain_label(),
                model_version: emotion::MODEL_VERSION.to_owned(),
                at: now,
            });
        }
        let mut history = moods_before(conv, message);
        history.push(assessment);
        emotion::strategy(&history, locale)
    } else {
        // No moods: no soothing, no mood-driven hand-off.
        emotion::strategy(&[], locale)
    };
    let decided = |commands: Vec<C>| {
        if commands.is_empty() {
            Vec::new()
        } else {
            vec![Intent::Conversation(commands)]
        }
    };
    if conv.takes_bot_replies().is_err() {
        // A human has the chat, or is on the way: what the bot would answer goes to them.
        if conv.takes_suggestions().is_ok() {
            commands.extend(suggest(knows, message, text, now));
        }
        return decided(commands);
    }
    if let Some(request) = transfer::request(text) {
        commands.push(C::RecordBotTurn {
            message: reply_id(message),
            text: transfer_reply(request, locale).to_owned(),
            answer: None,
            candidates: vec![],
            at: now,
        });
        commands.push(C::HandOff {
            reason: HandoffReason::CustomerAsked,
            at: now,
        });
        return decided(commands);
    }
    let found = rank(knows, text);
    let (reply, handoff) = reply(knows.kb, found.as_ref(), &strategy.soothing, locale);
    let Some(reply) = reply else {
        return decided(commands);
    };
    commands.push(C::RecordBotTurn {
        message: reply_id(message),
        text: reply.text,
        answer: reply.answer,
        candidates: reply.candidates,
        at: now,
    });
    let reason = if strategy.handoff {
        Some(HandoffReason::NegativeEmotion)
    } else {
        handoff
    };
    if let Some(reason) = reason {
        commands.push(C::HandOff { reason, at: now });
    }
    decided(commands)
}

/// The knowledge base ranked for `text`, by the learned ranker unless it is switched off;
/// `None` when there is no model or it cannot take the question (one for a human).
fn rank(knows: &Knowledge<'_>, text: &str) -> Option<FaqAnswer> {
    let faq = knows.faq?;
    let ranker = knows.board.is_on(Switch::Ranker);
    // Only the ranker's answers are recalled: the switch may change between turns.
    let recall = knows.recall.filter(|_| ranker);
    if let Some(known) = recall.and_then(|r| r.get(text)) {
        return Some(known);
    }
    let found = if ranker {
        faq.answer(text, None)
    } else {
        retrieval_order(faq, text)
    };
    found
        .inspect(|a| {
            if let Some(r) = recall {
                r.keep(text, a);
            }
        })
        .inspect_err(|e| tracing::warn!(error = %e, "the bot's model cannot take this question"))
        .ok()
}

/// The bot's best entries for a customer turn a human answers, with its confidence in the
/// first: what the agent's desk offers beside the chat. Nothing when it found nothing.
fn suggest(knows: &Knowledge<'_>, message: MessageId, text: &str, now: DateTime<Utc>) -> Option<C> {
    let found = rank(knows, text)?;
    let suggestions: Vec<SuggestionInput> = found
        .ranked
        .iter()
        .filter_map(|r| {
            let entry = knows.kb.get(&r.entry)?;
            Some(SuggestionInput {
                entry: KnowledgeEntrySnapshot::Active(entry.clone()),
                score: squash(r.score),
            })
        })
        .take(MAX_SUGGESTIONS)
        .collect();
    if suggestions.is_empty() {
        return None;
    }
    Some(C::SuggestAnswers {
        message,
        suggestions,
        confidence: found.confidence.clamp(0.0, 1.0),
        model_version: found.model_version,
        at: now,
    })
}

/// Ranker scores are unbounded; the log keeps them in [0, 1].
fn squash(score: f64) -> f64 {
    1.0 / (1.0 + (-score).exp())
}

/// Whether the turn's emotion is recorded already.
fn assessed(conv: &Conversation, message: MessageId) -> bool {
    conv.turns
        .iter()
        .any(|t| t.message == message && t.emotion.is_some())
}

/// The customer's moods before `message`, as the stream recorded them (turns assessed while
/// the emotion switch was off have none).
fn moods_before(conv: &Conversation, message: MessageId) -> Vec<Assessment> {
    conv.turns
        .iter()
        .take_while(|t| t.message != message)
        .filter(|t| t.speaker == Speaker::Customer)
        .filter_map(|t| t.emotion)
        .map(|e| Assessment::recorded(e.score, e.label))
        .collect()
}

fn locale_of(text: &str) -> &'static str {
    if text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)) {
        "zh"
    } else {
        "en"
    }
}

/// What the bot says, and whether a human must take over.
fn reply(
    kb: &BTreeMap<KnowledgeEntryId, KnowledgeEntry>,
    answer: Option<&FaqAnswer>,
    soothing: &Option<String>,
    locale: &str,
) -> (Option<Reply>, Option<HandoffReason>) {
    let zh = locale == "zh";
    let prefix = soothing.clone().map(|s| s + " ").unwrap_or_default();
    let candidates: Vec<AnswerCandidate> = answer
        .map(|a| {
            a.ranked
                .iter()
                .take(kefu_domain::conversation::MAX_CANDIDATES)
                .map(|r| AnswerCandidate {
                    entry: r.entry,
                    score: squash(r.score),
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
            let Some(top) = answer.top().and_then(|t| kb.get(&t.entry)) else {
                return (None, Some(HandoffReason::LowConfidence));
            };
            (
                Some(Reply {
                    text: format!("{prefix}{}", top.answer),
                    answer: Some(BotAnswerInput {
                        entry: kefu_domain::knowledge::KnowledgeEntrySnapshot::Active(top.clone()),
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
                .filter_map(|r| kb.get(&r.entry))
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
        // A knowledge-base change applies to the turns after it, not to those before.
        let mut from = 0;
        let mut changed = BTreeMap::new();
        for (at, e) in events.iter().enumerate() {
            if let Some(id) = KnowledgeDecider::id_of_stream(e.stream_id.as_str()) {
                self.answer_turns(&events[from..at]).await?;
                changed.insert(id, self.learn_entry(id).await?);
                from = at + 1;
            }
        }
        self.answer_turns(&events[from..]).await?;
        // Recorded before the runtime moves the checkpoint past these events (module docs).
        if let Some(known) = self.known.as_ref().filter(|_| !changed.is_empty()) {
            known.record(&changed).await?;
        }
        Ok(())
    }
}

/// Which knowledge-base entries the bot holds, recorded in the read-model store for its next
/// start (see the module docs). Entry ids only: the entries themselves are loaded from their
/// streams, the truth.
#[derive(Clone)]
pub struct KnownEntries {
    store: ReadStore,
}

impl KnownEntries {
    pub async fn open(store: ReadStore) -> Result<Self, WorkerError> {
        store
            .transaction(vec![
                Stmt::new(
                    "CREATE TABLE IF NOT EXISTS kefu_bot_entries (entry_id TEXT NOT NULL PRIMARY KEY)",
                    vec![],
                ),
                // One row once a fold of the log filled the table: without it the bot folds
                // the log. Later changes are recorded as they are learnt.
                Stmt::new(
                    "CREATE TABLE IF NOT EXISTS kefu_bot_entries_complete (
                        one INTEGER NOT NULL PRIMARY KEY CHECK (one = 1)
                    )",
                    vec![],
                ),
            ])
            .await?;
        Ok(KnownEntries { store })
    }

    /// The recorded entries, or `None` when nothing complete was recorded.
    pub async fn load(&self) -> Result<Option<Vec<KnowledgeEntryId>>, WorkerError> {
        let complete = self
            .store
            .query("SELECT one FROM kefu_bot_entries_complete", vec![])
            .await?;
        if complete.is_empty() {
            return Ok(None);
        }
        let rows = self
            .store
            .query(
                "SELECT entry_id FROM kefu_bot_entries ORDER BY entry_id",
                vec![],
            )
            .await?;
        let ids = rows
            .iter()
            .filter_map(|r| r.first().and_then(Val::as_str))
            .map(|id| {
                uuid::Uuid::parse_str(id)
                    .map(KnowledgeEntryId::from_uuid)
                    .map_err(|e| kefu_projections::sql::StoreError::Backend {
                        backend: self.store.backend(),
                        message: format!("kefu_bot_entries holds {id:?}, not an entry id: {e}"),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(ids))
    }

    /// Records the whole set, after a fold of the log, and marks it complete.
    async fn replace(
        &self,
        ids: impl Iterator<Item = &KnowledgeEntryId>,
    ) -> Result<(), WorkerError> {
        let mut stmts = vec![Stmt::new("DELETE FROM kefu_bot_entries", vec![])];
        stmts.extend(ids.map(Self::insert));
        stmts.push(Stmt::new(
            "INSERT INTO kefu_bot_entries_complete (one) VALUES (1) ON CONFLICT (one) DO NOTHING",
            vec![],
        ));
        Ok(self.store.transaction(stmts).await?)
    }

    /// Records changes (entry, active now).
    async fn record(&self, changed: &BTreeMap<KnowledgeEntryId, bool>) -> Result<(), WorkerError> {
        let stmts: Vec<Stmt> = changed
            .iter()
            .map(|(id, active)| match active {
                true => Self::insert(id),
                false => Stmt::new(
                    "DELETE FROM kefu_bot_entries WHERE entry_id = $1",
                    vec![Val::Text(id.to_string())],
                ),
            })
            .collect();
        Ok(self.store.transaction(stmts).await?)
    }

    fn insert(id: &KnowledgeEntryId) -> Stmt {
        Stmt::new(
            "INSERT INTO kefu_bot_entries (entry_id) VALUES ($1) ON CONFLICT (entry_id) DO NOTHING",
            vec![Val::Text(id.to_string())],
        )
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
    seed_kb(desk, &entries).await
}

/// Creates `entries` in the knowledge base, as one request of the system's. How many it
/// created.
pub async fn seed_kb<L: EventLog>(
    desk: &Desk<L>,
    entries: &[KbEntry],
) -> Result<usize, WorkerError> {
    let meta = Metadata::for_request(
        Actor::new(ActorKind::System, "kb-seed"),
        desk.commands().new_id(),
    );
    for e in entries {
        desk.commands()
            .execute::<KnowledgeDecider>(e.entry_id(), e.create_command(desk.now()), &meta)
            .await?;
    }
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

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
