//! `hsm-issuer`: the local certificate authority whose keys live in the HSM (Lemur's
//! `cryptography-issuer`, done right). Creates root and subordinate authorities, adopts a CA
//! whose key is already in the token, issues end-entity certificates from a CSR or with a key
//! generated in the HSM, and revokes what it issued.
//!
//! Every certificate goes through [`lint::before_signing`](crate::ca::lint::before_signing)
//! before the HSM signs it and [`lint::after_signing`](crate::ca::lint::after_signing) after.

mod authority;
mod crl;
mod leaf;

use super::{
    AuthorityPlan, CreatedAuthority, CrlPlan, Issuance, IssuePlan, IssuerPlugin, PluginInfo,
    PluginKind,
};
use crate::App;
use crate::ca::material::signing_material;
use crate::ca::{profile, x509};
use crate::error::{Error, Result};
use crate::model::{AuthorityRecord, CertificateRecord};
use async_trait::async_trait;
use lemur_hsm::{HsmSigner, KeyStore, KeyUri};
use std::sync::Arc;

/// Our issuer plugin's slug.
pub const SLUG: &str = "hsm-issuer";
/// Lemur's local CA slug, accepted as an alias so Lemur clients work unchanged.
pub const LEMUR_SLUG: &str = "cryptography-issuer";

/// The HSM-backed local CA.
pub struct HsmIssuer {
    info: PluginInfo,
}

impl Default for HsmIssuer {
    fn default() -> Self {
        Self {
            info: PluginInfo {
                slug: SLUG,
                aliases: &[LEMUR_SLUG],
                title: "HSM Issuer",
                description: "Local certificate authority whose keys live in the HSM",
                kind: PluginKind::Issuer,
                options: Vec::new(),
            },
        }
    }
}

#[async_trait]
impl IssuerPlugin for HsmIssuer {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    async fn create_authority(&self, app: &App, plan: &AuthorityPlan) -> Result<CreatedAuthority> {
        authority::create(app, plan).await
    }

    async fn discard_authority(&self, app: &App, created: &CreatedAuthority) {
        if let (true, Some(key_uri)) = (created.generated, &created.key_uri) {
            authority::discard_key(app, key_uri).await;
        }
    }

    async fn issue(
        &self,
        app: &App,
        authority: &AuthorityRecord,
        plan: IssuePlan,
    ) -> Result<Issuance> {
        leaf::issue(app, authority, plan)
            .await
            .map(|issued| Issuance::Issued(Box::new(issued)))
    }

    /// The local CA keeps its revocations in the inventory, where the domain records them, so
    /// there is no one else to tell; it checks that the certificate really is signed by the
    /// authority's key.
    async fn revoke(
        &self,
        app: &App,
        authority: &AuthorityRecord,
        certificate: &CertificateRecord,
        _reason: &str,
    ) -> Result<()> {
        let material = signing_material(app, authority).await?;
        let der = x509::first_certificate(&certificate.body, "body")?;
        if x509::signed_by(&der, &material.certificate.der) {
            Ok(())
        } else {
            Err(Error::invalid(
                "id",
                format!(
                    "certificate {} is not signed by authority {}",
                    certificate.id, authority.name
                ),
            ))
        }
    }

    /// The local CA publishes its own CRLs: the daemon serves them (`GET /crl/{name}`).
    async fn crl(
        &self,
        app: &App,
        authority: &AuthorityRecord,
        plan: &CrlPlan<'_>,
    ) -> Result<Option<Vec<u8>>> {
        crl::sign(app, authority, plan).await.map(Some)
    }
}

/// A random serial number from the HSM's RNG. Refused, like key generation, while entropy health
/// is failing: the Baseline Requirements count on serials being unpredictable.
async fn random_serial(app: &App) -> Result<[u8; 16]> {
    app.entropy.ensure_healthy()?;
    app.hsm(|keys| serial_from(keys.as_ref())).await
}

/// A serial number from the token's RNG (blocking: inside [`App::hsm`], after the entropy gate).
fn serial_from(keys: &dyn KeyStore) -> Result<[u8; 16]> {
    let mut bytes = [0u8; 16];
    keys.random(&mut bytes)?;
    Ok(profile::serial(bytes))
}

/// An rcgen signer for the HSM key `uri`, reading its public key from the token (blocking).
fn signer(keys: Arc<dyn KeyStore>, uri: &str) -> Result<HsmSigner> {
    let uri: KeyUri = uri.parse()?;
    HsmSigner::new(keys, uri).map_err(Error::from)
}

/// The HSM signer's error, else rcgen's.
fn signing_error(signer: &HsmSigner, error: rcgen::Error) -> Error {
    match signer.take_error() {
        Some(hsm) => Error::Hsm(hsm),
        None => Error::Ca(format!("building the certificate failed: {error}")),
    }
}
