ALTER TABLE sessions DROP COLUMN forked_at;
