-- When a second live refresh token was issued in this session: a duplicate
-- refresh inside the reuse grace window gets a sibling token. NULL: the
-- session has one live chain. The next rotation of a forked session spends
-- every other live token of it and clears this, so at most one chain
-- outlives the grace window (a copy that keeps rotating on its own is then
-- caught as reuse).
ALTER TABLE sessions ADD COLUMN forked_at TIMESTAMP;
