//! Tests of the event-stream decoder: the bedrock.md vectors, every cut of
//! the input, hand-made corrupt frames, and `aws-smithy-eventstream` as an
//! oracle for encoding and for rejection.

use super::*;
use aws_smithy_eventstream::frame::{read_message_from, write_message_to};
use aws_smithy_types::DateTime;
use aws_smithy_types::event_stream::{Header as AwsHeader, HeaderValue as AwsValue, Message as AwsMessage};

/// bedrock.md §5: a `contentBlockDelta` event, 148 bytes.
const EVENT_HEX: &str = concat!(
    "0000009400000057b4ab9aee0b3a6576656e742d74797065070011636f6e74656e74426c6f636b44656c74610d3a636f6e74656e742d74797065",
    "0700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22636f6e74656e74426c6f636b496e64",
    "6578223a302c2264656c7461223a7b2274657874223a224869227d7d1f944657",
);

/// bedrock.md §5: a `throttlingException`.
const EXCEPTION_HEX: &str = concat!(
    "0000009100000061b3f180070f3a657863657074696f6e2d747970650700137468726f74746c696e67457863657074696f6e0d3a636f6e74656e",
    "742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d74797065070009657863657074696f6e7b226d6573736167",
    "65223a2022546f6f206d616e79207265717565737473227d898cacc1",
);

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// A frame as plain owned values, so frames from different decoders and
/// different cuts compare with `assert_eq!`.
#[derive(Debug, PartialEq, Eq)]
struct Owned {
    headers: Vec<(String, String)>,
    payload: Vec<u8>,
}

fn owned(frame: &Frame<'_>) -> Owned {
    Owned {
        headers: frame.headers().map(|h| (h.name.to_owned(), format!("{:?}", h.value))).collect(),
        payload: frame.payload.to_vec(),
    }
}

/// The oracle's message in the same shape, with values spelled as ours are.
fn owned_from_oracle(message: &AwsMessage) -> Owned {
    let value = |v: &AwsValue| -> String {
        let ours = match v {
            AwsValue::Bool(b) => HeaderValue::Bool(*b),
            AwsValue::Byte(b) => HeaderValue::Byte(*b),
            AwsValue::Int16(i) => HeaderValue::Int16(*i),
            AwsValue::Int32(i) => HeaderValue::Int32(*i),
            AwsValue::Int64(i) => HeaderValue::Int64(*i),
            AwsValue::ByteArray(b) => HeaderValue::Bytes(b),
            AwsValue::String(s) => HeaderValue::String(s.as_str()),
            AwsValue::Timestamp(t) => HeaderValue::TimestampMs(t.to_millis().unwrap()),
            AwsValue::Uuid(u) => HeaderValue::Uuid(*u),
            other => panic!("header value the oracle added after 0.61: {other:?}"),
        };
        format!("{ours:?}")
    };
    Owned {
        headers: message.headers().iter().map(|h| (h.name().as_str().to_owned(), value(h.value()))).collect(),
        payload: message.payload().to_vec(),
    }
}

/// Feeds `chunks` in order and collects every frame, or the first error.
fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<Owned>, Error> {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk);
        while let Some(frame) = decoder.next_frame()? {
            out.push(owned(&frame));
        }
    }
    assert_eq!(decoder.pending_bytes(), 0, "bytes left over");
    Ok(out)
}

fn decode_all(bytes: &[u8]) -> Result<Vec<Owned>, Error> {
    decode_chunks([bytes])
}

/// The error for `bytes` fed in one piece; panics if they decode cleanly.
fn decode_err(bytes: &[u8]) -> Error {
    let mut decoder = Decoder::new();
    decoder.feed(bytes);
    loop {
        match decoder.next_frame() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("no error; {} bytes pending", decoder.pending_bytes()),
            Err(e) => return e,
        }
    }
}

/// A frame with correct lengths and CRCs around a raw header block.
fn raw_frame(header_block: &[u8], payload: &[u8]) -> Vec<u8> {
    let total = (FRAME_BYTES_MIN + header_block.len() + payload.len()) as u32;
    let mut f = Vec::new();
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&(header_block.len() as u32).to_be_bytes());
    f.extend_from_slice(&crc32fast::hash(&f).to_be_bytes());
    f.extend_from_slice(header_block);
    f.extend_from_slice(payload);
    f.extend_from_slice(&crc32fast::hash(&f).to_be_bytes());
    f
}

/// A prelude with a correct CRC and whatever lengths the test wants.
fn prelude(total: u32, headers: u32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&headers.to_be_bytes());
    p.extend_from_slice(&crc32fast::hash(&p).to_be_bytes());
    p
}

fn oracle_encode(message: &AwsMessage) -> Vec<u8> {
    let mut out = Vec::new();
    write_message_to(message, &mut out).unwrap();
    out
}

fn oracle_rejects(frame: &[u8]) -> bool {
    read_message_from(frame).is_err()
}

/// A message with every header type, and a JSON payload.
fn all_types_message() -> AwsMessage {
    AwsMessage::new(&b"{\"contentBlockIndex\":0}"[..])
        .add_header(AwsHeader::new("true", AwsValue::Bool(true)))
        .add_header(AwsHeader::new("false", AwsValue::Bool(false)))
        .add_header(AwsHeader::new("byte", AwsValue::Byte(-7)))
        .add_header(AwsHeader::new("short", AwsValue::Int16(i16::MIN)))
        .add_header(AwsHeader::new("int", AwsValue::Int32(-123_456)))
        .add_header(AwsHeader::new("long", AwsValue::Int64(i64::MAX)))
        .add_header(AwsHeader::new("bytes", AwsValue::ByteArray(vec![0, 255, 7].into())))
        .add_header(AwsHeader::new("string", AwsValue::String("héllo".into())))
        .add_header(AwsHeader::new("timestamp", AwsValue::Timestamp(DateTime::from_millis(1_735_787_045_123))))
        .add_header(AwsHeader::new("uuid", AwsValue::Uuid(0x0123_4567_89ab_cdef_0011_2233_4455_6677)))
        .add_header(AwsHeader::new(":message-type", AwsValue::String("event".into())))
}

/// A varied stream: Bedrock-shaped events, an empty frame, a frame without
/// headers, one with every header type, and one larger payload.
fn oracle_stream() -> (Vec<u8>, Vec<Owned>) {
    let event = |event_type: &'static str, payload: &str| {
        AwsMessage::new(payload.as_bytes().to_vec())
            .add_header(AwsHeader::new(":event-type", AwsValue::String(event_type.into())))
            .add_header(AwsHeader::new(":content-type", AwsValue::String("application/json".into())))
            .add_header(AwsHeader::new(":message-type", AwsValue::String("event".into())))
    };
    let messages = [
        event("messageStart", r#"{"role":"assistant"}"#),
        event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hel"}}"#),
        AwsMessage::new(Vec::new()),
        AwsMessage::new(&b"no headers"[..]),
        all_types_message(),
        event("contentBlockDelta", &"x".repeat(5000)),
        event("messageStop", r#"{"stopReason":"end_turn"}"#),
    ];
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for m in &messages {
        bytes.extend(oracle_encode(m));
        expected.push(owned_from_oracle(m));
    }
    (bytes, expected)
}

#[test]
fn bedrock_event_vector() {
    let bytes = unhex(EVENT_HEX);
    assert_eq!(bytes.len(), 148);
    let mut decoder = Decoder::new();
    decoder.feed(&bytes);
    let frame = decoder.next_frame().unwrap().unwrap();
    let headers: Vec<Header<'_>> = frame.headers().collect();
    assert_eq!(
        headers,
        [
            Header { name: ":event-type", value: HeaderValue::String("contentBlockDelta") },
            Header { name: ":content-type", value: HeaderValue::String("application/json") },
            Header { name: ":message-type", value: HeaderValue::String("event") },
        ]
    );
    assert_eq!(frame.message_type(), Some(MessageType::Event));
    assert_eq!(frame.event_type(), Some("contentBlockDelta"));
    assert_eq!(frame.content_type(), Some("application/json"));
    assert_eq!(frame.exception_type(), None);
    assert_eq!(frame.payload, br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#);
    assert_eq!(decoder.next_frame(), Ok(None));
    assert_eq!(decoder.pending_bytes(), 0);
}

#[test]
fn bedrock_exception_vector() {
    let bytes = unhex(EXCEPTION_HEX);
    assert_eq!(bytes.len(), 0x91);
    let mut decoder = Decoder::new();
    decoder.feed(&bytes);
    let frame = decoder.next_frame().unwrap().unwrap();
    assert_eq!(frame.message_type(), Some(MessageType::Exception));
    assert_eq!(frame.exception_type(), Some("throttlingException"));
    assert_eq!(frame.event_type(), None);
    assert_eq!(frame.content_type(), Some("application/json"));
    assert_eq!(frame.payload, br#"{"message": "Too many requests"}"#);
    assert_eq!(decoder.next_frame(), Ok(None));
}

#[test]
fn bedrock_vectors_agree_with_the_oracle() {
    for hex in [EVENT_HEX, EXCEPTION_HEX] {
        let bytes = unhex(hex);
        let theirs = read_message_from(&bytes[..]).unwrap();
        assert_eq!(decode_all(&bytes).unwrap(), [owned_from_oracle(&theirs)]);
    }
}

#[test]
fn vectors_cut_at_every_byte_offset() {
    let mut stream = unhex(EVENT_HEX);
    stream.extend(unhex(EXCEPTION_HEX));
    stream.extend(unhex(EVENT_HEX));
    let whole = decode_all(&stream).unwrap();
    assert_eq!(whole.len(), 3);
    for cut in 0..=stream.len() {
        let (a, b) = stream.split_at(cut);
        assert_eq!(decode_chunks([a, b]).unwrap(), whole, "cut at {cut}");
    }
    for (i, j) in [(1, 2), (11, 12), (12, 13), (147, 148), (148, 149), (100, 200), (147, 293)] {
        let chunks = [&stream[..i], &stream[i..j], &stream[j..]];
        assert_eq!(decode_chunks(chunks).unwrap(), whole, "cuts at {i} and {j}");
    }
    assert_eq!(decode_chunks(stream.chunks(1)).unwrap(), whole, "one byte per read");
}

#[test]
fn every_header_type_matches_the_oracle() {
    let message = all_types_message();
    let bytes = oracle_encode(&message);
    let mut decoder = Decoder::new();
    decoder.feed(&bytes);
    let frame = decoder.next_frame().unwrap().unwrap();
    assert_eq!(owned(&frame), owned_from_oracle(&message));
    assert_eq!(frame.header("true"), Some(HeaderValue::Bool(true)));
    assert_eq!(frame.header("false"), Some(HeaderValue::Bool(false)));
    assert_eq!(frame.header("byte"), Some(HeaderValue::Byte(-7)));
    assert_eq!(frame.header("short"), Some(HeaderValue::Int16(i16::MIN)));
    assert_eq!(frame.header("int"), Some(HeaderValue::Int32(-123_456)));
    assert_eq!(frame.header("long"), Some(HeaderValue::Int64(i64::MAX)));
    assert_eq!(frame.header("bytes"), Some(HeaderValue::Bytes(&[0, 255, 7])));
    assert_eq!(frame.header("string"), Some(HeaderValue::String("héllo")));
    assert_eq!(frame.header("timestamp"), Some(HeaderValue::TimestampMs(1_735_787_045_123)));
    assert_eq!(frame.header("uuid"), Some(HeaderValue::Uuid(0x0123_4567_89ab_cdef_0011_2233_4455_6677)));
    assert_eq!(frame.header_str("int"), None, "not a string");
    assert_eq!(frame.header("absent"), None);
}

#[test]
fn oracle_stream_in_every_chunk_size() {
    let (bytes, expected) = oracle_stream();
    assert_eq!(decode_all(&bytes).unwrap(), expected);
    for size in (1..64).chain([100, 1000, 4096, 5001]) {
        assert_eq!(decode_chunks(bytes.chunks(size)).unwrap(), expected, "chunks of {size}");
    }
}

#[test]
fn oracle_stream_cut_at_every_offset() {
    let (bytes, expected) = oracle_stream();
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        assert_eq!(decode_chunks([a, b]).unwrap(), expected, "cut at {cut}");
    }
}

#[test]
fn any_flipped_byte_is_rejected_by_both_decoders() {
    let frames = [
        unhex(EVENT_HEX),
        unhex(EXCEPTION_HEX),
        oracle_encode(&all_types_message()),
        oracle_encode(&AwsMessage::new(Vec::new())),
    ];
    for frame in &frames {
        for at in 0..frame.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = frame.clone();
                bad[at] ^= flip;
                let err = decode_err(&bad);
                match at {
                    0..12 => assert!(matches!(err, Error::PreludeCrc { .. }), "{at}: {err:?}"),
                    _ => assert!(matches!(err, Error::MessageCrc { .. }), "{at}: {err:?}"),
                }
                assert!(oracle_rejects(&bad), "oracle accepted a flip at {at}");
            }
        }
    }
}

#[test]
fn crc_errors_report_both_values() {
    let mut bad = unhex(EVENT_HEX);
    bad[8] ^= 0xff;
    assert_eq!(decode_err(&bad), Error::PreludeCrc { expected: 0x4bab9aee, actual: 0xb4ab9aee });
    let mut bad = unhex(EVENT_HEX);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(decode_err(&bad), Error::MessageCrc { expected: 0x1f9446a8, actual: 0x1f944657 });
}

#[test]
fn lengths_out_of_bounds_are_refused_from_the_prelude_alone() {
    let too_long = (FRAME_BYTES_MAX + 1) as u32;
    assert_eq!(decode_err(&prelude(too_long, 0)), Error::FrameLength { total_bytes: too_long });
    assert_eq!(decode_err(&prelude(u32::MAX, 0)), Error::FrameLength { total_bytes: u32::MAX });
    assert_eq!(decode_err(&prelude(15, 0)), Error::FrameLength { total_bytes: 15 });
    assert_eq!(decode_err(&prelude(0, 0)), Error::FrameLength { total_bytes: 0 });
    assert_eq!(decode_err(&prelude(100, 85)), Error::HeadersLength { headers_bytes: 85, total_bytes: 100 });
    let big = (HEADERS_BYTES_MAX + 1) as u32;
    assert_eq!(decode_err(&prelude(big + 16, big)), Error::HeadersLength { headers_bytes: big, total_bytes: big + 16 });
    // The largest frame is accepted as far as the prelude goes: it waits.
    let mut decoder = Decoder::new();
    decoder.feed(&prelude(FRAME_BYTES_MAX as u32, HEADERS_BYTES_MAX as u32));
    assert_eq!(decoder.next_frame(), Ok(None));
}

#[test]
fn malformed_header_blocks_are_errors() {
    let cases: &[(&[u8], Error)] = &[
        // Name length runs past the block.
        (b"\x05ab", Error::HeaderTruncated),
        // Name without a type byte.
        (b"\x02ab", Error::HeaderTruncated),
        // Each fixed-size type one byte short.
        (b"\x01a\x02", Error::HeaderTruncated),
        (b"\x01a\x03\x00", Error::HeaderTruncated),
        (b"\x01a\x04\x00\x00\x00", Error::HeaderTruncated),
        (b"\x01a\x05\x00\x00\x00\x00\x00\x00\x00", Error::HeaderTruncated),
        (b"\x01a\x08\x00\x00\x00\x00\x00\x00\x00", Error::HeaderTruncated),
        (&[1, b'a', 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], Error::HeaderTruncated),
        // Length prefix cut, then value shorter than its prefix.
        (b"\x01a\x07\x00", Error::HeaderTruncated),
        (b"\x01a\x07\x00\x03ab", Error::HeaderTruncated),
        (b"\x01a\x06\x00\x03ab", Error::HeaderTruncated),
        // A good header followed by a cut one.
        (b"\x01a\x00\x01", Error::HeaderTruncated),
        (b"\x01a\x0a", Error::HeaderType { value_type: 10 }),
        (b"\x01a\xff", Error::HeaderType { value_type: 255 }),
        (b"\x01\xff\x00", Error::HeaderUtf8),
        (b"\x01a\x07\x00\x01\xc3", Error::HeaderUtf8),
    ];
    for (block, error) in cases {
        let frame = raw_frame(block, b"{}");
        assert_eq!(decode_err(&frame), *error, "block {block:?}");
        assert!(oracle_rejects(&frame), "oracle accepted block {block:?}");
    }
}

#[test]
fn unusual_but_valid_frames() {
    // Empty name, empty string and byte values, empty payload.
    let frame = raw_frame(b"\x00\x07\x00\x00\x01b\x06\x00\x00", b"");
    let got = decode_all(&frame).unwrap();
    assert_eq!(got, [owned_from_oracle(&read_message_from(&frame[..]).unwrap())]);
    assert_eq!(got[0].headers, [("".to_owned(), "String(\"\")".to_owned()), ("b".to_owned(), "Bytes([])".to_owned())]);
    assert!(got[0].payload.is_empty());
    // Duplicate names: the first wins, both are listed.
    let frame = raw_frame(b"\x01a\x07\x00\x01x\x01a\x07\x00\x01y", b"");
    let mut decoder = Decoder::new();
    decoder.feed(&frame);
    let frame = decoder.next_frame().unwrap().unwrap();
    assert_eq!(frame.header_str("a"), Some("x"));
    assert_eq!(frame.headers().count(), 2);
}

#[test]
fn message_types_and_error_headers() {
    let string_header = |name: &str, value: &str| {
        let mut h = vec![name.len() as u8];
        h.extend_from_slice(name.as_bytes());
        h.push(TYPE_STRING);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
        h
    };
    let mut block = string_header(":message-type", "error");
    block.extend(string_header(":error-code", "InternalFailure"));
    block.extend(string_header(":error-message", "boom"));
    let bytes = raw_frame(&block, b"");
    let mut decoder = Decoder::new();
    decoder.feed(&bytes);
    let frame = decoder.next_frame().unwrap().unwrap();
    assert_eq!(frame.message_type(), Some(MessageType::Error));
    assert_eq!(frame.error_code(), Some("InternalFailure"));
    assert_eq!(frame.error_message(), Some("boom"));

    let bytes = raw_frame(&string_header(":message-type", "gossip"), b"");
    let mut decoder = Decoder::new();
    decoder.feed(&bytes);
    assert_eq!(decoder.next_frame().unwrap().unwrap().message_type(), None);
}

#[test]
fn errors_are_final_and_cut_frames_stay_pending() {
    let mut bad = unhex(EVENT_HEX);
    bad[20] ^= 1;
    let mut decoder = Decoder::new();
    decoder.feed(&bad);
    let first = decoder.next_frame().unwrap_err();
    decoder.feed(&unhex(EVENT_HEX));
    assert_eq!(decoder.next_frame().unwrap_err(), first);

    let good = unhex(EVENT_HEX);
    let mut decoder = Decoder::new();
    decoder.feed(&good[..100]);
    assert_eq!(decoder.next_frame(), Ok(None));
    assert_eq!(decoder.pending_bytes(), 100);
}

#[test]
fn a_warm_decoder_keeps_its_buffer() {
    let (stream, expected) = oracle_stream();
    let mut decoder = Decoder::new();
    let run = |decoder: &mut Decoder| {
        let mut n = 0;
        for chunk in stream.chunks(333) {
            decoder.feed(chunk);
            while let Some(frame) = decoder.next_frame().unwrap() {
                assert_eq!(owned(&frame), expected[n]);
                n += 1;
            }
        }
        assert_eq!(n, expected.len());
    };
    run(&mut decoder);
    let (ptr, capacity) = (decoder.buffer.as_ptr(), decoder.buffer.capacity());
    for _ in 0..10 {
        run(&mut decoder);
        assert_eq!((decoder.buffer.as_ptr(), decoder.buffer.capacity()), (ptr, capacity));
    }
}

/// A small deterministic generator, so this test needs no extra crate; the
/// fuzz target in `translate/fuzz` does the same with coverage guidance.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_input_and_random_cuts_never_panic() {
    let (valid, _) = oracle_stream();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..2000 {
        // Mutated valid streams, noise inside frames whose CRCs are right
        // (reaching the header parser), noise behind a valid prelude, noise.
        let noise =
            |rng: &mut XorShift, max: usize| -> Vec<u8> { (0..rng.below(max)).map(|_| rng.next() as u8).collect() };
        let mut input = match round % 4 {
            0 => valid.clone(),
            3 => {
                let (block, payload) = (noise(&mut rng, 40), noise(&mut rng, 20));
                raw_frame(&block, &payload)
            }
            1 => {
                let mut p = prelude(16 + rng.below(64) as u32, rng.below(48) as u32);
                p.extend(noise(&mut rng, 80));
                p
            }
            _ => noise(&mut rng, 300),
        };
        for _ in 0..rng.below(4) {
            if !input.is_empty() {
                let at = rng.below(input.len());
                input[at] = rng.next() as u8;
            }
        }
        let mut decoder = Decoder::new();
        let mut rest = &input[..];
        'feed: while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(1 + rng.below(rest.len()));
            rest = tail;
            decoder.feed(chunk);
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => {
                        let _ = (frame.headers().count(), frame.message_type(), frame.payload.len());
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }
}
