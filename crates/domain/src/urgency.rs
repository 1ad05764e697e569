//! Urgent-word rules that raise a ticket's priority (a safety hazard raises the level),
//! reading Chinese and English as words, not characters.
//!
//! A rule never lowers a priority: the effective priority is the most urgent of the
//! category default, the agent's judgement and every matching rule. A rule matches a term
//! of its own that is:
//! - a whole term: multi-character Chinese terms (火灾, 着火, 水管爆了), never a lone
//!   character that other words share (火 is in 发火, 火车, 火锅); Latin terms only as whole
//!   words ("fire" is not "fired" or "firework");
//! - not negated: no 没/没有/不/无/未/别 in the few characters before it (没有着火), no "no",
//!   "not", "never", "without", "no longer" in the few words before it ("there is no
//!   smoke"), within the same clause;
//! - not excused: no exclusion term of the rule in the same clause (烧烤 excuses 冒烟:
//!   smoke from a barbecue downstairs is a nuisance, not a fire).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::ticket::Priority;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeywordRule {
    /// A stable name, recorded on the ticket it raises (e.g. "fire").
    pub name: String,
    /// Terms that mean the hazard, case-insensitive.
    pub keywords: Vec<String>,
    /// Terms that, in the same clause, show a keyword does not mean it.
    #[serde(default)]
    pub exclusions: Vec<String>,
    pub priority: Priority,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrgencyRules {
    pub rules: Vec<KeywordRule>,
}

/// Characters before a Chinese term, and words before a Latin one, that a negation may
/// stand in.
const NEGATION_REACH_CHARS: usize = 4;
const NEGATION_REACH_WORDS: usize = 3;
const CHINESE_NEGATIONS: &[&str] = &["没有", "没", "不", "无", "未", "别", "非"];
/// Words with 不 that do not negate: "不停冒烟" keeps smoking.
const NOT_NEGATIONS: &[&str] = &["不停", "不断", "不止", "不少", "不住", "不得了"];
const LATIN_NEGATIONS: &[&str] = &["no", "not", "never", "without", "isn't", "wasn't", "aren't", "nothing", "longer"];

fn rule(name: &str, keywords: &[&str], exclusions: &[&str]) -> KeywordRule {
    let owned = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect();
    KeywordRule {
        name: name.to_owned(),
        keywords: owned(keywords),
        exclusions: owned(exclusions),
        priority: Priority::P1,
    }
}

impl Default for UrgencyRules {
    /// The hazards that need someone on site within minutes: a burst pipe or water pouring
    /// through, a gas smell, fire or smoke, someone trapped in a lift, live electricity.
    fn default() -> Self {
        UrgencyRules {
            rules: vec![
                rule(
                    "burst_pipe",
                    &[
                        "爆管",
                        "水管爆裂",
                        "水管爆了",
                        "水管破裂",
                        "水管裂了",
                        "管子爆了",
                        "爆水管",
                        "水管崩了",
                        "burst pipe",
                        "pipe burst",
                        "pipe has burst",
                        "pipe just burst",
                        "water main burst",
                    ],
                    &[],
                ),
                rule(
                    "flooding",
                    &[
                        "水淹",
                        "淹水",
                        "被淹",
                        "漏水严重",
                        "大量漏水",
                        "严重漏水",
                        "水漫",
                        "漫水",
                        "水往下流",
                        "水流不止",
                        "顺着天花板",
                        "天花板往下滴水",
                        "天花板在漏水",
                        "天花板漏水",
                        "楼上漏水到",
                        "flood",
                        "flooding",
                        "flooded",
                        "water pouring",
                        "pouring through the ceiling",
                        "through the ceiling",
                        "water everywhere",
                    ],
                    &[],
                ),
                rule(
                    "gas",
                    &[
                        "燃气泄漏",
                        "煤气泄漏",
                        "天然气泄漏",
                        "煤气味",
                        "燃气味",
                        "天然气味",
                        "闻到煤气",
                        "闻到燃气",
                        "漏气",
                        "gas leak",
                        "leaking gas",
                        "smell of gas",
                        "gas smell",
                        "smells of gas",
                        "smell gas",
                        "smelling gas",
                    ],
                    &["轮胎", "车胎", "气球", "空调", "tyre", "tire", "balloon"],
                ),
                rule(
                    "fire",
                    &[
                        "火灾",
                        "着火",
                        "起火",
                        "失火",
                        "火警",
                        "冒烟",
                        "浓烟",
                        "冒火",
                        "火苗",
                        "烧起来",
                        "fire",
                        "smoke",
                        "burning",
                        "in flames",
                    ],
                    &[
                        "烧烤",
                        "烤肉",
                        "抽烟",
                        "吸烟",
                        "香烟",
                        "烟头",
                        "做饭",
                        "炒菜",
                        "灭火器",
                        "消防通道",
                        "消防门",
                        "barbecue",
                        "bbq",
                        "grill",
                        "smoking",
                        "cigarette",
                        "cigarettes",
                        "extinguisher",
                        "fire door",
                        "fire exit",
                        "fire escape",
                        "battery",
                        "beeping",
                        "chirping",
                        "drill",
                        "cooking",
                    ],
                ),
                rule(
                    "lift_entrapment",
                    &[
                        "困人",
                        "被困",
                        "困在电梯",
                        "关在电梯",
                        "电梯里出不来",
                        "trapped in lift",
                        "trapped in the lift",
                        "stuck in lift",
                        "stuck in the lift",
                        "trapped in the elevator",
                        "stuck in the elevator",
                        "trapped in a lift",
                        "stuck in a lift",
                    ],
                    &[],
                ),
                rule(
                    "live_electricity",
                    &["漏电", "触电", "电线冒火花", "电线打火", "电箱冒火花", "electric shock", "sparking", "sparks"],
                    &[],
                ),
            ],
        }
    }
}

/// The priority decided for a new ticket, and the rule and term that raised it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub priority: Priority,
    pub raised_by: Option<Raised>,
}

/// The rule that raised a priority, and the term it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    pub rule: String,
    pub keyword: String,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// The text cut into clauses (at punctuation and line ends), lowercased.
fn clauses(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| {
            matches!(c, '，' | '。' | '！' | '？' | '；' | ',' | '.' | '!' | '?' | ';' | '\n' | '、' | '：' | ':')
        })
        .map(str::to_owned)
        .filter(|clause| !clause.trim().is_empty())
        .collect()
}

/// Where `term` stands in `clause` as a whole term (byte offsets of each start).
fn occurrences(clause: &str, term: &str) -> Vec<usize> {
    let latin = term.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    clause
        .match_indices(term)
        .map(|(at, _)| at)
        .filter(|at| {
            if !latin {
                return true;
            }
            let before = clause[..*at].chars().next_back();
            let after = clause[at + term.len()..].chars().next();
            let joined = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() && !is_cjk(c));
            !joined(before) && !joined(after)
        })
        .collect()
}

/// Whether a negation stands in the few characters (Chinese) or words (Latin) before
/// the term at `at`.
fn negated(clause: &str, at: usize, term: &str) -> bool {
    let before = &clause[..at];
    if term.chars().next().is_some_and(is_cjk) {
        let mut reach: String =
            before.chars().rev().take(NEGATION_REACH_CHARS).collect::<Vec<_>>().into_iter().rev().collect();
        for phrase in NOT_NEGATIONS {
            reach = reach.replace(phrase, "");
        }
        CHINESE_NEGATIONS.iter().any(|n| reach.contains(n))
    } else {
        let words: Vec<&str> =
            before.split(|c: char| !(c.is_alphanumeric() || c == '\'')).filter(|w| !w.is_empty()).collect();
        words.iter().rev().take(NEGATION_REACH_WORDS).any(|w| LATIN_NEGATIONS.contains(w))
    }
}

/// A term as the lowercased text holds it (most terms are lowercase already: no copy).
fn lowercase(term: &str) -> Cow<'_, str> {
    if term.chars().any(char::is_uppercase) { Cow::Owned(term.to_lowercase()) } else { Cow::Borrowed(term) }
}

impl KeywordRule {
    /// The first of its terms the text means, if any.
    fn reads(&self, clauses: &[String]) -> Option<&str> {
        for clause in clauses {
            // Cheap test first: most clauses hold none of the rule's terms.
            let held: Vec<&String> = self.keywords.iter().filter(|k| clause.contains(lowercase(k).as_ref())).collect();
            if held.is_empty() {
                continue;
            }
            if self.exclusions.iter().any(|e| !occurrences(clause, &lowercase(e)).is_empty()) {
                continue;
            }
            for keyword in held {
                let term = lowercase(keyword);
                if occurrences(clause, &term).into_iter().any(|at| !negated(clause, at, &term)) {
                    return Some(keyword);
                }
            }
        }
        None
    }
}

impl UrgencyRules {
    pub fn decide(&self, category_default: Priority, requested: Option<Priority>, text: &str) -> Decided {
        let base = requested.map_or(category_default, |r| r.most_urgent(category_default));
        let clauses = clauses(text);
        let mut decided = Decided { priority: base, raised_by: None };
        for rule in &self.rules {
            if rule.priority >= decided.priority {
                continue;
            }
            if let Some(keyword) = rule.reads(&clauses) {
                let raised = Raised { rule: rule.name.clone(), keyword: keyword.to_owned() };
                decided = Decided { priority: rule.priority, raised_by: Some(raised) };
            }
        }
        decided
    }

    /// A message naming the bad rule, if any.
    pub fn validate(&self) -> Result<(), String> {
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.name.trim().is_empty() {
                return Err(format!("rules[{index}].name is required"));
            }
            if rule.keywords.is_empty() || rule.keywords.iter().any(|k| k.trim().is_empty()) {
                return Err(format!("rules[{index}] ({}) needs keywords, none empty", rule.name));
            }
            // A lone Chinese character is part of too many words to mean one thing.
            if let Some(single) = rule.keywords.iter().find(|k| k.chars().count() == 1 && k.chars().all(is_cjk)) {
                return Err(format!("rules[{index}] ({}): `{single}` is one character; use whole words", rule.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgent_words_raise_the_priority_and_name_the_rule() {
        let rules = UrgencyRules::default();
        // (category default, requested, text, expected, rule, keyword)
        let cases = [
            (Priority::P3, None, "2-1203 厨房爆管，水流不止", Priority::P1, Some(("burst_pipe", "爆管"))),
            (Priority::P3, None, "厨房水管爆了", Priority::P1, Some(("burst_pipe", "水管爆了"))),
            (Priority::P3, None, "Burst pipe in the kitchen", Priority::P1, Some(("burst_pipe", "burst pipe"))),
            (Priority::P2, None, "楼道有煤气味", Priority::P1, Some(("gas", "煤气味"))),
            (Priority::P2, None, "3号电梯困人", Priority::P1, Some(("lift_entrapment", "困人"))),
            (Priority::P3, None, "ceiling leaking, FLOODING the hall", Priority::P1, Some(("flooding", "flooding"))),
            (Priority::P3, None, "门禁对讲坏了", Priority::P3, None),
            (Priority::P3, Some(Priority::P2), "intercom broken", Priority::P2, None),
            // The agent's judgement never lowers the category default.
            (Priority::P2, Some(Priority::P4), "no water", Priority::P2, None),
        ];
        for (default, requested, text, expected, raised) in cases {
            let decided = rules.decide(default, requested, text);
            assert_eq!(decided.priority, expected, "{text}");
            let by = decided.raised_by.as_ref().map(|r| (r.rule.as_str(), r.keyword.as_str()));
            assert_eq!(by, raised, "{text}");
        }
    }

    #[test]
    fn words_that_share_a_character_negations_and_exclusions_do_not_raise_it() {
        let rules = UrgencyRules::default();
        for text in [
            "保安对我发火",
            "坐火车回来发现门锁坏了",
            "最近上火，想问物业费",
            "楼下火锅店油烟大",
            "没有着火，只是烧焦味已经散了",
            "现在不冒烟了",
            "The smoke alarm keeps beeping, probably the battery",
            "楼下烧烤冒烟，呛得开不了窗",
            "He was fired from the security company",
            "The fireworks last night were too loud",
            "There is no smoke any more",
            "someone smoking in the stairwell",
            "fire extinguisher on floor 3 is expired",
            "轮胎漏气了，停车场有钉子",
        ] {
            assert_eq!(rules.decide(Priority::P3, None, text).priority, Priority::P3, "{text}");
        }
        assert_eq!(rules.decide(Priority::P3, None, "电视机后面不停冒烟").priority, Priority::P1, "不停 keeps on");
        // A negation in another clause does not cover this one.
        assert_eq!(rules.decide(Priority::P3, None, "没有人在家，厨房着火了").priority, Priority::P1);
    }

    #[test]
    fn a_lone_chinese_character_is_refused_as_a_keyword() {
        let mut rules = UrgencyRules::default();
        assert_eq!(rules.validate(), Ok(()));
        rules.rules[0].keywords.push("火".into());
        assert!(rules.validate().is_err_and(|e| e.contains("`火` is one character")));
    }
}
