import type { AddressInfo } from 'node:net'
import t from 'tap'
import { memoryStore, type HistoryEntry, type SessionStore } from '../lib/index.js'
import { build, MINUTE, registrationError, SECRET, settle, type Credentials, type Harness } from './helper.js'

const FIREFOX = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0'

/** An app whose password login names the user to the lockout (`{ userId }`), as docs/monitoring.md shows. */
async function withHistory (t: Parameters<typeof build>[0], options: Parameters<typeof build>[1] = {}): Promise<Harness> {
  return await build(t, { resolveLocation: () => ({ country: 'FR', city: 'Lyon' }), ...options }, (app) => {
    app.post<{ Body: { username: string, password: string } }>('/password-login', async (request, reply) => {
      const { username, password } = request.body
      const userId = `id-${username}`
      await app.sessions.loginAttempts.check(request, username, { userId })
      if (password !== 'right') {
        await app.sessions.loginAttempts.fail(request, username, { userId })
        return await reply.code(401).send({ message: 'Wrong username or password' })
      }
      await app.sessions.loginAttempts.succeed(request, username)
      return await reply.issueSession({ userId })
    })
  })
}

async function refresh (h: Harness, credentials: Credentials, refreshToken = credentials.refreshToken) {
  return await h.app.inject({
    method: 'POST',
    url: '/refresh',
    headers: { cookie: `__Secure-sg-rt=${refreshToken}; ${credentials.fingerprint}`, 'x-requested-with': 'fetch' }
  })
}

const summary = (entries: readonly HistoryEntry[]): string[] =>
  entries.map((entry) => [entry.type, entry.detail?.reason ?? entry.detail?.rule ?? entry.detail?.scope ?? ''].join(' ').trim())

t.test('sign-ins, failures, lockouts, revocations and reuse land in the user\'s history, newest first', async (t) => {
  const h = await withHistory(t, { lockout: { usernameFreeAttempts: 2 } })
  const password = async (p: string) => await h.app.inject({ method: 'POST', url: '/password-login', payload: { username: 'alice', password: p }, remoteAddress: '203.0.113.7', headers: { 'user-agent': FIREFOX } })
  t.equal((await password('wrong')).statusCode, 401)
  t.equal((await password('wrong')).statusCode, 401)
  t.equal((await password('right')).statusCode, 429, 'locked')
  h.clock.advance(MINUTE)
  const signedIn = await password('right')
  t.equal(signedIn.statusCode, 200)
  const alice = await h.login('id-alice')
  const rotated = await refresh(h, alice)
  t.equal(rotated.statusCode, 200)
  const successor = rotated.cookies.find((cookie) => cookie.name === '__Secure-sg-rt')?.value as string
  t.equal((await refresh(h, alice, successor)).statusCode, 200, 'the successor used: the first token is now old')
  h.clock.advance(MINUTE)
  t.equal((await refresh(h, alice)).statusCode, 401, 'the first refresh token again: reuse')
  const bob = await h.login('id-bob')
  await h.app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${bob.accessToken}`, cookie: bob.fingerprint } })

  const history = await h.app.sessions.history('id-alice')
  t.strictSame(summary(history), [
    'session.revoked reuse',
    'refresh.reuse_detected',
    'session.created',
    'anomaly.detected new_device',
    'session.created',
    'login.locked username',
    'login.failed',
    'login.failed'
  ])
  const [, , , , first, locked, failed] = history
  t.match(first, {
    type: 'session.created',
    time: Number,
    sessionId: signedIn.json().session.id,
    device: { type: 'desktop', name: 'Firefox on Windows' },
    ip: '203.0.113.0',
    location: { country: 'FR', city: 'Lyon' },
    detail: { remembered: false }
  }, 'a sign-in: its session, device, IP as the privacy policy keeps it, place')
  t.match(locked, { type: 'login.locked', ip: '203.0.113.0', detail: { scope: 'username', retryAfterMs: Number } })
  t.match(failed, { type: 'login.failed', device: { name: 'Firefox on Windows' }, detail: { failures: 2 } })
  t.strictSame(summary(await h.app.sessions.history('id-bob')), ['session.revoked user', 'session.created'], 'bob\'s own, apart')

  const text = JSON.stringify(history)
  for (const secret of [alice.accessToken, alice.refreshToken, alice.fingerprint.split('=')[1] as string, 'alice', '203.0.113.7']) {
    t.notOk(text.includes(secret), `no token, fingerprint, username or full IP in the history: ${secret.slice(0, 12)}…`)
  }
})

t.test('a lockout is one entry however many attempts it refuses: a flood of locked attempts cannot push the sign-ins out', async (t) => {
  const locked: unknown[] = []
  const h = await withHistory(t, { lockout: { usernameFreeAttempts: 2 }, history: { maxEntries: 10 }, onEvent: (event) => { if (event.type === 'login.locked') locked.push(event) } })
  await h.app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`
  const attempt = async () => (await fetch(`${base}/password-login`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': FIREFOX }, body: JSON.stringify({ username: 'alice', password: 'guess' })
  })).status
  await h.login('id-alice')
  const statuses = []
  for (let i = 0; i < 30; i++) statuses.push(await attempt())
  t.strictSame([statuses.filter((s) => s === 401).length, statuses.filter((s) => s === 429).length], [2, 28], 'two failures, then locked')
  h.clock.advance(1000)
  const burst = await Promise.all(Array.from({ length: 30 }, attempt))
  t.strictSame([burst.filter((s) => s === 401).length, burst.filter((s) => s === 429).length], [1, 29], 'the lockout over: a burst gets one more failure in')
  t.strictSame(summary(await h.app.sessions.history('id-alice')), [
    'login.locked username',
    'login.failed',
    'login.locked username',
    'login.failed',
    'login.failed',
    'session.created'
  ], 'one entry per lockout; the sign-in is still there')
  await settle()
  t.equal(locked.length, 28 + 29, 'every refused attempt is still an event')
})

t.test('a failed login the app does not name a user for stays out of every history', async (t) => {
  const h = await withHistory(t)
  await h.app.inject({ method: 'POST', url: '/password-login', payload: { username: 'alice', password: 'wrong' } })
  // The same failure without { userId }:
  await h.app.sessions.loginAttempts.check({ ip: '203.0.113.7', headers: {}, log: h.app.log } as never, 'carol')
  t.equal((await h.app.sessions.history('id-alice')).length, 1)
  t.strictSame(await h.app.sessions.history('carol'), [])
})

t.test('anomalies and limit evictions are in the history with their rule and reason', async (t) => {
  const h = await withHistory(t, { maxSessionsPerUser: 1, anomalies: { newDevice: 'flag' } })
  await h.login('u', {})
  await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'u' }, headers: { 'user-agent': FIREFOX } })
  const history = await h.app.sessions.history('u')
  t.ok(summary(history).includes('session.revoked limit'), summary(history).join(', '))
  t.ok(summary(history).includes('anomaly.detected new_device'))
  t.match(history.find((entry) => entry.type === 'anomaly.detected'), { detail: { rule: 'new_device', decision: 'flag', at: 'login' } })
})

t.test('history.maxEntries and maxAge bound what is kept; limit and before page it', async (t) => {
  const h = await withHistory(t, { history: { maxEntries: 5, maxAge: '1h' } })
  for (let i = 0; i < 8; i++) {
    await h.login('u')
    h.clock.advance(MINUTE)
  }
  t.equal((await h.app.sessions.history('u', { limit: 100 })).length, 5, 'maxEntries')
  const first = await h.app.sessions.history('u', { limit: 2 })
  const second = await h.app.sessions.history('u', { limit: 2, before: first[1]?.id })
  t.equal(first.length, 2)
  t.equal(second.length, 2)
  t.ok((first[1] as HistoryEntry).time > (second[0] as HistoryEntry).time, 'the next page is older')
  h.clock.advance(60 * MINUTE)
  t.strictSame(await h.app.sessions.history('u'), [], 'maxAge')
})

t.test('a bad page is a coded 400; no history is a coded error', async (t) => {
  const h = await withHistory(t)
  for (const [query, message] of [
    [{ limit: 0 }, /limit must be an integer from 1 to 1000/],
    [{ limit: 1001 }, /limit/],
    [{ limit: 1.5 }, /limit/],
    [{ before: '' }, /before must be the id/],
    [{ before: 'a b' }, /before/],
    [{ before: 'x'.repeat(41) }, /before/],
    [{ before: 7 }, /before/]
  ] as const) {
    await t.rejects(h.app.sessions.history('u', query as never), { code: 'FST_SESSION_GUARD_INVALID_HISTORY_QUERY', statusCode: 400, message }, JSON.stringify(query))
  }
  const off = await withHistory(t, { history: false })
  await off.login('u')
  await t.rejects(off.app.sessions.history('u'), { code: 'FST_SESSION_GUARD_HISTORY_OFF', message: /history: false/ })
  await t.rejects(off.app.sessions.erase('u'), { code: 'FST_SESSION_GUARD_HISTORY_OFF' })
})

/** A store as a third party might have written it before the history existed. */
function withoutHistory (): SessionStore {
  const store = memoryStore()
  const hidden = new Set<PropertyKey>(['appendHistory', 'history', 'eraseHistory'])
  return new Proxy(store, {
    get (target, key) {
      if (hidden.has(key)) return undefined
      const value = Reflect.get(target, key, target) as unknown
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
}

t.test('a store that keeps no history: refused when asked for one, off (and said so) by default', async (t) => {
  t.match(await registrationError({ secret: SECRET, store: withoutHistory(), history: { maxEntries: 10 } }), {
    code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /"history": needs a store that keeps a login history/
  })
  for (const [history, message] of [[{ maxEntries: 0 }, /history.maxEntries/], [{ maxAge: 'soon' }, /history.maxAge/], [{ max: 1 }, /history.max/], ['yes', /"history": must be an object/]] as const) {
    t.match(await registrationError({ secret: SECRET, history }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message }, JSON.stringify(history))
  }
  const h = await build(t, { store: withoutHistory() })
  await h.login('u')
  await t.rejects(h.app.sessions.history('u'), { code: 'FST_SESSION_GUARD_HISTORY_OFF', message: /store keeps none/ })
})

t.test('a history write that fails is logged and fails no request; the next one is written', async (t) => {
  const store = memoryStore()
  let failing = true
  const append = store.appendHistory.bind(store)
  store.appendHistory = async (...args) => {
    if (failing) throw new Error('disk on fire')
    await append(...args)
  }
  const logged: string[] = []
  const h = await build(t, { store })
  h.app.log.error = ((details: { err?: Error }, message: string) => { logged.push(`${message}: ${details.err?.message ?? ''}`) }) as never
  await h.login('u')
  t.strictSame(await h.app.sessions.history('u'), [], 'the failed write is not there')
  t.match(logged, [/the session store failed: disk on fire/, /a login-history entry could not be written/], 'the cause, then what it cost')
  failing = false
  await h.login('u')
  t.equal((await h.app.sessions.history('u')).length, 1)
})

t.test('export holds the live sessions as views and the whole history; erase removes both', async (t) => {
  const h = await withHistory(t, { history: { maxEntries: 2500 } })
  for (let i = 0; i < 1200; i++) await h.app.sessions.loginAttempts.fail({ ip: '203.0.113.7', headers: {}, log: h.app.log } as never, `name${i}`, { userId: 'u' })
  const alice = await h.login('u')
  const exported = await h.app.sessions.export('u')
  t.equal(exported.userId, 'u')
  t.equal(exported.exportedAt, new Date(h.clock.now).toISOString())
  t.equal(exported.history.length, 1201, 'every page, past the 1000 of one')
  t.equal(new Set(exported.history.map((entry) => entry.id)).size, 1201)
  t.match(exported.sessions, [{ id: alice.sessionId, isCurrent: false }])
  t.notOk(JSON.stringify(exported).includes(alice.fingerprint.split('=')[1] as string), 'no fingerprint')
  t.equal(await h.app.sessions.erase('u'), 1, 'one session revoked')
  t.equal((await h.me(alice)).statusCode, 401, 'the session no longer works')
  t.strictSame(await h.app.sessions.history('u'), [], 'and the history is gone, the revocation included')
  t.strictSame(await h.app.sessions.list('u'), [])
  t.equal(await h.app.sessions.erase('nobody'), 0, 'a user with nothing held: nothing to erase')
})

t.test('GET <prefix>/history: the caller\'s own history, paged, with schemas; absent when no history is kept', async (t) => {
  const h = await withHistory(t, { routes: { prefix: '/sessions' } })
  const alice = await h.login('id-alice')
  for (let i = 0; i < 3; i++) await h.login('id-alice')
  await h.login('id-bob')
  const get = async (credentials: Credentials, query = '') => await h.app.inject({
    method: 'GET', url: `/sessions/history${query}`, headers: { authorization: `Bearer ${credentials.accessToken}`, cookie: credentials.fingerprint }
  })
  const all = await get(alice)
  t.equal(all.statusCode, 200)
  const entries = all.json().entries as HistoryEntry[]
  t.ok(entries.length >= 4 && entries.every((entry) => entry.type === 'session.created' || entry.type === 'anomaly.detected'), 'alice\'s entries only')
  t.notOk(JSON.stringify(entries).includes('id-bob'), 'never another user\'s')
  const page = (await get(alice, '?limit=2')).json().entries as HistoryEntry[]
  const next = (await get(alice, `?limit=2&before=${page[1]?.id ?? ''}`)).json().entries as HistoryEntry[]
  t.strictSame([...page, ...next].map((entry) => entry.id), entries.slice(0, 4).map((entry) => entry.id), 'pages follow on')
  for (const query of ['?limit=0', '?limit=101', '?before=a%20b']) {
    t.equal((await get(alice, query)).statusCode, 400, query)
  }
  t.equal((await h.app.inject({ method: 'GET', url: '/sessions/history' })).statusCode, 401, 'guarded')
  const off = await build(t, { history: false, routes: { prefix: '/sessions' } })
  const carol = await off.login('carol')
  t.equal((await off.app.inject({ method: 'GET', url: '/sessions/history', headers: { authorization: `Bearer ${carol.accessToken}`, cookie: carol.fingerprint } })).statusCode, 404)
})

t.test('a store that fails a history read or erase answers the coded 503, like every store call', async (t) => {
  const store = memoryStore()
  let failing = false
  const read = store.history.bind(store)
  const erase = store.eraseHistory.bind(store)
  store.history = async (...args) => { if (failing) throw new Error('connection reset'); return await read(...args) }
  store.eraseHistory = async (...args) => { if (failing) throw new Error('connection reset'); await erase(...args) }
  // A slow write: the read right after the login finds it still on its way, and waits for it.
  const append = store.appendHistory.bind(store)
  store.appendHistory = async (...args) => { await new Promise((resolve) => setTimeout(resolve, 20)); await append(...args) }
  const h = await build(t, { store })
  await h.login('u')
  t.equal((await h.app.sessions.history('u')).length, 1, 'read right after the login: the pending write is awaited')
  t.strictSame(await h.app.sessions.history('nobody'), [], 'nothing pending, nothing held')
  failing = true
  await t.rejects(h.app.sessions.history('u'), { code: 'FST_SESSION_GUARD_STORE_UNAVAILABLE', statusCode: 503 })
  await t.rejects(h.app.sessions.erase('u'), { code: 'FST_SESSION_GUARD_STORE_UNAVAILABLE', statusCode: 503 })
})
