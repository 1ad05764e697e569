//! The category catalog: what a problem is, which department handles it, its default
//! priority, and whether it is inside a unit or in a common area. Loaded from
//! configuration; [`CategoryCatalog::default`] is the built-in catalog.

use serde::{Deserialize, Serialize};

use crate::ticket::{Department, Priority};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub code: String,
    pub name: String,
    pub department: Department,
    pub default_priority: Priority,
    pub in_unit: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCatalog {
    pub categories: Vec<Category>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCatalog {
    #[error("the category catalog is empty")]
    Empty,
    #[error("category code `{0}` appears more than once")]
    Duplicate(String),
    #[error("category code `{0}` must be 1 to 40 characters of a-z, 0-9 and _")]
    BadCode(String),
}

impl CategoryCatalog {
    pub fn get(&self, code: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.code == code)
    }

    pub fn validate(&self) -> Result<(), InvalidCatalog> {
        if self.categories.is_empty() {
            return Err(InvalidCatalog::Empty);
        }
        for (index, category) in self.categories.iter().enumerate() {
            let code = &category.code;
            let well_formed = (1..=40).contains(&code.len())
                && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !well_formed {
                return Err(InvalidCatalog::BadCode(code.clone()));
            }
            if self.categories[..index].iter().any(|c| &c.code == code) {
                return Err(InvalidCatalog::Duplicate(code.clone()));
            }
        }
        Ok(())
    }
}

impl Default for CategoryCatalog {
    fn default() -> Self {
        use Department::*;
        use Priority::*;
        let c = |code: &str, name: &str, department, default_priority, in_unit| Category {
            code: code.to_owned(),
            name: name.to_owned(),
            department,
            default_priority,
            in_unit,
        };
        CategoryCatalog {
            categories: vec![
                c("plumbing", "Plumbing / 水管", Engineering, P3, true),
                c("water_supply", "No water / 停水", Engineering, P2, true),
                c("electrical", "Electrical / 电路", Engineering, P3, true),
                c("power_outage", "No power / 停电", Engineering, P2, true),
                c("door_lock", "Door lock / 门锁", Engineering, P2, true),
                c("intercom", "Intercom and access control / 门禁对讲", Engineering, P3, false),
                c("lift", "Lift / 电梯", Engineering, P2, false),
                c("building_fabric", "Walls, roof, windows / 房屋本体", Engineering, P3, false),
                c("gas", "Gas / 燃气", Engineering, P1, true),
                c("rubbish", "Rubbish / 垃圾", Cleaning, P3, false),
                c("clutter", "Clutter in public areas / 公共区域堆物", Cleaning, P3, false),
                c("pet_mess", "Pet mess / 宠物粪便", Cleaning, P3, false),
                c("hygiene", "Common-area hygiene / 公共卫生", Cleaning, P3, false),
                c("stranger", "Stranger / 陌生人", Security, P2, false),
                c("theft", "Theft / 盗窃", Security, P2, false),
                c("high_altitude_throwing", "High-altitude throwing / 高空抛物", Security, P2, false),
                c("parking", "Parking / 停车", Security, P3, false),
                c("illegal_construction", "Illegal construction / 违章搭建", Security, P3, false),
                c("noise", "Noise / 噪音", Security, P3, false),
                c("safety_hazard", "Safety hazard / 安全隐患", Security, P2, false),
                c("fee_dispute", "Fee dispute / 收费争议", CustomerService, P3, true),
                c("service_attitude", "Service attitude / 服务态度", CustomerService, P3, false),
                c("neighbour_dispute", "Neighbour dispute / 邻里纠纷", CustomerService, P3, true),
                c("pets", "Pets / 宠物", CustomerService, P3, false),
                c("general_enquiry", "General enquiry / 咨询", CustomerService, P4, false),
                c("suggestion", "Suggestion / 建议", CustomerService, P4, false),
                c("assistance", "Assistance outside our duty / 求助", CustomerService, P3, false),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_catalog_is_valid_and_routes_the_seed_examples() {
        let catalog = CategoryCatalog::default();
        assert_eq!(catalog.validate(), Ok(()));
        let cases = [
            ("plumbing", Department::Engineering),
            ("rubbish", Department::Cleaning),
            ("stranger", Department::Security),
            ("high_altitude_throwing", Department::Security),
            ("fee_dispute", Department::CustomerService),
        ];
        for (code, department) in cases {
            assert_eq!(catalog.get(code).map(|c| c.department), Some(department), "{code}");
        }
        assert!(catalog.get("unknown").is_none());
    }

    #[test]
    fn a_bad_catalog_is_refused() {
        let mut catalog = CategoryCatalog::default();
        catalog.categories.push(catalog.categories[0].clone());
        assert_eq!(catalog.validate(), Err(InvalidCatalog::Duplicate("plumbing".into())));
        catalog.categories.truncate(1);
        catalog.categories[0].code = "Plumbing!".into();
        assert_eq!(catalog.validate(), Err(InvalidCatalog::BadCode("Plumbing!".into())));
        assert_eq!(CategoryCatalog { categories: vec![] }.validate(), Err(InvalidCatalog::Empty));
    }
}
