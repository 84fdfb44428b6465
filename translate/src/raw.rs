//! Raw JSON carried between dialects without being rebuilt.
//!
//! Message text, image data, tool schemas and tool arguments are the bulk of
//! every request and response, and no dialect needs to look inside them. A
//! [`Raw`] holds such a value exactly as it appeared on the wire (a string
//! keeps its quotes and escapes, an object its key order and number text), so
//! writing it into another dialect is one copy. When the source is a slice of
//! the request body, nothing is copied until that write.
//!
//! The few places that must change a value's form have helpers here:
//! escaping a raw object into a JSON string (OpenAI's tool-call `arguments`
//! are a string holding JSON), reading such a string back into an object, and
//! joining string literals (several system blocks into one system message)
//! without decoding them.

use std::borrow::Cow;

use serde::Deserialize;
use sonic_rs::LazyValue;

/// One JSON value as it appeared on the wire. See the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct Raw<'a>(Cow<'a, str>);

impl std::fmt::Debug for Raw<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        LazyValue::deserialize(d).map(|v| Raw(v.as_raw_cow()))
    }
}

impl<'a> Raw<'a> {
    /// Wraps text the caller knows to be one valid JSON value.
    pub fn from_json(json: impl Into<Cow<'a, str>>) -> Raw<'a> {
        Raw(json.into())
    }

    /// A JSON string literal holding `text`.
    pub fn string(text: &str) -> Raw<'static> {
        let mut out = Vec::with_capacity(text.len() + 2);
        write_json_string(&mut out, text);
        Raw(Cow::Owned(String::from_utf8(out).unwrap_or_default()))
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        &self.0
    }

    /// The JSON text with the lifetime of the source, when it is a slice of
    /// it (always, for a value parsed from a byte slice).
    pub fn as_borrowed(&self) -> Option<&'a str> {
        match &self.0 {
            Cow::Borrowed(s) => Some(s),
            Cow::Owned(_) => None,
        }
    }

    /// The text of a string literal, borrowed from the source when it has
    /// no escapes, decoded otherwise.
    pub fn text(&self) -> Option<Cow<'a, str>> {
        match &self.0 {
            Cow::Borrowed(s)
                if s.len() >= 2
                    && s.starts_with('"')
                    && s.ends_with('"')
                    && memchr::memchr(b'\\', s.as_bytes()).is_none() =>
            {
                Some(Cow::Borrowed(&s[1..s.len() - 1]))
            }
            _ => self.decode_string().map(|c| Cow::Owned(c.into_owned())),
        }
    }

    pub fn into_owned(self) -> Raw<'static> {
        Raw(Cow::Owned(self.0.into_owned()))
    }

    pub fn is_string(&self) -> bool {
        self.0.starts_with('"')
    }

    pub fn is_object(&self) -> bool {
        self.0.starts_with('{')
    }

    pub fn is_array(&self) -> bool {
        self.0.starts_with('[')
    }

    pub fn is_null(&self) -> bool {
        &*self.0 == "null"
    }

    /// A string literal with nothing but whitespace in it (`""`, `" \n"`).
    /// Escapes other than whitespace ones count as content.
    pub fn is_blank_string(&self) -> bool {
        let Some(inner) = self.string_body() else { return false };
        let mut bytes = inner.as_bytes().iter();
        while let Some(&b) = bytes.next() {
            match b {
                b' ' => {}
                b'\\' => match bytes.next() {
                    Some(b'n' | b't' | b'r') => {}
                    _ => return false,
                },
                _ => return false,
            }
        }
        true
    }

    /// The characters between a string literal's quotes, still escaped.
    pub fn string_body(&self) -> Option<&str> {
        let s = &*self.0;
        (s.len() >= 2 && s.starts_with('"') && s.ends_with('"')).then(|| &s[1..s.len() - 1])
    }

    /// The decoded text of a string literal.
    pub fn decode_string(&self) -> Option<Cow<'_, str>> {
        let body = self.string_body()?;
        if memchr::memchr(b'\\', body.as_bytes()).is_none() {
            return Some(Cow::Borrowed(body));
        }
        unescape(body).map(Cow::Owned)
    }

    /// The number, for a numeric literal.
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }
}

impl Default for Raw<'_> {
    /// The empty string literal.
    fn default() -> Self {
        Raw(Cow::Borrowed("\"\""))
    }
}

/// Decodes the inside of a JSON string literal. `None` for a bad escape or
/// a lone surrogate.
fn unescape(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..at]);
        let bytes = rest.as_bytes();
        let escape = *bytes.get(at + 1)?;
        rest = &rest[at + 2..];
        let c = match escape {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let (unit, tail) = hex4(rest)?;
                rest = tail;
                if (0xD800..0xDC00).contains(&unit) {
                    let tail = rest.strip_prefix("\\u")?;
                    let (low, tail) = hex4(tail)?;
                    rest = tail;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                } else {
                    char::from_u32(unit)?
                }
            }
            _ => return None,
        };
        out.push(c);
    }
    out.push_str(rest);
    Some(out)
}

fn hex4(s: &str) -> Option<(u32, &str)> {
    let digits = s.get(..4)?;
    Some((u32::from_str_radix(digits, 16).ok()?, &s[4..]))
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    write_escaped(out, s.as_bytes());
    out.push(b'"');
}

/// Appends `bytes` escaped for the inside of a JSON string literal.
pub fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Writes a raw JSON value as a JSON string holding its text: how an
/// Anthropic, Gemini or Bedrock tool input becomes OpenAI's `arguments`.
pub fn write_as_string(out: &mut Vec<u8>, raw: &Raw<'_>) {
    out.push(b'"');
    write_escaped(out, raw.json().as_bytes());
    out.push(b'"');
}

/// Writes string literals as one literal, `separator` (already escaped)
/// between them, without decoding any of them.
pub fn write_joined<'r>(out: &mut Vec<u8>, parts: impl IntoIterator<Item = &'r Raw<'r>>, separator: &str) {
    out.push(b'"');
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(separator.as_bytes());
        }
        out.extend_from_slice(part.string_body().unwrap_or_default().as_bytes());
    }
    out.push(b'"');
}

/// The length of the JSON string literal at the start of `bytes`, quotes
/// included, if there is a well-formed one (no raw control characters).
pub fn string_literal_len(bytes: &[u8]) -> Option<usize> {
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            0..=0x1f => return None,
            _ => i += 1,
        }
    }
    None
}

/// What a JSON string holding a tool's arguments turns out to hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Arguments<'a> {
    /// A JSON object (an empty string counts as `{}`).
    Object(Cow<'a, str>),
    /// Anything else: not JSON, or JSON that is not an object.
    NotAnObject,
}

/// Reads OpenAI-style arguments (a JSON string whose text is JSON) as an object.
pub fn arguments_object<'r>(encoded: &'r Raw<'_>) -> Arguments<'r> {
    let Some(text) = encoded.decode_string() else { return Arguments::NotAnObject };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Arguments::Object(Cow::Borrowed("{}"));
    }
    if !trimmed.starts_with('{') || !crate::json::is_json(trimmed) {
        return Arguments::NotAnObject;
    }
    match text {
        Cow::Borrowed(b) => Arguments::Object(Cow::Borrowed(b.trim())),
        Cow::Owned(o) => Arguments::Object(Cow::Owned(o.trim().to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_round_trips() {
        let mut out = Vec::new();
        write_json_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, b"\"a\\\"b\\\\c\\nd\\u0001\xc3\xa9\"");
        let raw = Raw::from_json(String::from_utf8(out).unwrap());
        assert_eq!(raw.decode_string().unwrap(), "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn object_as_string_and_back() {
        let obj = Raw::from_json(r#"{"city": "Pa\"ris"}"#);
        let mut out = Vec::new();
        write_as_string(&mut out, &obj);
        let encoded = Raw::from_json(String::from_utf8(out).unwrap());
        assert_eq!(encoded.json(), r#""{\"city\": \"Pa\\\"ris\"}""#);
        assert_eq!(arguments_object(&encoded), Arguments::Object(Cow::Borrowed(r#"{"city": "Pa\"ris"}"#)));
    }

    #[test]
    fn arguments_edge_cases() {
        assert_eq!(arguments_object(&Raw::from_json(r#""""#)), Arguments::Object(Cow::Borrowed("{}")));
        assert_eq!(arguments_object(&Raw::from_json(r#""{bad json""#)), Arguments::NotAnObject);
        assert_eq!(arguments_object(&Raw::from_json(r#""[1]""#)), Arguments::NotAnObject);
        assert_eq!(arguments_object(&Raw::from_json("42")), Arguments::NotAnObject);
    }

    #[test]
    fn string_literals_are_measured_with_their_escapes() {
        assert_eq!(string_literal_len(br#""ab\"c"}"#), Some(7));
        assert_eq!(string_literal_len(br#""ab\\"}"#), Some(6));
        assert_eq!(string_literal_len(br#""open"#), None);
        assert_eq!(string_literal_len(b"\"raw\nnewline\""), None);
        assert_eq!(string_literal_len(b"x"), None);
    }

    #[test]
    fn unescapes_every_json_escape() {
        let raw = Raw::from_json(r#""q\" b\\ s\/ \b\f\n\r\t \u00e9 \ud83c\udf89""#);
        assert_eq!(raw.decode_string().unwrap(), "q\" b\\ s/ \u{8}\u{c}\n\r\t é 🎉");
        assert_eq!(Raw::from_json(r#""\ud83c""#).decode_string(), None);
        assert_eq!(Raw::from_json(r#""\x""#).decode_string(), None);
        assert_eq!(Raw::from_json(r#""\u12""#).decode_string(), None);
    }

    #[test]
    fn blank_strings() {
        assert!(Raw::from_json(r#""""#).is_blank_string());
        assert!(Raw::from_json(r#"" \n\t""#).is_blank_string());
        assert!(!Raw::from_json(r#"" x ""#).is_blank_string());
        assert!(!Raw::from_json(r#""\u0041""#).is_blank_string());
        assert!(!Raw::from_json("null").is_blank_string());
    }

    #[test]
    fn joins_without_decoding() {
        let a = Raw::from_json(r#""one\n""#);
        let b = Raw::from_json(r#""two""#);
        let mut out = Vec::new();
        write_joined(&mut out, [&a, &b], "\\n\\n");
        assert_eq!(out, br#""one\n\n\ntwo""#);
    }
}
