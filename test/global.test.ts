import fastifyCors from '@fastify/cors'
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import fastifyUnderPressure from '@fastify/under-pressure'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import sessionGuard, { type SessionGuardOptions } from '../lib/index.js'
import { SECRET } from './helper.js'

/**
 * `global: true` beside the plugins an app runs: CORS preflights pass (a
 * browser sends them without credentials), and the routes of other plugins,
 * which the app cannot mark `config.public`, are left out with `global.skip`.
 */

async function app (global: SessionGuardOptions['global'], order: 'before' | 'after' = 'after'): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  if (order === 'before') await app.register(sessionGuard, { secret: SECRET, global })
  await app.register(fastifyCors, { origin: 'https://app.example' })
  await app.register(fastifySwagger, { openapi: { info: { title: 'test', version: '1' } } })
  await app.register(fastifySwaggerUi, { routePrefix: '/documentation' })
  await app.register(fastifyUnderPressure, { exposeStatusRoute: true })
  if (order === 'after') await app.register(sessionGuard, { secret: SECRET, global })
  app.get('/orders', async () => ({ orders: [] }))
  app.get('/open', { config: { public: true } }, async () => ({ open: true }))
  await app.ready()
  return app
}

const PREFLIGHT = { method: 'OPTIONS', url: '/orders', headers: { origin: 'https://app.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } } as const

for (const order of ['before', 'after'] as const) {
  t.test(`global: true answers a CORS preflight (the plugin registered ${order} @fastify/cors)`, async (t) => {
    const server = await app(true, order)
    const preflight = await server.inject(PREFLIGHT)
    t.equal(preflight.statusCode, 204)
    t.equal(preflight.headers['access-control-allow-origin'], 'https://app.example')
    t.equal((await server.inject({ method: 'GET', url: '/orders', headers: { origin: 'https://app.example' } })).statusCode, 401, 'the request itself is guarded')
    // Refused by the guard (401), or first by @fastify/cors as an invalid preflight (400).
    t.ok((await server.inject({ method: 'OPTIONS', url: '/orders' })).statusCode >= 400, 'an OPTIONS that is no preflight is not let through')
  })
}

t.test('global.skip leaves the routes of swagger-ui and under-pressure unguarded, and only those', async (t) => {
  const skipped: string[] = []
  const server = await app({
    skip: (route) => {
      skipped.push(`${String(route.method)} ${route.url}`)
      return route.url.startsWith('/documentation') || route.url === '/status'
    }
  })
  t.equal((await server.inject({ url: '/documentation/json' })).statusCode, 200)
  t.equal((await server.inject({ url: '/documentation/static/swagger-ui.css' })).statusCode, 200)
  t.equal((await server.inject({ url: '/status' })).statusCode, 200)
  t.equal((await server.inject({ url: '/open' })).statusCode, 200)
  t.equal((await server.inject({ url: '/orders' })).statusCode, 401)
  t.equal((await server.inject(PREFLIGHT)).statusCode, 204)
  t.same(skipped, ['GET /documentation/json', 'HEAD,GET /documentation/static/*', 'GET /status', 'GET /orders'], 'asked of each guarded route, not of public ones or preflights')
})

t.test('without skip, global: true guards the other plugins\' routes', async (t) => {
  const server = await app(true)
  t.equal((await server.inject({ url: '/documentation/json' })).statusCode, 401)
  t.equal((await server.inject({ url: '/status' })).statusCode, 401)
})

t.test('global: true guards a preflight that no CORS plugin answers, on a route of the app that takes OPTIONS', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, global: true })
  const handled: string[] = []
  app.all('/all', async (request) => { handled.push(request.method); return { secret: true } })
  app.route({ method: ['POST', 'OPTIONS'], url: '/multi', handler: async (request) => { handled.push(request.method); return { secret: true } } })
  await app.ready()
  for (const [url, method] of [['/all', 'GET'], ['/multi', 'x'], ['/all', '']] as const) {
    const response = await app.inject({ method: 'OPTIONS', url, headers: { 'access-control-request-method': method } })
    t.equal(response.statusCode, 401, `OPTIONS ${url} with Access-Control-Request-Method: "${method}"`)
  }
  t.equal((await app.inject({ method: 'OPTIONS', url: '/all' })).statusCode, 401, 'and one that is no preflight')
  t.same(handled, [], 'no handler ran without a session')
})

t.test('global: true refuses at onRequest, before any later hook runs: only a preflight waits for preHandler', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, global: true })
  const reached: string[] = []
  app.route({
    method: ['POST', 'OPTIONS'],
    url: '/multi',
    // What a request reaches after onRequest: body parsing, validation, the app's own hooks.
    preValidation: async (request) => { reached.push(`${request.method} ${request.headers['access-control-request-method'] ?? '-'}`) },
    handler: async () => ({ secret: true })
  })
  await app.ready()
  const cases = [
    ['POST', undefined],
    ['POST', 'POST'],
    ['OPTIONS', undefined],
    ['OPTIONS', 'POST']
  ] as const
  for (const [method, requested] of cases) {
    const response = await app.inject({ method, url: '/multi', headers: requested === undefined ? {} : { 'access-control-request-method': requested } })
    t.equal(response.statusCode, 401, `${method} with Access-Control-Request-Method ${requested ?? 'absent'}`)
  }
  t.same(reached, ['OPTIONS POST'], 'a POST (with or without the header) and an OPTIONS without it are refused first; a preflight at preHandler')
})
