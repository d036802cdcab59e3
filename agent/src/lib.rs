//! The Sovereign agent as a library: everything `sovereign-agent` is made of,
//! also used by the load generator to simulate agents with real TLS.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod collector;
pub mod config;
pub mod enroll;
pub mod exec;
pub mod link;
pub mod metrics;
pub mod outbox;
pub mod sampler;
pub mod spawn;
pub mod state;
pub mod terminal;
pub mod tls;
