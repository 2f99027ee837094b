//! Pending certificates: orders an authority answers later, as the domain sees them.

use super::{IdempotencyKey, UserRecord};

/// A certificate asked of an authority that answers later (an offline CA, or later an
/// asynchronous one such as ACME): Lemur's pending certificate. It becomes a certificate when
/// the signed certificate comes back, and holds until then what the certificate will be stored
/// with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    /// Id.
    pub id: i64,
    /// Name, as Lemur makes it from the CN, the authority and the day asked.
    pub name: String,
    /// The order's id at the CA, when it gave one.
    pub external_id: Option<String>,
    /// Owner (email or team).
    pub owner: String,
    /// Description.
    pub description: String,
    /// Send expiry notifications once issued.
    pub notify: bool,
    /// Rotate automatically once issued.
    pub rotation: bool,
    /// Subject CN asked for.
    pub common_name: String,
    /// The request sent to the CA, PEM.
    pub csr: String,
    /// The key's type, as Lemur names it (`ECCPRIME256V1`, `RSA2048`...).
    pub key_type: String,
    /// The DNS names asked for, lower-case.
    pub dns_names: Vec<String>,
    /// A sealed private key is held (the key was generated here, not the requester's CSR).
    pub has_private_key: bool,
    /// The authority asked.
    pub authority_id: i64,
    /// Its name.
    pub authority_name: String,
    /// Who asked.
    pub user_id: Option<i64>,
    /// The asker, when a user.
    pub creator: Option<UserRecord>,
    /// Certificates the issued one will replace.
    pub replaces: Vec<i64>,
    /// Rotation policy the issued one gets.
    pub rotation_policy_id: Option<i64>,
    /// How many times an answer was tried and failed.
    pub number_attempts: i64,
    /// The last failure, if any.
    pub status: Option<String>,
    /// Settled: delivered (or resolved by Lemur before an import).
    pub resolved: bool,
    /// The certificate it became, once delivered.
    pub resolved_certificate_id: Option<i64>,
    /// Asked.
    pub date_created: i64,
    /// Last changed.
    pub last_updated: i64,
}

/// A pending certificate to store.
pub struct NewPending<'a> {
    /// Name.
    pub name: &'a str,
    /// The order's id at the CA.
    pub external_id: Option<&'a str>,
    /// Owner.
    pub owner: &'a str,
    /// Description.
    pub description: &'a str,
    /// Notifications on once issued.
    pub notify: bool,
    /// Rotation on once issued.
    pub rotation: bool,
    /// Subject CN.
    pub common_name: &'a str,
    /// The request sent to the CA, PEM.
    pub csr: &'a str,
    /// Key type, Lemur's name.
    pub key_type: &'a str,
    /// DNS names asked for.
    pub dns_names: &'a [String],
    /// The private key generated here, sealed by the HSM.
    pub sealed_private_key: Option<&'a [u8]>,
    /// The authority asked.
    pub authority_id: i64,
    /// Who asked.
    pub user_id: Option<i64>,
    /// Certificates the issued one will replace.
    pub replaces: &'a [i64],
    /// Rotation policy.
    pub rotation_policy_id: Option<i64>,
    /// The client's key for this request (a retry finds this pending certificate).
    pub idempotency: Option<&'a IdempotencyKey>,
}

/// What `PUT /pending_certificates/{id}` may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChanges {
    /// Owner.
    pub owner: String,
    /// Description.
    pub description: String,
    /// Notifications on once issued.
    pub notify: bool,
    /// Rotation on once issued.
    pub rotation: bool,
}
