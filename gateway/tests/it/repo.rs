//! Repository-wide rules, checked as tests: every checked-in config parses,
//! and the crates depend on each other only in the allowed direction.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// Every `.toml` under `config/` and `deploy/` is a valid corelay config.
/// Environment variables get a placeholder value.
#[test]
fn every_checked_in_config_parses() {
    let mut checked = 0;
    for dir in ["config", "deploy"] {
        let Ok(entries) = std::fs::read_dir(root().join(dir)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let parsed = gateway::config::parse(&text, |name| Some(format!("placeholder-for-{name}")));
            assert!(parsed.is_ok(), "{}: {}", path.display(), parsed.unwrap_err());
            checked += 1;
        }
    }
    assert!(checked >= 1, "config/default.toml at least");
}

/// `translate` and `store` never depend on monoio or on the gateway;
/// `bench` depends on no workspace crate.
#[test]
fn dependency_direction() {
    let deps = |krate: &str| -> String {
        let manifest = std::fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
        let table: toml::Table = toml::from_str(&manifest).unwrap();
        table.get("dependencies").map(|d| d.to_string()).unwrap_or_default()
    };
    for krate in ["translate", "store"] {
        let d = deps(krate);
        for banned in ["monoio", "gateway", "flume", "crossbeam"] {
            assert!(!d.contains(banned), "{krate} must not depend on {banned}");
        }
    }
    let d = deps("bench");
    for banned in ["gateway", "translate", "store"] {
        assert!(!d.contains(banned), "bench must not depend on {banned}");
    }
}
