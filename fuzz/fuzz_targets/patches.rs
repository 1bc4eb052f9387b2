//! Patches of an existing object, in every patch type a client sends (the ones the
//! server refuses included); the first byte picks the type, the object (a configmap or a
//! pod, whose lists a strategic merge patch merges) and a dry run; the rest is the patch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchcache_fuzz::{check, MAPS, PODS, SEEDED};

const TYPES: [&str; 5] = [
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
    "application/apply-patch+yaml",
    "application/json",
];

fuzz_target!(|input: &[u8]| {
    let Some((&choice, patch)) = input.split_first() else { return };
    let content_type = TYPES[usize::from(choice) % TYPES.len()];
    let collection = if choice & 0x40 == 0 { MAPS } else { PODS };
    let uri = format!("{collection}/{SEEDED}{}", if choice & 0x80 == 0 { "" } else { "?dryRun=All" });
    check(http::Method::PATCH, &uri, Some(content_type), patch.to_vec());
});
