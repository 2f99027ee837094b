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
