import { analyse, type AnalyticsOptions, type SessionAnalytics } from './monitoring/analytics.js'
import type { RevocationReason, SessionEventStream } from './monitoring/events.js'
import { LoginAttempts } from './monitoring/login-attempts.js'
import type { EventCounts } from './monitoring/metrics.js'
import type { Runtime } from './runtime.js'
import type { SessionRecord } from './session.js'
import type { StoreStats } from './stores/store.js'

/** `app.sessions.stats()`: the store's figures and this instance's counters. */
export interface SessionStats extends StoreStats {
  /** What the event stream counted since this instance started. */
  readonly events: EventCounts
}

/**
 * `app.sessions`: the management API for the app's own code (admin routes,
 * password changes, login routes, dashboards). It trusts its caller: check
 * authorisation before calling. Events: `app.sessions.events.on(name, listener)`.
 */
export class SessionManager {
  readonly #runtime: Runtime
  /** Failed-login tracking and lockout, for the app's login route. */
  readonly loginAttempts: LoginAttempts

  constructor (runtime: Runtime) {
    this.#runtime = runtime
    this.loginAttempts = new LoginAttempts(runtime, runtime.options.lockout)
  }

  /** The event stream (every event is also logged). */
  get events (): SessionEventStream {
    return this.#runtime.events
  }

  /** A user's live sessions, most recently active first. */
  async list (userId: string): Promise<SessionRecord[]> {
    return await this.#runtime.store.listUser(userId, this.#runtime.options.clock())
  }

  /** One live session, or `undefined`. */
  async get (sessionId: string): Promise<SessionRecord | undefined> {
    return await this.#runtime.store.get(sessionId, this.#runtime.options.clock())
  }

  /** Revokes one session; its access tokens stop working on their next request. Returns whether it was live. */
  async revoke (sessionId: string, reason: RevocationReason = 'admin'): Promise<boolean> {
    const now = this.#runtime.options.clock()
    const session = await this.#runtime.store.revoke(sessionId, now)
    if (session === undefined) return false
    this.#runtime.events.publish(undefined, 'session.revoked', now, session, { reason })
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
    for (const session of revoked) this.#runtime.events.publish(undefined, 'session.revoked', now, session, { reason })
    return revoked.length
  }

  /** The store's figures (sessions, users, sessions per user, evictions, expirations, memory) and this instance's event counts. */
  async stats (): Promise<SessionStats> {
    return { ...await this.storeStats(), events: this.#runtime.metrics.counts }
  }

  /** The store's own figures. */
  async storeStats (): Promise<StoreStats> {
    return await this.#runtime.store.stats(this.#runtime.options.clock())
  }

  /**
   * Sessions per user, device-type and browser shares, countries, and session
   * age percentiles, from a scan of the store in batches that yields to the
   * event loop between them. For dashboards, not for requests.
   */
  async analytics (options?: AnalyticsOptions): Promise<SessionAnalytics> {
    return await analyse(this.#runtime.store, this.#runtime.options.clock(), options)
  }

  /** The metrics in the Prometheus text format, given the store's stats (`undefined` when it is down). */
  prometheus (store: StoreStats | undefined): string {
    return this.#runtime.metrics.prometheus(store)
  }
}
