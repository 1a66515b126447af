DROP TABLE outbox;
DROP TABLE email_verifications;
DROP TABLE email_codes;
DROP TABLE organization_domains;
ALTER TABLE users DROP COLUMN locale;
