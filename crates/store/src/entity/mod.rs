//! sea-orm entities, one per table. Enum-like columns hold the stable codes of
//! `propdesk_domain` (e.g. `state = "on_site"`); ids are UUID strings; times are UTC.

pub mod access_record;
pub mod alarm;
pub mod attachment;
pub mod building;
pub mod follow_up;
pub mod inbox;
pub mod notification;
pub mod outbox;
pub mod property;
pub mod request_key;
pub mod resident;
pub mod staff;
pub mod standard_reply;
pub mod standard_reply_version;
pub mod ticket;
pub mod ticket_event;
pub mod unit;
