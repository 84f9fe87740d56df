import type { SessionEventStream, RevocationReason } from './events.js'
import type { Runtime } from './runtime.js'
import type { SessionRecord } from './session.js'
import type { StoreStats } from './stores/store.js'

/**
 * `app.sessions`: the management API for the app's own code (admin routes,
 * password changes). It trusts its caller: check authorisation before calling.
 * Also the event stream: `app.sessions.on('session.revoked', listener)`.
 */
export class SessionManager {
  readonly #runtime: Runtime

  constructor (runtime: Runtime) {
    this.#runtime = runtime
  }

  /** The event stream (every event is also logged). */
  get events (): SessionEventStream {
    return this.#runtime.events
  }

  /** A user's live sessions, most recently active first. */
  async list (userId: string): Promise<SessionRecord[]> {
    return this.#runtime.store.listUser(userId, this.#runtime.options.clock())
  }

  /** One live session, or `undefined`. */
  async get (sessionId: string): Promise<SessionRecord | undefined> {
    return this.#runtime.store.get(sessionId, this.#runtime.options.clock())
  }

  /** Revokes one session; its access tokens stop working on their next request. Returns whether it was live. */
  async revoke (sessionId: string, reason: RevocationReason = 'admin'): Promise<boolean> {
    const now = this.#runtime.options.clock()
    const session = await this.#runtime.store.revoke(sessionId, now)
    if (session === undefined) return false
    this.#runtime.events.publish(undefined, 'session.revoked', now, { userId: session.userId, sessionId, reason })
    return true
  }

  /**
   * Revokes every session of a user ("log out everywhere"), or every one but
   * `except` ("log out everywhere else"). After a password change:
   * `await app.sessions.revokeAll(userId, { reason: 'password-change' })`.
   * Returns how many were revoked.
   */
  async revokeAll (userId: string, { except, reason = 'admin' }: { except?: string, reason?: RevocationReason } = {}): Promise<number> {
    const now = this.#runtime.options.clock()
    const revoked = await this.#runtime.store.revokeUser(userId, except, now)
    for (const session of revoked) {
      this.#runtime.events.publish(undefined, 'session.revoked', now, { userId, sessionId: session.id, reason })
    }
    return revoked.length
  }

  /** The store's counters: sessions, users, evictions, expirations. */
  async stats (): Promise<StoreStats> {
    return this.#runtime.store.stats(this.#runtime.options.clock())
  }
}
