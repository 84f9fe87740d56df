import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { randomToken, type KeyOf } from './crypto.js'
import { InvalidOptionError } from './errors.js'
import { checkCookieName, cookieValues, type CookiePolicy } from './http/cookies.js'
import type { EventSubject, SessionEventStream } from './monitoring/events.js'
import type { Clock, SessionRecord } from './session.js'
import type { SessionStore } from './stores/store.js'
import type { DeviceToken, DeviceTokens } from './tokens/device-tokens.js'
import { count, duration, section, type Duration, type OptionNames } from './validate.js'

/** The `rememberDevice` option: "Remember this device" (off unless given). */
export interface RememberDeviceOptions {
  /**
   * How long a remembered device stays remembered after the last vouched
   * sign-in from it (each one renews its cookie and its store marker).
   * @default '90d'
   */
  ttl?: Duration
  /**
   * Name of the device cookie.
   * @default '__Host-sg-dev' ('sg-dev' when `secureCookies` is false)
   */
  cookieName?: string
  /**
   * How many new devices one user may have remembered; each new one counts
   * for `ttl` after the last. Past it a sign-in is not remembered, and
   * `anomaly.memory_full` is published (kind `'remembered_device'`).
   * @default 20
   */
  maxPerUser?: number
}

const REMEMBER_DEVICE_OPTION_NAMES: OptionNames<RememberDeviceOptions> = { ttl: true, cookieName: true, maxPerUser: true }

/** The `rememberDevice` option after validation. */
export interface RememberDevicePolicy {
  readonly ttlMs: number
  readonly cookieName: string
  readonly maxPerUser: number
  /** Whether the cookie is `Secure`, as the plugin's other cookies are. */
  readonly secure: boolean
  /** `SameSite` and `Partitioned`: Lax, unless the plugin's cookies travel cross-site (None). */
  readonly sameSite: 'Lax' | 'None'
  readonly partitioned: boolean
}

/** `undefined` (the feature is off) for `false` or nothing; the defaults for `true`. */
export function parseRememberDeviceOptions (value: RememberDeviceOptions | boolean | undefined, cookies: Pick<CookiePolicy, 'secure' | 'sameSite' | 'partitioned'>): RememberDevicePolicy | undefined {
  const { secure } = cookies
  if (value === undefined || value === false) return undefined
  if (typeof value !== 'boolean' && (typeof value !== 'object' || value === null)) {
    throw new InvalidOptionError('rememberDevice', 'must be a boolean or an object { ttl, cookieName, maxPerUser }')
  }
  const options = value === true ? {} : section(value, REMEMBER_DEVICE_OPTION_NAMES, 'rememberDevice')
  return Object.freeze({
    ttlMs: duration(options.ttl ?? '90d', 'rememberDevice.ttl'),
    cookieName: checkCookieName(options.cookieName ?? (secure ? '__Host-sg-dev' : 'sg-dev'), 'rememberDevice.cookieName', secure),
    maxPerUser: count(options.maxPerUser ?? 20, 'rememberDevice.maxPerUser'),
    secure,
    // A sign-in from an app on another site is a cross-site request: only SameSite=None sends the cookie back with it.
    sameSite: cookies.sameSite === 'None' ? 'None' : 'Lax',
    partitioned: cookies.partitioned
  })
}

/**
 * Most device cookies of the name looked at in one sign-in: a browser holds
 * one per name, and a sibling subdomain can plant a non-`__Host-` one; each
 * costs a MAC and perhaps a store read.
 */
const MAX_DEVICE_COOKIES = 4
/** 128 random bits. */
const DEVICE_ID_BYTES = 16

/**
 * "Remember this device": a signed long-lived cookie that lets a device's
 * next sign-in pass the `new_device` rule.
 *
 * What the store keeps (counters, so every store serves, each bounded in time):
 * - `remember:link:<user>:<session>`: the device remembered with that session
 *   is live. The cookie names the session it was last written for; revoking
 *   that session removes the marker, and so forgets the device. Lives `ttl`,
 *   renewed by each sign-in from the device (which moves it to the new session).
 * - `remember:forgot:<user>`: when the user last forgot every device ("sign out
 *   everywhere"); a cookie written at or before it no longer counts. Lives
 *   `ttl`, as long as any cookie it outdates.
 * - `remember:devices:<user>`: how many new devices were remembered, for `maxPerUser`.
 *
 * `<user>` and `<session>` are keyed hashes: a dump of the store names no one.
 */
export class RememberedDevices {
  readonly #store: SessionStore
  readonly #events: SessionEventStream
  readonly #clock: Clock
  readonly #keyOf: KeyOf
  readonly #tokens: DeviceTokens
  readonly #policy: RememberDevicePolicy

  constructor ({ store, events, clock, keyOf, tokens }: { store: SessionStore, events: SessionEventStream, clock: Clock, keyOf: KeyOf, tokens: DeviceTokens }, policy: RememberDevicePolicy) {
    this.#store = store
    this.#events = events
    this.#clock = clock
    this.#keyOf = keyOf
    this.#tokens = tokens
    this.#policy = policy
  }

  /**
   * The device the request's cookie remembers for `userId`, or `undefined`: a
   * cookie that is forged, altered, expired, written for another user, or
   * forgotten since (its session revoked, or all the user's devices forgotten)
   * counts as none.
   */
  async recognise (request: FastifyRequest, userId: string): Promise<DeviceToken | undefined> {
    const now = this.#clock()
    const devices = cookieValues(request.headers.cookie, this.#policy.cookieName, { limit: MAX_DEVICE_COOKIES })
      .map((value) => this.#tokens.open(value, userId, now))
      .filter((device) => device !== undefined)
    if (devices.length === 0) return undefined
    const user = this.#user(userId)
    const forgot = await this.#store.counter(`remember:forgot:${user}`, now)
    for (const device of devices) {
      if (forgot !== undefined && device.issuedAt <= forgot.lastAt) continue
      if (await this.#store.counter(linkKey(user, device.link), now) !== undefined) return device
    }
    return undefined
  }

  /**
   * Remembers the device of a vouched sign-in (the caller has checked that it
   * is one): writes its cookie, linked to `session`. A device already
   * `recognised` keeps its id and moves to the new session; a new one counts
   * towards `maxPerUser`. Resolves whether the device is remembered.
   */
  async remember (reply: FastifyReply, session: SessionRecord, recognised: DeviceToken | undefined): Promise<boolean> {
    const store = this.#store
    const { ttlMs, maxPerUser, cookieName, secure, sameSite, partitioned } = this.#policy
    const now = this.#clock()
    const user = this.#user(session.userId)
    if (recognised === undefined) {
      const counted = await store.increment(`remember:devices:${user}`, ttlMs, now)
      if (counted.count > maxPerUser) {
        this.#events.publish(reply.log, 'anomaly.memory_full', now, session, { kind: 'remembered_device', max: maxPerUser })
        return false
      }
    }
    const link = this.#keyOf('remember.session', session.id)
    await store.increment(linkKey(user, link), ttlMs, now)
    // The cookie now names this session: the old link would only outlive it.
    if (recognised !== undefined && recognised.link !== link) await store.resetCounter(linkKey(user, recognised.link))
    const deviceId = recognised?.deviceId ?? randomToken(DEVICE_ID_BYTES)
    const token = this.#tokens.issue(session.userId, { deviceId, link, issuedAt: now, expiresAt: now + ttlMs })
    // SameSite=Lax (at least): a sign-in that ends a cross-site redirect (single sign-on) still sends it; it grants nothing alone.
    reply.header('set-cookie', `${cookieName}=${token}; Max-Age=${Math.floor(ttlMs / 1000)}; Path=/; HttpOnly${secure ? '; Secure' : ''}; SameSite=${sameSite}${partitioned ? '; Partitioned' : ''}`)
    if (recognised === undefined) this.#events.publish(reply.log, 'device.remembered', now, session, {})
    return true
  }

  /**
   * Remembers the device of the request's session once the app vouched for it
   * (`request.completeChallenge(reply, { rememberDevice: true })`).
   */
  async rememberVouched (request: FastifyRequest, reply: FastifyReply, session: SessionRecord): Promise<boolean> {
    return await this.remember(reply, session, await this.recognise(request, session.userId))
  }

  /**
   * Moves the device the request's cookie remembers with session `from` to
   * session `to` (which replaced it: `regenerateSession`), so that revoking
   * `to` forgets it.
   */
  async carry (request: FastifyRequest, reply: FastifyReply, from: SessionRecord, to: SessionRecord): Promise<void> {
    const device = await this.recognise(request, from.userId)
    if (device !== undefined && device.link === this.#keyOf('remember.session', from.id)) await this.remember(reply, to, device)
  }

  /**
   * Forgets the device remembered with session `subject.id` (revoked, or the
   * app's `forgetDevice`), whether or not that session is still live.
   * Resolves whether one was remembered.
   */
  async forget (subject: EventSubject & { id: string }, log?: FastifyBaseLogger): Promise<boolean> {
    const now = this.#clock()
    const key = linkKey(this.#user(subject.userId), this.#keyOf('remember.session', subject.id))
    if (await this.#store.counter(key, now) === undefined) return false
    await this.#store.resetCounter(key)
    this.#events.publish(log, 'device.forgotten', now, subject, { scope: 'device' })
    return true
  }

  /** Forgets every device remembered for the user ("sign out everywhere"). */
  async forgetAll (userId: string): Promise<void> {
    const now = this.#clock()
    await this.#store.increment(`remember:forgot:${this.#user(userId)}`, this.#policy.ttlMs, now)
    this.#events.publish(undefined, 'device.forgotten', now, { userId }, { scope: 'all' })
  }

  #user (userId: string): string {
    return this.#keyOf('remember.user', userId)
  }
}

/** What `request.completeChallenge(reply, options)` takes. */
export interface CompleteChallengeOptions {
  /** Also remember the session's device (the `rememberDevice` option): the step-up vouched for it. */
  rememberDevice?: boolean
}

/**
 * The remembered devices and the reply to write their cookie on: asking to
 * remember a device without the option, or without the reply, is the app's mistake.
 */
export function requireDevices (devices: RememberedDevices | undefined, reply: FastifyReply | undefined): { devices: RememberedDevices, reply: FastifyReply } {
  if (devices === undefined) throw new TypeError('rememberDevice: true needs the plugin\'s rememberDevice option')
  if (reply === undefined) throw new TypeError('rememberDevice: true needs the reply: request.completeChallenge(reply, { rememberDevice: true })')
  return { devices, reply }
}

function linkKey (user: string, link: string): string {
  return `remember:link:${user}:${link}`
}
