//! Bedrock Converse responses and errors, read into the canonical form.
//!
//! Converse gives no id, model or creation time: the client-side writers
//! synthesize them from their context.
//!
//! Policies:
//! - `stopReason`: `end_turn` → stop, `stop_sequence` → stop sequence,
//!   `max_tokens` and `model_context_window_exceeded` → length, `tool_use`
//!   → tool calls, `guardrail_intervened` and `content_filtered` → content
//!   filter; `malformed_model_output`, `malformed_tool_use` and unknown
//!   values → stop (the answer is passed on rather than failed).
//! - Usage: whether `inputTokens` includes the cache reads and writes is
//!   not documented (`bedrock.md` §3). `totalTokens` tells: when it equals
//!   input + output + cache read + cache write, the cache tokens are outside
//!   `inputTokens` (Anthropic's arithmetic, what Claude on Bedrock reports)
//!   and are added to `prompt_tokens`; when it equals input + output, they
//!   are inside already. Without `totalTokens`, or when neither sum matches,
//!   they are taken as outside, since Claude is the model family that
//!   caches on Bedrock.
//! - Errors: the exception name comes from `x-amzn-errortype` (everything
//!   after `:` dropped), else the body's `__type` or `code`; the mapping is
//!   [`kind_of`]. `ServiceQuotaExceededException` is a rate limit (429), so
//!   clients back off rather than treat it as a bad request.

use std::borrow::Cow;

use serde::Deserialize;

use crate::Usage;
use crate::canon::{Arguments, Block, Finish, Response};
use crate::error::{Error, ErrorKind, ProviderError, excerpt};
use crate::raw::Raw;

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    output: Option<OutputWire<'a>>,
    #[serde(borrow, default, rename = "stopReason")]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<UsageWire>,
    #[serde(borrow, default, rename = "additionalModelResponseFields")]
    additional: Option<AdditionalWire<'a>>,
}

#[derive(Deserialize)]
struct OutputWire<'a> {
    #[serde(borrow, default)]
    message: Option<MessageWire<'a>>,
}

#[derive(Deserialize)]
struct MessageWire<'a> {
    #[serde(borrow, default)]
    content: Vec<BlockWire<'a>>,
}

/// A content block: a union with one key set.
#[derive(Deserialize)]
struct BlockWire<'a> {
    #[serde(borrow, default)]
    text: Option<Raw<'a>>,
    #[serde(borrow, default, rename = "toolUse")]
    tool_use: Option<ToolUseWire<'a>>,
    #[serde(borrow, default, rename = "reasoningContent")]
    reasoning: Option<ReasoningWire<'a>>,
}

#[derive(Deserialize)]
struct ToolUseWire<'a> {
    #[serde(borrow, rename = "toolUseId")]
    id: Raw<'a>,
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow, default)]
    input: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ReasoningWire<'a> {
    #[serde(borrow, default, rename = "reasoningText")]
    text: Option<ReasoningTextWire<'a>>,
    #[serde(borrow, default, rename = "redactedContent")]
    redacted: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ReasoningTextWire<'a> {
    #[serde(borrow, default)]
    text: Option<Raw<'a>>,
    #[serde(borrow, default)]
    signature: Option<Raw<'a>>,
}

/// Fields of the model's native answer asked for by
/// `additionalModelResponseFieldPaths`; Claude's `stop_sequence` is read.
#[derive(Deserialize)]
pub(crate) struct AdditionalWire<'a> {
    #[serde(borrow, default)]
    pub stop_sequence: Option<Raw<'a>>,
}

/// `TokenUsage`.
#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct UsageWire {
    #[serde(default, rename = "inputTokens")]
    input: u64,
    #[serde(default, rename = "outputTokens")]
    output: u64,
    #[serde(default, rename = "totalTokens")]
    total: Option<u64>,
    #[serde(default, rename = "cacheReadInputTokens")]
    cache_read: u64,
    #[serde(default, rename = "cacheWriteInputTokens")]
    cache_write: u64,
}

impl UsageWire {
    /// In OpenAI's arithmetic; see the module docs for the cache tokens.
    pub fn usage(self) -> Usage {
        let cache = self.cache_read + self.cache_write;
        let inside = self.total == Some(self.input + self.output) && cache > 0;
        Usage {
            prompt_tokens: if inside { self.input } else { self.input + cache },
            completion_tokens: self.output,
            cached_tokens: self.cache_read,
            cache_write_tokens: self.cache_write,
            reasoning_tokens: 0,
        }
    }
}

/// Maps Converse's `stopReason`. Unknown values are a natural stop.
pub fn finish_from_str(reason: &str) -> Finish {
    match reason {
        "stop_sequence" => Finish::StopSequence,
        "max_tokens" | "model_context_window_exceeded" => Finish::Length,
        "tool_use" => Finish::ToolCalls,
        "guardrail_intervened" | "content_filtered" => Finish::ContentFilter,
        // end_turn, malformed_model_output, malformed_tool_use, and values
        // added later.
        _ => Finish::Stop,
    }
}

/// Parses a non-streamed Converse response.
pub fn parse(body: &[u8]) -> Result<Response<'_>, Error> {
    let wire: Wire<'_> = crate::wire::from_slice(body).map_err(Error::json)?;
    let mut response = Response {
        finish: wire.stop_reason.as_deref().map(finish_from_str),
        stop_sequence: wire.additional.and_then(|a| a.stop_sequence).filter(Raw::is_string),
        usage: wire.usage.map(UsageWire::usage),
        ..Response::default()
    };
    let content = wire.output.and_then(|o| o.message).map(|m| m.content).unwrap_or_default();
    for block in content {
        if let Some(text) = block.text.filter(Raw::is_string) {
            response.blocks.push(Block::Text { text, cache_control: None });
        } else if let Some(call) = block.tool_use {
            let input = call.input.filter(Raw::is_object).unwrap_or(Raw::from_json("{}"));
            response.blocks.push(Block::ToolCall {
                id: call.id,
                name: call.name,
                arguments: Arguments::Object(input),
                signature: None,
            });
        } else if let Some(reasoning) = block.reasoning {
            if let Some(text) = reasoning.text
                && let Some(t) = text.text.filter(Raw::is_string)
            {
                response.blocks.push(Block::Thinking { text: t, signature: text.signature.filter(Raw::is_string) });
            } else if let Some(data) = reasoning.redacted.filter(Raw::is_string) {
                response.blocks.push(Block::RedactedThinking { data });
            }
        }
        // Images, citations, guard content and later block types have no
        // client form.
    }
    Ok(response)
}

/// Reads a Bedrock error: `{"message": ...}` (or `Message`) with the
/// exception named by the `x-amzn-errortype` header, e.g.
/// `ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/`.
pub fn parse_error(status: u16, body: &[u8], error_type_header: Option<&str>) -> ProviderError {
    #[derive(Deserialize)]
    struct Wire<'a> {
        #[serde(borrow, default)]
        message: Option<Cow<'a, str>>,
        #[serde(borrow, default, rename = "Message")]
        message_capitalized: Option<Cow<'a, str>>,
        #[serde(borrow, default, rename = "__type")]
        type_: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        code: Option<Cow<'a, str>>,
    }
    let wire = crate::wire::from_slice::<Wire<'_>>(body).ok();
    let from_body = wire.as_ref().and_then(|w| w.type_.as_deref().or(w.code.as_deref()));
    let name = error_type_header.or(from_body).map(exception_name).filter(|n| !n.is_empty());
    let kind = name.map_or(ErrorKind::from_status(status), |n| kind_of(n, status));
    let code = name.map(upper_camel);
    let message =
        wire.and_then(|w| w.message.or(w.message_capitalized)).map(Cow::into_owned).unwrap_or_else(|| excerpt(body));
    ProviderError { kind, message, code }
}

/// The exception's name from a header or `__type` value: what comes after a
/// `#` and before a `:`.
fn exception_name(value: &str) -> &str {
    let value = value.rsplit_once('#').map_or(value, |(_, name)| name);
    value.split_once(':').map_or(value, |(name, _)| name).trim()
}

/// `ThrottlingException` for `throttlingException` too: the stream's
/// exception frames name them in lower camel case.
fn upper_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    if let Some(first) = chars.next() {
        out.push(first.to_ascii_uppercase());
    }
    out.extend(chars);
    out
}

/// The kind of a Bedrock exception (`bedrock.md` §4, §7), in either case of
/// its first letter. Unknown names keep the HTTP status's meaning.
pub fn kind_of(exception: &str, status: u16) -> ErrorKind {
    const TABLE: [(&str, ErrorKind); 17] = [
        ("ValidationException", ErrorKind::InvalidRequest),
        ("ThrottlingException", ErrorKind::RateLimit),
        ("ServiceQuotaExceededException", ErrorKind::RateLimit),
        ("ModelNotReadyException", ErrorKind::Overloaded),
        ("ServiceUnavailableException", ErrorKind::Overloaded),
        ("ModelErrorException", ErrorKind::BadGateway),
        ("ModelStreamErrorException", ErrorKind::BadGateway),
        ("ModelTimeoutException", ErrorKind::Timeout),
        ("InternalServerException", ErrorKind::Server),
        ("AccessDeniedException", ErrorKind::Permission),
        ("ResourceNotFoundException", ErrorKind::NotFound),
        // AWS-wide authentication failures (bad key, bad signature, expired
        // session) come before Bedrock sees the request.
        ("UnrecognizedClientException", ErrorKind::Authentication),
        ("InvalidSignatureException", ErrorKind::Authentication),
        ("IncompleteSignatureException", ErrorKind::Authentication),
        ("MissingAuthenticationTokenException", ErrorKind::Authentication),
        ("ExpiredTokenException", ErrorKind::Authentication),
        ("SerializationException", ErrorKind::InvalidRequest),
    ];
    TABLE
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(exception))
        .map_or(ErrorKind::from_status(status), |(_, kind)| *kind)
}

/// Reads `usage` from a Converse response body.
pub fn usage(body: &[u8]) -> Option<Usage> {
    let raw = sonic_rs::get(body, ["usage"]).ok()?;
    sonic_rs::from_str::<UsageWire>(raw.as_raw_str()).ok().map(UsageWire::usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_tokens_inside_or_outside_input_by_total() {
        let outside = UsageWire { input: 10, output: 5, total: Some(2015), cache_read: 1800, cache_write: 200 };
        assert_eq!(outside.usage().prompt_tokens, 2010);
        let inside = UsageWire { input: 2010, output: 5, total: Some(2015), cache_read: 1800, cache_write: 200 };
        assert_eq!(inside.usage().prompt_tokens, 2010);
        let unknown = UsageWire { input: 10, output: 5, total: None, cache_read: 1800, cache_write: 0 };
        assert_eq!(unknown.usage().prompt_tokens, 1810);
        let plain = UsageWire { input: 10, output: 5, total: Some(15), cache_read: 0, cache_write: 0 };
        assert_eq!(plain.usage().prompt_tokens, 10);
    }

    #[test]
    fn exception_names_from_headers_and_bodies() {
        assert_eq!(exception_name("ThrottlingException:http://internal.amazon.com/coral/"), "ThrottlingException");
        assert_eq!(exception_name("com.amazon.coral.service#ValidationException"), "ValidationException");
        assert_eq!(kind_of("throttlingException", 400), ErrorKind::RateLimit);
        assert_eq!(kind_of("SomethingNew", 503), ErrorKind::Overloaded);
        let e = parse_error(424, b"{\"Message\":\"boom\"}", Some("ModelErrorException:http://x"));
        assert_eq!(
            (e.kind, e.message.as_str(), e.code.as_deref()),
            (ErrorKind::BadGateway, "boom", Some("ModelErrorException"))
        );
        let e = parse_error(500, b"not json", None);
        assert_eq!((e.kind, e.message.as_str(), e.code), (ErrorKind::Server, "not json", None));
    }
}
