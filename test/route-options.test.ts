import fastifyRateLimit from '@fastify/rate-limit'
import fastifySwagger from '@fastify/swagger'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import sessionGuard, { type SessionGuardOptions } from '../lib/index.js'
import { build, registrationError, SECRET, type Credentials } from './helper.js'

/**
 * The routes the plugin adds, as an app configures them (`routeOptions`) and as
 * `@fastify/swagger` documents them: the security scheme, and the 401, 409,
 * 429 and 503 each can answer.
 */

type Operation = { security?: Array<Record<string, string[]>>, responses: Record<string, { description: string }>, tags?: string[], summary?: string }
type Document = { paths: Record<string, Record<string, Operation>> }

const ROUTES: SessionGuardOptions = { routes: { prefix: '/sessions' }, health: { path: '/health' }, metrics: { path: '/metrics' } }

/** The OpenAPI document of an app with the plugin's routes, after `before` registered its own plugins. */
async function openapi (options: Partial<SessionGuardOptions>, before: (app: FastifyInstance) => Promise<void> = async () => {}): Promise<Document> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'test', version: '1' },
      // @fastify/swagger fails on a requirement whose scheme is not declared here.
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          sessionToken: { type: 'http', scheme: 'bearer' },
          basicAuth: { type: 'http', scheme: 'basic' }
        }
      }
    }
  })
  await before(app)
  await app.register(sessionGuard, { secret: SECRET, ...ROUTES, ...options })
  await app.ready()
  return app.swagger() as unknown as Document
}

function codes (operation: Operation | undefined): string[] {
  return Object.keys(operation?.responses ?? {}).sort()
}

t.test('@fastify/swagger documents each route with its security scheme and its refusals', async (t) => {
  const { paths } = await openapi({})
  const guarded = [['/sessions/', 'get', '200'], ['/sessions/{id}', 'delete', '204'], ['/sessions/revoke-others', 'post', '200'], ['/sessions/revoke-all', 'post', '200']] as const
  for (const [path, method, ok] of guarded) {
    const operation = paths[path]?.[method]
    t.same(operation?.security, [{ bearerAuth: [] }], `${method} ${path} needs the access token`)
    t.same(codes(operation), [ok, '401', '503', ...(method === 'delete' ? ['404'] : [])].sort(), `${method} ${path}: its answers`)
    t.match(operation?.responses['503']?.description, /store is unavailable/)
    t.match(operation?.responses['401']?.description, /No valid session/)
  }
  const resolve = paths['/sessions/resolve-limit']?.post
  t.same(resolve?.security, [], 'resolve-limit is public: no token')
  t.same(codes(resolve), ['200', '401', '409', '503'])
  t.same(paths['/health']?.get?.security, [])
  t.same(codes(paths['/health']?.get), ['200', '503'])
  t.same(paths['/metrics']?.get?.security, [])
  t.same(codes(paths['/metrics']?.get), ['503'])
  t.same(paths['/metrics']?.get?.tags, ['monitoring'])
})

t.test('openapi.securityScheme names the scheme the app declares, or leaves security out', async (t) => {
  const named = await openapi({ openapi: { securityScheme: 'sessionToken' } })
  t.same(named.paths['/sessions/']?.get?.security, [{ sessionToken: [] }])
  t.same(named.paths['/health']?.get?.security, [])
  const none = await openapi({ openapi: { securityScheme: false } })
  t.notOk('security' in (none.paths['/sessions/']?.get ?? {}), 'no security requirement')
  t.notOk('security' in (none.paths['/health']?.get ?? {}))
  t.same(codes(none.paths['/sessions/']?.get), ['200', '401', '503'], 'the refusals stay')
})

t.test('routeOptions: OpenAPI fields, hide, and a 429 where the app rate-limits', async (t) => {
  const { paths } = await openapi({
    routes: {
      prefix: '/sessions',
      routeOptions: {
        config: { rateLimit: { max: 5, timeWindow: '1 minute' } },
        schema: { tags: ['account'], description: 'Your devices', deprecated: true, externalDocs: { url: 'https://example.com/devices' } }
      }
    },
    health: { path: '/health', routeOptions: { hide: true } },
    metrics: { path: '/metrics', routeOptions: { schema: { security: [{ basicAuth: [] }] } } }
  })
  const list = paths['/sessions/']?.get as Operation & Record<string, unknown>
  t.match(list, { tags: ['account'], description: 'Your devices', deprecated: true, externalDocs: { url: 'https://example.com/devices' } })
  t.equal(list.summary, "The caller's sessions, current first", 'the summary stays')
  t.same(codes(list), ['200', '401', '429', '503'], 'config.rateLimit: 429 declared')
  t.same(codes(paths['/sessions/resolve-limit']?.post), ['200', '401', '409', '429', '503'])
  t.notOk(paths['/health'], 'hidden')
  t.same(paths['/metrics']?.get?.security, [{ basicAuth: [] }], 'the app says how its metrics route is protected')
  t.same(codes(paths['/metrics']?.get), ['503'], 'no rate limit there')
})

t.test('@fastify/rate-limit registered first: every route declares its 429, and answers it', async (t) => {
  const { paths } = await openapi({}, async (app) => { await app.register(fastifyRateLimit, { global: false }) })
  t.same(codes(paths['/sessions/']?.get), ['200', '401', '429', '503'])
  t.same(codes(paths['/health']?.get), ['200', '429', '503'])

  // @fastify/rate-limit sees the routes declared after it: register it first.
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyRateLimit, { global: false, errorResponseBuilder: (_request, context) => ({ statusCode: 429, error: 'Too Many Requests', message: 'slow down', retryIn: context.after }) })
  await app.register(sessionGuard, { secret: SECRET, routes: { prefix: '/sessions', routeOptions: { config: { rateLimit: { max: 1, timeWindow: '1 minute' } } } } })
  const body = { ticket: 'x', revoke: 'y' }
  t.equal((await app.inject({ method: 'POST', url: '/sessions/resolve-limit', payload: body })).statusCode, 401)
  const limited = await app.inject({ method: 'POST', url: '/sessions/resolve-limit', payload: body })
  t.equal(limited.statusCode, 429, 'config.rateLimit reached @fastify/rate-limit')
  t.match(limited.json(), { message: 'slow down', retryIn: '1 minute' }, "the rate limiter's own fields survive the response schema")
})

declare module 'fastify' {
  interface FastifyContextConfig { audit?: string }
}

function auth (credentials: Credentials): Record<string, string> {
  return { authorization: `Bearer ${credentials.accessToken}`, cookie: credentials.fingerprint }
}

t.test('routeOptions.config never makes a public route guarded, and its hooks run there', async (t) => {
  const seen: string[] = []
  const h = await build(t, {
    global: true,
    routes: { prefix: '/sessions', routeOptions: { config: { public: false } } },
    health: { path: '/health', routeOptions: { config: { public: false }, onRequest: async (request) => { seen.push(request.url) } } }
  })
  t.equal((await h.app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
  t.same(seen, ['/health'])
  const resolve = await h.app.inject({ method: 'POST', url: '/sessions/resolve-limit', payload: { ticket: 'x', revoke: 'y' } })
  t.equal(resolve.statusCode, 401, 'refused by the ticket check')
  t.equal(resolve.headers['www-authenticate'], undefined, 'not by the guard, which sends a challenge')
  t.equal((await h.app.inject({ method: 'GET', url: '/sessions' })).headers['www-authenticate'], 'Bearer realm="session", error="invalid_token"', 'the guarded ones stay guarded')
})

t.test('routeOptions: an app preHandler sees request.user', async (t) => {
  const seen: string[] = []
  const h = await build(t, {
    routes: {
      prefix: '/sessions',
      routeOptions: {
        config: { audit: 'devices' },
        logLevel: 'warn',
        preHandler: async (request) => { seen.push(`${(request.user as { sub: string }).sub}:${String(request.routeOptions.config.audit)}:${request.routeOptions.logLevel}`) }
      }
    }
  })
  const alice = await h.login('alice')
  t.equal((await h.app.inject({ method: 'GET', url: '/sessions', headers: auth(alice) })).statusCode, 200)
  t.same(seen, ['alice:devices:warn'])
})

t.test('routeOptions and openapi are checked: unknown names and wrong types are refused', async (t) => {
  const fn = async (): Promise<void> => {}
  const cases: Array<[string, unknown]> = [
    ['routes.routeOptions.handler', { routes: { prefix: '/s', routeOptions: { handler: fn } } }],
    ['routes.routeOptions.schema.response', { routes: { prefix: '/s', routeOptions: { schema: { response: {} } } } }],
    ['routes.routeOptions', { routes: { prefix: '/s', routeOptions: 'yes' } }],
    ['routes.routeOptions.config', { routes: { prefix: '/s', routeOptions: { config: 5 } } }],
    ['routes.routeOptions.logLevel', { routes: { prefix: '/s', routeOptions: { logLevel: 5 } } }],
    ['routes.routeOptions.onRequest', { routes: { prefix: '/s', routeOptions: { onRequest: [fn, 'x'] } } }],
    ['routes.routeOptions.preHandler', { routes: { prefix: '/s', routeOptions: { preHandler: 'x' } } }],
    ['routes.routeOptions.hide', { routes: { prefix: '/s', routeOptions: { hide: 'yes' } } }],
    ['routes.routeOptions.schema.tags', { routes: { prefix: '/s', routeOptions: { schema: { tags: 'x' } } } }],
    ['routes.routeOptions.schema.tags', { routes: { prefix: '/s', routeOptions: { schema: { tags: [1] } } } }],
    ['routes.routeOptions.schema.summary', { routes: { prefix: '/s', routeOptions: { schema: { summary: 1 } } } }],
    ['routes.routeOptions.schema.deprecated', { routes: { prefix: '/s', routeOptions: { schema: { deprecated: 1 } } } }],
    ['routes.routeOptions.schema.externalDocs', { routes: { prefix: '/s', routeOptions: { schema: { externalDocs: {} } } } }],
    ['routes.routeOptions.schema.security', { routes: { prefix: '/s', routeOptions: { schema: { security: {} } } } }],
    ['routes.routeOptions.schema.security', { routes: { prefix: '/s', routeOptions: { schema: { security: [null] } } } }],
    ['health.routeOptions.url', { health: { path: '/h', routeOptions: { url: '/x' } } }],
    ['metrics.routeOptions.method', { metrics: { path: '/m', routeOptions: { method: 'POST' } } }],
    ['openapi.securityScheme', { openapi: { securityScheme: '' } }],
    ['openapi.securityScheme', { openapi: { securityScheme: true } }],
    ['openapi.scheme', { openapi: { scheme: 'x' } }],
    ['global.skip', { global: { skip: true } }],
    ['global.public', { global: { public: fn } }],
    ['global', { global: null }],
    ['global', { global: 'yes' }]
  ]
  for (const [name, options] of cases) {
    const err = await registrationError({ secret: SECRET, ...options as object })
    t.match(err, { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: new RegExp(`"${name.replace(/\./g, '\\.')}"`) }, name)
  }
  t.equal(await registrationError({ secret: SECRET, global: false, openapi: {}, routes: { prefix: '/s', routeOptions: {} } }), undefined, 'empty sections are fine')
})
