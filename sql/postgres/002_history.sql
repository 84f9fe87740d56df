-- fastify-session-guard, PostgreSQL store: schema version 2, the login history.
--
-- One row per event of a user's history (sign-ins, refusals, lockouts,
-- revocations, anomalies: `app.sessions.history()`). Bounded per user in count
-- by the store (each append keeps the newest `history.maxEntries` of the user)
-- and in time by the purge, which deletes rows past `expires_at` (the event's
-- time plus `history.maxAge` when it was written). Addresses as in `sessions`.
CREATE TABLE history (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id text NOT NULL,
  at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  type text NOT NULL,
  session_id text,
  device jsonb,
  ip inet,
  ip_hash text,
  location jsonb,
  detail jsonb,
  CONSTRAINT history_one_ip CHECK (ip IS NULL OR ip_hash IS NULL)
);

-- One user's history, newest first (read, page, trim to the count, erase).
CREATE INDEX history_user_id ON history (user_id, id DESC);
-- The purge: rows by the end of their retention.
CREATE INDEX history_expires ON history (expires_at);
