//! The Anthropic Messages dialect: requests, responses and streams, to and
//! from the canonical form, and the same-dialect path's usage reading.
//!
//! The mapping follows `shared/providers/anthropic.md` §7–§11; the policies
//! where the dialects disagree are listed in [`request`].

pub mod request;
pub mod response;
pub mod stream;

use crate::raw::Raw;

/// Between a tool call's id and the Gemini thought signature carried in it.
///
/// Gemini 3 refuses a replayed function call without the `thoughtSignature`
/// it came with, and Anthropic's `tool_use` block has no field for one. A
/// client must send a call's id back unchanged (its `tool_result` names it),
/// so the signature rides in the id, in base64url so that the id stays
/// within Anthropic's `[a-zA-Z0-9_-]` alphabet: `toolu_1` with signature
/// `ab+/` becomes `toolu_1__sig_ab-_`. Parsing a `tool_use` takes it back
/// out for Gemini and leaves the plain id, in the call and in its
/// `tool_result` alike, so results still match.
pub const SIGNATURE_IN_ID: &str = "__sig_";

/// The id of a tool call with `signature` (a string literal of base64)
/// carried in it, or `None` when the signature is not plain base64.
pub fn id_with_signature(id: &Raw<'_>, signature: &Raw<'_>) -> Option<Raw<'static>> {
    let id = id.text()?;
    let signature = signature.text()?;
    if !signature.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')) {
        return None;
    }
    let mut text = String::with_capacity(id.len() + SIGNATURE_IN_ID.len() + signature.len());
    text.push_str(&id);
    text.push_str(SIGNATURE_IN_ID);
    text.extend(signature.chars().filter(|&c| c != '=').map(|c| match c {
        '+' => '-',
        '/' => '_',
        c => c,
    }));
    Some(Raw::string(&text))
}

/// A tool call's id without the signature carried in it (see
/// [`SIGNATURE_IN_ID`]), so that every provider sees the plain id, in a
/// call and in its result alike.
pub fn without_signature(id: Raw<'_>) -> Raw<'_> {
    match id.string_body().and_then(|body| body.split_once(SIGNATURE_IN_ID)) {
        Some((plain, _)) => Raw::string(plain),
        None => id,
    }
}

/// The thought signature carried in a tool call's id (see
/// [`SIGNATURE_IN_ID`]), as a string literal of standard base64.
pub fn signature_from_id(id: &Raw<'_>) -> Option<Raw<'static>> {
    let body = id.string_body()?;
    let (_, encoded) = body.split_once(SIGNATURE_IN_ID)?;
    if encoded.is_empty() || !encoded.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_')) {
        return None;
    }
    let mut text: String = encoded
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !text.len().is_multiple_of(4) {
        text.push('=');
    }
    Some(Raw::string(&text))
}

#[cfg(test)]
mod tests {
    use super::{id_with_signature, signature_from_id};
    use crate::raw::Raw;

    #[test]
    fn signatures_ride_in_ids_and_come_back_whole() {
        for signature in ["CiQBjz1rX+/w8A==", "AAAA", "Zm9vYmE=", "+/+/"] {
            let id = id_with_signature(&Raw::string("call_r1_0"), &Raw::string(signature)).unwrap();
            let text = id.text().unwrap();
            assert!(text.starts_with("call_r1_0__sig_"), "{text}");
            assert!(text.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'), "{text}");
            assert_eq!(signature_from_id(&id).unwrap().text().unwrap(), signature);
        }
        assert_eq!(id_with_signature(&Raw::string("c"), &Raw::string("not base64!")), None);
        assert_eq!(signature_from_id(&Raw::string("toolu_plain")), None);
        assert_eq!(super::without_signature(Raw::string("call_1__sig_abc")).text().unwrap(), "call_1");
        assert_eq!(super::without_signature(Raw::string("call_1")).text().unwrap(), "call_1");
        assert_eq!(signature_from_id(&Raw::string("toolu__sig_")), None);
        assert_eq!(signature_from_id(&Raw::string("toolu__sig_a.b")), None);
    }
}
