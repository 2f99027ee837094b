//! Rows as both drivers decode them, and their conversion into the domain's records.

use crate::engine::Columns;
use lemur_core::ca::x509;
use lemur_core::model::{
    AuthorityBrief, AuthorityRecord, CertificateDetails, CertificateRecord, DomainRecord,
    PendingRecord, RoleRecord, UserRecord,
};

/// `users`, without the password hash.
#[derive(sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub active: bool,
}

impl From<UserRow> for UserRecord {
    fn from(row: UserRow) -> Self {
        UserRecord {
            id: row.id,
            username: row.username,
            email: row.email,
            active: row.active,
        }
    }
}

/// `users` with the password hash, for logins.
#[derive(sqlx::FromRow)]
pub struct LoginRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub password_hash: Option<String>,
    pub token_generation: i64,
}

/// A user and one of their roles (none for a user without roles).
#[derive(sqlx::FromRow)]
pub struct SessionRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub token_generation: i64,
    pub token_revoked: bool,
    pub role_id: Option<i64>,
    pub role_name: Option<String>,
    pub role_description: Option<String>,
}

/// `roles`.
#[derive(sqlx::FromRow)]
pub struct RoleRow {
    pub id: i64,
    pub name: String,
    pub description: String,
}

impl From<RoleRow> for RoleRecord {
    fn from(row: RoleRow) -> Self {
        RoleRecord {
            id: row.id,
            name: row.name,
            description: row.description,
        }
    }
}

/// A role attached to an authority.
#[derive(sqlx::FromRow)]
pub struct AuthorityRoleRow {
    pub authority_id: i64,
    #[sqlx(flatten)]
    pub role: RoleRow,
}

/// `authorities`.
#[derive(sqlx::FromRow)]
pub struct AuthorityRow {
    pub id: i64,
    pub name: String,
    pub owner: String,
    pub description: String,
    pub active: bool,
    pub plugin_name: String,
    pub key_uri: Option<String>,
    pub parent_id: Option<i64>,
    pub cab_compliant: bool,
    pub max_issuance_days: Option<i64>,
    pub default_validity_days: i64,
    pub crl_url: Option<String>,
    pub issuer_url: Option<String>,
    pub authority_certificate_id: Option<i64>,
    pub user_id: Option<i64>,
    pub date_created: i64,
    pub permitted_domains: Option<String>,
}

/// Columns of [`AuthorityRow`], from `authorities a`.
pub const AUTHORITY_COLUMNS: &str = "a.id, a.name, a.owner, a.description, a.active, a.plugin_name, a.key_uri,
    a.parent_id, a.cab_compliant, a.max_issuance_days, a.default_validity_days, a.crl_url, a.issuer_url,
    a.authority_certificate_id, a.user_id, a.date_created, a.permitted_domains";

/// An authority and one of its roles (none for an authority without roles).
#[derive(sqlx::FromRow)]
pub struct AuthorityWithRoleRow {
    #[sqlx(flatten)]
    pub authority: AuthorityRow,
    pub role_id: Option<i64>,
    pub role_name: Option<String>,
    pub role_description: Option<String>,
}

impl From<AuthorityRow> for AuthorityRecord {
    fn from(row: AuthorityRow) -> Self {
        AuthorityRecord {
            id: row.id,
            name: row.name,
            owner: row.owner,
            description: row.description,
            active: row.active,
            plugin_name: row.plugin_name,
            key_uri: row.key_uri,
            parent_id: row.parent_id,
            cab_compliant: row.cab_compliant,
            max_issuance_days: row.max_issuance_days,
            default_validity_days: row.default_validity_days,
            crl_url: row.crl_url,
            issuer_url: row.issuer_url,
            authority_certificate_id: row.authority_certificate_id,
            user_id: row.user_id,
            date_created: row.date_created,
            permitted_domains: row
                .permitted_domains
                .and_then(|text| serde_json::from_str(&text).ok()),
        }
    }
}

/// [`Columns`] for a row struct, each field read from the column of its name, as sqlx's
/// `FromRow` reads it: for the rows the certificate writer reads back on its own connection.
macro_rules! columns_by_name {
    ($row:ident { $($field:ident),+ $(,)? }) => {
        impl Columns for $row {
            fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                let mut position = 0..;
                Ok(Self {
                    $($field: column(row, position.next(), stringify!($field))?),+
                })
            }
        }
    };
}

/// The column `name` of `row`, looked for first at `position` (where the queries put it), so
/// a row of many columns is not searched by name once per column.
fn column<T: rusqlite::types::FromSql>(
    row: &rusqlite::Row<'_>,
    position: Option<usize>,
    name: &str,
) -> rusqlite::Result<T> {
    match position {
        Some(position)
            if row
                .as_ref()
                .column_name(position)
                .is_ok_and(|at| at == name) =>
        {
            row.get(position)
        }
        _ => row.get(name),
    }
}

/// A certificate with its creator, rotation policy and issuing authority, joined (left NULL in
/// [`CERTIFICATE_OWN_COLUMNS`]).
#[derive(sqlx::FromRow)]
pub struct CertificateRow {
    pub id: i64,
    pub name: String,
    pub owner: String,
    pub description: String,
    pub notify: bool,
    pub rotation: bool,
    pub body: String,
    pub body_der: Option<Vec<u8>>,
    pub chain: Option<String>,
    pub csr: Option<String>,
    pub has_private_key: bool,
    pub issuer: String,
    pub serial: String,
    pub serial_hex: String,
    pub cn: String,
    pub distinguished_name: String,
    pub bits: i64,
    pub key_type: String,
    pub signing_algorithm: String,
    pub not_before: i64,
    pub not_after: i64,
    pub status: Option<String>,
    pub deleted: bool,
    pub is_ca: bool,
    pub authority_id: Option<i64>,
    pub user_id: Option<i64>,
    pub rotation_policy_id: Option<i64>,
    pub external_id: Option<String>,
    pub date_created: i64,
    pub u_username: Option<String>,
    pub u_email: Option<String>,
    pub u_active: Option<bool>,
    pub rp_name: Option<String>,
    pub rp_days: Option<i64>,
    pub a_name: Option<String>,
    pub a_owner: Option<String>,
    pub a_description: Option<String>,
    pub a_active: Option<bool>,
    pub a_default_validity_days: Option<i64>,
    pub a_max_issuance_days: Option<i64>,
    pub a_cab_compliant: Option<bool>,
    pub a_plugin_name: Option<String>,
    pub ac_not_before: Option<i64>,
    pub ac_not_after: Option<i64>,
    pub subject_organization: Option<String>,
    pub subject_organizational_unit: Option<String>,
    pub subject_country: Option<String>,
    pub subject_state: Option<String>,
    pub subject_location: Option<String>,
    pub path_length: Option<i64>,
    pub server_auth: Option<bool>,
    pub client_auth: Option<bool>,
    pub alt_names: Option<String>,
}

columns_by_name!(CertificateRow {
    id,
    name,
    owner,
    description,
    notify,
    rotation,
    body,
    body_der,
    chain,
    csr,
    has_private_key,
    issuer,
    serial,
    serial_hex,
    cn,
    distinguished_name,
    bits,
    key_type,
    signing_algorithm,
    not_before,
    not_after,
    status,
    deleted,
    is_ca,
    authority_id,
    user_id,
    rotation_policy_id,
    external_id,
    date_created,
    u_username,
    u_email,
    u_active,
    rp_name,
    rp_days,
    a_name,
    a_owner,
    a_description,
    a_active,
    a_default_validity_days,
    a_max_issuance_days,
    a_cab_compliant,
    a_plugin_name,
    ac_not_before,
    ac_not_after,
    subject_organization,
    subject_organizational_unit,
    subject_country,
    subject_state,
    subject_location,
    path_length,
    server_auth,
    client_auth,
    alt_names,
});

impl CertificateRow {
    /// The stored details, when the row has them.
    fn details(&mut self) -> Option<CertificateDetails> {
        let alt_names = CertificateDetails::decode_alt_names(self.alt_names.as_deref()?)?;
        Some(CertificateDetails {
            organization: self.subject_organization.take().unwrap_or_default(),
            organizational_unit: self.subject_organizational_unit.take().unwrap_or_default(),
            country: self.subject_country.take().unwrap_or_default(),
            state: self.subject_state.take().unwrap_or_default(),
            location: self.subject_location.take().unwrap_or_default(),
            path_length: self.path_length.and_then(|n| u32::try_from(n).ok()),
            server_auth: self.server_auth.unwrap_or(false),
            client_auth: self.client_auth.unwrap_or(false),
            alt_names,
        })
    }
}

/// The columns of [`CertificateRow`] before its chain.
macro_rules! columns_before_chain {
    () => {
        "c.id, c.name, c.owner, c.description, c.notify, c.rotation, c.body, c.body_der"
    };
}

/// The columns of [`CertificateRow`] between its chain and what is joined in.
macro_rules! columns_before_joined {
    () => {
        "c.csr,
    (c.sealed_private_key IS NOT NULL) AS has_private_key, c.issuer, c.serial,
    c.serial_hex, c.cn, c.distinguished_name, c.bits, c.key_type, c.signing_algorithm,
    c.not_before, c.not_after, c.status, c.deleted, c.is_ca, c.authority_id, c.user_id,
    c.rotation_policy_id, c.external_id, c.date_created"
    };
}

/// What a view joins in beside a certificate's row: [`JoinedColumns`].
macro_rules! joined_columns {
    () => {
        "u.username AS u_username, u.email AS u_email, u.active AS u_active, rp.name AS rp_name, rp.days AS rp_days,
    a.name AS a_name, a.owner AS a_owner, a.description AS a_description, a.active AS a_active,
    a.default_validity_days AS a_default_validity_days, a.max_issuance_days AS a_max_issuance_days,
    a.cab_compliant AS a_cab_compliant, a.plugin_name AS a_plugin_name, ac.not_before AS ac_not_before,
    ac.not_after AS ac_not_after"
    };
}

/// The columns of [`CertificateRow`] after what is joined in.
macro_rules! columns_after_joined {
    () => {
        "c.subject_organization, c.subject_organizational_unit,
    c.subject_country, c.subject_state, c.subject_location, c.path_length, c.server_auth,
    c.client_auth, c.alt_names"
    };
}

/// Columns of [`CertificateRow`], from [`CERTIFICATE_FROM`], in the order of its fields.
pub const CERTIFICATE_COLUMNS: &str = concat!(
    columns_before_chain!(),
    ",\n    COALESCE(ch.pem, c.chain) AS chain, ",
    columns_before_joined!(),
    ",\n    ",
    joined_columns!(),
    ", ",
    columns_after_joined!()
);

/// [`CERTIFICATE_COLUMNS`] of rows `c` alone, on PostgreSQL: the chain as the row keeps it
/// (none, for a chain stored apart) and what a view joins in left NULL, for a caller that has
/// them in hand ([`Joined`]).
pub(crate) const CERTIFICATE_OWN_COLUMNS: &str = concat!(
    columns_before_chain!(),
    ", c.chain, ",
    columns_before_joined!(),
    ",
    NULL::TEXT AS u_username, NULL::TEXT AS u_email, NULL::BOOLEAN AS u_active,
    NULL::TEXT AS rp_name, NULL::BIGINT AS rp_days, NULL::TEXT AS a_name, NULL::TEXT AS a_owner,
    NULL::TEXT AS a_description, NULL::BOOLEAN AS a_active,
    NULL::BIGINT AS a_default_validity_days, NULL::BIGINT AS a_max_issuance_days,
    NULL::BOOLEAN AS a_cab_compliant, NULL::TEXT AS a_plugin_name, NULL::BIGINT AS ac_not_before,
    NULL::BIGINT AS ac_not_after, ",
    columns_after_joined!()
);

/// [`JOINED_COLUMNS`]'s joins, for the ids of the row (or rows) named `$of`.
macro_rules! joins_of {
    ($of:literal) => {
        concat!(
            "LEFT JOIN users u ON u.id = ",
            $of,
            ".user_id
    LEFT JOIN rotation_policies rp ON rp.id = ",
            $of,
            ".rotation_policy_id
    LEFT JOIN authorities a ON a.id = ",
            $of,
            ".authority_id
    LEFT JOIN certificates ac ON ac.id = a.authority_certificate_id"
        )
    };
}

/// What a view of the certificate rows `c` needs beside them.
macro_rules! certificate_joins {
    () => {
        concat!(
            joins_of!("c"),
            "\n    LEFT JOIN chains ch ON ch.id = c.chain_id"
        )
    };
}

/// The columns of [`JoinedColumns`].
pub(crate) const JOINED_COLUMNS: &str = joined_columns!();

/// [`JOINED_COLUMNS`]'s joins for rows `k` of `user_id`, `rotation_policy_id` and
/// `authority_id`.
pub(crate) const JOINS_OF_KEYS: &str = joins_of!("k");

/// [`CERTIFICATE_FROM`]'s joins, for rows named `c` that come from elsewhere (the rows an
/// `INSERT` returns).
pub const CERTIFICATE_JOINS: &str = certificate_joins!();

/// `certificates c` with what a view of it needs, in one round trip.
pub const CERTIFICATE_FROM: &str = concat!("certificates c\n    ", certificate_joins!());

/// What a view of a certificate joins in beside its row: its creator, rotation policy and
/// issuing authority.
#[derive(Debug, Clone)]
pub(crate) struct Joined {
    pub(crate) creator: Option<UserRecord>,
    pub(crate) rotation_policy: Option<(i64, String, i64)>,
    pub(crate) authority: Option<AuthorityBrief>,
}

/// [`JOINED_COLUMNS`], as read.
#[derive(sqlx::FromRow)]
pub(crate) struct JoinedColumns {
    pub(crate) u_username: Option<String>,
    pub(crate) u_email: Option<String>,
    pub(crate) u_active: Option<bool>,
    pub(crate) rp_name: Option<String>,
    pub(crate) rp_days: Option<i64>,
    pub(crate) a_name: Option<String>,
    pub(crate) a_owner: Option<String>,
    pub(crate) a_description: Option<String>,
    pub(crate) a_active: Option<bool>,
    pub(crate) a_default_validity_days: Option<i64>,
    pub(crate) a_max_issuance_days: Option<i64>,
    pub(crate) a_cab_compliant: Option<bool>,
    pub(crate) a_plugin_name: Option<String>,
    pub(crate) ac_not_before: Option<i64>,
    pub(crate) ac_not_after: Option<i64>,
}

impl JoinedColumns {
    /// What these columns, joined for a row of these ids, found.
    pub(crate) fn joined(
        self,
        user_id: Option<i64>,
        rotation_policy_id: Option<i64>,
        authority_id: Option<i64>,
    ) -> Joined {
        let rotation_policy = match (rotation_policy_id, self.rp_name, self.rp_days) {
            (Some(id), Some(name), Some(days)) => Some((id, name, days)),
            _ => None,
        };
        let authority = match (authority_id, self.a_name) {
            (Some(id), Some(name)) => Some(AuthorityBrief {
                id,
                name,
                owner: self.a_owner.unwrap_or_default(),
                description: self.a_description.unwrap_or_default(),
                active: self.a_active.unwrap_or(false),
                default_validity_days: self.a_default_validity_days.unwrap_or_default(),
                max_issuance_days: self.a_max_issuance_days,
                cab_compliant: self.a_cab_compliant.unwrap_or(false),
                plugin_name: self.a_plugin_name.unwrap_or_default(),
                not_before: self.ac_not_before,
                not_after: self.ac_not_after,
            }),
            _ => None,
        };
        Joined {
            creator: creator(user_id, self.u_username, self.u_email, self.u_active),
            rotation_policy,
            authority,
        }
    }
}

/// The creator a row's `LEFT JOIN users u` found, if any.
fn creator(
    id: Option<i64>,
    username: Option<String>,
    email: Option<String>,
    active: Option<bool>,
) -> Option<UserRecord> {
    match (id, username, email) {
        (Some(id), Some(username), Some(email)) => Some(UserRecord {
            id,
            username,
            email,
            active: active.unwrap_or(false),
        }),
        _ => None,
    }
}

impl From<CertificateRow> for CertificateRecord {
    fn from(mut row: CertificateRow) -> Self {
        let details = row.details();
        let joined = JoinedColumns {
            u_username: row.u_username,
            u_email: row.u_email,
            u_active: row.u_active,
            rp_name: row.rp_name,
            rp_days: row.rp_days,
            a_name: row.a_name,
            a_owner: row.a_owner,
            a_description: row.a_description,
            a_active: row.a_active,
            a_default_validity_days: row.a_default_validity_days,
            a_max_issuance_days: row.a_max_issuance_days,
            a_cab_compliant: row.a_cab_compliant,
            a_plugin_name: row.a_plugin_name,
            ac_not_before: row.ac_not_before,
            ac_not_after: row.ac_not_after,
        }
        .joined(row.user_id, row.rotation_policy_id, row.authority_id);
        let Joined {
            creator,
            rotation_policy,
            authority,
        } = joined;
        CertificateRecord {
            id: row.id,
            name: row.name,
            owner: row.owner,
            description: row.description,
            notify: row.notify,
            rotation: row.rotation,
            // Rows stored since migration 10 keep DER; older ones their PEM.
            body: row
                .body_der
                .as_deref()
                .map_or(row.body, |der| x509::to_pem("CERTIFICATE", der)),
            chain: row.chain,
            csr: row.csr,
            has_private_key: row.has_private_key,
            issuer: row.issuer,
            serial: row.serial,
            serial_hex: row.serial_hex,
            cn: row.cn,
            distinguished_name: row.distinguished_name,
            bits: row.bits,
            key_type: row.key_type,
            signing_algorithm: row.signing_algorithm,
            not_before: row.not_before,
            not_after: row.not_after,
            status: row.status,
            deleted: row.deleted,
            is_ca: row.is_ca,
            user_id: row.user_id,
            external_id: row.external_id,
            date_created: row.date_created,
            creator,
            rotation_policy,
            authority,
            details,
        }
    }
}

/// A certificate in a replacement link, with both ends of the link.
#[derive(sqlx::FromRow)]
pub struct ReplacementRow {
    #[sqlx(flatten)]
    pub certificate: CertificateRow,
    pub replacer: i64,
    pub replaced: i64,
}

/// A domain of a certificate.
#[derive(sqlx::FromRow)]
pub struct DomainRow {
    pub certificate_id: i64,
    pub id: i64,
    pub name: String,
    pub sensitive: bool,
}

columns_by_name!(DomainRow {
    certificate_id,
    id,
    name,
    sensitive,
});

impl From<DomainRow> for DomainRecord {
    fn from(row: DomainRow) -> Self {
        DomainRecord {
            id: row.id,
            name: row.name,
            sensitive: row.sensitive,
        }
    }
}

/// A domain row on its own.
#[derive(sqlx::FromRow)]
pub struct DomainOnlyRow {
    pub id: i64,
    pub name: String,
    pub sensitive: bool,
}

impl From<DomainOnlyRow> for DomainRecord {
    fn from(row: DomainOnlyRow) -> Self {
        DomainRecord {
            id: row.id,
            name: row.name,
            sensitive: row.sensitive,
        }
    }
}

/// A pending certificate with its creator and authority's name, joined.
#[derive(sqlx::FromRow)]
pub struct PendingRow {
    pub id: i64,
    pub name: String,
    pub external_id: Option<String>,
    pub owner: String,
    pub description: String,
    pub notify: bool,
    pub rotation: bool,
    pub cn: Option<String>,
    pub csr: Option<String>,
    pub key_type: String,
    pub dns_names: String,
    pub has_private_key: bool,
    pub authority_id: Option<i64>,
    pub a_name: Option<String>,
    pub user_id: Option<i64>,
    pub u_username: Option<String>,
    pub u_email: Option<String>,
    pub u_active: Option<bool>,
    pub replaces: String,
    pub rotation_policy_id: Option<i64>,
    pub number_attempts: i64,
    pub status: Option<String>,
    pub resolved: bool,
    pub resolved_cert_id: Option<i64>,
    pub date_created: i64,
    pub last_updated: i64,
}

/// Columns of [`PendingRow`], from [`PENDING_FROM`].
pub const PENDING_COLUMNS: &str = "p.id, p.name, p.external_id, p.owner, p.description, p.notify,
    p.rotation, p.cn, p.csr, p.key_type, p.dns_names,
    (p.sealed_private_key IS NOT NULL) AS has_private_key, p.authority_id, a.name AS a_name,
    p.user_id, u.username AS u_username, u.email AS u_email, u.active AS u_active, p.replaces,
    p.rotation_policy_id, p.number_attempts, p.status, p.resolved, p.resolved_cert_id, p.date_created,
    p.last_updated";

/// `pending_certificates p` with what a view of it needs, in one round trip.
pub const PENDING_FROM: &str = "pending_certificates p
    LEFT JOIN users u ON u.id = p.user_id
    LEFT JOIN authorities a ON a.id = p.authority_id";

impl From<PendingRow> for PendingRecord {
    fn from(row: PendingRow) -> Self {
        let creator = creator(row.user_id, row.u_username, row.u_email, row.u_active);
        PendingRecord {
            id: row.id,
            name: row.name,
            external_id: row.external_id,
            owner: row.owner,
            description: row.description,
            notify: row.notify,
            rotation: row.rotation,
            common_name: row.cn.unwrap_or_default(),
            csr: row.csr.unwrap_or_default(),
            key_type: row.key_type,
            dns_names: row
                .dns_names
                .split('\n')
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect(),
            has_private_key: row.has_private_key,
            authority_id: row.authority_id.unwrap_or_default(),
            authority_name: row.a_name.unwrap_or_default(),
            user_id: row.user_id,
            creator,
            replaces: row
                .replaces
                .split(',')
                .filter_map(|id| id.parse().ok())
                .collect(),
            rotation_policy_id: row.rotation_policy_id,
            number_attempts: row.number_attempts,
            status: row.status,
            resolved: row.resolved,
            resolved_certificate_id: row.resolved_cert_id,
            date_created: row.date_created,
            last_updated: row.last_updated,
        }
    }
}
