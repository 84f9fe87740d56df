import { CLOCK_SKEW_ALLOWANCE_MS, expiresAt, type SessionRecord } from '../../session.js'
import type { StoreStats } from '../store.js'
import type { Arg, Commands, Connection } from './connection.js'
import type { KeyLayout } from './keys.js'
import type { IndexState } from './replies.js'

/**
 * Shared by ACCOUNT and STATS. KEYS[4] sizes: a hash userId -> 'size:version',
 * the size last reported for a user; KEYS[5] sized: the same users scored by
 * when their entry ends (their latest deadline, or a short while after they
 * reached 0, so a late follow-up of an older version is still recognised);
 * KEYS[6] hist: a hash size -> users, the `sessionsPerUser` histogram.
 */
/** Removed sessions remembered per user (`{stats}:removed:<userId>`), the latest first. */
const REMOVED_MARKERS_PER_USER = 32

const HISTOGRAM = `
-- Entries past their deadline are not counted, but removed only this much
-- later (CLOCK_SKEW_ALLOWANCE_MS): the caller's clock may run ahead of the others'.
local ALLOWANCE_MS = ${CLOCK_SKEW_ALLOWANCE_MS}
local function entry(user)
  local held = redis.call('HGET', KEYS[4], user)
  if not held then return 0, -1 end
  local size, version = string.match(held, '^(%d+):(%d+)$')
  return tonumber(size), tonumber(version)
end

local function count(size, by)
  if size <= 0 then return end
  if redis.call('HINCRBY', KEYS[6], size, by) <= 0 then redis.call('HDEL', KEYS[6], size) end
end

-- Drops the entries that have ended: users whose every session passed its
-- deadline unseen, and the markers of users who reached 0. A bounded batch per call.
local function prune(now)
  for _, user in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, 1000)) do
    local size = entry(user)
    count(size, -1)
    redis.call('HDEL', KEYS[4], user)
    redis.call('ZREM', KEYS[5], user)
  end
end
`

/**
 * The counters behind `stats()`: sorted sets scored by deadline (sessions by
 * id, users by their latest session's deadline), pruned as time passes, so a
 * count is a `ZCARD`, never a scan; and the sessions-per-user histogram, moved
 * by each user's size changes (see HISTOGRAM). Runs after a session script, from
 * the process that ran it; two processes' follow-ups may cross on the way, so a
 * removed session is remembered (its user's latest 32, for a minute) and a late add of it
 * ignored, and a user's size is applied only if its version is not older than
 * the one applied.
 * KEYS: sessions, users, the user's removed, sizes, sized, hist. ARGV: now, userId,
 * userDeadline, size, version, then ops: 'add' id deadline | 'del' id deadline.
 */
const ACCOUNT = HISTOGRAM + `
local now, user = tonumber(ARGV[1]), ARGV[2]
local ends, size, version = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
-- Removed users, and removed sessions, are remembered this long: longer than
-- any follow-up takes to arrive after another that crossed it.
local MARKER_MS = 60000
-- Removed sessions remembered per user: the removals whose follow-ups may still
-- cross a late add. Bounded, so logins and logouts in a loop grow nothing.
local MARKERS_PER_USER = ${REMOVED_MARKERS_PER_USER}
local removals = false
for j = 6, #ARGV, 3 do
  local id, deadline = ARGV[j + 1], ARGV[j + 2]
  if ARGV[j] == 'del' then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[3], ARGV[1], id)
    removals = true
  elseif redis.call('ZSCORE', KEYS[3], id) == false then
    -- GT: an older deadline arriving late never shortens a newer one
    redis.call('ZADD', KEYS[1], 'GT', deadline, id)
  end
end
if removals then
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(MARKERS_PER_USER + 1))
  redis.call('PEXPIRE', KEYS[3], MARKER_MS)
end
prune(now - ALLOWANCE_MS)
local held, heldVersion = entry(user)
if version >= heldVersion then
  -- Every deadline passed: nothing of the user is live, whatever the index holds.
  if ends <= now - ALLOWANCE_MS then size = 0 end
  if size > 0 then
    redis.call('ZADD', KEYS[2], ends, user)
    redis.call('ZADD', KEYS[5], ends, user)
  else
    redis.call('ZREM', KEYS[2], user)
    redis.call('ZADD', KEYS[5], now + MARKER_MS, user)
  end
  if size ~= held then
    count(held, -1)
    count(size, 1)
  end
  redis.call('HSET', KEYS[4], user, string.format('%d:%d', size, version))
end
-- Each key lives as long as its latest deadline, like every other key; a TTL
-- is only ever lengthened, so a caller whose clock is ahead cannot make these
-- aggregates expire before what they count.
local function lengthen(key, left)
  if redis.call('PTTL', key) < left then redis.call('PEXPIRE', key, string.format('%d', left)) end
end
for _, key in ipairs({ KEYS[1], KEYS[2], KEYS[5] }) do
  if key ~= KEYS[5] then redis.call('ZREMRANGEBYSCORE', key, '-inf', now - ALLOWANCE_MS) end
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #top > 0 then
    local left = math.max(1, tonumber(top[2]) + ALLOWANCE_MS - now)
    lengthen(key, left)
    if key == KEYS[5] then
      lengthen(KEYS[4], left)
      lengthen(KEYS[6], left)
    end
  end
end
return 1
`

/**
 * KEYS: one shard's sessions, users, (unused), sizes, sized, hist. ARGV: now.
 * Prunes what has ended and counts the rest: { sessions, users, histogram as a flat list }.
 */
const STATS = HISTOGRAM + `
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ALLOWANCE_MS)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ALLOWANCE_MS)
prune(now - ALLOWANCE_MS)
local after = '(' .. ARGV[1]
return { redis.call('ZCOUNT', KEYS[1], after, '+inf'), redis.call('ZCOUNT', KEYS[2], after, '+inf'), redis.call('HGETALL', KEYS[6]) }
`

/** The stats scripts, as `defineCommand` takes them. */
export const STATS_COMMANDS = {
  sessionGuardAccount: { lua: ACCOUNT, numberOfKeys: 6 },
  sessionGuardStats: { lua: STATS, numberOfKeys: 6 }
} as const satisfies Commands

/**
 * The bookkeeping behind `stats()`, in Redis and shared by every instance:
 * a follow-up after each session script, in the user's stats shard (a
 * Cluster cannot run it in the user's script: the shard's keys share a hash
 * tag of their own), and the count of sessions this instance found expired.
 */
export class StatsBook {
  readonly #connection: Connection
  readonly #keys: KeyLayout
  #expirations = 0

  constructor (connection: Connection, keys: KeyLayout) {
    this.#connection = connection
    this.#keys = keys
  }

  /** Counts a session this instance found past a deadline and removed. */
  countExpired (): void {
    this.#expirations++
  }

  /**
   * The follow-up of a session script that left the user's index as `index`,
   * inserted or updated the `live` sessions and removed the `gone` ones.
   * Nothing to send when it changed nothing the stats count.
   */
  async account (userId: string, now: number, index: IndexState, live: SessionRecord[], gone: SessionRecord[]): Promise<void> {
    const ops: Arg[] = []
    for (const session of live) ops.push('add', session.id, expiresAt(session))
    for (const session of gone) ops.push('del', session.id, expiresAt(session))
    if (ops.length === 0 && !index.changed) return
    await this.#connection.script('sessionGuardAccount', this.#keys.stats(userId), [
      now, userId, index.deadline, index.size, index.version, ...ops
    ])
  }

  /**
   * The stats as of `now`, the sum of every shard's (a user and their
   * sessions are counted in one shard only); `evictions` is always 0: the
   * Redis store has no capacity of its own.
   */
  async read (now: number): Promise<StoreStats> {
    const shards = await Promise.all(this.#keys.statsShards().map(async (keys) =>
      await this.#connection.script('sessionGuardStats', keys, [now]) as [number, number, string[]]))
    let [sessions, users] = [0, 0]
    const bySize = new Map<number, number>()
    for (const [shardSessions, shardUsers, flat] of shards) {
      sessions += shardSessions
      users += shardUsers
      for (let j = 0; j < flat.length; j += 2) {
        const size = Number(flat[j])
        bySize.set(size, (bySize.get(size) ?? 0) + Number(flat[j + 1]))
      }
    }
    const sessionsPerUser: Record<number, number> = {}
    for (const [size, count] of [...bySize].sort((a, b) => a[0] - b[0])) sessionsPerUser[size] = count
    return { sessions, users, evictions: 0, expirations: this.#expirations, sessionsPerUser }
  }
}
