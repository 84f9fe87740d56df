import { InvalidOptionError } from '../errors.js'
import { parseRouteExtras, type RouteExtras } from '../http/route-options.js'
import { bool, routePath, section, type OptionNames } from '../validate.js'
import type { SessionEvent } from './events.js'

/** Counters since this instance started, by what the events said. */
export interface EventCounts {
  created: number
  refreshed: number
  revoked: Record<string, number>
  evicted: number
  expired: Record<string, number>
  rejected: Record<string, number>
  reuseDetected: number
  loginFailures: number
  lockouts: Record<string, number>
  anomalies: Record<string, number>
}

/**
 * Counts what the event stream reports, for `stats()` (the Prometheus metrics
 * are in `prometheus.ts`). Fed synchronously by the stream, so `stats()`
 * agrees with the events at any moment. Per instance.
 */
export class SessionMetrics {
  readonly counts: EventCounts = {
    created: 0,
    refreshed: 0,
    revoked: {},
    evicted: 0,
    expired: {},
    rejected: {},
    reuseDetected: 0,
    loginFailures: 0,
    lockouts: {},
    anomalies: {}
  }

  record (event: SessionEvent): void {
    const counts = this.counts
    switch (event.type) {
      case 'session.created': counts.created++; break
      case 'session.refreshed': counts.refreshed++; break
      case 'session.revoked': bump(counts.revoked, event.reason); break
      case 'session.evicted': counts.evicted++; break
      case 'session.expired': bump(counts.expired, event.reason); break
      case 'auth.rejected': bump(counts.rejected, event.reason); break
      case 'refresh.reuse_detected': counts.reuseDetected++; break
      case 'login.failed': counts.loginFailures++; break
      case 'login.locked': bump(counts.lockouts, event.scope); break
      case 'anomaly.detected': bump(counts.anomalies, `${event.rule}:${event.decision}`); break
    }
  }
}

/** Adds one to `counts[key]`. */
export function bump (counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1
}

/**
 * The part of a prom-client `Registry` the plugin uses. Typed by its shape, so
 * the declarations need no prom-client: pass `new Registry()`, `register` (the
 * global one), or the registry your metrics plugin exposes.
 */
export interface MetricsRegistry {
  readonly contentType: string
  metrics (): Promise<string>
  registerMetric (metric: never): void
  getSingleMetric (name: string): unknown
  removeSingleMetric (name: string): void
}

/** The `metrics` option: Prometheus metrics through prom-client (an optional peer dependency). */
export interface MetricsOptions {
  /**
   * The prom-client registry to register the plugin's metrics in, so they are
   * scraped with the app's and carry its default labels.
   * @default a registry of the plugin's own, served only at `path`
   */
  registry?: MetricsRegistry
  /**
   * Registers a route that serves the registry (the app's, when given) in
   * the Prometheus text format. Public (`config.public`): protect it (a
   * network policy, or `onRequest` on your side) if it must not be. Leave it
   * out when the app already serves its registry (fastify-metrics does, at `/metrics`).
   * @default undefined (no route)
   */
  path?: string
  /**
   * Count refused requests by their precise reason (a `reason` label on
   * `session_guard_auth_rejected_total`). Off by default: whoever reads the
   * metrics could otherwise tell, by probing with a stolen token, which
   * refusal it got (a live session, or a dead one), which the one 401 answer
   * hides. `stats()` keeps the reasons for the app's own code.
   * @default false
   */
  rejectionReasons?: boolean
  /**
   * Prefix of every metric name: give each its own when two instances of the
   * plugin share one registry.
   * @default 'session_guard_'
   */
  prefix?: string
  /**
   * What the app adds to the `path` route (`config`, hooks, OpenAPI fields,
   * `hide`), as `routes.routeOptions` does.
   * @default {}
   */
  routeOptions?: RouteExtras
}

export const METRICS_OPTION_NAMES: OptionNames<MetricsOptions> = { registry: true, path: true, rejectionReasons: true, prefix: true, routeOptions: true }

/** The metrics options after validation. */
export interface MetricsPolicy {
  readonly registry: MetricsRegistry | undefined
  readonly path: string | undefined
  readonly rejectionReasons: boolean
  readonly prefix: string
  readonly routeOptions: RouteExtras
}

const DEFAULT_PREFIX = 'session_guard_'
// Prometheus metric names: https://prometheus.io/docs/concepts/data_model/#metric-names-and-labels
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const REGISTRY_METHODS = ['metrics', 'getSingleMetric', 'removeSingleMetric', 'registerMetric'] as const

export function parseMetricsOptions (value: MetricsOptions | undefined): MetricsPolicy | undefined {
  if (value === undefined) return undefined
  const options = section(value, METRICS_OPTION_NAMES, 'metrics')
  const registry = options.registry
  if (registry !== undefined && (typeof registry !== 'object' || registry === null ||
    REGISTRY_METHODS.some((method) => typeof (registry as unknown as Record<string, unknown>)[method] !== 'function'))) {
    throw new InvalidOptionError('metrics.registry', 'must be a prom-client Registry')
  }
  const path = options.path === undefined ? undefined : routePath(options.path, 'metrics.path')
  if (registry === undefined && path === undefined) throw new InvalidOptionError('metrics', 'needs a registry, a path, or both')
  const prefix = options.prefix ?? DEFAULT_PREFIX
  if (typeof prefix !== 'string' || !METRIC_NAME.test(prefix)) throw new InvalidOptionError('metrics.prefix', 'must start a valid Prometheus metric name')
  return {
    registry,
    path,
    rejectionReasons: options.rejectionReasons === undefined ? false : bool(options.rejectionReasons, 'metrics.rejectionReasons'),
    prefix,
    routeOptions: parseRouteExtras(options.routeOptions, 'metrics.routeOptions')
  }
}
