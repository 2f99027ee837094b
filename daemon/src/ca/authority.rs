//! Creating authorities: a root (key generated in the HSM, self-signed), a subordinate CA signed
//! by a parent authority, or an existing CA whose key is already in the token.

use super::material::signing_material;
use super::{
    Actor, PLUGIN_SLUG, SubjectFields, lint, profile, random_serial, signer, signing_error, x509,
};
use crate::app::App;
use crate::error::{Error, Result};
use crate::store::{LogEntry, NewAuthority, NewCertificate};
use lemur_hsm::{KeyAlgorithm, KeyStore, KeyUri};

/// What kind of authority to create.
#[derive(Debug, Clone)]
pub enum AuthorityKind {
    /// A self-signed root.
    Root,
    /// A subordinate CA signed by the authority with this id.
    SubCa {
        /// The parent authority.
        parent_id: i64,
    },
    /// An existing CA certificate whose private key is already in the token.
    Import {
        /// The CA certificate, PEM.
        body: String,
        /// The key's PKCS#11 URI.
        key_uri: String,
        /// Its issuers up to the root, PEM (required unless it is self-signed), handed out with
        /// everything it issues.
        chain: Option<String>,
    },
}

/// A validated request to create an authority.
#[derive(Debug, Clone)]
pub struct CreateAuthority {
    /// Unique name.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// Description.
    pub description: String,
    /// CN of the CA certificate.
    pub common_name: String,
    /// Root, sub-CA or import.
    pub kind: AuthorityKind,
    /// CA key algorithm.
    pub key: KeyAlgorithm,
    /// Validity of the CA certificate.
    pub not_before: i64,
    /// Validity of the CA certificate.
    pub not_after: i64,
    /// Subject fields.
    pub subject: SubjectFields,
    /// Apply the CA/Browser Forum rules to what it issues.
    pub cab_compliant: bool,
    /// Longest validity it issues, in days.
    pub max_issuance_days: Option<i64>,
    /// Default validity it issues, in days.
    pub default_validity_days: Option<i64>,
    /// CRL distribution point for what it issues.
    pub crl_url: Option<String>,
    /// caIssuers URL for what it issues.
    pub issuer_url: Option<String>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Creates the authority; returns its id.
pub async fn create_authority(
    app: &App,
    actor: Actor<'_>,
    request: CreateAuthority,
) -> Result<i64> {
    if !valid_name(&request.name) {
        return Err(Error::invalid(
            "name",
            "use 1 to 128 letters, digits, '-', '_' or '.'",
        ));
    }
    if request.owner.trim().is_empty() {
        return Err(Error::invalid("owner", "is required"));
    }
    if request.common_name.trim().is_empty() {
        return Err(Error::invalid("commonName", "is required"));
    }
    check_settings(&request)?;
    if app.store.authority_by_name(&request.name).await.is_ok() {
        return Err(Error::invalid(
            "name",
            format!("an authority named {:?} exists", request.name),
        ));
    }
    let generated = !matches!(request.kind, AuthorityKind::Import { .. });
    let (der, key_uri, parent, chain) = match &request.kind {
        AuthorityKind::Import {
            body,
            key_uri,
            chain,
        } => import(app, body, key_uri, chain.as_deref()).await?,
        kind => {
            let parent = match kind {
                AuthorityKind::SubCa { parent_id } => {
                    Some(app.store.authority(*parent_id).await.map_err(|_| {
                        Error::invalid("parent", format!("authority {parent_id} does not exist"))
                    })?)
                }
                _ => None,
            };
            let (der, key_uri, chain) = generate(app, &request, parent.as_ref()).await?;
            (der, key_uri, parent.map(|p| p.id), chain)
        }
    };
    let stored = store(app, actor, &request, &der, &key_uri, parent, chain).await;
    if stored.is_err() && generated {
        discard_key(app, &key_uri).await;
    }
    stored
}

/// Longest validity, in days, an authority may be given as a default or a maximum (100 years).
const MAX_DAYS: i64 = 36_500;

/// Refuses authority settings that would break every later issuance, naming the field.
fn check_settings(request: &CreateAuthority) -> Result<()> {
    for (field, days) in [
        ("maxIssuanceDays", request.max_issuance_days),
        ("defaultValidityDays", request.default_validity_days),
    ] {
        if days.is_some_and(|days| !(1..=MAX_DAYS).contains(&days)) {
            return Err(Error::invalid(
                field,
                format!("must be between 1 and {MAX_DAYS} days (omit it for the default)"),
            ));
        }
    }
    for (field, url) in [
        ("crlUrl", &request.crl_url),
        ("issuerUrl", &request.issuer_url),
    ] {
        if let Some(url) = url
            && !valid_url(url)
        {
            return Err(Error::invalid(
                field,
                "must be an absolute http:// or https:// URL in ASCII, without spaces",
            ));
        }
    }
    if request.cab_compliant && request.crl_url.is_none() {
        return Err(Error::invalid(
            "crlUrl",
            "is required for a CA/Browser Forum compliant authority: its certificates must name a CRL",
        ));
    }
    Ok(())
}

/// An absolute http(s) URL that fits an IA5String, as CRL distribution points and AIA need.
fn valid_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|rest| {
        !rest.is_empty()
            && !rest.starts_with('/')
            && url.len() <= 2048
            && url.bytes().all(|b| b.is_ascii_graphic())
    })
}

/// Destroys a CA key generated for an authority that could not be stored, so failed requests
/// leave no orphan keys in the token. Best effort: a failure is logged with the key to remove.
async fn discard_key(app: &App, key_uri: &str) {
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

/// Records a new authority and its certificate; returns its id.
async fn store(
    app: &App,
    actor: Actor<'_>,
    request: &CreateAuthority,
    der: &[u8],
    key_uri: &str,
    parent: Option<i64>,
    chain: Option<String>,
) -> Result<i64> {
    let parsed = x509::parse(der, "body")?;
    if !parsed.is_ca {
        return Err(Error::invalid(
            "body",
            "is not a CA certificate (basicConstraints CA:TRUE)",
        ));
    }
    let max_days = request.max_issuance_days;
    let default_days = request
        .default_validity_days
        .unwrap_or(app.config.defaults.validity_days)
        .min(max_days.unwrap_or(i64::MAX));
    let default_days = if request.cab_compliant {
        default_days.min(lint::cabf_max_validity_secs(app.clock.unix()) / 86_400)
    } else {
        default_days
    };
    let root_id = match parent {
        Some(parent_id) => root_of(app, parent_id).await?,
        None => None,
    };
    let new = NewAuthority {
        name: &request.name,
        owner: &request.owner,
        description: &request.description,
        plugin_name: PLUGIN_SLUG,
        key_uri,
        parent_id: parent,
        cab_compliant: request.cab_compliant,
        max_issuance_days: max_days,
        default_validity_days: default_days,
        crl_url: request.crl_url.as_deref(),
        issuer_url: request.issuer_url.as_deref(),
        user_id: Some(actor.user_id),
    };
    let certificate = NewCertificate {
        parsed: &parsed,
        owner: &request.owner,
        description: &request.description,
        notify: true,
        rotation: false,
        chain: chain.as_deref(),
        csr: None,
        sealed_private_key: None,
        authority_id: None,
        root_authority_id: root_id,
        user_id: Some(actor.user_id),
        rotation_policy_id: None,
        replaces: &[],
    };
    let log = LogEntry {
        certificate_id: None,
        log_type: "create_authority",
        user_id: Some(actor.user_id),
        source_address: actor.source,
        details: &format!("authority {} ({})", request.name, key_uri),
    };
    app.store.create_authority(&new, &certificate, &log).await
}

/// The root authority above `authority_id`.
async fn root_of(app: &App, authority_id: i64) -> Result<Option<i64>> {
    let mut current = app.store.authority(authority_id).await?;
    for _ in 0..16 {
        match current.parent_id {
            Some(parent) => current = app.store.authority(parent).await?,
            None => return Ok(Some(current.id)),
        }
    }
    Ok(Some(current.id))
}

/// Generates the CA key in the HSM and signs the CA certificate (self-signed or by `parent`).
async fn generate(
    app: &App,
    request: &CreateAuthority,
    parent: Option<&crate::store::AuthorityRecord>,
) -> Result<(Vec<u8>, String, Option<String>)> {
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
    let subject = request.subject.subject(&request.common_name, app);
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
            let signed = sign_authority(keys, &key_uri, algorithm, &params, parent_for_signing);
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
    Ok((
        der,
        key_uri,
        parent_material.map(|parent| parent.chain.clone()),
    ))
}

/// Signs the new CA certificate whose key is `key_uri`: self-signed, or by `parent` (blocking:
/// inside [`App::hsm`]).
fn sign_authority(
    keys: &std::sync::Arc<lemur_hsm::Pkcs11KeyStore>,
    key_uri: &str,
    algorithm: KeyAlgorithm,
    params: &rcgen::CertificateParams,
    parent: Option<std::sync::Arc<super::material::SigningMaterial>>,
) -> Result<Vec<u8>> {
    let own = signer(keys, key_uri)?;
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
    parent: Option<&crate::store::AuthorityRecord>,
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
) -> Result<(Vec<u8>, String, Option<i64>, Option<String>)> {
    let uri: KeyUri = key_uri
        .parse()
        .map_err(|e: lemur_hsm::Error| Error::invalid("keyUri", e.to_string()))?;
    let der = x509::pem_certificates(body, "body")?
        .into_iter()
        .next()
        .ok_or_else(|| Error::invalid("body", "is required to import an authority"))?;
    let parsed = x509::parse(&der, "body")?;
    let lookup = uri.clone();
    let public = app
        .hsm(move |keys| keys.public_key(&lookup).map_err(Error::from))
        .await
        .map_err(|e| Error::invalid("keyUri", e.to_string()))?;
    if public.spki_der() != parsed.spki {
        return Err(Error::invalid(
            "keyUri",
            "the key in the token does not match the certificate",
        ));
    }
    let chain = lint::self_signed_or_chained(&der, &parsed, chain)?;
    Ok((der, uri.to_string(), None, chain))
}
