//! Sealing secrets with the token's KEK: round trips, rotation, tampering.

use lemur_hsm::{Error, Sealer};
use lemur_testkit::TempToken;

#[test]
fn sealing_needs_a_kek_and_round_trips_with_one() {
    let token = TempToken::new();
    let store = token.open();
    assert!(matches!(
        store.seal(b"x", b"c"),
        Err(Error::KekNotFound { .. })
    ));
    let kek = store.create_kek().unwrap();
    assert_eq!(kek.version, 1);
    assert_eq!(
        kek.uri.to_string(),
        format!(
            "pkcs11:token={};object=lemur-kek-v1;type=secret-key",
            token.label
        )
    );
    let secret = b"-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n";
    let envelope = store.seal(secret, b"certificate:42:private_key").unwrap();
    assert!(
        !envelope.windows(8).any(|w| w == b"not real"),
        "plaintext must not appear"
    );
    assert_eq!(
        store
            .unseal(&envelope, b"certificate:42:private_key")
            .unwrap()
            .as_slice(),
        secret
    );
    assert!(matches!(
        store.create_kek(),
        Err(Error::KekExists { version: 1, .. })
    ));
}

#[test]
fn the_kek_cannot_leave_the_token() {
    let token = TempToken::new();
    let store = token.open();
    let kek = store.create_kek().unwrap();
    let probe = store.probe_extraction(&kek.uri).unwrap();
    assert!(probe.key_stays_in_token(), "{probe:?}");
}

#[test]
fn every_tampered_byte_and_a_wrong_context_are_rejected() {
    let token = TempToken::new();
    let store = token.open();
    store.create_kek().unwrap();
    let envelope = store.seal(b"secret value", b"ctx").unwrap();
    for i in 0..envelope.len() {
        let mut tampered = envelope.clone();
        tampered[i] ^= 0x01;
        let result = store.unseal(&tampered, b"ctx");
        assert!(
            matches!(
                result,
                Err(Error::SealAuthentication | Error::Envelope(_) | Error::KekNotFound { .. })
            ),
            "byte {i}: {:?}",
            result.map(|p| p.len())
        );
    }
    assert!(matches!(
        store.unseal(&envelope, b"other"),
        Err(Error::SealAuthentication)
    ));
    assert!(matches!(
        store.unseal(&envelope[..envelope.len() - 1], b"ctx"),
        Err(Error::SealAuthentication)
    ));
    assert!(matches!(
        store.unseal(&envelope[..20], b"ctx"),
        Err(Error::Envelope(_))
    ));
}

#[test]
fn rotation_seals_with_the_new_version_and_old_envelopes_still_open() {
    let token = TempToken::new();
    let store = token.open();
    store.create_kek().unwrap();
    let old = store.seal(b"old secret", b"ctx").unwrap();
    let rotated = store.rotate_kek().unwrap();
    assert_eq!(rotated.version, 2);
    let new = store.seal(b"new secret", b"ctx").unwrap();
    let (old_header, _) = lemur_hsm::envelope::parse(&old).unwrap();
    let (new_header, _) = lemur_hsm::envelope::parse(&new).unwrap();
    assert_eq!((old_header.kek_version, new_header.kek_version), (1, 2));
    assert_eq!(
        store.unseal(&old, b"ctx").unwrap().as_slice(),
        b"old secret"
    );
    assert_eq!(
        store.unseal(&new, b"ctx").unwrap().as_slice(),
        b"new secret"
    );
    let versions: Vec<u32> = store
        .kek_versions()
        .unwrap()
        .iter()
        .map(|k| k.version)
        .collect();
    assert_eq!(versions, [1, 2]);
}

#[test]
fn a_rotation_by_another_process_is_picked_up() {
    let token = TempToken::new();
    let daemon = token.open();
    daemon.create_kek().unwrap();
    daemon.seal(b"a", b"ctx").unwrap();
    let admin = token.open();
    // Two rotations between the daemon's seals: it seals under the newest, not the next.
    admin.rotate_kek().unwrap();
    admin.rotate_kek().unwrap();
    let envelope = daemon.seal(b"b", b"ctx").unwrap();
    assert_eq!(
        lemur_hsm::envelope::parse(&envelope).unwrap().0.kek_version,
        3
    );
}

/// Anyone who can log in to the token could plant a key under the next KEK version's label: a
/// KEK whose value was known outside the token (imported) or could leave it is refused, and
/// nothing is sealed with it.
#[test]
fn a_planted_kek_version_is_refused() {
    let token = TempToken::new();
    let store = token.open();
    store.create_kek().unwrap();
    let sealed = store.seal(b"secret", b"c").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("aes.key");
    std::fs::write(&key, [0x42u8; 32]).unwrap();
    let pin = std::fs::read_to_string(&token.pin_file).unwrap();
    let planted = std::process::Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", lemur_testkit::softhsm_conf())
        .args(["--import"])
        .arg(&key)
        .args([
            "--aes",
            "--token",
            &token.label,
            "--label",
            "lemur-kek-v2",
            "--id",
            "99",
        ])
        .args(["--pin", pin.trim()])
        .output()
        .unwrap();
    assert!(planted.status.success(), "{planted:?}");
    let refused = store.seal(b"secret", b"c").unwrap_err();
    assert!(
        matches!(&refused, Error::KeyNotProtected { uri, .. } if uri.contains("lemur-kek-v2")),
        "{refused}"
    );
    assert_eq!(
        store.unseal(&sealed, b"c").unwrap().as_slice(),
        b"secret",
        "what the real KEK sealed still opens"
    );
}
