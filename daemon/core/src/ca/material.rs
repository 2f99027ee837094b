//! What signing under an authority needs, read once per authority certificate: the CA
//! certificate (parsed), the chain handed out with what it signs, and the public half of its HSM
//! key, checked against the certificate.
//!
//! Issuance is the hot path; without the cache every certificate would re-read the authority's
//! certificate row, re-parse it and ask the token for the public key. Certificate rows never
//! change, so an entry keyed by the authority's certificate id cannot go stale; an authority that
//! gets a new certificate or key simply misses and is read afresh.

use super::x509::{self, ParsedCertificate};
use crate::App;
use crate::error::{Error, Result};
use crate::model::AuthorityRecord;
use lemur_hsm::{HsmSigner, KeyStore, KeyUri, PublicKey};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

/// An authority's signing material.
pub struct SigningMaterial {
    /// The authority's certificate.
    pub certificate: ParsedCertificate,
    /// The PEM chain given out with what it signs: its certificate, then the chain above it.
    pub chain: String,
    /// The HSM key that signs.
    pub key: KeyUri,
    /// The key's public half, as the token reports it (equal to the certificate's).
    pub public_key: PublicKey,
}

impl SigningMaterial {
    /// An rcgen signer with the authority's key (blocking use: inside [`App::hsm`]).
    pub fn signer(&self, keys: Arc<dyn KeyStore>) -> HsmSigner {
        HsmSigner::with_public_key(keys, self.key.clone(), self.public_key.clone())
    }
}

/// Signing material by authority certificate id. Holds one entry per authority in use, a few
/// kilobytes each.
#[derive(Default)]
pub struct SigningCache {
    entries: RwLock<HashMap<i64, Arc<SigningMaterial>>>,
}

impl SigningCache {
    fn lookup(&self, certificate_id: i64, key: &str) -> Option<Arc<SigningMaterial>> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&certificate_id)
            .filter(|material| material.key.to_string() == key)
            .cloned()
    }

    fn keep(&self, certificate_id: i64, material: Arc<SigningMaterial>) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(certificate_id, material);
    }
}

/// The signing material of `authority`, from the cache or read and checked.
pub async fn signing_material(
    app: &App,
    authority: &AuthorityRecord,
) -> Result<Arc<SigningMaterial>> {
    let certificate_id = authority
        .authority_certificate_id
        .ok_or_else(|| Error::Ca(format!("authority {} has no certificate", authority.name)))?;
    let key_uri = authority
        .key_uri
        .as_deref()
        .ok_or_else(|| Error::Ca(format!("authority {} has no key", authority.name)))?;
    if let Some(material) = app.signing.lookup(certificate_id, key_uri) {
        return Ok(material);
    }
    let material = Arc::new(read(app, authority, key_uri).await?);
    app.signing.keep(certificate_id, Arc::clone(&material));
    Ok(material)
}

async fn read(app: &App, authority: &AuthorityRecord, key_uri: &str) -> Result<SigningMaterial> {
    let AuthorityCertificate {
        der,
        chain_from_it: chain,
    } = authority_certificate(app, authority).await?;
    let certificate = x509::parse(&der, "authority")?;
    let key: KeyUri = key_uri.parse()?;
    let lookup = key.clone();
    let public_key = app
        .hsm(move |keys| keys.public_key(&lookup).map_err(Error::from))
        .await?;
    if public_key.spki_der() != certificate.spki {
        return Err(Error::Ca(format!(
            "the key of authority {} in the token ({key}) does not match its certificate",
            authority.name
        )));
    }
    Ok(SigningMaterial {
        certificate,
        chain,
        key,
        public_key,
    })
}

/// An authority's own certificate, whoever holds its key.
pub struct AuthorityCertificate {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The chain of what it issues, PEM: the certificate, then its issuers.
    pub chain_from_it: String,
}

/// The certificate of `authority`, as stored with it.
pub async fn authority_certificate(
    app: &App,
    authority: &AuthorityRecord,
) -> Result<AuthorityCertificate> {
    let missing = || {
        Error::Ca(format!(
            "the certificate of authority {} is missing",
            authority.name
        ))
    };
    let id = authority.authority_certificate_id.ok_or_else(missing)?;
    let record = app.store.certificate(id).await?.ok_or_else(missing)?;
    let der = x509::first_certificate(&record.body, "body")?;
    let chain_from_it = match &record.chain {
        Some(above) if !above.trim().is_empty() => {
            format!("{}\n{}", record.body.trim_end(), above.trim_end())
        }
        _ => record.body.trim_end().to_owned(),
    };
    Ok(AuthorityCertificate { der, chain_from_it })
}
