-- The domains an authority may issue for (a JSON list; NULL for any), written into the
-- certificates of the CAs it makes as nameConstraints.
ALTER TABLE authorities ADD COLUMN permitted_domains TEXT;
