import type { FastifyPluginAsync } from 'fastify'
import { InvalidOptionError, SessionNotFoundError } from '../errors.js'
import type { Guard } from '../guard.js'
import type { SessionManager } from '../manager.js'
import type { Clock } from '../session.js'
import { routePath, section, type OptionNames } from '../validate.js'
import { parseRouteExtras, routeWith, type RouteExtras } from './route-options.js'
import { redactedRequest } from './routes.js'
import { errorResponseSchema, historyEntrySchema, sessionViewSchema, toViews } from './views.js'

/** The `admin` option: the routes behind an admin dashboard. */
export interface AdminRoutesOptions {
  /** Where the routes are mounted, e.g. `'/admin/sessions'`. */
  prefix: string
  /**
   * Who may use the routes: the app's own check, run after the plugin's guard
   * (so `request.user` and `request.authSession` are set). It answers 403, or
   * throws, for anyone who is not an admin. Required: the plugin does not
   * guess what an admin is.
   */
  preHandler: NonNullable<RouteExtras['preHandler']>
  /**
   * Added to each of the routes, as `routes.routeOptions`: `config`, hooks, `logLevel`, OpenAPI `schema` fields, `hide`.
   * @default {}
   */
  routeOptions?: RouteExtras
}

const ADMIN_OPTION_NAMES: OptionNames<AdminRoutesOptions> = { prefix: true, preHandler: true, routeOptions: true }

/** The `admin` option after validation: `undefined` when the app mounts no admin routes. */
export interface AdminRoutesPolicy {
  readonly prefix: string
  readonly preHandler: NonNullable<RouteExtras['preHandler']>
  readonly routeOptions: RouteExtras
}

export function parseAdminRoutesOptions (value: AdminRoutesOptions | undefined): AdminRoutesPolicy | undefined {
  if (value === undefined) return undefined
  const admin = section(value, ADMIN_OPTION_NAMES, 'admin')
  const handlers: unknown[] = [admin.preHandler].flat()
  if (admin.preHandler === undefined || handlers.length === 0 || !handlers.every((handler) => typeof handler === 'function')) {
    throw new InvalidOptionError('admin.preHandler', 'must be the app\'s check that the caller is an admin (a function, or an array of them): the plugin does not guess roles')
  }
  return Object.freeze({
    prefix: routePath(admin.prefix, 'admin.prefix'),
    preHandler: admin.preHandler,
    routeOptions: parseRouteExtras(admin.routeOptions, 'admin.routeOptions')
  })
}

interface AdminContext {
  guard: Guard
  clock: Clock
  manager: SessionManager
  policy: AdminRoutesPolicy
  securityScheme: string | undefined
}

const counts = (description: string): Record<string, unknown> => ({ type: 'object', description, additionalProperties: { type: 'number' } })

/** JSON schema of `app.sessions.analytics()`. */
export const sessionAnalyticsSchema = {
  type: 'object',
  required: ['sessions', 'users', 'sessionsPerUser', 'deviceTypes', 'browsers', 'countries', 'durationMs'],
  properties: {
    sessions: { type: 'integer', description: 'Live sessions' },
    users: { type: 'integer', description: 'Users with a live session' },
    sessionsPerUser: counts('How many users hold 1, 2, 3 … sessions'),
    deviceTypes: counts('Share (0–1) of the live sessions by device type'),
    browsers: counts('Share (0–1) of the live sessions by browser'),
    countries: counts('Live sessions by country'),
    durationMs: {
      type: 'object',
      description: 'Age of the live sessions (ms since login)',
      properties: { p50: { type: 'number' }, p90: { type: 'number' }, p99: { type: 'number' }, max: { type: 'number' } }
    }
  }
} as const

/** JSON schema of `app.sessions.timeline()`. */
export const sessionTimelineSchema = {
  type: 'object',
  required: ['intervalMs', 'points', 'signInsByCountry', 'signInsByDeviceType', 'anomaliesByRule', 'durations'],
  properties: {
    intervalMs: { type: 'integer' },
    points: {
      type: 'array',
      description: 'Oldest first, one per interval; event counts are this instance\'s',
      items: {
        type: 'object',
        required: ['start', 'activeSessions', 'signIns', 'failedLogins', 'lockouts', 'anomalies', 'ended'],
        properties: {
          start: { type: 'number', description: 'Epoch ms' },
          activeSessions: { type: ['integer', 'null'], description: 'Live sessions in the store, as sampled in the interval' },
          signIns: { type: 'integer' },
          failedLogins: { type: 'integer' },
          lockouts: { type: 'integer' },
          anomalies: { type: 'integer' },
          ended: { type: 'integer' }
        }
      }
    },
    signInsByCountry: counts('Sign-ins in the window by country'),
    signInsByDeviceType: counts('Sign-ins in the window by device type'),
    anomaliesByRule: counts('Anomalies in the window by rule'),
    durations: {
      type: 'array',
      description: 'How long the sessions that ended in the window had lasted',
      items: {
        type: 'object',
        required: ['upToMs', 'count'],
        properties: { upToMs: { type: ['number', 'null'], description: 'Upper bound of the bucket; null for the last' }, count: { type: 'integer' } }
      }
    }
  }
} as const

const FORBIDDEN = { ...errorResponseSchema, description: 'The caller is not an admin (the app\'s `admin.preHandler` said so)' }

/**
 * The admin routes of a dashboard, each behind the plugin's guard then the
 * app's `admin.preHandler`:
 *
 * - `GET    /overview`        the live sessions' analytics and this instance's timeline
 * - `GET    /users/:userId`   one user's live sessions and login history
 * - `DELETE /sessions/:id`    sign any session out (reason `admin`)
 */
export function adminRoutes ({ guard, clock, manager, policy, securityScheme }: AdminContext): FastifyPluginAsync {
  return async function routes (fastify) {
    const rateLimited = fastify.hasPlugin('@fastify/rate-limit')
    const preHandler = [guard, ...[policy.preHandler].flat()]
    const route = <T extends Parameters<typeof routeWith>[0]>(own: T): T => routeWith(own, policy.routeOptions, { access: 'session', securityScheme, rateLimited })
    const describe = (summary: string): Record<string, unknown> => ({ summary, tags: ['admin'] })

    fastify.get('/overview', route({
      preHandler,
      schema: {
        ...describe('Live-session analytics and this instance\'s timeline, for a dashboard'),
        response: {
          200: {
            type: 'object',
            required: ['generatedAt', 'live'],
            properties: {
              generatedAt: { type: 'string', format: 'date-time' },
              live: sessionAnalyticsSchema,
              timeline: { ...sessionTimelineSchema, description: 'Absent with `timeline: false`' }
            }
          },
          403: FORBIDDEN
        }
      }
    }), async () => {
      const [live, timeline] = await Promise.all([manager.analytics(), manager.timeline()])
      return { generatedAt: new Date(clock()).toISOString(), live, timeline }
    })

    fastify.get<{ Params: { userId: string }, Querystring: { limit: number } }>('/users/:userId', route({
      preHandler,
      schema: {
        ...describe('One user\'s live sessions and login history'),
        params: { type: 'object', required: ['userId'], properties: { userId: { type: 'string', minLength: 1, maxLength: 256 } } },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'integer', minimum: 1, maximum: 200, default: 50, description: 'History entries, newest first' } }
        },
        response: {
          200: {
            type: 'object',
            required: ['userId', 'sessions'],
            properties: {
              userId: { type: 'string' },
              sessions: { type: 'array', items: sessionViewSchema },
              history: { type: 'array', items: historyEntrySchema, description: 'Absent when no history is kept' }
            }
          },
          403: FORBIDDEN
        }
      }
    }), async (request) => {
      const { userId } = request.params
      const sessions = toViews(await manager.list(userId))
      if (!manager.keepsHistory) return { userId, sessions }
      return { userId, sessions, history: await manager.history(userId, { limit: request.query.limit }) }
    })

    fastify.delete<{ Params: { id: string } }>('/sessions/:id', route({
      preHandler,
      logSerializers: redactedRequest,
      schema: {
        ...describe('Sign any session out (revocation reason `admin`)'),
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 64 } } },
        response: { 204: { type: 'null' }, 403: FORBIDDEN, 404: errorResponseSchema }
      }
    }), async (request, reply) => {
      if (!await manager.revoke(request.params.id, 'admin')) throw new SessionNotFoundError()
      return await reply.code(204).send()
    })
  }
}
