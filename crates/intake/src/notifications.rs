//! NotificationService: the deliveries the notifier made or is making, and replay.

use std::sync::Arc;

use propdesk_domain::follow_up::DeliveryState;
use propdesk_domain::{Actor, Operation, Role, Violations};
use propdesk_events::timestamp;
use propdesk_proto::v1 as pb;
use propdesk_proto::v1::ErrorReason;
use propdesk_proto::v1::notification_service_server::NotificationService;
use propdesk_store::deliveries::DeliveryFilter;
use propdesk_store::entity::notification;
use tonic::{Request, Response, Status};

use crate::IntakeState;
use crate::auth::actor;
use crate::error::{ApiError, ApiResult};
use crate::paging;

pub struct NotificationApi {
    state: Arc<IntakeState>,
}

impl NotificationApi {
    pub fn new(state: Arc<IntakeState>) -> Self {
        NotificationApi { state }
    }
}

fn state_to_wire(state: Option<DeliveryState>) -> pb::DeliveryState {
    match state {
        Some(DeliveryState::Pending) => pb::DeliveryState::Pending,
        Some(DeliveryState::Delivered) => pb::DeliveryState::Delivered,
        Some(DeliveryState::Dead) => pb::DeliveryState::Dead,
        None => pb::DeliveryState::Unspecified,
    }
}

fn delivery_to_wire(n: &notification::Model) -> pb::Delivery {
    pb::Delivery {
        id: n.id.clone(),
        ticket_id: n.ticket_id.clone().unwrap_or_default(),
        property_id: n.property_id.clone(),
        recipient_id: n.recipient_id.clone().unwrap_or_default(),
        recipient_role: n.recipient_role.clone(),
        subject: n.subject.clone(),
        sink: n.sink.clone(),
        target: n.target.clone(),
        state: state_to_wire(n.state()) as i32,
        attempts: n.attempts,
        next_attempt_at: (n.state() == Some(DeliveryState::Pending)).then(|| timestamp(n.next_attempt_at)),
        last_error: n.last_error.clone().unwrap_or_default(),
        created_at: Some(timestamp(n.created_at)),
        delivered_at: n.delivered_at.map(timestamp),
        body: n.body.clone(),
    }
}

/// The properties an actor may list deliveries of (`None`: all).
fn scope(actor: &Actor, property_id: Option<String>) -> ApiResult<Option<Vec<String>>> {
    match property_id {
        Some(id) => {
            actor.authorize(&id, Operation::ManageNotifications, false)?;
            Ok(Some(vec![id]))
        }
        None => {
            actor.authorize_role(Operation::ManageNotifications, false)?;
            Ok((actor.role != Role::Admin).then(|| actor.properties.clone()))
        }
    }
}

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let property_id = v.optional_id("property_id", &body.property_id);
        let ticket_id = v.optional_id("ticket_id", &body.ticket_id);
        let state = match pb::DeliveryState::try_from(body.state) {
            Ok(pb::DeliveryState::Unspecified) => None,
            Ok(pb::DeliveryState::Pending) => Some(DeliveryState::Pending),
            Ok(pb::DeliveryState::Delivered) => Some(DeliveryState::Delivered),
            Ok(pb::DeliveryState::Dead) => Some(DeliveryState::Dead),
            Err(_) => {
                v.add("state", format!("{} is not a known value", body.state));
                None
            }
        };
        let limit = v.page_size("page_size", body.page_size);
        let before_id = paging::parse_id(&mut v, &body.page_token);
        v.into_result().map_err(ApiError::from)?;
        let filter =
            DeliveryFilter { property_ids: scope(&actor, property_id)?, state, ticket_id, before_id, limit: limit + 1 };
        let mut rows = self.state.store.list_deliveries(&filter).await.map_err(ApiError::from)?;
        let next_page_token = paging::cut_by_id(&mut rows, limit, |n| &n.id);
        let deliveries = rows.iter().map(delivery_to_wire).collect();
        Ok(Response::new(pb::ListDeliveriesResponse { deliveries, next_page_token }))
    }

    async fn replay_delivery(
        &self,
        request: Request<pb::ReplayDeliveryRequest>,
    ) -> Result<Response<pb::Delivery>, Status> {
        let actor = actor(&request)?;
        let mut v = Violations::new();
        let id = v.required_id("delivery_id", &request.get_ref().delivery_id);
        v.into_result().map_err(ApiError::from)?;
        let id = id.unwrap_or_default();
        let store = &self.state.store;
        let delivery = store.get_delivery(&id).await.map_err(ApiError::from)?.ok_or(ApiError::NotFound("delivery"))?;
        actor.authorize(&delivery.property_id, Operation::ManageNotifications, false).map_err(ApiError::from)?;
        if delivery.state() == Some(DeliveryState::Pending) {
            return Err(ApiError::precondition(
                ErrorReason::DeliveryPending,
                "delivery_id",
                "the delivery is still pending; it will be attempted again",
            )
            .into());
        }
        let replayed = store.replay_delivery(&id, propdesk_store::now()).await.map_err(ApiError::from)?;
        tracing::info!(delivery_id = %id, by = %actor.staff_id, "delivery replayed");
        Ok(Response::new(delivery_to_wire(&replayed)))
    }
}
