-- The sensitive domains, which every issuance checks against, read without scanning every
-- domain of the inventory.
CREATE INDEX domains_sensitive ON domains (name) WHERE sensitive = TRUE;
