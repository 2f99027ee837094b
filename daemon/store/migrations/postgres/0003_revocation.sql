-- Revocation: when and why a certificate was revoked (the local CA's CRL is built from these).
ALTER TABLE certificates ADD COLUMN revoked_at BIGINT;
ALTER TABLE certificates ADD COLUMN revocation_reason TEXT;
