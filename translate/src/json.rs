//! A validating JSON reader that walks a request body once.
//!
//! The OpenAI chat request is the body corelay translates most often, and
//! serde over sonic-rs spent most of its translation cost walking it: for a
//! 1.7 KB tool-dense body, 26k of 32k instructions (callgrind) went to the
//! serde visitors, and array content was parsed twice (once as a raw value,
//! once as parts). This reader is what the request parsers call instead: it
//! checks the whole grammar of RFC 8259 in the same pass that hands the
//! parser its fields, and gives every value the parser does not look into as
//! a [`Raw`] slice of the body.
//!
//! What it checks: UTF-8 once for the whole body (simdutf8), then the
//! grammar: strings (escapes, no raw control characters), numbers, literals,
//! nesting up to [`DEPTH_MAX`], and nothing after the top-level value. Keys
//! with escapes are decoded before they are compared, as serde would.
//! String scanning looks at eight bytes at a time (SWAR), since content
//! strings are most of every body.

use std::borrow::Cow;

use crate::error::Error;
use crate::raw::Raw;

/// The deepest nesting of objects and arrays accepted, as serde_json's
/// default recursion limit.
pub const DEPTH_MAX: usize = 128;

/// A cursor over one JSON document. See the module docs.
pub struct Reader<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

/// The members of an object being read; see [`Reader::object`].
pub struct Members {
    first: bool,
}

/// The elements of an array being read; see [`Reader::array`].
pub struct Elements {
    first: bool,
}

/// The error of a body that stops in the middle of a value.
const END: &str = "unexpected end of the body";

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// A mask with the high bit set in the lowest byte of `word` that is a
/// quote, a backslash or a control character (and possibly in bytes above
/// it, which the caller never looks at).
fn specials(word: u64) -> u64 {
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    (zero_byte(quote) | zero_byte(backslash) | (word.wrapping_sub(ONES * 0x20) & !word)) & HIGHS
}

/// A syntax error: where, and what was expected there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fault {
    at: usize,
    what: &'static str,
}

fn fault<T>(at: usize, what: &'static str) -> Result<T, Fault> {
    Err(Fault { at, what })
}

/// The position of the first byte at or after `at` that is not white space.
#[inline(always)]
fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(at) {
        at += 1;
    }
    at
}

/// Scans the string literal whose opening quote is at `at - 1`. Returns
/// the position after its closing quote and whether it holds escapes.
#[inline(always)]
fn scan_string(bytes: &[u8], mut at: usize) -> Result<(usize, bool), Fault> {
    let mut escaped = false;
    loop {
        while let Some(chunk) = bytes.get(at..at + 8) {
            let mask = specials(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
            if mask != 0 {
                at += (mask.trailing_zeros() / 8) as usize;
                break;
            }
            at += 8;
        }
        match bytes.get(at) {
            Some(b'"') => return Ok((at + 1, escaped)),
            Some(b'\\') => {
                escaped = true;
                at += match bytes.get(at + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
                    Some(b'u') => match hex4(bytes, at + 2) {
                        Some(0xD800..=0xDBFF) if bytes.get(at + 6..at + 8) == Some(b"\\u") => {
                            match hex4(bytes, at + 8) {
                                Some(0xDC00..=0xDFFF) => 12,
                                _ => return fault(at, "unpaired surrogate in a string"),
                            }
                        }
                        Some(0xD800..=0xDFFF) => return fault(at, "unpaired surrogate in a string"),
                        Some(_) => 6,
                        None => return fault(at, "invalid escape in a string"),
                    },
                    _ => return fault(at, "invalid escape in a string"),
                };
            }
            Some(&c) if c < 0x20 => return fault(at, "control character in a string"),
            Some(_) => at += 1,
            None => return fault(at, "unterminated string"),
        }
    }
}

/// The four hex digits at `at`, as a number.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    digits.iter().try_fold(0, |n, &c| Some(n * 16 + char::from(c).to_digit(16)?))
}

/// Scans the number that starts at `at`; returns the position after it. A
/// number too large for an `f64` is refused, as serde_json and sonic-rs do.
fn scan_number(bytes: &[u8], start: usize) -> Result<usize, Fault> {
    /// Integer digits past which a number may overflow an `f64`.
    const DIGITS_SAFE: usize = 300;
    let mut at = start;
    let digits = |at: usize| bytes.get(at..).map_or(0, |rest| rest.iter().take_while(|c| c.is_ascii_digit()).count());
    if bytes.get(at) == Some(&b'-') {
        at += 1;
    }
    match digits(at) {
        0 => return fault(at, "expected a digit"),
        n if n > 1 && bytes[at] == b'0' => return fault(at, "a number may not start with 0"),
        n => at += n,
    }
    if bytes.get(at) == Some(&b'.') {
        match digits(at + 1) {
            0 => return fault(at + 1, "expected a digit after the decimal point"),
            n => at += 1 + n,
        }
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        match digits(at) {
            0 => return fault(at, "expected a digit in the exponent"),
            n => at += n,
        }
    }
    let text = std::str::from_utf8(&bytes[start..at]).unwrap_or_default();
    if (at - start > DIGITS_SAFE || text.contains(['e', 'E'])) && !text.parse::<f64>().is_ok_and(f64::is_finite) {
        return fault(start, "number out of range");
    }
    Ok(at)
}

/// Scans `word` (a literal) at `at`.
fn scan_literal(bytes: &[u8], at: usize, word: &[u8]) -> Result<usize, Fault> {
    match bytes.get(at..at + word.len()) {
        Some(found) if found == word => Ok(at + word.len()),
        _ => fault(at, "expected a JSON value"),
    }
}

/// A key scanned with its colon.
struct Key {
    /// The end of the key's literal.
    end: usize,
    escaped: bool,
    /// The position after the colon.
    value: usize,
}

/// Scans a key and its colon, at the key's opening quote (white space
/// skipped).
#[inline]
fn scan_key(bytes: &[u8], at: usize) -> Result<Key, Fault> {
    match bytes.get(at) {
        Some(b'"') => {}
        Some(_) => return fault(at, "expected a key"),
        None => return fault(at, END),
    }
    let (end, escaped) = scan_string(bytes, at + 1)?;
    let at = skip_space(bytes, end);
    match bytes.get(at) {
        Some(b':') => Ok(Key { end, escaped, value: at + 1 }),
        Some(_) => fault(at, "expected ':'"),
        None => fault(at, END),
    }
}

/// Scans one value of any kind at `at` (white space skipped), nesting at
/// most `room` levels deep; returns the position after it. A loop with the
/// open containers as bits of a word, not recursion: tool schemas are
/// skipped this way, and they are most of a tool-heavy body.
fn scan_value(bytes: &[u8], mut at: usize, room: usize) -> Result<usize, Fault> {
    // The containers around the current one, innermost in the lowest bit,
    // set for an object; and the current one.
    let mut outer: u128 = 0;
    let mut in_object = false;
    let mut depth = 0;
    loop {
        // A value is expected at `at`.
        at = skip_space(bytes, at);
        match bytes.get(at) {
            Some(b'"') => at = scan_string(bytes, at + 1)?.0,
            Some(&open @ (b'{' | b'[')) => {
                if depth >= room {
                    return fault(at, "nested too deeply");
                }
                if depth > 0 {
                    outer = (outer << 1) | u128::from(in_object);
                }
                depth += 1;
                in_object = open == b'{';
                at = skip_space(bytes, at + 1);
                let close = if in_object { b'}' } else { b']' };
                if bytes.get(at) != Some(&close) {
                    if in_object {
                        at = scan_key(bytes, at)?.value;
                    }
                    continue;
                }
                // An empty container: closed below.
            }
            Some(b't') => at = scan_literal(bytes, at, b"true")?,
            Some(b'f') => at = scan_literal(bytes, at, b"false")?,
            Some(b'n') => at = scan_literal(bytes, at, b"null")?,
            Some(b'-' | b'0'..=b'9') => at = scan_number(bytes, at)?,
            Some(_) => return fault(at, "expected a JSON value"),
            None => return fault(at, END),
        }
        // After a value: the end of it all, a comma or a closing bracket.
        loop {
            if depth == 0 {
                return Ok(at);
            }
            at = skip_space(bytes, at);
            match (bytes.get(at), in_object) {
                (Some(b','), true) => {
                    at = scan_key(bytes, skip_space(bytes, at + 1))?.value;
                    break;
                }
                (Some(b','), false) => {
                    at += 1;
                    break;
                }
                (Some(b'}'), true) | (Some(b']'), false) => {
                    depth -= 1;
                    at += 1;
                    in_object = outer & 1 != 0;
                    outer >>= 1;
                }
                (None, _) => return fault(at, END),
                (_, true) => return fault(at, "expected ',' or '}'"),
                (_, false) => return fault(at, "expected ',' or ']'"),
            }
        }
    }
}

impl<'a> Reader<'a> {
    /// A reader over `body`, which must be UTF-8.
    pub fn new(body: &'a [u8]) -> Result<Reader<'a>, Error> {
        let text = simdutf8::basic::from_utf8(body).map_err(|_| Error::Json("the body is not valid UTF-8".into()))?;
        Ok(Reader { text, pos: 0, depth: 0 })
    }

    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The first byte of the next value or token, white space skipped; not
    /// consumed.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.pos = skip_space(self.bytes(), self.pos);
        self.bytes().get(self.pos).copied()
    }

    /// A syntax error at the current position, as `what at line L column C`.
    pub fn syntax(&self, what: &str) -> Error {
        self.error(Fault { at: self.pos, what: "" }, what)
    }

    #[cold]
    fn error(&self, fault: Fault, what: &str) -> Error {
        let what = if what.is_empty() { fault.what } else { what };
        let before = &self.bytes()[..fault.at.min(self.text.len())];
        let line = memchr::memchr_iter(b'\n', before).count() + 1;
        let column = before.len() - memchr::memrchr(b'\n', before).map_or(0, |at| at + 1) + 1;
        Error::Json(format!("{what} at line {line} column {column}"))
    }

    #[inline]
    fn fail(&self, fault: Fault) -> Error {
        self.error(fault, "")
    }

    /// Checks that nothing but white space follows the top-level value.
    pub fn finish(&mut self) -> Result<(), Error> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.syntax("trailing characters after the JSON value")),
        }
    }

    #[inline]
    fn open(&mut self, c: u8, what: &str) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > DEPTH_MAX {
            return Err(self.syntax("nested too deeply"));
        }
        match self.peek() {
            Some(next) if next == c => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(self.syntax(what)),
            None => Err(self.syntax(END)),
        }
    }

    /// Opens the object that comes next; the caller has checked that the
    /// next byte is `{`. Read its members with [`Members::next`].
    #[inline]
    pub fn object(&mut self) -> Result<Members, Error> {
        self.open(b'{', "expected an object")?;
        Ok(Members { first: true })
    }

    /// Opens the array that comes next; the caller has checked that the next
    /// byte is `[`. Step through its elements with [`Elements::next`].
    #[inline]
    pub fn array(&mut self) -> Result<Elements, Error> {
        self.open(b'[', "expected an array")?;
        Ok(Elements { first: true })
    }

    /// Reads one value of any kind and returns its text.
    #[inline]
    pub fn value(&mut self) -> Result<Raw<'a>, Error> {
        let start = skip_space(self.bytes(), self.pos);
        let end = match self.bytes().get(start) {
            Some(b'"') => scan_string(self.bytes(), start + 1).map(|(end, _)| end),
            _ => scan_value(self.bytes(), start, DEPTH_MAX - self.depth),
        };
        self.pos = end.map_err(|f| self.fail(f))?;
        Ok(Raw::from_json(&self.text[start..self.pos]))
    }

    /// Reads past one value of any kind, checking it.
    #[inline]
    pub fn skip(&mut self) -> Result<(), Error> {
        self.value().map(drop)
    }

    /// Consumes `null` if it comes next.
    #[inline]
    pub fn null(&mut self) -> Result<bool, Error> {
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        self.pos = scan_literal(self.bytes(), self.pos, b"null").map_err(|f| self.fail(f))?;
        Ok(true)
    }

    /// Reads the string literal that comes next and returns it, quotes
    /// included, with whether it holds escapes.
    #[inline]
    pub fn string(&mut self) -> Result<(&'a str, bool), Error> {
        let start = skip_space(self.bytes(), self.pos);
        if self.bytes().get(start) != Some(&b'"') {
            self.pos = start;
            return Err(self.syntax("expected a string"));
        }
        let (end, escaped) = scan_string(self.bytes(), start + 1).map_err(|f| self.fail(f))?;
        self.pos = end;
        Ok((&self.text[start..end], escaped))
    }
}

impl Members {
    /// The next member's key, decoded, with the reader at its value; `None`
    /// after the closing brace. The caller must read or skip the value.
    #[inline]
    pub fn next<'a>(&mut self, reader: &mut Reader<'a>) -> Result<Option<Cow<'a, str>>, Error> {
        match reader.peek() {
            Some(b'}') => {
                reader.pos += 1;
                reader.depth -= 1;
                return Ok(None);
            }
            Some(b',') if !self.first => reader.pos = skip_space(reader.bytes(), reader.pos + 1),
            None => return Err(reader.syntax(END)),
            _ if self.first => {}
            _ => return Err(reader.syntax("expected ',' or '}'")),
        }
        self.first = false;
        let start = reader.pos;
        let key = scan_key(reader.bytes(), start).map_err(|f| reader.fail(f))?;
        reader.pos = key.value;
        let literal = &reader.text[start..key.end];
        if !key.escaped {
            return Ok(Some(Cow::Borrowed(&literal[1..literal.len() - 1])));
        }
        match Raw::from_json(literal).decode_string() {
            Some(key) => Ok(Some(Cow::Owned(key.into_owned()))),
            None => Err(reader.syntax("invalid escape in a key")),
        }
    }
}

impl Elements {
    /// Whether another element follows, with the reader at it; `false`
    /// after the closing bracket. The caller must read or skip the element.
    #[inline]
    pub fn next(&mut self, reader: &mut Reader<'_>) -> Result<bool, Error> {
        match reader.peek() {
            Some(b']') => {
                reader.pos += 1;
                reader.depth -= 1;
                return Ok(false);
            }
            Some(b',') if !self.first => reader.pos += 1,
            None => return Err(reader.syntax(END)),
            _ if self.first => {}
            _ => return Err(reader.syntax("expected ',' or ']'")),
        }
        self.first = false;
        Ok(true)
    }
}

/// Whether `text` is exactly one JSON value (white space around it
/// allowed).
pub fn is_json(text: &str) -> bool {
    let bytes = text.as_bytes();
    scan_value(bytes, 0, DEPTH_MAX).is_ok_and(|end| skip_space(bytes, end) == bytes.len())
}

/// The boolean a literal holds: `Some(None)` for `null`, `None` when it is
/// neither.
pub fn as_bool(raw: &Raw<'_>) -> Option<Option<bool>> {
    match raw.json() {
        "true" => Some(Some(true)),
        "false" => Some(Some(false)),
        "null" => Some(None),
        _ => None,
    }
}

/// The number a literal holds, as `f64`: `Some(None)` for `null`.
pub fn as_f64(raw: &Raw<'_>) -> Option<Option<f64>> {
    match raw.json().as_bytes().first() {
        Some(b'n') => Some(None),
        Some(b'-' | b'0'..=b'9') => raw.json().parse().ok().map(Some),
        _ => None,
    }
}

/// A non-negative integer literal: `Some(None)` for `null`, `None` for
/// anything else (fractions and exponents included, as serde would).
pub fn as_u64(raw: &Raw<'_>) -> Option<Option<u64>> {
    match raw.json().as_bytes().first() {
        Some(b'n') => Some(None),
        Some(b'0'..=b'9') => raw.json().parse().ok().map(Some),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Reader;

    fn check(json: &str) -> Result<(), String> {
        let mut reader = Reader::new(json.as_bytes()).map_err(|e| e.to_string())?;
        reader.skip().map_err(|e| e.to_string())?;
        reader.finish().map_err(|e| e.to_string())
    }

    #[test]
    fn valid_documents_are_read_whole() {
        for json in [
            "{}",
            "[]",
            " {\"a\" : [1, -2.5e+3, 0, 0.25, true, false, null, \"x\\\"y\\u00e9\\n\"] }\n",
            "\"\\ud83d\\ude00 a pair\"",
            "\"héllo wörld, a string longer than eight bytes\"",
            "{\"k\\u0065y\":{\"nested\":[[[{}]]]}}",
            "-0",
            "1E9",
        ] {
            assert_eq!(check(json), Ok(()), "{json}");
        }
    }

    #[test]
    fn invalid_documents_are_refused_with_a_position() {
        for (json, error) in [
            ("", "unexpected end of the body at line 1 column 1"),
            ("{\"a\":1,}", "expected a key at line 1 column 8"),
            ("{\"a\" 1}", "expected ':' at line 1 column 6"),
            ("[1 2]", "expected ',' or ']' at line 1 column 4"),
            ("[01]", "a number may not start with 0 at line 1 column 2"),
            ("[1.]", "expected a digit after the decimal point at line 1 column 4"),
            ("[1e]", "expected a digit in the exponent at line 1 column 4"),
            ("[-]", "expected a digit at line 1 column 3"),
            ("\"abcdefghij\\x\"", "invalid escape in a string at line 1 column 12"),
            ("\"\\u12g4\"", "invalid escape in a string at line 1 column 2"),
            ("\"\\ud800\"", "unpaired surrogate in a string at line 1 column 2"),
            ("\"\\ud800\\u0041\"", "unpaired surrogate in a string at line 1 column 2"),
            ("\"a\\udc00\"", "unpaired surrogate in a string at line 1 column 3"),
            ("[1e309]", "number out of range at line 1 column 2"),
            ("\"abcdefgh\tij\"", "control character in a string at line 1 column 10"),
            ("\"abcdefghijkl", "unterminated string at line 1 column 14"),
            ("{}\n {}", "trailing characters after the JSON value at line 2 column 2"),
            ("[tru]", "expected a JSON value at line 1 column 2"),
            ("{'a':1}", "expected a key at line 1 column 2"),
            ("[nul", "expected a JSON value at line 1 column 2"),
            ("{\"a\":[1,\n", "unexpected end of the body at line 2 column 1"),
            ("{\"a\"", "unexpected end of the body at line 1 column 5"),
        ] {
            assert_eq!(check(json), Err(format!("request body is not valid JSON: {error}")), "{json}");
        }
        assert!(check(&"[".repeat(200)).unwrap_err().contains("nested too deeply"));
        assert_eq!(
            Reader::new(b"\"\xff\"").err().map(|e| e.to_string()).as_deref(),
            Some("request body is not valid JSON: the body is not valid UTF-8")
        );
    }

    #[test]
    fn string_scan_finds_every_special_byte_at_every_offset() {
        // A special byte at each position of the eight-byte words, after
        // high (non-ASCII) bytes that must not be taken for one.
        for at in 0..24 {
            for special in ["\\\"", "\\n", "\\u0041", "\u{1}"] {
                let mut s = String::from("\"");
                s.push_str(&"é".repeat(at / 2));
                s.push_str(&"a".repeat(at % 2));
                s.push_str(special);
                s.push_str("tail\"");
                let control = special == "\u{1}";
                assert_eq!(check(&s).is_err(), control, "{s:?}");
            }
        }
    }
}
