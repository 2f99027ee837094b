-- Keys generated in the HSM ahead of demand and kept sealed under the KEK (`[keys] stock`), so
-- a burst of issuances with server-made keys outlasts the daemon's memory pool, a restart, and
-- is shared by every daemon on the database. Each row is sealed bound to its own `token` and
-- public key, and is deleted as it is taken, so no key is given out twice.
CREATE TABLE stocked_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key_type TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE,
    public_key BLOB NOT NULL,
    sealed_private_key BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX stocked_keys_key_type ON stocked_keys (key_type, id);
