DROP TRIGGER signing_keys_notify ON signing_keys;
DROP FUNCTION notify_key_change();
DROP TABLE server_secrets;
DROP TABLE signing_keys;
