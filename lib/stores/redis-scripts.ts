/**
 * The Lua scripts of the Redis store, loaded once per client with
 * `defineCommand` (EVALSHA, falling back to EVAL after a server restart).
 *
 * Every script touches the keys of one user only, which share the hash tag
 * `{u:<userId>}`: one Cluster slot, so each script is one atomic step.
 *
 * A session is a hash with short fields:
 *   u userId, f fingerprintHash, c createdAt, l lastSeenAt, i idleExpiresAt,
 *   a absoluteExpiresAt, r remembered ('1' | '0'), m claims (JSON, never parsed here),
 *   h refresh hash, n refresh nextHash, t refresh rotatedAt, k refresh rotations.
 * Lua never decodes or re-encodes the claims, so their JSON survives byte for byte.
 *
 * `now` always comes from the caller (the plugin's injected clock); the scripts
 * never call `TIME`. TTLs are set as durations (`PEXPIRE deadline - now`).
 *
 * Every script replies `{ status, userDeadline, main, others, expired }`:
 * `main` one record (flat field/value list, empty when none), `others` a list
 * of records (evicted, active, revoked or listed, by script), `expired` the
 * records found past a deadline and removed on the way, `userDeadline` the
 * latest deadline left in the user's index ('0' when it is empty).
 */

const PRELUDE = `
local function int(n) return string.format('%d', n) end

local function load(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil, nil end
  local map = {}
  for j = 1, #flat, 2 do map[flat[j]] = flat[j + 1] end
  return flat, map
end

local function isLive(map, now)
  return now < tonumber(map.i) and now < tonumber(map.a)
end

local function deadline(map)
  return math.min(tonumber(map.i), tonumber(map.a))
end

-- Re-arms the index TTL to its latest member; returns that deadline ('0' when empty).
local function settle(index, now)
  local top = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if #top == 0 then return '0' end
  redis.call('PEXPIRE', index, int(math.max(1, tonumber(top[2]) - now)))
  return top[2]
end

local function announce(channel, ids)
  if #ids > 0 then redis.call('PUBLISH', channel, cjson.encode(ids)) end
end

-- One session: its flat record and map when live; when past a deadline it is
-- removed and returned third; a member whose hash is gone leaves the index.
local function one(index, key, id, now)
  local flat, map = load(key)
  if flat == nil then
    redis.call('ZREM', index, id)
    return nil, nil, nil
  end
  if isLive(map, now) then return flat, map, nil end
  redis.call('DEL', key)
  redis.call('ZREM', index, id)
  return nil, nil, flat
end

-- Every session of the user: live ones (with maps) and the expired ones removed on the way.
local function all(index, base, now)
  local live, expired = {}, {}
  for _, id in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    local key = base .. id
    local flat, map, gone = one(index, key, id, now)
    if flat ~= nil then
      live[#live + 1] = { id = id, key = key, flat = flat, map = map }
    elseif gone ~= nil then
      expired[#expired + 1] = gone
    end
  end
  return live, expired
end

local function flats(list)
  local out = {}
  for j, entry in ipairs(list) do out[j] = entry.flat end
  return out
end

-- Writes a new session from ARGV[from..]: id, then field/value pairs.
local function insert(index, key, from, now)
  local fields = {}
  for j = from + 1, #ARGV do fields[#fields + 1] = ARGV[j] end
  redis.call('HSET', key, unpack(fields))
  local _, map = load(key)
  local ends = deadline(map)
  redis.call('PEXPIRE', key, int(math.max(1, ends - now)))
  redis.call('ZADD', index, int(ends), ARGV[from])
end
`

/**
 * KEYS: index, new session. ARGV: now, max, onLimit ('evict-oldest' | 'reject'),
 * session key base, channel, id, field/value pairs.
 * Prunes, counts, evicts the least recently active or refuses, inserts: one step.
 */
export const CREATE = PRELUDE + `
local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local live, expired = all(KEYS[1], ARGV[4], now)
local evicted, ids = {}, {}
if #live >= max then
  -- evict by lastSeenAt, not createdAt: the user may still be on the older device
  table.sort(live, function (x, y)
    local lx, ly = tonumber(x.map.l), tonumber(y.map.l)
    if lx ~= ly then return lx > ly end
    return x.id > y.id
  end)
  if ARGV[3] == 'reject' then
    return { 'full', settle(KEYS[1], now), {}, flats(live), expired }
  end
  for j = max, #live do
    redis.call('DEL', live[j].key)
    redis.call('ZREM', KEYS[1], live[j].id)
    evicted[#evicted + 1] = live[j].flat
    ids[#ids + 1] = live[j].id
  end
end
insert(KEYS[1], KEYS[2], 6, now)
announce(ARGV[5], ids)
return { 'created', settle(KEYS[1], now), {}, evicted, expired }
`

/** KEYS: index, session. ARGV: now, id. Read-only unless the session is found expired. */
export const GET = PRELUDE + `
local now = tonumber(ARGV[1])
local flat, _, gone = one(KEYS[1], KEYS[2], ARGV[2], now)
local ends = settle(KEYS[1], now)
if flat == nil then return { 'none', ends, {}, {}, { gone } } end
return { 'live', ends, flat, {}, {} }
`

/**
 * KEYS: index, session. ARGV: now, id, channel, lastSeenAt, idleExpiresAt.
 * Updates only a session that still exists and is live: never resurrects.
 */
export const TOUCH = PRELUDE + `
local now = tonumber(ARGV[1])
local flat, _, gone = one(KEYS[1], KEYS[2], ARGV[2], now)
if flat == nil then return { 'none', settle(KEYS[1], now), {}, {}, { gone } } end
redis.call('HSET', KEYS[2], 'l', ARGV[4], 'i', ARGV[5])
local updated, map = load(KEYS[2])
local ends = deadline(map)
redis.call('PEXPIRE', KEYS[2], int(math.max(1, ends - now)))
redis.call('ZADD', KEYS[1], 'XX', int(ends), ARGV[2])
announce(ARGV[3], { ARGV[2] })
return { 'live', settle(KEYS[1], now), updated, {}, {} }
`

/**
 * KEYS: index, session. ARGV: now, id, channel, presentedHash, successorHash,
 * graceMs, lastSeenAt, idleExpiresAt.
 * Compare-and-swap mirroring decideRotation() and rotatedState() in lib/session.ts.
 */
export const ROTATE = PRELUDE + `
local now = tonumber(ARGV[1])
local flat, map, gone = one(KEYS[1], KEYS[2], ARGV[2], now)
if flat == nil or map.h == nil then return { 'missing', settle(KEYS[1], now), {}, {}, { gone } } end
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
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[2])
  announce(ARGV[3], { ARGV[2] })
  return { 'reuse', settle(KEYS[1], now), flat, {}, {} }
end
redis.call('HSET', KEYS[2], 'h', presented, 'n', ARGV[5], 't', ARGV[1],
  'k', int(tonumber(map.k) + 1), 'l', ARGV[7], 'i', ARGV[8])
local updated, next = load(KEYS[2])
local ends = deadline(next)
redis.call('PEXPIRE', KEYS[2], int(math.max(1, ends - now)))
redis.call('ZADD', KEYS[1], 'XX', int(ends), ARGV[2])
announce(ARGV[3], { ARGV[2] })
return { 'rotated', settle(KEYS[1], now), updated, {}, {} }
`

/**
 * KEYS: index, old session, new session. ARGV: now, oldId, channel, newId,
 * field/value pairs. Removes the old session and inserts the new one, or changes nothing.
 */
export const REPLACE = PRELUDE + `
local now = tonumber(ARGV[1])
local flat, _, gone = one(KEYS[1], KEYS[2], ARGV[2], now)
if flat == nil then return { 'none', settle(KEYS[1], now), {}, {}, { gone } } end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[2])
insert(KEYS[1], KEYS[3], 4, now)
announce(ARGV[3], { ARGV[2] })
return { 'replaced', settle(KEYS[1], now), flat, {}, {} }
`

/** KEYS: index, session. ARGV: now, id, channel. */
export const REVOKE = PRELUDE + `
local now = tonumber(ARGV[1])
local flat, _, gone = one(KEYS[1], KEYS[2], ARGV[2], now)
if flat == nil then return { 'none', settle(KEYS[1], now), {}, {}, { gone } } end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[2])
announce(ARGV[3], { ARGV[2] })
return { 'revoked', settle(KEYS[1], now), flat, {}, {} }
`

/** KEYS: index. ARGV: now, session key base, channel, exceptId ('' for none). */
export const REVOKE_USER = PRELUDE + `
local now = tonumber(ARGV[1])
local live, expired = all(KEYS[1], ARGV[2], now)
local revoked, ids = {}, {}
for _, entry in ipairs(live) do
  if entry.id ~= ARGV[4] then
    redis.call('DEL', entry.key)
    redis.call('ZREM', KEYS[1], entry.id)
    revoked[#revoked + 1] = entry.flat
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
return { 'listed', settle(KEYS[1], now), {}, flats(live), expired }
`

/**
 * The counters behind `stats()`: sorted sets scored by deadline (sessions by
 * id, users by their latest session's deadline), pruned as time passes, so a
 * count is a `ZCARD`, never a scan. Runs after a session script, from the
 * process that ran it; two processes' follow-ups may cross on the way, so a
 * removed session is remembered (until its deadline) and a late add of it ignored.
 * KEYS: sessions, users, removed. ARGV: now, userId, userDeadline, then
 * ops: 'add' id deadline | 'del' id deadline.
 */
export const ACCOUNT = `
local now = tonumber(ARGV[1])
for j = 4, #ARGV, 3 do
  local id, ends = ARGV[j + 1], ARGV[j + 2]
  if ARGV[j] == 'del' then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[3], ends, id)
  elseif redis.call('ZSCORE', KEYS[3], id) == false then
    -- GT: an older deadline arriving late never shortens a newer one
    redis.call('ZADD', KEYS[1], 'GT', ends, id)
  end
end
if tonumber(ARGV[3]) > now then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
else
  redis.call('ZREM', KEYS[2], ARGV[2])
end
-- Each set lives as long as its latest deadline, like every other key.
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #top > 0 then
    redis.call('PEXPIRE', key, string.format('%d', math.max(1, tonumber(top[2]) - now)))
  end
end
return 1
`

/** KEYS: sessions, users. ARGV: now. Prunes what has ended and counts the rest. */
export const STATS = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
return { redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]) }
`
