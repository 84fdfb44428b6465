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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(None),
        Some(Command::Serve { config }) => serve(config),
        Some(Command::Check { config }) => check(&config),
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
