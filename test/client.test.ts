import Fastify from 'fastify'
import t from 'tap'
import sessionGuard, { toView } from '../lib/index.js'
import { build, EPOCH, MINUTE, SECRET } from './helper.js'

const CHROME_ANDROID = 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36'
const EDGE_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0'

t.test('login records the device, the IP under the privacy policy, and no raw User-Agent by default', async (t) => {
  const h = await build(t)
  const response = await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' }, headers: { 'user-agent': EDGE_WINDOWS }, remoteAddress: '203.0.113.77' })
  const session = await h.app.sessions.get(response.json().sessionId)
  t.match(session?.device, { type: 'desktop', name: 'Edge on Windows' })
  t.equal(session?.ip, '203.0.113.0', 'truncated to /24 by default')
  t.equal(session?.userAgent, undefined)
  t.equal(session?.location, undefined)
})

t.test('client hints are more truthful than the User-Agent', async (t) => {
  const h = await build(t)
  const response = await h.app.inject({
    method: 'POST',
    url: '/login',
    payload: { userId: 'alice' },
    headers: { 'user-agent': EDGE_WINDOWS, 'sec-ch-ua': '"Microsoft Edge";v="131", "Chromium";v="131", "Not_A Brand";v="24"', 'sec-ch-ua-mobile': '?0', 'sec-ch-ua-platform': '"Windows"', 'sec-ch-ua-platform-version': '"15.0.0"' }
  })
  const session = await h.app.sessions.get(response.json().sessionId)
  t.match(session?.device, { os: { name: 'Windows', version: '11' } }, 'platform version 15 is Windows 11, which the UA string cannot say')
})

for (const [ipMode, expected] of [['full', '203.0.113.77'], ['none', undefined]] as const) {
  t.test(`privacy.ipMode '${ipMode}'`, async (t) => {
    const h = await build(t, { privacy: { ipMode } })
    const response = await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' }, remoteAddress: '203.0.113.77' })
    t.equal((await h.app.sessions.get(response.json().sessionId))?.ip, expected)
  })
}

t.test("privacy.ipMode 'hashed' keeps a keyed hash; keepUserAgent keeps the string", async (t) => {
  const h = await build(t, { privacy: { ipMode: 'hashed', ipSalt: 's'.repeat(32), keepUserAgent: true } })
  const login = async (ip: string) => await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' }, remoteAddress: ip, headers: { 'user-agent': CHROME_ANDROID } })
  const a = await h.app.sessions.get((await login('203.0.113.77')).json().sessionId)
  const b = await h.app.sessions.get((await login('203.0.113.77')).json().sessionId)
  const c = await h.app.sessions.get((await login('198.51.100.1')).json().sessionId)
  t.equal(a?.ip, b?.ip, 'the same address hashes alike')
  t.not(a?.ip, c?.ip)
  t.notOk(a?.ip?.includes('203'), 'no trace of the address')
  t.equal(a?.userAgent, CHROME_ANDROID)
  const bad = Fastify()
  t.teardown(() => bad.close())
  await t.rejects(async () => { await bad.register(sessionGuard, { secret: SECRET, privacy: { ipMode: 'hashed' } }); await bad.ready() }, { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /privacy\.ipSalt/ })
})

t.test('resolveLocation gets the full IP; a failure is logged and the login goes on', async (t) => {
  const seen: string[] = []
  const h = await build(t, {
    resolveLocation: async (ip) => {
      seen.push(ip)
      if (ip === '192.0.2.1') throw new Error('geo database missing')
      return ip.startsWith('203.') ? { country: 'FR', city: 'Paris', latitude: 48.85, longitude: 2.35 } : undefined
    }
  })
  const paris = await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' }, remoteAddress: '203.0.113.77' })
  const located = await h.app.sessions.get(paris.json().sessionId)
  t.same(located?.location, { country: 'FR', city: 'Paris', latitude: 48.85, longitude: 2.35 })
  t.same(toView(located!).location, located?.location, 'shown in the view')
  const broken = await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' }, remoteAddress: '192.0.2.1' })
  t.equal(broken.statusCode, 200)
  t.equal((await h.app.sessions.get(broken.json().sessionId))?.location, undefined)
  const nowhere = await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' }, remoteAddress: '198.51.100.1' })
  t.equal((await h.app.sessions.get(nowhere.json().sessionId))?.location, undefined)
  t.same(seen, ['203.0.113.77', '192.0.2.1', '198.51.100.1'])
})

t.test('the client is kept fresh on activity: a new IP or device is recorded with the touch', async (t) => {
  const h = await build(t, { privacy: { ipMode: 'full' }, resolveLocation: (ip) => ({ country: ip.startsWith('203.') ? 'FR' : 'DE' }) })
  const alice = await h.login('alice')
  const request = async (ip: string, userAgent: string) => await h.app.inject({
    method: 'GET', url: '/me', remoteAddress: ip, headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.fingerprint, 'user-agent': userAgent }
  })
  t.equal((await h.app.sessions.get(alice.sessionId))?.ip, '127.0.0.1')
  h.clock.advance(MINUTE)
  await request('203.0.113.77', CHROME_ANDROID)
  let session = await h.app.sessions.get(alice.sessionId)
  t.match(session, { ip: '203.0.113.77', location: { country: 'FR' }, device: { name: 'Chrome on Android' } })
  const before = session
  h.clock.advance(MINUTE)
  await request('203.0.113.77', CHROME_ANDROID)
  session = await h.app.sessions.get(alice.sessionId)
  t.equal(session?.device, before?.device, 'the same device: the same shared object')
  t.equal(session?.lastSeenAt, h.clock.now)
  h.clock.advance(MINUTE)
  await request('198.51.100.1', CHROME_ANDROID)
  t.match(await h.app.sessions.get(alice.sessionId), { ip: '198.51.100.1', location: { country: 'DE' } })
})

t.test('a view of a record without client fields has none', async (t) => {
  const view = toView({ id: 's', userId: 'u', fingerprintHash: 'h', createdAt: EPOCH, lastSeenAt: EPOCH, idleExpiresAt: EPOCH + MINUTE, absoluteExpiresAt: EPOCH + 2 * MINUTE, remembered: true })
  t.same(view, {
    id: 's',
    isCurrent: false,
    createdAt: '2026-01-01T00:00:00.000Z',
    lastActiveAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-01T00:01:00.000Z',
    remembered: true,
    renewals: 0
  })
})

t.test('a view says how the session signed in (the amr claim, and nothing else of the claims) and how often it was refreshed', async (t) => {
  const base = { id: 's', userId: 'u', fingerprintHash: 'h', createdAt: EPOCH, lastSeenAt: EPOCH, idleExpiresAt: EPOCH + MINUTE, absoluteExpiresAt: EPOCH + 2 * MINUTE, remembered: false }
  const view = toView({ ...base, claims: { amr: ['pwd', 'otp'], role: 'admin' }, refresh: { hash: 'r', rotatedAt: EPOCH, rotations: 3 } })
  t.strictSame([view.authMethods, view.renewals], [['pwd', 'otp'], 3])
  t.notOk(JSON.stringify(view).includes('admin'), 'no other claim')
  for (const amr of ['pwd', ['pwd', 1], undefined]) {
    t.notOk('authMethods' in toView({ ...base, claims: { amr } }), `an amr of ${JSON.stringify(amr)} shows none`)
  }
})

t.test('routes and resolveLocation options are validated', async (t) => {
  for (const [option, options] of [
    ['routes.prefix', { routes: { prefix: 'sessions' } }],
    ['routes.prefix', { routes: {} }],
    ['resolveLocation', { resolveLocation: 'maxmind' }]
  ] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(sessionGuard, { secret: SECRET, ...options } as never); await app.ready() }, { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: new RegExp(`"${option.replace('.', '\\.')}"`) }, option)
  }
})

t.test('a refresh from a new address records it', async (t) => {
  const h = await build(t, { privacy: { ipMode: 'full' } })
  const alice = await h.login('alice')
  const response = await h.app.inject({
    method: 'POST', url: '/refresh', remoteAddress: '198.51.100.4', headers: { cookie: `__Secure-sg-rt=${alice.refreshToken}; ${alice.fingerprint}`, 'x-requested-with': 'x' }
  })
  t.equal(response.statusCode, 200)
  t.equal((await h.app.sessions.get(alice.sessionId))?.ip, '198.51.100.4')
})
