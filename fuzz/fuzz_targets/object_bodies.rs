//! Object bodies, created and replaced, as JSON, YAML, with no type, with a type the
//! server refuses, and as protobuf (the rest after the `k8s\0` prefix, which the target
//! adds); the first byte picks the verb and the type, the rest is the body.
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use watchcache_fuzz::{check, MAPS, SEEDED};

const TYPES: [Option<&str>; 4] =
    [Some("application/json"), Some("application/yaml"), None, Some("text/plain")];

fuzz_target!(|input: &[u8]| {
    let Some((&choice, body)) = input.split_first() else { return };
    let (content_type, body) = if choice & 0x20 == 0 {
        (TYPES[usize::from(choice) % TYPES.len()], body.to_vec())
    } else {
        (Some("application/vnd.kubernetes.protobuf"), [b"k8s\0".as_slice(), body].concat())
    };
    let (method, uri) = if choice & 0x80 == 0 {
        (Method::POST, MAPS.to_owned())
    } else {
        (Method::PUT, format!("{MAPS}/{SEEDED}"))
    };
    // Dry runs too: the same checks, nothing stored.
    let uri = if choice & 0x40 == 0 { uri } else { format!("{uri}?dryRun=All") };
    check(method, &uri, content_type, body);
});
