/**
 * The store's counters (`increment`, `decrement`, `counter`, `resetCounter`): one hash per
 * key, independent of sessions, under the keys `KeyLayout.counter` names.
 */
import { CLOCK_SKEW_ALLOWANCE_MS } from '../../session.js'
import type { Counter, HeldCounter } from '../store.js'
import type { Commands, Connection } from './connection.js'
import { ttl } from './keys.js'

/**
 * A counter: a hash { n count, f firstAt, l lastAt, e expiresAt }. Decided by
 * the caller's `now` against `e`; the key's TTL (the window and the clock-skew
 * allowance) only cleans up, so an instance whose clock runs ahead cannot make a
 * counter vanish early for the others (a DPoP `jti`, a lockout).
 * KEYS: counter. ARGV: now, expiresAt (now + windowMs), ttlMs.
 */
const INCREMENT = `
local now = tonumber(ARGV[1])
local held = redis.call('HMGET', KEYS[1], 'n', 'f', 'e')
local count, first = 1, ARGV[1]
if held[1] and held[3] and now < tonumber(held[3]) then
  count = tonumber(held[1]) + 1
  first = held[2]
end
redis.call('HSET', KEYS[1], 'n', string.format('%d', count), 'f', first, 'l', ARGV[1], 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return { string.format('%d', count), first, ARGV[1] }
`

/**
 * Takes back one event of a counter: the count drops by one, the times and the
 * TTL stay; at zero the key goes. An expired counter (by `now`) is left to its TTL.
 * KEYS: counter. ARGV: now.
 */
const DECREMENT = `
local held = redis.call('HMGET', KEYS[1], 'n', 'e')
if not held[1] or not held[2] or tonumber(ARGV[1]) >= tonumber(held[2]) then return 0 end
local count = tonumber(held[1]) - 1
if count < 1 then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'n', string.format('%d', count))
end
return count
`

/** The counter scripts, as `defineCommand` takes them. */
export const COUNTER_COMMANDS = {
  sessionGuardIncrement: { lua: INCREMENT, numberOfKeys: 1 },
  sessionGuardDecrement: { lua: DECREMENT, numberOfKeys: 1 }
} as const satisfies Commands

/** Counts one more event under the counter `key` (a key of the layout's), which lives `windowMs` after it. */
export async function increment (connection: Connection, key: string, windowMs: number, now: number): Promise<Counter> {
  const [count, firstAt, lastAt] = await connection.script('sessionGuardIncrement', [key], [
    now, now + windowMs, ttl(now + windowMs + CLOCK_SKEW_ALLOWANCE_MS, now)
  ]) as [string, string, string]
  return { count: Number(count), firstAt: Number(firstAt), lastAt: Number(lastAt) }
}

/** Takes one event back from the counter `key`. */
export async function decrement (connection: Connection, key: string, now: number): Promise<void> {
  await connection.script('sessionGuardDecrement', [key], [now])
}

/** The counter under `key`, unless its window ended by `now`. */
export async function read (connection: Connection, key: string, now: number): Promise<Counter | undefined> {
  const [count, firstAt, lastAt, ends] = await connection.run(connection.redis.hmget(key, 'n', 'f', 'l', 'e'))
  if (count === null || ends === null || now >= Number(ends)) return undefined
  return { count: Number(count), firstAt: Number(firstAt), lastAt: Number(lastAt) }
}

export async function remove (connection: Connection, key: string): Promise<void> {
  await connection.run(connection.redis.unlink(key))
}

/** Writes `counter` as it is under `key`, replacing what is there; its key lives until the window ends, and the clock-skew allowance. */
export async function write (connection: Connection, key: string, counter: HeldCounter, now: number): Promise<void> {
  const { count, firstAt, lastAt, expiresAt } = counter
  await connection.run(connection.redis.multi()
    .hset(key, 'n', String(count), 'f', String(firstAt), 'l', String(lastAt), 'e', String(expiresAt))
    .pexpire(key, ttl(expiresAt + CLOCK_SKEW_ALLOWANCE_MS, now))
    .exec())
}
