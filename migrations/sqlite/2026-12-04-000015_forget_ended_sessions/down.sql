DROP INDEX refresh_tokens_parent_id;
DROP INDEX sessions_expires_at;
