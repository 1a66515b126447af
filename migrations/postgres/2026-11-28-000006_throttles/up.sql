-- Rate limits shared by every instance on this database (GCRA). `key` is an
-- HMAC of the limit's name and its subject (an address, an IP, a login
-- name), so no address is stored; `tat` is the theoretical arrival time in
-- unix milliseconds. A row whose `tat` has passed means "no recent events"
-- and can be deleted at any time.
CREATE TABLE throttles (
    key TEXT PRIMARY KEY NOT NULL,
    tat BIGINT NOT NULL
);
CREATE INDEX throttles_tat ON throttles(tat);
