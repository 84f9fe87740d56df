import t from 'tap'
import type { Test } from 'tap'
import type { SessionGuardOptions } from '../lib/index.js'
import { build, MINUTE, parseSetCookie, registrationError, type Harness } from './helper.js'

/**
 * Server-side rendering (`accessToken.transport` `'both'` or `'cookie'`) over
 * real HTTP: a server that forwards the browser's `Cookie` header, and nothing
 * else, calls the API for the user; a refresh through it returns `Set-Cookie`
 * lines it passes back; an unsafe request authenticated by the cookie needs the
 * CSRF header and an allowed Origin, whatever `SameSite` says.
 */

const ACCESS = '__Host-sg-at'
const CLEARED = { 'max-age': '0', expires: 'Thu, 01 Jan 1970 00:00:00 GMT' }

/** A browser's cookie jar, as far as a forwarding server sees it: name to value. */
class Jar {
  readonly #cookies = new Map<string, string>()

  /** Applies a response's `Set-Cookie` lines, as a browser (or a server passing them back) would. */
  apply (response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const { name, attributes } = parseSetCookie(line)
      if (attributes['max-age'] === '0') this.#cookies.delete(name)
      else this.#cookies.set(name, line.slice(name.length + 1, line.indexOf(';')))
    }
  }

  get (name: string): string | undefined {
    return this.#cookies.get(name)
  }

  set (name: string, value: string): void {
    this.#cookies.set(name, value)
  }

  delete (name: string): void {
    this.#cookies.delete(name)
  }

  /** The `Cookie` header the browser sends, which the rendering server forwards. */
  get header (): string {
    return [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ')
  }
}

interface Api extends Harness {
  origin: string
  /** A request as a rendering server makes it: the browser's `Cookie` header forwarded, and only the headers given. */
  call: (method: string, path: string, jar: Jar, headers?: Record<string, string>) => Promise<Response>
  /** Signs in through the API and returns the browser's jar. */
  signIn: (userId: string) => Promise<{ jar: Jar, response: Response }>
}

async function api (t: Test, options: Partial<SessionGuardOptions> = { accessToken: { transport: 'both' } }): Promise<Api> {
  const h = await build(t, { routes: { prefix: '/sessions' }, ...options })
  await h.app.listen({ host: '127.0.0.1', port: 0 })
  const address = h.app.server.address() as { port: number }
  const origin = `http://127.0.0.1:${address.port}`
  async function call (method: string, path: string, jar: Jar, headers: Record<string, string> = {}): Promise<Response> {
    const response = await fetch(`${origin}${path}`, { method, headers: { cookie: jar.header, ...headers } })
    return response
  }
  async function signIn (userId: string): Promise<{ jar: Jar, response: Response }> {
    const response = await fetch(`${origin}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId }) })
    t.equal(response.status, 200)
    const jar = new Jar()
    jar.apply(response)
    return { jar, response }
  }
  return { ...h, origin, call, signIn }
}

t.test('the access token cookie is written at sign-in as the other cookies are, for the lifetime of the token', async (t) => {
  const a = await api(t)
  const { response } = await signIn(a, 'alice')
  const lines = response.headers.getSetCookie().map(parseSetCookie)
  const access = lines.find((line) => line.name === ACCESS)
  t.strictSame(access?.attributes, { 'max-age': '900', path: '/', httponly: true, secure: true, samesite: 'Strict' })

  const lax = await api(t, { accessToken: { transport: 'both' }, cookies: { sameSite: 'lax', domain: 'example.com' }, accessTokenTtl: '5m' })
  const laxLines = (await signIn(lax, 'alice')).response.headers.getSetCookie().map(parseSetCookie)
  t.strictSame(laxLines.find((line) => line.name === '__Secure-sg-at')?.attributes,
    { 'max-age': '300', path: '/', domain: 'example.com', httponly: true, secure: true, samesite: 'Lax' }, 'a Domain makes it __Secure-; SameSite follows the policy')

  const late = await api(t)
  late.clock.advance(500)
  const lateLines = (await signIn(late, 'alice')).response.headers.getSetCookie().map(parseSetCookie)
  t.equal(lateLines.find((line) => line.name === ACCESS)?.attributes['max-age'], '899',
    'signed at x.5 s, the token\'s exp is 899.5 s away: the cookie ends before it, never after')

  const header = await api(t, {})
  const headerLines = (await signIn(header, 'alice')).response.headers.getSetCookie().map(parseSetCookie)
  t.notOk(headerLines.some((line) => /sg-at$/.test(line.name)), 'off by default: no access token cookie')
})

async function signIn (a: Api, userId: string): Promise<{ jar: Jar, response: Response }> {
  return await a.signIn(userId)
}

t.test('a server forwarding only the Cookie header gets the signed-in user\'s data', async (t) => {
  const a = await api(t)
  const { jar } = await signIn(a, 'alice')
  const page = await a.call('GET', '/sessions', jar)
  t.equal(page.status, 200)
  const { sessions } = await page.json() as { sessions: Array<{ isCurrent: boolean }> }
  t.equal(sessions.length, 1)
  t.equal(sessions[0]?.isCurrent, true)
  const me = await (await a.call('GET', '/me', jar)).json() as { user: { sub: string } }
  t.equal(me.user.sub, 'alice')

  const header = await api(t, {})
  const signedIn = await signIn(header, 'alice')
  t.equal((await header.call('GET', '/me', signedIn.jar)).status, 401, "with transport 'header', cookies alone do not authenticate")
})

t.test('the fingerprint binding still applies to a cookie-carried token', async (t) => {
  const a = await api(t)
  const { jar } = await signIn(a, 'alice')
  jar.delete('__Host-sg-fp')
  t.equal((await a.call('GET', '/me', jar)).status, 401, 'the access token cookie without the fingerprint cookie')
  const bob = await signIn(a, 'bob')
  jar.set('__Host-sg-fp', bob.jar.get('__Host-sg-fp') as string)
  t.equal((await a.call('GET', '/me', jar)).status, 401, "another session's fingerprint")
})

t.test('a refresh through the forwarded cookie returns Set-Cookie lines that, passed back, keep the user signed in', async (t) => {
  const a = await api(t)
  const { jar } = await signIn(a, 'alice')
  const before = jar.get(ACCESS)
  a.clock.advance(16 * MINUTE)
  t.equal((await a.call('GET', '/me', jar)).status, 401, 'the access token in the cookie has expired')
  const refreshed = await a.call('POST', '/refresh', jar, { 'x-requested-with': 'fetch' })
  t.equal(refreshed.status, 200)
  const names = refreshed.headers.getSetCookie().map((line) => parseSetCookie(line).name)
  t.strictSame(names.sort(), ['__Host-sg-at', '__Secure-sg-rt'])
  jar.apply(refreshed)
  t.not(jar.get(ACCESS), before, 'a new access token')
  t.equal((await a.call('GET', '/me', jar)).status, 200)
})

t.test('an unsafe request authenticated by the cookie needs the CSRF header and an allowed Origin, even under SameSite=Strict', async (t) => {
  const a = await api(t)
  const { jar } = await signIn(a, 'alice')
  const missing = await a.call('POST', '/sessions/revoke-others', jar)
  t.equal(missing.status, 403)
  t.equal((await missing.json() as { code: string }).code, 'FST_SESSION_GUARD_CSRF')
  const foreign = await a.call('POST', '/sessions/revoke-others', jar, { 'x-requested-with': 'fetch', origin: 'https://sibling.example' })
  t.equal(foreign.status, 403, 'a foreign Origin')
  t.equal((await a.call('POST', '/sessions/revoke-others', jar, { 'x-requested-with': 'fetch', origin: a.origin })).status, 200, 'the own origin')
  t.equal((await a.call('POST', '/sessions/revoke-others', jar, { 'x-requested-with': 'fetch' })).status, 200,
    'a server-side caller sends no Origin: SameSite=Strict cookies came from the same site')

  // The header-carried token is no CSRF vector: a forged request cannot set it.
  const bearer = await (await a.call('GET', '/me', jar)).json() as { session: { id: string } }
  t.ok(bearer.session.id)
  const login = await fetch(`${a.origin}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId: 'bob' }) })
  const { accessToken } = await login.json() as { accessToken: string }
  const bobJar = new Jar()
  bobJar.apply(login)
  bobJar.delete(ACCESS)
  t.equal((await a.call('POST', '/sessions/revoke-others', bobJar, { authorization: `Bearer ${accessToken}` })).status, 200,
    'a Bearer token on an unsafe method needs no CSRF header under SameSite=Strict')
  t.equal((await a.call('GET', '/sessions', jar)).status, 200, 'a safe method needs no CSRF header')
  t.equal((await a.call('GET', '/sessions', jar, { origin: a.origin })).status, 200, 'nor does it from the own origin')
  const read = await a.call('GET', '/sessions', jar, { origin: 'https://sibling.example' })
  t.equal(read.status, 403, 'but another site\'s fetch or EventSource riding on the cookie is refused')
  t.equal((await read.json() as { code: string }).code, 'FST_SESSION_GUARD_CSRF')
})

t.test('under SameSite=Lax the cookie-carried token needs an Origin as well', async (t) => {
  const a = await api(t, { accessToken: { transport: 'both' }, cookies: { sameSite: 'lax' } })
  const { jar } = await signIn(a, 'alice')
  t.equal((await a.call('POST', '/sessions/revoke-others', jar, { 'x-requested-with': 'fetch' })).status, 403)
  t.equal((await a.call('POST', '/sessions/revoke-others', jar, { 'x-requested-with': 'fetch', origin: a.origin })).status, 200)
})

t.test("a revoked session's cookie is refused, and logout clears it", async (t) => {
  const a = await api(t)
  const alice = await signIn(a, 'alice')
  await a.app.sessions.revokeAll('alice')
  t.equal((await a.call('GET', '/me', alice.jar)).status, 401, 'revoked elsewhere')

  const bob = await signIn(a, 'bob')
  const logout = await a.call('POST', '/logout', bob.jar, { 'x-requested-with': 'fetch' })
  t.equal(logout.status, 204)
  const cleared = logout.headers.getSetCookie().map(parseSetCookie).find((line) => line.name === ACCESS)
  t.strictSame(cleared?.attributes, { ...CLEARED, path: '/', httponly: true, secure: true, samesite: 'Strict' })
  const old = bob.jar.get(ACCESS) as string
  bob.jar.apply(logout)
  t.equal(bob.jar.get(ACCESS), undefined)
  bob.jar.set(ACCESS, old)
  t.equal((await a.call('GET', '/me', bob.jar)).status, 401, 'the token kept from before the logout is refused')
})

t.test("transport 'cookie': the Authorization header is not looked at", async (t) => {
  const a = await api(t, { accessToken: { transport: 'cookie', cookie: 'at' } })
  const { jar, response } = await signIn(a, 'alice')
  const { accessToken } = await response.json() as { accessToken: string }
  t.equal(jar.get('at'), accessToken, 'the cookie of the name asked for')
  t.equal((await a.call('GET', '/me', jar)).status, 200)
  jar.delete('at')
  t.equal((await a.call('GET', '/me', jar, { authorization: `Bearer ${accessToken}` })).status, 401)
})

t.test("transport 'both': the header comes first, and a bad header is not passed over for the cookie", async (t) => {
  const a = await api(t)
  const alice = await signIn(a, 'alice')
  const bob = await signIn(a, 'bob')
  const bobToken = bob.jar.get(ACCESS) as string
  const me = await (await a.call('GET', '/me', alice.jar, { authorization: `Bearer ${bobToken}` })).status
  t.equal(me, 401, "the header's token is the one checked (bob's, against alice's fingerprint)")
  t.equal((await a.call('GET', '/me', alice.jar, { authorization: 'Basic YWxpY2U6c2VjcmV0' })).status, 401)
})

t.test('a malformed or doubled access token cookie is refused', async (t) => {
  const a = await api(t)
  const { jar } = await signIn(a, 'alice')
  const token = jar.get(ACCESS) as string
  const reasons: string[] = []
  a.app.sessions.events.on('event', (event) => { if (event.type === 'auth.rejected') reasons.push(String(event.reason)) })
  const fingerprint = `__Host-sg-fp=${jar.get('__Host-sg-fp') as string}`
  for (const cookie of [`${ACCESS}=${token}; __host-sg-at=${token}; ${fingerprint}`, `${ACCESS}=not-a-token; ${fingerprint}`, `${ACCESS}=${token}.${'a'.repeat(8200)}; ${fingerprint}`]) {
    const response = await fetch(`${a.origin}/me`, { headers: { cookie } })
    t.equal(response.status, 401)
  }
  t.equal((await fetch(`${a.origin}/me`, { headers: { cookie: fingerprint } })).status, 401)
  await new Promise((resolve) => setImmediate(resolve))
  t.strictSame(reasons, ['duplicate_token', 'malformed_token', 'malformed_token', 'missing_token'])
})

t.test('the accessToken option is checked at registration', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ transport: 'query' }, /"accessToken.transport": must be 'header', 'cookie' or 'both', got "query"/],
    [{ cookie: 'at' }, /"accessToken.cookie": needs `transport: 'cookie'` or `'both'`/],
    [{ transport: 'both', cookie: 'a b' }, /"accessToken.cookie": must be a valid cookie name/],
    [{ transport: 'both', other: 1 }, /"accessToken.other": is not an option/],
    ['cookie', /"accessToken": must be an object/]
  ]
  for (const [accessToken, message] of cases) {
    const err = await registrationError({ secret: 'a-test-secret-that-is-long-enough-0123456789', accessToken })
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION')
    t.match(err?.message, message)
  }
  const domain = await registrationError({ secret: 'a-test-secret-that-is-long-enough-0123456789', accessToken: { transport: 'both', cookie: '__Host-at' }, cookies: { domain: 'example.com' } })
  t.match(domain?.message, /"accessToken.cookie": a __Host- cookie cannot carry a Domain/)

  const dev = await api(t, { accessToken: { transport: 'both' }, secureCookies: false, development: true })
  const { jar } = await signIn(dev, 'alice')
  t.ok(jar.get('sg-at'), 'without secure cookies, no prefix')
  t.equal((await dev.call('GET', '/me', jar)).status, 200)
})
