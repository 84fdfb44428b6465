//! The gateway's integration tests: one binary, so the suite links once.
//! Each test starts the real `corelay` binary on loopback in front of
//! `corelay-mock` or a scripted upstream, and talks HTTP to it.

// Tests are not shards: they block, sleep and lock freely.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod admin;
mod cache;
mod chat;
mod errors;
mod google_aws;
mod http1;
mod lifecycle;
mod limits;
mod media;
mod providers;
mod repo;
mod routing;
mod support;
mod tenancy;
mod translation;
