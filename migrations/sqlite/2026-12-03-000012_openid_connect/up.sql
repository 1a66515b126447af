-- OpenID Connect: registered clients become relying parties too.
-- Redirect URIs are matched exactly (space-separated, as OAuth writes lists);
-- a public client (a native or browser app) has no secret and must use PKCE,
-- as every client must; a first-party client skips the consent page;
-- `scopes` are the extra scopes it may ask for beyond `openid profile email`.
ALTER TABLE clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN public BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN first_party BOOLEAN NOT NULL DEFAULT FALSE;
-- Where to POST logout tokens (OpenID Connect Back-Channel Logout 1.0).
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT NOT NULL DEFAULT '';

-- A session a relying party holds for a user: `scope` is what was granted
-- (NULL for native and profile sessions), `sso_session_id` the browser
-- session that signed the user in; ending that one ends this one too.
ALTER TABLE sessions ADD COLUMN scope TEXT;
ALTER TABLE sessions ADD COLUMN sso_session_id TEXT;
CREATE INDEX sessions_sso_session_id ON sessions(sso_session_id);

-- Authorization codes: SHA-256 of the code only, single use, bound to the
-- client, the redirect URI and the PKCE challenge. `session_id` is the
-- session its exchange started, so a second exchange can end it.
CREATE TABLE authorization_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id),
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sso_session_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    nonce TEXT,
    scope TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    session_id TEXT
);
CREATE INDEX authorization_codes_expires_at ON authorization_codes(expires_at);

-- What a user allowed a third-party relying party to receive: the consent
-- page is skipped while the scopes asked for are within it. Revoking it on
-- the dashboard ends that client's sessions of the user.
CREATE TABLE consents (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES clients(id),
    scope TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Back-channel logout: a logout token per ended relying-party session,
-- written in the transaction that ended it and POSTed to the client by the
-- background worker, retried with backoff until `done_at`.
CREATE TABLE logout_notifications (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id),
    uri TEXT NOT NULL,
    logout_token TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    done_at TIMESTAMP,
    delivered BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX logout_notifications_due ON logout_notifications(done_at, next_attempt_at);

-- Device authorization grant (RFC 8628): the device polls with the device
-- code, the user types the user code on another screen. Both stored as
-- SHA-256 only. Approved or denied once; consumed by one token request.
CREATE TABLE device_codes (
    device_code_hash TEXT PRIMARY KEY NOT NULL,
    user_code_hash TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL REFERENCES clients(id),
    scope TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    interval_secs BIGINT NOT NULL,
    last_polled_at TIMESTAMP,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    sso_session_id TEXT,
    approved_at TIMESTAMP,
    denied_at TIMESTAMP,
    consumed_at TIMESTAMP
);
CREATE INDEX device_codes_expires_at ON device_codes(expires_at);
