//! The inventory's records as the domain sees them, independent of how a store keeps them. Ids
//! are the database's; times are Unix seconds (UTC).

use crate::ca::x509::{AltName, ParsedCertificate};

mod pending;
pub use pending::{NewPending, PendingChanges, PendingRecord};

/// A user as the API shows it (never with its password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Email address.
    pub email: String,
    /// May log in.
    pub active: bool,
}

/// What logging in needs to know of a user.
#[derive(Clone)]
pub struct LoginRecord {
    /// The user.
    pub user: UserRecord,
    /// Their Argon2id password hash, if they have a local password.
    pub password_hash: Option<String>,
    /// The generation new tokens carry.
    pub token_generation: i64,
}

/// What authenticating a request needs to know of its user.
#[derive(Debug, Clone)]
pub struct UserSession {
    /// The user.
    pub user: UserRecord,
    /// Their roles.
    pub roles: Vec<RoleRecord>,
    /// The generation a token must carry: advanced by every password reset.
    pub token_generation: i64,
    /// The presented token was logged out.
    pub token_revoked: bool,
}

/// A role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRecord {
    /// Id.
    pub id: i64,
    /// Unique name (`admin`, an owner's email, `<authority>_admin`...).
    pub name: String,
    /// What it is for.
    pub description: String,
}

/// A user to create, with the roles granted in the same unit of work.
pub struct NewUser<'a> {
    /// Login name.
    pub username: &'a str,
    /// Email address.
    pub email: &'a str,
    /// Argon2id hash of the password.
    pub password_hash: &'a str,
    /// May log in.
    pub active: bool,
    /// Ids of the roles to grant.
    pub role_ids: &'a [i64],
}

/// A certificate to store.
pub struct NewCertificate<'a> {
    /// The parsed certificate.
    pub parsed: &'a ParsedCertificate,
    /// Its name, and the one to take when another certificate has it (Lemur suffixes a taken
    /// name; the domain decides the suffix, the store only tries the two in order).
    pub names: [&'a str; 2],
    /// Owner (email or team).
    pub owner: &'a str,
    /// Description.
    pub description: &'a str,
    /// Send expiry notifications.
    pub notify: bool,
    /// Rotate automatically.
    pub rotation: bool,
    /// PEM chain (issuer first).
    pub chain: Option<&'a str>,
    /// PEM CSR it was issued from.
    pub csr: Option<&'a str>,
    /// The private key, sealed by the HSM.
    pub sealed_private_key: Option<&'a [u8]>,
    /// The issuing authority.
    pub authority_id: Option<i64>,
    /// The root authority of its chain.
    pub root_authority_id: Option<i64>,
    /// Who created it.
    pub user_id: Option<i64>,
    /// Rotation policy.
    pub rotation_policy_id: Option<i64>,
    /// Certificates it replaces: recorded, and their notifications turned off (the replacement
    /// carries them on).
    pub replaces: &'a [i64],
    /// DNS names to index, lower-case, sorted, without repeats (so concurrent writers lock
    /// domain rows in one order).
    pub domains: &'a [String],
    /// The client's key for this request, stored with the certificate: a retry with it finds
    /// this certificate instead of making another (scoped to `user_id`).
    pub idempotency: Option<&'a IdempotencyKey>,
}

/// A client's `Idempotency-Key` for a request that creates a certificate, and the fingerprint
/// of the request it came with. A retry after a lost answer, with the same key and request,
/// gets the certificate the first attempt made; the same key with another request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The key, as the client sent it.
    pub key: String,
    /// SHA-256 of the request body, hex.
    pub fingerprint: String,
}

impl IdempotencyKey {
    /// What an earlier request with this key, `found` (what it made and its fingerprint), means
    /// for this one: the id to answer with when the requests match, `None` when there was none,
    /// and a reused key when they differ.
    pub fn replayed(&self, found: Option<(i64, Option<String>)>) -> crate::Result<Option<i64>> {
        match found {
            None => Ok(None),
            Some((id, fingerprint))
                if fingerprint.as_deref() == Some(self.fingerprint.as_str()) =>
            {
                Ok(Some(id))
            }
            Some(_) => Err(crate::Error::idempotency_key_reused()),
        }
    }
}

/// What a certificate's view shows from inside the certificate, kept beside it so a list page
/// does not parse a PEM per row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateDetails {
    /// Subject O.
    pub organization: String,
    /// Subject OU.
    pub organizational_unit: String,
    /// Subject C.
    pub country: String,
    /// Subject ST.
    pub state: String,
    /// Subject L.
    pub location: String,
    /// Basic constraints path length.
    pub path_length: Option<u32>,
    /// Extended key usage: TLS server authentication.
    pub server_auth: bool,
    /// Extended key usage: TLS client authentication.
    pub client_auth: bool,
    /// Subject alternative names.
    pub alt_names: Vec<AltName>,
}

impl CertificateDetails {
    /// The details of a parsed certificate.
    pub fn of(parsed: &ParsedCertificate) -> Self {
        Self {
            organization: parsed.organization.clone(),
            organizational_unit: parsed.organizational_unit.clone(),
            country: parsed.country.clone(),
            state: parsed.state.clone(),
            location: parsed.location.clone(),
            path_length: parsed.path_len,
            server_auth: parsed.server_auth,
            client_auth: parsed.client_auth,
            alt_names: parsed.alt_names.clone(),
        }
    }

    /// The alternative names as stored: a JSON list of `[nameType, value]` pairs.
    pub fn encode_alt_names(names: &[AltName]) -> String {
        let pairs: Vec<[&str; 2]> = names.iter().map(|n| [n.kind, n.value.as_str()]).collect();
        serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_owned())
    }

    /// Stored alternative names back; `None` when the text is not what
    /// [`CertificateDetails::encode_alt_names`] writes.
    pub fn decode_alt_names(text: &str) -> Option<Vec<AltName>> {
        let pairs: Vec<(String, String)> = serde_json::from_str(text).ok()?;
        pairs
            .into_iter()
            .map(|(kind, value)| {
                Some(AltName {
                    kind: AltName::kind_named(&kind)?,
                    value,
                })
            })
            .collect()
    }
}

/// A stored certificate (never with its private key).
#[derive(Debug, Clone)]
pub struct CertificateRecord {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// Description.
    pub description: String,
    /// Notifications on.
    pub notify: bool,
    /// Rotation on.
    pub rotation: bool,
    /// PEM body.
    pub body: String,
    /// PEM chain.
    pub chain: Option<String>,
    /// PEM CSR.
    pub csr: Option<String>,
    /// A sealed private key is stored.
    pub has_private_key: bool,
    /// Issuer name.
    pub issuer: String,
    /// Serial, decimal.
    pub serial: String,
    /// Serial, hex.
    pub serial_hex: String,
    /// Common name.
    pub cn: String,
    /// Subject DN.
    pub distinguished_name: String,
    /// Key size.
    pub bits: i64,
    /// Key type.
    pub key_type: String,
    /// Signature algorithm.
    pub signing_algorithm: String,
    /// Validity start.
    pub not_before: i64,
    /// Validity end.
    pub not_after: i64,
    /// `valid`, `revoked`, `unknown` or none.
    pub status: Option<String>,
    /// Soft-deleted.
    pub deleted: bool,
    /// A CA certificate.
    pub is_ca: bool,
    /// Creator.
    pub user_id: Option<i64>,
    /// External id.
    pub external_id: Option<String>,
    /// Created.
    pub date_created: i64,
    /// Who created it.
    pub creator: Option<UserRecord>,
    /// Its rotation policy: id, name, days.
    pub rotation_policy: Option<(i64, String, i64)>,
    /// The issuing authority, briefly.
    pub authority: Option<AuthorityBrief>,
    /// What the view shows from inside the certificate; `None` for rows stored before these
    /// were kept (the view then parses the body).
    pub details: Option<CertificateDetails>,
}

#[cfg(test)]
impl CertificateRecord {
    /// A record with made-up values, owned by `owner`, for unit tests.
    pub(crate) fn for_tests(owner: &str) -> Self {
        CertificateRecord {
            id: 1,
            name: "c".into(),
            owner: owner.into(),
            description: String::new(),
            notify: true,
            rotation: false,
            body: String::new(),
            chain: None,
            csr: None,
            has_private_key: true,
            issuer: String::new(),
            serial: "1".into(),
            serial_hex: "01".into(),
            cn: "c".into(),
            distinguished_name: String::new(),
            bits: 256,
            key_type: "ECCPRIME256V1".into(),
            signing_algorithm: String::new(),
            not_before: 0,
            not_after: 1,
            status: None,
            deleted: false,
            is_ca: false,
            user_id: None,
            external_id: None,
            date_created: 0,
            creator: None,
            rotation_policy: None,
            authority: None,
            details: None,
        }
    }
}

/// What a certificate view shows of its issuing authority.
#[derive(Debug, Clone)]
pub struct AuthorityBrief {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// Description.
    pub description: String,
    /// Issues certificates.
    pub active: bool,
    /// Default validity in days.
    pub default_validity_days: i64,
    /// Longest validity in days.
    pub max_issuance_days: Option<i64>,
    /// CA/Browser Forum rules apply.
    pub cab_compliant: bool,
    /// Issuer plugin slug.
    pub plugin_name: String,
    /// The CA certificate's validity start.
    pub not_before: Option<i64>,
    /// The CA certificate's validity end.
    pub not_after: Option<i64>,
}

/// A domain.
#[derive(Debug, Clone)]
pub struct DomainRecord {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Lemur's sensitive-domain flag.
    pub sensitive: bool,
}

/// What a full certificate view adds to its record: its domains and replacement links, loaded
/// for a whole page at once.
#[derive(Debug, Clone, Default)]
pub struct CertificateLinks {
    /// The domains it names.
    pub domains: Vec<DomainRecord>,
    /// The certificates it replaces.
    pub replaces: Vec<CertificateRecord>,
    /// The certificates that replace it.
    pub replaced_by: Vec<CertificateRecord>,
}

/// A certificate on its authority's CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCertificate {
    /// Its serial number, upper-case hex.
    pub serial_hex: String,
    /// When it was revoked (Unix seconds).
    pub revoked_at: i64,
    /// RFC 5280's CRLReason name.
    pub reason: String,
}

/// A stored private key as a key-encryption key rotation reads it.
#[derive(Debug, Clone)]
pub struct SealedKey {
    /// The certificate, the pending certificate, or the stocked key.
    pub id: i64,
    /// What the envelope is bound to: the certificate's PEM body, the pending certificate's
    /// CSR, or the stocked key's [`crate::ca::key_stock::binding`].
    pub bound_to: String,
    /// The envelope.
    pub sealed: Vec<u8>,
}

/// Where a sealed private key is stored, and so what it is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyHolder {
    /// A certificate: bound to its body.
    Certificate,
    /// A pending certificate: bound to its CSR until it is delivered.
    Pending,
    /// The stock of keys generated ahead: bound to the row's token and public key.
    Stock,
}

impl KeyHolder {
    /// Every place a key may be held. Orders come before certificates: a delivery during a
    /// rotation moves a key from an order to a certificate, where the pass over certificates
    /// still finds it. The stock's order does not matter (its keys are sealed afresh when they
    /// are given); it goes first.
    pub const ALL: [KeyHolder; 3] = [KeyHolder::Stock, KeyHolder::Pending, KeyHolder::Certificate];

    /// What operators call its rows.
    pub fn noun(self) -> &'static str {
        match self {
            KeyHolder::Certificate => "certificate",
            KeyHolder::Pending => "pending certificate",
            KeyHolder::Stock => "stocked key",
        }
    }
}

/// A key generated ahead of demand, sealed, as the stock holds it.
#[derive(Debug, Clone)]
pub struct StockedKey {
    /// Its algorithm.
    pub algorithm: lemur_hsm::KeyAlgorithm,
    /// A random name, unique in the stock, that the envelope is bound to (with the public
    /// key), so a row copied or changed in the database does not unseal.
    pub token: String,
    /// The public key ([`lemur_hsm::PublicKey::key_bytes`]).
    pub public_key: Vec<u8>,
    /// The PKCS#8 private key sealed under the KEK.
    pub sealed: Vec<u8>,
}

/// A stored private key sealed again: written only where the row still holds `old`.
#[derive(Debug, Clone)]
pub struct Resealed {
    /// The certificate.
    pub id: i64,
    /// The envelope read.
    pub old: Vec<u8>,
    /// The envelope that replaces it.
    pub new: Vec<u8>,
}

/// A row of the `logs` table: who did what to which certificate, from where.
#[derive(Debug, Clone, Copy)]
pub struct LogEntry<'a> {
    /// The certificate concerned.
    pub certificate_id: Option<i64>,
    /// `create_cert`, `key_view`, `create_authority`...
    pub log_type: &'a str,
    /// Who.
    pub user_id: Option<i64>,
    /// From where.
    pub source_address: Option<&'a str>,
    /// What else.
    pub details: &'a str,
}

/// An authority to create, with its CA certificate.
pub struct NewAuthority<'a> {
    /// Unique name.
    pub name: &'a str,
    /// Owner.
    pub owner: &'a str,
    /// Description.
    pub description: &'a str,
    /// Issuer plugin slug.
    pub plugin_name: &'a str,
    /// The CA key in the HSM; `None` for a CA whose key is elsewhere.
    pub key_uri: Option<&'a str>,
    /// The parent authority of a sub-CA.
    pub parent_id: Option<i64>,
    /// Apply CA/Browser Forum rules.
    pub cab_compliant: bool,
    /// Longest validity it issues, in days.
    pub max_issuance_days: Option<i64>,
    /// Default validity, in days.
    pub default_validity_days: i64,
    /// CRL distribution point it writes into certificates.
    pub crl_url: Option<&'a str>,
    /// caIssuers URL it writes into certificates.
    pub issuer_url: Option<&'a str>,
    /// Creator.
    pub user_id: Option<i64>,
    /// Roles made for it alone (`<name>_admin`, `<name>_operator`), name and description: created
    /// here, and a conflict if one exists already (it would hand its holders this authority).
    pub own_roles: &'a [(String, String)],
    /// The owner's role, name and description: created if missing, shared with the owner's other
    /// authorities.
    pub owner_role: (&'a str, &'a str),
    /// The domains it may issue for; `None` for any.
    pub permitted_domains: Option<&'a [String]>,
}

/// A stored authority.
#[derive(Debug, Clone)]
pub struct AuthorityRecord {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// Description.
    pub description: String,
    /// Issues certificates.
    pub active: bool,
    /// Issuer plugin slug.
    pub plugin_name: String,
    /// The CA key in the HSM.
    pub key_uri: Option<String>,
    /// Parent authority.
    pub parent_id: Option<i64>,
    /// Apply CA/Browser Forum rules.
    pub cab_compliant: bool,
    /// Longest validity it issues, in days.
    pub max_issuance_days: Option<i64>,
    /// Default validity, in days.
    pub default_validity_days: i64,
    /// CRL URL.
    pub crl_url: Option<String>,
    /// caIssuers URL.
    pub issuer_url: Option<String>,
    /// The CA's own certificate.
    pub authority_certificate_id: Option<i64>,
    /// The domains it may issue for (and names under them); `None` for any.
    pub permitted_domains: Option<Vec<String>>,
    /// Creator.
    pub user_id: Option<i64>,
    /// Created.
    pub date_created: i64,
}

/// A revocation to record.
#[derive(Debug, Clone, Copy)]
pub struct Revocation<'a> {
    /// The certificate.
    pub certificate_id: i64,
    /// RFC 5280 CRLReason, by its name (`keyCompromise`...).
    pub reason: &'a str,
    /// When.
    pub at: i64,
}

/// How a request names an authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorityKey<'a> {
    /// By id.
    Id(i64),
    /// By its unique name.
    Name(&'a str),
}

/// An authority with what its view shows: its roles, CA certificate and creator.
#[derive(Debug, Clone)]
pub struct AuthorityDetail {
    /// The authority.
    pub record: AuthorityRecord,
    /// Roles attached to it.
    pub roles: Vec<RoleRecord>,
    /// Its CA certificate.
    pub certificate: Option<CertificateRecord>,
    /// Who created it.
    pub creator: Option<UserRecord>,
}

/// Lemur's single `filter=field;value` on the certificate list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CertificateFilter {
    /// No filter.
    #[default]
    All,
    /// Common name contains (case-insensitive).
    Cn(String),
    /// Name contains (case-insensitive).
    Name(String),
    /// Owner is.
    Owner(String),
    /// Issued by authority.
    Authority(i64),
    /// Serial number, upper-case hex without leading zeros (however the client wrote it).
    Serial(String),
    /// A DNS name among its subject alternative names contains (case-insensitive).
    San(String),
}

/// What a certificate list is sorted by; ties are broken by id, in the same direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    /// Id: the order of creation.
    #[default]
    Id,
    /// End of validity.
    NotAfter,
    /// Common name (case-insensitive).
    Cn,
    /// Name (case-insensitive).
    Name,
    /// Owner.
    Owner,
}

/// The sort key's value of a row, as a keyset cursor carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortValue {
    /// For [`SortKey::Id`]: the id alone orders.
    Id,
    /// A number.
    Int(i64),
    /// Text.
    Text(String),
}

/// Where a page of a list starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageStart {
    /// Lemur's page number.
    Page(Page),
    /// Just after the row with this sort value and id (keyset pagination: as fast at any
    /// depth).
    After {
        /// The last row's sort value.
        value: SortValue,
        /// The last row's id.
        id: i64,
        /// Items per page.
        count: i64,
    },
}

/// What `GET /certificates/stats` counts certificates by (Lemur's metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsMetric {
    /// Key size.
    Bits,
    /// Issuer.
    Issuer,
    /// Signature algorithm.
    SigningAlgorithm,
    /// Issuer, of the certificates expiring in the next 32 weeks.
    NotAfter,
}

/// Counts of certificates by time: how many of those visible have `field` in each of `buckets`
/// consecutive spans of `width` seconds from `start` (the dashboard's plots).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    /// What is counted by.
    pub field: TimeField,
    /// The first span's start (Unix seconds).
    pub start: i64,
    /// Each span's length, in seconds.
    pub width: i64,
    /// How many spans.
    pub buckets: i64,
    /// Leave revoked certificates out.
    pub unrevoked_only: bool,
}

/// A certificate's time a [`Histogram`] counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    /// The end of its validity.
    NotAfter,
    /// When it entered the inventory (issued or imported).
    Created,
}

/// One bar of a statistic: its label (a number for key sizes) and its count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsLabel {
    /// A number.
    Int(i64),
    /// Text.
    Text(String),
}

/// A certificate inside one of its expiration notification windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringCertificate {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Common name.
    pub cn: String,
    /// Owner, who is told.
    pub owner: String,
    /// End of validity.
    pub not_after: i64,
}

/// A certificate list request, checked by the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Lemur's one filter.
    pub filter: CertificateFilter,
    /// Sort key.
    pub sort: SortKey,
    /// Descending.
    pub descending: bool,
    /// Where the page starts.
    pub start: PageStart,
}

/// A pending certificate list request, checked by the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingListQuery {
    /// Lemur's one filter (cn, name, owner or authority).
    pub filter: CertificateFilter,
    /// Sort key (not `notAfter`: an order has none).
    pub sort: SortKey,
    /// Descending.
    pub descending: bool,
    /// The page.
    pub page: Page,
}

/// Which rows of a list a caller may see: everything, or only certificates they own, created
/// or hold the owner role of (the authorization policy decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Every row.
    All,
    /// Rows whose owner is one of `owners` or whose creator is `user_id`.
    Owned {
        /// The caller's email and role names.
        owners: Vec<String>,
        /// The caller.
        user_id: i64,
    },
}

/// A page request: 1-based page and items per page, checked by the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page.
    pub page: i64,
    /// Items per page.
    pub count: i64,
}

impl Page {
    /// Rows to skip.
    pub fn offset(self) -> i64 {
        (self.page - 1) * self.count
    }
}
