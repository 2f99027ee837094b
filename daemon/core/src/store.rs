//! The repository traits the domain needs, implemented per database engine by `lemur-store`.
//!
//! One domain operation is one call here when it writes: the store commits its rows and its
//! audit row together or not at all. Lists return a page in a constant number of queries, and a
//! failure of the database is [`Error::Database`](crate::Error::Database), never "not found".

use crate::error::Result;
use crate::model::{
    AuthorityDetail, AuthorityKey, AuthorityRecord, CertificateLinks, CertificateRecord,
    DomainRecord, ExpiringCertificate, Histogram, KeyHolder, ListQuery, LogEntry, LoginRecord,
    NewAuthority, NewCertificate, NewPending, NewUser, Page, PendingChanges, PendingListQuery,
    PendingRecord, Resealed, Revocation, RevokedCertificate, RoleRecord, SealedKey, StatsLabel,
    StatsMetric, StockedKey, UserRecord, UserSession, Visibility,
};
use async_trait::async_trait;

/// Users and roles.
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Creates a user and grants its roles; a taken username or email is a conflict.
    async fn create_user(&self, new: &NewUser<'_>, now: i64) -> Result<UserRecord>;
    /// The user with this username or email, their password hash and token generation.
    async fn user_by_login(&self, login: &str) -> Result<Option<LoginRecord>>;
    /// Replaces a user's password hash and advances their token generation, revoking every
    /// token issued before.
    async fn set_password(&self, user_id: i64, password_hash: &str) -> Result<()>;
    /// Records that the token `jti` of `user_id` is logged out, until it expires at
    /// `expires_at`; forgets tokens that have expired by `now`.
    async fn revoke_token(&self, jti: &str, user_id: i64, expires_at: i64, now: i64) -> Result<()>;
    /// The role with this name, created if missing (safe when several daemons start at once).
    async fn ensure_role(&self, name: &str, description: &str) -> Result<RoleRecord>;
    /// The role with this name.
    async fn role_by_name(&self, name: &str) -> Result<Option<RoleRecord>>;
    /// Creates a role held by `user_ids`, in one transaction; a taken name is a conflict.
    async fn create_role(
        &self,
        name: &str,
        description: &str,
        user_ids: &[i64],
    ) -> Result<RoleRecord>;
    /// The user with this id, their roles, token generation and whether the token `jti` was
    /// logged out, in one round trip; `None` when the user does not exist.
    async fn user_session(&self, id: i64, jti: &str) -> Result<Option<UserSession>>;
}

/// Authorities.
#[async_trait]
pub trait AuthorityRepository: Send + Sync {
    /// Stores an authority, its CA certificate, its roles and the audit row in one transaction.
    /// A taken name is a conflict.
    async fn create_authority(
        &self,
        new: &NewAuthority<'_>,
        certificate: &NewCertificate<'_>,
        log: &LogEntry<'_>,
        now: i64,
    ) -> Result<i64>;
    /// The authority with this id.
    async fn authority(&self, id: i64) -> Result<Option<AuthorityRecord>>;
    /// The authority with this name.
    async fn authority_by_name(&self, name: &str) -> Result<Option<AuthorityRecord>>;
    /// An authority and the roles attached to it, in one round trip (every issuance asks).
    async fn authority_with_roles(
        &self,
        key: AuthorityKey<'_>,
    ) -> Result<Option<(AuthorityRecord, Vec<RoleRecord>)>>;
    /// Authorities with their roles, certificates and creators, oldest first, and the total.
    async fn authorities(&self, page: Page) -> Result<(Vec<AuthorityDetail>, i64)>;
    /// One authority with its roles, certificate and creator.
    async fn authority_detail(&self, id: i64) -> Result<Option<AuthorityDetail>>;
}

/// Certificates and the audit log.
#[async_trait]
pub trait CertificateRepository: Send + Sync {
    /// Stores a certificate and its audit row together; with `unique_body`, refuses (409) a
    /// certificate whose body is in the inventory already, else stores it as the earlier one's
    /// twin. Returns it as stored, with its links, so the caller answers without reading it
    /// again.
    async fn create_certificate(
        &self,
        new: &NewCertificate<'_>,
        log: &LogEntry<'_>,
        unique_body: bool,
        now: i64,
    ) -> Result<(CertificateRecord, CertificateLinks)>;
    /// The certificate with this id.
    async fn certificate(&self, id: i64) -> Result<Option<CertificateRecord>>;
    /// The certificate a request of `user_id` with this idempotency key made, and that
    /// request's fingerprint.
    async fn idempotent_request(
        &self,
        user_id: i64,
        key: &str,
    ) -> Result<Option<(i64, Option<String>)>>;
    /// A page of the certificates `query` asks for among those `visible`, and how many match.
    /// The total is exact up to a bound; past it, it may be a count a few seconds old (so a
    /// page of a million-row list does not count a million rows).
    async fn certificates(
        &self,
        query: &ListQuery,
        visible: &Visibility,
    ) -> Result<(Vec<CertificateRecord>, i64)>;
    /// How many certificates among those `visible` have each value of `metric` (for
    /// [`StatsMetric::NotAfter`], each issuer of those expiring between `now` and 32 weeks on).
    async fn certificate_stats(
        &self,
        metric: StatsMetric,
        visible: &Visibility,
        now: i64,
    ) -> Result<Vec<(StatsLabel, i64)>>;
    /// How many live certificates among those `visible` fall in each span of `histogram`, in
    /// order (`histogram.buckets` counts, zeros included).
    async fn certificate_histogram(
        &self,
        histogram: Histogram,
        visible: &Visibility,
    ) -> Result<Vec<i64>>;
    /// Up to `limit` live certificates with notifications on, not revoked, whose end of
    /// validity falls in one of `windows` (`[start, end)` Unix times), ordered by owner then id,
    /// after `after` (an owner and id) when given: the expiration scan reads them page by page.
    async fn expiring_certificates(
        &self,
        windows: &[(i64, i64)],
        after: Option<(&str, i64)>,
        limit: i64,
    ) -> Result<Vec<ExpiringCertificate>>;
    /// Domains and replacement links of each certificate in `ids`, in the same order, in a
    /// constant number of queries.
    async fn certificate_links(&self, ids: &[i64]) -> Result<Vec<CertificateLinks>>;
    /// The sealed private key of a certificate: `None` when the certificate does not exist,
    /// `Some(None)` when it has no key.
    async fn sealed_private_key(&self, id: i64) -> Result<Option<Option<Vec<u8>>>>;
    /// The revoked certificates `authority_id` issued that are still within their validity at
    /// `now`, by id.
    async fn revoked_certificates(
        &self,
        authority_id: i64,
        now: i64,
    ) -> Result<Vec<RevokedCertificate>>;
    /// The next CRL number of `authority_id`: one more than any taken before, by any daemon.
    async fn next_crl_number(&self, authority_id: i64) -> Result<u64>;
    /// Certificates, not revoked, that expire in `[from, until)`.
    async fn count_expiring(&self, from: i64, until: i64) -> Result<i64>;
    /// Rows of `holder` holding a sealed private key with an id above `after`, by id, at most
    /// `limit` of them.
    async fn sealed_private_keys(
        &self,
        holder: KeyHolder,
        after: i64,
        limit: i64,
    ) -> Result<Vec<SealedKey>>;
    /// Writes each new envelope where its row of `holder` still holds the old one (a row
    /// changed meanwhile is left alone), with `log` as the audit row, in one transaction;
    /// returns how many rows changed.
    async fn replace_sealed_private_keys(
        &self,
        holder: KeyHolder,
        changes: &[Resealed],
        log: &LogEntry<'_>,
        now: i64,
    ) -> Result<u64>;
    /// Records a revocation with its audit row, turning the certificate's notifications and
    /// rotation off; `false` when the certificate was revoked already (nothing is written).
    async fn revoke_certificate(
        &self,
        revocation: &Revocation<'_>,
        log: &LogEntry<'_>,
    ) -> Result<bool>;
    /// Writes one audit row.
    async fn log(&self, entry: &LogEntry<'_>, now: i64) -> Result<()>;
}

/// Domains, and which of them are sensitive.
#[async_trait]
pub trait DomainRepository: Send + Sync {
    /// A page of domains by name, those containing `name` if given, and the total.
    async fn domains(&self, name: Option<&str>, page: Page) -> Result<(Vec<DomainRecord>, i64)>;
    /// The domain with this id.
    async fn domain(&self, id: i64) -> Result<Option<DomainRecord>>;
    /// Records a domain with its audit row; a conflict when it exists.
    async fn create_domain(
        &self,
        name: &str,
        sensitive: bool,
        log: &LogEntry<'_>,
        now: i64,
    ) -> Result<DomainRecord>;
    /// Sets a domain's sensitive flag with its audit row; `None` when it does not exist.
    async fn set_domain_sensitive(
        &self,
        id: i64,
        sensitive: bool,
        log: &LogEntry<'_>,
        now: i64,
    ) -> Result<Option<DomainRecord>>;
    /// The sensitive domains among `names` and the domains above them (`example.com` covers
    /// `www.example.com` and `*.example.com`).
    async fn sensitive_domains_covering(&self, names: &[String]) -> Result<Vec<String>>;
}

/// Pending certificates: ordered from an authority that answers later.
#[async_trait]
pub trait PendingRepository: Send + Sync {
    /// Stores a pending certificate and its audit row in one transaction. With an idempotency
    /// key an earlier request of the same user holds, stores nothing and returns that request's
    /// pending certificate, or [`Error::idempotency_key_reused`](crate::Error) when the requests
    /// differ.
    async fn create_pending(
        &self,
        new: &NewPending<'_>,
        log: &LogEntry<'_>,
        now: i64,
    ) -> Result<PendingRecord>;
    /// The pending certificate with this id (resolved or not).
    async fn pending(&self, id: i64) -> Result<Option<PendingRecord>>;
    /// The pending certificate a request of `user_id` with this idempotency key made, and that
    /// request's fingerprint.
    async fn idempotent_pending(
        &self,
        user_id: i64,
        key: &str,
    ) -> Result<Option<(i64, Option<String>)>>;
    /// A page of the unresolved pending certificates among those `visible` (a caller who sees
    /// only what they own also sees the orders of authorities they hold a role on) that match
    /// `query`, in its order, and how many match.
    async fn pendings(
        &self,
        visible: &Visibility,
        query: &PendingListQuery,
    ) -> Result<(Vec<PendingRecord>, i64)>;
    /// Changes an unresolved pending certificate with its audit row; `None` when there is no
    /// such unresolved one.
    async fn update_pending(
        &self,
        id: i64,
        changes: &PendingChanges,
        log: &LogEntry<'_>,
        now: i64,
    ) -> Result<Option<PendingRecord>>;
    /// Deletes an unresolved pending certificate with its audit row; `false` when there is no
    /// such unresolved one.
    async fn delete_pending(&self, id: i64, log: &LogEntry<'_>, now: i64) -> Result<bool>;
    /// The sealed private key of a pending certificate: `None` when it does not exist,
    /// `Some(None)` when it holds no key.
    async fn pending_private_key(&self, id: i64) -> Result<Option<Option<Vec<u8>>>>;
    /// Stores the certificate a pending one became, marks the pending one resolved as it and
    /// drops its copy of the key, with the audit row, in one transaction; the certificate's id.
    /// `None`, with nothing written, when the order was resolved, cancelled or changed from
    /// `as_read` meanwhile.
    async fn resolve_pending(
        &self,
        id: i64,
        as_read: &PendingChanges,
        certificate: &NewCertificate<'_>,
        log: &LogEntry<'_>,
        now: i64,
    ) -> Result<Option<i64>>;
}

/// Keys generated ahead of demand and kept sealed (`[keys] stock`).
#[async_trait]
pub trait KeyStockRepository: Send + Sync {
    /// Adds sealed keys, in one transaction.
    async fn stock_keys(&self, keys: &[StockedKey], now: i64) -> Result<()>;
    /// Takes at most `limit` keys of `algorithm` out of the stock, oldest first: each is
    /// deleted as it is returned, so no other caller, in this daemon or another, gets it.
    async fn take_stocked_keys(
        &self,
        algorithm: lemur_hsm::KeyAlgorithm,
        limit: i64,
    ) -> Result<Vec<StockedKey>>;
    /// How many keys of each algorithm are stocked.
    async fn stocked_key_counts(&self) -> Result<Vec<(lemur_hsm::KeyAlgorithm, usize)>>;
}

/// The whole inventory.
#[async_trait]
pub trait Store:
    UserRepository
    + AuthorityRepository
    + CertificateRepository
    + DomainRepository
    + PendingRepository
    + KeyStockRepository
{
    /// Brings the schema up to date (safe to run concurrently from several daemons).
    async fn migrate(&self, now: i64) -> Result<()>;
    /// The rotation policy with this name, created with `days` if missing; its id.
    async fn ensure_rotation_policy(&self, name: &str, days: i64) -> Result<i64>;
    /// One round trip, for health checks.
    async fn ping(&self) -> Result<()>;
    /// `sqlite` or `postgresql`, for operators' messages.
    fn engine(&self) -> &'static str;
    /// Brings the query planner's statistics up to date where the engine leaves that to its
    /// user (SQLite); called now and then, and at [`close`](Self::close).
    async fn tidy(&self);
    /// Closes every connection (on shutdown).
    async fn close(&self);
}
