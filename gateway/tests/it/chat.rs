//! Chat, streams, embeddings and models through the same-dialect path.

use std::time::Duration;

use sonic_rs::{JsonContainerTrait, JsonValueTrait};

use crate::support::*;

#[test]
fn chat_is_forwarded_byte_for_byte() {
    let mock = mock(&[]);
    let gw = Gateway::start(&openai_config(mock, ""));
    let r = gw.post("/v1/chat/completions", &chat_body("bench-chat", false));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["choices"][0]["message"]["content"].as_str(), Some("This is a benchmark response."));
    assert_eq!(v["usage"]["total_tokens"].as_u64(), Some(30));
    assert_eq!(r.header("x-corelay-provider"), Some("up"));
    assert_eq!(gw.wait_metric("prompt_tokens", 10), 10, "usage of a non-stream reply is counted");
}

#[test]
fn streams_arrive_event_by_event_as_the_provider_sends_them() {
    let mock = mock(&["--chunks", "6", "--delay", "150"]);
    let gw = Gateway::start(&openai_config(mock, ""));
    let r = gw.post("/v1/chat/completions", &chat_body("bench-chat", true));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let data = r.sse_data();
    assert_eq!(data.len(), 7, "6 chunks and [DONE]: {data:?}");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(!r.text().contains("\"usage\""), "no usage for a client that did not ask: {}", r.text());
    // Gaps of 150 ms between the events: had the gateway buffered, every
    // chunk would have arrived at once. The opening chunk (role, no
    // content) is held back until the first content, so that a failure
    // before any content can still be retried: it goes out with it.
    let first = r.chunks.first().unwrap().0;
    let last = r.chunks.last().unwrap().0;
    assert!(r.chunks.len() >= 5, "one HTTP chunk per event or close to it: {}", r.chunks.len());
    assert!(last - first >= Duration::from_millis(450), "events spread over {:?}", last - first);
    // The usage the gateway asked for on the client's behalf is counted.
    assert_eq!(gw.wait_metric("completion_tokens", 6), 6);
}

#[test]
fn include_usage_gives_the_client_exactly_one_usage_chunk() {
    let mock = mock(&["--chunks", "4"]);
    let gw = Gateway::start(&openai_config(mock, ""));
    let body = r#"{"model":"bench-chat","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#;
    let r = gw.post("/v1/chat/completions", body);
    let data = r.sse_data();
    let usage: Vec<_> = data.iter().filter(|d| d.contains("\"usage\":{")).collect();
    assert_eq!(usage.len(), 1, "{data:?}");
    assert_eq!(data[data.len() - 2], *usage[0], "usage chunk right before [DONE]");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
}

#[test]
fn the_upstream_sees_the_alias_target_and_include_usage_spliced_in() {
    let up = Scripted::start(|req| {
        if req.body_text().contains("\"stream\":true") {
            Action::Stream {
                events: vec![chunk_event("a"), "data: [DONE]\n\n".into()],
                gap: Duration::ZERO,
                finish: true,
            }
        } else {
            Action::Reply(json_reply(200, "", &completion("bench-chat")))
        }
    });
    let gw = Gateway::start(&openai_config(up.addr, "[aliases]\nfast = \"bench-chat\""));
    let body = r#"{"model":"fast","messages":[{"role":"user","content":"x"}],"top_p":1,"stream":false}"#;
    assert_eq!(gw.post("/v1/chat/completions", body).status, 200);
    let seen = up.last();
    assert_eq!(seen.request_line(), "POST /v1/chat/completions HTTP/1.1");
    assert_eq!(seen.body_text(), body.replace("\"fast\"", "\"bench-chat\""), "only the model bytes change");
    assert_eq!(seen.header("authorization").as_deref(), Some("Bearer sk-upstream-secret"));

    let body = r#"{"model":"fast","messages":[],"stream":true}"#;
    let r = gw.post("/v1/chat/completions", body);
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    assert_eq!(
        up.last().body_text(),
        r#"{"stream_options":{"include_usage":true},"model":"bench-chat","messages":[],"stream":true}"#
    );
}

#[test]
fn a_usage_chunk_the_gateway_asked_for_is_hidden_from_the_client() {
    let usage = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":22,\"total_tokens\":33}}\n\n";
    let up = Scripted::start(move |_| Action::Stream {
        events: vec![chunk_event("a"), chunk_event("b"), usage.to_owned(), "data: [DONE]\n\n".into()],
        gap: Duration::ZERO,
        finish: true,
    });
    let gw = Gateway::start(&openai_config(up.addr, ""));
    let r = gw.post("/v1/chat/completions", &chat_body("bench-chat", true));
    let data = r.sse_data();
    assert_eq!(data.len(), 3, "{data:?}");
    assert!(data.iter().all(|d| !d.contains("prompt_tokens")));
    assert_eq!(gw.wait_metric("completion_tokens", 22), 22);
}

#[test]
fn embeddings_and_models() {
    let mock = mock(&[]);
    let gw = Gateway::start(&openai_config(mock, "[aliases]\nembed = \"bench-embed\""));
    let r = gw.post("/v1/embeddings", r#"{"model":"embed","input":["a","b"]}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 1536);

    let r = gw.get("/v1/models");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["object"].as_str(), Some("list"));
    let ids: Vec<_> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["bench-chat", "bench-embed", "embed"]);
    assert!(v["data"].as_array().unwrap().iter().all(|m| m["object"].as_str() == Some("model")));

    let r = gw.get("/health");
    assert_eq!((r.status, r.text().as_str()), (200, "{\"status\":\"ok\"}"));
}

#[test]
fn two_hundred_concurrent_streams_all_complete() {
    let mock = mock(&["--chunks", "10", "--delay", "5", "--threads", "2"]);
    let gw = Gateway::start(&openai_config(mock, ""));
    let addr = gw.addr;
    let handles: Vec<_> = (0..200)
        .map(|_| {
            std::thread::spawn(move || {
                let r = Client::connect(addr).send(
                    "POST",
                    "/v1/chat/completions",
                    &[],
                    chat_body("bench-chat", true).as_bytes(),
                );
                (r.status, r.sse_data())
            })
        })
        .collect();
    for h in handles {
        let (status, data) = h.join().unwrap();
        assert_eq!(status, 200);
        assert_eq!(data.len(), 11);
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    }
    assert_eq!(gw.wait_metric("streams", 200), 200);
}

#[test]
fn the_embedded_mock_provider_answers_without_any_key() {
    let config =
        "listen = \"127.0.0.1:0\"\n[providers.mock]\nkind = \"mock\"\nmodels = [\"mock-chat\", \"mock-embed\"]";
    let gw = Gateway::start(config);
    let r = gw.post("/v1/chat/completions", &chat_body("mock-chat", false));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["model"].as_str(), Some("mock-chat"));
    let r = gw.post("/v1/chat/completions", &chat_body("mock-chat", true));
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    let r = gw.post("/v1/embeddings", r#"{"model":"mock-embed","input":"x"}"#);
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 1);
}

#[test]
fn a_client_that_leaves_mid_stream_takes_the_upstream_connection_with_it() {
    let events: Vec<String> = (0..50).map(|i| chunk_event(&format!("w{i}"))).collect();
    let up = Scripted::start(move |_| Action::Stream {
        events: events.clone(),
        gap: Duration::from_millis(50),
        finish: true,
    });
    let gw = Gateway::start(&openai_config(up.addr, ""));
    let mut c = gw.client();
    let body = chat_body("bench-chat", true);
    c.write_raw(
        format!("POST /v1/chat/completions HTTP/1.1\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes(),
    );
    let mut first = [0u8; 64];
    std::io::Read::read(c.stream(), &mut first).unwrap();
    drop(c);
    // 50 events at 50 ms would take 2.5 s; the upstream connection must be
    // closed long before that.
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    while up.closed.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "upstream connection still open after the client left");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_last_event_without_its_blank_line_is_still_forwarded() {
    let up = Scripted::start(|r| {
        let last = if r.request_line().contains("/v1/messages") {
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n"
        } else {
            "data: [DONE]\n"
        };
        Action::Stream { events: vec![chunk_event("a"), last.to_owned()], gap: Duration::ZERO, finish: true }
    });
    let gw = Gateway::start(&format!(
        "{}[providers.claude]\nkind = \"anthropic\"\nbase_url = \"http://{}\"\napi_key = \"sk-ant-secret\"\nmodels = [\"claude-x\"]\n",
        openai_config(up.addr, ""),
        up.addr
    ));
    let r = gw.post("/v1/chat/completions", &chat_body("bench-chat", true));
    assert_eq!(r.status, 200);
    assert!(r.text().ends_with("data: [DONE]\n\n"), "{:?}", r.text());
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    let r = gw.post("/v1/messages", r#"{"model":"claude-x","max_tokens":5,"stream":true,"messages":[]}"#);
    assert!(r.text().ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"), "{:?}", r.text());
}
