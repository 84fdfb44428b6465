//! Gemini and Bedrock providers behind both front doors, through a running
//! gateway: the exact upstream request (path, key header, SigV4 signature,
//! translated body) and the translated answers, streamed and not, errors
//! included.

use sonic_rs::{JsonContainerTrait, JsonValueTrait};

use crate::support::*;

fn config(provider: &str) -> String {
    format!("listen = \"127.0.0.1:0\"\nshards = 1\n{provider}")
}

const GEMINI_ANSWER: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Sunny"},{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":4,"thoughtsTokenCount":6,"totalTokenCount":19},"responseId":"r1"}"#;

#[test]
fn gemini_serves_openai_clients() {
    let up = Scripted::start(|r| {
        if r.request_line().contains(":streamGenerateContent") {
            Action::Stream {
                events: vec![
                    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hel\"}]}}]}\n\n".into(),
                    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"lo\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2,\"totalTokenCount\":5}}\n\n".into(),
                ],
                gap: std::time::Duration::from_millis(1),
                finish: true,
            }
        } else if r.body_text().contains("badkey") {
            Action::Reply(json_reply(
                400,
                "",
                r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#,
            ))
        } else if r.body_text().contains("quota") {
            Action::Reply(json_reply(
                429,
                "",
                r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#,
            ))
        } else {
            Action::Reply(json_reply(200, "", GEMINI_ANSWER))
        }
    });
    let gw = Gateway::start(&config(&format!(
        "[providers.google]\nkind = \"gemini\"\nbase_url = \"http://{}\"\napi_key = \"g-secret\"\nmodels = [\"gemini-2.5-flash\"]",
        up.addr
    )));
    let r = gw.post("/v1/chat/completions", r#"{"model":"gemini-2.5-flash","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Weather?"}]}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.last();
    assert_eq!(seen.request_line(), "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1");
    assert_eq!(seen.header("x-goog-api-key").as_deref(), Some("g-secret"));
    let sent: sonic_rs::Value = sonic_rs::from_slice(&seen.body).unwrap();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"].as_str(), Some("Be brief."));
    assert_eq!(sent["contents"][0]["role"].as_str(), Some("user"));
    let v = r.json();
    let message = &v["choices"][0]["message"];
    assert_eq!(message["content"].as_str(), Some("Sunny"));
    assert_eq!(message["tool_calls"][0]["function"]["arguments"].as_str(), Some(r#"{"city":"Paris"}"#));
    assert_eq!(v["choices"][0]["finish_reason"].as_str(), Some("tool_calls"), "a call forces tool_calls");
    assert_eq!(v["usage"]["completion_tokens"].as_u64(), Some(10), "thoughts count as completion");
    assert_eq!(v["usage"]["completion_tokens_details"]["reasoning_tokens"].as_u64(), Some(6));
    // Streamed: no terminator from Gemini, a whole OpenAI stream for the client.
    let r = gw.post("/v1/chat/completions", r#"{"model":"gemini-2.5-flash","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#);
    assert_eq!(up.last().request_line(), "POST /v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse HTTP/1.1");
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let text: String = data[..data.len() - 1]
        .iter()
        .filter_map(|d| sonic_rs::from_str::<sonic_rs::Value>(d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "Hello");
    // A Google error: the OpenAI status and shape.
    let r = gw
        .post("/v1/chat/completions", r#"{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"quota"}]}"#);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.openai_error().0, "Quota exceeded");
    // Google refusing corelay's key (a 400 that means it) is not the client's 401.
    let r = gw.post(
        "/v1/chat/completions",
        r#"{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"badkey"}]}"#,
    );
    assert_eq!(r.status, 502, "{}", r.text());
    let (message, _, code) = r.openai_error();
    assert_eq!(code.as_deref(), Some("upstream_auth_failed"));
    assert!(message.contains("`google`") && message.contains("API key not valid"), "{message}");
}

#[test]
fn gemini_serves_anthropic_clients() {
    let up = Scripted::start(|_| Action::Reply(json_reply(200, "", GEMINI_ANSWER)));
    let gw = Gateway::start(&config(&format!(
        "[providers.google]\nkind = \"google\"\nbase_url = \"http://{}/v1beta\"\napi_key = \"g-secret\"\nmodels = [\"gemini-2.5-pro\"]",
        up.addr
    )));
    let r = gw.client().send(
        "POST",
        "/v1/messages",
        &[],
        br#"{"model":"gemini-2.5-pro","max_tokens":100,"messages":[{"role":"user","content":"Weather?"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.last().request_line(), "POST /v1beta/models/gemini-2.5-pro:generateContent HTTP/1.1");
    let v = r.json();
    assert_eq!(v["content"][1]["type"].as_str(), Some("tool_use"));
    assert_eq!(v["content"][1]["input"]["city"].as_str(), Some("Paris"));
    assert_eq!(v["stop_reason"].as_str(), Some("tool_use"));
}

const MODEL_ID: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

fn bedrock_stream() -> Vec<Vec<u8>> {
    let frames = [
        bedrock_event("messageStart", r#"{"role":"assistant"}"#),
        bedrock_event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Par"}}"#),
        bedrock_event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"is"}}"#),
        bedrock_event("contentBlockStop", r#"{"contentBlockIndex":0}"#),
        bedrock_event("messageStop", r#"{"stopReason":"end_turn"}"#),
        bedrock_event(
            "metadata",
            r#"{"usage":{"inputTokens":11,"outputTokens":2,"totalTokens":13},"metrics":{"latencyMs":5}}"#,
        ),
    ];
    // Cut the bytes across frame boundaries, as a network would.
    let all: Vec<u8> = frames.concat();
    all.chunks(37).map(<[u8]>::to_vec).collect()
}

#[test]
fn bedrock_with_sigv4_serves_openai_clients() {
    let up = Scripted::start(|r| {
        if r.request_line().contains("converse-stream") {
            Action::StreamBytes { content_type: "application/vnd.amazon.eventstream", chunks: bedrock_stream() }
        } else if r.body_text().contains("throttle") {
            Action::Reply(json_reply(
                400,
                "x-amzn-errortype: ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/\r\n",
                r#"{"message":"Too many requests, please wait before trying again."}"#,
            ))
        } else {
            Action::Reply(json_reply(
                200,
                "",
                r#"{"output":{"message":{"role":"assistant","content":[{"text":"Bonjour"}]}},"stopReason":"max_tokens","usage":{"inputTokens":5,"outputTokens":7,"totalTokens":12}}"#,
            ))
        }
    });
    let gw = Gateway::start(&config(&format!(
        "[providers.aws]\nkind = \"bedrock\"\nbase_url = \"http://{}\"\nregion = \"eu-west-3\"\naws_access_key_id = \"AKIDEXAMPLE\"\naws_secret_access_key = \"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\"\naws_session_token = \"session-token\"\nmodels = [\"{MODEL_ID}\"]\n[aliases]\nsonnet = \"{MODEL_ID}\"",
        up.addr
    )));
    let r = gw.post(
        "/v1/chat/completions",
        r#"{"model":"sonnet","max_tokens":50,"messages":[{"role":"user","content":"Say hello in French"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.last();
    assert_eq!(seen.request_line(), "POST /model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse HTTP/1.1");
    let auth = seen.header("authorization").unwrap();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
    assert!(auth.contains("/eu-west-3/bedrock/aws4_request"), "{auth}");
    assert!(auth.contains("SignedHeaders=") && auth.contains("Signature="), "{auth}");
    assert!(seen.header("x-amz-date").is_some());
    assert_eq!(seen.header("x-amz-security-token").as_deref(), Some("session-token"));
    let sent: sonic_rs::Value = sonic_rs::from_slice(&seen.body).unwrap();
    assert_eq!(sent["messages"][0]["content"][0]["text"].as_str(), Some("Say hello in French"));
    assert_eq!(sent["inferenceConfig"]["maxTokens"].as_u64(), Some(50));
    let v = r.json();
    assert_eq!(v["choices"][0]["message"]["content"].as_str(), Some("Bonjour"));
    assert_eq!(v["choices"][0]["finish_reason"].as_str(), Some("length"));
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-corelay-"), "an id is made up");
    // Streamed: event-stream frames in, SSE out, usage after the finish.
    let r = gw.post("/v1/chat/completions", r#"{"model":"sonnet","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}"#);
    assert_eq!(r.status, 200);
    assert_eq!(
        up.last().request_line(),
        "POST /model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream HTTP/1.1"
    );
    assert_eq!(up.last().header("accept").as_deref(), Some("application/vnd.amazon.eventstream"));
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let chunks: Vec<sonic_rs::Value> = data[..data.len() - 1].iter().map(|d| sonic_rs::from_str(d).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Paris");
    let finish_at = chunks.iter().position(|c| c["choices"][0]["finish_reason"].as_str() == Some("stop")).unwrap();
    assert_eq!(finish_at, chunks.len() - 2, "the finish chunk, then the usage chunk");
    assert_eq!(chunks.last().unwrap()["usage"]["prompt_tokens"].as_u64(), Some(11));
    gw.wait_metric("prompt_tokens", 5 + 11);
    // A Bedrock exception: its meaning by x-amzn-errortype, in OpenAI's shape.
    let r = gw.post("/v1/chat/completions", r#"{"model":"sonnet","messages":[{"role":"user","content":"throttle"}]}"#);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.openai_error().0.contains("Too many requests"));
}

#[test]
fn bedrock_api_keys_are_sent_as_bearer_tokens() {
    let up = Scripted::start(|_| {
        Action::Reply(json_reply(
            200,
            "",
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"ok"}]}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}"#,
        ))
    });
    let gw = Gateway::start(&config(&format!(
        "[providers.aws]\nkind = \"bedrock\"\nbase_url = \"http://{}\"\nregion = \"us-east-1\"\napi_key = \"bedrock-api-key\"\nmodels = [\"amazon.nova-lite-v1:0\"]",
        up.addr
    )));
    let r = gw.client().send(
        "POST",
        "/v1/messages",
        &[],
        br#"{"model":"amazon.nova-lite-v1:0","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content"][0]["text"].as_str(), Some("ok"));
    let seen = up.last();
    assert_eq!(seen.header("authorization").as_deref(), Some("Bearer bedrock-api-key"));
    assert_eq!(seen.header("x-amz-date"), None);
}

/// The event names of an Anthropic stream, in order.
fn event_names(text: &str) -> Vec<&str> {
    text.lines().filter_map(|l| l.strip_prefix("event: ")).collect()
}

#[test]
fn anthropic_clients_stream_from_gemini_and_bedrock() {
    let gemini = Scripted::start(|_| {
        Action::Stream {
        events: vec![
            "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Bon\"}]}}]}\n\n".into(),
            "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{\"a\":1}}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2,\"totalTokenCount\":5}}\n\n".into(),
        ],
        gap: std::time::Duration::from_millis(1),
        finish: true,
    }
    });
    let bedrock = Scripted::start(|_| Action::StreamBytes {
        content_type: "application/vnd.amazon.eventstream",
        chunks: bedrock_stream(),
    });
    let gw = Gateway::start(&config(&format!(
        "[providers.google]\nkind = \"gemini\"\nbase_url = \"http://{}\"\napi_key = \"k\"\nmodels = [\"gemini-2.5-flash\"]\n[providers.aws]\nkind = \"bedrock\"\nbase_url = \"http://{}\"\nregion = \"us-east-1\"\napi_key = \"k\"\nmodels = [\"{MODEL_ID}\"]",
        gemini.addr, bedrock.addr
    )));
    let ask = |model: &str| {
        let body = format!(
            r#"{{"model":"{model}","max_tokens":50,"stream":true,"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        gw.client().send("POST", "/v1/messages", &[], body.as_bytes())
    };
    let r = ask("gemini-2.5-flash");
    assert_eq!(r.status, 200);
    let text = r.text();
    let names = event_names(&text);
    assert_eq!(names.first(), Some(&"message_start"), "{text}");
    assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"], "{text}");
    assert!(text.contains(r#""content_block":{"type":"tool_use""#), "{text}");
    assert!(text.contains(r#""stop_reason":"tool_use""#), "{text}");
    let r = ask(MODEL_ID);
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains(r#""text":"Par""#) && text.contains(r#""text":"is""#), "{text}");
    assert!(text.contains(r#""stop_reason":"end_turn""#), "{text}");
    assert!(text.contains(r#""input_tokens":11"#), "usage from Bedrock's metadata event: {text}");
    assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"), "{text}");
}

#[test]
fn embeddings_from_gemini_and_bedrock_in_openai_shape() {
    let gemini = mock(&["--dialect", "gemini"]);
    let bedrock = mock(&["--dialect", "bedrock"]);
    let gw = Gateway::start(&config(&format!(
        "[providers.google]\nkind = \"gemini\"\nbase_url = \"http://{gemini}\"\napi_key = \"k\"\nmodels = [\"text-embedding-004\"]\n[providers.aws]\nkind = \"bedrock\"\nbase_url = \"http://{bedrock}\"\nregion = \"us-east-1\"\naws_access_key_id = \"AKID\"\naws_secret_access_key = \"secret\"\nmodels = [\"amazon.titan-embed-text-v2:0\", \"cohere.embed-english-v3\", \"anthropic.claude-x\"]"
    )));
    let ask = |body: &str| gw.post("/v1/embeddings", body);
    // Gemini: one batch call, vectors in input order.
    let r = ask(r#"{"model":"text-embedding-004","input":["a","b","c"],"dimensions":16}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"].as_str(), Some("list"));
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["index"].as_u64(), Some(i as u64));
        assert_eq!(d["embedding"].as_array().unwrap().len(), 16, "dimensions reach Gemini");
    }
    // Titan: one call per input, tokens summed; base64 made by corelay.
    let r = ask(
        r#"{"model":"amazon.titan-embed-text-v2:0","input":["one","two"],"dimensions":256,"encoding_format":"base64"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let b64 = v["data"][1]["embedding"].as_str().unwrap();
    assert_eq!(b64.len(), (256 * 4usize).div_ceil(3) * 4, "256 little-endian f32s in base64");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    // Cohere: one call for the batch.
    let r = ask(r#"{"model":"cohere.embed-english-v3","input":["x","y"]}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);
    // Refused clearly, before anything is sent.
    let r = ask(r#"{"model":"amazon.titan-embed-text-v2:0","input":[[1,2,3]]}"#);
    assert_eq!((r.status, r.json()["error"]["param"].as_str()), (400, Some("input")), "{}", r.text());
    let r = ask(r#"{"model":"cohere.embed-english-v3","input":"x","dimensions":64}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    let r = ask(r#"{"model":"anthropic.claude-x","input":"x"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn count_tokens_reaches_gemini_as_count_tokens() {
    let up = Scripted::start(|_| Action::Reply(json_reply(200, "", r#"{"totalTokens":31,"promptTokensDetails":[]}"#)));
    let gw = Gateway::start(&config(&format!(
        "[providers.google]\nkind = \"gemini\"\nbase_url = \"http://{}\"\napi_key = \"k\"\nmodels = [\"gemini-2.5-flash\"]\n[providers.m]\nkind = \"mock\"\nmodels = [\"m\"]",
        up.addr
    )));
    let body = r#"{"model":"gemini-2.5-flash","system":"Be brief.","messages":[{"role":"user","content":"How many tokens?"}]}"#;
    let r = gw.client().send("POST", "/v1/messages/count_tokens", &[], body.as_bytes());
    assert_eq!((r.status, r.text()), (200, r#"{"input_tokens":31}"#.to_owned()));
    let seen = up.last();
    assert_eq!(seen.request_line(), "POST /v1beta/models/gemini-2.5-flash:countTokens HTTP/1.1");
    let sent: sonic_rs::Value = sonic_rs::from_slice(&seen.body).unwrap();
    let inner = &sent["generateContentRequest"];
    assert_eq!(inner["model"].as_str(), Some("models/gemini-2.5-flash"));
    assert_eq!(inner["systemInstruction"]["parts"][0]["text"].as_str(), Some("Be brief."));
    assert_eq!(inner["contents"][0]["parts"][0]["text"].as_str(), Some("How many tokens?"));
    // Kinds without a token counter say so in Anthropic's shape.
    let r = gw.client().send("POST", "/v1/messages/count_tokens", &[], br#"{"model":"m","messages":[]}"#);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["type"].as_str(), Some("error"));
}

#[test]
fn count_tokens_reaches_bedrock_as_count_tokens() {
    let up = Scripted::start(|_| Action::Reply(json_reply(200, "", r#"{"inputTokens":17}"#)));
    let gw = Gateway::start(&config(&format!(
        "[providers.aws]\nkind = \"bedrock\"\nbase_url = \"http://{}\"\nregion = \"eu-west-3\"\naws_access_key_id = \"AKIDEXAMPLE\"\naws_secret_access_key = \"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\"\nmodels = [\"{MODEL_ID}\"]",
        up.addr
    )));
    let body = format!(
        r#"{{"model":"{MODEL_ID}","system":"Be brief.","max_tokens":50,"messages":[{{"role":"user","content":"How many tokens?"}}]}}"#
    );
    let r = gw.client().send("POST", "/v1/messages/count_tokens", &[], body.as_bytes());
    assert_eq!((r.status, r.text()), (200, r#"{"input_tokens":17}"#.to_owned()));
    let seen = up.last();
    assert_eq!(
        seen.request_line(),
        "POST /model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/count-tokens HTTP/1.1",
        "{MODEL_ID}"
    );
    assert!(seen.header("authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")));
    let sent: sonic_rs::Value = sonic_rs::from_slice(&seen.body).unwrap();
    let converse = &sent["input"]["converse"];
    assert_eq!(converse["system"][0]["text"].as_str(), Some("Be brief."));
    assert_eq!(converse["messages"][0]["content"][0]["text"].as_str(), Some("How many tokens?"));
    assert!(converse.get("inferenceConfig").is_none(), "{}", String::from_utf8_lossy(&seen.body));
    // A Bedrock error comes back in Anthropic's shape.
    let up = Scripted::start(|_| {
        Action::Reply(json_reply(
            400,
            "x-amzn-errortype: ValidationException:http://internal.amazon.com/coral/com.amazonaws.bedrock/\r\n",
            r#"{"message":"The provided model doesn't support counting tokens."}"#,
        ))
    });
    let gw = Gateway::start(&config(&format!(
        "[providers.aws]\nkind = \"bedrock\"\nbase_url = \"http://{}\"\nregion = \"us-east-1\"\napi_key = \"k\"\nmodels = [\"{MODEL_ID}\"]",
        up.addr
    )));
    let r = gw.client().send("POST", "/v1/messages/count_tokens", &[], body.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["type"].as_str(), Some("error"));
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("counting tokens"), "{}", r.text());
}
