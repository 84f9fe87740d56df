import { createHmac } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import sessionGuard, { memoryStore, type SessionGuardOptions, sessionLimitResponseSchema } from '../lib/index.js'
import { hashId } from '../lib/monitoring/events.js'
import { deriveSigningKey } from '../lib/tokens/jwt.js'
import { idSetHash } from '../lib/tokens/limit-tickets.js'
import { build, type Credentials, type Harness, MINUTE, SECRET } from './helper.js'

const FIREFOX_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0'
const SAFARI_IPHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1'

function auth (credentials: Credentials): Record<string, string> {
  return { authorization: `Bearer ${credentials.accessToken}`, cookie: credentials.fingerprint }
}

async function withRoutes (t: Test, options: Partial<SessionGuardOptions> = {}): Promise<Harness> {
  return await build(t, { routes: { prefix: '/sessions' }, ...options }, (app) => {
    // The app's login route declares the 409 schema so a refusal carries its way out.
    app.post<{ Body: { userId: string, remember?: boolean } }>('/login-limited', { schema: { response: { 409: sessionLimitResponseSchema } } }, async (request, reply) => {
      const { accessToken, session } = await reply.issueSession({ userId: request.body.userId, remember: request.body.remember })
      return { accessToken, sessionId: session.id }
    })
  })
}

t.test('GET /sessions lists the caller\'s sessions, current first, with devices', async (t) => {
  const h = await withRoutes(t)
  const laptop = await h.login('alice', {})
  await h.app.inject({ method: 'GET', url: '/me', headers: auth(laptop) })
  h.clock.advance(MINUTE)
  const phone = await loginAs(h, 'alice', SAFARI_IPHONE)
  h.clock.advance(MINUTE)
  const firefox = await loginAs(h, 'alice', FIREFOX_WINDOWS)
  await h.login('bob')
  const response = await h.app.inject({ method: 'GET', url: '/sessions', headers: { ...auth(phone), 'user-agent': SAFARI_IPHONE } })
  t.equal(response.statusCode, 200)
  const { sessions } = response.json()
  t.same(sessions.map((s: { id: string }) => s.id), [phone.sessionId, firefox.sessionId, laptop.sessionId], 'current first, then most recent')
  t.same(sessions.map((s: { isCurrent: boolean }) => s.isCurrent), [true, false, false])
  t.match(sessions[0], { device: { type: 'mobile', name: 'Safari on iPhone' }, ip: '127.0.0.0', remembered: false })
  t.match(sessions[1], { device: { type: 'desktop', name: 'Firefox on Windows', browser: 'Firefox', browserVersion: '133.0' } })
  t.equal(sessions[1].lastActiveAt, new Date(h.clock.now).toISOString())
  t.notOk(JSON.stringify(sessions).match(/fingerprint|refresh|hash|claims/i), 'nothing secret in the view')
  t.equal((await h.app.inject({ method: 'GET', url: '/sessions' })).statusCode, 401, 'guarded')
})

async function loginAs (h: Harness, userId: string, userAgent: string): Promise<Credentials> {
  const response = await h.app.inject({ method: 'POST', url: '/login', payload: { userId }, headers: { 'user-agent': userAgent } })
  const cookies = response.cookies as Array<{ name: string, value: string }>
  return {
    accessToken: response.json().accessToken,
    sessionId: response.json().sessionId,
    fingerprint: `__Host-sg-fp=${cookies.find((c) => c.name === '__Host-sg-fp')?.value}`,
    refreshToken: cookies.find((c) => c.name === '__Secure-sg-rt')?.value as string,
    response
  }
}

t.test('DELETE /sessions/:id revokes one of the caller\'s own; another user\'s id answers like an unknown one', async (t) => {
  const h = await withRoutes(t)
  const a1 = await h.login('alice')
  const a2 = await h.login('alice')
  const bob = await h.login('bob')
  const foreign = await h.app.inject({ method: 'DELETE', url: `/sessions/${bob.sessionId}`, headers: auth(a1) })
  const unknown = await h.app.inject({ method: 'DELETE', url: '/sessions/AAAAAAAAAAAAAAAAAAAAAA', headers: auth(a1) })
  t.equal(foreign.statusCode, 404)
  t.same(foreign.json(), unknown.json(), 'identical answers')
  t.equal(foreign.json().code, 'FST_SESSION_GUARD_SESSION_NOT_FOUND')
  t.equal((await h.me(bob)).statusCode, 200, "bob's session untouched")

  const own = await h.app.inject({ method: 'DELETE', url: `/sessions/${a2.sessionId}`, headers: auth(a1) })
  t.equal(own.statusCode, 204)
  t.equal((await h.me(a2)).statusCode, 401, 'the revoked device is signed out')
  t.equal((await h.me(a1)).statusCode, 200)
  t.equal((await h.app.inject({ method: 'DELETE', url: `/sessions/${a2.sessionId}`, headers: auth(a1) })).statusCode, 404, 'twice: gone')

  const self = await h.app.inject({ method: 'DELETE', url: `/sessions/${a1.sessionId}`, headers: auth(a1) })
  t.equal(self.statusCode, 204, 'revoking the current session is a logout')
  t.match(String(self.headers['set-cookie']), /__Host-sg-fp=;/)
  t.equal((await h.me(a1)).statusCode, 401)
})

t.test('the request log shows no session id from a URL: DELETE /sessions/:id logs its hash', async (t) => {
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => lines.push(line) } } })
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, routes: { prefix: '/sessions' } })
  app.post('/login', async (_request, reply) => {
    const { accessToken, session } = await reply.issueSession({ userId: 'alice' })
    return { accessToken, sessionId: session.id }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const login = async () => {
    const response = await fetch(`${base}/login`, { method: 'POST' })
    const cookie = response.headers.getSetCookie().find((c) => c.startsWith('__Host-sg-fp='))!.split(';')[0] as string
    return { ...await response.json() as { accessToken: string, sessionId: string }, cookie }
  }
  const [here, other] = [await login(), await login()]
  const remove = async (url: string) => (await fetch(`${base}${url}`, { method: 'DELETE', headers: { authorization: `Bearer ${here.accessToken}`, cookie: here.cookie } })).status
  t.equal(await remove(`/sessions/${other.sessionId}`), 204)
  t.equal(await remove(`/sessions/${other.sessionId}?again=1`), 404)
  t.equal(await remove(`/sessions/${here.sessionId}`), 204)

  const log = lines.join('\n')
  for (const { sessionId } of [here, other]) t.notOk(log.includes(sessionId), 'no session id in clear anywhere in the log')
  const urls = lines.map((line) => JSON.parse(line)).filter((entry) => entry.req?.method === 'DELETE').map((entry) => entry.req.url)
  t.same(urls, [`/sessions/sid:${hashId(other.sessionId)}`, `/sessions/sid:${hashId(other.sessionId)}?again=1`, `/sessions/sid:${hashId(here.sessionId)}`],
    'the id replaced by the hash the event lines carry')
  const revoked = lines.map((line) => JSON.parse(line)).filter((entry) => entry.type === 'session.revoked').map((entry) => entry.sessionId)
  t.same(revoked, [hashId(other.sessionId), hashId(here.sessionId)], 'so a request line and its event line correlate')
  const incoming = lines.map((line) => JSON.parse(line)).find((entry) => entry.req?.method === 'DELETE')
  t.match(incoming.req, { method: 'DELETE', host: String, remoteAddress: '127.0.0.1', remotePort: Number }, "the rest of Fastify's request line")
})

t.test('POST /sessions/revoke-others and /revoke-all', async (t) => {
  const h = await withRoutes(t)
  const here = await h.login('alice')
  const others = [await h.login('alice'), await h.login('alice')]
  const bob = await h.login('bob')
  const response = await h.app.inject({ method: 'POST', url: '/sessions/revoke-others', headers: auth(here) })
  t.same(response.json(), { revoked: 2 })
  for (const other of others) t.equal((await h.me(other)).statusCode, 401)
  t.equal((await h.me(here)).statusCode, 200)

  const again = await h.login('alice')
  const all = await h.app.inject({ method: 'POST', url: '/sessions/revoke-all', headers: auth(here) })
  t.same(all.json(), { revoked: 2 })
  t.match(String(all.headers['set-cookie']), /__Host-sg-fp=;/, 'cookies cleared')
  t.equal((await h.me(here)).statusCode, 401)
  t.equal((await h.me(again)).statusCode, 401)
  t.equal((await h.me(bob)).statusCode, 200)
})

t.test('limit reached: the 409 lists the sessions and a ticket completes the login by signing one out', async (t) => {
  const h = await withRoutes(t, { maxSessionsPerUser: 2, onSessionLimit: 'reject' })
  const first = await loginAs(h, 'alice', FIREFOX_WINDOWS)
  const second = await loginAs(h, 'alice', SAFARI_IPHONE)
  const refused = await h.app.inject({ method: 'POST', url: '/login-limited', payload: { userId: 'alice' } })
  t.equal(refused.statusCode, 409)
  const body = refused.json()
  t.equal(body.code, 'FST_SESSION_GUARD_SESSION_LIMIT')
  t.same(body.sessions.map((s: { device: { name: string } }) => s.device.name).sort(), ['Firefox on Windows', 'Safari on iPhone'])
  t.type(body.ticket, 'string')
  const fingerprint = (refused.cookies as Array<{ name: string, value: string }>).find((c) => c.name === '__Host-sg-fp')!
  const cookie = `__Host-sg-fp=${fingerprint.value}`
  const resolve = async (payload: Record<string, unknown>, headers: Record<string, string> = { cookie }) =>
    await h.app.inject({ method: 'POST', url: '/sessions/resolve-limit', payload, headers })

  t.equal((await resolve({ ticket: body.ticket, revoke: first.sessionId }, {})).statusCode, 401, 'the ticket needs the fingerprint cookie of the 409')
  t.equal((await resolve({ ticket: body.ticket, revoke: first.sessionId }, { cookie: first.fingerprint })).statusCode, 401, 'another fingerprint will not do')
  t.equal((await resolve({ ticket: body.ticket, revoke: (await h.login('bob')).sessionId })).statusCode, 401, "it cannot sign out someone else's session")
  t.equal((await resolve({ ticket: first.accessToken, revoke: first.sessionId })).statusCode, 401, 'an access token is no ticket')
  t.equal((await resolve({ ticket: 'x', revoke: first.sessionId })).statusCode, 401)
  t.equal((await resolve({ ticket: body.ticket })).statusCode, 400, 'schema-checked')
  t.equal((await h.me(first)).statusCode, 200, 'failed attempts signed nothing out')

  const done = await resolve({ ticket: body.ticket, revoke: first.sessionId })
  t.equal(done.statusCode, 200)
  const { accessToken, sessionId } = done.json()
  t.equal((await h.me(first)).statusCode, 401, 'the picked session is signed out')
  t.equal((await h.me(second)).statusCode, 200, 'the other stays')
  t.equal((await h.me({ ...first, accessToken, sessionId, fingerprint: cookie })).statusCode, 200, 'the new session works with the 409 fingerprint')
  t.ok((done.cookies as Array<{ name: string }>).some((c) => c.name === '__Secure-sg-rt'), 'and has its refresh cookie')
  t.equal((await resolve({ ticket: body.ticket, revoke: second.sessionId })).statusCode, 401, 'single use')
  t.equal((await h.app.sessions.list('alice')).length, 2)
})

t.test('a limit ticket expires and goes stale', async (t) => {
  const h = await withRoutes(t, { maxSessionsPerUser: 1, onSessionLimit: 'reject', idleTimeout: '1h' })
  const first = await h.login('alice')
  const refused = await h.app.inject({ method: 'POST', url: '/login-limited', payload: { userId: 'alice' } })
  const cookie = `__Host-sg-fp=${(refused.cookies as Array<{ name: string, value: string }>)[0]!.value}`
  h.clock.advance(5 * MINUTE)
  const late = await h.app.inject({ method: 'POST', url: '/sessions/resolve-limit', payload: { ticket: refused.json().ticket, revoke: first.sessionId }, headers: { cookie } })
  t.equal(late.statusCode, 401, 'after 5 minutes')

  const again = await h.app.inject({ method: 'POST', url: '/login-limited', payload: { userId: 'alice' } })
  const cookie2 = `__Host-sg-fp=${(again.cookies as Array<{ name: string, value: string }>)[0]!.value}`
  await h.app.sessions.revoke(first.sessionId)
  const replacement = await h.login('alice')
  const stale = await h.app.inject({ method: 'POST', url: '/sessions/resolve-limit', payload: { ticket: again.json().ticket, revoke: replacement.sessionId }, headers: { cookie: cookie2 } })
  t.equal(stale.statusCode, 401, 'the sessions changed since the ticket was issued')
  t.equal((await h.me(replacement)).statusCode, 200)
})

/** Fills `userId`'s one session slot, has a login (with `remember`) refused, and answers its ticket and fingerprint cookie. */
async function refusedAtLimit (h: Harness, userId: string, remember?: boolean): Promise<{ first: Credentials, ticket: string, cookie: string }> {
  const first = await h.login(userId)
  const refused = await h.app.inject({ method: 'POST', url: '/login-limited', payload: { userId, remember } })
  if (refused.statusCode !== 409) throw new Error(`expected a 409, got ${refused.statusCode}`)
  const cookie = `__Host-sg-fp=${(refused.cookies as Array<{ name: string, value: string }>)[0]!.value}`
  return { first, ticket: refused.json().ticket, cookie }
}

for (const remember of [true, false]) {
  t.test(`the session a ticket completes is the refused login's: remember ${remember}, and no flags it did not earn`, async (t) => {
    const h = await withRoutes(t, { maxSessionsPerUser: 1, onSessionLimit: 'reject' })
    const { first, ticket, cookie } = await refusedAtLimit(h, 'alice', remember)
    const done = await h.app.inject({ method: 'POST', url: '/sessions/resolve-limit', payload: { ticket, revoke: first.sessionId }, headers: { cookie } })
    t.equal(done.statusCode, 200)
    const session = await h.app.sessions.get(done.json().sessionId)
    t.equal(session?.remembered, remember, 'remembered as the login asked')
    // Remembered: 30 days absolute (the default); otherwise 12 hours.
    t.equal(session!.absoluteExpiresAt - session!.createdAt, remember ? 30 * 24 * 60 * MINUTE : 12 * 60 * MINUTE, 'with the lifetime that goes with it')
    t.equal(session?.flags, undefined, 'a login that earned no flag gets none')
  })
}

t.test('each ticket is used up on its own: two refused logins both complete', async (t) => {
  const h = await withRoutes(t, { maxSessionsPerUser: 1, onSessionLimit: 'reject' })
  for (const userId of ['alice', 'bob']) {
    const { first, ticket, cookie } = await refusedAtLimit(h, userId)
    const done = await h.app.inject({ method: 'POST', url: '/sessions/resolve-limit', payload: { ticket, revoke: first.sessionId }, headers: { cookie } })
    t.equal(done.statusCode, 200, `${userId}'s ticket completes`)
  }
  t.equal((await h.app.sessions.stats()).events.rejected.used_ticket, undefined, 'none counted as used by the other')
})

t.test('an access token is no ticket, with its own fingerprint cookie and claims that copy a ticket\'s', async (t) => {
  const h = await withRoutes(t)
  const other = await h.login('alice')
  const plain = await h.login('alice')
  // An app may put any claim but the reserved ones in its access tokens: here `typ` and `act` of a ticket.
  const mimic = await h.login('alice', { claims: { typ: 'sg-limit', act: idSetHash([other.sessionId, plain.sessionId]) } })
  t.equal((await h.app.inject({ method: 'POST', url: '/logout', headers: auth(mimic) })).statusCode, 204, 'its session ended: the ids left are those of `act`')
  for (const [name, token] of [['plain', plain], ['mimic', mimic]] as const) {
    const response = await h.app.inject({
      method: 'POST', url: '/sessions/resolve-limit', payload: { ticket: token.accessToken, revoke: other.sessionId }, headers: { cookie: token.fingerprint }
    })
    t.equal(response.statusCode, 401, `${name} access token refused`)
  }
  t.same((await h.app.sessions.stats()).events.rejected, { invalid_ticket: 2 }, 'as no ticket, before any other check')
  t.equal((await h.me(other)).statusCode, 200, 'nothing was signed out')
})

/** `token` with its header's `typ` replaced, signed again under the real key (the payload, claims and expiry untouched). */
function retyped (token: string, typ: string): string {
  const [header, payload] = token.split('.') as [string, string]
  const input = `${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(header, 'base64url').toString()), typ })).toString('base64url')}.${payload}`
  return `${input}.${createHmac('sha256', deriveSigningKey(SECRET, 'HS256')).update(input).digest('base64url')}`
}

t.test('a ticket is typed sg-limit+jwt in its header: the same ticket typed JWT is refused', async (t) => {
  const h = await withRoutes(t, { maxSessionsPerUser: 1, onSessionLimit: 'reject' })
  const { first, ticket, cookie } = await refusedAtLimit(h, 'alice')
  t.match(JSON.parse(Buffer.from(ticket.split('.')[0] as string, 'base64url').toString()), { typ: 'sg-limit+jwt' })
  for (const typ of ['JWT', 'at+jwt']) {
    const refused = await h.app.inject({ method: 'POST', url: '/sessions/resolve-limit', payload: { ticket: retyped(ticket, typ), revoke: first.sessionId }, headers: { cookie } })
    t.equal(refused.statusCode, 401, `typ ${typ}`)
    t.equal(refused.json().code, 'FST_SESSION_GUARD_UNAUTHORIZED')
  }
  t.same((await h.app.sessions.stats()).events.rejected, { invalid_ticket: 2 }, 'refused as no ticket')
  t.equal((await h.me(first)).statusCode, 200, 'nothing was signed out')
  const done = await h.app.inject({ method: 'POST', url: '/sessions/resolve-limit', payload: { ticket: retyped(ticket, 'sg-limit+jwt'), revoke: first.sessionId }, headers: { cookie } })
  t.equal(done.statusCode, 200, 'the control: signed again with its own type, it completes')
})

t.test('the routes are only there when asked for, and under the given prefix', async (t) => {
  const plain = await build(t)
  t.equal((await plain.app.inject({ method: 'GET', url: '/sessions' })).statusCode, 404)
  const custom = await build(t, { routes: { prefix: '/account/devices' } })
  const alice = await custom.login('alice')
  t.equal((await custom.app.inject({ method: 'GET', url: '/account/devices', headers: auth(alice) })).statusCode, 200)
})

t.test('two concurrent uses of one ticket: exactly one completes', async (t) => {
  const h = await withRoutes(t, { maxSessionsPerUser: 1, onSessionLimit: 'reject' })
  const first = await h.login('alice')
  const refused = await h.app.inject({ method: 'POST', url: '/login-limited', payload: { userId: 'alice' } })
  const cookie = `__Host-sg-fp=${(refused.cookies as Array<{ name: string, value: string }>)[0]!.value}`
  const attempts = await Promise.all([1, 2].map(async () => await h.app.inject({
    method: 'POST', url: '/sessions/resolve-limit', payload: { ticket: refused.json().ticket, revoke: first.sessionId }, headers: { cookie }
  })))
  t.same(attempts.map((r) => r.statusCode).sort(), [200, 401])
  t.equal((await h.app.sessions.list('alice')).length, 1)
})

t.test('a ticket whose session was signed out between the check and the revoke fails cleanly', async (t) => {
  const store = memoryStore()
  const revoke = store.revoke.bind(store)
  const h = await withRoutes(t, { store, maxSessionsPerUser: 1, onSessionLimit: 'reject' })
  const first = await h.login('alice')
  const refused = await h.app.inject({ method: 'POST', url: '/login-limited', payload: { userId: 'alice' } })
  const cookie = `__Host-sg-fp=${(refused.cookies as Array<{ name: string, value: string }>)[0]!.value}`
  // Another request revokes the picked session just before this one does.
  store.revoke = async (id, now) => {
    await revoke(id, now)
    return await revoke(id, now)
  }
  const response = await h.app.inject({ method: 'POST', url: '/sessions/resolve-limit', payload: { ticket: refused.json().ticket, revoke: first.sessionId }, headers: { cookie } })
  t.equal(response.statusCode, 401)
  t.equal((await h.app.sessions.list('alice')).length, 0, 'no session was created in its place')
})
