-- The certificates each authority's CRL lists: found without reading the authority's others.
CREATE INDEX certificates_revoked ON certificates (authority_id, id) WHERE status = 'revoked';
