//! The benchmark's world, written straight into a migrated database: properties with
//! buildings and units, staff in every department for dispatch to assign, and, for the
//! escalation figure, tickets whose clocks stay open with their ladders planned.

use chrono::{DateTime, Utc};
use propdesk_domain::aggregate::{CategoryCode, Report, Reporter, RequestKey, Route};
use propdesk_domain::{By, Channel, Department, Policy, Priority, Role, Ticket, TicketKind};
use propdesk_store::Store;
use propdesk_store::entity::staff::NewStaff;
use propdesk_store::entity::{building, property, staff, unit};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel};

use crate::BenchError;
use crate::mix::Site;

/// How big the world is.
#[derive(Debug, Clone, Copy)]
pub struct WorldSize {
    pub properties: usize,
    pub buildings: usize,
    pub floors: i32,
    pub units_per_floor: i32,
}

impl Default for WorldSize {
    fn default() -> Self {
        WorldSize { properties: 8, buildings: 6, floors: 24, units_per_floor: 4 }
    }
}

/// What was seeded: the sites tickets are logged for, and the call-centre agent who logs
/// them (one agent serving every property).
#[derive(Debug, Clone)]
pub struct World {
    pub sites: Vec<Site>,
    pub agent_id: String,
}

impl World {
    pub fn property_ids(&self) -> Vec<String> {
        self.sites.iter().map(|s| s.property_id.clone()).collect()
    }
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Rows per multi-row INSERT: well under PostgreSQL's 65,535 parameters for the widest table.
const CHUNK: usize = 500;

async fn insert_all<A>(store: &Store, rows: Vec<A>) -> Result<(), BenchError>
where
    A: ActiveModelTrait + Send,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(CHUNK).collect();
        <A::Entity as EntityTrait>::insert_many(chunk).exec_without_returning(store.connection()).await?;
    }
    Ok(())
}

fn person(
    property_id: &str,
    name: String,
    role: Role,
    department: Option<Department>,
    at: DateTime<Utc>,
) -> staff::Model {
    let new = NewStaff {
        id: new_id(),
        property_id: property_id.to_owned(),
        name,
        role,
        department,
        supervisor_id: None,
        on_duty: true,
        external_id: None,
    };
    staff::Model::new(new, at)
}

/// Seeds `size` into an empty, migrated store.
pub async fn seed(store: &Store, size: WorldSize) -> Result<World, BenchError> {
    let now = propdesk_store::now();
    let mut sites = Vec::new();
    let mut buildings = Vec::new();
    let mut units = Vec::new();
    let mut people = Vec::new();
    let mut agent_id = String::new();
    for p in 0..size.properties {
        let property_id = new_id();
        store
            .insert(property::Model {
                id: property_id.clone(),
                name: format!("物业 {p} Estate {p}"),
                address: format!("{} Garden Road", 10 + p),
                created_at: now,
                updated_at: now,
                contact_retention_days: None,
            })
            .await?;
        let mut unit_ids = Vec::new();
        for b in 1..=size.buildings {
            let building_id = new_id();
            buildings.push(
                building::Model { id: building_id.clone(), property_id: property_id.clone(), name: format!("{b}") }
                    .into_active_model(),
            );
            for floor in 1..=size.floors {
                for door in 1..=size.units_per_floor {
                    let room = format!("{floor}{door:02}");
                    let id = new_id();
                    unit_ids.push(id.clone());
                    units.push(
                        unit::Model {
                            id,
                            property_id: property_id.clone(),
                            building_id: building_id.clone(),
                            floor,
                            room: room.clone(),
                            label: format!("{b}-{room}"),
                            postal_address: format!("Room {room}, Building {b}, {} Garden Road", 10 + p),
                        }
                        .into_active_model(),
                    );
                }
            }
        }
        let staff_of = |name: &str, role, department| person(&property_id, name.to_owned(), role, department, now);
        if p == 0 {
            let agent = staff_of("Call-centre agent 话务员", Role::Agent, Some(Department::CustomerService));
            agent_id = agent.id.clone();
            people.push(agent);
        }
        people.push(staff_of("Manager 经理", Role::Manager, None));
        let teams = [(Department::Engineering, 4), (Department::Cleaning, 2), (Department::Security, 2)];
        for (department, members) in teams {
            people.push(staff_of(&format!("{department} supervisor"), Role::Supervisor, Some(department)));
            for m in 0..members {
                people.push(staff_of(&format!("{department} {m}"), Role::Technician, Some(department)));
            }
        }
        people.push(staff_of("CS supervisor", Role::Supervisor, Some(Department::CustomerService)));
        sites.push(Site { property_id, unit_ids });
    }
    insert_all(store, buildings).await?;
    insert_all(store, units).await?;
    insert_all(store, people.into_iter().map(IntoActiveModel::into_active_model).collect()).await?;
    Ok(World { sites, agent_id })
}

/// Seeds `tickets` P3 repairs at `site` whose three clocks run for days, each with the
/// alarms the notifier's ladder plans for it: `3 × tickets` open deadlines.
pub async fn seed_open_deadlines(
    store: &Store,
    policy: &Policy,
    site: &Site,
    agent_id: &str,
    tickets: usize,
) -> Result<usize, BenchError> {
    let now = propdesk_store::now();
    let agent = By::staff(agent_id, Role::Agent);
    let mut seeded = Vec::with_capacity(tickets);
    for n in 0..tickets {
        let report = Report {
            id: new_id(),
            property_id: site.property_id.clone(),
            unit: None,
            location: format!("east wall, section {n}"),
            resident_id: None,
            reporter: Reporter::default(),
            kind: TicketKind::Repair,
            channel: Channel::Phone,
            category: CategoryCode::new("building_fabric"),
            category_default: Priority::P3,
            requested_priority: None,
            title: format!("Cracked render on the east wall ({n})"),
            description: "外墙抹灰开裂 Cracked render, not urgent".to_owned(),
            request: RequestKey { request_id: format!("seeded-{n}"), fingerprint: "seeded".to_owned() },
            promised_reply_at: None,
            answer_on_the_spot: None,
            answer_source: None,
            callback_wanted: false,
            referred_by: None,
        };
        let (mut ticket, _) =
            Ticket::log(report, policy, agent.clone(), now).map_err(|e| BenchError::Setup(e.to_string()))?;
        let route = Route {
            department: Department::Engineering,
            assignee_id: None,
            repeat: None,
            incident_id: None,
            note: String::new(),
        };
        ticket.dispatch(route, By::System("bench"), now).map_err(|e| BenchError::Setup(e.to_string()))?;
        let planned = propdesk_notifier::clocks::planned_alarms(policy, &ticket);
        seeded.push((ticket, planned));
    }
    let planned = store.seed_tickets(&seeded).await?;
    Ok(planned)
}
