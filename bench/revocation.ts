import Fastify, { type FastifyInstance } from 'fastify'
import sessionGuard from 'fastify-session-guard'
import { redisStore } from 'fastify-session-guard/redis'
import { fixed, integer, machine, parseFlags, quantile, requireBuild, table, today, writeReportSection } from './common.js'
import { withRedisServers } from './redis-server.js'

const USAGE = `npm run bench:revocation -- [options]

Cross-instance revocation: two instances of an app, each with the Redis store
and its local cache, on a private redis-server that this benchmark starts (on a
free port of 127.0.0.1, stopped by pid). For each revocation a session signs in
on instance A, is read on instance B (so B has it cached), is revoked on A, and
B is asked over HTTP again and again until it refuses it. The time from the acknowledged
revoke to B's first refusal, while other sessions keep B busy.

  --revocations <n>   revocations measured                       (default 1000)
  --load <n>          other sessions each reading B back to back (default 16)
  --smoke             tiny sizes, writes nothing
  --write             write docs/benchmarks.md even with --smoke`

const flags = parseFlags(process.argv.slice(2), { revocations: 1000, load: 16, write: false }, { revocations: 20, load: 4 }, USAGE)
const SECRET = 'revocation-benchmark-secret-of-32-bytes!'
const TARGET_P99_MS = 50

interface Instance {
  app: FastifyInstance
  /** Signs a new session in, and returns how to present it. */
  login: (user: string) => Promise<{ sessionId: string, headers: Record<string, string> }>
  /** The status of a guarded request with these headers, over HTTP. */
  read: (headers: Record<string, string>) => Promise<number>
}

async function instance (connection: string): Promise<Instance> {
  const app = Fastify()
  await app.register(sessionGuard, { secret: SECRET, store: redisStore({ connection, localCache: true }) })
  app.post<{ Body: { user: string } }>('/login', async (request, reply) => {
    const { accessToken, session } = await reply.issueSession({ userId: request.body.user })
    return { accessToken, sessionId: session.id }
  })
  app.get('/', { onRequest: app.requireSession }, async () => ({ ok: true }))
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    app,
    async login (user) {
      const response = await app.inject({ method: 'POST', url: '/login', body: { user } })
      const fingerprint = response.cookies.find((cookie) => cookie.name === '__Host-sg-fp')
      if (response.statusCode !== 200 || fingerprint === undefined) throw new Error(`login failed: ${response.statusCode} ${response.body}`)
      const { accessToken, sessionId } = response.json<{ accessToken: string, sessionId: string }>()
      return { sessionId, headers: { authorization: `Bearer ${accessToken}`, cookie: `__Host-sg-fp=${fingerprint.value}` } }
    },
    async read (headers) {
      const response = await fetch(url, { headers })
      await response.arrayBuffer()
      return response.status
    }
  }
}

/** B's refusal, asked back to back: the milliseconds from `since` to the first 401. */
async function untilRefused (b: Instance, headers: Record<string, string>, since: number): Promise<number> {
  for (;;) {
    const status = await b.read(headers)
    if (status === 401) return performance.now() - since
    if (status !== 200) throw new Error(`instance B answered ${status}`)
  }
}

async function main (): Promise<void> {
  requireBuild()
  await withRedisServers(1, [], async ({ ports }) => {
    const url = `redis://127.0.0.1:${ports[0] as number}`
    const a = await instance(url)
    const b = await instance(url)
    // The load: other sessions, each read on B back to back until the measurement ends.
    const done = new AbortController()
    let load: Promise<unknown> = Promise.resolve()
    try {
      let loadReads = 0
      const others = await Promise.all(Array.from({ length: flags.load }, async (_, i) => await a.login(`load-${i}`)))
      load = Promise.all(others.map(async ({ headers }) => {
        while (!done.signal.aborted) {
          if (await b.read(headers) !== 200) throw new Error('a load session was refused')
          loadReads++
        }
      }))
      const latencies = new Float64Array(flags.revocations)
      const started = performance.now()
      for (let i = 0; i < flags.revocations; i++) {
        const { sessionId, headers } = await a.login(`user-${i}`)
        if (await b.read(headers) !== 200) throw new Error('instance B refused a live session')
        // Cached on B now: the second read is answered from its local cache.
        if (await b.read(headers) !== 200) throw new Error('instance B refused a live session')
        if (!await a.app.sessions.revoke(sessionId)) throw new Error('the revoke found no session')
        latencies[i] = await untilRefused(b, headers, performance.now())
      }
      const seconds = (performance.now() - started) / 1000
      done.abort()
      await load
      const ms = (q: number): string => fixed(quantile(latencies, q), 2)
      const p99 = quantile(latencies, 0.99)
      const markdown = [
        '## Cross-instance revocation',
        '',
        `${today()}, ${machine()}. \`npm run bench:revocation${flags.smoke ? ' -- --smoke' : ''}\`:`,
        'two instances of an app in one process, each listening on 127.0.0.1 with the Redis store and `localCache: true`,',
        'on a private redis-server. Each revocation: a session signs in on A and is read twice on B (cached there),',
        '`app.sessions.revoke()` on A resolves, then B is asked over HTTP back to back until it answers 401. Meanwhile',
        `${flags.load} other sessions read B back to back over HTTP (${integer(loadReads / seconds)} reads/s). The latency runs from the resolved`,
        'revoke to B\'s first 401: the invalidation\'s trip through Redis pub/sub to B\'s subscriber, plus one request.',
        `Target: p99 ≤ ${TARGET_P99_MS} ms.`,
        '',
        table(['revocations', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'target'], [[
          integer(flags.revocations), ms(0.5), ms(0.9), ms(0.99), ms(1),
          p99 <= TARGET_P99_MS ? 'met' : `missed by ${fixed(p99 - TARGET_P99_MS, 2)} ms`
        ]])
      ].join('\n')
      console.log(markdown)
      if (!flags.smoke || flags.write) console.log(`wrote ${writeReportSection('revocation', markdown)}`)
    } finally {
      done.abort()
      await load.catch(() => {})
      await a.app.close()
      await b.app.close()
    }
  })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
