//! End-to-end tests: the real `propdesk` binary, real databases, the generated client.
//! Every scenario runs on SQLite and on PostgreSQL.

mod helpers;

mod access;
mod dev_mode;
mod dispatching;
mod invalid_input;
mod lifecycle;
mod metrics;
mod notifier;
mod operations;
mod reports;
mod resilience;
mod watch;

/// Declares `sqlite::<test>` and `postgres::<test>` for each listed scenario.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(propdesk_testkit::Backend::Sqlite).await })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(propdesk_testkit::Backend::Postgres).await })+
        }
    };
}
