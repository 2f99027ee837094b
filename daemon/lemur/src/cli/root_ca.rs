//! A root CA made in the token on first use, and the HTTPS certificate it issues for the daemon's
//! own front end (`[frontend]`): `lemur dev` serves with one from its dev CA, the appliance's
//! nginx with one from the appliance CA. Clients are told the root's SHA-256 fingerprint, to
//! check before they trust it.

use lemur_core::ca::x509;
use lemur_core::config::FrontendConfig;
use lemur_core::policy::Subject;
use lemur_core::{App, Error, Result};
use std::path::{Path, PathBuf};

/// The root CA to make when it does not exist.
pub struct RootCa<'a> {
    /// The authority's name.
    pub name: &'a str,
    /// Its owner, and the system subject that creates it.
    pub owner: &'static str,
    /// The certificate's CN.
    pub common_name: &'a str,
    /// Why it exists, for the inventory.
    pub description: &'a str,
    /// Years it is valid.
    pub validity_years: i64,
    /// Where relying parties fetch its CRL, named in what it issues.
    pub crl_url: Option<&'a str>,
}

/// The root, for a client to trust: where it was written, and its fingerprint.
pub struct Trust {
    /// The root's PEM file.
    pub file: PathBuf,
    /// SHA-256 of its DER, as `AB:CD:...`.
    pub fingerprint: String,
}

/// Creates the root CA on first use, has the front end's certificate issued by it (or finds it
/// current), and writes the root to `root_file` (when it changed) for clients to trust.
pub async fn issue_frontend(
    app: &App,
    ca: &RootCa<'_>,
    frontend: &FrontendConfig,
    root_file: &Path,
) -> Result<Trust> {
    let subject = Subject::System(ca.owner);
    let id = match app.store.authority_by_name(ca.name).await? {
        Some(authority) => authority.id,
        None => create(app, &subject, ca).await?,
    };
    lemur_core::frontend::ensure(app, frontend).await?;
    let root = lemur_core::authorities::get(app, &subject, id)
        .await?
        .certificate
        .ok_or_else(|| Error::Ca(format!("the authority {} has no certificate", ca.name)))?;
    lemur_core::files::replace_if_changed(root_file, root.body.as_bytes(), 0o644)?;
    let der = x509::first_certificate(&root.body, "authority")?;
    Ok(Trust {
        file: root_file.to_owned(),
        fingerprint: fingerprint(&der),
    })
}

async fn create(app: &App, subject: &Subject, ca: &RootCa<'_>) -> Result<i64> {
    let mut request = serde_json::json!({
        "name": ca.name, "owner": ca.owner, "commonName": ca.common_name,
        "type": "root", "keyType": "ECCPRIME256V1", "validityYears": ca.validity_years,
        "description": ca.description,
    });
    if let Some(url) = ca.crl_url {
        request["crlUrl"] = url.into();
    }
    let request = serde_json::from_value(request)
        .map_err(|e| Error::Ca(format!("the request for the CA {}: {e}", ca.name)))?;
    let id = lemur_core::authorities::create(app, subject, request).await?;
    println!("created the CA {:?} (authority {id}) in the token", ca.name);
    Ok(id)
}

/// SHA-256 of `der` as browsers show it: upper-case hex pairs joined by colons.
fn fingerprint(der: &[u8]) -> String {
    x509::sha256_hex(der)
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}
