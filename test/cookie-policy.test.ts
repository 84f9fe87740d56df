import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import Fastify from 'fastify'
import t from 'tap'
import sessionGuard, { memoryStore, sessionLimitResponseSchema, type SessionGuardOptions } from '../lib/index.js'
import { build, registrationError, SECRET, setCookies, type Credentials, type Harness } from './helper.js'

/**
 * The `cookies` option (SameSite, Domain, Partitioned) and `refresh.cookiePath`
 * over HTTP: each written exactly as asked and cleared with the same
 * attributes, each unsafe combination refused at registration, and the CSRF
 * rule that comes with cookies that may arrive cross-site.
 */

const APP = 'https://app.example'
const CROSS_SITE: Partial<SessionGuardOptions> = { cookies: { sameSite: 'none', partitioned: true }, refresh: { allowedOrigins: [APP] } }
const CLEARED = { 'max-age': '0', expires: 'Thu, 01 Jan 1970 00:00:00 GMT' }

function namesAndAttributes (response: LightMyRequestResponse): Array<[string, Record<string, string | true>]> {
  return setCookies(response).map((cookie) => [cookie.name, cookie.attributes])
}

async function logout (h: Harness, who: Credentials, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return await h.app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${who.accessToken}`, cookie: who.fingerprint, ...headers } })
}

async function refresh (h: Harness, who: Credentials, headers: Record<string, string> = {}, name = '__Secure-sg-rt'): Promise<LightMyRequestResponse> {
  return await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie: `${name}=${who.refreshToken}; ${who.fingerprint}`, ...headers } })
}

t.test('each cookie option is written exactly as asked, and a clear carries the same attributes', async (t) => {
  const cases: Array<[string, Partial<SessionGuardOptions>, Record<string, string>, string, Record<string, string | true>, Record<string, string>]> = [
    ['the default', {}, {}, '__Host-sg-fp', { samesite: 'Strict' }, {}],
    ["sameSite: 'lax'", { cookies: { sameSite: 'lax' } }, { origin: 'http://localhost:80' }, '__Host-sg-fp', { samesite: 'Lax' }, {}],
    ["sameSite: 'none' and partitioned", CROSS_SITE, { origin: APP }, '__Host-sg-fp', { samesite: 'None', partitioned: true }, {}],
    ["sameSite: 'none' without partitioned", { ...CROSS_SITE, cookies: { sameSite: 'none' } }, { origin: APP }, '__Host-sg-fp', { samesite: 'None' }, {}],
    ['a domain: the fingerprint becomes __Secure-', { cookies: { domain: 'Example.COM' } }, {}, '__Secure-sg-fp', { domain: 'example.com', samesite: 'Strict' }, {}],
    ['a refresh cookie path for a proxy that strips /api', { refresh: { cookiePath: '/api/refresh' } }, {}, '__Host-sg-fp', { samesite: 'Strict' }, { refreshPath: '/api/refresh' }]
  ]
  for (const [name, options, headers, fingerprintName, attributes, paths] of cases) {
    const h = await build(t, options)
    const alice = await h.login('alice')
    const { domain, ...rest } = attributes
    // Domain sits between Path and HttpOnly on the line; parsed, order does not matter but every attribute does.
    const hardened = { ...(domain === undefined ? {} : { domain }), httponly: true as const, secure: true as const, ...rest }
    const refreshPath = paths.refreshPath ?? '/refresh'
    t.same(namesAndAttributes(alice.response), [
      [fingerprintName, { path: '/', ...hardened }],
      ['__Secure-sg-rt', { path: refreshPath, ...hardened }]
    ], `${name}: login`)
    const renewed = await refresh(h, alice, { 'x-requested-with': 'fetch', ...headers })
    t.equal(renewed.statusCode, 200, `${name}: refresh`)
    t.same(namesAndAttributes(renewed), [['__Secure-sg-rt', { path: refreshPath, ...hardened }]], `${name}: refresh writes the refresh cookie alone`)
    const out = await logout(h, alice, { 'x-requested-with': 'fetch', ...headers })
    t.equal(out.statusCode, 204, `${name}: logout`)
    t.same(namesAndAttributes(out), [
      [fingerprintName, { ...CLEARED, path: '/', ...hardened }],
      ['__Secure-sg-rt', { ...CLEARED, path: refreshPath, ...hardened }]
    ], `${name}: logout clears both with the attributes they were set with`)
  }
})

t.test('the lines themselves: attributes in a fixed order, nothing twice', async (t) => {
  const h = await build(t, { ...CROSS_SITE, cookies: { sameSite: 'none', partitioned: true, domain: 'example.com' } })
  const alice = await h.login('alice')
  const lines = alice.response.headers['set-cookie'] as string[]
  t.match(lines[0], /^__Secure-sg-fp=[A-Za-z0-9_-]{43}; Path=\/; Domain=example\.com; HttpOnly; Secure; SameSite=None; Partitioned$/)
  t.match(lines[1], /^__Secure-sg-rt=[A-Za-z0-9_.-]+; Path=\/refresh; Domain=example\.com; HttpOnly; Secure; SameSite=None; Partitioned$/)
})

t.test('the device cookie follows a cross-site policy (SameSite=None, Partitioned), and stays Lax otherwise', async (t) => {
  for (const [options, expected] of [[{}, { samesite: 'Lax' }], [{ cookies: { sameSite: 'lax' } }, { samesite: 'Lax' }], [CROSS_SITE, { samesite: 'None', partitioned: true }]] as const) {
    const h = await build(t, { ...options, rememberDevice: true })
    const alice = await h.login('alice', { rememberDevice: true })
    const device = setCookies(alice.response).find((cookie) => cookie.name === '__Host-sg-dev')
    t.same(device?.attributes, { 'max-age': String(90 * 24 * 3600), path: '/', httponly: true, secure: true, ...expected }, JSON.stringify(options))
  }
})

t.test('every unsafe combination is refused at registration, with a code and the reason', async (t) => {
  const base = { secret: SECRET }
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['None without Secure', { secureCookies: false, development: true, cookies: { sameSite: 'none' }, refresh: { allowedOrigins: [APP] } },
      'Invalid option "cookies.sameSite": \'none\' needs secure cookies: a browser drops a SameSite=None cookie without Secure'],
    ['a Domain with a __Host- fingerprint name', { fingerprintCookie: '__Host-fp', cookies: { domain: 'example.com' } },
      'Invalid option "fingerprintCookie": a __Host- cookie cannot carry a Domain (`cookies.domain`): use a __Secure- name'],
    ['a Domain with a __Host- refresh cookie name (any case)', { refresh: { cookie: '__host-rt' }, cookies: { domain: 'example.com' } },
      'Invalid option "refresh.cookie": a __Host- cookie cannot carry a Domain (`cookies.domain`): use a __Secure- name'],
    ['Partitioned without None', { cookies: { partitioned: true } },
      'Invalid option "cookies.partitioned": needs `sameSite: \'none\'`: a partitioned cookie is only ever sent cross-site, which only SameSite=None allows'],
    ['Partitioned with Lax', { cookies: { sameSite: 'lax', partitioned: true } },
      'Invalid option "cookies.partitioned": needs `sameSite: \'none\'`: a partitioned cookie is only ever sent cross-site, which only SameSite=None allows'],
    ['None without an Origin allow-list', { cookies: { sameSite: 'none' } },
      'Invalid option "refresh.allowedOrigins": must list the app\'s origins with `cookies.sameSite: \'none\'`: every site\'s requests carry the cookies'],
    ['an unknown SameSite', { cookies: { sameSite: 'Strict' } }, 'Invalid option "cookies.sameSite": must be \'strict\', \'lax\' or \'none\', got "Strict"'],
    ['a SameSite that is an inherited name', { cookies: { sameSite: 'toString' } }, 'Invalid option "cookies.sameSite": must be \'strict\', \'lax\' or \'none\', got "toString"'],
    ['partitioned not a boolean', { cookies: { sameSite: 'none', partitioned: 'yes' }, refresh: { allowedOrigins: [APP] } }, 'Invalid option "cookies.partitioned": must be a boolean'],
    ['a domain with a leading dot', { cookies: { domain: '.example.com' } }, 'Invalid option "cookies.domain": must be a host name such as "example.com" (no scheme, port, path or leading dot)'],
    ['a domain with a port', { cookies: { domain: 'example.com:443' } }, 'Invalid option "cookies.domain": must be a host name such as "example.com" (no scheme, port, path or leading dot)'],
    ['a domain that would inject an attribute', { cookies: { domain: 'example.com; SameSite=None' } }, 'Invalid option "cookies.domain": must be a host name such as "example.com" (no scheme, port, path or leading dot)'],
    ['a domain that is not a string', { cookies: { domain: 42 } }, 'Invalid option "cookies.domain": must be a host name such as "example.com" (no scheme, port, path or leading dot)'],
    ['an unknown cookies option', { cookies: { secure: false } }, 'Invalid option "cookies.secure": is not an option of fastify-session-guard'],
    ['cookies not an object', { cookies: 'strict' }, 'Invalid option "cookies": must be an object'],
    ['a refresh cookie path with a ";"', { refresh: { cookiePath: '/api;Domain=evil.example' } }, 'Invalid option "refresh.cookiePath": must be a cookie path: no ";" or control characters'],
    // Every name the plugin refuses, spelt out here (not read from the plugin), with any case, and any sec-* or proxy-*.
    ...['accept', 'Accept', 'accept-language', 'content-language', 'content-type', 'CONTENT-TYPE', 'range',
      'accept-charset', 'accept-encoding', 'access-control-request-headers', 'access-control-request-method', 'connection',
      'content-length', 'cookie', 'cookie2', 'date', 'dnt', 'expect', 'host', 'keep-alive', 'origin', 'referer', 'set-cookie',
      'te', 'trailer', 'transfer-encoding', 'upgrade', 'via',
      'user-agent', 'authorization', 'cache-control', 'pragma', 'priority', 'upgrade-insecure-requests',
      'sec-fetch-site', 'Sec-CH-UA', 'sec-x-csrf', 'proxy-authorization', 'Proxy-X-Csrf'].map((header): [string, Record<string, unknown>, string] => [
      `a CSRF header a page need not ask CORS for, or a browser sends itself: ${header}`, { refresh: { csrfHeader: header } },
      `Invalid option "refresh.csrfHeader": "${header.toLowerCase()}" proves nothing: a browser sends it by itself or lets any page send it without a CORS preflight; use a header of the app's own, such as "x-requested-with"`]),
    ['a refresh cookie path that does not reach the route', { refresh: { path: '/auth/refresh', cookiePath: '/other' } },
      'Invalid option "refresh.cookiePath": must reach the refresh route "/auth/refresh" (its path, a parent of it, or the path a proxy serves it at, ending with it): a browser would never send the cookie to "/other"'],
    ['a refresh cookie path that is a child of the route', { refresh: { cookiePath: '/refresh/' } },
      'Invalid option "refresh.cookiePath": must reach the refresh route "/refresh" (its path, a parent of it, or the path a proxy serves it at, ending with it): a browser would never send the cookie to "/refresh/"'],
    ['a refresh cookie path of "/" with a Domain', { refresh: { cookiePath: '/' }, cookies: { domain: 'example.com' } },
      'Invalid option "refresh.cookiePath": "/" with `cookies.domain` would send the refresh token with every request to every host under the domain: keep it to the refresh route'],
    ['a refresh route at "/" with a Domain', { refresh: { path: '/' }, cookies: { domain: 'example.com' } },
      'Invalid option "refresh.path": "/" with `cookies.domain` would send the refresh token with every request to every host under the domain: keep it to the refresh route'],
    ['the refresh cookie named as the fingerprint cookie', { fingerprintCookie: '__Secure-sg', refresh: { cookie: '__Secure-sg' } },
      'Invalid option "refresh.cookie": "__Secure-sg" is already the fingerprint cookie\'s name: each cookie needs its own, or one overwrites the other'],
    ['the access token cookie named as the fingerprint cookie', { accessToken: { transport: 'cookie', cookie: '__Host-sg-fp' } },
      'Invalid option "accessToken.cookie": "__Host-sg-fp" is already the fingerprint cookie\'s name: each cookie needs its own, or one overwrites the other'],
    ['the access token cookie named as the refresh cookie', { accessToken: { transport: 'both', cookie: '__Secure-sg-rt' } },
      'Invalid option "accessToken.cookie": "__Secure-sg-rt" is already the refresh cookie\'s name: each cookie needs its own, or one overwrites the other'],
    ['an http origin under None', { cookies: { sameSite: 'none' }, refresh: { allowedOrigins: [APP, 'http://app.example'] } },
      'Invalid option "refresh.allowedOrigins[1]": must be https with `cookies.sameSite: \'none\'`: anyone on the network can run script in an http page, and the cookies go with its requests (only http://localhost, 127.0.0.1 and [::1] may be http), got "http://app.example"'],
    ['a single-label domain', { cookies: { domain: 'com' } },
      'Invalid option "cookies.domain": must have at least two labels ("example.com"): a cookie for "com" would go to every site under it, or be dropped by the browser'],
    ['a single-label domain (localhost)', { cookies: { domain: 'localhost' } },
      'Invalid option "cookies.domain": must have at least two labels ("example.com"): a cookie for "localhost" would go to every site under it, or be dropped by the browser']
  ]
  for (const [name, options, message] of cases) {
    t.match(await registrationError({ ...base, ...options }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message }, name)
    t.equal((await registrationError({ ...base, ...options }))?.message, message, `${name}: the whole message`)
  }
  t.equal(await registrationError({ ...base, fingerprintCookie: '__Secure-fp', cookies: { domain: 'example.com', sameSite: 'none', partitioned: true }, refresh: { allowedOrigins: [APP] } }), undefined, 'a __Secure- name with a Domain, None and Partitioned starts')
  t.equal(await registrationError({ ...base, cookies: { sameSite: 'lax' }, secureCookies: false, development: true }), undefined, 'Lax needs no Secure')
  for (const [name, options] of [
    ['a CSRF header of the app\'s own', { refresh: { csrfHeader: 'X-CSRF' } }],
    ['a CSRF header that only contains "sec-" and "proxy-"', { refresh: { csrfHeader: 'x-sec-proxy-csrf' } }],
    ['a CSRF header that ends with "sec-"', { refresh: { csrfHeader: 'x-sec-' } }],
    ['a refresh cookie path a proxy serves the route at', { refresh: { cookiePath: '/api/refresh' } }],
    ['a refresh cookie path that is a parent of the route', { refresh: { path: '/auth/refresh', cookiePath: '/auth' } }],
    ['a refresh cookie path of "/" without a Domain', { refresh: { cookiePath: '/' } }],
    ['a refresh cookie path of its route with a Domain', { refresh: { cookiePath: '/api/refresh' }, cookies: { domain: 'example.com' } }],
    ['three distinct cookie names', { fingerprintCookie: '__Host-a', refresh: { cookie: '__Secure-b' }, accessToken: { transport: 'cookie', cookie: '__Host-c' } }],
    ['an access token cookie named as an unused refresh cookie', { refresh: { transport: 'body' }, accessToken: { transport: 'cookie', cookie: '__Secure-sg-rt' } }],
    ['loopback http origins under None', { cookies: { sameSite: 'none' }, refresh: { allowedOrigins: [APP, 'http://localhost:3000', 'http://127.0.0.1:8080', 'http://[::1]:5173'] } }],
    ['an http origin under Lax', { cookies: { sameSite: 'lax' }, refresh: { allowedOrigins: ['http://app.example'] } }],
    ['a two-label domain', { cookies: { domain: 'example.com' } }]
  ] as const) {
    t.equal(await registrationError({ ...base, ...options } as Partial<SessionGuardOptions>), undefined, `the control: ${name} starts`)
  }
})

/** The plugin's and the app's cookie-authenticated unsafe requests, each built for a fresh harness. */
type Attempt = (h: Harness, headers: Record<string, string>) => Promise<{ response: LightMyRequestResponse, accepted: number }>

const sessionOptions = { routes: { prefix: '/sessions' }, maxSessionsPerUser: 2, onSessionLimit: 'reject' as const }

/** A login route that declares the 409 schema, so a refusal carries its ticket. */
function limitedLogin (app: FastifyInstance): void {
  app.post<{ Body: { userId: string } }>('/login-limited', { schema: { response: { 409: sessionLimitResponseSchema } } }, async (request, reply) => {
    const { accessToken, session } = await reply.issueSession(request.body)
    return { accessToken, sessionId: session.id }
  })
}

function bearer (who: Credentials, headers: Record<string, string>): Record<string, string> {
  return { authorization: `Bearer ${who.accessToken}`, cookie: who.fingerprint, ...headers }
}

const attempts: Array<[string, Attempt]> = [
  ['POST /refresh', async (h, headers) => {
    const alice = await h.login('alice')
    return { response: await refresh(h, alice, headers), accepted: 200 }
  }],
  ["POST /logout (an app's guarded route)", async (h, headers) => {
    const alice = await h.login('alice')
    return { response: await logout(h, alice, headers), accepted: 204 }
  }],
  ['DELETE /sessions/:id', async (h, headers) => {
    const alice = await h.login('alice')
    const phone = await h.login('alice')
    return { response: await h.app.inject({ method: 'DELETE', url: `/sessions/${phone.sessionId}`, headers: bearer(alice, headers) }), accepted: 204 }
  }],
  ['POST /sessions/revoke-others', async (h, headers) => {
    const alice = await h.login('alice')
    return { response: await h.app.inject({ method: 'POST', url: '/sessions/revoke-others', headers: bearer(alice, headers) }), accepted: 200 }
  }],
  ['POST /sessions/revoke-all', async (h, headers) => {
    const alice = await h.login('alice')
    return { response: await h.app.inject({ method: 'POST', url: '/sessions/revoke-all', headers: bearer(alice, headers) }), accepted: 200 }
  }],
  ['POST /sessions/alerts/:id', async (h, headers) => {
    const alice = await h.login('alice')
    const phone = await h.login('alice')
    // "No" about a session with no alert answers 404 past the guard: the CSRF check comes first.
    return { response: await h.app.inject({ method: 'POST', url: `/sessions/alerts/${phone.sessionId}`, headers: bearer(alice, headers), payload: { answer: 'no' } }), accepted: 404 }
  }],
  ['POST /sessions/resolve-limit', async (h, headers) => {
    const first = await h.login('alice')
    await h.login('alice')
    const refused = await h.app.inject({ method: 'POST', url: '/login-limited', payload: { userId: 'alice' } })
    const [cookie] = refused.cookies as Array<{ name: string, value: string }>
    const fingerprint = `${String(cookie?.name)}=${String(cookie?.value)}`
    const response = await h.app.inject({ method: 'POST', url: '/sessions/resolve-limit', headers: { cookie: fingerprint, ...headers }, payload: { ticket: refused.json().ticket, revoke: first.sessionId } })
    return { response, accepted: 200 }
  }]
]

for (const [policy, options, own] of [
  ["sameSite: 'lax'", { cookies: { sameSite: 'lax' } }, 'http://localhost:80'],
  ["sameSite: 'none'", CROSS_SITE, APP]
] as const) {
  t.test(`${policy}: every cookie-authenticated unsafe request needs the CSRF header and an allowed Origin`, async (t) => {
    for (const [route, attempt] of attempts) {
      const cases: Array<[string, Record<string, string>]> = [
        ['a foreign Origin', { 'x-requested-with': 'fetch', origin: 'https://evil.example' }],
        ['no Origin', { 'x-requested-with': 'fetch' }],
        ['no CSRF header', { origin: own }],
        ['the literal Origin "null"', { 'x-requested-with': 'fetch', origin: 'null' }]
      ]
      for (const [name, headers] of cases) {
        const h = await build(t, { ...options, ...sessionOptions }, limitedLogin)
        const { response } = await attempt(h, headers)
        t.equal(response.statusCode, 403, `${route}, ${name}`)
        t.equal(response.json().code, 'FST_SESSION_GUARD_CSRF', `${route}, ${name}`)
        t.same(setCookies(response), [], `${route}, ${name}: no cookie written or cleared`)
      }
      const h = await build(t, { ...options, ...sessionOptions }, limitedLogin)
      const { response, accepted } = await attempt(h, { 'x-requested-with': 'fetch', origin: own })
      t.equal(response.statusCode, accepted, `${route}: accepted with both`)
    }
  })
}

t.test("sameSite: 'none': only the listed origins, not the request's own", async (t) => {
  const h = await build(t, CROSS_SITE)
  const alice = await h.login('alice')
  const response = await logout(h, alice, { 'x-requested-with': 'fetch', origin: 'http://localhost:80' })
  t.equal(response.statusCode, 403)
})

t.test('under a cross-site policy, safe methods and requests without a session cookie are not held up', async (t) => {
  const h = await build(t, { ...CROSS_SITE, ...sessionOptions })
  const alice = await h.login('alice')
  t.equal((await h.me(alice)).statusCode, 200, 'GET needs neither header nor Origin')
  t.equal((await h.app.inject({ method: 'HEAD', url: '/me', headers: bearer(alice, {}) })).statusCode, 200, 'nor HEAD')
  t.equal((await h.app.inject({ method: 'GET', url: '/sessions', headers: bearer(alice, {}) })).statusCode, 200)
  const body = await build(t, { ...CROSS_SITE, refresh: { ...CROSS_SITE.refresh, transport: 'body' } })
  const bob = await body.login('bob')
  const renewed = await body.app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: bob.refreshToken }, headers: { cookie: bob.fingerprint } })
  t.equal(renewed.statusCode, 200, 'a refresh token in the body is no cookie credential: no CSRF check')
})

t.test('the default (Strict) keeps its rules: the guard asks for no CSRF header, the refresh passes without Origin', async (t) => {
  const h = await build(t, sessionOptions)
  const alice = await h.login('alice')
  t.equal((await h.app.inject({ method: 'POST', url: '/sessions/revoke-others', headers: bearer(alice, {}) })).statusCode, 200)
  t.equal((await refresh(h, alice, { 'x-requested-with': 'fetch' })).statusCode, 200)
  t.equal((await logout(h, alice)).statusCode, 204)
})

t.test('a failed refresh never clears the fingerprint cookie of a live session', async (t) => {
  const store = memoryStore()
  let failing = false
  const rotate = store.rotate.bind(store)
  store.rotate = async (...args) => {
    if (failing) throw new Error('store down')
    return await rotate(...args)
  }
  const h = await build(t, { ...CROSS_SITE, store, refresh: { ...CROSS_SITE.refresh, graceWindow: '10s' } })
  const alice = await h.login('alice')
  const bob = await h.login('bob')
  const ok = { 'x-requested-with': 'fetch', origin: APP }
  const renewed = await refresh(h, alice, ok)
  t.equal(renewed.statusCode, 200)
  const cases: Array<[string, () => Promise<LightMyRequestResponse>, number]> = [
    ['CSRF: a foreign Origin', async () => await refresh(h, alice, { ...ok, origin: 'https://evil.example' }), 403],
    ['CSRF: no header', async () => await refresh(h, alice, { origin: APP }), 403],
    ['no refresh cookie (a proxy path the cookie misses)', async () => await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie: alice.fingerprint, ...ok } }), 401],
    ['a forged refresh token', async () => await refresh(h, { ...alice, refreshToken: 'forged' }, ok), 401],
    ["another user's refresh token", async () => await refresh(h, { ...alice, refreshToken: bob.refreshToken }, ok), 401],
    ['a parallel refresh inside the grace window', async () => await refresh(h, alice, ok), 409],
    ['the store failing', async () => {
      failing = true
      try {
        const next = (renewed.cookies as Array<{ name: string, value: string }>).find((c) => c.name === '__Secure-sg-rt')!.value
        return await refresh(h, { ...alice, refreshToken: next }, ok)
      } finally {
        failing = false
      }
    }, 503]
  ]
  for (const [name, attempt, status] of cases) {
    const response = await attempt()
    t.equal(response.statusCode, status, name)
    t.same(setCookies(response), [], `${name}: no cookie cleared`)
  }
  t.equal((await h.me({ ...alice, accessToken: renewed.json().accessToken })).statusCode, 200, 'the session still works')
})

t.test('behind a TLS-terminating proxy: the own origin is the forwarded one only with trustProxy', async (t) => {
  for (const trustProxy of [false, true]) {
    const app = Fastify({ trustProxy })
    t.teardown(() => app.close())
    await app.register(sessionGuard, { secret: SECRET, cookies: { sameSite: 'lax' }, refresh: { cookiePath: '/api/refresh' } })
    app.post('/login', async (request, reply) => ({ accessToken: (await reply.issueSession({ userId: 'alice' })).accessToken }))
    app.post('/refresh', async (request, reply) => ({ accessToken: (await reply.refreshSession()).accessToken }))
    const login = await app.inject({ method: 'POST', url: '/login' })
    const cookie = (login.cookies as Array<{ name: string, value: string }>).map((c) => `${c.name}=${c.value}`).join('; ')
    // What the proxy forwards of https://api.example/api/refresh, the /api prefix stripped.
    const response = await app.inject({
      method: 'POST',
      url: '/refresh',
      headers: { cookie, 'x-requested-with': 'fetch', origin: 'https://api.example', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.example' }
    })
    t.equal(response.statusCode, trustProxy ? 200 : 403, `trustProxy: ${String(trustProxy)}`)
  }
})
