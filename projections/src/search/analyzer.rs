//! How text becomes terms, for indexing and for queries alike.
//!
//! jieba (search mode) cuts Chinese into words and also offers the dictionary words inside
//! longer ones (`北京大学` gives `北京`, `大学` and `北京大学`), so a customer who writes a
//! shorter or longer form of a word still meets it. It keeps runs of ASCII letters and digits
//! whole, so English words and numbers come through as words of their own, and English words
//! are stemmed ("refunds", "refunded" and "refund" are one term). Punctuation and
//! whitespace come out of jieba as tokens too; they are dropped, because a `，` or a space
//! shared by two texts says nothing about their meaning and would only make every document
//! match every query. The analyzer itself lives in `kefu_bot::text`, shared with the bot's FAQ
//! retrieval.

use std::collections::BTreeSet;

use tantivy::tokenizer::TextAnalyzer;

/// The name the analyzer is registered under in every index this module opens. It is part of
/// the schema, so it changes whenever the analyzer makes other terms of the same text: an index
/// built by the old analyzer is then refused as incompatible (and rebuilt) instead of quietly
/// missing words. `_stem`: English words stemmed since issue 14.
pub(crate) const TOKENIZER: &str = "kefu_zh_en_stem";

/// The bot's analyzer (`kefu_bot::text::analyzer`): one definition of a word for search and
/// for FAQ retrieval, so a term the bot matches is a term search finds.
pub(crate) fn analyzer() -> TextAnalyzer {
    kefu_bot::text::analyzer()
}

/// The distinct terms the analyzer makes of `text`, in first-seen order.
pub(crate) fn terms(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut terms = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while let Some(token) = stream.next() {
        if seen.insert(token.text.clone()) {
            terms.push(token.text.clone());
        }
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms_of(text: &str) -> Vec<String> {
        terms(&mut analyzer(), text)
    }

    #[test]
    fn chinese_is_cut_into_words_and_punctuation_is_dropped() {
        let terms = terms_of("我的快递三天了还没有到，怎么办？");
        assert!(terms.contains(&"快递".to_owned()), "{terms:?}");
        assert!(terms.contains(&"没有".to_owned()), "{terms:?}");
        assert!(
            terms.iter().all(|t| t.chars().any(char::is_alphanumeric)),
            "{terms:?}"
        );
    }

    #[test]
    fn english_words_pass_through_lower_cased() {
        let terms = terms_of("Where is my Refund? iPhone 15 退款");
        for expected in ["where", "is", "my", "refund", "iphone", "15", "退款"] {
            assert!(
                terms.contains(&expected.to_owned()),
                "{expected}: {terms:?}"
            );
        }
        assert!(!terms.iter().any(|t| t.trim().is_empty()), "{terms:?}");
    }

    #[test]
    fn english_word_forms_meet() {
        for form in ["refund", "refunds", "refunded", "Refunding"] {
            assert_eq!(terms_of(form), ["refund"], "{form}");
        }
    }

    #[test]
    fn mixed_scripts_split_at_the_script_boundary() {
        let terms = terms_of("我买的iPhone坏了");
        assert!(terms.contains(&"iphone".to_owned()), "{terms:?}");
    }
}
