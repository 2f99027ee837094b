//! rcgen signing certificates and CRLs with HSM keys, checked by openssl.
// openssl checks validity against the real clock, so these certificates must be valid now.
#![allow(clippy::disallowed_methods)]

use lemur_hsm::{HsmSigner, KeyAlgorithm};
use lemur_testkit::{TempToken, openssl};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = OffsetDateTime::now_utc() - Duration::minutes(5);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(365);
    params
}

#[test]
fn hsm_signed_chains_verify_with_openssl_for_every_algorithm() {
    let token = TempToken::new();
    let store = token.open_shared();
    let dir = token.scratch_dir();
    for algorithm in KeyAlgorithm::ALL {
        let root_key = store
            .generate_key_pair(&format!("root-{algorithm}"), algorithm, false)
            .unwrap();
        let root_signer = HsmSigner::new(Arc::clone(&store), root_key.uri).unwrap();
        let root = ca_params(&format!("Lemur Test Root {algorithm}"))
            .self_signed(&root_signer)
            .unwrap();

        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let mut leaf_params = CertificateParams::new(vec!["www.example.com".to_owned()]).unwrap();
        leaf_params.key_identifier_method = KeyIdMethod::Sha256;
        leaf_params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::new(
            ca_params(&format!("Lemur Test Root {algorithm}")),
            &root_signer,
        );
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

        std::fs::write(dir.join("root.pem"), root.pem()).unwrap();
        std::fs::write(dir.join("leaf.pem"), leaf.pem()).unwrap();
        let verified = openssl(&["verify", "-CAfile", "root.pem", "leaf.pem"], dir);
        assert!(verified.contains("leaf.pem: OK"), "{algorithm}: {verified}");
        let text = openssl(&["x509", "-in", "root.pem", "-noout", "-text"], dir);
        let expected = if algorithm.rsa_bits().is_some() {
            "sha256WithRSAEncryption"
        } else {
            "ecdsa-with-SHA"
        };
        assert!(text.contains(expected), "{algorithm}: {text}");
    }
}

#[test]
fn hsm_signed_crls_verify_with_openssl() {
    let token = TempToken::new();
    let store = token.open_shared();
    let dir = token.scratch_dir();
    let key = store
        .generate_key_pair("crl-root", KeyAlgorithm::EcP384, false)
        .unwrap();
    let signer = HsmSigner::new(Arc::clone(&store), key.uri).unwrap();
    let root = ca_params("Lemur CRL Root").self_signed(&signer).unwrap();
    let crl = CertificateRevocationListParams {
        this_update: OffsetDateTime::now_utc() - Duration::minutes(1),
        next_update: OffsetDateTime::now_utc() + Duration::days(1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(42u64),
            revocation_time: OffsetDateTime::now_utc() - Duration::minutes(1),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&Issuer::new(ca_params("Lemur CRL Root"), &signer))
    .unwrap();
    std::fs::write(dir.join("root.pem"), root.pem()).unwrap();
    std::fs::write(dir.join("crl.pem"), crl.pem().unwrap()).unwrap();
    let out = openssl(
        &[
            "crl", "-in", "crl.pem", "-CAfile", "root.pem", "-noout", "-text",
        ],
        dir,
    );
    assert!(out.contains("verify OK"), "{out}");
    assert!(out.contains("Serial Number: 2A"), "{out}");
}

#[test]
fn a_signer_for_a_missing_key_reports_why() {
    let token = TempToken::new();
    let store = token.open_shared();
    let key = store
        .generate_key_pair("gone", KeyAlgorithm::EcP256, false)
        .unwrap();
    let signer = HsmSigner::new(Arc::clone(&store), key.uri.clone()).unwrap();
    store.destroy(&key.uri).unwrap();
    assert!(ca_params("x").self_signed(&signer).is_err());
    let error = signer.take_error().unwrap();
    assert!(
        matches!(error, lemur_hsm::Error::KeyNotFound { .. }),
        "{error}"
    );
}
