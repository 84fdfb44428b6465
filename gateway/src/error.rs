//! The gateway's error type and the one place that turns an error into an
//! HTTP response.
//!
//! Every failure a request can meet is a [`GatewayError`]. It knows where it
//! came from (the client, a provider, or corelay itself) and whether trying
//! again could help. [`rescue`] is the only function that maps an error to a
//! status and a body; the body is in the client's dialect, so an OpenAI SDK
//! raises the exception it documents for that status.

use crate::upstream::UpstreamError;

/// Who caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Client,
    Provider,
    Internal,
}

/// The wire dialect an error is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    #[error("Unknown request URL: {0}")]
    RouteNotFound(String),
    #[error("Method {method} is not allowed on {path}")]
    MethodNotAllowed { method: &'static str, path: String, allow: &'static str },
    #[error("Request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    HeadTooLarge(String),
    /// The client did not send its request in time.
    #[error("{0}")]
    ClientTimeout(String),
    #[error("Provider `{provider}` is unreachable: {source}")]
    UpstreamUnreachable { provider: String, source: UpstreamError },
    #[error("Provider `{provider}` sent an invalid response: {source}")]
    UpstreamBadResponse { provider: String, source: UpstreamError },
    #[error("Provider `{provider}` did not answer in time")]
    UpstreamTimeout { provider: String },
    /// The provider answered with an error status; its body is passed on.
    #[error("Provider `{provider}` answered {status}")]
    Upstream { provider: String, status: u16, body: Vec<u8>, forward: Vec<(String, String)> },
    /// The provider refused corelay's own credentials for it (its 401 or
    /// 403, or an error that means that). The client's request is not at
    /// fault and its key is fine, so the client gets a 502 naming the
    /// provider, never the provider's auth failure as its own; `message` is
    /// the provider's, with anything that looks like a key taken out (see
    /// [`GatewayError::provider_auth`]).
    #[error("Provider `{provider}` rejected the gateway's credentials for it (provider status {status}): {message}")]
    ProviderAuth { provider: String, status: u16, message: String, forward: Vec<(String, String)> },
    /// The client's request cannot be translated for the provider.
    #[error("{0}")]
    Translate(translate::error::Error),
    /// A provider of another dialect answered with an error, read into
    /// its meaning so the client gets it in its own dialect.
    #[error("Provider `{provider}`: {}", .error.message)]
    Provider { provider: String, error: translate::error::ProviderError, forward: Vec<(String, String)> },
    /// Every deployment that serves the model is cooling down after
    /// failures (its circuit breaker is open).
    #[error("Every provider of `{model}` is failing; corelay retries them in {} s", retry_after.as_secs().max(1))]
    NoHealthyDeployment { model: String, retry_after: std::time::Duration },
    /// The caller's key is over its requests (or tokens) per minute.
    #[error("Rate limit reached: this key may use {limit} {} per minute; try again in {retry_after} s", if *tokens { "tokens" } else { "requests" })]
    RateLimited { tokens: bool, limit: u64, retry_after: u64 },
    /// The caller's key spent its budget for the current period.
    #[error("The key `{key}` has spent its budget for this period.")]
    BudgetExceeded { key: String },
    /// The client closed its connection while its provider was awaited;
    /// nobody reads the answer (499, as nginx logs it).
    #[error("the client closed the connection")]
    ClientClosed,
    #[error("{0}")]
    Internal(String),
}

impl GatewayError {
    pub fn source_kind(&self) -> Source {
        match self {
            GatewayError::BadRequest(_)
            | GatewayError::Unauthorized(_)
            | GatewayError::Forbidden(_)
            | GatewayError::ModelNotFound(_)
            | GatewayError::RouteNotFound(_)
            | GatewayError::MethodNotAllowed { .. }
            | GatewayError::PayloadTooLarge { .. }
            | GatewayError::HeadTooLarge(_)
            | GatewayError::ClientTimeout(_)
            | GatewayError::ClientClosed
            | GatewayError::RateLimited { .. }
            | GatewayError::BudgetExceeded { .. }
            | GatewayError::Translate(_) => Source::Client,
            GatewayError::UpstreamUnreachable { .. }
            | GatewayError::UpstreamBadResponse { .. }
            | GatewayError::UpstreamTimeout { .. }
            | GatewayError::Upstream { .. }
            | GatewayError::ProviderAuth { .. }
            | GatewayError::Provider { .. }
            | GatewayError::NoHealthyDeployment { .. } => Source::Provider,
            GatewayError::Internal(_) => Source::Internal,
        }
    }

    /// Whether another attempt (on this or another deployment) could succeed.
    /// `ProviderAuth` is not: the same credentials fail the same way.
    pub fn retryable(&self) -> bool {
        match self {
            // Garbage or a cut answer from one deployment (before anything
            // reached the client): another may answer properly.
            GatewayError::UpstreamUnreachable { .. }
            | GatewayError::UpstreamTimeout { .. }
            | GatewayError::UpstreamBadResponse { .. } => true,
            GatewayError::Upstream { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504 | 529),
            GatewayError::Provider { error, .. } => matches!(error.kind.openai_status(), 429 | 500..),
            _ => false,
        }
    }

    /// Whether the provider throttled the request (429, or an error that
    /// means that in its dialect): worth a retry elsewhere or later, but no
    /// sign that the provider is down.
    pub fn is_rate_limit(&self) -> bool {
        match self {
            GatewayError::Upstream { status, .. } => *status == 429,
            GatewayError::Provider { error, .. } => error.kind == translate::error::ErrorKind::RateLimit,
            _ => false,
        }
    }

    /// How long the provider asked to be left alone (`retry-after-ms`, or
    /// `retry-after` in seconds), when it said.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        let forward = match self {
            GatewayError::Upstream { forward, .. } | GatewayError::Provider { forward, .. } => forward,
            _ => return None,
        };
        let header = |name: &str| forward.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim());
        if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite()) {
            return Some(std::time::Duration::from_millis(ms.clamp(0.0, RETRY_AFTER_S_MAX as f64 * 1000.0) as u64));
        }
        // An HTTP date is possible too; providers send seconds. A day at most:
        // a larger value is no hint anyone can wait for.
        header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|s| std::time::Duration::from_secs(s.min(RETRY_AFTER_S_MAX)))
    }

    /// Classifies a client-side transport failure of one provider.
    pub fn from_upstream(provider: &str, e: UpstreamError) -> GatewayError {
        let provider = provider.to_owned();
        match e {
            UpstreamError::Timeout | UpstreamError::ConnectTimeout => GatewayError::UpstreamTimeout { provider },
            UpstreamError::NoAddress
            | UpstreamError::Connect(_)
            | UpstreamError::Tls(_)
            | UpstreamError::Io(_)
            | UpstreamError::ClosedEarly => GatewayError::UpstreamUnreachable { provider, source: e },
            UpstreamError::ClosedMidBody | UpstreamError::Protocol(_) | UpstreamError::TooLarge => {
                GatewayError::UpstreamBadResponse { provider, source: e }
            }
        }
    }

    /// The provider refused corelay's credentials: `message` is what it
    /// said, kept to `PROVIDER_MESSAGE_CHARS_MAX` characters with anything
    /// that looks like a key redacted (OpenAI's 401 quotes the start and end
    /// of the key it was given).
    pub fn provider_auth(provider: &str, status: u16, message: &str, forward: Vec<(String, String)>) -> GatewayError {
        let message: String = message.trim().chars().take(PROVIDER_MESSAGE_CHARS_MAX).collect();
        GatewayError::ProviderAuth { provider: provider.to_owned(), status, message: redact_secrets(&message), forward }
    }

    pub fn status(&self) -> u16 {
        match self {
            GatewayError::BadRequest(_) => 400,
            GatewayError::Unauthorized(_) => 401,
            GatewayError::Forbidden(_) => 403,
            GatewayError::ModelNotFound(_) | GatewayError::RouteNotFound(_) => 404,
            GatewayError::MethodNotAllowed { .. } => 405,
            GatewayError::PayloadTooLarge { .. } => 413,
            GatewayError::HeadTooLarge(_) => 431,
            GatewayError::ClientTimeout(_) => 408,
            GatewayError::ClientClosed => 499,
            GatewayError::RateLimited { .. } | GatewayError::BudgetExceeded { .. } => 429,
            GatewayError::UpstreamUnreachable { .. }
            | GatewayError::UpstreamBadResponse { .. }
            | GatewayError::ProviderAuth { .. } => 502,
            GatewayError::UpstreamTimeout { .. } => 504,
            GatewayError::NoHealthyDeployment { .. } => 503,
            GatewayError::Upstream { status, .. } => *status,
            GatewayError::Translate(translate::error::Error::Provider(_)) => 502,
            GatewayError::Translate(_) => 400,
            GatewayError::Provider { error, .. } => error.kind.openai_status(),
            GatewayError::Internal(_) => 500,
        }
    }

    /// OpenAI's `type` and `code` for this error.
    fn openai_type_code(&self) -> (&'static str, Option<&'static str>) {
        match self {
            GatewayError::BadRequest(_) => ("invalid_request_error", None),
            GatewayError::Unauthorized(_) => ("invalid_request_error", Some("invalid_api_key")),
            GatewayError::Forbidden(_) => ("permission_error", Some("model_not_allowed")),
            GatewayError::ModelNotFound(_) => ("invalid_request_error", Some("model_not_found")),
            GatewayError::RouteNotFound(_) => ("invalid_request_error", Some("unknown_url")),
            GatewayError::MethodNotAllowed { .. } => ("invalid_request_error", Some("method_not_allowed")),
            GatewayError::PayloadTooLarge { .. } => ("invalid_request_error", Some("request_too_large")),
            GatewayError::HeadTooLarge(_) => ("invalid_request_error", Some("request_header_too_large")),
            GatewayError::ClientTimeout(_) => ("invalid_request_error", Some("request_timeout")),
            GatewayError::ClientClosed => ("invalid_request_error", Some("client_closed")),
            GatewayError::BudgetExceeded { .. } => ("insufficient_quota", Some("budget_exceeded")),
            GatewayError::RateLimited { tokens: false, .. } => ("requests", Some("rate_limit_exceeded")),
            GatewayError::RateLimited { tokens: true, .. } => ("tokens", Some("rate_limit_exceeded")),
            GatewayError::UpstreamUnreachable { .. } => ("upstream_error", Some("upstream_unreachable")),
            GatewayError::UpstreamBadResponse { .. } => ("upstream_error", Some("bad_upstream_response")),
            GatewayError::UpstreamTimeout { .. } => ("upstream_error", Some("upstream_timeout")),
            GatewayError::ProviderAuth { .. } => ("upstream_error", Some("upstream_auth_failed")),
            GatewayError::NoHealthyDeployment { .. } => ("upstream_error", Some("no_healthy_provider")),
            GatewayError::Upstream { .. } => ("upstream_error", None),
            GatewayError::Translate(translate::error::Error::Provider(_)) => {
                ("upstream_error", Some("bad_upstream_response"))
            }
            GatewayError::Translate(_) => ("invalid_request_error", None),
            GatewayError::Provider { error, .. } => (error.kind.openai_type(), error.kind.openai_code()),
            GatewayError::Internal(_) => ("server_error", None),
        }
    }
}

/// The status, extra headers and body that answer `error` in `dialect`.
pub fn rescue(error: &GatewayError, dialect: Dialect) -> (u16, Vec<(String, String)>, Vec<u8>) {
    match error {
        // A same-dialect provider's error body is already in shape.
        GatewayError::Upstream { body, forward, status, .. } if is_dialect_error(body) => {
            return (*status, forward.clone(), body.clone());
        }
        GatewayError::Upstream { body, forward, status, .. } => {
            let text = String::from_utf8_lossy(body);
            let message = format!("{error}: {}", text.trim());
            let kind = translate::error::ErrorKind::from_status(*status);
            let body = match dialect {
                Dialect::OpenAi => openai_error_body(&message, "upstream_error", None),
                Dialect::Anthropic => anthropic_error_body(&message, kind.anthropic_type()),
            };
            return (*status, forward.clone(), body);
        }
        GatewayError::Provider { error: e, forward, .. } => {
            let mut body = Vec::with_capacity(e.message.len() + 96);
            let status = match dialect {
                Dialect::OpenAi => {
                    e.write_openai(&mut body);
                    e.kind.openai_status()
                }
                Dialect::Anthropic => {
                    e.write_anthropic(&mut body);
                    e.kind.anthropic_status()
                }
            };
            return (status, forward.clone(), body);
        }
        _ => {}
    }
    let headers = match error {
        GatewayError::MethodNotAllowed { allow, .. } => vec![("allow".to_owned(), (*allow).to_owned())],
        GatewayError::ProviderAuth { forward, .. } => forward.clone(),
        GatewayError::RateLimited { tokens, limit, retry_after } => {
            let what = if *tokens { "tokens" } else { "requests" };
            vec![
                ("retry-after".to_owned(), retry_after.to_string()),
                (format!("x-ratelimit-limit-{what}"), limit.to_string()),
                (format!("x-ratelimit-remaining-{what}"), "0".to_owned()),
                (format!("x-ratelimit-reset-{what}"), format!("{retry_after}s")),
            ]
        }
        GatewayError::NoHealthyDeployment { retry_after, .. } => {
            vec![("retry-after".to_owned(), retry_after.as_secs().max(1).to_string())]
        }
        _ => Vec::new(),
    };
    let status = error.status();
    let body = match dialect {
        Dialect::OpenAi => {
            let (kind, code) = error.openai_type_code();
            let param = match error {
                GatewayError::Translate(e) => e.param(),
                _ => None,
            };
            let mut out = Vec::new();
            translate::error::write_openai_error(&mut out, &error.to_string(), kind, param, code);
            out
        }
        Dialect::Anthropic => {
            let kind = translate::error::ErrorKind::from_status(status);
            anthropic_error_body(&error.to_string(), kind.anthropic_type())
        }
    };
    (status, headers, body)
}

/// The longest `Retry-After` taken from a provider, in seconds.
const RETRY_AFTER_S_MAX: u64 = 86_400;

/// The most of a provider's message an error carries to the client.
const PROVIDER_MESSAGE_CHARS_MAX: usize = 500;

/// `text` with every word that looks like a credential replaced by
/// `[redacted]`: API keys by their prefixes (`sk-`, `sk_`, `sk-ant-`,
/// `AIza`, AWS `AKIA`/`ASIA`), masked keys (`****`), and any long run of
/// base64 or hex that mixes letters and digits. A word is a run of ASCII
/// letters, digits and `-_+/=*`.
pub fn redact_secrets(text: &str) -> String {
    const WORD_BYTES_SECRET_MIN: usize = 20;
    fn is_word(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '/' | '=' | '*')
    }
    fn looks_secret(word: &str) -> bool {
        let prefixed = ["sk-", "sk_", "AIza", "AKIA", "ASIA"].iter().any(|p| word.starts_with(p)) && word.len() >= 8;
        let mixed = word.bytes().any(|b| b.is_ascii_digit()) && word.bytes().any(|b| b.is_ascii_alphabetic());
        prefixed || word.contains("****") || (word.len() >= WORD_BYTES_SECRET_MIN && mixed)
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        out.push_str(if looks_secret(word) { "[redacted]" } else { word });
        let gap = after.find(is_word).unwrap_or(after.len());
        out.push_str(&after[..gap]);
        rest = &after[gap..];
    }
    out
}

/// Whether an error body is in OpenAI's or Anthropic's shape (both have
/// `error.message`), so that it can go to a client of the same dialect.
fn is_dialect_error(body: &[u8]) -> bool {
    sonic_rs::get(body, ["error", "message"]).is_ok()
}

/// `{"type":"error","error":{"type","message"}}`, Anthropic's error shape.
pub fn anthropic_error_body(message: &str, kind: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    translate::error::write_anthropic_error(&mut out, message, kind);
    out
}

/// `{"error":{"message","type","param","code"}}`, OpenAI's error shape.
pub fn openai_error_body(message: &str, kind: &str, code: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 96);
    out.extend_from_slice(b"{\"error\":{\"message\":");
    translate::openai::write_json_string(&mut out, message);
    out.extend_from_slice(b",\"type\":");
    translate::openai::write_json_string(&mut out, kind);
    out.extend_from_slice(b",\"param\":null,\"code\":");
    match code {
        Some(c) => translate::openai::write_json_string(&mut out, c),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_the_openai_shape() {
        let errors = [
            GatewayError::BadRequest("bad \"json\"".into()),
            GatewayError::Unauthorized("no key".into()),
            GatewayError::ModelNotFound("m".into()),
            GatewayError::PayloadTooLarge { limit: 10 },
            GatewayError::UpstreamTimeout { provider: "p".into() },
            GatewayError::Upstream {
                provider: "p".into(),
                status: 503,
                body: b"<html>down</html>".to_vec(),
                forward: vec![],
            },
        ];
        for e in &errors {
            let (status, _, body) = rescue(e, Dialect::OpenAi);
            assert_eq!(status, e.status());
            let v: sonic_rs::Value = sonic_rs::from_slice(&body).unwrap();
            use sonic_rs::JsonValueTrait;
            for key in ["message", "type", "param", "code"] {
                assert!(v["error"].get(key).is_some(), "{key} missing in {}", String::from_utf8_lossy(&body));
            }
        }
    }

    #[test]
    fn keys_in_provider_messages_are_redacted() {
        let cases = [
            (
                "Incorrect API key provided: sk-proj-****abcd. You can find your API key at https://platform.openai.com/account/api-keys.",
                "Incorrect API key provided: [redacted]. You can find your API key at https://platform.openai.com/account/api-keys.",
            ),
            ("invalid x-api-key sk-ant-api03-AbC_dEf-123", "invalid x-api-key [redacted]"),
            ("API key not valid: AIzaSyA1b2C3d4E5f6G7h8", "API key not valid: [redacted]"),
            ("The security token AKIAIOSFODNN7EXAMPLE is invalid.", "The security token [redacted] is invalid."),
            ("token 9f86d081884c7d659a2feaa0c55ad015 (hex)", "token [redacted] (hex)"),
            ("authentication_error: permission_denied", "authentication_error: permission_denied"),
        ];
        for (text, want) in cases {
            assert_eq!(redact_secrets(text), want);
        }
    }

    #[test]
    fn a_provider_refusing_its_credentials_is_a_502_in_either_dialect() {
        let e = GatewayError::provider_auth("openai", 401, "Incorrect API key provided: sk-proj-****abcd.", vec![]);
        let (status, _, body) = rescue(&e, Dialect::OpenAi);
        assert_eq!(status, 502);
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("\"code\":\"upstream_auth_failed\"") && text.contains("`openai`"), "{text}");
        assert!(!text.contains("abcd") && !text.contains("invalid_api_key"), "{text}");
        let (status, _, body) = rescue(&e, Dialect::Anthropic);
        assert_eq!(status, 502);
        assert!(String::from_utf8(body).unwrap().contains("\"type\":\"api_error\""));
        assert!(!e.retryable());
    }

    #[test]
    fn openai_shaped_upstream_errors_pass_through_byte_for_byte() {
        let body = br#"{"error":{"message":"Rate limit","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        let e = GatewayError::Upstream { provider: "p".into(), status: 429, body: body.to_vec(), forward: vec![] };
        assert_eq!(rescue(&e, Dialect::OpenAi), (429, vec![], body.to_vec()));
        assert!(e.retryable());
    }
}
