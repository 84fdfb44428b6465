//! The AWS Bedrock Converse dialect, provider side only: requests written
//! from the canonical form, responses, streams and errors read into it.
//!
//! Bedrock is never a client dialect: nobody calls corelay in Converse, so
//! there is no request parser and no response or stream encoder. The model
//! is not in the body but in the path ([`path`]), and streams arrive as
//! binary event-stream frames ([`crate::eventstream`]) instead of SSE.
//!
//! The mapping follows `shared/providers/bedrock.md` §2–§4, §7, §10 and
//! §11; the policies where the dialects disagree are listed in [`request`]
//! and [`response`].

pub mod request;
pub mod response;
pub mod stream;

/// The operation of a chat request: `converse`, or `converse-stream` for a
/// streamed answer.
pub fn path(model_id: &str, stream: bool) -> String {
    model_path(model_id, if stream { "converse-stream" } else { "converse" })
}

/// The path of CountTokens for a model.
pub fn count_tokens_path(model_id: &str) -> String {
    model_path(model_id, "count-tokens")
}

/// The `inputTokens` of a CountTokens answer.
pub fn input_tokens(body: &[u8]) -> Option<u64> {
    let value: sonic_rs::Value = crate::wire::from_slice(body).ok()?;
    sonic_rs::JsonValueTrait::as_u64(sonic_rs::JsonValueTrait::get(&value, "inputTokens")?)
}

/// `/model/{model id}/{operation}`, the model id percent-encoded: every byte
/// but the RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`), so `:` is
/// `%3A` and the `/` of an ARN is `%2F`, as botocore encodes a path label.
/// `operation` is `converse`, `converse-stream`, `count-tokens`, `invoke`
/// or `invoke-with-response-stream`.
///
/// An id of only dots is encoded whole (`%2E`): raw, `.` or `..` would be a
/// dot segment that SigV4's path normalisation removes. The signature is
/// computed over this exact path (the gateway's `sigv4` module encodes it
/// once more for the canonical request).
pub fn model_path(model_id: &str, operation: &str) -> String {
    let mut path = String::with_capacity("/model/".len() + model_id.len() * 3 + 1 + operation.len());
    path.push_str("/model/");
    let only_dots = model_id.bytes().all(|b| b == b'.');
    for b in model_id.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        if unreserved && !only_dots {
            path.push(char::from(b));
        } else {
            push_percent_encoded(&mut path, b);
        }
    }
    path.push('/');
    path.push_str(operation);
    path
}

fn push_percent_encoded(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_ids_and_arns() {
        assert_eq!(
            path("anthropic.claude-3-haiku-20240307-v1:0", false),
            "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
        );
        assert_eq!(path("us.amazon.nova-pro-v1:0", true), "/model/us.amazon.nova-pro-v1%3A0/converse-stream");
        assert_eq!(
            path("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123", false),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123/converse"
        );
        assert_eq!(model_path("a b+c%d~e_f", "invoke"), "/model/a%20b%2Bc%25d~e_f/invoke");
        assert_eq!(model_path("é", "invoke"), "/model/%C3%A9/invoke");
        assert_eq!(model_path("..", "invoke"), "/model/%2E%2E/invoke");
        assert_eq!(count_tokens_path("m:0"), "/model/m%3A0/count-tokens");
        assert_eq!(input_tokens(b"{\"inputTokens\":42}"), Some(42));
        assert_eq!(input_tokens(b"{\"totalTokens\":42}"), None);
        assert_eq!(model_path("a..b", "invoke"), "/model/a..b/invoke");
    }
}
