//! Just enough of `multipart/form-data` (RFC 7578, RFC 2046 §5.1) to relay
//! OpenAI's audio uploads: the boundary of a content type, and the form's
//! parts by name, as ranges of the body, so that the gateway can read the
//! model and splice another name in without touching the file part.
//!
//! It reads the body as a provider's parser does, so that both see the same
//! fields: a delimiter counts only at the start of the body or after a line
//! break, parameters are read with their quoted strings, a content type
//! must name exactly one valid boundary, and a body that does not end with
//! its closing delimiter is refused.

use std::ops::Range;

/// One part of a form: its `name` and the range of its value in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub value: Range<usize>,
}

/// The boundary of a `multipart/form-data` content type: exactly one
/// `boundary` parameter, 1 to 70 of the characters RFC 2046 allows.
pub fn boundary(content_type: &[u8]) -> Option<Vec<u8>> {
    let media_end = memchr::memchr(b';', content_type).unwrap_or(content_type.len());
    if !content_type[..media_end].trim_ascii().eq_ignore_ascii_case(b"multipart/form-data") {
        return None;
    }
    let params = parameters(&content_type[media_end..])?;
    let mut found = params.into_iter().filter(|(name, _)| name.eq_ignore_ascii_case("boundary"));
    let (_, value) = found.next()?;
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b);
    let ok = found.next().is_none()
        && (1..=70).contains(&value.len())
        && value.iter().all(|&b| allowed(b))
        && !value.ends_with(b" ");
    ok.then_some(value)
}

/// Every part of a form body, in order. `None` when the body is not a
/// well-formed form with this boundary (no opening or closing delimiter,
/// a part without a blank line after its headers, or without a name).
pub fn parts(body: &[u8], boundary: &[u8]) -> Option<Vec<Part>> {
    let mut delimiter = Vec::with_capacity(boundary.len() + 4);
    delimiter.extend_from_slice(b"\r\n--");
    delimiter.extend_from_slice(boundary);
    let finder = memchr::memmem::Finder::new(&delimiter);
    // The first delimiter may open the body without the line break.
    let mut at = if body.starts_with(&delimiter[2..]) { 0 } else { finder.find(body)? + 2 };
    let mut parts = Vec::new();
    loop {
        let after = at + delimiter.len() - 2;
        let rest = body.get(after..)?;
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        let tail = skip_padding(rest).strip_prefix(b"\r\n")?;
        let part_start = body.len() - tail.len();
        // The part ends where the next delimiter's line break starts.
        let end = part_start + finder.find(body.get(part_start..)?)?;
        let part = &body[part_start..end];
        let heads_end = memchr::memmem::find(part, b"\r\n\r\n")
            .map(|i| i + 4)
            .or_else(|| part.starts_with(b"\r\n").then_some(2))?;
        let name = form_data_name(&part[..heads_end])?;
        parts.push(Part { name, value: part_start + heads_end..end });
        at = end + 2;
    }
}

/// Whitespace a sender may put after a delimiter, before its line break.
fn skip_padding(rest: &[u8]) -> &[u8] {
    let n = rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &rest[n..]
}

/// The `name` of a part whose headers say `Content-Disposition: form-data`.
fn form_data_name(heads: &[u8]) -> Option<String> {
    heads.split(|&b| b == b'\n').find_map(|line| {
        let line = line.trim_ascii();
        let colon = memchr::memchr(b':', line)?;
        if !line[..colon].trim_ascii().eq_ignore_ascii_case(b"content-disposition") {
            return None;
        }
        let value = &line[colon + 1..];
        let kind_end = memchr::memchr(b';', value).unwrap_or(value.len());
        if !value[..kind_end].trim_ascii().eq_ignore_ascii_case(b"form-data") {
            return None;
        }
        let params = parameters(&value[kind_end..])?;
        let mut names = params.into_iter().filter(|(key, _)| key.eq_ignore_ascii_case("name"));
        let (_, name) = names.next()?;
        if names.next().is_some() {
            return None;
        }
        String::from_utf8(name).ok()
    })
}

/// `; key=value` parameters, values as tokens or quoted strings (escapes
/// removed). `None` when they do not parse.
fn parameters(mut text: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    loop {
        text = text.trim_ascii_start();
        if text.is_empty() {
            return Some(out);
        }
        text = text.strip_prefix(b";")?.trim_ascii_start();
        if text.is_empty() {
            return Some(out);
        }
        let eq = memchr::memchr(b'=', text)?;
        let key = std::str::from_utf8(text[..eq].trim_ascii()).ok()?.to_owned();
        text = text[eq + 1..].trim_ascii_start();
        let value = if let Some(quoted) = text.strip_prefix(b"\"") {
            let mut value = Vec::new();
            let mut i = 0;
            loop {
                match *quoted.get(i)? {
                    b'"' => break,
                    b'\\' => {
                        value.push(*quoted.get(i + 1)?);
                        i += 2;
                    }
                    b => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
            text = &quoted[i + 1..];
            value
        } else {
            let end = text.iter().position(|&b| b == b';').unwrap_or(text.len());
            let value = text[..end].trim_ascii().to_vec();
            text = &text[end..];
            value
        };
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\nID3\x00\x01--xyz\r\n\r\n--xyz\r\ncontent-disposition: form-data; name=model\r\n\r\nwhisper-1\r\n--xyz\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nen\r\n--xyz--\r\n";

    fn value<'b>(body: &'b [u8], parts: &[Part], name: &str) -> Option<&'b [u8]> {
        parts.iter().find(|p| p.name == name).map(|p| &body[p.value.clone()])
    }

    #[test]
    fn boundaries_are_read_quoted_or_not_and_only_once() {
        assert_eq!(boundary(b"multipart/form-data; boundary=xyz").as_deref(), Some(&b"xyz"[..]));
        assert_eq!(boundary(b"Multipart/Form-Data;charset=utf-8; Boundary=\"a b\"").as_deref(), Some(&b"a b"[..]));
        for bad in [
            &b"application/json"[..],
            b"multipart/form-data",
            b"multipart/form-data; boundary=",
            b"multipart/form-data; boundary=a; boundary=b",
            b"multipart/form-data; x=\"; boundary=A\"; boundary=B\"",
            b"multipart/form-data; boundary=\"a\r\nb\"",
            b"multipart/form-data; boundary=\"unterminated",
        ] {
            assert_eq!(boundary(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        // The quoted `; boundary=A` is a value, not a parameter.
        assert_eq!(boundary(b"multipart/form-data; x=\"; boundary=A\"; boundary=B").as_deref(), Some(&b"B"[..]));
    }

    #[test]
    fn parts_are_found_by_name_past_binary_data() {
        let found = super::parts(BODY, b"xyz").unwrap();
        let names: Vec<&str> = found.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["file", "model", "language"]);
        assert_eq!(value(BODY, &found, "model"), Some(&b"whisper-1"[..]));
        assert_eq!(value(BODY, &found, "language"), Some(&b"en"[..]));
        // A delimiter counts only after a line break: `--xyz` inside the
        // file's bytes is data.
        assert_eq!(value(BODY, &found, "file"), Some(&b"ID3\x00\x01--xyz\r\n"[..]));
    }

    #[test]
    fn a_part_hidden_in_the_data_or_a_quoted_name_is_not_a_field() {
        // `name=model` inside a quoted filename is no name of the part.
        let body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"; name=model\"\r\n\r\nx\r\n--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nreal\r\n--B--\r\n";
        let found = super::parts(body, b"B").unwrap();
        assert_eq!(found.iter().filter(|p| p.name == "model").count(), 1);
        assert_eq!(value(body, &found, "model"), Some(&b"real"[..]));
        // A part header written inside a file part without a line break
        // before its delimiter is data, as a provider reads it.
        let body = b"--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nX--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nfake\r\n--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nreal\r\n--B--";
        let found = super::parts(body, b"B").unwrap();
        assert_eq!(found.iter().filter(|p| p.name == "model").count(), 1);
        assert_eq!(value(body, &found, "model"), Some(&b"real"[..]));
    }

    #[test]
    fn malformed_forms_are_refused() {
        assert_eq!(parts(BODY, b"other"), None);
        // Cut before the closing delimiter.
        assert_eq!(parts(&BODY[..BODY.len() - 9], b"xyz"), None);
        // A part with no name.
        assert_eq!(parts(b"--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B--", b"B"), None);
        // Headers without the blank line.
        assert_eq!(parts(b"--B\r\nContent-Disposition: form-data; name=a\r\n--B--", b"B"), None);
        // A part with no headers at all has no name either.
        assert_eq!(parts(b"--B\r\n\r\nx\r\n--B--", b"B"), None);
    }
}
