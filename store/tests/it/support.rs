//! Test fixtures: a temporary directory, and a real `redis-server` on a
//! free loopback port that is killed (by its pid) when the fixture drops,
//! whether the test passed or failed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How long a starting `redis-server` may take to say it is ready.
const REDIS_READY_TIMEOUT_MS: u64 = 10_000;

/// A fresh directory under the system temp directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("corelay-store-it-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `redis-server` of this test alone: loopback, no persistence, its own
/// directory. Restartable on the same port, to test reconnection.
pub struct RedisServer {
    program: PathBuf,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one, or returns `None` (saying so) when `redis-server` is not
    /// installed. Under CI (`CI` set) a missing server is a failure: CI
    /// installs it, so its absence there is a broken setup, not a skip.
    pub fn start() -> Option<RedisServer> {
        let Some(program) = on_path("redis-server") else {
            assert!(std::env::var_os("CI").is_none(), "redis-server is not on PATH under CI (.ci/run installs it)");
            println!("skipped: redis-server is not on PATH (apt-get install redis-server)");
            return None;
        };
        let mut server = RedisServer { program, port: free_port(), dir: TempDir::new("redis"), child: None };
        server.spawn();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL, by pid) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing persists).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs `redis-server` and waits for its "Ready to accept connections"
    /// log line rather than polling the port.
    fn spawn(&mut self) {
        let mut child = Command::new(&self.program)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        self.child = Some(child);
        let (ready_tx, ready_rx) = mpsc::channel();
        // The thread reads the log to its end, so the server never blocks on
        // a full pipe; it ends when the server exits.
        std::thread::spawn(move || {
            let mut log = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    let _ = ready_tx.send(Ok(()));
                }
                log.push(line);
            }
            let _ = ready_tx.send(Err(log.join("\n")));
        });
        match ready_rx.recv_timeout(Duration::from_millis(REDIS_READY_TIMEOUT_MS)) {
            Ok(Ok(())) => {}
            Ok(Err(log)) => panic!("redis-server on port {} exited before it was ready:\n{log}", self.port),
            Err(_) => panic!("redis-server on port {} was not ready within {REDIS_READY_TIMEOUT_MS} ms", self.port),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
