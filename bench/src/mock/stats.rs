//! Process-wide counters served at `GET /mock/stats`.
//!
//! Tests use them to check that the gateway reuses upstream connections
//! (many requests, few connections). Plain relaxed atomics: they are counters,
//! nothing is ordered by them, and every worker thread bumps them.

use std::sync::atomic::{AtomicU64, Ordering};

static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// Counts one accepted TCP connection.
pub fn connection_accepted() {
    CONNECTIONS.fetch_add(1, Ordering::Relaxed);
}

/// Counts one fully received request, including the stats request itself.
pub fn request_received() {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
}

/// Renders the counters as the `/mock/stats` JSON body.
pub fn render() -> Vec<u8> {
    format!(
        r#"{{"connections":{},"requests":{}}}"#,
        CONNECTIONS.load(Ordering::Relaxed),
        REQUESTS.load(Ordering::Relaxed)
    )
    .into_bytes()
}
