//! Just enough of `multipart/form-data` (RFC 7578) to relay OpenAI's audio
//! uploads: the boundary of a content type, and where a named text field's
//! value lies in a body, so that the gateway can read the model and splice
//! another name in without touching the file part.

use std::ops::Range;

/// The boundary of a `multipart/form-data` content type, quotes removed.
pub fn boundary(content_type: &[u8]) -> Option<&[u8]> {
    let mut params = content_type.split(|&b| b == b';');
    let media = params.next()?.trim_ascii();
    if !media.eq_ignore_ascii_case(b"multipart/form-data") {
        return None;
    }
    params.find_map(|param| {
        let (name, value) = split_once(param.trim_ascii(), b'=')?;
        if !name.trim_ascii().eq_ignore_ascii_case(b"boundary") {
            return None;
        }
        let value = value.trim_ascii();
        let value = value.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(value);
        // RFC 2046: 1 to 70 characters.
        (1..=70).contains(&value.len()).then_some(value)
    })
}

/// Where the value of the form field `name` lies in `body`: the bytes
/// between its part's blank line and the next delimiter. `None` when no
/// part has that name.
pub fn field(body: &[u8], boundary: &[u8], name: &str) -> Option<Range<usize>> {
    let mut delimiter = Vec::with_capacity(boundary.len() + 4);
    delimiter.extend_from_slice(b"--");
    delimiter.extend_from_slice(boundary);
    let finder = memchr::memmem::Finder::new(&delimiter);
    let mut at = finder.find(body)?;
    loop {
        let part_start = at + delimiter.len();
        let rest = body.get(part_start..)?;
        if rest.starts_with(b"--") {
            return None; // the closing delimiter
        }
        // The part's end: the next delimiter, preceded by CRLF.
        let next = part_start + finder.find(rest)?;
        let part = body.get(part_start..next)?;
        let heads_end = memchr::memmem::find(part, b"\r\n\r\n")?;
        if names(&part[..heads_end], name) {
            let start = part_start + heads_end + 4;
            let end = next.checked_sub(2).filter(|&e| e >= start && body.get(e..next) == Some(b"\r\n"))?;
            return Some(start..end);
        }
        at = next;
    }
}

/// Whether a part's headers say `Content-Disposition: form-data; name="NAME"`.
fn names(heads: &[u8], name: &str) -> bool {
    heads.split(|&b| b == b'\n').any(|line| {
        let line = line.trim_ascii();
        let Some((header, value)) = split_once(line, b':') else { return false };
        header.trim_ascii().eq_ignore_ascii_case(b"content-disposition")
            && value.split(|&b| b == b';').skip(1).any(|param| {
                let Some((key, v)) = split_once(param.trim_ascii(), b'=') else { return false };
                let v = v.trim_ascii();
                let v = v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(v);
                key.trim_ascii().eq_ignore_ascii_case(b"name") && v == name.as_bytes()
            })
    })
}

fn split_once(bytes: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
    let i = memchr::memchr(at, bytes)?;
    Some((&bytes[..i], &bytes[i + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\nID3\x00\x01--xy\r\n--xyz\r\ncontent-disposition: form-data; name=model\r\n\r\nwhisper-1\r\n--xyz\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nen\r\n--xyz--\r\n";

    #[test]
    fn boundaries_are_read_quoted_or_not() {
        assert_eq!(boundary(b"multipart/form-data; boundary=xyz"), Some(&b"xyz"[..]));
        assert_eq!(boundary(b"Multipart/Form-Data;charset=utf-8; Boundary=\"a b\""), Some(&b"a b"[..]));
        assert_eq!(boundary(b"application/json"), None);
        assert_eq!(boundary(b"multipart/form-data"), None);
        assert_eq!(boundary(b"multipart/form-data; boundary="), None);
    }

    #[test]
    fn fields_are_found_by_name_past_binary_parts() {
        let model = field(BODY, b"xyz", "model").unwrap();
        assert_eq!(&BODY[model], b"whisper-1");
        let language = field(BODY, b"xyz", "language").unwrap();
        assert_eq!(&BODY[language], b"en");
        let file = field(BODY, b"xyz", "file").unwrap();
        assert_eq!(&BODY[file], b"ID3\x00\x01--xy");
        assert_eq!(field(BODY, b"xyz", "prompt"), None);
        assert_eq!(field(BODY, b"other", "model"), None);
        // A cut body has no field past the cut.
        assert_eq!(field(&BODY[..120], b"xyz", "model"), None);
    }
}
