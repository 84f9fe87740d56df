import { createHash } from 'node:crypto'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import sessionGuard, { memoryStore, type SessionEvent, type SessionGuardOptions } from '../lib/index.js'
import { LoginAttempts, parseLockoutOptions } from '../lib/monitoring/login-attempts.js'
import { MINUTE, registrationError, SECRET, settle, TestClock } from './helper.js'
import { attempt, withLogin } from './login-helper.js'

t.test('five free failures, then 429 with Retry-After, doubling with each further failure', async (t) => {
  const h = await withLogin(t)
  for (let i = 0; i < 5; i++) t.equal((await attempt(h, 'alice')).statusCode, 401, `failure ${i + 1}`)
  let locked = await attempt(h, 'alice')
  t.equal(locked.statusCode, 429)
  t.equal(locked.json().code, 'FST_SESSION_GUARD_LOGIN_LOCKED')
  t.equal(locked.headers['retry-after'], '1')
  t.equal((await attempt(h, 'alice', 'right')).statusCode, 429, 'even the right password waits: the lock is checked first')
  h.clock.advance(1000)
  t.equal((await attempt(h, 'alice')).statusCode, 401, 'after the lockout, one more try (a failure)')
  locked = await attempt(h, 'alice')
  t.equal(locked.headers['retry-after'], '2', 'the lockout doubled')
  h.clock.advance(2000)
  await attempt(h, 'alice')
  t.equal((await attempt(h, 'alice')).headers['retry-after'], '4')
})

t.test('the lockout is capped at maxDelay, and failures are forgotten after the window', async (t) => {
  const h = await withLogin(t, { lockout: { usernameFreeAttempts: 1, baseDelay: '1m', maxDelay: '5m', window: '1h' } })
  for (let i = 0; i < 6; i++) {
    await attempt(h, 'alice')
    h.clock.advance(5 * MINUTE)
  }
  await attempt(h, 'alice')
  t.equal((await attempt(h, 'alice')).headers['retry-after'], String(5 * 60), 'capped')
  h.clock.advance(60 * MINUTE)
  t.equal((await attempt(h, 'alice')).statusCode, 401, 'a fresh start: not locked')
})

t.test('lockout.maxDelay may equal lockout.baseDelay: every lockout is then that long; a shorter one is refused', async (t) => {
  const h = await withLogin(t, { lockout: { usernameFreeAttempts: 1, baseDelay: '1m', maxDelay: '1m' } })
  for (let i = 0; i < 3; i++) {
    t.equal((await attempt(h, 'alice')).statusCode, 401, `failure ${i + 1}`)
    t.equal((await attempt(h, 'alice')).headers['retry-after'], '60', 'not doubled')
    h.clock.advance(MINUTE)
  }
  t.match(await registrationError({ secret: SECRET, lockout: { baseDelay: '1m', maxDelay: '59s' } }), {
    code: 'FST_SESSION_GUARD_INVALID_OPTION',
    message: /"lockout\.maxDelay": must not be shorter than lockout\.baseDelay/
  })
})

t.test('each refused lockout option is named in its error', async (t) => {
  for (const [lockout, message] of [
    [5, /"lockout": must be an object/],
    [{ windw: '15m' }, /"lockout\.windw": is not an option/],
    [{ window: 'soon' }, /"lockout\.window": must be a positive duration/],
    [{ baseDelay: 'soon' }, /"lockout\.baseDelay": must be a positive duration/],
    [{ maxDelay: 'soon' }, /"lockout\.maxDelay": must be a positive duration/],
    [{ usernameFreeAttempts: 0 }, /"lockout\.usernameFreeAttempts": must be a positive integer/],
    [{ ipFreeAttempts: 1.5 }, /"lockout\.ipFreeAttempts": must be a positive integer/],
    [{ logUsernames: 'yes' }, /"lockout\.logUsernames": must be a boolean/]
  ] as const) {
    t.match(await registrationError({ secret: SECRET, lockout }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message }, JSON.stringify(lockout))
  }
})

t.test('a success forgets the username\'s failures; usernames are normalised', async (t) => {
  const h = await withLogin(t)
  for (let i = 0; i < 4; i++) await attempt(h, ' Alice ')
  t.equal((await attempt(h, 'alice', 'right')).statusCode, 200)
  for (let i = 0; i < 4; i++) t.equal((await attempt(h, 'ALICE')).statusCode, 401)
  t.equal((await attempt(h, 'alice')).statusCode, 401, 'the count started again after the success')
  t.equal((await attempt(h, 'alice')).statusCode, 429)
})

t.test('an IP failing across many usernames is locked too', async (t) => {
  const events: SessionEvent[] = []
  const h = await withLogin(t, { lockout: { ipFreeAttempts: 3 }, onEvent: (event: SessionEvent) => events.push(event) })
  for (const user of ['a', 'b', 'c']) t.equal((await attempt(h, user)).statusCode, 401)
  t.equal((await attempt(h, 'd')).statusCode, 429, 'a fourth username from the same IP')
  await settle()
  t.match(events.filter((e) => e.type === 'login.locked'), [{ scope: 'ip', retryAfterMs: 1000 }], 'locked by the IP scope, and named so')
  t.equal((await attempt(h, 'd', 'wrong', '198.51.100.9')).statusCode, 401, 'another IP is not locked')
})

t.test('failures and lockouts are events and counted in stats; no password is ever in them', async (t) => {
  const events: SessionEvent[] = []
  const h = await withLogin(t, { onEvent: (event: SessionEvent) => events.push(event) })
  for (let i = 0; i < 6; i++) await attempt(h, 'Alice', 'hunter2-wrong')
  await settle()
  const failed = events.filter((e) => e.type === 'login.failed')
  t.equal(failed.length, 5)
  t.match(failed[4], { version: 1, usernameHash: String, failures: 5 })
  t.match(events.find((e) => e.type === 'login.locked'), { usernameHash: String, scope: 'username', retryAfterMs: 1000 })
  t.notOk(JSON.stringify(events).includes('hunter2'))
  t.match((await h.app.sessions.stats()).events, { loginFailures: 5, lockouts: { username: 1 } })
})

t.test('fail() for an attempt check() did not count counts it itself; succeed() then takes nothing back', async (t) => {
  const h = await withLogin(t, { lockout: { usernameFreeAttempts: 3, ipFreeAttempts: 3 } })
  const loginAttempts = h.app.sessions.loginAttempts
  const request = (): never => ({ ip: '192.0.2.1', log: h.app.log }) as never
  // A route written without check(): its failures still count.
  for (let i = 0; i < 2; i++) await loginAttempts.fail(request(), 'alice')
  // check() counts under 'carol', fail() names 'alice': alice's failure is counted now, and carol's attempt stays a failure.
  const mixed = request()
  await loginAttempts.check(mixed, 'carol')
  await loginAttempts.fail(mixed, 'alice')
  await t.rejects(loginAttempts.check(request(), 'alice'), { code: 'FST_SESSION_GUARD_LOGIN_LOCKED' }, 'three failures of alice')
  await loginAttempts.succeed(request(), 'alice')
  // The IP's four failures lock it for 2 s: after one, still locked (three would have let it through).
  h.clock.advance(1000)
  t.equal((await attempt(h, 'alice', 'wrong', '192.0.2.1')).statusCode, 429, 'a success nobody checked forgets alice\'s failures, and takes nothing from the IP\'s four')
  t.equal((await attempt(h, 'alice', 'wrong', '198.51.100.1')).statusCode, 401, 'from another IP alice starts afresh')
})

/** An app with a login route (password "right") whose log lines and events the test reads. */
async function logged (t: Test, options: Partial<SessionGuardOptions> = {}) {
  const lines: Array<Record<string, unknown>> = []
  const events: SessionEvent[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => lines.push(JSON.parse(line)) } } })
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, clock: new TestClock().read, onEvent: (event) => events.push(event), ...options })
  app.post<{ Body: { username: string, password: string } }>('/password-login', async (request, reply) => {
    await app.sessions.loginAttempts.check(request, request.body.username)
    await app.sessions.loginAttempts.fail(request, request.body.username)
    return await reply.code(401).send()
  })
  const attempt = async (username: string) => await app.inject({ method: 'POST', url: '/password-login', payload: { username, password: 'hunter2-wrong' } })
  const logins = () => lines.filter((line) => String(line.type).startsWith('login.'))
  return { app, attempt, logins, events }
}

t.test('failed-login usernames reach neither the log nor the events in clear, unless the app asks', async (t) => {
  const { attempt, logins, events } = await logged(t)
  for (let i = 0; i < 6; i++) await attempt(' Alice ')
  await attempt('bob')
  await settle()
  const lines = logins()
  t.same(lines.map((line) => line.type), ['login.failed', 'login.failed', 'login.failed', 'login.failed', 'login.failed', 'login.locked', 'login.failed'])
  const published = events.filter((event) => event.type.startsWith('login.'))
  for (const [where, entries] of [['log', lines], ['events', published]] as const) {
    t.notMatch(JSON.stringify(entries), /alice|bob|hunter2/i, `no username in the ${where}`)
    t.ok(entries.every((entry) => !('username' in entry)), `no username field in the ${where}`)
  }
  const hashes = lines.map((line) => line.usernameHash as string)
  t.match(hashes[0], /^[A-Za-z0-9_-]{16}$/)
  t.equal(new Set(hashes.slice(0, 6)).size, 1, "one username's lines correlate (failed and locked alike)")
  t.not(hashes[6], hashes[0], 'another username, another hash')
  t.same(published.map((event) => (event as { usernameHash: string }).usernameHash), hashes, 'the events carry the same')
  t.not(hashes[0], createHash('sha256').update('alice').digest('base64url').slice(0, 16), 'not a plain hash a dictionary reverses')

  const other = await logged(t, { secret: `${SECRET}-other` })
  await other.attempt('alice')
  t.not(other.logins()[0]?.usernameHash, hashes[0], 'keyed: another secret, another hash')

  const opted = await logged(t, { lockout: { logUsernames: true } })
  await opted.attempt(' Alice ')
  await settle()
  t.match(opted.logins()[0], { type: 'login.failed', username: 'alice', usernameHash: String })
  t.match(opted.events[0], { type: 'login.failed', username: 'alice' })
})

t.test('a store failure in the lockout calls fails closed with a 503', async (t) => {
  const store = memoryStore()
  const h = await withLogin(t, { store })
  const broken = async (): Promise<never> => { throw new Error('down') }
  for (const method of ['counter', 'increment', 'resetCounter', 'decrement'] as const) {
    const original = store[method]
    store[method] = broken
    const response = await attempt(h, 'alice', method === 'resetCounter' || method === 'decrement' ? 'right' : 'wrong')
    t.equal(response.statusCode, 503, `${method} failing`)
    t.equal(response.json().code, 'FST_SESSION_GUARD_STORE_UNAVAILABLE')
    store[method] = original as never
  }
})

t.test('a failure stamped just after an attempt\'s own clock reading does not lock it while attempts are free', async (t) => {
  // Parallel attempts read the clock, then count: one that read it later may stamp `lastAt` past another's `now`.
  const h = await withLogin(t)
  h.clock.advance(10)
  t.equal((await attempt(h, 'alice')).statusCode, 401, 'a failure at now + 10 ms')
  h.clock.advance(-10)
  t.equal((await attempt(h, 'alice', 'right')).statusCode, 200, 'an attempt whose clock read 10 ms earlier: 1 of 5 free failures, no lockout')
  t.equal((await attempt(h, 'bob', 'wrong', '203.0.113.7')).statusCode, 401, 'the IP scope too')
  h.clock.advance(-5)
  t.equal((await attempt(h, 'carol', 'right', '203.0.113.7')).statusCode, 200)
})

t.test('an event names the username by a key of its own purpose, never by the store key\'s', async (t) => {
  const published: unknown[][] = []
  const attempts = new LoginAttempts({
    store: memoryStore(),
    events: { publish: (...args: unknown[]) => published.push(args) } as never,
    clock: () => 0,
    keyOf: (purpose, value) => `${purpose}|${value}`,
    byIp: false,
    describe: async () => ({}) as never
  }, parseLockoutOptions(undefined))
  await attempts.fail({ ip: '192.0.2.1', log: undefined } as never, ' Alice ')
  t.match(published, [[undefined, 'login.failed', 0, undefined, { usernameHash: 'event.username|a', failures: 1 }]])
})

t.test('fail() naming another username than check() counts that username afresh, and leaves the reservation', async (t) => {
  const published: Array<[string, { failures: number }]> = []
  const attempts = new LoginAttempts({
    store: memoryStore(),
    events: { publish: (_log: unknown, type: string, _at: number, _subject: unknown, detail: { failures: number }) => published.push([type, detail]) } as never,
    clock: () => 0,
    keyOf: (purpose, value) => `${purpose}|${value}`,
    byIp: false,
    describe: async () => ({}) as never
  }, parseLockoutOptions(undefined))
  for (let i = 0; i < 2; i++) await attempts.fail({ log: undefined } as never, 'carol')
  const request = { log: undefined } as never
  await attempts.check(request, 'carol')
  await attempts.fail(request, 'alice')
  t.match(published.at(-1), ['login.failed', { failures: 1 }], 'alice\'s first failure, not carol\'s third')
  await attempts.fail(request, 'carol')
  t.match(published.at(-1), ['login.failed', { failures: 3 }], 'carol\'s reservation was still there to confirm')
})

t.test('a counter that started afresh between the read and the count is not taken for the next one after the read', async (t) => {
  const store = memoryStore()
  const counter = store.counter.bind(store)
  let others = false
  // Between this attempt's read and its count the window ends and three others count afresh.
  store.counter = async (key, now) => {
    const held = await counter(key, now)
    if (others) for (let i = 0; i < 3; i++) await store.increment(key, MINUTE, 2 * MINUTE)
    return held
  }
  let now = 0
  const attempts = new LoginAttempts({
    store,
    events: { publish () {} } as never,
    clock: () => now,
    keyOf: (purpose, value) => `${purpose}|${value}`,
    byIp: false,
    describe: async () => ({}) as never
  }, parseLockoutOptions({ usernameFreeAttempts: 3, baseDelay: '1s', window: '1m' }))
  for (let i = 0; i < 3; i++) await attempts.fail({ log: undefined } as never, 'alice')
  now = 1000
  others = true
  await t.rejects(attempts.check({ log: undefined } as never, 'alice'), { code: 'FST_SESSION_GUARD_LOGIN_LOCKED' },
    'its count (4) equals the one read plus one, but it is the fourth of a new series: locked')
})
