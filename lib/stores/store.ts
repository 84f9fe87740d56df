import type { Activity, Clock, DeviceType, RefreshState, SessionRecord } from '../session.js'

export type { Activity, ClientInfo, SessionChanges } from '../session.js'

/**
 * The contract between the plugin and a session store.
 *
 * Every method is Promise-based and takes `now` (epoch ms from the plugin's
 * injected clock): a store never reads a clock of its own to decide whether a
 * session is live. A store never returns a session whose deadlines have passed.
 * Operations marked atomic must hold under any interleaving of concurrent calls,
 * from one process or many. The conformance suite (`lib/testing/`, published
 * as `fastify-session-guard/testing`) checks every store against this contract.
 */
export interface SessionStore {
  /**
   * Called once when the plugin is registered, before any other method.
   * A store that needs no context may leave it out.
   */
  open?(context: StoreContext): void | Promise<void>

  /**
   * Atomic: count the user's live sessions and, if `limit.max` are already live,
   * either evict the least recently active ones (`'evict-oldest'`) or refuse
   * (`'reject'`, leaving every session untouched); then insert.
   *
   * With `limit.deviceType`, the sessions of that device type are counted
   * first (a session's type is `device?.type`, `'unknown'` without a device:
   * `deviceTypeOf()`, read as the session is now, not as it was created): if
   * `deviceType.max` of them are live, evict the least recently active *of that
   * type*, or refuse with `active` holding only the sessions of that type and
   * `deviceType` set. Then the total, over the sessions not evicted. Both in
   * the same one step: a refusal by either changes nothing.
   */
  create(session: SessionRecord, limit: SessionLimit, now: number): Promise<CreateResult>

  /** The live session with this id, or `undefined`. */
  get(id: string, now: number): Promise<SessionRecord | undefined>

  /**
   * Records activity: sets `lastSeenAt` and `idleExpiresAt`. Only updates a
   * session that is still live; never brings back a revoked or expired one.
   * Returns the updated session, or `undefined` when there is none.
   */
  touch(id: string, activity: Activity, now: number): Promise<SessionRecord | undefined>

  /**
   * Atomic compare-and-swap of the refresh state (see `decideRotation` in
   * `lib/session.ts`): rotates, refuses a parallel loser, or, for an older
   * generation, revokes the session. A rotation also records activity.
   */
  rotate(id: string, rotation: Rotation, now: number): Promise<RotationResult>

  /**
   * Atomic: removes `oldId` and inserts `session` in its place (same user), so
   * no moment exists where both or neither are live. Returns `false`, changing
   * nothing, when `oldId` is no longer live.
   */
  replace(oldId: string, session: SessionRecord, now: number): Promise<boolean>

  /** Removes one session. Returns it, or `undefined` if it was not live. */
  revoke(id: string, now: number): Promise<SessionRecord | undefined>

  /** Atomic: removes every live session of a user, except `exceptId` when given. Returns the removed ones. */
  revokeUser(userId: string, exceptId: string | undefined, now: number): Promise<SessionRecord[]>

  /** The user's live sessions, most recently active first. O(sessions of that user), never a scan. */
  listUser(userId: string, now: number): Promise<SessionRecord[]>

  /**
   * Every live session, in batches of about `batchSize`, without holding the
   * event loop (or the server) for the whole store: for analytics, not for
   * requests. Sessions created or removed during a scan may or may not appear.
   */
  scan(batchSize: number, now: number): AsyncIterable<SessionRecord[]>

  /**
   * Atomic: counts one more event under `key` and returns the counter. The
   * counter lives `windowMs` after its last event (a sliding window); a key is
   * independent of sessions (failed logins, known devices, login bursts).
   */
  increment(key: string, windowMs: number, now: number): Promise<Counter>

  /** The counter under `key`, or `undefined` when it has expired or never existed. */
  counter(key: string, now: number): Promise<Counter | undefined>

  /** Removes the counter under `key`. */
  resetCounter(key: string): Promise<void>

  /**
   * Atomic: takes back one event counted under `key` (an attempt counted ahead
   * that turned out not to count). The count drops by one; `firstAt`, `lastAt`
   * and the window stay as they are; a counter that drops to zero is removed.
   * An expired or absent counter is left alone.
   */
  decrement(key: string, now: number): Promise<void>

  /** Counters and sizes. */
  stats(now: number): Promise<StoreStats>

  /** Stops timers and releases what the store itself opened. */
  close(): Promise<void>

  /**
   * Why the store cannot serve now, as one line an operator can act on
   * (`cannot connect to Redis at 10.0.0.5:6379 (ECONNREFUSED)`), or `undefined`
   * when it knows of none. The health route reports it. A store that cannot
   * tell may leave it out.
   */
  unavailableReason?(): string | undefined

  /**
   * Optional, for moving sessions between stores (`migrateSessions()`) and for
   * restoring a snapshot: writes each record exactly as it is (same id, user,
   * hashes, refresh state, deadlines and activity times) and adds it to its
   * user's index, so the per-user limit, `listUser` and `revokeUser` see it.
   *
   * - A record past a deadline at `now` is skipped.
   * - The per-user limit is not applied (the source store kept it); the store's
   *   own capacity is, as in `create`.
   * - Where the store already holds the id, the newer record wins (see
   *   `supersedes` in `lib/session.ts`): importing the same batch twice, or an
   *   older copy after the app moved on, changes nothing.
   * - Atomic per record; nothing is published to `onRemoved`.
   *
   * The migration suite (`migration()` in `fastify-session-guard/testing`) checks it.
   */
  importSessions?(sessions: readonly SessionRecord[], now: number): Promise<ImportResult>

  /**
   * Optional, with `importCounters`: every live counter (see `increment`) with
   * its key and the end of its window, in batches of about `batchSize`, like
   * `scan`. Counters created or removed during the walk may or may not appear.
   */
  scanCounters?(batchSize: number, now: number): AsyncIterable<HeldCounter[]>

  /**
   * Optional: writes each counter as it is (count, `firstAt`, `lastAt`, and the
   * window ending at `expiresAt`), replacing one held under the same key. A
   * counter whose window has ended at `now` is skipped.
   */
  importCounters?(counters: readonly HeldCounter[], now: number): Promise<ImportResult>

  /**
   * Optional, with `history` and `eraseHistory`: the user's login history (an
   * audit trail). Appends `entry`, then keeps at most `retention.maxEntries`
   * of the user's entries, the newest; an entry is gone once
   * `retention.maxAgeMs` have passed since its `time`. Bounded per user in
   * count and in time, whoever calls. The history suite (`history()` in
   * `fastify-session-guard/testing`) checks it.
   */
  appendHistory?(userId: string, entry: HistoryRecord, retention: HistoryRetention, now: number): Promise<void>

  /**
   * The user's history, newest first: at most `query.limit` entries, only
   * those older than the entry `query.before` names (a cursor: an entry's `id`)
   * when given, none past `retention.maxAgeMs` at `now`.
   */
  history?(userId: string, query: HistoryQuery, retention: HistoryRetention, now: number): Promise<HistoryEntry[]>

  /** Removes the user's whole history. */
  eraseHistory?(userId: string): Promise<void>
}

/** One event of a user's login history, as the plugin writes it (never a token, a fingerprint, or an IP beyond what the privacy policy keeps). */
export interface HistoryRecord {
  /** The event it records (`'session.created'`, `'login.failed'` …). */
  readonly type: string
  /** Epoch ms, from the plugin's clock. */
  readonly time: number
  readonly sessionId?: string
  readonly device?: { readonly type: string, readonly name: string }
  /** The IP as the privacy policy keeps it. */
  readonly ip?: string
  readonly location?: { readonly country?: string, readonly city?: string }
  /** What else the event said (a revocation's `reason`, an anomaly's `rule` and `decision` …): flat, JSON-safe. */
  readonly detail?: Readonly<Record<string, string | number | boolean | readonly string[]>>
}

/** A history entry as a store returns it: the record and its cursor. */
export interface HistoryEntry extends HistoryRecord {
  /**
   * The entry's cursor, given by the store: opaque, unique within the user's
   * history, 1 to 40 characters of `[0-9A-Za-z_-]`; `before` takes it to read the next page.
   */
  readonly id: string
}

/** How much of a user's history a store keeps. */
export interface HistoryRetention {
  /** Most entries per user (>= 1): the oldest go first. */
  readonly maxEntries: number
  /** How long an entry is kept after its `time`, in ms. */
  readonly maxAgeMs: number
}

export interface HistoryQuery {
  /** Most entries returned (>= 1). */
  readonly limit: number
  /** Only entries older than this one (its `id`, from an earlier page). */
  readonly before?: string
}

/** What an import wrote and what it left out (ended, or older than what the store holds). */
export interface ImportResult {
  readonly imported: number
  readonly skipped: number
}

/** A counter with its key and the end of its window (epoch ms), as `scanCounters` gives it. */
export interface HeldCounter extends Counter {
  readonly key: string
  readonly expiresAt: number
}

/** What the plugin hands a store when it opens it. */
export interface StoreContext {
  /** The plugin's injected clock, for a store's own housekeeping (purge timers, cache TTLs). */
  readonly now: Clock
  /** Called for each session the store removes on its own (capacity eviction, expiry). */
  readonly onRemoved: (session: SessionRecord, reason: RemovalReason) => void
  /**
   * The app's logger (the plugin passes Fastify's), for what an operator must
   * hear of outside any request: a server the store cannot reach, a snapshot
   * that could not be written. A store opened by hand may get none.
   */
  readonly log?: StoreLog
}

/** The part of a logger (Fastify's, pino) a store may use. */
export interface StoreLog {
  error(details: object, message: string): void
  warn(details: object, message: string): void
  info(details: object, message: string): void
}

/** Why a store removed a session without being asked to. */
export type RemovalReason = 'capacity' | 'expired'

export interface SessionLimit {
  /** Most live sessions one user may hold (>= 1). */
  readonly max: number
  readonly onLimit: 'evict-oldest' | 'reject'
  /**
   * The limit of the new session's device type, when the plugin has one for
   * it (`deviceTypeLimits`), applied before the total. A store that ignores it
   * fails the conformance suite.
   */
  readonly deviceType?: DeviceTypeLimit
}

/** A limit on the live sessions of one device type of one user (see `SessionLimit.deviceType`). */
export interface DeviceTypeLimit {
  /** The new session's device type (`deviceTypeOf(session)`): the sessions counted are those of this type. */
  readonly type: DeviceType
  /** Most live sessions of that type (>= 1, at most the total's `max`). */
  readonly max: number
  readonly onLimit: 'evict-oldest' | 'reject'
}

export type CreateResult =
  | { readonly created: true, readonly evicted: readonly SessionRecord[] }
  | {
    readonly created: false
    /**
     * The live sessions that filled the limit that refused, most recently
     * active first: every one of the user's, or, when `deviceType` is set,
     * only those of that type (signing one of them out frees the slot).
     */
    readonly active: readonly SessionRecord[]
    /** Set when the limit of this device type refused (not the total). */
    readonly deviceType?: DeviceType
  }

export interface Rotation {
  /** Hash of the refresh token the client presented. */
  readonly presentedHash: string
  /** Hash of the successor to issue if the rotation goes ahead. */
  readonly successorHash: string
  /** How long after a rotation its predecessor answers `conflict` rather than rotating again. */
  readonly graceMs: number
  /** Activity to record with the rotation. */
  readonly activity: Activity
}

export type RotationResult =
  | { readonly outcome: 'rotated', readonly session: SessionRecord & { readonly refresh: RefreshState } }
  | { readonly outcome: 'conflict' }
  | { readonly outcome: 'reuse', readonly session: SessionRecord }
  | { readonly outcome: 'missing' }

export interface Counter {
  readonly count: number
  /** Epoch ms of the first and the last event counted. */
  readonly firstAt: number
  readonly lastAt: number
}

export interface StoreStats {
  /** Sessions held (may include expired ones not purged yet). */
  readonly sessions: number
  /** Users with at least one session held. */
  readonly users: number
  /** Sessions removed because the store was at capacity, since it was opened. */
  readonly evictions: number
  /**
   * Live counters (failed logins, anomaly memory, DPoP proofs' `jti`s …)
   * dropped because the store held its most counters, since it was opened: a
   * lockout forgotten early, or a DPoP proof that could be replayed. Only a
   * store that bounds its counters tells (the memory store's `maxCounters`);
   * one whose counters only expire leaves it out.
   */
  readonly counterEvictions?: number
  /** Sessions removed because a deadline passed, since it was opened. */
  readonly expirations: number
  /** How many users hold 1, 2, 3 … sessions: `{ 1: 812, 2: 95, 3: 12 }`. */
  readonly sessionsPerUser: Readonly<Record<number, number>>
  /** Most sessions the store holds, when it is bounded. */
  readonly capacity?: number
  /** Estimated bytes the sessions take, when the store can tell. */
  readonly estimatedBytes?: number
}
