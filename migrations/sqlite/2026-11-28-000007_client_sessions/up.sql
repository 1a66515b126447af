-- A session started for a registered client's user (the buzzbook profile's
-- service-to-service login) names the client: its refresh tokens rotate only
-- through that client's profile, never through the native API, and a native
-- session's never through a client's.
ALTER TABLE sessions ADD COLUMN client_id TEXT REFERENCES clients(id);

-- Renewals look up whether a token id was spent already.
CREATE INDEX revocations_subject ON revocations(subject);
