-- What a certificate's view shows from inside the certificate, kept beside it so a list page does
-- not parse a PEM per row. NULL in rows stored before this migration (the view then parses).
ALTER TABLE certificates ADD COLUMN subject_organization TEXT;
ALTER TABLE certificates ADD COLUMN subject_organizational_unit TEXT;
ALTER TABLE certificates ADD COLUMN subject_country TEXT;
ALTER TABLE certificates ADD COLUMN subject_state TEXT;
ALTER TABLE certificates ADD COLUMN subject_location TEXT;
ALTER TABLE certificates ADD COLUMN path_length BIGINT;
ALTER TABLE certificates ADD COLUMN server_auth BOOLEAN;
ALTER TABLE certificates ADD COLUMN client_auth BOOLEAN;
ALTER TABLE certificates ADD COLUMN alt_names TEXT;
