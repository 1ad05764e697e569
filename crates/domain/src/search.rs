//! Free-text search terms for Chinese and English alike.
//!
//! Chinese is written without spaces and most words are two characters, so a text is
//! indexed as the single characters and the overlapping character pairs (bigrams) of each
//! run of CJK characters, plus its Latin words and numbers, lowercased: "3号楼电梯停了" is
//! indexed as `3`, `号`, `楼`, …, `号楼`, `楼电`, `电梯`, `梯停`, `停了`. A query is cut the
//! same way, but a CJK run of two or more characters asks only for its bigrams (so "电梯"
//! needs the pair, not each character anywhere), and a Latin word also matches longer words
//! it begins ("elev" finds "elevator"). Every query term must match.
//!
//! Both stores take the terms as space-separated words: PostgreSQL in a `tsvector` with the
//! `simple` configuration, SQLite in an FTS5 table.

use crate::validation::Violations;

/// Shortest and longest query, in characters.
pub const MIN_QUERY: usize = 2;
pub const MAX_QUERY: usize = 200;

/// Whether `c` is written without spaces between words (Chinese, Japanese kana, Korean).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F) // Extensions B onwards
}

/// A run of characters that form terms together.
#[derive(Debug, PartialEq, Eq)]
enum Run {
    Cjk(Vec<char>),
    /// Latin letters and digits, lowercased.
    Word(String),
}

fn runs(text: &str) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut cjk: Vec<char> = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                runs.push(Run::Word(std::mem::take(&mut word)));
            }
            cjk.push(c);
        } else if c.is_alphanumeric() {
            if !cjk.is_empty() {
                runs.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
            word.extend(c.to_lowercase());
        } else {
            if !word.is_empty() {
                runs.push(Run::Word(std::mem::take(&mut word)));
            }
            if !cjk.is_empty() {
                runs.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
        }
    }
    if !word.is_empty() {
        runs.push(Run::Word(word));
    }
    if !cjk.is_empty() {
        runs.push(Run::Cjk(cjk));
    }
    runs
}

/// The terms a text is indexed under, space separated (repeats kept: they weigh in ranking).
pub fn index_terms(text: &str) -> String {
    let mut terms: Vec<String> = Vec::new();
    for run in runs(text) {
        match run {
            Run::Word(word) => terms.push(word),
            Run::Cjk(chars) => {
                terms.extend(chars.iter().map(char::to_string));
                terms.extend(chars.windows(2).map(|pair| pair.iter().collect::<String>()));
            }
        }
    }
    terms.join(" ")
}

/// One term of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Lowercase letters, digits or CJK characters only: safe to quote in any query syntax.
    pub text: String,
    /// Also matches longer terms that begin with this one (Latin words).
    pub prefix: bool,
}

/// A parsed search query: every term must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub terms: Vec<Term>,
}

impl Query {
    /// Parses a query, or records why it cannot be searched as a violation of `field`.
    pub fn parse(violations: &mut Violations, field: &str, text: &str) -> Option<Query> {
        let trimmed = text.trim();
        let length = trimmed.chars().count();
        if length < MIN_QUERY {
            violations.add(field, format!("must be at least {MIN_QUERY} characters"));
            return None;
        }
        if length > MAX_QUERY {
            violations.add(field, format!("must be at most {MAX_QUERY} characters (got {length})"));
            return None;
        }
        let mut terms: Vec<Term> = Vec::new();
        for run in runs(trimmed) {
            match run {
                Run::Word(word) => {
                    let prefix = word.chars().all(char::is_alphabetic);
                    terms.push(Term { text: word, prefix });
                }
                Run::Cjk(chars) if chars.len() == 1 => terms.push(Term { text: chars[0].to_string(), prefix: false }),
                Run::Cjk(chars) => {
                    terms.extend(chars.windows(2).map(|pair| Term { text: pair.iter().collect(), prefix: false }))
                }
            }
        }
        let mut unique: Vec<Term> = Vec::with_capacity(terms.len());
        for term in terms {
            if !unique.contains(&term) {
                unique.push(term);
            }
        }
        if unique.is_empty() {
            violations.add(field, "must contain letters, digits or Chinese characters");
            return None;
        }
        Some(Query { terms: unique })
    }
}

impl Query {
    /// How well `text` matches, by the same rules as the stores' search: `None` unless
    /// every term does, else how often the terms occur (more is better). For small sets
    /// held in memory, such as a property's standard replies.
    pub fn score(&self, text: &str) -> Option<usize> {
        let indexed = index_terms(text);
        let words: Vec<&str> = indexed.split(' ').collect();
        let mut total = 0;
        for term in &self.terms {
            let hits = words
                .iter()
                .filter(|word| if term.prefix { word.starts_with(term.text.as_str()) } else { **word == term.text })
                .count();
            if hits == 0 {
                return None;
            }
            total += hits;
        }
        Some(total)
    }
}

/// A phone number reduced to what identifies it, so "+86 138-1234-5678", "0086 13812345678"
/// and "138 1234 5678" are one number: its digits, without the country code 86 before an
/// 11-digit mainland mobile number. `None` when there are no digits.
pub fn phone_key(phone: &str) -> Option<String> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let mobile = |rest: &str| rest.len() == 11 && rest.starts_with('1');
    let key = if let Some(rest) = digits.strip_prefix("0086").filter(|rest| mobile(rest)) {
        rest.to_owned()
    } else if let Some(rest) = digits.strip_prefix("86").filter(|rest| mobile(rest)) {
        rest.to_owned()
    } else {
        digits
    };
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> Result<Vec<String>, Violations> {
        let mut violations = Violations::new();
        match Query::parse(&mut violations, "query", text) {
            Some(query) => Ok(query.terms.into_iter().map(|t| if t.prefix { t.text + "*" } else { t.text }).collect()),
            None => Err(violations),
        }
    }

    /// Whether `text` would be found by `q`, by the rule the stores apply.
    fn finds(q: &str, text: &str) -> bool {
        let indexed = index_terms(text);
        let indexed: Vec<&str> = indexed.split(' ').collect();
        let mut violations = Violations::new();
        let query = Query::parse(&mut violations, "query", q).expect("a valid query");
        query
            .terms
            .iter()
            .all(|term| indexed.iter().any(|t| if term.prefix { t.starts_with(&term.text) } else { *t == term.text }))
    }

    #[test]
    fn chinese_is_indexed_as_characters_and_pairs() {
        assert_eq!(index_terms("厨房漏水"), "厨 房 漏 水 厨房 房漏 漏水");
        assert_eq!(index_terms("3号楼 Lift-2"), "3 号 楼 号楼 lift 2");
        assert_eq!(index_terms("门"), "门");
        assert_eq!(index_terms("，。！"), "");
    }

    #[test]
    fn two_character_words_and_mixed_queries_find_their_text() {
        assert!(finds("漏水", "厨房漏水很严重"));
        assert!(finds("电梯", "3号楼电梯停了"));
        assert!(finds("3号楼 电梯", "3号楼电梯停了"));
        assert!(finds("号楼电梯", "3号楼电梯停了"));
        assert!(finds("elev", "The Elevator is stuck"));
        assert!(finds("2-1203", "unit 2-1203"));
        assert!(!finds("电梯", "电视坏了，梯子倒了"), "the pair, not each character somewhere");
        assert!(!finds("漏水 电梯", "厨房漏水很严重"), "every term must match");
        assert!(!finds("12", "room 1203"), "numbers are whole");
    }

    #[test]
    fn queries_are_checked() {
        assert_eq!(query("漏水").unwrap(), ["漏水"]);
        assert_eq!(query("3号楼 电梯").unwrap(), ["3", "号楼", "电梯"]);
        assert_eq!(query("Leak leak B2").unwrap(), ["leak*", "b2"]);
        assert_eq!(query("水 A").unwrap(), ["水", "a*"]);
        for bad in ["", " 漏 ", "x", "?!", &"长".repeat(201)] {
            let violations = query(bad).expect_err(bad);
            assert_eq!(violations.0[0].field, "query");
        }
    }

    #[test]
    fn phone_numbers_reduce_to_one_key() {
        for written in ["13812345678", "+86 138 1234 5678", "0086-138-1234-5678", "86 13812345678", "138-1234-5678"] {
            assert_eq!(phone_key(written).as_deref(), Some("13812345678"), "{written}");
        }
        assert_eq!(phone_key("021-6234 5678").as_deref(), Some("02162345678"), "landlines keep their area code");
        assert_eq!(phone_key("8612345").as_deref(), Some("8612345"), "86 is a country code only before a mobile");
        assert_eq!(phone_key("+ -"), None);
    }
}
