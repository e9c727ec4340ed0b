//! Policy documents (YAML or JSON bytes): parse, validate, compile, and re-validate what parsed.
#![no_main]

use fluxgate_core::policy::{CompiledPolicy, parse_documents};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_documents(data);
    let _ = parsed.is_ok();
    if let Ok(policies) = parsed.into_result() {
        for policy in &policies {
            // A policy that parsed is valid, and compiles.
            assert!(policy.validate().is_ok(), "parsed but invalid: {policy:?}");
            let _ = CompiledPolicy::compile(policy);
        }
    }
});
