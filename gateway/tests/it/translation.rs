//! Both front doors in front of providers of the other dialect, through a
//! running gateway: an Anthropic-dialect scripted upstream behind
//! `/v1/chat/completions`, OpenAI-dialect ones (corelay-mock, the in-process
//! mock kind) behind `/v1/messages`, and Anthropic behind Anthropic.

use std::time::Duration;

use sonic_rs::JsonValueTrait;

use crate::support::*;

fn anthropic_config(upstream: std::net::SocketAddr) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nshards = 1\n[providers.claude]\nkind = \"anthropic\"\nbase_url = \"http://{upstream}\"\napi_key = \"sk-ant-secret\"\nmodels = [\"claude-x\"]\nmax_tokens_default = 777\n[aliases]\nsmart = \"claude-x\""
    )
}

const MESSAGE: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hello"},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":7}}"#;

fn anthropic_events(with_error: bool) -> Vec<String> {
    let mut events = vec![
        r#"{"type":"message_start","message":{"id":"msg_9","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking"}}"#,
        r#"{"type":"ping"}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"ci"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ty\":\"Pa"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ris\"}"}}"#,
        r#"{"type":"content_block_stop","index":1}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":41}}"#,
        r#"{"type":"message_stop"}"#,
    ];
    if with_error {
        events.truncate(3);
        events.push(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
    }
    events
        .into_iter()
        .map(|data| {
            let name = sonic_rs::get(data, ["type"]).unwrap().as_str().unwrap().to_owned();
            format!("event: {name}\ndata: {data}\n\n")
        })
        .collect()
}

#[test]
fn openai_clients_get_anthropic_answers_in_openai_shape() {
    let up = Scripted::start(|_| Action::Reply(json_reply(200, "", MESSAGE)));
    let gw = Gateway::start(&anthropic_config(up.addr));
    let body = r#"{"model":"smart","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Weather in Paris?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}"#;
    let r = gw.post("/v1/chat/completions", body);
    assert_eq!(r.status, 200, "{}", r.text());
    // The provider got an Anthropic request.
    let seen = up.last();
    assert_eq!(seen.request_line(), "POST /v1/messages HTTP/1.1");
    assert_eq!(seen.header("x-api-key").as_deref(), Some("sk-ant-secret"));
    assert_eq!(seen.header("anthropic-version").as_deref(), Some("2023-06-01"));
    assert_eq!(seen.header("authorization"), None);
    let sent: sonic_rs::Value = sonic_rs::from_slice(&seen.body).unwrap();
    assert_eq!(sent["model"].as_str(), Some("claude-x"), "the alias resolves");
    assert_eq!(sent["max_tokens"].as_u64(), Some(777), "the deployment's default");
    assert_eq!(sent["system"][0]["text"].as_str(), Some("Be brief."));
    assert_eq!(sent["tools"][0]["input_schema"]["type"].as_str(), Some("object"));
    // The client got OpenAI's shape.
    let v = r.json();
    assert_eq!(v["object"].as_str(), Some("chat.completion"));
    assert_eq!(v["model"].as_str(), Some("claude-x"));
    let message = &v["choices"][0]["message"];
    assert_eq!(message["content"].as_str(), Some("Hello"));
    assert_eq!(message["tool_calls"][0]["function"]["arguments"].as_str(), Some(r#"{"city":"Paris"}"#));
    assert_eq!(v["choices"][0]["finish_reason"].as_str(), Some("tool_calls"));
    assert_eq!(v["usage"]["prompt_tokens"].as_u64(), Some(15));
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64(), Some(5));
    assert_eq!(r.header("x-corelay-provider"), Some("claude"));
    gw.wait_metric("prompt_tokens", 15);
}

#[test]
fn openai_streams_from_anthropic_carry_tool_fragments_and_usage() {
    let up = Scripted::start(|_| Action::Stream {
        events: anthropic_events(false),
        gap: Duration::from_millis(1),
        finish: true,
    });
    let gw = Gateway::start(&anthropic_config(up.addr));
    let body = r#"{"model":"claude-x","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
    let r = gw.post("/v1/chat/completions", body);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(up.last().body_text().contains("\"stream\":true"));
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<sonic_rs::Value> = data[..data.len() - 1].iter().map(|d| sonic_rs::from_str(d).unwrap()).collect();
    let ids: Vec<&str> = chunks.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one id for the whole stream: {ids:?}");
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, r#"{"city":"Paris"}"#);
    let finish: Vec<&str> = chunks.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str()).collect();
    assert_eq!(finish, ["tool_calls"]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!((usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()), (Some(25), Some(41)));
    gw.wait_metric("completion_tokens", 41);
}

#[test]
fn anthropic_errors_reach_openai_clients_with_openai_statuses() {
    let up = Scripted::start(|r| {
        if r.body_text().contains("overload") {
            Action::Reply(json_reply(
                529,
                "",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ))
        } else if r.body_text().contains("slow") {
            Action::Reply(json_reply(
                429,
                "retry-after: 7\r\n",
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"Slow down"}}"#,
            ))
        } else {
            Action::Stream { events: anthropic_events(true), gap: Duration::from_millis(1), finish: true }
        }
    });
    // One attempt per request: this test is about the shape of each error.
    let gw = Gateway::start(
        &anthropic_config(up.addr).replace("max_tokens_default = 777", "max_tokens_default = 777\nmax_retries = 0"),
    );
    let r =
        gw.post("/v1/chat/completions", r#"{"model":"claude-x","messages":[{"role":"user","content":"overload"}]}"#);
    assert_eq!(r.status, 503, "{}", r.text());
    let (message, kind, _) = r.openai_error();
    assert_eq!((message.as_str(), kind.as_str()), ("Overloaded", "overloaded_error"));
    let r = gw.post("/v1/chat/completions", r#"{"model":"claude-x","messages":[{"role":"user","content":"slow"}]}"#);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.openai_error().1, "rate_limit_error");
    // After the 200: the error arrives as an OpenAI error event, and no [DONE].
    let r = gw.post(
        "/v1/chat/completions",
        r#"{"model":"claude-x","stream":true,"messages":[{"role":"user","content":"x"}]}"#,
    );
    assert_eq!(r.status, 200);
    let data = r.sse_data();
    let last: sonic_rs::Value = sonic_rs::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"].as_str(), Some("overloaded_error"), "{data:?}");
    assert!(!data.iter().any(|d| d == "[DONE]"));
}

#[test]
fn untranslatable_requests_get_a_400_naming_the_parameter() {
    let up = Scripted::start(|_| Action::Reply(json_reply(200, "", MESSAGE)));
    let gw = Gateway::start(&anthropic_config(up.addr));
    let bmp = r#"{"model":"claude-x","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,Qk0="}}]}]}"#;
    let r = gw.post("/v1/chat/completions", bmp);
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["error"]["param"].as_str(), Some("messages[0]"));
    assert!(v["error"]["message"].as_str().unwrap().contains("image/bmp"));
    let r = gw.post("/v1/chat/completions", r#"{"model":"claude-x","n":2,"messages":[{"role":"user","content":"x"}]}"#);
    assert_eq!((r.status, r.json()["error"]["param"].as_str()), (400, Some("n")));
    assert!(up.requests.lock().unwrap().is_empty(), "nothing reached the provider");
}

fn anthropic_post(gw: &Gateway, body: &str, headers: &[(&str, &str)]) -> Response {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    gw.client().send("POST", "/v1/messages", &all, body.as_bytes())
}

#[test]
fn anthropic_clients_reach_openai_providers() {
    let mock = mock(&[]);
    let gw = Gateway::start(&openai_config(mock, ""));
    let body =
        r#"{"model":"bench-chat","max_tokens":50,"system":"Be brief.","messages":[{"role":"user","content":"hi"}]}"#;
    let r = anthropic_post(&gw, body, &[("anthropic-version", "2023-06-01")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"].as_str(), Some("message"));
    assert_eq!(v["role"].as_str(), Some("assistant"));
    assert_eq!(v["content"][0]["type"].as_str(), Some("text"));
    assert!(!v["content"][0]["text"].as_str().unwrap().is_empty());
    assert_eq!(v["stop_reason"].as_str(), Some("end_turn"));
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    // Streamed: Anthropic's event sequence, usage filled from the
    // include_usage chunk corelay asked the OpenAI provider for.
    let body = r#"{"model":"bench-chat","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = anthropic_post(&gw, body, &[]);
    assert_eq!(r.status, 200);
    let text = r.text();
    let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"]);
    assert!(names.contains(&"content_block_delta"));
    let delta = text.split("\n\n").find(|e| e.starts_with("event: message_delta")).unwrap();
    let delta: sonic_rs::Value = sonic_rs::from_str(delta.split_once("data: ").unwrap().1).unwrap();
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0, "{text}");
}

#[test]
fn anthropic_front_door_errors_are_in_anthropic_shape() {
    let gw = Gateway::start(
        "listen = \"127.0.0.1:0\"\nshards = 1\n[providers.m]\nkind = \"mock\"\nmodels = [\"m\"]\n[[keys]]\nname = \"t\"\nkey = \"sk-test-12345678\"",
    );
    let check = |r: &Response, status: u16, kind: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        let v = r.json();
        assert_eq!(v["type"].as_str(), Some("error"), "{}", r.text());
        assert_eq!(v["error"]["type"].as_str(), Some(kind), "{}", r.text());
        assert!(v["error"]["message"].as_str().is_some());
    };
    let body = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    check(&anthropic_post(&gw, body, &[]), 401, "authentication_error");
    let key = [("x-api-key", "sk-test-12345678")];
    check(&anthropic_post(&gw, r#"{"model":"nope","max_tokens":5,"messages":[]}"#, &key), 404, "not_found_error");
    check(
        &anthropic_post(&gw, r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#, &key),
        400,
        "invalid_request_error",
    );
    check(&anthropic_post(&gw, "{not json", &key), 400, "invalid_request_error");
    // The mock kind answers Anthropic clients too, streamed or not.
    let r = anthropic_post(&gw, body, &key);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["content"][0]["text"].as_str(), Some("This is a mock response."));
    let r = anthropic_post(
        &gw,
        r#"{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        &key,
    );
    assert!(r.text().ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"), "{}", r.text());
}

#[test]
fn anthropic_to_anthropic_passes_bytes_and_headers_through() {
    let up = Scripted::start(|r| {
        if r.request_line().contains("count_tokens") {
            Action::Reply(json_reply(200, "", r#"{"input_tokens":42}"#))
        } else if r.body_text().contains("\"stream\":true") {
            Action::Stream { events: anthropic_events(false), gap: Duration::from_millis(1), finish: true }
        } else {
            Action::Reply(json_reply(200, "", MESSAGE))
        }
    });
    let gw = Gateway::start(&anthropic_config(up.addr));
    let body = r#"{"model":"smart","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"top_k":3}"#;
    let headers =
        [("anthropic-version", "2023-01-01"), ("anthropic-beta", "tools-2024,cache-2025"), ("x-api-key", "client-key")];
    let r = anthropic_post(&gw, body, &headers);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), MESSAGE, "the provider's bytes, untouched");
    let seen = up.last();
    assert_eq!(seen.body_text(), body.replace("\"smart\"", "\"claude-x\""), "only the alias is spliced");
    assert_eq!(seen.header("anthropic-version").as_deref(), Some("2023-01-01"));
    assert_eq!(seen.header("anthropic-beta").as_deref(), Some("tools-2024,cache-2025"));
    assert_eq!(
        seen.header("x-api-key").as_deref(),
        Some("sk-ant-secret"),
        "the client's key never reaches the provider"
    );
    let r = anthropic_post(&gw, &body.replace("\"top_k\":3", "\"stream\":true"), &[]);
    assert_eq!(r.text(), anthropic_events(false).concat(), "events pass through as they came");
    gw.wait_metric("completion_tokens", 7 + 41);
    let r = gw.client().send(
        "POST",
        "/v1/messages/count_tokens",
        &[],
        br#"{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!((r.status, r.text()), (200, r#"{"input_tokens":42}"#.to_owned()));
    assert_eq!(up.last().request_line(), "POST /v1/messages/count_tokens HTTP/1.1");
}

#[test]
fn anthropic_clients_reach_azure_and_ollama() {
    let up = Scripted::start(|r| {
        if r.body_text().contains("\"stream\":true") {
            Action::Stream {
                events: vec![
                    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama3\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n".into(),
                    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama3\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n".into(),
                    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama3\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1,\"total_tokens\":5}}\n\n".into(),
                    "data: [DONE]\n\n".into(),
                ],
                gap: Duration::from_millis(1),
                finish: true,
            }
        } else {
            Action::Reply(json_reply(200, "", &completion("gpt-4o")))
        }
    });
    let gw = Gateway::start(&format!(
        "listen = \"127.0.0.1:0\"\nshards = 1\n[providers.az]\nkind = \"azure\"\nbase_url = \"http://{0}\"\napi_key = \"az\"\nmodels = [\"gpt-4o\"]\n[providers.local]\nkind = \"ollama\"\nbase_url = \"http://{0}/v1\"\nmodels = [\"llama3\"]",
        up.addr
    ));
    let r =
        anthropic_post(&gw, r#"{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content"][0]["text"].as_str(), Some("ok"));
    let seen = up.last();
    assert_eq!(seen.request_line(), "POST /openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21 HTTP/1.1");
    assert_eq!(seen.header("api-key").as_deref(), Some("az"));
    assert!(seen.body_text().contains("\"max_completion_tokens\":20"), "{}", seen.body_text());
    let r = anthropic_post(
        &gw,
        r#"{"model":"llama3","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        &[],
    );
    assert_eq!(r.status, 200);
    let sent = up.last().body_text();
    assert!(sent.contains("\"max_tokens\":20") && sent.contains("\"include_usage\":true"), "{sent}");
    let text = r.text();
    assert!(text.contains(r#""text":"Hi""#), "{text}");
    assert!(text.contains(r#""output_tokens":1"#), "{text}");
}

#[test]
fn upstream_connections_are_reused_after_translated_streams_and_error_answers() {
    // The chunked terminator comes a moment after message_stop: the
    // translator is done before the body is.
    let up = Scripted::start(|r| {
        if r.body_text().contains("slow") {
            return Action::Reply(json_reply(
                429,
                "",
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"Slow down"}}"#,
            ));
        }
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        let mut pieces = vec![(Duration::ZERO, head.as_bytes().to_vec())];
        for e in anthropic_events(false) {
            pieces.push((Duration::ZERO, format!("{:x}\r\n{e}\r\n", e.len()).into_bytes()));
        }
        pieces.push((Duration::from_millis(100), b"0\r\n\r\n".to_vec()));
        Action::Writes(pieces)
    });
    let gw = Gateway::start(&anthropic_config(up.addr));
    let mut c = gw.client();
    let stream = r#"{"model":"claude-x","stream":true,"messages":[{"role":"user","content":"x"}]}"#;
    for _ in 0..2 {
        let r = c.send("POST", "/v1/chat/completions", &[], stream.as_bytes());
        assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"), "{}", r.text());
    }
    assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 1, "one upstream connection for both streams");
    let slow = r#"{"model":"claude-x","messages":[{"role":"user","content":"slow"}]}"#;
    for _ in 0..2 {
        assert_eq!(c.send("POST", "/v1/chat/completions", &[], slow.as_bytes()).status, 429);
    }
    assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 1, "and for both error answers");
}

#[test]
fn anthropic_headers_are_forwarded_only_from_anthropic_clients_and_only_with_values() {
    let up = Scripted::start(|_| Action::Reply(json_reply(200, "", MESSAGE)));
    let gw = Gateway::start(&anthropic_config(up.addr));
    let headers = [("anthropic-version", "2023-01-01"), ("anthropic-beta", "tools-2024")];
    // An OpenAI client: its request is written by corelay, for the configured version.
    let r = gw.client().send(
        "POST",
        "/v1/chat/completions",
        &headers,
        br#"{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.last();
    assert_eq!(seen.header("anthropic-version").as_deref(), Some("2023-06-01"));
    assert_eq!(seen.header("anthropic-beta"), None);
    // An Anthropic client with empty values: the configured version, no beta.
    let body = r#"{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = anthropic_post(&gw, body, &[("anthropic-version", ""), ("anthropic-beta", " ")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.last();
    assert_eq!(seen.header("anthropic-version").as_deref(), Some("2023-06-01"));
    assert_eq!(seen.header("anthropic-beta"), None);
    // And with values: as sent.
    assert_eq!(anthropic_post(&gw, body, &headers).status, 200);
    assert_eq!(up.last().header("anthropic-beta").as_deref(), Some("tools-2024"));
}
