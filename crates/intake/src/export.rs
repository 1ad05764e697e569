//! A resident's right of access (DirectoryService.ExportResidentData): everything propdesk
//! holds about them, as one JSON document: the directory entry, every ticket of theirs
//! (named or reported from their number) with its history and callback, and the messages
//! sent to them.

use propdesk_store::Store;
use propdesk_store::entity::resident;
use serde_json::{Value, json};

use crate::error::ApiResult;

/// The document, and how many tickets and messages it holds.
pub struct Export {
    pub json: String,
    pub tickets: usize,
    pub messages: usize,
}

fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub async fn resident_data(store: &Store, resident: &resident::Model) -> ApiResult<Export> {
    let ids = store.tickets_of_resident(&resident.id, &resident.phone).await?;
    let tickets = store.get_tickets(&ids).await?;
    let mut documents = Vec::with_capacity(tickets.len());
    for t in &tickets {
        let history: Vec<Value> = store
            .history(&t.id)
            .await?
            .iter()
            .map(|e| {
                json!({
                    "at": time(e.occurred_at),
                    "type": e.event_type.code(),
                    "by_role": e.actor_role.map(|r| r.code()),
                    "note": e.note,
                })
            })
            .collect();
        let callback = t
            .callback
            .as_ref()
            .map(|c| json!({ "satisfaction": c.satisfaction.code(), "comment": c.comment, "at": time(c.recorded_at) }));
        documents.push(json!({
            "id": t.id,
            "created_at": time(t.times.created_at),
            "kind": t.kind.code(),
            "channel": t.channel.code(),
            "category": t.category.as_str(),
            "title": t.title,
            "description": t.description,
            "unit": t.unit_label,
            "location": t.location,
            "state": t.lifecycle.state.code(),
            "reporter": { "name": t.reporter.name, "phone": t.reporter.phone },
            "callback": callback,
            "history": history,
        }));
    }
    let messages: Vec<Value> = store
        .resident_messages(&ids)
        .await?
        .iter()
        .map(|m| {
            // The body is the JSON the gateway was sent; kept as a document when it is one.
            let body = serde_json::from_str::<Value>(&m.body).unwrap_or_else(|_| Value::String(m.body.clone()));
            json!({
                "id": m.id,
                "ticket_id": m.ticket_id,
                "at": time(m.created_at),
                "subject": m.subject,
                "state": m.state,
                "body": body,
            })
        })
        .collect();
    let document = json!({
        "exported_at": time(propdesk_store::now()),
        "resident": {
            "id": resident.id,
            "property_id": resident.property_id,
            "unit_id": resident.unit_id,
            "name": resident.name,
            "phone": resident.phone,
            "language": resident.language,
            "created_at": time(resident.created_at),
            "erased_at": resident.erased_at.map(time),
        },
        "tickets": documents,
        "messages": messages,
    });
    Ok(Export { json: document.to_string(), tickets: tickets.len(), messages: messages.len() })
}
