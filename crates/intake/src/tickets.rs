//! TicketService: logging tickets and taking them through their life.
//!
//! Every change follows one path ([`TicketApi::change`]): validate, load, authorize,
//! check the expected version, let the state machine decide, then save the ticket, its
//! history events and their outbox messages in one transaction.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use propdesk_domain::validation::{MAX_DESCRIPTION, MAX_LOCATION, MAX_NAME, MAX_NOTE, MAX_TITLE};
use propdesk_domain::{
    Actor, Channel, Department, EventType, Lifecycle, Move, Operation, Priority, Satisfaction, TicketKind, TicketState,
    Violations,
};
use propdesk_proto::v1 as pb;
use propdesk_proto::v1::ticket_service_server::TicketService;
use propdesk_store::entity::{resident, staff, ticket};
use propdesk_store::{Change, Created, FollowUpDone, NewEvent, NewTicket, StoreError, TicketFilter};
use prost::Message as _;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use crate::IntakeState;
use crate::auth::actor;
use crate::convert::{
    event_to_wire, follow_up_to_wire, from_timestamp, optional_enum, outbox_message, required_enum, ticket_to_wire,
};
use crate::error::{ApiError, ApiResult};
use crate::watch::{self, EventStream};

pub struct TicketApi {
    state: Arc<IntakeState>,
}

impl TicketApi {
    pub fn new(state: Arc<IntakeState>) -> Self {
        TicketApi { state }
    }
}

/// One history step a change produces.
struct Step {
    event_type: EventType,
    from: TicketState,
    to: TicketState,
    note: String,
}

/// The common fields of every change request.
struct ChangeRequest<'a> {
    ticket_id: &'a str,
    expected_version: i64,
    note: &'a str,
    note_required: bool,
    /// A reply follow-up of the ticket this change completes.
    completes_follow_up: Option<String>,
}

impl<'a> ChangeRequest<'a> {
    fn new(ticket_id: &'a str, expected_version: i64, note: &'a str, note_required: bool) -> Self {
        ChangeRequest { ticket_id, expected_version, note, note_required, completes_follow_up: None }
    }
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn lifecycle_of(t: &ticket::Model) -> ApiResult<Lifecycle> {
    let state = t.parse_code(&t.state)?;
    let held_from = match &t.held_from {
        Some(code) => Some(t.parse_code(code)?),
        None => None,
    };
    Ok(Lifecycle { state, held_from })
}

/// Applies a state-machine move to the ticket's state columns and names the step.
fn apply_move(t: &mut ticket::Model, mv: Move, event_type: EventType, note: &str) -> ApiResult<Step> {
    let before = lifecycle_of(t)?;
    let after = before.apply(mv)?;
    t.state = after.state.code().to_owned();
    t.held_from = after.held_from.map(|s| s.code().to_owned());
    Ok(Step { event_type, from: before.state, to: after.state, note: note.to_owned() })
}

fn page_token_after(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// Keeps the first `limit` of `rows` (fetched with one extra, which tells whether another
/// page follows) and returns the next page's token, empty on the last page.
pub(crate) fn cut_page<T>(rows: &mut Vec<T>, limit: u64, id: impl Fn(&T) -> &str) -> String {
    if rows.len() as u64 <= limit {
        return String::new();
    }
    rows.truncate(limit as usize);
    rows.last().map(|row| page_token_after(id(row))).unwrap_or_default()
}

pub(crate) fn parse_page_token(violations: &mut Violations, token: &str) -> Option<String> {
    if token.is_empty() {
        return None;
    }
    let decoded = URL_SAFE_NO_PAD.decode(token).ok().and_then(|bytes| String::from_utf8(bytes).ok());
    match decoded.filter(|id| uuid::Uuid::parse_str(id).is_ok()) {
        Some(id) => Some(id),
        None => {
            violations.add("page_token", "is not a token returned by this list call");
            None
        }
    }
}

/// Request ids are client-chosen keys: UUIDs or similar, never free text.
fn check_request_id(violations: &mut Violations, request_id: &str) {
    if request_id.is_empty() {
        violations.add("request_id", "is required (a client-generated UUID, reused on retries)");
    } else if request_id.len() > 64 || !request_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        violations.add("request_id", "must be 1 to 64 characters of letters, digits, '-' and '_'");
    }
}

impl TicketApi {
    async fn load(&self, actor: &Actor, ticket_id: &str) -> ApiResult<ticket::Model> {
        let ticket = self.state.store.get_ticket(ticket_id).await?.ok_or(ApiError::NotFound("ticket"))?;
        actor.authorize(&ticket.property_id, Operation::ReadTickets, false)?;
        Ok(ticket)
    }

    /// The one path of every change; `edit` may only change the ticket in memory.
    async fn change(
        &self,
        actor: &Actor,
        request: ChangeRequest<'_>,
        mut violations: Violations,
        operation: Operation,
        edit: impl FnOnce(&mut ticket::Model, DateTime<Utc>) -> ApiResult<Vec<Step>>,
    ) -> ApiResult<pb::Ticket> {
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

        let current = self.load(actor, &ticket_id).await?;
        let is_assignee = current.assignee_id.as_deref() == Some(actor.staff_id.as_str());
        actor.authorize(&current.property_id, operation, is_assignee)?;
        if current.version != request.expected_version {
            return Err(ApiError::Stale { expected: request.expected_version, current: current.version });
        }

        let now = propdesk_store::now();
        let mut updated = current.clone();
        let steps = edit(&mut updated, now)?;
        updated.version = current.version + 1;
        updated.updated_at = now;
        let events = steps.into_iter().map(|step| history_event(actor, step, now)).collect();
        let mut changes = vec![Change { updated: updated.clone(), expected_version: current.version, events }];
        if updated.is_incident && updated.state == TicketState::Resolved.code() && current.state != updated.state {
            changes.extend(self.resolve_linked_reports(&updated, actor, now).await?);
        }
        let follow_up = request.completes_follow_up.map(|id| FollowUpDone {
            id,
            by: actor.staff_id.clone(),
            at: now,
            note: request.note.to_owned(),
        });
        match self.state.store.save_changes_completing(changes, follow_up, outbox_message).await {
            Ok(_) => {}
            Err(StoreError::NotFound("open reply follow-up")) => {
                return Err(ApiError::field("follow_up_id", "is not an open reply follow-up of this ticket"));
            }
            // The ticket (or, for an incident, a linked report) changed meanwhile.
            Err(StoreError::StaleVersion { current: latest }) => {
                return Err(ApiError::Stale { expected: request.expected_version, current: latest });
            }
            Err(other) => return Err(other.into()),
        }
        Ok(self.with_follow_ups(vec![ticket_to_wire(&updated, actor)]).await?.remove(0))
    }

    /// Fills in the tickets' follow-ups (one query for the lot).
    async fn with_follow_ups(&self, mut tickets: Vec<pb::Ticket>) -> ApiResult<Vec<pb::Ticket>> {
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
        incident: &ticket::Model,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> ApiResult<Vec<Change>> {
        let sla = &self.state.policy.sla;
        let mut changes = Vec::new();
        for report in self.state.store.linked_tickets(&incident.id).await? {
            let mut updated = report.clone();
            let note = format!("resolved with incident {}", incident.id);
            // Reports already resolved, on hold or cancelled keep their own course.
            let Ok(step) = apply_move(&mut updated, Move::Resolve, EventType::Resolved, &note) else { continue };
            updated.resolved_at = Some(now);
            updated.callback_by = Some(sla.callback_by(now));
            updated.version = report.version + 1;
            updated.updated_at = now;
            changes.push(Change {
                updated,
                expected_version: report.version,
                events: vec![history_event(actor, step, now)],
            });
        }
        Ok(changes)
    }

    /// The plain moves: one state-machine step, with the timestamp bookkeeping of each.
    async fn simple_move(
        &self,
        request: Request<pb::TicketActionRequest>,
        mv: Move,
        event_type: EventType,
        note_required: bool,
    ) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let policy = &self.state.policy;
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, &body.note, note_required);
        let note = body.note.clone();
        let ticket = self
            .change(&actor, change, Violations::new(), Operation::Move(mv), move |t, now| {
                let step = apply_move(t, mv, event_type, &note)?;
                match mv {
                    Move::Accept => t.accepted_at = Some(now),
                    Move::ArriveOnSite => t.on_site_at = Some(now),
                    Move::PutOnHold => t.on_hold_since = Some(now),
                    Move::Resume => {
                        // Clocks stop while on hold: move every deadline by the time paused.
                        if let Some(since) = t.on_hold_since.take() {
                            t.set_clocks(t.deadlines().shifted_by(now - since));
                        }
                    }
                    Move::Resolve => {
                        t.resolved_at = Some(now);
                        t.callback_by = Some(policy.sla.callback_by(now));
                    }
                    Move::Close => t.closed_at = Some(now),
                    Move::Reopen => restart_clocks(t, policy, now)?,
                    Move::Cancel | Move::Dispatch | Move::Transfer | Move::RecordCallback { .. } => {}
                }
                Ok(vec![step])
            })
            .await?;
        Ok(Response::new(ticket))
    }
}

fn history_event(actor: &Actor, step: Step, now: DateTime<Utc>) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        event_type: step.event_type.code().to_owned(),
        actor_id: actor.staff_id.clone(),
        actor_role: Some(actor.role.code().to_owned()),
        from_state: Some(step.from.code().to_owned()),
        to_state: step.to.code().to_owned(),
        note: step.note,
        occurred_at: now,
    }
}

/// A reopened ticket is new work: its clocks start again from now, in a new cycle (the
/// escalation ladder starts over).
fn restart_clocks(t: &mut ticket::Model, policy: &propdesk_domain::Policy, now: DateTime<Utc>) -> ApiResult<()> {
    let priority: Priority = t.parse_code(&t.priority)?;
    let kind: TicketKind = t.parse_code(&t.kind)?;
    t.set_clocks(policy.deadlines(priority, kind, &t.property_id, now));
    t.clock_cycle += 1;
    t.callback_by = None;
    t.accepted_at = None;
    t.on_site_at = None;
    t.resolved_at = None;
    t.closed_at = None;
    Ok(())
}

#[tonic::async_trait]
impl TicketService for TicketApi {
    async fn create_ticket(&self, request: Request<pb::CreateTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        Ok(Response::new(self.create(&actor, body).await?))
    }

    async fn get_ticket(&self, request: Request<pb::GetTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let mut violations = Violations::new();
        let id = violations.required_id("ticket_id", &request.get_ref().ticket_id);
        violations.into_result().map_err(ApiError::from)?;
        let ticket = self.load(&actor, &id.unwrap_or_default()).await?;
        let mut tickets = self.with_follow_ups(vec![ticket_to_wire(&ticket, &actor)]).await?;
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
        let mut states = Vec::new();
        for (index, state) in body.states.iter().enumerate() {
            if let Some(state) = required_enum::<TicketState>(&mut v, &format!("states[{index}]"), *state) {
                states.push(state.code().to_owned());
            }
        }
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
        let before_id = parse_page_token(&mut v, &body.page_token);
        v.into_result().map_err(ApiError::from)?;

        let property_ids = match property_id {
            Some(id) => {
                actor.authorize(&id, Operation::ReadTickets, false).map_err(ApiError::from)?;
                Some(vec![id])
            }
            None if actor.role == propdesk_domain::Role::Admin => None,
            None => Some(actor.properties.clone()),
        };
        let filter = TicketFilter {
            property_ids,
            states,
            department: department.map(|d| d.code().to_owned()),
            assignee_id,
            priority: priority.map(|p| p.code().to_owned()),
            kind: kind.map(|k| k.code().to_owned()),
            overdue_at: body.overdue_only.then(propdesk_store::now),
            created_after,
            created_before,
            before_id,
            // One extra row tells whether another page follows.
            limit: limit + 1,
        };
        let mut rows = self.state.store.list_tickets(&filter).await.map_err(ApiError::from)?;
        let next_page_token = cut_page(&mut rows, limit, |t| &t.id);
        let tickets = self.with_follow_ups(rows.iter().map(|t| ticket_to_wire(t, &actor)).collect()).await?;
        Ok(Response::new(pb::ListTicketsResponse { tickets, next_page_token }))
    }

    async fn get_ticket_history(
        &self,
        request: Request<pb::GetTicketHistoryRequest>,
    ) -> Result<Response<pb::GetTicketHistoryResponse>, Status> {
        let actor = actor(&request)?;
        let mut violations = Violations::new();
        let id = violations.required_id("ticket_id", &request.get_ref().ticket_id);
        violations.into_result().map_err(ApiError::from)?;
        let ticket = self.load(&actor, &id.unwrap_or_default()).await?;
        let events = self.state.store.history(&ticket.id).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::GetTicketHistoryResponse { events: events.iter().map(event_to_wire).collect() }))
    }

    async fn assign_ticket(&self, request: Request<pb::AssignTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::new();
        let department = required_enum::<Department>(&mut violations, "department", body.department);
        let assignee_id = violations.optional_id("assignee_id", &body.assignee_id);
        // The assignee must be staff of that department at the ticket's property.
        let assignee = match &assignee_id {
            Some(id) => self.state.store.find::<staff::Entity>(id).await.map_err(ApiError::from)?,
            None => None,
        };
        if assignee_id.is_some() && assignee.is_none() {
            violations.add("assignee_id", "no such staff member");
        }
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, &body.note, false);
        let note = body.note.clone();
        let ticket = self
            .change(&actor, change, violations, Operation::Move(Move::Dispatch), move |t, now| {
                let department = department.unwrap_or(Department::CustomerService);
                if let Some(staff) = &assignee {
                    if staff.property_id != t.property_id {
                        return Err(ApiError::field("assignee_id", "works at another property"));
                    }
                    if staff.department.as_deref() != Some(department.code()) {
                        return Err(ApiError::field("assignee_id", format!("is not in the {department} department")));
                    }
                }
                let step = apply_move(t, Move::Dispatch, EventType::Dispatched, &note)?;
                t.department = Some(department.code().to_owned());
                t.assignee_id = assignee.as_ref().map(|s| s.id.clone());
                t.dispatched_at = Some(now);
                Ok(vec![step])
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn accept_ticket(&self, request: Request<pb::TicketActionRequest>) -> Result<Response<pb::Ticket>, Status> {
        self.simple_move(request, Move::Accept, EventType::Accepted, false).await
    }

    async fn arrive_on_site(&self, request: Request<pb::TicketActionRequest>) -> Result<Response<pb::Ticket>, Status> {
        self.simple_move(request, Move::ArriveOnSite, EventType::ArrivedOnSite, false).await
    }

    async fn put_on_hold(&self, request: Request<pb::TicketActionRequest>) -> Result<Response<pb::Ticket>, Status> {
        self.simple_move(request, Move::PutOnHold, EventType::PutOnHold, true).await
    }

    async fn resume_ticket(&self, request: Request<pb::TicketActionRequest>) -> Result<Response<pb::Ticket>, Status> {
        self.simple_move(request, Move::Resume, EventType::Resumed, false).await
    }

    async fn resolve_ticket(&self, request: Request<pb::TicketActionRequest>) -> Result<Response<pb::Ticket>, Status> {
        self.simple_move(request, Move::Resolve, EventType::Resolved, false).await
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
        let note = body.note.clone();
        let ticket = self
            .change(&actor, change, violations, Operation::Move(Move::Transfer), move |t, _now| {
                let to_department = to_department.unwrap_or(Department::CustomerService);
                if t.department.as_deref() == Some(to_department.code()) {
                    return Err(ApiError::field("to_department", "is already the ticket's department"));
                }
                let step = apply_move(t, Move::Transfer, EventType::Transferred, &note)?;
                // The receiving department assigns its own person.
                t.department = Some(to_department.code().to_owned());
                t.assignee_id = None;
                Ok(vec![step])
            })
            .await?;
        Ok(Response::new(ticket))
    }

    async fn cancel_ticket(&self, request: Request<pb::TicketActionRequest>) -> Result<Response<pb::Ticket>, Status> {
        self.simple_move(request, Move::Cancel, EventType::Cancelled, true).await
    }

    async fn close_ticket(&self, request: Request<pb::TicketActionRequest>) -> Result<Response<pb::Ticket>, Status> {
        self.simple_move(request, Move::Close, EventType::Closed, true).await
    }

    async fn reopen_ticket(&self, request: Request<pb::TicketActionRequest>) -> Result<Response<pb::Ticket>, Status> {
        self.simple_move(request, Move::Reopen, EventType::Reopened, true).await
    }

    async fn add_note(&self, request: Request<pb::TicketActionRequest>) -> Result<Response<pb::Ticket>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, &body.note, true);
        let note = body.note.clone();
        let ticket = self
            .change(&actor, change, Violations::new(), Operation::AddNote, move |t, _now| {
                let state = lifecycle_of(t)?.state;
                Ok(vec![Step { event_type: EventType::NoteAdded, from: state, to: state, note }])
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
        let change = ChangeRequest::new(&body.ticket_id, body.expected_version, "", false);
        let policy = &self.state.policy;
        let staff_id = actor.staff_id.clone();
        let comment = body.comment.clone();
        let mv = Move::RecordCallback { requires_rework };
        let ticket = self
            .change(&actor, change, violations, Operation::Move(mv), move |t, now| {
                let satisfaction = satisfaction.unwrap_or(Satisfaction::Neutral);
                let from = lifecycle_of(t)?.state;
                let outcome = apply_move(t, mv, EventType::Closed, "")?;
                t.callback_satisfaction = Some(satisfaction.code().to_owned());
                t.callback_comment = Some(comment.clone());
                t.callback_recorded_by = Some(staff_id);
                t.callback_recorded_at = Some(now);
                let recorded = Step {
                    event_type: EventType::CallbackRecorded,
                    from,
                    to: from,
                    note: format!("{}: {comment}", satisfaction.code()),
                };
                let outcome = if requires_rework {
                    restart_clocks(t, policy, now)?;
                    Step {
                        event_type: EventType::Reopened,
                        note: "unsatisfied callback: sent back for rework".into(),
                        ..outcome
                    }
                } else {
                    t.closed_at = Some(now);
                    outcome
                };
                Ok(vec![recorded, outcome])
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
            completes_follow_up: follow_up_id,
            ..ChangeRequest::new(&body.ticket_id, body.expected_version, &body.note, true)
        };
        let note = body.note.clone();
        let ticket = self
            .change(&actor, change, violations, Operation::AddNote, move |t, _now| {
                let state = lifecycle_of(t)?.state;
                Ok(vec![Step { event_type: EventType::FollowUp, from: state, to: state, note }])
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
    async fn create(&self, actor: &Actor, body: pb::CreateTicketRequest) -> ApiResult<pb::Ticket> {
        let policy = &self.state.policy;
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
        let now = propdesk_store::now();
        let promised_reply_at = from_timestamp(&mut v, "promised_reply_at", body.promised_reply_at.as_ref());
        if promised_reply_at.is_some_and(|at| at <= now) {
            v.add("promised_reply_at", "must be in the future");
        }
        v.into_result()?;
        let (Some(property_id), Some(kind), Some(channel), Some(category)) = (property_id, kind, channel, category)
        else {
            return Err(ApiError::Internal("validated fields missing".into()));
        };

        actor.authorize(&property_id, Operation::CreateTicket, false)?;
        let store = &self.state.store;
        let mut v = Violations::new();
        let places = &self.state.places;
        let found_unit = match &unit_id {
            Some(id) => places.unit(store, id).await?,
            None => None,
        };
        // A unit of the property vouches for it (units are only added to existing
        // properties, and properties are never deleted).
        let vouched = found_unit.as_ref().is_some_and(|unit| unit.property_id == property_id);
        if !vouched && !places.property_exists(store, &property_id).await? {
            v.add("property_id", "no such property");
        }
        let unit = match (&unit_id, found_unit) {
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
        let resident = match &resident_id {
            Some(id) => match store.find::<resident::Entity>(id).await? {
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

        let text = format!("{}\n{}", body.title, body.description);
        let decided = policy.urgency.decide(category.default_priority, requested_priority, &text);
        let deadlines = policy.deadlines(decided.priority, kind, &property_id, now);
        let title = if body.title.trim().is_empty() {
            body.description.lines().next().unwrap_or_default().chars().take(MAX_TITLE).collect()
        } else {
            body.title.clone()
        };
        let fingerprint = hex(&Sha256::digest(body.encode_to_vec()));
        let mut ticket = ticket::Model {
            building_id: unit.as_ref().map(|u| u.building_id.clone()),
            unit_id: unit.as_ref().map(|u| u.unit_id.clone()),
            unit_label: unit.as_ref().map(|u| u.label.clone()),
            location: body.location.clone(),
            resident_id: resident.as_ref().map(|r| r.id.clone()),
            reporter_name: if body.reporter_name.is_empty() {
                resident.as_ref().map(|r| r.name.clone()).unwrap_or_default()
            } else {
                body.reporter_name.clone()
            },
            reporter_phone: if body.reporter_phone.is_empty() {
                resident.as_ref().map(|r| r.phone.clone()).unwrap_or_default()
            } else {
                body.reporter_phone.clone()
            },
            kind: kind.code().to_owned(),
            channel: channel.code().to_owned(),
            category: category.code.clone(),
            priority: decided.priority.code().to_owned(),
            title,
            description: body.description.clone(),
            first_contact_agent_id: actor.staff_id.clone(),
            request_id: body.request_id.clone(),
            request_fingerprint: fingerprint.clone(),
            promised_reply_at,
            ..ticket::Model::blank(new_id(), property_id, now)
        };
        ticket.set_clocks(deadlines);
        let event = |event_type: EventType, from: Option<TicketState>, to: TicketState, note: String| NewEvent {
            event_id: new_id(),
            event_type: event_type.code().to_owned(),
            actor_id: actor.staff_id.clone(),
            actor_role: Some(actor.role.code().to_owned()),
            from_state: from.map(|s| s.code().to_owned()),
            to_state: to.code().to_owned(),
            note,
            occurred_at: now,
        };
        let created_note = match &decided.raised_by_keyword {
            Some(keyword) => format!("priority {} (urgent keyword \"{keyword}\")", decided.priority),
            None => format!("priority {}", decided.priority),
        };
        let mut events = vec![event(EventType::Created, None, TicketState::New, created_note)];
        if answered {
            ticket.state = TicketState::Resolved.code().to_owned();
            ticket.department = Some(Department::CustomerService.code().to_owned());
            ticket.resolved_at = Some(now);
            ticket.callback_by = Some(policy.sla.callback_by(now));
            events.push(event(
                EventType::Resolved,
                Some(TicketState::New),
                TicketState::Resolved,
                body.answer_on_the_spot.clone(),
            ));
        }
        // Written by the group-commit writers, outside this task: the outbox messages carry
        // this call's trace explicitly.
        let trace_parent = propdesk_trace::TraceParent::current().map(|trace| trace.to_string());
        match self.state.creates.create(NewTicket { ticket, events, trace_parent }).await? {
            Created::New(ticket) => {
                tracing::info!(ticket_id = %ticket.id, priority = %ticket.priority, category = %ticket.category, "ticket created");
                Ok(ticket_to_wire(&ticket, actor))
            }
            Created::Existing(existing) if existing.request_fingerprint == fingerprint => {
                Ok(ticket_to_wire(&existing, actor))
            }
            Created::Existing(_) => Err(ApiError::field("request_id", "was already used for a different request")),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
