//! The Anthropic Messages dialect: requests, responses and streams, to and
//! from the canonical form, and the same-dialect path's usage reading.
//!
//! The mapping follows `shared/providers/anthropic.md` §7–§11; the policies
//! where the dialects disagree are listed in [`request`].

pub mod request;
pub mod response;
pub mod stream;
