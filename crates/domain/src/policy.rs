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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Urgent-word rules by property id (replacing `urgency` there).
    #[serde(default)]
    pub property_urgency: BTreeMap<String, UrgencyRules>,
    /// The causes a serious-complaint review or a delay is put down to (codes).
    #[serde(default = "crate::review::default_causes")]
    pub review_causes: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            categories: CategoryCatalog::default(),
            sla: SlaPolicy::default(),
            urgency: UrgencyRules::default(),
            routing: RoutingRules::default(),
            grouping: GroupingPolicy::default(),
            escalation: EscalationPolicy::default(),
            working_hours: WorkingHours::default(),
            property_working_hours: BTreeMap::new(),
            property_urgency: BTreeMap::new(),
            review_causes: crate::review::default_causes(),
        }
    }
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
        self.urgency.validate().map_err(|e| format!("urgency.{e}"))?;
        let well_formed = |c: &String| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if self.review_causes.is_empty() || !self.review_causes.iter().all(well_formed) {
            return Err("review_causes: a list of codes of a-z and _".to_owned());
        }
        for (property, rules) in &self.property_urgency {
            rules.validate().map_err(|e| format!("property_urgency.{property}.{e}"))?;
        }
        for (index, rule) in self.routing.overrides.iter().enumerate() {
            if let Some(code) = rule.categories.iter().find(|c| self.categories.get(c).is_none()) {
                return Err(format!("routing.overrides[{index}]: unknown category `{code}`"));
            }
        }
        Ok(())
    }

    /// The urgent-word rules of a property.
    pub fn urgency_for(&self, property_id: &str) -> &UrgencyRules {
        self.property_urgency.get(property_id).unwrap_or(&self.urgency)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::RoutingOverride;
    use crate::ticket::Department;

    #[test]
    fn the_defaults_are_valid_and_each_bad_setting_is_named() {
        assert_eq!(Policy::default().validate(), Ok(()));
        let grouping = |incident_window_secs, repeat_window_secs| Policy {
            grouping: GroupingPolicy { incident_window_secs, repeat_window_secs, ..GroupingPolicy::default() },
            ..Policy::default()
        };
        for (incident, repeat) in [(0, 60), (60, 0), (-1, 60), (60, -1)] {
            let refused = grouping(incident, repeat).validate();
            assert!(refused.is_err_and(|e| e.starts_with("grouping")), "{incident}/{repeat}");
        }
        assert_eq!(grouping(1, 1).validate(), Ok(()));

        let mut sla = Policy::default();
        sla.sla.callback_secs = 0;
        assert_eq!(sla.validate(), Err("sla.callback_secs must be a positive number of seconds".to_owned()));

        let mut routing = Policy::default();
        routing.routing.overrides.push(RoutingOverride {
            keywords: vec![],
            categories: vec!["no_such_thing".into()],
            in_unit: None,
            department: Department::Security,
        });
        assert_eq!(routing.validate(), Err("routing.overrides[3]: unknown category `no_such_thing`".to_owned()));

        let mut hours = Policy::default();
        hours.property_working_hours.insert("p-9".into(), WorkingHours { days: vec![], ..WorkingHours::default() });
        assert!(hours.validate().is_err_and(|e| e.starts_with("property_working_hours.p-9.")));
        let mut hours = Policy::default();
        hours.working_hours.days = vec![];
        assert!(hours.validate().is_err_and(|e| e.starts_with("working_hours.")));
        let mut ladder = Policy::default();
        ladder.escalation.reminder_percent = 0;
        assert!(ladder.validate().is_err_and(|e| e.starts_with("escalation.")));

        // A property may read urgency its own way; its rules are checked like the others.
        let mut urgency = Policy::default();
        let mut own = crate::urgency::UrgencyRules::default();
        own.rules.retain(|r| r.name != "fire");
        urgency.property_urgency.insert("p-9".into(), own);
        assert_eq!(urgency.validate(), Ok(()));
        let fire = "厨房着火了";
        assert_eq!(urgency.urgency_for("p-1").decide(Priority::P3, None, fire).priority, Priority::P1);
        assert_eq!(urgency.urgency_for("p-9").decide(Priority::P3, None, fire).priority, Priority::P3);
        if let Some(rules) = urgency.property_urgency.get_mut("p-9") {
            rules.rules[0].keywords.push("火".into());
        }
        assert!(urgency.validate().is_err_and(|e| e.starts_with("property_urgency.p-9.")));
        let mut catalog = Policy::default();
        catalog.categories.categories.clear();
        assert!(catalog.validate().is_err_and(|e| e.starts_with("categories")));
    }

    #[test]
    fn a_property_with_its_own_hours_keeps_them_and_the_others_share_the_default() {
        let own = WorkingHours::always();
        let mut policy = Policy::default();
        policy.property_working_hours.insert("p-1".into(), own.clone());
        assert_eq!(policy.hours_for("p-1"), &own);
        assert_eq!(policy.hours_for("p-2"), &WorkingHours::default());
        assert_ne!(own, WorkingHours::default());
    }
}
