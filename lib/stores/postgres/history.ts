import type { HistoryEntry, HistoryQuery, HistoryRecord, HistoryRetention } from '../store.js'
import { ipColumns } from './codec.js'
import type { Database } from './database.js'
import type { Statements } from './statements.js'

/** A history row as `Statements.history` selects it. */
interface HistoryRow {
  /** The id as text (a bigint may exceed a JS number); named apart from `id`, which ORDER BY must read as the bigint. */
  cursor: string
  at: number
  type: string
  session_id: string | null
  device: string | null
  ip: string | null
  ip_hash: string | null
  location: string | null
  detail: string | null
}

/** A bigint id as text: the only cursors this store gives. */
const ROW_ID = /^[1-9]\d{0,17}$/

const json = (value: unknown): string | null => value === undefined ? null : JSON.stringify(value)

/**
 * The login history in the `history` table (`sql/postgres/002_history.sql`):
 * appends under the user's advisory lock (so the trim to `maxEntries` sees
 * every append of the user in order), reads on `(user_id, id DESC)`.
 */
export class PostgresHistory {
  readonly #database: Database
  readonly #statements: Statements
  readonly #lockKey: (userId: string) => string

  constructor (database: Database, statements: Statements, lockKey: (userId: string) => string) {
    this.#database = database
    this.#statements = statements
    this.#lockKey = lockKey
  }

  async append (userId: string, entry: HistoryRecord, { maxEntries, maxAgeMs }: HistoryRetention): Promise<void> {
    const values = [
      userId, entry.time, entry.time + maxAgeMs, entry.type, entry.sessionId ?? null,
      json(entry.device), ...ipColumns(entry.ip), json(entry.location), json(entry.detail), maxEntries
    ]
    await this.#database.transaction(this.#lockKey(userId), async (query) => await query({ ...this.#statements.appendHistory, values }))
  }

  async read (userId: string, { limit, before }: HistoryQuery, { maxAgeMs }: HistoryRetention, now: number): Promise<HistoryEntry[]> {
    // A cursor this store never gave names no entry: nothing is older than it here.
    if (before !== undefined && !ROW_ID.test(before)) return []
    const rows = await this.#database.query<HistoryRow>({ ...this.#statements.history, values: [userId, before ?? null, now - maxAgeMs + 1, limit] })
    return rows.map(entryOf)
  }

  async erase (userId: string): Promise<void> {
    await this.#database.query({ ...this.#statements.eraseHistory, values: [userId] })
  }
}

function entryOf (row: HistoryRow): HistoryEntry {
  const ip = row.ip ?? row.ip_hash
  return Object.freeze({
    id: row.cursor,
    type: row.type,
    time: row.at,
    ...(row.session_id === null ? {} : { sessionId: row.session_id }),
    ...(row.device === null ? {} : { device: JSON.parse(row.device) as HistoryRecord['device'] }),
    ...(ip === null ? {} : { ip }),
    ...(row.location === null ? {} : { location: JSON.parse(row.location) as HistoryRecord['location'] }),
    ...(row.detail === null ? {} : { detail: JSON.parse(row.detail) as HistoryRecord['detail'] })
  })
}
