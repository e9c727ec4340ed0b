//! An upstream's HTTP/1.1 response as the proxy's own exchange reads it: the head (interim heads,
//! framing headers, limits), then the body as framed (length, chunked with trailers, until
//! close), arriving in reads of a size the first byte chooses.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let read = usize::from(first & 0x3f) + 1;
    let head_request = first & 0x40 != 0;
    if let Ok((status, body)) = fluxgate_proxy::__read_upstream_response(input, read, head_request) {
        assert!((100..1000).contains(&status), "status {status}");
        assert!(body <= input.len() as u64, "{body} body bytes from {} input bytes", input.len());
    }
});
