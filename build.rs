//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and
//! tonic-prost-build, and writes the file descriptor set that the
//! reflection service serves.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("proto/promoflow/v1");
    let mut protos: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    protos.sort();
    let fds = protox::compile(&protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("promoflow_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        // tonic-prost's codec with a smaller per-call buffer (src/lib.rs).
        .codec_path("crate::proto::codec::PromoflowCodec")
        // Written by hand (src/proto/shared.rs): a WatchRelease message that
        // may carry an encoding shared by every stream of the release.
        .extern_path(
            ".promoflow.v1.WatchReleaseResponse",
            "crate::proto::shared::WatchReleaseResponse",
        )
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    Ok(())
}
