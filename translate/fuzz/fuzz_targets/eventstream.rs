//! Fuzzes `translate::eventstream::Decoder` with arbitrary bytes cut into
//! arbitrary reads.
//!
//! The first bytes of the input choose the read sizes; the rest is the
//! stream. The decoder must never panic, and cutting must not change the
//! answer: the frames (or the error) are the same as when the whole stream
//! arrives in one read.

#![no_main]

use libfuzzer_sys::fuzz_target;
use translate::eventstream::{Decoder, Error};

/// How many leading input bytes pick read sizes.
const CUT_SEEDS_COUNT: usize = 4;

/// What a decoder made of a stream: each frame's headers (debug-printed) and
/// payload, then the error that stopped it, if any.
type Outcome = (Vec<(Vec<String>, Vec<u8>)>, Option<Error>);

fn decode<'a>(reads: impl Iterator<Item = &'a [u8]>) -> Outcome {
    let mut decoder = Decoder::new();
    let mut frames = Vec::new();
    for read in reads {
        decoder.feed(read);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    // Exercise every accessor; they must not panic either.
                    let _ = (frame.message_type(), frame.event_type(), frame.exception_type());
                    let _ = (frame.content_type(), frame.error_code(), frame.error_message());
                    let headers = frame.headers().map(|h| format!("{h:?}")).collect();
                    frames.push((headers, frame.payload.to_vec()));
                }
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

/// Splits `stream` into reads whose sizes cycle through `seeds` (each 1..=256).
fn reads<'a>(seeds: &'a [u8], mut stream: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut i = 0;
    std::iter::from_fn(move || {
        if stream.is_empty() {
            return None;
        }
        let size = seeds.get(i % seeds.len().max(1)).map_or(1, |&s| usize::from(s) + 1);
        i += 1;
        let (read, rest) = stream.split_at(size.min(stream.len()));
        stream = rest;
        Some(read)
    })
}

fuzz_target!(|data: &[u8]| {
    let (seeds, stream) = data.split_at(CUT_SEEDS_COUNT.min(data.len()));
    let whole = decode(std::iter::once(stream));
    let cut = decode(reads(seeds, stream));
    assert_eq!(whole, cut);
});
