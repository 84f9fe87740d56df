import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import fastifyCookie from '@fastify/cookie'
import fastifyJwt from '@fastify/jwt'
import fastifySession from '@fastify/session'
import { RedisStore as ConnectRedisStore } from 'connect-redis'
import Fastify, { type FastifyInstance } from 'fastify'
// The package by its own name: resolves to dist/, the build users run.
import sessionGuard from 'fastify-session-guard'
import { postgresStore } from 'fastify-session-guard/postgres'
import { redisStore } from 'fastify-session-guard/redis'
import { Redis } from 'ioredis'
import { Redis as Redis5 } from 'ioredis5'
import { Client } from 'pg'
import { createClient } from 'redis'
import type { SessionGuardOptions } from 'fastify-session-guard'
import { ROOT } from './common.js'
import { newDpopKey, signProofs, type DpopAlgorithm, type DpopClient } from './dpop.js'

/**
 * The HTTP benchmark's variants: one minimal server each, serving `GET /`
 * with the same small JSON body, so the only difference is the auth check.
 * Every server logs in once before it listens and hands the runner the
 * headers a logged-in client sends.
 *
 * A DPoP-bound client cannot send fixed headers: each request needs a fresh
 * proof. Such a variant hands over its key as well (`dpop`), and the runner
 * signs one proof per request before the load starts.
 *
 * Adding a variant is one entry in `VARIANTS`. A variant whose prerequisite
 * is not there yet (a store not merged, a fixture not written, no Redis
 * running) names it in `missing()`, and the runner skips it with that message.
 */
export interface Variant {
  /** Id on the command line (`--only guard-memory`). */
  readonly name: string
  /** Row label in the table. */
  readonly label: string
  /** Why this variant cannot run here, or `undefined` when it can. Runs in the runner. */
  readonly missing?: () => Promise<string | undefined>
  /** It keeps its sessions in the Redis at `REDIS_URL`: the runner counts redis-server's CPU as its cost too. */
  readonly redis?: true
  /** Builds the app and logs in. Runs in the server process. */
  readonly setup: () => Promise<Served>
}

export interface Served {
  readonly app: FastifyInstance
  /** Headers every request of the load carries. */
  readonly headers: Record<string, string>
  /** Runs after the app has closed: removes what the variant left outside the process. */
  readonly cleanup?: () => Promise<void>
  /** A DPoP-bound client: every request also carries a `DPoP` proof signed with this key. */
  readonly dpop?: DpopClient
}

/** Shared by every variant that signs tokens; HS256 everywhere. */
const SECRET = 'a-benchmark-secret-that-is-long-enough-0123456789'
const USER = 'user-0123456789'
const BODY_ROUTE = '/'

/** What a Redis-backed variant connects to, and the prefix of its keys (then the server's pid). */
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const REDIS_PREFIX = `${process.env.BENCH_REDIS_PREFIX ?? 'bench:'}${process.pid}:`
/** What a PostgreSQL-backed variant connects to, and its schema (dropped when its server closes). */
const POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? process.env.POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const POSTGRES_SCHEMA = `${process.env.BENCH_POSTGRES_SCHEMA ?? 'bench'}_${process.pid}`
const UA_FIXTURE = join(ROOT, 'bench', 'fixtures', 'user-agents.json')

export const VARIANTS: readonly Variant[] = [
  {
    name: 'bare',
    label: 'bare Fastify (no auth)',
    async setup () {
      const app = Fastify()
      app.get(BODY_ROUTE, async () => ({ user: USER }))
      return { app, headers: {} }
    }
  },
  {
    name: 'jwt',
    label: '@fastify/jwt only (request.jwtVerify, HS256)',
    setup: async () => await jwtServer(false)
  },
  {
    name: 'jwt-cache',
    label: '@fastify/jwt with verify.cache (request.jwtVerify, HS256)',
    // The peer's best configuration: fast-jwt's own cache of verified tokens.
    setup: async () => await jwtServer(true)
  },
  {
    name: 'session',
    label: '@fastify/session (memory store)',
    setup: async () => await sessionServer(undefined)
  },
  {
    name: 'session-redis',
    label: '@fastify/session + connect-redis (node-redis)',
    missing: async () => await redisMissing(),
    redis: true,
    async setup () {
      const client = createClient({ url: REDIS_URL })
      await client.connect()
      const served = await sessionServer(new ConnectRedisStore({ client, prefix: `${REDIS_PREFIX}sess:` }))
      return {
        ...served,
        async cleanup () {
          await deleteRedisKeys()
          await client.quit()
        }
      }
    }
  },
  {
    name: 'guard-memory',
    label: 'session guard, memory store',
    setup: async () => await guardServer({})
  },
  {
    name: 'guard-redis-cache',
    label: 'session guard, Redis store + local cache',
    missing: async () => await redisMissing(),
    redis: true,
    setup: async () => ({ ...await guardServer({ store: redisStore({ connection: REDIS_URL, prefix: REDIS_PREFIX, localCache: true }) }), cleanup: deleteRedisKeys })
  },
  {
    name: 'guard-redis',
    label: 'session guard, Redis store, no local cache',
    missing: async () => await redisMissing(),
    redis: true,
    setup: async () => ({ ...await guardServer({ store: redisStore({ connection: REDIS_URL, prefix: REDIS_PREFIX }) }), cleanup: deleteRedisKeys })
  },
  {
    // The same store on the app's own client of ioredis 5 (the peer range takes 5 and 6), pipelining as the
    // clients the store creates do: ioredis 6.0.0 spends more CPU decoding a reply (docs/benchmarks.md).
    name: 'guard-redis-ioredis5',
    label: 'session guard, Redis store, no local cache, ioredis 5 client',
    missing: async () => await redisMissing(),
    redis: true,
    setup: async () => ({
      ...await guardServer({
        store: redisStore({
          client: new Redis5(REDIS_URL, { enableAutoPipelining: true, maxRetriesPerRequest: 1, commandTimeout: 1000 }),
          closeClient: true,
          prefix: REDIS_PREFIX
        })
      }),
      cleanup: deleteRedisKeys
    })
  },
  {
    name: 'guard-postgres-cache',
    label: 'session guard, PostgreSQL store + local cache',
    missing: async () => await postgresMissing(),
    setup: async () => ({ ...await guardServer({ store: postgresStore({ connection: POSTGRES_URL, schema: POSTGRES_SCHEMA, migrate: true, localCache: true }) }), cleanup: dropPostgresSchema })
  },
  {
    name: 'guard-postgres',
    label: 'session guard, PostgreSQL store, no local cache',
    missing: async () => await postgresMissing(),
    setup: async () => ({ ...await guardServer({ store: postgresStore({ connection: POSTGRES_URL, schema: POSTGRES_SCHEMA, migrate: true }) }), cleanup: dropPostgresSchema })
  },
  {
    name: 'guard-dpop-es256',
    label: 'session guard, memory store, DPoP-bound (ES256 proofs)',
    setup: async () => await dpopGuardServer('ES256')
  },
  {
    name: 'guard-dpop-eddsa',
    label: 'session guard, memory store, DPoP-bound (EdDSA proofs)',
    setup: async () => await dpopGuardServer('EdDSA')
  },
  {
    name: 'guard-device',
    label: 'session guard, memory store, full device metadata',
    setup: async () => await guardServer(DEVICE_OPTIONS, firstUserAgent())
  }
]

/** `@fastify/jwt` verifying every request (`request.jwtVerify()`), with or without its cache of verified tokens. */
async function jwtServer (cache: boolean): Promise<Served> {
  const app = Fastify()
  await app.register(fastifyJwt, { secret: SECRET, sign: { algorithm: 'HS256' }, verify: { algorithms: ['HS256'], cache } })
  app.get(BODY_ROUTE, {
    onRequest: async (request) => { await request.jwtVerify() }
  }, async (request) => ({ user: (request.user as { sub: string }).sub }))
  await app.ready()
  // The same claims (and so the same token size) as the guard's access tokens.
  const token = app.jwt.sign({ sub: USER, sid: 'Wq3hN0mJ8bVx1cR5tY7uIw', fph: 'x'.repeat(43) }, { expiresIn: '1h' })
  return { app, headers: { authorization: `Bearer ${token}` } }
}

/**
 * `@fastify/session` with its defaults (rolling cookie; the built-in memory
 * store unless `store` is given), a login that sets the user, and `GET /`
 * refusing a session without one. `secure: false`: the load is plain HTTP.
 */
async function sessionServer (store: ConnectRedisStore | undefined): Promise<Served> {
  const app = Fastify()
  await app.register(fastifyCookie)
  await app.register(fastifySession, { secret: SECRET, cookie: { secure: false }, ...(store === undefined ? {} : { store }) })
  app.post('/login', async (request) => {
    data(request.session).set('userId', USER)
    return { ok: true }
  })
  app.get(BODY_ROUTE, {
    onRequest: async (request, reply) => {
      if (data(request.session).get('userId') === undefined) return await reply.code(401).send()
    }
  }, async (request) => ({ user: data(request.session).get('userId') }))
  const login = await app.inject({ method: 'POST', url: '/login' })
  const cookie = login.cookies.find((c) => c.name === 'sessionId')
  if (cookie === undefined) throw new Error('@fastify/session set no cookie')
  return { app, headers: { cookie: `sessionId=${cookie.value}` } }
}

/** A session's data by key, without augmenting @fastify/session's `SessionData` for the whole project. */
function data (session: unknown): { get: (key: string) => unknown, set: (key: string, value: unknown) => void } {
  return session as { get: (key: string) => unknown, set: (key: string, value: unknown) => void }
}

/**
 * Everything a session can record about its device: the raw User-Agent kept
 * beside the parsed device (client hints included by the client), the full IP,
 * and a location. Every variant of the guard parses the device at login; this
 * one keeps the most and sends client hints on every request.
 */
const DEVICE_OPTIONS: Partial<SessionGuardOptions> = {
  privacy: { ipMode: 'full', keepUserAgent: true },
  resolveLocation: () => ({ country: 'FR', city: 'Paris', latitude: 48.8566, longitude: 2.3522 })
}

/** The guard on `GET /`, and a login route answering what `reply.issueSession` gives. */
async function guardApp (options: Partial<SessionGuardOptions>): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(sessionGuard, { secret: SECRET, ...options })
  app.post('/login', async (_request, reply) => {
    const { accessToken, tokenType } = await reply.issueSession({ userId: USER, claims: { role: 'member' } })
    return { accessToken, tokenType }
  })
  app.get(BODY_ROUTE, { onRequest: app.requireSession }, async (request) => ({ user: (request.user as { sub: string }).sub }))
  return app
}

/** The guard after one real login through `reply.issueSession`: a browser's, bound to the fingerprint cookie. */
async function guardServer (options: Partial<SessionGuardOptions>, userAgent?: string): Promise<Served> {
  const app = await guardApp(options)
  const agent: Record<string, string> = userAgent === undefined ? {} : { 'user-agent': userAgent }
  const login = await app.inject({ method: 'POST', url: '/login', headers: agent })
  const fingerprint = login.cookies.find((c) => c.name === '__Host-sg-fp')
  if (login.statusCode !== 200 || fingerprint === undefined) throw new Error(`guard login failed: ${login.statusCode} ${login.body}`)
  const { accessToken } = login.json<{ accessToken: string }>()
  return {
    app,
    headers: { ...agent, authorization: `Bearer ${accessToken}`, cookie: `__Host-sg-fp=${fingerprint.value}` }
  }
}

/** The guard after one DPoP login (a proof made by a fresh `alg` key): a native app's session, bound to that key. */
async function dpopGuardServer (alg: DpopAlgorithm): Promise<Served> {
  const app = await guardApp({ dpop: { algorithms: [alg] } })
  const key = await newDpopKey(alg)
  // inject's requests come to http://localhost:80.
  const [proof] = await signProofs(key, 'POST', 'http://localhost/login', 1)
  const login = await app.inject({ method: 'POST', url: '/login', headers: { dpop: proof } })
  const { accessToken, tokenType } = login.json<{ accessToken?: string, tokenType?: string }>()
  if (login.statusCode !== 200 || tokenType !== 'DPoP' || accessToken === undefined) throw new Error(`DPoP login failed: ${login.statusCode} ${login.body}`)
  return { app, headers: { authorization: `DPoP ${accessToken}` }, dpop: { ...key, accessToken } }
}

/** A benchmark leaves nothing in the Redis it borrowed: the keys it wrote expire in up to 90 days. */
async function deleteRedisKeys (): Promise<void> {
  const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, connectTimeout: 2000, commandTimeout: 2000, retryStrategy: () => null })
  try {
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${REDIS_PREFIX}*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await client.unlink(...keys)
    } while (cursor !== '0')
  } finally {
    client.disconnect()
  }
}

async function redisMissing (): Promise<string | undefined> {
  const { hostname, port } = new URL(REDIS_URL)
  const reachable = await new Promise<boolean>((resolve) => {
    const socket = connect({ host: hostname, port: Number(port || 6379) })
    socket.setTimeout(500)
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('timeout', () => { socket.destroy(); resolve(false) })
    socket.once('error', () => resolve(false))
  })
  return reachable ? undefined : `no Redis at ${REDIS_URL} (set BENCH_REDIS_URL)`
}

/** A PostgreSQL client for the runner's checks and cleanup, failing fast. */
async function postgresClient (): Promise<Client> {
  const client = new Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000, query_timeout: 5000 })
  client.on('error', () => {})
  await client.connect()
  return client
}

/** A benchmark leaves nothing in the database it borrowed. */
async function dropPostgresSchema (): Promise<void> {
  const client = await postgresClient()
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${POSTGRES_SCHEMA}" CASCADE`)
  } finally {
    await client.end()
  }
}

async function postgresMissing (): Promise<string | undefined> {
  try {
    await (await postgresClient()).end()
    return undefined
  } catch {
    return `no PostgreSQL at ${POSTGRES_URL.replace(/:[^:@/]*@/, ':***@')} (set BENCH_POSTGRES_URL)`
  }
}

/** The most common user agent of the fixture (its first entry). */
function firstUserAgent (): string {
  const fixture = JSON.parse(readFileSync(UA_FIXTURE, 'utf8')) as unknown
  const first = Array.isArray(fixture) ? fixture[0] as unknown : undefined
  const ua = typeof first === 'string' ? first : (first as { ua?: unknown, userAgent?: unknown } | undefined)?.ua ?? (first as { userAgent?: unknown } | undefined)?.userAgent
  if (typeof ua !== 'string') throw new Error('bench/fixtures/user-agents.json: expected an array of strings or of { ua } objects')
  return ua
}

export function variant (name: string): Variant {
  const found = VARIANTS.find((v) => v.name === name)
  if (found === undefined) throw new Error(`unknown variant ${name}; known: ${VARIANTS.map((v) => v.name).join(', ')}`)
  return found
}
