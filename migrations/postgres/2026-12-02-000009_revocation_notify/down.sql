DROP TRIGGER revocations_notify ON revocations;
DROP FUNCTION notify_revocation();
