import { LRUCache } from 'lru-cache'
import { CLOCK_SKEW_ALLOWANCE_MS, type SessionRecord } from '../../session.js'
import type { Connection } from './connection.js'
import { ttl, type KeyLayout } from './keys.js'

/** Session id to user id: immutable, so cached without invalidation. */
const USER_ID_CACHE_MAX = 10_000

/**
 * Which user a session id belongs to. A session id alone does not name the
 * keys of its session, so a small lookup key in the id's own slot does; the
 * mapping never changes, so it is cached in-process.
 */
export class UserLookups {
  readonly #connection: Connection
  readonly #keys: KeyLayout
  readonly #userIds = new LRUCache<string, string>({ max: USER_ID_CACHE_MAX })

  constructor (connection: Connection, keys: KeyLayout) {
    this.#connection = connection
    this.#keys = keys
  }

  /** Before the session itself: a lookup without a session is harmless, a session nobody can find is not. */
  async write (session: SessionRecord, now: number): Promise<void> {
    await this.#connection.run(this.#connection.redis.set(this.#keys.lookup(session.id), session.userId, 'PX', ttl(session.absoluteExpiresAt + CLOCK_SKEW_ALLOWANCE_MS, now)))
    this.#userIds.set(session.id, session.userId)
  }

  /** The user of session `id`, or `undefined` when no lookup names one. */
  async userOf (id: string): Promise<string | undefined> {
    const known = this.#userIds.get(id)
    if (known !== undefined) return known
    const userId = await this.#connection.run(this.#connection.redis.get(this.#keys.lookup(id)))
    if (userId === null) return undefined
    this.#userIds.set(id, userId)
    return userId
  }

  /** Removes the lookup of a session that is gone (or was never inserted). */
  async remove (id: string): Promise<void> {
    await this.#connection.run(this.#connection.redis.unlink(this.#keys.lookup(id)))
  }
}
