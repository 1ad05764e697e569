//! DirectoryService: properties, buildings, units, residents and staff.
//!
//! Reading needs any role at the property; changing needs a manager or admin there, and
//! only admins create properties. Residents' names and phones are masked for technicians.

use std::sync::Arc;

use propdesk_domain::privacy::{mask_name, mask_phone, may_see_contact_details};
use propdesk_domain::replies::{DEFAULT_LANGUAGE, check_language};
use propdesk_domain::validation::{MAX_ADDRESS, MAX_NAME, MAX_ROOM, MAX_SHORT_LABEL};
use propdesk_domain::{Actor, Denied, Department, Operation, Role, Violations};
use propdesk_proto::v1 as pb;
use propdesk_proto::v1::ErrorReason;
use propdesk_proto::v1::directory_service_server::DirectoryService;
use propdesk_store::entity::resident::NewResident;
use propdesk_store::entity::staff::NewStaff;
use propdesk_store::entity::{building, property, resident, staff, unit};
use propdesk_store::{Page, ResidentFilter};
use tonic::{Request, Response, Status};

use crate::IntakeState;
use crate::audit::Action;
use crate::auth::actor;
use crate::convert::{WireEnum, code_to_wire, optional_enum, required_enum, timestamp};
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{check_request_id, insert_once, key_of};
use crate::paging;

pub struct DirectoryApi {
    state: Arc<IntakeState>,
}

impl DirectoryApi {
    pub fn new(state: Arc<IntakeState>) -> Self {
        DirectoryApi { state }
    }
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The page a directory list asks for (one row more than its size: it tells whether
/// another page follows).
fn page(v: &mut Violations, page_size: i32, page_token: &str) -> Page {
    let limit = v.page_size("page_size", page_size);
    Page { after: paging::parse_key(v, page_token), limit: limit + 1 }
}

/// The one id field of a request, validated.
fn required_id(field: &str, value: &str) -> ApiResult<String> {
    let mut v = Violations::new();
    let id = v.required_id(field, value);
    v.into_result()?;
    id.ok_or_else(|| ApiError::Internal("validated id missing".into()))
}

fn property_to_wire(p: &property::Model) -> pb::Property {
    pb::Property {
        id: p.id.clone(),
        name: p.name.clone(),
        address: p.address.clone(),
        created_at: Some(timestamp(p.created_at)),
        updated_at: Some(timestamp(p.updated_at)),
        contact_retention_days: p.contact_retention_days.unwrap_or(0),
    }
}

fn building_to_wire(b: &building::Model) -> pb::Building {
    pb::Building { id: b.id.clone(), property_id: b.property_id.clone(), name: b.name.clone() }
}

fn unit_to_wire(u: &unit::Model) -> pb::Unit {
    pb::Unit {
        id: u.id.clone(),
        property_id: u.property_id.clone(),
        building_id: u.building_id.clone(),
        floor: u.floor,
        room: u.room.clone(),
        label: u.label.clone(),
        postal_address: u.postal_address.clone(),
    }
}

fn resident_to_wire(r: &resident::Model, viewer: &Actor) -> pb::Resident {
    let clear = may_see_contact_details(viewer.role, false);
    pb::Resident {
        id: r.id.clone(),
        property_id: r.property_id.clone(),
        unit_id: r.unit_id.clone(),
        name: if clear { r.name.clone() } else { mask_name(&r.name) },
        phone: if clear { r.phone.clone() } else { mask_phone(&r.phone) },
        created_at: Some(timestamp(r.created_at)),
        language: r.language.clone().unwrap_or_else(|| DEFAULT_LANGUAGE.to_owned()),
        erased_at: r.erased_at.map(timestamp),
    }
}

/// Longest reason an erasure keeps.
const MAX_ERASURE_REASON: usize = 500;

fn staff_to_wire(s: &staff::Model) -> pb::Staff {
    pb::Staff {
        id: s.id.clone(),
        property_id: s.property_id.clone(),
        name: s.name.clone(),
        role: code_to_wire::<Role>(Some(&s.role)),
        department: code_to_wire::<Department>(s.department.as_deref()),
        supervisor_id: s.supervisor_id.clone().unwrap_or_default(),
        on_duty: s.on_duty,
        created_at: Some(timestamp(s.created_at)),
        updated_at: Some(timestamp(s.updated_at)),
        external_id: s.external_id.clone().unwrap_or_default(),
        active: s.active,
    }
}

/// Longest identity-provider id kept (emails and directory object ids fit).
const MAX_EXTERNAL_ID: usize = 200;

/// An identity-provider id as the token will carry it (compared exactly); `None` when empty.
fn external_id(v: &mut Violations, field: &str, value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    v.optional_text(field, value, MAX_EXTERNAL_ID);
    if value.trim() != value {
        v.add(field, "must not start or end with spaces");
    }
    Some(value.to_owned())
}

impl DirectoryApi {
    async fn property(&self, id: &str) -> ApiResult<property::Model> {
        self.state.store.find::<property::Model>(id).await?.ok_or(ApiError::NotFound("property"))
    }

    async fn building(&self, id: &str) -> ApiResult<building::Model> {
        self.state.store.find::<building::Model>(id).await?.ok_or(ApiError::NotFound("building"))
    }

    async fn unit(&self, id: &str) -> ApiResult<unit::Model> {
        self.state.store.find::<unit::Model>(id).await?.ok_or(ApiError::NotFound("unit"))
    }

    async fn resident(&self, id: &str) -> ApiResult<resident::Model> {
        self.state.store.find::<resident::Model>(id).await?.ok_or(ApiError::NotFound("resident"))
    }

    async fn staff(&self, id: &str) -> ApiResult<staff::Model> {
        self.state.store.find::<staff::Model>(id).await?.ok_or(ApiError::NotFound("staff member"))
    }

    /// Refuses an identity-provider id someone other than `staff_id` already has.
    async fn check_external_id_free(&self, external_id: Option<&str>, staff_id: Option<&str>) -> ApiResult<()> {
        let Some(external_id) = external_id else { return Ok(()) };
        match self.state.store.staff_by_external_id(external_id).await? {
            Some(holder) if Some(holder.id.as_str()) != staff_id => Err(ApiError::field_as(
                ErrorReason::ExternalIdTaken,
                "external_id",
                "another staff member already signs in with this identity",
            )),
            _ => Ok(()),
        }
    }

    /// Writes a staff record; callers signed in as this person see the change at once.
    async fn save_staff(&self, model: staff::Model) -> ApiResult<staff::Model> {
        let stored = self.state.store.update(model).await.map_err(ApiError::from)?;
        self.state.signed_in.forget(stored.external_id.as_deref());
        Ok(stored)
    }

    /// A supervisor must be staff of the same property.
    async fn check_supervisor(
        &self,
        v: &mut Violations,
        property_id: &str,
        supervisor_id: Option<&str>,
    ) -> ApiResult<()> {
        if let Some(id) = supervisor_id {
            match self.state.store.find::<staff::Model>(id).await? {
                Some(s) if s.property_id == property_id => {}
                Some(_) => v.add("supervisor_id", "works at another property"),
                None => v.add("supervisor_id", "no such staff member"),
            }
        }
        Ok(())
    }
}

fn check_department(v: &mut Violations, role: Option<Role>, department: Option<Department>) {
    let needs_department = matches!(role, Some(Role::Dispatcher | Role::Technician | Role::Supervisor));
    if needs_department && department.is_none() {
        v.add("department", "is required for dispatchers, technicians and supervisors");
    }
}

#[tonic::async_trait]
impl DirectoryService for DirectoryApi {
    async fn create_property(
        &self,
        request: Request<pb::CreatePropertyRequest>,
    ) -> Result<Response<pb::Property>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let key = key_of(&actor, &body.request_id, &body);
        let mut v = Violations::new();
        check_request_id(&mut v, &body.request_id);
        v.required_text("name", &body.name, MAX_NAME);
        v.optional_text("address", &body.address, MAX_ADDRESS);
        v.into_result().map_err(ApiError::from)?;
        if actor.role != Role::Admin {
            return Err(ApiError::from(Denied::Role { role: actor.role, what: "create properties" }).into());
        }
        let now = propdesk_store::now();
        let model = property::Model {
            id: new_id(),
            name: body.name,
            address: body.address,
            created_at: now,
            updated_at: now,
            contact_retention_days: None,
        };
        let stored = insert_once(&self.state.store, key, model).await?;
        Ok(Response::new(property_to_wire(&stored)))
    }

    async fn update_property(
        &self,
        request: Request<pb::UpdatePropertyRequest>,
    ) -> Result<Response<pb::Property>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let id = v.required_id("property_id", &body.property_id);
        if let Some(name) = &body.name {
            v.required_text("name", name, MAX_NAME);
        }
        if let Some(address) = &body.address {
            v.optional_text("address", address, MAX_ADDRESS);
        }
        use propdesk_store::retention::{MAX_DAYS, MIN_DAYS};
        if let Some(days) = body.contact_retention_days
            && days != 0
            && !(MIN_DAYS..=MAX_DAYS).contains(&days)
        {
            v.add(
                "contact_retention_days",
                format!("must be {MIN_DAYS} to {MAX_DAYS} days (0 for the company's period), got {days}"),
            );
        }
        v.into_result().map_err(ApiError::from)?;
        let mut model = self.property(&id.unwrap_or_default()).await?;
        actor.authorize(&model.id, Operation::ManageDirectory, false).map_err(ApiError::from)?;
        if let Some(name) = body.name {
            model.name = name;
        }
        if let Some(address) = body.address {
            model.address = address;
        }
        if let Some(days) = body.contact_retention_days {
            model.contact_retention_days = (days != 0).then_some(days);
        }
        model.updated_at = propdesk_store::now();
        let stored = self.state.store.update(model).await.map_err(ApiError::from)?;
        Ok(Response::new(property_to_wire(&stored)))
    }

    async fn list_properties(
        &self,
        request: Request<pb::ListPropertiesRequest>,
    ) -> Result<Response<pb::ListPropertiesResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let page = page(&mut v, body.page_size, &body.page_token);
        v.into_result().map_err(ApiError::from)?;
        let scope = (actor.role != Role::Admin).then_some(actor.properties.as_slice());
        let mut rows = self.state.store.list_properties(scope, &page).await.map_err(ApiError::from)?;
        let next_page_token = paging::cut_by_key(&mut rows, page.limit - 1, |p| (p.name.clone(), p.id.clone()));
        let properties = rows.iter().map(property_to_wire).collect();
        Ok(Response::new(pb::ListPropertiesResponse { properties, next_page_token }))
    }

    async fn create_building(
        &self,
        request: Request<pb::CreateBuildingRequest>,
    ) -> Result<Response<pb::Building>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let key = key_of(&actor, &body.request_id, &body);
        let mut v = Violations::new();
        check_request_id(&mut v, &body.request_id);
        let property_id = v.required_id("property_id", &body.property_id);
        v.required_text("name", &body.name, MAX_SHORT_LABEL);
        v.into_result().map_err(ApiError::from)?;
        let property = self.property(&property_id.unwrap_or_default()).await?;
        actor.authorize(&property.id, Operation::ManageDirectory, false).map_err(ApiError::from)?;
        let model = building::Model { id: new_id(), property_id: property.id, name: body.name.trim().to_owned() };
        let stored = insert_once(&self.state.store, key, model).await?;
        Ok(Response::new(building_to_wire(&stored)))
    }

    async fn update_building(
        &self,
        request: Request<pb::UpdateBuildingRequest>,
    ) -> Result<Response<pb::Building>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let id = v.required_id("building_id", &body.building_id);
        if let Some(name) = &body.name {
            v.required_text("name", name, MAX_SHORT_LABEL);
        }
        v.into_result().map_err(ApiError::from)?;
        let mut model = self.building(&id.unwrap_or_default()).await?;
        actor.authorize(&model.property_id, Operation::ManageDirectory, false).map_err(ApiError::from)?;
        if let Some(name) = body.name {
            model.name = name.trim().to_owned();
        }
        let stored = self.state.store.update(model).await.map_err(ApiError::from)?;
        Ok(Response::new(building_to_wire(&stored)))
    }

    async fn list_buildings(
        &self,
        request: Request<pb::ListBuildingsRequest>,
    ) -> Result<Response<pb::ListBuildingsResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let property_id = v.required_id("property_id", &body.property_id);
        let page = page(&mut v, body.page_size, &body.page_token);
        v.into_result().map_err(ApiError::from)?;
        let property_id = property_id.unwrap_or_default();
        actor.authorize(&property_id, Operation::ReadTickets, false).map_err(ApiError::from)?;
        let mut rows = self.state.store.list_buildings(&property_id, &page).await.map_err(ApiError::from)?;
        let next_page_token = paging::cut_by_key(&mut rows, page.limit - 1, |b| (b.name.clone(), b.id.clone()));
        let buildings = rows.iter().map(building_to_wire).collect();
        Ok(Response::new(pb::ListBuildingsResponse { buildings, next_page_token }))
    }

    async fn create_unit(&self, request: Request<pb::CreateUnitRequest>) -> Result<Response<pb::Unit>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let key = key_of(&actor, &body.request_id, &body);
        let mut v = Violations::new();
        check_request_id(&mut v, &body.request_id);
        let building_id = v.required_id("building_id", &body.building_id);
        v.required_text("room", &body.room, MAX_ROOM);
        v.optional_text("postal_address", &body.postal_address, MAX_ADDRESS);
        if !(-10..=200).contains(&body.floor) {
            v.add("floor", "must be between -10 and 200");
        }
        v.into_result().map_err(ApiError::from)?;
        let building = self.building(&building_id.unwrap_or_default()).await?;
        actor.authorize(&building.property_id, Operation::ManageDirectory, false).map_err(ApiError::from)?;
        let room = body.room.trim().to_owned();
        let model = unit::Model {
            id: new_id(),
            property_id: building.property_id,
            label: format!("{}-{room}", building.name),
            building_id: building.id,
            floor: body.floor,
            room,
            postal_address: body.postal_address,
        };
        let stored = insert_once(&self.state.store, key, model).await?;
        Ok(Response::new(unit_to_wire(&stored)))
    }

    async fn update_unit(&self, request: Request<pb::UpdateUnitRequest>) -> Result<Response<pb::Unit>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let id = v.required_id("unit_id", &body.unit_id);
        if let Some(address) = &body.postal_address {
            v.optional_text("postal_address", address, MAX_ADDRESS);
        }
        if body.floor.is_some_and(|floor| !(-10..=200).contains(&floor)) {
            v.add("floor", "must be between -10 and 200");
        }
        v.into_result().map_err(ApiError::from)?;
        let mut model = self.unit(&id.unwrap_or_default()).await?;
        actor.authorize(&model.property_id, Operation::ManageDirectory, false).map_err(ApiError::from)?;
        if let Some(floor) = body.floor {
            model.floor = floor;
        }
        if let Some(address) = body.postal_address {
            model.postal_address = address;
        }
        let stored = self.state.store.update(model).await.map_err(ApiError::from)?;
        Ok(Response::new(unit_to_wire(&stored)))
    }

    async fn list_units(
        &self,
        request: Request<pb::ListUnitsRequest>,
    ) -> Result<Response<pb::ListUnitsResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let property_id = v.required_id("property_id", &body.property_id);
        let building_id = v.optional_id("building_id", &body.building_id);
        let page = page(&mut v, body.page_size, &body.page_token);
        v.into_result().map_err(ApiError::from)?;
        let property_id = property_id.unwrap_or_default();
        actor.authorize(&property_id, Operation::ReadTickets, false).map_err(ApiError::from)?;
        let store = &self.state.store;
        let mut rows = store.list_units(&property_id, building_id.as_deref(), &page).await.map_err(ApiError::from)?;
        let next_page_token = paging::cut_by_key(&mut rows, page.limit - 1, |u| (u.label.clone(), u.id.clone()));
        let units = rows.iter().map(unit_to_wire).collect();
        Ok(Response::new(pb::ListUnitsResponse { units, next_page_token }))
    }

    async fn create_resident(
        &self,
        request: Request<pb::CreateResidentRequest>,
    ) -> Result<Response<pb::Resident>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let key = key_of(&actor, &body.request_id, &body);
        let mut v = Violations::new();
        check_request_id(&mut v, &body.request_id);
        let unit_id = v.required_id("unit_id", &body.unit_id);
        v.required_text("name", &body.name, MAX_NAME);
        if body.phone.is_empty() {
            v.add("phone", "is required");
        }
        v.optional_phone("phone", &body.phone);
        let language = if body.language.is_empty() { DEFAULT_LANGUAGE } else { body.language.as_str() };
        check_language(&mut v, "language", language);
        v.into_result().map_err(ApiError::from)?;
        let unit = self.unit(&unit_id.unwrap_or_default()).await?;
        actor.authorize(&unit.property_id, Operation::ManageDirectory, false).map_err(ApiError::from)?;
        let now = propdesk_store::now();
        let new = NewResident {
            id: new_id(),
            property_id: unit.property_id,
            unit_id: unit.id,
            name: body.name,
            phone: body.phone,
            language: language.to_owned(),
        };
        let model = resident::Model::new(new, now);
        let stored = insert_once(&self.state.store, key, model).await?;
        let shown = resident_to_wire(&stored, &actor);
        self.state.access.residents(&actor, std::slice::from_ref(&shown), Action::Create).await?;
        Ok(Response::new(shown))
    }

    async fn update_resident(
        &self,
        request: Request<pb::UpdateResidentRequest>,
    ) -> Result<Response<pb::Resident>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let id = v.required_id("resident_id", &body.resident_id);
        if let Some(name) = &body.name {
            v.required_text("name", name, MAX_NAME);
        }
        if let Some(phone) = &body.phone {
            if phone.is_empty() {
                v.add("phone", "must not be empty");
            }
            v.optional_phone("phone", phone);
        }
        if let Some(language) = &body.language {
            check_language(&mut v, "language", language);
        }
        v.into_result().map_err(ApiError::from)?;
        let mut model = self.resident(&id.unwrap_or_default()).await?;
        actor.authorize(&model.property_id, Operation::ManageDirectory, false).map_err(ApiError::from)?;
        if let Some(name) = body.name {
            model.name = name;
        }
        if let Some(phone) = body.phone {
            model.phone = phone;
        }
        if let Some(language) = body.language {
            model.language = Some(language);
        }
        model.updated_at = propdesk_store::now();
        let stored = self.state.store.update(model).await.map_err(ApiError::from)?;
        let shown = resident_to_wire(&stored, &actor);
        self.state.access.residents(&actor, std::slice::from_ref(&shown), Action::Update).await?;
        Ok(Response::new(shown))
    }

    async fn erase_resident(
        &self,
        request: Request<pb::EraseResidentRequest>,
    ) -> Result<Response<pb::EraseResidentResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let id = v.required_id("resident_id", &body.resident_id);
        v.required_text("reason", &body.reason, MAX_ERASURE_REASON);
        v.into_result().map_err(ApiError::from)?;
        let mut resident = self.resident(&id.unwrap_or_default()).await?;
        actor.authorize(&resident.property_id, Operation::ErasePersonalData, false).map_err(ApiError::from)?;
        if resident.erased_at.is_some() {
            let resident = Some(resident_to_wire(&resident, &actor));
            return Ok(Response::new(pb::EraseResidentResponse { resident, tickets_erased: 0 }));
        }
        let shown = resident_to_wire(&resident, &actor);
        self.state.access.residents(&actor, std::slice::from_ref(&shown), Action::Erase).await?;
        let tickets = crate::erasure::erase_from_tickets(&self.state.store, &actor, &resident, &body.reason).await?;
        resident.erase(propdesk_store::now());
        let stored = self.state.store.update(resident).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::EraseResidentResponse {
            resident: Some(resident_to_wire(&stored, &actor)),
            tickets_erased: i32::try_from(tickets).unwrap_or(i32::MAX),
        }))
    }

    async fn export_resident_data(
        &self,
        request: Request<pb::ExportResidentDataRequest>,
    ) -> Result<Response<pb::ExportResidentDataResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let id = required_id("resident_id", &body.resident_id)?;
        let resident = self.resident(&id).await?;
        actor.authorize(&resident.property_id, Operation::ExportPersonalData, false).map_err(ApiError::from)?;
        let export = crate::export::resident_data(&self.state.store, &resident).await?;
        let shown = resident_to_wire(&resident, &actor);
        self.state.access.residents(&actor, std::slice::from_ref(&shown), Action::Export).await?;
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(Response::new(pb::ExportResidentDataResponse {
            json: export.json,
            tickets: count(export.tickets),
            messages: count(export.messages),
        }))
    }

    async fn list_residents(
        &self,
        request: Request<pb::ListResidentsRequest>,
    ) -> Result<Response<pb::ListResidentsResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let property_id = v.required_id("property_id", &body.property_id);
        let unit_id = v.optional_id("unit_id", &body.unit_id);
        let phone_key = v.phone_filter("phone", &body.phone);
        let name_contains = if body.name_contains.is_empty() {
            None
        } else {
            v.required_text("name_contains", &body.name_contains, MAX_NAME);
            Some(body.name_contains.trim().to_owned())
        };
        let page = page(&mut v, body.page_size, &body.page_token);
        v.into_result().map_err(ApiError::from)?;
        let property_id = property_id.unwrap_or_default();
        actor.authorize(&property_id, Operation::ReadTickets, false).map_err(ApiError::from)?;
        let filter = ResidentFilter { property_id, unit_id, phone_key, name_contains };
        let mut rows = self.state.store.list_residents(&filter, &page).await.map_err(ApiError::from)?;
        let next_page_token = paging::cut_by_key(&mut rows, page.limit - 1, |r| (r.name.clone(), r.id.clone()));
        let residents: Vec<pb::Resident> = rows.iter().map(|r| resident_to_wire(r, &actor)).collect();
        self.state.access.residents(&actor, &residents, Action::Read).await?;
        Ok(Response::new(pb::ListResidentsResponse { residents, next_page_token }))
    }

    async fn create_staff(&self, request: Request<pb::CreateStaffRequest>) -> Result<Response<pb::Staff>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let key = key_of(&actor, &body.request_id, &body);
        let mut v = Violations::new();
        check_request_id(&mut v, &body.request_id);
        let property_id = v.required_id("property_id", &body.property_id);
        v.required_text("name", &body.name, MAX_NAME);
        let role = required_enum::<Role>(&mut v, "role", body.role);
        let department = optional_enum::<Department>(&mut v, "department", body.department);
        check_department(&mut v, role, department);
        let supervisor_id = v.optional_id("supervisor_id", &body.supervisor_id);
        let external_id = external_id(&mut v, "external_id", &body.external_id);
        v.into_result().map_err(ApiError::from)?;
        let property = self.property(&property_id.unwrap_or_default()).await?;
        actor.authorize(&property.id, Operation::ManageDirectory, false).map_err(ApiError::from)?;
        let mut v = Violations::new();
        self.check_supervisor(&mut v, &property.id, supervisor_id.as_deref()).await?;
        v.into_result().map_err(ApiError::from)?;
        self.check_external_id_free(external_id.as_deref(), None).await?;
        let now = propdesk_store::now();
        let role = role.ok_or(ApiError::Internal("validated role missing".into()))?;
        let new = NewStaff {
            id: new_id(),
            property_id: property.id,
            name: body.name,
            role,
            department,
            supervisor_id,
            on_duty: body.on_duty,
            external_id,
        };
        let model = staff::Model::new(new, now);
        let stored = insert_once(&self.state.store, key, model).await?;
        Ok(Response::new(staff_to_wire(&stored)))
    }

    async fn update_staff(&self, request: Request<pb::UpdateStaffRequest>) -> Result<Response<pb::Staff>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let id = v.required_id("staff_id", &body.staff_id);
        if let Some(name) = &body.name {
            v.required_text("name", name, MAX_NAME);
        }
        let role = optional_enum::<Role>(&mut v, "role", body.role);
        let department = optional_enum::<Department>(&mut v, "department", body.department);
        let supervisor_id = body.supervisor_id.as_ref().map(|s| v.optional_id("supervisor_id", s));
        let moved_to = body.property_id.as_ref().and_then(|p| v.required_id("property_id", p));
        let new_external_id = body.external_id.as_ref().map(|e| external_id(&mut v, "external_id", e));
        v.into_result().map_err(ApiError::from)?;
        let mut model = self.staff(&id.unwrap_or_default()).await?;
        actor.authorize(&model.property_id, Operation::ManageDirectory, false).map_err(ApiError::from)?;
        let property_id = match moved_to {
            Some(to) if to != model.property_id => {
                let to = self.property(&to).await?.id;
                actor.authorize(&to, Operation::ManageDirectory, false).map_err(ApiError::from)?;
                to
            }
            _ => model.property_id.clone(),
        };
        let mut v = Violations::new();
        match &supervisor_id {
            Some(supervisor_id) => {
                if supervisor_id.as_deref() == Some(model.id.as_str()) {
                    v.add("supervisor_id", "cannot be the staff member themselves");
                }
                self.check_supervisor(&mut v, &property_id, supervisor_id.as_deref()).await?;
            }
            // Escalations must not go to someone at the property they left.
            None if property_id != model.property_id => model.supervisor_id = None,
            None => {}
        }
        let new_role = role.or_else(|| model.role());
        let new_department = department.or_else(|| model.department());
        check_department(&mut v, new_role, new_department);
        v.into_result().map_err(ApiError::from)?;
        if let Some(external_id) = &new_external_id {
            self.check_external_id_free(external_id.as_deref(), Some(&model.id)).await?;
        }
        // Whoever signed in with the old identity loses access with it.
        self.state.signed_in.forget(model.external_id.as_deref());
        model.property_id = property_id;
        if let Some(external_id) = new_external_id {
            model.external_id = external_id;
        }
        match body.active {
            Some(false) => model.deactivate(),
            Some(true) => model.active = true,
            None => {}
        }
        if let Some(name) = body.name {
            model.name = name;
        }
        if let Some(role) = role {
            model.set_role(role);
        }
        if let Some(department) = department {
            model.set_department(department);
        }
        if let Some(supervisor_id) = supervisor_id {
            model.supervisor_id = supervisor_id;
        }
        model.updated_at = propdesk_store::now();
        let stored = self.save_staff(model).await?;
        Ok(Response::new(staff_to_wire(&stored)))
    }

    async fn list_staff(
        &self,
        request: Request<pb::ListStaffRequest>,
    ) -> Result<Response<pb::ListStaffResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let property_id = v.required_id("property_id", &body.property_id);
        let department = optional_enum::<Department>(&mut v, "department", body.department);
        let page = page(&mut v, body.page_size, &body.page_token);
        v.into_result().map_err(ApiError::from)?;
        let property_id = property_id.unwrap_or_default();
        actor.authorize(&property_id, Operation::ReadTickets, false).map_err(ApiError::from)?;
        let department = department.map(|d| d.code());
        let store = &self.state.store;
        let mut rows = store
            .list_staff(&property_id, department, body.on_duty_only, body.include_inactive, &page)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = paging::cut_by_key(&mut rows, page.limit - 1, |s| (s.name.clone(), s.id.clone()));
        Ok(Response::new(pb::ListStaffResponse { staff: rows.iter().map(staff_to_wire).collect(), next_page_token }))
    }

    async fn set_on_duty(&self, request: Request<pb::SetOnDutyRequest>) -> Result<Response<pb::Staff>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let id = required_id("staff_id", &body.staff_id)?;
        let mut model = self.staff(&id).await?;
        let own = model.id == actor.staff_id;
        actor.authorize(&model.property_id, Operation::SetOnDuty { own }, false).map_err(ApiError::from)?;
        // Supervisors manage their own department's rota only.
        if !own && actor.role == Role::Supervisor {
            let theirs = self.staff(&actor.staff_id).await.ok().and_then(|s| s.department);
            if theirs.is_none() || theirs != model.department {
                return Err(ApiError::from(Denied::Role {
                    role: actor.role,
                    what: "set on-duty outside their department",
                })
                .into());
            }
        }
        if body.on_duty && !model.active {
            return Err(ApiError::precondition(
                ErrorReason::StaffInactive,
                "staff_id",
                "this staff member has been deactivated and cannot go on duty",
            )
            .into());
        }
        model.on_duty = body.on_duty;
        model.updated_at = propdesk_store::now();
        let stored = self.save_staff(model).await?;
        Ok(Response::new(staff_to_wire(&stored)))
    }

    async fn list_categories(
        &self,
        request: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let limit = v.page_size("page_size", body.page_size);
        let skip = paging::parse_count(&mut v, &body.page_token);
        v.into_result().map_err(ApiError::from)?;
        // The catalog comes from configuration and keeps its order.
        let mut page: Vec<_> =
            self.state.policy.categories.categories.iter().skip(skip as usize).take(limit as usize + 1).collect();
        let next_page_token = paging::cut_by_count(&mut page, limit, skip);
        let categories = page
            .into_iter()
            .map(|c| pb::Category {
                code: c.code.clone(),
                name: c.name.clone(),
                department: c.department.to_wire(),
                default_priority: c.default_priority.to_wire(),
                in_unit: c.in_unit,
            })
            .collect();
        Ok(Response::new(pb::ListCategoriesResponse { categories, next_page_token }))
    }
}
