//! Generates the registration and consumer protocols' code with `protoc`: `PROTOC` (which
//! `cargo xtask env` sets to a vendored one) or the `PATH`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/pluginregistration.proto", "proto/consumer.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure().compile_protos(&protos, &["proto"])?;
    Ok(())
}
