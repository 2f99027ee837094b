//! `offline-issuer`: an authority whose CA key this daemon never holds: an offline root kept in
//! a safe, or a CA run by someone else. A request becomes a pending certificate holding the
//! CSR (the requester's own, or one made here for a key generated in the HSM, which is sealed
//! like every stored key); an operator has the CA sign it and uploads the result
//! (`POST /pending_certificates/{id}/upload`), which the domain checks against the order and
//! the authority before storing it as the certificate.

use super::{
    AuthorityPlan, AuthorityToCreate, CreatedAuthority, Issuance, IssuePlan, IssuerPlugin, Order,
    PluginInfo, PluginKind,
};
use crate::App;
use crate::ca::material::authority_certificate;
use crate::ca::{alt_names, lint, profile, x509};
use crate::error::{Error, Result};
use crate::model::{AuthorityRecord, CertificateRecord};
use async_trait::async_trait;
use lemur_hsm::KeyAlgorithm;
use zeroize::Zeroizing;

/// The offline issuer's slug.
pub const SLUG: &str = "offline-issuer";

/// Orders certificates from a CA that signs elsewhere.
pub struct OfflineIssuer {
    info: PluginInfo,
}

impl Default for OfflineIssuer {
    fn default() -> Self {
        Self {
            info: PluginInfo {
                slug: SLUG,
                aliases: &[],
                title: "Offline Issuer",
                description: "A CA whose key is elsewhere (an offline root, another organisation's CA): requests wait as pending certificates until the signed certificate is uploaded",
                kind: PluginKind::Issuer,
                options: Vec::new(),
            },
        }
    }
}

#[async_trait]
impl IssuerPlugin for OfflineIssuer {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn orders(&self) -> bool {
        true
    }

    /// Registers the CA certificate the request gives; there is no key to make or adopt.
    async fn create_authority(&self, app: &App, plan: &AuthorityPlan) -> Result<CreatedAuthority> {
        let AuthorityToCreate::External { body, chain } = &plan.kind else {
            return Err(Error::invalid(
                "body",
                format!(
                    "is required: {SLUG} registers an existing CA by its certificate (and chain), without keyUri"
                ),
            ));
        };
        let der = x509::first_certificate(body, "body")?;
        let parsed = x509::parse(&der, "body")?;
        if parsed.not_after <= app.clock.unix() {
            return Err(Error::invalid("body", "has expired"));
        }
        let chain = lint::self_signed_or_chained(&der, &parsed, chain.as_deref())?;
        Ok(CreatedAuthority {
            der,
            key_uri: None,
            chain,
            generated: false,
        })
    }

    async fn discard_authority(&self, _app: &App, _created: &CreatedAuthority) {}

    async fn issue(
        &self,
        app: &App,
        authority: &AuthorityRecord,
        plan: IssuePlan,
    ) -> Result<Issuance> {
        if plan.not_before.is_some() || plan.not_after.is_some() {
            return Err(Error::invalid(
                "validityEnd",
                "the CA that signs an order sets its validity: leave validityStart, validityEnd and validityYears out",
            ));
        }
        let order = match &plan.csr {
            Some(csr) => {
                // The CSR goes to the CA as it is: what it names is what is ordered.
                if !plan.alt_names.is_empty() {
                    return Err(Error::invalid(
                        "extensions.subAltNames",
                        "an order sends the CSR to the CA as it is: put these names in the CSR",
                    ));
                }
                if !plan.common_name.is_empty() && plan.common_name != csr.common_name {
                    return Err(Error::invalid(
                        "commonName",
                        "an order sends the CSR to the CA as it is: leave commonName out or give the CSR's",
                    ));
                }
                Order {
                    external_id: None,
                    csr: csr.pem.clone(),
                    common_name: csr.common_name.clone(),
                    dns_names: alt_names::plan(&csr.alt_names)?.dns,
                    key_type: csr.algorithm.lemur_name().to_owned(),
                    pkcs8: None,
                    details: format!("ordered from {} with the requester's CSR", authority.name),
                }
            }
            None => {
                let (common_name, alt_names) = alt_names::requested(&plan)?;
                let names = alt_names::plan(&alt_names)?;
                let mut subject = plan.subject.subject(&common_name, &app.config.defaults);
                if authority.cab_compliant {
                    subject.organizational_unit.clear();
                }
                subject.validate()?;
                let params = profile::request(&subject, names.sans)?;
                let pkcs8 = generate_key(app, plan.key).await?;
                let signer = rcgen::KeyPair::try_from(pkcs8.as_slice())
                    .map_err(|e| Error::Ca(format!("reading the generated key: {e}")))?;
                let csr = params
                    .serialize_request(&signer)
                    .and_then(|request| request.pem())
                    .map_err(|e| Error::Ca(format!("making the certificate request: {e}")))?;
                Order {
                    external_id: None,
                    csr,
                    common_name,
                    dns_names: names.dns,
                    key_type: plan.key.lemur_name().to_owned(),
                    pkcs8: Some(pkcs8),
                    details: format!(
                        "ordered from {} with a {} key generated in the HSM",
                        authority.name,
                        plan.key.lemur_name()
                    ),
                }
            }
        };
        Ok(Issuance::Ordered(order))
    }

    /// The CA is out of reach: the revocation is recorded here (and on no CRL of ours); the
    /// operator revokes it at the CA too. Refused for a certificate the CA did not sign.
    async fn revoke(
        &self,
        app: &App,
        authority: &AuthorityRecord,
        certificate: &CertificateRecord,
        _reason: &str,
    ) -> Result<()> {
        let ca = authority_certificate(app, authority).await?;
        let der = x509::first_certificate(&certificate.body, "body")?;
        if x509::signed_by(&der, &ca.der) {
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
}

/// A key for the order, generated in the HSM (or taken ready from the pool) after the entropy
/// gate, exported once as PKCS#8.
async fn generate_key(app: &App, algorithm: KeyAlgorithm) -> Result<Zeroizing<Vec<u8>>> {
    app.entropy.ensure_healthy()?;
    if let Some(ready) = app.key_pool.take(algorithm) {
        return Ok(ready.pkcs8);
    }
    app.hsm(move |keys| {
        keys.generate_exportable_key_pair(algorithm)
            .map(|pair| pair.pkcs8)
            .map_err(Error::from)
    })
    .await
}
