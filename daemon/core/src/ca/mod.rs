//! X.509 machinery of the local certificate authority: parsing ([`x509`]), the certificate
//! profiles ([`profile`]), the checks before and after signing ([`lint`]), Lemur's certificate
//! names ([`names`]) and the cached signing material of each authority ([`material`]).

pub mod alt_names;
pub mod key_pool;
pub mod key_stock;
pub mod lint;
pub mod material;
pub mod names;
pub mod profile;
pub mod suffixes;
pub mod x509;

use crate::config::Defaults;

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
    pub fn subject(&self, common_name: &str, defaults: &Defaults) -> profile::Subject {
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

/// The context a sealed private key is bound to: the certificate it belongs to.
pub fn key_context(body_sha256: &str) -> Vec<u8> {
    format!("lemur:certificate-private-key:{body_sha256}").into_bytes()
}

/// The context a pending certificate's sealed private key is bound to: the request it was made
/// for (it has no certificate yet), from the CSR's PEM itself.
pub fn pending_key_context(csr: &str) -> crate::error::Result<Vec<u8>> {
    let block = pem::parse(csr).map_err(|e| crate::error::Error::invalid("csr", e.to_string()))?;
    Ok(format!(
        "lemur:pending-private-key:{}",
        x509::sha256_hex(block.contents())
    )
    .into_bytes())
}

/// The context of the key of the certificate whose PEM body is `body`, from the body itself
/// (not a stored hash: a sealed key moved to another row, or a hash column edited to match,
/// then fails to open).
pub fn key_context_of(body: &str) -> crate::error::Result<Vec<u8>> {
    let der = x509::first_certificate(body, "body")?;
    Ok(key_context(&x509::sha256_hex(&der)))
}
