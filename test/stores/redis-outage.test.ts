import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { redisStore } from '../../lib/stores/redis/index.js'
import { build, type Credentials, type Harness } from '../helper.js'
import { freePort, serverTest, startServer, stop, waitFor } from './redis-helper.js'

const TIMEOUT_MS = 300
/** What a 503 may take beyond the command timeout (scheduling, the test's own requests). */
const SLACK_MS = 250
const CACHE_TTL_MS = 1000

/** One guarded request, timed (real time: this test is about the network). */
async function timedMe (app: Harness, credentials: Credentials): Promise<{ status: number, code: string | undefined, ms: number }> {
  const started = performance.now()
  const response = await app.me(credentials)
  const ms = performance.now() - started
  return { status: response.statusCode, code: response.statusCode === 503 ? response.json().code : undefined, ms }
}

serverTest(t, 'Redis stopped mid-test: 503 within the bound, no revoked session let in, recovery on return', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sg-outage-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const port = await freePort()
  // Appending every write to disk: the data outlives a kill, as a production Redis's would.
  const args = ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir]
  let server = await startServer(t, port, args)

  const app = await build(t, {
    store: redisStore({ connection: `redis://127.0.0.1:${port}`, commandTimeoutMs: TIMEOUT_MS, localCache: { ttlMs: CACHE_TTL_MS } })
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

  // 1. Hung: the process is stopped, connections stay open, nothing answers.
  stop(server, 'SIGSTOP')
  app.clock.advance(CACHE_TTL_MS + 1)
  for (const credentials of [alice, revoked]) {
    const { status, code, ms } = await timedMe(app, credentials)
    t.equal(status, 503, 'hung Redis: 503')
    t.equal(code, 'FST_SESSION_GUARD_STORE_UNAVAILABLE')
    t.ok(ms < TIMEOUT_MS + SLACK_MS, `answered in ${ms.toFixed(0)} ms`)
  }
  const login = await app.app.inject({ method: 'POST', url: '/login', payload: { userId: 'bob' } })
  t.equal(login.statusCode, 503, 'logins fail closed too')
  // (A read: a write that timed out may still run once Redis resumes.)
  await t.rejects(app.app.sessions.list('alice'), 'management calls reject, they do not hang')
  stop(server, 'SIGCONT')
  await waitFor(async () => (await app.me(alice)).statusCode === 200, 3000, 'service after SIGCONT')
  await neverLetIn('after SIGCONT')

  // 2. Down: killed by its pid, connections refused.
  stop(server, 'SIGKILL')
  await once(server, 'exit')
  // The local cache may answer for alice until the subscriber sees the close; never for the revoked one.
  await neverLetIn('just killed')
  await waitFor(async () => (await app.me(alice)).statusCode === 503, 1000, 'the cache to be dropped')
  for (let round = 0; round < 5; round++) {
    for (const credentials of [alice, revoked]) {
      const { status, code, ms } = await timedMe(app, credentials)
      t.equal(status, 503, 'Redis down: 503')
      t.equal(code, 'FST_SESSION_GUARD_STORE_UNAVAILABLE')
      t.ok(ms < TIMEOUT_MS + SLACK_MS, `answered in ${ms.toFixed(0)} ms`)
    }
  }

  // 3. Back: the same data on the same port; the store reconnects by itself.
  server = await startServer(t, port, args)
  const recovered = await waitFor(async () => (await app.me(alice)).statusCode === 200, 5000, 'service after restart')
  t.ok(recovered < 5000, `service back ${recovered.toFixed(0)} ms after Redis`)
  await neverLetIn('after restart')
  t.equal((await app.me(revoked)).statusCode, 401, 'still revoked, not just unavailable')
  t.equal(await app.app.sessions.revoke(alice.sessionId), true)
  t.equal((await app.me(alice)).statusCode, 401)
  stop(server, 'SIGKILL')
})
