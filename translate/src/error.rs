//! Errors of translation, and provider errors in no particular dialect.
//!
//! A request that cannot be translated is the client's fault and gets a 400
//! naming the parameter ([`Error`]). A provider's error, before or after the
//! response started, is read from its dialect into a [`ProviderError`] and
//! written back in the client's dialect with the status of the mapping
//! tables of `shared/providers` (Anthropic's 529 becomes 503 for OpenAI
//! clients, Gemini's `API_KEY_INVALID` 400 becomes 401, and so on).

use std::borrow::Cow;

use crate::raw::write_json_string;

/// Why a request could not be translated. Always the client's to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    /// The provider's answer could not be read.
    #[error("the provider's answer could not be read: {0}")]
    Provider(String),
    /// A parameter has a value this gateway or the provider cannot take.
    #[error("{message}")]
    Invalid { param: Cow<'static, str>, message: Cow<'static, str> },
}

impl Error {
    pub fn invalid(param: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Error {
        Error::Invalid { param: param.into(), message: message.into() }
    }

    /// sonic-rs appends a snippet of the input on further lines; the first
    /// line says what and where, which is what a client needs.
    pub fn json(e: impl std::fmt::Display) -> Error {
        Error::Json(first_line(e))
    }

    /// The parameter at fault, when there is one.
    pub fn param(&self) -> Option<&str> {
        match self {
            Error::Json(_) | Error::Provider(_) => None,
            Error::Invalid { param, .. } => Some(param),
        }
    }
}

/// What went wrong at the provider, by meaning. Each client dialect has a
/// name for every kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    Billing,
    Permission,
    NotFound,
    TooLarge,
    RateLimit,
    Server,
    /// A gateway or proxy in front of the model failed (502).
    BadGateway,
    /// The provider is overloaded (Anthropic 529, Gemini 503).
    Overloaded,
    Timeout,
}

impl ErrorKind {
    /// The kind an HTTP status means when the body says nothing better.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Authentication,
            402 => ErrorKind::Billing,
            403 => ErrorKind::Permission,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::TooLarge,
            429 => ErrorKind::RateLimit,
            502 => ErrorKind::BadGateway,
            503 | 529 => ErrorKind::Overloaded,
            504 => ErrorKind::Timeout,
            400..=499 => ErrorKind::InvalidRequest,
            _ => ErrorKind::Server,
        }
    }

    /// The status an OpenAI client gets.
    pub fn openai_status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::Billing => 402,
            ErrorKind::Permission => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::TooLarge => 413,
            ErrorKind::RateLimit => 429,
            ErrorKind::Server => 500,
            ErrorKind::BadGateway => 502,
            ErrorKind::Overloaded => 503,
            ErrorKind::Timeout => 504,
        }
    }

    /// The status an Anthropic client gets: Anthropic's own, 529 included.
    pub fn anthropic_status(self) -> u16 {
        match self {
            ErrorKind::Overloaded => 529,
            other => other.openai_status(),
        }
    }

    /// OpenAI's `error.type`.
    pub fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::TooLarge | ErrorKind::NotFound => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Billing => "insufficient_quota",
            ErrorKind::Permission => "permission_error",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Server | ErrorKind::BadGateway => "server_error",
            ErrorKind::Overloaded => "overloaded_error",
            ErrorKind::Timeout => "timeout",
        }
    }

    /// OpenAI's `error.code`.
    pub fn openai_code(self) -> Option<&'static str> {
        match self {
            ErrorKind::Authentication => Some("invalid_api_key"),
            ErrorKind::RateLimit => Some("rate_limit_exceeded"),
            ErrorKind::TooLarge => Some("request_too_large"),
            ErrorKind::Overloaded => Some("overloaded"),
            ErrorKind::NotFound => Some("not_found"),
            _ => None,
        }
    }

    /// Anthropic's `error.type`.
    pub fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Billing => "billing_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::TooLarge => "request_too_large",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Server | ErrorKind::BadGateway => "api_error",
            ErrorKind::Overloaded => "overloaded_error",
            ErrorKind::Timeout => "timeout_error",
        }
    }

    /// The kind of an Anthropic `error.type`.
    pub fn from_anthropic_type(name: &str, status: u16) -> ErrorKind {
        match name {
            "invalid_request_error" => ErrorKind::InvalidRequest,
            "authentication_error" => ErrorKind::Authentication,
            "billing_error" => ErrorKind::Billing,
            "permission_error" => ErrorKind::Permission,
            "not_found_error" => ErrorKind::NotFound,
            "request_too_large" => ErrorKind::TooLarge,
            "rate_limit_error" => ErrorKind::RateLimit,
            "api_error" => ErrorKind::Server,
            "overloaded_error" => ErrorKind::Overloaded,
            "timeout_error" => ErrorKind::Timeout,
            _ => ErrorKind::from_status(status),
        }
    }

    /// The kind of an OpenAI `error.type` or `error.code`.
    pub fn from_openai(type_: &str, code: &str, status: u16) -> ErrorKind {
        match (type_, code) {
            (_, "invalid_api_key") | ("authentication_error", _) => ErrorKind::Authentication,
            (_, "rate_limit_exceeded") | ("rate_limit_error", _) => ErrorKind::RateLimit,
            ("insufficient_quota", _) | (_, "insufficient_quota") => ErrorKind::Billing,
            ("overloaded_error", _) => ErrorKind::Overloaded,
            (_, "content_filter") => ErrorKind::InvalidRequest,
            _ => ErrorKind::from_status(status),
        }
    }
}

/// A provider's error, read from its dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    pub kind: ErrorKind,
    /// The provider's message, decoded.
    pub message: String,
    /// The provider's own code, when it has one (OpenAI `code`, Gemini
    /// `status`, Bedrock's exception name), kept for the client.
    pub code: Option<String>,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ProviderError {
        ProviderError { kind, message: message.into(), code: None }
    }
}

/// Writes `{"error":{"message","type","param","code"}}`.
pub fn write_openai_error(out: &mut Vec<u8>, message: &str, type_: &str, param: Option<&str>, code: Option<&str>) {
    out.extend_from_slice(b"{\"error\":{\"message\":");
    write_json_string(out, message);
    out.extend_from_slice(b",\"type\":");
    write_json_string(out, type_);
    out.extend_from_slice(b",\"param\":");
    write_opt(out, param);
    out.extend_from_slice(b",\"code\":");
    write_opt(out, code);
    out.extend_from_slice(b"}}");
}

/// Writes `{"type":"error","error":{"type","message"}}`.
pub fn write_anthropic_error(out: &mut Vec<u8>, message: &str, type_: &str) {
    out.extend_from_slice(b"{\"type\":\"error\",\"error\":{\"type\":");
    write_json_string(out, type_);
    out.extend_from_slice(b",\"message\":");
    write_json_string(out, message);
    out.extend_from_slice(b"}}");
}

impl ProviderError {
    /// This error in OpenAI's shape.
    pub fn write_openai(&self, out: &mut Vec<u8>) {
        let code = self.code.as_deref().or(self.kind.openai_code());
        write_openai_error(out, &self.message, self.kind.openai_type(), None, code);
    }

    /// This error in Anthropic's shape.
    pub fn write_anthropic(&self, out: &mut Vec<u8>) {
        write_anthropic_error(out, &self.message, self.kind.anthropic_type());
    }
}

fn write_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_json_string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// The `error` object OpenAI and Anthropic both answer with (Anthropic's
/// has no `code`).
#[derive(serde::Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow)]
    error: Option<ErrorObject<'a>>,
}

#[derive(serde::Deserialize)]
struct ErrorObject<'a> {
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "type")]
    type_: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient_code")]
    code: Option<String>,
}

/// Reads `{"error":{...}}` and names its kind with `kind_of(type, code)`;
/// anything else keeps the status's meaning and a short excerpt of the body.
fn parse_error_object(status: u16, body: &[u8], kind_of: impl Fn(&str, &str) -> ErrorKind) -> ProviderError {
    match crate::wire::from_slice::<ErrorBody<'_>>(body) {
        Ok(ErrorBody { error: Some(inner) }) => {
            let code = inner.code.unwrap_or_default();
            let kind = kind_of(inner.type_.as_deref().unwrap_or(""), &code);
            let message = inner.message.map(Cow::into_owned).unwrap_or_else(|| excerpt(body));
            ProviderError { kind, message, code: (!code.is_empty()).then_some(code) }
        }
        _ => ProviderError::new(ErrorKind::from_status(status), excerpt(body)),
    }
}

/// Reads an error body in OpenAI's shape (also Azure's and Ollama's `/v1`).
pub fn parse_openai_error(status: u16, body: &[u8]) -> ProviderError {
    parse_error_object(status, body, |type_, code| ErrorKind::from_openai(type_, code, status))
}

/// Reads an error body in Anthropic's shape.
pub fn parse_anthropic_error(status: u16, body: &[u8]) -> ProviderError {
    parse_error_object(status, body, |type_, _| ErrorKind::from_anthropic_type(type_, status))
}

/// `code` is a string for OpenAI, a number for some compatible servers.
fn lenient_code<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let raw = <crate::raw::Raw<'de> as serde::Deserialize>::deserialize(d)?;
    Ok(if raw.is_string() {
        raw.decode_string().map(Cow::into_owned)
    } else if raw.is_null() {
        None
    } else {
        Some(raw.json().to_owned())
    })
}

/// The first bytes of a body that is not in any known error shape, so the
/// client sees what the provider said.
pub fn excerpt(body: &[u8]) -> String {
    const EXCERPT_BYTES_MAX: usize = 512;
    let cut = body.len().min(EXCERPT_BYTES_MAX);
    let text = String::from_utf8_lossy(&body[..cut]);
    let text = text.trim();
    if text.is_empty() { "the provider returned an error with an empty body".to_owned() } else { text.to_owned() }
}

/// The first line of an error's text (sonic-rs adds a snippet of the input
/// on further lines).
pub(crate) fn first_line(e: impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

/// Where in a request a parameter is (`messages[3]`), formatted only when an
/// error needs it: building the text for every message would cost more than
/// translating it.
#[derive(Debug, Clone, Copy)]
pub struct Path<'p> {
    pub prefix: &'p str,
    pub index: usize,
}

impl<'p> Path<'p> {
    pub fn index(prefix: &'p str, index: usize) -> Path<'p> {
        Path { prefix, index }
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.prefix, self.index)
    }
}
