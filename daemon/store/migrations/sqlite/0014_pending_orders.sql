-- Pending certificates as orders: the key type and DNS names asked for (shown before the CA
-- answers), the certificates the issued one will replace (ids, comma-separated: applied when
-- it is delivered), and a client's Idempotency-Key with its request's fingerprint, so a retry
-- finds the order instead of placing a second one.
ALTER TABLE pending_certificates ADD COLUMN key_type TEXT NOT NULL DEFAULT '';
ALTER TABLE pending_certificates ADD COLUMN dns_names TEXT NOT NULL DEFAULT '';
ALTER TABLE pending_certificates ADD COLUMN replaces TEXT NOT NULL DEFAULT '';
ALTER TABLE pending_certificates ADD COLUMN idempotency_key TEXT;
ALTER TABLE pending_certificates ADD COLUMN idempotency_fingerprint TEXT;
CREATE UNIQUE INDEX pending_certificates_idempotency_key
    ON pending_certificates (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The list shows unresolved orders, newest first, filtered by owner or creator.
CREATE INDEX pending_certificates_open ON pending_certificates (id) WHERE resolved = FALSE;
CREATE INDEX pending_certificates_owner ON pending_certificates (owner) WHERE resolved = FALSE;
