import type { FastifyBaseLogger } from 'fastify'
import { LRUCache } from 'lru-cache'
import { HistoryOffError, InvalidHistoryQueryError, InvalidOptionError } from '../errors.js'
import type { Clock } from '../session.js'
import type { HistoryEntry, HistoryRecord, HistoryRetention, SessionStore } from '../stores/store.js'
import { count, duration, section, shown, type Duration, type OptionNames } from '../validate.js'
import type { SessionEvent, SessionEventName } from './events.js'

/** The `history` option: each user's login history (see docs/monitoring.md, "Login history"). */
export interface HistoryOptions {
  /**
   * Most entries kept per user; the oldest go first.
   * @default 100
   */
  maxEntries?: number
  /**
   * How long an entry is kept.
   * @default '90d'
   */
  maxAge?: Duration
}

export const HISTORY_OPTION_NAMES: OptionNames<HistoryOptions> = { maxEntries: true, maxAge: true }

/** The history policy: the retention, or `false` when the history is off. */
export type HistoryPolicy = HistoryRetention | false

const DEFAULT_MAX_ENTRIES = 100
const DEFAULT_MAX_AGE = '90d'
/** Most entries one call of `history()` returns. */
export const MAX_HISTORY_PAGE = 1000
/** How many lockouts (by user and scope) this instance remembers having written. */
const LOCKOUTS_REMEMBERED = 10_000
/** What a store's cursor may look like (`HistoryEntry.id`). */
const CURSOR = /^[0-9A-Za-z_-]{1,40}$/

/** The policy; a history asked for explicitly needs a store that keeps one. */
export function parseHistoryOptions (value: HistoryOptions | false | undefined, store: SessionStore): HistoryPolicy {
  if (value === false) return false
  if (value !== undefined && !keepsHistory(store)) {
    throw new InvalidOptionError('history', 'needs a store that keeps a login history (appendHistory, history and eraseHistory), or false')
  }
  const options = section(value, HISTORY_OPTION_NAMES, 'history')
  return Object.freeze({
    maxEntries: count(options.maxEntries ?? DEFAULT_MAX_ENTRIES, 'history.maxEntries'),
    maxAgeMs: duration(options.maxAge ?? DEFAULT_MAX_AGE, 'history.maxAge')
  })
}

/** What a user's history records: who signed in, was refused or locked out, and what ended their sessions. */
const RECORDED: ReadonlySet<SessionEventName> = new Set<SessionEventName>([
  'session.created',
  'session.revoked',
  'session.evicted',
  'refresh.reuse_detected',
  'challenge.completed',
  'login.failed',
  'login.locked',
  'anomaly.detected',
  'alert.answered',
  'device.remembered',
  'device.forgotten'
])

interface Pending {
  readonly last: Promise<void>
  writes: number
}

/** The store methods the history needs; a store may leave all three out. */
export type HistoryStore = Required<Pick<SessionStore, 'appendHistory' | 'history' | 'eraseHistory'>>

/** Whether `store` keeps a history. */
export function keepsHistory (store: SessionStore): store is SessionStore & HistoryStore {
  return store.appendHistory !== undefined && store.history !== undefined && store.eraseHistory !== undefined
}

/**
 * Each user's login history: the events that say who signed in and what
 * ended their sessions, written to the store as they happen (off the
 * request's path: a failed write is logged, never a failed request), read
 * back newest first. A read waits for this instance's writes of that user
 * still on their way, so a page never misses what this instance just did.
 */
export class LoginHistory {
  readonly #store: HistoryStore | undefined
  readonly #retention: HistoryRetention | undefined
  readonly #clock: Clock
  readonly #log: FastifyBaseLogger
  /** Per user, the writes on their way: the last one, and how many. */
  readonly #pending = new Map<string, Pending>()
  /** The end of the lockout last written, by scope and user: see `#repeats`. */
  readonly #lockouts = new LRUCache<string, number>({ max: LOCKOUTS_REMEMBERED })

  constructor ({ store, clock, log }: { store: HistoryStore | undefined, clock: Clock, log: FastifyBaseLogger }, policy: HistoryPolicy) {
    this.#store = policy === false ? undefined : store
    this.#retention = policy === false ? undefined : policy
    this.#clock = clock
    this.#log = log
  }

  /** Whether a history is kept. */
  get enabled (): boolean {
    return this.#store !== undefined && this.#retention !== undefined
  }

  /** Records `event` in its user's history when it is one the history keeps. Never throws. */
  record (event: SessionEvent): void {
    const store = this.#store
    const retention = this.#retention
    if (store === undefined || retention === undefined || event.userId === undefined || !RECORDED.has(event.type)) return
    if (event.type === 'login.locked' && this.#repeats(event)) return
    const { userId } = event
    const entry = historyRecord(event)
    const held = this.#pending.get(userId)
    const last = (async () => {
      // One user's entries go in the order they happened.
      await held?.last
      try {
        await store.appendHistory(userId, entry, retention, this.#clock())
      } catch (err) {
        this.#log.error({ err, event: event.type }, 'session guard: a login-history entry could not be written')
      }
      const pending = this.#pending.get(userId) as Pending
      if (--pending.writes === 0) this.#pending.delete(userId)
    })()
    this.#pending.set(userId, { last, writes: (held?.writes ?? 0) + 1 })
  }

  /**
   * Whether a `login.locked` is one more refusal within a lockout already written (same user and scope,
   * before its end): a locked attempt costs the sender nothing, so one entry each would let anyone push a
   * user's sign-ins and anomalies out of `maxEntries` with a burst of requests. The event itself is
   * published each time.
   */
  #repeats (event: SessionEvent<'login.locked'>): boolean {
    const key = `${event.scope}\n${event.userId as string}`
    const end = this.#lockouts.get(key)
    if (end !== undefined && event.time < end) return true
    this.#lockouts.set(key, event.time + event.retryAfterMs)
    return false
  }

  /** The user's history, newest first; `before` an entry's `id` for the page after it. */
  async read (userId: string, { limit = 50, before }: { limit?: number, before?: string } = {}): Promise<HistoryEntry[]> {
    const { store, retention } = this.#enabled()
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_HISTORY_PAGE) {
      throw new InvalidHistoryQueryError(`limit must be an integer from 1 to ${MAX_HISTORY_PAGE}, got ${shown(limit)}`)
    }
    if (before !== undefined && (typeof before !== 'string' || !CURSOR.test(before))) {
      throw new InvalidHistoryQueryError('before must be the id of a history entry')
    }
    await this.#pending.get(userId)?.last
    return await store.history(userId, before === undefined ? { limit } : { limit, before }, retention, this.#clock())
  }

  /** Removes the user's whole history (after this instance's writes on their way). */
  async erase (userId: string): Promise<void> {
    const { store } = this.#enabled()
    await this.#pending.get(userId)?.last
    await store.eraseHistory(userId)
  }

  #enabled (): { store: HistoryStore, retention: HistoryRetention } {
    if (this.#retention === undefined) throw new HistoryOffError('the plugin was registered with history: false')
    if (this.#store === undefined) throw new HistoryOffError('the session store keeps none (it lacks appendHistory, history and eraseHistory)')
    return { store: this.#store, retention: this.#retention }
  }
}

/** What the history keeps of an event: never a username, a token or a fingerprint. */
export function historyRecord (event: SessionEvent): HistoryRecord {
  const record: { -readonly [K in keyof HistoryRecord]: HistoryRecord[K] } = { type: event.type, time: event.time }
  if (event.sessionId !== undefined) record.sessionId = event.sessionId
  // The event's summary, one frozen object per device (see events.ts).
  if (event.device !== undefined) record.device = event.device
  if (event.ip !== undefined) record.ip = event.ip
  if (event.location !== undefined) record.location = event.location
  const detail = detailOf(event)
  if (detail !== undefined) record.detail = detail
  return record
}

/** A session's end entry keeps how long it lived: the dashboard's duration distribution reads it. */
function lived (durationMs: number | undefined): { durationMs: number } | Record<string, never> {
  return durationMs === undefined ? {} : { durationMs }
}

function detailOf (event: SessionEvent): HistoryRecord['detail'] {
  switch (event.type) {
    case 'session.created':
      return { remembered: event.remembered, ...(event.flags === undefined ? {} : { flags: [...event.flags] }) }
    case 'session.revoked':
      return { reason: event.reason, ...lived(event.durationMs) }
    case 'session.evicted':
      return event.durationMs === undefined ? undefined : { durationMs: event.durationMs }
    case 'login.failed':
      return { failures: event.failures }
    case 'login.locked':
      return { scope: event.scope, retryAfterMs: event.retryAfterMs }
    case 'anomaly.detected':
      return { rule: event.rule, decision: event.decision, at: event.at }
    case 'alert.answered':
      return { answer: event.answer }
    case 'device.forgotten':
      return { scope: event.scope }
    default:
      return undefined
  }
}
