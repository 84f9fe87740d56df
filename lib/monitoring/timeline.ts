import type { FastifyBaseLogger } from 'fastify'
import type { Clock } from '../session.js'
import type { StoreStats } from '../stores/store.js'
import { InvalidOptionError } from '../errors.js'
import { count, duration, section, type Duration, type OptionNames } from '../validate.js'
import type { SessionEvent, SessionEventName } from './events.js'
import { bump } from './metrics.js'

/** The `timeline` option: this instance's time series for dashboards (see docs/monitoring.md, "Timeline"). */
export interface TimelineOptions {
  /**
   * The width of one point of the series; the store's live-session count is sampled once per interval.
   * @default '5m'
   */
  interval?: Duration
  /**
   * Points kept, the oldest dropped first: the series spans `points × interval`.
   * @default 288 (a day of five-minute points)
   */
  points?: number
}

export const TIMELINE_OPTION_NAMES: OptionNames<TimelineOptions> = { interval: true, points: true }

/** The timeline policy, or `false` when no series is kept. */
export type TimelinePolicy = { readonly intervalMs: number, readonly points: number } | false

const DEFAULT_INTERVAL = '5m'
const DEFAULT_POINTS = 288
/** More points than this would make a dashboard's answer large for no reader's benefit. */
const MAX_POINTS = 10_000

export function parseTimelineOptions (value: TimelineOptions | false | undefined): TimelinePolicy {
  if (value === false) return false
  const options = section(value, TIMELINE_OPTION_NAMES, 'timeline')
  return Object.freeze({
    intervalMs: duration(options.interval ?? DEFAULT_INTERVAL, 'timeline.interval'),
    points: points(options.points)
  })
}

function points (value: number | undefined): number {
  const n = count(value ?? DEFAULT_POINTS, 'timeline.points')
  if (n > MAX_POINTS) throw new InvalidOptionError('timeline.points', `must be at most ${MAX_POINTS}`)
  return n
}

/**
 * The upper bounds (ms) of the session-duration buckets: up to a minute, five
 * minutes, a quarter, an hour, four hours, twelve hours, a day, a week, and longer.
 */
export const DURATION_BOUNDS_MS: readonly number[] = [60_000, 300_000, 900_000, 3_600_000, 14_400_000, 43_200_000, 86_400_000, 604_800_000, Infinity]

/** One point of the series: what this instance saw in `[start, start + intervalMs)`. */
export interface TimelinePoint {
  /** Epoch ms. */
  start: number
  /** Live sessions in the store (every instance's), as sampled in this interval; `null` when no sample was taken. */
  activeSessions: number | null
  /** Sessions created (sign-ins). */
  signIns: number
  /** Failed sign-ins the app reported (`loginAttempts.fail`). */
  failedLogins: number
  lockouts: number
  anomalies: number
  /** Sessions that ended: revoked (sign-out included), evicted or expired. */
  ended: number
}

/** `app.sessions.timeline()`: the series and the figures of its whole window. */
export interface SessionTimeline {
  intervalMs: number
  /** Oldest first; one per interval of the window, the last the current one. */
  points: TimelinePoint[]
  /** Sign-ins in the window by country (`'unknown'` without one). */
  signInsByCountry: Record<string, number>
  /** Sign-ins in the window by device type. */
  signInsByDeviceType: Record<string, number>
  /** Anomalies in the window by rule. */
  anomaliesByRule: Record<string, number>
  /**
   * How long the sessions that ended in the window had lasted: one count per
   * bucket of `DURATION_BOUNDS_MS` (`upToMs` null for the last, unbounded one).
   */
  durations: Array<{ upToMs: number | null, count: number }>
}

/** The events the series counts; the others (refreshes, refusals …) never make an interval. */
const COUNTED: ReadonlySet<SessionEventName> = new Set<SessionEventName>([
  'session.created', 'login.failed', 'login.locked', 'anomaly.detected', 'session.revoked', 'session.evicted', 'session.expired'
])

interface Bucket {
  start: number
  activeSessions: number | null
  signIns: number
  failedLogins: number
  lockouts: number
  anomalies: number
  ended: number
  countries: Record<string, number>
  deviceTypes: Record<string, number>
  rules: Record<string, number>
  durations: number[]
}

/**
 * This instance's time series, fed by the event stream: sign-ins, failures,
 * lockouts, anomalies and ended sessions per interval, in a ring of at most
 * `points` intervals. Event counts are what this instance handled since it
 * started (add up the instances' for a cluster's); the live-session count is
 * the store's, sampled once per interval by a timer and at each read.
 */
export class Timeline {
  readonly #policy: TimelinePolicy
  readonly #clock: Clock
  readonly #stats: (now: number) => Promise<StoreStats>
  readonly #log: FastifyBaseLogger
  /** By interval number (`floor(time / intervalMs)`); pruned to the window on each write. */
  readonly #buckets = new Map<number, Bucket>()
  /** The newest interval written. */
  #newest = -Infinity
  #timer: NodeJS.Timeout | undefined

  constructor ({ clock, stats, log }: { clock: Clock, stats: (now: number) => Promise<StoreStats>, log: FastifyBaseLogger }, policy: TimelinePolicy) {
    this.#policy = policy
    this.#clock = clock
    this.#stats = stats
    this.#log = log
  }

  /** Whether a series is kept (the `timeline` option is not `false`). */
  get enabled (): boolean {
    return this.#policy !== false
  }

  /** Samples the store once per interval until `stop()` (`sample()` never rejects); the timer never keeps the process alive. */
  start (): void {
    if (this.#policy === false || this.#timer !== undefined) return
    this.#timer = setInterval(() => this.sample(), this.#policy.intervalMs).unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Counts `event` in its interval. Synchronous and never throws: the event stream calls it on the request's path. */
  record (event: SessionEvent): void {
    if (this.#policy === false || !COUNTED.has(event.type)) return
    const bucket = this.#bucket(event.time)
    if (bucket === undefined) return
    switch (event.type) {
      case 'session.created':
        bucket.signIns++
        bump(bucket.countries, event.location?.country ?? 'unknown')
        bump(bucket.deviceTypes, event.device?.type ?? 'unknown')
        break
      case 'login.failed':
        bucket.failedLogins++
        break
      case 'login.locked':
        bucket.lockouts++
        break
      case 'anomaly.detected':
        bucket.anomalies++
        bump(bucket.rules, event.rule)
        break
      case 'session.revoked':
      case 'session.evicted':
      case 'session.expired':
        bucket.ended++
        if (event.durationMs !== undefined) {
          const slot = durationBucket(event.durationMs)
          bucket.durations[slot] = (bucket.durations[slot] as number) + 1
        }
    }
  }

  /** Takes the store's live-session count into the current interval. A store that fails is logged, never thrown. */
  async sample (): Promise<void> {
    if (this.#policy === false) return
    const now = this.#clock()
    try {
      const { sessions } = await this.#stats(now)
      const bucket = this.#bucket(now) as Bucket
      bucket.activeSessions = sessions
    } catch (err) {
      this.#log.warn({ err }, 'session guard: the timeline could not sample the store')
    }
  }

  /** The series (sampled now), oldest point first, and the window's figures; `undefined` when off. */
  async read (): Promise<SessionTimeline | undefined> {
    if (this.#policy === false) return undefined
    await this.sample()
    const { intervalMs, points } = this.#policy
    const last = Math.floor(this.#clock() / intervalMs)
    const report: SessionTimeline = { intervalMs, points: [], signInsByCountry: {}, signInsByDeviceType: {}, anomaliesByRule: {}, durations: [] }
    const durations = DURATION_BOUNDS_MS.map(() => 0)
    for (let slot = last - points + 1; slot <= last; slot++) {
      const bucket = this.#buckets.get(slot) ?? emptyBucket(slot * intervalMs)
      const { start, activeSessions, signIns, failedLogins, lockouts, anomalies, ended } = bucket
      report.points.push({ start, activeSessions, signIns, failedLogins, lockouts, anomalies, ended })
      add(report.signInsByCountry, bucket.countries)
      add(report.signInsByDeviceType, bucket.deviceTypes)
      add(report.anomaliesByRule, bucket.rules)
      bucket.durations.forEach((n, i) => { durations[i] = (durations[i] as number) + n })
    }
    report.durations = DURATION_BOUNDS_MS.map((bound, i) => ({ upToMs: bound === Infinity ? null : bound, count: durations[i] as number }))
    return report
  }

  /** The bucket of `time`, made on first use; `undefined` for a time already out of the window. */
  #bucket (time: number): Bucket | undefined {
    const { intervalMs, points } = this.#policy as Exclude<TimelinePolicy, false>
    const slot = Math.floor(time / intervalMs)
    if (slot <= this.#newest - points) return undefined
    let bucket = this.#buckets.get(slot)
    if (bucket === undefined) {
      bucket = emptyBucket(slot * intervalMs)
      this.#buckets.set(slot, bucket)
      if (slot > this.#newest) {
        this.#newest = slot
        // The ring: whatever fell out of the window goes.
        for (const key of this.#buckets.keys()) if (key <= slot - points) this.#buckets.delete(key)
      }
    }
    return bucket
  }
}

function emptyBucket (start: number): Bucket {
  return { start, activeSessions: null, signIns: 0, failedLogins: 0, lockouts: 0, anomalies: 0, ended: 0, countries: {}, deviceTypes: {}, rules: {}, durations: DURATION_BOUNDS_MS.map(() => 0) }
}

/** The index in `DURATION_BOUNDS_MS` of the first bound `ms` fits under. */
export function durationBucket (ms: number): number {
  return DURATION_BOUNDS_MS.findIndex((bound) => ms <= bound)
}

function add (into: Record<string, number>, from: Record<string, number>): void {
  for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + n
}
