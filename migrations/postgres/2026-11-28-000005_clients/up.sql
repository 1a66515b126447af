-- Registered clients (other services): they authenticate with HTTP Basic;
-- only the SHA-256 of the secret is stored. External identities map a
-- client's own user ids (the buzzbook profile's `userId`) onto our users.

CREATE TABLE clients (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);

CREATE TABLE external_identities (
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    login_id TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (client_id, external_id)
);
CREATE INDEX external_identities_user_id ON external_identities(user_id);
