//! `sovereign`: the control plane server (`serve`) and its admin CLI.

mod api;
mod cli;
mod config;
mod enroll;
mod fleet;
mod fsutil;
mod grpc;
mod labels;
mod metrics;
mod pki;
mod projects;
mod server;
mod store;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::main(args)
}
