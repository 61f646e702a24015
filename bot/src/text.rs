//! How text becomes terms, character n-grams and concepts, for indexing and for queries alike.
//!
//! Words come from the same analyzer the search index uses (jieba in search mode, words only,
//! lower-cased; `projections/src/search/analyzer.rs` builds its analyzer from [`analyzer`]), and
//! English words are then reduced by a light suffix stripper so that "refunds", "refunded" and
//! "refund" meet. Character n-grams are taken over a compact form of the text (lower-cased,
//! every run of non-alphanumeric characters one space) and hashed to `u64`: they catch typos
//! (运废 for 运费) and jieba cutting the same phrase differently in two texts.

use std::cell::RefCell;
use std::collections::BTreeSet;

use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer,
};
use tantivy_jieba::JiebaTokenizer;

/// Tokens this long (in bytes) are base64 blobs, pasted logs and the like, not words anyone
/// searches for; tantivy also refuses terms over 64 KiB.
const MAX_TOKEN_BYTES: usize = 64;

/// jieba (search mode), punctuation and whitespace dropped, lower-cased, English words stemmed
/// ([`stem`]).
///
/// jieba search mode also offers the dictionary words inside longer ones (`北京大学` gives
/// `北京`, `大学` and `北京大学`), so a customer who writes a shorter or longer form of a word
/// still meets it. Punctuation and whitespace come out of jieba as tokens too; they are
/// dropped, because a `，` shared by two texts says nothing about their meaning. Stemming is
/// part of the analyzer, not a step after it, so the conversation search index
/// (`projections/src/search/`) finds "refunded" for "refunds" exactly as FAQ retrieval does.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(JiebaTokenizer::new())
        .filter(WORDS_ONLY)
        .filter(LowerCaser)
        .filter(STEMMED)
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .build()
}

thread_local! {
    static ANALYZER: RefCell<TextAnalyzer> = RefCell::new(analyzer());
}

/// The distinct terms of `text` for retrieval and ranking: analyzer tokens (English ones
/// stemmed), in first-seen order.
pub fn terms(text: &str) -> Vec<String> {
    ANALYZER.with(|a| {
        let mut a = a.borrow_mut();
        let mut seen = BTreeSet::new();
        let mut terms = Vec::new();
        let mut stream = a.token_stream(text);
        while let Some(token) = stream.next() {
            if seen.insert(token.text.clone()) {
                terms.push(token.text.clone());
            }
        }
        terms
    })
}

const STOPWORDS: &str = include_str!("../lexicon/stopwords.txt");

/// Whether a (stemmed) term is a function word (`bot/lexicon/stopwords.txt`).
pub fn is_stopword(term: &str) -> bool {
    static SET: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    SET.get_or_init(|| {
        STOPWORDS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
    .contains(term)
}

/// [`terms`] without function words; when nothing else is left, all terms (a query of only
/// function words still deserves candidates).
pub fn content_terms(text: &str) -> Vec<String> {
    let all = terms(text);
    let content: Vec<String> = all.iter().filter(|t| !is_stopword(t)).cloned().collect();
    if content.is_empty() { all } else { content }
}

/// A deliberately small English suffix stripper: enough for plural and tense variants of the
/// shop's vocabulary, without a stemming crate. Words of 4 letters or fewer are left alone.
pub fn stem(word: &str) -> String {
    if !word.bytes().all(|b| b.is_ascii_lowercase()) || word.len() <= 4 {
        return word.to_owned();
    }
    for (suffix, keep) in [
        ("ies", "y"),
        ("ing", ""),
        ("edly", ""),
        ("ed", ""),
        ("es", ""),
        ("ly", ""),
        ("s", ""),
    ] {
        if let Some(stem) = word.strip_suffix(suffix)
            && stem.len() >= 3
            && !(suffix == "s" && stem.ends_with('s'))
        {
            let mut out = stem.to_owned();
            out.push_str(keep);
            // "shipped" -> "shipp" -> "ship"
            let b = out.as_bytes();
            if b.len() >= 4
                && b[b.len() - 1] == b[b.len() - 2]
                && !matches!(b[b.len() - 1], b'l' | b's' | b'z')
            {
                out.pop();
            }
            return out;
        }
    }
    word.to_owned()
}

/// Whether `c` is a CJK ideograph (the scripts the Chinese side of the shop writes in).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF)
}

/// `zh` when the text holds any CJK ideograph, else `en`: the locale a query is answered in.
pub fn guess_locale(text: &str) -> &'static str {
    if text.chars().any(is_cjk) { "zh" } else { "en" }
}

/// Lower-cased, full-width ASCII folded, every run of other characters one space, trimmed.
pub fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        let c = fold_width(c);
        if c.is_alphanumeric() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.extend(c.to_lowercase());
        } else {
            space = true;
        }
    }
    out
}

/// Full-width forms (ＡＢＣ１２３！) as their ASCII twins.
pub fn fold_width(c: char) -> char {
    match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    }
}

/// FNV-1a: a stable hash, so hashed features mean the same in a model file across builds.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn hash_chars(chars: &[char], salt: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
    for c in chars {
        for b in (*c as u32).to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Hashed character n-grams of `compact` for each `n` in `sizes`, with repeats (counts matter
/// to naive Bayes and tf-idf). Spaces take part, so English grams see word boundaries.
pub fn char_ngrams(compact: &str, sizes: &[usize]) -> Vec<u64> {
    let chars: Vec<char> = compact.chars().collect();
    let mut out = Vec::new();
    for &n in sizes {
        if chars.len() < n {
            continue;
        }
        for w in chars.windows(n) {
            if n > 1 && (w[0] == ' ' || w[n - 1] == ' ') {
                continue;
            }
            if n == 1 && w[0] == ' ' {
                continue;
            }
            out.push(hash_chars(w, n as u64));
        }
    }
    out
}

/// Sorted, deduplicated.
pub fn gram_set(compact: &str, sizes: &[usize]) -> Vec<u64> {
    let mut g = char_ngrams(compact, sizes);
    g.sort_unstable();
    g.dedup();
    g
}

/// Character bigrams of each CJK run, as strings: the second indexed field, which still
/// matches when jieba cuts a phrase differently in the query and in the entry.
pub fn cjk_bigrams(compact: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    let chars: Vec<char> = compact.chars().collect();
    for w in chars.windows(2) {
        if is_cjk(w[0]) && is_cjk(w[1]) {
            out.insert(w.iter().collect::<String>());
        }
    }
    out.into_iter().collect()
}

/// Size of the intersection of two sorted, deduplicated slices.
pub fn intersect_count<T: Ord>(a: &[T], b: &[T]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// Dice coefficient of two sorted, deduplicated sets; 0 when both are empty.
pub fn dice<T: Ord>(a: &[T], b: &[T]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 0.0;
    }
    2.0 * intersect_count(a, b) as f64 / (a.len() + b.len()) as f64
}

/// Levenshtein distance over characters, two rows.
pub fn levenshtein(a: &[char], b: &[char]) -> usize {
    if a.is_empty() {
        return b.len();
    }
    if b.is_empty() {
        return a.len();
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// 1 for equal strings, 0 for strings with nothing in common, by edit distance.
pub fn edit_similarity(a: &[char], b: &[char]) -> f64 {
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 0.0;
    }
    1.0 - levenshtein(a, b) as f64 / longest as f64
}

/// A token filter by a plain function over each token: it may rewrite the token, and drops it
/// by returning false.
#[derive(Clone, Copy)]
pub struct TokenEdit(pub fn(&mut Token) -> bool);

/// Drops tokens without a letter or digit in them (punctuation, whitespace, symbols).
pub const WORDS_ONLY: TokenEdit = TokenEdit(|t| t.text.chars().any(char::is_alphanumeric));

/// Puts every token through [`stem`] (which leaves all but plain lower-case English words
/// alone).
pub const STEMMED: TokenEdit = TokenEdit(|t| {
    let stemmed = stem(&t.text);
    if stemmed != t.text {
        t.text = stemmed;
    }
    true
});

impl TokenFilter for TokenEdit {
    type Tokenizer<T: Tokenizer> = TokenEditTokenizer<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> TokenEditTokenizer<T> {
        TokenEditTokenizer {
            inner,
            edit: self.0,
        }
    }
}

#[derive(Clone)]
pub struct TokenEditTokenizer<T> {
    inner: T,
    edit: fn(&mut Token) -> bool,
}

impl<T: Tokenizer> Tokenizer for TokenEditTokenizer<T> {
    type TokenStream<'a> = TokenEditStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        TokenEditStream {
            inner: self.inner.token_stream(text),
            edit: self.edit,
        }
    }
}

pub struct TokenEditStream<S> {
    inner: S,
    edit: fn(&mut Token) -> bool,
}

impl<S: TokenStream> TokenStream for TokenEditStream<S> {
    fn advance(&mut self) -> bool {
        while self.inner.advance() {
            if (self.edit)(self.inner.token_mut()) {
                return true;
            }
        }
        false
    }

    fn token(&self) -> &Token {
        self.inner.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.inner.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_cut_into_words_and_punctuation_is_dropped() {
        let t = terms("我的快递三天了还没有到，怎么办？");
        assert!(t.contains(&"快递".to_owned()), "{t:?}");
        assert!(
            t.iter().all(|t| t.chars().any(char::is_alphanumeric)),
            "{t:?}"
        );
    }

    #[test]
    fn english_is_lower_cased_and_stemmed() {
        let t = terms("Where are my Refunds? Parcels shipped");
        for expected in ["where", "my", "refund", "parcel", "ship"] {
            assert!(t.contains(&expected.to_owned()), "{expected}: {t:?}");
        }
    }

    #[test]
    fn stems_meet() {
        assert_eq!(stem("refunded"), stem("refunds"));
        assert_eq!(stem("deliveries"), "delivery");
        assert_eq!(stem("address"), "address");
        assert_eq!(stem("shipping"), "ship");
        assert_eq!(stem("shipped"), "ship");
    }

    #[test]
    fn compact_folds_width_and_punctuation() {
        assert_eq!(compact("  Ｈｅｌｌｏ，World!!  运费？"), "hello world 运费");
    }

    #[test]
    fn edit_distance() {
        let a: Vec<char> = "运费怎么算".chars().collect();
        let b: Vec<char> = "运废怎么算".chars().collect();
        assert_eq!(levenshtein(&a, &b), 1);
        assert!((edit_similarity(&a, &b) - 0.8).abs() < 1e-9);
    }

    #[test]
    fn ngram_sets_overlap_on_typos() {
        let a = gram_set(&compact("运费怎么算"), &[2]);
        let b = gram_set(&compact("运废怎么算"), &[2]);
        assert_eq!(intersect_count(&a, &b), 2);
    }
}
