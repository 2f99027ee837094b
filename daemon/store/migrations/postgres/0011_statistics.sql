-- Lemur's certificate statistics (by key size, issuer, signature algorithm, and issuer of those
-- expiring soon) read an index of the live certificates rather than every row.
CREATE INDEX certificates_live_bits ON certificates (bits) WHERE deleted = FALSE;
CREATE INDEX certificates_live_issuer ON certificates (issuer) WHERE deleted = FALSE;
CREATE INDEX certificates_live_signing_algorithm ON certificates (signing_algorithm) WHERE deleted = FALSE;
CREATE INDEX certificates_live_expiring_issuer ON certificates (not_after, issuer) WHERE deleted = FALSE;
