import t from 'tap'
import type { Test } from 'tap'
import { postgresStore } from '../../lib/stores/postgres/index.js'
import { build, type Harness } from '../helper.js'
import { leftNoSchemas, POSTGRES_URL, postgresTest, testPool, testSchema } from './postgres-helper.js'
import { waitFor } from './redis-helper.js'

const MAX_SESSIONS = 5
const CACHE_TTL_MS = 5000
const TRIALS = Number(process.env.REVOKE_TRIALS ?? 200)

const admin = testPool()
t.teardown(async () => await admin.end())

/** The pids of the connections listening on `schema`'s channel. */
async function listeners (schema: string): Promise<number[]> {
  const { rows } = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE query = $1', [`LISTEN "${schema}_invalidate"`])
  return rows.map((row) => row.pid)
}

/**
 * Two app instances sharing one database under one schema, each with its own
 * pool, store and local cache. A generous query timeout: fifty logins of one
 * user queue behind its lock, on a machine that may be busy.
 */
async function twoInstances (t: Test, onLimit: 'evict-oldest' | 'reject' = 'evict-oldest'): Promise<{ a: Harness, b: Harness, schema: string }> {
  const schema = await testSchema(t, admin)
  const instance = async (): Promise<Harness> => await build(t, {
    store: postgresStore({ connection: POSTGRES_URL, schema, queryTimeoutMs: 10_000, localCache: { ttlMs: CACHE_TTL_MS } }),
    maxSessionsPerUser: MAX_SESSIONS,
    onSessionLimit: onLimit
  })
  const a = await instance()
  const b = await instance()
  await waitFor(async () => (await listeners(schema)).length === 2, 5000, 'both listeners')
  return { a, b, schema }
}

async function logout (app: Harness, credentials: { accessToken: string, fingerprint: string }): Promise<number> {
  return (await app.app.inject({
    method: 'POST', url: '/logout', headers: { authorization: `Bearer ${credentials.accessToken}`, cookie: credentials.fingerprint }
  })).statusCode
}

postgresTest(t, 'a session made on one instance works on the other', async (t) => {
  const { a, b } = await twoInstances(t)
  const alice = await a.login('alice')
  const onB = await b.me(alice)
  t.equal(onB.statusCode, 200)
  t.equal(onB.json().session.id, alice.sessionId)
  t.strictSame((await b.app.sessions.list('alice')).map((session) => session.id), [alice.sessionId])
})

postgresTest(t, 'the local cache answers without the database, for at most its TTL', async (t) => {
  const { a, b, schema } = await twoInstances(t)
  const alice = await a.login('alice')
  t.equal((await a.me(alice)).statusCode, 200, 'read once: now cached on A')
  // Removed behind the store's back: no notification is sent.
  t.equal((await admin.query(`DELETE FROM "${schema}".sessions WHERE id = $1`, [alice.sessionId])).rowCount, 1)
  t.equal((await b.me(alice)).statusCode, 401, 'B asks the database')
  t.equal((await a.me(alice)).statusCode, 200, 'A answers from its cache')
  a.clock.advance(CACHE_TTL_MS - 1)
  t.equal((await a.me(alice)).statusCode, 200, 'still inside the cache TTL')
  a.clock.advance(2)
  t.equal((await a.me(alice)).statusCode, 401, 'not past the cache TTL')
})

postgresTest(t, `a revoke on one instance reaches the other's cache: ${TRIALS} trials`, async (t) => {
  const { a, b } = await twoInstances(t)
  const elapsed: number[] = []
  for (let trial = 0; trial < TRIALS; trial++) {
    const login = await a.login(`user${trial % 20}`)
    if ((await b.me(login)).statusCode !== 200) t.fail('not let in on B')
    if ((await b.me(login)).statusCode !== 200) t.fail('not let in on B from its cache')
    const started = performance.now()
    if (!await a.app.sessions.revoke(login.sessionId)) t.fail('not revoked on A')
    // B answers from its cache until the notification drops the entry. A cached answer
    // never leaves the microtask queue: give the event loop a turn to read the notification.
    while ((await b.me(login)).statusCode === 200) {
      if (performance.now() - started > 2000) break
      await new Promise(setImmediate)
    }
    elapsed.push(performance.now() - started)
    if ((await b.me(login)).statusCode !== 401) t.fail(`trial ${trial}: B still lets the revoked session in`)
  }
  elapsed.sort((x, y) => x - y)
  const at = (q: number): string => (elapsed[Math.min(elapsed.length - 1, Math.ceil(q * elapsed.length) - 1)] as number).toFixed(1)
  // A figure to read, not to assert: the time includes B's own requests, on a machine that may be busy.
  t.comment(`revoke on A to refusal on B, over ${elapsed.length} trials: p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms`)
  t.ok(elapsed.every((ms) => ms < 2000), 'every revoke reached B (through its listener, within the 2 s the test waits)')
})

for (const onLimit of ['evict-oldest', 'reject'] as const) {
  postgresTest(t, `50 parallel logins of one user over both instances end at exactly the limit (${onLimit})`, async (t) => {
    const { a, b } = await twoInstances(t, onLimit)
    const responses = await Promise.all(Array.from({ length: 50 }, async (_, j) =>
      await (j % 2 === 0 ? a : b).app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' } })))
    const codes = responses.map((response) => response.statusCode)
    t.equal(codes.filter((code) => code === 200).length, onLimit === 'reject' ? MAX_SESSIONS : 50, 'logins let through')
    t.equal(codes.filter((code) => code !== 200 && code !== 409).length, 0, `no other answer than 200 or 409: ${[...new Set(codes)].join(', ')}`)
    const listed = await a.app.sessions.list('alice')
    t.equal(listed.length, MAX_SESSIONS)
    t.strictSame((await b.app.sessions.list('alice')).map((session) => session.id), listed.map((session) => session.id), 'both instances agree')
    t.match(await a.app.sessions.stats(), { sessions: MAX_SESSIONS, users: 1 })
  })
}

postgresTest(t, 'a lost listener drops the whole local cache, and it listens again', async (t) => {
  const { a, b, schema } = await twoInstances(t)
  const alice = await a.login('alice')
  const bob = await a.login('bob')
  t.equal((await a.me(alice)).statusCode, 200, 'alice cached on A')
  t.equal((await a.me(bob)).statusCode, 200, 'bob cached on A')

  const before = await listeners(schema)
  t.equal(before.length, 2, 'one listener per instance')
  for (const pid of before) await admin.query('SELECT pg_terminate_backend($1)', [pid])
  // Revoked meanwhile: the notification reaches nobody.
  t.equal(await b.app.sessions.revoke(alice.sessionId), true)
  await waitFor(async () => (await listeners(schema)).filter((pid) => !before.includes(pid)).length === 2, 5000, 'the listeners to come back')
  t.equal((await a.me(alice)).statusCode, 401, 'the revoked session is not served from the old cache')
  t.equal((await a.me(bob)).statusCode, 200, 'the live one is read again from the database')
  t.equal(await logout(b, bob), 204)
  await waitFor(async () => (await a.me(bob)).statusCode === 401, 2000, 'notifications to flow again')
})

leftNoSchemas(t)
