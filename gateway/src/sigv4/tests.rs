//! SigV4 tests: the botocore vector of bedrock.md §6 reproduced exactly, and
//! a literal transcription of §6's steps (with ring) as a second opinion for
//! the cases the vector does not cover (session token, ARN paths).

use super::*;
use std::time::{Duration, UNIX_EPOCH};

const HOST: &str = "bedrock-runtime.us-east-1.amazonaws.com";
const BODY: &[u8] = br#"{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":64}}"#;
const VECTOR_PATH: &str = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
const VECTOR_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250102/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=b1833ff8f46623edf7ce6eef3ac29f456bf87a5c4edd4956cad164e05caaba2f";

fn example_creds(session_token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE".to_owned(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(),
        session_token: session_token.map(str::to_owned),
    }
}

/// 2025-01-02T03:04:05Z.
fn vector_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_735_787_045)
}

fn sign_json(creds: &Credentials, path: &str) -> Signed {
    let headers = [("content-type", "application/json")];
    sign(creds, "us-east-1", "POST", HOST, path, &headers, BODY, vector_time()).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data.as_bytes()).as_ref().to_vec()
}

/// bedrock.md §6 written out step by step, for a POST without query whose
/// path needs no normalisation. `headers` are (lower-case name, value),
/// `host` and `x-amz-date` included.
fn reference_authorization(creds: &Credentials, path: &str, headers: &[(&str, &str)]) -> String {
    let (date_time, date) = ("20250102T030405Z", "20250102");
    let mut headers = headers.to_vec();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(";");
    let canonical_uri = path.replace('%', "%25");
    let body_hash = hex(ring::digest::digest(&ring::digest::SHA256, BODY).as_ref());
    let canonical_request = format!("POST\n{canonical_uri}\n\n{canonical_headers}\n{signed_headers}\n{body_hash}");
    let scope = format!("{date}/us-east-1/bedrock/aws4_request");
    let request_hash = hex(ring::digest::digest(&ring::digest::SHA256, canonical_request.as_bytes()).as_ref());
    let string_to_sign = format!("AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{request_hash}");
    let k_date = hmac(format!("AWS4{}", creds.secret_access_key).as_bytes(), date);
    let k_region = hmac(&k_date, "us-east-1");
    let k_service = hmac(&k_region, "bedrock");
    let k_signing = hmac(&k_service, "aws4_request");
    let signature = hex(&hmac(&k_signing, &string_to_sign));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id
    )
}

#[test]
fn bedrock_md_vector_signature() {
    let signed = sign_json(&example_creds(None), VECTOR_PATH);
    assert_eq!(signed.get("authorization"), Some(VECTOR_AUTHORIZATION));
    assert_eq!(signed.get("x-amz-date"), Some("20250102T030405Z"));
    assert_eq!(signed.get("x-amz-security-token"), None);
    assert_eq!(signed.get("x-amz-content-sha256"), None);
    let mut names: Vec<&str> = signed.headers.iter().map(|(n, _)| *n).collect();
    names.sort();
    assert_eq!(names, ["authorization", "x-amz-date"]);
}

#[test]
fn model_path_reproduces_the_vector_path() {
    let path = model_path("anthropic.claude-3-haiku-20240307-v1:0", "converse");
    assert_eq!(path, VECTOR_PATH);
    assert_eq!(sign_json(&example_creds(None), &path).get("authorization"), Some(VECTOR_AUTHORIZATION));
}

#[test]
fn the_reference_transcription_agrees_with_the_vector() {
    let headers = [("content-type", "application/json"), ("host", HOST), ("x-amz-date", "20250102T030405Z")];
    assert_eq!(reference_authorization(&example_creds(None), VECTOR_PATH, &headers), VECTOR_AUTHORIZATION);
}

#[test]
fn a_session_token_is_sent_and_signed() {
    let creds = example_creds(Some("FQoGZXIvYXdzEJr//token+with/odd=chars"));
    let signed = sign_json(&creds, VECTOR_PATH);
    assert_eq!(signed.get("x-amz-security-token"), Some("FQoGZXIvYXdzEJr//token+with/odd=chars"));
    let authorization = signed.get("authorization").unwrap();
    assert!(authorization.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"));
    let headers = [
        ("content-type", "application/json"),
        ("host", HOST),
        ("x-amz-date", "20250102T030405Z"),
        ("x-amz-security-token", "FQoGZXIvYXdzEJr//token+with/odd=chars"),
    ];
    assert_eq!(authorization, reference_authorization(&creds, VECTOR_PATH, &headers));
}

#[test]
fn model_ids_and_arns_are_percent_encoded() {
    assert_eq!(
        model_path("anthropic.claude-3-5-sonnet-20240620-v1:0", "converse-stream"),
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    );
    assert_eq!(model_path("us.amazon.nova-pro-v1:0", "invoke"), "/model/us.amazon.nova-pro-v1%3A0/invoke");
    assert_eq!(
        model_path(
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "converse"
        ),
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    assert_eq!(model_path("a b+c%d~e_f", "invoke"), "/model/a%20b%2Bc%25d~e_f/invoke");
    assert_eq!(model_path("é", "invoke"), "/model/%C3%A9/invoke");
    assert_eq!(model_path("..", "invoke"), "/model/%2E%2E/invoke");
    assert_eq!(model_path(".", "invoke"), "/model/%2E/invoke");
    assert_eq!(model_path("a..b", "invoke"), "/model/a..b/invoke");
}

#[test]
fn an_arn_path_is_double_encoded_in_the_signature() {
    let arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123";
    let path = model_path(arn, "converse");
    let signed = sign_json(&example_creds(None), &path);
    let headers = [("content-type", "application/json"), ("host", HOST), ("x-amz-date", "20250102T030405Z")];
    assert_eq!(
        signed.get("authorization"),
        Some(reference_authorization(&example_creds(None), &path, &headers).as_str())
    );
    // A dot-only id survives path normalisation because it is encoded.
    let path = model_path("..", "converse");
    let signed = sign_json(&example_creds(None), &path);
    assert_eq!(
        signed.get("authorization"),
        Some(reference_authorization(&example_creds(None), &path, &headers).as_str())
    );
}

#[test]
fn host_and_hop_by_hop_headers_are_not_signed_twice() {
    let headers = [
        ("Content-Type", "application/json"),
        ("Host", "evil.example"),
        ("connection", "keep-alive"),
        ("user-agent", "corelay"),
        ("transfer-encoding", "chunked"),
    ];
    let signed =
        sign(&example_creds(None), "us-east-1", "POST", HOST, VECTOR_PATH, &headers, BODY, vector_time()).unwrap();
    assert_eq!(signed.get("authorization"), Some(VECTOR_AUTHORIZATION));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let creds = example_creds(None);
    let t = vector_time();
    assert!(matches!(sign(&creds, "us-east-1", "POST", "", VECTOR_PATH, &[], BODY, t), Err(SignError::EmptyHost)));
    assert!(sign(&creds, "us-east-1", "POST", "bad host", VECTOR_PATH, &[], BODY, t).is_err());
    assert!(sign(&creds, "us-east-1", "POST", HOST, "/a b", &[], BODY, t).is_err());
    assert!(sign(&creds, "us-east-1", "POST", HOST, VECTOR_PATH, &[("bad name", "v")], BODY, t).is_err());
    assert!(sign(&creds, "us-east-1", "POST", HOST, VECTOR_PATH, &[("x-a", "line\nbreak")], BODY, t).is_err());
}

#[test]
fn debug_never_shows_secrets() {
    let creds = example_creds(Some("SESSIONTOKEN"));
    let shown = format!("{creds:?}");
    assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
    assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
    assert!(!shown.contains("SESSIONTOKEN"), "{shown}");
    let signed = sign_json(&creds, VECTOR_PATH);
    let shown = format!("{signed:?}");
    assert!(!shown.contains("SESSIONTOKEN"), "{shown}");
    assert!(shown.contains("x-amz-date"), "{shown}");
    let shown = format!("{:?}", example_creds(None));
    assert!(shown.contains("session_token: None"), "{shown}");
}

#[test]
fn credentials_come_from_the_injected_environment() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    };
    let full = credentials_from_env(env(&[
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "SECRET"),
        ("AWS_SESSION_TOKEN", "TOKEN"),
    ]));
    assert_eq!(
        full,
        Some(Credentials {
            access_key_id: "AKID".to_owned(),
            secret_access_key: "SECRET".to_owned(),
            session_token: Some("TOKEN".to_owned()),
        })
    );
    let no_token = credentials_from_env(env(&[("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_SECRET_ACCESS_KEY", "SECRET")]));
    assert_eq!(no_token.unwrap().session_token, None);
    let empty_token = credentials_from_env(env(&[
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "SECRET"),
        ("AWS_SESSION_TOKEN", ""),
    ]));
    assert_eq!(empty_token.unwrap().session_token, None);
    assert_eq!(credentials_from_env(env(&[("AWS_ACCESS_KEY_ID", "AKID")])), None);
    assert_eq!(credentials_from_env(env(&[("AWS_SECRET_ACCESS_KEY", "SECRET")])), None);
    assert_eq!(credentials_from_env(env(&[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "S")])), None);
}
