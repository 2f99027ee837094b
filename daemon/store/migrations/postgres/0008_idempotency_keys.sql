-- A client's Idempotency-Key and the fingerprint of its request, kept with the certificate the
-- request made: a retry after a lost answer finds it instead of making a second one.
ALTER TABLE certificates ADD COLUMN idempotency_key TEXT;
ALTER TABLE certificates ADD COLUMN idempotency_fingerprint TEXT;
CREATE UNIQUE INDEX certificates_idempotency_key ON certificates (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
