//! Schema migrations. They run on PostgreSQL and SQLite alike, each in one transaction,
//! and are never edited once released: add a new migration instead.

use sea_orm_migration::prelude::*;

mod m0001_initial;
mod m0002_incidents;
mod m0003_outbox_claims;
mod m0004_event_transaction_order;
mod m0005_notifier;
mod m0006_report_indexes;
mod m0007_open_by_property;
mod m0008_outbox_trace;
mod m0009_assignee_load;
mod m0010_event_cause;
mod m0011_request_keys;
mod m0012_desk_lookups;
mod m0013_ticket_corrections;
mod m0014_duplicates;
mod m0015_standard_replies;
mod m0016_attachments;
mod m0017_staff_sign_in;
mod m0018_erasure;
mod m0019_access_records;
mod m0020_retention;
mod m0021_ticket_fillfactor;
mod m0022_open_incident_lookup;

/// A named index of `table` on `columns` (chain `.unique()` for a unique one).
pub(crate) fn index(table: &'static str, name: &'static str, columns: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for column in columns {
        index.col(*column);
    }
    index.take()
}

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_incidents::Migration),
            Box::new(m0003_outbox_claims::Migration),
            Box::new(m0004_event_transaction_order::Migration),
            Box::new(m0005_notifier::Migration),
            Box::new(m0006_report_indexes::Migration),
            Box::new(m0007_open_by_property::Migration),
            Box::new(m0008_outbox_trace::Migration),
            Box::new(m0009_assignee_load::Migration),
            Box::new(m0010_event_cause::Migration),
            Box::new(m0011_request_keys::Migration),
            Box::new(m0012_desk_lookups::Migration),
            Box::new(m0013_ticket_corrections::Migration),
            Box::new(m0014_duplicates::Migration),
            Box::new(m0015_standard_replies::Migration),
            Box::new(m0016_attachments::Migration),
            Box::new(m0017_staff_sign_in::Migration),
            Box::new(m0018_erasure::Migration),
            Box::new(m0019_access_records::Migration),
            Box::new(m0020_retention::Migration),
            Box::new(m0021_ticket_fillfactor::Migration),
            Box::new(m0022_open_incident_lookup::Migration),
        ]
    }
}
