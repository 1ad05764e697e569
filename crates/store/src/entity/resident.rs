use propdesk_domain::search::phone_key;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::entity::prelude::*;

/// Personal data: never log a `Model` (its `Debug` hides name and phone).
#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "residents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub property_id: String,
    pub unit_id: String,
    pub name: String,
    pub phone: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// `phone` reduced to one key for look-ups; computed from `phone` on every save.
    pub phone_key: Option<String>,
    /// The language they are told things in; unset reads as the default (zh-CN).
    pub language: Option<String>,
}

/// A resident to add to the directory.
pub struct NewResident {
    pub id: String,
    pub property_id: String,
    pub unit_id: String,
    pub name: String,
    pub phone: String,
    pub language: String,
}

impl Model {
    pub fn new(new: NewResident, at: DateTimeUtc) -> Model {
        Model {
            phone_key: phone_key(&new.phone),
            id: new.id,
            property_id: new.property_id,
            unit_id: new.unit_id,
            name: new.name,
            phone: new.phone,
            language: Some(new.language),
            created_at: at,
            updated_at: at,
        }
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resident").field("id", &self.id).field("unit_id", &self.unit_id).finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

#[sea_orm::prelude::async_trait::async_trait]
impl ActiveModelBehavior for ActiveModel {
    /// The phone key always follows the phone, however the record was changed.
    async fn before_save<C>(mut self, _db: &C, _insert: bool) -> Result<Self, DbErr>
    where
        C: ConnectionTrait,
    {
        if let Set(phone) | Unchanged(phone) = &self.phone {
            self.phone_key = Set(phone_key(phone));
        }
        Ok(self)
    }
}
