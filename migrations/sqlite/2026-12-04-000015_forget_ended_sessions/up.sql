-- Sessions are deleted some days after their absolute end (with their
-- refresh tokens, by the cascade): found by their end, and each deleted
-- token's children (parent_id, a foreign key) found without scanning the
-- whole table.
CREATE INDEX sessions_expires_at ON sessions(expires_at);
CREATE INDEX refresh_tokens_parent_id ON refresh_tokens(parent_id);
