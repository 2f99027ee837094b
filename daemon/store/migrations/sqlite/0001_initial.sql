-- Lemur-HSM inventory, SQLite. Times are Unix seconds (UTC); flags are 0/1 integers (SQLite's
-- booleans); secrets are HSM-sealed envelopes. Keep in step with ../postgres/ (the same tables and
-- columns; each engine its own types and indexes).
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    profile_picture TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE roles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    username TEXT,
    sealed_password BLOB,
    third_party INTEGER NOT NULL DEFAULT 0,
    authority_id INTEGER,
    user_id INTEGER REFERENCES users(id)
);

CREATE TABLE roles_users (
    role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, user_id)
);
CREATE INDEX roles_users_user ON roles_users(user_id);

CREATE TABLE rotation_policies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    days INTEGER NOT NULL
);

CREATE TABLE authorities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    active INTEGER NOT NULL DEFAULT 1,
    plugin_name TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    key_uri TEXT,
    parent_id INTEGER REFERENCES authorities(id),
    cab_compliant INTEGER NOT NULL DEFAULT 0,
    max_issuance_days INTEGER,
    default_validity_days INTEGER NOT NULL,
    crl_url TEXT,
    ocsp_url TEXT,
    issuer_url TEXT,
    user_id INTEGER REFERENCES users(id),
    date_created INTEGER NOT NULL
);

CREATE TABLE authority_roles (
    authority_id INTEGER NOT NULL REFERENCES authorities(id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (authority_id, role_id)
);

CREATE TABLE dns_providers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    provider_type TEXT NOT NULL,
    sealed_credentials BLOB,
    api_endpoint TEXT,
    status TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    domains TEXT NOT NULL DEFAULT '[]',
    date_created INTEGER NOT NULL
);

CREATE TABLE certificates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    external_id TEXT,
    owner TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    notify INTEGER NOT NULL DEFAULT 1,
    rotation INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    chain TEXT,
    csr TEXT,
    sealed_private_key BLOB,
    issuer TEXT NOT NULL,
    serial TEXT NOT NULL,
    serial_hex TEXT NOT NULL,
    cn TEXT NOT NULL,
    distinguished_name TEXT NOT NULL,
    san INTEGER NOT NULL DEFAULT 0,
    bits INTEGER NOT NULL,
    key_type TEXT NOT NULL,
    signing_algorithm TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    status TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    is_ca INTEGER NOT NULL DEFAULT 0,
    authority_id INTEGER REFERENCES authorities(id),
    root_authority_id INTEGER REFERENCES authorities(id),
    user_id INTEGER REFERENCES users(id),
    rotation_policy_id INTEGER REFERENCES rotation_policies(id),
    dns_provider_id INTEGER REFERENCES dns_providers(id),
    date_created INTEGER NOT NULL
);
CREATE INDEX certificates_cn ON certificates(lower(cn), id);
CREATE INDEX certificates_serial ON certificates(serial);
CREATE INDEX certificates_serial_hex ON certificates(serial_hex);
CREATE INDEX certificates_not_after ON certificates(not_after, id);
CREATE INDEX certificates_owner ON certificates(owner, id);
CREATE INDEX certificates_authority ON certificates(authority_id, id);
CREATE INDEX certificates_body_sha256 ON certificates(body_sha256);
CREATE INDEX certificates_name_lower ON certificates(lower(name), id);

-- The CA's own certificate row, once the authority exists.
ALTER TABLE authorities ADD COLUMN authority_certificate_id INTEGER REFERENCES certificates(id);

-- One row per distinct domain, shared by every certificate naming it.
CREATE TABLE domains (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    sensitive INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE certificate_domains (
    certificate_id INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    PRIMARY KEY (certificate_id, domain_id)
);
CREATE INDEX certificate_domains_domain ON certificate_domains(domain_id, certificate_id);

CREATE TABLE certificate_replacements (
    certificate_id INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    replaced_certificate_id INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    PRIMARY KEY (certificate_id, replaced_certificate_id)
);
CREATE INDEX certificate_replacements_replaced ON certificate_replacements(replaced_certificate_id);

CREATE TABLE certificate_roles (
    certificate_id INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (certificate_id, role_id)
);

CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id),
    ttl INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    last_used INTEGER,
    application_name TEXT
);

CREATE TABLE logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    certificate_id INTEGER REFERENCES certificates(id),
    log_type TEXT NOT NULL,
    logged_at INTEGER NOT NULL,
    user_id INTEGER REFERENCES users(id),
    source_address TEXT,
    details TEXT NOT NULL DEFAULT ''
);
CREATE INDEX logs_certificate ON logs(certificate_id, id);
CREATE INDEX logs_user ON logs(user_id, id);

CREATE TABLE destinations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    plugin_name TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '[]',
    sealed_secrets BLOB
);

CREATE TABLE certificate_destinations (
    certificate_id INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    destination_id INTEGER NOT NULL REFERENCES destinations(id) ON DELETE CASCADE,
    PRIMARY KEY (certificate_id, destination_id)
);

CREATE TABLE sources (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    plugin_name TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '[]',
    sealed_secrets BLOB,
    active INTEGER NOT NULL DEFAULT 1,
    last_run INTEGER
);

CREATE TABLE certificate_sources (
    certificate_id INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    PRIMARY KEY (certificate_id, source_id)
);

CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    plugin_name TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '[]',
    sealed_secrets BLOB,
    active INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE certificate_notifications (
    certificate_id INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    notification_id INTEGER NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    PRIMARY KEY (certificate_id, notification_id)
);

CREATE TABLE endpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    dnsname TEXT,
    owner TEXT,
    type TEXT,
    port INTEGER,
    active INTEGER NOT NULL DEFAULT 1,
    sensitive INTEGER NOT NULL DEFAULT 0,
    certificate_id INTEGER REFERENCES certificates(id),
    certificate_path TEXT,
    registry_type TEXT,
    source_id INTEGER REFERENCES sources(id),
    policy TEXT,
    ciphers TEXT NOT NULL DEFAULT '[]',
    aliases TEXT NOT NULL DEFAULT '[]',
    last_updated INTEGER NOT NULL,
    date_created INTEGER NOT NULL
);
CREATE INDEX endpoints_certificate ON endpoints(certificate_id);
CREATE INDEX endpoints_name ON endpoints(name);

CREATE TABLE pending_certificates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    external_id TEXT,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    notify INTEGER NOT NULL DEFAULT 1,
    number_attempts INTEGER NOT NULL DEFAULT 0,
    rename INTEGER NOT NULL DEFAULT 1,
    resolved INTEGER NOT NULL DEFAULT 0,
    resolved_cert_id INTEGER REFERENCES certificates(id),
    cn TEXT,
    csr TEXT,
    chain TEXT,
    sealed_private_key BLOB,
    status TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    authority_id INTEGER REFERENCES authorities(id),
    user_id INTEGER REFERENCES users(id),
    dns_provider_id INTEGER REFERENCES dns_providers(id),
    rotation INTEGER NOT NULL DEFAULT 0,
    rotation_policy_id INTEGER REFERENCES rotation_policies(id),
    last_updated INTEGER NOT NULL,
    date_created INTEGER NOT NULL
);
