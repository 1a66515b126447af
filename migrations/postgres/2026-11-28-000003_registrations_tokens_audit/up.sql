-- Seed 000: company registrations reviewed by operators, activation links,
-- personal API tokens (signed JWTs recorded by jti), and a hash-chained,
-- append-only audit log.

CREATE TABLE registrations (
    id TEXT PRIMARY KEY NOT NULL,
    company_name TEXT NOT NULL,
    contact_name TEXT NOT NULL,
    contact_email TEXT NOT NULL,
    contact_phone TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    decided_at TIMESTAMP,
    decided_by TEXT REFERENCES users(id),
    decision_note TEXT,
    organization_id TEXT REFERENCES organizations(id),
    user_id TEXT REFERENCES users(id)
);
CREATE INDEX registrations_status ON registrations(status, created_at);
CREATE INDEX registrations_contact_email ON registrations(contact_email);

-- One-time activation links: only the SHA-256 of the token is stored.
CREATE TABLE activation_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX activation_tokens_user_id ON activation_tokens(user_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX api_tokens_user_id ON api_tokens(user_id);

-- Append-only. hash = SHA-256(prev_hash || canonical row); editing or
-- deleting any row breaks the chain from there on (`auth-server audit verify`).
CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TIMESTAMP NOT NULL,
    actor TEXT,
    subject TEXT,
    organization_id TEXT,
    ip TEXT,
    user_agent TEXT,
    event TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_event ON audit_log(event, id);
CREATE INDEX audit_log_subject ON audit_log(subject, id);

ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;
