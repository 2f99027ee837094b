//! The daemon's error type. Each variant keeps what the user may see apart from detail that is only
//! logged: a database or HSM failure reaches an API client as a short message, never as SQL or a
//! stack of causes.

use std::path::PathBuf;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the daemon or an operator command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file is missing, unreadable or invalid.
    #[error("configuration {path}: {reason}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong, naming the key.
        reason: String,
    },
    /// A file holding a secret, the state directory, a directory above them or the PKCS#11
    /// module can be read or changed by someone it should not.
    #[error("{path} {problem}: run `{fix}`")]
    Permissions {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong (mode bits, owner).
        problem: String,
        /// The command that fixes it.
        fix: String,
    },
    /// Reading or writing a local file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A locked file (`lemur lock`) did not open: changed, moved from another name, or sealed
    /// under a key-encryption key the token no longer holds.
    #[error("{path} does not unseal: {reason}")]
    Locked {
        /// The locked file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The database failed or cannot be reached. `context` says what was being done; the
    /// driver's error is kept for the log, never shown to API clients.
    #[error("database error while {context}")]
    Database {
        /// What was being done.
        context: &'static str,
        /// The driver's error (logged, not shown to API clients).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The HSM key store failed.
    #[error(transparent)]
    Hsm(#[from] lemur_hsm::Error),
    /// Key generation refused by the entropy health gate.
    #[error(transparent)]
    Entropy(#[from] lemur_entropy::Error),
    /// A request field is invalid.
    #[error("{field}: {reason}")]
    Validation {
        /// The field, as the API names it (`commonName`, `validityEnd`...).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// `certificate`, `authority`...
        what: &'static str,
        /// The id or name asked for.
        id: String,
    },
    /// The request conflicts with existing data (a duplicate).
    #[error("{0}")]
    Conflict(String),
    /// An `Idempotency-Key` was used before for another request: it names one request only.
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// Missing or invalid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request took longer than the server allows.
    #[error("the request took too long; retry it")]
    RequestTimeout,
    /// The daemon is serving as many requests as it may: retry shortly.
    #[error("the daemon is busy; retry in a second")]
    Overloaded,
    /// The file system the request's data goes to has no room for it: an operator frees space.
    #[error("{0}")]
    InsufficientStorage(String),
    /// Too many requests of this kind: retry after the given time.
    #[error("{reason}")]
    TooManyRequests {
        /// Seconds to wait.
        retry_after_secs: u64,
        /// What was limited.
        reason: String,
    },
    /// A service of the appliance the daemon relies on (root's backup service) is not there or
    /// failed: an operator looks at it; retrying may do.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// Building or signing a certificate failed.
    #[error("certificate authority error: {0}")]
    Ca(String),
    /// Work run off the async runtime (an HSM call, a token set-up) panicked or was cancelled
    /// before it finished: a bug, or the runtime shutting down. Nothing says what it did.
    #[error("{task} stopped before it finished ({source}); see the log, and retry")]
    Task {
        /// What the work was.
        task: &'static str,
        /// Why it stopped.
        source: tokio::task::JoinError,
    },
}

impl Error {
    /// A validation error on `field`.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Error::Validation {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    /// The refusal of a request whose `Idempotency-Key` was used with another request.
    pub fn idempotency_key_reused() -> Self {
        Error::IdempotencyKeyReused(
            "this Idempotency-Key was used with another request; send a new key with a new request"
                .to_owned(),
        )
    }

    /// The stable, machine-readable code API clients match on (`validation`, `not_found` ...):
    /// messages may be reworded, codes may not.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation { .. } => "validation",
            Error::NotFound { .. } => "not_found",
            Error::Conflict(_) => "conflict",
            Error::IdempotencyKeyReused(_) => "idempotency_key_reused",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::TooManyRequests { .. } => "rate_limited",
            Error::RequestTimeout => "timeout",
            Error::Overloaded => "overloaded",
            Error::InsufficientStorage(_) => "insufficient_storage",
            Error::Entropy(_) | Error::Hsm(lemur_hsm::Error::Entropy(_)) => "entropy_unhealthy",
            Error::Hsm(hsm) if hsm.is_unavailable() => "hsm_unavailable",
            Error::Database { .. } => "database_unavailable",
            Error::ServiceUnavailable(_) => "service_unavailable",
            Error::Hsm(_)
            | Error::Config { .. }
            | Error::Permissions { .. }
            | Error::Io { .. }
            | Error::Locked { .. }
            | Error::Ca(_)
            | Error::Task { .. } => "internal",
        }
    }

    /// A failure that goes away by itself (HSM, database or entropy health): clients should retry
    /// later, and the API answers 503, never a 4xx.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.code(),
            "entropy_unhealthy"
                | "hsm_unavailable"
                | "database_unavailable"
                | "service_unavailable"
                | "overloaded"
        )
    }

    /// Wraps the failure of blocking work (`spawn_blocking`) with what the work was.
    pub fn task(task: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Self {
        move |source| Error::Task { task, source }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
