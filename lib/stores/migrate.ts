import { InvalidOptionError, StoreUnsupportedError } from '../errors.js'
import type { Clock } from '../session.js'
import type { ImportResult, SessionStore } from './store.js'

export interface MigrateSessionsOptions {
  /** The store sessions come from, opened (the one the app uses, or one opened with `open()`). */
  from: SessionStore
  /** The store they go to, opened. It needs `importSessions()` (and `importCounters()` with `counters`). */
  to: SessionStore
  /**
   * Sessions (and counters) read and written per step.
   * @default 500
   */
  batchSize?: number
  /**
   * Whether the counters move too (failed logins and lockouts, known devices,
   * login bursts): they need `scanCounters()` on `from` and `importCounters()` on `to`.
   * @default true
   */
  counters?: boolean
  /**
   * The clock that decides what is still live, read once per batch: the app's
   * `clock` option when it has one.
   * @default Date.now
   */
  clock?: Clock
  /**
   * After copying, removes from `to` every session that is no longer live in
   * `from` (a logout or revocation since an earlier pass copied it), so a
   * final pass leaves `to` holding exactly what `from` holds. Only while no
   * app writes to `to` yet: a session created there would be removed too.
   * @default false
   */
  prune?: boolean
  /** Called after each batch, with the totals so far. */
  onProgress?: (progress: MigrationProgress) => void
}

/** What a migration has moved so far, or in all. */
export interface MigrationProgress {
  /** Sessions read from `from`, and what `to` did with them: imported, or skipped (ended meanwhile, or `to` held a newer copy). */
  readonly sessions: { readonly read: number, readonly pruned: number } & ImportResult
  /** Counters read and written, likewise (all zero with `counters: false`). */
  readonly counters: { readonly read: number } & ImportResult
}

const DEFAULT_BATCH_SIZE = 500
const OPTION_NAMES = new Set(['from', 'to', 'batchSize', 'counters', 'clock', 'prune', 'onProgress'])

/**
 * Copies every live session (with its refresh state, deadlines and activity
 * times, so its user's limit index follows) and, by default, every live
 * counter from one store into another, batch by batch, while both stay in
 * use. Nothing is removed from `from`. Running it again is safe: a session
 * `to` holds in a newer state (more rotations, later activity) is kept. The
 * whole procedure, and what it does not carry: docs/stores.md, "Moving between stores".
 */
export async function migrateSessions (options: MigrateSessionsOptions): Promise<MigrationProgress> {
  const { from, to, batchSize = DEFAULT_BATCH_SIZE, counters = true, clock = Date.now, prune = false, onProgress } = checked(options)
  const sessions = { read: 0, imported: 0, skipped: 0, pruned: 0 }
  const moved = { read: 0, imported: 0, skipped: 0 }
  const progress = (): MigrationProgress => ({ sessions: { ...sessions }, counters: { ...moved } })
  // Every method checked before anything moves.
  const importSessions = required(to, 'importSessions')
  const counterMethods = counters ? [required(from, 'scanCounters'), required(to, 'importCounters')] as const : undefined
  for await (const batch of from.scan(batchSize, clock())) {
    add(sessions, batch.length, await importSessions(batch, clock()))
    onProgress?.(progress())
  }
  if (prune) {
    for await (const batch of to.scan(batchSize, clock())) {
      for (const session of batch) {
        const now = clock()
        if (await from.get(session.id, now) !== undefined) continue
        await to.revoke(session.id, now)
        sessions.pruned++
      }
      onProgress?.(progress())
    }
  }
  if (counterMethods !== undefined) {
    const [scanCounters, importCounters] = counterMethods
    for await (const batch of scanCounters(batchSize, clock())) {
      add(moved, batch.length, await importCounters(batch, clock()))
      onProgress?.(progress())
    }
  }
  return progress()
}

function add (totals: { read: number } & { -readonly [K in keyof ImportResult]: number }, read: number, result: ImportResult): void {
  totals.read += read
  totals.imported += result.imported
  totals.skipped += result.skipped
}

/** The store's optional method, bound, or the coded error naming it. */
function required<K extends 'importSessions' | 'scanCounters' | 'importCounters'> (store: SessionStore, name: K): NonNullable<SessionStore[K]> {
  const method = store[name]
  if (typeof method !== 'function') throw new StoreUnsupportedError(`${name}()`)
  return method.bind(store) as NonNullable<SessionStore[K]>
}

function checked (options: MigrateSessionsOptions): MigrateSessionsOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('migrateSessions', 'takes an options object')
  for (const name of Object.keys(options)) {
    if (!OPTION_NAMES.has(name)) throw new InvalidOptionError(name, 'is not an option of migrateSessions()')
  }
  for (const name of ['from', 'to'] as const) {
    const store = options[name]
    if (typeof store !== 'object' || store === null || typeof store.scan !== 'function') throw new InvalidOptionError(name, 'must be a session store')
  }
  if (options.from === options.to) throw new InvalidOptionError('to', 'must be another store than "from"')
  const { batchSize, counters, clock, prune, onProgress } = options
  if (batchSize !== undefined && (!Number.isSafeInteger(batchSize) || batchSize < 1)) throw new InvalidOptionError('batchSize', 'must be a positive integer')
  for (const [name, value] of [['counters', counters], ['prune', prune]] as const) {
    if (value !== undefined && typeof value !== 'boolean') throw new InvalidOptionError(name, 'must be a boolean')
  }
  if (clock !== undefined && typeof clock !== 'function') throw new InvalidOptionError('clock', 'must be a function returning epoch ms')
  if (onProgress !== undefined && typeof onProgress !== 'function') throw new InvalidOptionError('onProgress', 'must be a function')
  return options
}
