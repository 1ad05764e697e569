//! Keyword rules that raise a ticket's priority (a safety hazard raises the level).
//!
//! A rule never lowers a priority: the effective priority is the most urgent of the
//! category default, the agent's judgement and every matching rule.

use serde::{Deserialize, Serialize};

use crate::ticket::Priority;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeywordRule {
    /// Matched case-insensitively anywhere in the title or description.
    pub keywords: Vec<String>,
    pub priority: Priority,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrgencyRules {
    pub rules: Vec<KeywordRule>,
}

impl Default for UrgencyRules {
    fn default() -> Self {
        let p1 = |words: &[&str]| KeywordRule {
            keywords: words.iter().map(|w| (*w).to_owned()).collect(),
            priority: Priority::P1,
        };
        UrgencyRules {
            rules: vec![
                p1(&["爆管", "burst pipe", "水管爆裂"]),
                p1(&["漏水", "水淹", "flood"]),
                p1(&["煤气", "燃气", "gas leak", "smell of gas", "gas smell"]),
                p1(&["火", "fire", "smoke", "冒烟"]),
                p1(&["困人", "trapped in lift", "trapped in the lift", "stuck in lift", "stuck in the lift"]),
            ],
        }
    }
}

/// The priority decided for a new ticket, and the keyword that raised it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub priority: Priority,
    pub raised_by_keyword: Option<String>,
}

impl UrgencyRules {
    pub fn decide(&self, category_default: Priority, requested: Option<Priority>, text: &str) -> Decided {
        let base = requested.map_or(category_default, |r| r.most_urgent(category_default));
        let text = text.to_lowercase();
        let mut decided = Decided { priority: base, raised_by_keyword: None };
        for rule in &self.rules {
            if rule.priority >= decided.priority {
                continue;
            }
            if let Some(keyword) = rule.keywords.iter().find(|k| text.contains(&k.to_lowercase())) {
                decided = Decided { priority: rule.priority, raised_by_keyword: Some(keyword.clone()) };
            }
        }
        decided
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgent_words_raise_the_priority() {
        let rules = UrgencyRules::default();
        // (category default, requested, text, expected, keyword)
        let cases = [
            (Priority::P3, None, "2-1203 厨房爆管，水流不止", Priority::P1, Some("爆管")),
            (Priority::P3, None, "Burst pipe in the kitchen", Priority::P1, Some("burst pipe")),
            (Priority::P2, None, "楼道有煤气味", Priority::P1, Some("煤气")),
            (Priority::P2, None, "3号电梯困人", Priority::P1, Some("困人")),
            (Priority::P3, None, "ceiling leaking, FLOODING the hall", Priority::P1, Some("flood")),
            (Priority::P3, None, "门禁对讲坏了", Priority::P3, None),
            (Priority::P3, Some(Priority::P2), "intercom broken", Priority::P2, None),
            // The agent's judgement never lowers the category default.
            (Priority::P2, Some(Priority::P4), "no water", Priority::P2, None),
        ];
        for (default, requested, text, expected, keyword) in cases {
            let decided = rules.decide(default, requested, text);
            assert_eq!(decided.priority, expected, "{text}");
            assert_eq!(decided.raised_by_keyword.as_deref(), keyword, "{text}");
        }
    }
}
