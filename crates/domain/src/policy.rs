//! Everything configurable about the rules, in one value: the category catalog, the
//! service levels, the urgent-keyword rules, routing overrides and grouping thresholds.

use serde::{Deserialize, Serialize};

use crate::category::CategoryCatalog;
use crate::grouping::GroupingPolicy;
use crate::routing::RoutingRules;
use crate::sla::SlaPolicy;
use crate::urgency::UrgencyRules;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Policy {
    pub categories: CategoryCatalog,
    pub sla: SlaPolicy,
    pub urgency: UrgencyRules,
    pub routing: RoutingRules,
    pub grouping: GroupingPolicy,
}

impl Policy {
    /// A message naming the bad setting, if any.
    pub fn validate(&self) -> Result<(), String> {
        self.categories.validate().map_err(|e| format!("categories: {e}"))?;
        self.sla.validate().map_err(|e| e.to_string())?;
        if self.grouping.incident_window_secs <= 0 || self.grouping.repeat_window_secs <= 0 {
            return Err("grouping: windows must be positive numbers of seconds".to_owned());
        }
        for (index, rule) in self.routing.overrides.iter().enumerate() {
            if let Some(code) = rule.categories.iter().find(|c| self.categories.get(c).is_none()) {
                return Err(format!("routing.overrides[{index}]: unknown category `{code}`"));
            }
        }
        Ok(())
    }
}
