import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import { SessionNotFoundError } from '../errors.js'
import type { Guard } from '../guard.js'
import type { Lifecycle } from '../lifecycle.js'
import type { SessionManager } from '../manager.js'
import { hashId } from '../monitoring/events.js'
import { routePath, section, type OptionNames } from '../validate.js'
import { parseRouteExtras, routeWith, type RouteAccess, type RouteExtras } from './route-options.js'
import { alertSchema, errorResponseSchema, historyEntrySchema, sessionLimitResponseSchema, sessionViewSchema, toViews } from './views.js'

export interface RoutesOptions {
  /** Where the routes are mounted, e.g. `'/sessions'`. */
  prefix: string
  /**
   * Added to each of the routes: `config` (e.g. `{ rateLimit: { max: 10, timeWindow: '1 minute' } }`),
   * hooks, `logLevel`, OpenAPI `schema` fields, `hide`.
   * @default {}
   */
  routeOptions?: RouteExtras
}

const ROUTES_OPTION_NAMES: OptionNames<RoutesOptions> = { prefix: true, routeOptions: true }

/** The `routes` option after validation: `undefined` when the app mounts no routes. */
export interface RoutesPolicy {
  readonly prefix: string
  readonly routeOptions: RouteExtras
}

export function parseRoutesOptions (value: RoutesOptions | undefined): RoutesPolicy | undefined {
  if (value === undefined) return undefined
  const routes = section(value, ROUTES_OPTION_NAMES, 'routes')
  return { prefix: routePath(routes.prefix, 'routes.prefix'), routeOptions: parseRouteExtras(routes.routeOptions, 'routes.routeOptions') }
}

interface RoutesContext {
  guard: Guard
  lifecycle: Lifecycle
  manager: SessionManager
  /** What the app adds to each route. */
  extras: RouteExtras
  /** The OpenAPI security scheme of the access token, if declared. */
  securityScheme: string | undefined
}

const revokedSchema = {
  type: 'object',
  required: ['revoked'],
  properties: { revoked: { type: 'integer', description: 'How many sessions were signed out' } }
} as const

/**
 * The request log line of a route with a session id in its URL: the fields of
 * Fastify's own, with the id replaced by the hash the event log lines carry
 * (`sid:<hash>`), so the log holds no session id in clear and a request still
 * correlates with its events. An app's own `req` serializer does not apply here.
 */
export const redactedRequest = {
  req: (request: FastifyRequest<{ Params: { id: string } }>) => {
    const query = request.url.indexOf('?')
    return {
      method: request.method,
      url: request.routeOptions.url!.replace(':id', `sid:${hashId(request.params.id)}`) + (query === -1 ? '' : request.url.slice(query)),
      version: request.headers['accept-version'],
      host: request.host,
      remoteAddress: request.ip,
      remotePort: request.socket.remotePort
    }
  }
}

/** OpenAPI summary and tag, read by `@fastify/swagger`. */
function describe (summary: string): Record<string, unknown> {
  return { summary, tags: ['sessions'] }
}

/**
 * The self-service routes of the "Your devices" page, each with request and
 * response schemas (so `@fastify/swagger` documents them):
 *
 * - `GET    /`               the caller's sessions, current first
 * - `GET    /history`        the caller's login history, newest first (when a history is kept)
 * - `DELETE /:id`            sign one of them out (another user's id answers like an unknown one)
 * - `POST   /revoke-others`  sign out everywhere else
 * - `POST   /revoke-all`     sign out everywhere, here included
 * - `POST   /resolve-limit`  complete a login refused at the session limit (public)
 * - `GET    /alerts`         "Was this you?": the caller's other sessions awaiting an answer
 * - `POST   /alerts/:id`     answer one: `{ "answer": "yes" }` vouches for it, `"no"` signs it out
 */
export function sessionRoutes ({ guard, lifecycle, manager, extras, securityScheme }: RoutesContext): FastifyPluginAsync {
  return async function routes (fastify) {
    const rateLimited = fastify.hasPlugin('@fastify/rate-limit')
    const route = <T extends Parameters<typeof routeWith>[0]>(access: RouteAccess, own: T): T => routeWith(own, extras, { access, securityScheme, rateLimited })

    fastify.get('/', route('session', {
      preHandler: guard,
      schema: {
        ...describe("The caller's sessions, current first"),
        response: {
          200: { type: 'object', required: ['sessions'], properties: { sessions: { type: 'array', items: sessionViewSchema } } },
        }
      }
    }), async (request) => {
      const current = request.authSession!
      return { sessions: toViews(await manager.list(current.userId), current.id) }
    })

    if (manager.keepsHistory) {
      fastify.get<{ Querystring: { limit?: number, before?: string } }>('/history', route('session', {
        preHandler: guard,
        schema: {
          ...describe("The caller's login history, newest first"),
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: {
              limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
              before: { type: 'string', minLength: 1, maxLength: 40, pattern: '^[0-9A-Za-z_-]+$', description: 'The `id` of the last entry of the previous page' }
            }
          },
          response: {
            200: { type: 'object', required: ['entries'], properties: { entries: { type: 'array', items: historyEntrySchema } } }
          }
        }
      }), async (request) => {
        const { limit, before } = request.query
        return { entries: await manager.history(request.authSession!.userId, before === undefined ? { limit } : { limit, before }) }
      })
    }

    fastify.delete<{ Params: { id: string } }>('/:id', route('session', {
      preHandler: guard,
      logSerializers: redactedRequest,
      schema: {
        ...describe('Sign out one of the caller\'s sessions'),
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 64 } } },
        response: { 204: { type: 'null' }, 404: errorResponseSchema }
      }
    }), async (request, reply) => {
      const current = request.authSession!
      const { id } = request.params
      if (id === current.id) {
        await request.endSession(reply)
        return await reply.code(204).send()
      }
      // Only the caller's own: another user's id is answered exactly like an unknown one.
      const own = (await manager.list(current.userId)).some((session) => session.id === id)
      if (!own || !await manager.revoke(id, 'user')) throw new SessionNotFoundError()
      return await reply.code(204).send()
    })

    fastify.post('/revoke-others', route('session', {
      preHandler: guard,
      schema: { ...describe('Sign out every other session of the caller'), response: { 200: revokedSchema } }
    }), async (request) => {
      const current = request.authSession!
      return { revoked: await manager.revokeAll(current.userId, { except: current.id, reason: 'user' }) }
    })

    fastify.post('/revoke-all', route('session', {
      preHandler: guard,
      schema: { ...describe('Sign out every session of the caller, this one included'), response: { 200: revokedSchema } }
    }), async (request, reply) => {
      const current = request.authSession!
      const revoked = await manager.revokeAll(current.userId, { reason: 'user' })
      await request.endSession(reply)
      return { revoked }
    })

    fastify.get('/alerts', route('session', {
      preHandler: guard,
      schema: {
        ...describe('"Was this you?": the caller\'s other sessions that anomaly rules flagged, awaiting an answer'),
        response: { 200: { type: 'object', required: ['alerts'], properties: { alerts: { type: 'array', items: alertSchema } } } }
      }
    }), async (request) => {
      const current = request.authSession!
      const alerts = await manager.alerts(current.userId, { except: current.id })
      return { alerts: alerts.map(({ session }) => ({ session })) }
    })

    fastify.post<{ Params: { id: string }, Body: { answer: 'yes' | 'no' } }>('/alerts/:id', route('session', {
      preHandler: guard,
      logSerializers: redactedRequest,
      schema: {
        ...describe('Answer "Was this you?" about one of the caller\'s other sessions: yes vouches for it, no signs it out'),
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 64 } } },
        body: {
          type: 'object',
          required: ['answer'],
          additionalProperties: false,
          properties: { answer: { type: 'string', enum: ['yes', 'no'], description: '"yes": it was me; "no": sign it out' } }
        },
        response: {
          204: { type: 'null' },
          403: { ...errorResponseSchema, description: 'The caller\'s own session awaits an answer: it may say "no", not "yes"' },
          404: errorResponseSchema
        }
      }
    }), async (request, reply) => {
      const current = request.authSession!
      // Only about the caller's other sessions: another user's id is answered exactly like an unknown one.
      if (!await manager.answerAlert(current.userId, request.params.id, request.body.answer, { from: current.id })) throw new SessionNotFoundError()
      return await reply.code(204).send()
    })

    fastify.post<{ Body: { ticket: string, revoke: string } }>('/resolve-limit', route('public', {
      config: { public: true },
      schema: {
        ...describe('Complete a login refused at the session limit by signing one session out'),
        body: {
          type: 'object',
          required: ['ticket', 'revoke'],
          additionalProperties: false,
          properties: {
            ticket: { type: 'string', minLength: 1, maxLength: 4096, description: 'The ticket from the 409 answer' },
            revoke: { type: 'string', minLength: 1, maxLength: 64, description: 'Id of the session to sign out' }
          }
        },
        response: {
          200: {
            type: 'object',
            required: ['accessToken', 'tokenType', 'sessionId'],
            properties: {
              accessToken: { type: 'string' },
              refreshToken: { type: 'string' },
              tokenType: { type: 'string', enum: ['Bearer', 'DPoP'], description: "'DPoP' when the ticket was a DPoP login's: the session is bound to the proof's key, and no cookie is set" },
              sessionId: { type: 'string' }
            }
          },
          409: sessionLimitResponseSchema,
          401: { ...errorResponseSchema, description: 'The ticket is invalid or expired' }
        }
      }
    }), async (request, reply) => {
      const { accessToken, refreshToken, tokenType, session } = await lifecycle.resolveLimit(request, reply, request.body.ticket, request.body.revoke)
      return { accessToken, refreshToken, tokenType, sessionId: session.id }
    })
  }
}
