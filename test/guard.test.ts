import { createHash, createHmac } from 'node:crypto'
import Fastify from 'fastify'
import t from 'tap'
import sessionGuard, { memoryStore } from '../lib/index.js'
import { deriveSigningKey } from '../lib/tokens/jwt.js'
import { build, MINUTE, SECRET, setCookies, settle, TestClock } from './helper.js'

/** A token signed with `secret` (by default the key the plugin derives from SECRET) for any payload and header, to forge what an attacker could. */
function forge (payload: Record<string, unknown>, { secret = deriveSigningKey(SECRET, 'HS256') as string | Buffer, header = { alg: 'HS256', typ: 'at+jwt', kid: 'default' } } = {}): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const body = `${encode(header)}.${encode(payload)}`
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`
}

function decode (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString())
}

t.test('a valid token with its fingerprint cookie reaches the handler', async (t) => {
  const { login, me } = await build(t)
  const alice = await login('alice', { claims: { role: 'admin' } })
  const response = await me(alice)
  t.equal(response.statusCode, 200)
  const { user, session } = response.json()
  t.match(user, { sub: 'alice', sid: alice.sessionId, role: 'admin' })
  t.match(session, { id: alice.sessionId, userId: 'alice' })
})

t.test('the access token carries sub, sid and the fingerprint hash, never the fingerprint', async (t) => {
  const { login } = await build(t)
  const alice = await login('alice')
  const claims = decode(alice.accessToken)
  const fingerprint = alice.fingerprint.split('=')[1] as string
  t.equal(claims.sub, 'alice')
  t.equal(claims.sid, alice.sessionId)
  t.equal(claims.fph, createHashB64(fingerprint))
  t.notOk(JSON.stringify(claims).includes(fingerprint), 'the fingerprint itself is not in the token')
  t.equal(claims.exp, (claims.iat as number) + 15 * 60, 'accessTokenTtl defaults to 15 minutes')
  t.ok(alice.sessionId.length >= 22, 'session id has at least 128 bits')
})

function createHashB64 (value: string): string {
  return createHash('sha256').update(value).digest('base64url')
}

t.test('the fingerprint cookie is hardened', async (t) => {
  const { login } = await build(t)
  const alice = await login('alice')
  const header = (alice.response.headers['set-cookie'] as string[]).find((c) => c.startsWith('__Host-sg-fp='))
  t.ok(header)
  t.match(header, /; Path=\/(;|$)/)
  t.match(header, /HttpOnly/)
  t.match(header, /Secure/)
  t.match(header, /SameSite=Strict/)
  t.notMatch(header, /Domain/i)
  t.notMatch(header, /Max-Age/i, 'a session that is not remembered gets a session cookie')
})

t.test('every rejection is the same 401 with a code and a Bearer challenge, and its own reason in the event', async (t) => {
  const reasons: string[] = []
  const { app, login, me } = await build(t, { onEvent: (event) => { if (event.type === 'auth.rejected') reasons.push(event.reason) } })
  const alice = await login('alice')
  const bob = await login('bob')
  const [fingerprintName, fingerprintValue] = alice.fingerprint.split('=') as [string, string]
  const cases: Array<[string, Record<string, string>, string]> = [
    ['no authorization header', { cookie: alice.fingerprint }, 'missing_token'],
    ['another scheme', { authorization: `Basic ${alice.accessToken}`, cookie: alice.fingerprint }, 'malformed_token'],
    ['a malformed token', { authorization: 'Bearer not-a-jwt', cookie: alice.fingerprint }, 'malformed_token'],
    ['an oversized header', { authorization: `Bearer ${'a'.repeat(9000)}.b.c`, cookie: alice.fingerprint }, 'malformed_token'],
    ['a token followed by more', { authorization: `Bearer ${alice.accessToken} ${alice.accessToken}`, cookie: alice.fingerprint }, 'malformed_token'],
    ['the scheme after another word', { authorization: `Token Bearer ${alice.accessToken}`, cookie: alice.fingerprint }, 'malformed_token'],
    ['a token signed with another key', { authorization: `Bearer ${forge(decode(alice.accessToken), { secret: 'x'.repeat(40) })}`, cookie: alice.fingerprint }, 'invalid_token'],
    ['alg none', { authorization: `Bearer ${forge(decode(alice.accessToken), { header: { alg: 'none', typ: 'at+jwt', kid: 'default' } }).split('.').slice(0, 2).join('.')}.`, cookie: alice.fingerprint }, 'malformed_token'],
    ['a token with a tampered payload', { authorization: `Bearer ${alice.accessToken.split('.')[0]}.${Buffer.from(JSON.stringify({ ...decode(alice.accessToken), sub: 'bob' })).toString('base64url')}.${alice.accessToken.split('.')[2]}`, cookie: alice.fingerprint }, 'invalid_token'],
    ['claims of the wrong type', { authorization: `Bearer ${forge({ ...decode(alice.accessToken), sid: 42 })}`, cookie: alice.fingerprint }, 'invalid_claims'],
    ['an empty sub', { authorization: `Bearer ${forge({ ...decode(alice.accessToken), sub: '' })}`, cookie: alice.fingerprint }, 'invalid_claims'],
    ['an empty sid', { authorization: `Bearer ${forge({ ...decode(alice.accessToken), sid: '' })}`, cookie: alice.fingerprint }, 'invalid_claims'],
    ['no fingerprint claim', { authorization: `Bearer ${forge({ ...decode(alice.accessToken), fph: undefined })}`, cookie: alice.fingerprint }, 'invalid_claims'],
    ['a fingerprint claim of another length', { authorization: `Bearer ${forge({ ...decode(alice.accessToken), fph: 'short' })}`, cookie: alice.fingerprint }, 'fingerprint_mismatch'],
    ['no exp', { authorization: `Bearer ${forge({ ...decode(alice.accessToken), exp: undefined })}`, cookie: alice.fingerprint }, 'invalid_claims'],
    ['a string exp', { authorization: `Bearer ${forge({ ...decode(alice.accessToken), exp: '9999999999' })}`, cookie: alice.fingerprint }, 'invalid_claims'],
    ['no iat', { authorization: `Bearer ${forge({ ...decode(alice.accessToken), iat: undefined })}`, cookie: alice.fingerprint }, 'invalid_claims'],
    ['a null payload', { authorization: `Bearer ${forge(null as unknown as Record<string, unknown>)}`, cookie: alice.fingerprint }, 'invalid_token'],
    ['a payload that is not an object', { authorization: `Bearer ${forge('alice' as unknown as Record<string, unknown>)}`, cookie: alice.fingerprint }, 'invalid_token'],
    ['no fingerprint cookie', { authorization: `Bearer ${alice.accessToken}` }, 'missing_fingerprint'],
    ['an empty fingerprint cookie', { authorization: `Bearer ${alice.accessToken}`, cookie: `${fingerprintName}=` }, 'malformed_fingerprint'],
    ['an oversized fingerprint cookie', { authorization: `Bearer ${alice.accessToken}`, cookie: `${fingerprintName}=${'a'.repeat(5000)}` }, 'malformed_fingerprint'],
    ['a non-ASCII fingerprint cookie', { authorization: `Bearer ${alice.accessToken}`, cookie: `${fingerprintName}=${encodeURIComponent('é'.repeat(43))}` }, 'malformed_fingerprint'],
    ['a duplicated fingerprint cookie', { authorization: `Bearer ${alice.accessToken}`, cookie: `${alice.fingerprint}; ${fingerprintName}=${fingerprintValue}` }, 'duplicate_fingerprint'],
    ['the fingerprint hash as the cookie', { authorization: `Bearer ${alice.accessToken}`, cookie: `${fingerprintName}=${decode(alice.accessToken).fph as string}` }, 'fingerprint_mismatch'],
    ["another user's fingerprint", { authorization: `Bearer ${alice.accessToken}`, cookie: bob.fingerprint }, 'fingerprint_mismatch'],
    ['the fingerprint under another cookie name', { authorization: `Bearer ${alice.accessToken}`, cookie: `__Secure-sg-fp=${fingerprintValue}` }, 'missing_fingerprint'],
    ['a session id that does not exist', { authorization: `Bearer ${forge({ ...decode(alice.accessToken), sid: 'AAAAAAAAAAAAAAAAAAAAAA' })}`, cookie: alice.fingerprint }, 'unknown_session'],
    ["another user's session id", { authorization: `Bearer ${forge({ ...decode(alice.accessToken), sid: bob.sessionId })}`, cookie: alice.fingerprint }, 'session_mismatch'],
    ['a session with another fingerprint', { authorization: `Bearer ${forge({ ...decode(bob.accessToken), fph: decode(alice.accessToken).fph })}`, cookie: alice.fingerprint }, 'session_mismatch'],
    ['a sub that is not a string', { authorization: `Bearer ${forge({ ...decode(alice.accessToken), sub: 7 })}`, cookie: alice.fingerprint }, 'invalid_claims'],
    ['an nbf in the future', { authorization: `Bearer ${forge({ ...decode(alice.accessToken), nbf: Math.floor(Date.parse('2100-01-01') / 1000) })}`, cookie: alice.fingerprint }, 'invalid_token']
  ]
  for (const [name, headers, reason] of cases) {
    const response = await app.inject({ method: 'GET', url: '/me', headers })
    t.equal(response.statusCode, 401, name)
    await settle()
    t.equal(reasons.pop(), reason, `${name}: refused as ${reason} in the event`)
    t.same(response.json(), { statusCode: 401, code: 'FST_SESSION_GUARD_UNAUTHORIZED', error: 'Unauthorized', message: 'Authentication required' }, `${name}: no detail leaks`)
    t.equal(response.headers['www-authenticate'], 'Bearer realm="session", error="invalid_token"', `${name}: challenge`)
  }
  t.equal((await me(alice)).statusCode, 200, 'none of that harmed the real session')
  t.equal((await me(bob)).statusCode, 200)
})

t.test('the precise reason goes to the log, without secrets', async (t) => {
  const lines: string[] = []
  const clock = new TestClock()
  const app = Fastify({ logger: { level: 'debug', stream: { write: (line: string) => lines.push(line) } } })
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, clock: clock.read })
  app.post('/login', async (_request, reply) => {
    const { accessToken } = await reply.issueSession({ userId: 'alice' })
    return { accessToken }
  })
  app.get('/me', { preHandler: app.requireSession }, async () => 'ok')
  const login = await app.inject({ method: 'POST', url: '/login' })
  const { accessToken } = login.json()
  const fingerprint = (login.cookies as Array<{ value: string }>)[0]?.value as string
  await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${accessToken}` } })
  const rejected = lines.map((line) => JSON.parse(line)).find((entry) => entry.type === 'auth.rejected')
  t.equal(rejected.reason, 'missing_fingerprint')
  t.equal(rejected.userId, 'alice')
  const sid = decode(accessToken).sid as string
  t.ok(rejected.sessionId.length > 0)
  const log = lines.join('\n')
  t.notOk(log.includes(sid), 'the session id is hashed in logs')
  t.notOk(log.includes(accessToken), 'no token in logs')
  t.notOk(log.includes(fingerprint), 'no fingerprint in logs')
})

t.test('a token in the query string is never accepted', async (t) => {
  const { app, login } = await build(t)
  const alice = await login('alice')
  for (const query of ['access_token', 'token', 'authorization']) {
    const response = await app.inject({ method: 'GET', url: `/me?${query}=${alice.accessToken}`, headers: { cookie: alice.fingerprint } })
    t.equal(response.statusCode, 401, query)
  }
})

t.test('the Bearer scheme is case-insensitive, with one or more spaces (RFC 6750), in a header of up to 8 KiB', async (t) => {
  const { login, me } = await build(t)
  const alice = await login('alice')
  t.equal((await me(alice, { authorization: `bearer ${alice.accessToken}` })).statusCode, 200)
  t.equal((await me(alice, { authorization: `Bearer   ${alice.accessToken}` })).statusCode, 200, 'several spaces before the token')
  // Trailing spaces are allowed too: they bring the header to the limit exactly, then one past it.
  const header = `Bearer ${alice.accessToken}`
  t.equal((await me(alice, { authorization: header.padEnd(8192) })).statusCode, 200, '8192 characters')
  t.equal((await me(alice, { authorization: header.padEnd(8193) })).statusCode, 401, '8193 characters')
})

t.test('an expired access token is refused; tolerance is configurable', async (t) => {
  const { clock, login, me } = await build(t, { accessTokenTtl: '5m', idleTimeout: '1h' })
  const alice = await login('alice')
  clock.advance(5 * MINUTE - 1)
  t.equal((await me(alice)).statusCode, 200, 'just before exp')
  clock.advance(1)
  t.equal((await me(alice)).statusCode, 401, 'at exp')

  const tolerant = await build(t, { accessTokenTtl: '5m', idleTimeout: '1h', clockTolerance: '30s' })
  const bob = await tolerant.login('bob')
  tolerant.clock.advance(5 * MINUTE + 29_999)
  t.equal((await tolerant.me(bob)).statusCode, 200, 'inside the tolerance')
  tolerant.clock.advance(1)
  t.equal((await tolerant.me(bob)).statusCode, 401, 'past the tolerance')
})

t.test('a token that is not yet valid (nbf) is refused', async (t) => {
  const { login, me } = await build(t)
  const alice = await login('alice')
  const early = { ...alice, accessToken: forge({ ...decode(alice.accessToken), nbf: (decode(alice.accessToken).iat as number) + 60 }) }
  t.equal((await me(early)).statusCode, 401)
  const ready = { ...alice, accessToken: forge({ ...decode(alice.accessToken), nbf: decode(alice.accessToken).iat }) }
  t.equal((await me(ready)).statusCode, 200)
})

t.test('revocation is immediate: an unexpired token of a revoked session is refused', async (t) => {
  const { app, login, me } = await build(t)
  const alice = await login('alice')
  t.equal((await me(alice)).statusCode, 200)
  t.equal(await app.sessions.revoke(alice.sessionId), true)
  t.equal((await me(alice)).statusCode, 401)
  t.equal(await app.sessions.revoke(alice.sessionId), false, 'revoking twice reports nothing was live')
})

t.test('logout revokes the session and clears the cookies', async (t) => {
  const { app, login, me } = await build(t)
  const alice = await login('alice')
  const logout = await app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.fingerprint } })
  t.equal(logout.statusCode, 204)
  const cleared = logout.headers['set-cookie'] as string[]
  t.ok(cleared.some((c) => c.startsWith('__Host-sg-fp=;') && /Expires=Thu, 01 Jan 1970/.test(c)), 'fingerprint cookie cleared')
  t.ok(cleared.some((c) => c.startsWith('__Secure-sg-rt=;') && /Path=\/refresh/.test(c)), 'refresh cookie cleared')
  t.equal((await me(alice)).statusCode, 401, 'the same token is refused after logout')
  t.equal(await app.sessions.get(alice.sessionId), undefined)
})

t.test('cookies are cleared with the attributes they were set with, and only the cookies in use', async (t) => {
  // A browser only replaces a cookie of the same name, path and domain, and
  // refuses a __Host- cookie without Path=/: a clear with any other attributes
  // leaves the cookie in place.
  const hardened = { httponly: true, secure: true, samesite: 'Strict' }
  const cleared = { ...hardened, 'max-age': '0', expires: 'Thu, 01 Jan 1970 00:00:00 GMT' }
  for (const transport of ['cookie', 'body'] as const) {
    const { app, login } = await build(t, { refresh: { transport } })
    const alice = await login('alice')
    const logout = await app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.fingerprint } })
    t.equal(logout.statusCode, 204)
    // A refresh refused because its session is already over clears nothing more:
    // cookies are cleared by the logout itself, or on theft (refresh-token reuse).
    const refused = await app.inject({ method: 'POST', url: '/refresh', headers: { cookie: alice.fingerprint, 'x-requested-with': 'fetch' }, payload: { refreshToken: alice.refreshToken } })
    t.equal(refused.statusCode, 401)
    t.same(setCookies(refused), [], `${transport} transport: a refused refresh of an ended session sets no cookie`)
    if (transport === 'cookie') {
      t.same(setCookies(alice.response).map((c) => [c.name, c.attributes]), [['__Host-sg-fp', { path: '/', ...hardened }], ['__Secure-sg-rt', { path: '/refresh', ...hardened }]], 'cookie transport: both set')
      t.same(setCookies(logout), [
        { name: '__Host-sg-fp', attributes: { path: '/', ...cleared } },
        { name: '__Secure-sg-rt', attributes: { path: '/refresh', ...cleared } }
      ], 'cookie transport, logout: both cleared on their own paths')
    } else {
      t.same(setCookies(alice.response).map((c) => [c.name, c.attributes]), [['__Host-sg-fp', { path: '/', ...hardened }]], 'body transport: no refresh cookie is set')
      t.same(setCookies(logout), [{ name: '__Host-sg-fp', attributes: { path: '/', ...cleared } }], 'body transport, logout: only the fingerprint cookie is cleared')
    }
  }
})

t.test('the idle window slides, written at most once per touchInterval', async (t) => {
  const { app, clock, login, me } = await build(t, { idleTimeout: '10m', touchInterval: '1m', accessTokenTtl: '1h' })
  const alice = await login('alice')
  const created = await app.sessions.get(alice.sessionId)
  clock.advance(30_000)
  t.equal((await me(alice)).statusCode, 200)
  t.same(await app.sessions.get(alice.sessionId), created, 'no write inside the touch interval')
  clock.advance(30_000)
  t.equal((await me(alice)).statusCode, 200)
  const touched = await app.sessions.get(alice.sessionId)
  t.equal(touched?.lastSeenAt, clock.now, 'activity recorded')
  t.equal(touched?.idleExpiresAt, clock.now + 10 * MINUTE, 'idle deadline extended')
  for (let i = 0; i < 5; i++) {
    clock.advance(9 * MINUTE)
    t.equal((await me(alice)).statusCode, 200, `still active after ${(i + 1) * 9} more minutes`)
  }
  clock.advance(10 * MINUTE)
  t.equal((await me(alice)).statusCode, 401, 'idle timeout')
})

t.test('the idle window never extends past the absolute deadline', async (t) => {
  const { app, clock, login, me } = await build(t, { idleTimeout: '10m', absoluteTimeout: '25m', accessTokenTtl: '1h' })
  const alice = await login('alice')
  clock.advance(9 * MINUTE)
  await me(alice)
  clock.advance(9 * MINUTE)
  t.equal((await me(alice)).statusCode, 200)
  t.equal((await app.sessions.get(alice.sessionId))?.idleExpiresAt, (await app.sessions.get(alice.sessionId))?.absoluteExpiresAt)
  clock.advance(7 * MINUTE)
  t.equal((await me(alice)).statusCode, 401, 'absolute timeout, however active')
})

t.test('a session revoked between read and touch stays revoked', async (t) => {
  const store = memoryStore()
  const get = store.get.bind(store)
  // Another request revokes the session right after the guard read it.
  store.get = async (id, now) => {
    const session = await get(id, now)
    await store.revoke(id, now)
    return session
  }
  const reasons: string[] = []
  const { clock, login, me } = await build(t, { store, touchInterval: '1s', onEvent: (event) => { if (event.type === 'auth.rejected') reasons.push(event.reason) } })
  const bob = await login('bob')
  clock.advance(1000)
  t.equal((await me(bob)).statusCode, 401)
  await settle()
  t.same(reasons, ['unknown_session'], 'refused as an unknown session')
})

t.test('a failing store answers 503 with a code, never a stack trace', async (t) => {
  const store = memoryStore()
  const { get, touch } = { get: store.get.bind(store), touch: store.touch.bind(store) }
  const { clock, login, me } = await build(t, { store, touchInterval: '1s' })
  const alice = await login('alice')
  const broken = async (): Promise<never> => { throw new Error('connection lost') }
  store.get = broken
  let response = await me(alice)
  t.equal(response.statusCode, 503)
  t.equal(response.json().code, 'FST_SESSION_GUARD_STORE_UNAVAILABLE')
  t.notOk(response.body.includes('connection lost'))

  store.get = get
  store.touch = broken
  clock.advance(1000)
  response = await me(alice)
  t.equal(response.statusCode, 503, 'a failing touch too')
  store.touch = touch
  t.equal((await me(alice)).statusCode, 200, 'service returns with the store')
})

t.test('the guard works as an onRequest hook', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET })
  app.get('/hook', { onRequest: app.requireSession }, async (request) => request.authSession?.userId)
  app.post('/login', async (_request, reply) => (await reply.issueSession({ userId: 'carol' })).accessToken)
  const login = await app.inject({ method: 'POST', url: '/login' })
  const cookie = `__Host-sg-fp=${(login.cookies as Array<{ name: string, value: string }>).find((c) => c.name === '__Host-sg-fp')?.value}`
  const response = await app.inject({ method: 'GET', url: '/hook', headers: { authorization: `Bearer ${login.body}`, cookie } })
  t.equal(response.body, 'carol')
  t.equal((await app.inject({ method: 'GET', url: '/hook' })).statusCode, 401)
})

t.test('global: true guards every route but public ones and 404s', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, global: true })
  app.post('/login', { config: { public: true } }, async (_request, reply) => (await reply.issueSession({ userId: 'dan' })).accessToken)
  app.get('/private', async (request) => request.authSession?.userId)
  app.get('/open', { config: { public: true } }, async () => 'open')
  const login = await app.inject({ method: 'POST', url: '/login' })
  t.equal(login.statusCode, 200, 'a public route needs no session')
  t.equal((await app.inject({ method: 'GET', url: '/open' })).body, 'open')
  t.equal((await app.inject({ method: 'GET', url: '/private' })).statusCode, 401)
  t.equal((await app.inject({ method: 'GET', url: '/nowhere' })).statusCode, 404)
  const cookie = `__Host-sg-fp=${(login.cookies as Array<{ name: string, value: string }>).find((c) => c.name === '__Host-sg-fp')?.value}`
  t.equal((await app.inject({ method: 'GET', url: '/private', headers: { authorization: `Bearer ${login.body}`, cookie } })).body, 'dan')
})

t.test('store failures on login answer 503; a full store answers its own 503', async (t) => {
  const store = memoryStore({ max: 1, onCapacity: 'reject' })
  const { app, login } = await build(t, { store })
  await login('alice')
  const full = await app.inject({ method: 'POST', url: '/login', payload: { userId: 'bob' } })
  t.equal(full.statusCode, 503)
  t.equal(full.json().code, 'FST_SESSION_GUARD_STORE_FULL')
  store.create = async () => { throw new Error('connection lost') }
  const down = await app.inject({ method: 'POST', url: '/login', payload: { userId: 'carol' } })
  t.equal(down.statusCode, 503)
  t.equal(down.json().code, 'FST_SESSION_GUARD_STORE_UNAVAILABLE')
})
