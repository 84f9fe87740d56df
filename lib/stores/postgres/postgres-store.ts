import type { Pool } from 'pg'
import { decideRotation, isLive, rotatedState, type SessionRecord } from '../../session.js'
import type {
  Activity, Counter, CreateResult, DeviceTypeLimit, HeldCounter, HistoryEntry, HistoryQuery, HistoryRecord, HistoryRetention, ImportResult, Rotation, RotationResult, SessionLimit, SessionStore, StoreContext, StoreStats
} from '../store.js'
import { activityValues, insertValues, sessionDecoder, type SessionRow } from './codec.js'
import { Database, noop } from './database.js'
import { PostgresHistory } from './history.js'
import { LocalCache } from './local-cache.js'
import { migrate } from './migrate.js'
import { settingsOf, type PostgresStoreOptions, type Settings } from './options.js'
import { purgeExpired, type PurgeResult } from './purge.js'
import { Statements } from './statements.js'

/** A row with whether the session was still live when the statement ran. */
type Found = SessionRow & { live: boolean }

interface CounterRow { count: number, first_at: number, last_at: number }
interface HeldCounterRow extends CounterRow { key: string, expires_at: number }

/**
 * Most attempts of one rotation: another attempt happens only when a
 * concurrent change of the same session won the compare-and-swap.
 */
const MAX_ROTATION_ATTEMPTS = 50

const byRecentActivity = (a: SessionRecord, b: SessionRecord): number => b.lastSeenAt - a.lastSeenAt || (a.id < b.id ? 1 : -1)

/**
 * Sessions in PostgreSQL, shared by every instance of the app: one row per
 * session, one per counter (the schema: `sql/postgres/`, `migrate()`).
 *
 * Every call is one statement, atomic on its own, except the two that insert:
 * `create` and `replace` run in a transaction holding a per-user advisory lock,
 * so a user's logins from every instance count and evict one at a time and
 * the limit is exact. The refresh rotation is a compare-and-swap: it reads the
 * session, decides with `decideRotation()` (the one rule), and writes only if
 * the refresh state is still the one it read, else reads again.
 *
 * Time: every decision uses the `now` the plugin passes (its injected clock),
 * as the store contract requires; no statement reads the server's clock.
 */
export class PostgresStore implements SessionStore {
  readonly #settings: Settings
  readonly #database: Database
  readonly #statements: Statements
  readonly #decode = sessionDecoder()
  readonly #cache: LocalCache | undefined
  readonly #history: PostgresHistory
  #context: StoreContext = { now: Date.now, onRemoved: noop }
  #timer: NodeJS.Timeout | undefined
  #purging: Promise<PurgeResult> | undefined
  #expirations = 0

  constructor (options: PostgresStoreOptions) {
    this.#settings = settingsOf(options)
    const { schema, queryTimeoutMs, localCache } = this.#settings
    this.#database = new Database(options, queryTimeoutMs)
    this.#statements = new Statements(schema)
    this.#history = new PostgresHistory(this.#database, this.#statements, (userId) => this.#lockKey(userId))
    this.#cache = localCache === undefined
      ? undefined
      : new LocalCache({
        ...localCache,
        channel: this.#statements.channel,
        // The pool's own settings (with the app's pool, whatever it was made with).
        connection: this.#database.pool.options,
        timeoutMs: queryTimeoutMs,
        now: () => this.#context.now()
      })
  }

  /** The pool the store talks to (the app's, or the one it created). */
  get pool (): Pool {
    return this.#database.pool
  }

  async open (context: StoreContext): Promise<void> {
    this.#context = context
    if (this.#settings.migrate) await migrate(this.#database.pool, { schema: this.#settings.schema })
    this.#cache?.listen()
    const { intervalMs } = this.#settings.purge
    if (intervalMs > 0) this.#timer ??= setInterval(() => { this.purge().catch(noop) }, intervalMs).unref()
  }

  async create (session: SessionRecord, limit: SessionLimit, now: number): Promise<CreateResult> {
    const rows = await this.#database.transaction(this.#lockKey(session.userId), async (query) => await query<SessionRow & { kind: string }>({
      ...this.#statements.create,
      values: [
        session.userId, now, limit.max, limit.onLimit === 'reject', ...insertValues(session),
        limit.deviceType?.type ?? null, limit.deviceType?.max ?? null, limit.deviceType?.onLimit === 'reject'
      ]
    }))
    const of = (kind: string): SessionRecord[] => rows.filter((row) => row.kind === kind).map(this.#decode).sort(byRecentActivity)
    this.#expired(rows.filter((row) => row.kind === 'expired'))
    const active = of('active')
    if (active.length > 0) return { created: false, active }
    const ofType = of('active-type')
    if (ofType.length > 0) return { created: false, active: ofType, deviceType: (limit.deviceType as DeviceTypeLimit).type }
    const evicted = of('evicted')
    this.#cache?.forget([session.id, ...evicted.map((old) => old.id)])
    return { created: true, evicted }
  }

  async get (id: string, now: number): Promise<SessionRecord | undefined> {
    const hit = this.#cache?.get(id, now)
    if (hit !== undefined) return hit
    const mark = this.#cache?.mark()
    const [row] = await this.#database.query<Found>({ ...this.#statements.get, values: [id, now] })
    if (row === undefined) return undefined
    if (!row.live) return await this.#expire(id, now)
    const session = this.#decode(row)
    // Only if nothing was invalidated meanwhile: the read may predate a revoke.
    this.#cache?.fill(mark, session, now)
    return session
  }

  async touch (id: string, activity: Activity, now: number): Promise<SessionRecord | undefined> {
    const [row] = await this.#database.query<SessionRow>({ ...this.#statements.touch, values: [id, now, ...activityValues(activity)] })
    this.#cache?.forget([id])
    if (row === undefined) return await this.#expire(id, now)
    return this.#decode(row)
  }

  async rotate (id: string, rotation: Rotation, now: number): Promise<RotationResult> {
    for (let attempt = 0; attempt < MAX_ROTATION_ATTEMPTS; attempt++) {
      const [row] = await this.#database.query<Found>({ ...this.#statements.get, values: [id, now] })
      if (row !== undefined && !row.live) await this.#expire(id, now)
      if (row === undefined || !row.live || row.refresh_hash === null) return { outcome: 'missing' }
      const seen = this.#decode(row)
      const refresh = seen.refresh as NonNullable<SessionRecord['refresh']>
      const decision = decideRotation(refresh, rotation.presentedHash, now, rotation.graceMs)
      if (decision === 'conflict') return { outcome: 'conflict' }
      const expected = [id, now, refresh.hash, refresh.nextHash ?? null, refresh.rotations]
      this.#cache?.forget([id])
      if (decision === 'reuse') {
        const [gone] = await this.#database.query<SessionRow>({ ...this.#statements.reuse, values: expected })
        if (gone !== undefined) return { outcome: 'reuse', session: this.#decode(gone) }
      } else {
        const next = rotatedState(refresh, rotation.presentedHash, rotation.successorHash, now)
        const [rotated] = await this.#database.query<SessionRow>({
          ...this.#statements.rotate,
          values: [...expected, next.hash, next.nextHash, next.rotatedAt, ...activityValues(rotation.activity)]
        })
        if (rotated !== undefined) {
          const session = this.#decode(rotated) as SessionRecord & { refresh: NonNullable<SessionRecord['refresh']> }
          return { outcome: 'rotated', session }
        }
      }
      // The session changed since it was read (another rotation, a touch, a revoke): read it again.
    }
    throw new Error(`postgresStore: rotation of one session lost ${MAX_ROTATION_ATTEMPTS} races in a row`)
  }

  async replace (oldId: string, session: SessionRecord, now: number): Promise<boolean> {
    const [old] = await this.#database.transaction(this.#lockKey(session.userId), async (query) =>
      await query<SessionRow>({ ...this.#statements.replace, values: [oldId, now, ...insertValues(session)] }))
    this.#cache?.forget([oldId, session.id])
    if (old === undefined) {
      await this.#expire(oldId, now)
      return false
    }
    return true
  }

  async revoke (id: string, now: number): Promise<SessionRecord | undefined> {
    const [row] = await this.#database.query<SessionRow>({ ...this.#statements.revoke, values: [id, now] })
    this.#cache?.forget([id])
    if (row === undefined) {
      // Past a deadline by this caller's clock only, perhaps: a revocation ends it for everyone.
      this.#expired(await this.#database.query<SessionRow>({ ...this.#statements.endOne, values: [id, now] }))
      return undefined
    }
    return this.#decode(row)
  }

  async revokeUser (userId: string, exceptId: string | undefined, now: number): Promise<SessionRecord[]> {
    const rows = await this.#database.query<Found>({ ...this.#statements.revokeUser, values: [userId, exceptId ?? null, now] })
    this.#cache?.forget(rows.map((row) => row.id))
    this.#expired(rows.filter((row) => !row.live))
    return rows.filter((row) => row.live).map(this.#decode).sort(byRecentActivity)
  }

  async listUser (userId: string, now: number): Promise<SessionRecord[]> {
    const rows = await this.#database.query<Found>({ ...this.#statements.userSessions, values: [userId, now] })
    this.#expired(rows.filter((row) => !row.live))
    return rows.filter((row) => row.live).map(this.#decode).sort(byRecentActivity)
  }

  /**
   * Every live session, batch by batch, in the order of their ids: each batch
   * is one short query on the primary key (`id > last id seen`), so no
   * statement or lock lasts the whole scan.
   */
  async * scan (batchSize: number, now: number): AsyncIterable<SessionRecord[]> {
    let after = ''
    for (;;) {
      const rows = await this.#database.query<SessionRow>({ ...this.#statements.scan, values: [after, now, batchSize] })
      if (rows.length > 0) yield rows.map(this.#decode)
      if (rows.length < batchSize) return
      after = (rows[rows.length - 1] as SessionRow).id
    }
  }

  async increment (key: string, windowMs: number, now: number): Promise<Counter> {
    const [row] = await this.#database.query<CounterRow>({ ...this.#statements.increment, values: [key, now, now + windowMs] })
    return counterOf(row as CounterRow)
  }

  async counter (key: string, now: number): Promise<Counter | undefined> {
    const [row] = await this.#database.query<CounterRow>({ ...this.#statements.counter, values: [key, now] })
    return row === undefined ? undefined : counterOf(row)
  }

  async decrement (key: string, now: number): Promise<void> {
    const [row] = await this.#database.query<{ count: number }>({ ...this.#statements.decrement, values: [key, now] })
    // At zero the counter goes; an increment that came in between started it again, and stays.
    if (row !== undefined && row.count <= 0) await this.#database.query({ ...this.#statements.dropEmpty, values: [key] })
  }

  async resetCounter (key: string): Promise<void> {
    await this.#database.query({ ...this.#statements.resetCounter, values: [key] })
  }

  /**
   * Writes each live record as it is, one statement each (atomic per record),
   * unless the row held under its id is live and newer (`supersedes()`, decided
   * in the statement, so a concurrent rotation is never rolled back). No limit,
   * no lock: the source store kept the limit.
   */
  async appendHistory (userId: string, entry: HistoryRecord, retention: HistoryRetention): Promise<void> {
    await this.#history.append(userId, entry, retention)
  }

  async history (userId: string, query: HistoryQuery, retention: HistoryRetention, now: number): Promise<HistoryEntry[]> {
    return await this.#history.read(userId, query, retention, now)
  }

  async eraseHistory (userId: string): Promise<void> {
    await this.#history.erase(userId)
  }

  async importSessions (sessions: readonly SessionRecord[], now: number): Promise<ImportResult> {
    let imported = 0
    for (const session of sessions) {
      if (!isLive(session, now)) continue
      const rows = await this.#database.query({ ...this.#statements.importSession, values: [now, ...insertValues(session)] })
      imported += rows.length
    }
    this.#cache?.forget(sessions.map((session) => session.id))
    return { imported, skipped: sessions.length - imported }
  }

  /** Every live counter with its window, batch by batch in key order, each batch one query on the primary key. */
  async * scanCounters (batchSize: number, now: number): AsyncIterable<HeldCounter[]> {
    let after = ''
    for (;;) {
      const rows = await this.#database.query<HeldCounterRow>({ ...this.#statements.scanCounters, values: [after, now, batchSize] })
      if (rows.length > 0) yield rows.map((row) => ({ key: row.key, ...counterOf(row), expiresAt: row.expires_at }))
      if (rows.length < batchSize) return
      after = (rows[rows.length - 1] as HeldCounterRow).key
    }
  }

  /** Writes each counter whose window has not ended as it is, over one held under its key. */
  async importCounters (counters: readonly HeldCounter[], now: number): Promise<ImportResult> {
    let imported = 0
    for (const counter of counters) {
      if (counter.expiresAt <= now) continue
      await this.#database.query({
        ...this.#statements.importCounter,
        values: [counter.key, counter.count, counter.firstAt, counter.lastAt, counter.expiresAt]
      })
      imported++
    }
    return { imported, skipped: counters.length - imported }
  }

  /**
   * `sessions` and `users`: live sessions at `now` and the users holding them,
   * from one aggregate query (for monitoring, not for requests).
   * `sessionsPerUser` the same, by count. `evictions`: always 0, the store has
   * no capacity of its own. `expirations`: sessions this instance found past a
   * deadline and removed (on its way, or by the purge), since it opened.
   */
  async stats (now: number): Promise<StoreStats> {
    const rows = await this.#database.query<{ held: number, users: number }>({ ...this.#statements.stats, values: [now] })
    let sessions = 0
    let users = 0
    const sessionsPerUser: Record<number, number> = {}
    for (const row of rows) {
      sessions += row.held * row.users
      users += row.users
      sessionsPerUser[row.held] = row.users
    }
    return { sessions, users, evictions: 0, expirations: this.#expirations, sessionsPerUser }
  }

  /**
   * Deletes expired sessions (reported as `expired` removals), counters and
   * history entries past their retention now, in bounded batches; the timer of `purge.intervalMs` calls it. One
   * purge at a time per store.
   */
  async purge (): Promise<PurgeResult> {
    const running = this.#purging ?? purgeExpired({
      database: this.#database,
      statements: this.#statements,
      decode: this.#decode,
      batchSize: this.#settings.purge.batchSize,
      now: () => this.#context.now(),
      expired: (session) => this.#report(session)
    }).finally(() => { this.#purging = undefined })
    this.#purging = running
    return await running
  }

  async close (): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#purging?.catch(noop)
    await this.#cache?.close()
    await this.#database.close()
  }

  /** The advisory lock of one user's inserts, distinct per schema. */
  #lockKey (userId: string): string {
    return `fastify-session-guard:${this.#settings.schema}:${userId}`
  }

  /** Removes session `id` if it is past its deadline at `now`, and reports it. Always `undefined`. */
  async #expire (id: string, now: number): Promise<undefined> {
    this.#expired(await this.#database.query<SessionRow>({ ...this.#statements.expireOne, values: [id, now] }))
    return undefined
  }

  #expired (rows: SessionRow[]): void {
    for (const row of rows) this.#report(this.#decode(row))
  }

  #report (session: SessionRecord): void {
    this.#expirations++
    this.#cache?.forget([session.id])
    this.#context.onRemoved(session, 'expired')
  }
}

function counterOf (row: CounterRow): Counter {
  return { count: row.count, firstAt: row.first_at, lastAt: row.last_at }
}

/** Creates a PostgreSQL store: `store: postgresStore({ pool })` in the plugin's options. */
export function postgresStore (options: PostgresStoreOptions): PostgresStore {
  return new PostgresStore(options)
}
