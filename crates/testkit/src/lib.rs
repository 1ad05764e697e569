//! Test helpers shared by the store tests and the end-to-end tests.
//!
//! [`TestDatabase`] gives each test its own empty database: a SQLite file in a temporary
//! folder, or a new database on the local PostgreSQL server (`PROPDESK_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432`), dropped again when the test ends.
//! Tests never skip: if PostgreSQL is not reachable they fail and say so.

use propdesk_store::Store;
use sea_orm::{ConnectionTrait, Database};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An empty database owned by one test.
pub struct TestDatabase {
    pub backend: Backend,
    /// Connection URL for the store or for a `propdesk` process.
    pub url: String,
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

pub mod photos;

pub fn postgres_server_url() -> String {
    std::env::var("PROPDESK_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => TestDatabase::sqlite(),
            Backend::Postgres => TestDatabase::postgres().await,
        }
    }

    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temporary folder for SQLite");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("propdesk.db").display());
        TestDatabase { backend: Backend::Sqlite, url, postgres_name: None, _dir: Some(dir) }
    }

    pub async fn postgres() -> TestDatabase {
        let server = postgres_server_url();
        let name = format!("propdesk_test_{}", uuid::Uuid::now_v7().simple());
        let admin = Database::connect(format!("{server}/postgres"))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {server} is required for this test (run scripts/test): {e}"));
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        admin.close().await.ok();
        TestDatabase {
            backend: Backend::Postgres,
            url: format!("{server}/{name}"),
            postgres_name: Some(name),
            _dir: None,
        }
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> Store {
        propdesk_store::sealing::test_keys::install();
        let store = Store::connect(&self.url, 5).await.expect("connect to test database");
        store.migrate().await.expect("migrate test database");
        store
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else { return };
        let server = postgres_server_url();
        clean_up(async move {
            let admin = Database::connect(format!("{server}/postgres")).await.ok()?;
            admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.ok()?;
            admin.close().await.ok()
        });
    }
}

/// The local RabbitMQ (`PROPDESK_TEST_AMQP_URL`, default guest on 127.0.0.1:5672).
pub fn amqp_url() -> String {
    std::env::var("PROPDESK_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The test broker's TLS listener (`scripts/ensure-services` opens it on 5671).
pub fn amqps_url() -> String {
    std::env::var("PROPDESK_TEST_AMQPS_URL").unwrap_or_else(|_| "amqps://guest:guest@localhost:5671/%2f".to_owned())
}

/// The CA that signed the test broker's TLS certificate (made by `scripts/ensure-services`).
pub fn amqps_ca_file() -> String {
    std::env::var("PROPDESK_TEST_AMQPS_CA").unwrap_or_else(|_| "/etc/rabbitmq/propdesk-tls/ca.pem".to_owned())
}

/// A name prefix no other test uses, so tests share one broker without seeing each other.
pub fn unique_bus_prefix() -> String {
    format!("propdesk-test-{}", uuid::Uuid::now_v7().simple())
}

/// Runs async clean-up from `Drop`, which may run inside or outside a runtime: on a thread
/// of its own with a small runtime, waiting for it to finish.
pub fn clean_up<F>(work: F)
where
    F: std::future::Future + Send + 'static,
{
    let _ = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
            runtime.block_on(work);
        }
    })
    .join();
}

/// Declares `sqlite::<test>` and `postgres::<test>` for each listed scenario: each is an
/// `async fn(Backend)` run once on a fresh SQLite file and once on PostgreSQL, on a
/// multi-threaded runtime of two workers (`threads = N;` first for more).
#[macro_export]
macro_rules! on_both_backends {
    (threads = $threads:literal; $($test:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
            async fn $test() { super::$test($crate::Backend::Sqlite).await })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
            async fn $test() { super::$test($crate::Backend::Postgres).await })+
        }
    };
    ($($test:ident),+ $(,)?) => {
        $crate::on_both_backends!(threads = 2; $($test),+);
    };
}
