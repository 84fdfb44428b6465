//! translate's integration tests: everything through the public API.

#![allow(clippy::disallowed_methods, reason = "tests read their golden files and may block")]

mod alloc;
mod golden;
mod json;
