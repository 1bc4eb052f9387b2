//! The list and watch query: selectors, `resourceVersion` and its match, `limit`,
//! `continue` tokens, `timeoutSeconds`, every flag, in any combination and encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchcache_fuzz::{check, uri_text, MAPS};

fuzz_target!(|query: &[u8]| {
    check(http::Method::GET, &format!("{MAPS}?{}", uri_text(query)), None, Vec::new());
});
