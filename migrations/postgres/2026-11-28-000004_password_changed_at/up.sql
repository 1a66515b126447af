-- When the password was last set, for the envelope profile's password age policy.
ALTER TABLE users ADD COLUMN password_changed_at TIMESTAMP;
