//! The local certificate authority, its keys in the HSM (Lemur's `cryptography-issuer`, done
//! right): create root and subordinate authorities, import a CA whose key is already in the token,
//! issue end-entity certificates from a CSR or with a key generated in the HSM, and import
//! certificates issued elsewhere.
//!
//! Every certificate goes through [`lint::before_signing`] before the HSM signs it and
//! [`lint::after_signing`] before it is stored; private keys are sealed by the HSM before they
//! reach the database.

pub mod lint;
pub mod material;
pub mod names;
pub mod profile;
pub mod x509;

mod authority;
mod issue;
mod upload;

pub use authority::{AuthorityKind, CreateAuthority, create_authority};
pub use issue::{IssueRequest, issue_certificate};
pub use upload::{UploadRequest, private_key_pem, upload_certificate};

use crate::app::App;
use crate::error::{Error, Result};
use lemur_hsm::{HsmSigner, KeyStore, KeyUri, Pkcs11KeyStore};
use std::sync::Arc;

/// Our issuer plugin's slug.
pub const PLUGIN_SLUG: &str = "hsm-issuer";
/// Lemur's local CA slug, accepted as an alias so Lemur clients work unchanged.
pub const LEMUR_PLUGIN_SLUG: &str = "cryptography-issuer";

/// Who asks for a change, as the audit log records it.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The user.
    pub user_id: i64,
    /// The client's address.
    pub source: Option<&'a str>,
}

/// Subject fields a request may set, falling back to the configured defaults.
#[derive(Debug, Clone, Default)]
pub struct SubjectFields {
    /// C.
    pub country: Option<String>,
    /// ST.
    pub state: Option<String>,
    /// L.
    pub location: Option<String>,
    /// O.
    pub organization: Option<String>,
    /// OU.
    pub organizational_unit: Option<String>,
}

impl SubjectFields {
    /// The subject with `common_name`, each field from the request or the defaults.
    pub fn subject(&self, common_name: &str, app: &App) -> profile::Subject {
        let defaults = &app.config.defaults;
        let pick = |given: &Option<String>, default: &str| {
            given.clone().unwrap_or_else(|| default.to_owned())
        };
        profile::Subject {
            common_name: common_name.to_owned(),
            country: pick(&self.country, &defaults.country),
            state: pick(&self.state, &defaults.state),
            location: pick(&self.location, &defaults.location),
            organization: pick(&self.organization, &defaults.organization),
            organizational_unit: pick(&self.organizational_unit, &defaults.organizational_unit),
        }
    }
}

/// A random serial number from the HSM's RNG. Refused, like key generation, while entropy health
/// is failing: the Baseline Requirements count on serials being unpredictable.
async fn random_serial(app: &App) -> Result<[u8; 16]> {
    app.entropy.ensure_healthy()?;
    app.hsm(serial_from).await
}

/// A serial number from the token's RNG (blocking: inside [`App::hsm`], after the entropy gate).
fn serial_from(keys: &Arc<Pkcs11KeyStore>) -> Result<[u8; 16]> {
    let mut bytes = [0u8; 16];
    keys.random(&mut bytes)?;
    Ok(profile::serial(bytes))
}

/// An rcgen signer for the HSM key `uri` (blocking: call inside [`App::hsm`]).
fn signer(keys: &Arc<Pkcs11KeyStore>, uri: &str) -> Result<HsmSigner> {
    let uri: KeyUri = uri.parse()?;
    let store: Arc<dyn KeyStore> = Arc::clone(keys) as Arc<dyn KeyStore>;
    HsmSigner::new(store, uri).map_err(Error::from)
}

/// The HSM signer's error, else rcgen's.
fn signing_error(signer: &HsmSigner, error: rcgen::Error) -> Error {
    match signer.take_error() {
        Some(hsm) => Error::Hsm(hsm),
        None => Error::Ca(format!("building the certificate failed: {error}")),
    }
}

/// The context a sealed private key is bound to: the certificate it belongs to.
pub fn key_context(body_sha256: &str) -> Vec<u8> {
    format!("lemur:certificate-private-key:{body_sha256}").into_bytes()
}
