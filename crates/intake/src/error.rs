//! The one mapping from failures to gRPC statuses. Every service fails the same way: a
//! status code, an English message, and a `google.rpc.ErrorInfo` whose stable reason (an
//! `ErrorReason` name of common.proto) front ends branch on; field errors add
//! `BadRequest`, refused preconditions add `PreconditionFailure`.

use std::collections::HashMap;

use propdesk_domain::{Denied, RuleViolation, TransitionError, Violations};
use propdesk_proto::v1 as pb;
use propdesk_proto::v1::ErrorReason;
use propdesk_store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::convert::WireEnum;

/// The ErrorInfo domain of every propdesk error.
pub const ERROR_DOMAIN: &str = "propdesk.v1";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input: every field violation found, under one reason.
    #[error("invalid request")]
    Invalid { reason: ErrorReason, violations: Violations },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("the ticket changed meanwhile: expected version {expected}, current version {current}")]
    Stale { expected: i64, current: i64 },
    /// A rule other than the state machine forbids the change now; `subject` names the
    /// field or resource concerned.
    #[error("{message}")]
    Precondition {
        reason: ErrorReason,
        subject: &'static str,
        message: String,
        /// ErrorInfo metadata beside the reason.
        metadata: Vec<(&'static str, String)>,
    },
    /// A unique name is taken.
    #[error("a record with the same unique name already exists")]
    AlreadyExists,
    #[error("{message}")]
    Unauthenticated { reason: ErrorReason, message: &'static str },
    /// The caller is who they say but may not act at all (no staff record, deactivated).
    #[error("{message}")]
    Forbidden { reason: ErrorReason, message: String },
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A dependency the call needs (file storage) cannot be reached now; nothing was kept.
    #[error("{message}")]
    Unavailable { reason: ErrorReason, message: String },
    /// The caller goes faster than its limit; they may try again after `retry_after`.
    #[error("{message}")]
    RateLimited { reason: ErrorReason, message: String, retry_after: std::time::Duration },
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// One violation of one field.
    pub fn field(field: &str, description: impl Into<String>) -> ApiError {
        ApiError::field_as(ErrorReason::InvalidField, field, description)
    }

    /// One violation of one field, under a reason of its own.
    pub fn field_as(reason: ErrorReason, field: &str, description: impl Into<String>) -> ApiError {
        let mut violations = Violations::new();
        violations.add(field, description);
        ApiError::Invalid { reason, violations }
    }

    pub fn precondition(reason: ErrorReason, subject: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Precondition { reason, subject, message: message.into(), metadata: Vec::new() }
    }

    /// The stable reason front ends branch on.
    pub fn reason(&self) -> ErrorReason {
        match self {
            ApiError::Invalid { reason, .. }
            | ApiError::Precondition { reason, .. }
            | ApiError::Unauthenticated { reason, .. }
            | ApiError::Forbidden { reason, .. }
            | ApiError::Unavailable { reason, .. }
            | ApiError::RateLimited { reason, .. } => *reason,
            ApiError::NotFound(_) => ErrorReason::ResourceNotFound,
            ApiError::Denied(Denied::OutsideProperties(_)) => ErrorReason::PropertyNotServed,
            ApiError::Denied(Denied::Role { .. }) => ErrorReason::RoleNotAllowed,
            ApiError::Transition(_) => ErrorReason::TransitionNotAllowed,
            ApiError::Stale { .. } => ErrorReason::StaleVersion,
            ApiError::AlreadyExists => ErrorReason::AlreadyExists,
            ApiError::ShuttingDown => ErrorReason::ShuttingDown,
            ApiError::Internal(_) => ErrorReason::InternalError,
        }
    }
}

impl From<Violations> for ApiError {
    fn from(violations: Violations) -> Self {
        ApiError::Invalid { reason: ErrorReason::InvalidField, violations }
    }
}

impl From<RuleViolation> for ApiError {
    fn from(err: RuleViolation) -> Self {
        match err {
            RuleViolation::Transition(refused) => ApiError::Transition(refused),
            RuleViolation::SameDepartment(_) => {
                ApiError::field_as(ErrorReason::SameDepartment, "to_department", err.to_string())
            }
            RuleViolation::OnlyEnquiriesAnsweredOnTheSpot => {
                ApiError::field_as(ErrorReason::OnlyEnquiriesAnsweredOnTheSpot, "answer_on_the_spot", err.to_string())
            }
            RuleViolation::IncidentCannotBeLinked => {
                ApiError::precondition(ErrorReason::IncidentCannotBeLinked, "ticket", err.to_string())
            }
            RuleViolation::LocationRequired => ApiError::field("ticket.location", err.to_string()),
            RuleViolation::NotAnIncident(_) => {
                ApiError::precondition(ErrorReason::NotAnIncident, "incident_id", err.to_string())
            }
            RuleViolation::IncidentOfAnotherProperty => {
                ApiError::field_as(ErrorReason::OfAnotherProperty, "incident_id", err.to_string())
            }
            RuleViolation::OriginalOfAnotherProperty => {
                ApiError::field_as(ErrorReason::OfAnotherProperty, "of_ticket_id", err.to_string())
            }
            RuleViolation::DuplicateOfItself => {
                ApiError::field_as(ErrorReason::DuplicateOfItself, "of_ticket_id", err.to_string())
            }
            RuleViolation::OriginalIsDuplicate(ref original_id) => ApiError::Precondition {
                reason: ErrorReason::OriginalIsDuplicate,
                subject: "of_ticket_id",
                metadata: vec![("duplicate_of_id", original_id.clone())],
                message: err.to_string(),
            },
            RuleViolation::IncidentNotDuplicate => {
                ApiError::precondition(ErrorReason::IncidentNotDuplicate, "ticket", err.to_string())
            }
            RuleViolation::OriginalFinished(state) => ApiError::Precondition {
                reason: ErrorReason::OriginalFinished,
                subject: "of_ticket_id",
                message: err.to_string(),
                metadata: vec![("state", wire_name(state, pb::TicketState::as_str_name))],
            },
            RuleViolation::HasDuplicates => {
                ApiError::precondition(ErrorReason::HasDuplicates, "ticket", err.to_string())
            }
            RuleViolation::PromiseMovedWithoutReason => ApiError::field("reason", err.to_string()),
            RuleViolation::Case(ref refused) => ApiError::field(refused.field(), err.to_string()),
            RuleViolation::NoCase => ApiError::precondition(ErrorReason::NoCase, "ticket", err.to_string()),
            RuleViolation::UnknownCause { field, .. } => ApiError::field(field, err.to_string()),
            RuleViolation::NoOpenReview => ApiError::precondition(ErrorReason::NoOpenReview, "ticket", err.to_string()),
            RuleViolation::DelayCauseRequired => ApiError::field("delay_cause", err.to_string()),
            RuleViolation::TooManyAttachments { max } => ApiError::Precondition {
                reason: ErrorReason::TooManyAttachments,
                subject: "ticket",
                message: err.to_string(),
                metadata: vec![("max", max.to_string())],
            },
            RuleViolation::NoContact(method) => ApiError::Precondition {
                reason: ErrorReason::NoContact,
                subject: "method",
                message: err.to_string(),
                metadata: vec![("method", wire_name(method, pb::ReplyMethod::as_str_name))],
            },
            RuleViolation::CallbackNotDue(state) => ApiError::Precondition {
                reason: ErrorReason::CallbackNotDue,
                subject: "ticket",
                message: err.to_string(),
                metadata: vec![("original_state", wire_name(state, pb::TicketState::as_str_name))],
            },
            RuleViolation::AlreadyLinked(ref incident_id) => ApiError::Precondition {
                reason: ErrorReason::AlreadyLinked,
                subject: "ticket",
                metadata: vec![("incident_id", incident_id.clone())],
                message: err.to_string(),
            },
            RuleViolation::NotLinked => ApiError::precondition(ErrorReason::NotLinked, "ticket", err.to_string()),
            RuleViolation::NotHigherLevel { current } => ApiError::Precondition {
                reason: ErrorReason::EscalationNotHigher,
                subject: "level",
                message: err.to_string(),
                metadata: vec![("current_level", current.to_string())],
            },
            RuleViolation::Finished(state) => ApiError::Precondition {
                reason: ErrorReason::TicketFinished,
                subject: "ticket",
                message: err.to_string(),
                metadata: vec![("state", wire_name(state, pb::TicketState::as_str_name))],
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict(detail) => {
                // The database's words name tables and values: logged, not sent.
                tracing::debug!(%detail, "unique constraint refused a write");
                ApiError::AlreadyExists
            }
            // Callers that know the expected version replace this with `Stale`.
            StoreError::StaleVersion { current } => ApiError::Stale { expected: -1, current },
            StoreError::FollowUpNotOpen => ApiError::field_as(
                ErrorReason::FollowUpNotOpen,
                "follow_up_id",
                "is not an open reply follow-up of this ticket",
            ),
            StoreError::Stopped(_) => ApiError::ShuttingDown,
            err
            @ (StoreError::Db(_) | StoreError::Unreadable(_) | StoreError::Vanished(_) | StoreError::Sealing(_)) => {
                ApiError::Internal(err.to_string())
            }
        }
    }
}

/// The wire name of a domain enum value, as front ends know it (e.g. "TICKET_STATE_NEW").
fn wire_name<T: WireEnum, P: TryFrom<i32>>(value: T, name: fn(&P) -> &'static str) -> String {
    P::try_from(value.to_wire()).map(|known| name(&known).to_owned()).unwrap_or_default()
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Status {
        let reason = err.reason();
        let mut metadata = HashMap::new();
        let mut details = ErrorDetails::new();
        let (code, message) = match err {
            ApiError::Invalid { violations, .. } => {
                let summary = violations
                    .0
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                let fields: Vec<&str> = violations.0.iter().map(|v| v.field.as_str()).collect();
                metadata.insert("fields".to_owned(), fields.join(","));
                for violation in violations.0 {
                    details.add_bad_request_violation(violation.field, violation.description);
                }
                (Code::InvalidArgument, summary)
            }
            ApiError::NotFound(what) => {
                metadata.insert("resource".to_owned(), what.to_owned());
                (Code::NotFound, format!("{what} not found"))
            }
            ApiError::Denied(denied) => {
                match &denied {
                    Denied::OutsideProperties(property_id) => {
                        metadata.insert("property_id".to_owned(), property_id.clone());
                    }
                    Denied::Role { role, what } => {
                        metadata.insert("role".to_owned(), wire_name(*role, pb::StaffRole::as_str_name));
                        metadata.insert("action".to_owned(), (*what).to_owned());
                    }
                }
                (Code::PermissionDenied, denied.to_string())
            }
            ApiError::Transition(refused) => {
                metadata.insert("from_state".to_owned(), wire_name(refused.from, pb::TicketState::as_str_name));
                if let Some(to) = refused.to {
                    metadata.insert("to_state".to_owned(), wire_name(to, pb::TicketState::as_str_name));
                }
                details.add_precondition_failure_violation(reason.as_str_name(), "ticket", refused.to_string());
                (Code::FailedPrecondition, refused.to_string())
            }
            err @ ApiError::Stale { expected, current } => {
                metadata.insert("expected_version".to_owned(), expected.to_string());
                metadata.insert("current_version".to_owned(), current.to_string());
                (Code::Aborted, err.to_string())
            }
            ApiError::Precondition { subject, message, metadata: facts, .. } => {
                metadata.extend(facts.into_iter().map(|(key, value)| (key.to_owned(), value)));
                details.add_precondition_failure_violation(reason.as_str_name(), subject, message.clone());
                (Code::FailedPrecondition, message)
            }
            err @ ApiError::AlreadyExists => (Code::AlreadyExists, err.to_string()),
            ApiError::Unauthenticated { message, .. } => (Code::Unauthenticated, message.to_owned()),
            ApiError::Forbidden { message, .. } => (Code::PermissionDenied, message),
            err @ ApiError::ShuttingDown => (Code::Unavailable, err.to_string()),
            ApiError::Unavailable { message, .. } => (Code::Unavailable, message),
            ApiError::RateLimited { message, retry_after, .. } => {
                details.set_retry_info(Some(retry_after));
                (Code::ResourceExhausted, message)
            }
            ApiError::Internal(detail) => {
                // The detail may name tables and values: log it, do not send it.
                tracing::error!(error = %detail, "internal error");
                (Code::Internal, "internal error".to_owned())
            }
        };
        details.set_error_info(reason.as_str_name(), ERROR_DOMAIN, metadata);
        Status::with_error_details(code, message, details)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A status the gRPC layer raised before any handler ran (a message over the size limit,
/// an unknown method, an unreadable body) with the ErrorInfo every propdesk status
/// carries; `None` when it already carries details.
pub fn with_error_info(status: &Status) -> Option<Status> {
    if !status.details().is_empty() || status.code() == Code::Ok {
        return None;
    }
    let reason = match status.code() {
        Code::OutOfRange | Code::ResourceExhausted => ErrorReason::RequestTooLarge,
        Code::Unimplemented => ErrorReason::MethodNotFound,
        _ => ErrorReason::ProtocolError,
    };
    let mut details = ErrorDetails::new();
    details.set_error_info(reason.as_str_name(), ERROR_DOMAIN, HashMap::new());
    Some(Status::with_error_details(status.code(), status.message(), details))
}

#[cfg(test)]
mod tests {
    use super::*;
    use propdesk_domain::{Role, TicketState};

    fn info(status: &Status) -> (String, HashMap<String, String>) {
        let info = status.get_details_error_info().expect("every status carries ErrorInfo");
        assert_eq!(info.domain, ERROR_DOMAIN);
        (info.reason, info.metadata)
    }

    #[test]
    fn every_error_carries_its_reason_and_metadata() {
        let stale = Status::from(ApiError::Stale { expected: 3, current: 5 });
        assert_eq!(stale.code(), Code::Aborted);
        let (reason, metadata) = info(&stale);
        assert_eq!(reason, "STALE_VERSION");
        assert_eq!(metadata["current_version"], "5");
        assert_eq!(metadata["expected_version"], "3");

        let refused = TransitionError { from: TicketState::New, to: Some(TicketState::Accepted), verb: "accepted" };
        let status = Status::from(ApiError::from(refused));
        assert_eq!(status.code(), Code::FailedPrecondition);
        let (reason, metadata) = info(&status);
        assert_eq!(reason, "TRANSITION_NOT_ALLOWED");
        assert_eq!(metadata["from_state"], "TICKET_STATE_NEW");
        assert_eq!(metadata["to_state"], "TICKET_STATE_ACCEPTED");
        let failure = status.get_details_precondition_failure().expect("precondition failure");
        assert_eq!(failure.violations[0].r#type, "TRANSITION_NOT_ALLOWED");

        let denied = Status::from(ApiError::from(Denied::Role { role: Role::Agent, what: "dispatch tickets" }));
        let (reason, metadata) = info(&denied);
        assert_eq!((reason.as_str(), metadata["role"].as_str()), ("ROLE_NOT_ALLOWED", "STAFF_ROLE_AGENT"));

        let mut violations = Violations::new();
        violations.add("title", "too long");
        violations.add("kind", "is required");
        let invalid = Status::from(ApiError::from(violations));
        assert_eq!(invalid.code(), Code::InvalidArgument);
        let (reason, metadata) = info(&invalid);
        assert_eq!((reason.as_str(), metadata["fields"].as_str()), ("INVALID_FIELD", "title,kind"));
        assert_eq!(invalid.get_details_bad_request().expect("bad request").field_violations.len(), 2);
    }

    #[test]
    fn statuses_from_the_grpc_layer_get_a_reason_too() {
        let too_large = Status::out_of_range("decoded message length too large");
        let enriched = with_error_info(&too_large).expect("details added");
        assert_eq!((enriched.code(), enriched.message()), (Code::OutOfRange, too_large.message()));
        assert_eq!(info(&enriched).0, "REQUEST_TOO_LARGE");
        assert_eq!(info(&with_error_info(&Status::unimplemented("")).unwrap()).0, "METHOD_NOT_FOUND");
        let ours = Status::from(ApiError::NotFound("ticket"));
        assert!(with_error_info(&ours).is_none(), "a handler's status is left as it is");
    }

    #[test]
    fn internal_details_stay_on_the_server() {
        let status = Status::from(ApiError::from(StoreError::Conflict("duplicate key (name)=(secret)".into())));
        assert_eq!(status.code(), Code::AlreadyExists);
        assert!(!status.message().contains("secret"));
        let status = Status::from(ApiError::Internal("table tickets: boom".into()));
        assert_eq!((status.code(), status.message()), (Code::Internal, "internal error"));
        assert_eq!(info(&status).0, "INTERNAL_ERROR");
    }
}
