//! Starting and stopping the gateway: listeners, shard threads, the control
//! plane, and the resolver.
//!
//! [`start`] binds every listener before any thread runs, so a taken port
//! fails the start and nothing half-serves. Each shard gets its own
//! SO_REUSEPORT socket on the same address; the kernel spreads connections
//! over them. [`Gateway::shutdown`] drains: shards stop accepting, let
//! in-flight requests and streams finish up to `shutdown_timeout_ms`, and
//! report their last counters before the control plane stops.

use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::config::{Config, Driver, Shards};
use crate::shard::{COUNTERS, Command, DnsTable, Report, Shard, Snapshot, Totals};

/// Messages to the control plane from outside the shards.
pub enum Control {
    /// Drain every shard, then stop.
    Shutdown,
    /// Freshly resolved addresses from the resolver thread.
    Dns(u64, DnsTable),
    /// A validated new configuration (SIGHUP), its addresses resolved.
    Reload(Box<Snapshot>),
}

/// The configuration the shards run, as far as reloads are concerned.
#[derive(Clone)]
struct Live {
    generation: u64,
    config: Config,
}

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    pub shards: usize,
    pub driver: &'static str,
    control: Sender<Control>,
    resolver: Sender<(u64, Config)>,
    live: Live,
    shard_threads: Vec<JoinHandle<()>>,
    control_thread: JoinHandle<Totals>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Tls(String),
    #[error("cannot start a shard thread: {0}")]
    Thread(std::io::Error),
    #[error("{0}")]
    Shard(String),
    #[error("{0}")]
    Store(String),
}

/// The shards `shards = "auto"` means: one per CPU this process may run on,
/// which honours `taskset` and cgroup CPU limits.
pub fn shard_count(shards: Shards) -> usize {
    match shards {
        Shards::Count(n) => n,
        Shards::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// Which I/O driver the shards will run on.
pub fn driver_name(driver: Driver) -> &'static str {
    match driver {
        Driver::IoUring => "io_uring",
        Driver::Epoll => "epoll",
        // detect_uring honours MONOIO_FORCE_LEGACY_DRIVER=1.
        Driver::Auto if monoio::utils::detect_uring() => "io_uring",
        Driver::Auto => "epoll (io_uring unavailable)",
    }
}

/// Builds the per-deployment TLS client configs. Startup only: reads files.
pub fn tls_configs(config: &Config) -> Result<Vec<Option<Arc<rustls::ClientConfig>>>, StartError> {
    let mut out = Vec::with_capacity(config.deployments.len());
    for d in &config.deployments {
        let tls = match d.kind.endpoint() {
            Some(e) if e.scheme == crate::config::Scheme::Https => Some(
                crate::upstream::tls_config(e.tls_ca_file.as_deref())
                    .map_err(|m| StartError::Tls(format!("providers.{}: {m}", d.name)))?,
            ),
            _ => None,
        };
        out.push(tls);
    }
    Ok(out)
}

/// Resolves every deployment's host. Blocking: called at startup and from
/// the resolver thread, never on a shard.
pub fn resolve_all(config: &Config) -> DnsTable {
    config
        .deployments
        .iter()
        .map(|d| match d.kind.endpoint() {
            None => Vec::new(),
            Some(e) => {
                #[allow(
                    clippy::disallowed_methods,
                    reason = "runs on the resolver thread or at startup, never on a shard"
                )]
                let resolved = std::net::ToSocketAddrs::to_socket_addrs(&(e.host.as_str(), e.port));
                resolved.map(Iterator::collect).unwrap_or_default()
            }
        })
        .collect()
}

/// Binds the listeners and starts the shards, the control plane and the
/// resolver.
pub fn start(config: Config) -> Result<Gateway, StartError> {
    let shards = shard_count(config.shards);
    let tls = tls_configs(&config)?;
    // The store first: a file that cannot be opened fails the start before
    // anything listens.
    let tenancy = crate::tenancy::Tenancy::open(&config).map_err(StartError::Store)?;
    let dns = resolve_all(&config);
    let listeners = bind_listeners(config.listen, shards)?;
    let addr = listeners[0].local_addr().map_err(|e| StartError::Bind { addr: config.listen, source: e })?;
    let snapshot = Snapshot::new(0, config, tls, dns);
    let driver = driver_name(snapshot.config.driver);
    let cpus = if snapshot.config.pin_shards { allowed_cpus() } else { Vec::new() };
    let capacity = crate::config::defaults::CONTROL_CHANNEL_CAPACITY;
    let (report_tx, report_rx) = crossbeam_channel::bounded(capacity);
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(shards);
    let mut links = Vec::with_capacity(shards);
    let mut shard_threads = Vec::with_capacity(shards);
    for (id, listener) in listeners.into_iter().enumerate() {
        let (cmd_tx, cmd_rx) = crossbeam_channel::bounded(capacity);
        let (bell_tx, bell_rx) = flume::bounded(1);
        links.push(ShardLink { commands: cmd_tx, bell: bell_tx });
        let inbox = Inbox { commands: cmd_rx, bell: bell_rx };
        let shard_snapshot = snapshot.clone();
        let runtime_keys = tenancy.runtime_keys();
        let reports = report_tx.clone();
        let ready = ready_tx.clone();
        let cpu = cpus.get(id % cpus.len().max(1)).copied();
        let thread = std::thread::Builder::new()
            .name(format!("corelay-shard-{id}"))
            .spawn(move || shard_main(id, cpu, listener, &shard_snapshot, runtime_keys, inbox, reports, ready))
            .map_err(StartError::Thread)?;
        shard_threads.push(thread);
    }
    drop(report_tx);
    drop(ready_tx);
    // "Listening" means every shard runs its runtime and accepts.
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(StartError::Shard(message)),
            Err(_) => return Err(StartError::Shard("a shard thread exited during startup".into())),
        }
    }
    let (control_tx, control_rx) = crossbeam_channel::bounded(capacity);
    let stats_interval = Duration::from_millis(snapshot.config.upstream.stats_interval_ms);
    let control_thread = std::thread::Builder::new()
        .name("corelay-control".into())
        .spawn(move || control_plane(links, report_rx, control_rx, stats_interval, tenancy))
        .map_err(StartError::Thread)?;
    let (resolver_tx, resolver_rx) = crossbeam_channel::unbounded();
    let _ = resolver_tx.send((0, snapshot.config.clone()));
    spawn_resolver(resolver_rx, control_tx.clone()).map_err(StartError::Thread)?;
    let live = Live { generation: 0, config: snapshot.config.clone() };
    Ok(Gateway {
        addr,
        shards,
        driver,
        control: control_tx,
        resolver: resolver_tx,
        live,
        shard_threads,
        control_thread,
    })
}

impl Gateway {
    /// Drains and stops every shard, then the control plane. Returns the
    /// final counters summed over all shards.
    pub fn shutdown(self) -> Totals {
        let _ = self.control.send(Control::Shutdown);
        self.wait()
    }

    /// A handle that can ask for shutdown or reload from another thread (a
    /// signal handler) while this one waits.
    #[allow(clippy::disallowed_types, reason = "the reload lock is taken by the signal thread only")]
    pub fn handle(&self) -> Handle {
        let live = Arc::new(std::sync::Mutex::new(self.live.clone()));
        Handle { control: self.control.clone(), resolver: self.resolver.clone(), live }
    }

    /// Waits until the gateway stopped (after a shutdown request).
    pub fn wait(self) -> Totals {
        for t in self.shard_threads {
            if t.join().is_err() {
                eprintln!("corelay: a shard thread panicked outside any request");
            }
        }
        drop(self.control);
        self.control_thread.join().unwrap_or_default()
    }
}

/// Asks a running gateway to drain and stop, or to take a new config.
#[derive(Clone)]
pub struct Handle {
    control: Sender<Control>,
    resolver: Sender<(u64, Config)>,
    // Used only by the thread that handles signals, never by a shard.
    #[allow(clippy::disallowed_types, reason = "signal thread only; shards never see it")]
    live: Arc<std::sync::Mutex<Live>>,
}

impl Handle {
    pub fn shutdown(&self) {
        let _ = self.control.send(Control::Shutdown);
    }

    /// Swaps in a new config. What a running process cannot change (the
    /// listen address, shard count, driver, pinning) is refused; everything
    /// else (providers, aliases, keys, limits) applies to new requests, while
    /// requests in flight finish on the config they started with. Blocking:
    /// builds TLS configs and resolves hosts, so it runs off the shards.
    pub fn reload(&self, config: Config) -> Result<u64, String> {
        let mut live = self.live.lock().map_err(|_| "reload state poisoned".to_owned())?;
        let old = &live.config;
        if config.listen != old.listen
            || config.shards != old.shards
            || config.driver != old.driver
            || config.pin_shards != old.pin_shards
        {
            return Err("listen, shards, driver and pin_shards need a restart; config not reloaded".into());
        }
        let tls = tls_configs(&config).map_err(|e| e.to_string())?;
        let dns = resolve_all(&config);
        let generation = live.generation + 1;
        let snapshot = Snapshot::new(generation, config.clone(), tls, dns);
        self.control.send(Control::Reload(Box::new(snapshot))).map_err(|_| "gateway is stopping".to_owned())?;
        let _ = self.resolver.send((generation, config.clone()));
        *live = Live { generation, config };
        Ok(generation)
    }
}

/// One SO_REUSEPORT listener per shard, all on the same address. With port
/// 0 the first socket picks the port and the others join it.
fn bind_listeners(addr: SocketAddr, shards: usize) -> Result<Vec<TcpListener>, StartError> {
    let bind_error = |source| StartError::Bind { addr, source };
    if addr.port() != 0 {
        // Without SO_REUSEPORT, so that a port already held by anyone (even
        // another reuseport group of ours) fails loudly instead of silently
        // sharing connections with a stale process.
        drop(TcpListener::bind(addr).map_err(bind_error)?);
    }
    let mut listeners = Vec::with_capacity(shards);
    let mut bound = addr;
    for _ in 0..shards {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)
            .map_err(bind_error)?;
        socket.set_reuse_address(true).map_err(bind_error)?;
        socket.set_reuse_port(true).map_err(bind_error)?;
        socket.set_nodelay(true).map_err(bind_error)?;
        socket.set_nonblocking(true).map_err(bind_error)?;
        socket.bind(&bound.into()).map_err(bind_error)?;
        socket.listen(4096).map_err(bind_error)?;
        let listener: TcpListener = socket.into();
        bound = listener.local_addr().map_err(bind_error)?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// The CPUs this process may run on, from its affinity mask.
fn allowed_cpus() -> Vec<usize> {
    #[allow(clippy::disallowed_methods, reason = "startup, before any shard runs")]
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap_or("").trim();
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    cpus.extend(a..=b);
                }
            }
            None => cpus.extend(part.parse::<usize>().ok()),
        }
    }
    cpus
}

struct ShardLink {
    commands: Sender<Command>,
    bell: flume::Sender<()>,
}

struct Inbox {
    commands: Receiver<Command>,
    bell: flume::Receiver<()>,
}

#[allow(clippy::too_many_arguments)]
fn shard_main(
    id: usize,
    cpu: Option<usize>,
    listener: TcpListener,
    snapshot: &Snapshot,
    runtime_keys: Arc<Vec<crate::config::Key>>,
    inbox: Inbox,
    reports: Sender<Report>,
    ready: Sender<Result<(), String>>,
) {
    if let Some(cpu) = cpu
        && let Err(e) = monoio::utils::bind_to_cpu_set([cpu])
    {
        eprintln!("corelay: shard {id}: cannot pin to CPU {cpu}: {e}");
    }
    let shard = Rc::new(Shard::new(id, snapshot, runtime_keys, Some(reports.clone())));
    let entries = 1024;
    let body = run_shard(shard, listener, inbox, reports, ready.clone());
    let built = match snapshot.config.driver {
        Driver::Auto => monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .with_entries(entries)
            .uring_builder(uring_builder())
            .build()
            .map(|mut rt| rt.block_on(body)),
        Driver::IoUring => monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .with_entries(entries)
            .uring_builder(uring_builder())
            .build()
            .map(|mut rt| rt.block_on(body)),
        Driver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .with_entries(entries)
            .build()
            .map(|mut rt| rt.block_on(body)),
    };
    if let Err(e) = built {
        let _ = ready.send(Err(format!("shard {id}: cannot build its runtime: {e}")));
    }
}

async fn run_shard(
    shard: Rc<Shard>,
    listener: TcpListener,
    inbox: Inbox,
    reports: Sender<Report>,
    ready: Sender<Result<(), String>>,
) {
    let listener = match monoio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!("shard {}: cannot register its listener: {e}", shard.id)));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let listener = Rc::new(listener);
    let (drains, mut drained): (Vec<_>, Vec<_>) =
        (0..ACCEPTS_IN_FLIGHT).map(|_| local_sync::oneshot::channel::<()>()).unzip();
    monoio::spawn(command_loop(shard.clone(), inbox, drains));
    monoio::spawn(tick_loop(shard.clone(), reports.clone()));
    let last = drained.pop().expect("at least one accept in flight");
    let others: Vec<_> = drained
        .into_iter()
        .map(|drain| {
            let (shard, listener) = (shard.clone(), listener.clone());
            monoio::spawn(async move { accept_loop(&shard, &listener, drain).await })
        })
        .collect();
    accept_loop(&shard, &listener, last).await;
    // Every loop got the drain at once; the listener closes with the last.
    for other in others {
        other.await;
    }
    drop(listener);
    let timeout = Duration::from_millis(shard.snapshot().config.shutdown_timeout_ms);
    let deadline = Instant::now() + timeout;
    // Shutdown only: a short poll is simpler than a notifier threaded
    // through every request, and costs nothing while serving.
    while shard.in_flight() > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = reports.send(Report::Counters { shard: shard.id, values: shard.counter_values() });
    report_usage(&shard, &reports, true);
    let _ = reports.send(Report::Stopped { shard: shard.id });
}

/// Accepts in flight on each shard's listener, each in its own loop: a burst
/// of new connections is taken up to this many per turn of the event loop,
/// not one per turn behind every request in flight. With one, 1,000
/// connections opened at once waited up to 3.9 s for their turn to be
/// accepted while the first ones were served.
const ACCEPTS_IN_FLIGHT: usize = 16;

async fn accept_loop(shard: &Rc<Shard>, listener: &monoio::net::TcpListener, drain: local_sync::oneshot::Receiver<()>) {
    let mut drain = std::pin::pin!(drain);
    loop {
        // Cancelling an in-flight accept can leak one fd in monoio 0.2.4
        // (unreleased fix, PR #318); it only happens here, at drain, once
        // per loop.
        monoio::select! {
            _ = &mut drain => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => admit(shard, stream),
                Err(e) => {
                    // Out of file descriptors or similar: back off instead
                    // of spinning on the error, and say so once a second
                    // per shard, not once per loop and per try.
                    let now = Instant::now();
                    if shard.accept_error_logged.get().is_none_or(|at| now - at >= Duration::from_secs(1)) {
                        shard.accept_error_logged.set(Some(now));
                        eprintln!("corelay: shard {}: accept failed: {e}", shard.id);
                    }
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

fn admit(shard: &Rc<Shard>, stream: monoio::net::TcpStream) {
    let max = shard.snapshot().config.http.connections_per_shard_max;
    if shard.connections.get() >= max {
        shard.count(crate::shard::Counter::ConnectionsRefused, 1);
        return;
    }
    shard.count(crate::shard::Counter::ConnectionsAccepted, 1);
    shard.connections.set(shard.connections.get() + 1);
    let shard = shard.clone();
    monoio::spawn(async move {
        crate::http::server::serve_connection(shard.clone(), stream).await;
        shard.connections.set(shard.connections.get() - 1);
    });
}

/// Applies the control plane's commands; a drain stops every accept loop.
async fn command_loop(shard: Rc<Shard>, inbox: Inbox, mut drains: Vec<local_sync::oneshot::Sender<()>>) {
    while inbox.bell.recv_async().await.is_ok() {
        while let Ok(command) = inbox.commands.try_recv() {
            if shard.apply(command) {
                for tx in drains.drain(..) {
                    let _ = tx.send(());
                }
            }
        }
    }
}

/// Sends the usage recorded since the last report. At the end (`last`) it
/// waits for room in the channel: a clean stop loses no usage.
fn report_usage(shard: &Shard, reports: &Sender<Report>, last: bool) {
    let rows = shard.take_usage(crate::limits::unix_seconds());
    if rows.is_empty() {
        return;
    }
    if last {
        let _ = reports.send(Report::Usage { rows });
    } else if let Err(TrySendError::Full(Report::Usage { rows })) = reports.try_send(Report::Usage { rows }) {
        // Not lost: it goes with the next report.
        shard.restore_usage(rows);
    }
}

async fn tick_loop(shard: Rc<Shard>, reports: Sender<Report>) {
    let idle = Duration::from_millis(crate::limits::LEASE_IDLE_MS);
    loop {
        monoio::time::sleep(shard.stats_interval()).await;
        let _ = reports.try_send(Report::Counters { shard: shard.id, values: shard.counter_values() });
        shard.pool().sweep();
        for (id, window, units) in shard.leases.reclaim_idle(Instant::now(), idle) {
            let _ = reports.try_send(Report::Release { shard: shard.id, id, window, units });
        }
        report_usage(&shard, &reports, false);
    }
}

/// The control plane: owns everything that is not per request.
fn control_plane(
    links: Vec<ShardLink>,
    reports: Receiver<Report>,
    control: Receiver<Control>,
    tick: Duration,
    mut tenancy: crate::tenancy::Tenancy,
) -> Totals {
    let mut per_shard = vec![[0u64; COUNTERS]; links.len()];
    let mut quotas = store::quota::Book::new(links.len());
    let mut stopped = vec![false; links.len()];
    let mut last_sent = Totals::default();
    let mut dropped = 0u64;
    let ticker = crossbeam_channel::tick(tick);
    // The keys created at run time, for every shard from the start.
    dropped += broadcast(&links, &Command::Keys(tenancy.runtime_keys()));
    loop {
        crossbeam_channel::select! {
            recv(reports) -> report => match report {
                Ok(Report::Counters { shard, values }) => per_shard[shard] = values,
                Ok(Report::CacheEntry { shard, generation, epoch, key, entry }) => {
                    // Only to shards whose channel has room: a copy missed
                    // costs a miss, a lease or a drain missed costs more.
                    for (i, link) in links.iter().enumerate() {
                        if i != shard && crate::shard::has_room(&link.commands) {
                            let entry = entry.clone();
                            dropped += send(link, Command::CacheEntry { generation, epoch, key, entry });
                        }
                    }
                }
                Ok(Report::Health { generation, deployment, verdict }) => {
                    dropped += broadcast(&links, &Command::Health { generation, deployment, verdict });
                }
                Ok(Report::Lease { shard, id, limit, window }) => {
                    let mut units = quotas.grant(id.clone(), limit, window, shard);
                    if units > 0 {
                        // Other instances may have spent part of it.
                        let reserved = tenancy.reserve(&id, limit, window, units);
                        quotas.release(&id, window, shard, units - reserved);
                        units = reserved;
                    }
                    if let Some(link) = links.get(shard) {
                        dropped += send(link, Command::Grant { id, window, units });
                    }
                }
                Ok(Report::Release { shard, id, window, units }) => {
                    quotas.release(&id, window, shard, units);
                    tenancy.release(&id, window, units);
                }
                Ok(Report::Overdraw { id, limit, window, units }) => {
                    let _ = tenancy.reserve(&id, u64::MAX, window, units);
                    quotas.overdraw(id, limit, window, units);
                }
                Ok(Report::Usage { rows }) => tenancy.add_usage(&rows),
                Ok(Report::Ask { shard, ticket, question }) => {
                    let (status, body, keys) = tenancy.answer(question);
                    // The new keys reach every shard before the answer
                    // reaches the one that asked.
                    if let Some(keys) = keys {
                        dropped += broadcast(&links, &Command::Keys(keys));
                    }
                    if let Some(link) = links.get(shard) {
                        dropped += send(link, Command::Answer { ticket, status, body });
                    }
                }
                Ok(Report::Stopped { shard }) => {
                    stopped[shard] = true;
                    if stopped.iter().all(|s| *s) {
                        break;
                    }
                }
                Err(_) => break,
            },
            recv(control) -> message => match message {
                Ok(Control::Shutdown) => dropped += broadcast(&links, &Command::Drain),
                Ok(Control::Dns(generation, table)) => {
                    dropped += broadcast(&links, &Command::Dns(generation, Arc::new(table)));
                }
                Ok(Control::Reload(snapshot)) => {
                    tenancy.reload(&snapshot.config);
                    dropped += broadcast(&links, &Command::Config(Arc::from(snapshot)));
                }
                Err(_) => {}
            },
            recv(ticker) -> _ => {
                quotas.expire(crate::limits::current_window().saturating_sub(1));
                tenancy.tick(Instant::now());
                tenancy.refresh_keys();
                // Sent on every tick, changed or not: a shard whose channel
                // was full once still learns of a revoked key or a spent
                // budget (an unchanged key table costs a shard nothing).
                dropped += broadcast(&links, &Command::Exhausted(tenancy.exhausted()));
                dropped += broadcast(&links, &Command::Keys(tenancy.runtime_keys()));
                let totals = sum(&per_shard);
                if totals.values != last_sent.values {
                    dropped += broadcast(&links, &Command::Totals(Arc::new(totals.clone())));
                    last_sent = totals;
                }
            }
        }
    }
    // Every shard reported its last usage before it stopped.
    tenancy.flush();
    if dropped > 0 {
        eprintln!("corelay: control plane: {dropped} messages to shards dropped (channel full)");
    }
    sum(&per_shard)
}

fn sum(per_shard: &[[u64; COUNTERS]]) -> Totals {
    let mut totals = Totals { values: [0; COUNTERS], shards: per_shard.len() };
    for values in per_shard {
        for (t, v) in totals.values.iter_mut().zip(values) {
            *t += v;
        }
    }
    totals
}

/// Sends a command to every shard and rings its bell. Never blocks: a full
/// channel drops the command and counts it.
fn broadcast(links: &[ShardLink], command: &Command) -> u64 {
    links.iter().map(|link| send(link, command.clone())).sum()
}

/// Sends a command to one shard and rings its bell; 1 when it was dropped.
fn send(link: &ShardLink, command: Command) -> u64 {
    match link.commands.try_send(command) {
        Ok(()) => {
            let _ = link.bell.try_send(());
            0
        }
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => 1,
    }
}

/// Re-resolves provider hosts every `dns_refresh_ms`, off the shards. A
/// reload sends the resolver the new config with its generation.
fn spawn_resolver(configs: Receiver<(u64, Config)>, control: Sender<Control>) -> std::io::Result<()> {
    std::thread::Builder::new().name("corelay-dns".into()).spawn(move || {
        let Ok(mut current) = configs.recv() else { return };
        let mut last = resolve_all(&current.1);
        loop {
            let every = Duration::from_millis(current.1.upstream.dns_refresh_ms);
            match configs.recv_timeout(every) {
                Ok(newer) => {
                    current = newer;
                    last = resolve_all(&current.1);
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    let mut table = resolve_all(&current.1);
                    // A failed lookup keeps the last good addresses: one DNS
                    // hiccup must not take a provider away.
                    for (fresh, old) in table.iter_mut().zip(&last) {
                        if fresh.is_empty() {
                            fresh.clone_from(old);
                        }
                    }
                    last.clone_from(&table);
                    if control.send(Control::Dns(current.0, table)).is_err() {
                        return;
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
        }
    })?;
    Ok(())
}

/// The io_uring setup every shard uses. `IORING_SETUP_COOP_TASKRUN` (Linux
/// 5.19) lets the kernel post a completion at the shard's next system call
/// instead of interrupting it with an inter-processor interrupt: the shard
/// only looks at completions after `io_uring_enter` anyway. Measured with
/// `just quick` on 2026-11-22 (2-vCPU VM): 37.6 and 44.4 µs of CPU per chat
/// request without it, 32.2 and 28.6 µs with it. A kernel that refuses the
/// flag gets a plain ring, so io_uring is never lost over it.
fn uring_builder() -> io_uring::Builder {
    static COOP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let coop = *COOP.get_or_init(|| {
        io_uring::IoUring::<io_uring::squeue::Entry, io_uring::cqueue::Entry>::builder()
            .setup_coop_taskrun()
            .build(2)
            .is_ok()
    });
    let mut builder = io_uring::IoUring::builder();
    if coop {
        builder.setup_coop_taskrun();
    }
    builder
}
