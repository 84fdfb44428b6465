//! The admin API through a running gateway: keys created, used, limited,
//! revoked and kept across a restart; every route behind the admin token.

use std::time::Duration;

use sonic_rs::{JsonContainerTrait, JsonValueTrait};

use crate::support::*;

const TOKEN: &str = "admin-token-for-the-tests-0123";

fn config(storage: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nshards = 2\nadmin_token = \"{TOKEN}\"\n[upstream]\nstats_interval_ms = 50\n{storage}\n[providers.m]\nkind = \"mock\"\nmodels = [\"m\", \"n\"]\n"
    )
}

fn admin(gw: &Gateway, method: &str, path: &str, body: &str) -> Response {
    gw.client().send(method, path, &[("authorization", &format!("Bearer {TOKEN}"))], body.as_bytes())
}

fn chat_with(gw: &Gateway, key: &str, model: &str) -> Response {
    gw.client().send(
        "POST",
        "/v1/chat/completions",
        &[("authorization", &format!("Bearer {key}"))],
        chat_body(model, false).as_bytes(),
    )
}

#[test]
fn every_admin_route_needs_the_token() {
    let gw = Gateway::start(&config(""));
    for (method, path) in [("GET", "/admin/keys"), ("POST", "/admin/keys"), ("GET", "/admin/usage")] {
        let r = gw.client().send(method, path, &[], b"{}");
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
        let r = gw.client().send(method, path, &[("authorization", "Bearer not-the-token")], b"{}");
        assert_eq!(r.status, 401, "{method} {path}");
    }
    let r = admin(&gw, "GET", "/admin/nothing-here", "");
    assert_eq!(r.status, 404);
    // Without admin_token the API is off.
    let off = Gateway::start(&config("").replace(&format!("admin_token = \"{TOKEN}\"\n"), ""));
    assert_eq!(admin(&off, "GET", "/admin/keys", "").status, 403);
}

#[test]
fn keys_created_at_run_time_work_are_limited_revoked_and_kept() {
    let dir = TempDir::new();
    let storage = format!("[storage]\npath = \"{}\"", dir.0.join("corelay.redb").display());
    let text = config(&storage);
    let gw = Gateway::start(&text);
    // Keys are managed here: a key is needed even before one exists.
    assert_eq!(chat_with(&gw, "anything", "m").status, 401);
    let r = admin(&gw, "POST", "/admin/keys", r#"{"name":"team-a","models":["m"],"rpm":2,"metadata":{"owner":"qa"}}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let secret = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sk-corelay-") && id.starts_with("key_"), "{created}");
    // Listed and read without its secret.
    let listed = admin(&gw, "GET", "/admin/keys", "").text();
    assert!(listed.contains(&id) && !listed.contains(&secret), "{listed}");
    let one = admin(&gw, "GET", &format!("/admin/keys/{id}"), "").json();
    assert_eq!(one["metadata"]["owner"].as_str(), Some("qa"));
    assert!(one.get("key").is_none());
    // The key works, within its models and its rpm.
    assert_eq!(chat_with(&gw, "anything", "m").status, 401);
    assert_eq!(chat_with(&gw, &secret, "n").status, 403);
    let statuses: Vec<u16> = (0..4).map(|_| chat_with(&gw, &secret, "m").status).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 2, "{statuses:?}");
    // Updated: another model allowed.
    let r = admin(&gw, "POST", &format!("/admin/keys/{id}"), r#"{"models":["m","n"]}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let answered = (0..20).map(|_| chat_with(&gw, &secret, "n").status).find(|&s| s != 403);
    assert!(matches!(answered, Some(200 | 429)), "{answered:?}");
    // Its usage, by key.
    std::thread::sleep(Duration::from_millis(200));
    let usage = admin(&gw, "GET", &format!("/admin/usage?key={id}"), "").json();
    assert!(usage["total"]["requests"].as_u64().unwrap() >= 2, "{usage}");
    assert!(usage["data"].as_array().unwrap().iter().all(|r| r["key"].as_str() == Some(id.as_str())));
    // Kept across a restart, then revoked.
    let mut gw = gw;
    gw.signal_term();
    let (status, log) = gw.wait_exit(Duration::from_secs(10));
    assert!(status.success());
    // The secret is neither logged nor stored: only its SHA-256 is.
    assert!(!log.contains(&secret), "{log}");
    let stored = std::fs::read(dir.0.join("corelay.redb")).unwrap();
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret is in the store");
    let gw = Gateway::start(&text);
    assert!(admin(&gw, "GET", "/admin/keys", "").text().contains(&id));
    assert_ne!(chat_with(&gw, &secret, "m").status, 401, "the key survived the restart");
    let r = admin(&gw, "POST", &format!("/admin/keys/{id}/revoke"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["revoked"].as_bool(), Some(true));
    assert_eq!(chat_with(&gw, &secret, "m").status, 401);
    assert_eq!(admin(&gw, "GET", "/admin/keys/key_unknown", "").status, 404);
    // Bad input is refused clearly.
    let r = admin(&gw, "POST", "/admin/keys", r#"{"name":"x","rpm":0}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    let r = admin(&gw, "POST", "/admin/keys", r#"{"nmae":"typo"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
}

fn cli(gw: &Gateway, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corelay"))
        .arg("admin")
        .args(args)
        .env("CORELAY_URL", format!("http://{}", gw.addr))
        .env("CORELAY_ADMIN_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_admin_cli_drives_the_api() {
    let gw = Gateway::start(&config(""));
    let (ok, out, err) = cli(&gw, TOKEN, &["keys", "create", "--name", "cli-team", "--models", "m,n", "--rpm", "5"]);
    assert!(ok, "{err}");
    assert!(out.contains("shown this once") && out.contains("sk-corelay-"), "{out}");
    let secret = out.split_whitespace().find(|w| w.starts_with("sk-corelay-")).unwrap().to_owned();
    assert_eq!(chat_with(&gw, &secret, "m").status, 200);
    let (ok, out, _) = cli(&gw, TOKEN, &["keys", "list"]);
    assert!(ok && out.starts_with("id ") && out.contains("cli-team") && out.contains("m,n"), "{out}");
    assert!(!out.contains(&secret));
    let (ok, out, _) = cli(&gw, TOKEN, &["--json", "keys", "list"]);
    assert!(ok);
    let listed: sonic_rs::Value = sonic_rs::from_str(&out).unwrap();
    let id = listed["data"][0]["id"].as_str().unwrap().to_owned();
    let (ok, out, err) = cli(&gw, TOKEN, &["budget", &id, "--usd", "12.5", "--period", "monthly"]);
    assert!(ok && out.contains("12.5") && out.contains("monthly"), "{out}{err}");
    std::thread::sleep(Duration::from_millis(200));
    let (ok, out, _) = cli(&gw, TOKEN, &["usage", "--key", &id]);
    assert!(ok && out.contains("total: 1 requests"), "{out}");
    let (ok, _, _) = cli(&gw, TOKEN, &["keys", "revoke", &id]);
    assert!(ok);
    assert_eq!(chat_with(&gw, &secret, "m").status, 401);
    // A wrong token fails with the API's message and a non-zero status.
    let (ok, _, err) = cli(&gw, "wrong-token-wrong-token", &["keys", "list"]);
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, _, err) = cli(&gw, TOKEN, &["keys", "get", "key_nope"]);
    assert!(!ok && err.contains("404"), "{err}");
    // Reload: the config file changed on disk; the admin API applies it.
    let text = std::fs::read_to_string(&gw.config_path)
        .unwrap()
        .replace("models = [\"m\", \"n\"]", "models = [\"m\", \"n\", \"o\"]");
    std::fs::write(&gw.config_path, text).unwrap();
    let (ok, out, err) = cli(&gw, TOKEN, &["reload"]);
    assert!(ok && out.contains("reload requested"), "{out}{err}");
    gw.wait_stderr("reloaded");
}
