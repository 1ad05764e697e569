//! Compiles proto/propdesk/v1 with protox (pure Rust; the machines have no protoc) and
//! keeps the encoded descriptor set for gRPC server reflection.
use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = ["common", "tickets", "directory", "replies", "reports", "notifications", "attachments", "audit"]
        .map(|name| proto_root.join(format!("propdesk/v1/{name}.proto")));
    let descriptors = protox::compile(&files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("propdesk_descriptor.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed={}", proto_root.display());
    Ok(())
}
