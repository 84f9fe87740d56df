import type { Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from 'ioredis'

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
  /**
   * Waits for replicas after each write a failover must not lose: a revoke, a
   * revoke-all, a rotation (and its theft detection), a regeneration, a login
   * that evicted sessions at the limit. The store sends `WAIT replicas timeoutMs`
   * after it; when fewer replicas acknowledge in time, the call fails (503), so
   * whatever the app was told is done is on `replicas` replicas as well.
   * Standalone or Sentinel (WAIT goes over the connection that wrote), not Cluster.
   * @default undefined (no wait: Redis replicates asynchronously)
   */
  durability?: DurabilityOptions
}

export interface DurabilityOptions {
  /** Replicas that must acknowledge each such write (at least 1). */
  replicas: number
  /**
   * Longest wait for them, in ms; below `commandTimeoutMs`.
   * @default 50
   */
  timeoutMs?: number
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

/** The options once checked, with their defaults. */
export interface Settings {
  prefix: string
  commandTimeoutMs: number
  /** `undefined` without a local cache. */
  localCache: Required<LocalCacheOptions> | undefined
  /** `undefined` without waiting for replicas. */
  durability: Required<DurabilityOptions> | undefined
}

const DEFAULT_PREFIX = 'sg:'
const DEFAULT_COMMAND_TIMEOUT_MS = 1000
const DEFAULT_CACHE_MAX = 10_000
const DEFAULT_CACHE_TTL_MS = 5000
const DEFAULT_DURABILITY_TIMEOUT_MS = 50
const DURABILITY_NAMES = new Set(['replicas', 'timeoutMs'])

/** Checks the options when the store is made, so a mistake fails at startup and names its option. */
export function settingsOf (options: RedisStoreOptions): Settings {
  const { client, connection, cluster, prefix = DEFAULT_PREFIX, commandTimeoutMs = DEFAULT_COMMAND_TIMEOUT_MS, localCache = false, durability } = options
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
  return {
    prefix,
    commandTimeoutMs,
    localCache: localCache === false ? undefined : { max, ttlMs },
    durability: durability === undefined ? undefined : durabilityOf(durability, commandTimeoutMs, cluster !== undefined)
  }
}

function durabilityOf (durability: DurabilityOptions, commandTimeoutMs: number, cluster: boolean): Required<DurabilityOptions> {
  if (typeof durability !== 'object' || durability === null) {
    throw new TypeError('redisStore: "durability" must be an object: { replicas, timeoutMs }')
  }
  for (const name of Object.keys(durability)) {
    if (!DURABILITY_NAMES.has(name)) throw new TypeError(`redisStore: unknown option "durability.${name}"`)
  }
  const { replicas, timeoutMs = DEFAULT_DURABILITY_TIMEOUT_MS } = durability
  if (!Number.isSafeInteger(replicas) || replicas < 1) {
    throw new TypeError(`redisStore: "durability.replicas" must be a positive integer, got ${String(replicas)}`)
  }
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs >= commandTimeoutMs) {
    throw new TypeError(`redisStore: "durability.timeoutMs" must be a whole number of ms from 1 to below "commandTimeoutMs" (${commandTimeoutMs}), got ${String(timeoutMs)}`)
  }
  if (cluster) throw new TypeError('redisStore: "durability" is not available on a Cluster')
  return { replicas, timeoutMs }
}
