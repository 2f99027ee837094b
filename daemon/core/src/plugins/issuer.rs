//! The issuer seam: an issuer creates authorities, issues certificates from them and revokes
//! them. The domain around it authorizes, validates the request's shape, seals any private key,
//! stores and audits; the issuer builds, checks, signs and tells its CA.

use super::PluginInfo;
use crate::App;
use crate::ca::SubjectFields;
use crate::ca::x509::{AltName, ParsedCertificate, ParsedCsr};
use crate::error::Result;
use crate::model::{AuthorityRecord, CertificateRecord, PendingRecord, RevokedCertificate};
use async_trait::async_trait;
use lemur_hsm::KeyAlgorithm;
use zeroize::Zeroizing;

/// What kind of authority to create.
#[derive(Debug, Clone)]
pub enum AuthorityToCreate {
    /// A self-signed root.
    Root,
    /// A subordinate CA signed by `parent`.
    SubCa {
        /// The parent authority.
        parent: Box<AuthorityRecord>,
    },
    /// An existing CA whose key is somewhere this daemon does not reach (an offline root, another
    /// organisation's CA): the CA certificate alone, for an issuer that hands requests on.
    External {
        /// The CA certificate, PEM.
        body: String,
        /// Its issuers up to the root, PEM (required unless it is self-signed).
        chain: Option<String>,
    },
    /// An existing CA certificate whose private key is already in the token.
    Import {
        /// The CA certificate, PEM.
        body: String,
        /// The key's PKCS#11 URI.
        key_uri: String,
        /// Its issuers up to the root, PEM (required unless it is self-signed).
        chain: Option<String>,
    },
}

/// A validated request to create an authority, as an issuer sees it.
#[derive(Debug, Clone)]
pub struct AuthorityPlan {
    /// Unique name.
    pub name: String,
    /// CN of the CA certificate.
    pub common_name: String,
    /// Root, sub-CA or import.
    pub kind: AuthorityToCreate,
    /// CA key algorithm.
    pub key: KeyAlgorithm,
    /// Validity of the CA certificate.
    pub not_before: i64,
    /// Validity of the CA certificate.
    pub not_after: i64,
    /// Subject fields.
    pub subject: SubjectFields,
    /// Apply the CA/Browser Forum rules.
    pub cab_compliant: bool,
    /// The domains it may issue for, for its certificate's nameConstraints; any when `None`.
    pub permitted_domains: Option<Vec<String>>,
}

/// A new authority's certificate and key, not yet stored.
#[derive(Debug, Clone)]
pub struct CreatedAuthority {
    /// The CA certificate, DER.
    pub der: Vec<u8>,
    /// Its key's URI; `None` when the key is not in the HSM (an external CA).
    pub key_uri: Option<String>,
    /// Its issuers up to the root, PEM.
    pub chain: Option<String>,
    /// The key was made for this authority (and is destroyed if it cannot be stored).
    pub generated: bool,
}

/// A validated request to issue a certificate, as an issuer sees it.
#[derive(Debug, Clone)]
pub struct IssuePlan {
    /// Subject CN (taken from the CSR when one is given and this is empty).
    pub common_name: String,
    /// Subject alternative names (added to the CSR's).
    pub alt_names: Vec<AltName>,
    /// Validity start; now when absent.
    pub not_before: Option<i64>,
    /// Validity end; the authority's default validity when absent.
    pub not_after: Option<i64>,
    /// A CSR (its signature verified): the subject's own key.
    pub csr: Option<ParsedCsr>,
    /// Key to generate when there is no CSR.
    pub key: KeyAlgorithm,
    /// Subject fields.
    pub subject: SubjectFields,
}

/// An issued certificate, not yet stored. No `Debug`: it may hold a private key.
pub struct Issued {
    /// The certificate, parsed (it carries its DER and PEM), checked after signing.
    pub certificate: ParsedCertificate,
    /// Its chain, PEM, issuer first.
    pub chain: String,
    /// The private key generated for it, PKCS#8 DER, to be sealed before it is stored.
    pub pkcs8: Option<Zeroizing<Vec<u8>>>,
    /// What the audit row says of it.
    pub details: String,
}

/// What an issuer answers a request with: the certificate, or an order the CA answers later.
pub enum Issuance {
    /// Signed now.
    Issued(Box<Issued>),
    /// Handed to the CA, which answers later: stored as a pending certificate until then.
    Ordered(Order),
}

/// A request handed to a CA that answers later. No `Debug`: it may hold a private key.
pub struct Order {
    /// The order's id at the CA, when it gives one.
    pub external_id: Option<String>,
    /// The request the CA signs, PEM: the requester's CSR, or one made here for `pkcs8`.
    pub csr: String,
    /// The subject CN asked for.
    pub common_name: String,
    /// The DNS names the request to the CA carries, lower-case.
    pub dns_names: Vec<String>,
    /// The key's type, Lemur's name.
    pub key_type: String,
    /// The private key generated for it, PKCS#8 DER, to be sealed before it is stored.
    pub pkcs8: Option<Zeroizing<Vec<u8>>>,
    /// What the audit row says of it.
    pub details: String,
}

/// A certificate revocation list to sign.
#[derive(Debug, Clone, Copy)]
pub struct CrlPlan<'a> {
    /// The certificates it lists.
    pub revoked: &'a [RevokedCertificate],
    /// When it is made (Unix seconds).
    pub this_update: i64,
    /// When the next one will be made, at the latest.
    pub next_update: i64,
    /// Its CRL number: greater than every earlier one's.
    pub number: u64,
}

/// A certificate authority behind a plugin.
#[async_trait]
pub trait IssuerPlugin: Send + Sync {
    /// What the plugin is.
    fn info(&self) -> &PluginInfo;
    /// Whether it answers requests with orders a CA signs later ([`Issuance::Ordered`]) rather
    /// than with certificates.
    fn orders(&self) -> bool {
        false
    }
    /// Makes (or adopts) an authority's certificate and key.
    async fn create_authority(&self, app: &App, plan: &AuthorityPlan) -> Result<CreatedAuthority>;
    /// Undoes [`IssuerPlugin::create_authority`] when the authority could not be stored, so a
    /// failed request leaves nothing behind. Best effort: failures are logged.
    async fn discard_authority(&self, app: &App, created: &CreatedAuthority);
    /// Issues a certificate from `authority`, or orders it from the CA behind the plugin.
    async fn issue(
        &self,
        app: &App,
        authority: &AuthorityRecord,
        plan: IssuePlan,
    ) -> Result<Issuance>;
    /// Cancels an order at the CA before the domain deletes its pending certificate (Lemur's
    /// `cancel_ordered_certificate`). Nothing to do for a CA that keeps no orders.
    async fn cancel_order(
        &self,
        _app: &App,
        _authority: &AuthorityRecord,
        _pending: &PendingRecord,
        _note: &str,
    ) -> Result<()> {
        Ok(())
    }
    /// Revokes a certificate `authority` issued, for `reason` (an RFC 5280 CRLReason name), at
    /// the CA behind the plugin. The domain records the revocation once this succeeds. Must be
    /// idempotent: two requests racing may both call it, and a certificate the CA already
    /// counts as revoked is a success.
    async fn revoke(
        &self,
        app: &App,
        authority: &AuthorityRecord,
        certificate: &CertificateRecord,
        reason: &str,
    ) -> Result<()>;
    /// The authority's CRL as `plan` says, DER, signed by the authority; `None` when the CA
    /// behind the plugin publishes its own.
    async fn crl(
        &self,
        _app: &App,
        _authority: &AuthorityRecord,
        _plan: &CrlPlan<'_>,
    ) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}
