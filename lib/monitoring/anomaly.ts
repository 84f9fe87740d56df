import type { FastifyRequest } from 'fastify'
import type { KeyOf } from '../crypto.js'
import type { DeviceInfo } from '../devices/device.js'
import { InvalidOptionError } from '../errors.js'
import { CHALLENGE_FLAG, isChallenged, type ClientInfo, type Clock, type SessionRecord, type TravelAnchor } from '../session.js'
import type { SessionStore } from '../stores/store.js'
import { count, duration, optionalFunction, section, type Duration, type OptionNames } from '../validate.js'
import type { AnomalyDecision, AnomalyRule, EventSubject, SessionEventStream } from './events.js'
import { anchorOf, checkTravel } from './travel.js'

/** One anomaly found, as the `decide` hook and the event see it. */
export interface Anomaly {
  rule: AnomalyRule
  /** At login (before the session exists) or on a request of a live session. */
  at: 'login' | 'request'
  userId: string
  /** The session, on a request. */
  sessionId?: string
  /** What the rule saw: counts, distances, speeds, countries. */
  detail: Record<string, unknown>
}

/**
 * Decides per case, overriding the rule's policy (return `undefined` to keep
 * it). E.g. flag instead of revoke for an allow-listed network, and require a
 * second factor for flagged sessions in the app's own routes.
 */
export type AnomalyHook = (anomaly: Anomaly, request: FastifyRequest) => AnomalyDecision | undefined | Promise<AnomalyDecision | undefined>

export interface AnomalyOptions {
  /**
   * A login from a device (browser, OS, type, model) not known for the user: known means vouched for
   * (the user's first login, or `app.sessions.trustDevice`) and used within `memory` since. @default 'flag'
   */
  newDevice?: AnomalyDecision
  /** A login from a country not known for the user, in the same way (needs `resolveLocation`). @default 'flag' */
  newCountry?: AnomalyDecision
  /** A session's IP changes between requests (mobile networks do this often). @default 'ignore' */
  ipChange?: AnomalyDecision
  /**
   * A session's device (type, browser, OS; model when both name one) changes between requests, e.g.
   * Firefox then curl. Not a browser update, nor an iPad's Safari switching between its desktop (macOS)
   * and mobile user agents. @default 'flag'
   */
  deviceChange?: AnomalyDecision
  /** More distinct IPs across a user's live sessions than `max`. @default { policy: 'flag', max: 10 } */
  tooManyIps?: { policy?: AnomalyDecision, max?: number }
  /** More distinct countries across a user's live sessions than `max`. @default { policy: 'flag', max: 3 } */
  tooManyCountries?: { policy?: AnomalyDecision, max?: number }
  /**
   * Two places (logins or requests, with coordinates) farther apart than
   * `maxSpeedKmh` allows; distances under `minDistanceKm` are geolocation noise.
   * Measured from where the session was last seen and from its anchor (the
   * login place, or the last place a check let through at `minDistanceKm` or
   * more), so a chain of short hops adds up.
   * @default { policy: 'flag', maxSpeedKmh: 1000, minDistanceKm: 200 }
   */
  impossibleTravel?: { policy?: AnomalyDecision, maxSpeedKmh?: number, minDistanceKm?: number }
  /** More than `max` logins of one user in a `window`. @default { policy: 'flag', max: 10, window: '1m' } */
  loginBurst?: { policy?: AnomalyDecision, max?: number, window?: Duration }
  /** How long a device or country stays known after it was vouched for or last logged in from. @default '90d' */
  memory?: Duration
  /**
   * How many devices and countries `app.sessions.trustDevice` may make known for one user; each new
   * one counts for `memory` after the last. Past it, the session is still vouched for (its flags go)
   * but nothing new is remembered, and `anomaly.memory_full` is published: a device's model is
   * client-chosen text, so an account that can vouch again and again could otherwise grow the store
   * without bound. @default 50
   */
  maxKnownPerUser?: number
  /** Decides per case; returning `undefined` keeps the rule's policy. */
  decide?: AnomalyHook
}

const ANOMALY_OPTION_NAMES: OptionNames<AnomalyOptions> = {
  newDevice: true,
  newCountry: true,
  ipChange: true,
  deviceChange: true,
  tooManyIps: true,
  tooManyCountries: true,
  impossibleTravel: true,
  loginBurst: true,
  memory: true,
  maxKnownPerUser: true,
  decide: true
}
const DECISIONS: ReadonlySet<string> = new Set(['ignore', 'flag', 'challenge', 'revoke'])

export function parseAnomalyOptions (value: AnomalyOptions | undefined): AnomalyPolicy {
  const options = section(value, ANOMALY_OPTION_NAMES, 'anomalies')
  const { tooManyIps = {}, tooManyCountries = {}, impossibleTravel = {}, loginBurst = {} } = options
  return {
    newDevice: decision(options.newDevice ?? 'flag', 'anomalies.newDevice'),
    newCountry: decision(options.newCountry ?? 'flag', 'anomalies.newCountry'),
    ipChange: decision(options.ipChange ?? 'ignore', 'anomalies.ipChange'),
    deviceChange: decision(options.deviceChange ?? 'flag', 'anomalies.deviceChange'),
    tooManyIps: { policy: decision(tooManyIps.policy ?? 'flag', 'anomalies.tooManyIps.policy'), max: count(tooManyIps.max ?? 10, 'anomalies.tooManyIps.max') },
    tooManyCountries: {
      policy: decision(tooManyCountries.policy ?? 'flag', 'anomalies.tooManyCountries.policy'),
      max: count(tooManyCountries.max ?? 3, 'anomalies.tooManyCountries.max')
    },
    impossibleTravel: {
      policy: decision(impossibleTravel.policy ?? 'flag', 'anomalies.impossibleTravel.policy'),
      maxSpeedKmh: count(impossibleTravel.maxSpeedKmh ?? 1000, 'anomalies.impossibleTravel.maxSpeedKmh'),
      minDistanceKm: count(impossibleTravel.minDistanceKm ?? 200, 'anomalies.impossibleTravel.minDistanceKm')
    },
    loginBurst: {
      policy: decision(loginBurst.policy ?? 'flag', 'anomalies.loginBurst.policy'),
      max: count(loginBurst.max ?? 10, 'anomalies.loginBurst.max'),
      windowMs: duration(loginBurst.window ?? '1m', 'anomalies.loginBurst.window')
    },
    memoryMs: duration(options.memory ?? '90d', 'anomalies.memory'),
    maxKnownPerUser: count(options.maxKnownPerUser ?? 50, 'anomalies.maxKnownPerUser'),
    decide: optionalFunction(options.decide, 'anomalies.decide', '(anomaly, request) => decision')
  }
}

function decision (value: unknown, name: string): AnomalyDecision {
  if (typeof value !== 'string' || !DECISIONS.has(value)) throw new InvalidOptionError(name, "must be 'ignore', 'flag', 'challenge' or 'revoke'")
  return value as AnomalyDecision
}

/** The anomaly rules, after validation. */
export interface AnomalyPolicy {
  readonly newDevice: AnomalyDecision
  readonly newCountry: AnomalyDecision
  readonly ipChange: AnomalyDecision
  readonly deviceChange: AnomalyDecision
  readonly tooManyIps: { readonly policy: AnomalyDecision, readonly max: number }
  readonly tooManyCountries: { readonly policy: AnomalyDecision, readonly max: number }
  readonly impossibleTravel: { readonly policy: AnomalyDecision, readonly maxSpeedKmh: number, readonly minDistanceKm: number }
  readonly loginBurst: { readonly policy: AnomalyDecision, readonly max: number, readonly windowMs: number }
  /** How long a device or country stays known for a user after it was last seen. */
  readonly memoryMs: number
  /** How many devices and countries may be vouched for per user while their count lives (`memoryMs` after the last). */
  readonly maxKnownPerUser: number
  readonly decide: AnomalyHook | undefined
}

/** What the checks concluded: the flags to store, or a refusal. */
export interface Verdict {
  /** The rules that fired and were not ignored, and `CHALLENGE_FLAG` when one of them asks for a step-up. */
  readonly flags: readonly string[]
  readonly revoke: boolean
  /** On a request: the session's new travel anchor, when it changed. */
  readonly travelAnchor?: TravelAnchor
}

const CLEAR: Verdict = Object.freeze({ flags: [], revoke: false })

/**
 * Anomaly detection at login and on requests. Each rule has a policy
 * (`'ignore' | 'flag' | 'challenge' | 'revoke'`) that the app's `decide` hook may override per
 * case; every anomaly not ignored is published as `anomaly.detected`.
 */
export class AnomalyDetector {
  readonly #store: SessionStore
  readonly #events: SessionEventStream
  readonly #clock: Clock
  readonly #policy: AnomalyPolicy
  /** Names the counters' keys: a dump of the store reveals no user, device or country. */
  readonly #keyOf: KeyOf

  constructor ({ store, events, clock, keyOf }: { store: SessionStore, events: SessionEventStream, clock: Clock, keyOf: KeyOf }, policy: AnomalyPolicy) {
    this.#store = store
    this.#events = events
    this.#clock = clock
    this.#policy = policy
    this.#keyOf = keyOf
  }

  /**
   * Checks a login of `userId` from `client`, before its session is created. A
   * `rememberedDevice` (its "Remember this device" cookie recognised for the
   * user) is not new: the `new_device` rule passes it; every other rule applies.
   */
  async atLogin (request: FastifyRequest, userId: string, client: ClientInfo, { rememberedDevice }: { rememberedDevice: boolean }): Promise<Verdict> {
    const store = this.#store
    const policy = this.#policy
    const now = this.#clock()
    const found: Anomaly[] = []
    const report = (rule: AnomalyRule, detail: Record<string, unknown>): void => { found.push({ rule, at: 'login', userId, detail }) }
    const keyOf = this.#keyOf
    const user = keyOf('anomaly.user', userId)

    // A user's first login in `memoryMs` has nothing to compare with: nothing is "new", and since there
    // is nothing to protect yet, it vouches for its own device and country.
    const logins = await store.increment(`anomaly:logins:${user}`, policy.memoryMs, now)
    const first = logins.count === 1
    const device = client.device
    if (device !== undefined && policy.newDevice !== 'ignore' && !rememberedDevice && !await this.#known(this.#deviceMarker(user, device), first, now)) {
      report('new_device', { device: device.name })
    }
    const country = client.location?.country
    if (country !== undefined && policy.newCountry !== 'ignore' && !await this.#known(this.#countryMarker(user, country), first, now)) {
      report('new_country', { country })
    }
    if (policy.loginBurst.policy !== 'ignore') {
      const window = Math.floor(now / policy.loginBurst.windowMs)
      const burst = await store.increment(`anomaly:burst:${user}:${window}`, policy.loginBurst.windowMs, now)
      if (burst.count > policy.loginBurst.max) report('login_burst', { logins: burst.count, windowMs: policy.loginBurst.windowMs })
    }

    const active = await store.listUser(userId, now)
    const ips = distinct(active.map((s) => s.ip), client.ip)
    if (policy.tooManyIps.policy !== 'ignore' && ips > policy.tooManyIps.max) report('too_many_ips', { ips, max: policy.tooManyIps.max })
    const countries = distinct(active.map((s) => s.location?.country), country)
    if (policy.tooManyCountries.policy !== 'ignore' && countries > policy.tooManyCountries.max) {
      report('too_many_countries', { countries, max: policy.tooManyCountries.max })
    }
    // `active` is most recently active first: compare with where the user was last seen, in a session that
    // proved itself. A challenged one's place is unproven: measured from it, a second sign-in from there passes.
    const last = active.find((s) => anchorOf(s) !== undefined && !isChallenged(s))
    if (policy.impossibleTravel.policy !== 'ignore' && last !== undefined) {
      const { impossible } = checkTravel(policy.impossibleTravel, last, client.location, now)
      if (impossible !== undefined) report('impossible_travel', impossible)
    }

    // The events (and so the history) say which client tried: there is no session yet.
    return await this.#decide(request, found, { ...client, userId })
  }

  /**
   * Vouches for a session's device and country (`app.sessions.trustDevice`):
   * they become known for its user (at most `maxKnownPerUser` of them), and the
   * session loses its `new_device` and `new_country` flags, cap or not: the app
   * vouched for this session. A pending step-up stays (`completeChallenge` lifts it).
   * Returns whether the session was live.
   */
  async trust (sessionId: string): Promise<boolean> {
    const now = this.#clock()
    const session = await this.#store.get(sessionId, now)
    return session !== undefined && await this.#vouch(session, now, false) !== undefined
  }

  /**
   * Completes the step-up of a challenged session (`request.completeChallenge()`),
   * after the app's second factor: vouches for its device and country as
   * `trust` does, and lifts the restriction. Returns the session as it is now,
   * or `undefined` when it was not live.
   */
  async completeChallenge (request: FastifyRequest, sessionId: string): Promise<SessionRecord | undefined> {
    const now = this.#clock()
    const session = await this.#store.get(sessionId, now)
    if (session === undefined) return undefined
    const completed = await this.#vouch(session, now, true)
    if (completed !== undefined && isChallenged(session)) this.#events.publish(request.log, 'challenge.completed', now, session, {})
    return completed
  }

  /**
   * Makes the session's device and country known, and clears the flags that vouching answers; the step-up
   * only with `liftChallenge` (`completeChallenge`): vouching from elsewhere is not this session's second factor.
   * Returns the session as it is now, or `undefined` when it ended meanwhile.
   */
  async #vouch (session: SessionRecord, now: number, liftChallenge: boolean): Promise<SessionRecord | undefined> {
    const store = this.#store
    const user = this.#keyOf('anomaly.user', session.userId)
    if (session.device !== undefined) await this.#remember(session, user, 'device', this.#deviceMarker(user, session.device), now)
    const country = session.location?.country
    if (country !== undefined) await this.#remember(session, user, 'country', this.#countryMarker(user, country), now)
    const flags = session.flags?.filter((flag) => !VOUCHED_RULES.has(flag) && (flag !== CHALLENGE_FLAG || !liftChallenge)) ?? []
    if (flags.length === (session.flags?.length ?? 0)) return session
    const changes = { flags: flags.length === 0 ? undefined : flags }
    return await store.touch(session.id, { lastSeenAt: session.lastSeenAt, idleExpiresAt: session.idleExpiresAt, changes }, now)
  }

  /**
   * Makes the device or country under `key` known, or keeps it known. A new one
   * is counted first, under one key per user (`memoryMs` after the last): past
   * `maxKnownPerUser` it is not written, so one account vouching again and again
   * for made-up models cannot grow the store. The count is one atomic increment
   * before the write, so concurrent calls cannot pass the cap together (two for
   * the same new device may both count it: the safe side).
   */
  async #remember (session: SessionRecord, user: string, kind: 'device' | 'country', key: string, now: number): Promise<void> {
    const store = this.#store
    const { memoryMs, maxKnownPerUser } = this.#policy
    if (await store.counter(key, now) === undefined) {
      const vouched = await store.increment(`anomaly:vouched:${user}`, memoryMs, now)
      if (vouched.count > maxKnownPerUser) {
        this.#events.publish(undefined, 'anomaly.memory_full', now, session, { kind, max: maxKnownPerUser })
        return
      }
    }
    await store.increment(key, memoryMs, now)
  }

  /** The store key marking a device known for a user: browser and OS, not their versions (an update is not a new device). */
  #deviceMarker (user: string, device: DeviceInfo): string {
    return `anomaly:device:${user}:${this.#keyOf('anomaly.device', `${device.type}|${device.browser.name ?? ''}|${device.os.name ?? ''}|${device.model ?? ''}`)}`
  }

  /** The store key marking a country known for a user. */
  #countryMarker (user: string, country: string): string {
    return `anomaly:country:${user}:${this.#keyOf('anomaly.country', country)}`
  }

  /**
   * Whether the device or country under `key` is known. Only a vouched one is
   * (the user's first login, or `trust`): a login never makes its own device
   * known, so an attacker's refused or flagged login teaches the rule nothing.
   * A known one stays known while it is used.
   */
  async #known (key: string, first: boolean, now: number): Promise<boolean> {
    if (!first && await this.#store.counter(key, now) === undefined) return false
    await this.#store.increment(key, this.#policy.memoryMs, now)
    return true
  }

  /** Checks a request of a live session whose client changed (`changes` from the client observer). */
  async onRequest (request: FastifyRequest, session: SessionRecord, changes: ClientInfo): Promise<Verdict> {
    const policy = this.#policy
    const found: Anomaly[] = []
    const report = (rule: AnomalyRule, detail: Record<string, unknown>): void => {
      found.push({ rule, at: 'request', userId: session.userId, sessionId: session.id, detail })
    }
    if (changes.ip !== session.ip && policy.ipChange !== 'ignore') report('ip_change', { from: session.ip, to: changes.ip })
    const [from, to] = [session.device, changes.device]
    if (policy.deviceChange !== 'ignore' && from !== undefined && to !== undefined && !sameDevice(from, to)) {
      report('device_change', { from: from.name, to: to.name })
    }
    if (policy.impossibleTravel.policy === 'ignore') return await this.#decide(request, found, session)
    const travel = checkTravel(policy.impossibleTravel, session, changes.location, this.#clock())
    if (travel.impossible !== undefined) report('impossible_travel', travel.impossible)
    const verdict = await this.#decide(request, found, session)
    return travel.anchor === session.travelAnchor ? verdict : { ...verdict, travelAnchor: travel.anchor }
  }

  async #decide (request: FastifyRequest, found: Anomaly[], subject: EventSubject): Promise<Verdict> {
    if (found.length === 0) return CLEAR
    const flags: string[] = []
    let revoke = false
    let challenge = false
    for (const anomaly of found) {
      const decision = await this.#policy.decide?.(anomaly, request) ?? this.#default(anomaly.rule)
      if (decision === 'ignore') continue
      if (decision === 'revoke') revoke = true
      if (decision === 'challenge') challenge = true
      flags.push(anomaly.rule)
      this.#events.publish(request.log, 'anomaly.detected', this.#clock(), subject, {
        rule: anomaly.rule, decision, at: anomaly.at, detail: anomaly.detail
      })
    }
    // A step-up is a flag of its own: the session carries it, in every store, until the step-up is done.
    if (challenge) flags.push(CHALLENGE_FLAG)
    return { flags, revoke }
  }

  #default (rule: AnomalyRule): AnomalyDecision {
    const policy = this.#policy
    switch (rule) {
      case 'new_device': return policy.newDevice
      case 'new_country': return policy.newCountry
      case 'ip_change': return policy.ipChange
      case 'device_change': return policy.deviceChange
      case 'too_many_ips': return policy.tooManyIps.policy
      case 'too_many_countries': return policy.tooManyCountries.policy
      case 'impossible_travel': return policy.impossibleTravel.policy
      case 'login_burst': return policy.loginBurst.policy
    }
  }
}

/** The flags that vouching for a session's device and country answers. */
const VOUCHED_RULES: ReadonlySet<string> = new Set<AnomalyRule>(['new_device', 'new_country'])

/**
 * Whether a session's device is still the same device (`device_change`): type,
 * browser and OS, not their versions (an update mid-session is no change). The
 * model counts only when both name one: Chromium sends it in a client hint that
 * not every request carries. (`#deviceMarker` keys on the model as it is: a key
 * cannot match "any model".)
 */
function sameDevice (a: DeviceInfo, b: DeviceInfo): boolean {
  if (isIpadSafariSwitch(a, b)) return true
  return a.type === b.type && a.browser.name === b.browser.name && a.os.name === b.os.name &&
    (a.model === undefined || b.model === undefined || a.model === b.model)
}

/**
 * iPadOS Safari asks for desktop sites by default and then sends exactly the
 * macOS Safari user agent; "Request Mobile Website" switches it to the iPad one,
 * mid-session. No request header tells that iPad from a Mac (only script can,
 * from `navigator.maxTouchPoints`), so Safari on macOS and Safari on an iPad
 * pass for one device.
 */
function isIpadSafariSwitch (a: DeviceInfo, b: DeviceInfo): boolean {
  const ipad = (d: DeviceInfo): boolean => d.browser.name === 'Safari' && d.model === 'iPad'
  const mac = (d: DeviceInfo): boolean => d.browser.name === 'Safari' && d.os.name === 'macOS'
  return (ipad(a) && mac(b)) || (mac(a) && ipad(b))
}

/** How many distinct defined values, counting `extra` too. */
function distinct (values: Array<string | undefined>, extra: string | undefined): number {
  const set = new Set(values)
  set.add(extra)
  set.delete(undefined)
  return set.size
}
