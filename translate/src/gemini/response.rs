//! Gemini `GenerateContentResponse` answers and Google RPC errors, read into
//! the canonical form.
//!
//! Policies, where the dialects disagree (each is a test in `test_data`):
//! - Only the first candidate is read: requests never ask for more.
//! - `text` parts with `thought: true` are reasoning ([`Block::Thinking`],
//!   with the part's `thoughtSignature`); a signature on a plain text part
//!   is dropped, as Gemini does not check those on replay.
//! - Function calls get Gemini's `id` when it gives one, else a stable one
//!   made from the response id and the call's position
//!   (`call_<responseId>_<n>`, or `call_<n>` without a usable response id),
//!   so the same answer always gives the same ids (case 4). Their
//!   `thoughtSignature` is kept for the replay (case 26).
//! - `finishReason`: `STOP` with function calls is `tool_calls` (Gemini
//!   says `STOP`, case 4); `MAX_TOKENS` is `length`; every safety, recitation,
//!   language, blocklist and image reason, and `OTHER`, is `content_filter`;
//!   the function-call faults (`MALFORMED_FUNCTION_CALL`,
//!   `UNEXPECTED_TOOL_CALL`, `TOO_MANY_TOOL_CALLS`,
//!   `MISSING_THOUGHT_SIGNATURE`) and anything unknown are `stop`, as
//!   LiteLLM does (case 17).
//! - A prompt blocked by `promptFeedback.blockReason` (HTTP 200, no
//!   candidates) is an empty answer with `content_filter` (case 29).
//! - Usage (case 12): prompt = `promptTokenCount` + `toolUsePromptTokenCount`
//!   (cached tokens are inside it already), completion =
//!   `candidatesTokenCount` + `thoughtsTokenCount` (thoughts are outside
//!   it at Gemini), so prompt + completion = `totalTokenCount`.
//! - Errors (case 14): Google's `{"error":{"code","message","status"}}`,
//!   also wrapped in an array (case 32). The kind comes from `status`
//!   (`RESOURCE_EXHAUSTED` rate limit, `UNAVAILABLE` overloaded, ...), and a
//!   400 whose reason or message says the API key is invalid is an
//!   authentication error (401). `status` is kept as the code, or
//!   `API_KEY_INVALID` for a bad key.

use std::borrow::Cow;

use serde::Deserialize;

use crate::Usage;
use crate::canon::{Arguments, Block, Finish, Response};
use crate::error::{Error, ErrorKind, ProviderError, excerpt};
use crate::raw::Raw;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Wire<'a> {
    /// The first candidate only (corelay asks for one), read without
    /// allocating.
    #[serde(borrow, default, deserialize_with = "crate::wire::first_element")]
    pub candidates: Option<Option<CandidateWire<'a>>>,
    #[serde(borrow, default)]
    pub prompt_feedback: Option<FeedbackWire<'a>>,
    #[serde(default)]
    pub usage_metadata: Option<UsageWire>,
    #[serde(borrow, default)]
    pub model_version: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub response_id: Option<Raw<'a>>,
    /// A Google error object, when an error comes where an answer should.
    #[serde(borrow, default)]
    pub error: Option<Raw<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CandidateWire<'a> {
    #[serde(borrow, default)]
    pub content: Option<ContentWire<'a>>,
    #[serde(borrow, default)]
    pub finish_reason: Option<&'a str>,
}

#[derive(Deserialize)]
pub(crate) struct ContentWire<'a> {
    /// Walked element by element ([`crate::wire::for_each_element`]).
    #[serde(borrow, default)]
    pub parts: Option<Raw<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartWire<'a> {
    #[serde(borrow, default)]
    pub text: Option<Raw<'a>>,
    #[serde(default)]
    pub thought: Option<bool>,
    #[serde(borrow, default)]
    pub thought_signature: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub function_call: Option<FunctionCallWire<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct FunctionCallWire<'a> {
    #[serde(borrow, default)]
    pub id: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub name: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub args: Option<Raw<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FeedbackWire<'a> {
    #[serde(borrow, default)]
    pub block_reason: Option<Raw<'a>>,
}

/// Gemini's token counts. See the module docs for the arithmetic.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageWire {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    cached_content_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    tool_use_prompt_token_count: u64,
}

impl UsageWire {
    pub fn usage(self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_token_count + self.tool_use_prompt_token_count,
            completion_tokens: self.candidates_token_count + self.thoughts_token_count,
            cached_tokens: self.cached_content_token_count,
            cache_write_tokens: 0,
            reasoning_tokens: self.thoughts_token_count,
        }
    }
}

impl PartWire<'_> {
    pub fn is_thought(&self) -> bool {
        self.thought == Some(true)
    }
}

impl FeedbackWire<'_> {
    /// The prompt was blocked.
    pub fn blocked(&self) -> bool {
        self.block_reason.as_ref().is_some_and(|r| !r.is_null())
    }
}

/// Maps Gemini's `finishReason`; see the module docs. `STOP` with function
/// calls is mapped by the caller.
pub fn finish_from_str(reason: &str) -> Finish {
    match reason {
        "MAX_TOKENS" => Finish::Length,
        "SAFETY"
        | "RECITATION"
        | "LANGUAGE"
        | "OTHER"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "IMAGE_OTHER"
        | "NO_IMAGE" => Finish::ContentFilter,
        // STOP, FINISH_REASON_UNSPECIFIED, MALFORMED_FUNCTION_CALL,
        // UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS, MISSING_THOUGHT_SIGNATURE,
        // MALFORMED_RESPONSE and values added later.
        _ => Finish::Stop,
    }
}

/// The finish of an answer that made function calls: Gemini says `STOP`.
pub(crate) fn with_calls(finish: Finish, calls: bool) -> Finish {
    if calls && finish == Finish::Stop { Finish::ToolCalls } else { finish }
}

/// The part of a response id that can go into a synthesized call id: the
/// text of a string literal made only of `[A-Za-z0-9_-]`.
pub(crate) fn id_stem<'r>(response_id: Option<&'r Raw<'_>>) -> &'r str {
    let body = response_id.and_then(Raw::string_body).unwrap_or_default();
    let safe = body.len() <= 128 && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if safe { body } else { "" }
}

/// Appends the string literal of the id of the `n`th call of an answer
/// whose id stem is `stem`.
pub(crate) fn write_call_id(stem: &str, n: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\"call_");
    if !stem.is_empty() {
        out.extend_from_slice(stem.as_bytes());
        out.push(b'_');
    }
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.push(b'"');
}

/// Parses a non-streamed `GenerateContentResponse` (its first candidate).
pub fn parse(body: &[u8]) -> Result<Response<'_>, Error> {
    let wire: Wire<'_> = crate::wire::from_slice(body).map_err(Error::json)?;
    if let Some(error) = wire.error.filter(Raw::is_object) {
        let e = parse_error(500, format!("{{\"error\":{}}}", error.json()).as_bytes());
        return Err(Error::Provider(e.message));
    }
    let mut response = Response {
        id: wire.response_id.clone().filter(Raw::is_string),
        model: wire.model_version.filter(Raw::is_string),
        usage: wire.usage_metadata.map(UsageWire::usage),
        ..Response::default()
    };
    let stem = id_stem(wire.response_id.as_ref());
    let Some(candidate) = wire.candidates.flatten() else {
        if wire.prompt_feedback.is_some_and(|f| f.blocked()) {
            response.finish = Some(Finish::ContentFilter);
        }
        return Ok(response);
    };
    let mut calls = 0;
    let parts = candidate.content.and_then(|c| c.parts).unwrap_or_default();
    crate::wire::for_each_element(&parts, |part: PartWire<'_>| {
        let thought = part.is_thought();
        if let Some(call) = part.function_call {
            let id = match call.id.filter(|i| i.is_string() && !i.is_blank_string()) {
                Some(id) => id,
                None => {
                    let mut id = Vec::new();
                    write_call_id(stem, calls, &mut id);
                    Raw::from_json(String::from_utf8(id).unwrap_or_default())
                }
            };
            calls += 1;
            response.blocks.push(Block::ToolCall {
                id,
                name: call.name.filter(Raw::is_string).unwrap_or_default(),
                arguments: Arguments::Object(call.args.filter(Raw::is_object).unwrap_or(Raw::from_json("{}"))),
                signature: part.thought_signature.filter(Raw::is_string),
            });
        } else if let Some(text) = part.text.filter(|t| t.is_string() && t.json() != "\"\"") {
            response.blocks.push(if thought {
                Block::Thinking { text, signature: part.thought_signature.filter(Raw::is_string) }
            } else {
                Block::Text { text, cache_control: None }
            });
        }
    });
    let finish = candidate.finish_reason.map_or(Finish::Stop, finish_from_str);
    response.finish = Some(with_calls(finish, calls > 0));
    Ok(response)
}

/// Reads a Google RPC error body: `{"error":{"code","message","status",
/// "details"}}`, or an array of such (Gemini's OpenAI-compatible endpoint).
/// Anything else keeps the HTTP status's meaning and an excerpt of the body.
pub fn parse_error(status: u16, body: &[u8]) -> ProviderError {
    let trimmed = body.trim_ascii_start();
    let first = if trimmed.starts_with(b"[") {
        crate::wire::from_slice::<Vec<ErrorWire<'_>>>(trimmed).ok().and_then(|v| v.into_iter().next())
    } else {
        crate::wire::from_slice::<ErrorWire<'_>>(trimmed).ok()
    };
    match first.and_then(|w| w.error) {
        Some(inner) => inner.into_provider_error(status, body),
        None => ProviderError::new(ErrorKind::from_status(status), excerpt(body)),
    }
}

#[derive(Deserialize)]
struct ErrorWire<'a> {
    #[serde(borrow, default)]
    error: Option<ErrorInner<'a>>,
}

#[derive(Deserialize)]
struct ErrorInner<'a> {
    /// Raw, so that an odd type (a string code) does not hide the message.
    #[serde(borrow, default)]
    code: Option<Raw<'a>>,
    #[serde(borrow, default)]
    message: Option<Raw<'a>>,
    #[serde(borrow, default)]
    status: Option<Raw<'a>>,
    /// Searched for the `API_KEY_INVALID` reason only.
    #[serde(borrow, default)]
    details: Option<Raw<'a>>,
}

impl ErrorInner<'_> {
    fn into_provider_error(self, status: u16, body: &[u8]) -> ProviderError {
        let message = self.message.as_ref().and_then(Raw::decode_string).map(Cow::into_owned);
        let message = message.unwrap_or_else(|| excerpt(body));
        let name = self.status.as_ref().and_then(Raw::decode_string);
        let bad_key = self.details.as_ref().is_some_and(|d| d.json().contains("API_KEY_INVALID"))
            || message.contains("API key not valid");
        // Mid-stream errors come with the 200 of the stream: the body's code says more.
        let code = self.code.as_ref().and_then(Raw::as_u64).and_then(|c| u16::try_from(c).ok());
        let status = if (200..300).contains(&status) { code.unwrap_or(500) } else { status };
        let kind =
            if bad_key { ErrorKind::Authentication } else { kind_of_status(name.as_deref().unwrap_or(""), status) };
        let code = if bad_key { Some("API_KEY_INVALID".to_owned()) } else { name.map(Cow::into_owned) };
        ProviderError { kind, message, code }
    }
}

/// The kind of a Google RPC `status`, or of the HTTP status when it says
/// nothing better.
fn kind_of_status(name: &str, status: u16) -> ErrorKind {
    match name {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => ErrorKind::InvalidRequest,
        "UNAUTHENTICATED" => ErrorKind::Authentication,
        "PERMISSION_DENIED" => ErrorKind::Permission,
        "NOT_FOUND" => ErrorKind::NotFound,
        "RESOURCE_EXHAUSTED" => ErrorKind::RateLimit,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => ErrorKind::Server,
        "UNAVAILABLE" => ErrorKind::Overloaded,
        "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
        _ => ErrorKind::from_status(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_finish_reason_maps() {
        let table = [
            ("STOP", Finish::Stop),
            ("MAX_TOKENS", Finish::Length),
            ("SAFETY", Finish::ContentFilter),
            ("RECITATION", Finish::ContentFilter),
            ("LANGUAGE", Finish::ContentFilter),
            ("OTHER", Finish::ContentFilter),
            ("BLOCKLIST", Finish::ContentFilter),
            ("PROHIBITED_CONTENT", Finish::ContentFilter),
            ("SPII", Finish::ContentFilter),
            ("IMAGE_SAFETY", Finish::ContentFilter),
            ("IMAGE_PROHIBITED_CONTENT", Finish::ContentFilter),
            ("IMAGE_RECITATION", Finish::ContentFilter),
            ("IMAGE_OTHER", Finish::ContentFilter),
            ("NO_IMAGE", Finish::ContentFilter),
            ("MALFORMED_FUNCTION_CALL", Finish::Stop),
            ("UNEXPECTED_TOOL_CALL", Finish::Stop),
            ("TOO_MANY_TOOL_CALLS", Finish::Stop),
            ("MISSING_THOUGHT_SIGNATURE", Finish::Stop),
            ("MALFORMED_RESPONSE", Finish::Stop),
            ("FINISH_REASON_UNSPECIFIED", Finish::Stop),
            ("SOMETHING_NEW", Finish::Stop),
        ];
        for (reason, finish) in table {
            assert_eq!(finish_from_str(reason), finish, "{reason}");
        }
        assert_eq!(with_calls(Finish::Stop, true), Finish::ToolCalls);
        assert_eq!(with_calls(Finish::Length, true), Finish::Length);
    }

    #[test]
    fn error_kinds() {
        let e = parse_error(404, br#"{"error":{"code":404,"message":"no","status":"NOT_FOUND"}}"#);
        assert_eq!((e.kind, e.code.as_deref()), (ErrorKind::NotFound, Some("NOT_FOUND")));
        let e = parse_error(403, br#"[{"error":{"code":403,"message":"no","status":"PERMISSION_DENIED"}}]"#);
        assert_eq!(e.kind, ErrorKind::Permission);
        let e = parse_error(200, br#"{"error":{"code":503,"message":"busy"}}"#);
        assert_eq!(e.kind, ErrorKind::Overloaded);
        let e = parse_error(500, b"<html>oops</html>");
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Server, "<html>oops</html>"));
        let e = parse_error(400, b"[]");
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        let e = parse_error(200, br#"{"error":{"code":"429","message":7,"status":null}}"#);
        assert_eq!((e.kind, e.code), (ErrorKind::Server, None));
        let e = parse_error(429, br#"{"error":{"code":99999999999,"message":"slow \u00e9"}}"#);
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::RateLimit, "slow é"));
    }

    #[test]
    fn every_prefix_of_an_answer_parses_or_fails_without_panic() {
        let body = br#"{"candidates":[{"content":{"parts":[{"text":"t","thought":true,"thoughtSignature":"s"},{"functionCall":{"name":"f","args":{"a":1}}}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1,"thoughtsTokenCount":2},"responseId":"r"}"#;
        for cut in 0..body.len() {
            let _ = parse(&body[..cut]);
            let _ = parse_error(400, &body[..cut]);
        }
        let whole = parse(body).unwrap();
        assert_eq!(whole.finish, Some(Finish::ToolCalls));
        assert_eq!(whole.usage.map(|u| (u.completion_tokens, u.reasoning_tokens)), Some((2, 2)));
    }

    #[test]
    fn call_ids() {
        let mut out = Vec::new();
        write_call_id(id_stem(Some(&Raw::from_json("\"abc-1\""))), 2, &mut out);
        assert_eq!(out, b"\"call_abc-1_2\"");
        out.clear();
        write_call_id(id_stem(Some(&Raw::from_json("\"a\\\"b\""))), 0, &mut out);
        assert_eq!(out, b"\"call_0\"");
    }
}
