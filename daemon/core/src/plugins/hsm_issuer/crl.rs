//! The local CA's certificate revocation lists (RFC 5280 v2), signed in the HSM by the
//! authority's key: every certificate it revoked that has not expired, with its revocation time
//! and reason (none for `unspecified`, as RFC 5280 §5.3.1 asks), the CRL number and the
//! authority key identifier, taken from the CA certificate's subject key identifier. The HSM
//! signer verifies the signature in software before it returns it, as for certificates.

use super::signing_error;
use crate::App;
use crate::ca::material::signing_material;
use crate::ca::x509;
use crate::error::{Error, Result};
use crate::model::{AuthorityRecord, RevokedCertificate};
use crate::plugins::CrlPlan;
use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;

/// Signs the CRL `plan` describes.
pub(super) async fn sign(
    app: &App,
    authority: &AuthorityRecord,
    plan: &CrlPlan<'_>,
) -> Result<Vec<u8>> {
    let revoked_certs = plan.revoked.iter().map(entry).collect::<Result<Vec<_>>>()?;
    let material = signing_material(app, authority).await?;
    let params = CertificateRevocationListParams {
        this_update: time(plan.this_update)?,
        next_update: time(plan.next_update)?,
        crl_number: SerialNumber::from(plan.number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: x509::subject_key_identifier(&material.certificate.der)
            .map_or(KeyIdMethod::Sha256, KeyIdMethod::PreSpecified),
    };
    app.hsm(move |keys| {
        let signer =
            material.signer(std::sync::Arc::clone(keys) as std::sync::Arc<dyn lemur_hsm::KeyStore>);
        let issuer =
            rcgen::Issuer::from_ca_cert_der(&material.certificate.der.as_slice().into(), &signer)
                .map_err(|e| Error::Ca(format!("reading the authority certificate: {e}")))?;
        let crl = params
            .signed_by(&issuer)
            .map_err(|e| signing_error(&signer, e))?;
        Ok(crl.der().to_vec())
    })
    .await
}

fn entry(revoked: &RevokedCertificate) -> Result<RevokedCertParams> {
    // Stored without leading zeros, so possibly of odd length.
    let hex = format!(
        "{:0>width$}",
        revoked.serial_hex,
        width = revoked.serial_hex.len().div_ceil(2) * 2
    );
    let serial = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .filter(|bytes| !bytes.is_empty())
        .ok_or_else(|| Error::Ca(format!("stored serial {:?} is not hex", revoked.serial_hex)))?;
    Ok(RevokedCertParams {
        serial_number: SerialNumber::from_slice(&serial),
        revocation_time: time(revoked.revoked_at)?,
        reason_code: reason(&revoked.reason),
        invalidity_date: None,
    })
}

/// The CRLReason of a name as revocation requests give it; none for `unspecified`.
fn reason(name: &str) -> Option<RevocationReason> {
    Some(match name {
        "keyCompromise" => RevocationReason::KeyCompromise,
        "cACompromise" => RevocationReason::CaCompromise,
        "affiliationChanged" => RevocationReason::AffiliationChanged,
        "superseded" => RevocationReason::Superseded,
        "cessationOfOperation" => RevocationReason::CessationOfOperation,
        "certificateHold" => RevocationReason::CertificateHold,
        "privilegeWithdrawn" => RevocationReason::PrivilegeWithdrawn,
        "aACompromise" => RevocationReason::AaCompromise,
        _ => return None,
    })
}

fn time(unix: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|_| Error::Ca(format!("time {unix} out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_of_odd_length_keep_their_value() {
        let entry = entry(&RevokedCertificate {
            serial_hex: "ABC".into(),
            revoked_at: 1_800_000_000,
            reason: "keyCompromise".into(),
        })
        .unwrap();
        assert_eq!(entry.serial_number.as_ref(), [0x0A, 0xBC]);
        assert_eq!(entry.reason_code, Some(RevocationReason::KeyCompromise));
        assert_eq!(reason("unspecified"), None);
    }
}
