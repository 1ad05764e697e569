use crate::sealing::{self, SealError};
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::entity::prelude::*;

/// Personal data: never log a `Model` (its `Debug` hides name and phone). Name and phone
/// are sealed in the table (see [`crate::sealing`]): every save seals them and answers the
/// model opened; a row read straight from the table needs [`Model::opened`].
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
    /// The blind index of `phone` for look-ups; computed from `phone` on every save.
    pub phone_key: Option<String>,
    /// The language they are told things in; unset reads as the default (zh-CN).
    pub language: Option<String>,
    /// When their personal data was erased on request (name and phone are empty since).
    pub erased_at: Option<DateTimeUtc>,
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
            phone_key: None,
            id: new.id,
            property_id: new.property_id,
            unit_id: new.unit_id,
            name: new.name,
            phone: new.phone,
            language: Some(new.language),
            erased_at: None,
            created_at: at,
            updated_at: at,
        }
    }
}

/// The sealed columns, named in their seals.
pub const NAME: &str = "residents.name";
pub const PHONE: &str = "residents.phone";

impl Model {
    /// Erases the personal data this record holds: name and phone (the row stays).
    pub fn erase(&mut self, at: DateTimeUtc) {
        self.name.clear();
        self.phone.clear();
        self.erased_at = Some(at);
        self.updated_at = at;
    }

    /// This row with its name and phone in plain text.
    pub fn opened(mut self) -> Result<Model, SealError> {
        let keys = sealing::ring()?;
        self.name = keys.open(NAME, &self.name)?;
        self.phone = keys.open(PHONE, &self.phone)?;
        Ok(self)
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
    /// Name and phone are sealed, and the blind index follows the phone, however the
    /// record was changed (given plain, or as read from the table).
    async fn before_save<C>(mut self, _db: &C, _insert: bool) -> Result<Self, DbErr>
    where
        C: ConnectionTrait,
    {
        let keys = sealing::ring().map_err(unsealable)?;
        if let Set(phone) | Unchanged(phone) = &self.phone {
            let plain = keys.open(PHONE, phone).map_err(unsealable)?;
            self.phone_key = Set(keys.phone_index(&plain));
            self.phone = Set(keys.seal(PHONE, &plain).map_err(unsealable)?);
        }
        if let Set(name) | Unchanged(name) = &self.name {
            let plain = keys.open(NAME, name).map_err(unsealable)?;
            self.name = Set(keys.seal(NAME, &plain).map_err(unsealable)?);
        }
        Ok(self)
    }

    /// What a save answers is the record as the caller knows it: opened.
    async fn after_save<C>(model: Model, _db: &C, _insert: bool) -> Result<Model, DbErr>
    where
        C: ConnectionTrait,
    {
        model.opened().map_err(unsealable)
    }
}

fn unsealable(err: SealError) -> DbErr {
    DbErr::Custom(err.to_string())
}
