import { isLive, type SessionRecord } from '../../session.js'
import { nodesOf } from './client.js'
import type { HeldCounter } from '../store.js'
import { fieldOf, type Decode, type SessionFields } from './codec.js'
import type { Connection } from './connection.js'
import type { KeyLayout, SessionKeyType } from './keys.js'

/** Every live session, batch by batch: see `RedisStore.scan`. */
export async function * scanSessions (
  connection: Connection, keys: KeyLayout, decode: Decode, batchSize: number, now: number
): AsyncIterable<SessionRecord[]> {
  for (const [pattern, type] of keys.sessionPatterns()) {
    yield * batches(connection, pattern, type, batchSize, async (found) => await liveSessions(connection, keys, decode, found, type, now))
  }
}

/** Every live counter with its key and window end, batch by batch, like `scanSessions`. */
export async function * scanCounters (
  connection: Connection, keys: KeyLayout, batchSize: number, now: number
): AsyncIterable<HeldCounter[]> {
  yield * batches(connection, keys.counterPattern(), 'hash', batchSize, async (found) => await liveCounters(connection, keys, found, now))
}

/**
 * `SCAN` (never `KEYS`) for `pattern` on every master, `COUNT batchSize` a
 * step; `read` turns each step's keys into items, gathered into batches of
 * about `batchSize`.
 */
async function * batches<T> (
  connection: Connection, pattern: string, type: string, batchSize: number, read: (found: string[]) => Promise<T[]>
): AsyncIterable<T[]> {
  const count = Math.max(1, Math.floor(batchSize))
  const nodes = nodesOf(connection.redis, 'master')
  let batch: T[] = []
  for (const node of nodes) {
    let cursor = '0'
    do {
      const [next, found] = await connection.run(node.scan(cursor, 'MATCH', pattern, 'COUNT', count, 'TYPE', type))
      cursor = next
      batch.push(...await read(found))
      if (batch.length >= count) {
        yield batch
        batch = []
      }
    } while (cursor !== '0')
  }
  if (batch.length > 0) yield batch
}

/**
 * The live sessions under `found` (as SCAN names them: with the client's own
 * keyPrefix), strings or an earlier version's hashes, by `type`.
 */
async function liveSessions (
  connection: Connection, keys: KeyLayout, decode: Decode, found: string[], type: SessionKeyType, now: number
): Promise<SessionRecord[]> {
  const held = await Promise.all(found.map(async (key) => {
    // The pattern starts with the keyPrefix: the client adds it back.
    const named = keys.fromScan(key)
    return type === 'string' ? fieldsOf(await connection.run(connection.redis.get(named))) : await connection.run(connection.redis.hgetall(named))
  }))
  const live: SessionRecord[] = []
  held.forEach((fields, j) => {
    // Not a session of ours (a user id may hold ':r:', and its size version
    // key match the pattern), or gone since the SCAN saw it: a record has its absolute deadline.
    const named = keys.sessionOf(found[j] as string, type)
    if (named === undefined || fieldOf(fields, 'a') === undefined) return
    const session = decode(named.userId, named.id, fields)
    if (isLive(session, now)) live.push(session)
  })
  return live
}

/**
 * A string SCAN found, as a record's fields: none (an empty object) when it
 * is gone since (`null`, parsed as JSON `null`) or is not a JSON object.
 */
function fieldsOf (json: string | null): SessionFields {
  try {
    const value: unknown = JSON.parse(String(json))
    return typeof value === 'object' && value !== null ? value as SessionFields : {}
  } catch {
    return {}
  }
}

/** The live counters under `found` (as SCAN names them). */
async function liveCounters (connection: Connection, keys: KeyLayout, found: string[], now: number): Promise<HeldCounter[]> {
  const held = await Promise.all(found.map(async (key) => {
    const [count, firstAt, lastAt, ends] = await connection.run(connection.redis.hmget(keys.fromScan(key), 'n', 'f', 'l', 'e'))
    return { key: keys.counterKeyOf(key), count, firstAt, lastAt, ends }
  }))
  const live: HeldCounter[] = []
  for (const { key, count, firstAt, lastAt, ends } of held) {
    // Gone since the SCAN saw it, or ended by `now`.
    if (count === null || ends === null || now >= Number(ends)) continue
    live.push({ key, count: Number(count), firstAt: Number(firstAt), lastAt: Number(lastAt), expiresAt: Number(ends) })
  }
  return live
}
