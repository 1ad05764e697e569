use propdesk_domain::{Department, Role};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "staff")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub property_id: String,
    pub name: String,
    pub role: String,
    pub department: Option<String>,
    pub supervisor_id: Option<String>,
    pub on_duty: bool,
    /// When this person was last given a ticket (tie-break for assignment).
    pub last_assigned_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Who this person is at the company's identity provider (unique).
    pub external_id: Option<String>,
    /// False once they have left: refused at once, assigned nothing.
    pub active: bool,
}

/// Who a new staff member is, as the domain names them.
#[derive(Debug, Clone)]
pub struct NewStaff {
    pub id: String,
    pub property_id: String,
    pub name: String,
    pub role: Role,
    pub department: Option<Department>,
    pub supervisor_id: Option<String>,
    pub on_duty: bool,
    pub external_id: Option<String>,
}

impl Model {
    /// The record of a new staff member, created at `at`.
    pub fn new(staff: NewStaff, at: DateTimeUtc) -> Model {
        Model {
            id: staff.id,
            property_id: staff.property_id,
            name: staff.name,
            role: staff.role.code().to_owned(),
            department: staff.department.map(|d| d.code().to_owned()),
            supervisor_id: staff.supervisor_id,
            on_duty: staff.on_duty,
            last_assigned_at: None,
            created_at: at,
            updated_at: at,
            external_id: staff.external_id,
            active: true,
        }
    }

    /// The role, unless the stored code is one this release does not know.
    pub fn role(&self) -> Option<Role> {
        self.role.parse().ok()
    }

    pub fn set_role(&mut self, role: Role) {
        self.role = role.code().to_owned();
    }

    /// The department, unless none or one this release does not know.
    pub fn department(&self) -> Option<Department> {
        self.department.as_deref().and_then(|d| d.parse().ok())
    }

    pub fn set_department(&mut self, department: Department) {
        self.department = Some(department.code().to_owned());
    }

    /// Someone who left: off duty as well, so nothing is assigned to them.
    pub fn deactivate(&mut self) {
        self.active = false;
        self.on_duty = false;
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
