import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import type { SessionRecord } from '../../session.js'
import type { SessionRow } from './codec.js'
import type { Database } from './database.js'
import type { Statements } from './statements.js'

export interface PurgeSettings {
  readonly database: Database
  readonly statements: Statements
  readonly decode: (row: SessionRow) => SessionRecord
  readonly batchSize: number
  /** The plugin's clock. */
  readonly now: () => number
  /** Called for each expired session the purge removed. */
  readonly expired: (session: SessionRecord) => void
}

/**
 * Deletes expired sessions, then expired counters, a bounded batch per
 * statement (`LIMIT batchSize … FOR UPDATE SKIP LOCKED`: short statements that
 * never wait for a row another instance holds), until a batch comes back short.
 * Returns how many sessions and counters it removed.
 */
export async function purgeExpired (settings: PurgeSettings): Promise<{ sessions: number, counters: number }> {
  const { database, statements, decode, batchSize, now, expired } = settings
  const removed = { sessions: 0, counters: 0 }
  for (;;) {
    const rows = await database.query<SessionRow>({ ...statements.purgeSessions, values: [now(), batchSize] })
    for (const row of rows) expired(decode(row))
    removed.sessions += rows.length
    if (rows.length < batchSize) break
    await yieldToEventLoop()
  }
  for (;;) {
    const rows = await database.query({ ...statements.purgeCounters, values: [now(), batchSize] })
    removed.counters += rows.length
    if (rows.length < batchSize) break
    await yieldToEventLoop()
  }
  return removed
}
