import { isLive, type SessionRecord } from '../../session.js'
import { nodesOf } from './client.js'
import type { Decode } from './codec.js'
import type { Connection } from './connection.js'
import type { KeyLayout } from './keys.js'

/** Every live session, batch by batch: see `RedisStore.scan`. */
export async function * scanSessions (
  connection: Connection, keys: KeyLayout, decode: Decode, batchSize: number, now: number
): AsyncIterable<SessionRecord[]> {
  const count = Math.max(1, Math.floor(batchSize))
  const pattern = keys.sessionPattern()
  const nodes = nodesOf(connection.redis, 'master')
  let batch: SessionRecord[] = []
  for (const node of nodes) {
    let cursor = '0'
    do {
      const [next, found] = await connection.run(node.scan(cursor, 'MATCH', pattern, 'COUNT', count, 'TYPE', 'hash'))
      cursor = next
      batch.push(...await liveSessions(connection, keys, decode, found, now))
      if (batch.length >= count) {
        yield batch
        batch = []
      }
    } while (cursor !== '0')
  }
  if (batch.length > 0) yield batch
}

/** The live sessions under `found` (as SCAN names them: with the client's own keyPrefix). */
async function liveSessions (connection: Connection, keys: KeyLayout, decode: Decode, found: string[], now: number): Promise<SessionRecord[]> {
  const held = await Promise.all(found.map(async (key) => {
    // The pattern starts with the keyPrefix: the client adds it back.
    return await connection.run(connection.redis.hgetall(keys.fromScan(key)))
  }))
  const live: SessionRecord[] = []
  for (const fields of held) {
    // Gone since the SCAN saw it, or not a session of ours (a user id holding ':s:' cannot fake one: no 'd').
    if (fields.d === undefined) continue
    const session = decode(Object.entries(fields).flat())
    if (isLive(session, now)) live.push(session)
  }
  return live
}
