import type * as PromClient from 'prom-client'
import { InvalidOptionError } from '../errors.js'
import type { StoreStats } from '../stores/store.js'
import type { SessionEvent } from './events.js'
import type { MetricsPolicy, MetricsRegistry } from './metrics.js'
import type { RouteExtras } from '../http/route-options.js'

/** prom-client, which the app installs: loaded only when the `metrics` option is given. */
export function loadPromClient (load: () => unknown = () => require('prom-client')): typeof PromClient {
  try {
    return load() as typeof PromClient
  } catch (err) {
    throw new InvalidOptionError('metrics', `needs prom-client, an optional peer dependency: npm install prom-client (${(err as Error).message})`)
  }
}

/** How a guarded request ended, as the latency histogram and the trace label it. */
export type GuardOutcome = 'accepted' | 'rejected' | 'error'

/** What the metrics read at each scrape. */
export interface PrometheusContext {
  /** The store's figures, `undefined` when it is down. */
  readonly storeStats: () => Promise<StoreStats | undefined>
}

// Guard checks take from well under a millisecond (memory store) to a few (a store round trip).
const GUARD_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]

/**
 * The plugin's Prometheus metrics, as prom-client collectors in the app's
 * registry (or a private one): counters fed by the event stream, gauges read
 * from the store at each scrape, and the guard's latency. Per instance: with
 * several instances, sum them (as Prometheus does).
 */
export class PrometheusMetrics {
  /** The registry the metrics are in: the app's, or the plugin's own. */
  readonly registry: MetricsRegistry
  /** The route that serves the registry, if the plugin adds one: its path and what the app adds to it. */
  readonly route: { readonly path: string, readonly registry: MetricsRegistry, readonly routeOptions: RouteExtras } | undefined
  readonly #registry: PromClient.Registry
  readonly #names: string[] = []
  readonly #counters: Record<'created' | 'refreshed' | 'revoked' | 'evicted' | 'expired' | 'rejected' | 'reuse' | 'loginFailures' | 'lockouts' | 'anomalies', PromClient.Counter>
  readonly #guard: PromClient.Histogram<'outcome'>
  readonly #rejectionReasons: boolean
  readonly #storeStats: () => Promise<StoreStats | undefined>
  #scrape: Promise<StoreStats | undefined> | undefined

  constructor (client: typeof PromClient, { storeStats }: PrometheusContext, policy: MetricsPolicy) {
    // The registry is the app's, of the prom-client it installed (a peer dependency: the same copy as ours).
    this.#registry = (policy.registry ?? new client.Registry()) as PromClient.Registry
    this.registry = this.#registry
    this.route = policy.path === undefined ? undefined : { path: policy.path, registry: this.registry, routeOptions: policy.routeOptions }
    this.#rejectionReasons = policy.rejectionReasons
    this.#storeStats = storeStats
    const registers = [this.#registry]
    const name = (suffix: string): string => {
      const full = `${policy.prefix}${suffix}`
      if (this.#registry.getSingleMetric(full) !== undefined) {
        this.close()
        throw new InvalidOptionError('metrics.registry', `already holds ${full}: give each instance of the plugin its own metrics.prefix`)
      }
      this.#names.push(full)
      return full
    }
    const counter = (suffix: string, help: string, labelNames: string[] = []): PromClient.Counter =>
      new client.Counter({ name: name(suffix), help, labelNames, registers })
    const storeGauge = <L extends string>(suffix: string, help: string, read: (gauge: PromClient.Gauge<L>, stats: StoreStats | undefined) => void, labelNames: L[] = []): void => {
      const scrape = this.#scrapeStore.bind(this)
      // eslint-disable-next-line no-new
      new client.Gauge<L>({
        name: name(suffix),
        help,
        labelNames,
        registers,
        async collect () { read(this, await scrape()) }
      })
    }
    // A figure the store cannot tell, or cannot tell now, is left out rather than shown as 0.
    const single = (pick: (stats: StoreStats) => number | undefined) => (gauge: PromClient.Gauge, stats: StoreStats | undefined): void => {
      const value = stats === undefined ? undefined : pick(stats)
      if (value === undefined) gauge.remove()
      else gauge.set(value)
    }

    storeGauge('store_up', 'Whether the session store answered the last scrape.', (gauge: PromClient.Gauge, stats) => gauge.set(stats === undefined ? 0 : 1))
    storeGauge('active_sessions', 'Sessions held by the store.', single((stats) => stats.sessions))
    storeGauge('users', 'Users with at least one session.', single((stats) => stats.users))
    storeGauge('users_by_session_count', 'Users holding this many sessions.', (gauge: PromClient.Gauge<'sessions'>, stats) => {
      gauge.reset()
      for (const [sessions, users] of Object.entries(stats?.sessionsPerUser ?? {})) gauge.set({ sessions }, users)
    }, ['sessions'])
    storeGauge('store_estimated_bytes', 'Estimated memory taken by sessions.', single((stats) => stats.estimatedBytes))
    storeGauge('store_capacity', 'Most sessions the store holds.', single((stats) => stats.capacity))
    storeGauge('store_counter_evictions', 'Live counters (lockouts, DPoP proof jtis) the store dropped at its bound, since it opened.', single((stats) => stats.counterEvictions))
    this.#counters = {
      created: counter('sessions_created_total', 'Sessions created.'),
      refreshed: counter('sessions_refreshed_total', 'Refresh-token rotations.'),
      revoked: counter('sessions_revoked_total', 'Sessions revoked, by reason.', ['reason']),
      evicted: counter('sessions_evicted_total', 'Sessions evicted at store capacity.'),
      expired: counter('sessions_expired_total', 'Sessions expired, by deadline.', ['reason']),
      rejected: this.#rejectionReasons
        ? counter('auth_rejected_total', 'Requests and refreshes refused, by precise reason.', ['reason'])
        : counter('auth_rejected_total', 'Requests and refreshes refused.'),
      reuse: counter('refresh_reuse_detected_total', 'Older refresh tokens presented (theft).'),
      loginFailures: counter('login_failures_total', 'Failed logins recorded.'),
      lockouts: counter('login_lockouts_total', 'Logins refused while locked, by scope.', ['scope']),
      anomalies: counter('anomalies_total', 'Anomalies detected, by rule and decision.', ['rule', 'decision'])
    }
    this.#guard = new client.Histogram({
      name: name('guard_duration_seconds'),
      help: 'Time the guard took to check a request, by outcome (accepted, rejected, error).',
      labelNames: ['outcome'],
      buckets: GUARD_BUCKETS_SECONDS,
      registers
    })
  }

  /** Counts an event. Called synchronously by the event stream. */
  record (event: SessionEvent): void {
    const counters = this.#counters
    switch (event.type) {
      case 'session.created': counters.created.inc(); break
      case 'session.refreshed': counters.refreshed.inc(); break
      case 'session.revoked': counters.revoked.inc({ reason: event.reason }); break
      case 'session.evicted': counters.evicted.inc(); break
      case 'session.expired': counters.expired.inc({ reason: event.reason }); break
      case 'auth.rejected':
        if (this.#rejectionReasons) counters.rejected.inc({ reason: event.reason })
        else counters.rejected.inc()
        break
      case 'refresh.reuse_detected': counters.reuse.inc(); break
      case 'login.failed': counters.loginFailures.inc(); break
      case 'login.locked': counters.lockouts.inc({ scope: event.scope }); break
      case 'anomaly.detected': counters.anomalies.inc({ rule: event.rule, decision: event.decision }); break
    }
  }

  /** Starts timing one guard check; call the result with its outcome. */
  timeGuard (): (outcome: GuardOutcome) => void {
    const end = this.#guard.startTimer()
    return (outcome) => { end({ outcome }) }
  }

  /** Takes the plugin's metrics out of the registry (the app's outlives the plugin). */
  close (): void {
    for (const name of this.#names) this.#registry.removeSingleMetric(name)
  }

  // The store gauges collect at once (prom-client scrapes every metric in parallel): one store call serves them all.
  async #scrapeStore (): Promise<StoreStats | undefined> {
    this.#scrape ??= this.#storeStats().finally(() => { this.#scrape = undefined })
    return await this.#scrape
  }
}
