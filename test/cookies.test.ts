import type { FastifyReply, FastifyRequest } from 'fastify'
import t from 'tap'
import { cookieValues, parseCookieOptions, SessionCookies } from '../lib/http/cookies.js'
import type { SessionRecord } from '../lib/session.js'
import { registrationError } from './helper.js'

/**
 * The cookie code on its own: the option rules, the attributes of every
 * cookie written and cleared, and the reader of same-named cookies. The HTTP
 * suites reach these only with the default names and one cookie of each kind
 * (found by mutation testing).
 */

const REFRESH = { name: undefined, path: '/auth/refresh', inCookie: true }

t.test('cookieValues: every same-named cookie in order, trimmed, at most the limit', async (t) => {
  t.same(cookieValues(undefined, 'a', { limit: 8 }), [], 'no Cookie header')
  t.same(cookieValues('', 'a', { limit: 8 }), [])
  t.same(cookieValues('a=1; b=2;a = 3 ;\ta=\t4', 'a', { limit: 8 }), ['1', '3', '4'], 'names and values trimmed')
  t.same(cookieValues('a=1; a=2; a=3', 'a', { limit: 2 }), ['1', '2'], 'the limit')
  t.same(cookieValues('a=9', 'a', { limit: 2 }), ['9'], 'a new header is read from its start after a call stopped at the limit')
  t.same(cookieValues('A=1; a=2', 'a', { limit: 8 }), ['2'], 'names compared exactly')
  t.same(cookieValues('A=1; a=2', 'a', { limit: 8, ignoreCase: true }), ['1', '2'], 'or without case')
  t.same(cookieValues('sgXfp=1; sg.fp=2', 'sg.fp', { limit: 8 }), ['2'], 'a "." in a name is no wildcard')
  t.same(cookieValues('a+=1; aa=2; a=3', 'a+', { limit: 8 }), ['1'], 'nor is any other regex character')
})

t.test('parseCookieOptions: secure by default, names by mode, unsafe settings only in development', async (t) => {
  const STRICT = { sameSite: 'Strict', domain: undefined, partitioned: false, crossSite: false }
  t.strictSame(parseCookieOptions({}, REFRESH), { secure: true, fingerprint: '__Host-sg-fp', refresh: '__Secure-sg-rt', refreshPath: '/auth/refresh', refreshInCookie: true, access: undefined, accessMaxAge: 0, ...STRICT })
  t.same(parseCookieOptions({ secureCookies: false, development: true }, { ...REFRESH, inCookie: false }),
    { secure: false, fingerprint: 'sg-fp', refresh: 'sg-rt', refreshPath: '/auth/refresh', refreshInCookie: false, access: undefined, accessMaxAge: 0, ...STRICT })
  t.same(parseCookieOptions({ secureCookies: false, development: true, fingerprintCookie: 'fp__host-x' }, { ...REFRESH, name: 'rt' }),
    { secure: false, fingerprint: 'fp__host-x', refresh: 'rt', refreshPath: '/auth/refresh', refreshInCookie: true, access: undefined, accessMaxAge: 0, ...STRICT },
    'only a name that starts with a prefix needs secure cookies')
  t.equal(parseCookieOptions({ secureCookies: true, development: true }, REFRESH).secure, true)
  t.throws(() => parseCookieOptions({ secureCookies: false }, REFRESH), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /"secureCookies": may only be false together with `development: true`/ })
  t.throws(() => parseCookieOptions({ secureCookies: false, development: 'yes' as unknown as boolean }, REFRESH), { message: /"secureCookies"/ }, 'development must be exactly true')
  t.throws(() => parseCookieOptions({ fingerprintCookie: 'a b' }, REFRESH), { message: /"fingerprintCookie": must be a valid cookie name/ })
  t.throws(() => parseCookieOptions({ secureCookies: false, development: true, fingerprintCookie: '__Secure-fp' }, REFRESH), { message: /"fingerprintCookie": a __Host- or __Secure- name needs secure cookies/ })
  t.throws(() => parseCookieOptions({ secureCookies: false, development: true }, { ...REFRESH, name: '__host-rt' }), { message: /"refresh.cookie": a __Host- or __Secure- name/ })
  t.match(await registrationError({ secret: 'x'.repeat(32), secureCookies: 'no' }), { message: /"secureCookies": must be a boolean/ })
})

t.test('parseCookieOptions: the cookies section and the refresh cookie path', async (t) => {
  t.strictSame(parseCookieOptions({ cookies: { sameSite: 'lax' } }, REFRESH),
    { secure: true, fingerprint: '__Host-sg-fp', refresh: '__Secure-sg-rt', refreshPath: '/auth/refresh', refreshInCookie: true, access: undefined, accessMaxAge: 0, sameSite: 'Lax', domain: undefined, partitioned: false, crossSite: true })
  t.strictSame(parseCookieOptions({ cookies: { sameSite: 'none', partitioned: true, domain: 'Auth.Example.com' } }, { ...REFRESH, cookiePath: '/api/auth/refresh' }),
    { secure: true, fingerprint: '__Secure-sg-fp', refresh: '__Secure-sg-rt', refreshPath: '/api/auth/refresh', refreshInCookie: true, access: undefined, accessMaxAge: 0, sameSite: 'None', domain: 'auth.example.com', partitioned: true, crossSite: true },
    'a domain makes the fingerprint __Secure-, lower-cased; the cookie path wins over the route path')
  t.equal(parseCookieOptions({ cookies: { sameSite: 'none', partitioned: false } }, REFRESH).partitioned, false)
  t.throws(() => parseCookieOptions({ cookies: { domain: 'localhost' } }, REFRESH), { message: /"cookies.domain": must have at least two labels/ }, 'one label is a top-level domain, as far as a cookie goes')
  t.equal(parseCookieOptions({ secureCookies: false, development: true, cookies: { domain: 'example.com' } }, REFRESH).fingerprint, 'sg-fp', 'without secure cookies, no prefix at all')
  t.equal(parseCookieOptions({ fingerprintCookie: 'fp', cookies: { domain: 'example.com' } }, REFRESH).fingerprint, 'fp', 'a name without a prefix may carry a Domain')
  t.throws(() => parseCookieOptions({ cookies: { domain: `${'a'.repeat(64)}.example` } }, REFRESH), { message: /"cookies.domain"/ }, 'a label of 64 characters')
  t.throws(() => parseCookieOptions({ cookies: { domain: `${'a.'.repeat(127)}ab` } }, REFRESH), { message: /"cookies.domain"/ }, 'over 253 characters')
  t.throws(() => parseCookieOptions({ cookies: { domain: '-a.example' } }, REFRESH), { message: /"cookies.domain"/ })
  t.throws(() => parseCookieOptions({ cookies: { domain: 'a-.example' } }, REFRESH), { message: /"cookies.domain"/ })
  t.throws(() => parseCookieOptions({ cookies: { domain: 'example.com.' } }, REFRESH), { message: /"cookies.domain"/ })
  t.throws(() => parseCookieOptions({}, { ...REFRESH, cookiePath: 'api' }), { message: /"refresh.cookiePath": must be a cookie path/ })
  t.throws(() => parseCookieOptions({}, { ...REFRESH, path: '/a;b' }), { message: /"refresh.path": must be a cookie path/ }, 'the route path names itself when it is the cookie path')
  t.throws(() => parseCookieOptions({}, { ...REFRESH, cookiePath: 'api/auth/refresh' }), { message: /"refresh.cookiePath": must be a cookie path/ }, 'a path starts with "/"')
  for (const domain of ['a.example.com', 'app.b.example.com', 'x.y']) {
    t.equal(parseCookieOptions({ cookies: { domain } }, REFRESH).domain, domain, `one-character labels: ${domain}`)
  }
  t.equal(parseCookieOptions({}, { ...REFRESH, cookiePath: '/auth/refresh' }).refreshPath, '/auth/refresh', 'a cookie path that is the route\'s own')
  t.equal(parseCookieOptions({}, { ...REFRESH, cookiePath: '/auth/' }).refreshPath, '/auth/', 'a parent ending with "/"')
  t.equal(parseCookieOptions({}, { ...REFRESH, cookiePath: '/auth' }).refreshPath, '/auth', 'a parent')
  t.throws(() => parseCookieOptions({}, { ...REFRESH, cookiePath: '/auth/ref' }), { message: /"refresh.cookiePath": must reach the refresh route/ }, 'a prefix of the route\'s path that is not a parent of it')
  const access = { name: 'app__Host-at', inCookie: true, maxAgeMs: 60_000 }
  t.equal(parseCookieOptions({ cookies: { domain: 'example.com' } }, REFRESH, access).access, 'app__Host-at', 'only a name that starts with __Host- refuses a Domain')
  t.throws(() => parseCookieOptions({ cookies: { domain: 'example.com' } }, REFRESH, { ...access, name: '__host-at' }), { message: /"accessToken.cookie": a __Host- cookie cannot carry a Domain/ }, 'in any case')
})

t.test('cookieValues: each name and each case rule has its own pattern', async (t) => {
  const header = 'A=1; a=2; b=3'
  t.same(cookieValues(header, 'a', { limit: 8 }), ['2'])
  t.same(cookieValues(header, 'b', { limit: 8 }), ['3'], 'another name, read after')
  t.same(cookieValues(header, 'a', { limit: 8, ignoreCase: true }), ['1', '2'], 'the same name without case, read after')
  t.same(cookieValues(header, 'a', { limit: 8 }), ['2'], 'and with case again')
})

/** Every `Set-Cookie` line written, in order. */
function recorder (): { reply: FastifyReply, written: string[] } {
  const written: string[] = []
  const reply = {
    header (name: string, value: string) {
      if (name === 'set-cookie') written.push(value)
      return reply
    }
  }
  return { reply: reply as unknown as FastifyReply, written }
}

t.test('SessionCookies: HttpOnly, Secure, SameSite=Strict, each on its path; Max-Age in seconds for a remembered session', async (t) => {
  const cookies = new SessionCookies(parseCookieOptions({}, REFRESH))
  const strict = 'HttpOnly; Secure; SameSite=Strict'
  const cleared = 'Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT'
  const now = 1_000_000
  const { reply, written } = recorder()
  cookies.set(reply, { remembered: true, absoluteExpiresAt: now + 90_999 } as SessionRecord, 'fp', 'rt', now)
  cookies.set(reply, { remembered: false, absoluteExpiresAt: now + 90_999 } as SessionRecord, 'fp', 'rt', now)
  cookies.set(reply, { remembered: false } as SessionRecord, undefined, 'rt', now)
  cookies.set(reply, { remembered: false } as SessionRecord, 'fp', undefined, now)
  cookies.clear(reply)
  t.strictSame(written, [
    `__Host-sg-fp=fp; Max-Age=90; Path=/; ${strict}`,
    `__Secure-sg-rt=rt; Max-Age=90; Path=/auth/refresh; ${strict}`,
    `__Host-sg-fp=fp; Path=/; ${strict}`,
    `__Secure-sg-rt=rt; Path=/auth/refresh; ${strict}`,
    `__Secure-sg-rt=rt; Path=/auth/refresh; ${strict}`,
    `__Host-sg-fp=fp; Path=/; ${strict}`,
    `__Host-sg-fp=; ${cleared}; Path=/; ${strict}`,
    `__Secure-sg-rt=; ${cleared}; Path=/auth/refresh; ${strict}`
  ])
})

t.test('SessionCookies: without secureCookies (development only) no line carries Secure', async (t) => {
  const cookies = new SessionCookies(parseCookieOptions({ secureCookies: false, development: true }, REFRESH))
  const { reply, written } = recorder()
  cookies.set(reply, { remembered: false } as SessionRecord, 'fp', 'rt', 0)
  cookies.clear(reply)
  const cleared = 'Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT'
  t.strictSame(written, [
    'sg-fp=fp; Path=/; HttpOnly; SameSite=Strict',
    'sg-rt=rt; Path=/auth/refresh; HttpOnly; SameSite=Strict',
    `sg-fp=; ${cleared}; Path=/; HttpOnly; SameSite=Strict`,
    `sg-rt=; ${cleared}; Path=/auth/refresh; HttpOnly; SameSite=Strict`
  ])
})

t.test('SessionCookies: Domain, SameSite and Partitioned on every line, set and clear alike', async (t) => {
  const cookies = new SessionCookies(parseCookieOptions({ cookies: { sameSite: 'none', partitioned: true, domain: 'example.com' } }, REFRESH))
  const { reply, written } = recorder()
  cookies.set(reply, { remembered: false } as SessionRecord, 'fp', 'rt', 0)
  cookies.clear(reply)
  const cleared = 'Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT'
  const attributes = 'Domain=example.com; HttpOnly; Secure; SameSite=None; Partitioned'
  t.strictSame(written, [
    `__Secure-sg-fp=fp; Path=/; ${attributes}`,
    `__Secure-sg-rt=rt; Path=/auth/refresh; ${attributes}`,
    `__Secure-sg-fp=; ${cleared}; Path=/; ${attributes}`,
    `__Secure-sg-rt=; ${cleared}; Path=/auth/refresh; ${attributes}`
  ])
  const lax = recorder()
  new SessionCookies(parseCookieOptions({ cookies: { sameSite: 'lax' } }, REFRESH)).set(lax.reply, { remembered: false } as SessionRecord, 'fp', undefined, 0)
  t.strictSame(lax.written, ['__Host-sg-fp=fp; Path=/; HttpOnly; Secure; SameSite=Lax'])
})

t.test('SessionCookies: a refresh token that travels in the body is never written to a cookie, nor cleared from one', async (t) => {
  const cookies = new SessionCookies(parseCookieOptions({}, { ...REFRESH, inCookie: false }))
  const { reply, written } = recorder()
  cookies.set(reply, { remembered: false } as SessionRecord, 'fp', 'rt', 0)
  cookies.clear(reply)
  t.same(written.map((line) => line.split('=')[0]), ['__Host-sg-fp', '__Host-sg-fp'])
  t.equal(cookies.fingerprintName, '__Host-sg-fp')
})

t.test('SessionCookies: at most 8 refresh cookies are read, in the order sent', async (t) => {
  const cookies = new SessionCookies(parseCookieOptions({}, REFRESH))
  const cookie = Array.from({ length: 9 }, (_, i) => `__Secure-sg-rt=t${i}`).join('; ')
  t.same(cookies.refreshTokens({ headers: { cookie } } as FastifyRequest), ['t0', 't1', 't2', 't3', 't4', 't5', 't6', 't7'])
  t.same(cookies.refreshTokens({ headers: {} } as FastifyRequest), [])
})
