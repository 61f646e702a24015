//! Probes (the seed's daily automated verification): on a schedule, ask the bot questions
//! whose right answer is known, through the customer's own entry point, and record how many it
//! answered right.
//!
//! Each question is a real conversation: `Desk::start_conversation` on the probe channel
//! (`Channel::Probe`, for the probe customer [`PROBE_CUSTOMER`]) and `Desk::customer_message`,
//! exactly what `startConversation` and `sendMessage` do; the bot worker answers it as it
//! answers anyone. The probe waits for the bot's reply in the log (a subscription from its
//! own message, bounded by a deadline), reads which entry it answered with, and closes the
//! conversation. Probe conversations are kept out of what people see: the statistics keep no
//! fact for them and the router never routes them, so they never reach a human's queue.
//!
//! The schedule is slots of `every` from the epoch; a run belongs to its slot and its stream
//! is `probe-<ProbeRunId::for_slot(slot)>`. The run is claimed (`ProbeRunStarted`, decided
//! against that stream) before anything is asked, so two probe workers waking in the same
//! slot, or one restarted within it, probe it once; `ProbeRunCompleted` records the checks
//! and the decider judges them. A worker that dies mid-run leaves the slot started and not
//! completed, which the next slot's run outlives.
//!
//! Slots are `--probe-interval-secs` long (the domain's side is `domain/src/probe.rs`). The domain
//! offers probe conversations no survey. [`recent_runs`] reads the runs of the last slots (the
//! `probeRuns` query), and the server's event hub turns each `ProbeRunCompleted` into metrics.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kefu_bot::kb;
use kefu_domain::common::{Channel, Party};
use kefu_domain::conversation::{CloseReason, ConversationDecider, ConversationEvent};
use kefu_domain::ids::{
    ConversationId, CustomerId, KnowledgeEntryId, Locale, MessageId, ProbeRunId,
};
use kefu_domain::probe::{
    MAX_PROBES, ProbeCheck, ProbeCommand, ProbeDecider, ProbeEvent, ProbeReply, ProbeRunCompleted,
};
use kefu_domain::{Decider, DomainError, Event};
use kefu_eventlog::{
    Actor, ActorKind, EventLog, Metadata, Position, StreamId, Subscription, read_whole_stream,
};
use kefu_feed::TypedEvent;
use tokio::sync::watch;
use uuid::Uuid;

use crate::bot::reply_id;
use crate::runtime::WorkerError;
use kefu_desk::Desk;
use kefu_desk::command::CommandError;

pub const NAME: &str = "probes";

/// The customer every probe conversation belongs to.
pub const PROBE_CUSTOMER: CustomerId =
    CustomerId::from_uuid(Uuid::from_u128(0x6b65_6675_7072_6f62_6563_7573_0000_0001));

/// How many questions a run asks by default (a different share of the knowledge base each
/// slot, so over days every entry is asked).
pub const DEFAULT_SAMPLE: usize = 20;

/// How long a probe waits for the bot's reply.
pub const DEFAULT_REPLY_DEADLINE: Duration = Duration::from_secs(30);

/// A question whose right answer is known.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeQuestion {
    pub question: String,
    pub expected: KnowledgeEntryId,
    pub locale: Locale,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeFileError {
    #[error("probe questions, line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("probe questions: the file has no questions")]
    Empty,
    #[error("probe questions: {count} questions, over the limit of {MAX_PROBES}")]
    TooMany { count: usize },
}

/// One question per entry of the demo knowledge base, in the entry's own words, expecting
/// that entry. Its paraphrases are what `kefu eval faq` measures the model on; as probes they
/// would raise daily alarms over the model's known misses (most get the right entry offered
/// first rather than answered), where a probe is to catch the desk itself going wrong.
pub fn demo_questions() -> Vec<ProbeQuestion> {
    kb::parse(kb::DEMO_KB)
        .map(|entries| {
            entries
                .iter()
                .map(|e| ProbeQuestion {
                    question: e.question.clone(),
                    expected: e.entry_id(),
                    locale: Locale::new(&e.locale),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads `{"question": "...", "expected_entry": "..."}` lines (blank lines and `#` comments
/// skipped). The expected entry is a knowledge-base id as imported (`zh-shipping-001`) or an
/// entry's UUID; `"locale"` is optional (`zh-CN` by default).
pub fn parse_questions(text: &str) -> Result<Vec<ProbeQuestion>, ProbeFileError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line {
        question: String,
        expected_entry: String,
        #[serde(default)]
        locale: Option<String>,
    }
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let bad = |reason: String| ProbeFileError::Line {
            line: i + 1,
            reason,
        };
        let line: Line = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        if line.question.trim().is_empty() {
            return Err(bad("\"question\" is empty".into()));
        }
        let expected = match line.expected_entry.parse::<Uuid>() {
            Ok(id) => KnowledgeEntryId::from_uuid(id),
            Err(_) if !line.expected_entry.trim().is_empty() => kb::entry_id(&line.expected_entry),
            Err(_) => return Err(bad("\"expected_entry\" is empty".into())),
        };
        out.push(ProbeQuestion {
            question: line.question,
            expected,
            locale: Locale::new(
                line.locale
                    .unwrap_or_else(|| kefu_desk::DEFAULT_LOCALE.to_owned()),
            ),
        });
    }
    if out.is_empty() {
        return Err(ProbeFileError::Empty);
    }
    if out.len() > MAX_PROBES as usize {
        return Err(ProbeFileError::TooMany { count: out.len() });
    }
    Ok(out)
}

/// The start of the slot of length `every` that `now` falls in.
pub fn slot_of(now: DateTime<Utc>, every: Duration) -> DateTime<Utc> {
    let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
    let ms = now.timestamp_millis();
    DateTime::from_timestamp_millis(ms - ms.rem_euclid(every)).unwrap_or(now)
}

pub struct Probes<L> {
    desk: Desk<L>,
    questions: Arc<Vec<ProbeQuestion>>,
    sample: usize,
    every: Duration,
    reply_deadline: Duration,
    actor: Actor,
}

impl<L> Clone for Probes<L> {
    fn clone(&self) -> Self {
        Probes {
            desk: self.desk.clone(),
            questions: self.questions.clone(),
            sample: self.sample,
            every: self.every,
            reply_deadline: self.reply_deadline,
            actor: self.actor.clone(),
        }
    }
}

impl<L: EventLog> Probes<L> {
    /// Probes asking a sample of `questions` every `every`.
    pub fn new(desk: Desk<L>, questions: Vec<ProbeQuestion>, every: Duration) -> Self {
        Probes {
            desk,
            questions: Arc::new(questions),
            sample: DEFAULT_SAMPLE,
            every: every.max(Duration::from_secs(1)),
            reply_deadline: DEFAULT_REPLY_DEADLINE,
            actor: Actor::new(ActorKind::System, NAME),
        }
    }

    /// How many questions each run asks (all of them when `0` or more than there are).
    pub fn with_sample(mut self, sample: usize) -> Self {
        self.sample = sample;
        self
    }

    pub fn with_reply_deadline(mut self, deadline: Duration) -> Self {
        self.reply_deadline = deadline;
        self
    }

    pub fn every(&self) -> Duration {
        self.every
    }

    /// The questions of the run of `slot`: `sample` of them, evenly spaced, starting at an
    /// offset that moves with the slot.
    pub fn questions_for(&self, slot: DateTime<Utc>) -> Vec<ProbeQuestion> {
        let n = self.questions.len();
        let take = if self.sample == 0 {
            n
        } else {
            self.sample.min(n)
        }
        .min(MAX_PROBES as usize);
        if take == n {
            return self.questions.to_vec();
        }
        let stride = n / take;
        let index = slot.timestamp_millis().unsigned_abs()
            / u64::try_from(self.every.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
        let offset = (index % stride as u64) as usize;
        (0..take)
            .map(|i| self.questions[offset + i * stride].clone())
            .collect()
    }

    /// Probes the slot that starts at `slot`; `None` when its run was already claimed (by
    /// another worker, or by this one before a restart).
    pub async fn run_slot(
        &self,
        slot: DateTime<Utc>,
    ) -> Result<Option<ProbeRunCompleted>, WorkerError> {
        let run = ProbeRunId::for_slot(slot);
        let questions = self.questions_for(slot);
        // Every probe of a run shares the run's correlation id: `kefu log correlation <run>`.
        let meta = Metadata::for_request(self.actor.clone(), run.as_uuid());
        let start = ProbeCommand::Start {
            run,
            slot,
            questions: u32::try_from(questions.len()).unwrap_or(u32::MAX),
            at: self.desk.now(),
        };
        match self
            .desk
            .commands()
            .execute::<ProbeDecider>(run, start, &meta)
            .await
        {
            Ok(_) => {}
            Err(CommandError::Rejected(DomainError::AlreadyExists { .. })) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let mut checks = Vec::with_capacity(questions.len());
        for q in &questions {
            checks.push(self.check(q, &meta).await?);
        }
        let complete = ProbeCommand::Complete {
            checks,
            at: self.desk.now(),
        };
        let done = self
            .desk
            .commands()
            .execute::<ProbeDecider>(run, complete, &meta)
            .await?;
        Ok(done.events.into_iter().find_map(|e| match e {
            ProbeEvent::ProbeRunCompleted(c) => Some(c),
            ProbeEvent::ProbeRunStarted(_) => None,
        }))
    }

    /// Asks one question. A store that refuses is the probe's finding, not the run's end.
    async fn check(&self, q: &ProbeQuestion, meta: &Metadata) -> Result<ProbeCheck, WorkerError> {
        let mut check = ProbeCheck {
            question: q.question.clone(),
            expected: q.expected,
            conversation: None,
            reply: ProbeReply::NoReply,
        };
        let asked = async {
            let conversation = self
                .desk
                .start_conversation(
                    PROBE_CUSTOMER,
                    Some(q.locale.clone()),
                    Channel::Probe,
                    None,
                    true,
                    meta,
                )
                .await?
                .value;
            let message = MessageId::from_uuid(self.desk.commands().new_id());
            let sent = self
                .desk
                .customer_message(conversation, message, q.question.clone(), meta)
                .await?;
            Ok::<_, CommandError>((conversation, message, sent.position))
        };
        let (conversation, message, from) = match asked.await {
            Ok(a) => a,
            Err(e) => {
                check.reply = ProbeReply::Failed {
                    message: e.to_string(),
                };
                return Ok(check);
            }
        };
        check.conversation = Some(conversation);
        let from = from.map_or(Position::START, Position::next);
        check.reply = match tokio::time::timeout(
            self.reply_deadline,
            self.reply(conversation, message, from),
        )
        .await
        {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => ProbeReply::Failed {
                message: e.to_string(),
            },
            Err(_) => ProbeReply::NoReply,
        };
        // Done with it: closed, so it waits for no one (refused only if already closed).
        match self
            .desk
            .close(conversation, Party::System, CloseReason::Resolved, meta)
            .await
        {
            Ok(_) | Err(CommandError::Rejected(_)) => {}
            Err(e) => {
                tracing::warn!(%conversation, error = %e, "could not close a probe conversation")
            }
        }
        Ok(check)
    }

    /// Waits for what the bot does with `message`: its reply, or a hand-off without one.
    async fn reply(
        &self,
        conversation: ConversationId,
        message: MessageId,
        from: Position,
    ) -> Result<ProbeReply, WorkerError> {
        let stream = ConversationDecider::stream_id(conversation);
        let expected_reply = reply_id(message);
        let mut sub = Subscription::new(self.desk.commands().log().clone(), from);
        loop {
            let e = sub.next().await?;
            if e.stream_id.as_str() != stream {
                continue;
            }
            let Ok(TypedEvent {
                event: Event::Conversation(event),
                ..
            }) = TypedEvent::decode(e)
            else {
                continue;
            };
            match event {
                ConversationEvent::BotTurnRecorded(t) if t.message == expected_reply => {
                    return Ok(match t.answer {
                        Some(a) => ProbeReply::Answered { entry: a.entry },
                        None => ProbeReply::NotAnswered {
                            candidates: t.candidates.iter().map(|c| c.entry).collect(),
                        },
                    });
                }
                ConversationEvent::HandedToHuman(_) => return Ok(ProbeReply::HandedOver),
                ConversationEvent::ConversationClosed(_) => return Ok(ProbeReply::NoReply),
                _ => {}
            }
        }
    }
}

/// A probe run as its stream records it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRunView {
    pub run: ProbeRunId,
    pub slot: DateTime<Utc>,
    pub questions: u32,
    /// None while the run is under way (or was abandoned).
    pub completed: Option<ProbeRunCompleted>,
}

/// The runs of the last `n` slots of length `every` up to `now`, newest first; slots that
/// were never probed are left out. Read from the runs' streams: the slot names the stream.
pub async fn recent_runs<L: EventLog>(
    desk: &Desk<L>,
    every: Duration,
    now: DateTime<Utc>,
    n: usize,
) -> Result<Vec<ProbeRunView>, WorkerError> {
    let every_c = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::days(1));
    let mut slot = slot_of(now, every);
    let mut out = Vec::new();
    for _ in 0..n {
        let run = ProbeRunId::for_slot(slot);
        let stream = StreamId::new(ProbeDecider::stream_id(run))?;
        let mut view: Option<ProbeRunView> = None;
        for e in read_whole_stream(&**desk.commands().log(), &stream).await? {
            match TypedEvent::decode(e).map(|typed| typed.event) {
                Ok(Event::Probe(ProbeEvent::ProbeRunStarted(s))) => {
                    view = Some(ProbeRunView {
                        run: s.run,
                        slot: s.slot,
                        questions: s.questions,
                        completed: None,
                    });
                }
                Ok(Event::Probe(ProbeEvent::ProbeRunCompleted(c))) => {
                    if let Some(v) = &mut view {
                        v.completed = Some(c);
                    }
                }
                // Another category in a probe stream cannot happen; nothing to show for it.
                Ok(_) => {}
                Err(error) => {
                    return Err(CommandError::Load {
                        stream: stream.to_string(),
                        version: error.version,
                        source: *error.reason,
                    }
                    .into());
                }
            }
        }
        out.extend(view);
        slot -= every_c;
    }
    Ok(out)
}

/// Probes each slot as it comes (the first at once) until `stop` turns true. A failing run
/// is logged; its slot stays claimed, and the next slot probes again.
pub async fn run<L: EventLog>(probes: Probes<L>, mut stop: watch::Receiver<bool>) {
    loop {
        let slot = slot_of(probes.desk.now(), probes.every);
        match probes.run_slot(slot).await {
            Ok(Some(done)) => tracing::info!(
                %slot,
                checked = done.checked,
                passed = done.passed,
                "probe run completed"
            ),
            Ok(None) => tracing::debug!(%slot, "this slot is probed already"),
            Err(e) => tracing::warn!(%slot, error = %e, "probe run failed"),
        }
        let next =
            slot + chrono::Duration::from_std(probes.every).unwrap_or(chrono::Duration::days(1));
        let wait = (next - probes.desk.now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = async { stop.wait_for(|s| *s).await.is_ok() } => return,
        }
    }
}
