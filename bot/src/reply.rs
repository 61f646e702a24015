//! One customer turn through the bot: the FAQ answer, the turn's emotion, and what the mood
//! changes about the reply. What the workers record as `BotTurnRecorded`, `EmotionAssessed`
//! and, when it comes to that, `HandedToHuman`.

use kefu_domain::conversation::HandoffReason;
use serde::{Deserialize, Serialize};

use crate::BotError;
use crate::emotion::{self, Assessment, ReplyStrategy};
use crate::faq::{CategoryPrior, Decision, Faq, FaqAnswer};
use crate::transfer::{self, Request};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub answer: FaqAnswer,
    pub emotion: Assessment,
    pub strategy: ReplyStrategy,
    /// A typed request for a person (or to complain) hands over first; then anger, whatever
    /// the answer; otherwise a low confidence does.
    pub handoff: Option<HandoffReason>,
    /// What the customer asked for in so many words, if they asked for a person.
    pub request: Option<Request>,
}

/// `history`: the conversation's earlier assessments, oldest first.
pub fn reply(
    faq: &Faq,
    text: &str,
    history: &[Assessment],
    locale: &str,
    prior: Option<&CategoryPrior>,
) -> Result<Reply, BotError> {
    let answer = faq.answer(text, prior)?;
    let emotion = emotion::assess(text);
    let mut turns = history.to_vec();
    turns.push(emotion);
    let strategy = emotion::strategy(&turns, locale);
    let request = transfer::request(text);
    let handoff = if request.is_some() {
        Some(HandoffReason::CustomerAsked)
    } else if strategy.handoff {
        Some(HandoffReason::NegativeEmotion)
    } else if answer.decision == Decision::Handoff {
        Some(HandoffReason::LowConfidence)
    } else {
        None
    };
    Ok(Reply {
        answer,
        emotion,
        strategy,
        handoff,
        request,
    })
}
