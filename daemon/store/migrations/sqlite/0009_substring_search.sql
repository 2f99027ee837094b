-- Substring search of common names (Lemur's `filter=cn;...`) through a trigram index, so a
-- search of a million certificates reads the matches, not every row. The index keeps its own
-- copy of each CN (a few dozen bytes), so checking a candidate reads that small table rather
-- than the certificate's row; triggers keep it in step. No per-document sizes
-- (`columnsize=0`): nothing ranks by them.
CREATE VIRTUAL TABLE certificates_cn_search USING fts5(cn, tokenize='trigram', detail='none', columnsize=0);
INSERT INTO certificates_cn_search (rowid, cn) SELECT id, cn FROM certificates;
CREATE TRIGGER certificates_cn_search_insert AFTER INSERT ON certificates BEGIN INSERT INTO certificates_cn_search (rowid, cn) VALUES (new.id, new.cn); END;
CREATE TRIGGER certificates_cn_search_delete AFTER DELETE ON certificates BEGIN DELETE FROM certificates_cn_search WHERE rowid = old.id; END;
CREATE TRIGGER certificates_cn_search_update AFTER UPDATE OF cn ON certificates BEGIN UPDATE certificates_cn_search SET cn = new.cn WHERE rowid = old.id; END;
