#![no_main]
//! Declaration parsing never panics, and an accepted declaration serializes.

use failover_core::Declaration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(d) = Declaration::parse(text) {
            serde_json::to_string(&d).expect("a valid declaration serializes");
        }
    }
});
