//! Embedded mode helpers: a signing secret kept beside the SQLite file, and a small demo
//! property seeded on first start so a newcomer has something to work with.

use std::path::PathBuf;

use propdesk_domain::replies::{DEFAULT_LANGUAGE, Edit, ReplyContent, StandardReply};
use propdesk_domain::{Department, Role, TicketKind};
use propdesk_store::entity::resident::NewResident;
use propdesk_store::entity::staff::NewStaff;
use propdesk_store::entity::{building, property, resident, staff, standard_reply, unit};
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

/// The dev keys for residents' personal data: read from `<database>.keys`, made on first
/// start (`data_keys`, `active_key` and `index_key` lines, as in the settings).
pub fn privacy_keys(database_url: &str) -> Result<crate::settings::PrivacySettings, String> {
    let path = database_file(database_url).with_extension("keys");
    let read = |text: &str| {
        let field = |name: &str| {
            text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix('=')).map(str::trim).map(str::to_owned)
        };
        Some(crate::settings::PrivacySettings {
            data_keys: crate::settings::Secret(field("data_keys")?),
            active_key: field("active_key")?,
            index_key: crate::settings::Secret(field("index_key")?),
            ..Default::default()
        })
    };
    if let Some(keys) = std::fs::read_to_string(&path).ok().as_deref().and_then(read) {
        return Ok(keys);
    }
    let generate = || propdesk_store::sealing::KeyRing::generate_key().map_err(|e| e.to_string());
    let text = format!("data_keys=dev1:{}\nactive_key=dev1\nindex_key={}\n", generate()?, generate()?);
    std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    read(&text).ok_or_else(|| "the dev keys just written do not read".to_owned())
}

fn secret_path(database_url: &str) -> PathBuf {
    database_file(database_url).with_extension("secret")
}

/// Where embedded mode keeps attachments: a folder beside the database file
/// (`propdesk-dev.db` → `propdesk-dev-files/`).
pub fn files_url(database_url: &str) -> String {
    let file = database_file(database_url);
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "propdesk-dev".into());
    format!("file://{}", file.with_file_name(format!("{stem}-files")).display())
}

fn database_file(database_url: &str) -> PathBuf {
    let rest = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:")).unwrap_or("");
    let file = rest.split('?').next().unwrap_or_default();
    // In-memory SQLite or a server database: keep files in the working directory.
    let file = if file.is_empty() || file.starts_with(':') { "propdesk-dev.db" } else { file };
    PathBuf::from(file)
}

/// Who the demo tokens are for.
pub struct Demo {
    pub property_id: String,
    pub admin_id: String,
    pub agent_id: String,
}

/// Seeds the demo property unless one exists, and its standard replies unless it has
/// some; returns the demo's ids either way.
pub async fn seed(store: &Store) -> Result<Demo, StoreError> {
    let demo = seed_property(store).await?;
    if store.standard_replies_for(&demo.property_id).await?.is_empty() {
        seed_replies(store, &demo).await?;
    }
    Ok(demo)
}

/// A standard reply of the demo library.
struct SeedReply {
    code: &'static str,
    title: &'static str,
    categories: &'static [&'static str],
    kinds: &'static [TicketKind],
    keywords: &'static [&'static str],
    body: &'static str,
}

/// A realistic handful: the questions a desk hears every week.
const SEED_REPLIES: [SeedReply; 5] = [
    SeedReply {
        code: "fee.enquiry",
        title: "物业费标准与缴费方式",
        categories: &["fee_dispute", "general_enquiry"],
        kinds: &[TicketKind::Enquiry, TicketKind::Complaint],
        keywords: &["物业费", "缴费", "收费标准"],
        body: "您好，{property}的物业费按公示标准收取，每月15日前可在客服中心或业主App缴纳，\
            无任何公示以外的收费。如对账单有疑问，请携带缴费凭证到客服中心核对。",
    },
    SeedReply {
        code: "water.cut_notice",
        title: "停水通知与临时供水",
        categories: &["water_supply"],
        kinds: &[],
        keywords: &["停水", "临时供水"],
        body: "您好，{unit} 所在楼栋因维修暂时停水，预计 {expected_time} 恢复供水。\
            临时供水：{interim_measure}。给您带来不便，敬请谅解。",
    },
    SeedReply {
        code: "repair.standard",
        title: "维修服务标准",
        categories: &["plumbing", "electrical", "door_lock", "building_fabric"],
        kinds: &[TicketKind::Repair],
        keywords: &["维修标准", "报修", "上门时间"],
        body: "您好，您的报修（单号 {ticket_no}）已由{department}受理，维修人员将于 {expected_time} 前处理。\
            户内有偿维修按公示价格收费，开工前会先向您报价并经您确认。",
    },
    SeedReply {
        code: "pets.rules",
        title: "小区养犬规定",
        categories: &["pets", "pet_mess"],
        kinds: &[TicketKind::Enquiry, TicketKind::Complaint],
        keywords: &["宠物", "养狗", "遛狗"],
        body: "您好，按{property}养犬管理规定：犬只须办证并牵绳出行，及时清理粪便，大型犬不得进入电梯轿厢。\
            如遇不文明养犬，请告知具体位置，我们将安排秩序维护员前往劝导。",
    },
    SeedReply {
        code: "renovation.hours",
        title: "装修时间规定",
        categories: &["noise", "illegal_construction", "general_enquiry"],
        kinds: &[TicketKind::Enquiry, TicketKind::Complaint],
        keywords: &["装修", "施工时间", "噪音"],
        body: "您好，装修施工时间为工作日 8:00—12:00、14:00—18:00，周末及法定节假日不得进行产生噪音的施工。\
            装修前须到客服中心办理装修申请，严禁违章搭建。",
    },
];

/// Seeds the demo library.
async fn seed_replies(store: &Store, demo: &Demo) -> Result<(), StoreError> {
    let now = propdesk_store::now();
    for seed in &SEED_REPLIES {
        let reply = StandardReply {
            id: uuid::Uuid::now_v7().to_string(),
            property_id: Some(demo.property_id.clone()),
            code: seed.code.to_owned(),
            content: ReplyContent {
                title: seed.title.to_owned(),
                body: seed.body.to_owned(),
                category_codes: seed.categories.iter().map(|c| (*c).to_owned()).collect(),
                kinds: seed.kinds.to_vec(),
                keywords: seed.keywords.iter().map(|k| (*k).to_owned()).collect(),
                language: DEFAULT_LANGUAGE.to_owned(),
                active: true,
            },
            version: 1,
            use_count: 0,
            created_at: now,
            edit: Edit { by: demo.admin_id.clone(), at: now, reason: "created".to_owned() },
        };
        store.insert(standard_reply::Model::of(&reply)).await?;
    }
    Ok(())
}

async fn seed_property(store: &Store) -> Result<Demo, StoreError> {
    let first = Page { after: None, limit: 1 };
    if let Some(existing) = store.list_properties(None, &first).await?.into_iter().next() {
        // The demo's staff is a handful: one page holds them all.
        let staff = store.list_staff(&existing.id, None, false, true, &Page { after: None, limit: 1_000 }).await?;
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
            contact_retention_days: None,
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
                        language: DEFAULT_LANGUAGE.to_owned(),
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
            external_id: None,
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
    use std::path::Path;

    use super::*;

    #[test]
    fn the_demo_replies_are_valid_for_the_default_catalog() {
        let catalog = propdesk_domain::CategoryCatalog::default();
        for seed in &SEED_REPLIES {
            let template = propdesk_domain::replies::Template::parse(seed.body);
            assert!(template.is_ok(), "{}: {template:?}", seed.code);
            assert!(seed.categories.iter().all(|c| catalog.get(c).is_some()), "{}", seed.code);
            let mut v = propdesk_domain::Violations::new();
            propdesk_domain::replies::check_code(&mut v, "code", seed.code);
            assert!(v.is_empty(), "{}", seed.code);
        }
    }

    #[test]
    fn the_secret_lives_beside_the_database_file() {
        assert_eq!(secret_path("sqlite://data/propdesk.db?mode=rwc"), Path::new("data/propdesk.secret"));
        assert_eq!(secret_path("sqlite::memory:"), Path::new("propdesk-dev.secret"));
        assert_eq!(files_url("sqlite://data/propdesk.db?mode=rwc"), "file://data/propdesk-files");
        assert_eq!(files_url("sqlite::memory:"), "file://propdesk-dev-files");
        assert_eq!(secret_path("postgres://db/propdesk"), Path::new("propdesk-dev.secret"));
    }
}
