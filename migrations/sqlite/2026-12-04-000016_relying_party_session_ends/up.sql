-- A relying party's session ends with the browser session it came from, at
-- the latest. Sessions started before that rule counted their own 30 days
-- from the code exchange: bring their end back to their browser session's.
UPDATE sessions
SET expires_at = (SELECT browser.expires_at FROM sessions AS browser
                  WHERE browser.id = sessions.sso_session_id)
WHERE sso_session_id IS NOT NULL
  AND expires_at > (SELECT browser.expires_at FROM sessions AS browser
                    WHERE browser.id = sessions.sso_session_id);
