//! Minimal JSON string escaping for the hand-rendered response bodies.
//!
//! Every response is assembled by appending bytes (it is faster than building
//! a DOM and keeps the exact byte layout tests compare against); the only
//! dynamic pieces are strings such as the model name, which need escaping.

/// Appends `s` to `out` as a quoted JSON string.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s.as_bytes()[start..]);
    out.push(b'"');
}

/// `s` as a quoted JSON string, for `format!`-built bodies.
pub fn quote(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    push_str(&mut out, s);
    // push_str only appends ASCII escapes around valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends headers as a JSON object. Repeated names are joined with ", "
/// since a JSON object cannot repeat a key.
pub fn push_headers(out: &mut Vec<u8>, headers: &[(String, String)]) {
    out.push(b'{');
    let mut first = true;
    for (i, (name, _)) in headers.iter().enumerate() {
        if headers[..i].iter().any(|(n, _)| n == name) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        let values: Vec<&str> = headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
        push_str(out, name);
        out.push(b':');
        push_str(out, &values.join(", "));
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(s: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        assert_eq!(quoted("plain"), r#""plain""#);
        assert_eq!(quoted("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn agrees_with_a_json_parser() {
        let s = "tab\there \"q\" \u{7f} \u{1f} ünï";
        let parsed: String = sonic_rs::from_str(&quoted(s)).unwrap();
        assert_eq!(parsed, s);
    }
}
