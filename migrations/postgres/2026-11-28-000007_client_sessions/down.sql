DROP INDEX revocations_subject;
ALTER TABLE sessions DROP COLUMN client_id;
