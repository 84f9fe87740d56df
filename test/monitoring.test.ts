import type { AddressInfo } from 'node:net'
import t from 'tap'
import { memoryStore, type SessionEvent } from '../lib/index.js'
import { build, MINUTE, settle } from './helper.js'

const SAFARI = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1'

t.test('every event has the versioned shape: time, user, session, device summary and stored IP', async (t) => {
  const all: SessionEvent[] = []
  const h = await build(t, { onEvent: (event: SessionEvent) => all.push(event) })
  const caught: SessionEvent[] = []
  h.app.sessions.events.on('event', (event) => caught.push(event))
  const response = await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' }, headers: { 'user-agent': SAFARI }, remoteAddress: '203.0.113.9' })
  t.same(all, [], 'listeners run after the request, never inside it')
  await settle()
  t.same(all, caught, "onEvent and on('event') see the same events")
  t.same(all[0], {
    version: 1,
    type: 'session.created',
    time: h.clock.now,
    userId: 'alice',
    sessionId: response.json().sessionId,
    device: { type: 'mobile', name: 'Safari on iPhone' },
    ip: '203.0.113.0',
    remembered: false
  })
})

t.test('a throwing onEvent is logged and breaks nothing', async (t) => {
  const h = await build(t, { onEvent: () => { throw new Error('listener bug') } })
  const alice = await h.login('alice')
  await settle()
  t.equal((await h.me(alice)).statusCode, 200)
})

t.test('stats() match what happened', async (t) => {
  const h = await build(t, { maxSessionsPerUser: 2, idleTimeout: '10m' })
  const a1 = await h.login('alice')
  h.clock.advance(1000)
  await h.login('alice')
  h.clock.advance(1000)
  await h.login('alice') // evicts a1, the least recently active (limit)
  const bob = await h.login('bob')
  await h.login('carol')
  await h.me(a1) // rejected: unknown_session
  await h.app.inject({ method: 'GET', url: '/me' }) // rejected: missing_token
  await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie: `__Secure-sg-rt=${bob.refreshToken}; ${bob.fingerprint}`, 'x-requested-with': 'x' } })
  await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie: `__Secure-sg-rt=${bob.refreshToken}; ${bob.fingerprint}`, 'x-requested-with': 'x' } })
  h.clock.advance(20_000) // past the grace window: the lost-response rule rotates again
  await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie: `__Secure-sg-rt=${bob.refreshToken}; ${bob.fingerprint}`, 'x-requested-with': 'x' } })
  await h.app.sessions.revoke((await h.app.sessions.list('carol'))[0]!.id)
  const stats = await h.app.sessions.stats()
  t.match(stats, {
    sessions: 3,
    users: 2,
    sessionsPerUser: { 1: 1, 2: 1 },
    capacity: 100_000,
    events: {
      created: 5,
      refreshed: 2,
      revoked: { limit: 1, admin: 1 },
      rejected: { unknown_session: 1, missing_token: 1 },
      reuseDetected: 0
    }
  })
  t.ok((stats.estimatedBytes as number) > 0)
})

t.test('the reuse of a refresh token is counted', async (t) => {
  const h = await build(t)
  const bob = await h.login('bob')
  const cookie = `__Secure-sg-rt=${bob.refreshToken}; ${bob.fingerprint}`
  const first = await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie, 'x-requested-with': 'x' } })
  const next = (first.cookies as Array<{ name: string, value: string }>).find((c) => c.name === '__Secure-sg-rt')!.value
  await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie: `__Secure-sg-rt=${next}; ${bob.fingerprint}`, 'x-requested-with': 'x' } })
  await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie, 'x-requested-with': 'x' } })
  t.match((await h.app.sessions.stats()).events, { reuseDetected: 1, revoked: { reuse: 1 }, rejected: { refresh_token_reuse: 1 } })
})

t.test('health: 200 with figures, 503 over the capacity threshold or when the store is down or slow', async (t) => {
  const store = memoryStore({ max: 4 })
  const h = await build(t, { store, health: { path: '/health', maxUtilization: 0.5 } })
  let response = await h.app.inject({ method: 'GET', url: '/health' })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { status: 'ok', store: 'up', sessions: 0, users: 0, capacity: 4, utilization: 0 })
  for (const user of ['a', 'b', 'c']) await h.login(user)
  response = await h.app.inject({ method: 'GET', url: '/health' })
  t.equal(response.statusCode, 503)
  t.match(response.json(), { status: 'over_capacity', sessions: 3, utilization: 0.75 })

  const stats = store.stats.bind(store)
  store.stats = async () => { throw new Error('down') }
  response = await h.app.inject({ method: 'GET', url: '/health' })
  t.equal(response.statusCode, 503)
  t.same(response.json(), { status: 'unavailable', store: 'down' })
  store.stats = async () => await new Promise(() => {})
  const started = Date.now()
  response = await h.app.inject({ method: 'GET', url: '/health' })
  t.equal(response.statusCode, 503, 'a store that never answers is down after a bounded wait')
  t.ok(Date.now() - started < 3000)
  store.stats = stats
})

t.test('health without a capacity threshold to check, and the routes stay public under global', async (t) => {
  const store = memoryStore()
  const stats = store.stats.bind(store)
  store.stats = async () => ({ ...await stats(), capacity: undefined })
  const h = await build(t, { store, global: true, health: { path: '/healthz' } })
  const response = await h.app.inject({ method: 'GET', url: '/healthz' })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { status: 'ok', store: 'up', sessions: 0, users: 0 })
})

t.test('metrics in the Prometheus text format', async (t) => {
  const store = memoryStore()
  const h = await build(t, { store, metrics: { path: '/metrics' }, anomalies: { newDevice: 'flag' } })
  await h.login('alice')
  await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' }, headers: { 'user-agent': SAFARI } })
  await h.app.inject({ method: 'GET', url: '/me' })
  const response = await h.app.inject({ method: 'GET', url: '/metrics' })
  t.equal(response.statusCode, 200)
  t.equal(response.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  const body = response.body
  for (const line of [
    'session_guard_store_up 1',
    'session_guard_active_sessions 2',
    'session_guard_users 1',
    'session_guard_users_by_session_count{sessions="2"} 1',
    'session_guard_store_capacity 100000',
    'session_guard_sessions_created_total 2',
    'session_guard_auth_rejected_total 1',
    'session_guard_anomalies_total{rule="new_device",decision="flag"} 1',
    '# TYPE session_guard_sessions_created_total counter',
    '# TYPE session_guard_active_sessions gauge'
  ]) t.ok(body.split('\n').includes(line), line)
  store.stats = async () => { throw new Error('down') }
  const down = await h.app.inject({ method: 'GET', url: '/metrics' })
  t.ok(down.body.split('\n').includes('session_guard_store_up 0'))
  t.notOk(down.body.split('\n').some((line) => line.startsWith('session_guard_active_sessions')), 'no sample of a store that is down')
})

t.test('/metrics counts refusals without their reason, so it cannot tell a thief whether a session is live', async (t) => {
  const server = async (metrics: { path: string, rejectionReasons?: boolean }) => {
    const h = await build(t, { metrics })
    await h.app.listen({ port: 0, host: '127.0.0.1' })
    const base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`
    const alice = await h.login('alice')
    const mallory = await h.login('mallory')
    // A thief holding alice's refresh token but only a fingerprint cookie of his own.
    const probe = async () => (await fetch(`${base}/refresh`, {
      method: 'POST', headers: { cookie: `__Secure-sg-rt=${alice.refreshToken}; ${mallory.fingerprint}`, 'x-requested-with': 'fetch' }
    })).status
    const scrape = async () => await (await fetch(`${base}${metrics.path}`)).text()
    return { h, alice, probe, scrape }
  }

  const { h, alice, probe, scrape } = await server({ path: '/metrics' })
  t.equal(await probe(), 401, 'while the session is live')
  const live = await scrape()
  await h.app.sessions.revoke(alice.sessionId)
  t.equal(await probe(), 401, 'once it is revoked: the same answer')
  const revoked = await scrape()
  for (const body of [live, revoked]) {
    t.notMatch(body, /fingerprint_mismatch|unknown_session/, 'no reason in the metrics')
    t.notMatch(body, /session_guard_auth_rejected_total\{/, 'the refusals are one unlabelled counter')
  }
  t.ok(live.split('\n').includes('session_guard_auth_rejected_total 1'))
  t.ok(revoked.split('\n').includes('session_guard_auth_rejected_total 2'))
  t.same((await h.app.sessions.stats()).events.rejected, { fingerprint_mismatch: 1, unknown_session: 1 }, "the app's own code still sees each reason")

  const opted = await server({ path: '/internal/metrics', rejectionReasons: true })
  await opted.probe()
  const body = await opted.scrape()
  t.ok(body.split('\n').includes('session_guard_auth_rejected_total{reason="fingerprint_mismatch"} 1'), 'with rejectionReasons: by reason')
})

t.test('analytics: shares, countries and durations from a scan in batches', async (t) => {
  const h = await build(t, { resolveLocation: (ip) => ip === '203.0.113.1' ? { country: 'FR' } : undefined })
  await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' }, headers: { 'user-agent': SAFARI }, remoteAddress: '203.0.113.1' })
  h.clock.advance(10 * MINUTE)
  await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' }, headers: { 'user-agent': SAFARI } })
  h.clock.advance(10 * MINUTE)
  await h.login('bob')
  await h.login('carol')
  const report = await h.app.sessions.analytics({ batchSize: 1 })
  t.same(report, {
    sessions: 4,
    users: 3,
    sessionsPerUser: { 1: 2, 2: 1 },
    deviceTypes: { mobile: 0.5, unknown: 0.5 },
    browsers: { Safari: 0.5, unknown: 0.5 },
    countries: { FR: 1, unknown: 3 },
    durationMs: { p50: 0, p90: 20 * MINUTE, p99: 20 * MINUTE, max: 20 * MINUTE }
  })
  const bare = memoryStore()
  const plain = await build(t, { store: bare })
  await bare.create({ id: 's', userId: 'u', fingerprintHash: 'h', createdAt: plain.clock.now, lastSeenAt: plain.clock.now, idleExpiresAt: plain.clock.now + MINUTE, absoluteExpiresAt: plain.clock.now + MINUTE, remembered: false }, { max: 1, onLimit: 'reject' }, plain.clock.now)
  t.match(await plain.app.sessions.analytics(), { deviceTypes: { unknown: 1 }, browsers: { unknown: 1 } }, 'a record from elsewhere, without a device')
  const sampled = await h.app.sessions.analytics({ sampleSize: 2 })
  t.equal(sampled.sessions, 4, 'counts stay exact when durations are sampled')
  t.equal(sampled.durationMs.max, 20 * MINUTE)
  t.same(await (await build(t)).app.sessions.analytics(), {
    sessions: 0, users: 0, sessionsPerUser: {}, deviceTypes: {}, browsers: {}, countries: {}, durationMs: { p50: 0, p90: 0, p99: 0, max: 0 }
  })
})

t.test('monitoring options are validated', async (t) => {
  const { default: Fastify } = await import('fastify')
  const { default: sessionGuard } = await import('../lib/index.js')
  for (const [option, options] of [
    ['onEvent', { onEvent: 'log' }],
    ['health.path', { health: { path: 'health' } }],
    ['health.maxUtilization', { health: { path: '/health', maxUtilization: 2 } }],
    ['metrics.path', { metrics: { path: 'metrics' } }],
    ['metrics.rejectionReasons', { metrics: { path: '/metrics', rejectionReasons: 'yes' } }],
    ['lockout.window', { lockout: { window: 0 } }],
    ['lockout.maxDelay', { lockout: { baseDelay: '1h', maxDelay: '1m' } }],
    ['lockout.usernameFreeAttempts', { lockout: { usernameFreeAttempts: 0 } }],
    ['lockout.logUsernames', { lockout: { logUsernames: 1 } }],
    ['anomalies.newDevice', { anomalies: { newDevice: 'block' } }],
    ['anomalies.deviceChange', { anomalies: { deviceChange: 'block' } }],
    ['anomalies.impossibleTravel.maxSpeedKmh', { anomalies: { impossibleTravel: { maxSpeedKmh: -1 } } }],
    ['anomalies.loginBurst.window', { anomalies: { loginBurst: { window: 'soon' } } }],
    ['anomalies.maxKnownPerUser', { anomalies: { maxKnownPerUser: 0 } }],
    ['anomalies.decide', { anomalies: { decide: true } }]
  ] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(sessionGuard, { secret: 'x'.repeat(32), ...options } as never); await app.ready() },
      { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: `"${option}"` }, option)
  }
})

t.test('analytics on more sessions than the sample: exact counts, sampled percentiles', async (t) => {
  const store = memoryStore()
  const h = await build(t, { store })
  for (let i = 0; i < 200; i++) {
    const createdAt = h.clock.now - i * MINUTE
    await store.create({ id: `s${i}`, userId: `u${i % 50}`, fingerprintHash: 'h', createdAt, lastSeenAt: h.clock.now, idleExpiresAt: h.clock.now + MINUTE, absoluteExpiresAt: h.clock.now + MINUTE, remembered: false }, { max: 10, onLimit: 'reject' }, h.clock.now)
  }
  const report = await h.app.sessions.analytics({ sampleSize: 10, batchSize: 64 })
  t.equal(report.sessions, 200)
  t.same(report.sessionsPerUser, { 4: 50 })
  t.equal(report.durationMs.max, 199 * MINUTE)
  t.ok(report.durationMs.p50 >= 0 && report.durationMs.p50 <= 199 * MINUTE)
  t.ok(report.durationMs.p99 >= report.durationMs.p50)
})
