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

/// `/v1beta/models/{model}:countTokens`.
pub fn count_tokens_path(model: &str) -> String {
    let path = path(model, false);
    match path.strip_suffix(":generateContent") {
        Some(base) => format!("{base}:countTokens"),
        None => path,
    }
}

/// Writes a `countTokens` body that counts everything a `generateContent`
/// request would send (system instruction and tools included): the request
/// wrapped as `generateContentRequest`, which then names its model.
pub fn write_count_tokens(
    request: &crate::canon::Request<'_>,
    options: request::Options,
    model: &str,
    out: &mut Vec<u8>,
) -> Result<(), crate::error::Error> {
    let mut inner = Vec::with_capacity(1024);
    request::write(request, options, &mut inner)?;
    out.extend_from_slice(b"{\"generateContentRequest\":{\"model\":");
    let name = if model.starts_with("models/") || model.starts_with("tunedModels/") {
        model.to_owned()
    } else {
        format!("models/{model}")
    };
    crate::raw::write_json_string(out, &name);
    match inner.strip_prefix(b"{") {
        Some(rest) if rest.first() != Some(&b'}') => {
            out.push(b',');
            out.extend_from_slice(rest);
        }
        _ => out.push(b'}'),
    }
    out.push(b'}');
    Ok(())
}

/// The `totalTokens` of a `countTokens` answer.
pub fn total_tokens(body: &[u8]) -> Option<u64> {
    use sonic_rs::JsonValueTrait;
    sonic_rs::get(body, ["totalTokens"]).ok()?.as_u64()
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
