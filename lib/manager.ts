import { checkAnswer, type Alert, type AlertAnswer, type SignInAlerts } from './alerts.js'
import { analyse, type AnalyticsOptions, type SessionAnalytics } from './monitoring/analytics.js'
import type { RevocationReason, SessionEventStream } from './monitoring/events.js'
import type { AnomalyDetector } from './monitoring/anomaly.js'
import type { LoginHistory } from './monitoring/history.js'
import type { LoginAttempts } from './monitoring/login-attempts.js'
import type { EventCounts, SessionMetrics } from './monitoring/metrics.js'
import type { SessionTimeline, Timeline } from './monitoring/timeline.js'
import type { RememberedDevices } from './remembered-devices.js'
import type { Clock, SessionRecord } from './session.js'
import type { HistoryEntry, SessionStore, StoreStats } from './stores/store.js'
import { toViews, type SessionView } from './http/views.js'

/** What the management API works with. */
export interface ManagerContext {
  /** The fail-closed store. */
  readonly store: SessionStore
  readonly events: SessionEventStream
  readonly metrics: SessionMetrics
  readonly loginAttempts: LoginAttempts
  readonly anomalies: AnomalyDetector
  readonly history: LoginHistory
  readonly timeline: Timeline
  readonly alerts: SignInAlerts
  readonly clock: Clock
  /** "Remember this device", when the `rememberDevice` option is on. */
  readonly devices?: RememberedDevices
}

/** `app.sessions.export(userId)`: what the plugin holds about a user, without a secret. */
export interface UserExport {
  readonly userId: string
  /** ISO 8601. */
  readonly exportedAt: string
  /** The user's live sessions, as the devices page shows them. */
  readonly sessions: SessionView[]
  /** The user's whole login history, newest first. */
  readonly history: HistoryEntry[]
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

  /**
   * Revokes one session; its access tokens stop working on their next request,
   * and the device remembered with it ("Remember this device") is forgotten.
   * Returns whether it was live.
   */
  async revoke (sessionId: string, reason: RevocationReason = 'admin'): Promise<boolean> {
    const now = this.#context.clock()
    const session = await this.#context.store.revoke(sessionId, now)
    if (session === undefined) return false
    this.#context.events.publish(undefined, 'session.revoked', now, session, { reason })
    await this.#context.devices?.forget(session)
    return true
  }

  /**
   * Revokes every session of a user ("log out everywhere"), or every one but
   * `except` ("log out everywhere else"). After a password change:
   * `await app.sessions.revokeAll(userId, { reason: 'password-change' })`.
   * Returns how many were revoked. Every device remembered for the user is
   * forgotten; with `except`, those remembered with the revoked sessions.
   */
  async revokeAll (userId: string, { except, reason = 'admin' }: { except?: string, reason?: RevocationReason } = {}): Promise<number> {
    const now = this.#context.clock()
    const revoked = await this.#context.store.revokeUser(userId, except, now)
    for (const session of revoked) this.#context.events.publish(undefined, 'session.revoked', now, session, { reason })
    const devices = this.#context.devices
    if (devices !== undefined && except === undefined) await devices.forgetAll(userId)
    else for (const session of revoked) await devices?.forget(session)
    return revoked.length
  }

  /**
   * "Remember this device": forgets the device remembered with the user's
   * session `sessionId` (live or not: a history entry names it), without
   * revoking anything. Its next sign-in is new to the `new_device` rule.
   * Returns whether one was remembered (always `false` without the
   * `rememberDevice` option).
   */
  async forgetDevice (userId: string, sessionId: string): Promise<boolean> {
    return await this.#context.devices?.forget({ userId, id: sessionId }) ?? false
  }

  /** Forgets every device remembered for the user, without revoking anything. */
  async forgetDevices (userId: string): Promise<void> {
    await this.#context.devices?.forgetAll(userId)
  }

  /**
   * Vouches for a session's device and country, once the user has shown it is
   * them (a completed second factor, "yes, this was me"): the `new_device` and
   * `new_country` rules know them for the user from now on, and the session
   * loses those two flags; a pending step-up stays, for `request.completeChallenge()`.
   * Until then every login from them is flagged (or refused) again. Returns whether the session was live.
   */
  async trustDevice (sessionId: string): Promise<boolean> {
    return await this.#context.anomalies.trust(sessionId)
  }

  /**
   * "Was this you?": the user's sessions that anomaly rules flagged (new
   * device or country, a step-up, a device change …) and nobody answered
   * yet, but `except` (the session asking, never asked about itself). Read
   * from the store, so every instance shows the same. Most recently active first.
   */
  async alerts (userId: string, { except }: { except?: string } = {}): Promise<Alert[]> {
    return await this.#context.alerts.list(userId, except)
  }

  /**
   * Answers the alert about a flagged session of `userId`'s: `'yes'` vouches
   * for it as `trustDevice` does (its device and country become known) and
   * clears its flags but a pending step-up (only the session's own
   * `completeChallenge` lifts that); `'no'` revokes it (its refresh tokens stop working) with
   * reason `'not-me'`. Both publish `alert.answered`, which the history keeps.
   * `from`, the id of the session answering, is never the one asked about and,
   * for a `'yes'`, must not be flagged itself (`FST_SESSION_GUARD_UNCONFIRMED_SESSION`).
   * Returns `false` when there is no such alert: unknown, ended, another
   * user's or not flagged. A bad `answer` throws `FST_SESSION_GUARD_INVALID_ALERT_ANSWER`.
   */
  async answerAlert (userId: string, sessionId: string, answer: AlertAnswer, { from }: { from?: string } = {}): Promise<boolean> {
    checkAnswer(answer)
    const answering = from === undefined ? undefined : await this.get(from)
    if (from !== undefined && answering?.userId !== userId) return false
    return await this.#context.alerts.answer(userId, sessionId, answer, answering)
  }

  /**
   * The user's login history, newest first: sign-ins, failed and locked
   * attempts the app named the user in, refused sign-ins, revocations with
   * their reason, refresh-token reuse, anomalies. `limit` entries (default
   * 50, at most 1000); `before`, an entry's `id`, for the next page. Throws
   * `FST_SESSION_GUARD_INVALID_HISTORY_QUERY` (400) for a bad `limit` or
   * `before`, `FST_SESSION_GUARD_HISTORY_OFF` when no history is kept.
   */
  async history (userId: string, query?: { limit?: number, before?: string }): Promise<HistoryEntry[]> {
    return await this.#context.history.read(userId, query)
  }

  /** Whether a login history is kept (the `history` option is not `false`, and the store keeps one). */
  get keepsHistory (): boolean {
    return this.#context.history.enabled
  }

  /**
   * What the plugin holds about a user (a data-subject access request): the
   * live sessions as views and the whole history. No token, hash or claim.
   */
  async export (userId: string): Promise<UserExport> {
    const history: HistoryEntry[] = []
    for (let page = await this.history(userId, { limit: 1000 }); page.length > 0; page = await this.history(userId, { limit: 1000, before: page[page.length - 1]?.id })) {
      history.push(...page)
    }
    return { userId, exportedAt: new Date(this.#context.clock()).toISOString(), sessions: toViews(await this.list(userId)), history }
  }

  /**
   * Erases a user (the right to erasure): revokes every session, then
   * removes the history. Counters keyed on the user (known devices and
   * countries, login bursts) hold no name, only keyed hashes, and end with
   * their window. Returns how many sessions were revoked.
   */
  async erase (userId: string): Promise<number> {
    const revoked = await this.revokeAll(userId, { reason: 'admin' })
    await this.#context.history.erase(userId)
    return revoked
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

  /**
   * This instance's time series (the `timeline` option): per interval, the
   * store's live sessions as sampled, and the sign-ins, failed sign-ins,
   * lockouts, anomalies and ended sessions this instance handled; over the
   * window, sign-ins by country and device type, anomalies by rule, and how
   * long the ended sessions had lasted. Samples the store once. `undefined`
   * with `timeline: false`.
   */
  async timeline (): Promise<SessionTimeline | undefined> {
    return await this.#context.timeline.read()
  }
}
