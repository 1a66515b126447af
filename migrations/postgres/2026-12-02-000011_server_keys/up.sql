-- Signing keys and server secrets kept in the database, for instances that
-- share nothing else (key_store = database). Every value is sealed with the
-- key-encryption key (AES-256-GCM, the row's name as associated data): the
-- database never holds a private key or a secret in the clear. Times are
-- Unix seconds, as in the key documents.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    document TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY NOT NULL,
    sealed_value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- A rotation on any instance (or from the CLI) tells the listening
-- instances at commit, so they load the new key at once instead of at
-- their next re-read (storage::ChangeListener).
CREATE FUNCTION notify_key_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('auth_keys', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER signing_keys_notify
    AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION notify_key_change();
