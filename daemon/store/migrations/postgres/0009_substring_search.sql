-- Substring search of common names (Lemur's `filter=cn;...`) through a trigram index, so a
-- search of a million certificates reads the matches, not every row. pg_trgm is a trusted
-- extension: the database's owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX certificates_cn_trigram ON certificates USING gin (lower(cn) gin_trgm_ops);
