import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { installed, npmInstall, pack, ROOT, run, tempDir } from './package-helper.js'

/**
 * Apps as users write them, on the packed tarball: installed by npm in its
 * isolated layout (as under pnpm, only an app's own dependencies sit at the top
 * of its node_modules), compiled by tsc, run by node. One ES module under
 * `module: nodenext`, one CommonJS module under `module: node16`, one under
 * `moduleResolution: bundler`. Each compiles the README's quick start and its
 * TypeScript recipe as they are printed, checks the decorators' types, and runs
 * an app that answers a guarded request and makes a Redis store from
 * `fastify-session-guard/redis`. A fourth app composes the plugin with the
 * plugins such apps run (swagger, swagger-ui, cors, rate-limit, helmet,
 * under-pressure, prom-client's default metrics) and serves them over HTTP.
 */

// Install, three compilations and four apps, on a busy machine; about a minute on an idle one.
t.setTimeout(360_000)

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')

/** The first `ts` code block under the README heading `## <heading>`. */
function readmeBlock (readme: string, heading: string): string {
  const section = readme.split(/^## /m).find((part) => part.startsWith(`${heading}\n`))
  const block = section?.match(/^```ts\n([\s\S]*?)^```$/m)?.[1]
  if (block === undefined) throw new Error(`README.md has no ts block under "## ${heading}"`)
  return block
}

interface Consumer {
  /** Its directory, and what `tsc` is told. */
  name: string
  type: 'module' | 'commonjs'
  compilerOptions: Record<string, unknown>
  /** The quick start as this kind of module can hold it. */
  quickStart: (block: string) => string
  /** How the app imports the plugin and its named exports. */
  imports: string
  /** The app's body runs inside an async function: CommonJS has no top-level await. */
  main: (body: string) => string
}

const esmMain = (body: string): string => body
const CONSUMERS: Consumer[] = [
  {
    name: 'esm-nodenext',
    type: 'module',
    compilerOptions: { module: 'nodenext', verbatimModuleSyntax: true },
    quickStart: (block) => block,
    imports: `import sessionGuard, { fastifySessionGuard, memoryStore, sessionGuard as named, type SessionGuardOptions, type SessionStore } from 'fastify-session-guard'
import * as namespace from 'fastify-session-guard'
import { redisStore, RedisStore } from 'fastify-session-guard/redis'`,
    main: esmMain
  },
  {
    name: 'cjs-node16',
    type: 'commonjs',
    compilerOptions: { module: 'node16', esModuleInterop: true },
    // The same lines, with the awaits inside a function.
    quickStart: (block) => {
      const lines = block.split('\n')
      const imports = lines.filter((line) => line.startsWith('import '))
      const body = lines.filter((line) => !line.startsWith('import '))
      return `${imports.join('\n')}\n\nexport async function quickStart (): Promise<void> {\n${body.join('\n')}\n}\n`
    },
    imports: `import sessionGuard = require('fastify-session-guard')
import type { SessionGuardOptions, SessionStore } from 'fastify-session-guard'
import redis = require('fastify-session-guard/redis')
const { fastifySessionGuard, memoryStore, sessionGuard: named } = sessionGuard
const { redisStore, RedisStore } = redis
const namespace = sessionGuard`,
    main: (body) => `async function main (): Promise<void> {\n${body}\n}\nmain().catch((err: unknown) => { console.error(err); process.exitCode = 1 })\n`
  },
  {
    name: 'bundler',
    type: 'module',
    compilerOptions: { module: 'esnext', moduleResolution: 'bundler' },
    quickStart: (block) => block,
    imports: `import sessionGuard, { fastifySessionGuard, memoryStore, sessionGuard as named, type SessionGuardOptions, type SessionStore } from 'fastify-session-guard'
import * as namespace from 'fastify-session-guard'
import { redisStore, RedisStore } from 'fastify-session-guard/redis'`,
    main: esmMain
  }
]

/** The decorators' and `request.user`'s types, after the README's recipe. */
const TYPE_CHECKS = `
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Guard, IssuedSession, SessionManager, SessionRecord } from 'fastify-session-guard'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
declare const app: FastifyInstance
declare const request: FastifyRequest
declare const reply: FastifyReply
export const checks: [
  Equal<typeof request.user, AccessClaims & { role: 'admin' | 'member' }>,
  Equal<typeof request.user.sub, string>,
  Equal<typeof app.requireSession, Guard>,
  Equal<typeof app.sessions, SessionManager>,
  Equal<typeof request.authSession, SessionRecord | null>,
  Equal<ReturnType<typeof reply.issueSession>, Promise<IssuedSession>>,
  Equal<ReturnType<typeof reply.refreshSession>, Promise<IssuedSession>>,
  Equal<ReturnType<typeof request.endSession>, Promise<void>>,
  Equal<ReturnType<typeof request.regenerateSession>, Promise<IssuedSession>>
] = [true, true, true, true, true, true, true, true, true]
`

/** Logs in, then asks a guarded route with and without the fingerprint cookie; prints what it saw. */
const APP_BODY = `
  const options: SessionGuardOptions = { secret: 'a-consumer-secret-that-is-long-enough-0123', store: memoryStore() }
  const app = Fastify()
  await app.register(sessionGuard, options)
  app.post('/login', async (request, reply) => {
    const { accessToken } = await reply.issueSession({ userId: 'alice', claims: { role: 'admin' } })
    return { accessToken }
  })
  app.get('/me', { preHandler: app.requireSession }, async (request) => ({ sub: request.user.sub, role: request.user.role }))
  const login = await app.inject({ method: 'POST', url: '/login' })
  const authorization = 'Bearer ' + (login.json() as { accessToken: string }).accessToken
  const cookie = login.cookies.map(({ name, value }) => name + '=' + value).join('; ')
  const me = await app.inject({ url: '/me', headers: { authorization, cookie } })
  const withoutCookie = await app.inject({ url: '/me', headers: { authorization } })
  await app.close()
  // The Redis store, from its own entry: made without connecting.
  const redisBacked: SessionStore = redisStore({ connection: 'redis://127.0.0.1:6379' })
  console.log(JSON.stringify({
    samePlugin: [named, fastifySessionGuard, namespace.default, namespace.sessionGuard].every((value) => value === sessionGuard),
    redisStore: redisBacked instanceof RedisStore && !('redisStore' in sessionGuard),
    me: { status: me.statusCode, body: me.json() },
    withoutCookie: withoutCookie.statusCode
  }))
`

/** The plugins the ecosystem app registers around this one, installed at this repository's versions. */
const ECOSYSTEM = ['@fastify/swagger', '@fastify/swagger-ui', '@fastify/cors', '@fastify/rate-limit', '@fastify/helmet', '@fastify/under-pressure', 'prom-client']

/**
 * An ES module app (JavaScript: the types are the other apps' and tsd's concern)
 * with the plugin among the usual ones, listening on a port:
 * logs in, makes a guarded request, a CORS preflight, and reads the OpenAPI
 * document and prom-client's metrics; prints what it saw.
 */
const ECOSYSTEM_APP = `import Fastify from 'fastify'
import cors from '@fastify/cors'
import helmet from '@fastify/helmet'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import underPressure from '@fastify/under-pressure'
import { collectDefaultMetrics, Registry } from 'prom-client'
import sessionGuard, { memoryStore } from 'fastify-session-guard'

const registry = new Registry()
collectDefaultMetrics({ register: registry })
const app = Fastify()
await app.register(swagger, {
  openapi: {
    info: { title: 'ecosystem', version: '1.0.0' },
    components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } }
  }
})
await app.register(swaggerUi, { routePrefix: '/documentation' })
await app.register(cors, { origin: 'https://app.example' })
await app.register(helmet)
await app.register(rateLimit, { max: 100, timeWindow: '1 minute' })
await app.register(underPressure, { exposeStatusRoute: true })
await app.register(sessionGuard, {
  secret: 'a-consumer-secret-that-is-long-enough-0123',
  store: memoryStore(),
  secureCookies: false,
  development: true,
  global: { skip: (route) => route.url.startsWith('/documentation') || route.url === '/status' },
  routes: { prefix: '/sessions', routeOptions: { config: { rateLimit: { max: 10, timeWindow: '1 minute' } } } },
  health: { path: '/health' }
})
app.post('/login', { config: { public: true } }, async (_request, reply) => {
  const { accessToken } = await reply.issueSession({ userId: 'alice' })
  return { accessToken }
})
app.get('/me', async (request) => ({ sub: request.user.sub }))
app.get('/prom', { config: { public: true } }, async (_request, reply) => await reply.type(registry.contentType).send(await registry.metrics()))
const address = await app.listen({ port: 0, host: '127.0.0.1' })

const login = await fetch(address + '/login', { method: 'POST' })
const { accessToken } = await login.json()
const cookie = login.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ')
const me = await fetch(address + '/me', { headers: { authorization: 'Bearer ' + accessToken, cookie } })
const sessions = await fetch(address + '/sessions', { headers: { authorization: 'Bearer ' + accessToken, cookie } })
const withoutCookie = await fetch(address + '/me', { headers: { authorization: 'Bearer ' + accessToken } })
const preflight = await fetch(address + '/me', { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' } })
const documentation = await fetch(address + '/documentation/json')
const document = await documentation.json()
const list = document.paths['/sessions/']?.get
const prom = await (await fetch(address + '/prom')).text()
const status = await fetch(address + '/status')
await app.close()
console.log(JSON.stringify({
  me: { status: me.status, body: await me.json(), nosniff: me.headers.get('x-content-type-options') },
  sessions: { status: sessions.status, limit: sessions.headers.get('x-ratelimit-limit') },
  withoutCookie: withoutCookie.status,
  preflight: { status: preflight.status, origin: preflight.headers.get('access-control-allow-origin') },
  documentation: { status: documentation.status, security: list?.security, responses: Object.keys(list?.responses ?? {}).sort() },
  status: status.status,
  defaultMetrics: prom.includes('process_cpu_user_seconds_total')
}))
`

async function writeConsumer (dir: string, consumer: Consumer, readme: string): Promise<void> {
  await mkdir(dir)
  const fastifyImport = consumer.type === 'module' ? "import Fastify from 'fastify'" : "import Fastify = require('fastify')"
  const files: Record<string, string> = {
    'package.json': JSON.stringify({ private: true, type: consumer.type }),
    'tsconfig.json': JSON.stringify({
      compilerOptions: {
        target: 'es2022',
        strict: true,
        skipLibCheck: true,
        outDir: 'dist',
        rootDir: '.',
        types: ['node'],
        typeRoots: [join(ROOT, 'node_modules', '@types')],
        ...consumer.compilerOptions
      }
    }),
    // The app's own code that the quick start calls.
    'globals.d.ts': "declare function checkPassword (body: unknown): Promise<{ id: string, role: 'admin' | 'member' }>\n",
    'quick-start.ts': consumer.quickStart(readmeBlock(readme, 'Quick start')),
    'user.ts': readmeBlock(readme, 'TypeScript') + TYPE_CHECKS,
    'app.ts': `${fastifyImport}\n${consumer.imports}\n${consumer.main(APP_BODY)}`
  }
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text)
}

t.test('apps on the packed tarball compile the README verbatim and answer a guarded request', async (t) => {
  const tarball = await pack(t)
  const root = await tempDir(t, 'sg-consumers')
  await writeFile(join(root, 'package.json'), JSON.stringify({
    private: true,
    // ioredis: an optional peer dependency, which an app on the Redis store installs.
    dependencies: {
      'fastify-session-guard': `file:${tarball}`,
      fastify: await installed('fastify'),
      ioredis: await installed('ioredis'),
      ...Object.fromEntries(await Promise.all(ECOSYSTEM.map(async (name) => [name, await installed(name)])))
    }
  }))
  const install = await npmInstall(root)
  t.equal(install.code, 0, `npm install: ${install.stderr}`)

  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  const ecosystem = (async () => {
    const dir = join(root, 'ecosystem')
    await mkdir(dir)
    await writeFile(join(dir, 'app.mjs'), ECOSYSTEM_APP)
    const ran = await run(process.execPath, [join(dir, 'app.mjs')], { cwd: dir })
    t.equal(ran.code, 0, `ecosystem: node app.mjs\n${ran.stderr}`)
    t.strictSame(JSON.parse(ran.stdout), {
      me: { status: 200, body: { sub: 'alice' }, nosniff: 'nosniff' },
      sessions: { status: 200, limit: '10' },
      withoutCookie: 401,
      preflight: { status: 204, origin: 'https://app.example' },
      documentation: { status: 200, security: [{ bearerAuth: [] }], responses: ['200', '401', '429', '503'] },
      status: 200,
      defaultMetrics: true
    }, 'ecosystem: helmet, rate-limit, cors, swagger-ui, under-pressure and prom-client around the plugin')
  })()
  await Promise.all([ecosystem, ...CONSUMERS.map(async (consumer) => {
    const dir = join(root, consumer.name)
    await writeConsumer(dir, consumer, readme)
    const compiled = await run(process.execPath, [TSC, '-p', dir], { timeoutMs: 120_000 })
    t.equal(compiled.code, 0, `${consumer.name}: tsc\n${compiled.stdout}${compiled.stderr}`)
    const ran = await run(process.execPath, [join(dir, 'dist', 'app.js')], { cwd: dir })
    t.equal(ran.code, 0, `${consumer.name}: node dist/app.js\n${ran.stderr}`)
    t.strictSame(JSON.parse(ran.stdout), {
      samePlugin: true,
      redisStore: true,
      me: { status: 200, body: { sub: 'alice', role: 'admin' } },
      withoutCookie: 401
    }, `${consumer.name}: the plugin under every name, and a guarded route that needs the cookie`)
  })])
})
