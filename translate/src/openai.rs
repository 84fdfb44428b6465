//! The OpenAI chat-completions dialect, on the same-dialect path.
//!
//! When client and provider both speak OpenAI, the gateway forwards the
//! client's bytes. It still has to know a few things (`model`, `stream`,
//! whether usage was asked for) and to change a few bytes (the model name of
//! an alias, `stream_options.include_usage` so that streamed usage can be
//! counted). [`peek_chat`] finds those in one validating pass that builds
//! nothing; [`splice_chat`] copies the body once with the few byte ranges
//! replaced. Message content, tools and every other field are never parsed
//! into values, so they reach the provider exactly as the client wrote them
//! (numbers keep their text, key order is kept).

pub mod request;
pub mod response;
pub mod stream;

use std::ops::Range;

use serde::Deserialize;
use sonic_rs::{JsonValueTrait, LazyValue};

use crate::Usage;

/// Why a request body was refused before it reached a provider.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeekError {
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    #[error("request body must be a JSON object")]
    NotObject,
    #[error("missing required parameter: 'model'")]
    MissingModel,
    #[error("'model' must be a string")]
    ModelNotString,
    #[error("'{0}' must be a boolean")]
    NotBoolean(&'static str),
    #[error("'stream_options' must be an object")]
    StreamOptionsNotObject,
}

/// What the gateway needs to know of a chat-completions request body, with
/// the byte ranges it may rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatPeek<'a> {
    pub model: std::borrow::Cow<'a, str>,
    /// The `model` value, quotes included.
    pub model_span: Range<usize>,
    pub stream: bool,
    /// `stream_options.include_usage` as the client sent it.
    pub include_usage: bool,
    /// Where the splice that turns `include_usage` on goes.
    usage_edit: UsageEdit,
    /// The `"max_completion_tokens"` key, quotes included, when the body
    /// has it and no `max_tokens`: providers that only read `max_tokens`
    /// (Ollama's `/v1`) get the key renamed.
    max_completion_tokens_key: Option<Range<usize>>,
}

/// How to turn `stream_options.include_usage` on, by byte position.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UsageEdit {
    /// No `stream_options`: insert the whole member after the top-level `{`.
    InsertMember { at: usize },
    /// `stream_options` is an object without `include_usage`: insert the key
    /// after its `{`; `comma` when the object has other members.
    InsertKey { at: usize, comma: bool },
    /// Replace this value (`include_usage`'s value, or a `null` `stream_options`).
    Replace { span: Range<usize>, with: &'static str },
}

#[derive(Deserialize)]
struct RawChat<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    model: Option<LazyValue<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    stream: Option<LazyValue<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    stream_options: Option<LazyValue<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    max_completion_tokens: Option<LazyValue<'a>>,
    #[serde(default)]
    max_tokens: Option<serde::de::IgnoredAny>,
}

/// `Some` for a member that is present, even when it is `null` (serde's
/// `Option` would fold `null` into `None`, and a splice must know the
/// difference between absent and `null`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<LazyValue<'de>>, D::Error> {
    LazyValue::deserialize(d).map(Some)
}

/// Reads `model`, `stream` and `stream_options` of a chat-completions body.
/// The whole body is validated as JSON (malformed bodies are the client's
/// error, and must not reach a provider); nothing else is built.
pub fn peek_chat(body: &[u8]) -> Result<ChatPeek<'_>, PeekError> {
    let start = first_non_space(body).ok_or(PeekError::Json("empty body".into()))?;
    if body[start] != b'{' {
        // Still report malformed JSON as such.
        crate::wire::from_slice::<serde::de::IgnoredAny>(body).map_err(json_error)?;
        return Err(PeekError::NotObject);
    }
    let raw: RawChat<'_> = crate::wire::from_slice(body).map_err(json_error)?;
    let model_value = raw.model.filter(|v| !v.is_null()).ok_or(PeekError::MissingModel)?;
    let model = lazy_str(&model_value).ok_or(PeekError::ModelNotString)?;
    let stream = optional_bool(raw.stream.as_ref(), "stream")?;
    let (include_usage, usage_edit) = match &raw.stream_options {
        None => (false, UsageEdit::InsertMember { at: start + 1 }),
        Some(opts) => usage_edit_within(body, opts)?,
    };
    let max_completion_tokens_key = match (&raw.max_completion_tokens, &raw.max_tokens) {
        (Some(value), None) => {
            key_span(body, &span_of(body, value, &["max_completion_tokens"]), b"\"max_completion_tokens\"")
        }
        _ => None,
    };
    Ok(ChatPeek {
        model,
        model_span: span_of(body, &model_value, &["model"]),
        stream,
        include_usage,
        usage_edit,
        max_completion_tokens_key,
    })
}

/// The span of `key` (quotes included) right before the value at `value`,
/// with only whitespace and the colon between them.
fn key_span(body: &[u8], value: &Range<usize>, key: &[u8]) -> Option<Range<usize>> {
    let before = &body[..value.start];
    let colon = before.iter().rposition(|b| !b.is_ascii_whitespace()).filter(|&i| before[i] == b':')?;
    let end = before[..colon].iter().rposition(|b| !b.is_ascii_whitespace())? + 1;
    let start = end.checked_sub(key.len())?;
    (&body[start..end] == key).then_some(start..end)
}

fn usage_edit_within(body: &[u8], opts: &LazyValue<'_>) -> Result<(bool, UsageEdit), PeekError> {
    if opts.is_null() {
        let span = span_of(body, opts, &["stream_options"]);
        return Ok((false, UsageEdit::Replace { span, with: "{\"include_usage\":true}" }));
    }
    if !opts.is_object() {
        return Err(PeekError::StreamOptionsNotObject);
    }
    let raw = opts.as_raw_str().as_bytes();
    match sonic_rs::get(raw, ["include_usage"]) {
        Ok(value) => {
            let on = optional_bool(Some(&value), "stream_options.include_usage")?;
            let span = span_of(body, &value, &["stream_options", "include_usage"]);
            Ok((on, UsageEdit::Replace { span, with: "true" }))
        }
        Err(_) => {
            let open = span_of(body, opts, &["stream_options"]).start;
            let empty = raw[1..].iter().all(|b| b.is_ascii_whitespace() || *b == b'}');
            Ok((false, UsageEdit::InsertKey { at: open + 1, comma: !empty }))
        }
    }
}

/// The few changes a same-dialect body may need.
#[derive(Debug, Clone, Copy, Default)]
pub struct Splice<'s> {
    /// The model name the provider must see (an alias's target).
    pub model: Option<&'s str>,
    /// Turn `stream_options.include_usage` on.
    pub include_usage: bool,
    /// Rename `max_completion_tokens` to `max_tokens`.
    pub max_tokens_name: bool,
}

impl Splice<'_> {
    /// Whether `peek`'s body needs any change at all.
    pub fn changes(&self, peek: &ChatPeek<'_>) -> bool {
        self.model.is_some()
            || (self.include_usage && !peek.include_usage)
            || (self.max_tokens_name && peek.max_completion_tokens_key.is_some())
    }
}

/// Copies `body` into `out` with the changes of `splice`. Everything else is
/// copied byte for byte.
pub fn splice_chat(body: &[u8], peek: &ChatPeek<'_>, splice: Splice<'_>, out: &mut Vec<u8>) {
    let Splice { model, include_usage, max_tokens_name } = splice;
    out.reserve(body.len() + 48);
    let mut edits: [Option<(Range<usize>, Insert<'_>)>; 3] = [None, None, None];
    if max_tokens_name && let Some(key) = &peek.max_completion_tokens_key {
        edits[2] = Some((key.clone(), Insert::Raw("\"max_tokens\"")));
    }
    if let Some(model) = model {
        edits[0] = Some((peek.model_span.clone(), Insert::JsonString(model)));
    }
    if include_usage && !peek.include_usage {
        edits[1] = Some(match &peek.usage_edit {
            UsageEdit::InsertMember { at } => (*at..*at, Insert::Raw("\"stream_options\":{\"include_usage\":true},")),
            UsageEdit::InsertKey { at, comma: true } => (*at..*at, Insert::Raw("\"include_usage\":true,")),
            UsageEdit::InsertKey { at, comma: false } => (*at..*at, Insert::Raw("\"include_usage\":true")),
            UsageEdit::Replace { span, with } => (span.clone(), Insert::Raw(with)),
        });
    }
    // At most three edits: sorted in place, no allocation.
    edits.sort_by_key(|e| e.as_ref().map_or(usize::MAX, |(span, _)| span.start));
    let edits = edits.into_iter().flatten();
    let mut copied = 0;
    for (span, insert) in edits {
        out.extend_from_slice(&body[copied..span.start]);
        insert.write(out);
        copied = span.end;
    }
    out.extend_from_slice(&body[copied..]);
}

enum Insert<'a> {
    Raw(&'a str),
    JsonString(&'a str),
}

impl Insert<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Insert::Raw(s) => out.extend_from_slice(s.as_bytes()),
            Insert::JsonString(s) => write_json_string(out, s),
        }
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for (i, &b) in s.as_bytes().iter().enumerate() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
            _ => out.push(s.as_bytes()[i]),
        }
    }
    out.push(b'"');
}

/// Reads `usage` from a non-streamed chat or embeddings response.
pub fn response_usage(body: &[u8]) -> Option<Usage> {
    if let Some(usage) = usage_near_the_end(body) {
        return Some(usage);
    }
    let usage = sonic_rs::get(body, ["usage"]).ok()?;
    usage_from_object(usage.as_raw_str().as_bytes())
}

/// The top-level `usage` object of a response, found from its end: the
/// last `"usage"` key, when all that follows its object is more members of
/// the top-level object and that object's close. OpenAI and the servers
/// that copy it write `usage` after `choices` or `data`; read from the
/// start, every vector of an embeddings answer had to be skipped first (a
/// quarter of corelay's CPU at 5,000 embeddings a second). `None` when it
/// cannot tell, and the caller reads from the start.
fn usage_near_the_end(body: &[u8]) -> Option<Usage> {
    let key = memchr::memmem::rfind(body, b"\"usage\"")?;
    // A quote escaped inside a string starts no key.
    if body[..key].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1 {
        return None;
    }
    // The key and what follows it, read as an object of their own: it
    // parses whole only if nothing but members and one closing brace
    // follow, so the key belongs to the outermost object.
    let tail = &body[key..];
    let mut members = Vec::with_capacity(tail.len() + 1);
    members.push(b'{');
    members.extend_from_slice(tail);
    let mut reader = crate::json::Reader::new(&members).ok()?;
    let mut object = reader.object().ok()?;
    let mut usage = None;
    while let Some(name) = object.next(&mut reader).ok()? {
        let value = reader.value().ok()?;
        if usage.is_none() && name == "usage" {
            usage = Some(value);
        }
    }
    reader.finish().ok()?;
    usage_from_object(usage?.json().as_bytes())
}

/// What a streamed chat chunk is, as far as accounting is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// `data: [DONE]`.
    Done,
    /// The usage-only chunk of `include_usage` (`choices` empty, `usage` set).
    UsageOnly(Usage),
    /// Usage riding on a chunk that also has choices (some compatible
    /// providers do this); it must be forwarded.
    WithUsage(Usage),
    /// Anything else.
    Other,
}

/// Classifies one SSE event of a chat-completions stream. Cheap for the
/// common case: an event without a `"usage"` object is recognised by a byte
/// search, without parsing.
pub fn classify_chunk(event: &[u8]) -> ChunkKind {
    let Some(data) = crate::sse::single_data(event) else {
        return ChunkKind::Other;
    };
    if data.trim_ascii() == b"[DONE]" {
        return ChunkKind::Done;
    }
    if !has_usage_object(data) {
        return ChunkKind::Other;
    }
    let Some(usage) = sonic_rs::get(data, ["usage"]).ok().and_then(|u| usage_from_object(u.as_raw_str().as_bytes()))
    else {
        return ChunkKind::Other;
    };
    let choices_empty = sonic_rs::get(data, ["choices"])
        .map(|c| c.as_raw_str().bytes().filter(|b| !b.is_ascii_whitespace()).eq(*b"[]"))
        .unwrap_or(true);
    if choices_empty { ChunkKind::UsageOnly(usage) } else { ChunkKind::WithUsage(usage) }
}

/// True when `"usage"` is followed by an object (not `null`).
fn has_usage_object(data: &[u8]) -> bool {
    let finder = memchr::memmem::Finder::new(b"\"usage\"");
    finder.find_iter(data).any(|i| {
        let rest = data[i + 7..].trim_ascii_start();
        rest.strip_prefix(b":").is_some_and(|r| r.trim_ascii_start().first() == Some(&b'{'))
    })
}

pub(crate) fn usage_from_object(usage: &[u8]) -> Option<Usage> {
    if first_non_space(usage).map(|i| usage[i]) != Some(b'{') {
        return None;
    }
    let field = |path: &[&str]| sonic_rs::get(usage, path).ok().and_then(|v| v.as_u64());
    let number = |path: &[&str]| -> u64 { field(path).unwrap_or(0) };
    // Image and audio answers (gpt-image-1, gpt-4o-transcribe) name them
    // `input_tokens` and `output_tokens`.
    Some(Usage {
        prompt_tokens: field(&["prompt_tokens"]).or_else(|| field(&["input_tokens"])).unwrap_or(0),
        completion_tokens: field(&["completion_tokens"]).or_else(|| field(&["output_tokens"])).unwrap_or(0),
        cached_tokens: number(&["prompt_tokens_details", "cached_tokens"]),
        cache_write_tokens: number(&["prompt_tokens_details", "cache_write_tokens"]),
        reasoning_tokens: number(&["completion_tokens_details", "reasoning_tokens"]),
    })
}

fn lazy_str<'a>(value: &LazyValue<'a>) -> Option<std::borrow::Cow<'a, str>> {
    if !value.is_str() {
        return None;
    }
    let raw = value.as_raw_cow();
    match raw {
        std::borrow::Cow::Borrowed(r) if memchr::memchr(b'\\', r.as_bytes()).is_none() => {
            Some(std::borrow::Cow::Borrowed(&r[1..r.len() - 1]))
        }
        _ => value.as_str().map(|s| std::borrow::Cow::Owned(s.to_owned())),
    }
}

fn optional_bool(value: Option<&LazyValue<'_>>, name: &'static str) -> Result<bool, PeekError> {
    match value {
        None => Ok(false),
        Some(v) if v.is_null() => Ok(false),
        Some(v) => v.as_bool().ok_or(PeekError::NotBoolean(name)),
    }
}

/// The byte range of a lazy value inside the body it was read from. A value
/// that sonic-rs had to copy (a string with escapes, deserialized through
/// serde) is found again by its path, which always borrows.
fn span_of(body: &[u8], value: &LazyValue<'_>, path: &[&str]) -> Range<usize> {
    if let Some(span) = borrowed_span(body, value.as_raw_str().as_bytes()) {
        return span;
    }
    let again = sonic_rs::get(body, path).expect("a value read once is found again");
    borrowed_span(body, again.as_raw_str().as_bytes()).expect("sonic_rs::get borrows its input")
}

fn borrowed_span(body: &[u8], raw: &[u8]) -> Option<Range<usize>> {
    let start = (raw.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    (start + raw.len() <= body.len()).then_some(start..start + raw.len())
}

fn first_non_space(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| !b.is_ascii_whitespace())
}

fn json_error(e: sonic_rs::Error) -> PeekError {
    // sonic-rs appends a snippet of the input on further lines; the first
    // line says what and where, which is what a client error message needs.
    let text = e.to_string();
    PeekError::Json(text.lines().next().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spliced(body: &str, model: Option<&str>, usage: bool) -> String {
        let peek = peek_chat(body.as_bytes()).unwrap();
        let mut out = Vec::new();
        splice_chat(body.as_bytes(), &peek, Splice { model, include_usage: usage, max_tokens_name: false }, &mut out);
        let text = String::from_utf8(out).unwrap();
        // Every splice must leave valid JSON.
        sonic_rs::from_str::<sonic_rs::Value>(&text).unwrap();
        text
    }

    #[test]
    fn peek_reads_model_and_stream() {
        let p = peek_chat(br#"{"model":"gpt-4o","messages":[],"stream":true}"#).unwrap();
        assert_eq!(p.model, "gpt-4o");
        assert!(p.stream);
        assert!(!p.include_usage);
        let p = peek_chat(br#" {"messages":[], "stream": null, "model" : "a\"b"}"#).unwrap();
        assert_eq!(p.model, "a\"b");
        assert!(!p.stream);
    }

    #[test]
    fn peek_rejects_malformed_and_missing() {
        assert!(matches!(peek_chat(br#"{"model":"x","messages":[1,2,,,}"#), Err(PeekError::Json(_))));
        assert!(matches!(peek_chat(br#"{"model":"x"} trailing"#), Err(PeekError::Json(_))));
        assert!(matches!(peek_chat(b""), Err(PeekError::Json(_))));
        assert_eq!(peek_chat(br#"[1]"#), Err(PeekError::NotObject));
        assert_eq!(peek_chat(br#"{"messages":[]}"#), Err(PeekError::MissingModel));
        assert_eq!(peek_chat(br#"{"model":null}"#), Err(PeekError::MissingModel));
        assert_eq!(peek_chat(br#"{"model":7}"#), Err(PeekError::ModelNotString));
        assert_eq!(peek_chat(br#"{"model":"m","stream":"yes"}"#), Err(PeekError::NotBoolean("stream")));
        assert_eq!(peek_chat(br#"{"model":"m","stream_options":3}"#), Err(PeekError::StreamOptionsNotObject));
    }

    #[test]
    fn splice_without_edits_is_identity() {
        let body = r#"{"model":"m", "messages":[{"role":"user","content":"hi"}],"top_p":1}"#;
        assert_eq!(spliced(body, None, false), body);
    }

    #[test]
    fn splice_rewrites_model_only() {
        let body = r#"{"messages":[],"model":"fast","top_p":1.0}"#;
        assert_eq!(spliced(body, Some("gpt-4o-mini"), false), r#"{"messages":[],"model":"gpt-4o-mini","top_p":1.0}"#);
        assert_eq!(spliced(body, Some("q\"uote"), false), r#"{"messages":[],"model":"q\"uote","top_p":1.0}"#);
    }

    #[test]
    fn splice_turns_usage_on_in_every_shape() {
        let cases = [
            (
                r#"{"model":"m","stream":true}"#,
                r#"{"stream_options":{"include_usage":true},"model":"m","stream":true}"#,
            ),
            (r#"{"model":"m","stream_options":{}}"#, r#"{"model":"m","stream_options":{"include_usage":true}}"#),
            (r#"{"model":"m","stream_options":{ }}"#, r#"{"model":"m","stream_options":{"include_usage":true }}"#),
            (
                r#"{"model":"m","stream_options":{"include_obfuscation":false}}"#,
                r#"{"model":"m","stream_options":{"include_usage":true,"include_obfuscation":false}}"#,
            ),
            (
                r#"{"model":"m","stream_options":{"include_usage":false}}"#,
                r#"{"model":"m","stream_options":{"include_usage":true}}"#,
            ),
            (r#"{"model":"m","stream_options":null}"#, r#"{"model":"m","stream_options":{"include_usage":true}}"#),
        ];
        for (body, want) in cases {
            assert_eq!(spliced(body, None, true), want, "{body}");
        }
    }

    #[test]
    fn splice_leaves_usage_alone_when_client_asked() {
        let body = r#"{"model":"m","stream_options":{"include_usage":true}}"#;
        let p = peek_chat(body.as_bytes()).unwrap();
        assert!(p.include_usage);
        assert_eq!(spliced(body, None, true), body);
    }

    #[test]
    fn splice_does_both_edits_in_either_order() {
        let body = r#"{"stream_options":{"include_usage":false},"model":"fast"}"#;
        assert_eq!(spliced(body, Some("real"), true), r#"{"stream_options":{"include_usage":true},"model":"real"}"#);
        let body = r#"{"model":"fast","stream":true}"#;
        assert_eq!(
            spliced(body, Some("real"), true),
            r#"{"stream_options":{"include_usage":true},"model":"real","stream":true}"#
        );
    }

    #[test]
    fn renames_max_completion_tokens_only_when_asked_and_alone() {
        let body = br#"{"model":"m", "max_completion_tokens" : 50,"messages":[]}"#;
        let peek = peek_chat(body).unwrap();
        let mut out = Vec::new();
        splice_chat(body, &peek, Splice { max_tokens_name: true, ..Splice::default() }, &mut out);
        assert_eq!(out, br#"{"model":"m", "max_tokens" : 50,"messages":[]}"#);
        let both = br#"{"model":"m","max_tokens":10,"max_completion_tokens":50}"#;
        assert!(!Splice { max_tokens_name: true, ..Splice::default() }.changes(&peek_chat(both).unwrap()));
    }

    #[test]
    fn usage_is_read_from_responses_and_chunks() {
        let body = br#"{"id":"x","usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30,
            "prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":7}}}"#;
        assert_eq!(
            response_usage(body),
            Some(Usage {
                prompt_tokens: 10,
                completion_tokens: 20,
                cached_tokens: 4,
                cache_write_tokens: 0,
                reasoning_tokens: 7
            })
        );
        assert_eq!(response_usage(br#"{"usage":null}"#), None);
        // Found from the end, with members after it (OpenAI's own order).
        let u = |p, c| Some(Usage { prompt_tokens: p, completion_tokens: c, ..Usage::default() });
        let embeddings = br#"{"object":"list","data":[{"embedding":[0.0,0.1]}],"model":"m",
            "usage":{"prompt_tokens":2,"completion_tokens":0},"service_tier":"default","system_fingerprint":"fp" }"#;
        assert_eq!(usage_near_the_end(embeddings), u(2, 0));
        assert_eq!(response_usage(embeddings), u(2, 0));
        // A nested `usage` last is not the response's: read from the start.
        let nested = br#"{"usage":{"prompt_tokens":1,"completion_tokens":1},"x":{"usage":{"prompt_tokens":9}}}"#;
        assert_eq!(usage_near_the_end(nested), None);
        assert_eq!(response_usage(nested), u(1, 1));
        // Nor is one inside a string, escaped quotes and all: the key found
        // from the end is the real one before it.
        let in_string =
            br#"{"usage":{"prompt_tokens":3,"completion_tokens":1},"c":"say \"usage\":{\"prompt_tokens\":8}}"}"#;
        assert_eq!(usage_near_the_end(in_string), u(3, 1));
        // Image and audio answers spell them input and output.
        let image = br#"{"created":1,"data":[],"usage":{"input_tokens":5,"output_tokens":100,"total_tokens":105}}"#;
        assert_eq!(response_usage(image), u(5, 100));
        let key_in_string = br#"{"usage":{"prompt_tokens":4,"completion_tokens":1},"c":"\"usage":{"prompt_tokens":8}}"#;
        assert_eq!(response_usage(key_in_string), u(4, 1));
        let chunk = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n";
        assert_eq!(
            classify_chunk(chunk),
            ChunkKind::UsageOnly(Usage { prompt_tokens: 1, completion_tokens: 2, ..Usage::default() })
        );
        let chunk = b"data: {\"choices\":[{\"index\":0}],\"usage\" : {\"prompt_tokens\":1}}\n\n";
        assert!(matches!(classify_chunk(chunk), ChunkKind::WithUsage(_)));
        assert_eq!(classify_chunk(b"data: {\"choices\":[],\"usage\":null}\n\n"), ChunkKind::Other);
        assert_eq!(classify_chunk(b"data: [DONE]\n\n"), ChunkKind::Done);
        assert_eq!(classify_chunk(b": keep-alive\n\n"), ChunkKind::Other);
    }
}
