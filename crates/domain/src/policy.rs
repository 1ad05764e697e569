//! Everything configurable about the rules, in one value: the category catalog, the
//! service levels, the urgent-keyword rules, routing overrides and grouping thresholds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::WorkingHours;
use crate::ladder::EscalationPolicy;
use crate::sla::Deadlines;
use crate::ticket::{Priority, TicketKind};

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
    pub escalation: EscalationPolicy,
    /// Working hours of every property without its own entry below.
    pub working_hours: WorkingHours,
    /// Working hours by property id.
    #[serde(default)]
    pub property_working_hours: BTreeMap<String, WorkingHours>,
}

impl Policy {
    /// A message naming the bad setting, if any.
    pub fn validate(&self) -> Result<(), String> {
        self.categories.validate().map_err(|e| format!("categories: {e}"))?;
        self.sla.validate().map_err(|e| e.to_string())?;
        if self.grouping.incident_window_secs <= 0 || self.grouping.repeat_window_secs <= 0 {
            return Err("grouping: windows must be positive numbers of seconds".to_owned());
        }
        self.escalation.validate().map_err(|e| format!("escalation.{e}"))?;
        self.working_hours.validate().map_err(|e| format!("working_hours.{e}"))?;
        for (property, hours) in &self.property_working_hours {
            hours.validate().map_err(|e| format!("property_working_hours.{property}.{e}"))?;
        }
        for (index, rule) in self.routing.overrides.iter().enumerate() {
            if let Some(code) = rule.categories.iter().find(|c| self.categories.get(c).is_none()) {
                return Err(format!("routing.overrides[{index}]: unknown category `{code}`"));
            }
        }
        Ok(())
    }

    /// The working hours of a property.
    pub fn hours_for(&self, property_id: &str) -> &WorkingHours {
        self.property_working_hours.get(property_id).unwrap_or(&self.working_hours)
    }

    /// A ticket's deadlines with its clocks starting at `start`, in its property's hours.
    pub fn deadlines(
        &self,
        priority: Priority,
        kind: TicketKind,
        property_id: &str,
        start: DateTime<Utc>,
    ) -> Deadlines {
        self.sla.deadlines(priority, kind, start, self.hours_for(property_id))
    }
}
