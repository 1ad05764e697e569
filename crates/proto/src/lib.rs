//! The propdesk API (`proto/propdesk/v1`) as Rust types, tonic clients and servers.
//!
//! This crate is the only one that knows the wire format. It holds generated code only:
//! mapping to domain types happens in the crates at the edge (intake, workers).

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("propdesk.v1");
}

/// Encoded `FileDescriptorSet` of every propdesk proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("propdesk_descriptor");
