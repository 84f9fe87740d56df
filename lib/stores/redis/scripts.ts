/**
 * The session scripts of the Redis store, loaded once per client with
 * `defineCommand` (EVALSHA, falling back to EVAL after a server restart);
 * `commands.ts` calls them and `replies.ts` reads their replies. The stats
 * and counter scripts live with their callers, in `stats.ts` and `counters.ts`.
 *
 * Every script touches the keys of one user only, which share the hash tag
 * `{u:<userId>}`: one Cluster slot, so each script is one atomic step.
 *
 * A session is one string at `{u:<userId>}:r:<id>`, a JSON object with short
 * field names and string values (its id and user id are in its key):
 *   f fingerprintHash, c createdAt, l lastSeenAt, i idleExpiresAt,
 *   a absoluteExpiresAt, r remembered ('1' | '0'), m claims (JSON, never parsed here),
 *   h refresh hash, n refresh nextHash, t refresh rotatedAt, k refresh rotations,
 *   v device (JSON), p ip, g userAgent, o location (JSON), x flags (JSON),
 *   y travelAnchor (JSON).
 * One string is one short reply to read (a `GET`), whatever the client, where
 * a hash of about 20 fields took several times the client's CPU to decode
 * (docs/benchmarks.md). The scripts decode it with `cjson` and write it back
 * whole when they change a field; they never decode or re-encode the JSON
 * values inside it, so those survive byte for byte (the device type is only read).
 *
 * An earlier version kept a session as a hash of the same fields at
 * `{u:<userId>}:s:<id>` (a long device, user agent, location or travel anchor
 * in 64-byte pieces, `v1`, `v2` … instead of `v`). `load` reads one as the same
 * record, and the first write moves it to the string and deletes the hash.
 *
 * `now` always comes from the caller (the plugin's injected clock); the scripts
 * never call `TIME`. TTLs are set as durations (`PEXPIRE deadline - now`) and
 * only ever lengthened: liveness comes from the deadlines in the record.
 *
 * Every session script replies `{ status, user, main, others, expired }`:
 * `main` one record (`{ id, JSON }`, empty when none), `others` a list
 * of records (evicted, active, revoked or listed, by script), `expired` the
 * records found past a deadline and removed on the way, `user` what the stats
 * need to know of the user's index: `{ deadline, size, version, changed }`,
 * its latest deadline ('0' when empty), how many sessions it holds, the
 * version of that size (`{u:<userId>}:v`, bumped whenever the size changes,
 * so follow-ups that cross on their way to the stats apply in order) and
 * whether this script changed the size ('1' | '0').
 */

import { CLOCK_SKEW_ALLOWANCE_MS } from '../../session.js'

const PRELUDE = `
local function int(n) return string.format('%d', n) end

-- A session past a deadline by the caller's \`now\` is refused, but removed only
-- this long after it (CLOCK_SKEW_ALLOWANCE_MS): another instance's clock may
-- still call it live. Keys outlive their deadline by as much, for the same reason.
local ALLOWANCE_MS = ${CLOCK_SKEW_ALLOWANCE_MS}

-- Every session script has the user's index as KEYS[1]: its size before the script.
local sizeBefore = redis.call('ZCARD', KEYS[1])

-- Where an earlier version kept the session at \`key\` (\`…:r:<id>\`): a hash at \`…:s:<id>\`.
local function legacyKey(key, id)
  return string.sub(key, 1, #key - #id - 3) .. ':s:' .. id
end

-- The fields an earlier version kept in 64-byte pieces when longer.
local PIECED = { 'v', 'g', 'o', 'y' }

-- A session: its JSON and its fields, or nil, nil. One an earlier version
-- wrote, a hash, reads as the same record, its pieces joined.
local function load(key, id)
  local json = redis.call('GET', key)
  if json then return json, cjson.decode(json) end
  local flat = redis.call('HGETALL', legacyKey(key, id))
  if #flat == 0 then return nil, nil end
  local map = {}
  for j = 1, #flat, 2 do map[flat[j]] = flat[j + 1] end
  -- Its id and user id are in its key.
  map.d, map.u = nil, nil
  for _, field in ipairs(PIECED) do
    local pieces, n = {}, 1
    while map[field .. n] ~= nil do
      pieces[n], map[field .. n], n = map[field .. n], nil, n + 1
    end
    -- A whole value comes before any piece.
    if map[field] == nil and n > 1 then map[field] = table.concat(pieces) end
  end
  return cjson.encode(map), map
end

-- Writes a session's changed fields back, its TTL kept (\`rearm\` lengthens it);
-- the hash an earlier version kept goes. Returns the JSON written.
local function save(key, id, map)
  local json = cjson.encode(map)
  redis.call('SET', key, json, 'KEEPTTL')
  redis.call('DEL', legacyKey(key, id))
  return json
end

-- Deletes a session, in either layout.
local function remove(key, id)
  redis.call('DEL', key, legacyKey(key, id))
end

local function isLive(map, now)
  return now < tonumber(map.i) and now < tonumber(map.a)
end

-- The device type a session counts under (deviceTypeOf() in lib/session.ts):
-- its device's, 'unknown' without one. Only read: the field is never re-encoded.
local function deviceType(map)
  local json = map.v
  if json == nil then return 'unknown' end
  local device = cjson.decode(json)
  if type(device.type) == 'string' then return device.type end
  return 'unknown'
end

local function deadline(map)
  return math.min(tonumber(map.i), tonumber(map.a))
end

-- Sets a key's TTL to end at \`ends\`, but only ever lengthens it: liveness is
-- always decided from the record's deadlines and the caller's \`now\`, and the
-- TTL only cleans up, so a caller whose clock is ahead must not cut a session
-- (or its index) short for every other instance.
local function expireAt(key, ends, now)
  local left = math.max(1, ends + ALLOWANCE_MS - now)
  if redis.call('PTTL', key) < left then redis.call('PEXPIRE', key, int(left)) end
end

-- How long the size version outlives the index: longer than any follow-up takes.
local VERSION_KEEP_MS = 86400000

-- Re-arms the index TTL to its latest member and bumps the size version when
-- the size changed; returns { deadline ('0' when empty), size, version, changed }.
local function settle(index, now)
  local size = redis.call('ZCARD', index)
  local vkey = string.sub(index, 1, -2) .. 'v'
  local changed, version = '0', nil
  if size ~= sizeBefore then
    changed = '1'
    version = redis.call('INCR', vkey)
  else
    version = tonumber(redis.call('GET', vkey) or '0')
  end
  local top = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  local ends, keep = '0', VERSION_KEEP_MS
  if #top > 0 then
    -- The index must not expire before members written with longer TTLs, or
    -- listing and the per-user limit would miss them.
    expireAt(index, tonumber(top[2]), now)
    ends, keep = top[2], keep + math.max(1, tonumber(top[2]) - now)
  end
  if version > 0 then redis.call('PEXPIRE', vkey, int(keep)) end
  return { ends, int(size), int(version), changed }
end

-- Applies activity changes from ARGV[from..] to a session's fields: the count
-- of fields to delete, those fields, then field/value pairs to set
-- (lastSeenAt and idleExpiresAt among them).
local function change(map, from)
  local dels = tonumber(ARGV[from])
  for j = from + 1, from + dels do map[ARGV[j]] = nil end
  for j = from + dels + 1, #ARGV, 2 do map[ARGV[j]] = ARGV[j + 1] end
end

local function announce(channel, ids)
  if #ids > 0 then redis.call('PUBLISH', channel, cjson.encode(ids)) end
end

-- One session: its record as replies give it, \`{ id, JSON }\`, and its fields,
-- when live. One past a deadline is refused; it is removed and its record
-- returned third when \`revoking\`, or once past the deadline by ALLOWANCE_MS.
-- A member whose session is gone leaves the index.
local function one(index, key, id, now, revoking)
  local json, map = load(key, id)
  if json == nil then
    redis.call('ZREM', index, id)
    return nil, nil, nil
  end
  if isLive(map, now) then return { id, json }, map, nil end
  if not revoking and now < deadline(map) + ALLOWANCE_MS then return nil, nil, nil end
  remove(key, id)
  redis.call('ZREM', index, id)
  return nil, nil, { id, json }
end

-- Every session of the user: live ones (with maps) and the expired ones removed
-- on the way (every one past a deadline but \`keep\` when \`revoking\`, see \`one\`).
local function all(index, base, now, revoking, keep)
  local live, expired = {}, {}
  for _, id in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    local key = base .. id
    local record, map, gone = one(index, key, id, now, revoking and id ~= keep)
    if record ~= nil then
      live[#live + 1] = { id = id, key = key, record = record, map = map }
    elseif gone ~= nil then
      expired[#expired + 1] = gone
    end
  end
  return live, expired
end

-- After a live session's fields changed: writes them, its TTL and index score
-- follow its deadline, and every instance drops its cached copy. Returns its record.
local function rearm(index, key, id, map, channel, now)
  local updated = { id, save(key, id, map) }
  local ends = deadline(map)
  expireAt(key, ends, now)
  redis.call('ZADD', index, 'XX', int(ends), id)
  announce(channel, { id })
  return updated
end

local function records(list)
  local out = {}
  for j, entry in ipairs(list) do out[j] = entry.record end
  return out
end

-- Writes a new session from ARGV[from], its id, and ARGV[from + 1], its JSON:
-- the whole record, nothing kept of an earlier one under the id (one past its
-- deadline, within the allowance, under an import), not its TTL either.
local function insert(index, key, from, now)
  local id, json = ARGV[from], ARGV[from + 1]
  redis.call('SET', key, json)
  redis.call('DEL', legacyKey(key, id))
  local ends = deadline(cjson.decode(json))
  expireAt(key, ends, now)
  redis.call('ZADD', index, int(ends), id)
end
`

/**
 * KEYS: index, new session. ARGV: now, max, onLimit ('evict-oldest' | 'reject'),
 * session key base, channel, device type ('' for no limit of its own), that
 * type's max, its onLimit, id, its JSON.
 * Prunes, counts (the type's sessions, then all), evicts the least recently
 * active or refuses, inserts: one step. The rule of `planCreate()` in
 * lib/stores/limit.ts. A session's type is read here, from its own device
 * field, as it is now (activity may have changed it): no second round trip,
 * and nothing a caller could have read before the step.
 */
export const CREATE = PRELUDE + `
local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local typed, typeMax = ARGV[6], tonumber(ARGV[7])
local live, expired = all(KEYS[1], ARGV[4], now)
-- Most recently active first. Evict by lastSeenAt, not createdAt: the user may
-- still be on the older device.
table.sort(live, function (x, y)
  local lx, ly = tonumber(x.map.l), tonumber(y.map.l)
  if lx ~= ly then return lx > ly end
  return x.id > y.id
end)
local evicting = {}
if typed ~= '' then
  local ofType = {}
  for _, entry in ipairs(live) do
    if deviceType(entry.map) == typed then ofType[#ofType + 1] = entry end
  end
  if #ofType >= typeMax then
    if ARGV[8] == 'reject' then
      return { 'full-type', settle(KEYS[1], now), {}, records(ofType), expired }
    end
    for j = typeMax, #ofType do evicting[ofType[j].id] = true end
  end
end
local rest = {}
for _, entry in ipairs(live) do
  if not evicting[entry.id] then rest[#rest + 1] = entry end
end
if #rest >= max then
  if ARGV[3] == 'reject' then
    return { 'full', settle(KEYS[1], now), {}, records(live), expired }
  end
  for j = max, #rest do evicting[rest[j].id] = true end
end
local evicted, ids = {}, {}
for _, entry in ipairs(live) do
  if evicting[entry.id] then
    remove(entry.key, entry.id)
    redis.call('ZREM', KEYS[1], entry.id)
    evicted[#evicted + 1] = entry.record
    ids[#ids + 1] = entry.id
  end
end
insert(KEYS[1], KEYS[2], 9, now)
announce(ARGV[5], ids)
return { 'created', settle(KEYS[1], now), {}, evicted, expired }
`

/** KEYS: index, session. ARGV: now, id. Read-only unless the session is found expired. */
export const GET = PRELUDE + `
local now = tonumber(ARGV[1])
local record, _, gone = one(KEYS[1], KEYS[2], ARGV[2], now)
local ends = settle(KEYS[1], now)
if record == nil then return { 'none', ends, {}, {}, { gone } } end
return { 'live', ends, record, {}, {} }
`

/**
 * KEYS: index, session. ARGV: now, id, channel, then the changes (see
 * `change`): lastSeenAt, idleExpiresAt and the changed client fields.
 * Updates only a session that still exists and is live: never resurrects.
 */
export const TOUCH = PRELUDE + `
local now = tonumber(ARGV[1])
local record, map, gone = one(KEYS[1], KEYS[2], ARGV[2], now)
if record == nil then return { 'none', settle(KEYS[1], now), {}, {}, { gone } } end
change(map, 4)
local updated = rearm(KEYS[1], KEYS[2], ARGV[2], map, ARGV[3], now)
return { 'live', settle(KEYS[1], now), updated, {}, {} }
`

/**
 * KEYS: index, session. ARGV: now, id, channel, presentedHash, successorHash,
 * graceMs, then the changes (see `change`) with the activity.
 * Compare-and-swap mirroring decideRotation() and rotatedState() in lib/session.ts.
 */
export const ROTATE = PRELUDE + `
local now = tonumber(ARGV[1])
local record, map, gone = one(KEYS[1], KEYS[2], ARGV[2], now)
if record == nil or map.h == nil then return { 'missing', settle(KEYS[1], now), {}, {}, { gone } } end
local presented = ARGV[4]
local decision
if presented == map.n then
  decision = 'rotate'
elseif presented == map.h then
  if map.n == nil then
    decision = 'rotate'
  elseif now - tonumber(map.t) < tonumber(ARGV[6]) then
    -- a parallel tab inside the grace window
    decision = 'conflict'
  else
    -- the successor's response was lost on its way
    decision = 'rotate'
  end
else
  decision = 'reuse'
end
if decision == 'conflict' then return { 'conflict', settle(KEYS[1], now), {}, {}, {} } end
if decision == 'reuse' then
  remove(KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[1], ARGV[2])
  announce(ARGV[3], { ARGV[2] })
  return { 'reuse', settle(KEYS[1], now), record, {}, {} }
end
change(map, 7)
map.h, map.n, map.t, map.k = presented, ARGV[5], ARGV[1], int(tonumber(map.k) + 1)
local updated = rearm(KEYS[1], KEYS[2], ARGV[2], map, ARGV[3], now)
return { 'rotated', settle(KEYS[1], now), updated, {}, {} }
`

/**
 * KEYS: index, old session, new session. ARGV: now, oldId, channel, newId,
 * its JSON. Removes the old session and inserts the new one, or changes nothing.
 */
export const REPLACE = PRELUDE + `
local now = tonumber(ARGV[1])
local record, _, gone = one(KEYS[1], KEYS[2], ARGV[2], now)
if record == nil then return { 'none', settle(KEYS[1], now), {}, {}, { gone } } end
remove(KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[2])
insert(KEYS[1], KEYS[3], 4, now)
announce(ARGV[3], { ARGV[2] })
return { 'replaced', settle(KEYS[1], now), record, {}, {} }
`

/**
 * KEYS: index, session. ARGV: now, id, channel. A session past a deadline by
 * \`now\` is removed too (as expired): it may be live by another instance's clock.
 */
export const REVOKE = PRELUDE + `
local now = tonumber(ARGV[1])
local record, _, gone = one(KEYS[1], KEYS[2], ARGV[2], now, true)
if record == nil then return { 'none', settle(KEYS[1], now), {}, {}, { gone } } end
remove(KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[2])
announce(ARGV[3], { ARGV[2] })
return { 'revoked', settle(KEYS[1], now), record, {}, {} }
`

/** KEYS: index. ARGV: now, session key base, channel, exceptId ('' for none). */
export const REVOKE_USER = PRELUDE + `
local now = tonumber(ARGV[1])
local live, expired = all(KEYS[1], ARGV[2], now, true, ARGV[4])
local revoked, ids = {}, {}
for _, entry in ipairs(live) do
  if entry.id ~= ARGV[4] then
    remove(entry.key, entry.id)
    redis.call('ZREM', KEYS[1], entry.id)
    revoked[#revoked + 1] = entry.record
    ids[#ids + 1] = entry.id
  end
end
announce(ARGV[3], ids)
return { 'revoked', settle(KEYS[1], now), {}, revoked, expired }
`

/** KEYS: index. ARGV: now, session key base. The user's live sessions; expired ones are removed. */
export const LIST_USER = PRELUDE + `
local now = tonumber(ARGV[1])
local live, expired = all(KEYS[1], ARGV[2], now)
return { 'listed', settle(KEYS[1], now), {}, records(live), expired }
`

/**
 * KEYS: index, session. ARGV: now, channel, rotations, lastSeenAt (of the
 * record imported), id, its JSON. Writes the record as it is, unless
 * the live one held under its id is newer (mirroring `supersedes()` in
 * lib/session.ts): more rotations, or as many and later activity.
 */
export const IMPORT = PRELUDE + `
local now = tonumber(ARGV[1])
local _, map, gone = one(KEYS[1], KEYS[2], ARGV[5], now)
if map ~= nil then
  local held, incoming = tonumber(map.k or '0'), tonumber(ARGV[3])
  if held > incoming or (held == incoming and tonumber(map.l) > tonumber(ARGV[4])) then
    return { 'kept', settle(KEYS[1], now), {}, {}, {} }
  end
  -- The record is replaced whole: the copy may lack fields the held one has (a pending successor).
  announce(ARGV[2], { ARGV[5] })
end
insert(KEYS[1], KEYS[2], 5, now)
return { 'imported', settle(KEYS[1], now), {}, {}, { gone } }
`
