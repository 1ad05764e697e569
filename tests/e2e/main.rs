//! End-to-end tests: the real `propdesk` binary, real databases, the generated client.
//! Every scenario runs on SQLite and on PostgreSQL.

mod helpers;

mod access;
mod attachments;
mod broker_loss;
mod browser;
mod cases;
mod desk;
mod dev_mode;
mod dispatching;
mod invalid_input;
mod lifecycle;
mod metrics;
mod notifier;
mod operations;
mod privacy;
mod replies;
mod reports;
mod resilience;
mod sign_in;
mod tls;
mod watch;

pub use propdesk_testkit::on_both_backends;
