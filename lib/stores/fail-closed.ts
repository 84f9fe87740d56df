import type { FastifyBaseLogger } from 'fastify'
import { StoreFullError, StoreUnavailableError } from '../errors.js'
import type { Activity, SessionRecord } from '../session.js'
import type {
  Counter,
  CreateResult,
  Rotation,
  RotationResult,
  SessionLimit,
  SessionStore,
  StoreContext,
  StoreStats
} from './store.js'

/**
 * The store as the plugin uses it: failing closed at one boundary. Whatever
 * goes wrong in the store, no request gets through because of it, and every
 * caller (the guard, the lifecycle, the lockout, `app.sessions`, the routes)
 * sees `FST_SESSION_GUARD_STORE_UNAVAILABLE` (503) with no driver text. The
 * cause goes to the log. The plugin's own coded errors pass unchanged.
 *
 * Plain methods with one `try` each: no closure per call on the hot path.
 */
export class FailClosedStore implements SessionStore {
  readonly #store: SessionStore
  readonly #log: FastifyBaseLogger

  constructor (store: SessionStore, log: FastifyBaseLogger) {
    this.#store = store
    this.#log = log
  }

  /** Opening happens at registration: its failure rejects `app.ready()` as it is. */
  async open (context: StoreContext): Promise<void> {
    await this.#store.open?.(context)
  }

  async create (session: SessionRecord, limit: SessionLimit, now: number): Promise<CreateResult> {
    try {
      return await this.#store.create(session, limit, now)
    } catch (err) {
      throw this.#failure(err)
    }
  }

  async get (id: string, now: number): Promise<SessionRecord | undefined> {
    try {
      return await this.#store.get(id, now)
    } catch (err) {
      throw this.#failure(err)
    }
  }

  async touch (id: string, activity: Activity, now: number): Promise<SessionRecord | undefined> {
    try {
      return await this.#store.touch(id, activity, now)
    } catch (err) {
      throw this.#failure(err)
    }
  }

  async rotate (id: string, rotation: Rotation, now: number): Promise<RotationResult> {
    try {
      return await this.#store.rotate(id, rotation, now)
    } catch (err) {
      throw this.#failure(err)
    }
  }

  async replace (oldId: string, session: SessionRecord, now: number): Promise<boolean> {
    try {
      return await this.#store.replace(oldId, session, now)
    } catch (err) {
      throw this.#failure(err)
    }
  }

  async revoke (id: string, now: number): Promise<SessionRecord | undefined> {
    try {
      return await this.#store.revoke(id, now)
    } catch (err) {
      throw this.#failure(err)
    }
  }

  async revokeUser (userId: string, exceptId: string | undefined, now: number): Promise<SessionRecord[]> {
    try {
      return await this.#store.revokeUser(userId, exceptId, now)
    } catch (err) {
      throw this.#failure(err)
    }
  }

  async listUser (userId: string, now: number): Promise<SessionRecord[]> {
    try {
      return await this.#store.listUser(userId, now)
    } catch (err) {
      throw this.#failure(err)
    }
  }

  async * scan (batchSize: number, now: number): AsyncIterable<SessionRecord[]> {
    try {
      yield * this.#store.scan(batchSize, now)
    } catch (err) {
      throw this.#failure(err)
    }
  }

  async increment (key: string, windowMs: number, now: number): Promise<Counter> {
    try {
      return await this.#store.increment(key, windowMs, now)
    } catch (err) {
      throw this.#failure(err)
    }
  }

  async counter (key: string, now: number): Promise<Counter | undefined> {
    try {
      return await this.#store.counter(key, now)
    } catch (err) {
      throw this.#failure(err)
    }
  }

  async resetCounter (key: string): Promise<void> {
    try {
      await this.#store.resetCounter(key)
    } catch (err) {
      throw this.#failure(err)
    }
  }

  async decrement (key: string, now: number): Promise<void> {
    try {
      await this.#store.decrement(key, now)
    } catch (err) {
      throw this.#failure(err)
    }
  }

  async stats (now: number): Promise<StoreStats> {
    try {
      return await this.#store.stats(now)
    } catch (err) {
      throw this.#failure(err)
    }
  }

  /** Closing happens at shutdown: what it throws reaches `app.close()` as it is. */
  async close (): Promise<void> {
    await this.#store.close()
  }

  #failure (err: unknown): Error {
    if (err instanceof StoreFullError || err instanceof StoreUnavailableError) return err as Error
    this.#log.error({ err }, 'session guard: the session store failed')
    return new StoreUnavailableError()
  }
}
