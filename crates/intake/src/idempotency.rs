//! Idempotency keys: every Create call takes a client-generated `request_id`, so a retry
//! after a lost response returns what the first attempt created instead of a second record.

use propdesk_domain::{Actor, Violations};
use propdesk_proto::v1::ErrorReason;
use propdesk_store::directory::Writable;
use propdesk_store::{CreateKey, Inserted, Store};

use crate::error::{ApiError, ApiResult};

/// Request ids are client-chosen keys: UUIDs or similar, never free text.
pub fn check_request_id(violations: &mut Violations, request_id: &str) {
    if request_id.is_empty() {
        violations.add("request_id", "is required (a client-generated UUID, reused on retries)");
    } else if request_id.len() > 64 || !request_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        violations.add("request_id", "must be 1 to 64 characters of letters, digits, '-' and '_'");
    }
}

/// A digest of the whole request: the same key with other content is a different request.
pub fn fingerprint(request: &impl prost::Message) -> String {
    crate::convert::sha256_hex(&request.encode_to_vec())
}

/// The refusal of a key reused for a different request.
pub fn mismatch() -> ApiError {
    ApiError::field_as(ErrorReason::DuplicateRequestMismatch, "request_id", "was already used for a different request")
}

/// The key of a create request, taken before its fields are moved into the record.
pub fn key_of(actor: &Actor, request_id: &str, request: &impl prost::Message) -> CreateKey {
    CreateKey {
        caller_id: actor.staff_id.clone(),
        request_id: request_id.to_owned(),
        fingerprint: fingerprint(request),
    }
}

/// Inserts `record` once per key: a retry gets the first record back.
pub async fn insert_once<R: Writable>(store: &Store, key: CreateKey, record: R) -> ApiResult<R> {
    match store.insert_once(record, key).await? {
        Inserted::New(record) | Inserted::Existing(record) => Ok(record),
        Inserted::Mismatch => Err(mismatch()),
    }
}
