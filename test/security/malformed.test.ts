import { connect } from 'node:net'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import t from 'tap'
import type { Harness } from '../helper.js'
import { assertNoLeak, assertUntouched, safeJson, setup, snapshot } from './setup.js'

/**
 * Oversized and malformed headers and bodies on every route the plugin's
 * helpers serve (the guard on GET /me and POST /logout, reply.refreshSession()
 * on POST /refresh in both transports): never a 500, never a stack trace or a
 * path, never a hang, never a change to any session.
 */

const BOUND_MS = 5000

async function bounded (h: Harness, options: InjectOptions): Promise<LightMyRequestResponse> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${BOUND_MS} ms`)), BOUND_MS)
  })
  try {
    return await Promise.race([h.app.inject(options), timeout])
  } finally {
    clearTimeout(timer)
  }
}

function assertClean (t: Test, response: LightMyRequestResponse, name: string, allowed: number[]): void {
  t.ok(allowed.includes(response.statusCode), `${name}: ${response.statusCode} is one of ${allowed.join(', ')}`)
  t.ok(response.statusCode < 500, `${name}: never a 5xx`)
  assertNoLeak(t, response, name)
  const body = safeJson(response)
  if (response.statusCode >= 400) t.type(body, 'object', `${name}: a JSON error`)
}

const deep = (levels: number): string => '{"a":'.repeat(levels) + '1' + '}'.repeat(levels)

/** Bodies for POST /refresh: [name, content-type, payload, statuses allowed]. */
function bodies (refreshToken: string): Array<[string, string | undefined, string | Buffer, number[]]> {
  return [
    ['malformed JSON', 'application/json', '{"refreshToken":', [400]],
    ['empty JSON body', 'application/json', '', [400]],
    ['JSON null', 'application/json', 'null', [401]],
    ['JSON array', 'application/json', `["${refreshToken}"]`, [401]],
    ['JSON string', 'application/json', JSON.stringify(refreshToken), [401]],
    ['JSON number', 'application/json', '42', [401]],
    ['JSON true', 'application/json', 'true', [401]],
    ['refreshToken a number', 'application/json', '{"refreshToken":42}', [401]],
    ['refreshToken an array', 'application/json', JSON.stringify({ refreshToken: [refreshToken] }), [401]],
    ['refreshToken an object', 'application/json', JSON.stringify({ refreshToken: { toString: refreshToken } }), [401]],
    ['refreshToken null', 'application/json', '{"refreshToken":null}', [401]],
    ['refreshToken 1 MB minus a little', 'application/json', JSON.stringify({ refreshToken: 'a'.repeat(1024 * 1024 - 100) }), [401]],
    ['refreshToken with NUL and non-ASCII', 'application/json', JSON.stringify({ refreshToken: `${refreshToken}\u0000é` }), [401]],
    ['refreshToken with a lone surrogate', 'application/json', '{"refreshToken":"\\ud800"}', [401]],
    ['__proto__ pollution', 'application/json', `{"__proto__":{"refreshToken":"${refreshToken}"}}`, [400]],
    ['constructor.prototype pollution', 'application/json', `{"constructor":{"prototype":{"refreshToken":"${refreshToken}"}}}`, [400]],
    ['JSON nested 10 000 deep', 'application/json', deep(10_000), [400, 401]],
    ['body over the 1 MB limit', 'application/json', JSON.stringify({ refreshToken: 'a'.repeat(2 * 1024 * 1024) }), [413]],
    ['invalid UTF-8', 'application/json', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), [400, 401]],
    ['text/plain', 'text/plain', refreshToken, [401]],
    ['form-encoded', 'application/x-www-form-urlencoded', `refreshToken=${refreshToken}`, [415]],
    ['multipart', 'multipart/form-data; boundary=x', `--x\r\nContent-Disposition: form-data; name="refreshToken"\r\n\r\n${refreshToken}\r\n--x--`, [415]],
    ['an unknown content type', 'application/x-evil', 'x', [415]],
    ['a content type with a weird charset', 'application/json; charset=utf-7', JSON.stringify({ refreshToken: `${refreshToken}x` }), [400, 401, 415]],
    ['a content type 8 KB long', `application/json; ${'a=b; '.repeat(1600)}`, JSON.stringify({ refreshToken: 'x' }), [400, 401, 415]]
  ]
}

/** Headers for every route: [name, headers, statuses allowed]. */
function headerCases (fingerprint: string): Array<[string, Record<string, string>, number[]]> {
  const cookies = (n: number): string => Array.from({ length: n }, (_, i) => `c${i}=${'v'.repeat(10)}`).join('; ')
  return [
    ['authorization 8 KB', { authorization: `Bearer ${'a'.repeat(8192)}.b.c`, cookie: fingerprint }, [401]],
    ['authorization 1 MB', { authorization: `Bearer ${'a'.repeat(1024 * 1024)}`, cookie: fingerprint }, [401]],
    ['authorization of 10 000 dots', { authorization: `Bearer ${'.'.repeat(10_000)}`, cookie: fingerprint }, [401]],
    ['authorization of 10 000 spaces', { authorization: `Bearer${' '.repeat(10_000)}x`, cookie: fingerprint }, [401]],
    ['authorization with many segments', { authorization: `Bearer ${'a.'.repeat(3000)}a`, cookie: fingerprint }, [401]],
    ['authorization with latin-1 bytes', { authorization: `Bearer ${'\u00ff'.repeat(100)}`, cookie: fingerprint }, [401]],
    ['authorization empty', { authorization: '', cookie: fingerprint }, [401]],
    ['authorization "Bearer" alone', { authorization: 'Bearer', cookie: fingerprint }, [401]],
    ['cookie 64 KB', { cookie: `${fingerprint}; big=${'x'.repeat(65536)}` }, [401]],
    ['cookie 1 MB', { cookie: `${fingerprint}; big=${'x'.repeat(1024 * 1024)}` }, [401]],
    ['500 cookies', { cookie: `${cookies(500)}; ${fingerprint}` }, [401]],
    ['5 000 cookies', { cookie: `${cookies(5000)}; ${fingerprint}` }, [401]],
    ['cookie of 10 000 semicolons', { cookie: `${';'.repeat(10_000)}${fingerprint}` }, [401]],
    ['cookie of 10 000 "="', { cookie: `${'='.repeat(10_000)}; ${fingerprint}` }, [401]],
    ['cookie with broken percent-encoding', { cookie: `a=%E0%A4%A; b=%; c=%%; ${fingerprint}` }, [401]],
    ['origin 8 KB', { origin: `https://${'a'.repeat(8192)}.example`, cookie: fingerprint }, [401, 403]],
    ['origin "null"', { origin: 'null', cookie: fingerprint }, [401, 403]],
    ['host 8 KB', { host: `${'a'.repeat(8192)}.example`, cookie: fingerprint }, [400, 401, 403]],
    ['x-requested-with 64 KB', { 'x-requested-with': 'x'.repeat(65536), cookie: fingerprint }, [401]],
    ['content-length lying', { 'content-length': '99999', cookie: fingerprint }, [400, 401, 415]]
  ]
}

t.test('every route, every malformed header: never a 5xx, a trace, a hang or a side effect', async (t) => {
  for (const transport of ['cookie', 'body'] as const) {
    const h = await setup(t, { refresh: { transport }, routes: { prefix: '/sessions' } })
    const alice = await h.login('alice')
    const before = await snapshot(h.app, [alice], ['alice'])
    const routes: Array<[InjectOptions['method'], string, Record<string, string>]> = [
      ['GET', '/me', {}],
      ['POST', '/logout', {}],
      ['POST', '/refresh', transport === 'cookie' ? { 'x-requested-with': 'fetch' } : {}],
      ['GET', '/sessions', {}],
      ['DELETE', `/sessions/${alice.sessionId}`, {}],
      ['POST', '/sessions/revoke-others', {}],
      ['POST', '/sessions/revoke-all', {}],
      ['POST', '/sessions/resolve-limit', {}]
    ]
    for (const [method, url, base] of routes) {
      for (const [name, headers, allowed] of headerCases(alice.fingerprint)) {
        const label = `${transport}: ${method} ${url}: ${name}`
        const response = await bounded(h, { method, url, headers: { ...base, ...headers } })
        // The public resolve-limit route refuses a missing body before any credential.
        const expected = url === '/refresh' && transport === 'cookie' ? [...allowed, 403] : url === '/sessions/resolve-limit' ? [...allowed, 400] : allowed
        assertClean(t, response, label, expected)
      }
    }
    await assertUntouched(t, h.app, before, `${transport}: after every malformed header`, [alice], ['alice'])
    t.equal((await h.me(alice)).statusCode, 200, `${transport}: the session still works`)
  }
})

t.test('every malformed body on the refresh and resolve-limit routes, in both transports', async (t) => {
  for (const transport of ['cookie', 'body'] as const) {
    const h = await setup(t, { refresh: { transport }, routes: { prefix: '/sessions' } })
    const alice = await h.login('alice')
    const before = await snapshot(h.app, [alice], ['alice'])
    for (const [name, contentType, payload, allowed] of bodies(alice.refreshToken)) {
      const headers: Record<string, string> = { cookie: alice.fingerprint, 'x-requested-with': 'fetch' }
      if (contentType !== undefined) headers['content-type'] = contentType
      const response = await bounded(h, { method: 'POST', url: '/refresh', headers, payload })
      assertClean(t, response, `${transport}: ${name}`, allowed)
    }
    for (const [name, contentType, payload, allowed] of bodies(alice.refreshToken)) {
      const headers: Record<string, string> = { cookie: alice.fingerprint }
      if (contentType !== undefined) headers['content-type'] = contentType
      const response = await bounded(h, { method: 'POST', url: '/sessions/resolve-limit', headers, payload })
      assertClean(t, response, `${transport}: POST /sessions/resolve-limit: ${name}`, [...allowed, 400, 401])
    }
    // The guard's routes ignore bodies, but must parse them safely too.
    for (const [name, contentType, payload, allowed] of bodies(alice.refreshToken)) {
      const response = await bounded(h, { method: 'POST', url: '/logout', headers: { 'content-type': contentType as string }, payload })
      assertClean(t, response, `${transport}: POST /logout: ${name}`, [...allowed, 401])
    }
    await assertUntouched(t, h.app, before, `${transport}: after every malformed body`, [alice], ['alice'])
  }
})

t.test('over a real socket: oversized and broken requests are answered and the server stays up', async (t) => {
  const h = await setup(t)
  await h.app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = h.app.server.address() as { port: number }
  const raw = async (request: string): Promise<string> => await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let data = ''
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no answer within ${BOUND_MS} ms`)) }, BOUND_MS)
    socket.on('data', (chunk) => { data += chunk.toString('latin1') })
    socket.on('error', () => {}) // the server may reset after answering; what it answered is what counts
    socket.on('close', () => { clearTimeout(timer); resolve(data) })
    socket.end(request)
  })
  const cases: Array<[string, string, RegExp]> = [
    ['a 32 KB authorization header', `GET /me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(32 * 1024)}\r\nConnection: close\r\n\r\n`, /^HTTP\/1\.1 431/],
    ['a 32 KB cookie header', `GET /me HTTP/1.1\r\nHost: x\r\nCookie: ${'a=b; '.repeat(6600)}\r\nConnection: close\r\n\r\n`, /^HTTP\/1\.1 431/],
    ['two authorization headers', 'GET /me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a.b.c\r\nAuthorization: Bearer d.e.f\r\nConnection: close\r\n\r\n', /^HTTP\/1\.1 401/],
    ['a header with a bare CR', 'GET /me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\rb.c.d\r\nConnection: close\r\n\r\n', /^HTTP\/1\.1 400/],
    ['a NUL in the cookie header', 'GET /me HTTP/1.1\r\nHost: x\r\nCookie: __Host-sg-fp=a\u0000b\r\nConnection: close\r\n\r\n', /^HTTP\/1\.1 400/],
    ['a refresh body cut short', 'POST /refresh HTTP/1.1\r\nHost: x\r\nX-Requested-With: f\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{"refreshToken":', /^(HTTP\/1\.1 400|$)/],
    ['garbage instead of HTTP', '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003', /^(HTTP\/1\.1 400|)/]
  ]
  for (const [name, request, expected] of cases) {
    const answer = await raw(request)
    t.match(answer, expected, name)
    t.notMatch(answer, /\bat [^\s]+ \(|node_modules|node:internal/, `${name}: no stack trace`)
  }
  const after = await raw('GET /me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.match(after, /^HTTP\/1\.1 401/, 'the server still answers')

  // Node joins repeated Cookie headers into one: a fingerprint in each is a duplicate.
  const alice = await h.login('alice')
  const bob = await h.login('bob')
  const me = (cookies: string[]): string => `GET /me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.accessToken}\r\n${cookies.map((c) => `Cookie: ${c}\r\n`).join('')}Connection: close\r\n\r\n`
  t.match(await raw(me([alice.fingerprint])), /^HTTP\/1\.1 200/, 'control: the real cookie over the socket')
  t.match(await raw(me([alice.fingerprint, bob.fingerprint])), /^HTTP\/1\.1 401/, 'the fingerprint in two Cookie headers')
  t.match(await raw(me([bob.fingerprint, alice.fingerprint])), /^HTTP\/1\.1 401/, 'the fingerprint in two Cookie headers, the real one second')
})
