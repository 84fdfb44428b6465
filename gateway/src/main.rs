//! The `corelay` binary: argument parsing, reading the config file and the
//! environment, signals. Everything else lives in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "corelay", version, about = "One API, every model: a thread-per-core LLM gateway")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway.
    Serve {
        /// The TOML config; without it, the embedded default (a mock provider on 127.0.0.1:8080).
        #[arg(long, short)]
        config: Option<std::path::PathBuf>,
    },
    /// Validate a config and exit.
    Check {
        #[arg(long, short)]
        config: std::path::PathBuf,
    },
    /// Manage a running gateway through its admin API.
    Admin {
        /// The gateway, as http://HOST:PORT.
        #[arg(long, env = "CORELAY_URL", default_value = "http://127.0.0.1:8080", global = true)]
        url: String,
        /// The admin token (its admin_token).
        #[arg(long, env = "CORELAY_ADMIN_TOKEN", default_value = "", hide_env_values = true, global = true)]
        token: String,
        /// Print the API's JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        what: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Virtual keys.
    Keys {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Usage by key, model and hour.
    Usage {
        /// A key id (key_... or cfg-...).
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        model: Option<String>,
        /// Unix seconds.
        #[arg(long)]
        from: Option<u64>,
        #[arg(long)]
        until: Option<u64>,
    },
    /// Reload the gateway's config file (as SIGHUP does).
    Reload,
    /// The response cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Set a key's budget.
    Budget {
        id: String,
        /// USD per period.
        #[arg(long)]
        usd: f64,
        /// total, daily or monthly.
        #[arg(long, default_value = "total")]
        period: String,
    },
}

#[derive(Subcommand)]
enum CacheAction {
    /// Empty every shard's response cache.
    Clear,
}

#[derive(Subcommand)]
enum KeyAction {
    /// Create a key; its secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        fields: KeyFields,
    },
    List,
    Get {
        id: String,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: KeyFields,
    },
    Revoke {
        id: String,
    },
}

#[derive(clap::Args)]
struct KeyFields {
    /// Model names and globs, comma-separated (default: every model).
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    #[arg(long)]
    rpm: Option<u32>,
    #[arg(long)]
    tpm: Option<u64>,
    #[arg(long)]
    budget_usd: Option<f64>,
    #[arg(long)]
    budget_period: Option<String>,
    /// Unix seconds.
    #[arg(long)]
    expires_at: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(None),
        Some(Command::Serve { config }) => serve(config),
        Some(Command::Check { config }) => check(&config),
        Some(Command::Admin { url, token, json, what }) => admin(&url, token, json, what),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corelay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<&std::path::Path>) -> anyhow::Result<config::Config> {
    let env = |name: &str| std::env::var(name).ok();
    match path {
        None => {
            eprintln!("corelay: no --config given: serving the embedded default (one mock provider, no keys)");
            Ok(config::parse(config::EMBEDDED_DEFAULT, env)?)
        }
        Some(path) => {
            #[allow(clippy::disallowed_methods, reason = "main reads the config before any shard starts")]
            let text =
                std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            config::parse(&text, env).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        }
    }
}

fn check(path: &std::path::Path) -> anyhow::Result<()> {
    let config = load(Some(path))?;
    println!(
        "{}: ok ({} providers, {} models, {} aliases, {} keys)",
        path.display(),
        config.deployments.len(),
        config.routes.len(),
        config.aliases.len(),
        config.keys.len()
    );
    Ok(())
}

fn admin(url: &str, token: String, json: bool, what: AdminCommand) -> anyhow::Result<()> {
    use gateway::admin_cli::{Target, print};
    let target = Target::new(url, token).map_err(anyhow::Error::msg)?;
    let spec = |name: Option<String>, f: KeyFields| {
        let mut body = String::from("{");
        let mut field = |key: &str, value: Option<String>| {
            if let Some(v) = value {
                if body.len() > 1 {
                    body.push(',');
                }
                body.push_str(&format!("\"{key}\":{v}"));
            }
        };
        let quote = |s: String| sonic_rs::to_string(&s).unwrap_or_default();
        field("name", name.map(quote));
        field("models", f.models.map(|m| sonic_rs::to_string(&m).unwrap_or_default()));
        field("rpm", f.rpm.map(|v| v.to_string()));
        field("tpm", f.tpm.map(|v| v.to_string()));
        field("budget_usd", f.budget_usd.map(|v| v.to_string()));
        field("budget_period", f.budget_period.map(quote));
        field("expires_at", f.expires_at.map(|v| v.to_string()));
        body.push('}');
        body
    };
    let (method, path, body) = match what {
        AdminCommand::Keys { action } => match action {
            KeyAction::Create { name, fields } => ("POST", "/admin/keys".to_owned(), Some(spec(Some(name), fields))),
            KeyAction::List => ("GET", "/admin/keys".to_owned(), None),
            KeyAction::Get { id } => ("GET", format!("/admin/keys/{id}"), None),
            KeyAction::Update { id, name, fields } => ("POST", format!("/admin/keys/{id}"), Some(spec(name, fields))),
            KeyAction::Revoke { id } => ("POST", format!("/admin/keys/{id}/revoke"), None),
        },
        AdminCommand::Usage { key, model, from, until } => {
            let params: Vec<String> = [
                key.map(|v| format!("key={v}")),
                model.map(|v| format!("model={v}")),
                from.map(|v| format!("from={v}")),
                until.map(|v| format!("until={v}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            ("GET", format!("/admin/usage?{}", params.join("&")), None)
        }
        AdminCommand::Reload => ("POST", "/admin/reload".to_owned(), None),
        AdminCommand::Cache { action: CacheAction::Clear } => ("DELETE", "/admin/cache".to_owned(), None),
        AdminCommand::Budget { id, usd, period } => {
            let body = format!("{{\"budget_usd\":{usd},\"budget_period\":{}}}", sonic_rs::to_string(&period)?);
            ("POST", format!("/admin/keys/{id}"), Some(body))
        }
    };
    let (status, answer) = target.call(method, &path, body.as_deref()).map_err(anyhow::Error::msg)?;
    print(status, &answer, json, &mut std::io::stdout().lock()).map_err(anyhow::Error::msg)
}

/// SIGHUP: re-read and validate the config file, then swap it in. A config
/// that fails validation changes nothing.
fn reload(handle: &gateway::runtime::Handle, path: Option<&std::path::Path>) {
    let Some(path) = path else {
        eprintln!("corelay: SIGHUP ignored: serving the embedded default, there is no file to reload");
        return;
    };
    match load(Some(path)).map_err(|e| e.to_string()).and_then(|config| handle.reload(config)) {
        Ok(generation) => eprintln!("corelay: reloaded {} (generation {generation})", path.display()),
        Err(e) => eprintln!("corelay: reload failed, keeping the running config: {e}"),
    }
}

fn serve(path: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let config = load(path.as_deref())?;
    // Signals are routed to a thread of their own before any other thread
    // starts, so that every later thread inherits nothing surprising.
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let gateway = gateway::runtime::start(config)?;
    println!("corelay listening on {} ({} shards, {} driver)", gateway.addr, gateway.shards, gateway.driver);
    let handle = gateway.handle();
    std::thread::Builder::new().name("corelay-signals".into()).spawn(move || {
        let mut seen = 0;
        for signal in signals.forever() {
            if signal == SIGHUP {
                reload(&handle, path.as_deref());
                continue;
            }
            seen += 1;
            if seen == 1 {
                eprintln!("corelay: signal {signal}: draining (send again to exit at once)");
                handle.shutdown();
            } else {
                std::process::exit(130);
            }
        }
    })?;
    let totals = gateway.wait();
    let requests = totals.values[gateway::shard::Counter::Requests as usize];
    eprintln!("corelay: stopped after {requests} requests");
    Ok(())
}
