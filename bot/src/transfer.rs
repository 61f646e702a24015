//! A typed request for a person ("转人工", "I want a human") or to complain ("我要投诉"): the
//! customer has said what they want, so no FAQ answer or list of choices may stand in the way.
//!
//! Rules rather than the intent classifier, because one missed "转人工" costs a customer's
//! trust and the phrases are few: Chinese by the words for a human agent (人工 and its
//! homophone typos 人公 / 人攻 / 仁工, 真人, 活人, 客服 after a verb of reaching) and English
//! by a word for a person together with a word of asking ("talk to", "want", "please"),
//! forgiving one typo in the longer words ("humna", "represenative"). A word for a human in
//! another sense (人工费 "labour cost", 人工智能, "the agent was rude") is not a request.

use serde::{Deserialize, Serialize};

use crate::text::{compact, fold_width, levenshtein};

/// What the customer asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// A person, now.
    Human,
    /// To complain: a person from the complaints team.
    Complaint,
}

/// Forms of 人工 ("manual", i.e. a human agent), with the homophone slips a pinyin keyboard
/// makes.
const RENGONG: [&str; 6] = ["人工", "人公", "人攻", "仁工", "人宫", "人功"];
/// 人工 in words that are not about a human agent.
const RENGONG_OTHER: [&str; 6] = ["费", "智能", "成本", "合成", "湖", "降雨"];
/// Other words for a human agent (a real person, a live one).
const PERSON_ZH: [&str; 4] = ["真人", "活人", "客服专员", "人类"];
/// Verbs of reaching a person that make 客服 or 人 a request (找客服, 转客服, 叫个人).
const REACH_ZH: [&str; 9] = ["转", "找", "要", "接", "叫", "换", "联系", "给我", "帮我"];
/// A complaint asked for: these before 投诉 (我要投诉, 我想投诉, 去消协投诉, 申请投诉).
const COMPLAIN_ZH: [&str; 8] = ["要", "想", "去", "申请", "必须", "马上", "怎么", "帮我"];
/// Words after 投诉 that make it a question about a complaint already made (投诉进度).
const COMPLAINT_STATUS_ZH: [&str; 4] = ["进度", "结果", "处理到", "单号"];

/// English words for a person at the shop, in their canonical spelling.
const PERSON_EN: [&str; 13] = [
    "human",
    "person",
    "agent",
    "representative",
    "rep",
    "operator",
    "somebody",
    "someone",
    "staff",
    "advisor",
    "people",
    "manager",
    "supervisor",
];
/// Words that make a person word a request.
const ASK_EN: [&str; 12] = [
    "want", "need", "talk", "speak", "connect", "transfer", "get", "give", "let", "please", "pls",
    "plz",
];
/// A person word after one of these is someone the customer talks about, not to.
const ABOUT_EN: [&str; 6] = ["the", "your", "that", "this", "his", "her"];
/// Words that make "complain" a request.
const COMPLAIN_ASK_EN: [&str; 9] = [
    "want", "file", "make", "lodge", "raise", "submit", "going", "will", "how",
];

/// What the customer asked for in `text`, if they asked for a person or to complain.
pub fn request(text: &str) -> Option<Request> {
    let c = compact(text);
    if complaint_zh(&c) || complaint_en(&c) {
        return Some(Request::Complaint);
    }
    (human_zh(&c) || human_en(&c)).then_some(Request::Human)
}

/// The CJK text with everything else removed (spaces and punctuation split no words here).
fn cjk_only(c: &str) -> String {
    c.chars()
        .map(fold_width)
        .filter(|ch| crate::text::is_cjk(*ch))
        .collect()
}

fn human_zh(c: &str) -> bool {
    let zh = cjk_only(c);
    if zh.is_empty() {
        return false;
    }
    let rengong = RENGONG.iter().any(|w| {
        zh.match_indices(w).any(|(at, _)| {
            let after = &zh[at + w.len()..];
            !RENGONG_OTHER.iter().any(|o| after.starts_with(o))
        })
    });
    if rengong {
        return true;
    }
    if PERSON_ZH.iter().any(|w| zh.contains(w)) {
        return true;
    }
    // 找客服 / 转客服 / 叫个人来: a verb of reaching right before 客服 or 人.
    let reach_before = |target: &str| {
        zh.match_indices(target).any(|(at, _)| {
            let before = &zh[..at];
            let before = before.strip_suffix('个').unwrap_or(before);
            REACH_ZH.iter().any(|v| before.ends_with(v))
        })
    };
    reach_before("客服")
        || reach_before("人来")
        || zh.contains("不要机器人")
        || zh.contains("不跟机器人")
        || zh.contains("不和机器人")
}

fn complaint_zh(c: &str) -> bool {
    let zh = cjk_only(c);
    zh.match_indices("投诉").any(|(at, w)| {
        let before: String = zh[..at]
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let after = &zh[at + w.len()..];
        let asked = at == 0 || COMPLAIN_ZH.iter().any(|v| before.contains(v));
        asked && !COMPLAINT_STATUS_ZH.iter().any(|s| after.starts_with(s))
    })
}

/// `word` if it is `canonical` or one typo from it (one edit or two neighbours swapped); short
/// words must be exact, since "rep" is one edit from "red".
fn near(word: &str, canonical: &str) -> bool {
    if word == canonical {
        return true;
    }
    if canonical.len() < 5 {
        return false;
    }
    let (a, b): (Vec<char>, Vec<char>) = (word.chars().collect(), canonical.chars().collect());
    if levenshtein(&a, &b) <= 1 {
        return true;
    }
    a.len() == b.len() && {
        let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
        diff.len() == 2
            && diff[1] == diff[0] + 1
            && a[diff[0]] == b[diff[1]]
            && a[diff[1]] == b[diff[0]]
    }
}

/// The canonical form of `word` among `vocabulary`, allowing one typo and a plural -s.
fn canonical<'a>(word: &str, vocabulary: &[&'a str]) -> Option<&'a str> {
    let singular = word.strip_suffix('s').filter(|s| s.len() >= 4);
    vocabulary
        .iter()
        .find(|v| near(word, v) || singular.is_some_and(|s| near(s, v)))
        .copied()
}

fn words(c: &str) -> Vec<&str> {
    c.split(' ')
        .filter(|w| w.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '\''))
        .collect()
}

fn human_en(c: &str) -> bool {
    let words = words(c);
    if words.is_empty() {
        return false;
    }
    let asked = words.iter().any(|w| canonical(w, &ASK_EN).is_some());
    words.iter().enumerate().any(|(i, w)| {
        let Some(person) = canonical(w, &PERSON_EN) else {
            return false;
        };
        let about = i
            .checked_sub(1)
            .is_some_and(|j| ABOUT_EN.contains(&words[j]));
        match person {
            // Vague on their own: "someone real", "a real person", "talk to someone".
            "person" | "someone" | "somebody" | "people" | "staff" => {
                asked
                    && words.iter().any(|w| {
                        matches!(
                            *w,
                            "real" | "live" | "actual" | "talk" | "speak" | "connect" | "transfer"
                        )
                    })
            }
            // "agent", "human please", "representative!": a message of little else asks.
            _ => asked || (words.len() <= 2 && !about),
        }
    })
}

fn complaint_en(c: &str) -> bool {
    let words = words(c);
    let complains = words.iter().position(|w| {
        w.starts_with("complain") || canonical(w, &["complaint", "complain"]).is_some()
    });
    complains.is_some_and(|at| {
        words[..at]
            .iter()
            .any(|w| canonical(w, &COMPLAIN_ASK_EN).is_some() || *w == "i'll")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_requests_for_a_person_are_heard() {
        for line in [
            "转人工",
            "转人工！！",
            "人工客服",
            "人工",
            "人工服务在哪",
            "找真人",
            "我要找真人说话",
            "给我转人工客服谢谢",
            "转 人 工",
            "转人公",
            "人攻客服",
            "仁工",
            "能不能找个客服",
            "我不要机器人，叫个人来",
            "你是真人吗",
            "ｈｉ，转人工",
        ] {
            assert_eq!(request(line), Some(Request::Human), "{line}");
        }
    }

    #[test]
    fn english_requests_for_a_person_are_heard() {
        for line in [
            "I want a human",
            "let me talk to a real person",
            "agent please",
            "Agent!",
            "human",
            "representative",
            "can I speak to a humna please",
            "i need to talk to an agnet",
            "connect me to a live agent",
            "get me a represenative now",
            "Operator please",
            "I want to speak with someone real",
            "transfer me to customer service staff",
            "I want to speak to a manager",
            "HUMAN PLEASE",
        ] {
            assert_eq!(request(line), Some(Request::Human), "{line}");
        }
    }

    #[test]
    fn complaints_are_heard_and_go_their_own_way() {
        for line in [
            "我要投诉",
            "我要投诉你们！",
            "我想投诉这个商家",
            "投诉",
            "我要去消协投诉你们",
            "I want to file a complaint",
            "I want to complain about the courier",
            "how do I make a complaint",
        ] {
            assert_eq!(request(line), Some(Request::Complaint), "{line}");
        }
    }

    #[test]
    fn questions_that_merely_mention_people_are_not_requests() {
        for line in [
            "安装的人工费怎么算",
            "人工智能音箱有货吗",
            "How do I change my delivery address?",
            "the agent was condescending",
            "your agent hung up on me",
            "my parcel is with the delivery person",
            "我的投诉进度怎么样了",
            "快递员态度很差",
            "客服电话是多少",
            "Is this a real leather bag?",
            "the agent",
            "发票怎么开",
            "",
        ] {
            assert_eq!(request(line), None, "{line}");
        }
    }
}
