//! Embedded mode helpers: a signing secret kept beside the SQLite file, and a small demo
//! property seeded on first start so a newcomer has something to work with.

use std::path::{Path, PathBuf};

use propdesk_domain::{Department, Role};
use propdesk_store::entity::resident::NewResident;
use propdesk_store::entity::staff::NewStaff;
use propdesk_store::entity::{building, property, resident, staff, unit};
use propdesk_store::{Page, Store, StoreError};

/// The dev signing secret: read from `<database>.secret`, created on first start.
pub fn signing_secret(database_url: &str) -> std::io::Result<String> {
    let path = secret_path(database_url);
    match std::fs::read_to_string(&path) {
        Ok(secret) if secret.trim().len() >= 32 => Ok(secret.trim().to_owned()),
        _ => {
            let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
            std::fs::write(&path, &secret)?;
            Ok(secret)
        }
    }
}

fn secret_path(database_url: &str) -> PathBuf {
    let rest = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:")).unwrap_or("");
    let file = rest.split('?').next().unwrap_or_default();
    // In-memory SQLite or a server database: keep the secret in the working directory.
    let file = if file.is_empty() || file.starts_with(':') { "propdesk-dev.db" } else { file };
    Path::new(file).with_extension("secret")
}

/// Who the demo tokens are for.
pub struct Demo {
    pub property_id: String,
    pub admin_id: String,
    pub agent_id: String,
}

/// Seeds the demo property unless one exists; returns the demo's ids either way.
pub async fn seed(store: &Store) -> Result<Demo, StoreError> {
    let first = Page { after: None, limit: 1 };
    if let Some(existing) = store.list_properties(None, &first).await?.into_iter().next() {
        // The demo's staff is a handful: one page holds them all.
        let staff = store.list_staff(&existing.id, None, false, &Page { after: None, limit: 1_000 }).await?;
        let find = |role: Role| staff.iter().find(|s| s.role() == Some(role)).map(|s| s.id.clone()).unwrap_or_default();
        return Ok(Demo { admin_id: find(Role::Admin), agent_id: find(Role::Agent), property_id: existing.id });
    }
    let now = propdesk_store::now();
    let id = || uuid::Uuid::now_v7().to_string();
    let property = store
        .insert(property::Model {
            id: id(),
            name: "阳光花园 Sunny Gardens".into(),
            address: "88 Garden Road".into(),
            created_at: now,
            updated_at: now,
        })
        .await?;
    for building_name in ["1", "2"] {
        let building = store
            .insert(building::Model { id: id(), property_id: property.id.clone(), name: building_name.into() })
            .await?;
        for (floor, room) in [(12, "1203"), (12, "1204"), (8, "802"), (3, "301")] {
            let unit = store
                .insert(unit::Model {
                    id: id(),
                    property_id: property.id.clone(),
                    building_id: building.id.clone(),
                    floor,
                    room: room.into(),
                    label: format!("{building_name}-{room}"),
                    postal_address: format!("Room {room}, Building {building_name}, 88 Garden Road"),
                })
                .await?;
            store
                .insert(resident::Model::new(
                    NewResident {
                        id: id(),
                        property_id: property.id.clone(),
                        unit_id: unit.id.clone(),
                        name: format!("住户 {building_name}-{room}"),
                        phone: format!("1380000{building_name}{room}"),
                    },
                    now,
                ))
                .await?;
        }
    }
    let person = |name: &str, role: Role, department: Option<Department>, supervisor: Option<&str>| {
        let new = NewStaff {
            id: id(),
            property_id: property.id.clone(),
            name: name.into(),
            role,
            department,
            supervisor_id: supervisor.map(str::to_owned),
            on_duty: true,
        };
        staff::Model::new(new, now)
    };
    let manager = store.insert(person("Manager Wang", Role::Manager, None, None)).await?;
    let admin = store.insert(person("Admin", Role::Admin, None, None)).await?;
    let cs_supervisor = store
        .insert(person("CS Supervisor Li", Role::Supervisor, Some(Department::CustomerService), Some(&manager.id)))
        .await?;
    let agent = store
        .insert(person("Agent Zhao", Role::Agent, Some(Department::CustomerService), Some(&cs_supervisor.id)))
        .await?;
    let teams = [
        (Department::Engineering, ["Plumber Chen", "Electrician Liu"]),
        (Department::Cleaning, ["Cleaner Sun", "Cleaner Zhou"]),
        (Department::Security, ["Guard Wu", "Guard Zheng"]),
    ];
    for (department, members) in teams {
        let supervisor = store
            .insert(person(&format!("{department} supervisor"), Role::Supervisor, Some(department), Some(&manager.id)))
            .await?;
        for member in members {
            store.insert(person(member, Role::Technician, Some(department), Some(&supervisor.id))).await?;
        }
    }
    store
        .insert(person("Dispatcher Qian", Role::Dispatcher, Some(Department::CustomerService), Some(&cs_supervisor.id)))
        .await?;
    Ok(Demo { property_id: property.id, admin_id: admin.id, agent_id: agent.id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_lives_beside_the_database_file() {
        assert_eq!(secret_path("sqlite://data/propdesk.db?mode=rwc"), Path::new("data/propdesk.secret"));
        assert_eq!(secret_path("sqlite::memory:"), Path::new("propdesk-dev.secret"));
        assert_eq!(secret_path("postgres://db/propdesk"), Path::new("propdesk-dev.secret"));
    }
}
