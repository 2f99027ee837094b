//! Creating authorities: a root (key generated in the HSM, self-signed), a subordinate CA signed
//! by a parent authority, or an existing CA whose key is already in the token.

use super::{random_serial, signer, signing_error};
use crate::App;
use crate::ca::material::{SigningMaterial, signing_material};
use crate::ca::{lint, profile, x509};
use crate::error::{Error, Result};
use crate::model::AuthorityRecord;
use crate::plugins::{AuthorityPlan, AuthorityToCreate, CreatedAuthority};
use lemur_hsm::{KeyAlgorithm, KeyStore, KeyUri};
use std::sync::Arc;

/// Makes the authority's certificate and key: generated in the token, or adopted from it.
pub(super) async fn create(app: &App, plan: &AuthorityPlan) -> Result<CreatedAuthority> {
    match &plan.kind {
        AuthorityToCreate::Import {
            body,
            key_uri,
            chain,
        } => import(app, body, key_uri, chain.as_deref()).await,
        AuthorityToCreate::External { .. } => Err(Error::invalid(
            "keyUri",
            format!(
                "is required: {} signs with a CA key in the HSM; a CA whose key is elsewhere is registered with the {} plugin",
                super::SLUG,
                crate::plugins::offline_issuer::SLUG
            ),
        )),
        AuthorityToCreate::Root => generate(app, plan, None).await,
        AuthorityToCreate::SubCa { parent } => generate(app, plan, Some(parent)).await,
    }
}

/// Destroys a CA key generated for an authority that could not be stored, so failed requests
/// leave no orphan keys in the token. Best effort: a failure is logged with the key to remove.
pub(super) async fn discard_key(app: &App, key_uri: &str) {
    let Ok(uri) = key_uri.parse::<KeyUri>() else {
        return;
    };
    if let Err(error) = app
        .hsm(move |keys| keys.destroy(&uri).map_err(Error::from))
        .await
    {
        log::warn!(
            "could not remove the unused CA key {key_uri}: {error}; remove it with lemur-hsm"
        );
    }
}

/// Generates the CA key in the HSM and signs the CA certificate (self-signed or by `parent`).
async fn generate(
    app: &App,
    request: &AuthorityPlan,
    parent: Option<&AuthorityRecord>,
) -> Result<CreatedAuthority> {
    if request.not_after <= request.not_before {
        return Err(Error::invalid("validityEnd", "must be after validityStart"));
    }
    let parent_material = match parent {
        Some(parent) => {
            let material = signing_material(app, parent).await?;
            if material.certificate.path_len == Some(0) {
                return Err(Error::invalid(
                    "parent",
                    format!(
                        "authority {} may only issue end-entity certificates (its path length is 0); choose a root or an authority allowed to sign CAs",
                        parent.name
                    ),
                ));
            }
            if request.not_before < material.certificate.not_before
                || request.not_after > material.certificate.not_after
            {
                return Err(Error::invalid(
                    "validityEnd",
                    format!(
                        "must lie inside the validity of parent authority {}",
                        parent.name
                    ),
                ));
            }
            Some(material)
        }
        None => None,
    };
    let distribution = parent_distribution(parent, request.cab_compliant)?;
    let subject = request
        .subject
        .subject(&request.common_name, &app.config.defaults);
    subject.validate()?;
    // Drawn once the request is known to be valid: bad input is a 400 even while entropy fails.
    let serial = random_serial(app).await?;
    let params = profile::authority(profile::Authority {
        subject: &subject,
        not_before: request.not_before,
        not_after: request.not_after,
        serial: &serial,
        sub_ca: parent_material.as_ref().map(|parent| {
            parent
                .certificate
                .path_len
                .map_or(0, |n| n.saturating_sub(1))
        }),
        distribution: &distribution,
        baseline: request.cab_compliant,
        permitted_domains: request.permitted_domains.as_deref(),
    })?;
    let label = format!(
        "lemur-ca-{}-{}",
        request.name,
        crate::files::random_hex(4)?.as_str()
    );
    let algorithm = request.key;
    let parent_for_signing = parent_material.clone();
    let (der, key_uri) = app
        .hsm(move |keys| {
            let info = keys.generate_key_pair(&label, algorithm, false)?;
            let key_uri = info.uri.to_string();
            let signed = sign_authority(
                Arc::clone(keys) as Arc<dyn KeyStore>,
                &key_uri,
                algorithm,
                &params,
                parent_for_signing,
            );
            if signed.is_err() {
                // Leave no orphan key behind a failed request.
                let _ = keys.destroy(&info.uri);
            }
            Ok((signed?, key_uri))
        })
        .await?;
    let issuer_der = parent_material
        .as_ref()
        .map_or(der.as_slice(), |parent| parent.certificate.der.as_slice());
    if !x509::signed_by(&der, issuer_der) {
        discard_key(app, &key_uri).await;
        return Err(Error::Ca(
            "the new CA certificate does not verify; it was not stored".into(),
        ));
    }
    Ok(CreatedAuthority {
        der,
        key_uri: Some(key_uri),
        chain: parent_material.map(|parent| parent.chain.clone()),
        generated: true,
    })
}

/// Signs the new CA certificate whose key is `key_uri`: self-signed, or by `parent` (blocking:
/// inside [`App::hsm`]).
fn sign_authority(
    keys: Arc<dyn KeyStore>,
    key_uri: &str,
    algorithm: KeyAlgorithm,
    params: &rcgen::CertificateParams,
    parent: Option<Arc<SigningMaterial>>,
) -> Result<Vec<u8>> {
    let own = signer(Arc::clone(&keys), key_uri)?;
    let certificate = match parent {
        None => params
            .self_signed(&own)
            .map_err(|e| signing_error(&own, e))?,
        Some(parent) => {
            let parent_signer = parent.signer(keys);
            let issuer = rcgen::Issuer::from_ca_cert_der(
                &parent.certificate.der.as_slice().into(),
                &parent_signer,
            )
            .map_err(|e| Error::Ca(format!("reading the parent certificate: {e}")))?;
            let subject_key =
                profile::SubjectKey::new(algorithm, own.public_key().key_bytes().to_vec());
            params
                .signed_by(&subject_key, &issuer)
                .map_err(|e| signing_error(&parent_signer, e))?
        }
    };
    Ok(certificate.der().to_vec())
}

/// Where a sub-CA's certificate points relying parties: its parent's CRL (which would revoke it)
/// and certificate. The Baseline Requirements make the CRL mandatory for a subordinate CA.
fn parent_distribution(
    parent: Option<&AuthorityRecord>,
    cab_compliant: bool,
) -> Result<profile::Distribution> {
    let Some(parent) = parent else {
        return Ok(profile::Distribution::default());
    };
    if cab_compliant && parent.crl_url.is_none() {
        return Err(Error::invalid(
            "parent",
            format!(
                "authority {} has no crlUrl; a CA/Browser Forum compliant subordinate CA must point at its parent's CRL",
                parent.name
            ),
        ));
    }
    Ok(profile::Distribution {
        crl_url: parent.crl_url.clone(),
        issuer_url: parent.issuer_url.clone(),
    })
}

/// Adopts an existing CA certificate whose key is already in the token.
async fn import(
    app: &App,
    body: &str,
    key_uri: &str,
    chain: Option<&str>,
) -> Result<CreatedAuthority> {
    let uri: KeyUri = key_uri
        .parse()
        .map_err(|e: lemur_hsm::Error| Error::invalid("keyUri", e.to_string()))?;
    let der = x509::first_certificate(body, "body")?;
    let parsed = x509::parse(&der, "body")?;
    let lookup = uri.clone();
    // The key must not be able to leave the token: an adopted CA key that is extractable or
    // not sensitive would make this CA's security no better than its copies'.
    let public = app
        .hsm(move |keys| {
            keys.describe(&lookup)?.ensure_protected()?;
            keys.public_key(&lookup).map_err(Error::from)
        })
        .await
        .map_err(|e| {
            // An HSM that is away is an outage (503), not a bad key URI.
            if e.is_transient() {
                e
            } else {
                Error::invalid("keyUri", e.to_string())
            }
        })?;
    if public.spki_der() != parsed.spki {
        return Err(Error::invalid(
            "keyUri",
            "the key in the token does not match the certificate",
        ));
    }
    let chain = lint::self_signed_or_chained(&der, &parsed, chain)?;
    Ok(CreatedAuthority {
        der,
        key_uri: Some(uri.to_string()),
        chain,
        generated: false,
    })
}
