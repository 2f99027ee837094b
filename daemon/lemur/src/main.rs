//! `lemur`: the Lemur-HSM daemon and its operator commands, in one binary as in Lemur. It is the
//! only crate that chooses concrete backends: the PKCS#11 key store, the SQL store, the issuer
//! plugins and the HTTP server (see `open`).

mod cli;
mod logging;
mod open;

fn main() -> std::process::ExitCode {
    cli::main()
}
