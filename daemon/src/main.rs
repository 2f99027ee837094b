//! `lemur`: the Lemur-HSM daemon and its operator commands, in one binary as in Lemur.
#![recursion_limit = "256"]

mod api;
mod app;
mod auth;
mod ca;
mod cli;
mod clock;
mod config;
mod error;
mod files;
mod logging;
mod store;

fn main() -> std::process::ExitCode {
    cli::main()
}
