//! Fuzzes the chunked body decoder with arbitrary bytes, fed whole and cut
//! in two at every place the first byte names. Nothing may panic; it never
//! claims more input than it was given nor hands out more payload than the
//! input held, and the cut does not change what it decodes.

#![no_main]

use gateway::http::codec::ChunkedDecoder;
use libfuzzer_sys::fuzz_target;

/// Decodes `parts` in order, as reads would bring them; `None` on an error.
fn decode(parts: &[&[u8]]) -> Option<(Vec<u8>, bool)> {
    let mut decoder = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for part in parts {
        pending.extend_from_slice(part);
        let used = decoder.decode(&pending, |p| out.extend_from_slice(p)).ok()?;
        assert!(used <= pending.len());
        pending.drain(..used);
        if decoder.is_done() {
            break;
        }
    }
    Some((out, decoder.is_done()))
}

fuzz_target!(|data: &[u8]| {
    let whole = decode(&[data]);
    if let Some((payload, _)) = &whole {
        assert!(payload.len() <= data.len());
    }
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let split = decode(&[&data[..cut], &data[cut..]]);
    if let (Some(a), Some(b)) = (&whole, &split)
        && a.1
        && b.1
    {
        assert_eq!(a.0, b.0, "the cut changed the payload");
    }
});
