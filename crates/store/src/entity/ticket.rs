use crate::sealing::{self, SealError};
use propdesk_domain::aggregate::{
    CallbackRecord, CategoryCode, IncidentLink, Milestones, Reporter, RequestKey, Ticket, TicketFacts,
};
use propdesk_domain::ticket::UnknownCode;
use propdesk_domain::{Deadlines, Lifecycle};
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
    /// The reporter's phone reduced to one key (`propdesk_domain::search::phone_key`), for
    /// look-ups however the number was written.
    pub reporter_phone_key: Option<String>,
    /// Where the current cycle's clocks count from; unset on tickets stored before it was
    /// kept (their report time is used).
    pub clocks_from: Option<DateTimeUtc>,
    /// Set on a ticket closed as a duplicate: the original.
    pub duplicate_of: Option<String>,
    /// What stands in for the service meanwhile, told to the resident.
    pub interim_measure: Option<String>,
    /// When the resident was last answered (cleared by a new promise).
    pub replied_at: Option<DateTimeUtc>,
    /// The urgent-word rule that raised the priority, if one did.
    pub urgency_rule: Option<String>,
    /// The case record of a long matter, as JSON (`propdesk_domain::case::Case`).
    pub case_record: Option<String>,
    /// Seconds waited on outside parties (from the case, for the monthly review).
    pub waited_secs: Option<i64>,
    /// Who referred it, as JSON (`propdesk_domain::case::Referrer`).
    pub referral: Option<String>,
    /// Unsatisfied callbacks so far (unset reads as none).
    pub unsatisfied_callbacks: Option<i32>,
    /// The serious-complaint review, as JSON (`propdesk_domain::review::Review`).
    pub review_record: Option<String>,
    /// The completed review's cause (from the review, for the monthly review).
    pub review_cause: Option<String>,
    /// Why overdue work was late (a review cause code).
    pub delay_cause: Option<String>,
    /// When the retention job replaced the contact data with the anonymous marker; cleared
    /// by any later save, so the next pass looks at the ticket again.
    pub anonymised_at: Option<DateTimeUtc>,
}

/// A stored ticket the domain cannot read: an unknown code (state, priority, kind, ...)
/// or facts that break one of the aggregate's invariants.
/// The sealed columns, named in their seals (a value moved to another column does not open).
pub const REPORTER_NAME: &str = "tickets.reporter_name";
pub const REPORTER_PHONE: &str = "tickets.reporter_phone";
pub const CASE_RECORD: &str = "tickets.case_record";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ticket {ticket_id} holds an unreadable value: {detail}")]
pub struct UnreadableTicket {
    pub ticket_id: String,
    pub detail: String,
}

impl Model {
    fn parse<T: std::str::FromStr<Err = UnknownCode>>(&self, code: &str) -> Result<T, UnreadableTicket> {
        code.parse().map_err(|e: UnknownCode| UnreadableTicket { ticket_id: self.id.clone(), detail: e.to_string() })
    }

    fn parse_optional<T: std::str::FromStr<Err = UnknownCode>>(
        &self,
        code: Option<&str>,
    ) -> Result<Option<T>, UnreadableTicket> {
        code.map(|code| self.parse(code)).transpose()
    }

    /// The row of a ticket's facts, stored at `version`, its personal data sealed.
    pub(crate) fn of(t: &TicketFacts, version: i64) -> Result<Model, SealError> {
        let callback = t.callback.as_ref();
        let keys = sealing::ring()?;
        // Plain strings, times and numbers in a derived structure: serializing cannot fail.
        let case_record = t.case.as_ref().map(|case| serde_json::to_string(case).unwrap_or_default());
        Ok(Model {
            id: t.id.clone(),
            version,
            property_id: t.property_id.clone(),
            building_id: t.building_id.clone(),
            unit_id: t.unit_id.clone(),
            unit_label: t.unit_label.clone(),
            location: t.location.clone(),
            resident_id: t.resident_id.clone(),
            reporter_name: keys.seal(REPORTER_NAME, &t.reporter.name)?,
            reporter_phone: keys.seal(REPORTER_PHONE, &t.reporter.phone)?,
            kind: t.kind.code().to_owned(),
            channel: t.channel.code().to_owned(),
            category: t.category.as_str().to_owned(),
            department: t.department.map(|d| d.code().to_owned()),
            priority: t.priority.code().to_owned(),
            state: t.lifecycle.state.code().to_owned(),
            held_from: t.lifecycle.held_from.map(|s| s.code().to_owned()),
            title: t.title.clone(),
            description: t.description.clone(),
            first_contact_agent_id: t.first_contact_agent_id.clone(),
            assignee_id: t.assignee_id.clone(),
            escalation_level: t.escalation_level,
            incident_id: t.incident_id().map(str::to_owned),
            repeat_fault: t.repeat_fault,
            request_id: t.request.request_id.clone(),
            request_fingerprint: t.request.fingerprint.clone(),
            created_at: t.times.created_at,
            updated_at: t.times.updated_at,
            dispatched_at: t.times.dispatched_at,
            accepted_at: t.times.accepted_at,
            on_site_at: t.times.on_site_at,
            resolved_at: t.times.resolved_at,
            closed_at: t.times.closed_at,
            on_hold_since: t.times.on_hold_since,
            acknowledge_by: t.deadlines.acknowledge_by,
            on_site_by: t.deadlines.on_site_by,
            resolve_by: t.deadlines.resolve_by,
            first_reply_by: t.deadlines.first_reply_by,
            callback_by: t.deadlines.callback_by,
            promised_reply_at: t.promised_reply_at,
            callback_satisfaction: callback.map(|c| c.satisfaction.code().to_owned()),
            callback_comment: callback.map(|c| c.comment.clone()),
            callback_recorded_by: callback.map(|c| c.recorded_by.clone()),
            callback_recorded_at: callback.map(|c| c.recorded_at),
            is_incident: t.is_incident(),
            clock_cycle: t.clock_cycle,
            reporter_phone_key: keys.phone_index(&t.reporter.phone),
            clocks_from: Some(t.times.clocks_from),
            duplicate_of: t.duplicate_of.clone(),
            interim_measure: t.interim_measure.clone(),
            replied_at: t.times.replied_at,
            urgency_rule: t.urgency_rule.clone(),
            // Its parties' names and contacts are personal data.
            case_record: case_record.map(|json| keys.seal(CASE_RECORD, &json)).transpose()?,
            waited_secs: t.case.as_ref().map(|case| case.waited_secs),
            referral: t.referred_by.as_ref().map(|r| serde_json::to_string(r).unwrap_or_default()),
            unsatisfied_callbacks: Some(t.unsatisfied_callbacks),
            review_record: t.review.as_ref().map(|r| serde_json::to_string(r).unwrap_or_default()),
            review_cause: t.review.as_ref().and_then(|r| r.cause.clone()),
            delay_cause: t.delay_cause.clone(),
            anonymised_at: None,
        })
    }

    /// A sealed column's plain text.
    fn opened(&self, field: &'static str, stored: &str) -> Result<String, UnreadableTicket> {
        let keys =
            sealing::ring().map_err(|e| UnreadableTicket { ticket_id: self.id.clone(), detail: e.to_string() })?;
        keys.open(field, stored).map_err(|e| UnreadableTicket { ticket_id: self.id.clone(), detail: e.to_string() })
    }

    /// The ticket this row holds.
    pub fn into_ticket(self) -> Result<Ticket, UnreadableTicket> {
        let incident = match (&self.incident_id, self.is_incident) {
            (_, true) => IncidentLink::IsIncident,
            (Some(id), false) => IncidentLink::LinkedTo(id.clone()),
            (None, false) => IncidentLink::None,
        };
        let callback = match (&self.callback_satisfaction, self.callback_recorded_at) {
            (Some(satisfaction), Some(recorded_at)) => Some(CallbackRecord {
                satisfaction: self.parse(satisfaction)?,
                comment: self.callback_comment.clone().unwrap_or_default(),
                recorded_by: self.callback_recorded_by.clone().unwrap_or_default(),
                recorded_at,
            }),
            _ => None,
        };
        let case =
            match &self.case_record {
                Some(sealed) => Some(serde_json::from_str(&self.opened(CASE_RECORD, sealed)?).map_err(|e| {
                    UnreadableTicket { ticket_id: self.id.clone(), detail: format!("case record: {e}") }
                })?),
                None => None,
            };
        let reporter = Reporter {
            name: self.opened(REPORTER_NAME, &self.reporter_name)?,
            phone: self.opened(REPORTER_PHONE, &self.reporter_phone)?,
        };
        let referred_by = match &self.referral {
            Some(json) => Some(
                serde_json::from_str(json)
                    .map_err(|e| UnreadableTicket { ticket_id: self.id.clone(), detail: format!("referral: {e}") })?,
            ),
            None => None,
        };
        let review = match &self.review_record {
            Some(json) => Some(
                serde_json::from_str(json)
                    .map_err(|e| UnreadableTicket { ticket_id: self.id.clone(), detail: format!("review: {e}") })?,
            ),
            None => None,
        };
        let facts = TicketFacts {
            kind: self.parse(&self.kind)?,
            channel: self.parse(&self.channel)?,
            department: self.parse_optional(self.department.as_deref())?,
            priority: self.parse(&self.priority)?,
            lifecycle: Lifecycle {
                state: self.parse(&self.state)?,
                held_from: self.parse_optional(self.held_from.as_deref())?,
            },
            incident,
            callback,
            id: self.id,
            version: self.version,
            property_id: self.property_id,
            building_id: self.building_id,
            unit_id: self.unit_id,
            unit_label: self.unit_label,
            location: self.location,
            resident_id: self.resident_id,
            reporter,
            category: CategoryCode::new(self.category),
            title: self.title,
            description: self.description,
            first_contact_agent_id: self.first_contact_agent_id,
            assignee_id: self.assignee_id,
            escalation_level: self.escalation_level,
            repeat_fault: self.repeat_fault,
            request: RequestKey { request_id: self.request_id, fingerprint: self.request_fingerprint },
            times: Milestones {
                created_at: self.created_at,
                updated_at: self.updated_at,
                dispatched_at: self.dispatched_at,
                accepted_at: self.accepted_at,
                on_site_at: self.on_site_at,
                resolved_at: self.resolved_at,
                closed_at: self.closed_at,
                on_hold_since: self.on_hold_since,
                replied_at: self.replied_at,
                clocks_from: self.clocks_from.unwrap_or(self.created_at),
            },
            deadlines: Deadlines {
                acknowledge_by: self.acknowledge_by,
                on_site_by: self.on_site_by,
                resolve_by: self.resolve_by,
                first_reply_by: self.first_reply_by,
                callback_by: self.callback_by,
            },
            promised_reply_at: self.promised_reply_at,
            clock_cycle: self.clock_cycle,
            duplicate_of: self.duplicate_of,
            interim_measure: self.interim_measure,
            urgency_rule: self.urgency_rule,
            case,
            referred_by,
            unsatisfied_callbacks: self.unsatisfied_callbacks.unwrap_or(0),
            review,
            delay_cause: self.delay_cause,
        };
        Ticket::restore(facts).map_err(|e| UnreadableTicket { ticket_id: e.ticket_id.clone(), detail: e.to_string() })
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
