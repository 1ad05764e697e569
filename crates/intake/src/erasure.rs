//! Erasure on request (DirectoryService.EraseResident): a resident's name and phone leave
//! every ticket of theirs, through the ticket aggregate (one PERSONAL_DATA_ERASED event
//! each), then the messages sent to them, then their directory record. The record goes
//! last: until it is erased, a call that stopped halfway finds the same tickets again, and
//! a second call finishes the work.

use propdesk_domain::{Actor, By};
use propdesk_store::entity::resident;
use propdesk_store::{Change, Store, StoreError};

use crate::error::{ApiError, ApiResult};

/// Saves retried when a ticket changed between load and save.
const SAVE_ATTEMPTS: usize = 5;

/// Erases `resident`'s personal data from their tickets and messages; answers how many
/// tickets were changed. The directory record is the caller's to erase afterwards.
pub async fn erase_from_tickets(
    store: &Store,
    actor: &Actor,
    resident: &resident::Model,
    reason: &str,
) -> ApiResult<usize> {
    let ids = store.tickets_of_resident(&resident.id, &resident.phone).await?;
    let by = By::staff(actor.staff_id.clone(), actor.role);
    for id in &ids {
        for attempt in 1..=SAVE_ATTEMPTS {
            let Some(mut ticket) = store.get_ticket(id).await? else { break };
            let events = ticket.erase_personal_data(&resident.id, by.clone(), reason.to_owned(), propdesk_store::now());
            match store.save(vec![Change { ticket, events }]).await {
                Ok(_) => break,
                Err(StoreError::StaleVersion { .. }) if attempt < SAVE_ATTEMPTS => continue,
                Err(other) => return Err(ApiError::from(other)),
            }
        }
    }
    store.erase_resident_messages(&ids).await?;
    tracing::info!(resident_id = %resident.id, tickets = ids.len(), "personal data erased on request");
    Ok(ids.len())
}
