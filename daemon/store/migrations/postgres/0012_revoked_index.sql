-- The certificates each authority's CRL lists: found without reading the authority's others.
CREATE INDEX certificates_revoked ON certificates (authority_id, id) WHERE status = 'revoked';
-- The last CRL number each authority used: every daemon sharing the database takes the next.
ALTER TABLE authorities ADD COLUMN crl_number BIGINT NOT NULL DEFAULT 0;
