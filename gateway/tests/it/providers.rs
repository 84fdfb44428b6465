//! Provider kinds: the URL, headers and TLS each one gets.

use std::io::{Read, Write};
use std::sync::Arc;

use crate::support::*;

fn config_with(provider: &str) -> String {
    format!("listen = \"127.0.0.1:0\"\nshards = 1\n{provider}")
}

#[test]
fn azure_deployment_urls_carry_the_model_and_api_version() {
    let up = Scripted::start(|_| Action::Reply(json_reply(200, "", &completion("gpt-4o"))));
    let gw = Gateway::start(&config_with(&format!(
        "[providers.az]\nkind = \"azure\"\nbase_url = \"http://{}\"\napi_key = \"az-secret\"\nmodels = [\"gpt-4o\", \"embed-3\"]",
        up.addr
    )));
    assert_eq!(gw.post("/v1/chat/completions", &chat_body("gpt-4o", false)).status, 200);
    let seen = up.last();
    assert_eq!(seen.request_line(), "POST /openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21 HTTP/1.1");
    assert_eq!(seen.header("api-key").as_deref(), Some("az-secret"));
    assert_eq!(seen.header("authorization"), None);
    // Dated API versions predate stream_options: the body goes as sent.
    let body = r#"{"model":"gpt-4o","messages":[],"stream":true}"#;
    let _ = gw.post("/v1/chat/completions", body);
    assert_eq!(up.last().body_text(), body);
    let _ = gw.post("/v1/embeddings", r#"{"model":"embed-3","input":"x"}"#);
    assert_eq!(up.last().request_line(), "POST /openai/deployments/embed-3/embeddings?api-version=2024-10-21 HTTP/1.1");
}

#[test]
fn azure_v1_urls_keep_the_model_in_the_body() {
    let up = Scripted::start(|_| Action::Reply(json_reply(200, "", &completion("my-deployment"))));
    let gw = Gateway::start(&config_with(&format!(
        "[providers.az]\nkind = \"azure\"\nbase_url = \"http://{}/openai/v1\"\napi_key = \"az-secret\"\nmodels = [\"my-deployment\"]",
        up.addr
    )));
    assert_eq!(gw.post("/v1/chat/completions", &chat_body("my-deployment", false)).status, 200);
    let seen = up.last();
    assert_eq!(seen.request_line(), "POST /openai/v1/chat/completions HTTP/1.1");
    assert_eq!(seen.header("api-key").as_deref(), Some("az-secret"));
    assert!(seen.body_text().contains("\"model\":\"my-deployment\""));
}

#[test]
fn ollama_uses_its_openai_compatible_path_without_a_key() {
    let up = Scripted::start(|_| Action::Reply(json_reply(200, "", &completion("llama3"))));
    let gw = Gateway::start(&config_with(&format!(
        "[providers.local]\nkind = \"ollama\"\nbase_url = \"http://{}/v1\"\nmodels = [\"llama3\"]",
        up.addr
    )));
    assert_eq!(gw.post("/v1/chat/completions", &chat_body("llama3", false)).status, 200);
    let seen = up.last();
    assert_eq!(seen.request_line(), "POST /v1/chat/completions HTTP/1.1");
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("host"), Some(up.addr.to_string()));
    // Ollama's /v1 ignores max_completion_tokens: it gets max_tokens.
    let body = r#"{"model":"llama3","max_completion_tokens":42,"messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(gw.post("/v1/chat/completions", body).status, 200);
    assert_eq!(up.last().body_text(), body.replace("max_completion_tokens", "max_tokens"));
}

#[test]
fn https_upstreams_verify_against_tls_ca_file() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = TempDir::new();
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let server_config = Arc::new(server_config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            let conn = rustls::ServerConnection::new(server_config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tls.write_all(&json_reply(200, "connection: close\r\n", &completion("secure")));
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    let provider = |ca_line: &str| {
        format!(
            "[providers.tls]\nkind = \"openai\"\nbase_url = \"https://localhost:{port}/v1\"\nmodels = [\"secure\"]\ntimeout = 5\n{ca_line}"
        )
    };
    let gw = Gateway::start(&config_with(&provider(&format!("tls_ca_file = \"{}\"", ca.display()))));
    let r = gw.post("/v1/chat/completions", &chat_body("secure", false));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("\"model\":\"secure\""));
    // Without the private CA the certificate is not trusted.
    let gw = Gateway::start(&config_with(&provider("")));
    let r = gw.post("/v1/chat/completions", &chat_body("secure", false));
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("TLS"), "{}", r.text());
}
