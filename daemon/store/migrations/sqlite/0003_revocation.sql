-- Revocation: when and why a certificate was revoked (for the local CA's CRL, still to come).
ALTER TABLE certificates ADD COLUMN revoked_at INTEGER;
ALTER TABLE certificates ADD COLUMN revocation_reason TEXT;
