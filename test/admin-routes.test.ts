import type { FastifyReply, FastifyRequest } from 'fastify'
import t from 'tap'
import { build, MINUTE, registrationError, SECRET } from './helper.js'

const COUNTRIES: Record<string, string> = { '203.0.113.1': 'FR', '203.0.113.2': 'FR', '198.51.100.1': 'AU' }
const SAFARI = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1'
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0'

/** The app's own role check: the plugin never guesses one. */
async function adminOnly (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if ((request.user as { role?: string }).role !== 'admin') await reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: 'Admins only' })
}

async function harness (t: Parameters<typeof build>[0], options: Parameters<typeof build>[1] = {}) {
  const h = await build(t, {
    resolveLocation: (ip) => COUNTRIES[ip] === undefined ? undefined : { country: COUNTRIES[ip] },
    admin: { prefix: '/admin', preHandler: adminOnly },
    ...options
  })
  const signIn = async (userId: string, ip: string, ua: string, role = 'member') => {
    const response = await h.app.inject({ method: 'POST', url: '/login', payload: { userId, claims: { role } }, headers: { 'user-agent': ua }, remoteAddress: ip })
    const fingerprint = (response.cookies as Array<{ name: string, value: string }>).find((cookie) => cookie.name === '__Host-sg-fp')
    return { accessToken: response.json().accessToken as string, sessionId: response.json().sessionId as string, cookie: `__Host-sg-fp=${fingerprint?.value ?? ''}` }
  }
  const as = (who: { accessToken: string, cookie: string }) => ({ authorization: `Bearer ${who.accessToken}`, cookie: who.cookie })
  return { ...h, signIn, as }
}

t.test('the overview: refused without a session and to a non-admin, the figures of what was done to an admin', async (t) => {
  const h = await harness(t)
  const admin = await h.signIn('root', '127.0.0.1', FIREFOX, 'admin')
  const bob1 = await h.signIn('bob', '203.0.113.1', SAFARI)
  await h.signIn('bob', '203.0.113.2', FIREFOX)
  await h.signIn('carol', '198.51.100.1', SAFARI)
  h.clock.advance(3 * MINUTE)
  await h.app.sessions.revoke(bob1.sessionId, 'admin')

  t.equal((await h.app.inject({ method: 'GET', url: '/admin/overview' })).statusCode, 401, 'no session: 401')
  const refused = await h.app.inject({ method: 'GET', url: '/admin/overview', headers: h.as(await h.signIn('dave', '127.0.0.1', FIREFOX)) })
  t.equal(refused.statusCode, 403, 'a member: the app\'s preHandler answers 403')
  t.equal(refused.json().message, 'Admins only')

  const response = await h.app.inject({ method: 'GET', url: '/admin/overview', headers: h.as(admin) })
  t.equal(response.statusCode, 200)
  const { generatedAt, live, timeline } = response.json()
  t.equal(generatedAt, new Date(h.clock.now).toISOString())
  t.match(live, { sessions: 4, users: 4, sessionsPerUser: { 1: 4 }, countries: { FR: 1, AU: 1, unknown: 2 } }, 'the live sessions: bob\'s first was revoked')
  t.same(timeline.signInsByCountry, { FR: 2, AU: 1, unknown: 2 }, 'five sign-ins: three from two countries, two from nowhere known')
  t.same(timeline.signInsByDeviceType, { desktop: 3, mobile: 2 })
  t.equal(timeline.points.at(-1).activeSessions, 4, 'sampled as the overview was read')
  t.equal(timeline.points.reduce((n: number, point: { ended: number }) => n + point.ended, 0), 1)
  t.equal(timeline.durations.find((bucket: { upToMs: number }) => bucket.upToMs === 5 * MINUTE).count, 1, 'the revoked session lived 3 minutes')
  t.equal(timeline.points.length, 288, 'the default window: a day of five-minute points')
})

t.test('one user: live sessions and history; an admin revokes one, a member cannot', async (t) => {
  const h = await harness(t)
  const admin = await h.signIn('root', '127.0.0.1', FIREFOX, 'admin')
  const bob = await h.signIn('bob', '203.0.113.1', SAFARI)
  const bobToo = await h.signIn('bob', '198.51.100.1', FIREFOX)

  const user = await h.app.inject({ method: 'GET', url: '/admin/users/bob?limit=5', headers: h.as(admin) })
  t.equal(user.statusCode, 200)
  t.same(user.json().sessions.map((s: { id: string }) => s.id).sort(), [bob.sessionId, bobToo.sessionId].sort())
  const history = user.json().history as Array<{ type: string, sessionId?: string, detail?: { rule?: string } }>
  t.equal(history.length, 4, 'two sign-ins, and the second one\'s new device and new country')
  t.match(history[0], { type: 'session.created', sessionId: bobToo.sessionId }, 'newest first')
  t.same(history.filter((e) => e.type === 'anomaly.detected').map((e) => e.detail?.rule).sort(), ['new_country', 'new_device'])
  t.equal((await h.app.inject({ method: 'GET', url: '/admin/users/bob?limit=0', headers: h.as(admin) })).statusCode, 400, 'the query is validated')
  t.equal((await h.app.inject({ method: 'GET', url: '/admin/users/bob', headers: h.as(bob) })).statusCode, 403)

  t.equal((await h.app.inject({ method: 'DELETE', url: `/admin/sessions/${bobToo.sessionId}`, headers: h.as(bob) })).statusCode, 403, 'a member cannot use the admin revoke')
  t.equal((await h.app.inject({ method: 'GET', url: '/me', headers: h.as(bobToo) })).statusCode, 200, 'and the session lives on')
  const revoke = await h.app.inject({ method: 'DELETE', url: `/admin/sessions/${bobToo.sessionId}`, headers: h.as(admin) })
  t.equal(revoke.statusCode, 204)
  t.equal((await h.app.inject({ method: 'GET', url: '/me', headers: h.as(bobToo) })).statusCode, 401, 'the revoked session is refused')
  const again = await h.app.inject({ method: 'DELETE', url: `/admin/sessions/${bobToo.sessionId}`, headers: h.as(admin) })
  t.equal(again.statusCode, 404)
  t.equal(again.json().code, 'FST_SESSION_GUARD_SESSION_NOT_FOUND')
  const [entry] = (await h.app.inject({ method: 'GET', url: '/admin/users/bob', headers: h.as(admin) })).json().history
  t.match(entry, { type: 'session.revoked', sessionId: bobToo.sessionId, detail: { reason: 'admin', durationMs: 0 } })
})

t.test('without a history or a timeline, the routes leave those parts out', async (t) => {
  const h = await harness(t, { history: false, timeline: false })
  const admin = await h.signIn('root', '127.0.0.1', FIREFOX, 'admin')
  const overview = (await h.app.inject({ method: 'GET', url: '/admin/overview', headers: h.as(admin) })).json()
  t.equal(overview.timeline, undefined)
  t.equal(overview.live.sessions, 1)
  const user = (await h.app.inject({ method: 'GET', url: '/admin/users/root', headers: h.as(admin) })).json()
  t.same(Object.keys(user).sort(), ['sessions', 'userId'])
})

t.test('routeOptions reach each admin route', async (t) => {
  const seen: string[] = []
  const h = await harness(t, {
    admin: {
      prefix: '/admin',
      preHandler: [adminOnly],
      routeOptions: { schema: { tags: ['ops'] }, onRequest: async (request) => { seen.push(request.url) } }
    }
  })
  const admin = await h.signIn('root', '127.0.0.1', FIREFOX, 'admin')
  t.equal((await h.app.inject({ method: 'GET', url: '/admin/overview', headers: h.as(admin) })).statusCode, 200)
  t.same(seen, ['/admin/overview'])
  const printed = h.app.printRoutes({ commonPrefix: false })
  for (const path of ['overview', 'users/:userId', 'sessions/:id']) t.match(printed, path)
})

t.test('the admin option: a preHandler is required, and checked', async (t) => {
  for (const [admin, name] of [
    [{ prefix: '/admin' }, 'admin.preHandler'],
    [{ prefix: '/admin', preHandler: [] }, 'admin.preHandler'],
    [{ prefix: '/admin', preHandler: 'admin' }, 'admin.preHandler'],
    [{ prefix: '/admin', preHandler: [adminOnly, 1] }, 'admin.preHandler'],
    [{ prefix: 'admin', preHandler: adminOnly }, 'admin.prefix'],
    [{ prefix: '/admin', preHandler: adminOnly, roles: ['admin'] }, 'admin.roles'],
    [{ prefix: '/admin', preHandler: adminOnly, routeOptions: { hide: 'yes' } }, 'admin.routeOptions.hide']
  ] as const) {
    const err = await registrationError({ secret: SECRET, admin })
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', JSON.stringify(admin))
    t.match(err?.message, name)
  }
})
