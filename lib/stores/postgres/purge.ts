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

/** How many rows one purge removed, by table. */
export interface PurgeResult {
  readonly sessions: number
  readonly counters: number
  readonly history: number
}

/**
 * Deletes expired sessions, then expired counters and history entries, a bounded batch per
 * statement (`LIMIT batchSize … FOR UPDATE SKIP LOCKED`: short statements that
 * never wait for a row another instance holds), until a batch comes back short.
 * Returns how many rows of each it removed.
 */
export async function purgeExpired (settings: PurgeSettings): Promise<PurgeResult> {
  const { database, statements, decode, batchSize, now, expired } = settings
  const removed = { sessions: 0, counters: 0, history: 0 }
  for (;;) {
    const rows = await database.query<SessionRow>({ ...statements.purgeSessions, values: [now(), batchSize] })
    for (const row of rows) expired(decode(row))
    removed.sessions += rows.length
    if (rows.length < batchSize) break
    await yieldToEventLoop()
  }
  for (const [table, statement] of [['counters', statements.purgeCounters], ['history', statements.purgeHistory]] as const) {
    for (;;) {
      const rows = await database.query({ ...statement, values: [now(), batchSize] })
      removed[table] += rows.length
      if (rows.length < batchSize) break
      await yieldToEventLoop()
    }
  }
  return removed
}
