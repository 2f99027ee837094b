-- Substring search of common names (Lemur's `filter=cn;...`) through a trigram index, so a
-- search of a million certificates reads the matches, not every row. Kept in step with the
-- table by triggers; no per-document sizes (`columnsize=0`): nothing ranks by them.
CREATE VIRTUAL TABLE certificates_cn_search USING fts5(cn, content='certificates', content_rowid='id', tokenize='trigram', detail='none', columnsize=0);
INSERT INTO certificates_cn_search (certificates_cn_search) VALUES ('rebuild');
CREATE TRIGGER certificates_cn_search_insert AFTER INSERT ON certificates BEGIN INSERT INTO certificates_cn_search (rowid, cn) VALUES (new.id, new.cn); END;
CREATE TRIGGER certificates_cn_search_delete AFTER DELETE ON certificates BEGIN INSERT INTO certificates_cn_search (certificates_cn_search, rowid, cn) VALUES ('delete', old.id, old.cn); END;
CREATE TRIGGER certificates_cn_search_update AFTER UPDATE OF cn ON certificates BEGIN INSERT INTO certificates_cn_search (certificates_cn_search, rowid, cn) VALUES ('delete', old.id, old.cn); INSERT INTO certificates_cn_search (rowid, cn) VALUES (new.id, new.cn); END;
