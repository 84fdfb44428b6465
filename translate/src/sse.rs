//! Server-sent events, cut into whole events.
//!
//! Network reads cut an SSE stream anywhere. [`Splitter`] yields each complete
//! event (its lines and the blank line that ends it) as one slice, and keeps
//! an incomplete tail for the next read. When a read holds only whole events,
//! which is the common case, the events are slices of the read itself and
//! nothing is copied; only a cut event is carried over, into a buffer that is
//! reused, so a warm stream allocates nothing.

/// Splits a byte stream into SSE events. See the module docs.
#[derive(Debug, Default)]
pub struct Splitter {
    carry: Vec<u8>,
    /// Events longer than this are an upstream fault, not something to buffer
    /// without end.
    event_bytes_max: usize,
}

/// One step of [`Splitter::feed`]: a complete event, or the end of what this
/// read can give.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Event(&'a [u8]),
    /// An event grew past `event_bytes_max` without ending.
    Overflow,
}

impl Splitter {
    pub fn new(event_bytes_max: usize) -> Splitter {
        Splitter { carry: Vec::new(), event_bytes_max }
    }

    /// Bytes held back because their event has not ended yet.
    pub fn pending(&self) -> &[u8] {
        &self.carry
    }

    /// Feeds one read and calls `on_piece` for every complete event in order.
    pub fn feed(&mut self, input: &[u8], mut on_piece: impl FnMut(Piece<'_>)) {
        if self.carry.is_empty() {
            let consumed = each_event(input, &mut on_piece);
            self.keep_tail(&input[consumed..], &mut on_piece);
            return;
        }
        // A cut event is pending: join it with the new bytes. Only the carried
        // part is scanned again from its last possible boundary.
        let rescan_from = self.carry.len().saturating_sub(3);
        self.carry.extend_from_slice(input);
        let consumed = match find_event_end(&self.carry[rescan_from..]) {
            None => 0,
            Some(end) => {
                let first = rescan_from + end;
                on_piece(Piece::Event(&self.carry[..first]));
                first + each_event(&self.carry[first..], &mut on_piece)
            }
        };
        self.carry.drain(..consumed);
        if self.carry.len() > self.event_bytes_max {
            self.carry.clear();
            on_piece(Piece::Overflow);
        }
    }

    /// Ends the stream. An event the body ended inside of, lacking only its
    /// blank line (`data: [DONE]\n` as a provider's last bytes), is handed
    /// out completed with one; a tail of nothing but line ends is dropped.
    pub fn finish(&mut self, mut on_piece: impl FnMut(Piece<'_>)) {
        if self.carry.trim_ascii().is_empty() {
            self.carry.clear();
            return;
        }
        let end: &[u8] = if self.carry.ends_with(b"\r\n") {
            b"\r\n"
        } else if self.carry.ends_with(b"\n") {
            b"\n"
        } else {
            b"\n\n"
        };
        self.carry.extend_from_slice(end);
        on_piece(Piece::Event(&self.carry));
        self.carry.clear();
    }

    fn keep_tail(&mut self, tail: &[u8], on_piece: &mut impl FnMut(Piece<'_>)) {
        if tail.len() > self.event_bytes_max {
            on_piece(Piece::Overflow);
            return;
        }
        self.carry.extend_from_slice(tail);
    }
}

/// Calls `on_piece` for each complete event at the start of `bytes`; returns
/// how many bytes those events took.
fn each_event(bytes: &[u8], on_piece: &mut impl FnMut(Piece<'_>)) -> usize {
    let mut start = 0;
    while let Some(end) = find_event_end(&bytes[start..]) {
        on_piece(Piece::Event(&bytes[start..start + end]));
        start += end;
    }
    start
}

/// The length of the first event in `bytes`, including its blank line, if
/// the blank line is there. SSE allows `\n`, `\r\n` and `\r` line ends; LLM
/// providers use the first two, which is what this accepts.
fn find_event_end(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &bytes[from..]) {
        let nl = from + i;
        let rest = &bytes[nl + 1..];
        if rest.first() == Some(&b'\n') {
            return Some(nl + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        from = nl + 1;
    }
    None
}

/// The `data:` payload of an event, when the event has exactly one data line
/// (which is how every LLM provider sends JSON events). Leading space after
/// the colon is removed, as the SSE spec says.
pub fn single_data(event: &[u8]) -> Option<&[u8]> {
    let mut found = None;
    let mut rest = event;
    while !rest.is_empty() {
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        rest = next;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(value) = line.strip_prefix(b"data:") {
            if found.is_some() {
                return None;
            }
            found = Some(value.strip_prefix(b" ").unwrap_or(value));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(splitter: &mut Splitter, input: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        splitter.feed(input, |piece| match piece {
            Piece::Event(e) => out.push(e.to_vec()),
            Piece::Overflow => out.push(b"OVERFLOW".to_vec()),
        });
        out
    }

    #[test]
    fn whole_events_come_out_as_they_are() {
        let mut s = Splitter::new(1024);
        let got = events(&mut s, b"data: a\n\ndata: b\r\n\r\n");
        assert_eq!(got, vec![b"data: a\n\n".to_vec(), b"data: b\r\n\r\n".to_vec()]);
        assert!(s.pending().is_empty());
    }

    #[test]
    fn an_event_cut_at_every_byte_is_joined() {
        let stream = b"event: x\ndata: {\"a\":1}\n\ndata: [DONE]\n\n";
        for cut in 1..stream.len() {
            let mut s = Splitter::new(1024);
            let mut got = events(&mut s, &stream[..cut]);
            got.extend(events(&mut s, &stream[cut..]));
            assert_eq!(
                got,
                vec![b"event: x\ndata: {\"a\":1}\n\n".to_vec(), b"data: [DONE]\n\n".to_vec()],
                "cut at {cut}"
            );
            assert!(s.pending().is_empty());
        }
    }

    #[test]
    fn crlf_boundary_cut_between_reads() {
        let mut s = Splitter::new(1024);
        assert!(events(&mut s, b"data: a\r\n\r").is_empty());
        assert_eq!(events(&mut s, b"\n"), vec![b"data: a\r\n\r\n".to_vec()]);
    }

    #[test]
    fn an_endless_event_overflows_instead_of_growing() {
        let mut s = Splitter::new(8);
        assert_eq!(events(&mut s, b"data: 0123456789"), vec![b"OVERFLOW".to_vec()]);
        let mut s = Splitter::new(8);
        assert!(events(&mut s, b"data:").is_empty());
        assert_eq!(events(&mut s, b" 0123456789"), vec![b"OVERFLOW".to_vec()]);
    }

    #[test]
    fn finish_completes_a_last_event_that_lacks_its_blank_line() {
        let finish = |input: &[u8]| {
            let mut s = Splitter::new(1024);
            let mut got = events(&mut s, input);
            s.finish(|piece| match piece {
                Piece::Event(e) => got.push(e.to_vec()),
                Piece::Overflow => got.push(b"OVERFLOW".to_vec()),
            });
            assert!(s.pending().is_empty());
            got
        };
        let a = b"data: a\n\n".to_vec();
        assert_eq!(finish(b"data: a\n\ndata: [DONE]\n"), vec![a.clone(), b"data: [DONE]\n\n".to_vec()]);
        assert_eq!(finish(b"data: a\n\ndata: [DONE]"), vec![a.clone(), b"data: [DONE]\n\n".to_vec()]);
        assert_eq!(finish(b"data: [DONE]\r\n"), vec![b"data: [DONE]\r\n\r\n".to_vec()]);
        assert_eq!(finish(b"data: a\n\n\n"), vec![a.clone()], "a stray line end is no event");
        assert_eq!(finish(b"data: a\n\n"), vec![a]);
    }

    #[test]
    fn single_data_reads_one_line_payloads_only() {
        assert_eq!(single_data(b"data: {\"x\":1}\n\n"), Some(&b"{\"x\":1}"[..]));
        assert_eq!(single_data(b"event: e\r\ndata:[DONE]\r\n\r\n"), Some(&b"[DONE]"[..]));
        assert_eq!(single_data(b": comment\n\n"), None);
        assert_eq!(single_data(b"data: a\ndata: b\n\n"), None);
    }
}
