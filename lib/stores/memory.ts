import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import { LRUCache } from 'lru-cache'
import { InvalidOptionError, StoreFullError } from '../errors.js'
import { planCreate } from './limit.js'
import { MemoryCounters } from './memory-counters.js'
import { MemoryHistory } from './memory-history.js'
import { Snapshots, snapshotSettings, type SnapshotContent, type SnapshotOptions } from './memory-snapshot.js'
import { SessionTable } from './memory-table.js'
import { decideRotation, isLive, rotatedState, type RefreshState, type SessionRecord, supersedes, withActivity } from '../session.js'
import { count, section, shown, type OptionNames } from '../validate.js'
import type {
  Activity,
  Counter,
  CreateResult,
  HeldCounter,
  HistoryEntry,
  HistoryQuery,
  HistoryRecord,
  HistoryRetention,
  ImportResult,
  Rotation,
  RotationResult,
  SessionLimit,
  SessionStore,
  StoreContext,
  StoreStats
} from './store.js'

export interface MemoryStoreOptions {
  /**
   * Most sessions held at once.
   * @default 100_000
   */
  max?: number
  /**
   * What happens when `max` sessions are held and a new one is created:
   * `'evict-lru'` drops the least recently used session (reported as a
   * `capacity` removal), `'reject'` refuses the login with a 503.
   * @default 'evict-lru'
   */
  onCapacity?: 'evict-lru' | 'reject'
  /**
   * How often expired sessions are purged, in ms. The timer is `unref()`ed and
   * stopped by `close()`.
   * @default 60_000
   */
  purgeIntervalMs?: number
  /**
   * Most counters held at once (failed logins, known devices, login bursts,
   * DPoP proofs' `jti`s). When full, an expired counter makes room first; only
   * when every one is live does the least recently used go, counted in
   * `stats().counterEvictions` and warned of. Hold at least peak DPoP
   * requests/s × 2 × `dpop.window` + the login counters (docs/stores.md).
   * @default 100_000
   */
  maxCounters?: number
  /**
   * Most login-history entries held at once, of every user together (each
   * user's own bound is the plugin's `history` option); the users heard from
   * least recently lose theirs first.
   * @default 100_000
   */
  maxHistoryEntries?: number
  /**
   * Restarts that sign nobody out: restores the sessions (with their refresh
   * state and per-user index) and the counters from `path` on `open()`, and
   * writes them there every `intervalMs` and on `close()`. Off by default.
   * See docs/stores.md, "Snapshots".
   */
  snapshot?: SnapshotOptions
}

const DEFAULT_MAX = 100_000
const DEFAULT_PURGE_INTERVAL_MS = 60_000
const DEFAULT_MAX_COUNTERS = 100_000
const DEFAULT_MAX_HISTORY_ENTRIES = 100_000
/** Errors name an option by its path under the factory: `memoryStore.max`. */
const PATH = 'memoryStore'
const OPTION_NAMES: OptionNames<MemoryStoreOptions> = { max: true, onCapacity: true, purgeIntervalMs: true, maxCounters: true, maxHistoryEntries: true, snapshot: true }
/**
 * Bytes per session with device metadata, heap and typed arrays, at 1M
 * sessions, as `npm run bench:memory` measures it (docs/benchmarks.md);
 * `stats().estimatedBytes` multiplies by it.
 */
const ESTIMATED_BYTES_PER_SESSION = 300

/**
 * A bounded in-process store: `lru-cache` keeps the order of use and the bound,
 * mapping each session id to its slot in a `SessionTable`, which holds the
 * sessions column by column with each user's sessions linked (the per-user
 * index), kept in step on every removal path (revoke, expiry, eviction at
 * capacity). For one process; use the Redis store when several instances serve
 * the same users.
 */
export class MemoryStore implements SessionStore {
  readonly #max: number
  readonly #onCapacity: 'evict-lru' | 'reject'
  readonly #purgeIntervalMs: number
  /** Session id → slot in `#table`. */
  readonly #cache: LRUCache<string, number>
  readonly #table: SessionTable
  readonly #counters: MemoryCounters
  readonly #history: MemoryHistory
  /**
   * The plugin's, from `open()`. Until then there is no plugin's clock: it
   * reads as the start of time, so only the `now` each caller passes ends a session.
   */
  #context: StoreContext = { now: () => -Infinity, onRemoved: () => {} }
  #timer: NodeJS.Timeout | undefined
  readonly #snapshots: Snapshots | undefined
  #evictions = 0
  #expirations = 0

  constructor (options: MemoryStoreOptions = {}) {
    // As strict as the plugin's options: a misspelt name fails, naming it, with FST_SESSION_GUARD_INVALID_OPTION.
    const {
      max = DEFAULT_MAX,
      onCapacity = 'evict-lru',
      purgeIntervalMs = DEFAULT_PURGE_INTERVAL_MS,
      maxCounters = DEFAULT_MAX_COUNTERS,
      maxHistoryEntries = DEFAULT_MAX_HISTORY_ENTRIES,
      snapshot
    } = section(options, OPTION_NAMES, PATH)
    count(max, `${PATH}.max`)
    if (onCapacity !== 'evict-lru' && onCapacity !== 'reject') {
      throw new InvalidOptionError(`${PATH}.onCapacity`, `must be 'evict-lru' or 'reject', got ${shown(onCapacity)}`)
    }
    if (!Number.isFinite(purgeIntervalMs) || purgeIntervalMs <= 0) {
      throw new InvalidOptionError(`${PATH}.purgeIntervalMs`, `must be a positive number, got ${shown(purgeIntervalMs)}`)
    }
    count(maxCounters, `${PATH}.maxCounters`)
    count(maxHistoryEntries, `${PATH}.maxHistoryEntries`)
    this.#max = max
    this.#onCapacity = onCapacity
    this.#purgeIntervalMs = purgeIntervalMs
    // One slot more than the bound: a new session takes its slot before lru-cache evicts to make room.
    this.#table = new SessionTable(max + 1)
    // No TTLs in lru-cache: the deadlines are in the table, checked against each caller's `now`, and against the plugin's clock (#cached, #purge).
    this.#cache = new LRUCache<string, number>({ max, dispose: (slot, _id, reason) => this.#disposed(slot, reason) })
    this.#counters = new MemoryCounters(maxCounters, () => this.#context.log)
    this.#history = new MemoryHistory(maxHistoryEntries)
    const settings = snapshotSettings(snapshot)
    this.#snapshots = settings === undefined
      ? undefined
      : new Snapshots(settings, { contents: (now) => this.#contents(now), restore: async (content, now) => await this.#restore(content, now) })
  }

  async open (context: StoreContext): Promise<void> {
    this.#context = context
    this.#timer ??= setInterval(() => this.#purge(), this.#purgeIntervalMs).unref()
    await this.#snapshots?.open(context)
  }

  async create (session: SessionRecord, limit: SessionLimit, now: number): Promise<CreateResult> {
    // One synchronous step from the count to the insert: nothing interleaves.
    const plan = planCreate(this.#live(session.userId, now), limit)
    if (!plan.created) return plan
    for (const old of plan.evicted) this.#cache.delete(old.id)
    this.#ensureRoom()
    this.#insert(session)
    return plan
  }

  async get (id: string, now: number): Promise<SessionRecord | undefined> {
    const slot = this.#liveSlot(id, now)
    return slot === undefined ? undefined : this.#table.read(slot)
  }

  async touch (id: string, activity: Activity, now: number): Promise<SessionRecord | undefined> {
    const slot = this.#liveSlot(id, now)
    if (slot === undefined) return undefined
    const touched = withActivity(this.#table.read(slot), activity)
    this.#table.writeActivity(slot, touched)
    return touched
  }

  async rotate (id: string, rotation: Rotation, now: number): Promise<RotationResult> {
    const slot = this.#liveSlot(id, now)
    const session = slot === undefined ? undefined : this.#table.read(slot)
    if (session?.refresh === undefined) return { outcome: 'missing' }
    const decision = decideRotation(session.refresh, rotation.presentedHash, now, rotation.graceMs)
    if (decision === 'conflict') return { outcome: 'conflict' }
    if (decision === 'reuse') {
      this.#cache.delete(id)
      return { outcome: 'reuse', session }
    }
    const refresh = rotatedState(session.refresh, rotation.presentedHash, rotation.successorHash, now)
    const rotated = withActivity({ ...session, refresh }, rotation.activity) as SessionRecord & { readonly refresh: RefreshState }
    this.#table.write(slot as number, rotated)
    return { outcome: 'rotated', session: rotated }
  }

  async replace (oldId: string, session: SessionRecord, now: number): Promise<boolean> {
    if (this.#liveSlot(oldId, now) === undefined) return false
    this.#cache.delete(oldId)
    this.#insert(session)
    return true
  }

  async revoke (id: string, now: number): Promise<SessionRecord | undefined> {
    const slot = this.#cached(id)
    if (slot === undefined) return undefined
    if (this.#table.isLive(slot, now)) {
      const session = this.#table.read(slot)
      this.#cache.delete(id)
      return session
    }
    // Past a deadline by this caller's clock only, perhaps: a revocation ends it for everyone.
    this.#expire(slot)
    return undefined
  }

  async revokeUser (userId: string, exceptId: string | undefined, now: number): Promise<SessionRecord[]> {
    const revoked: SessionRecord[] = []
    // The ids, not the slots: while a revoke awaits, a slot may be freed and taken by another user's session.
    for (const id of this.#table.slotsOf(userId).map((slot) => this.#table.idOf(slot))) {
      if (id === exceptId) continue
      const session = await this.revoke(id, now)
      if (session !== undefined) revoked.push(session)
    }
    return revoked
  }

  async listUser (userId: string, now: number): Promise<SessionRecord[]> {
    return this.#live(userId, now)
  }

  async * scan (batchSize: number, now: number): AsyncIterable<SessionRecord[]> {
    let batch: SessionRecord[] = []
    const clock = this.#context.now()
    // A Map's key iterator stays valid while users come and go between batches.
    for (const userId of this.#table.userIds()) {
      for (const slot of this.#table.slotsOf(userId)) {
        if (this.#table.isLive(slot, now) && !this.#table.isPast(slot, clock)) batch.push(this.#table.read(slot))
      }
      if (batch.length >= batchSize) {
        yield batch
        batch = []
        await yieldToEventLoop()
      }
    }
    if (batch.length > 0) yield batch
  }

  async increment (key: string, windowMs: number, now: number): Promise<Counter> {
    const held = this.#counters.live(key, now)
    const counter = {
      count: (held?.count ?? 0) + 1,
      firstAt: held?.firstAt ?? now,
      lastAt: now,
      expiresAt: now + windowMs
    }
    this.#counters.set(key, counter, now)
    return counter
  }

  async counter (key: string, now: number): Promise<Counter | undefined> {
    return this.#counters.live(key, now)
  }

  async resetCounter (key: string): Promise<void> {
    this.#counters.delete(key)
  }

  async decrement (key: string, now: number): Promise<void> {
    const held = this.#counters.live(key, now)
    if (held === undefined) return
    // A literal, not a spread: see sessionRecord().
    if (held.count > 1) this.#counters.set(key, { count: held.count - 1, firstAt: held.firstAt, lastAt: held.lastAt, expiresAt: held.expiresAt }, now)
    else this.#counters.delete(key)
  }

  async appendHistory (userId: string, entry: HistoryRecord, retention: HistoryRetention, now: number): Promise<void> {
    this.#history.append(userId, entry, retention, now)
  }

  async history (userId: string, query: HistoryQuery, retention: HistoryRetention, now: number): Promise<HistoryEntry[]> {
    return this.#history.read(userId, query, retention, now)
  }

  async eraseHistory (userId: string): Promise<void> {
    this.#history.erase(userId)
  }

  async importSessions (sessions: readonly SessionRecord[], now: number): Promise<ImportResult> {
    let imported = 0
    for (const session of sessions) {
      if (!isLive(session, now)) continue
      const slot = this.#cache.peek(session.id)
      if (slot !== undefined) {
        if (!this.#table.isLive(slot, now)) this.#expire(slot)
        else if (supersedes(this.#table.read(slot), session)) continue
        else this.#cache.delete(session.id)
      }
      this.#ensureRoom()
      this.#insert(session)
      imported++
    }
    return { imported, skipped: sessions.length - imported }
  }

  async * scanCounters (batchSize: number, now: number): AsyncIterable<HeldCounter[]> {
    // The keys first: the cache may change between batches.
    const keys = this.#counters.keys()
    let batch: HeldCounter[] = []
    for (const key of keys) {
      const counter = this.#counters.peek(key)
      if (counter !== undefined && now < counter.expiresAt) batch.push({ key, ...counter })
      if (batch.length >= batchSize) {
        yield batch
        batch = []
        await yieldToEventLoop()
      }
    }
    if (batch.length > 0) yield batch
  }

  async importCounters (counters: readonly HeldCounter[], now: number): Promise<ImportResult> {
    let imported = 0
    for (const { key, count, firstAt, lastAt, expiresAt } of counters) {
      if (now >= expiresAt) continue
      this.#counters.set(key, { count, firstAt, lastAt, expiresAt }, now)
      imported++
    }
    return { imported, skipped: counters.length - imported }
  }

  async stats (): Promise<StoreStats> {
    return {
      sessions: this.#cache.size,
      users: this.#table.users,
      evictions: this.#evictions,
      counterEvictions: this.#counters.evictions,
      expirations: this.#expirations,
      sessionsPerUser: this.#table.sessionsPerUser(),
      capacity: this.#max,
      estimatedBytes: this.#cache.size * ESTIMATED_BYTES_PER_SESSION
    }
  }

  async close (): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#snapshots?.close()
  }

  /** Writes a snapshot now (with the `snapshot` option; otherwise does nothing). Never throws: a failure is logged. */
  async saveSnapshot (): Promise<void> {
    await this.#snapshots?.save()
  }

  /** What a snapshot holds: live sessions least recently used first (so a restore keeps the LRU order), live counters. */
  #contents (now: number): SnapshotContent {
    const sessions: SessionRecord[] = []
    for (const slot of this.#cache.rvalues() as Iterable<number>) if (this.#table.isLive(slot, now)) sessions.push(this.#table.read(slot))
    const counters: HeldCounter[] = []
    for (const [key, counter] of this.#counters.rentries()) if (now < counter.expiresAt) counters.push({ key, ...counter })
    return { writtenAt: now, sessions, counters }
  }

  async #restore (content: SnapshotContent, now: number): Promise<void> {
    await this.importSessions(content.sessions, now)
    await this.importCounters(content.counters, now)
  }

  /** The user's live sessions, most recently active first; expired ones are removed on the way. */
  #live (userId: string, now: number): SessionRecord[] {
    const live: SessionRecord[] = []
    // Straight from the table, not through lru-cache: counting or listing a user's sessions is not
    // using them, so it must not move them up the LRU order.
    for (const slot of this.#table.slotsOf(userId)) {
      if (this.#table.isLive(slot, now)) live.push(this.#table.read(slot))
      else if (this.#table.isRemovable(slot, now)) this.#expire(slot)
    }
    return live.sort((a, b) => b.lastSeenAt - a.lastSeenAt)
  }

  /**
   * The slot of session `id`, moved up the LRU order. One that ended before
   * the plugin's clock says now is expired at once (and `onRemoved` told), as
   * a TTL would: in one process there is no other clock to wait for.
   */
  #cached (id: string): number | undefined {
    const slot = this.#cache.get(id)
    if (slot === undefined || !this.#table.isPast(slot, this.#context.now())) return slot
    this.#expire(slot)
    return undefined
  }

  /**
   * The slot of session `id`, if live at `now`. One past a deadline is refused,
   * and removed only past `CLOCK_SKEW_ALLOWANCE_MS` (`isRemovable`): the
   * caller's clock may be ahead of the others'.
   */
  #liveSlot (id: string, now: number): number | undefined {
    const slot = this.#cached(id)
    if (slot === undefined || this.#table.isLive(slot, now)) return slot
    if (this.#table.isRemovable(slot, now)) this.#expire(slot)
    return undefined
  }

  /** Removes the session in `slot`, past a deadline, and says so. */
  #expire (slot: number): void {
    const session = this.#table.read(slot)
    this.#expirations++
    this.#cache.delete(session.id)
    this.#context.onRemoved(session, 'expired')
  }

  /** Expires every session past a deadline by the plugin's clock. */
  #purge (): void {
    const now = this.#context.now()
    for (const slot of this.#table.slots()) if (this.#table.isPast(slot, now)) this.#expire(slot)
  }

  #ensureRoom (): void {
    if (this.#onCapacity === 'evict-lru' || this.#cache.size < this.#max) return
    this.#purge()
    if (this.#cache.size >= this.#max) throw new StoreFullError()
  }

  #insert (session: SessionRecord): void {
    this.#cache.set(session.id, this.#table.add(session))
  }

  #disposed (slot: number, reason: LRUCache.DisposeReason): void {
    if (reason === 'evict') {
      const session = this.#table.read(slot)
      this.#table.remove(slot)
      this.#evictions++
      this.#context.onRemoved(session, 'capacity')
      return
    }
    // 'delete', or 'set': a session created again under an id already held replaces it.
    this.#table.remove(slot)
  }
}

/** Creates the in-memory store (the default when no `store` option is given). */
export function memoryStore (options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options)
}
