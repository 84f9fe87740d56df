import type { StoreLog } from '../store.js'
import { nodesOf, type RedisClient } from './client.js'

/** What a connection error may say of where it went: Node's socket errors name the address and port. */
interface ConnectionError {
  code?: unknown
  message?: unknown
  address?: unknown
  port?: unknown
  /** A Cluster's "all nodes failed" error carries the last node's. */
  lastNodeError?: ConnectionError
}

type Listener = (...args: unknown[]) => void

/**
 * Follows the client's connection, so an operator hears of an outage once and
 * clearly: the first connection error since the client was last ready is one
 * log line naming the server (`cannot connect to Redis at 10.0.0.5:6379
 * (ECONNREFUSED)`), the same line the health route reports, and a call that
 * fails meanwhile says it too instead of the driver's `Stream isn't writeable`.
 * When the client is ready again, one line says so and the reason clears.
 */
export class ConnectionWatch {
  readonly #client: RedisClient
  readonly #log: StoreLog | undefined
  #reason: string | undefined
  readonly #onError: Listener
  readonly #onReady: Listener

  constructor (client: RedisClient, log: StoreLog | undefined) {
    this.#client = client
    this.#log = log
    this.#onError = (err) => this.#failed(err as ConnectionError)
    this.#onReady = () => this.#ready()
    client.on('error', this.#onError)
    client.on('ready', this.#onReady)
  }

  /** Why the store cannot reach Redis, while it cannot. */
  get reason (): string | undefined {
    return this.#reason
  }

  stop (): void {
    this.#client.off('error', this.#onError)
    this.#client.off('ready', this.#onReady)
  }

  #failed (err: ConnectionError): void {
    if (this.#reason !== undefined) return
    const server = serverOf(this.#client, err)
    this.#reason = `cannot connect to Redis at ${server} (${causeOf(err)})`
    this.#log?.error({ redis: server }, `session guard: ${this.#reason}; the session store answers 503 until it connects`)
  }

  #ready (): void {
    if (this.#reason === undefined) return
    this.#reason = undefined
    const server = serverOf(this.#client, {})
    this.#log?.info({ redis: server }, `session guard: connected to Redis at ${server}`)
  }
}

/**
 * The server a client is meant to reach, as its options name it (what the
 * operator wrote), or for a Cluster the node the error names, else its nodes.
 */
function serverOf (client: RedisClient, err: ConnectionError): string {
  if (client.isCluster) {
    const failed = addressOf(err) ?? addressOf(err.lastNodeError)
    if (failed !== undefined) return `${failed} (a Cluster node)`
    const nodes = nodesOf(client, 'all').map((node) => hostPort(node.options.host, node.options.port))
    return nodes.length === 0 ? 'its Cluster nodes' : `Cluster nodes ${nodes.join(', ')}`
  }
  const { path, sentinels, name, host, port } = client.options
  if (typeof path === 'string' && path !== '') return path
  if (Array.isArray(sentinels) && sentinels.length > 0) {
    return `master "${String(name)}" through sentinels ${sentinels.map((sentinel) => hostPort(sentinel.host, sentinel.port ?? 26379)).join(', ')}`
  }
  return hostPort(host, port)
}

function addressOf (err: ConnectionError | undefined): string | undefined {
  return typeof err?.address === 'string' ? hostPort(err.address, typeof err.port === 'number' ? err.port : undefined) : undefined
}

function hostPort (host: string | undefined, port: number | undefined): string {
  return `${host ?? 'localhost'}:${port ?? 6379}`
}

/** The error's code (`ECONNREFUSED`), or its message. */
function causeOf (err: ConnectionError): string {
  if (typeof err.code === 'string') return err.code
  return typeof err.message === 'string' ? err.message : String(err)
}
