//! Request bodies and query parameters.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `{"id": N}` references.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IdRef {
    /// The id.
    pub id: i64,
}

/// `{"id": N}` or `{"name": "..."}` for an authority.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthorityRef {
    /// The id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `{"nameType": "DNSName", "value": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameRequest {
    /// DNSName, IPAddress, rfc822Name, uniformResourceIdentifier.
    pub name_type: String,
    /// The name.
    pub value: String,
}

/// `{"names": [...]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SubAltNames {
    /// The names.
    #[serde(default)]
    pub names: Vec<NameRequest>,
}

/// Lemur's `extensions` object (the parts the HSM issuer takes).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Extensions {
    /// Subject alternative names.
    #[serde(default)]
    pub sub_alt_names: Option<SubAltNames>,
}

/// Subject fields as Lemur sends them, at the top level of the body. They arrive as any JSON
/// value and are type-checked by the domain: serde's `flatten` loses the field's name in its own
/// errors.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubjectRequest {
    /// C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub country: Option<serde_json::Value>,
    /// ST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub state: Option<serde_json::Value>,
    /// L.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub location: Option<serde_json::Value>,
    /// O.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub organization: Option<serde_json::Value>,
    /// OU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub organizational_unit: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

/// `POST /certificates`: Lemur's certificate creation body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCertificate {
    /// Owner (email or team).
    pub owner: String,
    /// Subject CN (from the CSR when empty).
    #[serde(default)]
    pub common_name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Send expiry notifications.
    #[serde(default = "yes")]
    pub notify: bool,
    /// Rotate automatically.
    #[serde(default)]
    pub rotation: bool,
    /// Validity start (with `validityEnd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_start: Option<String>,
    /// Validity end (with `validityStart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_end: Option<String>,
    /// Validity in years (instead of the dates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_years: Option<i64>,
    /// Key to generate when there is no CSR (`ECCPRIME256V1`, `RSA2048`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    /// PEM CSR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
    /// The issuing authority.
    pub authority: AuthorityRef,
    /// Extensions (SANs).
    #[serde(default)]
    pub extensions: Extensions,
    /// Certificates it replaces.
    #[serde(default)]
    pub replaces: Vec<IdRef>,
    /// Destinations to deploy to.
    #[serde(default)]
    pub destinations: Vec<IdRef>,
    /// Subject fields.
    #[serde(flatten)]
    pub subject: SubjectRequest,
}

/// `POST /certificates/upload`: Lemur's import body. No `Debug`: it holds a private key.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadCertificate {
    /// Owner.
    pub owner: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Send expiry notifications.
    #[serde(default = "yes")]
    pub notify: bool,
    /// The certificate, PEM.
    pub body: String,
    /// Its chain, PEM, issuer first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// Its private key, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub private_key: Option<crate::SecretString>,
    /// Certificates it replaces.
    #[serde(default)]
    pub replaces: Vec<IdRef>,
    /// Destinations to deploy to.
    #[serde(default)]
    pub destinations: Vec<IdRef>,
}

/// Lemur's paging parameters.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// 1-based page (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    /// Items per page (default 10, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

/// `GET /pending_certificates` query: the certificate list's parameters that apply to orders.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PendingQuery {
    /// 1-based page (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    /// Items per page (default 10, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// `field;value`: cn or name (substrings), owner, or authority (an id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Sort by `id` (the default), `cn`, `name` or `owner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<String>,
    /// `asc` or `desc`; by default `desc` by id, `asc` by anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_dir: Option<String>,
}

/// `GET /certificates` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct CertificateQuery {
    /// 1-based page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    /// Items per page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// `field;value`: cn or name (substrings), san (the certificates valid for a DNS name,
    /// wildcards included), owner, serial or authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Sort by `id` (the default), `notAfter`, `cn`, `name` or `owner` (text as the database
    /// orders it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<String>,
    /// `asc` or `desc`; by default `desc` by id, `asc` by anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_dir: Option<String>,
    /// A serial number: decimal, `0x` hex, or colon-separated hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The `next` of the previous page: the page after it, found as fast at any depth (instead
    /// of `page`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Lemur's short form of each item.
    #[serde(default)]
    pub short: bool,
}

/// The plugin object of a request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginRef {
    /// The plugin's slug.
    pub slug: String,
}

fn root() -> String {
    "root".into()
}

fn default_key_type() -> String {
    "RSA2048".into()
}

/// `POST /authorities`: Lemur's authority creation body (fields Lemur's UI sends and this build
/// does not use are ignored).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateAuthority {
    /// Unique name.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// CN of the CA certificate.
    pub common_name: String,
    /// `root` or `subca`.
    #[serde(rename = "type", default = "root")]
    pub kind: String,
    /// The parent of a sub-CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<IdRef>,
    /// CA key type (default `RSA2048`, as Lemur).
    #[serde(default = "default_key_type")]
    pub key_type: String,
    /// Validity start (with `validityEnd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_start: Option<String>,
    /// Validity end (with `validityStart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_end: Option<String>,
    /// Validity in years (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_years: Option<i64>,
    /// The issuer plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginRef>,
    /// Subject fields.
    #[serde(flatten)]
    pub subject: SubjectRequest,
    /// Apply the CA/Browser Forum rules.
    #[serde(default)]
    pub cab_compliant: bool,
    /// Longest validity it issues, in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_issuance_days: Option<i64>,
    /// Default validity it issues, in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_validity_days: Option<i64>,
    /// CRL distribution point for what it issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_url: Option<String>,
    /// caIssuers URL for what it issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_url: Option<String>,
    /// The domains it may issue for (and names under them), written into the certificates of
    /// the CAs it makes as nameConstraints; any when absent (a sub-CA inherits its parent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permitted_domains: Option<Vec<String>>,
    /// Import: the existing CA certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Import: its key, already in the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_uri: Option<String>,
    /// Import: its issuers up to the root, unless it is a root itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}

/// `POST /auth/login`. No `Debug`: it holds a password.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// User name or email.
    pub username: String,
    /// Password.
    #[schema(value_type = String, format = Password)]
    pub password: crate::SecretString,
}

/// `GET /plugins` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PluginQuery {
    /// Only plugins of this kind (`issuer`, `destination`...).
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// `PUT /certificates/{id}/revoke`: Lemur's revocation body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokeCertificate {
    /// RFC 5280 CRLReason by name: unspecified (the default), keyCompromise, cACompromise,
    /// affiliationChanged, superseded, cessationOfOperation, certificateHold, privilegeWithdrawn
    /// or aACompromise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_reason: Option<String>,
    /// Why, for the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comments: Option<String>,
}

/// `POST /domains`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateDomain {
    /// The DNS name.
    pub name: String,
    /// Only administrators and the sensitive-domain roles may issue for it and names under it.
    #[serde(default)]
    pub sensitive: bool,
}

/// `PUT /domains/{id}` (Lemur sends the name too; only the flag changes).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpdateDomain {
    /// The DNS name, as Lemur's UI sends it back (ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The new flag.
    pub sensitive: bool,
}

/// `GET /certificates/stats` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Lemur's `bits`, `issuer`, `signing_algorithm`, or `not_after` (certificates per issuer
    /// expiring in the next 32 weeks); or, for the dashboard, `expiring` (unrevoked
    /// certificates expiring within 7, 30 and 90 days: labels 7, 30, 90), `expires_per_week`
    /// (for the 53 weeks from now, labelled by their first days, `2026-12-01`) or
    /// `issued_per_day` (the last 30 days, UTC, today last).
    #[serde(default)]
    pub metric: Option<String>,
}

/// `GET /domains` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DomainQuery {
    /// 1-based page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    /// Items per page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// `name;value`: names containing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// `PUT /pending_certificates/{id}`: what may change while the order waits (fields left out
/// keep their values).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePendingCertificate {
    /// Owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Send expiry notifications once issued (Lemur also calls it `active`).
    #[serde(default, alias = "active", skip_serializing_if = "Option::is_none")]
    pub notify: Option<bool>,
    /// Rotate automatically once issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<bool>,
    /// Destinations to deploy to once issued (none are available in this build yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<IdRef>,
}

/// `DELETE /pending_certificates/{id}`: Lemur's cancellation body (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CancelPendingCertificate {
    /// Why, for the audit log and the CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `POST /pending_certificates/{id}/upload`: the certificate the CA signed for the order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadPendingCertificate {
    /// The signed certificate, PEM.
    pub body: String,
    /// Its chain, PEM, issuer first; the authority's chain when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}

/// `POST /appliance/restore`: a `multipart/form-data` form, its fields in this order (the
/// passphrase goes ahead, so the archive can be passed on as it arrives). Schema only: the
/// daemon reads the form as a stream.
#[derive(ToSchema)]
pub struct RestoreForm {
    /// The passphrase the backup was sealed under (one line).
    pub passphrase: String,
    /// The archive (`lemur-backup-DATE.lemur`, as `POST /appliance/backup` or `lemur appliance
    /// backup` wrote it).
    pub archive: crate::Binary,
}

/// `POST /appliance/backup`. No `Debug`: it holds the passphrase.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct BackupRequest {
    /// What the archive is sealed under (at least 12 characters, one line): all that guards the
    /// keys in it, so keep it apart from the archive.
    #[schema(value_type = String)]
    pub passphrase: crate::SecretString,
}
