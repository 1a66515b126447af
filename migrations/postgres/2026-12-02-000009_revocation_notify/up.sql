-- Every statement that adds revocations tells the listening instances
-- (storage::RevocationListener), whatever code path inserted them; the
-- notice is delivered at commit, so a listener never reads ahead of it.
CREATE FUNCTION notify_revocation() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('auth_revocations', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER revocations_notify
    AFTER INSERT ON revocations
    FOR EACH STATEMENT EXECUTE FUNCTION notify_revocation();
