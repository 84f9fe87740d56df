import { generateKeyPairSync } from 'node:crypto'
import fastifyCookie from '@fastify/cookie'
import fastifyJwt from '@fastify/jwt'
import Fastify from 'fastify'
import t from 'tap'
import sessionGuard, { memoryStore, type SessionGuardOptions } from '../lib/index.js'
import { build, registrationError, SECRET } from './helper.js'

t.test('unsafe or malformed options are refused at registration, naming the option', async (t) => {
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } })
  const cases: Array<[string, Partial<SessionGuardOptions>]> = [
    ['secret', {}],
    ['secret', { secret: '' }],
    ['secret', { secret: 'short' }],
    ['secret', { secret: Buffer.alloc(31) }],
    ['secret', { secret: SECRET, keys: { private: keys.privateKey, public: keys.publicKey } }],
    ['algorithm', { secret: SECRET, algorithm: 'ES256' }],
    ['algorithm', { secret: SECRET, algorithm: 'none' as 'HS256' }],
    ['algorithm', { keys: { private: keys.privateKey, public: keys.publicKey } }],
    ['algorithm', { keys: { private: keys.privateKey, public: keys.publicKey }, algorithm: 'HS256' }],
    ['keys', { keys: { private: '', public: keys.publicKey }, algorithm: 'ES256' }],
    ['issuer', { secret: SECRET, issuer: '' }],
    ['audience', { secret: SECRET, audience: 42 as unknown as string }],
    ['accessTokenTtl', { secret: SECRET, accessTokenTtl: -1 }],
    ['accessTokenTtl', { secret: SECRET, accessTokenTtl: 0 }],
    ['accessTokenTtl', { secret: SECRET, accessTokenTtl: 'soon' }],
    ['idleTimeout', { secret: SECRET, idleTimeout: Number.NaN }],
    ['absoluteTimeout', { secret: SECRET, absoluteTimeout: Number.POSITIVE_INFINITY }],
    ['clockTolerance', { secret: SECRET, clockTolerance: Number.POSITIVE_INFINITY }],
    ['clockTolerance', { secret: SECRET, clockTolerance: '1d' }],
    ['clockTolerance', { secret: SECRET, clockTolerance: 300_001 }],
    ['dpop.window', { secret: SECRET, dpop: { window: '1d' } }],
    ['remember.idleTimeout', { secret: SECRET, remember: { idleTimeout: '-5m' } }],
    ['remember.absoluteTimeout', { secret: SECRET, remember: { absoluteTimeout: 0 } }],
    ['touchInterval', { secret: SECRET, touchInterval: '30m' }],
    ['maxSessionsPerUser', { secret: SECRET, maxSessionsPerUser: 0 }],
    ['maxSessionsPerUser', { secret: SECRET, maxSessionsPerUser: 1.5 }],
    ['onSessionLimit', { secret: SECRET, onSessionLimit: 'drop' as 'reject' }],
    ['secureCookies', { secret: SECRET, secureCookies: false }],
    ['secureCookies', { secret: SECRET, secureCookies: 'no' as unknown as boolean }],
    ['global', { secret: SECRET, global: 1 as unknown as boolean }],
    ['global', { secret: SECRET, global: null as unknown as boolean }],
    ['global.skip', { secret: SECRET, global: { skip: 'docs' as unknown as () => boolean } }],
    ['global.skp', { secret: SECRET, global: { skp: () => true } as unknown as boolean }],
    ['fingerprintCookie', { secret: SECRET, fingerprintCookie: 'bad name' }],
    ['fingerprintCookie', { secret: SECRET, fingerprintCookie: '__Host-fp', secureCookies: false, development: true }],
    ['refresh.cookie', { secret: SECRET, refresh: { cookie: 'a;b' } }],
    ['refresh.transport', { secret: SECRET, refresh: { transport: 'header' as 'body' } }],
    ['refresh.path', { secret: SECRET, refresh: { path: 'refresh' } }],
    ['refresh.graceWindow', { secret: SECRET, refresh: { graceWindow: -1 } }],
    ['refresh.csrfHeader', { secret: SECRET, refresh: { csrfHeader: 'bad header' } }],
    ['refresh.allowedOrigins', { secret: SECRET, refresh: { allowedOrigins: 'https://a.example' as unknown as string[] } }],
    ['refresh.allowedOrigins', { secret: SECRET, refresh: { allowedOrigins: [1 as unknown as string] } }],
    ['store', { secret: SECRET, store: {} as never }],
    ['clock', { secret: SECRET, clock: 5 as unknown as () => number }],
    ['idleTimout', { secret: SECRET, idleTimout: '5m' } as Partial<SessionGuardOptions>],
    ['refresh.grace', { secret: SECRET, refresh: { grace: '5s' } } as Partial<SessionGuardOptions>],
    ['anomalies.newDevices', { secret: SECRET, anomalies: { newDevices: 'revoke' } } as Partial<SessionGuardOptions>]
  ]
  for (const [option, options] of cases) {
    const err = await registrationError(options) as { code?: string, message?: string }
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', `${option}: ${JSON.stringify(options, (_k, v) => typeof v === 'string' && v.length > 60 ? '<pem>' : v)}`)
    t.match(err?.message, `"${option}"`, 'the message names the option')
  }
  t.equal(await registrationError({ secret: SECRET, secureCookies: false, development: true }), undefined, 'development may turn Secure off')
  t.equal(await registrationError({ secret: SECRET, touchInterval: 0, refresh: { graceWindow: 0 }, clockTolerance: 0 }), undefined, 'zero where zero makes sense')
  t.equal(await registrationError({ secret: SECRET, global: false }), undefined, 'global: false is off, not a section')
  t.equal(await registrationError({ secret: SECRET, clockTolerance: '5m', dpop: { window: '5m' } }), undefined, 'five minutes of clock tolerance and DPoP window at most')
  t.equal((await registrationError({ secret: SECRET, clockTolerance: '1d' }))?.message,
    'Invalid option "clockTolerance": must be at most \'5m\': every token would be good that long past its expiry, got "1d"', 'and says why')
  t.match((await registrationError({ secret: SECRET, global: { skip: 1 as unknown as () => boolean } }))?.message, 'must be a function (route) => boolean', 'and says what a skip is')
})

t.test('development mode: cookies without Secure and without prefixed names', async (t) => {
  const h = await build(t, { secureCookies: false, development: true })
  const alice = await h.login('alice')
  const cookies = alice.response.headers['set-cookie'] as string[]
  t.ok(cookies.some((c) => c.startsWith('sg-fp=')))
  t.ok(cookies.some((c) => c.startsWith('sg-rt=')))
  t.notOk(cookies.some((c) => /Secure/.test(c)))
  t.equal((await h.me(alice)).statusCode, 200)
})

for (const [algorithm, type, extra] of [
  ['RS256', 'rsa', { modulusLength: 2048 }],
  ['RS384', 'rsa', { modulusLength: 2048 }],
  ['RS512', 'rsa', { modulusLength: 2048 }],
  ['PS256', 'rsa', { modulusLength: 2048 }],
  ['PS384', 'rsa', { modulusLength: 2048 }],
  ['PS512', 'rsa', { modulusLength: 2048 }],
  ['ES256', 'ec', { namedCurve: 'P-256' }],
  ['ES384', 'ec', { namedCurve: 'P-384' }],
  ['ES512', 'ec', { namedCurve: 'P-521' }],
  ['EdDSA', 'ed25519', {}]
] as const) {
  t.test(`asymmetric keys: ${algorithm}`, async (t) => {
    const { privateKey, publicKey } = generateKeyPairSync(type as 'rsa', { ...extra, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } } as never) as unknown as { privateKey: string, publicKey: string }
    const h = await build(t, { secret: undefined, keys: { private: privateKey, public: publicKey }, algorithm })
    const alice = await h.login('alice')
    t.equal(JSON.parse(Buffer.from(alice.accessToken.split('.')[0] as string, 'base64url').toString()).alg, algorithm)
    t.equal((await h.me(alice)).statusCode, 200)
  })
}

for (const algorithm of ['HS256', 'HS384', 'HS512'] as const) {
  t.test(`a secret: ${algorithm}`, async (t) => {
    const h = await build(t, { algorithm })
    const alice = await h.login('alice')
    t.equal(JSON.parse(Buffer.from(alice.accessToken.split('.')[0] as string, 'base64url').toString()).alg, algorithm)
    t.equal((await h.me(alice)).statusCode, 200)
  })
}

t.test('issuer and audience are signed and required', async (t) => {
  const h = await build(t, { issuer: 'https://auth.example', audience: 'api' })
  const alice = await h.login('alice')
  const claims = JSON.parse(Buffer.from(alice.accessToken.split('.')[1] as string, 'base64url').toString())
  t.match(claims, { iss: 'https://auth.example', aud: 'api' })
  t.equal((await h.me(alice)).statusCode, 200)
  const other = await build(t, { issuer: 'https://other.example', audience: 'api' })
  const [fpName, fpValue] = alice.fingerprint.split('=')
  t.equal((await other.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${alice.accessToken}`, cookie: `${fpName}=${fpValue}` } })).statusCode, 401, 'a token for another issuer is refused')
})

// The plugin never registers @fastify/cookie (it reads and writes its two cookies
// itself): an app registers its own before or after it, with a secret, and
// @fastify/jwt may come before or after too.
for (const cookieOrder of ['before', 'after'] as const) {
  for (const order of ['before', 'after'] as const) {
    t.test(`works beside the app's own @fastify/cookie registered ${cookieOrder} it, and @fastify/jwt ${order} it`, async (t) => {
      const app = Fastify()
      t.teardown(() => app.close())
      if (cookieOrder === 'before') await app.register(fastifyCookie, { secret: 'cookie-signing-secret' })
      if (order === 'after') await app.register(sessionGuard, { secret: SECRET })
      await app.register(fastifyJwt, { secret: 'the-apps-own-jwt-secret-0123456789abcdef' })
      if (order === 'before') await app.register(sessionGuard, { secret: SECRET })
      if (cookieOrder === 'after') await app.register(fastifyCookie, { secret: 'cookie-signing-secret' })
      app.get('/own', async (request) => { await request.jwtVerify(); return request.user })
      app.post('/login', async (_request, reply) => {
        reply.setCookie('theme', 'dark', { signed: true, path: '/' })
        return (await reply.issueSession({ userId: 'alice' })).accessToken
      })
      app.get('/me', { preHandler: app.requireSession }, async (request) => ({ user: request.user, theme: request.unsignCookie(request.cookies.theme ?? '').value }))
      const ownToken = app.jwt.sign({ hello: 'world' })
      t.match((await app.inject({ method: 'GET', url: '/own', headers: { authorization: `Bearer ${ownToken}` } })).json(), { hello: 'world' })
      t.equal((await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${ownToken}` } })).statusCode, 401, "the app's tokens are not sessions")
      const login = await app.inject({ method: 'POST', url: '/login' })
      const cookies = login.headers['set-cookie'] as string[]
      t.same(cookies.map((line) => line.split('=')[0]).sort(), ['__Host-sg-fp', '__Secure-sg-rt', 'theme'], "the plugin's cookies and the app's signed one")
      const cookie = cookies.map((line) => line.split(';')[0]).join('; ')
      t.match((await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${login.body}`, cookie } })).json(), { user: { sub: 'alice' }, theme: 'dark' })
      t.equal((await app.inject({ method: 'GET', url: '/own', headers: { authorization: `Bearer ${login.body}` } })).statusCode, 401, 'and ours are not the app\'s')
    })
  }
}

t.test('without @fastify/cookie, the app has no cookie decorators of ours, and sessions work', async (t) => {
  const h = await build(t, {})
  t.notOk(h.app.hasReplyDecorator('setCookie'), 'the plugin registered no cookie parser')
  const alice = await h.login('alice')
  t.equal((await h.me(alice)).statusCode, 200)
})

t.test('refresh.path must be a cookie path', async (t) => {
  for (const path of ['/refresh; Domain=evil.example', '/re\nfresh']) {
    t.match(await registrationError({ secret: SECRET, refresh: { path } }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /"refresh\.path"/ })
  }
})

t.test('each refusal of the refresh options says what is wanted', async (t) => {
  const origins = 'must be an array of origins such as "https://app.example.com"'
  const cases: Array<[string, unknown, string, string]> = [
    ['a transport of neither kind', { transport: 'header' }, 'refresh.transport', "must be 'cookie' or 'body', got \"header\""],
    ['a header name with a space', { csrfHeader: 'bad header' }, 'refresh.csrfHeader', 'must be a header name'],
    ['one origin, not in an array', { allowedOrigins: 'https://a.example' }, 'refresh.allowedOrigins', origins],
    ['an array with one origin that is no string', { allowedOrigins: ['https://a.example', 1] }, 'refresh.allowedOrigins', origins],
    ...['https://a.example/', 'https://A.example', 'https://a.example/app', 'null', '*', 'a.example', 'file:///tmp/page.html'].map((origin): [string, unknown, string, string] => [
      `an origin spelled as no browser sends it: ${origin}`,
      { allowedOrigins: ['https://b.example', origin] },
      'refresh.allowedOrigins[1]',
      `must be an origin as a browser sends it (scheme://host[:port], no path, no trailing slash, lower case), got ${JSON.stringify(origin)}`
    ])
  ]
  for (const [name, refresh, option, wanted] of cases) {
    const err = await registrationError({ secret: SECRET, refresh })
    t.equal(err?.message, `Invalid option "${option}": ${wanted}`, name)
  }
  t.equal(await registrationError({ secret: SECRET, refresh: { transport: 'body' } }), undefined, 'transport body')
  t.equal(await registrationError({ secret: SECRET, refresh: { transport: 'cookie', allowedOrigins: ['https://a.example'] } }), undefined, 'transport cookie, origins')
  t.equal(await registrationError({ secret: SECRET, refresh: { allowedOrigins: ['http://127.0.0.1:3000', 'https://a.example:8443', 'https://xn--bcher-kva.example'] } }), undefined, 'ports and punycode hosts, as browsers send them')
})

t.test('registering twice in one scope is a clear error', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(sessionGuard, { secret: SECRET })
  app.register(sessionGuard, { secret: SECRET })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_SESSION_GUARD_ALREADY_REGISTERED', message: /already registered in this scope/ })
})

t.test('onClose closes the store', async (t) => {
  const store = memoryStore()
  let closed = 0
  const close = store.close.bind(store)
  store.close = async () => { closed++; await close() }
  const app = Fastify()
  await app.register(sessionGuard, { secret: SECRET, store })
  await app.ready()
  await app.close()
  t.equal(closed, 1)
})

t.test('issueSession validates its input', async (t) => {
  const h = await build(t, {}, (app) => {
    app.post('/raw', async (request, reply) => await reply.issueSession(request.body as never))
  })
  const takes = 'issueSession() takes { userId, claims?, remember?, rememberDevice? }'
  const badUserId = 'issueSession(): userId must be a non-empty string of at most 256 characters, without U+0000 or an unpaired surrogate'
  const cases: Array<[string, unknown, string | RegExp]> = [
    ['no body', null, takes],
    ['a string body', 'alice', takes],
    ['no userId', {}, badUserId],
    ['empty userId', { userId: '' }, badUserId],
    ['numeric userId', { userId: 42 }, badUserId],
    ['huge userId', { userId: 'a'.repeat(257) }, badUserId],
    ['remember not boolean', { userId: 'a', remember: 'yes' }, 'issueSession(): remember must be a boolean'],
    ['claims not an object', { userId: 'a', claims: ['x'] }, /claims/],
    ['reserved claim', { userId: 'a', claims: { sub: 'admin' } }, /sub/],
    ['reserved claim sid', { userId: 'a', claims: { sid: 'x' } }, /sid/],
    ['userId with U+0000', { userId: 'a\u0000b' }, badUserId],
    ['userId with a lone surrogate', { userId: 'a\ud800' }, badUserId]
  ]
  for (const [name, body, message] of cases) {
    const response = await h.app.inject({ method: 'POST', url: '/raw', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) })
    t.equal(response.statusCode, 500, name)
    if (typeof message === 'string') t.equal(response.json().message, message, `${name}: the message`)
    else t.match(response.json().message, message, `${name}: the message`)
  }
  t.match(await h.app.sessions.stats(), { sessions: 0, users: 0, events: { created: 0 } }, 'no session was created')
  const longest = await h.app.inject({ method: 'POST', url: '/raw', payload: { userId: 'a'.repeat(256), remember: false } })
  t.equal(longest.statusCode, 200, 'a userId of 256 characters is one')
  t.equal(longest.json().session.userId, 'a'.repeat(256))
})

t.test('claims with U+0000 or an unpaired surrogate, in a name or a value at any depth, answer 400 and write nothing', async (t) => {
  const store = memoryStore()
  const h = await build(t, { store }, (app) => {
    app.post('/elevate', { preHandler: app.requireSession }, async (request, reply) => {
      const { session } = await request.regenerateSession(reply, (request.body as { claims: Record<string, unknown> }).claims)
      return { sessionId: session.id }
    })
  })
  const counters = async (): Promise<number> => {
    let n = 0
    for await (const batch of store.scanCounters(100, h.clock.read())) n += batch.length
    return n
  }
  const refused: Array<[string, Record<string, unknown>]> = [
    ['a value', { name: 'Ali\u0000ce' }],
    ['a name', { 'na\u0000me': 'Alice' }],
    ['a nested value', { profile: { name: '\u0000' } }],
    ['an array element', { roles: ['user', 'ad\u0000min'] }],
    ['a lone high surrogate', { name: 'Al\ud800ice' }],
    ['a lone low surrogate', { name: '\udc00' }],
    ['a surrogate pair the wrong way round', { name: '\ude00\ud83d' }]
  ]
  for (const [name, claims] of refused) {
    const response = await h.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ userId: 'alice', claims }) })
    t.equal(response.statusCode, 400, name)
    t.equal(response.json().code, 'FST_SESSION_GUARD_INVALID_CLAIMS', name)
    const message: string = response.json().message
    t.match(message, /^Session claims refused: the claim ".+" holds U\+0000 or an unpaired surrogate$/, 'it names the claim')
    t.notOk(/Ali|admin/.test(message) || message.includes('\u0000'), 'the message names no value')
  }
  t.match(await h.app.sessions.stats(), { sessions: 0, events: { created: 0 } }, 'no session was created')
  t.equal(await counters(), 0, 'and no counter written: the login was refused before it counted')

  // Well-formed text, control characters and all, is kept exactly.
  const kept = { name: 'Zoë 😀', note: 'tab\there \u0001', list: [{ deep: 'ok' }] }
  const alice = await h.login('alice', { claims: kept })
  t.strictSame((await h.app.sessions.get(alice.sessionId))?.claims, kept)

  // regenerateSession checks new claims before it replaces anything: the session goes on.
  const bad = await h.app.inject({ method: 'POST', url: '/elevate', headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.fingerprint }, payload: { claims: { role: 'ad\u0000min' } } })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'FST_SESSION_GUARD_INVALID_CLAIMS')
  t.equal((await h.me(alice)).statusCode, 200, 'the old session still works')
  t.strictSame((await h.app.sessions.get(alice.sessionId))?.claims, kept)
})

t.test('an option section that is not an object is refused, naming it', async (t) => {
  for (const option of ['refresh', 'remember', 'privacy', 'lockout', 'anomalies', 'health', 'metrics', 'logging', 'routes']) {
    const err = await registrationError({ secret: SECRET, [option]: 5 })
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', option)
    t.match(err?.message, `"${option}"`, `${option}: the message names it`)
  }
})
