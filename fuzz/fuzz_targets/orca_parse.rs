//! The ORCA `endpoint-load-metrics` response header (TEXT and JSON encodings).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(util) = fluxgate_balance::parse_orca_load_report(value) {
        assert!(
            util.is_finite() && util >= 0.0,
            "bad utilisation {util} from {value:?}"
        );
    }
});
