//! End-to-end tests: real `sovereign` and `sovereign-agent` processes on
//! 127.0.0.1, each scenario on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

/// Runs `$scenario(backend)` as two tests, one per database.
macro_rules! on_both {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(sovereign_e2e::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario(sovereign_e2e::Backend::Postgres).await
            }
        }
    };
}

mod bad_input;
mod enroll;
mod exec;
mod lifecycle;
mod stream;
mod terminal;
mod trust;
