//! `lemur`: the Lemur-HSM daemon and its operator commands, in one binary as in Lemur. It is the
//! only crate that chooses concrete backends: the PKCS#11 key store, the SQL store, the issuer
//! plugins and the HTTP server (see `open`).

mod cli;
mod logging;
mod open;
mod systemd;

/// Every heap block is wiped when freed, so secrets that pass through libraries we do not
/// control (hyper's and rustls's buffers, rcgen, ring, serde) leave no copy behind; our own
/// secret types wipe themselves earlier, when they are dropped.
#[global_allocator]
static ALLOCATOR: zeroizing_alloc::ZeroAlloc<std::alloc::System> =
    zeroizing_alloc::ZeroAlloc(std::alloc::System);

fn main() -> std::process::ExitCode {
    cli::main()
}
