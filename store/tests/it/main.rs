//! The store's integration tests, one binary (so the suite links once):
//! every store through the public API, and Redis's reservations and
//! reconnection against a real `redis-server`.

mod redis;
mod stores;
mod support;
