import { analyse, type AnalyticsOptions, type SessionAnalytics } from './monitoring/analytics.js'
import type { RevocationReason, SessionEventStream } from './monitoring/events.js'
import type { AnomalyDetector } from './monitoring/anomaly.js'
import type { LoginAttempts } from './monitoring/login-attempts.js'
import type { EventCounts, SessionMetrics } from './monitoring/metrics.js'
import type { Clock, SessionRecord } from './session.js'
import type { SessionStore, StoreStats } from './stores/store.js'

/** What the management API works with. */
export interface ManagerContext {
  /** The fail-closed store. */
  readonly store: SessionStore
  readonly events: SessionEventStream
  readonly metrics: SessionMetrics
  readonly loginAttempts: LoginAttempts
  readonly anomalies: AnomalyDetector
  readonly clock: Clock
}

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
  readonly #context: ManagerContext
  /** Failed-login tracking and lockout, for the app's login route. */
  readonly loginAttempts: LoginAttempts

  constructor (context: ManagerContext) {
    this.#context = context
    this.loginAttempts = context.loginAttempts
  }

  /** The event stream (every event is also logged). */
  get events (): SessionEventStream {
    return this.#context.events
  }

  /** A user's live sessions, most recently active first. */
  async list (userId: string): Promise<SessionRecord[]> {
    return await this.#context.store.listUser(userId, this.#context.clock())
  }

  /** One live session, or `undefined`. */
  async get (sessionId: string): Promise<SessionRecord | undefined> {
    return await this.#context.store.get(sessionId, this.#context.clock())
  }

  /** Revokes one session; its access tokens stop working on their next request. Returns whether it was live. */
  async revoke (sessionId: string, reason: RevocationReason = 'admin'): Promise<boolean> {
    const now = this.#context.clock()
    const session = await this.#context.store.revoke(sessionId, now)
    if (session === undefined) return false
    this.#context.events.publish(undefined, 'session.revoked', now, session, { reason })
    return true
  }

  /**
   * Revokes every session of a user ("log out everywhere"), or every one but
   * `except` ("log out everywhere else"). After a password change:
   * `await app.sessions.revokeAll(userId, { reason: 'password-change' })`.
   * Returns how many were revoked.
   */
  async revokeAll (userId: string, { except, reason = 'admin' }: { except?: string, reason?: RevocationReason } = {}): Promise<number> {
    const now = this.#context.clock()
    const revoked = await this.#context.store.revokeUser(userId, except, now)
    for (const session of revoked) this.#context.events.publish(undefined, 'session.revoked', now, session, { reason })
    return revoked.length
  }

  /**
   * Vouches for a session's device and country, once the user has shown it is
   * them (a completed second factor, "yes, this was me"): the `new_device` and
   * `new_country` rules know them for the user from now on, and the session
   * loses those two flags. Until then every login from them is flagged (or
   * refused) again. Returns whether the session was live.
   */
  async trustDevice (sessionId: string): Promise<boolean> {
    return await this.#context.anomalies.trust(sessionId)
  }

  /**
   * The store's figures (sessions, users, sessions per user, evictions,
   * expirations, memory) and this instance's event counts, refusals by their
   * precise reason: for the app's own code, not for a public route.
   */
  async stats (): Promise<SessionStats> {
    return { ...await this.storeStats(), events: this.#context.metrics.counts }
  }

  /**
   * Why the store cannot serve now, when it can tell (the Redis store: `cannot
   * connect to Redis at 10.0.0.5:6379 (ECONNREFUSED)`), for a health check of
   * the app's own; `undefined` otherwise.
   */
  storeUnavailableReason (): string | undefined {
    return this.#context.store.unavailableReason?.()
  }

  /** The store's own figures. */
  async storeStats (): Promise<StoreStats> {
    return await this.#context.store.stats(this.#context.clock())
  }

  /**
   * Sessions per user, device-type and browser shares, countries, and session
   * age percentiles, from a scan of the store in batches that yields to the
   * event loop between them. For dashboards, not for requests.
   */
  async analytics (options?: AnalyticsOptions): Promise<SessionAnalytics> {
    return await analyse(this.#context.store, this.#context.clock(), options)
  }
}
