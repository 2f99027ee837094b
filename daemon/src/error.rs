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
    /// A file holding a secret, or the state directory, is readable by others.
    #[error("{path} is readable by group or others (mode {mode:o}): run `chmod {fix} {path}`")]
    Permissions {
        /// The file or directory.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
        /// The mode to set.
        fix: &'static str,
    },
    /// Reading or writing a local file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database failed. `context` says what was being done; the driver error is logged.
    #[error("database error while {context}")]
    Database {
        /// What was being done.
        context: &'static str,
        /// The driver's error (logged, not shown to API clients).
        source: sqlx::Error,
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
    /// Missing or invalid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Building or signing a certificate failed.
    #[error("certificate authority error: {0}")]
    Ca(String),
}

impl Error {
    /// A validation error on `field`.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Error::Validation {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    /// Wraps a database error with what was being done. A unique-constraint violation (another
    /// request created the same thing first) is a conflict, not a database failure.
    pub fn database(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| match &source {
            sqlx::Error::Database(e) if e.is_unique_violation() => {
                Error::Conflict(format!("{context}: it exists already"))
            }
            _ => Error::Database { context, source },
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
