//! Issuing end-entity certificates from an authority: from a CSR, or with a key generated in the
//! HSM and handed back to be sealed before it is stored.

use super::{serial_from, signing_error};
use crate::App;
use crate::ca::material::signing_material;
use crate::ca::x509;
use crate::ca::{alt_names, lint, profile};
use crate::error::{Error, Result};
use crate::model::AuthorityRecord;
use crate::plugins::{IssuePlan, Issued};

/// Issues a certificate from `authority`: names and validity settled, checked, signed in the
/// HSM, checked again.
pub(super) async fn issue(
    app: &App,
    authority: &AuthorityRecord,
    request: IssuePlan,
) -> Result<Issued> {
    let material = signing_material(app, authority).await?;
    let ca = &material.certificate;
    let csr = request.csr.as_ref();
    let (common_name, alt_names) = alt_names::requested(&request)?;
    let names = alt_names::plan(&alt_names)?;
    let key_algorithm = csr.as_ref().map_or(request.key, |c| c.algorithm);
    let now = app.clock.unix();
    let not_before = request.not_before.unwrap_or((now - 60).max(ca.not_before));
    let default_secs = if authority.cab_compliant {
        (authority.default_validity_days * 86_400).min(lint::cabf_max_validity_secs(now)) - 1
    } else {
        authority.default_validity_days * 86_400
    };
    // A default validity stops where the authority's does; an explicit one must fit inside it.
    let not_after = request
        .not_after
        .unwrap_or((not_before + default_secs).min(ca.not_after));
    let max_days = authority
        .max_issuance_days
        .unwrap_or(ca.not_after.saturating_sub(ca.not_before) / 86_400 + 1);
    let plan = lint::Plan {
        common_name: &common_name,
        dns_names: &names.dns,
        ip_addresses: &names.ips,
        other_names: names.other,
        not_before,
        not_after,
    };
    let limits = lint::Limits {
        ca_not_before: ca.not_before,
        ca_not_after: ca.not_after,
        max_days,
        cab_compliant: authority.cab_compliant,
        signing_time: now,
        suffixes: app.suffixes.as_ref(),
    };
    lint::before_signing(&plan, &limits)?;
    let mut subject = request.subject.subject(&common_name, &app.config.defaults);
    if authority.cab_compliant {
        // The Baseline Requirements prohibit organizationalUnitName in subscriber certificates.
        subject.organizational_unit.clear();
    }
    subject.validate()?;
    app.entropy.ensure_healthy()?;
    let distribution = profile::Distribution {
        crl_url: authority.crl_url.clone(),
        issuer_url: authority.issuer_url.clone(),
    };
    let baseline = authority.cab_compliant;
    let alt_names = names.sans.clone();
    let csr_key = csr.as_ref().map(|c| c.key.clone());
    // A key generated ahead of demand, when one is ready (see `ca::key_pool`).
    let ready_key = match csr_key {
        None => app.key_pool.take(key_algorithm),
        Some(_) => None,
    };
    let signing = std::sync::Arc::clone(&material);
    // One trip to the HSM thread pool for the serial, any key generation and the signature.
    let (der, pkcs8, serial) = app
        .hsm(move |keys| {
            let serial = serial_from(keys.as_ref())?;
            let params = profile::end_entity(profile::EndEntity {
                subject: &subject,
                alt_names,
                not_before,
                not_after,
                serial: &serial,
                key: key_algorithm,
                distribution: &distribution,
                baseline,
            })?;
            let (subject_key, pkcs8) = match csr_key {
                Some(key) => (profile::SubjectKey::new(key_algorithm, key), None),
                None => {
                    let pair = match ready_key {
                        Some(pair) => pair,
                        None => keys.generate_exportable_key_pair(key_algorithm)?,
                    };
                    (
                        profile::SubjectKey::new(key_algorithm, pair.public.key_bytes().to_vec()),
                        Some(pair.pkcs8),
                    )
                }
            };
            let ca_signer = signing
                .signer(std::sync::Arc::clone(keys) as std::sync::Arc<dyn lemur_hsm::KeyStore>);
            let issuer = rcgen::Issuer::from_ca_cert_der(
                &signing.certificate.der.as_slice().into(),
                &ca_signer,
            )
            .map_err(|e| Error::Ca(format!("reading the authority certificate: {e}")))?;
            let certificate = params
                .signed_by(&subject_key, &issuer)
                .map_err(|e| signing_error(&ca_signer, e))?;
            Ok((certificate.der().to_vec(), pkcs8, serial))
        })
        .await?;
    let parsed = x509::parse(&der, "certificate")?;
    let serial_hex = x509::hex(&serial).to_uppercase();
    lint::after_signing(&parsed, &serial_hex, &plan)?;
    Ok(Issued {
        details: format!("issued serial {} by {}", parsed.serial_hex, authority.name),
        certificate: parsed,
        chain: material.chain.clone(),
        pkcs8,
    })
}
