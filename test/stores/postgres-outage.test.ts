import { once } from 'node:events'
import t from 'tap'
import { postgresStore } from '../../lib/stores/postgres/index.js'
import { build, type Credentials, type Harness } from '../helper.js'
import { serverTest } from './postgres-helper.js'
import { waitFor } from './redis-helper.js'

const TIMEOUT_MS = 300
const CACHE_TTL_MS = 1000

/** One guarded request, timed (real time: this test is about the network). */
async function timedMe (app: Harness, credentials: Credentials): Promise<{ status: number, code: string | undefined, ms: number }> {
  const started = performance.now()
  const response = await app.me(credentials)
  const ms = performance.now() - started
  return { status: response.statusCode, code: response.statusCode === 503 ? response.json().code : undefined, ms }
}

serverTest(t, 'PostgreSQL stopped mid-test: 503, no revoked session let in, recovery on return', async (t, server) => {
  const app = await build(t, {
    store: postgresStore({ connection: server.url, migrate: true, queryTimeoutMs: TIMEOUT_MS, localCache: { ttlMs: CACHE_TTL_MS } })
  })
  const alice = await app.login('alice')
  const revoked = await app.login('alice')
  t.equal((await app.me(alice)).statusCode, 200)
  t.equal((await app.app.inject({
    method: 'POST', url: '/logout', headers: { authorization: `Bearer ${revoked.accessToken}`, cookie: revoked.fingerprint }
  })).statusCode, 204)
  t.equal((await app.me(revoked)).statusCode, 401)

  const neverLetIn = async (phase: string): Promise<void> => {
    const { status } = await timedMe(app, revoked)
    t.not(status, 200, `${phase}: the revoked session is refused`)
  }
  const slowest: number[] = []

  // 1. Hung: the server and its backends are stopped, connections stay open, nothing answers.
  server.signal('SIGSTOP', true)
  app.clock.advance(CACHE_TTL_MS + 1)
  for (const credentials of [alice, revoked]) {
    const { status, code, ms } = await timedMe(app, credentials)
    t.equal(status, 503, 'hung PostgreSQL: 503')
    t.equal(code, 'FST_SESSION_GUARD_STORE_UNAVAILABLE')
    slowest.push(ms)
  }
  const login = await app.app.inject({ method: 'POST', url: '/login', payload: { userId: 'bob' } })
  t.equal(login.statusCode, 503, 'logins fail closed too')
  await t.rejects(app.app.sessions.list('alice'), 'management calls reject, they do not hang')
  server.signal('SIGCONT', true)
  await waitFor(async () => (await app.me(alice)).statusCode === 200, 5000, 'service after SIGCONT')
  await neverLetIn('after SIGCONT')

  // 2. Down: shut down at once by its pid (SIGQUIT, as after a crash), connections refused.
  server.signal('SIGQUIT')
  await once(server.child, 'exit')
  // The local cache may answer for alice until the listener sees the connection end; never for the revoked one.
  await neverLetIn('just stopped')
  await waitFor(async () => (await app.me(alice)).statusCode === 503, 2000, 'the cache to be dropped')
  for (let round = 0; round < 5; round++) {
    for (const credentials of [alice, revoked]) {
      const { status, code, ms } = await timedMe(app, credentials)
      t.equal(status, 503, 'PostgreSQL down: 503')
      t.equal(code, 'FST_SESSION_GUARD_STORE_UNAVAILABLE')
      slowest.push(ms)
    }
  }
  t.comment(`503s answered within ${Math.max(...slowest).toFixed(0)} ms at most (query timeout ${TIMEOUT_MS} ms)`)

  // 3. Back: the same data on the same port; the store recovers by itself.
  await server.start()
  const recovered = await waitFor(async () => (await app.me(alice)).statusCode === 200, 10_000, 'service after restart')
  t.comment(`service back ${recovered.toFixed(0)} ms after PostgreSQL`)
  await neverLetIn('after restart')
  t.equal((await app.me(revoked)).statusCode, 401, 'still revoked, not just unavailable')
  t.equal(await app.app.sessions.revoke(alice.sessionId), true)
  t.equal((await app.me(alice)).statusCode, 401)
  t.equal((await app.login('carol')).sessionId.length > 0, true, 'logins work again')
})
