//! Properties, buildings, units, residents and staff.

use sea_orm::sea_query::Condition;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Select, Set,
};

use crate::entity::{building, property, request_key, resident, staff, standard_reply, unit};
use crate::{Store, StoreError};

/// A directory record (property, building, unit, resident, staff member): read by id,
/// inserted and updated whole. Callers name the record type, never the database's.
pub trait DirectoryRecord: sealed::Sealed + Sized + Send + 'static {
    #[doc(hidden)]
    type Entity: EntityTrait<Model = Self>;
    #[doc(hidden)]
    type Active: ActiveModelTrait<Entity = Self::Entity> + ActiveModelBehavior + Send;
    /// What the record is called in idempotency keys and errors, e.g. "unit".
    const RESOURCE: &'static str;
    fn id(&self) -> &str;
    #[doc(hidden)]
    fn by_id(id: &str) -> sea_orm::Select<Self::Entity>;
    /// The record as read from its table, made readable (sealed fields opened).
    #[doc(hidden)]
    fn read(self) -> Result<Self, crate::sealing::SealError> {
        Ok(self)
    }
}

/// A directory record that can be written whole (every [`DirectoryRecord`] is).
pub trait Writable: DirectoryRecord + IntoActiveModel<Self::Active> {}

impl<R: DirectoryRecord + IntoActiveModel<R::Active>> Writable for R {}

/// The idempotency key of a create: who asked, their key, and a digest of what they asked.
#[derive(Debug, Clone)]
pub struct CreateKey {
    pub caller_id: String,
    pub request_id: String,
    pub fingerprint: String,
}

/// What an idempotent create did.
#[derive(Debug)]
pub enum Inserted<R> {
    New(R),
    /// The key was used before for the same request: the record it created.
    Existing(R),
    /// The key was used before for a different request.
    Mismatch,
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! directory_records {
    ($($module:ident: $resource:literal),+) => {$(
        impl sealed::Sealed for $module::Model {}
        impl DirectoryRecord for $module::Model {
            type Entity = $module::Entity;
            type Active = $module::ActiveModel;
            const RESOURCE: &'static str = $resource;
            fn id(&self) -> &str {
                &self.id
            }
            fn by_id(id: &str) -> sea_orm::Select<Self::Entity> {
                $module::Entity::find_by_id(id.to_owned())
            }
        }
    )+};
}

directory_records!(
    property: "property",
    building: "building",
    unit: "unit",
    staff: "staff",
    standard_reply: "standard reply"
);

impl sealed::Sealed for resident::Model {}
impl DirectoryRecord for resident::Model {
    type Entity = resident::Entity;
    type Active = resident::ActiveModel;
    const RESOURCE: &'static str = "resident";
    fn id(&self) -> &str {
        &self.id
    }
    fn by_id(id: &str) -> sea_orm::Select<Self::Entity> {
        resident::Entity::find_by_id(id.to_owned())
    }
    fn read(self) -> Result<Self, crate::sealing::SealError> {
        self.opened()
    }
}

impl Store {
    /// Inserts a directory record as given ([`StoreError::Conflict`] on a duplicate).
    pub async fn insert<R: Writable>(&self, record: R) -> Result<R, StoreError> {
        record.into_active_model().reset_all().insert(&self.db).await.map_err(StoreError::from_write)
    }

    /// Inserts a directory record unless `key` was used before: then returns the record
    /// the key's first use created, or [`Inserted::Mismatch`] when that was a different
    /// request. The key and the record are written in one transaction.
    pub async fn insert_once<R: Writable>(&self, record: R, key: CreateKey) -> Result<Inserted<R>, StoreError> {
        // Two attempts: a concurrent retry with the same key may commit between our look-up
        // and our insert; the second look-up then finds it.
        for _ in 0..2 {
            if let Some(found) = self.created_with(&key).await? {
                return Ok(found);
            }
            let txn = self.begin().await?;
            let written = request_key::ActiveModel {
                caller_id: Set(key.caller_id.clone()),
                request_id: Set(key.request_id.clone()),
                resource: Set(R::RESOURCE.to_owned()),
                resource_id: Set(record.id().to_owned()),
                fingerprint: Set(key.fingerprint.clone()),
                created_at: Set(crate::now()),
            }
            .insert(&txn.inner)
            .await
            .map_err(StoreError::from_write);
            match written {
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other),
                Ok(_) => {}
            }
            let stored =
                record.into_active_model().reset_all().insert(&txn.inner).await.map_err(StoreError::from_write)?;
            self.commit(txn).await?;
            return Ok(Inserted::New(stored));
        }
        self.created_with(&key).await?.ok_or(StoreError::Vanished("request key"))
    }

    /// What an earlier create with this key made, if any.
    async fn created_with<R: DirectoryRecord>(&self, key: &CreateKey) -> Result<Option<Inserted<R>>, StoreError> {
        let Some(used) =
            request_key::Entity::find_by_id((key.caller_id.clone(), key.request_id.clone())).one(&self.db).await?
        else {
            return Ok(None);
        };
        if used.fingerprint != key.fingerprint || used.resource != R::RESOURCE {
            return Ok(Some(Inserted::Mismatch));
        }
        let record = self.find::<R>(&used.resource_id).await?.ok_or(StoreError::Vanished("created record"))?;
        Ok(Some(Inserted::Existing(record)))
    }

    /// Writes every field of an existing directory record.
    pub async fn update<R: Writable>(&self, record: R) -> Result<R, StoreError> {
        record.into_active_model().reset_all().update(&self.db).await.map_err(StoreError::from_write)
    }

    /// One directory record by its id.
    pub async fn find<R: DirectoryRecord>(&self, id: &str) -> Result<Option<R>, StoreError> {
        Ok(R::by_id(id).one(&self.db).await?.map(R::read).transpose()?)
    }

    /// The staff records of these ids (unknown ids are left out).
    pub async fn staff_named(&self, ids: &[String]) -> Result<Vec<staff::Model>, StoreError> {
        Ok(staff::Entity::find().filter(staff::Column::Id.is_in(ids.iter().cloned())).all(&self.db).await?)
    }

    /// Properties by id (`None`: all of them), in name order.
    pub async fn list_properties(
        &self,
        ids: Option<&[String]>,
        page: &Page,
    ) -> Result<Vec<property::Model>, StoreError> {
        use property::Column as C;
        let mut query = property::Entity::find();
        if let Some(ids) = ids {
            query = query.filter(C::Id.is_in(ids.iter().cloned()));
        }
        page.of(query, C::Name, C::Id).all(&self.db).await.map_err(StoreError::from)
    }

    /// A property's buildings, in name order.
    pub async fn list_buildings(&self, property_id: &str, page: &Page) -> Result<Vec<building::Model>, StoreError> {
        use building::Column as C;
        let query = building::Entity::find().filter(C::PropertyId.eq(property_id));
        page.of(query, C::Name, C::Id).all(&self.db).await.map_err(StoreError::from)
    }

    /// A property's units (or one building's), in label order.
    pub async fn list_units(
        &self,
        property_id: &str,
        building_id: Option<&str>,
        page: &Page,
    ) -> Result<Vec<unit::Model>, StoreError> {
        use unit::Column as C;
        let mut query = unit::Entity::find().filter(C::PropertyId.eq(property_id));
        if let Some(building_id) = building_id {
            query = query.filter(C::BuildingId.eq(building_id));
        }
        page.of(query, C::Label, C::Id).all(&self.db).await.map_err(StoreError::from)
    }

    /// A property's residents matching `filter`, in name order.
    pub async fn list_residents(
        &self,
        filter: &ResidentFilter,
        page: &Page,
    ) -> Result<Vec<resident::Model>, StoreError> {
        use resident::Column as C;
        let mut query = resident::Entity::find().filter(C::PropertyId.eq(filter.property_id.as_str()));
        if let Some(unit_id) = &filter.unit_id {
            query = query.filter(C::UnitId.eq(unit_id.as_str()));
        }
        if let Some(key) = &filter.phone_key {
            query = query.filter(C::PhoneKey.eq(crate::sealing::index_of_phone_key(key)));
        }
        // Names are sealed: the property's residents (or the unit's, or those with the phone)
        // are opened here, then matched, ordered and paged by name.
        let fragment = filter.name_contains.as_ref().map(|f| f.to_lowercase());
        let mut rows = Vec::new();
        for row in query.all(&self.db).await? {
            let row = row.opened()?;
            if fragment.as_ref().is_none_or(|f| row.name.to_lowercase().contains(f.as_str())) {
                rows.push(row);
            }
        }
        rows.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        if let Some((name, id)) = &page.after {
            rows.retain(|r| (&r.name, &r.id) > (name, id));
        }
        rows.truncate(usize::try_from(page.limit).unwrap_or(usize::MAX));
        Ok(rows)
    }

    /// A property's staff (or one department's, or those on duty), in name order.
    pub async fn list_staff(
        &self,
        property_id: &str,
        department: Option<&str>,
        on_duty_only: bool,
        include_inactive: bool,
        page: &Page,
    ) -> Result<Vec<staff::Model>, StoreError> {
        use staff::Column as C;
        let mut query = staff::Entity::find().filter(C::PropertyId.eq(property_id));
        if !include_inactive {
            query = query.filter(C::Active.eq(true));
        }
        if let Some(department) = department {
            query = query.filter(C::Department.eq(department));
        }
        if on_duty_only {
            query = query.filter(C::OnDuty.eq(true));
        }
        page.of(query, C::Name, C::Id).all(&self.db).await.map_err(StoreError::from)
    }

    /// The ids of a resident's tickets: those naming them, and those reported from `phone`.
    pub async fn tickets_of_resident(&self, resident_id: &str, phone: &str) -> Result<Vec<String>, StoreError> {
        use crate::entity::ticket::Column as C;
        let mut theirs = Condition::any().add(C::ResidentId.eq(resident_id));
        if let Some(index) = crate::sealing::ring()?.phone_index(phone) {
            theirs = theirs.add(C::ReporterPhoneKey.eq(index));
        }
        Ok(crate::entity::ticket::Entity::find()
            .select_only()
            .column(C::Id)
            .filter(theirs)
            .order_by_asc(C::Id)
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// The staff member the identity provider knows as `external_id`.
    pub async fn staff_by_external_id(&self, external_id: &str) -> Result<Option<staff::Model>, StoreError> {
        use staff::Column as C;
        staff::Entity::find().filter(C::ExternalId.eq(external_id)).one(&self.db).await.map_err(StoreError::from)
    }
}

/// Which residents to list.
#[derive(Debug, Clone, Default)]
pub struct ResidentFilter {
    pub property_id: String,
    pub unit_id: Option<String>,
    /// A phone key (`propdesk_domain::search::phone_key`).
    pub phone_key: Option<String>,
    /// Part of the name.
    pub name_contains: Option<String>,
}

/// One page of a list in (sort key, id) order: the rows after `after`, at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The sort key and id of the last row of the previous page.
    pub after: Option<(String, String)>,
    pub limit: u64,
}

impl Page {
    fn of<E, C>(&self, query: Select<E>, key: C, id: C) -> Select<E>
    where
        E: EntityTrait,
        C: ColumnTrait,
    {
        let mut query = query;
        if let Some((after_key, after_id)) = &self.after {
            query = query.filter(
                Condition::any()
                    .add(key.gt(after_key.as_str()))
                    .add(Condition::all().add(key.eq(after_key.as_str())).add(id.gt(after_id.as_str()))),
            );
        }
        query.order_by_asc(key).order_by_asc(id).limit(self.limit)
    }
}
