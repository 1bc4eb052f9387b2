//! Kubernetes' protobuf (`application/vnd.kubernetes.protobuf`) for the built-in kinds,
//! by Kubernetes' own `.proto` definitions (compiled by `build.rs`): request bodies
//! ([`decode`], as current kubectl and client-go components configured for protobuf send
//! them) and answers ([`Codec`], to a client whose `Accept` prefers protobuf: objects,
//! lists, and watch streams of length-prefixed `WatchEvent`s); and the OpenAPI v2
//! document's protobuf form ([`openapi_v2`]).
//!
//! Every object is in the envelope Kubernetes writes: the four bytes `k8s\0`, then a
//! `runtime.Unknown` whose `typeMeta` names the kind and whose `raw` is the object's
//! message. Custom resources have no definitions here, and stay JSON, as in Kubernetes.
//!
//! The JSON form is the stored one: a body decodes into it, an answer is encoded from it
//! (each object once, the first time a client asks; then copied, as the JSON is), so an
//! object reads back the same in both.

mod decode;
mod encode;
mod openapi;

pub(crate) use decode::{decode, decode_delete_options};
pub(crate) use encode::{Codec, Encoded};
pub(crate) use openapi::openapi_v2;

use crate::BuiltIn;
use prost_reflect::{DescriptorPool, MessageDescriptor};
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

/// What every protobuf body starts with.
const MAGIC: &[u8; 4] = b"k8s\0";

/// The packages of the built-in kinds' messages and of the API's own (`Status`, lists).
const CORE_V1: &str = "k8s.io.api.core.v1";
const META_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let compiled = include_bytes!(concat!(env!("OUT_DIR"), "/kubernetes.bin"));
        DescriptorPool::decode(compiled.as_slice()).expect("build.rs wrote a descriptor set protoc made")
    })
}

/// Each built-in type's JSON properties, by its protobuf message's name
/// (`io.k8s.api.core.v1.Probe`'s under `k8s.io.api.core.v1.Probe`).
fn json_properties() -> &'static HashMap<String, HashSet<String>> {
    static PROPERTIES: OnceLock<HashMap<String, HashSet<String>>> = OnceLock::new();
    PROPERTIES.get_or_init(|| {
        let mut generator =
            schemars::generate::SchemaGenerator::new(schemars::generate::SchemaSettings::openapi3());
        for kind in BuiltIn::ALL {
            kind.generate_schema(&mut generator);
        }
        generator
            .take_definitions(true)
            .into_iter()
            .filter_map(|(name, schema)| {
                let message = format!("k8s.io.{}", name.strip_prefix("io.k8s.")?);
                let properties = schema.get("properties")?.as_object()?.keys().cloned().collect();
                Some((message, properties))
            })
            .collect()
    })
}

fn message(name: &str) -> MessageDescriptor {
    pool().get_message_by_name(name).unwrap_or_else(|| panic!("the definitions have no {name}"))
}
