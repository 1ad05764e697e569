//! Who hears of something, and through which sinks: one notification row per recipient and
//! sink, written in the transaction of its cause and delivered afterwards.

use chrono::{DateTime, Utc};
use propdesk_domain::ladder::Recipient;
use propdesk_domain::{Department, Ticket};
use propdesk_store::deliveries::{NewNotification, insert_notifications};
use propdesk_store::work::{self, Transaction};
use serde::{Deserialize, Serialize};

use crate::NotifierError;

/// A webhook receiver: every notification of its property (or of all, when empty) and of
/// its recipient roles (or of all, when empty) is POSTed to it as signed JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookTarget {
    pub url: String,
    /// HMAC-SHA256 key of the `X-Propdesk-Signature` header.
    pub secret: String,
    #[serde(default)]
    pub property_id: String,
    /// Recipient role codes (assignee, first_contact, supervisor, manager, resident).
    #[serde(default)]
    pub roles: Vec<String>,
    /// A resident gateway entitled to residents' contact details: its resident messages
    /// carry the phone to deliver them to. Every other receiver never sees one.
    #[serde(default)]
    pub contact_details: bool,
}

impl WebhookTarget {
    fn wants(&self, property_id: &str, role: Recipient) -> bool {
        (self.property_id.is_empty() || self.property_id == property_id)
            && (self.roles.is_empty() || self.roles.iter().any(|r| r == role.code()))
    }
}

/// Sinks every notification goes through: the log (always) and the matching webhooks.
pub const LOG_SINK: &str = "log";
pub const WEBHOOK_SINK: &str = "webhook";

/// A person (or the resident) to tell, resolved to a staff id where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressee {
    pub role: Recipient,
    pub staff_id: Option<String>,
}

/// Resolves ladder recipients against the ticket and the directory. A staff member named
/// twice (e.g. assignee and first contact) is told once, under the first role.
pub async fn addressees(
    txn: &Transaction,
    t: &Ticket,
    recipients: &[Recipient],
) -> Result<Vec<Addressee>, NotifierError> {
    let department = t.department.unwrap_or(Department::CustomerService);
    let mut resolved: Vec<Addressee> = Vec::new();
    for role in recipients {
        let staff_id = match role {
            Recipient::Assignee => t.assignee_id.clone(),
            Recipient::FirstContact => Some(t.first_contact_agent_id.clone()),
            Recipient::Supervisor => work::supervisor_of(txn, &t.property_id, department).await?.map(|s| s.id),
            Recipient::Manager => work::manager_of(txn, &t.property_id).await?.map(|s| s.id),
            Recipient::Resident => None,
        };
        // Nobody in that role (e.g. no assignee yet): the others still hear.
        if staff_id.is_none() && *role != Recipient::Resident {
            continue;
        }
        if staff_id.is_some() && resolved.iter().any(|a| a.staff_id == staff_id) {
            continue;
        }
        resolved.push(Addressee { role: *role, staff_id });
    }
    Ok(resolved)
}

/// What a notification says; serialized as the webhook body. No residents' personal data.
#[derive(Debug, Clone, Serialize)]
pub struct Message<'a> {
    pub subject: &'a str,
    pub ticket_id: Option<&'a str>,
    pub property_id: &'a str,
    pub text: String,
    pub occurred_at: DateTime<Utc>,
    /// Extra facts (clock, rung, deadline, expected time, ...).
    pub details: serde_json::Value,
    /// For a message to a resident: whom, and how to reach them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resident: Option<ResidentAddress<'a>>,
}

/// Where a resident message goes. The phone is personal data: it is written only into the
/// bodies for receivers entitled to it (`contact_details`), never into logs.
#[derive(Debug, Clone, Serialize)]
pub struct ResidentAddress<'a> {
    /// The resident in the directory, if known.
    pub resident_id: Option<&'a str>,
    /// How to deliver it: a `ReplyMethod` code (letter, app_message, phone_call, ...).
    pub channel: &'a str,
    pub unit_id: Option<&'a str>,
    #[serde(skip)]
    pub phone: &'a str,
}

/// What only an entitled resident gateway gets.
#[derive(Serialize)]
struct Contact<'a> {
    phone: &'a str,
}

#[derive(Serialize)]
struct Body<'a> {
    /// The delivery id: receivers drop a body whose id they have seen.
    id: &'a str,
    recipient_role: &'a str,
    recipient_id: Option<&'a str>,
    #[serde(flatten)]
    message: &'a Message<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact: Option<Contact<'a>>,
}

/// The notifications of one transaction, written together at its end (one statement for
/// a whole batch of messages).
#[derive(Debug, Default)]
pub struct Notifications(Vec<NewNotification>);

impl Notifications {
    /// Writes them in `txn`.
    pub async fn write(self, txn: &Transaction) -> Result<(), NotifierError> {
        Ok(insert_notifications(txn, self.0).await?)
    }
}

/// Adds one notification per addressee and sink to `out`. The log sink is delivered here
/// and now (its row is written as delivered); webhook rows wait for the deliverer.
pub fn notify(
    out: &mut Notifications,
    webhooks: &[WebhookTarget],
    addressees: &[Addressee],
    message: &Message<'_>,
    now: DateTime<Utc>,
) -> Result<(), NotifierError> {
    for addressee in addressees {
        let mut sinks = vec![(LOG_SINK, String::new(), false)];
        sinks.extend(
            webhooks
                .iter()
                .filter(|w| w.wants(message.property_id, addressee.role))
                .map(|w| (WEBHOOK_SINK, w.url.clone(), w.contact_details)),
        );
        for (sink, target, entitled) in sinks {
            let id = uuid::Uuid::now_v7().to_string();
            let contact = match (&message.resident, entitled) {
                (Some(address), true) if !address.phone.is_empty() => Some(Contact { phone: address.phone }),
                _ => None,
            };
            let body = Body {
                id: &id,
                recipient_role: addressee.role.code(),
                recipient_id: addressee.staff_id.as_deref(),
                message,
                contact,
            };
            let body = serde_json::to_string(&body).map_err(|e| NotifierError::Encode(e.to_string()))?;
            let logged = sink == LOG_SINK;
            if logged {
                // Ids only: no residents' personal data in logs.
                tracing::info!(
                    delivery_id = %id,
                    subject = %message.subject,
                    ticket_id = message.ticket_id.unwrap_or(""),
                    recipient_role = %addressee.role,
                    recipient_id = addressee.staff_id.as_deref().unwrap_or(""),
                    "notification"
                );
                metrics::counter!("propdesk_deliveries_total", "sink" => LOG_SINK, "outcome" => "delivered")
                    .increment(1);
            }
            out.0.push(NewNotification {
                id,
                ticket_id: message.ticket_id.map(str::to_owned),
                property_id: message.property_id.to_owned(),
                recipient_id: addressee.staff_id.clone(),
                recipient_role: addressee.role,
                subject: message.subject.to_owned(),
                sink: sink.to_owned(),
                target,
                body,
                delivered: logged,
                at: now,
            });
        }
    }
    Ok(())
}
