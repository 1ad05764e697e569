//! Properties, buildings, units, residents and staff.

use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PrimaryKeyTrait, QueryFilter,
    QueryOrder,
};

use crate::entity::{building, property, resident, staff, unit};
use crate::{Store, StoreError};

/// A directory record (property, building, unit, resident, staff member): read by id,
/// inserted and updated whole. Callers name the record type, never the database's.
pub trait DirectoryRecord: sealed::Sealed + Sized + Send + 'static {
    #[doc(hidden)]
    type Entity: EntityTrait<Model = Self>;
    #[doc(hidden)]
    type Active: ActiveModelTrait<Entity = Self::Entity> + ActiveModelBehavior + Send;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! directory_records {
    ($($module:ident),+) => {$(
        impl sealed::Sealed for $module::Model {}
        impl DirectoryRecord for $module::Model {
            type Entity = $module::Entity;
            type Active = $module::ActiveModel;
        }
    )+};
}

directory_records!(property, building, unit, resident, staff);

impl Store {
    /// Inserts a directory record as given ([`StoreError::Conflict`] on a duplicate).
    pub async fn insert<R>(&self, record: R) -> Result<R, StoreError>
    where
        R: DirectoryRecord + IntoActiveModel<R::Active>,
    {
        record.into_active_model().reset_all().insert(&self.db).await.map_err(StoreError::from_write)
    }

    /// Writes every field of an existing directory record.
    pub async fn update<R>(&self, record: R) -> Result<R, StoreError>
    where
        R: DirectoryRecord + IntoActiveModel<R::Active>,
    {
        record.into_active_model().reset_all().update(&self.db).await.map_err(StoreError::from_write)
    }

    /// One directory record by its id.
    pub async fn find<R>(&self, id: &str) -> Result<Option<R>, StoreError>
    where
        R: DirectoryRecord,
        <<R::Entity as EntityTrait>::PrimaryKey as PrimaryKeyTrait>::ValueType: From<String>,
    {
        Ok(R::Entity::find_by_id(id.to_owned()).one(&self.db).await?)
    }

    /// The staff records of these ids (unknown ids are left out).
    pub async fn staff_named(&self, ids: &[String]) -> Result<Vec<staff::Model>, StoreError> {
        Ok(staff::Entity::find().filter(staff::Column::Id.is_in(ids.iter().cloned())).all(&self.db).await?)
    }

    /// Properties by id; `None` lists them all.
    pub async fn list_properties(&self, ids: Option<&[String]>) -> Result<Vec<property::Model>, StoreError> {
        let mut query = property::Entity::find().order_by_asc(property::Column::Name);
        if let Some(ids) = ids {
            query = query.filter(property::Column::Id.is_in(ids.iter().cloned()));
        }
        Ok(query.all(&self.db).await?)
    }

    pub async fn list_buildings(&self, property_id: &str) -> Result<Vec<building::Model>, StoreError> {
        Ok(building::Entity::find()
            .filter(building::Column::PropertyId.eq(property_id))
            .order_by_asc(building::Column::Name)
            .all(&self.db)
            .await?)
    }

    pub async fn list_units(
        &self,
        property_id: &str,
        building_id: Option<&str>,
    ) -> Result<Vec<unit::Model>, StoreError> {
        let mut query = unit::Entity::find().filter(unit::Column::PropertyId.eq(property_id));
        if let Some(building_id) = building_id {
            query = query.filter(unit::Column::BuildingId.eq(building_id));
        }
        Ok(query.order_by_asc(unit::Column::Label).all(&self.db).await?)
    }

    pub async fn list_residents(
        &self,
        property_id: &str,
        unit_id: Option<&str>,
    ) -> Result<Vec<resident::Model>, StoreError> {
        let mut query = resident::Entity::find().filter(resident::Column::PropertyId.eq(property_id));
        if let Some(unit_id) = unit_id {
            query = query.filter(resident::Column::UnitId.eq(unit_id));
        }
        Ok(query.order_by_asc(resident::Column::Id).all(&self.db).await?)
    }

    pub async fn list_staff(
        &self,
        property_id: &str,
        department: Option<&str>,
        on_duty_only: bool,
    ) -> Result<Vec<staff::Model>, StoreError> {
        let mut query = staff::Entity::find().filter(staff::Column::PropertyId.eq(property_id));
        if let Some(department) = department {
            query = query.filter(staff::Column::Department.eq(department));
        }
        if on_duty_only {
            query = query.filter(staff::Column::OnDuty.eq(true));
        }
        Ok(query.order_by_asc(staff::Column::Name).all(&self.db).await?)
    }
}
