import { Pool, type QueryConfig, type QueryResultRow } from 'pg'
import type { PostgresStoreOptions } from './options.js'

export function noop (): void {}

/** A query inside a transaction: the rows it returns. */
export type Query = <R extends QueryResultRow>(query: QueryConfig) => Promise<R[]>

/**
 * The pool the store talks to: the app's, or one the store creates from
 * `connection` and owns. Every call is bounded by the query timeout, whatever
 * the pool itself was told, and the store ends only a pool it created.
 */
export class Database {
  readonly #timeoutMs: number
  readonly #owned: boolean
  #ended = false
  readonly pool: Pool

  constructor (options: PostgresStoreOptions, timeoutMs: number) {
    this.#timeoutMs = timeoutMs
    if (options.pool !== undefined) {
      this.pool = options.pool
      this.#owned = false
    } else {
      const config = typeof options.connection === 'string' ? { connectionString: options.connection } : options.connection
      // Fail fast: a store that waits is worse than a 503 (the guard fails closed).
      this.pool = new Pool({
        connectionTimeoutMillis: timeoutMs,
        query_timeout: timeoutMs,
        statement_timeout: timeoutMs,
        ...config
      })
      // A connection that breaks while idle is dropped by the pool; the next call opens another.
      this.pool.on('error', noop)
      this.#owned = true
    }
  }

  /** Bounds every call, on any pool: a store that hangs would hang the request. */
  async run<T> (work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`postgresStore: PostgreSQL did not answer within ${this.#timeoutMs} ms`)), this.#timeoutMs)
    })
    try {
      // A late rejection of `work` is handled by race(): never unhandled.
      return await Promise.race([work, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /** One statement, bounded; its rows. */
  async query<R extends QueryResultRow> (query: QueryConfig): Promise<R[]> {
    return (await this.run(this.pool.query<R>(query))).rows
  }

  /**
   * `work` in one transaction holding the transaction-scoped advisory lock
   * `lockKey` (a per-user lock: a user's creates and replaces run one at a
   * time, from every instance). Bounded as a whole; the server gives up
   * waiting for the lock, or on a statement, after the same time, so a
   * connection is never held long. A transaction whose caller gave up does
   * not go on: it stops before its next statement and rolls back.
   */
  async transaction<T> (lockKey: string, work: (query: Query) => Promise<T>): Promise<T> {
    let abandoned = false
    const attempt = async (): Promise<T> => {
      const client = await this.pool.connect()
      const query: Query = async (config) => {
        if (abandoned) throw new Error('postgresStore: transaction abandoned after the query timeout')
        return (await client.query(config)).rows
      }
      try {
        const ms = Math.ceil(this.#timeoutMs)
        await query({
          text: `BEGIN; SET LOCAL lock_timeout = ${ms}; SET LOCAL statement_timeout = ${ms}; ` +
            `SELECT pg_advisory_xact_lock(hashtextextended(${client.escapeLiteral(lockKey)}, 0))`
        })
        const result = await work(query)
        await query({ text: 'COMMIT' })
        client.release()
        return result
      } catch (err) {
        // Not back to the pool in a transaction that failed half-way: the
        // connection is closed, and the server rolls back what it did.
        client.release(err as Error)
        throw err
      }
    }
    try {
      return await this.run(attempt())
    } catch (err) {
      abandoned = true
      throw err
    }
  }

  /** Ends the pool if the store created it. */
  async close (): Promise<void> {
    if (!this.#owned || this.#ended) return
    this.#ended = true
    await this.pool.end()
  }
}
