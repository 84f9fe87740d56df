-- fastify-session-guard, PostgreSQL store: schema version 1.
--
-- Names are not schema-qualified: `migrate()` runs this file with `search_path`
-- set to the store's schema (`session_guard` unless the store's `schema` option
-- says otherwise). Run through a migration tool of your own, create the schema
-- and `SET search_path TO session_guard` first.

-- One row per session. Times are timestamptz (the store converts to and from
-- the plugin's epoch ms, exactly); the device, claims, location, flags and
-- travel anchor are jsonb; an address kept in full or truncated is an inet,
-- a hashed one (privacy.ipMode 'hashed') is text.
CREATE TABLE sessions (
  id text PRIMARY KEY,
  user_id text NOT NULL,
  fingerprint_hash text NOT NULL,
  created_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  idle_expires_at timestamptz NOT NULL,
  absolute_expires_at timestamptz NOT NULL,
  -- The session's deadline: live while expires_at > now.
  expires_at timestamptz GENERATED ALWAYS AS (LEAST(idle_expires_at, absolute_expires_at)) STORED,
  remembered boolean NOT NULL,
  claims jsonb,
  refresh_hash text,
  refresh_next_hash text,
  refresh_rotated_at timestamptz,
  refresh_rotations integer,
  device jsonb,
  ip inet,
  ip_hash text,
  user_agent text,
  location jsonb,
  flags jsonb,
  travel_anchor jsonb,
  CONSTRAINT sessions_one_ip CHECK (ip IS NULL OR ip_hash IS NULL),
  CONSTRAINT sessions_refresh CHECK ((refresh_hash IS NULL) = (refresh_rotated_at IS NULL) AND (refresh_hash IS NULL) = (refresh_rotations IS NULL))
);

-- One user's sessions (create and its per-user limit, listUser, revokeUser), live ones by deadline.
CREATE INDEX sessions_user_expires ON sessions (user_id, expires_at);
-- The purge and stats: sessions by deadline.
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Counters (failed logins, known devices, login bursts): one row per key, live while expires_at > now.
CREATE TABLE counters (
  key text PRIMARY KEY,
  count integer NOT NULL,
  first_at timestamptz NOT NULL,
  last_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);

-- The purge of counters whose window ended.
CREATE INDEX counters_expires ON counters (expires_at);
