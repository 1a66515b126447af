-- Passkeys (WebAuthn). `credential` is webauthn-rs's `Passkey` as JSON: the
-- public key, signature counter and backup flags (nothing secret). A
-- credential id belongs to one account only (WebAuthn §7.1 step 22).
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);
CREATE UNIQUE INDEX passkeys_credential_id ON passkeys(credential_id);
CREATE INDEX passkeys_user_id ON passkeys(user_id);

-- A WebAuthn ceremony between its options and its answer, kept in the
-- database so that any instance can finish what another began. Keyed by
-- the SHA-256 of the opaque `challenge_id`; single use (claimed by
-- deleting the row), five minutes. `purpose`: `register` (for `user_id`),
-- `any` (a discoverable login: whoever the passkey names) or `user` (only
-- `user_id`'s passkeys; NULL when the login named nobody, so it fails).
CREATE TABLE webauthn_ceremonies (
    challenge_hash TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires_at ON webauthn_ceremonies(expires_at);
