-- Sessions are deleted some days after their absolute end (with their
-- refresh tokens, by the cascade): found by their end. The lineage column
-- parent_id stops being a foreign key: every rotation paid a lookup of the
-- parent for it, and every deleted token a search for its children (a scan,
-- without an index that every rotation would pay for too). A token's
-- parent is in its own session, deleted with it.
CREATE INDEX sessions_expires_at ON sessions(expires_at);
ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_parent_id_fkey;
