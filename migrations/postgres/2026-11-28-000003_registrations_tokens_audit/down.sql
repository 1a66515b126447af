ALTER TABLE users DROP COLUMN must_change_password;
DROP TABLE audit_log;
DROP TABLE api_tokens;
DROP TABLE activation_tokens;
DROP TABLE registrations;
