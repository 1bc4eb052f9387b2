//! Label and field selectors, parsed straight (without a request around them) and, when
//! they parse, matched against objects: parsing never panics, matching never panics,
//! and a selector matches the same way however often it is asked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use watchcache_server::{FieldSelector, LabelSelector, ResourceDef};

fuzz_target!(|input: (&str, &str, Vec<(String, String)>)| {
    let (labels, fields, object_labels) = input;
    let object_labels: BTreeMap<String, String> = object_labels.into_iter().collect();
    if let Ok(selector) = LabelSelector::parse(labels) {
        let matched = selector.matches(&object_labels);
        assert_eq!(selector.matches(&object_labels), matched);
        assert_eq!(LabelSelector::parse(labels).ok(), Some(selector), "parsing is deterministic");
    }
    for def in [ResourceDef::config_maps(), ResourceDef::pods(), ResourceDef::events()] {
        let _ = FieldSelector::parse(fields, &def);
    }
});
