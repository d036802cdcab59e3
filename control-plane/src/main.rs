//! `sovereign`: the control plane server (`serve`) and its admin CLI.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::process::ExitCode;

use clap::Parser;
use sovereign::cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::main(args)
}
