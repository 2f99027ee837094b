//! Response bodies, with Lemur's field names and types (see `shared/reference/lemur-api.md`):
//! every field Lemur sends, a few of ours added (`keyUri`, `crlUrl`, `issuerUrl`). Times are
//! ISO 8601 strings, as Lemur's.

mod appliance;

pub use appliance::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items of the page.
    pub items: Vec<T>,
    /// How many items the whole list has.
    pub total: i64,
    /// A cursor for the page after this one (`cursor=`), when there may be one; lists that
    /// page by number only leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /certificates/stats`: Lemur's `{"items": {"labels", "values"}, "total"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// The labels and their counts, in the same order.
    pub items: StatsItems,
    /// How many labels.
    pub total: i64,
}

/// The bars of a statistic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatsItems {
    /// What is counted: key sizes (numbers), issuers or algorithms (text).
    pub labels: Vec<StatsLabel>,
    /// How many certificates have each label.
    pub values: Vec<i64>,
}

/// A statistic's label: a number (key sizes) or text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum StatsLabel {
    /// A number.
    Int(i64),
    /// Text.
    Text(String),
}

/// `{"token": ...}`: a login token, sent back as `Authorization: Bearer <token>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    /// The token.
    pub token: String,
}

/// A user, as views embed one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Email address.
    pub email: String,
    /// May log in.
    pub active: bool,
}

/// `{"id", "name"}` of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleRef {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
}

/// `GET /auth/me`: the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// Id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Email address.
    pub email: String,
    /// May log in.
    pub active: bool,
    /// Lemur's avatar URL (none here).
    pub profile_picture: Option<String>,
    /// The caller's roles.
    pub roles: Vec<RoleRef>,
}

/// One option a plugin takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginOptionView {
    /// Name, as requests send it.
    pub name: String,
    /// `str`, `int`, `bool`, `select` or `textarea`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Must be given.
    pub required: bool,
    /// A regular expression the value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<String>,
    /// What it is for.
    pub help_message: String,
    /// The value when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// Holds a secret: sealed at rest, never shown back.
    pub sensitive: bool,
    /// The choices of a `select`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available: Vec<String>,
}

/// A plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginView {
    /// Unique slug.
    pub slug: String,
    /// Short name.
    pub title: String,
    /// What it does.
    pub description: String,
    /// The options it takes.
    pub plugin_options: Vec<PluginOptionView>,
}

/// A domain a certificate names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DomainView {
    /// Id.
    pub id: i64,
    /// The DNS name.
    pub name: String,
    /// Lemur's sensitive-domain flag.
    pub sensitive: bool,
}

/// A rotation policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RotationPolicyView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Days before expiry that rotation starts.
    pub days: i64,
}

/// `{"notBefore", "notAfter"}` of an authority's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidityView {
    /// Validity start.
    pub not_before: Option<String>,
    /// Validity end.
    pub not_after: Option<String>,
}

/// The short authority object embedded in certificates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
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
    /// Default validity, in days.
    pub default_validity_days: i64,
    /// Longest validity, in days.
    pub max_issuance_days: Option<i64>,
    /// CA/Browser Forum rules apply.
    pub is_cab_compliant: bool,
    /// The CN may be left out.
    pub is_cn_optional: bool,
    /// Its issuer plugin.
    pub plugin: PluginView,
    /// Its certificate's validity.
    pub authority_certificate: ValidityView,
}

/// An authority's own certificate, as its view embeds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorityCertificateView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// Description.
    pub description: String,
    /// Valid now.
    pub active: bool,
    /// Key size.
    pub bits: i64,
    /// PEM.
    pub body: String,
    /// PEM chain above it.
    pub chain: Option<String>,
    /// Common name.
    pub cn: String,
    /// Validity start.
    pub not_before: String,
    /// Validity end.
    pub not_after: String,
    /// `valid`, `revoked`...
    pub status: Option<String>,
    /// Serial, decimal.
    pub serial: String,
    /// Who made it.
    pub user: Option<UserView>,
}

/// `{"id": N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IdView {
    /// The id.
    pub id: i64,
}

/// An authority, as `GET /authorities/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorityView {
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
    /// Lemur's plugin options (none for the HSM issuer).
    pub options: Option<serde_json::Value>,
    /// Default validity, in days.
    pub default_validity_days: i64,
    /// Longest validity, in days.
    pub max_issuance_days: Option<i64>,
    /// CA/Browser Forum rules apply.
    pub is_cab_compliant: bool,
    /// The CN may be left out.
    pub is_cn_optional: bool,
    /// Its issuer plugin.
    pub plugin: PluginView,
    /// Who made it.
    pub user: Option<UserView>,
    /// Roles whose holders may issue from it.
    pub roles: Vec<RoleRef>,
    /// Its CA certificate.
    pub authority_certificate: Option<AuthorityCertificateView>,
    /// Its parent, for a sub-CA.
    pub parent: Option<IdView>,
    /// Its key's PKCS#11 URI.
    pub key_uri: Option<String>,
    /// CRL distribution point it writes.
    pub crl_url: Option<String>,
    /// caIssuers URL it writes.
    pub issuer_url: Option<String>,
    /// The domains it may issue for; any when null.
    pub permitted_domains: Option<Vec<String>>,
    /// Created.
    pub date_created: String,
}

/// `{"nameType", "value"}` of a subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameView {
    /// DNSName, IPAddress, rfc822Name, uniformResourceIdentifier.
    pub name_type: String,
    /// The name.
    pub value: String,
}

/// `{"names": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamesView {
    /// The names.
    pub names: Vec<NameView>,
}

/// basicConstraints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BasicConstraintsView {
    /// A CA certificate.
    pub ca: bool,
    /// Its path length constraint.
    pub path_length: Option<u32>,
}

/// authorityKeyIdentifier, as Lemur describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorityKeyIdentifierView {
    /// Names the issuer's certificate.
    pub use_authority_cert: bool,
    /// Carries the issuer's key identifier.
    pub use_key_identifier: bool,
}

/// extendedKeyUsage, as Lemur describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtendedKeyUsageView {
    /// serverAuth.
    pub use_server_authentication: bool,
    /// clientAuth.
    pub use_client_authentication: bool,
}

/// A certificate's extensions, as Lemur describes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionsView {
    /// Subject alternative names.
    pub sub_alt_names: NamesView,
    /// basicConstraints.
    pub basic_constraints: BasicConstraintsView,
    /// authorityKeyIdentifier.
    pub authority_key_identifier: AuthorityKeyIdentifierView,
    /// extendedKeyUsage.
    pub extended_key_usage: ExtendedKeyUsageView,
}

/// Lemur's empty `issuer` object of a certificate in `replaces`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Empty {}

/// The short form of a certificate in `replaces` and `replacedBy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateBrief {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// Description.
    pub description: String,
    /// Valid now.
    pub active: bool,
    /// Key size.
    pub bits: i64,
    /// PEM.
    pub body: String,
    /// PEM chain.
    pub chain: Option<String>,
    /// PEM CSR.
    pub csr: Option<String>,
    /// Common name.
    pub cn: String,
    /// Common name (Lemur sends both).
    pub common_name: String,
    /// Always `{}`, as Lemur.
    pub issuer: Empty,
    /// Notifications on.
    pub notify: bool,
    /// Rotation on.
    pub rotation: bool,
    /// Validity start.
    pub not_before: String,
    /// Validity end.
    pub not_after: String,
    /// Validity start (Lemur sends both names).
    pub validity_start: String,
    /// Validity end (Lemur sends both names).
    pub validity_end: String,
    /// `valid`, `revoked`...
    pub status: Option<String>,
    /// Its rotation policy.
    pub rotation_policy: Option<RotationPolicyView>,
}

/// A certificate, as `GET /certificates/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateView {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// Description.
    pub description: String,
    /// Valid now: not expired, revoked or deleted.
    pub active: bool,
    /// Notifications on.
    pub notify: bool,
    /// Rotation on.
    pub rotation: bool,
    /// PEM.
    pub body: String,
    /// PEM chain, issuer first.
    pub chain: String,
    /// PEM CSR it was issued from.
    pub csr: Option<String>,
    /// Common name.
    pub cn: String,
    /// Common name (Lemur sends both).
    pub common_name: String,
    /// Key size.
    pub bits: i64,
    /// Key type (`ECCPRIME256V1`, `RSA2048`...).
    pub key_type: String,
    /// Issuer, as Lemur names it.
    pub issuer: String,
    /// Serial, decimal.
    pub serial: String,
    /// Serial, hex.
    pub serial_hex: String,
    /// Signature algorithm.
    pub signing_algorithm: String,
    /// Validity start.
    pub not_before: String,
    /// Validity end.
    pub not_after: String,
    /// Validity start (Lemur sends both names).
    pub validity_start: String,
    /// Validity end (Lemur sends both names).
    pub validity_end: String,
    /// Created.
    pub date_created: String,
    /// Soft-deleted.
    pub deleted: bool,
    /// Subject DN.
    pub distinguished_name: String,
    /// Id at an external CA.
    pub external_id: Option<String>,
    /// A sealed private key is stored.
    pub has_private_key: bool,
    /// Lemur's SAN flag (always null, as Lemur's API).
    pub san: Option<bool>,
    /// `valid`, `revoked`...
    pub status: Option<String>,
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
    /// The DNS names it covers.
    pub domains: Vec<DomainView>,
    /// Where it is deployed.
    pub destinations: Vec<serde_json::Value>,
    /// Who is told about it.
    pub notifications: Vec<serde_json::Value>,
    /// Where it was found serving.
    pub endpoints: Vec<serde_json::Value>,
    /// Roles on it.
    pub roles: Vec<serde_json::Value>,
    /// The certificates it replaces.
    pub replaces: Vec<CertificateBrief>,
    /// The certificates that replace it.
    pub replaced_by: Vec<CertificateBrief>,
    /// Its rotation policy.
    pub rotation_policy: Option<RotationPolicyView>,
    /// Its DNS provider.
    pub dns_provider: Option<serde_json::Value>,
    /// Its DNS provider's id.
    pub dns_provider_id: Option<i64>,
    /// The issuing authority.
    pub authority: Option<AuthorityBrief>,
    /// Who made it.
    pub user: Option<UserView>,
    /// Its extensions.
    pub extensions: ExtensionsView,
}

/// A certificate in a list asked for with `short=true`. Closed to other fields, so a full view
/// is never mistaken for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateShort {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Common name.
    pub cn: String,
    /// Owner.
    pub owner: String,
    /// Issuer.
    pub issuer: String,
    /// Notifications on.
    pub notify: bool,
    /// Rotation on.
    pub rotation: bool,
    /// The issuing authority.
    pub authority: Option<AuthorityBrief>,
}

/// An item of `GET /certificates`: the full view, or the short one with `short=true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum CertificateItem {
    /// The full view.
    Full(Box<CertificateView>),
    /// `short=true`.
    Short(Box<CertificateShort>),
}

/// `GET /certificates/{id}/key`. No `Debug`: it is a private key.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct PrivateKey {
    /// The private key, PEM.
    #[schema(value_type = String)]
    pub key: crate::SecretString,
}

/// One health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckView {
    /// Passed.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /healthcheck/details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthDetails {
    /// Every check passed.
    pub healthy: bool,
    /// One round trip to the database.
    pub database: CheckView,
    /// One random byte from the token.
    pub hsm: CheckView,
    /// The latest entropy health verdict.
    pub entropy: CheckView,
    /// Keys generated ahead of demand, per key type (`[keys] ready` and `[keys] stock`).
    #[serde(default, rename = "readyKeys")]
    pub ready_keys: Vec<ReadyKeys>,
    /// The token the daemon works in, and its session pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenView>,
}

/// The HSM token, as the health details show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    /// Its label.
    pub label: String,
    /// The PKCS#11 module it is reached through.
    pub module: String,
    /// Sessions the pool may open.
    pub sessions_capacity: usize,
    /// Sessions open.
    pub sessions_open: usize,
    /// Sessions lent out now (all of them, with requests waiting, means the pool is the limit).
    pub sessions_in_use: usize,
}

/// How many keys of a type are generated ahead of demand: in the daemon's memory (`ready`),
/// and sealed in the database (`stocked`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadyKeys {
    /// Lemur's key type name (`RSA2048`...).
    pub key_type: String,
    /// Ready now.
    pub ready: usize,
    /// Kept ready when the pool is full (`[keys] ready`).
    pub target: usize,
    /// In the stock now; absent when the database did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stocked: Option<usize>,
    /// Kept in the stock when it is full (`[keys] stock`).
    #[serde(default)]
    pub stock_target: usize,
}

/// `GET /auth/providers`: a single sign-on provider (none are configured in this build).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Provider {
    /// Its name.
    pub name: String,
}

/// `{"id", "name"}` of the authority a pending certificate was ordered from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingAuthority {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
}

/// `{"name"}` of a DNS name a pending certificate asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingDomain {
    /// The DNS name.
    pub name: String,
}

/// A pending certificate, as `GET /pending_certificates/{id}` shows it (Lemur's shape), and
/// as `POST /certificates` answers (202) when the authority answers later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingCertificateView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// The order's id at the CA.
    pub external_id: Option<String>,
    /// Owner.
    pub owner: String,
    /// Description.
    pub description: String,
    /// Notifications on once issued (Lemur's alias of `notify`).
    pub active: bool,
    /// Notifications on once issued.
    pub notify: bool,
    /// Rotation on once issued.
    pub rotation: bool,
    /// Common name asked for.
    pub cn: String,
    /// Common name (Lemur sends both).
    pub common_name: String,
    /// The request the CA signs, PEM.
    pub csr: String,
    /// Always empty until issued, as Lemur.
    pub chain: String,
    /// Always false: cancelled orders are deleted.
    pub deleted: bool,
    /// The authority's name.
    pub issuer: String,
    /// The last failure, if any.
    pub status: Option<String>,
    /// Failed attempts to fetch it.
    pub number_attempts: i64,
    /// Delivered.
    pub resolved: bool,
    /// The certificate it became.
    pub resolved_cert_id: Option<i64>,
    /// Key type.
    pub key_type: String,
    /// A private key generated here is held for it.
    pub has_private_key: bool,
    /// Asked.
    pub date_created: String,
    /// Last changed.
    pub last_updated: String,
    /// Who asked.
    pub user: Option<UserView>,
    /// The authority ordered from.
    pub authority: PendingAuthority,
    /// The DNS names asked for.
    pub domains: Vec<PendingDomain>,
    /// Certificates it will replace.
    pub replaces: Vec<IdView>,
    /// Where it will be deployed.
    pub destinations: Vec<serde_json::Value>,
    /// Who is told about it.
    pub notifications: Vec<serde_json::Value>,
    /// Roles on it.
    pub roles: Vec<serde_json::Value>,
}
