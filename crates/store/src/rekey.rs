//! Re-sealing personal data under the active key (`propdesk rekey`, and `propdesk migrate`
//! for values written before sealing existed), in batches, while the service runs.
//!
//! A row is rewritten only if its sealed columns still hold what the pass read, so a save
//! that raced it (which seals with the active key anyway) is never overwritten; tickets keep
//! their version (nothing about them changed). When the pass reports nothing left, no value
//! needs an older key, and that key can be removed from the configuration.

use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entity::{resident, ticket};
use crate::sealing::{self, KeyRing};
use crate::{Store, StoreError};

/// What one pass re-sealed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    pub tickets: u64,
    pub residents: u64,
}

/// Values not sealed under the active key: neither empty nor carrying its prefix.
fn stale<C: ColumnTrait>(column: C, current_prefix: &str) -> Condition {
    Condition::all().add(column.ne("")).add(Expr::col(column).not_like(format!("{current_prefix}%")))
}

impl Store {
    /// Re-seals every ticket's and resident's personal data not yet under the active key,
    /// `batch` rows per statement; answers how many rows it rewrote.
    pub async fn reseal_personal_data(&self, batch: u64) -> Result<Resealed, StoreError> {
        let keys = sealing::ring()?;
        let prefix = format!("pd1.{}.", keys.active_id());
        let mut done = Resealed::default();
        let mut after = String::new();
        loop {
            use ticket::Column as C;
            let rows: Vec<(String, String, String, Option<String>)> = ticket::Entity::find()
                .select_only()
                .columns([C::Id, C::ReporterName, C::ReporterPhone, C::CaseRecord])
                .filter(C::Id.gt(after.as_str()))
                .filter(
                    Condition::any()
                        .add(stale(C::ReporterName, &prefix))
                        .add(stale(C::ReporterPhone, &prefix))
                        .add(Condition::all().add(C::CaseRecord.is_not_null()).add(stale(C::CaseRecord, &prefix))),
                )
                .order_by_asc(C::Id)
                .limit(batch)
                .into_tuple()
                .all(&self.db)
                .await?;
            let Some((last, ..)) = rows.last() else { break };
            after = last.clone();
            for (id, name, phone, case) in rows {
                done.tickets += self.reseal_ticket(keys, &id, name, phone, case).await?;
            }
        }
        let mut after = String::new();
        loop {
            use resident::Column as C;
            let rows: Vec<(String, String, String)> = resident::Entity::find()
                .select_only()
                .columns([C::Id, C::Name, C::Phone])
                .filter(C::Id.gt(after.as_str()))
                .filter(Condition::any().add(stale(C::Name, &prefix)).add(stale(C::Phone, &prefix)))
                .order_by_asc(C::Id)
                .limit(batch)
                .into_tuple()
                .all(&self.db)
                .await?;
            let Some((last, ..)) = rows.last() else { break };
            after = last.clone();
            for (id, name, phone) in rows {
                let plain_phone = keys.open(resident::PHONE, &phone)?;
                let written = resident::Entity::update_many()
                    .col_expr(C::Name, Expr::value(keys.seal(resident::NAME, &keys.open(resident::NAME, &name)?)?))
                    .col_expr(C::Phone, Expr::value(keys.seal(resident::PHONE, &plain_phone)?))
                    .col_expr(C::PhoneKey, Expr::value(keys.phone_index(&plain_phone)))
                    .filter(C::Id.eq(id.as_str()))
                    .filter(C::Name.eq(name.as_str()))
                    .filter(C::Phone.eq(phone.as_str()))
                    .exec(&self.db)
                    .await?;
                done.residents += written.rows_affected;
            }
        }
        Ok(done)
    }

    async fn reseal_ticket(
        &self,
        keys: &KeyRing,
        id: &str,
        name: String,
        phone: String,
        case: Option<String>,
    ) -> Result<u64, StoreError> {
        use ticket::Column as C;
        let plain_phone = keys.open(ticket::REPORTER_PHONE, &phone)?;
        let case_sealed = match &case {
            Some(json) => Some(keys.seal(ticket::CASE_RECORD, &keys.open(ticket::CASE_RECORD, json)?)?),
            None => None,
        };
        let mut update = ticket::Entity::update_many()
            .col_expr(
                C::ReporterName,
                Expr::value(keys.seal(ticket::REPORTER_NAME, &keys.open(ticket::REPORTER_NAME, &name)?)?),
            )
            .col_expr(C::ReporterPhone, Expr::value(keys.seal(ticket::REPORTER_PHONE, &plain_phone)?))
            .col_expr(C::ReporterPhoneKey, Expr::value(keys.phone_index(&plain_phone)))
            .col_expr(C::CaseRecord, Expr::value(case_sealed))
            .filter(C::Id.eq(id))
            .filter(C::ReporterName.eq(name.as_str()))
            .filter(C::ReporterPhone.eq(phone.as_str()));
        update = match &case {
            Some(json) => update.filter(C::CaseRecord.eq(json.as_str())),
            None => update.filter(C::CaseRecord.is_null()),
        };
        Ok(update.exec(&self.db).await?.rows_affected)
    }
}
