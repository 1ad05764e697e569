//! The one mapping from failures to gRPC statuses. Every service fails the same way.

use propdesk_domain::{Denied, RuleViolation, TransitionError, Violations};
use propdesk_store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input: every field violation found.
    #[error("invalid request")]
    Invalid(Violations),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("the ticket changed meanwhile: expected version {expected}, current version {current}")]
    Stale { expected: i64, current: i64 },
    /// A rule other than the state machine forbids the change now.
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// One violation of one field.
    pub fn field(field: &str, description: impl Into<String>) -> ApiError {
        let mut violations = Violations::new();
        violations.add(field, description);
        ApiError::Invalid(violations)
    }
}

impl From<Violations> for ApiError {
    fn from(violations: Violations) -> Self {
        ApiError::Invalid(violations)
    }
}

impl From<RuleViolation> for ApiError {
    fn from(err: RuleViolation) -> Self {
        match err {
            RuleViolation::Transition(refused) => ApiError::Transition(refused),
            RuleViolation::SameDepartment(_) => ApiError::field("to_department", err.to_string()),
            RuleViolation::OnlyEnquiriesAnsweredOnTheSpot => ApiError::field("answer_on_the_spot", err.to_string()),
            RuleViolation::IncidentCannotBeLinked => ApiError::Precondition(err.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict(detail) => ApiError::AlreadyExists(detail),
            // Callers that know the expected version replace this with `Stale`.
            StoreError::StaleVersion { current } => ApiError::Stale { expected: -1, current },
            StoreError::FollowUpNotOpen => {
                ApiError::field("follow_up_id", "is not an open reply follow-up of this ticket")
            }
            err
            @ (StoreError::Db(_) | StoreError::Unreadable(_) | StoreError::Vanished(_) | StoreError::Stopped(_)) => {
                ApiError::Internal(err.to_string())
            }
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Status {
        match err {
            ApiError::Invalid(violations) => {
                let summary = violations
                    .0
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                let mut details = ErrorDetails::new();
                for violation in violations.0 {
                    details.add_bad_request_violation(violation.field, violation.description);
                }
                Status::with_error_details(Code::InvalidArgument, summary, details)
            }
            ApiError::NotFound(what) => Status::not_found(format!("{what} not found")),
            ApiError::Denied(denied) => Status::permission_denied(denied.to_string()),
            ApiError::Transition(refused) => Status::failed_precondition(refused.to_string()),
            err @ ApiError::Stale { .. } => Status::aborted(err.to_string()),
            ApiError::Precondition(message) => Status::failed_precondition(message),
            ApiError::AlreadyExists(message) => Status::already_exists(message),
            ApiError::Internal(detail) => {
                // The detail may name tables and values: log it, do not send it.
                tracing::error!(error = %detail, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
