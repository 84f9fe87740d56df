import type { Pool, PoolConfig } from 'pg'
import { InvalidOptionError } from '../../errors.js'
import { bool, section, shown, type OptionNames } from '../../validate.js'

export interface PostgresStoreOptions {
  /**
   * A `pg` Pool the app owns. The store never ends it. Give this or `connection`.
   */
  pool?: Pool
  /**
   * A connection string (`postgres://user@host/db`) or `pg` Pool options: the
   * store creates the pool, with fail-fast defaults (a connection timeout, a
   * query and statement timeout of `queryTimeoutMs`), and ends it in `close()`.
   */
  connection?: string | PoolConfig
  /**
   * The schema that holds the store's tables (a lower-case SQL identifier).
   * The notification channel is named after it.
   * @default 'session_guard'
   */
  schema?: string
  /**
   * Runs `migrate()` when the plugin opens the store, creating the schema and
   * its tables or bringing them up to date. Leave it off to run the migrations
   * yourself (`migrate()`, or the SQL files through your own tool).
   * @default false
   */
  migrate?: boolean
  /**
   * A store call that gets no answer within this many ms fails (and the plugin
   * answers 503). Applies to every call, on pools the store owns or not. Logins
   * of one user queue behind each other (a per-user lock keeps the limit exact):
   * a login that waits longer fails too.
   * @default 1000
   */
  queryTimeoutMs?: number
  /**
   * An in-process cache of live sessions in front of PostgreSQL, so most
   * guarded requests cost no round trip. Every revoke, rotation, regeneration
   * and touch sends a notification (`pg_notify`) in the statement that makes
   * it, which drops the entry on every instance; while the listening
   * connection is down the cache is emptied and not used, because
   * notifications sent meanwhile are lost. `true` for the defaults.
   * @default false
   */
  localCache?: boolean | PostgresLocalCacheOptions
  /**
   * Removal of expired rows in the background: every `intervalMs` (by a timer,
   * `unref()`ed, stopped by `close()`), in batches of `batchSize` rows, each a
   * short statement that skips rows another instance holds locked.
   */
  purge?: PurgeOptions
}

export interface PostgresLocalCacheOptions {
  /**
   * Most sessions cached.
   * @default 10_000
   */
  max?: number
  /**
   * Longest time (by the plugin's clock) an entry is served without asking
   * PostgreSQL: bounds staleness should a notification be lost without the
   * listener noticing (a network partition that sends no reset).
   * @default 5000
   */
  ttlMs?: number
}

export interface PurgeOptions {
  /**
   * How often expired sessions and counters are deleted; `0` turns the job off.
   * @default 60_000
   */
  intervalMs?: number
  /**
   * Most rows one purge statement deletes.
   * @default 500
   */
  batchSize?: number
}

/** The options once checked, with their defaults. */
export interface Settings {
  schema: string
  migrate: boolean
  queryTimeoutMs: number
  /** `undefined` without a local cache. */
  localCache: Required<PostgresLocalCacheOptions> | undefined
  purge: Required<PurgeOptions>
}

const SCHEMA = /^[a-z_][a-z0-9_]{0,47}$/
const DEFAULT_SCHEMA = 'session_guard'
const DEFAULT_QUERY_TIMEOUT_MS = 1000
const DEFAULT_CACHE_MAX = 10_000
const DEFAULT_CACHE_TTL_MS = 5000
const DEFAULT_PURGE_INTERVAL_MS = 60_000
const DEFAULT_PURGE_BATCH = 500

/** Errors name an option by its path under the factory: `postgresStore.localCache.max`. */
const PATH = 'postgresStore'
const OPTION_NAMES: OptionNames<PostgresStoreOptions> = {
  pool: true, connection: true, schema: true, migrate: true, queryTimeoutMs: true, localCache: true, purge: true
}
const LOCAL_CACHE_OPTION_NAMES: OptionNames<PostgresLocalCacheOptions> = { max: true, ttlMs: true }
const PURGE_OPTION_NAMES: OptionNames<PurgeOptions> = { intervalMs: true, batchSize: true }

/** A schema name checked to be a plain identifier, as `migrate()` and the store take it. */
export function checkSchema (schema: unknown, path = `${PATH}.schema`): string {
  if (typeof schema !== 'string' || !SCHEMA.test(schema)) {
    throw new InvalidOptionError(path, `must be a lower-case SQL identifier (letters, digits, _), got ${shown(schema)}`)
  }
  return schema
}

function positive (name: string, value: number, integer: boolean, zero = false): void {
  const ok = integer ? Number.isSafeInteger(value) : Number.isFinite(value)
  if (!ok || value < 0 || (value === 0 && !zero)) {
    throw new InvalidOptionError(`${PATH}.${name}`, `must be a ${zero ? 'non-negative' : 'positive'} ${integer ? 'integer' : 'number'}, got ${shown(value)}`)
  }
}

/**
 * Checks the options when the store is made, as the plugin checks its own: a
 * misspelt or bad option fails at startup with `FST_SESSION_GUARD_INVALID_OPTION`, naming it.
 */
export function settingsOf (options: PostgresStoreOptions): Settings {
  const { pool, connection, schema = DEFAULT_SCHEMA, migrate = false, queryTimeoutMs = DEFAULT_QUERY_TIMEOUT_MS, localCache = false, purge } = section(options, OPTION_NAMES, PATH)
  if ((pool === undefined) === (connection === undefined)) {
    throw new InvalidOptionError(PATH, 'give exactly one of "pool" or "connection"')
  }
  checkSchema(schema)
  bool(migrate, `${PATH}.migrate`)
  positive('queryTimeoutMs', queryTimeoutMs, false)
  if (typeof localCache !== 'boolean' && typeof localCache !== 'object') {
    throw new InvalidOptionError(`${PATH}.localCache`, 'must be a boolean or { max, ttlMs }')
  }
  const { max = DEFAULT_CACHE_MAX, ttlMs = DEFAULT_CACHE_TTL_MS } = typeof localCache === 'object' ? section(localCache, LOCAL_CACHE_OPTION_NAMES, `${PATH}.localCache`) : {}
  positive('localCache.max', max, true)
  positive('localCache.ttlMs', ttlMs, false)
  const { intervalMs = DEFAULT_PURGE_INTERVAL_MS, batchSize = DEFAULT_PURGE_BATCH } = section(purge, PURGE_OPTION_NAMES, `${PATH}.purge`)
  positive('purge.intervalMs', intervalMs, false, true)
  positive('purge.batchSize', batchSize, true)
  return {
    schema,
    migrate,
    queryTimeoutMs,
    localCache: localCache === false ? undefined : { max, ttlMs },
    purge: { intervalMs, batchSize }
  }
}
