import { fork } from 'node:child_process'
import { once } from 'node:events'
import { loadavg } from 'node:os'
import Fastify, { type FastifyInstance } from 'fastify'
import sessionGuard from 'fastify-session-guard'
import { redisStore } from 'fastify-session-guard/redis'
import { fixed, integer, machine, parseFlags, quantile, requireBuild, table, today, writeReportSection } from './common.js'
import { info, withRedisServers } from './redis-server.js'

const USAGE = `npm run bench:revocation -- [options]

Cross-instance revocation. Two instances of an app, each with the Redis store
and its local cache, on a private redis-server that this benchmark starts (on a
free port of 127.0.0.1, stopped by pid); instance B runs in a process of its own.
For each revocation a session signs in on A, is read twice on B (so that B has
it cached), is revoked on A, and B is asked over HTTP until it refuses it,
while other sessions keep B busy. Reported: the time from the revoke's call
and from its acknowledgement to B's first refusal, and every request B still
accepted after the acknowledgement.

  --revocations <n>   revocations measured                       (default 1000)
  --load <n>          other sessions each reading B back to back (default 16)
  --smoke             tiny sizes, writes nothing
  --write             write docs/benchmarks.md even with --smoke`

const SECRET = 'revocation-benchmark-secret-of-32-bytes!'
const TARGET_P99_MS = 50
/**
 * B's cache may serve an entry this long without asking Redis: far beyond any
 * wait below, so that only the invalidation can end a cached session on B.
 */
const CACHE_TTL_MS = 60_000
/** B still accepting a revoked session after this long means the invalidation was lost. */
const GIVE_UP_MS = 10_000
/** Environment variable that makes this file instance B, forked by the benchmark. */
const INSTANCE_OF = 'SESSION_GUARD_BENCH_REDIS_URL'

interface Presented { sessionId: string, headers: Record<string, string> }

async function app (connection: string): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(sessionGuard, { secret: SECRET, store: redisStore({ connection, localCache: { max: 10_000, ttlMs: CACHE_TTL_MS } }) })
  app.post<{ Body: { user: string } }>('/login', async (request, reply) => {
    const { accessToken, session } = await reply.issueSession({ userId: request.body.user })
    return { accessToken, sessionId: session.id }
  })
  app.get('/', { onRequest: app.requireSession }, async () => ({ ok: true }))
  return app
}

/** Instance B: listens on a free port of 127.0.0.1, says which, and lives until the benchmark goes. */
async function instanceB (connection: string, send: (message: unknown) => void): Promise<void> {
  const b = await app(connection)
  await b.listen({ host: '127.0.0.1', port: 0 })
  const address = b.server.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')
  process.on('disconnect', () => { b.close().finally(() => process.exit(0)) })
  send({ port: address.port })
}

/** Signs a session in on A, and returns how to present it. */
async function login (a: FastifyInstance, user: string): Promise<Presented> {
  const response = await a.inject({ method: 'POST', url: '/login', body: { user } })
  const fingerprint = response.cookies.find((cookie) => cookie.name === '__Host-sg-fp')
  if (response.statusCode !== 200 || fingerprint === undefined) throw new Error(`login failed: ${response.statusCode} ${response.body}`)
  const { accessToken, sessionId } = response.json<{ accessToken: string, sessionId: string }>()
  return { sessionId, headers: { authorization: `Bearer ${accessToken}`, cookie: `__Host-sg-fp=${fingerprint.value}` } }
}

/** The status of a guarded request to B. */
async function read (url: string, headers: Record<string, string>): Promise<number> {
  const response = await fetch(url, { headers })
  await response.arrayBuffer()
  return response.status
}

/** HGETALLs redis-server has run: a read B answers from its cache runs none. */
async function hgetalls (port: number): Promise<number> {
  return Number(/cmdstat_hgetall:calls=(\d+)/.exec(await info(port, 'commandstats'))?.[1] ?? 0)
}

/**
 * Waits until B answers a session's second read from its cache (its subscriber
 * has subscribed: until then the cache does not answer), or gives up.
 */
async function untilCached (a: FastifyInstance, url: string, port: number): Promise<void> {
  const end = Date.now() + 15_000
  for (let n = 0; Date.now() < end; n++) {
    const { headers } = await login(a, `cache-check-${n}`)
    if (await read(url, headers) !== 200) throw new Error('instance B refused a live session')
    const before = await hgetalls(port)
    if (await read(url, headers) !== 200) throw new Error('instance B refused a live session')
    if (await hgetalls(port) === before) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error('instance B never answered from its local cache')
}

interface Revocation {
  /** From the call to `revoke()` to B's first 401. */
  fromCall: number
  /** From `revoke()` resolving to B's first 401. */
  fromAck: number
  /** 200s B answered for the session after `revoke()` resolved. */
  accepted: number
}

async function revokeAndWatch (a: FastifyInstance, url: string, { sessionId, headers }: Presented): Promise<Revocation> {
  const called = performance.now()
  if (!await a.sessions.revoke(sessionId)) throw new Error('the revoke found no session')
  const acknowledged = performance.now()
  let accepted = 0
  for (;;) {
    const status = await read(url, headers)
    const now = performance.now()
    if (status === 401) return { fromCall: now - called, fromAck: now - acknowledged, accepted }
    if (status !== 200) throw new Error(`instance B answered ${status}`)
    accepted++
    if (now - acknowledged > GIVE_UP_MS) throw new Error(`instance B still accepted a session revoked ${GIVE_UP_MS} ms ago: no invalidation arrived`)
  }
}

async function main (): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), { revocations: 1000, load: 16, write: false }, { revocations: 20, load: 4 }, USAGE)
  if (flags.revocations < 1 || flags.load < 0) throw new Error('--revocations must be at least 1, --load at least 0')
  requireBuild()
  await withRedisServers(1, [], async ({ ports }) => {
    const port = ports[0] as number
    const connection = `redis://127.0.0.1:${port}`
    const child = fork(__filename, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, [INSTANCE_OF]: connection }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const exited = once(child, 'exit')
    const a = await app(connection)
    await a.ready()
    const done = new AbortController()
    let loadError: unknown
    let load: Promise<unknown> = Promise.resolve()
    try {
      const [ready] = await Promise.race([once(child, 'message'), exited.then(() => { throw new Error('instance B exited before it listened') })]) as [{ port: number }]
      const url = `http://127.0.0.1:${ready.port}/`
      await untilCached(a, url, port)
      // The load: other sessions, each read on B back to back until the measurement ends.
      let loadReads = 0
      const others = await Promise.all(Array.from({ length: flags.load }, async (_, i) => await login(a, `load-${i}`)))
      load = Promise.all(others.map(async ({ headers }) => {
        while (!done.signal.aborted) {
          if (await read(url, headers) !== 200) throw new Error('instance B refused a load session')
          loadReads++
        }
      })).catch((error: unknown) => {
        loadError = error
        done.abort()
      })
      const load1 = loadavg()[0] as number
      const fromCall = new Float64Array(flags.revocations)
      const fromAck = new Float64Array(flags.revocations)
      let accepted = 0
      let staleRevocations = 0
      const started = performance.now()
      for (let i = 0; i < flags.revocations; i++) {
        if (loadError !== undefined) break
        const session = await login(a, `user-${i}`)
        if (await read(url, session.headers) !== 200) throw new Error('instance B refused a live session')
        // Cached on B now: the second read is answered from its local cache.
        if (await read(url, session.headers) !== 200) throw new Error('instance B refused a live session')
        const revocation = await revokeAndWatch(a, url, session)
        fromCall[i] = revocation.fromCall
        fromAck[i] = revocation.fromAck
        accepted += revocation.accepted
        if (revocation.accepted > 0) staleRevocations++
      }
      const seconds = (performance.now() - started) / 1000
      done.abort()
      await load
      if (loadError !== undefined) throw loadError
      const load2 = loadavg()[0] as number
      const ms = (values: Float64Array, q: number): string => fixed(quantile(values, q), 2)
      const p99 = quantile(fromAck, 0.99)
      const markdown = [
        '## Cross-instance revocation',
        '',
        `${today()}, ${machine()}, load average ${load1.toFixed(1)} at the start and ${load2.toFixed(1)} at the end.`,
        `\`npm run bench:revocation${flags.smoke ? ' -- --smoke' : ''}\`: instance A in the benchmark's process, instance B in a process of its own,`,
        `each with the Redis store and \`localCache\` (B's entries may live ${CACHE_TTL_MS / 1000} s: only an invalidation ends them sooner), on a`,
        'private redis-server. Each revocation: a session signs in on A and is read twice on B over HTTP (the second',
        'read answered from B\'s cache, checked once before the run with `INFO commandstats`), `app.sessions.revoke()` is',
        `called on A, then B is asked back to back until it answers 401. Meanwhile ${flags.load} other sessions read B back to back`,
        `(${integer(loadReads / seconds)} reads/s). The revoking script publishes the invalidation before it answers, and \`revoke()\``,
        'resolves after the store\'s own bookkeeping: "accepted after the ack" counts the requests B still let through once',
        `the revoke had resolved, the figure that says whether a revocation holds. Target: p99 from the ack ≤ ${TARGET_P99_MS} ms.`,
        '',
        table(['measured from', 'revocations', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'target'], [
          ['the call to revoke()', integer(flags.revocations), ms(fromCall, 0.5), ms(fromCall, 0.9), ms(fromCall, 0.99), ms(fromCall, 1), ''],
          ['revoke() resolved', integer(flags.revocations), ms(fromAck, 0.5), ms(fromAck, 0.9), ms(fromAck, 0.99), ms(fromAck, 1),
            p99 <= TARGET_P99_MS ? 'met' : `missed by ${fixed(p99 - TARGET_P99_MS, 2)} ms`]
        ]),
        '',
        `Accepted after the ack: ${integer(accepted)} requests, in ${integer(staleRevocations)} of ${integer(flags.revocations)} revocations.`
      ].join('\n')
      console.log(markdown)
      if (!flags.smoke || flags.write) console.log(`wrote ${writeReportSection('revocation', markdown)}`)
    } finally {
      done.abort()
      await load
      await a.close()
      child.disconnect()
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
  })
}

const instanceOf = process.env[INSTANCE_OF]
if (instanceOf !== undefined && process.send !== undefined) {
  instanceB(instanceOf, process.send.bind(process)).catch((error: unknown) => {
    console.error(error)
    process.exit(1)
  })
} else {
  main().catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
}
