#![no_main]
//! Event parsing and intent never panic.

use failover_core::engine::declaration::Extension;
use failover_core::app::events::{self, Home, Trust};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(trigger) = events::parse_text(text) {
            let trust = Trust::at(Home {
                account: "123456789012".into(),
                region: "us-east-1".into(),
            });
            let _ = trigger.intent(&Extension::default(), &trust);
        }
    }
});
