//! Code-aware tokenization.
//!
//! A *word* is a maximal run of letters, digits, `_` and `.` (so `dbutils.secrets.get`,
//! `df.toPandas` and `customer_id` are words; `(`, `"`, `,`, spaces and the rest separate them). Each word
//! is indexed as its *parts* — split at `.`, `_` and case changes (`toPandas` → `to`, `pandas`;
//! `HTTPServer` → `http`, `server`), lower-cased — at consecutive positions, and, when it has more than one
//! part, also whole (lower-cased, at the position of its first part). The query side splits a word the same
//! way and searches its parts as a phrase, so `secrets.get`, `to_csv`, `customer`, `toPandas` and the whole
//! `dbutils.secrets.get` all find `dbutils.secrets.get(...)`/`df.toPandas().to_csv(...)`/`customer_id`,
//! matching is case-insensitive, and phrase queries over several words keep working because parts of
//! consecutive words sit at consecutive positions.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Name the tokenizer is registered under.
pub const CODE_TOKENIZER: &str = "nbtrail_code";
/// Name of the keyword normaliser (whole value, lower-cased).
pub const KEYWORD_TOKENIZER: &str = "nbtrail_keyword";

/// Parts longer than this are not indexed (minified blobs, base64): they would only bloat the index.
const MAX_PART_BYTES: usize = 80;
/// Whole words longer than this are indexed by their parts only.
const MAX_WORD_BYTES: usize = 160;

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '.'
}

/// The words of `text` as byte ranges.
pub fn words(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        loop {
            let (start, c) = chars.next()?;
            if !is_word_char(c) {
                continue;
            }
            let mut end = start + c.len_utf8();
            while let Some(&(i, c)) = chars.peek() {
                if !is_word_char(c) {
                    break;
                }
                end = i + c.len_utf8();
                chars.next();
            }
            // Trim separators at the edges: `.to_csv` → `to_csv`, `__init__` keeps its letters.
            let w = &text[start..end];
            let trimmed = w.trim_matches(|c| c == '.' || c == '_');
            if trimmed.is_empty() {
                continue;
            }
            let lead = w.len() - w.trim_start_matches(['.', '_']).len();
            return Some((start + lead, start + lead + trimmed.len()));
        }
    })
}

/// The parts of a word as byte ranges relative to the word.
pub fn parts(word: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let chars: Vec<(usize, char)> = word.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        if c == '.' || c == '_' {
            if let Some(s) = start.take() {
                out.push((s, i));
            }
            continue;
        }
        if let Some(s) = start {
            let prev = chars[k - 1].1;
            let next = chars.get(k + 1).map(|&(_, n)| n);
            // lower→Upper (`toPandas`), or the last capital of an acronym before lower (`HTTPServer`).
            let boundary = (prev.is_lowercase() && c.is_uppercase())
                || (prev.is_uppercase()
                    && c.is_uppercase()
                    && next.is_some_and(char::is_lowercase));
            if boundary {
                out.push((s, i));
                start = Some(i);
            }
        } else {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s, word.len()));
    }
    out
}

/// The lower-cased parts of a query word (what the query side searches as a phrase).
pub fn query_parts(word: &str) -> Vec<String> {
    parts(word)
        .into_iter()
        .map(|(a, b)| word[a..b].to_lowercase())
        .filter(|p| p.len() <= MAX_PART_BYTES)
        .collect()
}

/// The tokens of `text`, as indexed.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut stream = CodeTokenStream::new(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token.clone());
    }
    out
}

/// The tantivy tokenizer for code, outputs and free-text metadata.
#[derive(Clone, Default)]
pub struct CodeTokenizer;

/// Tokens of one text, produced as tantivy asks for them: memory stays that of one word's parts however
/// long the text (a 60 MB cell once took 6.6 GB when all its tokens were collected first).
pub struct CodeTokenStream<'a> {
    text: &'a str,
    words: Box<dyn Iterator<Item = (usize, usize)> + 'a>,
    /// Tokens of the current word not yet handed out (in order).
    pending: std::collections::VecDeque<Token>,
    token: Token,
    position: usize,
}

impl<'a> CodeTokenStream<'a> {
    fn new(text: &'a str) -> Self {
        CodeTokenStream {
            text,
            words: Box::new(words(text)),
            pending: std::collections::VecDeque::new(),
            token: Token::default(),
            position: 0,
        }
    }

    fn fill(&mut self) -> bool {
        while self.pending.is_empty() {
            let Some((ws, we)) = self.words.next() else {
                return false;
            };
            let word = &self.text[ws..we];
            let ps = parts(word);
            if ps.len() > 1 && word.len() <= MAX_WORD_BYTES {
                self.pending.push_back(Token {
                    offset_from: ws,
                    offset_to: we,
                    position: self.position,
                    text: word.to_lowercase(),
                    position_length: ps.len(),
                });
            }
            for (a, b) in ps {
                if b - a > MAX_PART_BYTES {
                    continue;
                }
                self.pending.push_back(Token {
                    offset_from: ws + a,
                    offset_to: ws + b,
                    position: self.position,
                    text: word[a..b].to_lowercase(),
                    position_length: 1,
                });
                self.position += 1;
            }
        }
        true
    }
}

impl TokenStream for CodeTokenStream<'_> {
    fn advance(&mut self) -> bool {
        if !self.fill() {
            return false;
        }
        self.token = self.pending.pop_front().expect("filled");
        true
    }
    fn token(&self) -> &Token {
        &self.token
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

impl Tokenizer for CodeTokenizer {
    type TokenStream<'a> = CodeTokenStream<'a>;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> CodeTokenStream<'a> {
        CodeTokenStream::new(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<(String, usize)> {
        tokenize(s)
            .into_iter()
            .map(|t| (t.text, t.position))
            .collect()
    }

    #[test]
    fn dotted_snake_and_camel_words_are_indexed_whole_and_by_parts() {
        assert_eq!(
            texts("k = dbutils.secrets.get('s')"),
            vec![
                ("k".into(), 0),
                ("dbutils.secrets.get".into(), 1),
                ("dbutils".into(), 1),
                ("secrets".into(), 2),
                ("get".into(), 3),
                ("s".into(), 4),
            ]
        );
        assert_eq!(query_parts("df.toPandas"), vec!["df", "to", "pandas"]);
        let s = "df.toPandas().to_csv";
        assert_eq!(
            words(s).map(|(a, b)| &s[a..b]).collect::<Vec<_>>(),
            vec!["df.toPandas", "to_csv"] // `()` separates words; edge dots are trimmed
        );
        assert_eq!(query_parts("customer_id"), vec!["customer", "id"]);
        assert_eq!(query_parts("HTTPServer"), vec!["http", "server"]);
        assert_eq!(query_parts("__init__"), vec!["init"]);
    }

    #[test]
    fn offsets_point_at_the_source_text() {
        let s = "x = df.toPandas().to_csv('/dbfs/out.csv')";
        for t in tokenize(s) {
            assert_eq!(s[t.offset_from..t.offset_to].to_lowercase(), t.text);
        }
    }

    proptest::proptest! {
        #[test]
        fn tokens_are_lowercase_slices_of_the_input_and_positions_never_decrease(s in "\\PC{0,120}") {
            let toks = tokenize(&s);
            let mut last = 0;
            for t in &toks {
                proptest::prop_assert!(s.is_char_boundary(t.offset_from) && s.is_char_boundary(t.offset_to));
                proptest::prop_assert_eq!(s[t.offset_from..t.offset_to].to_lowercase(), t.text.clone());
                proptest::prop_assert!(t.position >= last);
                last = t.position;
            }
        }
    }
}
