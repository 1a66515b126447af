-- The algorithm a relying party's ID tokens (and logout tokens) are signed
-- with: 'RS256', OpenID Connect's default that many relying parties insist
-- on, or the server's own. Empty: the server's configured algorithm, which
-- is what clients registered before this column got.
ALTER TABLE clients ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT '';
