//! Everything configurable about the rules, in one value: the category catalog, the
//! service levels and the urgent-keyword rules.

use serde::{Deserialize, Serialize};

use crate::category::CategoryCatalog;
use crate::sla::SlaPolicy;
use crate::urgency::UrgencyRules;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Policy {
    pub categories: CategoryCatalog,
    pub sla: SlaPolicy,
    pub urgency: UrgencyRules,
}

impl Policy {
    /// A message naming the bad setting, if any.
    pub fn validate(&self) -> Result<(), String> {
        self.categories.validate().map_err(|e| format!("categories: {e}"))?;
        self.sla.validate().map_err(|e| e.to_string())?;
        Ok(())
    }
}
