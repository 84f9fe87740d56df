import { connect } from 'node:net'
import Fastify from 'fastify'
import t from 'tap'
import sessionGuard from '../../lib/index.js'
import { activityValues, insertValues } from '../../lib/stores/postgres/codec.js'
import { Pool, type QueryConfig } from 'pg'
import { migrate, migrations, PostgresStore, postgresStore, type PostgresStoreOptions } from '../../lib/stores/postgres/index.js'
import { Statements, type Statement } from '../../lib/stores/postgres/statements.js'
import type { SessionRecord } from '../../lib/session.js'
import { EPOCH } from '../../lib/testing/index.js'
import { CLOCK_SKEW_ALLOWANCE_MS } from '../../lib/session.js'
import { SECRET } from '../helper.js'
import { waitFor } from './redis-helper.js'
import { dropSchema, leftNoSchemas, POSTGRES_URL, postgresTest, testPool, testSchema, uniqueSchema } from './postgres-helper.js'

const MINUTE = 60_000

const admin = testPool()
t.teardown(async () => await admin.end())

function session (id: string, userId: string, now: number, overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id,
    userId,
    fingerprintHash: `fp-${id}`,
    createdAt: now,
    lastSeenAt: now,
    idleExpiresAt: now + 30 * MINUTE,
    absoluteExpiresAt: now + 12 * 60 * MINUTE,
    remembered: false,
    refresh: { hash: `r-${id}`, rotatedAt: now, rotations: 0 },
    ...overrides
  }
}

t.test('options are checked when the store is made, each named', async (t) => {
  const pool = testPool()
  t.teardown(async () => await pool.end())
  const bad: Array<[unknown, RegExp]> = [
    [{}, /"postgresStore": give exactly one of "pool" or "connection"/],
    [{ pool, connection: POSTGRES_URL }, /exactly one of "pool" or "connection"/],
    [{ pool, schema: 'Bad-Name' }, /"postgresStore\.schema": must be a lower-case SQL identifier/],
    [{ pool, schema: 'a"; DROP TABLE x; --' }, /"postgresStore\.schema"/],
    [{ pool, migrate: 'yes' }, /"postgresStore\.migrate": must be a boolean/],
    [{ pool, queryTimeoutMs: 0 }, /"postgresStore\.queryTimeoutMs": must be a positive number/],
    [{ pool, queryTimeoutMs: Number.NaN }, /"postgresStore\.queryTimeoutMs"/],
    [{ pool, localCache: 'yes' }, /"postgresStore\.localCache": must be a boolean or \{ max, ttlMs \}/],
    [{ pool, localCache: { max: 1.5 } }, /"postgresStore\.localCache\.max": must be a positive integer/],
    [{ pool, localCache: { ttlMs: -1 } }, /"postgresStore\.localCache\.ttlMs"/],
    [{ pool, purge: { intervalMs: -1 } }, /"postgresStore\.purge\.intervalMs": must be a non-negative number/],
    [{ pool, purge: { batchSize: 0 } }, /"postgresStore\.purge\.batchSize": must be a positive integer/],
    // A misspelt name is refused, not silently left at its default.
    [{ pool, localcache: true }, /"postgresStore\.localcache": is not an option of postgresStore\(\)$/],
    [{ pool, localCache: { maxSize: 5 } }, /"postgresStore\.localCache\.maxSize": is not an option/],
    [{ pool, purge: { interval: 5 } }, /"postgresStore\.purge\.interval": is not an option/]
  ]
  for (const [options, message] of bad) {
    t.throws(() => postgresStore(options as PostgresStoreOptions), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message }, String(message))
  }
  t.ok(postgresStore({ pool, purge: { intervalMs: 0 } }), 'a purge interval of 0 turns the job off')
  t.equal(postgresStore({ pool }).pool, pool, 'the app\'s pool is the one used')
  t.ok(postgresStore({ pool }) instanceof PostgresStore)
  const unopened = postgresStore({ pool, localCache: true })
  await unopened.close()
  await unopened.close()
  t.pass('a store never opened closes, twice')
  await t.rejects(migrate(pool, { schema: 'Not OK' }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /"migrate\.schema"/ })
  // Nothing listens on port 1: the default schema is taken, then the connection fails.
  const nowhere = new Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/test', connectionTimeoutMillis: 500 })
  t.teardown(async () => await nowhere.end())
  await t.rejects(migrate(nowhere), /ECONNREFUSED/)
})

postgresTest(t, 'migrate() creates the schema once, records each version, and two at once apply it once', async (t) => {
  const schema = uniqueSchema()
  t.teardown(async () => await dropSchema(admin, schema))
  const shipped = migrations()
  t.ok(shipped.length >= 1 && shipped[0]?.version === 1, 'the shipped migrations start at 1')
  t.strictSame(shipped.map((m) => m.version), [...shipped.map((m) => m.version)].sort((a, b) => a - b), 'in order')
  const [first, second] = await Promise.all([migrate(admin, { schema }), migrate(admin, { schema })])
  t.strictSame([first, second].sort((a, b) => b.length - a.length), [shipped.map((m) => m.version), []], 'one applied everything, the other nothing')
  t.strictSame(await migrate(admin, { schema }), [], 'up to date: nothing to do')
  const { rows } = await admin.query<{ version: number, name: string }>(`SELECT version, name FROM "${schema}".schema_migrations ORDER BY version`)
  t.strictSame(rows, shipped.map((m) => ({ version: m.version, name: m.name })))
  const columns = await admin.query<{ column_name: string, data_type: string }>(
    'SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = \'sessions\'', [schema])
  const types = Object.fromEntries(columns.rows.map((row) => [row.column_name, row.data_type]))
  t.match(types, {
    ip: 'inet',
    created_at: 'timestamp with time zone',
    expires_at: 'timestamp with time zone',
    device: 'jsonb',
    claims: 'jsonb',
    location: 'jsonb'
  }, 'each column has the type it should have')
  const historyColumns = await admin.query<{ column_name: string, data_type: string }>(
    'SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = \'history\'', [schema])
  t.match(Object.fromEntries(historyColumns.rows.map((row) => [row.column_name, row.data_type])), {
    id: 'bigint', at: 'timestamp with time zone', expires_at: 'timestamp with time zone', ip: 'inet', device: 'jsonb', location: 'jsonb', detail: 'jsonb'
  }, 'the history table too')
})

postgresTest(t, 'migrate: true on the store migrates when the plugin opens it; a failed migration rolls back', async (t) => {
  const schema = uniqueSchema()
  t.teardown(async () => await dropSchema(admin, schema))
  const store = postgresStore({ pool: admin, schema, migrate: true, purge: { intervalMs: 0 } })
  t.teardown(() => store.close())
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  const created = await store.create(session('s1', 'alice', EPOCH), { max: 1, onLimit: 'reject' }, EPOCH)
  t.equal(created.created, true, 'the tables are there')

  const broken = uniqueSchema()
  t.teardown(async () => await dropSchema(admin, broken))
  // A table of that name already there: the first migration fails, and nothing of it stays.
  await admin.query(`CREATE SCHEMA "${broken}"; CREATE TABLE "${broken}".counters (x int)`)
  await t.rejects(migrate(admin, { schema: broken }), /already exists/)
  const left = await admin.query('SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name IN (\'sessions\', \'schema_migrations\')', [broken])
  t.equal(left.rowCount, 0, 'rolled back')
})

/** One raw HTTP/1.1 request, bytes as given (a client library would refuse a control character in a header). */
async function rawRequest (port: number, head: string, body: string): Promise<{ status: number, body: string }> {
  const socket = connect(port, '127.0.0.1')
  let answer = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { answer += chunk })
  const closed = new Promise((resolve) => socket.on('close', resolve))
  // write, not end: a client that half-closes may be taken for one that left.
  socket.write(Buffer.from(`${head}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`, 'latin1'))
  await closed
  return { status: Number(answer.slice(9, 12)), body: answer.slice(answer.indexOf('\r\n\r\n') + 4) }
}

postgresTest(t, 'text PostgreSQL cannot hold never reaches it: bad claims answer 400, not 503; a header with U+0000 is read as absent', async (t) => {
  const schema = await testSchema(t, admin)
  // insecureHTTPParser lets control characters through in header values, as Node's default parser does not.
  const app = Fastify({ http: { insecureHTTPParser: true } })
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, store: postgresStore({ pool: admin, schema, purge: { intervalMs: 0 } }), privacy: { keepUserAgent: true } })
  app.post<{ Body: { userId: string, claims?: Record<string, unknown> } }>('/login', async (request, reply) => {
    const { session } = await reply.issueSession(request.body)
    return { sessionId: session.id }
  })
  const rows = async (): Promise<number[]> => await Promise.all(['sessions', 'counters'].map(async (table) =>
    (await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".${table}`)).rows[0]!.n))

  for (const claims of [{ name: 'Ali\u0000ce' }, { name: 'Al\ud800ice' }]) {
    const response = await app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ userId: 'alice', claims }) })
    t.equal(response.statusCode, 400, 'a bad input, not an outage')
    t.equal(response.json().code, 'FST_SESSION_GUARD_INVALID_CLAIMS')
  }
  t.strictSame(await rows(), [0, 0], 'nothing written, nothing counted')

  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  const android = 'Mozilla/5.0 (Linux; Android 14; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36'
  const response = await rawRequest(port, `POST /login HTTP/1.1\r\nHost: localhost\r\nUser-Agent: ${android}\r\nSec-CH-UA-Model: "Pix\u0000el"`, '{"userId":"alice"}')
  t.equal(response.status, 200, 'a client hint with U+0000 is ignored')
  const hinted = await app.sessions.get(JSON.parse(response.body).sessionId)
  t.match(hinted?.device, { browser: { name: 'Chrome' }, os: { name: 'Android' }, model: undefined })
  t.equal(hinted?.userAgent, android)
  const bare = await rawRequest(port, 'POST /login HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.\u0000', '{"userId":"alice"}')
  t.equal(bare.status, 200, 'so is a User-Agent with U+0000')
  const unknown = await app.sessions.get(JSON.parse(bare.body).sessionId)
  t.equal(unknown?.device?.type, 'unknown')
  t.equal(unknown?.userAgent, undefined, 'and it is not kept')
})

/** Every node type in an EXPLAIN (FORMAT JSON) plan. */
function nodeTypes (plan: Record<string, unknown>): string[] {
  const children = (plan.Plans ?? []) as Array<Record<string, unknown>>
  return [plan['Node Type'] as string, ...children.flatMap(nodeTypes)]
}

postgresTest(t, 'EXPLAIN: no query of the store scans a whole table, on a populated one', async (t) => {
  const schema = await testSchema(t, admin)
  const statements = new Statements(schema)
  // 20 000 sessions of 2 000 users, 2 000 counters, then fresh statistics: the planner chooses as in production.
  await admin.query(`INSERT INTO "${schema}".sessions (id, user_id, fingerprint_hash, created_at, last_seen_at, idle_expires_at, absolute_expires_at, remembered)
    SELECT 's' || n, 'u' || (n % 2000), 'f', now(), now(), now() + (n % 97) * interval '1 minute', now() + interval '1 day', false
    FROM generate_series(1, 20000) AS n`)
  await admin.query(`INSERT INTO "${schema}".counters SELECT 'c' || n, 1, now(), now(), now() + (n % 97) * interval '1 minute' FROM generate_series(1, 2000) AS n`)
  // And 20 000 history entries of the same users.
  await admin.query(`INSERT INTO "${schema}".history (user_id, at, expires_at, type)
    SELECT 'u' || (n % 2000), now(), now() + (n % 97) * interval '1 day', 'login.failed' FROM generate_series(1, 20000) AS n`)
  await admin.query(`ANALYZE "${schema}".sessions; ANALYZE "${schema}".counters; ANALYZE "${schema}".history`)
  const now = Date.now()
  const fresh = session('new', 'u7', now)
  const activity = activityValues({ lastSeenAt: now, idleExpiresAt: now + MINUTE, changes: { ip: '192.0.2.1' } })
  const hot: Array<[string, Statement, unknown[]]> = [
    ['get', statements.get, ['s7', now]],
    ['touch', statements.touch, ['s7', now, ...activity]],
    ['rotate', statements.rotate, ['s7', now, 'h', null, 0, 'h', 'n', now, ...activity]],
    ['reuse', statements.reuse, ['s7', now, 'h', null, 0]],
    ['create', statements.create, ['u7', now, 5, false, ...insertValues(fresh), null, null, false]],
    ['create with a device-type limit', statements.create, ['u7', now, 5, false, ...insertValues(fresh), 'desktop', 2, true]],
    ['replace', statements.replace, ['s7', now, ...insertValues(fresh)]],
    ['revoke', statements.revoke, ['s7', now]],
    ['expire one', statements.expireOne, ['s7', now]],
    ['listUser', statements.userSessions, ['u7', now]],
    ['revokeUser', statements.revokeUser, ['u7', null, now]],
    ['scan', statements.scan, ['s5', now, 100]],
    ['purge sessions', statements.purgeSessions, [now, 500]],
    ['purge counters', statements.purgeCounters, [now, 500]],
    ['increment', statements.increment, ['c7', now, now + MINUTE]],
    ['counter', statements.counter, ['c7', now]],
    ['decrement', statements.decrement, ['c7', now]],
    ['drop empty counter', statements.dropEmpty, ['c7']],
    ['reset counter', statements.resetCounter, ['c7']],
    ['import session', statements.importSession, [now, ...insertValues(fresh)]],
    ['scan counters', statements.scanCounters, ['c5', now, 100]],
    ['import counter', statements.importCounter, ['c7', 1, now, now, now + MINUTE]],
    ['append history', statements.appendHistory, ['u7', now, now + MINUTE, 'login.failed', null, null, null, null, null, null, 100]],
    ['history', statements.history, ['u7', null, now - MINUTE, 50]],
    ['history page', statements.history, ['u7', '15000', now - MINUTE, 50]],
    ['erase history', statements.eraseHistory, ['u7']],
    ['purge history', statements.purgeHistory, [now, 500]]
  ]
  for (const [what, statement, values] of hot) {
    const { rows } = await admin.query<{ 'QUERY PLAN': Array<{ Plan: Record<string, unknown> }> }>(`EXPLAIN (FORMAT JSON) ${statement.text}`, values)
    const types = nodeTypes((rows[0] as { 'QUERY PLAN': Array<{ Plan: Record<string, unknown> }> })['QUERY PLAN'][0]?.Plan as Record<string, unknown>)
    t.notOk(types.includes('Seq Scan'), `${what}: ${[...new Set(types)].join(', ')}`)
  }
})

postgresTest(t, 'the purge deletes expired sessions, counters and history entries in bounded batches, reporting each session', async (t) => {
  const schema = await testSchema(t, admin)
  let now = EPOCH
  const removed: string[] = []
  const store = postgresStore({ pool: admin, schema, purge: { intervalMs: 0, batchSize: 7 } })
  t.teardown(() => store.close())
  await store.open({ now: () => now, onRemoved: (s, reason) => removed.push(`${s.id}:${reason}`) })
  for (let j = 0; j < 20; j++) await store.create(session(`short${j}`, `user${j % 3}`, now, { idleExpiresAt: now + MINUTE }), { max: 100, onLimit: 'reject' }, now)
  await store.create(session('long', 'user0', now, { idleExpiresAt: now + 3 * 60 * MINUTE }), { max: 100, onLimit: 'reject' }, now)
  for (let j = 0; j < 9; j++) await store.increment(`key${j}`, MINUTE, now)
  await store.increment('lasting', 3 * 60 * MINUTE, now)
  // 16 entries kept a minute, of two users, and one kept a day.
  for (let j = 0; j < 16; j++) await store.appendHistory(`user${j % 2}`, { type: 'login.failed', time: now }, { maxEntries: 100, maxAgeMs: MINUTE })
  await store.appendHistory('user0', { type: 'session.created', time: now }, { maxEntries: 100, maxAgeMs: 24 * 60 * MINUTE })
  t.strictSame(await store.purge(), { sessions: 0, counters: 0, history: 0 }, 'nothing expired yet')
  now += MINUTE
  t.strictSame(await store.purge(), { sessions: 0, counters: 0, history: 16 }, 'expired history entries go; expired sessions and counters stay within the clock-skew allowance')
  now += CLOCK_SKEW_ALLOWANCE_MS
  t.strictSame(await store.purge(), { sessions: 20, counters: 9, history: 0 }, 'every expired session and counter past the allowance, over several batches of 7')
  t.strictSame((await admin.query(`SELECT type FROM "${schema}".history`)).rows, [{ type: 'session.created' }], 'the entry kept a day stays')
  t.equal(removed.length, 20)
  t.ok(removed.every((entry) => entry.endsWith(':expired')), 'each reported as expired')
  t.match(await store.stats(now), { sessions: 1, users: 1, expirations: 20 })
  t.equal((await store.counter('lasting', now))?.count, 1, 'a live counter stays')
  const { rows } = await admin.query(`SELECT id FROM "${schema}".sessions`)
  t.strictSame(rows, [{ id: 'long' }], 'only the live session is left')
})

postgresTest(t, 'the purge runs on its timer, one at a time, and stops on close', async (t) => {
  const schema = await testSchema(t, admin)
  const clock = { now: EPOCH }
  const removed: string[] = []
  const store = postgresStore({ connection: POSTGRES_URL, schema, purge: { intervalMs: 20 } })
  await store.open({ now: () => clock.now, onRemoved: (s) => removed.push(s.id) })
  await store.create(session('s1', 'alice', clock.now, { idleExpiresAt: clock.now + MINUTE }), { max: 5, onLimit: 'reject' }, clock.now)
  const [a, b] = await Promise.all([store.purge(), store.purge()])
  t.equal(a, b, 'a purge asked for while one runs shares it')
  clock.now += MINUTE + CLOCK_SKEW_ALLOWANCE_MS
  const started = Date.now()
  while (removed.length < 1 && Date.now() - started < 5000) await new Promise((resolve) => setTimeout(resolve, 10))
  t.strictSame(removed, ['s1'], 'the timer purged it')
  await store.purge() // the timer's purge, if it is still reporting, ends here
  // Closing while a purge runs waits for it.
  const running = store.purge()
  await store.close()
  t.strictSame(await running, { sessions: 0, counters: 0, history: 0 }, 'the purge in flight finished before the pool ended')
  await store.close()
})

postgresTest(t, 'a refresh of a session past its deadline (by the clock-skew allowance) finds it missing, and removes it as expired', async (t) => {
  const schema = await testSchema(t, admin)
  const removed: string[] = []
  const store = postgresStore({ pool: admin, schema, purge: { intervalMs: 0 } })
  t.teardown(() => store.close())
  await store.open({ now: () => EPOCH, onRemoved: (s, reason) => removed.push(`${s.id}:${reason}`) })
  await store.create(session('s1', 'alice', EPOCH, { idleExpiresAt: EPOCH + MINUTE }), { max: 5, onLimit: 'reject' }, EPOCH)
  const later = EPOCH + MINUTE + CLOCK_SKEW_ALLOWANCE_MS
  t.strictSame(await store.rotate('s1', { presentedHash: 'r-s1', successorHash: 'n', graceMs: 0, activity: { lastSeenAt: later, idleExpiresAt: later + MINUTE } }, later), { outcome: 'missing' })
  t.strictSame(removed, ['s1:expired'])
  t.equal((await admin.query(`SELECT 1 FROM "${schema}".sessions`)).rowCount, 0, 'the row is gone')
})

postgresTest(t, 'addresses: full and truncated ones are inet, hashed ones text; both come back as stored', async (t) => {
  const schema = await testSchema(t, admin)
  const store = postgresStore({ pool: admin, schema, purge: { intervalMs: 0 } })
  t.teardown(() => store.close())
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  const roomy = { max: 10, onLimit: 'reject' } as const
  const cases = { v4: '203.0.113.0', v6: '2001:db8:85a3::', full6: '2001:db8::8a2e:370:7334', hashed: 'mF0m1k1cJ3q2N4bVx9TzAQ' }
  for (const [id, ip] of Object.entries(cases)) await store.create(session(id, 'alice', EPOCH, { ip }), roomy, EPOCH)
  for (const [id, ip] of Object.entries(cases)) t.equal((await store.get(id, EPOCH))?.ip, ip, `${id} round-trips`)
  const { rows } = await admin.query<{ id: string, ip: string | null, ip_hash: string | null }>(`SELECT id, host(ip) AS ip, ip_hash FROM "${schema}".sessions ORDER BY id`)
  t.strictSame(rows.find((row) => row.id === 'hashed'), { id: 'hashed', ip: null, ip_hash: cases.hashed })
  t.strictSame(rows.find((row) => row.id === 'v4'), { id: 'v4', ip: '203.0.113.0', ip_hash: null })
  const { rows: [subnet] } = await admin.query(`SELECT count(*)::int AS n FROM "${schema}".sessions WHERE ip << inet '2001:db8::/32'`)
  t.equal(subnet?.n, 2, 'addresses can be queried as addresses')
})

postgresTest(t, 'a login transaction that fails half-way changes nothing, and the pool goes on', async (t) => {
  const schema = await testSchema(t, admin)
  const pool = testPool()
  t.teardown(async () => await pool.end())
  const store = postgresStore({ pool, schema, purge: { intervalMs: 0 } })
  t.teardown(() => store.close())
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  const evict = { max: 2, onLimit: 'evict-oldest' } as const
  const alice = [session('a1', 'alice', EPOCH), session('a2', 'alice', EPOCH + 1)]
  for (const held of alice) await store.create(held, evict, EPOCH + 1)
  await store.create(session('b1', 'bob', EPOCH), evict, EPOCH)
  // At alice's limit, with an id already taken: the insert fails after the eviction in the same statement.
  await t.rejects(store.create(session('b1', 'alice', EPOCH + 2), evict, EPOCH + 2), /duplicate key/)
  t.strictSame((await store.listUser('alice', EPOCH + 2)).map((s) => s.id), ['a2', 'a1'], 'the eviction was rolled back')
  t.match(await store.create(session('a3', 'alice', EPOCH + 3), evict, EPOCH + 3), { created: true, evicted: [{ id: 'a1' }] }, 'and the store goes on')
})

postgresTest(t, 'a login that waits for its user\'s lock longer than the query timeout fails, and leaves nothing', async (t) => {
  const schema = await testSchema(t, admin)
  const holder = await admin.connect()
  t.teardown(() => holder.release())
  const store = postgresStore({ pool: admin, schema, queryTimeoutMs: 1000, purge: { intervalMs: 0 } })
  t.teardown(() => store.close())
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  const key = `fastify-session-guard:${schema}:alice`
  await holder.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [key])
  await t.rejects(store.create(session('s1', 'alice', EPOCH), { max: 5, onLimit: 'reject' }, EPOCH), 'refused while another login of alice holds the lock')
  t.match(await store.create(session('s2', 'bob', EPOCH), { max: 5, onLimit: 'reject' }, EPOCH), { created: true }, 'other users are not held up')
  await holder.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [key])
  t.strictSame((await store.listUser('alice', EPOCH)).map((s) => s.id), [], 'the refused login left nothing')
  t.match(await store.create(session('s3', 'alice', EPOCH), { max: 5, onLimit: 'reject' }, EPOCH), { created: true }, 'and alice logs in once the lock is free')
})

postgresTest(t, 'connection options as an object; a login whose connection comes after its caller gave up does not go on', async (t) => {
  const schema = await testSchema(t, admin)
  const owned = postgresStore({ connection: { connectionString: POSTGRES_URL, max: 2 }, schema, purge: { intervalMs: 0 } })
  t.teardown(() => owned.close())
  await owned.open({ now: () => EPOCH, onRemoved: () => {} })
  t.match(await owned.create(session('s0', 'alice', EPOCH), { max: 5, onLimit: 'reject' }, EPOCH), { created: true }, 'pg Pool options work')

  // A pool slow to hand out a connection: it comes 300 ms after a 100 ms timeout.
  let connected = 0
  const slow = {
    options: admin.options,
    query: admin.query.bind(admin),
    connect: async () => {
      await new Promise((resolve) => setTimeout(resolve, 300))
      connected++
      return await admin.connect()
    }
  } as unknown as Pool
  const store = postgresStore({ pool: slow, schema, queryTimeoutMs: 100, purge: { intervalMs: 0 } })
  t.teardown(() => store.close())
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  await t.rejects(store.create(session('s1', 'alice', EPOCH), { max: 5, onLimit: 'reject' }, EPOCH), /did not answer within 100 ms/)
  await waitFor(() => connected > 0, 5000, 'the late connection')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.strictSame((await owned.listUser('alice', EPOCH)).map((s) => s.id), ['s0'], 'the abandoned login inserted nothing')
})

postgresTest(t, 'parallel refreshes with one token, from two instances: exactly one rotates', async (t) => {
  const schema = await testSchema(t, admin)
  const stores = [0, 1].map(() => postgresStore({ pool: admin, schema, queryTimeoutMs: 10_000, purge: { intervalMs: 0 } }))
  for (const store of stores) {
    t.teardown(() => store.close())
    await store.open({ now: () => EPOCH, onRemoved: () => {} })
  }
  for (let round = 0; round < 5; round++) {
    const id = `r${round}`
    await stores[0]?.create(session(id, `user${round}`, EPOCH, { refresh: { hash: 'h0', rotatedAt: EPOCH - MINUTE, rotations: 0 } }), { max: 5, onLimit: 'reject' }, EPOCH)
    const results = await Promise.all(Array.from({ length: 20 }, async (_, j) => await (stores[j % 2] as PostgresStore).rotate(id, {
      presentedHash: 'h0', successorHash: `n${j}`, graceMs: MINUTE, activity: { lastSeenAt: EPOCH, idleExpiresAt: EPOCH + MINUTE }
    }, EPOCH)))
    const rotated = results.filter((result) => result.outcome === 'rotated')
    t.equal(rotated.length, 1, `round ${round}: one successor issued, the others conflict`)
    t.equal(results.filter((result) => result.outcome === 'conflict').length, 19)
    const stored = await stores[1]?.get(id, EPOCH)
    t.equal(stored?.refresh?.nextHash, rotated[0]?.outcome === 'rotated' ? rotated[0].session.refresh.nextHash : 'none', 'the stored successor is the one handed out')
  }
})

/** A pool that answers the rotation's write with no row `lost` times (another change won the race), else passes through. */
function racingPool (pool: Pool, lost: number): { pool: Pool, reads: () => number } {
  let reads = 0
  let left = lost
  const racing = {
    options: pool.options,
    connect: pool.connect.bind(pool),
    query: async (config: QueryConfig) => {
      if (config.name?.endsWith(':get') === true) reads++
      if (config.name?.endsWith(':rotate') === true && left > 0) {
        left--
        return { rows: [] }
      }
      return await pool.query(config)
    }
  }
  return { pool: racing as unknown as Pool, reads: () => reads }
}

postgresTest(t, 'a rotation that loses the compare-and-swap reads again, and gives up after many losses', async (t) => {
  const schema = await testSchema(t, admin)
  const rotation = { presentedHash: 'r-s1', successorHash: 'r1', graceMs: 0, activity: { lastSeenAt: EPOCH, idleExpiresAt: EPOCH + MINUTE } }
  const once = racingPool(admin, 1)
  const store = postgresStore({ pool: once.pool, schema, purge: { intervalMs: 0 } })
  t.teardown(() => store.close())
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  await store.create(session('s1', 'alice', EPOCH), { max: 5, onLimit: 'reject' }, EPOCH)
  t.match(await store.rotate('s1', rotation, EPOCH), { outcome: 'rotated', session: { refresh: { hash: 'r-s1', nextHash: 'r1', rotations: 1 } } })
  t.equal(once.reads(), 2, 'read twice: the first write lost')

  const always = racingPool(admin, Infinity)
  const losing = postgresStore({ pool: always.pool, schema, purge: { intervalMs: 0 } })
  t.teardown(() => losing.close())
  await losing.open({ now: () => EPOCH, onRemoved: () => {} })
  await t.rejects(losing.rotate('s1', { ...rotation, presentedHash: 'r1', successorHash: 'r2' }, EPOCH), /lost 50 races/)
  t.equal(always.reads(), 50, 'bounded')
})

leftNoSchemas(t)
