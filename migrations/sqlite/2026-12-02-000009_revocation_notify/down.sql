-- PostgreSQL pushes revocations to listening instances (LISTEN/NOTIFY);
-- SQLite has one process and nothing to push. Kept so both backends have
-- the same migration versions.
SELECT 1;
