import { EventEmitter } from 'node:events'
import type { FastifyBaseLogger } from 'fastify'
import { sha256 } from '../crypto.js'
import type { DeviceInfo, DeviceType } from '../devices/device.js'
import { InvalidOptionError } from '../errors.js'
import type { SessionRecord } from '../session.js'
import { section, type OptionNames } from '../validate.js'

/** The version of the event shape. It changes only when a field changes meaning or goes away. */
export const EVENT_VERSION = 1

/** Why a session was revoked. */
export type RevocationReason = 'user' | 'admin' | 'limit' | 'regenerate' | 'reuse' | 'password-change' | 'anomaly' | 'not-me'

/** The anomaly rules (see docs/monitoring.md). */
export type AnomalyRule = 'new_device' | 'new_country' | 'ip_change' | 'device_change' | 'too_many_ips' | 'too_many_countries' | 'impossible_travel' | 'login_burst'

/**
 * What is done about an anomaly: nothing, a flag on the session, a step-up
 * (the session is created or kept, restricted until the app's second factor
 * completes it: `request.completeChallenge()`), or the session refused.
 */
export type AnomalyDecision = 'ignore' | 'flag' | 'challenge' | 'revoke'

/** The fields of each event besides the common ones. */
export interface SessionEvents {
  'session.created': { remembered: boolean, flags?: readonly string[] }
  'session.refreshed': { rotations: number }
  /** `durationMs` (on the three events that end a session): how long the session had lived, from its login. */
  'session.revoked': { reason: RevocationReason, durationMs?: number }
  'session.evicted': { durationMs?: number }
  'session.expired': { reason: 'idle' | 'absolute', durationMs?: number }
  /** A request or refresh was refused; `reason` is the precise one the client never sees. */
  'auth.rejected': { reason: string }
  'refresh.reuse_detected': Record<string, never>
  /** A challenged session completed its step-up (`request.completeChallenge()`): it is no longer restricted. */
  'challenge.completed': Record<string, never>
  /**
   * `usernameHash` stands for the username (a keyed hash: it correlates one
   * username's events without revealing it); `username`, normalised (trimmed,
   * lower case, NFKC), only with `lockout.logUsernames`.
   */
  'login.failed': { usernameHash: string, username?: string, failures: number }
  'login.locked': { usernameHash: string, username?: string, scope: 'username' | 'ip', retryAfterMs: number }
  'anomaly.detected': { rule: AnomalyRule, decision: AnomalyDecision, at: 'login' | 'request', detail: Record<string, unknown> }
  /** `app.sessions.trustDevice` vouched for a session, but its user has `max` devices and countries known: this one is not remembered. */
  'anomaly.memory_full': { kind: 'device' | 'country' | 'remembered_device', max: number }
  /**
   * The user answered a "Was this you?" alert about a flagged session
   * (`app.sessions.answerAlert()`): `'yes'` vouched for it, `'no'` signed it
   * out (then also `session.revoked` with reason `'not-me'`).
   */
  'alert.answered': { answer: 'yes' | 'no' }
  /** "Remember this device": a vouched sign-in's device is remembered (its cookie written), for the first time. */
  'device.remembered': Record<string, never>
  /** A remembered device was forgotten: the one of a revoked session (`'device'`), or all of the user's (`'all'`, "sign out everywhere"). */
  'device.forgotten': { scope: 'device' | 'all' }
}

export type SessionEventName = keyof SessionEvents

/** Common to every event. Never a token, fingerprint or refresh token. */
export interface EventBase<N extends SessionEventName = SessionEventName> {
  version: typeof EVENT_VERSION
  type: N
  /** Epoch ms, from the plugin's clock. */
  time: number
  userId?: string
  sessionId?: string
  /** The session's device, summarised. */
  device?: { type: DeviceType, name: string }
  /** The IP as the privacy policy stores it. */
  ip?: string
  /** The session's country and city, when the app's `resolveLocation` gave them. */
  location?: { country?: string, city?: string }
}

/** An event as listeners receive it. */
export type SessionEvent<N extends SessionEventName = SessionEventName> = {
  [K in N]: EventBase<K> & SessionEvents[K]
}[N]

/** Who an event is about: a session, or what is known without one. */
export type EventSubject = Pick<SessionRecord, 'userId'> & Partial<Pick<SessionRecord, 'id' | 'device' | 'ip' | 'location' | 'createdAt'>>

/** The events that end a session: they carry its `durationMs`. */
const ENDINGS: ReadonlySet<SessionEventName> = new Set<SessionEventName>(['session.revoked', 'session.evicted', 'session.expired'])

/** A log level of Fastify's logger (pino's), or `'silent'` for no line at all. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'

/** The `logging` option: how the event stream writes to the log. */
export interface LoggingOptions {
  /**
   * The level each event is logged at, by event name; the others keep
   * theirs. `'silent'` logs nothing for that event (listeners still get it).
   * @default refusals (`auth.rejected`) at debug, lockouts, reuse and anomalies at warn, `session.refreshed` at debug, the rest at info
   */
  levels?: Partial<Record<SessionEventName, LogLevel>>
}

export const LOGGING_OPTION_NAMES: OptionNames<LoggingOptions> = { levels: true }

/** The level of each event. */
export type LoggingPolicy = Readonly<Record<SessionEventName, LogLevel>>

// A refusal is routine (an expired token, a closed tab coming back): debug, or every 401 is a log line.
const DEFAULT_LEVELS: LoggingPolicy = {
  'session.created': 'info',
  'session.refreshed': 'debug',
  'session.revoked': 'info',
  'session.evicted': 'info',
  'session.expired': 'info',
  'auth.rejected': 'debug',
  'refresh.reuse_detected': 'warn',
  'challenge.completed': 'info',
  'login.failed': 'info',
  'login.locked': 'warn',
  'anomaly.detected': 'warn',
  'anomaly.memory_full': 'warn',
  'alert.answered': 'info',
  'device.remembered': 'info',
  'device.forgotten': 'info'
}
const EVENT_NAMES: OptionNames<LoggingPolicy> = {
  'session.created': true,
  'session.refreshed': true,
  'session.revoked': true,
  'session.evicted': true,
  'session.expired': true,
  'auth.rejected': true,
  'refresh.reuse_detected': true,
  'challenge.completed': true,
  'login.failed': true,
  'login.locked': true,
  'anomaly.detected': true,
  'anomaly.memory_full': true,
  'alert.answered': true,
  'device.remembered': true,
  'device.forgotten': true
}
const LOG_LEVELS: ReadonlySet<unknown> = new Set<LogLevel>(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])

export function parseLoggingOptions (value: LoggingOptions | undefined): LoggingPolicy {
  const options = section(value, LOGGING_OPTION_NAMES, 'logging')
  const levels = section(options.levels, EVENT_NAMES, 'logging.levels')
  for (const [name, level] of Object.entries(levels)) {
    if (!LOG_LEVELS.has(level)) throw new InvalidOptionError(`logging.levels.${name}`, `must be one of ${[...LOG_LEVELS].join(', ')}`)
  }
  return Object.freeze({ ...DEFAULT_LEVELS, ...levels })
}

type Listeners = { [K in SessionEventName]: [SessionEvent<K>] } & { event: [SessionEvent] }

/**
 * The plugin's event stream. Each event is logged at once (session id hashed),
 * then handed to listeners on a later turn of the event loop, so a slow or
 * throwing listener never delays or breaks the request that caused it.
 * `on('event', …)` receives every event.
 */
export class SessionEventStream extends EventEmitter<Listeners> {
  readonly #log: FastifyBaseLogger
  readonly #onEvent: ((event: SessionEvent) => void) | undefined
  readonly #observe: (event: SessionEvent) => void
  readonly #levels: LoggingPolicy

  /** `observe` sees each event synchronously (the plugin's own counters); it must not throw. */
  constructor (log: FastifyBaseLogger, onEvent: ((event: SessionEvent) => void) | undefined, observe: (event: SessionEvent) => void, levels: LoggingPolicy) {
    super({ captureRejections: false })
    this.#log = log
    this.#onEvent = onEvent
    this.#observe = observe
    this.#levels = levels
  }

  publish<N extends SessionEventName> (log: FastifyBaseLogger | undefined, type: N, time: number, subject: EventSubject | undefined, fields: SessionEvents[N]): void {
    // One rule for every way a session ends: its duration is measured here, from the record that ended.
    const lived = ENDINGS.has(type) && subject?.createdAt !== undefined ? { durationMs: Math.max(0, time - subject.createdAt) } : {}
    const event = { version: EVENT_VERSION, type, time, ...describe(subject), ...fields, ...lived } as SessionEvent<N>
    const level = this.#levels[type]
    if (level !== 'silent') {
      const logged: Record<string, unknown> = { ...event }
      // The log line has its own time; the event's is the plugin clock's, which tests move.
      delete logged.version
      delete logged.time
      if (event.sessionId !== undefined) logged.sessionId = hashId(event.sessionId)
      ;(log ?? this.#log)[level](logged, `session guard: ${type}`)
    }
    this.#observe(event as SessionEvent)
    if (this.#onEvent === undefined && this.listenerCount(type) === 0 && this.listenerCount('event') === 0) return
    setImmediate(() => this.#dispatch(event as SessionEvent))
  }

  #dispatch (event: SessionEvent): void {
    // EventEmitter's typing cannot follow an event's name to its shape; Listeners ties them.
    const emit = this.emit.bind(this) as (name: string, value: SessionEvent) => boolean
    for (const deliver of [() => this.#onEvent?.(event), () => emit(event.type, event), () => emit('event', event)]) {
      try {
        deliver()
      } catch (err) {
        this.#log.error({ err, event: event.type }, 'session guard: an event listener threw')
      }
    }
  }
}

/** A session id as logs show it: enough to correlate lines, useless to present. */
export function hashId (sessionId: string): string {
  return sha256(sessionId).slice(0, 16)
}

type DeviceSummary = NonNullable<EventBase['device']>

/**
 * One frozen summary per device object. The device parser hands out one object
 * per distinct device, so the events of one device, and the login history
 * entries made of them, share one summary rather than each holding a copy.
 */
const summaries = new WeakMap<DeviceInfo, DeviceSummary>()

function summaryOf (device: DeviceInfo): DeviceSummary {
  let summary = summaries.get(device)
  if (summary === undefined) {
    summary = Object.freeze({ type: device.type, name: device.name })
    summaries.set(device, summary)
  }
  return summary
}

function describe (subject: EventSubject | undefined): Partial<EventBase> {
  if (subject === undefined) return {}
  const base: Partial<EventBase> = { userId: subject.userId }
  if (subject.id !== undefined) base.sessionId = subject.id
  if (subject.device !== undefined) base.device = summaryOf(subject.device)
  if (subject.ip !== undefined) base.ip = subject.ip
  const place = subject.location
  if (place?.country !== undefined || place?.city !== undefined) {
    base.location = {
      ...(place.country === undefined ? {} : { country: place.country }),
      ...(place.city === undefined ? {} : { city: place.city })
    }
  }
  return base
}
