//! The rate-limit script's reply as Redis sends it (RESP bytes), decoded as the Redis store does.
#![no_main]

use fluxgate_ratelimit::store::decode_script_reply;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_script_reply(data);
});
