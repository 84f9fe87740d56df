import type { FastifyRequest } from 'fastify'
import { sha256 } from '../crypto.js'
import type { AnomalyDecision, AnomalyRule } from './events.js'
import type { SessionEventStream } from './events.js'
import type { Clock } from '../session.js'
import type { ClientInfo, SessionStore } from '../stores/store.js'
import type { Location, SessionRecord } from '../session.js'

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

  constructor ({ store, events, clock }: { store: SessionStore, events: SessionEventStream, clock: Clock }, policy: AnomalyPolicy) {
    this.#store = store
    this.#events = events
    this.#clock = clock
    this.#policy = policy
  }

  /** Checks a login of `userId` from `client`, before its session is created. */
  async atLogin (request: FastifyRequest, userId: string, client: ClientInfo): Promise<Verdict> {
    const store = this.#store
    const policy = this.#policy
    const now = this.#clock()
    const found: Anomaly[] = []
    const report = (rule: AnomalyRule, detail: Record<string, unknown>): void => { found.push({ rule, at: 'login', userId, detail }) }
    const user = sha256(userId)

    // A user's first login in `memoryMs` has nothing to compare with: no device or country is "new".
    const logins = await store.increment(`anomaly:logins:${user}`, policy.memoryMs, now)
    const device = client.device
    if (device !== undefined && policy.newDevice !== 'ignore') {
      // Browser and OS, not their versions: an update is not a new device.
      const known = await store.increment(`anomaly:device:${user}:${sha256(`${device.type}|${device.browser.name ?? ''}|${device.os.name ?? ''}|${device.model ?? ''}`)}`, policy.memoryMs, now)
      if (known.count === 1 && logins.count > 1) report('new_device', { device: device.name })
    }
    const country = client.location?.country
    if (country !== undefined && policy.newCountry !== 'ignore') {
      const known = await store.increment(`anomaly:country:${user}:${country}`, policy.memoryMs, now)
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
