//! Startup: bind once, then run one monoio runtime per worker thread.
//!
//! The port is bound with a plain `std::net::TcpListener` (no SO_REUSEPORT),
//! so a port already in use fails loudly instead of silently joining another
//! process's reuseport group (tech.md §1.2), and `--port 0` resolves to one
//! real port. Each worker accepts on a `try_clone` of that socket: the kernel
//! hands each connection to one of them, and the connection then lives on
//! that thread only.

use std::io::Write;
use std::net::TcpListener as StdListener;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use monoio::net::TcpListener;

use crate::mock::cli::{Args, Config};
use crate::mock::conn;
use crate::mock::routes;
use crate::mock::state::State;

/// Pause after a failed accept (e.g. out of file descriptors) so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Binds, starts the workers, prints the listening line, and runs until a
/// worker dies.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (addr, workers) = start(args)?;
    // Tests and scripts wait for exactly this line.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "corelay-mock listening on {addr}")?;
    stdout.flush()?;
    drop(stdout);

    for worker in workers {
        worker.join().map_err(|_| anyhow!("a worker thread panicked"))?;
    }
    bail!("all workers stopped")
}

/// Binds and starts the workers; returns once every worker is accepting.
/// The gateway's tests use this to run the mock inside the test process.
pub fn start(args: &Args) -> anyhow::Result<(std::net::SocketAddr, Vec<thread::JoinHandle<()>>)> {
    let listener =
        bind(&args.host, args.port).with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    // Required by monoio's epoll fallback; harmless under io_uring.
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let cfg = args.config();
    // One state per server: tests run many mocks in one process.
    let state = Arc::new(State::new(args.name.clone(), routes::rate_limit_headers(cfg.dialect)));

    let (ready_tx, ready_rx) = mpsc::channel();
    let mut workers = Vec::new();
    for id in 0..args.threads {
        let socket = listener.try_clone()?;
        let ready = ready_tx.clone();
        let state = Arc::clone(&state);
        let worker = thread::Builder::new()
            .name(format!("corelay-mock-{id}"))
            .spawn(move || worker(socket, cfg, state, ready))?;
        workers.push(worker);
    }
    drop(ready_tx);
    for _ in 0..args.threads {
        ready_rx.recv().map_err(|_| anyhow!("a worker exited during startup"))?.map_err(|e| anyhow!(e))?;
    }
    Ok((addr, workers))
}

/// Binds without SO_REUSEPORT (a taken port fails), with a backlog deep
/// enough for a thousand clients connecting at once: std's 128 would make
/// bursts of new connections wait on SYN retries and skew latencies.
fn bind(host: &str, port: u16) -> std::io::Result<StdListener> {
    use std::net::ToSocketAddrs;
    #[allow(clippy::disallowed_methods, reason = "startup, before any worker runs")]
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "host has no address"))?;
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// One worker thread: build its runtime, report readiness, accept forever.
fn worker(socket: StdListener, cfg: Config, state: Arc<State>, ready: mpsc::Sender<Result<(), String>>) {
    let runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().with_entries(1024).build();
    let mut runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot start the monoio runtime: {e}")));
            return;
        }
    };
    runtime.block_on(async move {
        // Must happen inside the runtime: the fd registers with its driver.
        let listener = match TcpListener::from_std(socket) {
            Ok(listener) => listener,
            Err(e) => {
                let _ = ready.send(Err(format!("cannot adopt the listener: {e}")));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let listener = std::rc::Rc::new(listener);
        for _ in 1..ACCEPTS_IN_FLIGHT {
            monoio::spawn(accept_loop(listener.clone(), cfg, Arc::clone(&state)));
        }
        accept_loop(listener, cfg, state).await;
    });
}

/// Accepts in flight per worker, each in its own loop, so that connections
/// opened while the worker serves hundreds of streams are taken several per
/// turn of its event loop. With one, a gateway's new provider connections
/// waited seconds behind the streams in flight, and the mock, not the
/// gateway, made the P99 of the 1,000-stream scenario.
const ACCEPTS_IN_FLIGHT: usize = 16;

async fn accept_loop(listener: std::rc::Rc<TcpListener>, cfg: Config, state: Arc<State>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                monoio::spawn(conn::serve(stream, cfg, Arc::clone(&state)));
            }
            Err(e) => {
                eprintln!("corelay-mock: accept failed: {e}");
                monoio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
