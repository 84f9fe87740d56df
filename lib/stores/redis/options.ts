import type { ClusterNode, ClusterOptions, RedisOptions } from 'ioredis'
import { InvalidOptionError } from '../../errors.js'
import { bool, section, shown, type OptionNames } from '../../validate.js'
import type { RedisClient } from './client.js'

export interface RedisStoreOptions {
  /**
   * A client or Cluster the app owns: `ioredis` 5 or 6, `iovalkey`, or any
   * client of the same shape (`RedisClient`). The store never closes it
   * unless `closeClient` is true. Give this, `connection` or `cluster`.
   */
  client?: RedisClient
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
  /**
   * Shards of the bookkeeping behind `stats()`: each user's follow-ups go to
   * one, and `stats()` reads them all. On a Cluster the shards' hash tags are
   * spread evenly over the slots, so the masters share these writes; give at
   * least three shards per master. From 1 to 256.
   * @default 32
   */
  statsShards?: number
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
  statsShards: number
}

const DEFAULT_PREFIX = 'sg:'
const DEFAULT_COMMAND_TIMEOUT_MS = 1000
const DEFAULT_CACHE_MAX = 10_000
const DEFAULT_CACHE_TTL_MS = 5000
const DEFAULT_DURABILITY_TIMEOUT_MS = 50
const DEFAULT_STATS_SHARDS = 32
const MAX_STATS_SHARDS = 256
const DURABILITY_NAMES: OptionNames<DurabilityOptions> = { replicas: true, timeoutMs: true }

/** Errors name an option by its path under the factory: `redisStore.localCache.max`. */
const PATH = 'redisStore'
const OPTION_NAMES: OptionNames<RedisStoreOptions> = {
  client: true, closeClient: true, connection: true, cluster: true, prefix: true, commandTimeoutMs: true, localCache: true, durability: true, statsShards: true
}
const CLUSTER_OPTION_NAMES: OptionNames<NonNullable<RedisStoreOptions['cluster']>> = { nodes: true, options: true }
const LOCAL_CACHE_OPTION_NAMES: OptionNames<LocalCacheOptions> = { max: true, ttlMs: true }

/** A URL of a scheme ioredis connects with, a Unix socket's path, or an options object. */
function isConnection (connection: unknown): boolean {
  if (typeof connection === 'object') return connection !== null
  if (typeof connection !== 'string') return false
  if (connection.startsWith('/')) return true
  return URL.canParse(connection) && ['redis:', 'rediss:'].includes(new URL(connection).protocol)
}

/**
 * Checks the options when the store is made, as the plugin checks its own: a
 * misspelt or bad option fails at startup with `FST_SESSION_GUARD_INVALID_OPTION`, naming it.
 */
export function settingsOf (options: RedisStoreOptions): Settings {
  const { client, connection, cluster, prefix = DEFAULT_PREFIX, commandTimeoutMs = DEFAULT_COMMAND_TIMEOUT_MS, localCache = false, durability, statsShards = DEFAULT_STATS_SHARDS } = section(options, OPTION_NAMES, PATH)
  const sources = [client, connection, cluster].filter((source) => source !== undefined).length
  if (sources !== 1) {
    throw new InvalidOptionError(PATH, 'give exactly one of "client", "connection" or "cluster"')
  }
  if (cluster !== undefined) section(cluster, CLUSTER_OPTION_NAMES, `${PATH}.cluster`)
  if (connection !== undefined && !isConnection(connection)) {
    // Not shown: a URL may hold a password.
    throw new InvalidOptionError(`${PATH}.connection`, 'must be a redis:// or rediss:// URL, a Unix socket path, or ioredis options')
  }
  if (typeof prefix !== 'string' || /[{}]/.test(prefix)) {
    throw new InvalidOptionError(`${PATH}.prefix`, `must be a string without "{" or "}", got ${shown(prefix)}`)
  }
  if (!Number.isFinite(commandTimeoutMs) || commandTimeoutMs <= 0) {
    throw new InvalidOptionError(`${PATH}.commandTimeoutMs`, `must be a positive number, got ${shown(commandTimeoutMs)}`)
  }
  if (options.closeClient !== undefined) bool(options.closeClient, `${PATH}.closeClient`)
  if (typeof localCache !== 'boolean' && typeof localCache !== 'object') {
    throw new InvalidOptionError(`${PATH}.localCache`, 'must be a boolean or { max, ttlMs }')
  }
  const cache = typeof localCache === 'object' ? section(localCache, LOCAL_CACHE_OPTION_NAMES, `${PATH}.localCache`) : {}
  const { max = DEFAULT_CACHE_MAX, ttlMs = DEFAULT_CACHE_TTL_MS } = cache
  if (!Number.isSafeInteger(max) || max < 1) {
    throw new InvalidOptionError(`${PATH}.localCache.max`, `must be a positive integer, got ${shown(max)}`)
  }
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new InvalidOptionError(`${PATH}.localCache.ttlMs`, `must be a positive number, got ${shown(ttlMs)}`)
  }
  if (!Number.isSafeInteger(statsShards) || statsShards < 1 || statsShards > MAX_STATS_SHARDS) {
    throw new InvalidOptionError(`${PATH}.statsShards`, `must be a whole number from 1 to ${MAX_STATS_SHARDS}, got ${shown(statsShards)}`)
  }
  return {
    prefix,
    commandTimeoutMs,
    statsShards,
    localCache: localCache === false ? undefined : { max, ttlMs },
    durability: durability === undefined ? undefined : durabilityOf(durability, commandTimeoutMs, cluster !== undefined)
  }
}

function durabilityOf (durability: DurabilityOptions, commandTimeoutMs: number, cluster: boolean): Required<DurabilityOptions> {
  const path = `${PATH}.durability`
  const { replicas, timeoutMs = DEFAULT_DURABILITY_TIMEOUT_MS } = section(durability, DURABILITY_NAMES, path)
  if (!Number.isSafeInteger(replicas) || replicas < 1) {
    throw new InvalidOptionError(`${path}.replicas`, `must be a positive integer, got ${shown(replicas)}`)
  }
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs >= commandTimeoutMs) {
    throw new InvalidOptionError(`${path}.timeoutMs`, `must be a whole number of ms from 1 to below "commandTimeoutMs" (${commandTimeoutMs}), got ${shown(timeoutMs)}`)
  }
  if (cluster) throw new InvalidOptionError(path, 'is not available on a Cluster (WAIT must reach the node that took the write)')
  return { replicas, timeoutMs }
}
