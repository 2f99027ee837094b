-- Substring search (Lemur's `filter=cn;...` and by DNS name) through trigram indexes, so a
-- search of a million certificates reads the matches, not every row. Kept in step with their
-- tables by triggers.
CREATE VIRTUAL TABLE certificates_cn_search USING fts5(cn, content='certificates', content_rowid='id', tokenize='trigram', detail='none');
INSERT INTO certificates_cn_search (certificates_cn_search) VALUES ('rebuild');
CREATE TRIGGER certificates_cn_search_insert AFTER INSERT ON certificates BEGIN INSERT INTO certificates_cn_search (rowid, cn) VALUES (new.id, new.cn); END;
CREATE TRIGGER certificates_cn_search_delete AFTER DELETE ON certificates BEGIN INSERT INTO certificates_cn_search (certificates_cn_search, rowid, cn) VALUES ('delete', old.id, old.cn); END;
CREATE TRIGGER certificates_cn_search_update AFTER UPDATE OF cn ON certificates BEGIN INSERT INTO certificates_cn_search (certificates_cn_search, rowid, cn) VALUES ('delete', old.id, old.cn); INSERT INTO certificates_cn_search (rowid, cn) VALUES (new.id, new.cn); END;
CREATE VIRTUAL TABLE domains_search USING fts5(name, content='domains', content_rowid='id', tokenize='trigram', detail='none');
INSERT INTO domains_search (domains_search) VALUES ('rebuild');
CREATE TRIGGER domains_search_insert AFTER INSERT ON domains BEGIN INSERT INTO domains_search (rowid, name) VALUES (new.id, new.name); END;
CREATE TRIGGER domains_search_delete AFTER DELETE ON domains BEGIN INSERT INTO domains_search (domains_search, rowid, name) VALUES ('delete', old.id, old.name); END;
CREATE TRIGGER domains_search_update AFTER UPDATE OF name ON domains BEGIN INSERT INTO domains_search (domains_search, rowid, name) VALUES ('delete', old.id, old.name); INSERT INTO domains_search (rowid, name) VALUES (new.id, new.name); END;
