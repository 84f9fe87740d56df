import type { FastifyPluginAsync } from 'fastify'
import type { SessionManager } from '../manager.js'
import { parseMetricsOptions, type MetricsOptions, type MetricsPolicy, type MetricsRegistry } from '../monitoring/metrics.js'
import type { StoreStats } from '../stores/store.js'
import { fraction, routePath, section, type OptionNames } from '../validate.js'
import { parseRouteExtras, routeWith, type RouteExtras } from './route-options.js'

/** The top-level options of the monitoring routes. */
export interface MonitoringOptions {
  /**
   * Registers a health route: 200 with the store's figures, 503 when the store
   * does not answer within a second or holds more than `maxUtilization` of its capacity.
   * `routeOptions` adds `config`, hooks and OpenAPI fields to the route, as `routes.routeOptions` does.
   * @default undefined (no route)
   */
  health?: { path: string, maxUtilization?: number, routeOptions?: RouteExtras }
  /**
   * Prometheus metrics through prom-client (an optional peer dependency): in
   * the app's `registry`, or a private one served at `path` (see `MetricsOptions`).
   * Refusals are one counter; `rejectionReasons: true` counts them by their
   * precise reason, for metrics only trusted eyes read.
   * @default undefined (no metrics, prom-client not loaded)
   */
  metrics?: MetricsOptions
}

export const MONITORING_OPTION_NAMES = { health: true, metrics: true } as const satisfies Record<keyof MonitoringOptions, true>

/** The monitoring options after validation. */
export interface MonitoringPolicy {
  readonly health: { readonly path: string, readonly maxUtilization: number, readonly routeOptions: RouteExtras } | undefined
  readonly metrics: MetricsPolicy | undefined
}

const DEFAULT_MAX_UTILIZATION = 0.9
const HEALTH_OPTION_NAMES: OptionNames<NonNullable<MonitoringOptions['health']>> = { path: true, maxUtilization: true, routeOptions: true }

export function parseMonitoringOptions (options: MonitoringOptions): MonitoringPolicy {
  const health = options.health === undefined ? undefined : section(options.health, HEALTH_OPTION_NAMES, 'health')
  return {
    health: health === undefined
      ? undefined
      : {
          path: routePath(health.path, 'health.path'),
          maxUtilization: fraction(health.maxUtilization ?? DEFAULT_MAX_UTILIZATION, 'health.maxUtilization'),
          routeOptions: parseRouteExtras(health.routeOptions, 'health.routeOptions')
        },
    metrics: parseMetricsOptions(options.metrics)
  }
}

interface MonitoringContext {
  manager: SessionManager
  health: MonitoringPolicy['health']
  /** The registry the metrics are in, the route that serves it, and what the app adds to that route. */
  metrics: { path: string, registry: MetricsRegistry, routeOptions: RouteExtras } | undefined
  /** The OpenAPI security scheme of the access token: these routes declare they need none. */
  securityScheme: string | undefined
}

/** How long the health and metrics routes wait for the store before calling it down. */
const STORE_TIMEOUT_MS = 1000

/**
 * The opt-in health and metrics routes. Both are public (`config.public`), so
 * `global: true` does not guard them: protect `/metrics` at the network edge
 * if its figures must stay private.
 */
export function monitoringRoutes ({ manager, health, metrics, securityScheme }: MonitoringContext): FastifyPluginAsync {
  return async function routes (fastify) {
    const rateLimited = fastify.hasPlugin('@fastify/rate-limit')
    if (health !== undefined) {
      fastify.get(health.path, routeWith({
        config: { public: true },
        schema: {
          summary: 'Whether the session store answers, and how full it is',
          tags: ['monitoring'],
          response: {
            200: healthSchema,
            503: healthSchema
          }
        }
      }, health.routeOptions, { access: 'public', securityScheme, rateLimited }), async (_request, reply) => {
        const stats = await storeStats(async () => await manager.storeStats())
        // The store's reason names its server (the Redis host and port): see the route's docs.
        if (stats === undefined) return await reply.code(503).send({ status: 'unavailable', store: 'down', reason: manager.storeUnavailableReason() })
        const utilization = stats.capacity === undefined ? undefined : stats.sessions / stats.capacity
        const body = { status: 'ok', store: 'up', sessions: stats.sessions, users: stats.users, capacity: stats.capacity, utilization }
        if (utilization !== undefined && utilization > health.maxUtilization) return await reply.code(503).send({ ...body, status: 'over_capacity' })
        return body
      })
    }

    if (metrics !== undefined) {
      const own = { config: { public: true }, schema: { summary: 'Session figures in the Prometheus text format', tags: ['monitoring'], response: {} } }
      fastify.get(metrics.path, routeWith(own, metrics.routeOptions, { access: 'public', securityScheme, rateLimited }), async (_request, reply) => {
        return await reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
      })
    }
  }
}

/** The store's stats, or `undefined` when it fails or does not answer in time. */
export async function storeStats (read: () => Promise<StoreStats>): Promise<StoreStats | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<undefined>((resolve) => { timer = setTimeout(resolve, STORE_TIMEOUT_MS, undefined) })
  const stats = await Promise.race([read().catch(() => undefined), timeout])
  clearTimeout(timer)
  return stats
}

const healthSchema = {
  type: 'object',
  required: ['status', 'store'],
  properties: {
    status: { type: 'string', enum: ['ok', 'unavailable', 'over_capacity'] },
    store: { type: 'string', enum: ['up', 'down'] },
    sessions: { type: 'integer' },
    users: { type: 'integer' },
    capacity: { type: 'integer' },
    utilization: { type: 'number' },
    reason: { type: 'string' }
  }
} as const
