//! Process-level behaviour: shards and their sockets, graceful drain,
//! refusing a taken port.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sonic_rs::JsonValueTrait;

use crate::support::*;

#[test]
fn each_shard_has_its_own_listener_and_ring_on_one_port() {
    let gw =
        Gateway::start("listen = \"127.0.0.1:0\"\nshards = 2\n[providers.mock]\nkind = \"mock\"\nmodels = [\"m\"]");
    assert!(gw.banner.contains("(2 shards"), "{}", gw.banner);
    let fd_dir = format!("/proc/{}/fd", gw.pid());
    let links: Vec<String> = std::fs::read_dir(&fd_dir)
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let rings = links.iter().filter(|l| l.contains("io_uring")).count();
    if gw.banner.contains("io_uring driver") {
        assert_eq!(rings, 2, "one io_uring instance per shard: {links:?}");
    } else {
        assert_eq!(rings, 0, "the epoll driver opens no ring: {links:?}");
    }
    // Sockets of this process that listen on the gateway's port.
    let inodes: HashSet<String> =
        links.iter().filter_map(|l| l.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned)).collect();
    let port_hex = format!("{:04X}", gw.addr.port());
    let tcp = std::fs::read_to_string(format!("/proc/{}/net/tcp", gw.pid())).unwrap();
    let listening: Vec<&str> = tcp
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f[1].ends_with(&format!(":{port_hex}")) && f[3] == "0A" && inodes.contains(f[9])
        })
        .collect();
    assert_eq!(listening.len(), 2, "two SO_REUSEPORT listeners on port {}: {listening:?}", gw.addr.port());
    // And nothing else listens: no stray port of ours.
    let ours_listening = tcp.lines().skip(1).filter(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f[3] == "0A" && inodes.contains(f[9])
    });
    assert_eq!(ours_listening.count(), 2);
}

/// The allocator is built with transparent huge pages off (`.cargo/config.toml`),
/// which mimalloc applies to the whole process; with them on, idle RSS triples.
#[test]
fn the_gateway_runs_without_transparent_huge_pages() {
    let gw =
        Gateway::start("listen = \"127.0.0.1:0\"\nshards = 1\n[providers.mock]\nkind = \"mock\"\nmodels = [\"m\"]");
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("THP_enabled:"));
    // Kernels before 6.0 do not report the flag; there is nothing to check then.
    if let Some(line) = line {
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
}

#[test]
fn a_taken_port_fails_the_start_loudly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new();
    let path = dir.0.join("c.toml");
    std::fs::write(&path, format!("listen = \"127.0.0.1:{port}\"\n[providers.m]\nkind = \"mock\"\nmodels = [\"m\"]"))
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corelay"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{err}");
}

#[test]
fn check_validates_without_binding() {
    let dir = TempDir::new();
    let good = dir.0.join("good.toml");
    std::fs::write(&good, "listen = \"127.0.0.1:1\"\n[providers.m]\nkind = \"mock\"\nmodels = [\"m\"]").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corelay"))
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = dir.0.join("bad.toml");
    std::fs::write(&bad, "listen = \"127.0.0.1:1\"\napi_key = \"${CORELAY_TEST_UNSET_VAR}\"").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corelay"))
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CORELAY_TEST_UNSET_VAR"));
}

#[test]
fn sigterm_lets_an_open_stream_finish_then_exits_zero() {
    let mock = mock(&["--chunks", "8", "--delay", "100"]);
    let mut gw = Gateway::start(&openai_config(mock, ""));
    let addr = gw.addr;
    let stream = std::thread::spawn(move || {
        Client::connect(addr).send("POST", "/v1/chat/completions", &[], chat_body("bench-chat", true).as_bytes())
    });
    // Wait until the stream is in flight (the gateway counted it).
    assert_eq!(gw.wait_metric("streams", 1), 1);
    let signalled = Instant::now();
    gw.signal_term();
    let r = stream.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"), "the stream finished: {}", r.text());
    let (status, stderr) = gw.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(stderr.contains("draining"), "{stderr}");
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(std::net::TcpStream::connect(addr).is_err(), "nothing listens after exit");
}

#[test]
fn the_drain_gives_up_after_shutdown_timeout_ms() {
    let up = Scripted::start(|_| Action::Hang);
    let config = openai_config(up.addr, "")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:0\"\nshutdown_timeout_ms = 300");
    let mut gw = Gateway::start(&config);
    let addr = gw.addr;
    let _hanging = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.write_raw(
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\ncontent-length: {}\r\n\r\n{}",
                chat_body("bench-chat", false).len(),
                chat_body("bench-chat", false)
            )
            .as_bytes(),
        );
        c.is_closed()
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.requests.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "request never reached the upstream");
        std::thread::sleep(Duration::from_millis(10));
    }
    let signalled = Instant::now();
    gw.signal_term();
    let (status, _) = gw.wait_exit(Duration::from_secs(5));
    assert!(status.success());
    let took = signalled.elapsed();
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "drain took {took:?}");
}

#[test]
fn sighup_reloads_the_config_and_a_bad_one_changes_nothing() {
    let base = "listen = \"127.0.0.1:0\"\nshards = 2\n[providers.mock]\nkind = \"mock\"\nmodels = [\"m\"]\n";
    let mut gw = Gateway::start(base);
    let models = |gw: &Gateway| gw.get("/v1/models").text();
    assert!(!models(&gw).contains("\"fast\""));

    // A broken file: the running config stays.
    std::fs::write(&gw.config_path, format!("{base}[aliases]\nfast = \"nowhere\"\n")).unwrap();
    gw.signal("-HUP");
    gw.wait_stderr("reload failed, keeping the running config");
    assert!(!models(&gw).contains("\"fast\""));
    std::fs::write(&gw.config_path, format!("{base}[aliases]\nfast = \"m\"\n")).unwrap();
    gw.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    // Both shards must have it: ask on fresh connections, spread by the kernel.
    let mut seen = 0;
    while seen < 20 {
        assert!(Instant::now() < deadline, "reload never reached every shard");
        if models(&gw).contains("\"fast\"") { seen += 1 } else { seen = 0 }
    }
    let r = gw.post("/v1/chat/completions", &chat_body("fast", false));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["model"].as_str(), Some("m"));
    gw.signal_term();
    let (status, stderr) = gw.wait_exit(Duration::from_secs(10));
    assert!(status.success());
    assert!(stderr.contains("reload failed, keeping the running config"), "{stderr}");
    assert!(stderr.contains("(generation 1)"), "{stderr}");
}

#[test]
fn a_reload_that_renumbers_providers_never_sends_a_key_to_another_provider() {
    let openai = Scripted::start(|r| {
        if r.body_text().contains("\"stream\":true") {
            let events = (0..6).map(|i| chunk_event(&format!("w{i}"))).chain(["data: [DONE]\n\n".to_owned()]);
            Action::Stream { events: events.collect(), gap: Duration::from_millis(100), finish: true }
        } else {
            Action::Reply(json_reply(200, "", &completion("gpt-4o")))
        }
    });
    let azure = Scripted::start(|_| Action::Reply(json_reply(200, "", &completion("az-model"))));
    let before = format!(
        "listen = \"127.0.0.1:0\"\nshards = 1\n[upstream]\nstats_interval_ms = 50\n[providers.openai]\nkind = \"openai\"\nbase_url = \"http://{}/v1\"\napi_key = \"sk-openai-secret\"\nmodels = [\"gpt-4o\"]\n",
        openai.addr
    );
    // `azure` sorts before `openai`: the reload renumbers the deployments.
    let after = format!(
        "{before}[providers.azure]\nkind = \"azure\"\nbase_url = \"http://{}\"\napi_key = \"az-secret\"\nmodels = [\"az-model\"]\n",
        azure.addr
    );
    let gw = Gateway::start(&before);
    // A keep-alive client whose connection will sit idle across the reload.
    let mut idle = gw.client();
    let chat = |model: &str| chat_body(model, false);
    assert_eq!(idle.send("POST", "/v1/chat/completions", &[], chat("gpt-4o").as_bytes()).status, 200);
    // A stream in flight across the reload, on the pooled upstream connection.
    let addr = gw.addr;
    let stream = std::thread::spawn(move || {
        Client::connect(addr).send("POST", "/v1/chat/completions", &[], chat_body("gpt-4o", true).as_bytes())
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while openai.requests.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the stream never reached the provider");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::write(&gw.config_path, after).unwrap();
    gw.signal("-HUP");
    gw.wait_stderr("(generation 1)");
    while !gw.get("/v1/models").text().contains("az-model") {
        assert!(Instant::now() < deadline, "the reload never reached the shard");
    }
    let streamed = stream.join().unwrap();
    assert_eq!(streamed.sse_data().last().map(String::as_str), Some("[DONE]"), "{}", streamed.text());
    assert_eq!(gw.post("/v1/chat/completions", &chat("az-model")).status, 200);
    assert_eq!(idle.send("POST", "/v1/chat/completions", &[], chat("gpt-4o").as_bytes()).status, 200);
    assert_eq!(gw.post("/v1/chat/completions", &chat("az-model")).status, 200);

    for seen in openai.requests.lock().unwrap().iter() {
        assert_eq!(seen.header("authorization").as_deref(), Some("Bearer sk-openai-secret"), "{}", seen.head);
        assert_eq!(seen.header("api-key"), None, "azure's key reached openai: {}", seen.head);
    }
    for seen in azure.requests.lock().unwrap().iter() {
        assert_eq!(seen.header("api-key").as_deref(), Some("az-secret"), "{}", seen.head);
        assert_eq!(seen.header("authorization"), None, "openai's key reached azure: {}", seen.head);
    }
    assert_eq!(openai.requests.lock().unwrap().len(), 3);
    assert_eq!(azure.requests.lock().unwrap().len(), 2);
}
