import type { FastifyBaseLogger } from 'fastify'
import { InvalidAlertAnswerError, UnconfirmedSessionError } from './errors.js'
import { toView, type SessionView } from './http/views.js'
import type { AnomalyDetector } from './monitoring/anomaly.js'
import type { SessionEvent, SessionEventStream } from './monitoring/events.js'
import { CHALLENGE_FLAG, isChallenged, type Clock, type SessionRecord } from './session.js'
import type { SessionStore } from './stores/store.js'
import { optionalFunction, section, type OptionNames } from './validate.js'

/**
 * "Was this you?": a session of the user that anomaly rules flagged (a sign-in
 * from a new device or country, a challenged one, a session whose device
 * changed), put to the user's other sessions until one of them answers or the
 * session ends.
 */
export interface Alert {
  readonly userId: string
  /** The flagged session, as the devices page shows it; its `flags` say why. */
  readonly session: SessionView
}

/** What `onAlert` is: it may return a promise; a throw or a rejection is logged, never propagated. */
export type AlertHook = (alert: Alert) => void | Promise<void>

/** An answer to an alert: `'yes'` (it was me) or `'no'` (sign it out). */
export type AlertAnswer = 'yes' | 'no'

/** The `alerts` option: "Was this you?" (see docs/devices.md). */
export interface AlertOptions {
  /**
   * Called once for each flagged or challenged sign-in, after the login's
   * response is on its way, with the user and the new session's view: send
   * the user an e-mail or a push. A throw or a rejection is logged.
   * @default undefined (none)
   */
  onAlert?: AlertHook
}

export const ALERT_OPTION_NAMES: OptionNames<AlertOptions> = { onAlert: true }

/** The `alerts` option after validation. */
export interface AlertPolicy {
  readonly onAlert: AlertHook | undefined
}

export function parseAlertOptions (value: AlertOptions | undefined): AlertPolicy {
  const options = section(value, ALERT_OPTION_NAMES, 'alerts')
  return Object.freeze({ onAlert: optionalFunction(options.onAlert, 'alerts.onAlert', '(alert) => void') })
}

/**
 * Whether a session awaits an answer: it carries anomaly flags (a pending
 * step-up alone is no question to the user: only its second factor answers
 * it, `request.completeChallenge()`). The notices
 * are derived from the sessions the store holds, so every instance behind a
 * load balancer shows the same ones and an answer on one is seen by all.
 */
export function awaitsAnswer (session: Pick<SessionRecord, 'flags'>): boolean {
  return session.flags !== undefined && session.flags.some((flag) => flag !== CHALLENGE_FLAG)
}

/** Throws `FST_SESSION_GUARD_INVALID_ALERT_ANSWER` unless `answer` is `'yes'` or `'no'`. */
export function checkAnswer (answer: unknown): asserts answer is AlertAnswer {
  if (answer !== 'yes' && answer !== 'no') throw new InvalidAlertAnswerError(String(answer))
}

interface AlertsContext {
  /** The fail-closed store. */
  readonly store: SessionStore
  readonly events: SessionEventStream
  readonly anomalies: AnomalyDetector
  readonly clock: Clock
}

/**
 * What hands each flagged or challenged sign-in to `onAlert`, off the
 * request's path: to be called with every event as it is published.
 */
export function alertNotifier ({ store, clock, log }: { store: SessionStore, clock: Clock, log: FastifyBaseLogger }, { onAlert }: AlertPolicy): (event: SessionEvent) => void {
  if (onAlert === undefined) return () => {}
  async function notify (userId: string, sessionId: string): Promise<void> {
    try {
      const session = await store.get(sessionId, clock())
      // Signed out (or answered "no") before the hook's turn came: nothing to ask any more.
      if (session === undefined) return
      await onAlert!({ userId, session: toView(session) })
    } catch (err) {
      log.error({ err }, 'session guard: the onAlert hook failed')
    }
  }
  return (event) => {
    if (event.type !== 'session.created' || event.flags === undefined || event.flags.length === 0) return
    setImmediate(notify, event.userId as string, event.sessionId as string)
  }
}

/** The "Was this you?" alerts: listing and answering them. */
export class SignInAlerts {
  readonly #context: AlertsContext

  constructor (context: AlertsContext) {
    this.#context = context
  }

  /** The user's sessions awaiting an answer, but `except` (the session asking: it is not asked about itself). */
  async list (userId: string, except?: string): Promise<Alert[]> {
    const sessions = await this.#context.store.listUser(userId, this.#context.clock())
    return sessions
      .filter((session) => session.id !== except && awaitsAnswer(session))
      .map((session) => ({ userId, session: toView(session, except) }))
  }

  /**
   * Answers the alert about `sessionId`, a session of `userId`'s awaiting an
   * answer; `from`, the session that answers, is never the one asked about and,
   * for a `'yes'`, must await no answer itself. Returns `false` when there is
   * no such alert (unknown, ended, another user's, or not flagged).
   */
  async answer (userId: string, sessionId: string, answer: AlertAnswer, from?: SessionRecord): Promise<boolean> {
    checkAnswer(answer)
    if (answer === 'yes' && from !== undefined && (awaitsAnswer(from) || isChallenged(from))) throw new UnconfirmedSessionError()
    const { store, events, anomalies, clock } = this.#context
    const now = clock()
    if (from?.id === sessionId) return false
    const session = await store.get(sessionId, now)
    // Only the user's own: another user's session is answered as an unknown one.
    if (session === undefined || session.userId !== userId || !awaitsAnswer(session)) return false
    // Revoking the session ends its refresh chain: every refresh token of it names it.
    // Vouching makes its device and country known; "it was me" answers every flag but a pending
    // step-up, which only the session's own second factor lifts: a click on another device is no
    // second factor, and a password thief's sign-in must not get in on the strength of it.
    const done = answer === 'no'
      ? await store.revoke(sessionId, now) !== undefined
      : await anomalies.trust(sessionId) && await store.touch(sessionId, {
        lastSeenAt: session.lastSeenAt, idleExpiresAt: session.idleExpiresAt, changes: { flags: isChallenged(session) ? [CHALLENGE_FLAG] : undefined }
      }, now) !== undefined
    /* c8 ignore next -- a race: the session ended between the read above and the write */
    if (!done) return false
    events.publish(undefined, 'alert.answered', now, session, { answer })
    if (answer === 'no') events.publish(undefined, 'session.revoked', now, session, { reason: 'not-me' })
    return true
  }
}
