//! The Gemini `generateContent` dialect, on the provider side only:
//! requests are written for it, responses, streams and errors are read from
//! it. No client speaks it to corelay, so there is no parser of Gemini
//! requests and no writer of Gemini responses.
//!
//! The mapping follows `shared/providers/gemini.md` §7–§8; the policies
//! where the dialects disagree are listed in [`request`] (requests) and
//! [`response`] (answers and errors). The model is not in the body but in
//! the URL, which [`path`] builds.

pub mod request;
pub mod response;
pub mod stream;

/// The path of a `generateContent` call for `model`, or of its streamed
/// twin (`:streamGenerateContent?alt=sse`: without `alt=sse` Gemini streams
/// one JSON array instead of server-sent events).
///
/// `model` is the bare id (`gemini-2.5-flash`); a `models/` prefix is
/// removed and a `tunedModels/` one kept as the collection, as Google's SDK
/// does. The id is percent-encoded, so nothing in it can change the path.
pub fn path(model: &str, stream: bool) -> String {
    let (collection, id) = match model.strip_prefix("tunedModels/") {
        Some(id) => ("tunedModels", id),
        None => ("models", model.strip_prefix("models/").unwrap_or(model)),
    };
    let mut path = String::with_capacity(model.len() + 48);
    path.push_str("/v1beta/");
    path.push_str(collection);
    path.push('/');
    percent_encode(id, &mut path);
    path.push_str(if stream { ":streamGenerateContent?alt=sse" } else { ":generateContent" });
    path
}

/// Appends `segment` with everything but RFC 3986's unreserved characters
/// percent-encoded.
fn percent_encode(segment: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::path;

    #[test]
    fn paths() {
        assert_eq!(path("gemini-2.5-flash", false), "/v1beta/models/gemini-2.5-flash:generateContent");
        assert_eq!(
            path("models/gemini-2.5-flash", true),
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(path("tunedModels/my-model", false), "/v1beta/tunedModels/my-model:generateContent");
        assert_eq!(path("a/b:c?d é", false), "/v1beta/models/a%2Fb%3Ac%3Fd%20%C3%A9:generateContent");
    }
}
