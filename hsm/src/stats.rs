//! What the token was asked to do and how its sessions are used, counted for the daemon's
//! `/metrics`: calls and failures per operation since the key store opened.

use std::sync::atomic::{AtomicU64, Ordering};

/// An operation the key store counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A CA or self-test key pair generated in the token.
    GenerateKeyPair,
    /// A leaf key pair generated in the token and exported.
    GenerateExportableKeyPair,
    /// A signature.
    Sign,
    /// Random bytes from the token's generator.
    Random,
    /// A secret sealed under the KEK.
    Seal,
    /// A secret unsealed.
    Unseal,
}

impl Operation {
    /// Every operation, in the order [`HsmStats::operations`] lists them.
    pub const ALL: [Operation; 6] = [
        Operation::GenerateKeyPair,
        Operation::GenerateExportableKeyPair,
        Operation::Sign,
        Operation::Random,
        Operation::Seal,
        Operation::Unseal,
    ];

    /// Its name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Operation::GenerateKeyPair => "generate_key_pair",
            Operation::GenerateExportableKeyPair => "generate_exportable_key_pair",
            Operation::Sign => "sign",
            Operation::Random => "random",
            Operation::Seal => "seal",
            Operation::Unseal => "unseal",
        }
    }
}

/// Calls and failures of each operation.
#[derive(Debug, Default)]
pub(crate) struct OperationCounters {
    calls: [AtomicU64; Operation::ALL.len()],
    errors: [AtomicU64; Operation::ALL.len()],
}

impl OperationCounters {
    /// Runs `call`, counted as a call of `operation` (and a failure when it fails).
    pub(crate) fn count<T, E>(
        &self,
        operation: Operation,
        call: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let result = call();
        self.calls[operation as usize].fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            self.errors[operation as usize].fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn snapshot(&self) -> Vec<OperationCount> {
        Operation::ALL
            .iter()
            .map(|&operation| OperationCount {
                operation: operation.name(),
                calls: self.calls[operation as usize].load(Ordering::Relaxed),
                errors: self.errors[operation as usize].load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// One operation's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationCount {
    /// [`Operation::name`].
    pub operation: &'static str,
    /// Calls.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
}

/// The key store's counters and its session pool's use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HsmStats {
    /// Each operation's counts (empty for a key store that keeps none).
    pub operations: Vec<OperationCount>,
    /// Sessions the pool may open.
    pub sessions_capacity: usize,
    /// Sessions open.
    pub sessions_open: usize,
    /// Sessions lent out now.
    pub sessions_in_use: usize,
}

impl HsmStats {
    pub(crate) fn new(
        counters: &OperationCounters,
        capacity: usize,
        open: usize,
        idle: usize,
    ) -> Self {
        Self {
            operations: counters.snapshot(),
            sessions_capacity: capacity,
            sessions_open: open,
            sessions_in_use: open.saturating_sub(idle),
        }
    }
}
