-- Mail and organizations (seed 004): allowed email domains per organization,
-- single-use email codes (stored as keyed hashes only), addresses verified
-- for an organization, and the durable mail outbox.

ALTER TABLE users ADD COLUMN locale TEXT;

CREATE TABLE organization_domains (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    domain TEXT NOT NULL,
    include_subdomains BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (organization_id, domain)
);

CREATE TABLE email_codes (
    id TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,
    email TEXT NOT NULL,
    organization_id TEXT REFERENCES organizations(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    consumed_at TIMESTAMP
);
CREATE INDEX email_codes_lookup ON email_codes(purpose, email, created_at);

CREATE TABLE email_verifications (
    email TEXT NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    verified_at TIMESTAMP NOT NULL,
    PRIMARY KEY (email, organization_id)
);

-- Written in the same transaction as the change that causes the mail; a
-- worker delivers it. next_attempt_at doubles as a lease while sending.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT NOT NULL,
    template TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
