//! The access record of residents' personal data (AuditService): every response that shows
//! a name or phone unmasked records, per ticket or resident shown, who saw it, in which
//! call, and when; so does every write of a resident's record. Records of concurrent
//! requests share one insert (a writer takes everything waiting), and each request waits
//! for its records to be written before it answers: no unmasked response goes out
//! unrecorded.

use std::sync::Arc;

use propdesk_domain::privacy::may_see_contact_details;
use propdesk_domain::{Actor, Operation, Role};
use propdesk_proto::v1 as pb;
use propdesk_proto::v1::audit_service_server::AuditService;
use propdesk_store::entity::access_record;
use propdesk_store::{AccessFilter, Store, StoreError};
use tokio::sync::{Mutex, mpsc, oneshot};
use tonic::{Request, Response, Status};

use crate::IntakeState;
use crate::auth::actor;
use crate::convert::{WireEnum, timestamp};
use crate::error::{ApiError, ApiResult};
use crate::paging;
use propdesk_domain::Violations;

tokio::task_local! {
    /// The gRPC method being served (set by the auth layer around each call).
    static METHOD: String;
}

/// Runs `call` with `method` as the call its access records name.
pub async fn in_call<F: std::future::Future>(method: String, call: F) -> F::Output {
    METHOD.scope(method, call).await
}

fn current_method() -> String {
    METHOD.try_with(Clone::clone).unwrap_or_else(|_| "unknown".to_owned())
}

/// Records written in one statement at most.
const MAX_BATCH: usize = 1_000;
const WRITER: &str = "access record writer";

struct Pending {
    records: Vec<access_record::Model>,
    /// The insert's outcome (its error's text: one failure answers every request of it).
    reply: oneshot::Sender<Result<(), String>>,
}

/// The writer of access records.
pub struct AccessLog {
    queue: mpsc::Sender<Pending>,
}

impl AccessLog {
    pub fn start(store: Store) -> AccessLog {
        let (queue, waiting) = mpsc::channel(4_096);
        tokio::spawn(write_batches(store, Arc::new(Mutex::new(waiting))));
        AccessLog { queue }
    }

    async fn write(&self, records: Vec<access_record::Model>) -> ApiResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let (reply, written) = oneshot::channel();
        self.queue.send(Pending { records, reply }).await.map_err(|_| StoreError::Stopped(WRITER))?;
        // Unrecorded, the response must not go out: the caller answers INTERNAL instead.
        written
            .await
            .map_err(|_| StoreError::Stopped(WRITER))?
            .map_err(|detail| ApiError::Internal(format!("writing access records: {detail}")))
    }

    /// Records the tickets of a response that `actor` sees with contact details unmasked.
    pub async fn tickets_shown(&self, actor: &Actor, tickets: &[pb::Ticket]) -> ApiResult<()> {
        let method = current_method();
        let records = tickets
            .iter()
            .filter(|t| may_see_contact_details(actor.role, t.assignee_id == actor.staff_id) && has_contact(t))
            .map(|t| record(actor, &method, &t.property_id, Some(&t.id), Some(&t.resident_id), Action::Read))
            .collect();
        self.write(records).await
    }

    /// Records residents shown unmasked, or a resident's record written.
    pub async fn residents(&self, actor: &Actor, residents: &[pb::Resident], action: Action) -> ApiResult<()> {
        let method = current_method();
        let records = residents
            .iter()
            .filter(|r| {
                action != Action::Read
                    || (may_see_contact_details(actor.role, false) && !(r.name.is_empty() && r.phone.is_empty()))
            })
            .map(|r| record(actor, &method, &r.property_id, None, Some(&r.id), action))
            .collect();
        self.write(records).await
    }
}

async fn write_batches(store: Store, waiting: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    loop {
        let batch = {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else { return };
            let mut count = first.records.len();
            let mut batch = vec![first];
            while count < MAX_BATCH {
                match waiting.try_recv() {
                    Ok(next) => {
                        count += next.records.len();
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        let records: Vec<access_record::Model> = batch.iter().flat_map(|p| p.records.iter().cloned()).collect();
        let outcome = store.insert_access_records(records).await.map_err(|err| err.to_string());
        for pending in batch {
            let _ = pending.reply.send(outcome.clone());
        }
    }
}

/// Whether a ticket carries personal data a viewer could read: the reporter's, or a case
/// party's contact.
fn has_contact(t: &pb::Ticket) -> bool {
    !t.reporter_name.is_empty()
        || !t.reporter_phone.is_empty()
        || t.case.as_ref().is_some_and(|c| c.parties.iter().any(|p| !p.resident_id.is_empty() && !p.contact.is_empty()))
}

/// What a record says was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Create,
    Update,
    Erase,
    Export,
}

impl Action {
    fn code(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "update",
            Action::Erase => "erase",
            Action::Export => "export",
        }
    }

    fn to_wire(code: &str) -> pb::AccessAction {
        match code {
            "read" => pb::AccessAction::Read,
            "create" => pb::AccessAction::Create,
            "update" => pb::AccessAction::Update,
            "erase" => pb::AccessAction::Erase,
            "export" => pb::AccessAction::Export,
            _ => pb::AccessAction::Unspecified,
        }
    }
}

fn record(
    actor: &Actor,
    method: &str,
    property_id: &str,
    ticket_id: Option<&str>,
    resident_id: Option<&str>,
    action: Action,
) -> access_record::Model {
    let filled = |id: Option<&str>| id.filter(|id| !id.is_empty()).map(str::to_owned);
    access_record::Model {
        id: uuid::Uuid::now_v7().to_string(),
        staff_id: actor.staff_id.clone(),
        role: actor.role.code().to_owned(),
        rpc: method.to_owned(),
        property_id: property_id.to_owned(),
        ticket_id: filled(ticket_id),
        resident_id: filled(resident_id),
        action: action.code().to_owned(),
        at: propdesk_store::now(),
    }
}

pub struct AuditApi {
    state: Arc<IntakeState>,
}

impl AuditApi {
    pub fn new(state: Arc<IntakeState>) -> AuditApi {
        AuditApi { state }
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_access_records(
        &self,
        request: Request<pb::ListAccessRecordsRequest>,
    ) -> Result<Response<pb::ListAccessRecordsResponse>, Status> {
        let actor = actor(&request)?;
        actor.authorize_role(Operation::ReadAccessRecords, false).map_err(ApiError::from)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let staff_id = Some(body.staff_id.clone()).filter(|s| !s.is_empty());
        let resident_id = v.optional_id("resident_id", &body.resident_id);
        let ticket_id = v.optional_id("ticket_id", &body.ticket_id);
        let limit = v.page_size("page_size", body.page_size);
        let before_id = paging::parse_id(&mut v, &body.page_token);
        v.into_result().map_err(ApiError::from)?;
        let filter = AccessFilter { staff_id, resident_id, ticket_id, property_ids: None, before_id, limit: limit + 1 };
        let mut rows = self.state.store.list_access_records(&filter).await.map_err(ApiError::from)?;
        let next_page_token = paging::cut_by_id(&mut rows, limit, |r| &r.id);
        let records = rows
            .iter()
            .map(|r| pb::AccessRecord {
                id: r.id.clone(),
                staff_id: r.staff_id.clone(),
                role: r.role.parse::<Role>().map_or(0, |role| role.to_wire()),
                rpc: r.rpc.clone(),
                property_id: r.property_id.clone(),
                ticket_id: r.ticket_id.clone().unwrap_or_default(),
                resident_id: r.resident_id.clone().unwrap_or_default(),
                action: Action::to_wire(&r.action) as i32,
                at: Some(timestamp(r.at)),
            })
            .collect();
        Ok(Response::new(pb::ListAccessRecordsResponse { records, next_page_token }))
    }
}
