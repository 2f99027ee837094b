-- The dashboard's issuance per day: certificates by when they entered the inventory.
CREATE INDEX certificates_live_created ON certificates (date_created) WHERE deleted = FALSE;
