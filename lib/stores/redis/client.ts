/**
 * The client the Redis store talks to, by what it calls rather than by class:
 * an `ioredis` 5 or 6 `Redis` or `Cluster`, an `iovalkey` one, or anything else
 * with these methods runs the store. The store defines its Lua scripts on it
 * (`defineCommand`) and calls them by name; the few plain commands it sends are
 * listed here with the argument shapes it uses, so the compiler checks a client
 * against exactly what the store needs.
 */

/** An event listener, as `EventEmitter` takes it. */
type Listener = (...args: any[]) => void

/** The events the store follows: `ready`, `error`, `close`, `end`, `message`. */
interface Events {
  on(event: string, listener: Listener): unknown
  once(event: string, listener: Listener): unknown
  off(event: string, listener: Listener): unknown
}

/** What every client gives, standalone or Cluster. */
interface ScriptClient extends Events {
  /** `true` for a Cluster client: its nodes come from `nodes()`. */
  readonly isCluster: boolean
  /**
   * The client's own options. `keyPrefix` is honoured; `host`, `port`, `path`
   * and `sentinels` name the server in the store's log line when it cannot connect.
   */
  readonly options: RedisClientOptions
  /** Defines a Lua script as a command of that name, taking its keys first (ioredis' `defineCommand`). */
  defineCommand(name: string, definition: { lua: string, numberOfKeys: number }): void
  get(key: string): Promise<string | null>
  set(key: string, value: string, expiry: 'PX', ms: number): Promise<unknown>
  unlink(...keys: string[]): Promise<number>
  hmget(key: string, ...fields: string[]): Promise<Array<string | null>>
  hgetall(key: string): Promise<Record<string, string>>
  /** A transaction (`MULTI`): how a migrated counter is written with its expiry in one step. */
  multi(): RedisTransaction
  quit(): Promise<unknown>
  disconnect(): void
}

/** The commands the store queues in a transaction. */
export interface RedisTransaction {
  hset(key: string, ...fieldsAndValues: string[]): RedisTransaction
  pexpire(key: string, ms: number): RedisTransaction
  exec(): Promise<unknown>
}

/** The options the store reads from a client. */
export interface RedisClientOptions {
  keyPrefix?: string | undefined
  /** A Cluster client's: where read-only commands go (`'master'` by default; `'slave'`, `'all'` or a function send them to replicas too). */
  scaleReads?: unknown
  host?: string | undefined
  port?: number | undefined
  path?: string | undefined | null
  name?: string | undefined
  sentinels?: Array<Partial<{ host: string, port: number }>> | undefined | null
  /** ioredis' own pipelining, which `durability` cannot share a connection with. */
  enableAutoPipelining?: boolean | undefined
}

/** One connection to one server: a standalone client, or a node of a Cluster. */
export interface RedisNode extends Events {
  readonly options: RedisClientOptions
  scan(cursor: string, match: 'MATCH', pattern: string, count: 'COUNT', n: number, type: 'TYPE', of: string): Promise<[cursor: string, elements: string[]]>
  /** A new connection with these options over the client's own: the local cache's subscriber. */
  duplicate(override: RedisSubscriberOptions): RedisSubscriber
}

/** A standalone (or Sentinel) client: one connection, of which the local cache duplicates its subscriber. */
export interface RedisStandaloneClient extends ScriptClient, RedisNode {
  readonly options: RedisClientOptions
}

/** A Cluster client: the scan walks its masters, the local cache subscribes on one of its nodes. */
export interface RedisClusterClient extends ScriptClient {
  nodes(role: 'all' | 'master'): RedisNode[]
}

/** A client the store accepts: `Redis`, `Cluster` (ioredis 5 or 6, iovalkey) or any client of the same shape. */
export type RedisClient = RedisStandaloneClient | RedisClusterClient

/** The options the local cache gives its subscriber's connection. */
export interface RedisSubscriberOptions {
  lazyConnect: boolean
  enableOfflineQueue: boolean
  autoResubscribe: boolean
  connectionName: string
  retryStrategy: () => null
}

/** The local cache's subscriber: a connection that listens on one channel. */
export interface RedisSubscriber extends Events {
  subscribe(channel: string): Promise<unknown>
  disconnect(): void
}

/** The connections to single servers behind `client`: itself, or a Cluster's nodes of that role. */
export function nodesOf (client: RedisClient, role: 'all' | 'master'): RedisNode[] {
  return client.isCluster ? (client as RedisClusterClient).nodes(role) : [client as RedisStandaloneClient]
}
