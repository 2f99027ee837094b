-- Lemur's certificate statistics (by key size, issuer and signature algorithm) read an index of
-- the live certificates rather than every row; those expiring soon by issuer read the expiry
-- index, which carries the issuer.
CREATE INDEX certificates_live_bits ON certificates (bits) WHERE deleted = FALSE;
CREATE INDEX certificates_live_issuer ON certificates (issuer) WHERE deleted = FALSE;
CREATE INDEX certificates_live_signing_algorithm ON certificates (signing_algorithm) WHERE deleted = FALSE;
