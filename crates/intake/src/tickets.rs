//! TicketService: logging tickets and taking them through their life.
//!
//! Every change follows one path ([`TicketApi::change`]): parse the request, load the
//! ticket, authorize, check the expected version, run the ticket's command (the rules live
//! in `propdesk_domain::Ticket`), then save it with its history events and their outbox
//! messages in one transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use propdesk_domain::aggregate::{CategoryCode, Correction, Report, Reporter, RequestKey, Route, UnitPlace};
use propdesk_domain::case::{CaseStep, Party, PartyKind, Referrer};
use propdesk_domain::follow_up::{FollowUpKind, FollowUpState, ReplyMethod};
use propdesk_domain::privacy::may_see_contact_details;
use propdesk_domain::replies::{Fill, ReplySent, StandardReplyRef};
use propdesk_domain::search::Query;
use propdesk_domain::validation::{MAX_ADDRESS, MAX_DESCRIPTION, MAX_LOCATION, MAX_NAME, MAX_NOTE, MAX_TITLE};
use propdesk_domain::{
    Actor, By, Channel, Department, Move, Operation, Priority, Recorded, RuleViolation, Satisfaction, Ticket,
    TicketKind, TicketState, Violations,
};
use propdesk_domain::{Category, Policy};
use propdesk_proto::v1 as pb;
use propdesk_proto::v1::ErrorReason;
use propdesk_proto::v1::ticket_service_server::TicketService;
use propdesk_store::entity::{resident, staff, unit};
use propdesk_store::follow_ups::NewFollowUp;
use propdesk_store::{
    Change, Created, FollowUpDone, FollowUpFilter, NewTicket, Owner, ReplyFollowUp, StoreError, TicketFilter,
};
use tonic::{Request, Response, Status};

use crate::IntakeState;
use crate::auth::actor;
use crate::convert::{
    case_step_to_wire, case_to_wire, event_to_wire, follow_up_to_wire, from_timestamp, optional_enum, required_enum,
    ticket_to_wire,
};
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{check_request_id, fingerprint, mismatch};
use crate::paging;
use crate::places::Place;
use crate::replies::{self, ReplyUse};
use crate::watch::{self, EventStream};

pub struct TicketApi {
    state: Arc<IntakeState>,
}

impl TicketApi {
    pub fn new(state: Arc<IntakeState>) -> Self {
        TicketApi { state }
    }
}

/// The common fields of every change request.
struct ChangeRequest<'a> {
    ticket_id: &'a str,
    expected_version: i64,
    note: &'a str,
    note_required: bool,
    /// A reply follow-up of the ticket this change completes.
    completes_follow_up: Option<ReplyFollowUp>,
}

impl<'a> ChangeRequest<'a> {
    fn new(ticket_id: &'a str, expected_version: i64, note: &'a str, note_required: bool) -> Self {
        ChangeRequest { ticket_id, expected_version, note, note_required, completes_follow_up: None }
    }
}

/// What a command did: the ticket's events, and the other tickets it changed with it
/// (saved in the same transaction).
struct Commanded {
    events: Vec<Recorded>,
    others: Vec<Change>,
    /// Follow-ups the change makes owed (a chase of a party the matter was referred to).
    opens: Vec<NewFollowUp>,
}

impl From<Vec<Recorded>> for Commanded {
    fn from(events: Vec<Recorded>) -> Self {
        Commanded { events, others: Vec::new(), opens: Vec::new() }
    }
}

impl Commanded {
    /// This ticket's events, and `other`'s when it has any.
    fn with(events: Vec<Recorded>, other: Ticket, other_events: Vec<Recorded>) -> Commanded {
        let others =
            if other_events.is_empty() { Vec::new() } else { vec![Change { ticket: other, events: other_events }] };
        Commanded { events, others, opens: Vec::new() }
    }
}

/// The requests of the plain moves: a ticket, the version the caller saw, and a note.
trait PlainChange {
    fn parts(&self) -> (&str, i64, &str);
}

macro_rules! plain_changes {
    ($($request:ident),+) => {$(
        impl PlainChange for pb::$request {
            fn parts(&self) -> (&str, i64, &str) {
                (&self.ticket_id, self.expected_version, &self.note)
            }
        }
    )+};
}

plain_changes!(
    AcceptTicketRequest,
    ArriveOnSiteRequest,
    PutOnHoldRequest,
    ResumeTicketRequest,
    CancelTicketRequest,
    CloseTicketRequest,
    ReopenTicketRequest
);

/// Longest interim measure, in characters.
const MAX_INTERIM_MEASURE: usize = 500;

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The actor as the history names them.
fn by(actor: &Actor) -> By {
    By::staff(actor.staff_id.clone(), actor.role)
}

/// The `states` filter of a list: each a known state.
fn states(violations: &mut Violations, states: &[i32]) -> Vec<TicketState> {
    let known = states.iter().enumerate();
    known.filter_map(|(index, state)| required_enum(violations, &format!("states[{index}]"), *state)).collect()
}

/// The tickets a member of staff owns: an agent those they received first, everyone else
/// those assigned to them.
pub(crate) fn own_work(actor: &Actor) -> Owner {
    match actor.role {
        propdesk_domain::Role::Agent => Owner::FirstContact(actor.staff_id.clone()),
        _ => Owner::Assignee(actor.staff_id.clone()),
    }
}

/// A follow-up's due time as a page key: microseconds, empty when it has none (those
/// sort last).
fn due_key(due_by: Option<DateTime<Utc>>) -> String {
    due_by.map(|at| at.timestamp_micros().to_string()).unwrap_or_default()
}

fn parse_due(violations: &mut Violations, key: &str) -> Option<Option<DateTime<Utc>>> {
    if key.is_empty() {
        return Some(None);
    }
    let at = key.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros);
    if at.is_none() {
        violations.add("page_token", "is not a token returned by this list call");
    }
    at.map(Some)
}

/// The properties a list may read: the one asked for, if the caller serves it, else all of
/// theirs (`None`: every property, for admins).
fn readable_properties(actor: &Actor, property_id: Option<String>) -> ApiResult<Option<Vec<String>>> {
    Ok(match property_id {
        Some(id) => {
            actor.authorize(&id, Operation::ReadTickets, false)?;
            Some(vec![id])
        }
        None if actor.role == propdesk_domain::Role::Admin => None,
        None => Some(actor.properties.clone()),
    })
}

impl TicketApi {
    pub(crate) async fn load(&self, actor: &Actor, ticket_id: &str) -> ApiResult<Ticket> {
        let ticket = self.state.store.get_ticket(ticket_id).await?.ok_or(ApiError::NotFound("ticket"))?;
        actor.authorize(&ticket.property_id, Operation::ReadTickets, false)?;
        Ok(ticket)
    }

    /// The one path of every change: parse the common fields, load, authorize, check the
    /// expected version, run the ticket's `command`, save.
    async fn change<R>(
        &self,
        actor: &Actor,
        request: ChangeRequest<'_>,
        mut violations: Violations,
        operation: Operation,
        command: impl FnOnce(&mut Ticket, By, String, DateTime<Utc>) -> ApiResult<R>,
    ) -> ApiResult<pb::Ticket>
    where
        R: Into<Commanded>,
    {
        let ticket_id = violations.required_id("ticket_id", request.ticket_id);
        if request.expected_version < 1 {
            violations.add("expected_version", "is required: the version of the ticket you last read");
        }
        if request.note_required {
            violations.required_text("note", request.note, MAX_NOTE);
        } else {
            violations.optional_text("note", request.note, MAX_NOTE);
        }
        violations.into_result()?;
        let ticket_id = ticket_id.unwrap_or_default();

        let mut ticket = self.load(actor, &ticket_id).await?;
        let is_assignee = ticket.assignee_id.as_deref() == Some(actor.staff_id.as_str());
        actor.authorize(&ticket.property_id, operation, is_assignee)?;
        if ticket.version != request.expected_version {
            return Err(ApiError::Stale { expected: request.expected_version, current: ticket.version });
        }

        let now = propdesk_store::now();
        let state_before = ticket.state();
        let Commanded { events, others, opens } = command(&mut ticket, by(actor), request.note.to_owned(), now)?.into();
        let resolved_incident = ticket.is_incident() && ticket.state() == TicketState::Resolved;
        let linked = if resolved_incident && state_before != TicketState::Resolved {
            self.resolve_linked_reports(&ticket, actor, now).await?
        } else {
            Vec::new()
        };
        let mut changes = vec![Change { ticket, events }];
        changes.extend(linked);
        changes.extend(others);
        let follow_up = request.completes_follow_up.map(|which| FollowUpDone {
            which,
            by: actor.staff_id.clone(),
            at: now,
            note: request.note.to_owned(),
        });
        let saved = match self.state.store.save_completing(changes, follow_up, opens).await {
            Ok(saved) => saved,
            // The ticket (or, for an incident, a linked report) changed meanwhile.
            Err(StoreError::StaleVersion { current: latest }) => {
                return Err(ApiError::Stale { expected: request.expected_version, current: latest });
            }
            Err(other) => return Err(other.into()),
        };
        let ticket = saved.first().ok_or(ApiError::Internal("a save returned no ticket".into()))?;
        Ok(self.shown(actor, vec![ticket_to_wire(ticket, actor)]).await?.remove(0))
    }

    /// Fills in the tickets' follow-ups (one query for the lot), and records which of them
    /// `actor` sees with contact details unmasked.
    pub(crate) async fn shown(&self, actor: &Actor, mut tickets: Vec<pb::Ticket>) -> ApiResult<Vec<pb::Ticket>> {
        self.state.access.tickets_shown(actor, &tickets).await?;
        let ids: Vec<String> = tickets.iter().map(|t| t.id.clone()).collect();
        for task in self.state.store.follow_ups_of(&ids).await? {
            if let Some(ticket) = tickets.iter_mut().find(|t| t.id == task.ticket_id) {
                ticket.follow_ups.push(follow_up_to_wire(&task));
            }
        }
        Ok(tickets)
    }

    /// Resolving an incident resolves every linked report that can be resolved; each keeps
    /// its own history and gets its own callback deadline.
    async fn resolve_linked_reports(
        &self,
        incident: &Ticket,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> ApiResult<Vec<Change>> {
        let sla = &self.state.policy.sla;
        let mut changes = Vec::new();
        for mut report in self.state.store.linked_tickets(&incident.id).await? {
            if let Some(events) = report.resolve_with_incident(&incident.id, by(actor), sla, now) {
                changes.push(Change { ticket: report, events });
            }
        }
        Ok(changes)
    }

    /// A move whose request is the plain action (ticket, version, note).
    async fn act<R: PlainChange>(
        &self,
        request: Request<R>,
        mv: Move,
        note_required: bool,
        command: impl FnOnce(&mut Ticket, By, String, DateTime<Utc>) -> Result<Vec<Recorded>, RuleViolation>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let (ticket_id, expected_version, note) = body.parts();
        let change = ChangeRequest::new(ticket_id, expected_version, note, note_required);
        let ticket = self
            .change(&actor, change, Violations::new(), Operation::Move(mv), |t, by, note, now| {
                Ok(command(t, by, note, now)?)
            })
            .await?;
        Ok(Response::new(ticket))
    }
}

#[tonic::async_trait]
impl TicketService for TicketApi {
    async fn create_ticket(&self, request: Request<pb::CreateTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        // Not an access record: the response echoes what the caller has just entered, and
        // the ticket's CREATED event already says who entered it and when.
        Ok(Response::new(self.create(&actor, body).await?))
    }

    async fn get_ticket(&self, request: Request<pb::GetTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let mut violations = Violations::new();
        let id = violations.required_id("ticket_id", &request.get_ref().ticket_id);
        violations.into_result().map_err(ApiError::from)?;
        let ticket = self.load(&actor, &id.unwrap_or_default()).await?;
        let mut tickets = self.shown(&actor, vec![ticket_to_wire(&ticket, &actor)]).await?;
        Ok(Response::new(tickets.remove(0)))
    }

    async fn list_tickets(
        &self,
        request: Request<pb::ListTicketsRequest>,
    ) -> Result<Response<pb::ListTicketsResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let property_id = v.optional_id("property_id", &body.property_id);
        let states = states(&mut v, &body.states);
        let department = optional_enum::<Department>(&mut v, "department", body.department);
        let assignee_id = v.optional_id("assignee_id", &body.assignee_id);
        let priority = optional_enum::<Priority>(&mut v, "priority", body.priority);
        let kind = optional_enum::<TicketKind>(&mut v, "kind", body.kind);
        let created_after = from_timestamp(&mut v, "created_after", body.created_after.as_ref());
        let created_before = from_timestamp(&mut v, "created_before", body.created_before.as_ref());
        if let (Some(after), Some(before)) = (created_after, created_before)
            && after >= before
        {
            v.add("created_before", "must be later than created_after");
        }
        let limit = v.page_size("page_size", body.page_size);
        let before_id = paging::parse_id(&mut v, &body.page_token);
        let phone_key = v.phone_filter("reporter_phone", &body.reporter_phone);
        let resident_id = v.optional_id("resident_id", &body.resident_id);
        let unit_id = v.optional_id("unit_id", &body.unit_id);
        let first_contact_agent_id = v.optional_id("first_contact_agent_id", &body.first_contact_agent_id);
        let incident_id = v.optional_id("incident_id", &body.incident_id);
        let duplicate_of = v.optional_id("duplicate_of_id", &body.duplicate_of_id);
        v.into_result().map_err(ApiError::from)?;
        let review_open = body.review_open;

        let filter = TicketFilter {
            property_ids: readable_properties(&actor, property_id)?,
            states,
            department,
            assignee_id,
            priority,
            kind,
            phone_key,
            resident_id,
            unit_id,
            first_contact_agent_id,
            incident_id,
            duplicate_of,
            review_open,
            overdue_at: body.overdue_only.then(propdesk_store::now),
            created_after,
            created_before,
            before_id,
            // One extra row tells whether another page follows.
            limit: limit + 1,
        };
        let mut rows = self.state.store.list_tickets(&filter).await.map_err(ApiError::from)?;
        let next_page_token = paging::cut_by_id(&mut rows, limit, |t| &t.id);
        let tickets = self.shown(&actor, rows.iter().map(|t| ticket_to_wire(t, &actor)).collect()).await?;
        Ok(Response::new(pb::ListTicketsResponse { tickets, next_page_token }))
    }

    async fn search_tickets(
        &self,
        request: Request<pb::SearchTicketsRequest>,
    ) -> Result<Response<pb::SearchTicketsResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let query = Query::parse(&mut v, "query", &body.query);
        let property_id = v.optional_id("property_id", &body.property_id);
        let states = states(&mut v, &body.states);
        let department = optional_enum::<Department>(&mut v, "department", body.department);
        let kind = optional_enum::<TicketKind>(&mut v, "kind", body.kind);
        let unit_id = v.optional_id("unit_id", &body.unit_id);
        let limit = v.page_size("page_size", body.page_size);
        let offset = paging::parse_count(&mut v, &body.page_token);
        v.into_result().map_err(ApiError::from)?;
        let query = query.ok_or(ApiError::Internal("validated query missing".into()))?;

        let filter = TicketFilter {
            property_ids: readable_properties(&actor, property_id)?,
            states,
            department,
            kind,
            unit_id,
            limit: limit + 1,
            ..TicketFilter::default()
        };
        let mut rows = self.state.store.search_tickets(&query, &filter, offset).await.map_err(ApiError::from)?;
        let next_page_token = paging::cut_by_count(&mut rows, limit, offset);
        let tickets = self.shown(&actor, rows.iter().map(|t| ticket_to_wire(t, &actor)).collect()).await?;
        Ok(Response::new(pb::SearchTicketsResponse { tickets, next_page_token }))
    }

    async fn list_follow_ups(
        &self,
        request: Request<pb::ListFollowUpsRequest>,
    ) -> Result<Response<pb::ListFollowUpsResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let owner_id = v.optional_id("owner_id", &body.owner_id).unwrap_or_else(|| actor.staff_id.clone());
        let kind = optional_enum::<FollowUpKind>(&mut v, "kind", body.kind);
        let state = optional_enum::<FollowUpState>(&mut v, "state", body.state).unwrap_or(FollowUpState::Open);
        let due_before = from_timestamp(&mut v, "due_before", body.due_before.as_ref());
        let property_id = v.optional_id("property_id", &body.property_id);
        let limit = v.page_size("page_size", body.page_size);
        let after = paging::parse_key(&mut v, &body.page_token).map(|(due, id)| (parse_due(&mut v, &due), id));
        v.into_result().map_err(ApiError::from)?;
        let own = owner_id == actor.staff_id;
        actor.authorize_role(Operation::ReadWorklist { own }, false).map_err(ApiError::from)?;

        let now = propdesk_store::now();
        let filter = FollowUpFilter {
            owner_id,
            property_ids: readable_properties(&actor, property_id)?,
            kind,
            state,
            due_before,
            overdue_at: body.overdue_only.then_some(now),
            after: after.map(|(due, id)| (due.flatten(), id)),
            limit: limit + 1,
        };
        let store = &self.state.store;
        let mut rows = store.list_follow_ups(&filter).await.map_err(ApiError::from)?;
        let next_page_token = paging::cut_by_key(&mut rows, limit, |f| (due_key(f.due_by), f.id.clone()));
        let ids: Vec<String> = rows.iter().map(|f| f.ticket_id.clone()).collect();
        let tickets = store.get_tickets(&ids).await.map_err(ApiError::from)?;
        let items = rows
            .iter()
            .map(|follow_up| pb::FollowUpItem {
                follow_up: Some(follow_up_to_wire(follow_up)),
                ticket: tickets.iter().find(|t| t.id == follow_up.ticket_id).map(|t| ticket_to_wire(t, &actor)),
            })
            .collect::<Vec<_>>();
        let shown: Vec<pb::Ticket> = items.iter().filter_map(|item| item.ticket.clone()).collect();
        self.state.access.tickets_shown(&actor, &shown).await?;
        Ok(Response::new(pb::ListFollowUpsResponse { items, next_page_token }))
    }

    async fn list_my_tickets(
        &self,
        request: Request<pb::ListMyTicketsRequest>,
    ) -> Result<Response<pb::ListMyTicketsResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let property_id = v.optional_id("property_id", &body.property_id);
        let limit = v.page_size("page_size", body.page_size);
        let skip = paging::parse_count(&mut v, &body.page_token);
        v.into_result().map_err(ApiError::from)?;
        let properties = readable_properties(&actor, property_id)?;
        let owner = own_work(&actor);
        let now = propdesk_store::now();
        let store = &self.state.store;
        let mut rows = store
            .owned_open_tickets(&owner, properties.as_deref(), now, skip, limit + 1)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = paging::cut_by_count(&mut rows, limit, skip);
        let tickets = self.shown(&actor, rows.iter().map(|t| ticket_to_wire(t, &actor)).collect()).await?;
        Ok(Response::new(pb::ListMyTicketsResponse { tickets, next_page_token }))
    }

    async fn get_ticket_history(
        &self,
        request: Request<pb::GetTicketHistoryRequest>,
    ) -> Result<Response<pb::GetTicketHistoryResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let id = v.required_id("ticket_id", &body.ticket_id);
        let limit = v.page_size("page_size", body.page_size);
        let after = paging::parse_sequence(&mut v, &body.page_token);
        v.into_result().map_err(ApiError::from)?;
        let ticket = self.load(&actor, &id.unwrap_or_default()).await?;
        let mut rows =
            self.state.store.history_page(&ticket.id, after, Some(limit + 1)).await.map_err(ApiError::from)?;
        let next_page_token = paging::cut_by_sequence(&mut rows, limit, |(sequence, _)| *sequence);
        let events = rows.iter().map(|(_, event)| event_to_wire(event)).collect();
        Ok(Response::new(pb::GetTicketHistoryResponse { events, next_page_token }))
    }

    async fn assign_ticket(&self, request: Request<pb::AssignTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::new();
        let department = required_enum::<Department>(&mut violations, "department", body.department);
        let assignee_id = violations.optional_id("assignee_id", &body.assignee_id);
        // The assignee must be staff of that department at the ticket's property.
        let assignee = match &assignee_id {
            Some(id) => self.state.store.find::<staff::Model>(id).await.map_err(ApiError::from)?,
            None => None,
        };
        if assignee_id.is_some() && assignee.is_none() {
            violations.add("assignee_id", "no such staff member");
        }
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, &body.note, false);
        let ticket = self
            .change(&actor, change, violations, Operation::Move(Move::Dispatch), move |t, by, note, now| {
                let department = department.ok_or(ApiError::Internal("validated department missing".into()))?;
                if let Some(staff) = &assignee {
                    if staff.property_id != t.property_id {
                        return Err(ApiError::field("assignee_id", "works at another property"));
                    }
                    if staff.department() != Some(department) {
                        return Err(ApiError::field("assignee_id", format!("is not in the {department} department")));
                    }
                }
                let route =
                    Route { department, assignee_id: assignee.map(|s| s.id), repeat: None, incident_id: None, note };
                Ok(t.dispatch(route, by, now)?)
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn accept_ticket(&self, request: Request<pb::AcceptTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        self.act(request, Move::Accept, false, Ticket::accept).await
    }

    async fn arrive_on_site(&self, request: Request<pb::ArriveOnSiteRequest>) -> Result<Response<pb::Ticket>, Status> {
        self.act(request, Move::ArriveOnSite, false, Ticket::arrive).await
    }

    async fn put_on_hold(&self, request: Request<pb::PutOnHoldRequest>) -> Result<Response<pb::Ticket>, Status> {
        self.act(request, Move::PutOnHold, true, Ticket::hold).await
    }

    async fn resume_ticket(&self, request: Request<pb::ResumeTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        self.act(request, Move::Resume, false, Ticket::resume).await
    }

    async fn resolve_ticket(&self, request: Request<pb::ResolveTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        v.optional_text("delay_cause", &body.delay_cause, MAX_NAME);
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, &body.note, false);
        let delay_cause = (!body.delay_cause.trim().is_empty()).then(|| body.delay_cause.trim().to_owned());
        let policy = &self.state.policy;
        let ticket = self
            .change(&actor, change, v, Operation::Move(Move::Resolve), move |t, by, note, now| {
                Ok(t.resolve_reporting_delay(by, note, delay_cause, policy, now)?)
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn complete_review(
        &self,
        request: Request<pb::CompleteReviewRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        v.required_text("cause", &body.cause, MAX_NAME);
        v.required_text("action", &body.action, MAX_NOTE);
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, "", false);
        let (cause, action) = (body.cause, body.action);
        let causes = &self.state.policy.review_causes;
        let ticket = self
            .change(&actor, change, v, Operation::CompleteReview, move |t, by, _note, now| {
                Ok(t.complete_review(cause, action, causes, by, now)?)
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn transfer_ticket(
        &self,
        request: Request<pb::TransferTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::new();
        let to_department = required_enum::<Department>(&mut violations, "to_department", body.to_department);
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, &body.note, true);
        let ticket = self
            .change(&actor, change, violations, Operation::Move(Move::Transfer), move |t, by, note, now| {
                let to = to_department.ok_or(ApiError::Internal("validated department missing".into()))?;
                Ok(t.transfer(to, by, note, now)?)
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn cancel_ticket(&self, request: Request<pb::CancelTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        self.act(request, Move::Cancel, true, Ticket::cancel).await
    }

    async fn close_ticket(&self, request: Request<pb::CloseTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        self.act(request, Move::Close, true, Ticket::close).await
    }

    async fn reopen_ticket(&self, request: Request<pb::ReopenTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        let policy = &self.state.policy;
        self.act(request, Move::Reopen, true, |t, by, note, now| t.reopen(by, note, policy, now)).await
    }

    async fn add_note(&self, request: Request<pb::AddNoteRequest>) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, &body.note, true);
        let ticket = self
            .change(&actor, change, Violations::new(), Operation::AddNote, |t, by, note, now| {
                Ok(t.add_note(by, note, now))
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn record_callback(
        &self,
        request: Request<pb::RecordCallbackRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::new();
        let satisfaction = required_enum::<Satisfaction>(&mut violations, "satisfaction", body.satisfaction);
        violations.optional_text("comment", &body.comment, MAX_NOTE);
        let requires_rework = satisfaction.is_some_and(Satisfaction::requires_rework);
        // A duplicate's reporter is called back on its original's work.
        let original = self.original_of(&body.ticket_id).await?;
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, "", false);
        let policy = &self.state.policy;
        let comment = body.comment;
        let mv = Move::RecordCallback { requires_rework };
        let ticket = self
            .change(&actor, change, violations, Operation::Move(mv), move |t, by, _note, now| {
                let satisfaction = satisfaction.ok_or(ApiError::Internal("validated satisfaction missing".into()))?;
                Ok(match original {
                    Some(mut original) => {
                        let (events, original_events) =
                            t.record_duplicate_callback(&mut original, satisfaction, comment, by, policy, now)?;
                        Commanded::with(events, original, original_events)
                    }
                    None => t.record_callback(satisfaction, comment, by, policy, now)?.into(),
                })
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn update_ticket(&self, request: Request<pb::UpdateTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let now = propdesk_store::now();
        let (parsed, violations) = parse_update(&self.state.policy, &body, now);
        // The unit must be of the ticket's property: read here, compared once the ticket is.
        let unit = match &parsed.unit_id {
            Some(Some(id)) => self.state.places.unit(&self.state.store, id).await.map_err(ApiError::from)?,
            _ => None,
        };
        let mut violations = violations;
        if matches!(&parsed.unit_id, Some(Some(_))) && unit.is_none() {
            violations.add("ticket.unit_id", "no such unit");
        }
        if parsed.names_fixed_field {
            return Err(ApiError::Invalid { reason: ErrorReason::FieldNotUpdatable, violations }.into());
        }
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, "", false);
        let (policy, reason) = (&self.state.policy, body.reason.clone());
        let lowering_actor = &actor;
        let ticket = self
            .change(&actor, change, violations, Operation::Correct, move |t, by, _note, now| {
                let mut correction = parsed.correction;
                if let Some(unit) = unit {
                    if unit.property_id != t.property_id {
                        return Err(ApiError::field("ticket.unit_id", "belongs to another property"));
                    }
                    correction.unit = Some(Some(UnitPlace {
                        unit_id: unit.unit_id,
                        building_id: unit.building_id,
                        label: unit.label,
                    }));
                }
                if correction.lowers_priority(t.priority) {
                    lowering_actor.authorize_role(Operation::LowerPriority, false)?;
                    if reason.trim().is_empty() {
                        return Err(ApiError::field("reason", "is required to lower the priority"));
                    }
                }
                Ok(t.correct(correction, reason, by, policy, now)?)
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn link_to_incident(
        &self,
        request: Request<pb::LinkToIncidentRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::new();
        let incident_id = violations.required_id("incident_id", &body.incident_id);
        violations.optional_text("reason", &body.reason, MAX_NOTE);
        let incident = match &incident_id {
            Some(id) if violations.is_empty() => Some(self.load(&actor, id).await?),
            _ => None,
        };
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, "", false);
        let reason = body.reason;
        let ticket = self
            .change(&actor, change, violations, Operation::Move(Move::Dispatch), move |t, by, _note, now| {
                let incident = incident.ok_or(ApiError::Internal("validated incident missing".into()))?;
                Ok(t.link_by_hand(&incident, by, reason, now)?)
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn mark_duplicate(&self, request: Request<pb::MarkDuplicateRequest>) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::new();
        let original_id = violations.required_id("of_ticket_id", &body.of_ticket_id);
        violations.optional_text("reason", &body.reason, MAX_NOTE);
        let (original, has_duplicates) = match &original_id {
            Some(id) if violations.is_empty() => {
                let has_duplicates = self.state.store.has_duplicates(&body.ticket_id).await.map_err(ApiError::from)?;
                (Some(self.load(&actor, id).await?), has_duplicates)
            }
            _ => (None, false),
        };
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, "", false);
        let reason = body.reason;
        let ticket = self
            .change(&actor, change, violations, Operation::Move(Move::CloseAsDuplicate), move |t, by, _note, now| {
                let mut original = original.ok_or(ApiError::Internal("validated original missing".into()))?;
                let (events, original_events) = t.mark_duplicate(&mut original, has_duplicates, by, reason, now)?;
                Ok(Commanded::with(events, original, original_events))
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn unlink_from_incident(
        &self,
        request: Request<pb::UnlinkFromIncidentRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::new();
        violations.optional_text("reason", &body.reason, MAX_NOTE);
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, "", false);
        let reason = body.reason;
        let ticket = self
            .change(&actor, change, violations, Operation::Move(Move::Dispatch), move |t, by, _note, now| {
                Ok(t.unlink(by, reason, now)?)
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn escalate_ticket(
        &self,
        request: Request<pb::EscalateTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::new();
        if !(1..=2).contains(&body.level) {
            violations.add("level", "must be 1 (the supervisor) or 2 (the manager)");
        }
        violations.required_text("reason", &body.reason, MAX_NOTE);
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, "", false);
        let (level, reason) = (body.level, body.reason);
        let ticket = self
            .change(&actor, change, violations, Operation::Escalate, move |t, by, _note, now| {
                Ok(t.escalate_by_hand(level, by, reason, now)?)
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn add_case_party(&self, request: Request<pb::AddCasePartyRequest>) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let given = body.party.unwrap_or_default();
        let kind = required_enum::<PartyKind>(&mut v, "party.kind", given.kind);
        v.required_text("party.name", &given.name, MAX_NAME);
        v.optional_text("party.contact", &given.contact, MAX_ADDRESS);
        let resident = kind == Some(PartyKind::Resident);
        if resident && !matches!(given.side.as_str(), "a" | "b") {
            v.add("party.side", "is required for a resident: \"a\" or \"b\", the side of the matter");
        }
        if !resident && !given.side.is_empty() {
            v.add("party.side", "is only for residents");
        }
        let unit_id = v.optional_id("party.unit_id", &given.unit_id);
        let resident_id = v.optional_id("party.resident_id", &given.resident_id);
        // The unit and resident must be of the ticket's property: read here, compared once
        // the ticket is.
        let unit = match &unit_id {
            Some(id) => self.state.places.unit(&self.state.store, id).await.map_err(ApiError::from)?,
            None => None,
        };
        if unit_id.is_some() && unit.is_none() {
            v.add("party.unit_id", "no such unit");
        }
        let known = match &resident_id {
            Some(id) => self.state.store.find::<resident::Model>(id).await.map_err(ApiError::from)?,
            None => None,
        };
        if resident_id.is_some() && known.is_none() {
            v.add("party.resident_id", "no such resident");
        }
        let party = Party {
            id: new_id(),
            kind: kind.unwrap_or(PartyKind::Other),
            side: given.side,
            unit_id,
            resident_id,
            name: given.name,
            contact: given.contact,
            reference: String::new(),
            chase_by: None,
            result: None,
        };
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, "", false);
        let ticket = self
            .change(&actor, change, v, Operation::ManageCase, move |t, by, _note, now| {
                if unit.is_some_and(|u| u.property_id != t.property_id) {
                    return Err(ApiError::field("party.unit_id", "belongs to another property"));
                }
                if known.is_some_and(|r| r.property_id != t.property_id) {
                    return Err(ApiError::field("party.resident_id", "belongs to another property"));
                }
                Ok(t.add_case_party(party, by, now))
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn record_case_step(
        &self,
        request: Request<pb::RecordCaseStepRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let step = body.step.unwrap_or_default();
        let at = from_timestamp(&mut v, "step.at", step.at.as_ref());
        if step.at.is_none() {
            v.add("step.at", "is required: when it happened");
        }
        v.required_text("step.what", &step.what, MAX_NOTE);
        v.optional_text("step.outcome", &step.outcome, MAX_NOTE);
        v.optional_text("next_step", &body.next_step, MAX_NOTE);
        let due = from_timestamp(&mut v, "next_step_due", body.next_step_due.as_ref());
        if due.is_some() && body.next_step.trim().is_empty() {
            v.add("next_step", "is required with a due date");
        }
        for (index, id) in step.party_ids.iter().enumerate() {
            v.required_id(&format!("step.party_ids[{index}]"), id);
        }
        let next = (!body.next_step.trim().is_empty()).then(|| (body.next_step.clone(), due));
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, "", false);
        let ticket = self
            .change(&actor, change, v, Operation::ManageCase, move |t, by, _note, now| {
                let at = at.ok_or(ApiError::Internal("validated step time missing".into()))?;
                let step = CaseStep { at, what: step.what, party_ids: step.party_ids, outcome: step.outcome };
                Ok(t.record_case_step(step, next, by, now)?)
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn get_case(&self, request: Request<pb::GetCaseRequest>) -> Result<Response<pb::Case>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let id = v.required_id("ticket_id", &body.ticket_id);
        v.into_result().map_err(ApiError::from)?;
        let ticket = self.load(&actor, &id.unwrap_or_default()).await?;
        let case = ticket.case.as_ref().ok_or(ApiError::NotFound("case"))?;
        let is_assignee = ticket.assignee_id.as_deref() == Some(actor.staff_id.as_str());
        let mut wire = case_to_wire(case, may_see_contact_details(actor.role, is_assignee));
        let history = self.state.store.history(&ticket.id).await.map_err(ApiError::from)?;
        // In the order the steps happened (the history keeps the order they were recorded).
        let mut steps: Vec<_> =
            history.iter().filter_map(|e| e.step.as_ref().map(|step| (step, &e.actor_id))).collect();
        steps.sort_by_key(|(step, _)| step.at);
        wire.steps = steps.into_iter().map(|(step, by)| case_step_to_wire(step, by)).collect();
        Ok(Response::new(wire))
    }

    async fn refer_out(&self, request: Request<pb::ReferOutRequest>) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let given = body.party.unwrap_or_default();
        let kind = required_enum::<PartyKind>(&mut v, "party.kind", given.kind);
        if kind == Some(PartyKind::Resident) {
            v.add("party.kind", "must be an outside party (police, 城管, the developer...), not a resident");
        }
        v.required_text("party.name", &given.name, MAX_NAME);
        v.optional_text("party.contact", &given.contact, MAX_ADDRESS);
        v.optional_text("party.reference", &given.reference, MAX_NAME);
        let chase_by = from_timestamp(&mut v, "chase_by", body.chase_by.as_ref());
        if body.chase_by.is_none() {
            v.add("chase_by", "is required: when to chase the result (within 90 days)");
        }
        let party = Party {
            id: new_id(),
            kind: kind.unwrap_or(PartyKind::Other),
            side: String::new(),
            unit_id: None,
            resident_id: None,
            name: given.name,
            contact: given.contact,
            reference: given.reference,
            chase_by,
            result: None,
        };
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, "", false);
        let ticket = self
            .change(&actor, change, v, Operation::ManageCase, move |t, by, _note, now| {
                let chase = NewFollowUp {
                    ticket_id: t.id.clone(),
                    kind: FollowUpKind::Chase,
                    method: ReplyMethod::PhoneCall,
                    owner_id: Some(t.first_contact_agent_id.clone()),
                    due_by: party.chase_by,
                    destination: format!("{} {} ({}): {}", party.kind, party.name, party.reference, party.contact),
                    done: None,
                    subject_id: Some(party.id.clone()),
                };
                let events = t.refer_out(party, by, now)?;
                Ok(Commanded { events, others: Vec::new(), opens: vec![chase] })
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn record_referral_result(
        &self,
        request: Request<pb::RecordReferralResultRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let party_id = v.required_id("party_id", &body.party_id).unwrap_or_default();
        v.required_text("result", &body.result, MAX_NOTE);
        let change = ChangeRequest {
            completes_follow_up: Some(ReplyFollowUp::Chase(party_id.clone())),
            ..ChangeRequest::new(&body.ticket_id, body.expected_version, &body.result, false)
        };
        let result = body.result.clone();
        let ticket = self
            .change(&actor, change, v, Operation::ManageCase, move |t, by, _note, now| {
                Ok(t.record_referral_result(&party_id, result, by, now)?)
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn wait_on_outside_party(
        &self,
        request: Request<pb::WaitOnOutsidePartyRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let party_id = v.required_id("party_id", &body.party_id).unwrap_or_default();
        v.required_text("reason", &body.reason, MAX_NOTE);
        let review_by = from_timestamp(&mut v, "review_by", body.review_by.as_ref());
        if body.review_by.is_none() {
            v.add("review_by", "is required: when the owner looks again (within 90 days)");
        }
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, "", false);
        let reason = body.reason;
        let ticket = self
            .change(&actor, change, v, Operation::ManageCase, move |t, by, _note, now| {
                let review_by = review_by.ok_or(ApiError::Internal("validated review date missing".into()))?;
                Ok(t.wait_on(&party_id, reason, review_by, by, now)?)
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn set_interim_measure(
        &self,
        request: Request<pb::SetInterimMeasureRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::new();
        violations.optional_text("interim_measure", &body.interim_measure, MAX_INTERIM_MEASURE);
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, "", false);
        let measure = Some(body.interim_measure);
        let ticket = self
            .change(&actor, change, violations, Operation::Correct, move |t, by, _note, now| {
                Ok(t.set_interim_measure(measure, by, now)?)
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn reply_to_resident(
        &self,
        request: Request<pb::ReplyToResidentRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::new();
        let asked_method = optional_enum::<ReplyMethod>(&mut violations, "method", body.method);
        match (&body.standard_reply, body.text.trim().is_empty()) {
            (Some(_), false) => violations.add("text", "give your own words or a standard reply, not both"),
            (None, true) => violations.add("text", "is required, unless a standard reply is named"),
            _ => violations.optional_text("text", &body.text, MAX_DESCRIPTION),
        }
        let id = violations.required_id("ticket_id", &body.ticket_id);
        if !violations.is_empty() {
            return Err(ApiError::from(violations).into());
        }
        // Read first: the words are rendered from the ticket, and a letter needs its unit's
        // address. The change below checks the version the caller saw.
        let ticket = self.load(&actor, &id.unwrap_or_default()).await?;
        actor.authorize(&ticket.property_id, Operation::Reply, false).map_err(ApiError::from)?;
        let (text, standard) = match &body.standard_reply {
            Some(used) => {
                let facts = ticket.facts();
                let name = replies::property_name(&self.state, &facts.property_id).await?;
                let fill = replies::ticket_fill(&self.state, facts, &name);
                let used = ReplyUse::in_field(used, "standard_reply");
                let (text, source) = replies::render_use(&self.state, used, &facts.property_id, &fill).await?;
                (text, Some(source))
            }
            None => (body.text, None),
        };
        let postal_address = match &ticket.unit_id {
            Some(unit_id) => {
                self.state.store.find::<unit::Model>(unit_id).await.map_err(ApiError::from)?.map(|u| u.postal_address)
            }
            None => None,
        };
        let method = asked_method.unwrap_or_else(|| ReplyMethod::for_channel(ticket.channel));
        let summary = format!("replied by {method}");
        let change = ChangeRequest {
            completes_follow_up: Some(ReplyFollowUp::Open),
            ..ChangeRequest::new(&body.ticket_id, body.expected_version, &summary, false)
        };
        let sent = ReplySent { method, standard };
        let ticket = self
            .change(&actor, change, Violations::new(), Operation::Reply, move |t, by, _note, now| {
                Ok(t.reply(sent, text, postal_address.as_deref(), by, now)?)
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn complete_follow_up(
        &self,
        request: Request<pb::CompleteFollowUpRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::new();
        let follow_up_id = violations.required_id("follow_up_id", &body.follow_up_id);
        let change = ChangeRequest {
            completes_follow_up: follow_up_id.map(ReplyFollowUp::Id),
            ..ChangeRequest::new(&body.ticket_id, body.expected_version, &body.note, true)
        };
        let ticket = self
            .change(&actor, change, violations, Operation::AddNote, |t, by, note, now| {
                Ok(t.record_follow_up(by, note, now))
            })
            .await?;
        Ok(Response::new(ticket))
    }

    type WatchTicketsStream = EventStream;

    async fn watch_tickets(
        &self,
        request: Request<pb::WatchTicketsRequest>,
    ) -> Result<Response<Self::WatchTicketsStream>, Status> {
        let actor = actor(&request)?;
        let stream = watch::open(self.state.clone(), &actor, request.into_inner()).await?;
        Ok(Response::new(stream))
    }
}

impl TicketApi {
    /// Parse (every bad field), check the places against the directory, log, save.
    async fn create(&self, actor: &Actor, body: pb::CreateTicketRequest) -> ApiResult<pb::Ticket> {
        let policy = &self.state.policy;
        let now = propdesk_store::now();
        let parsed = parse_create(policy, &body, now)?;
        actor.authorize(&parsed.property_id, Operation::CreateTicket, false)?;
        let (unit, resident) = self.places_of(&parsed).await?;
        let id = new_id();
        let place = unit.as_ref().map_or(body.location.as_str(), |u| u.label.as_str());
        let answer = self.answer_on_the_spot(&body, &parsed, place, &id).await?;

        let fingerprint = fingerprint(&body);
        let or_resident = |given: String, known: fn(&resident::Model) -> &String| {
            if given.is_empty() { resident.as_ref().map(|r| known(r).clone()).unwrap_or_default() } else { given }
        };
        let (answer_on_the_spot, answer_source) = answer.unzip();
        let report = Report {
            id,
            property_id: parsed.property_id,
            unit: unit.map(|u| UnitPlace { unit_id: u.unit_id, building_id: u.building_id, label: u.label }),
            location: body.location,
            resident_id: resident.as_ref().map(|r| r.id.clone()),
            reporter: Reporter {
                name: or_resident(body.reporter_name, |r| &r.name),
                phone: or_resident(body.reporter_phone, |r| &r.phone),
            },
            kind: parsed.kind,
            channel: parsed.channel,
            category: CategoryCode::new(parsed.category.code.clone()),
            category_default: parsed.category.default_priority,
            requested_priority: parsed.requested_priority,
            title: body.title,
            description: body.description,
            request: RequestKey { request_id: body.request_id, fingerprint: fingerprint.clone() },
            promised_reply_at: parsed.promised_reply_at,
            answer_on_the_spot,
            answer_source: answer_source.flatten(),
            callback_wanted: body.callback_wanted,
            referred_by: parsed.referred_by.clone(),
        };
        let (ticket, events) = Ticket::log(report, policy, by(actor), now)?;
        // Written by the group-commit writers, outside this task: the outbox messages carry
        // this call's trace explicitly.
        let trace_parent = propdesk_trace::TraceParent::current().map(|trace| trace.to_string());
        match self.state.creates.create(NewTicket { ticket, events, trace_parent }).await? {
            Created::New(ticket) => {
                tracing::info!(ticket_id = %ticket.id, priority = %ticket.priority, category = %ticket.category, "ticket created");
                Ok(ticket_to_wire(&ticket, actor))
            }
            Created::Existing(existing) if existing.request.fingerprint == fingerprint => {
                Ok(ticket_to_wire(&existing, actor))
            }
            Created::Existing(_) => Err(mismatch()),
        }
    }

    /// The original of a duplicate (read, not locked: saving the change checks its version).
    async fn original_of(&self, ticket_id: &str) -> ApiResult<Option<Ticket>> {
        let store = &self.state.store;
        let Some(original_id) = store.get_ticket(ticket_id).await?.and_then(|t| t.into_facts().duplicate_of) else {
            return Ok(None);
        };
        Ok(store.get_ticket(&original_id).await?)
    }

    /// An enquiry's answer on the spot: the agent's words, or a standard reply rendered for
    /// this report (logged at `place` as ticket `id`), with the reply and version.
    async fn answer_on_the_spot(
        &self,
        body: &pb::CreateTicketRequest,
        parsed: &ParsedCreate<'_>,
        place: &str,
        id: &str,
    ) -> ApiResult<Option<(String, Option<StandardReplyRef>)>> {
        let Some(used) = &body.answer_standard_reply else {
            return Ok(parsed.answer_on_the_spot.clone().map(|text| (text, None)));
        };
        let name = replies::property_name(&self.state, &parsed.property_id).await?;
        let fill = Fill {
            unit: place,
            ticket_no: id,
            department: Some(Department::CustomerService),
            expected: parsed.promised_reply_at,
            property_name: &name,
            utc_offset_minutes: self.state.policy.hours_for(&parsed.property_id).utc_offset_minutes,
            interim_measure: None,
        };
        let used = ReplyUse::in_field(used, "answer_standard_reply");
        let (text, source) = replies::render_use(&self.state, used, &parsed.property_id, &fill).await?;
        Ok(Some((text, Some(source))))
    }

    /// The unit and resident a create names, checked against its property: every one that
    /// is missing or belongs elsewhere is a field violation.
    async fn places_of(&self, parsed: &ParsedCreate<'_>) -> ApiResult<(Option<Place>, Option<resident::Model>)> {
        let (store, places) = (&self.state.store, &self.state.places);
        let property_id = parsed.property_id.as_str();
        let mut v = Violations::new();
        let found_unit = match &parsed.unit_id {
            Some(id) => places.unit(store, id).await?,
            None => None,
        };
        // A unit of the property vouches for it (units are only added to existing
        // properties, and properties are never deleted).
        let vouched = found_unit.as_ref().is_some_and(|unit| unit.property_id == property_id);
        if !vouched && !places.property_exists(store, property_id).await? {
            v.add("property_id", "no such property");
        }
        let unit = match (&parsed.unit_id, found_unit) {
            (Some(_), Some(unit)) if unit.property_id == property_id => Some(unit),
            (Some(_), Some(_)) => {
                v.add("unit_id", "belongs to another property");
                None
            }
            (Some(_), None) => {
                v.add("unit_id", "no such unit");
                None
            }
            (None, _) => None,
        };
        let resident = match &parsed.resident_id {
            Some(id) => match store.find::<resident::Model>(id).await? {
                Some(resident) if resident.property_id == property_id => Some(resident),
                Some(_) => {
                    v.add("resident_id", "belongs to another property");
                    None
                }
                None => {
                    v.add("resident_id", "no such resident");
                    None
                }
            },
            None => None,
        };
        v.into_result()?;
        Ok((unit, resident))
    }
}

/// A create request as parsed: every field checked, the category found in the catalog.
struct ParsedCreate<'a> {
    property_id: String,
    unit_id: Option<String>,
    resident_id: Option<String>,
    kind: TicketKind,
    channel: Channel,
    category: &'a Category,
    requested_priority: Option<Priority>,
    promised_reply_at: Option<DateTime<Utc>>,
    answer_on_the_spot: Option<String>,
    referred_by: Option<Referrer>,
}

/// Checks every field of a create; the error lists every bad one.
fn parse_create<'a>(
    policy: &'a Policy,
    body: &pb::CreateTicketRequest,
    now: DateTime<Utc>,
) -> ApiResult<ParsedCreate<'a>> {
    let mut v = Violations::new();
    check_request_id(&mut v, &body.request_id);
    let property_id = v.required_id("property_id", &body.property_id);
    let unit_id = v.optional_id("unit_id", &body.unit_id);
    let resident_id = v.optional_id("resident_id", &body.resident_id);
    v.optional_text("location", &body.location, MAX_LOCATION);
    if body.unit_id.is_empty() && body.location.trim().is_empty() {
        v.add("location", "is required for a common-area request (no unit_id)");
    }
    v.optional_text("reporter_name", &body.reporter_name, MAX_NAME);
    v.optional_phone("reporter_phone", &body.reporter_phone);
    let kind = required_enum::<TicketKind>(&mut v, "kind", body.kind);
    let channel = required_enum::<Channel>(&mut v, "channel", body.channel);
    let requested_priority = optional_enum::<Priority>(&mut v, "priority", body.priority);
    let category = if body.category.is_empty() {
        v.add("category", "is required");
        None
    } else {
        let found = policy.categories.get(&body.category);
        if found.is_none() {
            v.add("category", format!("`{}` is not in the category catalog (see ListCategories)", body.category));
        }
        found
    };
    v.optional_text("title", &body.title, MAX_TITLE);
    v.required_text("description", &body.description, MAX_DESCRIPTION);
    v.optional_text("answer_on_the_spot", &body.answer_on_the_spot, MAX_DESCRIPTION);
    let answered = !body.answer_on_the_spot.trim().is_empty();
    if answered && kind.is_some_and(|k| k != TicketKind::Enquiry) {
        v.add("answer_on_the_spot", "only an enquiry can be answered on the spot");
    }
    if body.answer_standard_reply.is_some() {
        if answered {
            v.add("answer_standard_reply", "give the answer's words or a standard reply, not both");
        }
        if kind.is_some_and(|k| k != TicketKind::Enquiry) {
            v.add("answer_standard_reply", "only an enquiry can be answered on the spot");
        }
    }
    let referred_by = parse_referrer(&mut v, body.referred_by.as_ref(), channel);
    let promised_reply_at = from_timestamp(&mut v, "promised_reply_at", body.promised_reply_at.as_ref());
    if promised_reply_at.is_some_and(|at| at <= now) {
        v.add("promised_reply_at", "must be in the future");
    }
    v.into_result()?;
    let (Some(property_id), Some(kind), Some(channel), Some(category)) = (property_id, kind, channel, category) else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    Ok(ParsedCreate {
        property_id,
        unit_id,
        resident_id,
        kind,
        channel,
        category,
        requested_priority,
        promised_reply_at,
        answer_on_the_spot: answered.then(|| body.answer_on_the_spot.clone()),
        referred_by,
    })
}

/// Who referred a request: required for a REFERRAL, refused for any other channel.
fn parse_referrer(v: &mut Violations, given: Option<&pb::Referrer>, channel: Option<Channel>) -> Option<Referrer> {
    let referral = channel == Some(Channel::Referral);
    let Some(given) = given else {
        if referral {
            v.add("referred_by", "is required for a referral: who referred it and how they want the answer");
        }
        return None;
    };
    if !referral && channel.is_some() {
        v.add("referred_by", "is only for channel REFERRAL");
    }
    v.required_text("referred_by.organisation", &given.organisation, MAX_NAME);
    v.optional_text("referred_by.reference", &given.reference, MAX_NAME);
    v.required_text("referred_by.reply_to", &given.reply_to, MAX_ADDRESS);
    let reply_method = required_enum::<ReplyMethod>(v, "referred_by.reply_method", given.reply_method);
    Some(Referrer {
        organisation: given.organisation.clone(),
        reference: given.reference.clone(),
        reply_method: reply_method.unwrap_or(ReplyMethod::Letter),
        reply_to: given.reply_to.clone(),
    })
}

/// An update request as parsed: the correction (the unit aside, checked against the
/// directory) and the unit it names (`Some(None)`: a common area).
struct ParsedUpdate {
    correction: Correction,
    unit_id: Option<Option<String>>,
    /// The mask names a field that changes only through its own call.
    names_fixed_field: bool,
}

/// The fields of Ticket that change only through their own calls.
const NOT_UPDATABLE: &[&str] = &[
    "id",
    "version",
    "property_id",
    "building_id",
    "unit_label",
    "resident_id",
    "reporter_name",
    "reporter_phone",
    "kind",
    "channel",
    "department",
    "state",
    "description",
    "first_contact_agent_id",
    "assignee_id",
    "escalation_level",
    "incident_id",
    "repeat_fault",
    "duplicate_of_id",
    "deadlines",
    "created_at",
    "updated_at",
    "dispatched_at",
    "accepted_at",
    "on_site_at",
    "resolved_at",
    "closed_at",
    "on_hold_since",
    "callback",
    "is_incident",
    "follow_ups",
    "interim_measure",
    "urgency_rule",
    "case",
    "referred_by",
    "review",
    "delay_cause",
];

/// Checks an update's mask and every field it names; the violations list every bad one.
fn parse_update(policy: &Policy, body: &pb::UpdateTicketRequest, now: DateTime<Utc>) -> (ParsedUpdate, Violations) {
    let mut v = Violations::new();
    let mut parsed = ParsedUpdate { correction: Correction::default(), unit_id: None, names_fixed_field: false };
    v.optional_text("reason", &body.reason, MAX_NOTE);
    let paths = body.update_mask.as_ref().map(|mask| mask.paths.as_slice()).unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", "is required: name the fields to change");
    }
    let given = body.ticket.clone().unwrap_or_default();
    let correction = &mut parsed.correction;
    for path in paths {
        match path.as_str() {
            "category" => match policy.categories.get(&given.category) {
                Some(category) => {
                    correction.category = Some((CategoryCode::new(category.code.clone()), category.default_priority))
                }
                None => v.add("ticket.category", format!("`{}` is not in the category catalog", given.category)),
            },
            "unit_id" => {
                let unit_id = v.optional_id("ticket.unit_id", &given.unit_id);
                if given.unit_id.is_empty() {
                    // A common area: the location must then say where.
                    correction.unit = Some(None);
                }
                parsed.unit_id = Some(unit_id);
            }
            "location" => {
                v.optional_text("ticket.location", &given.location, MAX_LOCATION);
                correction.location = Some(given.location.clone());
            }
            "title" => {
                v.required_text("ticket.title", &given.title, MAX_TITLE);
                correction.title = Some(given.title.trim().to_owned());
            }
            "description_addendum" => {
                v.required_text("ticket.description_addendum", &given.description_addendum, MAX_DESCRIPTION);
                correction.description_addendum = Some(given.description_addendum.clone());
            }
            "promised_reply_at" => {
                let at = from_timestamp(&mut v, "ticket.promised_reply_at", given.promised_reply_at.as_ref());
                if at.is_some_and(|at| at <= now) {
                    v.add("ticket.promised_reply_at", "must be in the future");
                }
                correction.promised_reply_at = Some(at);
            }
            "priority" => correction.priority = required_enum::<Priority>(&mut v, "ticket.priority", given.priority),
            other if NOT_UPDATABLE.contains(&other) => {
                parsed.names_fixed_field = true;
                v.add("update_mask", format!("`{other}` does not change through UpdateTicket"));
            }
            other => v.add("update_mask", format!("`{other}` is not a field of Ticket")),
        }
    }
    (parsed, v)
}
