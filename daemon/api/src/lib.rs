//! The types of Lemur-HSM's REST API under `/api/1`: request bodies and query parameters as
//! Lemur's clients send them (camelCase names, Lemur's defaults), and the error body every
//! failure answers with, and the response bodies, each with its OpenAPI schema. Shared by the
//! server, the CLI and clients; no logic lives here beyond serde's defaults.

mod requests;
mod responses;
mod secret;

pub use requests::*;
pub use responses::*;
pub use secret::{SecretString, to_json};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Raw bytes, not JSON: an upgrade bundle, or a backup archive.
// Described as OpenAPI's binary string, which clients and generators read as a file (bytes would
// read as an array of integers); it appears in schemas only.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(std::marker::PhantomData<Vec<u8>>);

/// The body of every error response: Lemur's `message` (and `reasons`, naming the offending
/// field, for validation errors), plus a stable machine-readable `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub message: String,
    /// `validation`, `not_found`, `conflict`, `idempotency_key_reused`, `unauthorized`,
    /// `forbidden`, `rate_limited`, `timeout`, `overloaded`, `entropy_unhealthy`,
    /// `hsm_unavailable`, `database_unavailable`, `insufficient_storage` or `internal`.
    pub code: String,
    /// For validation errors: the field (as the request names it) and the problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<BTreeMap<String, String>>,
}
