-- A live certificate's body is in the inventory once: the database refuses a second, so an import
-- needs no look-up before it. `duplicate_of` names the live certificate whose body a row
-- repeats: rows stored before this rule, and certificates stored by a path that allows a body
-- twice (an authority's own certificate that was imported before). Neither is under the rule.
ALTER TABLE certificates ADD COLUMN duplicate_of INTEGER;
UPDATE certificates SET duplicate_of = first.id
FROM (SELECT body_sha256, min(id) AS id FROM certificates WHERE deleted = FALSE
      GROUP BY body_sha256 HAVING count(*) > 1) AS first
WHERE certificates.body_sha256 = first.body_sha256 AND certificates.deleted = FALSE
  AND certificates.id > first.id;
CREATE UNIQUE INDEX certificates_live_body ON certificates (body_sha256)
    WHERE deleted = FALSE AND duplicate_of IS NULL;
DROP INDEX certificates_body_sha256;
