DROP TABLE authorization_codes;
DROP INDEX sessions_sso_session_id;
ALTER TABLE sessions DROP COLUMN sso_session_id;
ALTER TABLE sessions DROP COLUMN scope;
ALTER TABLE clients DROP COLUMN first_party;
ALTER TABLE clients DROP COLUMN public;
ALTER TABLE clients DROP COLUMN scopes;
ALTER TABLE clients DROP COLUMN post_logout_redirect_uris;
ALTER TABLE clients DROP COLUMN redirect_uris;
