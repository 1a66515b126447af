ALTER TABLE refresh_tokens ADD CONSTRAINT refresh_tokens_parent_id_fkey
    FOREIGN KEY (parent_id) REFERENCES refresh_tokens(id) ON DELETE CASCADE;
DROP INDEX sessions_expires_at;
