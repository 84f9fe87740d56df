import { Cluster, Redis, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis'
import { LRUCache } from 'lru-cache'
import type { DeviceInfo } from '../../devices/device.js'
import { expiresAt, isLive, type Location, type RefreshState, type SessionRecord } from '../../session.js'
import * as scripts from './scripts.js'
import type {
  Activity,
  Counter,
  CreateResult,
  Rotation,
  RotationResult,
  SessionChanges,
  SessionLimit,
  SessionStore,
  StoreContext,
  StoreStats
} from '../store.js'

export interface RedisStoreOptions {
  /**
   * An `ioredis` client or Cluster the app owns. The store never closes it
   * unless `closeClient` is true. Give this, `connection` or `cluster`.
   */
  client?: Redis | Cluster
  /**
   * Close `client` when the store closes.
   * @default false
   */
  closeClient?: boolean
  /**
   * A URL (`redis://127.0.0.1:6379`) or `ioredis` options: the store creates
   * the client, with fail-fast defaults (no offline queue, a command timeout,
   * one retry per request, reconnection forever), and closes it in `close()`.
   */
  connection?: string | RedisOptions
  /** Cluster startup nodes and options: the store creates and owns the Cluster client. */
  cluster?: { nodes: ClusterNode[], options?: ClusterOptions }
  /**
   * Prepended to every key and to the invalidation channel. No `{` or `}`:
   * the store places its own hash tags.
   * @default 'sg:'
   */
  prefix?: string
  /**
   * A store call that gets no answer within this many ms fails (and the
   * plugin answers 503). Applies to every call, on clients the store owns or not.
   * @default 1000
   */
  commandTimeoutMs?: number
  /**
   * An in-process cache of live sessions in front of Redis, so most guarded
   * requests cost no round trip. Every revoke, rotation, regeneration and
   * touch is published on a channel and drops the entry on every instance at
   * once; while the subscriber is disconnected the cache is emptied and not
   * used, because messages sent meanwhile are lost. `true` for the defaults.
   * @default false
   */
  localCache?: boolean | LocalCacheOptions
}

export interface LocalCacheOptions {
  /**
   * Most sessions cached.
   * @default 10_000
   */
  max?: number
  /**
   * Longest time (by the plugin's clock) an entry is served without asking
   * Redis: bounds staleness should an invalidation be lost without the
   * subscriber noticing (a network partition that sends no reset).
   * @default 5000
   */
  ttlMs?: number
}

const DEFAULT_PREFIX = 'sg:'
const DEFAULT_COMMAND_TIMEOUT_MS = 1000
const DEFAULT_CACHE_MAX = 10_000
const DEFAULT_CACHE_TTL_MS = 5000
/** Distinct devices kept decoded, so sessions read back share one frozen object per device. */
const DEVICE_CACHE_MAX = 5000
/** Session id to user id: immutable, so cached without invalidation. */
const USER_ID_CACHE_MAX = 10_000
const MAX_RECONNECT_DELAY_MS = 2000
const SUBSCRIBER_NAME = 'session-guard-invalidations'
/** Session ids become parts of keys: the plugin's are base64url. */
const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/

/** Fail fast: a store that waits is worse than a 503 (the guard fails closed). */
function failFast (commandTimeoutMs: number): RedisOptions {
  return {
    commandTimeout: commandTimeoutMs,
    connectTimeout: commandTimeoutMs,
    maxRetriesPerRequest: 1,
    // No offline queue: a command sent while disconnected fails at once
    // instead of piling up and running late, after its caller gave up.
    enableOfflineQueue: false,
    // Keep reconnecting, so service comes back by itself with Redis.
    retryStrategy: (times) => Math.min(50 * times, MAX_RECONNECT_DELAY_MS)
  }
}

const COMMANDS = {
  sessionGuardCreate: { lua: scripts.CREATE, numberOfKeys: 2 },
  sessionGuardGet: { lua: scripts.GET, numberOfKeys: 2 },
  sessionGuardTouch: { lua: scripts.TOUCH, numberOfKeys: 2 },
  sessionGuardRotate: { lua: scripts.ROTATE, numberOfKeys: 2 },
  sessionGuardReplace: { lua: scripts.REPLACE, numberOfKeys: 3 },
  sessionGuardRevoke: { lua: scripts.REVOKE, numberOfKeys: 2 },
  sessionGuardRevokeUser: { lua: scripts.REVOKE_USER, numberOfKeys: 1 },
  sessionGuardListUser: { lua: scripts.LIST_USER, numberOfKeys: 1 },
  sessionGuardAccount: { lua: scripts.ACCOUNT, numberOfKeys: 6 },
  sessionGuardStats: { lua: scripts.STATS, numberOfKeys: 6 },
  sessionGuardIncrement: { lua: scripts.INCREMENT, numberOfKeys: 1 },
  sessionGuardDecrement: { lua: scripts.DECREMENT, numberOfKeys: 1 }
} as const

type CommandName = keyof typeof COMMANDS
type Arg = string | number
/** What every session script replies: see `redis-scripts.ts`. */
type Reply = [status: string, user: UserState, main: string[], others: string[][], expired: string[][]]
/** The user's index after a script: latest deadline, size, size version, whether the size changed. */
type UserState = [deadline: string, size: string, version: string, changed: '0' | '1']
type RotatedSession = SessionRecord & { readonly refresh: RefreshState }
/** What a script changed, for the bookkeeping after it. */
interface Changes {
  /** Sessions inserted or updated. */
  live?: SessionRecord[]
  /** Sessions removed. */
  gone?: SessionRecord[]
  /** Lookup keys written for a session that was never inserted. */
  orphans?: string[]
}

/**
 * Sessions in Redis (standalone, Sentinel or Cluster), shared by every
 * instance of the app.
 *
 * Key layout, after the prefix:
 * - `{u:<userId>}:s:<sessionId>` the session, a hash;
 * - `{u:<userId>}:i` the user's index, a sorted set of session ids scored by deadline;
 * - `id:{<sessionId>}` the session's user id, a string;
 * - `{u:<userId>}:v` the version of the user's index size, bumped when it changes;
 * - `{stats}:sessions`, `{stats}:users`, `{stats}:removed`, `{stats}:sizes`,
 *   `{stats}:sized`, `{stats}:hist` the bookkeeping behind `stats()`;
 * - `c:<key>` a counter (`increment`, `decrement`), a hash that lives its window after its last event;
 * - channel `invalidate`, the local caches' invalidations.
 *
 * The keys of one user share the hash tag `{u:<userId>}`, so every script
 * touches one Cluster slot and runs as one atomic step. `get(id)` only knows
 * the id, so a small lookup key in the id's own slot names the user; it never
 * changes, so it is cached in-process, and it is written before the session
 * (a lookup without a session is harmless, a session nobody can find is not).
 *
 * Time: every decision uses the `now` the plugin passes (its injected clock),
 * as the store contract requires; scripts never read Redis `TIME`. Each key's
 * TTL is the time left until the session can no longer be used, `deadline - now`,
 * set as a duration, so Redis drops it when it is of no more use; the deadlines
 * themselves are absolute and stored in the record, so an instance cannot stretch
 * a session beyond them, only disagree about "now" by its clock skew.
 */
export class RedisStore implements SessionStore {
  readonly #options: RedisStoreOptions
  readonly #prefix: string
  readonly #timeoutMs: number
  readonly #channel: string
  readonly #userIds = new LRUCache<string, string>({ max: USER_ID_CACHE_MAX })
  readonly #devices = new LRUCache<string, DeviceInfo>({ max: DEVICE_CACHE_MAX })
  readonly #decode = (flat: string[]): SessionRecord => decode(flat, this.#devices)
  readonly #cache: LRUCache<string, SessionRecord> | undefined
  readonly #cacheTtlMs: number
  #client: Redis | Cluster | undefined
  #owned = false
  /** The client's own `keyPrefix`: ioredis adds it to declared keys, the scripts add it to the keys they build. */
  #keyPrefix = ''
  #context: StoreContext = { now: Date.now, onRemoved: noop }
  #subscriber: Redis | undefined
  #resubscribeTimer: NodeJS.Timeout | undefined
  #resubscribes = 0
  /** The cache may answer only while the subscriber is subscribed. */
  #cacheLive = false
  /** Bumped on every invalidation: a read that saw it change does not fill the cache. */
  #epoch = 0
  #expirations = 0

  constructor (options: RedisStoreOptions) {
    const { client, connection, cluster, prefix = DEFAULT_PREFIX, commandTimeoutMs = DEFAULT_COMMAND_TIMEOUT_MS, localCache = false } = options
    const sources = [client, connection, cluster].filter((source) => source !== undefined).length
    if (sources !== 1) {
      throw new TypeError('redisStore: give exactly one of "client", "connection" or "cluster"')
    }
    if (typeof prefix !== 'string' || /[{}]/.test(prefix)) {
      throw new TypeError(`redisStore: "prefix" must be a string without "{" or "}", got ${String(prefix)}`)
    }
    if (!Number.isFinite(commandTimeoutMs) || commandTimeoutMs <= 0) {
      throw new TypeError(`redisStore: "commandTimeoutMs" must be a positive number, got ${String(commandTimeoutMs)}`)
    }
    const { max = DEFAULT_CACHE_MAX, ttlMs = DEFAULT_CACHE_TTL_MS } = typeof localCache === 'object' ? localCache : {}
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new TypeError(`redisStore: "localCache.max" must be a positive integer, got ${String(max)}`)
    }
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
      throw new TypeError(`redisStore: "localCache.ttlMs" must be a positive number, got ${String(ttlMs)}`)
    }
    this.#options = options
    this.#prefix = prefix
    this.#timeoutMs = commandTimeoutMs
    this.#channel = `${prefix}invalidate`
    this.#cacheTtlMs = ttlMs
    this.#cache = localCache === false
      ? undefined
      : new LRUCache<string, SessionRecord>({ max, perf: { now: () => this.#context.now() }, ttlResolution: 0 })
  }

  /** The client the store talks to (created by `open()` unless the app gave one). */
  get client (): Redis | Cluster | undefined {
    return this.#client
  }

  async open (context: StoreContext): Promise<void> {
    this.#context = context
    if (this.#client !== undefined) return
    const { client, connection, cluster } = this.#options
    let target: Redis | Cluster
    if (client !== undefined) {
      target = client
    } else {
      this.#owned = true
      const defaults = failFast(this.#timeoutMs)
      if (cluster !== undefined) {
        target = new Cluster(cluster.nodes, {
          enableOfflineQueue: false,
          ...cluster.options,
          redisOptions: { ...defaults, ...cluster.options?.redisOptions }
        })
      } else {
        target = typeof connection === 'string' ? new Redis(connection, defaults) : new Redis({ ...defaults, ...connection })
      }
      // Failures surface on the calls that fail; the event only repeats them.
      target.on('error', noop)
    }
    for (const [name, definition] of Object.entries(COMMANDS)) target.defineCommand(name, definition)
    this.#keyPrefix = target.options.keyPrefix ?? ''
    this.#client = target
    if (this.#cache !== undefined) this.#subscribe()
    // Without an offline queue, the first requests would fail while the
    // connection opens: wait for it, but not forever (then calls fail fast until it comes).
    if (this.#owned) await this.#ready(target)
  }

  async create (session: SessionRecord, limit: SessionLimit, now: number): Promise<CreateResult> {
    checkId(session.id)
    const { userId } = session
    await this.#writeLookup(session, now)
    const reply = await this.#script('sessionGuardCreate', [this.#indexKey(userId), this.#sessionKey(userId, session.id)], [
      now, limit.max, limit.onLimit, this.#scriptBase(userId), this.#channel, session.id, ...encode(session)
    ])
    const others = byActivity(reply[3].map(this.#decode))
    if (reply[0] === 'full') {
      await this.#settle(userId, now, reply, { orphans: [session.id] })
      return { created: false, active: others }
    }
    await this.#settle(userId, now, reply, { live: [session], gone: others })
    return { created: true, evicted: others }
  }

  async get (id: string, now: number): Promise<SessionRecord | undefined> {
    const cache = this.#cacheLive ? this.#cache : undefined
    const hit = cache?.get(id)
    if (hit !== undefined && isLive(hit, now)) return hit
    const epoch = this.#epoch
    const userId = await this.#userOf(id)
    if (userId === undefined) return undefined
    const reply = await this.#script('sessionGuardGet', [this.#indexKey(userId), this.#sessionKey(userId, id)], [now, id])
    await this.#settle(userId, now, reply, {})
    if (reply[0] !== 'live') return undefined
    const session = this.#decode(reply[2])
    // Only if nothing was invalidated meanwhile: the read may predate a revoke.
    if (cache !== undefined && this.#cacheLive && this.#epoch === epoch) {
      cache.set(id, session, { ttl: Math.min(this.#cacheTtlMs, expiresAt(session) - now) })
    }
    return session
  }

  async touch (id: string, activity: Activity, now: number): Promise<SessionRecord | undefined> {
    const userId = await this.#userOf(id)
    if (userId === undefined) return undefined
    const reply = await this.#script('sessionGuardTouch', [this.#indexKey(userId), this.#sessionKey(userId, id)], [
      now, id, this.#channel, ...encodeActivity(activity)
    ])
    if (reply[0] !== 'live') {
      await this.#settle(userId, now, reply, {})
      return undefined
    }
    const session = this.#decode(reply[2])
    await this.#settle(userId, now, reply, { live: [session] })
    return session
  }

  async rotate (id: string, rotation: Rotation, now: number): Promise<RotationResult> {
    const userId = await this.#userOf(id)
    if (userId === undefined) return { outcome: 'missing' }
    const reply = await this.#script('sessionGuardRotate', [this.#indexKey(userId), this.#sessionKey(userId, id)], [
      now, id, this.#channel, rotation.presentedHash, rotation.successorHash, rotation.graceMs,
      ...encodeActivity(rotation.activity)
    ])
    switch (reply[0]) {
      case 'rotated': {
        // The script wrote the refresh fields: the record has them.
        const session = this.#decode(reply[2]) as RotatedSession
        await this.#settle(userId, now, reply, { live: [session] })
        return { outcome: 'rotated', session }
      }
      case 'reuse': {
        const session = this.#decode(reply[2])
        await this.#settle(userId, now, reply, { gone: [session] })
        return { outcome: 'reuse', session }
      }
      case 'conflict':
        return { outcome: 'conflict' }
      default:
        await this.#settle(userId, now, reply, {})
        return { outcome: 'missing' }
    }
  }

  async replace (oldId: string, session: SessionRecord, now: number): Promise<boolean> {
    checkId(session.id)
    // The same user's session: looked for among that user's sessions only.
    const { userId } = session
    await this.#writeLookup(session, now)
    const reply = await this.#script('sessionGuardReplace', [
      this.#indexKey(userId), this.#sessionKey(userId, oldId), this.#sessionKey(userId, session.id)
    ], [now, oldId, this.#channel, session.id, ...encode(session)])
    if (reply[0] !== 'replaced') {
      await this.#settle(userId, now, reply, { orphans: [session.id] })
      return false
    }
    await this.#settle(userId, now, reply, { live: [session], gone: [this.#decode(reply[2])] })
    return true
  }

  async revoke (id: string, now: number): Promise<SessionRecord | undefined> {
    const userId = await this.#userOf(id)
    if (userId === undefined) return undefined
    const reply = await this.#script('sessionGuardRevoke', [this.#indexKey(userId), this.#sessionKey(userId, id)], [now, id, this.#channel])
    if (reply[0] !== 'revoked') {
      await this.#settle(userId, now, reply, {})
      return undefined
    }
    const session = this.#decode(reply[2])
    await this.#settle(userId, now, reply, { gone: [session] })
    return session
  }

  async revokeUser (userId: string, exceptId: string | undefined, now: number): Promise<SessionRecord[]> {
    const reply = await this.#script('sessionGuardRevokeUser', [this.#indexKey(userId)], [
      now, this.#scriptBase(userId), this.#channel, exceptId ?? ''
    ])
    const revoked = byActivity(reply[3].map(this.#decode))
    await this.#settle(userId, now, reply, { gone: revoked })
    return revoked
  }

  async listUser (userId: string, now: number): Promise<SessionRecord[]> {
    const reply = await this.#script('sessionGuardListUser', [this.#indexKey(userId)], [now, this.#scriptBase(userId)])
    await this.#settle(userId, now, reply, {})
    return byActivity(reply[3].map(this.#decode))
  }

  /**
   * Every live session, batch by batch: `SCAN` (never `KEYS`) over the session
   * keys of this prefix, on every master of a Cluster, `COUNT batchSize` per
   * step, then one `HGETALL` per key found; sessions past a deadline are left
   * out. Like any `SCAN`, a session that exists for the whole scan appears at
   * least once; one created or removed meanwhile may or may not. A Cluster
   * resharding during the scan may show a session twice or miss it.
   */
  async * scan (batchSize: number, now: number): AsyncIterable<SessionRecord[]> {
    const count = Math.max(1, Math.floor(batchSize))
    const pattern = `${globEscape(this.#keyPrefix + this.#prefix)}{u:*}:s:*`
    const client = this.#redis
    const nodes = client.isCluster ? (client as Cluster).nodes('master') : [client as Redis]
    let batch: SessionRecord[] = []
    for (const node of nodes) {
      let cursor = '0'
      do {
        const [next, keys] = await this.#run(node.scan(cursor, 'MATCH', pattern, 'COUNT', count, 'TYPE', 'hash'))
        cursor = next
        batch.push(...await this.#fetch(keys, now))
        if (batch.length >= count) {
          yield batch
          batch = []
        }
      } while (cursor !== '0')
    }
    if (batch.length > 0) yield batch
  }

  async increment (key: string, windowMs: number, now: number): Promise<Counter> {
    const reply = await this.#run(this.#call('sessionGuardIncrement', [this.#counterKey(key)], [
      now, now + windowMs, ttl(now + windowMs, now)
    ])) as [string, string, string]
    return { count: Number(reply[0]), firstAt: Number(reply[1]), lastAt: Number(reply[2]) }
  }

  async counter (key: string, now: number): Promise<Counter | undefined> {
    const [count, firstAt, lastAt, ends] = await this.#run(this.#redis.hmget(this.#counterKey(key), 'n', 'f', 'l', 'e'))
    if (count === null || ends === null || now >= Number(ends)) return undefined
    return { count: Number(count), firstAt: Number(firstAt), lastAt: Number(lastAt) }
  }

  async resetCounter (key: string): Promise<void> {
    await this.#run(this.#redis.unlink(this.#counterKey(key)))
  }

  async decrement (key: string, now: number): Promise<void> {
    await this.#run(this.#call('sessionGuardDecrement', [this.#counterKey(key)], [now]))
  }

  /**
   * `sessions`: sessions whose deadline has not passed, as counted by the
   * store's bookkeeping (a sorted set by deadline, pruned as time passes: a
   * `ZCARD`, never a scan). `users`: users with such a session. Both are
   * shared by every instance and kept exact when follow-ups from two
   * processes cross. `sessionsPerUser`: each user counted at the size of their
   * index after the last write to it (create, revoke, limit eviction, a read
   * that removed an expired session), and dropped when their latest deadline
   * passes; a session that expires unseen while others of its user live on
   * still counts until a create, list or revoke-all of that user prunes it (as
   * in the memory store, until its purge). `evictions`: always 0, the Redis store has no capacity of
   * its own (configure Redis with `maxmemory-policy noeviction`).
   * `expirations`: sessions this instance found past a deadline and removed,
   * since it opened (Redis drops the rest by TTL, silently).
   */
  async stats (now: number): Promise<StoreStats> {
    const [sessions, users, flat] = await this.#run(this.#call('sessionGuardStats', this.#statsKeys(), [now])) as [number, number, string[]]
    const sessionsPerUser: Record<number, number> = {}
    const sizes: Array<[number, number]> = []
    for (let j = 0; j < flat.length; j += 2) sizes.push([Number(flat[j]), Number(flat[j + 1])])
    for (const [size, count] of sizes.sort((a, b) => a[0] - b[0])) sessionsPerUser[size] = count
    return { sessions, users, evictions: 0, expirations: this.#expirations, sessionsPerUser }
  }

  async close (): Promise<void> {
    clearTimeout(this.#resubscribeTimer)
    this.#subscriber?.disconnect()
    this.#subscriber = undefined
    this.#dropCache()
    const client = this.#client
    if (client === undefined || !(this.#owned || this.#options.closeClient === true)) return
    try {
      await this.#run(client.quit())
    } catch {
      // Not connected (or not answering): nothing to say goodbye to.
      client.disconnect()
    }
  }

  get #redis (): Redis | Cluster {
    if (this.#client === undefined) throw new Error('redisStore: open() was not called')
    return this.#client
  }

  #indexKey (userId: string): string { return `${this.#prefix}{u:${userId}}:i` }
  #sessionBase (userId: string): string { return `${this.#prefix}{u:${userId}}:s:` }
  /** The session key base as a script sees it, to build the keys of a user's sessions itself. */
  #scriptBase (userId: string): string { return this.#keyPrefix + this.#sessionBase(userId) }
  #sessionKey (userId: string, id: string): string { return this.#sessionBase(userId) + id }
  #lookupKey (id: string): string { return `${this.#prefix}id:{${id}}` }
  #statsKey (name: string): string { return `${this.#prefix}{stats}:${name}` }
  #statsKeys (): string[] { return ['sessions', 'users', 'removed', 'sizes', 'sized', 'hist'].map((name) => this.#statsKey(name)) }
  #counterKey (key: string): string { return `${this.#prefix}c:${key}` }

  /** The live sessions under `keys` (as SCAN names them: with the client's own keyPrefix). */
  async #fetch (keys: string[], now: number): Promise<SessionRecord[]> {
    const held = await Promise.all(keys.map(async (key) => {
      // The pattern starts with the keyPrefix: the client adds it back.
      return await this.#run(this.#redis.hgetall(key.slice(this.#keyPrefix.length)))
    }))
    const live: SessionRecord[] = []
    for (const fields of held) {
      // Gone since the SCAN saw it, or not a session of ours (a user id holding ':s:' cannot fake one: no 'd').
      if (fields.d === undefined) continue
      const session = this.#decode(Object.entries(fields).flat())
      if (isLive(session, now)) live.push(session)
    }
    return live
  }

  /** Before the session itself: a lookup without a session is harmless, a session nobody can find is not. */
  async #writeLookup (session: SessionRecord, now: number): Promise<void> {
    await this.#run(this.#redis.set(this.#lookupKey(session.id), session.userId, 'PX', ttl(session.absoluteExpiresAt, now)))
    this.#userIds.set(session.id, session.userId)
  }

  async #userOf (id: string): Promise<string | undefined> {
    const known = this.#userIds.get(id)
    if (known !== undefined) return known
    const userId = await this.#run(this.#redis.get(this.#lookupKey(id)))
    if (userId === null) return undefined
    this.#userIds.set(id, userId)
    return userId
  }

  async #script (name: CommandName, keys: string[], args: Arg[]): Promise<Reply> {
    return await this.#run(this.#call(name, keys, args)) as Reply
  }

  async #call (name: CommandName, keys: string[], args: Arg[]): Promise<unknown> {
    // defineCommand adds the method at run time; its type cannot follow.
    const command = (this.#redis as unknown as Record<CommandName, (...args: Arg[]) => Promise<unknown>>)[name]
    return await command.call(this.#redis, ...keys, ...args)
  }

  /** Bounds every call, on any client: a store that hangs would hang the request. */
  async #run<T> (command: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`redisStore: Redis did not answer within ${this.#timeoutMs} ms`)), this.#timeoutMs)
    })
    try {
      // A late rejection of `command` is handled by race(): never unhandled.
      return await Promise.race([command, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * After a script: reports the expired sessions it removed, drops local cache
   * entries and lookup keys of removed sessions, and keeps the stats current.
   * The bookkeeping is best-effort: the script already did the work that
   * matters, and what is left behind expires by its own TTL.
   */
  async #settle (userId: string, now: number, reply: Reply, changes: Changes): Promise<void> {
    const { live = [], orphans = [] } = changes
    const gone = [...changes.gone ?? []]
    for (const session of reply[4].map(this.#decode)) {
      this.#expirations++
      this.#context.onRemoved(session, 'expired')
      gone.push(session)
    }
    const ops: Arg[] = []
    for (const session of live) ops.push('add', session.id, expiresAt(session))
    for (const session of gone) ops.push('del', session.id, expiresAt(session))
    this.#forgetLocal([...live, ...gone].map((session) => session.id))
    const housekeeping = [...gone.map((session) => session.id), ...orphans]
      .map(async (id) => await this.#run(this.#redis.unlink(this.#lookupKey(id))))
    const [deadline, size, version, changed] = reply[1]
    if (ops.length > 0 || changed === '1') {
      housekeeping.push(this.#run(this.#call('sessionGuardAccount', this.#statsKeys(), [
        now, userId, deadline, size, version, ...ops
      ])) as Promise<number>)
    }
    await Promise.allSettled(housekeeping)
  }

  #forgetLocal (ids: string[]): void {
    if (ids.length === 0) return
    this.#epoch++
    for (const id of ids) this.#cache?.delete(id)
  }

  /** Empties the cache; reads in flight will not fill it. */
  #clearCache (): void {
    this.#epoch++
    this.#cache?.clear()
  }

  /** Empties the cache and stops its use until the subscriber listens again. */
  #dropCache (): void {
    this.#cacheLive = false
    this.#clearCache()
  }

  /**
   * Opens the invalidation subscriber. Any disconnect empties the cache and
   * stops its use, then a new connection subscribes again: messages sent
   * while it was away are lost, so nothing cached before may be trusted.
   */
  #subscribe (): void {
    const client = this.#redis
    const options: RedisOptions = {
      lazyConnect: false,
      enableOfflineQueue: false,
      autoResubscribe: false,
      // Named after the prefix, so an operator can tell whose subscriber it is.
      connectionName: `${SUBSCRIBER_NAME}:${this.#prefix.replace(/[^\w:.-]/g, '_')}`,
      // One connection per attempt: the store reconnects it itself (below).
      retryStrategy: () => null
    }
    let subscriber: Redis | undefined
    if (client.isCluster) {
      // PUBLISH reaches every node of a Cluster: any one will do.
      const nodes = (client as Cluster).nodes('all')
      const node = nodes[this.#resubscribes % Math.max(1, nodes.length)]
      subscriber = node === undefined ? undefined : new Redis({ ...node.options, ...options })
    } else {
      subscriber = (client as Redis).duplicate(options)
    }
    if (subscriber === undefined) return this.#resubscribeLater()
    const sub = subscriber
    this.#subscriber = sub
    sub.on('error', noop)
    sub.on('message', (channel: string, message: string) => this.#invalidate(message))
    sub.on('close', () => this.#dropCache())
    sub.once('end', () => {
      if (this.#subscriber === sub) this.#resubscribeLater()
    })
    sub.once('ready', () => {
      // A subscriber that closes (or a store that closes it) first rejects the
      // pending SUBSCRIBE, so reaching here means this one is listening.
      sub.subscribe(this.#channel).then(() => {
        this.#clearCache()
        this.#cacheLive = true
        this.#resubscribes = 0
      }, noop)
    })
  }

  #resubscribeLater (): void {
    this.#subscriber = undefined
    const delay = Math.min(50 * 2 ** this.#resubscribes++, MAX_RECONNECT_DELAY_MS)
    this.#resubscribeTimer = setTimeout(() => this.#subscribe(), delay).unref()
  }

  #invalidate (message: string): void {
    let ids: unknown
    try {
      ids = JSON.parse(message)
    } catch {}
    // Not ours to read: forget everything rather than guess.
    if (!Array.isArray(ids)) return this.#clearCache()
    this.#forgetLocal(ids.map(String))
  }

  async #ready (client: Redis | Cluster): Promise<void> {
    let done = noop
    const timer = setTimeout(() => done(), this.#timeoutMs)
    await new Promise<void>((resolve) => {
      done = resolve
      client.once('ready', resolve)
    })
    clearTimeout(timer)
    client.off('ready', done)
  }
}

/** Creates a Redis store: `store: redisStore({ client })` in the plugin's options. */
export function redisStore (options: RedisStoreOptions): RedisStore {
  return new RedisStore(options)
}

function noop (): void {}

function checkId (id: string): void {
  if (!SESSION_ID.test(id)) {
    throw new TypeError('redisStore: a session id must be 1 to 128 base64url characters')
  }
}

/** Milliseconds from `now` to `deadline`, at least 1 (0 or less would mean "no TTL" or an error). */
function ttl (deadline: number, now: number): number {
  return Math.max(1, Math.ceil(deadline - now))
}

function byActivity (sessions: SessionRecord[]): SessionRecord[] {
  return sessions.sort((a, b) => b.lastSeenAt - a.lastSeenAt)
}

/** A record as hash fields (see `redis-scripts.ts`); the id comes first, as the scripts expect. */
function encode (session: SessionRecord): string[] {
  const fields = [
    'd', session.id,
    'u', session.userId,
    'f', session.fingerprintHash,
    'c', String(session.createdAt),
    'l', String(session.lastSeenAt),
    'i', String(session.idleExpiresAt),
    'a', String(session.absoluteExpiresAt),
    'r', session.remembered ? '1' : '0'
  ]
  if (session.claims !== undefined) fields.push('m', JSON.stringify(session.claims))
  const { refresh } = session
  if (refresh !== undefined) {
    fields.push('h', refresh.hash, 't', String(refresh.rotatedAt), 'k', String(refresh.rotations))
    if (refresh.nextHash !== undefined) fields.push('n', refresh.nextHash)
  }
  for (const [name, field] of CLIENT_FIELDS) {
    const value = session[name]
    if (value !== undefined) fields.push(field, encodeClient(name, value))
  }
  return fields
}

/** The client fields of a record and their hash fields (see `redis-scripts.ts`). */
const CLIENT_FIELDS = [['device', 'v'], ['ip', 'p'], ['userAgent', 'g'], ['location', 'o'], ['flags', 'x']] as const

function encodeClient (name: keyof SessionChanges, value: NonNullable<SessionChanges[keyof SessionChanges]>): string {
  return name === 'ip' || name === 'userAgent' ? value as string : JSON.stringify(value)
}

/**
 * Activity as the touch and rotate scripts take it: the count of fields to
 * delete, those fields, then field/value pairs, the times first. A change to
 * `undefined` removes the field, as `withActivity()` does.
 */
function encodeActivity (activity: Activity): Arg[] {
  const removed: string[] = []
  const set: string[] = ['l', String(activity.lastSeenAt), 'i', String(activity.idleExpiresAt)]
  const { changes } = activity
  if (changes !== undefined) {
    for (const [name, field] of CLIENT_FIELDS) {
      if (!(name in changes)) continue
      const value = changes[name]
      if (value === undefined) removed.push(field)
      else set.push(field, encodeClient(name, value))
    }
  }
  return [removed.length, ...removed, ...set]
}

/** A device read back, as the one frozen object shared by every session of that device (like `parseDevice`). */
function internDevice (json: string, devices: LRUCache<string, DeviceInfo>): DeviceInfo {
  const known = devices.get(json)
  if (known !== undefined) return known
  const held = JSON.parse(json) as DeviceInfo
  // Every field present, as DeviceInfo promises, even those JSON left out for being undefined.
  const device: DeviceInfo = Object.freeze({
    type: held.type,
    name: held.name,
    browser: Object.freeze({ name: held.browser.name, version: held.browser.version }),
    os: Object.freeze({ name: held.os.name, version: held.os.version }),
    model: held.model
  })
  devices.set(json, device)
  return device
}

/** A glob pattern matching `text` literally (for SCAN MATCH). */
function globEscape (text: string): string {
  return text.replace(/[\\*?[\]]/g, '\\$&')
}

function decode (flat: string[], devices: LRUCache<string, DeviceInfo>): SessionRecord {
  const map = new Map<string, string>()
  for (let j = 0; j < flat.length; j += 2) map.set(flat[j] as string, flat[j + 1] as string)
  const field = (name: string): string => map.get(name) as string
  const claims = map.get('m')
  const hash = map.get('h')
  const nextHash = map.get('n')
  const device = map.get('v')
  const ip = map.get('p')
  const userAgent = map.get('g')
  const location = map.get('o')
  const flags = map.get('x')
  return {
    id: field('d'),
    userId: field('u'),
    fingerprintHash: field('f'),
    createdAt: Number(field('c')),
    lastSeenAt: Number(field('l')),
    idleExpiresAt: Number(field('i')),
    absoluteExpiresAt: Number(field('a')),
    remembered: field('r') === '1',
    ...(claims === undefined ? {} : { claims: JSON.parse(claims) as Record<string, unknown> }),
    ...(hash === undefined
      ? {}
      : {
          refresh: {
            hash,
            ...(nextHash === undefined ? {} : { nextHash }),
            rotatedAt: Number(field('t')),
            rotations: Number(field('k'))
          }
        }),
    ...(device === undefined ? {} : { device: internDevice(device, devices) }),
    ...(ip === undefined ? {} : { ip }),
    ...(userAgent === undefined ? {} : { userAgent }),
    ...(location === undefined ? {} : { location: JSON.parse(location) as Location }),
    ...(flags === undefined ? {} : { flags: JSON.parse(flags) as string[] })
  }
}
