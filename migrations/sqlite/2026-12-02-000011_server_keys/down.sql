DROP TABLE server_secrets;
DROP TABLE signing_keys;
