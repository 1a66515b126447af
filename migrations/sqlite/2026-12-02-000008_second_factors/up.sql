-- Second factors. A session remembers how it was authenticated (`amr`,
-- space-separated RFC 8176 values) and when (`auth_time`), so refreshed
-- access tokens keep saying so and step-up checks can read it.
ALTER TABLE sessions ADD COLUMN amr TEXT;
ALTER TABLE sessions ADD COLUMN auth_time TIMESTAMP;

-- One TOTP secret per user, sealed with the server's sealing key. Pending
-- until confirmed with a first code; `last_used_step` is the time step of
-- the newest accepted code, so no code is accepted twice.
CREATE TABLE totp_credentials (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_sealed TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    confirmed_at TIMESTAMP,
    last_used_step BIGINT
);

-- Recovery codes: keyed hashes only, each usable once.
CREATE TABLE recovery_codes (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE UNIQUE INDEX recovery_codes_user_hash ON recovery_codes(user_id, code_hash);

-- The second step of a login: a right password gives an opaque token
-- (stored as its SHA-256) that a second factor turns into a session. Single
-- use, short-lived, dead after five wrong codes.
CREATE TABLE mfa_challenges (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    failures BIGINT NOT NULL DEFAULT 0,
    used_at TIMESTAMP
);
CREATE INDEX mfa_challenges_expires_at ON mfa_challenges(expires_at);
