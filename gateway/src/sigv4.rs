//! AWS Signature Version 4 for Bedrock requests, and the Bedrock model path.
//!
//! Bedrock authenticates every call with SigV4 under the signing name
//! `bedrock` (not `bedrock-runtime`). Signing is synchronous: a SHA-256 of the
//! final body and an HMAC chain, about 6 µs for a 1.7 KB body
//! (`shared/research/tech.md` §4.1, 2-vCPU VM). We do not hand-roll it
//! (STYLE 25): [`sign`] wraps the `aws-sigv4` crate, which pulls no async
//! runtime, and returns the few headers to append to our own HTTP/1.1 head.
//!
//! Sign after the body is final and again on each retry (the date is part of
//! the signature).
//!
//! The model id goes into the path percent-encoded once on the wire
//! ([`model_path`]); the canonical request encodes that path once more, which
//! `aws-sigv4`'s default settings do. See `shared/providers/bedrock.md` §6.

use std::fmt;
use std::time::SystemTime;

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
};
use aws_smithy_runtime_api::client::identity::Identity;

/// The SigV4 signing name of the Bedrock runtime API.
pub const SERVICE: &str = "bedrock";

/// Headers botocore never signs because a hop may change them; we skip the
/// same ones so a signature covers exactly what botocore's would.
const UNSIGNED_HEADERS: [&str; 11] = [
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
];

/// Static AWS credentials. `Debug` shows the key id only: the secret and the
/// session token never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Set for temporary credentials (STS, SSO, instance roles).
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field("session_token", &self.session_token.as_ref().map(|_| "** redacted **"))
            .finish()
    }
}

/// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, if set,
/// `AWS_SESSION_TOKEN` through `get`, so that only `main` touches the
/// environment. `None` unless both the key id and the secret are set and not
/// empty; an empty session token counts as none.
pub fn credentials_from_env(get: impl Fn(&str) -> Option<String>) -> Option<Credentials> {
    let non_empty = |name: &str| get(name).filter(|v| !v.is_empty());
    Some(Credentials {
        access_key_id: non_empty("AWS_ACCESS_KEY_ID")?,
        secret_access_key: non_empty("AWS_SECRET_ACCESS_KEY")?,
        session_token: non_empty("AWS_SESSION_TOKEN"),
    })
}

/// The headers [`sign`] computed, to be appended to the request as they are:
/// `authorization`, `x-amz-date`, and `x-amz-security-token` when the
/// credentials carry a session token. No `x-amz-content-sha256`: Bedrock does
/// not ask for it, so the settings leave it out (the body hash is still part
/// of the signature).
#[derive(Clone, PartialEq, Eq)]
pub struct Signed {
    pub headers: Vec<(&'static str, String)>,
}

impl Signed {
    /// The value of the header called `name` (lower case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |(name, value): &(&'static str, String)| {
            let value = if *name == "x-amz-security-token" { "** redacted **" } else { value };
            (*name, value.to_owned())
        };
        f.debug_struct("Signed").field("headers", &self.headers.iter().map(redact).collect::<Vec<_>>()).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot sign a request without a host")]
    EmptyHost,
    #[error("SigV4 signing parameters: {0}")]
    Params(#[from] aws_sigv4::sign::v4::signing_params::BuildError),
    /// A header name or value, or the URI, is not valid HTTP.
    #[error("SigV4 signing: {0}")]
    Request(#[from] aws_sigv4::http_request::SigningError),
}

/// Signs one Bedrock request and returns the headers to add.
///
/// - `host`: the `Host` header as sent, e.g.
///   `bedrock-runtime.us-east-1.amazonaws.com`. It is signed; pass no `host`
///   in `headers` (one there is ignored).
/// - `path_and_query`: exactly as on the wire, e.g. from [`model_path`].
/// - `headers`: the other headers that will be sent and should be signed
///   (`content-type`, `accept`, `x-amzn-bedrock-*`); hop-by-hop ones are
///   skipped as botocore does.
/// - `body`: the final body bytes.
/// - `time`: now, except in tests.
#[allow(clippy::too_many_arguments)] // Each is one part of the request; a struct would only rename them.
pub fn sign(
    creds: &Credentials,
    region: &str,
    method: &str,
    host: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Signed, SignError> {
    // An empty host would make aws-sigv4 panic on a URI without authority.
    if host.is_empty() {
        return Err(SignError::EmptyHost);
    }
    let identity: Identity = aws_credential_types::Credentials::new(
        &creds.access_key_id,
        &creds.secret_access_key,
        creds.session_token.clone(),
        None,
        "corelay",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(settings())
        .build()?
        .into();
    let uri = format!("https://{host}{path_and_query}");
    // `host` goes in explicitly, so the signed value is the one we send even
    // with a port in it.
    let others = headers.iter().copied().filter(|(name, _)| !name.eq_ignore_ascii_case("host"));
    let all = std::iter::once(("host", host)).chain(others);
    let request = SignableRequest::new(method, uri, all, SignableBody::Bytes(body))?;
    let (instructions, _signature) = aws_sigv4::http_request::sign(request, &params)?.into_parts();
    let (headers, _query) = instructions.into_parts();
    Ok(Signed { headers: headers.into_iter().map(|h| (h.name(), h.value().to_owned())).collect() })
}

/// The settings, spelled out even where they equal `aws-sigv4`'s defaults,
/// because each one is a Bedrock fact:
/// - `PercentEncodingMode::Double`: like every AWS service but S3, Bedrock
///   checks the signature over the wire path encoded once more (`%3A` in the
///   path is `%253A` in the canonical request).
/// - `UriPathNormalizationMode::Enabled`: dot segments and `//` are
///   normalised, as botocore does; model paths have none (see [`model_path`]).
/// - `PayloadChecksumKind::NoHeader`: no `x-amz-content-sha256` (S3 only).
/// - Session token signed (the default `SessionTokenMode::Include`), as
///   botocore does.
fn settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Double;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Enabled;
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    settings.excluded_headers = Some(UNSIGNED_HEADERS.iter().map(|&h| h.into()).collect());
    settings
}

/// `/model/{model id}/{operation}`, the model id percent-encoded (`:` is
/// `%3A`, the `/` of an ARN `%2F`). The rule lives with the Bedrock dialect,
/// [`translate::bedrock::model_path`], which also gives the chat paths
/// ([`translate::bedrock::path`]); the tests here pin it against the
/// signature vector. `operation` is `converse`, `converse-stream`, `invoke`
/// or `invoke-with-response-stream`.
pub fn model_path(model_id: &str, operation: &str) -> String {
    translate::bedrock::model_path(model_id, operation)
}

#[cfg(test)]
mod tests;
