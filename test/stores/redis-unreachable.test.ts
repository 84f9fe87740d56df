import { Writable } from 'node:stream'
import Fastify from 'fastify'
import { Redis as Valkey } from 'iovalkey'
import t, { type Test } from 'tap'
import sessionGuard from '../../lib/index.js'
import { redisStore, type RedisStoreOptions } from '../../lib/stores/redis/index.js'
import { SECRET, TestClock } from '../helper.js'
import { freePort, serverTest, startServer, TEST_CLIENT_OPTIONS, waitFor } from './redis-helper.js'

interface Line { level: number, msg: string, redis?: string, err?: { message: string } }

/** An app on `store` whose log lines the test reads, with a login route and `/health`. */
async function appOn (t: Test, options: RedisStoreOptions): Promise<{ app: ReturnType<typeof Fastify>, lines: Line[] }> {
  const lines: Line[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Line)
      done()
    }
  })
  const app = Fastify({ logger: { level: 'info', stream } })
  t.teardown(() => app.close())
  const clock = new TestClock()
  await app.register(sessionGuard, { secret: SECRET, clock: clock.read, store: redisStore(options), health: { path: '/health' } })
  app.post<{ Body: { userId: string } }>('/login', async (request, reply) => {
    const { accessToken } = await reply.issueSession(request.body)
    return { accessToken }
  })
  await app.ready()
  return { app, lines }
}

/** The lines saying the store cannot reach Redis. */
const unreachable = (lines: Line[]): Line[] => lines.filter((line) => line.msg.includes('cannot connect to Redis'))

serverTest(t, 'a store that cannot connect says where, once, in the log and on /health; and when it connects', async (t) => {
  // Nothing listens on this port until the test starts a server there.
  const port = await freePort()
  const where = `127.0.0.1:${port}`
  const { app, lines } = await appOn(t, { connection: `redis://${where}`, commandTimeoutMs: 300, prefix: 'sgtest-unreachable:' })

  // Several connection attempts fail meanwhile (one every 50 to 2000 ms): still one line.
  await waitFor(() => unreachable(lines).length > 0, 5000, 'the line')
  for (let j = 0; j < 3; j++) {
    const login = await app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' } })
    t.equal(login.statusCode, 503, 'logins fail closed')
    t.equal(login.json().code, 'FST_SESSION_GUARD_STORE_UNAVAILABLE')
    t.notMatch(login.body, where, 'a client is not told where Redis is')
  }
  const said = unreachable(lines)
  t.equal(said.length, 1, 'one line for the outage, however many attempts and requests')
  t.match(said[0], { level: 50, redis: where, msg: `session guard: cannot connect to Redis at ${where} (ECONNREFUSED); the session store answers 503 until it connects` })
  t.notOk(lines.some((line) => line.msg.includes("Stream isn't writeable") || line.err?.message.includes("Stream isn't writeable")), 'no line with the driver\'s words only')
  const failures = lines.filter((line) => line.msg === 'session guard: the session store failed')
  t.ok(failures.length >= 3, 'each failed call is logged…')
  for (const line of failures) t.equal(line.err?.message, `redisStore: cannot connect to Redis at ${where} (ECONNREFUSED)`, '…naming the server')

  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 503)
  t.same(health.json(), { status: 'unavailable', store: 'down', reason: `cannot connect to Redis at ${where} (ECONNREFUSED)` })

  // Redis comes: the store connects by itself, says so once, and /health is back.
  await startServer(t, port)
  await waitFor(async () => (await app.inject({ method: 'GET', url: '/health' })).statusCode === 200, 5000, '/health to be 200')
  t.match((await app.inject({ method: 'GET', url: '/health' })).json(), { status: 'ok', store: 'up' })
  t.match(lines.filter((line) => line.msg.includes('connected to Redis')), [{ level: 30, redis: where, msg: `session guard: connected to Redis at ${where}` }])
  t.equal(app.sessions.storeUnavailableReason(), undefined, 'no reason once connected')
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' } })).statusCode, 200)
})

t.test('the app\'s own client (iovalkey) that cannot connect is reported the same way', async (t) => {
  const port = await freePort()
  const where = `127.0.0.1:${port}`
  const client = new Valkey({ ...TEST_CLIENT_OPTIONS, host: '127.0.0.1', port })
  t.teardown(() => client.disconnect())
  const { app, lines } = await appOn(t, { client, commandTimeoutMs: 300 })
  await waitFor(() => unreachable(lines).length > 0, 5000, 'the line')
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' } })).statusCode, 503)
  t.match(unreachable(lines), [{ redis: where }])
  t.equal(app.sessions.storeUnavailableReason(), `cannot connect to Redis at ${where} (ECONNREFUSED)`)
})
