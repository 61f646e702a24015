//! Emotion per customer turn (a polarity in [-1, 1] and a mood label), the conversation's trend
//! across turns, and the reply strategy that follows from them.
//!
//! A lexicon with rules, written for kefu (`bot/lexicon/`, Apache-2.0): sentiment words carry
//! a valence and a tag (anger, anxiety, sadness, joy); a negator flips and dampens the next
//! sentiment word within a short window (so "not bad" is mildly positive, 没有不满意 too); an
//! intensifier scales it (太, very), a softener shrinks it (有点, a bit); a negated intensifier
//! softens instead (不太满意, "not very good"); what follows "but"/但是 outweighs what came
//! before; repeated `!`/`？` and shouting in capitals raise the magnitude and point to anger or
//! anxiety; emoji are words. Chinese is scanned by longest match over characters, so
//! 不满意 is one term rather than 不 + 满意. Rules beat a learned model here because the
//! labelled data we may use (product reviews) knows nothing of 催单 or "where is my parcel", and
//! because each rule is a reason an agent can read.
//!
//! **What issue 14 changed** (the bot customers trust). One furious turn hands over
//! ([`STRONG_ANGER`]: polarity at most -0.85, and angry); annoyed turns still need two in a row. A
//! negator or intensifier stops at clause punctuation (`Unit::Boundary`: `，。！？；` and the like,
//! and their ASCII forms), so 没人接，气死我了 stays furious. Comfort follows the mood: neutral and
//! satisfied turns get no soothing prefix, and the lexicon does not read a plain 多久 or the
//! customer's own slip (填错, "typed the wrong") as a grievance, so "地址填错了，能改吗" is
//! answered as it stands.
//!
//! **The learned Chinese model** ([`crate::polarity`], `bot/lexicon/polarity-zh.tsv`) joins the
//! lexicon where it can say something. When it may speak is the review gate
//! (`bot/lexicon/review-gate-zh.tsv`, the same kind of model trained on the reviews against the
//! demo KB's Chinese questions; its threshold is [`REVIEW_GATE`]). On a turn that reads like an
//! opinion its log-odds join the lexicon's sum, and where the lexicon is silent they give the sign
//! (a polarity of ±0.15). On other Chinese statements of 9 CJK characters or more, never questions,
//! they join the sum outside a ±0.5 dead zone. Lines of fewer than 6 CJK characters are the
//! lexicon's, but for filling its silence on a short opinion that is not a question ([`Blend`]);
//! elsewhere the lexicon decides alone, so a plain question stays neutral. Figures, and what is
//! still behind: BENCHMARKS.md, "Chinese polarity".

use std::collections::HashMap;
use std::sync::OnceLock;

use kefu_domain::conversation::{EMOTION_TREND_THRESHOLD, EmotionLabel, EmotionTrend};
use serde::{Deserialize, Serialize};

use crate::polarity::PolarityModel;
use crate::text::{fold_width, is_cjk};

/// Recorded with every assessment (`EmotionAssessed::model_version`).
pub const MODEL_VERSION: &str = "emotion-lexicon-3:polarity-zh-3";

const LEXICON_EN: &str = include_str!("../lexicon/emotion-en.tsv");
const LEXICON_ZH: &str = include_str!("../lexicon/emotion-zh.tsv");
const RULES: &str = include_str!("../lexicon/rules.tsv");

/// The five moods the reply strategy distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mood {
    Angry,
    Anxious,
    Sad,
    Neutral,
    Satisfied,
}

impl Mood {
    pub const ALL: [Mood; 5] = [
        Mood::Angry,
        Mood::Anxious,
        Mood::Sad,
        Mood::Neutral,
        Mood::Satisfied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mood::Angry => "angry",
            Mood::Anxious => "anxious",
            Mood::Sad => "sad",
            Mood::Neutral => "neutral",
            Mood::Satisfied => "satisfied",
        }
    }

    pub fn parse(s: &str) -> Option<Mood> {
        Mood::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The domain's coarser label, which `EmotionAssessed` records.
    pub fn domain_label(self) -> EmotionLabel {
        match self {
            Mood::Angry => EmotionLabel::Angry,
            Mood::Anxious | Mood::Sad => EmotionLabel::Negative,
            Mood::Neutral => EmotionLabel::Neutral,
            Mood::Satisfied => EmotionLabel::Positive,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tag {
    None,
    Anger,
    Anxiety,
    Sadness,
    Joy,
}

impl Tag {
    fn parse(s: &str) -> Tag {
        match s {
            "anger" => Tag::Anger,
            "anxiety" => Tag::Anxiety,
            "sadness" => Tag::Sadness,
            "joy" => Tag::Joy,
            _ => Tag::None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Unit {
    Word {
        valence: f64,
        tag: Tag,
    },
    Negator(f64),
    Intensifier(f64),
    /// "but", 但是: what follows counts more.
    Contrast,
    /// Clause punctuation (，。！？；): a negator or intensifier governs no further.
    Boundary,
    Other,
}

/// One turn's assessment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// From -1 (furious) to 1 (delighted).
    pub polarity: f64,
    pub mood: Mood,
}

impl Assessment {
    /// An earlier turn's assessment as `EmotionAssessed` recorded it, for the history
    /// [`strategy`] reads: the customer's moods as they were judged then, not as today's
    /// model would judge their words again. The recorded label does not tell anxious from
    /// sad; `strategy` reads earlier turns only as angry, negative or not, so either does.
    pub fn recorded(score: f64, label: EmotionLabel) -> Assessment {
        let mood = match label {
            EmotionLabel::Angry => Mood::Angry,
            EmotionLabel::Negative => Mood::Sad,
            EmotionLabel::Neutral => Mood::Neutral,
            EmotionLabel::Positive => Mood::Satisfied,
        };
        Assessment {
            polarity: score,
            mood,
        }
    }
}

struct Lexicon {
    /// Chinese terms and emoji, by their text; matched longest first.
    zh: HashMap<String, Unit>,
    zh_longest: usize,
    /// English words and phrases (space-joined).
    en: HashMap<String, Unit>,
    en_longest: usize,
}

fn lexicon() -> &'static Lexicon {
    static LEXICON: OnceLock<Lexicon> = OnceLock::new();
    LEXICON.get_or_init(|| {
        let mut zh = HashMap::new();
        let mut en = HashMap::new();
        let rows = |text: &'static str| {
            text.lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(|l| l.split('\t').collect::<Vec<_>>())
        };
        for (text, zh_side) in [(LEXICON_EN, false), (LEXICON_ZH, true)] {
            for cols in rows(text) {
                let unit = Unit::Word {
                    valence: cols[1].parse().expect("lexicon valence"),
                    tag: Tag::parse(cols.get(2).copied().unwrap_or("-")),
                };
                let table = if zh_side { &mut zh } else { &mut en };
                table.insert(cols[0].to_owned(), unit);
            }
        }
        for cols in rows(RULES) {
            let value: f64 = cols[2].parse().expect("rule value");
            let unit = match cols[0] {
                "neg" => Unit::Negator(value),
                "int" => Unit::Intensifier(value),
                _ => Unit::Word {
                    valence: value,
                    tag: Tag::parse(cols.get(3).copied().unwrap_or("-")),
                },
            };
            let term = cols[1].to_owned();
            let cjk_or_symbol = term.chars().any(|c| is_cjk(c) || !c.is_ascii());
            if cjk_or_symbol {
                zh.insert(term, unit);
            } else {
                en.insert(term, unit);
            }
        }
        for c in ["but", "however", "though", "although"] {
            en.insert(c.to_owned(), Unit::Contrast);
        }
        for c in ["但是", "但", "可是", "不过", "然而", "就是"] {
            zh.insert(c.to_owned(), Unit::Contrast);
        }
        let zh_longest = zh.keys().map(|k| k.chars().count()).max().unwrap_or(1);
        let en_longest = en.keys().map(|k| k.split(' ').count()).max().unwrap_or(1);
        Lexicon {
            zh,
            zh_longest,
            en,
            en_longest,
        }
    })
}

/// Splits a turn into units: English words and phrases from the English table, CJK text and
/// emoji by longest match in the Chinese table.
fn units(text: &str) -> Vec<Unit> {
    let lex = lexicon();
    let chars: Vec<char> = text.chars().map(fold_width).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '\'' || c == '’' {
            // An English word run (apostrophes kept: don't, can't).
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '\'' || chars[i] == '’')
            {
                i += 1;
            }
            let word: String = chars[start..i]
                .iter()
                .map(|c| {
                    if *c == '’' {
                        '\''
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect();
            out.push(EnWord(word));
            continue;
        }
        if c.is_whitespace() || c.is_ascii_digit() {
            i += 1;
            continue;
        }
        if is_clause_end(c) {
            out.push(Known(Unit::Boundary));
            i += 1;
            continue;
        }
        if c.is_ascii_punctuation() {
            // Punctuation ends a phrase.
            out.push(EnWord(String::new()));
            i += 1;
            continue;
        }
        let mut matched = None;
        let max = lex.zh_longest.min(chars.len() - i);
        for len in (1..=max).rev() {
            let candidate: String = chars[i..i + len].iter().collect();
            if let Some(u) = lex.zh.get(&candidate) {
                matched = Some((*u, len));
                break;
            }
        }
        match matched {
            Some((u, len)) => {
                out.push(Known(u));
                i += len;
            }
            None => {
                out.push(Known(Unit::Other));
                i += 1;
            }
        }
    }
    // English phrases: join words greedily, longest first.
    let mut units = Vec::with_capacity(out.len());
    let mut k = 0;
    while k < out.len() {
        match &out[k] {
            Known(u) => {
                units.push(*u);
                k += 1;
            }
            EnWord(w) if w.is_empty() => {
                k += 1;
            }
            EnWord(_) => {
                let mut found = None;
                for n in (1..=lex.en_longest).rev() {
                    if k + n > out.len() {
                        continue;
                    }
                    let words: Option<Vec<&str>> = out[k..k + n]
                        .iter()
                        .map(|p| match p {
                            EnWord(w) if !w.is_empty() => Some(w.as_str()),
                            _ => None,
                        })
                        .collect();
                    let Some(words) = words else { continue };
                    let phrase = words.join(" ");
                    if let Some(u) = lex.en.get(&phrase) {
                        found = Some((*u, n));
                        break;
                    }
                    if n == 1 {
                        // "didn't" → negator even when spelled without the table's form.
                        if phrase.ends_with("n't") || phrase.ends_with("nt'") {
                            found = Some((Unit::Negator(-0.6), 1));
                        }
                    }
                }
                match found {
                    Some((u, n)) => {
                        units.push(u);
                        k += n;
                    }
                    None => {
                        units.push(Unit::Other);
                        k += 1;
                    }
                }
            }
        }
    }
    units
}

/// Punctuation that ends a clause (full-width forms are folded before this is asked). 没人接，
/// 气死我了: the 没 is about nobody answering, not about being furious.
fn is_clause_end(c: char) -> bool {
    matches!(
        c,
        ',' | '.'
            | ';'
            | ':'
            | '!'
            | '?'
            | '\n'
            | '，'
            | '。'
            | '；'
            | '：'
            | '、'
            | '…'
            | '～'
            | '~'
    )
}

enum Piece {
    EnWord(String),
    Known(Unit),
}
use Piece::{EnWord, Known};

/// How many units after a negator or intensifier it still governs.
const WINDOW: usize = 3;

/// Assesses one customer turn.
pub fn assess(text: &str) -> Assessment {
    assess_with(text, &Learned::shipped())
}

/// [`assess`] with the learned Chinese models and the way their say is blended with the
/// lexicon's given: what ships, or candidates being trained and compared
/// (`examples/train_polarity_zh.rs`).
pub fn assess_with(text: &str, learned: &Learned) -> Assessment {
    let units = units(text);
    let mut total = 0.0;
    let mut tags: [f64; 5] = [0.0; 5];
    let mut negation: Option<(f64, usize)> = None;
    let mut intensity: Option<(f64, usize)> = None;
    let mut weight = 1.0;
    for (i, unit) in units.iter().enumerate() {
        match *unit {
            Unit::Negator(m) => {
                // Two negators in a row cancel (不是不好).
                negation = match negation {
                    Some((prev, at)) if i - at <= 1 => Some((prev * m / 0.36, i)),
                    _ => Some((m, i)),
                }
            }
            Unit::Intensifier(m) => intensity = Some((m, i)),
            Unit::Contrast => {
                total *= 0.5;
                for t in &mut tags {
                    *t *= 0.5;
                }
                weight = 1.5;
                negation = None;
                intensity = None;
            }
            Unit::Word { valence, tag } => {
                let mut v = valence;
                let int = intensity
                    .filter(|(_, at)| i - at <= WINDOW)
                    .map_or(1.0, |(m, _)| m);
                let negated = negation.filter(|(_, at)| i - at <= WINDOW);
                match negated {
                    Some((m, _)) => {
                        // A negated intensifier softens: 不太满意 is only a little unhappy.
                        let scale = if int > 1.0 { 1.0 / int } else { int };
                        v *= m * scale;
                    }
                    None => v *= int,
                }
                v *= weight;
                total += v;
                let tag = if negated.is_some() && v > 0.0 {
                    Tag::Joy
                } else if negated.is_some() {
                    Tag::None
                } else {
                    tag
                };
                let slot = match tag {
                    Tag::None => 0,
                    Tag::Anger => 1,
                    Tag::Anxiety => 2,
                    Tag::Sadness => 3,
                    Tag::Joy => 4,
                };
                tags[slot] += v.abs();
                negation = None;
                intensity = None;
            }
            Unit::Boundary => {
                negation = None;
                intensity = None;
            }
            Unit::Other => {}
        }
    }

    let say = learned.say(text);
    match say {
        Some(Say::Review(z)) => {
            total = learned.blend.lexicon_on_reviews * total + learned.blend.review_weight * z
        }
        Some(Say::Statement(z)) => total += learned.blend.statement_weight * z,
        Some(Say::Silence(_)) | None => {}
    }
    let cues = Cues::of(text);
    if total != 0.0 {
        let questions = if cues.questions >= 2 {
            cues.questions.min(4) as f64
        } else {
            0.0
        };
        total *= 1.0
            + 0.12 * cues.exclamations.min(4) as f64
            + 0.1 * questions
            + 0.2 * f64::from(cues.shouting);
    }
    let fills = match say {
        Some(Say::Review(z)) => Some(z).filter(|_| total.abs() < unsquash(LEARNED_MIN_POLARITY)),
        Some(Say::Silence(z)) => Some(z).filter(|_| total == 0.0),
        _ => None,
    };
    if let Some(z) = fills
        && z != 0.0
    {
        // An opinion the lexicon has no word for ("用了两天就死机", "分区不合理"): the model's
        // sign, mildly.
        total = z.signum() * unsquash(LEARNED_MIN_POLARITY);
    }
    if total < 0.0 {
        tags[1] += 0.8 * cues.exclamations.saturating_sub(1).min(3) as f64
            + 1.5 * f64::from(cues.shouting);
        tags[2] += 0.6 * cues.questions.saturating_sub(1).min(3) as f64;
    } else if total == 0.0 && cues.questions >= 2 {
        // "？？？" alone is impatience, not calm.
        total = -0.8 - 0.3 * cues.questions.min(4) as f64;
        tags[2] += 1.0;
    } else if total == 0.0 && cues.exclamations >= 3 {
        total = -1.0;
        tags[1] += 1.0;
    }
    let polarity = squash(total);
    Assessment {
        polarity,
        mood: mood(polarity, &tags),
    }
}

/// The least polarity a text the review gate opens for gets, in the model's direction, when the
/// lexicon has next to nothing to say: above the ±0.1 band every evaluation calls neutral,
/// below the band of a clear mood.
const LEARNED_MIN_POLARITY: f64 = 0.15;

/// How the learned Chinese model's log-odds are weighed against the lexicon's valences, and
/// when it may speak at all. Chosen by `examples/train_polarity_zh.rs` on lines no choice is
/// ever measured on again (the dev fifth of the reviews, with models trained on the other four,
/// and `bot/data/emotion-zh-chat-dev.jsonl`); it prints the comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Blend {
    /// Where the review gate is open: the lexicon's sum is scaled by this...
    pub lexicon_on_reviews: f64,
    /// ...and the model's log-odds by this, and the two added.
    pub review_weight: f64,
    /// Where the gate is shut, on a longer statement: the model's log-odds (outside a dead zone)
    /// added to the lexicon's sum with this weight.
    pub statement_weight: f64,
    /// The review gate's log-odds above which a text reads as an opinion of goods or service.
    pub gate: f64,
    /// Below this many CJK characters the lexicon speaks alone, gate or no gate: on a phrase of
    /// a word or two (有点慢, 没有不满意) the model's log-odds rest on one or two grams, while
    /// the lexicon's rules of negation and softening are exact.
    pub min_chars: usize,
    /// From this many CJK characters up to `min_chars`, the model may still fill the lexicon's
    /// silence on a short opinion ("分区不合理"), never change what the lexicon said.
    pub fill_min_chars: usize,
}

impl Blend {
    /// What ships.
    pub const SHIPPED: Blend = Blend {
        lexicon_on_reviews: 1.0,
        review_weight: 1.5,
        statement_weight: 0.8,
        gate: REVIEW_GATE,
        min_chars: 6,
        fill_min_chars: 2,
    };
}

/// The review gate's log-odds above which the learned model decides the sign. Chosen by the
/// training example (`train_polarity_zh`) on lines neither model trained on: with the gate
/// trained on four fifths of the reviews and half the KB's Chinese questions, 2.0 opens for
/// 98.7% of the dev fifth of the reviews and for 6.1% of the other half of the KB's questions.
pub const REVIEW_GATE: f64 = 2.0;
/// Where the gate stays shut, longer Chinese statements still hear the model, as one voice
/// beside the lexicon: shorter lines are the lexicon's (on a handful of characters the
/// log-odds rest on one or two of them), and log-odds this close to even say nothing.
const STATEMENT_MIN_CHARS: usize = 9;
const STATEMENT_DEAD_ZONE: f64 = 0.5;

/// The learned Chinese models ([`crate::polarity`]) an assessment consults, and their blend.
#[derive(Debug, Clone, Copy)]
pub struct Learned<'a> {
    pub polarity: &'a PolarityModel,
    pub gate: &'a PolarityModel,
    pub blend: Blend,
}

impl Learned<'static> {
    /// The models and blend that ship.
    pub fn shipped() -> Learned<'static> {
        Learned {
            polarity: PolarityModel::shipped(),
            gate: PolarityModel::review_gate(),
            blend: Blend::SHIPPED,
        }
    }
}

/// What the learned Chinese model has to say on a turn.
#[derive(Debug, Clone, Copy)]
enum Say {
    /// The text reads like an opinion of goods or service, as the reviews it learned from do
    /// (the review gate is open): one voice beside the lexicon's words, and the turn's sign
    /// where they are silent.
    Review(f64),
    /// A longer statement that reads like a request to a help desk: one voice beside the
    /// lexicon's words, outside a dead zone.
    Statement(f64),
    /// A short opinion (the gate open, no question): the turn's sign only where the lexicon
    /// has no word at all.
    Silence(f64),
}

impl Learned<'_> {
    /// The model learned from reviews, which all carry a sign; on "怎么修改收货地址" it would
    /// still give one, so on questions and short lines the gate must open for it to speak at
    /// all, and the lexicon, which keeps a plain question neutral, decides alone.
    fn say(&self, text: &str) -> Option<Say> {
        let cjk = text.chars().filter(|c| is_cjk(*c)).count();
        if cjk < self.blend.fill_min_chars {
            return None;
        }
        if cjk < self.blend.min_chars {
            return (self.gate.logit(text) > self.blend.gate && !is_question(text))
                .then(|| Say::Silence(self.polarity.logit(text)));
        }
        if self.gate.logit(text) > self.blend.gate {
            return Some(Say::Review(self.polarity.logit(text)));
        }
        if cjk < STATEMENT_MIN_CHARS || is_question(text) {
            return None;
        }
        let z = self.polarity.logit(text);
        Some(Say::Statement(
            z.signum() * (z.abs() - STATEMENT_DEAD_ZONE).max(0.0),
        ))
    }
}

/// A question by its mark or its question words.
fn is_question(text: &str) -> bool {
    let t = text.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '?' && c != '？');
    t.ends_with(['?', '？', '吗', '呢', '么'])
        || [
            "怎么",
            "如何",
            "多久",
            "什么时候",
            "能不能",
            "可不可以",
            "是否",
            "哪里",
            "几天",
        ]
        .iter()
        .any(|w| text.contains(w))
}

/// Maps an unbounded sum of valences into [-1, 1]; about ±0.7 for one strong word.
fn squash(total: f64) -> f64 {
    (total / (total * total + 6.0).sqrt()).clamp(-1.0, 1.0)
}

/// The sum [`squash`] maps to `polarity` (|polarity| < 1).
fn unsquash(polarity: f64) -> f64 {
    polarity * (6.0 / (1.0 - polarity * polarity)).sqrt()
}

fn mood(polarity: f64, tags: &[f64; 5]) -> Mood {
    if polarity >= 0.2 {
        return Mood::Satisfied;
    }
    if polarity > -0.15 {
        return Mood::Neutral;
    }
    let (anger, anxiety, sadness) = (tags[1], tags[2], tags[3]);
    if polarity <= -0.8 && anger >= sadness.max(anxiety) * 0.5 {
        return Mood::Angry;
    }
    if anger > anxiety && anger > sadness {
        return if polarity <= -0.5 {
            Mood::Angry
        } else {
            Mood::Anxious
        };
    }
    if sadness >= anxiety && sadness > 0.0 {
        return Mood::Sad;
    }
    if anxiety > 0.0 {
        return Mood::Anxious;
    }
    if polarity <= -0.75 {
        Mood::Angry
    } else {
        Mood::Sad
    }
}

#[derive(Debug, Default)]
struct Cues {
    /// The longest run of `!`/`！`.
    exclamations: usize,
    /// The longest run of `?`/`？`.
    questions: usize,
    /// A word of 3+ capital letters (and the text not all capitals-free).
    shouting: bool,
}

impl Cues {
    fn of(text: &str) -> Cues {
        let mut cues = Cues::default();
        let (mut ex, mut q) = (0, 0);
        for c in text.chars() {
            match c {
                '!' | '！' => {
                    ex += 1;
                    q = 0;
                }
                '?' | '？' => {
                    q += 1;
                    ex = 0;
                }
                _ => {
                    ex = 0;
                    q = 0;
                }
            }
            cues.exclamations = cues.exclamations.max(ex);
            cues.questions = cues.questions.max(q);
        }
        cues.shouting = text
            .split(|c: char| !c.is_ascii_alphabetic())
            .any(|w| w.len() >= 3 && w.bytes().all(|b| b.is_ascii_uppercase()));
        cues
    }
}

/// The conversation's mood compared with the turns before: the last score against the mean of
/// up to two before it, with the domain's threshold.
pub fn trend(polarities: &[f64]) -> EmotionTrend {
    let Some((last, before)) = polarities.split_last() else {
        return EmotionTrend::Steady;
    };
    let recent: Vec<f64> = before.iter().rev().take(2).copied().collect();
    if recent.is_empty() {
        return EmotionTrend::Steady;
    }
    let mean = recent.iter().sum::<f64>() / recent.len() as f64;
    if last - mean > EMOTION_TREND_THRESHOLD {
        EmotionTrend::Improving
    } else if mean - last > EMOTION_TREND_THRESHOLD {
        EmotionTrend::Worsening
    } else {
        EmotionTrend::Steady
    }
}

/// What the bot does about the customer's mood.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyStrategy {
    /// A sentence to put before the answer, in the customer's language.
    pub soothing: Option<String>,
    /// How many places to move the conversation up its queue if it reaches one.
    pub priority_bump: u8,
    /// Hand to a human now (`HandoffReason::NegativeEmotion`).
    pub handoff: bool,
    pub trend: EmotionTrend,
}

/// At or below this polarity one angry turn is enough to hand over: a customer this furious
/// (insults, "worst service ever", a row of ！！！ over a grievance) is not calmed by an FAQ
/// answer, while a merely annoyed one ("I'm really annoyed", "the parcel is late!!!") gets
/// one answer first.
pub const STRONG_ANGER: f64 = -0.85;

/// Hand over on strong anger in one turn ([`STRONG_ANGER`]), the last two turns angry, or
/// three negative turns getting worse. Only a turn with a mood gets words of comfort: a
/// neutral question ("how do I change my address") is answered as it stands.
pub fn strategy(history: &[Assessment], locale: &str) -> ReplyStrategy {
    let polarities: Vec<f64> = history.iter().map(|a| a.polarity).collect();
    let trend = trend(&polarities);
    let Some(last) = history.last() else {
        return ReplyStrategy {
            soothing: None,
            priority_bump: 0,
            handoff: false,
            trend,
        };
    };
    let angry_streak = history
        .iter()
        .rev()
        .take_while(|a| a.mood == Mood::Angry)
        .count();
    let negative_streak = history
        .iter()
        .rev()
        .take_while(|a| a.mood.domain_label().is_negative())
        .count();
    let furious = last.mood == Mood::Angry && last.polarity <= STRONG_ANGER;
    let handoff =
        furious || angry_streak >= 2 || (negative_streak >= 3 && trend == EmotionTrend::Worsening);
    let zh = locale.starts_with("zh");
    let soothing = match last.mood {
        Mood::Angry => Some(if zh {
            "非常抱歉给您带来不好的体验，我们马上为您处理。"
        } else {
            "I'm very sorry about this; let's get it sorted right away."
        }),
        Mood::Anxious => Some(if zh {
            "请您别着急，我来帮您查一下。"
        } else {
            "I understand this is urgent; let me check for you."
        }),
        Mood::Sad => Some(if zh {
            "很抱歉让您失望了，我们一定尽力帮您解决。"
        } else {
            "I'm sorry this has been disappointing; we'll do our best to fix it."
        }),
        Mood::Neutral | Mood::Satisfied => None,
    };
    let priority_bump = match last.mood {
        Mood::Angry => 2,
        Mood::Anxious | Mood::Sad if trend == EmotionTrend::Worsening => 1,
        _ => 0,
    } + u8::from(handoff);
    ReplyStrategy {
        soothing: soothing.map(str::to_owned),
        priority_bump,
        handoff,
        trend,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text;

    fn p(text: &str) -> f64 {
        assess(text).polarity
    }

    #[test]
    fn negation_flips_sign() {
        assert!(p("good") > 0.0 && p("not good") < 0.0);
        assert!(p("bad") < 0.0 && p("not bad") > 0.0);
        assert!(p("满意") > 0.0 && p("不满意") < 0.0);
        assert!(p("没有不满意") > 0.0);
        assert!(p("不是很差") > 0.0);
        assert!(p("不是很满意") < 0.0);
    }

    #[test]
    fn intensifier_raises_magnitude_and_softener_lowers_it() {
        assert!(p("very bad") < p("bad"));
        assert!(p("太差了") < p("差"));
        assert!(p("有点慢") > p("慢"));
        assert!(p("a bit slow") > p("slow"));
    }

    #[test]
    fn repeated_exclamation_raises_anger() {
        let calm = assess("the parcel is late");
        let loud = assess("the parcel is late!!!");
        assert!(loud.polarity < calm.polarity);
        assert_eq!(loud.mood, Mood::Angry);
        assert!(p("怎么还没到？？？") < p("怎么还没到"));
    }

    #[test]
    fn emoji_count() {
        assert!(p("ok 👍") > p("ok"));
        assert!(p("到货了😡") < 0.0);
        assert_eq!(assess("😭😭").mood, Mood::Sad);
    }

    #[test]
    fn plain_questions_are_neutral() {
        assert_eq!(assess("How do I change my address?").mood, Mood::Neutral);
        assert_eq!(assess("发票怎么开").mood, Mood::Neutral);
    }

    #[test]
    fn trend_follows_the_last_turns() {
        assert_eq!(trend(&[0.0, -0.5]), EmotionTrend::Worsening);
        assert_eq!(trend(&[-0.8, -0.7, 0.2]), EmotionTrend::Improving);
        assert_eq!(trend(&[-0.3, -0.35]), EmotionTrend::Steady);
        assert_eq!(trend(&[]), EmotionTrend::Steady);
    }

    /// Earlier turns read back from their recorded label and score lead to the strategy their
    /// assessments led to.
    #[test]
    fn recorded_assessments_keep_the_strategy() {
        let lines = [
            "怎么还没发货？？",
            "东西坏了，有点失望",
            "the parcel is late!!!",
            "你们这什么破服务！！！",
            "发票怎么开",
            "谢谢，很满意",
        ];
        for a in lines {
            for b in lines {
                for last in lines {
                    let history = [assess(a), assess(b), assess(last)];
                    let recorded: Vec<Assessment> = history[..2]
                        .iter()
                        .map(|x| Assessment::recorded(x.polarity, x.mood.domain_label()))
                        .chain([history[2]])
                        .collect();
                    assert_eq!(
                        strategy(&recorded, "zh"),
                        strategy(&history, "zh"),
                        "{a} / {b} / {last}"
                    );
                }
            }
        }
    }

    #[test]
    fn sustained_anger_hands_off() {
        let angry = Assessment {
            polarity: -0.9,
            mood: Mood::Angry,
        };
        let calm = Assessment {
            polarity: 0.0,
            mood: Mood::Neutral,
        };
        let annoyed = Assessment {
            polarity: -0.7,
            mood: Mood::Angry,
        };
        assert!(!strategy(&[calm, annoyed], "en").handoff);
        assert!(strategy(&[calm, annoyed, annoyed], "en").handoff);
        assert!(strategy(&[calm, angry], "en").handoff, "one furious turn");
        let s = strategy(&[calm, angry, angry], "zh-CN");
        assert!(s.handoff);
        assert!(s.soothing.is_some() && s.priority_bump > 0);
        assert!(!strategy(&[calm], "en").handoff);
    }

    /// The negation in 没人接 ends at the comma: 气死我了 stays furious, and one such turn hands
    /// over.
    #[test]
    fn negation_stops_at_clause_punctuation() {
        let line = "你们这什么破服务！！！快递一个星期了还没到，打客服电话也没人接，气死我了！！！";
        let a = assess(line);
        assert_eq!(a.mood, Mood::Angry, "{a:?}");
        assert!(a.polarity <= STRONG_ANGER, "{a:?}");
        assert!(strategy(&[a], "zh").handoff);
        assert!(
            p("没人接，气死我了") < p("气死我了") * 0.5,
            "not flipped, not dampened"
        );
        assert!(p("not bad") > 0.0 && p("not, bad") < 0.0);
        assert!(p("没有，很满意") > 0.0);
    }

    #[test]
    fn one_furious_turn_hands_over_and_an_annoyed_one_does_not() {
        for line in [
            "你们太垃圾了，再也不买了！",
            "WORST SERVICE EVER",
            "This is ridiculous, I've waited two weeks!!!",
        ] {
            let a = assess(line);
            assert!(strategy(&[a], "en").handoff, "{line}: {a:?}");
        }
        for line in [
            "I'm really annoyed",
            "the parcel is late!!!",
            "快递怎么还没到",
            "有点慢",
        ] {
            let a = assess(line);
            assert!(!strategy(&[a], "en").handoff, "{line}: {a:?}");
        }
    }

    /// Comfort is for a mood: a plain question about an address, a refund's timing or an
    /// order placed wrongly is answered as it stands, in either language.
    #[test]
    fn a_short_opinion_the_lexicon_has_no_word_for_gets_the_models_sign() {
        // Lines of the kind the reviews are full of ("cons: 1. the partitioning is poor"):
        // before the model could fill the lexicon's silence they read neutral.
        for line in ["分区不合理", "没有电梯"] {
            let p = assess(line).polarity;
            assert!(p < -0.1, "{line}: {p}");
            assert!(p > -0.2, "{line}: only mildly, the model's sign: {p}");
        }
        // It only fills silence: a short question stays neutral, the lexicon's words decide.
        for line in ["能开发票吗", "怎么改地址", "在吗"] {
            assert_eq!(assess(line).polarity, 0.0, "{line}");
        }
        let lexicon_only = Learned {
            blend: Blend {
                fill_min_chars: Blend::SHIPPED.min_chars,
                ..Blend::SHIPPED
            },
            ..Learned::shipped()
        };
        assert_eq!(assess_with("分区不合理", &lexicon_only).polarity, 0.0);
        assert_eq!(
            assess_with("发错货了", &lexicon_only),
            assess("发错货了"),
            "where the lexicon speaks, the fill changes nothing"
        );
    }

    #[test]
    fn neutral_questions_get_no_comfort_and_moods_get_their_own() {
        for line in [
            "我想修改收货地址",
            "地址填错了，能改吗",
            "怎么修改收货地址？",
            "退款多久到账",
            "下单后多久发货",
            "数量买错了",
            "How do I change my delivery address?",
            "I typed the wrong address, can I change it?",
        ] {
            let a = assess(line);
            let s = strategy(&[a], text::guess_locale(line));
            assert_eq!(
                (a.mood, &s.soothing),
                (Mood::Neutral, &None),
                "{line}: {a:?}"
            );
        }
        let anxious = strategy(&[assess("怎么还没发货？？")], "zh");
        assert_eq!(
            anxious.soothing.as_deref(),
            Some("请您别着急，我来帮您查一下。")
        );
        let sad = strategy(&[assess("东西坏了，有点失望")], "zh");
        assert_eq!(
            sad.soothing.as_deref(),
            Some("很抱歉让您失望了，我们一定尽力帮您解决。")
        );
    }

    proptest::proptest! {
        #[test]
        fn polarity_stays_in_range(text in "\\PC{0,60}") {
            let a = assess(&text);
            proptest::prop_assert!((-1.0..=1.0).contains(&a.polarity));
        }
    }
}
