use propdesk_domain::Deadlines;
use sea_orm::entity::prelude::*;

/// One ticket. `version` increases by one with every change (optimistic concurrency).
/// Reporter name and phone are personal data: the `Debug` of this type hides them.
#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tickets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub version: i64,
    pub property_id: String,
    pub building_id: Option<String>,
    pub unit_id: Option<String>,
    pub unit_label: Option<String>,
    pub location: String,
    pub resident_id: Option<String>,
    pub reporter_name: String,
    pub reporter_phone: String,
    pub kind: String,
    pub channel: String,
    pub category: String,
    pub department: Option<String>,
    pub priority: String,
    pub state: String,
    /// Set while on hold: the state to resume to.
    pub held_from: Option<String>,
    pub title: String,
    pub description: String,
    pub first_contact_agent_id: String,
    pub assignee_id: Option<String>,
    pub escalation_level: i32,
    pub incident_id: Option<String>,
    pub repeat_fault: bool,
    /// The client's idempotency key, unique per first-contact agent.
    pub request_id: String,
    /// Digest of the create request, to refuse a key reused for another request.
    pub request_fingerprint: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub dispatched_at: Option<DateTimeUtc>,
    pub accepted_at: Option<DateTimeUtc>,
    pub on_site_at: Option<DateTimeUtc>,
    pub resolved_at: Option<DateTimeUtc>,
    pub closed_at: Option<DateTimeUtc>,
    pub on_hold_since: Option<DateTimeUtc>,
    pub acknowledge_by: Option<DateTimeUtc>,
    pub on_site_by: Option<DateTimeUtc>,
    pub resolve_by: Option<DateTimeUtc>,
    pub first_reply_by: Option<DateTimeUtc>,
    pub callback_by: Option<DateTimeUtc>,
    pub promised_reply_at: Option<DateTimeUtc>,
    pub callback_satisfaction: Option<String>,
    pub callback_comment: Option<String>,
    pub callback_recorded_by: Option<String>,
    pub callback_recorded_at: Option<DateTimeUtc>,
    /// A group incident: reports of many units link to it through `incident_id`.
    pub is_incident: bool,
    /// Starts at 0 and grows by one each time the clocks restart (reopen): alarms of an
    /// earlier cycle never fire again, those of a new cycle do.
    pub clock_cycle: i32,
}

/// A stored code (state, priority, kind, ...) the domain does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ticket {ticket_id} holds an unreadable value: {detail}")]
pub struct UnreadableTicket {
    pub ticket_id: String,
    pub detail: String,
}

impl Model {
    /// One of this ticket's coded columns as its domain type.
    pub fn parse_code<T: std::str::FromStr<Err = propdesk_domain::ticket::UnknownCode>>(
        &self,
        code: &str,
    ) -> Result<T, UnreadableTicket> {
        code.parse().map_err(|e: propdesk_domain::ticket::UnknownCode| UnreadableTicket {
            ticket_id: self.id.clone(),
            detail: e.to_string(),
        })
    }

    /// The ticket's clocks as the domain computes them.
    pub fn deadlines(&self) -> Deadlines {
        Deadlines {
            acknowledge_by: self.acknowledge_by,
            on_site_by: self.on_site_by,
            resolve_by: self.resolve_by,
            first_reply_by: self.first_reply_by,
            callback_by: self.callback_by,
        }
    }

    /// Sets the work clocks (acknowledge, on site, resolve, first reply) from `deadlines`.
    /// The callback clock is set only at resolution, so it is left as it is.
    pub fn set_clocks(&mut self, deadlines: Deadlines) {
        self.acknowledge_by = deadlines.acknowledge_by;
        self.on_site_by = deadlines.on_site_by;
        self.resolve_by = deadlines.resolve_by;
        self.first_reply_by = deadlines.first_reply_by;
    }

    /// A ticket with nothing done yet: version 1, state `new`, no department, assignee,
    /// clocks, callback or incident. Callers set what they know with struct-update syntax.
    pub fn blank(id: String, property_id: String, at: DateTimeUtc) -> Model {
        Model {
            id,
            version: 1,
            property_id,
            building_id: None,
            unit_id: None,
            unit_label: None,
            location: String::new(),
            resident_id: None,
            reporter_name: String::new(),
            reporter_phone: String::new(),
            kind: String::new(),
            channel: String::new(),
            category: String::new(),
            department: None,
            priority: String::new(),
            state: "new".to_owned(),
            held_from: None,
            title: String::new(),
            description: String::new(),
            first_contact_agent_id: String::new(),
            assignee_id: None,
            escalation_level: 0,
            incident_id: None,
            repeat_fault: false,
            request_id: String::new(),
            request_fingerprint: String::new(),
            created_at: at,
            updated_at: at,
            dispatched_at: None,
            accepted_at: None,
            on_site_at: None,
            resolved_at: None,
            closed_at: None,
            on_hold_since: None,
            acknowledge_by: None,
            on_site_by: None,
            resolve_by: None,
            first_reply_by: None,
            callback_by: None,
            promised_reply_at: None,
            callback_satisfaction: None,
            callback_comment: None,
            callback_recorded_by: None,
            callback_recorded_at: None,
            is_incident: false,
            clock_cycle: 0,
        }
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("property_id", &self.property_id)
            .field("state", &self.state)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
