//! propdesk's benchmark: a load generator written with the project's own gRPC client, and
//! one run (`propdesk-bench suite`, driven by `scripts/bench`) that measures the intake,
//! the pipeline to dispatch, the notifier's timers and embedded mode side by side with the
//! machine's own ceilings.

pub mod ceilings;
pub mod client;
pub mod desk;
pub mod files;
pub mod load;
pub mod mix;
pub mod pgstats;
pub mod procs;
pub mod report;
pub mod suite;
pub mod vacuum;
pub mod watchers;
pub mod world;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("store: {0}")]
    Store(#[from] propdesk_store::StoreError),
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("gRPC connection: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("bad URL: {0}")]
    Url(#[from] tonic::codegen::http::uri::InvalidUri),
    #[error("gRPC call: {0}")]
    Call(#[from] tonic::Status),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
