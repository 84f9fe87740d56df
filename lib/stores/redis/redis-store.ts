import { InvalidOptionError } from '../../errors.js'
import { isLive, type SessionRecord } from '../../session.js'
import type {
  Activity,
  Counter,
  CreateResult,
  DeviceTypeLimit,
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
} from '../store.js'
import type { RedisClient } from './client.js'
import { sessionDecoder } from './codec.js'
import { SESSION_COMMANDS, SessionCommands } from './commands.js'
import { Connection, noop } from './connection.js'
import * as counters from './counters.js'
import * as history from './history.js'
import { ioredis } from './ioredis.js'
import { checkId, KeyLayout } from './keys.js'
import { LocalCache } from './local-cache.js'
import { UserLookups } from './lookups.js'
import { settingsOf, type DurabilityOptions, type RedisStoreOptions } from './options.js'
import type { ScriptReport } from './replies.js'
import { scanCounters, scanSessions } from './scan.js'
import { STATS_COMMANDS, StatsBook } from './stats.js'

/** Every script the store defines on its client, by command name. */
const COMMANDS = { ...SESSION_COMMANDS, ...STATS_COMMANDS, ...counters.COUNTER_COMMANDS, ...history.HISTORY_COMMANDS }

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
 * The keys of one user share the hash tag `{u:<userId>}`, so every script
 * touches one Cluster slot and runs as one atomic step (the key layout:
 * `keys.ts`). `get(id)` only knows the id, so a small lookup key in the id's
 * own slot names the user; it never changes, so it is cached in-process, and
 * it is written before the session (a lookup without a session is harmless, a
 * session nobody can find is not).
 *
 * Time: every decision uses the `now` the plugin passes (its injected clock),
 * as the store contract requires; scripts never read Redis `TIME`. Each key's
 * TTL is the time left until the session can no longer be used, `deadline - now`,
 * set as a duration, so Redis drops it when it is of no more use; the deadlines
 * themselves are absolute and stored in the record, so an instance cannot stretch
 * a session beyond them, only disagree about "now" by its clock skew.
 */
export class RedisStore implements SessionStore {
  readonly #connection: Connection
  readonly #keys: KeyLayout
  readonly #decode = sessionDecoder()
  readonly #commands: SessionCommands
  readonly #lookups: UserLookups
  readonly #stats: StatsBook
  readonly #cache: LocalCache | undefined
  readonly #durability: Required<DurabilityOptions> | undefined
  #context: StoreContext = { now: Date.now, onRemoved: noop }

  constructor (options: RedisStoreOptions) {
    const { prefix, commandTimeoutMs, localCache, durability, statsShards } = settingsOf(options)
    this.#durability = durability
    const library = options.client === undefined ? ioredis(options.connection === undefined ? 'redisStore.cluster' : 'redisStore.connection') : undefined
    this.#connection = new Connection(options, commandTimeoutMs, library)
    this.#keys = new KeyLayout(prefix, statsShards)
    this.#commands = new SessionCommands(this.#connection, this.#keys, this.#decode)
    this.#lookups = new UserLookups(this.#connection, this.#keys)
    this.#stats = new StatsBook(this.#connection, this.#keys)
    this.#cache = localCache === undefined
      ? undefined
      : new LocalCache({ ...localCache, channel: this.#keys.channel, prefix, now: () => this.#context.now() })
  }

  /** The client the store talks to (created by `open()` unless the app gave one). */
  get client (): RedisClient | undefined {
    return this.#connection.client
  }

  async open (context: StoreContext): Promise<void> {
    this.#context = context
    if (this.#connection.client !== undefined) return
    const client = this.#connection.attach(COMMANDS, context.log)
    if (this.#durability !== undefined && client.isCluster) throw new InvalidOptionError('redisStore.durability', 'is not available on a Cluster (WAIT must reach the node that took the write)')
    // ioredis sends one auto-pipelined batch at a time and answers its commands when the last one is answered:
    // a WAIT in a batch would hold every read and write queued behind it for up to `durability.timeoutMs`.
    if (this.#durability !== undefined && client.options.enableAutoPipelining === true) {
      throw new InvalidOptionError('redisStore.durability', 'needs a client without enableAutoPipelining (a WAIT would hold every command of its batch)')
    }
    this.#keys.useClientPrefix(client.options.keyPrefix)
    this.#cache?.listen(client)
    await this.#connection.ready()
  }

  async create (session: SessionRecord, limit: SessionLimit, now: number): Promise<CreateResult> {
    checkId(session.id)
    const since = this.#connection.connectionsLost
    await this.#lookups.write(session, now)
    const reply = await this.#commands.create(session, limit, now)
    if (reply.outcome === 'full') {
      await this.#settle(session.userId, now, reply, { orphans: [session.id] })
      return reply.byType ? { created: false, active: reply.active, deviceType: (limit.deviceType as DeviceTypeLimit).type } : { created: false, active: reply.active }
    }
    await this.#settle(session.userId, now, reply, { live: [session], gone: reply.evicted })
    if (reply.evicted.length > 0) await this.#replicated(since)
    return { created: true, evicted: reply.evicted }
  }

  async get (id: string, now: number): Promise<SessionRecord | undefined> {
    const hit = this.#cache?.get(id, now)
    if (hit !== undefined) return hit
    const mark = this.#cache?.mark()
    const userId = await this.#lookups.userOf(id)
    if (userId === undefined) return undefined
    const live = await this.#commands.readLive(userId, id, now) ?? await this.#getByScript(userId, id, now)
    // Only if nothing was invalidated meanwhile: the read may predate a revoke.
    if (live !== undefined) this.#cache?.fill(mark, live, now)
    return live
  }

  /** A read that may find the session gone or past a deadline: the script removes what must go, and the store reports it. */
  async #getByScript (userId: string, id: string, now: number): Promise<SessionRecord | undefined> {
    const reply = await this.#commands.get(userId, id, now)
    await this.#settle(userId, now, reply, {})
    return reply.outcome === 'live' ? reply.session : undefined
  }

  async touch (id: string, activity: Activity, now: number): Promise<SessionRecord | undefined> {
    const userId = await this.#lookups.userOf(id)
    if (userId === undefined) return undefined
    const reply = await this.#commands.touch(userId, id, activity, now)
    if (reply.outcome !== 'live') {
      await this.#settle(userId, now, reply, {})
      return undefined
    }
    await this.#settle(userId, now, reply, { live: [reply.session] })
    return reply.session
  }

  async rotate (id: string, rotation: Rotation, now: number): Promise<RotationResult> {
    const since = this.#connection.connectionsLost
    const userId = await this.#lookups.userOf(id)
    if (userId === undefined) return { outcome: 'missing' }
    const reply = await this.#commands.rotate(userId, id, rotation, now)
    switch (reply.outcome) {
      case 'rotated':
        await this.#settle(userId, now, reply, { live: [reply.session] })
        await this.#replicated(since)
        return { outcome: 'rotated', session: reply.session }
      case 'reuse':
        await this.#settle(userId, now, reply, { gone: [reply.session] })
        await this.#replicated(since)
        return { outcome: 'reuse', session: reply.session }
      case 'conflict':
        return { outcome: 'conflict' }
      default:
        await this.#settle(userId, now, reply, {})
        return { outcome: 'missing' }
    }
  }

  async replace (oldId: string, session: SessionRecord, now: number): Promise<boolean> {
    checkId(session.id)
    const since = this.#connection.connectionsLost
    await this.#lookups.write(session, now)
    const reply = await this.#commands.replace(oldId, session, now)
    if (reply.outcome !== 'replaced') {
      await this.#settle(session.userId, now, reply, { orphans: [session.id] })
      return false
    }
    await this.#settle(session.userId, now, reply, { live: [session], gone: [reply.replaced] })
    await this.#replicated(since)
    return true
  }

  async revoke (id: string, now: number): Promise<SessionRecord | undefined> {
    const since = this.#connection.connectionsLost
    const userId = await this.#lookups.userOf(id)
    if (userId === undefined) return undefined
    const reply = await this.#commands.revoke(userId, id, now)
    // Even with nothing live to report: a session past its deadline by this clock only was deleted.
    if (reply.outcome !== 'revoked') {
      await this.#settle(userId, now, reply, {})
      await this.#replicated(since)
      return undefined
    }
    await this.#settle(userId, now, reply, { gone: [reply.session] })
    await this.#replicated(since)
    return reply.session
  }

  async revokeUser (userId: string, exceptId: string | undefined, now: number): Promise<SessionRecord[]> {
    const since = this.#connection.connectionsLost
    const reply = await this.#commands.revokeUser(userId, exceptId, now)
    await this.#settle(userId, now, reply, { gone: reply.sessions })
    await this.#replicated(since)
    return reply.sessions
  }

  async listUser (userId: string, now: number): Promise<SessionRecord[]> {
    const reply = await this.#commands.listUser(userId, now)
    await this.#settle(userId, now, reply, {})
    return reply.sessions
  }

  /**
   * Every live session, batch by batch: `SCAN` (never `KEYS`) over the session
   * keys of this prefix, on every master of a Cluster, `COUNT batchSize` per
   * step, then one `GET` per key found (one `HGETALL` per hash an earlier
   * version wrote, scanned after the strings); sessions past a deadline are left
   * out. Like any `SCAN`, a session that exists for the whole scan appears at
   * least once; one created or removed meanwhile may or may not. A Cluster
   * resharding during the scan may show a session twice or miss it.
   */
  scan (batchSize: number, now: number): AsyncIterable<SessionRecord[]> {
    return scanSessions(this.#connection, this.#keys, this.#decode, batchSize, now)
  }

  /**
   * Each record through one script on its user's keys (atomic per record), a
   * batch's records in parallel (ioredis pipelines them); its lookup key first,
   * as in `create`.
   */
  async importSessions (sessions: readonly SessionRecord[], now: number): Promise<ImportResult> {
    const written = await Promise.all(sessions.map(async (session) => {
      if (!isLive(session, now)) return false
      checkId(session.id)
      await this.#lookups.write(session, now)
      const reply = await this.#commands.import(session, now)
      await this.#settle(session.userId, now, reply, reply.outcome === 'imported' ? { live: [session] } : {})
      return reply.outcome === 'imported'
    }))
    const imported = written.filter(Boolean).length
    return { imported, skipped: sessions.length - imported }
  }

  /** Every live counter: `SCAN` over the counter keys of this prefix, then one `HMGET` per key found. */
  scanCounters (batchSize: number, now: number): AsyncIterable<HeldCounter[]> {
    return scanCounters(this.#connection, this.#keys, batchSize, now)
  }

  async importCounters (held: readonly HeldCounter[], now: number): Promise<ImportResult> {
    const live = held.filter((counter) => now < counter.expiresAt)
    await Promise.all(live.map(async (counter) => {
      await counters.write(this.#connection, this.#keys.counter(counter.key), counter, now)
    }))
    return { imported: live.length, skipped: held.length - live.length }
  }

  async increment (key: string, windowMs: number, now: number): Promise<Counter> {
    return await counters.increment(this.#connection, this.#keys.counter(key), windowMs, now)
  }

  async counter (key: string, now: number): Promise<Counter | undefined> {
    return await counters.read(this.#connection, this.#keys.counter(key), now)
  }

  async decrement (key: string, now: number): Promise<void> {
    await counters.decrement(this.#connection, this.#keys.counter(key), now)
  }

  async resetCounter (key: string): Promise<void> {
    await counters.remove(this.#connection, this.#keys.counter(key))
  }

  async appendHistory (userId: string, entry: HistoryRecord, retention: HistoryRetention, now: number): Promise<void> {
    await history.append(this.#connection, this.#keys.history(userId), entry, retention, now)
  }

  async history (userId: string, query: HistoryQuery, retention: HistoryRetention, now: number): Promise<HistoryEntry[]> {
    return await history.read(this.#connection, this.#keys.history(userId), query, retention, now)
  }

  async eraseHistory (userId: string): Promise<void> {
    await counters.remove(this.#connection, this.#keys.history(userId))
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
    return await this.#stats.read(now)
  }

  /** `cannot connect to Redis at <host>:<port> (<code>)` while the client cannot connect, as logged once when it began. */
  unavailableReason (): string | undefined {
    return this.#connection.unavailableReason
  }

  async close (): Promise<void> {
    this.#cache?.close()
    await this.#connection.close()
  }

  /**
   * With `durability`: fails unless enough replicas have every write so far
   * (the script's and its bookkeeping), so a failover cannot undo what the
   * caller is told was done. `since`: `connectionsLost` before the write,
   * so a WAIT on another connection than the write's acknowledges nothing.
   */
  async #replicated (since: number): Promise<void> {
    if (this.#durability === undefined) return
    await this.#connection.replicated(this.#durability.replicas, this.#durability.timeoutMs, since)
  }

  /**
   * After a script: reports the expired sessions it removed, drops local cache
   * entries and lookup keys of removed sessions, and keeps the stats current.
   * The bookkeeping is best-effort: the script already did the work that
   * matters, and what is left behind expires by its own TTL.
   */
  async #settle (userId: string, now: number, report: ScriptReport, changes: Changes): Promise<void> {
    const { live = [], orphans = [] } = changes
    const gone = [...changes.gone ?? []]
    for (const session of report.expired) {
      this.#stats.countExpired()
      this.#context.onRemoved(session, 'expired')
      gone.push(session)
    }
    this.#cache?.forget([...live, ...gone].map((session) => session.id))
    const housekeeping = [...gone.map((session) => session.id), ...orphans].map(async (id) => await this.#lookups.remove(id))
    housekeeping.push(this.#stats.account(userId, now, report.index, live, gone))
    await Promise.allSettled(housekeeping)
  }
}

/** Creates a Redis store: `store: redisStore({ client })` in the plugin's options. */
export function redisStore (options: RedisStoreOptions): RedisStore {
  return new RedisStore(options)
}
