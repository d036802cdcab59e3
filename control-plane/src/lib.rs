//! The Sovereign control plane as a library: the modules behind the
//! `sovereign` binary, one per domain (see ARCHITECTURE.md).

#![cfg_attr(test, allow(clippy::unwrap_used))]
// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "512"]

/// Defines a UUID (v7) id newtype: `new()` (sorts by creation time),
/// `parse()` (canonical form, `None` for anything else), `as_str()`,
/// `Display` and `Default`. Each module still owns its own id type.
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            pub fn parse(s: &str) -> Option<Self> {
                uuid::Uuid::parse_str(s).ok().map(|u| Self(u.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

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
