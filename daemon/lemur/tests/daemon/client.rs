//! The typed client against the real daemon: every call a user makes, through the API's own
//! types, and failures as typed errors carrying Lemur's error body.

use crate::support::{Appliance, Db, OfflineCa, key_matches, openssl_csr};
use lemur_api::{
    AuthorityRef, CertificateItem, CertificateQuery, CreateAuthority, CreateCertificate, IdRef,
    Paging, PluginRef, RevokeCertificate, UploadCertificate, UploadPendingCertificate,
};
use lemur_client::{Client, Error};

fn root_request(name: &str) -> CreateAuthority {
    CreateAuthority {
        name: name.to_owned(),
        owner: "pki@example.com".to_owned(),
        description: String::new(),
        common_name: format!("{name} Root"),
        kind: "root".to_owned(),
        parent: None,
        key_type: "ECCPRIME256V1".to_owned(),
        validity_start: None,
        validity_end: None,
        validity_years: Some(2),
        plugin: Some(PluginRef {
            slug: "cryptography-issuer".to_owned(),
        }),
        subject: Default::default(),
        cab_compliant: false,
        max_issuance_days: None,
        default_validity_days: None,
        crl_url: None,
        issuer_url: None,
        permitted_domains: None,
        body: None,
        key_uri: None,
        chain: None,
    }
}

fn issue_request(authority: i64, owner: &str) -> CreateCertificate {
    CreateCertificate {
        owner: owner.to_owned(),
        common_name: String::new(),
        description: "from the typed client".to_owned(),
        notify: true,
        rotation: false,
        validity_start: None,
        validity_end: None,
        validity_years: None,
        key_type: None,
        csr: None,
        authority: AuthorityRef {
            id: Some(authority),
            name: None,
        },
        extensions: Default::default(),
        replaces: Vec::new(),
        destinations: Vec::new(),
        subject: Default::default(),
    }
}

#[test]
fn the_typed_client_drives_the_api_as_a_user_would() {
    let app = Appliance::start(Db::Sqlite);
    let mut client = Client::new(&app.daemon.base);
    let refused = client.login("lemur", "not the password");
    assert!(
        matches!(&refused, Err(Error::Api { status: 401, body }) if body.code == "unauthorized"),
        "{refused:?}"
    );
    client.login("lemur", &app.daemon.admin_password).unwrap();
    let me = client.me().unwrap();
    assert_eq!(me.username, "lemur");
    assert!(me.roles.iter().any(|role| role.name == "admin"));
    assert!(client.health_details().unwrap().healthy);

    let root = client.create_authority(&root_request("client")).unwrap();
    assert_eq!(root.plugin.slug, "hsm-issuer");
    assert!(root.roles.iter().any(|role| role.name == "client_operator"));
    assert_eq!(client.authority(root.id).unwrap(), root);
    let authorities = client.authorities(Paging::default()).unwrap();
    assert_eq!(authorities.total, 1);

    let mut with_key = issue_request(root.id, "team@example.com");
    with_key.common_name = "keyed.example.com".to_owned();
    with_key.key_type = Some("ECCPRIME256V1".to_owned());
    let keyed = client.issue(&with_key).unwrap();
    assert!(keyed.has_private_key);
    assert_eq!(keyed.authority.as_ref().map(|a| a.id), Some(root.id));
    let key = client.private_key(keyed.id).unwrap();
    assert!(key_matches(&keyed.body, &key));

    let mut from_csr = issue_request(root.id, "team@example.com");
    from_csr.csr = Some(openssl_csr(&["csr.example.com"]).1);
    from_csr.replaces = vec![IdRef { id: keyed.id }];
    let replacement = client.issue(&from_csr).unwrap();
    assert_eq!(replacement.replaces[0].id, keyed.id);
    assert_eq!(
        client.certificate(keyed.id).unwrap().replaced_by[0].id,
        replacement.id
    );
    assert!(
        !client.certificate(keyed.id).unwrap().notify,
        "a replaced certificate is silenced"
    );

    let full = client
        .certificates(&CertificateQuery {
            filter: Some("cn;csr.example".to_owned()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(full.total, 1);
    assert!(matches!(&full.items[0], CertificateItem::Full(view) if view.id == replacement.id));
    let short = client
        .certificates(&CertificateQuery {
            short: true,
            ..Default::default()
        })
        .unwrap();
    assert!(
        short
            .items
            .iter()
            .all(|item| matches!(item, CertificateItem::Short(_)))
    );
    assert_eq!(short.total, 3, "two leaves and the root's own certificate");
    assert_eq!(
        client.certificate(replacement.id).unwrap().status,
        None,
        "issued certificates start without a revocation status"
    );

    assert_eq!(
        client.plugins(Some("issuer")).unwrap().items[0].slug,
        "hsm-issuer"
    );
    assert_eq!(
        client.plugin("cryptography-issuer").unwrap().slug,
        "hsm-issuer"
    );
    let revoked = client
        .revoke(
            keyed.id,
            &RevokeCertificate {
                crl_reason: Some("keyCompromise".to_owned()),
                comments: Some("lost laptop".to_owned()),
            },
        )
        .unwrap();
    assert_eq!(revoked.id, keyed.id);
    let after = client.certificate(keyed.id).unwrap();
    assert_eq!(after.status.as_deref(), Some("revoked"));
    assert!(!after.active && !after.notify && !after.rotation);
    let again = client.revoke(keyed.id, &RevokeCertificate::default());
    assert!(
        matches!(&again, Err(Error::Api { status: 409, .. })),
        "{again:?}"
    );
    let bad_reason = client.revoke(
        replacement.id,
        &RevokeCertificate {
            crl_reason: Some("boredom".to_owned()),
            comments: None,
        },
    );
    assert!(
        matches!(&bad_reason, Err(Error::Api { status: 400, body })
            if body.reasons.as_ref().is_some_and(|r| r.contains_key("crlReason"))),
        "{bad_reason:?}"
    );
    let root_certificate = root.authority_certificate.as_ref().unwrap().id;
    let ca_revoke = client.revoke(root_certificate, &RevokeCertificate::default());
    assert!(
        matches!(&ca_revoke, Err(Error::Api { status: 400, body }) if body.message.contains("CA certificate")),
        "{ca_revoke:?}"
    );
    let (body, chain, key) = crate::ca::external_certificate();
    let imported = client
        .upload(&UploadCertificate {
            owner: "team@example.com".to_owned(),
            description: String::new(),
            notify: true,
            body,
            chain: Some(chain),
            private_key: Some(key.as_str().into()),
            replaces: Vec::new(),
            destinations: Vec::new(),
        })
        .unwrap();
    let elsewhere = client.revoke(imported.id, &RevokeCertificate::default());
    assert!(
        matches!(&elsewhere, Err(Error::Api { status: 400, body }) if body.message.contains("imported")),
        "{elsewhere:?}"
    );
    assert_eq!(
        app.query("SELECT details FROM logs WHERE log_type = 'revoke_cert'")
            .trim(),
        "revoked (keyCompromise) by client: lost laptop"
    );

    // Logging out ends this session only.
    let mut other_session = Client::new(&app.daemon.base);
    other_session
        .login("lemur", &app.daemon.admin_password)
        .unwrap();
    let stale = Client::new(&app.daemon.base).with_token(other_session.token().unwrap());
    other_session.logout().unwrap();
    let refused = stale.me();
    assert!(
        matches!(&refused, Err(Error::Api { status: 401, body }) if body.message.contains("logged out")),
        "{refused:?}"
    );
    assert_eq!(client.me().unwrap().username, "lemur");

    // An order from an offline authority, delivered once openssl has signed it.
    let offline_ca = OfflineCa::new("Client Offline");
    let mut offline = root_request("client-offline");
    offline.plugin = Some(PluginRef {
        slug: "offline-issuer".to_owned(),
    });
    offline.body = Some(offline_ca.certificate.clone());
    let offline = client.create_authority(&offline).unwrap();
    assert_eq!(offline.key_uri, None);
    let mut ordered = issue_request(offline.id, "team@example.com");
    ordered.common_name = "ordered.example.com".to_owned();
    ordered.key_type = Some("ECCPRIME256V1".to_owned());
    let order = client.order(&ordered).unwrap();
    assert!(order.has_private_key && !order.resolved);
    let delivered = client
        .deliver(
            order.id,
            &UploadPendingCertificate {
                body: offline_ca.sign(&order.csr),
                chain: None,
            },
        )
        .unwrap();
    assert!(delivered.resolved);
    let certificate = client
        .certificate(delivered.resolved_cert_id.unwrap())
        .unwrap();
    assert_eq!(certificate.cn, "ordered.example.com");
    assert!(key_matches(
        &certificate.body,
        &client.private_key(certificate.id).unwrap()
    ));
    assert_eq!(client.pending_certificate(order.id).unwrap(), delivered);

    let missing = client.certificate(4242);
    assert!(
        matches!(&missing, Err(Error::Api { status: 404, body }) if body.code == "not_found"),
        "{missing:?}"
    );
    let invalid = client.issue(&issue_request(4242, "team@example.com"));
    assert!(
        matches!(&invalid, Err(Error::Api { status: 400, body })
            if body.reasons.as_ref().is_some_and(|r| r.contains_key("authority"))),
        "{invalid:?}"
    );
}
