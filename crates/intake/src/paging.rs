//! Page tokens. Each list kind writes its own opaque token (base64url of a tagged
//! position), so a token is refused by a list of another kind instead of being misread.
//!
//! - ticket lists and deliveries: newest first by time-ordered id; the token is the last id;
//! - directory lists: (sort key, id) order; the token is the last row's key and id;
//! - histories: the last event's sequence number;
//! - ranked results (search, worklists): the number of results already returned.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use propdesk_domain::Violations;

/// Largest number of ranked results paged through: beyond it, narrow the query.
pub const MAX_SKIP: u64 = 10_000;

const SEPARATOR: char = '\u{1f}';

fn encode(tag: &str, position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tag}:{position}"))
}

/// The position a token of kind `tag` holds, or a violation of `page_token`.
fn decode(violations: &mut Violations, tag: &str, token: &str) -> Option<String> {
    if token.is_empty() {
        return None;
    }
    let text = URL_SAFE_NO_PAD.decode(token).ok().and_then(|bytes| String::from_utf8(bytes).ok());
    let position = text.as_deref().and_then(|text| text.strip_prefix(tag)).and_then(|rest| rest.strip_prefix(':'));
    if position.is_none() {
        violations.add("page_token", "is not a token returned by this list call");
    }
    position.map(str::to_owned)
}

/// Keeps the first `limit` of `rows` (fetched with one extra, which tells whether another
/// page follows) and returns the token of the next page, empty on the last page.
fn cut<T>(rows: &mut Vec<T>, limit: u64, token: impl Fn(&T) -> String) -> String {
    if rows.len() as u64 <= limit {
        return String::new();
    }
    rows.truncate(limit as usize);
    rows.last().map(token).unwrap_or_default()
}

/// Newest-first lists keyed by UUIDv7 id.
pub fn cut_by_id<T>(rows: &mut Vec<T>, limit: u64, id: impl Fn(&T) -> &str) -> String {
    cut(rows, limit, |row| encode("id", id(row)))
}

pub fn parse_id(violations: &mut Violations, token: &str) -> Option<String> {
    let id = decode(violations, "id", token)?;
    if uuid::Uuid::parse_str(&id).is_err() {
        violations.add("page_token", "is not a token returned by this list call");
        return None;
    }
    Some(id)
}

/// Lists in (sort key, id) order.
pub fn cut_by_key<T>(rows: &mut Vec<T>, limit: u64, key: impl Fn(&T) -> (String, String)) -> String {
    cut(rows, limit, |row| {
        let (key, id) = key(row);
        encode("key", &format!("{key}{SEPARATOR}{id}"))
    })
}

pub fn parse_key(violations: &mut Violations, token: &str) -> Option<(String, String)> {
    let position = decode(violations, "key", token)?;
    match position.split_once(SEPARATOR) {
        Some((key, id)) => Some((key.to_owned(), id.to_owned())),
        None => {
            violations.add("page_token", "is not a token returned by this list call");
            None
        }
    }
}

/// Histories, by event sequence number.
pub fn cut_by_sequence<T>(rows: &mut Vec<T>, limit: u64, sequence: impl Fn(&T) -> i64) -> String {
    cut(rows, limit, |row| encode("seq", &sequence(row).to_string()))
}

pub fn parse_sequence(violations: &mut Violations, token: &str) -> Option<i64> {
    let position = decode(violations, "seq", token)?;
    let sequence = position.parse().ok();
    if sequence.is_none() {
        violations.add("page_token", "is not a token returned by this list call");
    }
    sequence
}

/// Ranked results: the token says how many were returned before.
pub fn cut_by_count<T>(rows: &mut Vec<T>, limit: u64, skipped: u64) -> String {
    cut(rows, limit, |_| encode("skip", &(skipped + limit).to_string()))
}

pub fn parse_count(violations: &mut Violations, token: &str) -> u64 {
    let Some(position) = decode(violations, "skip", token) else { return 0 };
    match position.parse::<u64>() {
        Ok(skip) if skip <= MAX_SKIP => skip,
        Ok(_) => {
            violations.add("page_token", format!("pages end after {MAX_SKIP} results: narrow the query"));
            0
        }
        Err(_) => {
            violations.add("page_token", "is not a token returned by this list call");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_refused_by_other_kinds() {
        let mut rows = vec![("b", "2"), ("b", "3"), ("c", "1")];
        let token = cut_by_key(&mut rows, 2, |(key, id)| (key.to_string(), id.to_string()));
        assert_eq!(rows.len(), 2);
        let mut v = Violations::new();
        assert_eq!(parse_key(&mut v, &token), Some(("b".to_owned(), "3".to_owned())));
        assert!(v.is_empty());
        assert_eq!(parse_sequence(&mut v, &token), None);
        assert_eq!(parse_count(&mut v, &token), 0);
        assert_eq!(v.0.len(), 2, "{v:?}");
        assert!(v.0.iter().all(|violation| violation.field == "page_token"));

        let mut ranked = vec![1, 2, 3];
        let token = cut_by_count(&mut ranked, 2, 40);
        assert_eq!(parse_count(&mut Violations::new(), &token), 42);
        let mut last = vec![1, 2];
        assert_eq!(cut_by_count(&mut last, 2, 0), "", "no token on the last page");
        let mut v = Violations::new();
        assert_eq!(parse_count(&mut v, &encode("skip", "10001")), 0);
        assert_eq!(v.0.len(), 1);
    }
}
