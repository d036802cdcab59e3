//! The Sovereign control plane as a library: the modules behind the
//! `sovereign` binary, one per domain (see ARCHITECTURE.md).

#![cfg_attr(test, allow(clippy::unwrap_used))]
// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "512"]

pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod enroll;
pub mod exec;
pub mod fleet;
pub mod fsutil;
pub mod grpc;
pub mod identity;
pub mod labels;
pub mod metrics;
pub mod pki;
pub mod projects;
pub mod ratelimit;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod terminal;
