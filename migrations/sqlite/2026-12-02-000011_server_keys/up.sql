-- Signing keys and server secrets kept in the database (key_store =
-- database). Every value is sealed with the key-encryption key (AES-256-GCM,
-- the row's name as associated data). Times are Unix seconds, as in the key
-- documents. SQLite has one process and no key-change notices to send.
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
