//! Importing a certificate issued elsewhere (Lemur's `upload`), with its chain and private key,
//! and reading a stored private key back.

use super::issue::seal_pem;
use super::{Actor, key_context, x509};
use crate::app::App;
use crate::error::{Error, Result};
use crate::store::{CertificateRecord, LogEntry, NewCertificate};
use lemur_hsm::Sealer;
use zeroize::Zeroizing;

/// A validated upload. No `Debug`: it holds a private key.
#[derive(Clone)]
pub struct UploadRequest {
    /// Owner.
    pub owner: String,
    /// Description.
    pub description: String,
    /// Send expiry notifications.
    pub notify: bool,
    /// The certificate, PEM.
    pub body: String,
    /// Its chain, PEM, issuer first.
    pub chain: Option<String>,
    /// Its private key, PEM.
    pub private_key: Option<Zeroizing<String>>,
    /// Certificates it replaces.
    pub replaces: Vec<i64>,
}

/// Imports the certificate; returns its id. The key must match, the chain must verify, and the
/// same certificate cannot be imported twice.
pub async fn upload_certificate(
    app: &App,
    actor: Actor<'_>,
    request: UploadRequest,
) -> Result<i64> {
    if request.owner.trim().is_empty() {
        return Err(Error::invalid("owner", "is required"));
    }
    let mut bodies = x509::pem_certificates(&request.body, "body")?;
    if bodies.len() != 1 {
        return Err(Error::invalid(
            "body",
            "must hold exactly one certificate; put the issuers in chain",
        ));
    }
    let der = bodies.remove(0);
    let parsed = x509::parse(&der, "body")?;
    let chain = match request.chain.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(text) => {
            let chain = x509::pem_certificates(text, "chain")?;
            x509::verify_chain(&der, &chain)?;
            Some(
                chain
                    .iter()
                    .map(|c| x509::to_pem("CERTIFICATE", c))
                    .collect::<Vec<_>>()
                    .join(""),
            )
        }
        None => None,
    };
    let sealed = match &request.private_key {
        Some(key) if !key.trim().is_empty() => {
            let pkcs8 = x509::private_key_pkcs8(key)?;
            if x509::public_key_of_pkcs8(&pkcs8)? != parsed.spki {
                return Err(Error::invalid(
                    "privateKey",
                    "does not match the certificate's public key",
                ));
            }
            Some(
                seal_pem(
                    app,
                    Zeroizing::new(key.trim().to_owned() + "\n"),
                    &parsed.sha256,
                )
                .await?,
            )
        }
        _ => None,
    };
    let new = NewCertificate {
        parsed: &parsed,
        owner: &request.owner,
        description: &request.description,
        notify: request.notify,
        rotation: false,
        chain: chain.as_deref(),
        csr: None,
        sealed_private_key: sealed.as_deref(),
        authority_id: None,
        root_authority_id: None,
        user_id: Some(actor.user_id),
        rotation_policy_id: None,
        replaces: &request.replaces,
    };
    let log = LogEntry {
        certificate_id: None,
        log_type: "upload_cert",
        user_id: Some(actor.user_id),
        source_address: actor.source,
        details: &format!(
            "imported serial {} issued by {}",
            parsed.serial_hex, parsed.issuer
        ),
    };
    app.store.import_certificate(&new, &log).await
}

/// The certificate's private key as PEM, unsealed by the HSM; the view is audited.
pub async fn private_key_pem(
    app: &App,
    certificate: &CertificateRecord,
    actor: Actor<'_>,
) -> Result<Zeroizing<String>> {
    let sealed = app
        .store
        .sealed_private_key(certificate.id)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "private key of certificate",
            id: certificate.id.to_string(),
        })?;
    // The context comes from the body itself, not the stored `body_sha256`: a sealed key moved
    // to another row, or a hash column edited to match, then fails to open.
    let der = x509::pem_certificates(&certificate.body, "body")?
        .into_iter()
        .next()
        .unwrap_or_default();
    let sha256: String = ring::digest::digest(&ring::digest::SHA256, &der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let context = key_context(&sha256);
    let clear = app
        .hsm(move |keys| keys.unseal(&sealed, &context).map_err(Error::from))
        .await?;
    app.store
        .log(&LogEntry {
            certificate_id: Some(certificate.id),
            log_type: "key_view",
            user_id: Some(actor.user_id),
            source_address: actor.source,
            details: "",
        })
        .await?;
    String::from_utf8(clear.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| Error::Ca("a stored private key is not text".into()))
}
