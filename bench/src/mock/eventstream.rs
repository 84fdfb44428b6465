//! The `application/vnd.amazon.eventstream` encoder for Bedrock's
//! ConverseStream (providers/bedrock.md §5).
//!
//! Written here rather than taken from an AWS crate because the mock must pin
//! the exact bytes the gateway's decoder will see, and the format is small:
//! a prelude (total length, headers length, prelude CRC32), string headers,
//! the JSON payload and a CRC32 over everything before it. All integers are
//! big-endian; the CRC is IEEE CRC-32 (`crc32fast`).

/// Header value type 7: a UTF-8 string with a u16 length.
const STRING_TYPE: u8 = 7;
/// Prelude (two lengths and a CRC) plus the trailing message CRC.
const FRAMING_BYTES: usize = 16;

/// Appends one message with these string headers, in order.
pub fn encode(headers: &[(&str, &str)], payload: &[u8], out: &mut Vec<u8>) {
    let headers_len: usize = headers.iter().map(|(n, v)| 1 + n.len() + 1 + 2 + v.len()).sum();
    let total = FRAMING_BYTES + headers_len + payload.len();
    let start = out.len();
    out.extend_from_slice(&be32(total));
    out.extend_from_slice(&be32(headers_len));
    let prelude_crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    for (name, value) in headers {
        // Names and values are this module's constants and short JSON-free
        // strings; the limits are asserted, not handled.
        debug_assert!(name.len() <= usize::from(u8::MAX) && value.len() <= usize::from(u16::MAX));
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(STRING_TYPE);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(payload);
    let message_crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&message_crc.to_be_bytes());
}

/// An `event` message carrying one ConverseStream member.
pub fn event(event_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 128);
    let headers = [(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")];
    encode(&headers, payload, &mut out);
    out
}

/// An `exception` message, as sent when the stream fails after the 200.
pub fn exception(exception_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 128);
    let headers =
        [(":exception-type", exception_type), (":content-type", "application/json"), (":message-type", "exception")];
    encode(&headers, payload, &mut out);
    out
}

/// Lengths are bounded by the request body limit, far below 4 GiB.
fn be32(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The vectors of providers/bedrock.md §5, decoded there by botocore.
    #[test]
    fn matches_the_botocore_vectors() {
        let delta = event("contentBlockDelta", br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#);
        let want = "0000009400000057b4ab9aee0b3a6576656e742d74797065070011636f6e74656e74426c6f636b44656c74610d3a636f6e74656e742d74797065\
0700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22636f6e74656e74426c6f636b496e64\
6578223a302c2264656c7461223a7b2274657874223a224869227d7d1f944657";
        assert_eq!(hex(&delta), want);

        let throttle = exception("throttlingException", br#"{"message": "Too many requests"}"#);
        let want = "0000009100000061b3f180070f3a657863657074696f6e2d747970650700137468726f74746c696e67457863657074696f6e0d3a636f6e74656e\
742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d74797065070009657863657074696f6e7b226d6573736167\
65223a2022546f6f206d616e79207265717565737473227d898cacc1";
        assert_eq!(hex(&throttle), want);
    }
}
