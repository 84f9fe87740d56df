import { randomBytes } from 'node:crypto'
import autocannon from 'autocannon'
import Fastify, { type FastifyInstance } from 'fastify'
import sessionGuard, { memoryStore, type SessionStore } from '../lib/index.js'

/**
 * Soak and leak test: a real server on 127.0.0.1 (random port) under
 * autocannon, every connection looping through login, guarded calls,
 * refreshes, logout and "log out everywhere", with per-user limits evicting
 * as it goes. Reports throughput, errors and 5xx (both must be zero), the heap
 * and RSS slope after the warm-up (linear regression), whether the per-user
 * index agrees with the store, and whether anything (a timer, a socket) is
 * left open after `app.close()`.
 *
 *   npm run soak                 # full mode: 3 minutes (SOAK_SECONDS to change)
 *   npm run soak -- --short      # about 5 seconds (what `npm test` runs)
 *
 * Run with `--expose-gc` (npm run soak does) for steadier memory samples.
 */

export interface SoakOptions {
  durationSeconds: number
  connections: number
  /** Distinct user ids; fewer users mean more limit evictions and cross-revocations. */
  users: number
  maxSessionsPerUser: number
  /** Seconds of load before memory samples count. */
  warmupSeconds: number
  /** The store under test, created fresh for the run (the memory store, or any other). */
  store: () => SessionStore
  log?: (line: string) => void
}

export interface SoakReport {
  durationSeconds: number
  requests: number
  /** Socket errors and timeouts seen by autocannon. */
  errors: number
  /** 5xx answers, counted by autocannon and by the server itself. */
  serverErrors: number
  statusCounts: Record<string, number>
  routeCounts: Record<string, number>
  requestsPerSecond: number
  memory: {
    samples: number
    heapSlopeBytesPerMinute: number
    rssSlopeBytesPerMinute: number
    heapUsedStart: number
    heapUsedEnd: number
    rssEnd: number
  }
  consistency: {
    agreed: boolean
    storeSessions: number
    listedSessions: number
    storeUsers: number
    listedUsers: number
    overLimit: number
    detail: string[]
  }
  /** Active handles after close that were not there before the server started. */
  leftOpen: string[]
}

interface Context {
  user: string
  accessToken: string
  refreshToken: string
  cookie: string
}

const INITIAL_CONTEXT: Context = { user: '', accessToken: '', refreshToken: '', cookie: '' }

const json = { 'content-type': 'application/json' }

async function buildServer (options: SoakOptions, tally: { routes: Record<string, number>, serverErrors: number }): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(sessionGuard, {
    secret: randomBytes(32),
    maxSessionsPerUser: options.maxSessionsPerUser,
    refresh: { transport: 'body' },
    // Plain HTTP on 127.0.0.1: a browser would refuse Secure cookies here.
    secureCookies: false,
    development: true,
    store: options.store()
  })
  app.addHook('onResponse', async (request, reply) => {
    const key = `${request.method} ${String(request.routeOptions.url)} ${reply.statusCode}`
    tally.routes[key] = (tally.routes[key] ?? 0) + 1
    tally.serverErrors += Number(reply.statusCode >= 500)
  })
  app.post<{ Body: { userId: string } }>('/login', async (request, reply) => {
    const { accessToken, refreshToken } = await reply.issueSession({ userId: request.body.userId })
    return { accessToken, refreshToken }
  })
  app.get('/me', { preHandler: app.requireSession }, async (request) => ({ sub: request.authSession?.userId }))
  app.post('/refresh', async (_request, reply) => {
    const { accessToken, refreshToken } = await reply.refreshSession()
    return { accessToken, refreshToken }
  })
  app.post('/logout', { preHandler: app.requireSession }, async (request, reply) => {
    await request.endSession(reply)
    return await reply.code(204).send()
  })
  // "Log out everywhere else", as after a password change.
  app.post('/logout-others', { preHandler: app.requireSession }, async (request) => {
    const session = request.authSession
    return { revoked: await app.sessions.revokeAll(session?.userId as string, { except: session?.id, reason: 'password-change' }) }
  })
  return app
}

function requests (options: SoakOptions): autocannon.Request[] {
  const authed = (method: string, path: string, body?: (context: Context) => string): autocannon.Request => ({
    method: method as 'GET',
    path,
    setupRequest: (request, raw) => {
      const context = raw as Context
      const headers: Record<string, string> = { ...(body === undefined ? {} : json), authorization: `Bearer ${context.accessToken}`, cookie: context.cookie }
      return { ...request, headers, ...(body === undefined ? {} : { body: body(context) }) }
    }
  })
  const takeTokens = (status: number, body: string, raw: object): void => {
    const context = raw as Context
    if (status !== 200) return
    const parsed = JSON.parse(body) as { accessToken: string, refreshToken: string }
    context.accessToken = parsed.accessToken
    context.refreshToken = parsed.refreshToken
  }
  return [
    {
      method: 'POST',
      path: '/login',
      setupRequest: (request, raw) => {
        const context = raw as Context
        context.user = `user${Math.floor(Math.random() * options.users)}`
        return { ...request, headers: json, body: JSON.stringify({ userId: context.user }) }
      },
      onResponse: (status, body, raw, headers) => {
        takeTokens(status, body, raw)
        // The fingerprint cookie (body transport: the only cookie), as name=value.
        ;(raw as Context).cookie = String((headers as Record<string, unknown>)['set-cookie']).split(';')[0] as string
      }
    },
    authed('GET', '/me'),
    authed('GET', '/me'),
    authed('GET', '/me'),
    { ...authed('POST', '/refresh', (c) => JSON.stringify({ refreshToken: c.refreshToken })), onResponse: takeTokens },
    authed('GET', '/me'),
    { ...authed('POST', '/refresh', (c) => JSON.stringify({ refreshToken: c.refreshToken })), onResponse: takeTokens },
    authed('GET', '/me'),
    authed('POST', '/logout-others', () => '{}'),
    authed('GET', '/me'),
    authed('POST', '/logout', () => '{}'),
    authed('GET', '/me')
  ]
}

/** Least-squares slope of y over x. */
export function slope (points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length
  if (n < 2) return 0
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  let num = 0
  let den = 0
  for (const [x, y] of points) {
    num += (x - mx) * (y - my)
    den += (x - mx) ** 2
  }
  return den === 0 ? 0 : num / den
}

/** Active resources (timers, sockets, servers) now that were not active at `before`. */
function leftOpenSince (before: readonly string[]): string[] {
  const now = process.getActiveResourcesInfo()
  for (const name of before) {
    const at = now.indexOf(name)
    /* c8 ignore next: a resource that was active before and is gone now */
    if (at !== -1) now.splice(at, 1)
  }
  return now
}

export async function runSoak (options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? (() => {})
  const gc = (globalThis as { gc?: () => void }).gc
  const resourcesBefore = process.getActiveResourcesInfo()
  const tally = { routes: {} as Record<string, number>, serverErrors: 0 }
  const app = await buildServer(options, tally)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  log(`soak: http://127.0.0.1:${port}, ${options.connections} connections, ${options.durationSeconds} s, ${options.users} users`)

  const samples: Array<[number, number, number]> = []
  const started = Date.now()
  const sampler = setInterval(() => {
    const elapsed = (Date.now() - started) / 1000
    if (elapsed < options.warmupSeconds) return
    /* c8 ignore next: gc exists only under --expose-gc (npm run soak), not in the test runner */
    gc?.()
    const { heapUsed, rss } = process.memoryUsage()
    samples.push([elapsed, heapUsed, rss])
  }, Math.max(250, Math.min(5000, options.durationSeconds * 50)))

  let result: autocannon.Result
  try {
    result = await autocannon({
      url: `http://127.0.0.1:${port}`,
      connections: options.connections,
      duration: options.durationSeconds,
      timeout: 10,
      initialContext: INITIAL_CONTEXT,
      requests: requests(options)
    })
  } finally {
    clearInterval(sampler)
  }

  // The per-user index against the store: every user's list, summed, is what the store holds.
  const stats = await app.sessions.stats()
  let listedSessions = 0
  let listedUsers = 0
  let overLimit = 0
  let misread = 0
  for (let i = 0; i < options.users; i++) {
    const sessions = await app.sessions.list(`user${i}`)
    listedSessions += sessions.length
    listedUsers += Number(sessions.length > 0)
    overLimit += Number(sessions.length > options.maxSessionsPerUser)
    const read = await Promise.all(sessions.map(async (session) => await app.sessions.get(session.id)))
    misread += read.filter((session) => session === undefined || session.userId !== `user${i}`).length
  }
  const detail = ([
    [stats.sessions !== listedSessions, `store holds ${stats.sessions} sessions, the users list ${listedSessions}`],
    [stats.users !== listedUsers, `store counts ${stats.users} users, ${listedUsers} have sessions`],
    [overLimit > 0, `${overLimit} users above the limit`],
    [misread > 0, `${misread} listed sessions do not read back as their user's`]
  ] as Array<[boolean, string]>).filter(([wrong]) => wrong).map(([, message]) => message)

  await app.close()
  // Sockets close on the next turns of the loop: give them a moment, then compare.
  let leftOpen = leftOpenSince(resourcesBefore)
  /* c8 ignore next 4: runs only while sockets are still closing */
  for (let attempt = 0; attempt < 40 && leftOpen.length > 0; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    leftOpen = leftOpenSince(resourcesBefore)
  }

  const statusCounts = Object.fromEntries(Object.entries(result.statusCodeStats as Record<string, { count: number }>).map(([code, { count }]) => [code, count]))
  const minute = 60
  const first = samples[0] as [number, number, number]
  const last = samples.at(-1) as [number, number, number]
  return {
    durationSeconds: options.durationSeconds,
    requests: result.requests.total,
    errors: result.errors + result.timeouts,
    serverErrors: result['5xx'] + tally.serverErrors,
    statusCounts,
    routeCounts: tally.routes,
    requestsPerSecond: result.requests.average,
    memory: {
      samples: samples.length,
      heapSlopeBytesPerMinute: slope(samples.map(([t, heap]) => [t, heap] as const)) * minute,
      rssSlopeBytesPerMinute: slope(samples.map(([t, , rss]) => [t, rss] as const)) * minute,
      heapUsedStart: first[1],
      heapUsedEnd: last[1],
      rssEnd: last[2]
    },
    consistency: {
      agreed: detail.length === 0,
      storeSessions: stats.sessions,
      listedSessions,
      storeUsers: stats.users,
      listedUsers,
      overLimit,
      detail
    },
    leftOpen
  }
}

/* c8 ignore start: the command-line entry is run by `npm run soak`, not by the tests */
if (require.main === module) {
  const short = process.argv.includes('--short')
  const durationSeconds = short ? 5 : Number(process.env.SOAK_SECONDS ?? 180)
  const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(2)} MB`
  runSoak({
    durationSeconds,
    connections: Number(process.env.SOAK_CONNECTIONS ?? 32),
    users: Number(process.env.SOAK_USERS ?? 500),
    maxSessionsPerUser: 5,
    warmupSeconds: short ? 1 : Math.min(30, durationSeconds / 5),
    store: () => memoryStore({ max: 100_000, purgeIntervalMs: 1000 }),
    log: (line) => console.log(line)
  }).then((report) => {
    console.log(JSON.stringify(report, null, 2))
    console.log([
      `duration ${report.durationSeconds} s, ${report.requests} requests (${report.requestsPerSecond.toFixed(0)}/s)`,
      `errors ${report.errors}, 5xx ${report.serverErrors}`,
      `heap slope ${mb(report.memory.heapSlopeBytesPerMinute)}/min, rss slope ${mb(report.memory.rssSlopeBytesPerMinute)}/min over ${report.memory.samples} samples`,
      `index and store ${report.consistency.agreed ? 'agree' : 'DISAGREE'} (${report.consistency.storeSessions} sessions, ${report.consistency.storeUsers} users)`,
      `left open after close: ${report.leftOpen.length === 0 ? 'nothing' : report.leftOpen.join(', ')}`
    ].join('\n'))
    const ok = report.errors === 0 && report.serverErrors === 0 && report.consistency.agreed && report.leftOpen.length === 0
    process.exitCode = ok ? 0 : 1
  }, (err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
/* c8 ignore stop */
