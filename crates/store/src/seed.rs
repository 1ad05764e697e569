//! Bulk seeding for benchmarks and tests that need many tickets at once: tickets as they
//! stand with their planned alarms, and no history or outbox (nothing happened to them
//! that anyone must hear of). Never used by the services.

use sea_orm::{EntityTrait, IntoActiveModel, Set};

use propdesk_domain::Ticket;
use propdesk_domain::ladder::Alarm;

use crate::entity::{alarm, ticket};
use crate::{Store, StoreError, stored_time};

/// Rows per insert statement (well under PostgreSQL's 65,535 bind parameters).
const CHUNK: usize = 500;

impl Store {
    /// Writes the tickets as they stand, each with its pending alarms. Returns the number
    /// of alarms written.
    pub async fn seed_tickets(&self, tickets: &[(Ticket, Vec<Alarm>)]) -> Result<usize, StoreError> {
        let mut alarms = 0;
        for chunk in tickets.chunks(CHUNK) {
            let rows = chunk
                .iter()
                .map(|(t, _)| Ok(ticket::Model::of(t.facts(), t.version)?.into_active_model()))
                .collect::<Result<Vec<_>, StoreError>>()?;
            ticket::Entity::insert_many(rows).exec_without_returning(&self.db).await?;
            let planned: Vec<alarm::ActiveModel> =
                chunk.iter().flat_map(|(t, planned)| planned.iter().map(move |a| pending_alarm(t, a))).collect();
            alarms += planned.len();
            for rows in planned.chunks(CHUNK) {
                alarm::Entity::insert_many(rows.to_vec()).exec_without_returning(&self.db).await?;
            }
        }
        Ok(alarms)
    }
}

fn pending_alarm(t: &Ticket, a: &Alarm) -> alarm::ActiveModel {
    alarm::ActiveModel {
        ticket_id: Set(t.id.clone()),
        cycle: Set(t.clock_cycle),
        clock: Set(a.clock.code().to_owned()),
        rung: Set(a.rung.code().to_owned()),
        deadline_at: Set(stored_time(a.deadline)),
        fire_at: Set(stored_time(a.fire_at)),
        level: Set(a.level),
        recipients: Set(crate::alarms::recipient_codes(&a.recipients)),
        pending: Set(true),
        fired_at: Set(None),
        ..Default::default()
    }
}
