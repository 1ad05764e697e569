//! The first schema: directory, tickets, their history, outbox and inbox.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use super::index;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

const ID_LEN: u32 = 36;
const CODE_LEN: u32 = 40;

fn id(name: &'static str) -> ColumnDef {
    string_len(name, ID_LEN).primary_key().take()
}
fn reference(name: &'static str) -> ColumnDef {
    string_len(name, ID_LEN)
}
fn reference_null(name: &'static str) -> ColumnDef {
    string_len_null(name, ID_LEN)
}
fn code(name: &'static str) -> ColumnDef {
    string_len(name, CODE_LEN)
}
fn code_null(name: &'static str) -> ColumnDef {
    string_len_null(name, CODE_LEN)
}
fn at(name: &'static str) -> ColumnDef {
    timestamp_with_time_zone(name)
}
fn at_null(name: &'static str) -> ColumnDef {
    timestamp_with_time_zone_null(name)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create()
                .table("properties")
                .col(id("id"))
                .col(text("name"))
                .col(text("address"))
                .col(at("created_at"))
                .col(at("updated_at"))
                .take(),
            Table::create().table("buildings").col(id("id")).col(reference("property_id")).col(text("name")).take(),
            Table::create()
                .table("units")
                .col(id("id"))
                .col(reference("property_id"))
                .col(reference("building_id"))
                .col(integer("floor"))
                .col(text("room"))
                .col(text("label"))
                .col(text("postal_address"))
                .take(),
            Table::create()
                .table("residents")
                .col(id("id"))
                .col(reference("property_id"))
                .col(reference("unit_id"))
                .col(text("name"))
                .col(text("phone"))
                .col(at("created_at"))
                .col(at("updated_at"))
                .take(),
            Table::create()
                .table("staff")
                .col(id("id"))
                .col(reference("property_id"))
                .col(text("name"))
                .col(code("role"))
                .col(code_null("department"))
                .col(reference_null("supervisor_id"))
                .col(boolean("on_duty"))
                .col(at_null("last_assigned_at"))
                .col(at("created_at"))
                .col(at("updated_at"))
                .take(),
            Table::create()
                .table("tickets")
                .col(id("id"))
                .col(big_integer("version"))
                .col(reference("property_id"))
                .col(reference_null("building_id"))
                .col(reference_null("unit_id"))
                .col(text_null("unit_label"))
                .col(text("location"))
                .col(reference_null("resident_id"))
                .col(text("reporter_name"))
                .col(text("reporter_phone"))
                .col(code("kind"))
                .col(code("channel"))
                .col(code("category"))
                .col(code_null("department"))
                .col(code("priority"))
                .col(code("state"))
                .col(code_null("held_from"))
                .col(text("title"))
                .col(text("description"))
                .col(reference("first_contact_agent_id"))
                .col(reference_null("assignee_id"))
                .col(integer("escalation_level"))
                .col(reference_null("incident_id"))
                .col(boolean("repeat_fault"))
                .col(string_len("request_id", 64))
                .col(string_len("request_fingerprint", 64))
                .col(at("created_at"))
                .col(at("updated_at"))
                .col(at_null("dispatched_at"))
                .col(at_null("accepted_at"))
                .col(at_null("on_site_at"))
                .col(at_null("resolved_at"))
                .col(at_null("closed_at"))
                .col(at_null("on_hold_since"))
                .col(at_null("acknowledge_by"))
                .col(at_null("on_site_by"))
                .col(at_null("resolve_by"))
                .col(at_null("first_reply_by"))
                .col(at_null("callback_by"))
                .col(at_null("promised_reply_at"))
                .col(code_null("callback_satisfaction"))
                .col(text_null("callback_comment"))
                .col(reference_null("callback_recorded_by"))
                .col(at_null("callback_recorded_at"))
                .take(),
            Table::create()
                .table("ticket_events")
                .col(big_pk_auto("id"))
                .col(string_len_uniq("event_id", ID_LEN))
                .col(reference("ticket_id"))
                .col(code("event_type"))
                .col(string_len("actor_id", 64))
                .col(code_null("actor_role"))
                .col(code_null("from_state"))
                .col(code("to_state"))
                .col(text("note"))
                .col(at("occurred_at"))
                .col(big_integer("ticket_version"))
                .col(reference("property_id"))
                .col(code_null("department"))
                .col(reference_null("assignee_id"))
                .col(code("priority"))
                .take(),
            Table::create()
                .table("outbox")
                .col(big_pk_auto("id"))
                .col(string_len_uniq("message_id", ID_LEN))
                .col(string_len("routing_key", 100))
                .col(blob("payload"))
                .col(at("created_at"))
                .col(integer("attempts"))
                .take(),
            Table::create()
                .table("inbox")
                .col(string_len("consumer", 64))
                .col(string_len("message_id", 64))
                .col(at("processed_at"))
                .primary_key(Index::create().col("consumer").col("message_id"))
                .take(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }

        let indexes = [
            index("buildings", "buildings_property_name", &["property_id", "name"]).unique().take(),
            index("units", "units_building_room", &["building_id", "room"]).unique().take(),
            index("units", "units_property", &["property_id"]),
            index("residents", "residents_unit", &["unit_id"]),
            index("residents", "residents_property", &["property_id"]),
            index("staff", "staff_property_department", &["property_id", "department"]),
            index("tickets", "tickets_request", &["first_contact_agent_id", "request_id"]).unique().take(),
            index("tickets", "tickets_property_id", &["property_id", "id"]),
            index("tickets", "tickets_assignee_state", &["assignee_id", "state"]),
            index("tickets", "tickets_unit_category", &["unit_id", "category"]),
            index("ticket_events", "ticket_events_ticket", &["ticket_id", "id"]),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
