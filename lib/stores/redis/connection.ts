import type { Redis, RedisOptions } from 'ioredis'
import type { StoreLog } from '../store.js'
import type { RedisClient } from './client.js'
import type { Ioredis } from './ioredis.js'
import type { RedisStoreOptions } from './options.js'
import { ConnectionWatch } from './watch.js'

/** An argument of a script. */
export type Arg = string | number
/** A Lua script as `defineCommand` takes it, under the command name it gets. */
export type Commands = Record<string, { lua: string, numberOfKeys: number }>
/** A command `defineCommand` added to the client: keys, then arguments. */
type Defined = (...args: Arg[]) => Promise<unknown>

/** Longest wait between two reconnection attempts, of the client and of the subscriber. */
export const MAX_RECONNECT_DELAY_MS = 2000

export function noop (): void {}

/** Fail fast: a store that waits is worse than a 503 (the guard fails closed). */
function failFast (commandTimeoutMs: number, pipelined: boolean): RedisOptions {
  return {
    commandTimeout: commandTimeoutMs,
    connectTimeout: commandTimeoutMs,
    maxRetriesPerRequest: 1,
    // No offline queue: a command sent while disconnected fails at once
    // instead of piling up and running late, after its caller gave up.
    enableOfflineQueue: false,
    // Keep reconnecting, so service comes back by itself with Redis.
    retryStrategy: (times) => Math.min(50 * times, MAX_RECONNECT_DELAY_MS),
    // The commands of one event-loop turn go in one write: under load Redis
    // reads many requests per system call instead of one (docs/benchmarks.md).
    // Not with `durability`: see `RedisStore.open()`.
    enableAutoPipelining: pipelined
  }
}

/**
 * The client the store talks to: the app's, or one the store creates from
 * `connection` or `cluster` and owns. Every call is bounded by the command
 * timeout, whatever the client itself was told, and the store closes only
 * what it owns (or what `closeClient` gives it).
 */
export class Connection {
  readonly #options: RedisStoreOptions
  readonly #timeoutMs: number
  /** ioredis, to make the client with: `undefined` when the app gives its own. */
  readonly #ioredis: Ioredis | undefined
  #client: RedisClient | undefined
  #watch: ConnectionWatch | undefined
  #owned = false
  /** Connections the client lost since `attach()`: see `replicated()`. */
  #lost = 0
  readonly #onClose = (): void => { this.#lost++ }

  constructor (options: RedisStoreOptions, timeoutMs: number, library: Ioredis | undefined) {
    this.#options = options
    this.#timeoutMs = timeoutMs
    this.#ioredis = library
  }

  /** The client, once `attach()` found or made it. */
  get client (): RedisClient | undefined {
    return this.#client
  }

  /** The client, for a call: there is none before `open()`. */
  get redis (): RedisClient {
    if (this.#client === undefined) throw new Error('redisStore: open() was not called')
    return this.#client
  }

  /**
   * Taken before a write that `replicated()` then waits for: how many
   * connections the client has lost so far.
   */
  get connectionsLost (): number {
    return this.#lost
  }

  /**
   * Whether a read-only command may be answered by a replica: a Cluster
   * client whose `scaleReads` is not `'master'`. A replica may not have seen
   * a revocation yet, so the store then reads sessions only through its
   * scripts, which run on the master.
   */
  get readsMayReachReplicas (): boolean {
    const { isCluster, options } = this.redis
    return isCluster && options.scaleReads !== undefined && options.scaleReads !== 'master'
  }

  /** Why Redis cannot be reached, while it cannot (see `ConnectionWatch`). */
  get unavailableReason (): string | undefined {
    return this.#watch?.reason
  }

  /**
   * Takes the app's client or creates one, and defines `commands` on it.
   * Does not wait for a connection: `ready()` does. Connection errors go to `log`, once per outage.
   */
  attach (commands: Commands, log: StoreLog | undefined): RedisClient {
    const { client, connection, cluster } = this.#options
    let target: RedisClient
    if (client !== undefined) {
      target = client
    } else {
      this.#owned = true
      const { Cluster, Redis } = this.#ioredis as Ioredis
      const defaults = failFast(this.#timeoutMs, this.#options.durability === undefined)
      if (cluster !== undefined) {
        target = new Cluster(cluster.nodes, {
          enableOfflineQueue: false,
          enableAutoPipelining: true,
          ...cluster.options,
          redisOptions: { ...defaults, ...cluster.options?.redisOptions }
        })
      } else {
        target = typeof connection === 'string' ? new Redis(connection, defaults) : new Redis({ ...defaults, ...connection })
      }
      // Failures surface on the calls that fail; the event only repeats them.
      target.on('error', noop)
    }
    for (const [name, definition] of Object.entries(commands)) target.defineCommand(name, definition)
    target.on('close', this.#onClose)
    this.#watch = new ConnectionWatch(target, log)
    this.#client = target
    return target
  }

  /**
   * Without an offline queue, the first requests would fail while the
   * connection opens: waits for a client the store created, but not forever
   * (then calls fail fast until it comes). The app's client is the app's to wait for.
   */
  async ready (): Promise<void> {
    if (!this.#owned) return
    const client = this.redis
    let done = noop
    const timer = setTimeout(() => done(), this.#timeoutMs)
    await new Promise<void>((resolve) => {
      done = resolve
      client.once('ready', resolve)
    })
    clearTimeout(timer)
    client.off('ready', done)
  }

  /** Bounds every call, on any client: a store that hangs would hang the request. */
  async run<T> (command: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`redisStore: Redis did not answer within ${this.#timeoutMs} ms`)), this.#timeoutMs)
    })
    try {
      // A late rejection of `command` is handled by race(): never unhandled.
      return await Promise.race([command, timeout]).catch((err: unknown) => { throw this.#explained(err) })
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * While Redis cannot be reached, an error that says where it was meant to be,
   * rather than the driver's `Stream isn't writeable` (a consequence of the
   * connection error that the reason names, so not kept as the cause).
   */
  #explained (err: unknown): unknown {
    const reason = this.unavailableReason
    return reason === undefined ? err : new Error(`redisStore: ${reason}`)
  }

  /** Runs a command `attach()` defined, bounded like every call; its reply is the caller's to read. */
  async script (name: string, keys: string[], args: Arg[]): Promise<unknown> {
    return await this.run(this.#call(name, keys, args))
  }

  /**
   * `WAIT replicas timeoutMs` on the connection that wrote (so not on a
   * Cluster): fails unless `replicas` replicas acknowledged every write made so far.
   * `since` is `connectionsLost` from before the write: WAIT counts only the
   * writes of the connection it is sent on, so one sent on another (after a
   * reconnection, or resent by the client when its connection dropped) says
   * nothing of this write; on the new primary after a failover it answers at
   * once, with that primary's replicas, for a write it never had. Then whether
   * a replica has the write is unknown, and the call fails.
   */
  async replicated (replicas: number, timeoutMs: number, since: number): Promise<void> {
    const acknowledged = await this.run((this.redis as Redis).wait(replicas, timeoutMs))
    if (this.#lost !== since) {
      throw new Error('redisStore: the connection to Redis was lost between the write and its WAIT, so no replica is known to have the write')
    }
    if (acknowledged < replicas) {
      throw new Error(`redisStore: ${acknowledged} of ${replicas} replicas acknowledged the write within ${timeoutMs} ms`)
    }
  }

  /** Closes the client if the store owns it, or was told to close it. */
  async close (): Promise<void> {
    const client = this.#client
    this.#watch?.stop()
    client?.off('close', this.#onClose)
    if (client === undefined || !(this.#owned || this.#options.closeClient === true)) return
    try {
      await this.run(client.quit())
    } catch {
      // Not connected (or not answering): nothing to say goodbye to.
      client.disconnect()
    }
  }

  async #call (name: string, keys: string[], args: Arg[]): Promise<unknown> {
    const client = this.redis
    // defineCommand adds the method at run time; its type cannot follow.
    const command = (client as unknown as Record<string, Defined>)[name] as Defined
    return await command.call(client, ...keys, ...args)
  }
}
