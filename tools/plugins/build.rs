//! Generates the registration protocol's code with the system's `protoc` (Debian's
//! `protobuf-compiler`; `PROTOC` names another).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/pluginregistration.proto");
    tonic_prost_build::configure().compile_protos(&["proto/pluginregistration.proto"], &["proto"])?;
    Ok(())
}
