DROP TABLE revocations;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE user_permissions;
DROP TABLE user_roles;
DROP TABLE users;
DROP TABLE organizations;
