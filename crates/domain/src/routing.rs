//! Which department a ticket goes to: the category's department, unless an override
//! matches (by keyword, category, and whether the problem is inside a unit).

use serde::{Deserialize, Serialize};

use crate::category::Category;
use crate::ticket::Department;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingOverride {
    /// Any of these words in the title or description (case-insensitive); empty: any text.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Only these categories; empty: any category.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Only in-unit (true) or common-area (false) reports; unset: both.
    #[serde(default)]
    pub in_unit: Option<bool>,
    pub department: Department,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRules {
    /// First match wins.
    pub overrides: Vec<RoutingOverride>,
}

impl Default for RoutingRules {
    fn default() -> Self {
        let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect();
        RoutingRules {
            overrides: vec![
                // Safety first: whatever the category, these are security's.
                RoutingOverride {
                    keywords: words(&[
                        "高空抛物",
                        "high-altitude throwing",
                        "thrown from a window",
                        "陌生人",
                        "stranger",
                    ]),
                    categories: vec![],
                    in_unit: None,
                    department: Department::Security,
                },
                // Pet mess in a common area is cleaning's; a pet dispute stays with the desk.
                RoutingOverride {
                    keywords: words(&["粪便", "poop", "mess", "droppings"]),
                    categories: words(&["pets"]),
                    in_unit: Some(false),
                    department: Department::Cleaning,
                },
                // Rubbish or clutter inside a unit is a neighbour matter for the desk.
                RoutingOverride {
                    keywords: vec![],
                    categories: words(&["rubbish", "clutter"]),
                    in_unit: Some(true),
                    department: Department::CustomerService,
                },
            ],
        }
    }
}

impl RoutingRules {
    pub fn route(&self, category: &Category, text: &str, in_unit: bool) -> Department {
        let text = text.to_lowercase();
        self.overrides
            .iter()
            .find(|rule| {
                (rule.categories.is_empty() || rule.categories.iter().any(|c| c == &category.code))
                    && rule.in_unit.is_none_or(|wanted| wanted == in_unit)
                    && (rule.keywords.is_empty() || rule.keywords.iter().any(|k| text.contains(&k.to_lowercase())))
            })
            .map_or(category.department, |rule| rule.department)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::CategoryCatalog;

    #[test]
    fn routing_table() {
        let catalog = CategoryCatalog::default();
        let rules = RoutingRules::default();
        // (category, text, in unit, department)
        let cases = [
            ("plumbing", "burst pipe in the kitchen", true, Department::Engineering),
            ("rubbish", "rubbish piled in the stairwell", false, Department::Cleaning),
            ("rubbish", "neighbour keeps rubbish in the shared hall of the flat", true, Department::CustomerService),
            ("stranger", "someone trying door handles", false, Department::Security),
            ("high_altitude_throwing", "bottle fell from above", false, Department::Security),
            ("fee_dispute", "charged twice for parking", true, Department::CustomerService),
            ("pets", "dog poop at the entrance", false, Department::Cleaning),
            ("pets", "neighbour's dog barks all night", true, Department::CustomerService),
            ("building_fabric", "glass thrown from a window above hit my car", false, Department::Security),
        ];
        for (code, text, in_unit, expected) in cases {
            let category = catalog.get(code).expect(code);
            assert_eq!(rules.route(category, text, in_unit), expected, "{code}: {text}");
        }
    }
}
