//! Request bodies and query parameters.

use serde::Deserialize;
use zeroize::Zeroizing;

/// `{"id": N}` references.
#[derive(Debug, Clone, Deserialize)]
pub struct IdRef {
    /// The id.
    pub id: i64,
}

/// `{"id": N}` or `{"name": "..."}` for an authority.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthorityRef {
    /// The id.
    pub id: Option<i64>,
    /// The name.
    pub name: Option<String>,
}

/// `{"nameType": "DNSName", "value": "..."}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NameRequest {
    /// DNSName, IPAddress, rfc822Name, uniformResourceIdentifier.
    pub name_type: String,
    /// The name.
    pub value: String,
}

/// `{"names": [...]}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SubAltNames {
    /// The names.
    #[serde(default)]
    pub names: Vec<NameRequest>,
}

/// Lemur's `extensions` object (the parts the HSM issuer takes).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Extensions {
    /// Subject alternative names.
    #[serde(default)]
    pub sub_alt_names: Option<SubAltNames>,
}

/// Subject fields as Lemur sends them, at the top level of the body. They arrive as any JSON
/// value and are type-checked by the domain: serde's `flatten` loses the field's name in its own
/// errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectRequest {
    /// C.
    pub country: Option<serde_json::Value>,
    /// ST.
    pub state: Option<serde_json::Value>,
    /// L.
    pub location: Option<serde_json::Value>,
    /// O.
    pub organization: Option<serde_json::Value>,
    /// OU.
    pub organizational_unit: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

/// `POST /certificates`: Lemur's certificate creation body.
#[derive(Debug, Clone, Deserialize)]
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
    pub validity_start: Option<String>,
    /// Validity end (with `validityStart`).
    pub validity_end: Option<String>,
    /// Validity in years (instead of the dates).
    pub validity_years: Option<i64>,
    /// Key to generate when there is no CSR (`ECCPRIME256V1`, `RSA2048`...).
    pub key_type: Option<String>,
    /// PEM CSR.
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
#[derive(Clone, Deserialize)]
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
    pub chain: Option<String>,
    /// Its private key, PEM.
    pub private_key: Option<Zeroizing<String>>,
    /// Certificates it replaces.
    #[serde(default)]
    pub replaces: Vec<IdRef>,
    /// Destinations to deploy to.
    #[serde(default)]
    pub destinations: Vec<IdRef>,
}

/// Lemur's paging parameters.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paging {
    /// 1-based page (default 1).
    pub page: Option<i64>,
    /// Items per page (default 10, at most 1000).
    pub count: Option<i64>,
}

/// `GET /certificates` query.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateQuery {
    /// 1-based page.
    pub page: Option<i64>,
    /// Items per page.
    pub count: Option<i64>,
    /// `field;value`: cn, name, owner, serial or authority.
    pub filter: Option<String>,
    /// Lemur's short form of each item.
    #[serde(default)]
    pub short: bool,
}

/// The plugin object of a request.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
    pub parent: Option<IdRef>,
    /// CA key type (default `RSA2048`, as Lemur).
    #[serde(default = "default_key_type")]
    pub key_type: String,
    /// Validity start (with `validityEnd`).
    pub validity_start: Option<String>,
    /// Validity end (with `validityStart`).
    pub validity_end: Option<String>,
    /// Validity in years (default 10).
    pub validity_years: Option<i64>,
    /// The issuer plugin.
    pub plugin: Option<PluginRef>,
    /// Subject fields.
    #[serde(flatten)]
    pub subject: SubjectRequest,
    /// Apply the CA/Browser Forum rules.
    #[serde(default)]
    pub cab_compliant: bool,
    /// Longest validity it issues, in days.
    pub max_issuance_days: Option<i64>,
    /// Default validity it issues, in days.
    pub default_validity_days: Option<i64>,
    /// CRL distribution point for what it issues.
    pub crl_url: Option<String>,
    /// caIssuers URL for what it issues.
    pub issuer_url: Option<String>,
    /// Import: the existing CA certificate.
    pub body: Option<String>,
    /// Import: its key, already in the token.
    pub key_uri: Option<String>,
    /// Import: its issuers up to the root, unless it is a root itself.
    pub chain: Option<String>,
}

/// `POST /auth/login`. No `Debug`: it holds a password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// User name or email.
    pub username: String,
    /// Password.
    pub password: Zeroizing<String>,
}

/// `GET /plugins` query.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PluginQuery {
    /// Only plugins of this kind (`issuer`, `destination`...).
    #[serde(rename = "type")]
    pub kind: Option<String>,
}
