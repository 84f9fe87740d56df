import type { FastifyRequest } from 'fastify'
import type { KeyOf } from '../crypto.js'
import { InvalidOptionError } from '../errors.js'
import type { ClientInfo, Clock, Location, SessionRecord } from '../session.js'
import type { SessionStore } from '../stores/store.js'
import { count, duration, optionalFunction, section, type Duration, type OptionNames } from '../validate.js'
import type { AnomalyDecision, AnomalyRule, SessionEventStream } from './events.js'

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
  /** A login from a device (browser, OS, type, model) the user has not used within `memory`. @default 'flag' */
  newDevice?: AnomalyDecision
  /** A login from a country the user has not logged in from within `memory` (needs `resolveLocation`). @default 'flag' */
  newCountry?: AnomalyDecision
  /** A session's IP changes between requests (mobile networks do this often). @default 'ignore' */
  ipChange?: AnomalyDecision
  /** More distinct IPs across a user's live sessions than `max`. @default { policy: 'flag', max: 10 } */
  tooManyIps?: { policy?: AnomalyDecision, max?: number }
  /** More distinct countries across a user's live sessions than `max`. @default { policy: 'flag', max: 3 } */
  tooManyCountries?: { policy?: AnomalyDecision, max?: number }
  /**
   * Two places (logins or requests, with coordinates) farther apart than
   * `maxSpeedKmh` allows; distances under `minDistanceKm` are geolocation noise.
   * @default { policy: 'flag', maxSpeedKmh: 1000, minDistanceKm: 200 }
   */
  impossibleTravel?: { policy?: AnomalyDecision, maxSpeedKmh?: number, minDistanceKm?: number }
  /** More than `max` logins of one user in a `window`. @default { policy: 'flag', max: 10, window: '1m' } */
  loginBurst?: { policy?: AnomalyDecision, max?: number, window?: Duration }
  /** How long a device or country stays known after a login from it. @default '90d' */
  memory?: Duration
  /** Decides per case; returning `undefined` keeps the rule's policy. */
  decide?: AnomalyHook
}

const ANOMALY_OPTION_NAMES: OptionNames<AnomalyOptions> = {
  newDevice: true,
  newCountry: true,
  ipChange: true,
  tooManyIps: true,
  tooManyCountries: true,
  impossibleTravel: true,
  loginBurst: true,
  memory: true,
  decide: true
}
const DECISIONS: ReadonlySet<string> = new Set(['ignore', 'flag', 'revoke'])

export function parseAnomalyOptions (value: AnomalyOptions | undefined): AnomalyPolicy {
  const options = section(value, ANOMALY_OPTION_NAMES, 'anomalies')
  const { tooManyIps = {}, tooManyCountries = {}, impossibleTravel = {}, loginBurst = {} } = options
  return {
    newDevice: decision(options.newDevice ?? 'flag', 'anomalies.newDevice'),
    newCountry: decision(options.newCountry ?? 'flag', 'anomalies.newCountry'),
    ipChange: decision(options.ipChange ?? 'ignore', 'anomalies.ipChange'),
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
    decide: optionalFunction(options.decide, 'anomalies.decide', '(anomaly, request) => decision')
  }
}

function decision (value: unknown, name: string): AnomalyDecision {
  if (typeof value !== 'string' || !DECISIONS.has(value)) throw new InvalidOptionError(name, "must be 'ignore', 'flag' or 'revoke'")
  return value as AnomalyDecision
}

/** The anomaly rules, after validation. */
export interface AnomalyPolicy {
  readonly newDevice: AnomalyDecision
  readonly newCountry: AnomalyDecision
  readonly ipChange: AnomalyDecision
  readonly tooManyIps: { readonly policy: AnomalyDecision, readonly max: number }
  readonly tooManyCountries: { readonly policy: AnomalyDecision, readonly max: number }
  readonly impossibleTravel: { readonly policy: AnomalyDecision, readonly maxSpeedKmh: number, readonly minDistanceKm: number }
  readonly loginBurst: { readonly policy: AnomalyDecision, readonly max: number, readonly windowMs: number }
  /** How long a device or country stays known for a user after it was last seen. */
  readonly memoryMs: number
  readonly decide: AnomalyHook | undefined
}

/** What the checks concluded: the flags to store, or a refusal. */
export interface Verdict {
  readonly flags: readonly AnomalyRule[]
  readonly revoke: boolean
}

const CLEAR: Verdict = Object.freeze({ flags: [], revoke: false })
const EARTH_RADIUS_KM = 6371

/**
 * Anomaly detection at login and on requests. Each rule has a policy
 * (`'ignore' | 'flag' | 'revoke'`) that the app's `decide` hook may override per
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

  /** Checks a login of `userId` from `client`, before its session is created. */
  async atLogin (request: FastifyRequest, userId: string, client: ClientInfo): Promise<Verdict> {
    const store = this.#store
    const policy = this.#policy
    const now = this.#clock()
    const found: Anomaly[] = []
    const report = (rule: AnomalyRule, detail: Record<string, unknown>): void => { found.push({ rule, at: 'login', userId, detail }) }
    const keyOf = this.#keyOf
    const user = keyOf('anomaly.user', userId)

    // A user's first login in `memoryMs` has nothing to compare with: no device or country is "new".
    const logins = await store.increment(`anomaly:logins:${user}`, policy.memoryMs, now)
    const device = client.device
    if (device !== undefined && policy.newDevice !== 'ignore') {
      // Browser and OS, not their versions: an update is not a new device.
      const known = await store.increment(`anomaly:device:${user}:${keyOf('anomaly.device', `${device.type}|${device.browser.name ?? ''}|${device.os.name ?? ''}|${device.model ?? ''}`)}`, policy.memoryMs, now)
      if (known.count === 1 && logins.count > 1) report('new_device', { device: device.name })
    }
    const country = client.location?.country
    if (country !== undefined && policy.newCountry !== 'ignore') {
      const known = await store.increment(`anomaly:country:${user}:${keyOf('anomaly.country', country)}`, policy.memoryMs, now)
      if (known.count === 1 && logins.count > 1) report('new_country', { country })
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
    // `active` is most recently active first: compare with where the user was last seen.
    const last = active.find((s) => hasCoordinates(s.location))
    if (last !== undefined) this.#travel(last, client.location, now, (detail) => report('impossible_travel', detail))

    return await this.#decide(request, found)
  }

  /** Checks a request of a live session whose client changed (`changes` from the client observer). */
  async onRequest (request: FastifyRequest, session: SessionRecord, changes: ClientInfo): Promise<Verdict> {
    const found: Anomaly[] = []
    const report = (rule: AnomalyRule, detail: Record<string, unknown>): void => {
      found.push({ rule, at: 'request', userId: session.userId, sessionId: session.id, detail })
    }
    if (changes.ip !== session.ip && this.#policy.ipChange !== 'ignore') report('ip_change', { from: session.ip, to: changes.ip })
    this.#travel(session, changes.location, this.#clock(), (detail) => report('impossible_travel', detail))
    return await this.#decide(request, found, session)
  }

  /** Reports travel from `from` (at its last activity) to `to` (now) faster than a plausible speed. */
  #travel (from: SessionRecord, to: Location | undefined, now: number, report: (detail: Record<string, unknown>) => void): void {
    const rule = this.#policy.impossibleTravel
    const origin = from.location
    if (rule.policy === 'ignore' || !hasCoordinates(to) || !hasCoordinates(origin)) return
    const km = distanceKm(origin.latitude, origin.longitude, to.latitude, to.longitude)
    if (km < rule.minDistanceKm) return
    const hours = Math.max(now - from.lastSeenAt, 1) / 3_600_000
    const speedKmh = km / hours
    if (speedKmh > rule.maxSpeedKmh) {
      report({ distanceKm: Math.round(km), minutes: Math.round(hours * 60), speedKmh: Math.round(speedKmh), from: origin.country, to: to.country })
    }
  }

  async #decide (request: FastifyRequest, found: Anomaly[], session?: SessionRecord): Promise<Verdict> {
    if (found.length === 0) return CLEAR
    const flags: AnomalyRule[] = []
    let revoke = false
    for (const anomaly of found) {
      const decision = await this.#policy.decide?.(anomaly, request) ?? this.#default(anomaly.rule)
      if (decision === 'ignore') continue
      if (decision === 'revoke') revoke = true
      flags.push(anomaly.rule)
      this.#events.publish(request.log, 'anomaly.detected', this.#clock(), session ?? { userId: anomaly.userId }, {
        rule: anomaly.rule, decision, at: anomaly.at, detail: anomaly.detail
      })
    }
    return { flags, revoke }
  }

  #default (rule: AnomalyRule): AnomalyDecision {
    const policy = this.#policy
    switch (rule) {
      case 'new_device': return policy.newDevice
      case 'new_country': return policy.newCountry
      case 'ip_change': return policy.ipChange
      case 'too_many_ips': return policy.tooManyIps.policy
      case 'too_many_countries': return policy.tooManyCountries.policy
      case 'impossible_travel': return policy.impossibleTravel.policy
      case 'login_burst': return policy.loginBurst.policy
    }
  }
}

function hasCoordinates (location: Location | undefined): location is Location & { latitude: number, longitude: number } {
  return typeof location?.latitude === 'number' && typeof location.longitude === 'number'
}

/** How many distinct defined values, counting `extra` too. */
function distinct (values: Array<string | undefined>, extra: string | undefined): number {
  const set = new Set(values)
  set.add(extra)
  set.delete(undefined)
  return set.size
}

/** Great-circle distance (haversine). */
export function distanceKm (lat1: number, lon1: number, lat2: number, lon2: number): number {
  const rad = Math.PI / 180
  const a = Math.sin((lat2 - lat1) * rad / 2) ** 2 +
    Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin((lon2 - lon1) * rad / 2) ** 2
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.sqrt(a))
}
