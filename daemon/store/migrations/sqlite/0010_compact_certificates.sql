-- A million certificates in less room: each chain is stored once and shared by the
-- certificates that ship it (most of an inventory shares a handful), and bodies are kept as DER
-- (PEM is rebuilt on the way out). Rows stored before keep their PEM body and chain.
CREATE TABLE chains (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256 TEXT NOT NULL UNIQUE,
    pem TEXT NOT NULL
);
ALTER TABLE certificates ADD COLUMN chain_id INTEGER REFERENCES chains(id);
ALTER TABLE certificates ADD COLUMN body_der BLOB;
-- Indexes nothing reads any more: serials are looked up by their hex form, names sort as
-- stored.
DROP INDEX certificates_serial;
DROP INDEX certificates_name_lower;
-- The domain links as a table clustered on its key, without a second copy in a rowid table.
CREATE TABLE certificate_domains_rebuilt (certificate_id INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE, domain_id INTEGER NOT NULL REFERENCES domains(id), PRIMARY KEY (certificate_id, domain_id)) WITHOUT ROWID;
INSERT INTO certificate_domains_rebuilt (certificate_id, domain_id) SELECT certificate_id, domain_id FROM certificate_domains;
DROP TABLE certificate_domains;
ALTER TABLE certificate_domains_rebuilt RENAME TO certificate_domains;
CREATE INDEX certificate_domains_domain ON certificate_domains(domain_id, certificate_id);
-- The list's indexes cover live certificates only, so a filtered count or a deep page reads the
-- index without visiting each row to see whether it was deleted.
DROP INDEX certificates_cn;
DROP INDEX certificates_not_after;
DROP INDEX certificates_owner;
DROP INDEX certificates_authority;
CREATE INDEX certificates_live_cn ON certificates (cn, id) WHERE deleted = FALSE;
CREATE INDEX certificates_live_not_after ON certificates (not_after, id, issuer) WHERE deleted = FALSE;
CREATE INDEX certificates_live_owner ON certificates (owner, id) WHERE deleted = FALSE;
CREATE INDEX certificates_live_authority ON certificates (authority_id, id) WHERE deleted = FALSE;
