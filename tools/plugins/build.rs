//! Generates the registration and consumer protocols' code with the system's `protoc` (Debian's
//! `protobuf-compiler`; `PROTOC` names another).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/pluginregistration.proto", "proto/consumer.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure().compile_protos(&protos, &["proto"])?;
    Ok(())
}
