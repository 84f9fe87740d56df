import { createHash } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import sessionGuard, { CLOCK_SKEW_ALLOWANCE_MS, memoryStore, sessionLimitResponseSchema, type SessionEvent, type SessionGuardOptions, type SessionStore } from '../lib/index.js'
import { DPOP_DESCRIPTIONS, parseDpopOptions } from '../lib/http/dpop.js'
import { normalizeOptions } from '../lib/options.js'
import { redisStore } from '../lib/stores/redis/index.js'
import { registrationError, SECRET, settle, TestClock } from './helper.js'
import { leftNoKeys, REDIS_URL, redisTest, testClient, testPrefix } from './stores/redis-helper.js'

// A native client over real HTTP: Node's fetch (no cookie jar), keys from jose.

type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } })
const jose: Promise<Jose> = import('jose')

const CHALLENGE = 'DPoP algs="ES256 EdDSA", error='

/** The challenge of a refusal: its error, and the fixed words that say which check failed (RFC 6750 §3). */
function challenge (error: string, reason: keyof typeof DPOP_DESCRIPTIONS): string {
  return `${CHALLENGE}"${error}", error_description="${DPOP_DESCRIPTIONS[reason]}"`
}

interface Client {
  alg: 'ES256' | 'EdDSA'
  privateKey: Awaited<ReturnType<Jose['generateKeyPair']>>['privateKey']
  jwk: Record<string, unknown>
  jkt: string
}

async function client (alg: 'ES256' | 'EdDSA' = 'ES256'): Promise<Client> {
  const { generateKeyPair, exportJWK, calculateJwkThumbprint } = await jose
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) })
  const jwk = await exportJWK(publicKey)
  return { alg, privateKey, jwk, jkt: await calculateJwkThumbprint(jwk) }
}

interface ProofInput {
  htm: string
  htu: string
  iat: number
  accessToken?: string
  jti?: string
  nonce?: string
  ath?: string
  header?: Record<string, unknown>
}

let counter = 0
async function proof (key: Client, input: ProofInput): Promise<string> {
  const { SignJWT } = await jose
  const ath = input.ath ?? (input.accessToken === undefined ? undefined : createHash('sha256').update(input.accessToken).digest('base64url'))
  return await new SignJWT({
    htm: input.htm,
    htu: input.htu,
    jti: input.jti ?? `jti-${++counter}`,
    ...(ath === undefined ? {} : { ath }),
    ...(input.nonce === undefined ? {} : { nonce: input.nonce })
  })
    .setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.jwk, ...input.header })
    .setIssuedAt(Math.floor(input.iat / 1000))
    .sign(key.privateKey)
}

interface Server {
  app: FastifyInstance
  clock: TestClock
  base: string
  reasons: string[]
  /** A request with a proof by `key` for it (unless `dpop` is given), as a native client sends it. */
  call: (key: Client, method: string, path: string, options?: { token?: string, scheme?: string, body?: unknown, nonce?: string, dpop?: string }) => Promise<Response>
  login: (key: Client, nonce?: string) => Promise<{ accessToken: string, refreshToken: string, tokenType: string }>
}

async function serve (t: Test, options: Partial<SessionGuardOptions> = {}, shared?: { clock: TestClock, store: SessionStore }, trustProxy = false): Promise<Server> {
  const clock = shared?.clock ?? new TestClock()
  const reasons: string[] = []
  const app = Fastify({ trustProxy })
  t.teardown(() => app.close())
  await app.register(sessionGuard, {
    secret: SECRET,
    clock: clock.read,
    dpop: true,
    store: shared?.store ?? memoryStore(),
    onEvent: (event: SessionEvent) => { if (event.type === 'auth.rejected') reasons.push(event.reason) },
    ...options
  })
  app.post<{ Body: { userId: string } }>('/login', { schema: { response: { 409: sessionLimitResponseSchema } } }, async (request, reply) => {
    const { accessToken, refreshToken, tokenType } = await reply.issueSession({ userId: request.body.userId })
    return { accessToken, refreshToken, tokenType }
  })
  app.get('/me', { preHandler: app.requireSession }, async (request) => ({ sid: request.authSession!.id, user: request.user }))
  app.post('/refresh', async (request, reply) => {
    const { accessToken, refreshToken, tokenType } = await reply.refreshSession()
    return { accessToken, refreshToken, tokenType }
  })
  app.post('/regenerate', { preHandler: app.requireSession }, async (request, reply) => {
    const { accessToken, refreshToken, tokenType } = await request.regenerateSession(reply)
    return { accessToken, refreshToken, tokenType }
  })
  app.post('/logout', { preHandler: app.requireSession }, async (request, reply) => {
    await request.endSession(reply)
    return await reply.code(204).send()
  })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  // A client names the API as it knows it: its public origin when one is configured, else the address it calls.
  const dpopOrigins = typeof options.dpop === 'object' ? options.dpop.origins : undefined
  const publicBase = dpopOrigins?.[0] ?? base

  async function call (key: Client, method: string, path: string, { token, scheme = 'DPoP', body, nonce, dpop }: { token?: string, scheme?: string, body?: unknown, nonce?: string, dpop?: string } = {}): Promise<Response> {
    const headers: Record<string, string> = {
      dpop: dpop ?? await proof(key, { htm: method, htu: `${publicBase}${path}`, iat: clock.read(), ...(token === undefined ? {} : { accessToken: token }), ...(nonce === undefined ? {} : { nonce }) })
    }
    if (token !== undefined) headers.authorization = `${scheme} ${token}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    return await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
  }

  async function login (key: Client, nonce?: string): Promise<{ accessToken: string, refreshToken: string, tokenType: string }> {
    const response = await call(key, 'POST', '/login', { body: { userId: 'alice' }, ...(nonce === undefined ? {} : { nonce }) })
    if (response.status !== 200) throw new Error(`login failed: ${response.status} ${await response.text()}`)
    return await response.json() as { accessToken: string, refreshToken: string, tokenType: string }
  }

  return { app, clock, base, reasons, call, login }
}

function payloadOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>
}

t.test('a native client: login, calls, refresh and revoke with DPoP-bound tokens, no cookie', async (t) => {
  for (const alg of ['ES256', 'EdDSA'] as const) {
    const server = await serve(t)
    const key = await client(alg)
    const loginResponse = await server.call(key, 'POST', '/login', { body: { userId: 'alice' } })
    t.equal(loginResponse.status, 200, `${alg}: login`)
    t.equal(loginResponse.headers.get('set-cookie'), null, `${alg}: no cookie at all`)
    const issued = await loginResponse.json() as { accessToken: string, refreshToken: string, tokenType: string }
    t.equal(issued.tokenType, 'DPoP')
    t.type(issued.refreshToken, 'string', 'the refresh token travels in the body')
    t.same(payloadOf(issued.accessToken).cnf, { jkt: key.jkt }, 'the token names the key (cnf.jkt)')

    const me = await server.call(key, 'GET', '/me?x=1#f', { token: issued.accessToken })
    t.equal(me.status, 200, `${alg}: a call with a fresh proof (htu compared without the query)`)
    const { sid } = await me.json() as { sid: string }

    const refreshed = await server.call(key, 'POST', '/refresh', { body: { refreshToken: issued.refreshToken } })
    t.equal(refreshed.status, 200, `${alg}: refresh with a proof of the same key`)
    t.equal(refreshed.headers.get('set-cookie'), null)
    const next = await refreshed.json() as { accessToken: string, refreshToken: string, tokenType: string }
    t.equal(next.tokenType, 'DPoP')
    t.not(next.refreshToken, issued.refreshToken, 'the refresh token rotates')
    const again = await server.call(key, 'GET', '/me', { token: next.accessToken })
    t.equal(again.status, 200)
    t.equal((await again.json() as { sid: string }).sid, sid, 'the same session')

    t.equal((await server.call(key, 'POST', '/logout', { token: next.accessToken })).status, 204, `${alg}: revoke`)
    const after = await server.call(key, 'GET', '/me', { token: next.accessToken })
    t.equal(after.status, 401, 'revoked: refused')
    t.equal(after.headers.get('www-authenticate'), `${CHALLENGE}"invalid_token"`, 'in the scheme the request used, DPoP (RFC 9449 §7.1)')
    t.equal(server.reasons.at(-1), 'unknown_session')
    const forged = await server.call(key, 'GET', '/me', { token: `${next.accessToken.slice(0, -4)}AAAA` })
    t.equal(forged.status, 401, 'a forged token presented as DPoP')
    t.equal(forged.headers.get('www-authenticate'), `${CHALLENGE}"invalid_token"`)
    t.equal(server.reasons.at(-1), 'invalid_token')
  }
})

t.test('a login without a proof gets the cookie binding, beside DPoP clients', async (t) => {
  const server = await serve(t, { secureCookies: false, development: true })
  const response = await fetch(`${server.base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId: 'bob' }) })
  t.equal(response.status, 200)
  const issued = await response.json() as { accessToken: string, tokenType: string }
  t.equal(issued.tokenType, 'Bearer')
  t.match(response.headers.get('set-cookie'), /sg-fp=/, 'the fingerprint cookie is set')
  t.equal(payloadOf(issued.accessToken).cnf, undefined, 'no cnf in a cookie-bound token')
  // Presented as DPoP, a cookie-bound token is refused: it names no key.
  const key = await client()
  const asDpop = await server.call(key, 'GET', '/me', { token: issued.accessToken })
  t.equal(asDpop.status, 401)
  t.equal(asDpop.headers.get('www-authenticate'), challenge('invalid_token', 'dpop_bound_token'))
  t.equal(server.reasons.at(-1), 'dpop_bound_token')
})

t.test('with dpop on, a refused Bearer request gets the Bearer challenge, and a DPoP one needs no CSRF header under a cross-site cookie policy', async (t) => {
  const server = await serve(t, { cookies: { sameSite: 'none', partitioned: true }, refresh: { allowedOrigins: ['https://app.example'] } })
  const bearer = await fetch(`${server.base}/me`, { headers: { authorization: 'Bearer not.a.token' } })
  t.equal(bearer.status, 401)
  t.equal(bearer.headers.get('www-authenticate'), 'Bearer realm="session", error="invalid_token"', 'a Bearer refusal keeps its scheme')
  const key = await client()
  const { accessToken } = await server.login(key)
  // An unsafe method, no X-Requested-With, no Origin: a DPoP request carries no cookie for a page to ride on.
  const regenerated = await server.call(key, 'POST', '/regenerate', { token: accessToken })
  t.equal(regenerated.status, 200, 'POST with a DPoP token and proof')
  t.equal((await regenerated.json() as { tokenType: string }).tokenType, 'DPoP')
})

t.test('refusals of a DPoP-bound request, each with its reason and challenge', async (t) => {
  const server = await serve(t)
  const key = await client()
  const { accessToken } = await server.login(key)
  const { base, clock } = server
  const me = `${base}/me`
  const cases: Array<{ name: string, reason: string, error: string, token?: string, scheme?: string, dpop?: () => Promise<string> }> = [
    { name: 'wrong htm', reason: 'dpop_htm_mismatch', error: 'invalid_dpop_proof', dpop: async () => await proof(key, { htm: 'POST', htu: me, iat: clock.read(), accessToken }) },
    { name: 'wrong htu (path)', reason: 'dpop_htu_mismatch', error: 'invalid_dpop_proof', dpop: async () => await proof(key, { htm: 'GET', htu: `${base}/other`, iat: clock.read(), accessToken }) },
    { name: 'wrong htu (origin)', reason: 'dpop_htu_mismatch', error: 'invalid_dpop_proof', dpop: async () => await proof(key, { htm: 'GET', htu: 'http://elsewhere.example/me', iat: clock.read(), accessToken }) },
    { name: 'htu not a string', reason: 'dpop_htu_mismatch', error: 'invalid_dpop_proof', dpop: async () => await proof(key, { htm: 'GET', htu: 42 as unknown as string, iat: clock.read(), accessToken }) },
    { name: 'htu not a URL', reason: 'dpop_htu_mismatch', error: 'invalid_dpop_proof', dpop: async () => await proof(key, { htm: 'GET', htu: 'not a url', iat: clock.read(), accessToken }) },
    { name: 'stale iat', reason: 'dpop_stale_proof', error: 'invalid_dpop_proof', dpop: async () => await proof(key, { htm: 'GET', htu: me, iat: clock.read() - 61_000, accessToken }) },
    { name: 'future iat', reason: 'dpop_stale_proof', error: 'invalid_dpop_proof', dpop: async () => await proof(key, { htm: 'GET', htu: me, iat: clock.read() + 61_000, accessToken }) },
    { name: 'ath of another token', reason: 'dpop_ath_mismatch', error: 'invalid_dpop_proof', dpop: async () => await proof(key, { htm: 'GET', htu: me, iat: clock.read(), accessToken: `${accessToken}x` }) },
    { name: 'no ath', reason: 'dpop_ath_mismatch', error: 'invalid_dpop_proof', dpop: async () => await proof(key, { htm: 'GET', htu: me, iat: clock.read() }) },
    { name: "another key's proof", reason: 'dpop_key_mismatch', error: 'invalid_dpop_proof', dpop: async () => await proof(await client(), { htm: 'GET', htu: me, iat: clock.read(), accessToken }) },
    { name: 'not a dpop+jwt', reason: 'dpop_invalid_proof', error: 'invalid_dpop_proof', dpop: async () => await proof(key, { htm: 'GET', htu: me, iat: clock.read(), accessToken, header: { typ: 'JWT' } }) },
    { name: 'not a JWS', reason: 'dpop_invalid_proof', error: 'invalid_dpop_proof', dpop: async () => 'not-a-proof' },
    { name: 'no jti', reason: 'dpop_invalid_proof', error: 'invalid_dpop_proof', dpop: async () => await proof(key, { htm: 'GET', htu: me, iat: clock.read(), accessToken, jti: '' }) },
    { name: 'a Bearer downgrade', reason: 'dpop_bound_token', error: 'invalid_token', scheme: 'Bearer', dpop: async () => await proof(key, { htm: 'GET', htu: me, iat: clock.read(), accessToken }) }
  ]
  for (const c of cases) {
    const response = await fetch(me, { headers: { authorization: `${c.scheme ?? 'DPoP'} ${accessToken}`, dpop: await c.dpop!() } })
    t.equal(response.status, 401, `${c.name}: 401`)
    t.equal(response.headers.get('www-authenticate'), challenge(c.error, c.reason as keyof typeof DPOP_DESCRIPTIONS), `${c.name}: challenge, which says what failed`)
    t.equal(server.reasons.at(-1), c.reason, `${c.name}: reason`)
  }
  const long = await fetch(me, { headers: { authorization: `DPoP${' '.repeat(8192)}${accessToken}`, dpop: await proof(key, { htm: 'GET', htu: me, iat: clock.read(), accessToken }) } })
  t.equal(long.status, 401, 'an Authorization header over 8 KiB')
  t.equal(server.reasons.at(-1), 'malformed_token')
  const missing = await fetch(me, { headers: { authorization: `DPoP ${accessToken}` } })
  t.equal(missing.status, 401)
  t.equal(missing.headers.get('www-authenticate'), challenge('invalid_dpop_proof', 'dpop_missing_proof'))
  t.equal(server.reasons.at(-1), 'dpop_missing_proof', 'no proof')
  const good = await proof(key, { htm: 'GET', htu: me, iat: clock.read(), accessToken })
  const twice = await fetch(me, { headers: [['authorization', `DPoP ${accessToken}`], ['dpop', good], ['dpop', good]] })
  t.equal(twice.status, 401, 'two proofs')
  t.equal(server.reasons.at(-1), 'dpop_invalid_proof')

  // A proof signed with HS256, or carrying a private key, is refused whatever the options.
  const { SignJWT, exportJWK } = await jose
  const hs = await new SignJWT({ htm: 'GET', htu: me, jti: 'hs', ath: createHash('sha256').update(accessToken).digest('base64url') })
    .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: 'c2VjcmV0' } as Record<string, string> }).setIssuedAt(Math.floor(clock.read() / 1000)).sign(Buffer.from('secret'))
  t.equal((await fetch(me, { headers: { authorization: `DPoP ${accessToken}`, dpop: hs } })).status, 401, 'symmetric alg')
  t.equal(server.reasons.at(-1), 'dpop_invalid_proof')
  const privateJwk = await exportJWK(key.privateKey)
  const withPrivate = await proof(key, { htm: 'GET', htu: me, iat: clock.read(), accessToken, header: { jwk: privateJwk } })
  t.equal((await fetch(me, { headers: { authorization: `DPoP ${accessToken}`, dpop: withPrivate } })).status, 401, 'private key in jwk')
  t.equal(server.reasons.at(-1), 'dpop_invalid_proof')

  t.equal((await server.call(key, 'GET', '/me', { token: accessToken })).status, 200, 'the control: a good proof passes')
})

async function replayAcrossInstances (t: Test, stores: [SessionStore, SessionStore]): Promise<void> {
  const clock = new TestClock()
  const a = await serve(t, {}, { clock, store: stores[0] })
  const b = await serve(t, {}, { clock, store: stores[1] })
  const key = await client()
  const { accessToken } = await a.login(key)
  const dpop = await proof(key, { htm: 'GET', htu: `${a.base}/me`, iat: clock.read(), accessToken })
  const headers = { authorization: `DPoP ${accessToken}`, dpop }
  t.equal((await fetch(`${a.base}/me`, { headers })).status, 200, 'first use')
  const replayed = await fetch(`${a.base}/me`, { headers })
  t.equal(replayed.status, 401, 'replayed on the same instance')
  t.equal(replayed.headers.get('www-authenticate'), challenge('invalid_dpop_proof', 'dpop_replay'))
  t.equal(a.reasons.at(-1), 'dpop_replay')
  // Instance b behind the same host name: the store remembers the jti.
  const host = new URL(a.base).host
  const onB = await b.app.inject({ method: 'GET', url: '/me', headers: { ...headers, host } })
  t.equal(onB.statusCode, 401, 'replayed on another instance')
  await settle()
  t.equal(b.reasons.at(-1), 'dpop_replay')
  const fresh = await proof(key, { htm: 'GET', htu: `${a.base}/me`, iat: clock.read(), accessToken })
  t.equal((await b.app.inject({ method: 'GET', url: '/me', headers: { ...headers, dpop: fresh, host } })).statusCode, 200, 'the control: a fresh proof passes on b')
  clock.advance(60_000)
  t.equal((await fetch(`${a.base}/me`, { headers })).status, 401, 'still refused at the edge of the window')
  t.equal(a.reasons.at(-1), 'dpop_replay')
}

t.test('a replayed proof is refused, on any instance sharing the store, for as long as its iat is accepted (memory store)', async (t) => {
  const store = memoryStore()
  await replayAcrossInstances(t, [store, store])
})

redisTest(t, 'a replayed proof is refused on another instance with its own connection to Redis', async (t) => {
  const prefix = testPrefix(t)
  await replayAcrossInstances(t, [redisStore({ connection: REDIS_URL, prefix }), redisStore({ connection: REDIS_URL, prefix })])
})

/**
 * Two instances on one store, a's clock a second ahead of b's, a 2 s window: a
 * proof dated as far ahead as a accepts is taken once on a, then replayed on b
 * at the last moment b's clock accepts its iat, 5 s later. (With Redis, the
 * replay 4.3 s later that passed once Redis had expired the jti in real time
 * is checked through the key's TTL.)
 */
async function replayUnderSkew (t: Test, stores: [SessionStore, SessionStore]): Promise<void> {
  const clockA = new TestClock()
  const clockB = new TestClock()
  clockA.advance(1000)
  const a = await serve(t, { dpop: { window: '2s' } }, { clock: clockA, store: stores[0] })
  const b = await serve(t, { dpop: { window: '2s' } }, { clock: clockB, store: stores[1] })
  const advance = (ms: number): void => { clockA.advance(ms); clockB.advance(ms) }
  const key = await client()
  const { accessToken } = await a.login(key)
  const host = new URL(a.base).host
  // iat in whole seconds, 2 s ahead of a's clock: the most a accepts
  const headers = { authorization: `DPoP ${accessToken}`, dpop: await proof(key, { htm: 'GET', htu: `${a.base}/me`, iat: clockA.read() + 2000, accessToken }), host }
  const onB = async (): Promise<number> => {
    const { statusCode } = await b.app.inject({ method: 'GET', url: '/me', headers })
    await settle() // the refusal's event
    return statusCode
  }
  t.equal((await a.app.inject({ method: 'GET', url: '/me', headers })).statusCode, 200, 'first use, on a')
  t.equal(await onB(), 401, 'replayed at once on b')
  t.equal(b.reasons.at(-1), 'dpop_stale_proof', 'too far ahead for b: nothing counted')
  // No replay in between: a refused one would count again and carry the jti further.
  advance(5000)
  t.equal(await onB(), 401, 'replayed on b at the last moment its clock accepts the iat')
  t.equal(b.reasons.at(-1), 'dpop_replay')
  advance(1)
  t.equal(await onB(), 401, 'and then too old for b')
  t.equal(b.reasons.at(-1), 'dpop_stale_proof')
}

t.test('a proof taken on an instance whose clock is ahead stays refused on one behind it (memory store)', async (t) => {
  const store = memoryStore()
  await replayUnderSkew(t, [store, store])
})

redisTest(t, 'a proof taken on an instance whose clock is ahead stays refused on one behind it, and Redis keeps its jti past the clock-skew allowance', async (t) => {
  const prefix = testPrefix(t)
  await replayUnderSkew(t, [redisStore({ connection: REDIS_URL, prefix }), redisStore({ connection: REDIS_URL, prefix })])
  // Redis removes a key in real time whatever the instances' clocks say: the
  // jti must outlive the window, the future tolerance and the allowance.
  const admin = testClient()
  t.teardown(() => admin.disconnect())
  const jtis = await admin.keys(`${prefix}c:dpop-jti:*`)
  t.equal(jtis.length, 2, 'the login\'s proof and the replayed one')
  for (const jti of jtis) t.ok(await admin.pttl(jti) > 4000 + CLOCK_SKEW_ALLOWANCE_MS - 10_000, 'kept for the window, the future tolerance and the clock-skew allowance')
})

t.test('a proof dated in the future is accepted only within the tolerance', async (t) => {
  for (const { options, ahead, status } of [
    { options: {}, ahead: 5000, status: 200 },
    { options: {}, ahead: 6000, status: 401 },
    { options: {}, ahead: 30_000, status: 401 },
    { options: { clockTolerance: '10s' }, ahead: 10_000, status: 200 },
    { options: { clockTolerance: '10s' }, ahead: 11_000, status: 401 },
    { options: { dpop: { window: '2s' } }, ahead: 2000, status: 200 },
    { options: { dpop: { window: '2s' } }, ahead: 3000, status: 401 }
  ]) {
    const server = await serve(t, options as Partial<SessionGuardOptions>)
    const key = await client()
    const { accessToken } = await server.login(key)
    const dpop = await proof(key, { htm: 'GET', htu: `${server.base}/me`, iat: server.clock.read() + ahead, accessToken })
    const response = await server.call(key, 'GET', '/me', { token: accessToken, dpop })
    t.equal(response.status, status, `${JSON.stringify(options)}: ${ahead} ms ahead answers ${status}`)
    if (status === 401) t.equal(server.reasons.at(-1), 'dpop_stale_proof')
  }
})

t.test('a memory store at maxCounters makes room with expired jtis, never with a live one', async (t) => {
  // Two instances on one store: one counts a jti for 60 s + the 5 s future tolerance, the other for 5 s + 5 s.
  const clock = new TestClock()
  const store = memoryStore({ maxCounters: 12 })
  const long = await serve(t, { dpop: { window: '60s' } }, { clock, store })
  const short = await serve(t, { dpop: { window: '5s' } }, { clock, store })
  const key = await client()
  const { accessToken } = await long.login(key)
  const shortToken = (await short.login(key)).accessToken
  const held = async (): Promise<number> => {
    let count = 0
    for await (const batch of store.scanCounters(100, clock.now)) count += batch.length
    return count
  }
  const dpop = await proof(key, { htm: 'GET', htu: `${long.base}/me`, iat: clock.read(), accessToken })
  const headers = { authorization: `DPoP ${accessToken}`, dpop }
  const older = await held()
  t.equal((await fetch(`${long.base}/me`, { headers })).status, 200, 'first use')
  // Short-lived jtis, used after it, fill the store.
  let shortJtis = 0
  while (await held() < 12) {
    t.equal((await short.call(key, 'GET', '/me', { token: shortToken })).status, 200)
    shortJtis++
  }
  // By use alone, the counters held before it would go first, then its jti.
  t.ok(shortJtis > older, `${shortJtis} short-lived jtis, more than the ${older} counters older than its jti`)
  clock.advance(11_000)
  for (let i = 0; i < shortJtis; i++) t.equal((await long.call(key, 'GET', '/me', { token: accessToken })).status, 200)
  t.match(await store.stats(), { counterEvictions: 0 }, 'only expired jtis made room')
  const replayed = await fetch(`${long.base}/me`, { headers })
  t.equal(replayed.status, 401, 'the replay is still refused')
  t.equal(long.reasons.at(-1), 'dpop_replay')
})

t.test('server nonces: use_dpop_nonce at login, at refresh and on a call, then accepted', async (t) => {
  const server = await serve(t, { dpop: { nonce: true, window: '60s' } })
  const key = await client()
  const first = await server.call(key, 'POST', '/login', { body: { userId: 'alice' } })
  t.equal(first.status, 400, 'a login without a nonce: 400 (RFC 9449 §8)')
  t.equal((await first.json() as { code: string }).code, 'FST_SESSION_GUARD_USE_DPOP_NONCE')
  t.equal(first.headers.get('www-authenticate'), challenge('use_dpop_nonce', 'dpop_nonce_required'))
  t.equal(server.reasons.at(-1), 'dpop_nonce_required')
  const nonce = first.headers.get('dpop-nonce') as string
  t.match(nonce, /^\d+\.[A-Za-z0-9_-]{43}$/)
  const { accessToken, refreshToken } = await server.login(key, nonce)

  const without = await server.call(key, 'GET', '/me', { token: accessToken })
  t.equal(without.status, 401, 'a call without the nonce')
  t.equal(without.headers.get('www-authenticate'), challenge('use_dpop_nonce', 'dpop_nonce_required'))
  t.equal(without.headers.get('dpop-nonce'), nonce, 'with the current nonce')
  t.equal(server.reasons.at(-1), 'dpop_nonce_required')
  const forged = await server.call(key, 'GET', '/me', { token: accessToken, nonce: `${nonce.split('.')[0]!}.${'A'.repeat(43)}` })
  t.equal(forged.status, 401, 'a forged nonce')
  t.equal(server.reasons.at(-1), 'dpop_nonce_required')
  const good = await server.call(key, 'GET', '/me', { token: accessToken, nonce })
  t.equal(good.status, 200, 'with the nonce')
  t.equal(good.headers.get('dpop-nonce'), null, 'a current nonce is not renewed')

  // The next time step: the nonce still passes, and a fresh one comes back.
  server.clock.advance(60_000)
  const renewed = await server.call(key, 'GET', '/me', { token: accessToken, nonce })
  t.equal(renewed.status, 200, 'a nonce of the previous step passes')
  const fresh = renewed.headers.get('dpop-nonce') as string
  t.not(fresh, null, 'and a fresh nonce comes back')
  t.not(fresh, nonce)
  server.clock.advance(60_000)
  t.equal((await server.call(key, 'GET', '/me', { token: accessToken, nonce })).status, 401, 'two steps old: expired')
  t.equal(server.reasons.at(-1), 'dpop_nonce_required')

  const refreshWithout = await server.call(key, 'POST', '/refresh', { body: { refreshToken } })
  t.equal(refreshWithout.status, 400, 'a refresh without the nonce')
  t.equal((await refreshWithout.json() as { code: string }).code, 'FST_SESSION_GUARD_USE_DPOP_NONCE')
  const refreshed = await server.call(key, 'POST', '/refresh', { body: { refreshToken }, nonce: refreshWithout.headers.get('dpop-nonce') as string })
  t.equal(refreshed.status, 200, 'a refresh with it')
  const renewedAtRefresh = await server.call(key, 'POST', '/refresh', { body: { refreshToken: (await refreshed.json() as { refreshToken: string }).refreshToken }, nonce: fresh })
  t.equal(renewedAtRefresh.status, 200, 'a nonce of the previous step passes at refresh')
  t.not(renewedAtRefresh.headers.get('dpop-nonce'), null, 'and a fresh one comes back')
})

t.test('the refresh token is bound to the key', async (t) => {
  const server = await serve(t)
  const key = await client()
  const { refreshToken } = await server.login(key)
  const other = await server.call(await client(), 'POST', '/refresh', { body: { refreshToken } })
  t.equal(other.status, 401, "another key's proof")
  t.equal(server.reasons.at(-1), 'fingerprint_mismatch')
  // A native client that forgot its proof: told so, not refused as a cross-site request (with or without the CSRF header).
  for (const headers of [{}, { 'x-requested-with': 'x' }] as Array<Record<string, string>>) {
    const noProof = await fetch(`${server.base}/refresh`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ refreshToken }) })
    t.equal(noProof.status, 400, 'no proof, a refresh token in the body: 400')
    t.equal((await noProof.json() as { code: string }).code, 'FST_SESSION_GUARD_INVALID_DPOP_PROOF')
    t.equal(noProof.headers.get('www-authenticate'), `${CHALLENGE}"invalid_dpop_proof", error_description="a refresh token in the body needs a DPoP proof"`)
    t.equal(server.reasons.at(-1), 'dpop_missing_proof')
  }
  const badProof = await server.call(key, 'POST', '/refresh', { body: { refreshToken }, dpop: await proof(key, { htm: 'GET', htu: `${server.base}/refresh`, iat: server.clock.read() }) })
  t.equal(badProof.status, 400, 'a bad proof at the token endpoint: 400')
  t.equal((await badProof.json() as { code: string }).code, 'FST_SESSION_GUARD_INVALID_DPOP_PROOF')
  t.equal(badProof.headers.get('www-authenticate'), `${CHALLENGE}"invalid_dpop_proof", error_description="htm is not the request method"`)
  t.equal(server.reasons.at(-1), 'dpop_htm_mismatch')
  t.equal((await server.call(key, 'POST', '/refresh', { body: { refreshToken } })).status, 200, 'the control: its own key')
})

t.test('a refresh token in the body without a proof is never answered as CSRF; a refresh cookie still is', async (t) => {
  const server = await serve(t, { secureCookies: false, development: true })
  const login = await fetch(`${server.base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId: 'bob' }) })
  const cookie = (login.headers.getSetCookie()).map((line) => line.split(';')[0]).join('; ')
  const withCookie = await fetch(`${server.base}/refresh`, { method: 'POST', headers: { 'content-type': 'application/json', cookie }, body: JSON.stringify({ refreshToken: 'x' }) })
  t.equal(withCookie.status, 403, 'a browser\'s refresh cookie: the CSRF checks apply, body or not')
  t.equal((await withCookie.json() as { code: string }).code, 'FST_SESSION_GUARD_CSRF')

  // With `dpop` off, the body is not where a cookie refresh looks: the usual 401, not a CSRF refusal.
  const off = await serve(t, { dpop: false })
  const noCookie = await off.app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: 'x' } })
  t.equal(noCookie.statusCode, 401)
  t.equal(noCookie.json().code, 'FST_SESSION_GUARD_UNAUTHORIZED')
  await settle()
  t.equal(off.reasons.at(-1), 'missing_refresh_token')
  t.equal((await off.app.inject({ method: 'POST', url: '/refresh', payload: { other: 'x' } })).statusCode, 403, 'nor a token in the body: the CSRF refusal')
})

t.test('a refresh with a made-up refresh token costs no store write: its proof is not even recorded', async (t) => {
  const server = await serve(t)
  const key = await client()
  const { refreshToken } = await server.login(key)
  const dpop = await proof(key, { htm: 'POST', htu: `${server.base}/refresh`, iat: server.clock.read() })
  const madeUp = await server.call(key, 'POST', '/refresh', { body: { refreshToken: `${refreshToken.slice(0, -4)}AAAA` }, dpop })
  t.equal(madeUp.status, 401)
  t.equal(server.reasons.at(-1), 'invalid_refresh_token', 'refused on the token, before its proof was looked at')
  const genuine = await server.call(key, 'POST', '/refresh', { body: { refreshToken }, dpop })
  t.equal(genuine.status, 200, 'the same proof then still passes once: its jti was never kept')
  t.equal((await server.call(key, 'POST', '/refresh', { body: { refreshToken: (await genuine.json() as { refreshToken: string }).refreshToken }, dpop })).status, 400, 'and is a replay after that')
})

t.test('regenerating a DPoP-bound session keeps it bound to the key', async (t) => {
  const server = await serve(t)
  const key = await client()
  const { accessToken } = await server.login(key)
  const response = await server.call(key, 'POST', '/regenerate', { token: accessToken })
  t.equal(response.status, 200)
  t.equal(response.headers.get('set-cookie'), null, 'no fingerprint cookie')
  const next = await response.json() as { accessToken: string, refreshToken: string, tokenType: string }
  t.equal(next.tokenType, 'DPoP')
  t.same(payloadOf(next.accessToken).cnf, { jkt: key.jkt }, 'bound to the same key')
  t.equal((await server.call(key, 'GET', '/me', { token: next.accessToken })).status, 200)
  t.equal((await server.call(await client(), 'GET', '/me', { token: next.accessToken })).status, 401, 'not to another')
})

t.test('with dpop off, a DPoP-bound token is refused and a DPoP header at login is ignored', async (t) => {
  const clock = new TestClock()
  const store = memoryStore()
  const on = await serve(t, {}, { clock, store })
  const off = await serve(t, { dpop: false, secureCookies: false, development: true }, { clock, store })
  const key = await client()
  const { accessToken } = await on.login(key)
  const response = await off.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${accessToken}` } })
  t.equal(response.statusCode, 401)
  t.equal(response.headers['www-authenticate'], 'Bearer realm="session", error="invalid_token"')
  await settle()
  t.equal(off.reasons.at(-1), 'dpop_bound_token')
  const asDpop = await off.app.inject({ method: 'GET', url: '/me', headers: { authorization: `DPoP ${accessToken}` } })
  await settle()
  t.equal(off.reasons.at(-1), 'malformed_token', 'the DPoP scheme is not read with dpop off')
  t.equal(asDpop.statusCode, 401)
  const issued = await off.login(key)
  t.equal(issued.tokenType, 'Bearer', 'a proof at login is ignored with dpop off')
})

interface Refused { ticket: string, sessions: Array<{ id: string }> }

/** Two DPoP sessions of alice under `maxSessionsPerUser: 2, onSessionLimit: 'reject'`, and a third key's login refused with a ticket. */
async function atLimit (t: Test, options: Partial<SessionGuardOptions> = {}): Promise<{ server: Server, first: { key: Client, accessToken: string, sid: string }, key: Client, refused: Refused, response: Response }> {
  const server = await serve(t, { maxSessionsPerUser: 2, onSessionLimit: 'reject', routes: { prefix: '/sessions' }, ...options })
  const sessions = []
  for (let i = 0; i < 2; i++) {
    const key = await client()
    const { accessToken } = await server.login(key)
    const me = await server.call(key, 'GET', '/me', { token: accessToken })
    sessions.push({ key, accessToken, sid: (await me.json() as { sid: string }).sid })
  }
  const key = await client()
  const response = await server.call(key, 'POST', '/login', { body: { userId: 'alice' } })
  return { server, first: sessions[0]!, key, refused: await response.json() as Refused, response }
}

t.test('a DPoP login refused at the session limit completes through resolve-limit with a proof of its key', async (t) => {
  const { server, first, key, refused, response } = await atLimit(t)
  t.equal(response.status, 409, 'the third login is refused')
  t.equal(response.headers.get('set-cookie'), null, 'with no fingerprint cookie: the ticket is bound to the key')
  t.type(refused.ticket, 'string')
  t.equal(refused.sessions.length, 2)
  t.equal(payloadOf(refused.ticket).fph, `dpop:${key.jkt}`, 'the ticket names the key, where a cookie login\'s names its fingerprint')

  const resolved = await server.call(key, 'POST', '/sessions/resolve-limit', { body: { ticket: refused.ticket, revoke: first.sid } })
  t.equal(resolved.status, 200, 'completed with a proof of the same key')
  t.equal(resolved.headers.get('set-cookie'), null, 'no cookie at all')
  const issued = await resolved.json() as { accessToken: string, refreshToken: string, tokenType: string, sessionId: string }
  t.equal(issued.tokenType, 'DPoP', 'the same answer as a DPoP login')
  t.type(issued.refreshToken, 'string', 'the refresh token travels in the body')
  t.same(payloadOf(issued.accessToken).cnf, { jkt: key.jkt }, 'the token names the key')

  t.equal((await server.call(first.key, 'GET', '/me', { token: first.accessToken })).status, 401, 'the session named is signed out')
  t.equal(server.reasons.at(-1), 'unknown_session')
  const me = await server.call(key, 'GET', '/me', { token: issued.accessToken })
  t.equal(me.status, 200, 'the new token works with a proof of the key')
  t.equal((await me.json() as { sid: string }).sid, issued.sessionId)
  t.equal((await server.call(first.key, 'GET', '/me', { token: issued.accessToken })).status, 401, 'and with no other key')
  t.equal(server.reasons.at(-1), 'dpop_key_mismatch')
  const refreshed = await server.call(key, 'POST', '/refresh', { body: { refreshToken: issued.refreshToken } })
  t.equal(refreshed.status, 200, 'its refresh token is bound to the key as well')
  t.equal((await refreshed.json() as { tokenType: string }).tokenType, 'DPoP')
})

t.test('with SameSite=Lax cookies, a DPoP login\'s resolve-limit needs no CSRF header: it proves its key, it sends no cookie', async (t) => {
  const { server, first, key, refused } = await atLimit(t, { cookies: { sameSite: 'lax' } })
  const resolved = await server.call(key, 'POST', '/sessions/resolve-limit', { body: { ticket: refused.ticket, revoke: first.sid } })
  t.equal(resolved.status, 200, 'no x-requested-with, no Origin: still completed')
})

t.test('resolve-limit refuses a DPoP login\'s ticket without a proof of its key', async (t) => {
  const { server, first, key, refused } = await atLimit(t)
  const body = { ticket: refused.ticket, revoke: first.sid }
  const send = async (headers: Record<string, string>): Promise<Response> => await fetch(`${server.base}/sessions/resolve-limit`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body)
  })

  const other = await server.call(await client(), 'POST', '/sessions/resolve-limit', { body })
  t.equal(other.status, 401, 'another key\'s proof')
  t.equal(server.reasons.at(-1), 'fingerprint_mismatch')
  t.equal(other.headers.get('set-cookie'), null)

  t.equal((await send({})).status, 401, 'no proof')
  t.equal(server.reasons.at(-1), 'missing_fingerprint')

  // A real fingerprint cookie, of a browser's login.
  const bob = await fetch(`${server.base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId: 'bob' }) })
  const fingerprint = /(__Host-sg-fp=[^;]+)/.exec(bob.headers.get('set-cookie') as string)![1]!
  t.equal((await send({ cookie: fingerprint })).status, 401, 'a fingerprint cookie instead of a proof')
  t.equal(server.reasons.at(-1), 'fingerprint_mismatch')

  const elsewhere = await server.call(key, 'POST', '/sessions/resolve-limit', {
    body, dpop: await proof(key, { htm: 'POST', htu: `${server.base}/login`, iat: server.clock.read() })
  })
  t.equal(elsewhere.status, 400, 'a proof of the key made for another URL')
  t.equal(elsewhere.headers.get('www-authenticate'), `${CHALLENGE}"invalid_dpop_proof", error_description="htu is not the request URL"`)
  t.equal(server.reasons.at(-1), 'dpop_htu_mismatch')
  const replayed = await proof(key, { htm: 'POST', htu: `${server.base}/sessions/resolve-limit`, iat: server.clock.read() })
  const once = await server.call(key, 'POST', '/sessions/resolve-limit', { body: { ...body, revoke: 'no-such-session' }, dpop: replayed })
  t.equal(once.status, 401, 'a good proof, naming a session the ticket did not offer')
  t.equal(server.reasons.at(-1), 'unknown_session', 'the key passed: the next check refused')
  t.equal((await server.call(key, 'POST', '/sessions/resolve-limit', { body, dpop: replayed })).status, 400, 'a replayed proof of the key')
  t.equal(server.reasons.at(-1), 'dpop_replay')

  t.equal((await server.call(first.key, 'GET', '/me', { token: first.accessToken })).status, 200, 'no refusal signed anything out')
  const resolved = await server.call(key, 'POST', '/sessions/resolve-limit', { body })
  t.equal(resolved.status, 200, 'nor used the ticket: a proof of the key still completes it')
})

t.test('resolve-limit asks a DPoP client for a server nonce when nonces are required', async (t) => {
  const server = await serve(t, { dpop: { nonce: true }, maxSessionsPerUser: 1, onSessionLimit: 'reject', routes: { prefix: '/sessions' } })
  const firstKey = await client()
  const nonce = (await server.call(firstKey, 'POST', '/login', { body: { userId: 'alice' } })).headers.get('dpop-nonce') as string
  const { accessToken } = await server.login(firstKey, nonce)
  const { sid } = await (await server.call(firstKey, 'GET', '/me', { token: accessToken, nonce })).json() as { sid: string }
  const key = await client()
  const refused = await server.call(key, 'POST', '/login', { body: { userId: 'alice' }, nonce })
  t.equal(refused.status, 409)
  const body = { ticket: (await refused.json() as Refused).ticket, revoke: sid }
  const without = await server.call(key, 'POST', '/sessions/resolve-limit', { body })
  t.equal(without.status, 400, 'a proof without the nonce')
  t.equal((await without.json() as { code: string }).code, 'FST_SESSION_GUARD_USE_DPOP_NONCE')
  t.equal(without.headers.get('www-authenticate'), challenge('use_dpop_nonce', 'dpop_nonce_required'))
  t.equal(without.headers.get('dpop-nonce'), nonce)
  const resolved = await server.call(key, 'POST', '/sessions/resolve-limit', { body, nonce })
  t.equal(resolved.status, 200, 'with it')
  t.equal((await resolved.json() as { tokenType: string }).tokenType, 'DPoP')
})

t.test('a browser login\'s ticket stays bound to its fingerprint cookie: a proof does not complete it', async (t) => {
  const server = await serve(t, { maxSessionsPerUser: 1, onSessionLimit: 'reject', routes: { prefix: '/sessions' }, secureCookies: false, development: true })
  const browserLogin = async (): Promise<Response> => await fetch(`${server.base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId: 'bob' }) })
  const first = await browserLogin()
  const { sid } = await (await fetch(`${server.base}/me`, {
    headers: { authorization: `Bearer ${(await first.json() as { accessToken: string }).accessToken}`, cookie: /(sg-fp=[^;]+)/.exec(first.headers.get('set-cookie') as string)![1]! }
  })).json() as { sid: string }
  const refused = await browserLogin()
  t.equal(refused.status, 409)
  const cookie = /(sg-fp=[^;]+)/.exec(refused.headers.get('set-cookie') as string)![1]!
  const body = { ticket: (await refused.json() as Refused).ticket, revoke: sid }
  const withProof = await server.call(await client(), 'POST', '/sessions/resolve-limit', { body })
  t.equal(withProof.status, 401, 'a proof of any key instead of the cookie')
  t.equal(server.reasons.at(-1), 'fingerprint_mismatch')
  const resolved = await fetch(`${server.base}/sessions/resolve-limit`, { method: 'POST', headers: { 'content-type': 'application/json', cookie }, body: JSON.stringify(body) })
  t.equal(resolved.status, 200, 'the fingerprint cookie completes it')
  t.equal((await resolved.json() as { tokenType: string }).tokenType, 'Bearer', 'a cookie-bound session')
})

const API = 'https://api.example'

t.test('dpop.origins: a proof names the configured origin, never the Host the request was sent with', async (t) => {
  const { server, first, key, refused } = await atLimit(t, { dpop: { origins: [API, 'https://api.example.eu:8443'] } })
  const { base, clock } = server
  // atLimit logged two clients in and had a third refused, all with proofs for API though the requests went to base.
  t.not(new URL(base).origin, API, 'the requests go to another origin than the proofs name')
  const { refreshToken } = await (await server.call(key, 'POST', '/login', { body: { userId: 'bob' } })).json() as { refreshToken: string }
  t.equal((await server.call(first.key, 'GET', '/me?x=1', { token: first.accessToken })).status, 200, 'a call, the query ignored')
  const eu = await proof(first.key, { htm: 'GET', htu: 'https://api.example.eu:8443/me', iat: clock.read(), accessToken: first.accessToken })
  t.equal((await server.call(first.key, 'GET', '/me', { token: first.accessToken, dpop: eu })).status, 200, 'the second origin listed')

  // The request's own origin, as its Host header names it: what the check compared before the option.
  const atHost = async (holder: Client, method: string, path: string, token?: string): Promise<string> =>
    await proof(holder, { htm: method, htu: `${base}${path}`, iat: clock.read(), ...(token === undefined ? {} : { accessToken: token }) })
  const call = await fetch(`${base}/me`, { headers: { authorization: `DPoP ${first.accessToken}`, dpop: await atHost(first.key, 'GET', '/me', first.accessToken) } })
  t.equal(call.status, 401, 'a call with a proof for the request\'s Host')
  t.equal((await call.json() as { code: string }).code, 'FST_SESSION_GUARD_UNAUTHORIZED')
  t.equal(call.headers.get('www-authenticate'), challenge('invalid_dpop_proof', 'dpop_htu_mismatch'))
  t.equal(server.reasons.at(-1), 'dpop_htu_mismatch')

  const endpoints: Array<[string, string, unknown]> = [
    ['login', '/login', { userId: 'alice' }],
    ['refresh', '/refresh', { refreshToken }],
    ['resolve-limit', '/sessions/resolve-limit', { ticket: refused.ticket, revoke: first.sid }]
  ]
  for (const [name, path, body] of endpoints) {
    const response = await server.call(key, 'POST', path, { body, dpop: await atHost(key, 'POST', path) })
    t.equal(response.status, 400, `${name} with a proof for the request's Host`)
    t.equal((await response.json() as { code: string }).code, 'FST_SESSION_GUARD_INVALID_DPOP_PROOF')
    t.equal(response.headers.get('www-authenticate'), challenge('invalid_dpop_proof', 'dpop_htu_mismatch'))
    t.equal(server.reasons.at(-1), 'dpop_htu_mismatch', `${name}: reason`)
  }

  const me = `${API}/me`
  const wrong: Array<[string, string]> = [
    ['another path under the origin', `${API}/other`],
    ['the origin over http', 'http://api.example/me'],
    ['the origin on another port', 'https://api.example:8443/me'],
    ['a subdomain of the origin', 'https://evil.api.example/me']
  ]
  for (const [name, htu] of wrong) {
    const response = await server.call(first.key, 'GET', '/me', { token: first.accessToken, dpop: await proof(first.key, { htm: 'GET', htu, iat: clock.read(), accessToken: first.accessToken }) })
    t.equal(response.status, 401, name)
    t.equal(server.reasons.at(-1), 'dpop_htu_mismatch', `${name}: reason`)
  }
  t.equal((await server.call(first.key, 'GET', '/me', { token: first.accessToken, dpop: await proof(first.key, { htm: 'GET', htu: `${me}?q#f`, iat: clock.read(), accessToken: first.accessToken }) })).status, 200, 'the control: the query and fragment of htu ignored')

  // The same endpoints with proofs for the configured origin (the login: above): every refusal was the htu's.
  t.equal((await server.call(key, 'POST', '/refresh', { body: { refreshToken } })).status, 200, 'refresh')
  t.equal((await server.call(key, 'POST', '/sessions/resolve-limit', { body: { ticket: refused.ticket, revoke: first.sid } })).status, 200, 'resolve-limit')
})

t.test('dpop.origins: a Host or X-Forwarded-Host the client chooses does not move the origin', async (t) => {
  const proofFor = async (server: Server, key: Client, accessToken: string, htu: string): Promise<string> => await proof(key, { htm: 'GET', htu, iat: server.clock.read(), accessToken })
  const spoofed = { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' }
  for (const trustProxy of [false, true]) {
    const htu = trustProxy ? 'https://evil.example/me' : 'http://evil.example/me'
    // Without the option, the origin is the one the request's headers name: a proof made for it passes.
    const open = await serve(t, {}, undefined, trustProxy)
    const openKey = await client()
    const openToken = (await open.login(openKey)).accessToken
    const before = await open.app.inject({ method: 'GET', url: '/me', headers: { ...spoofed, authorization: `DPoP ${openToken}`, dpop: await proofFor(open, openKey, openToken, htu) } })
    t.equal(before.statusCode, 200, `trustProxy ${trustProxy}, no origins: the Host the client sent decides`)

    const pinned = await serve(t, { dpop: { origins: [API] } }, undefined, trustProxy)
    const key = await client()
    const { accessToken } = await pinned.login(key)
    const after = await pinned.app.inject({ method: 'GET', url: '/me', headers: { ...spoofed, authorization: `DPoP ${accessToken}`, dpop: await proofFor(pinned, key, accessToken, htu) } })
    t.equal(after.statusCode, 401, `trustProxy ${trustProxy}, origins: refused`)
    t.equal(after.headers['www-authenticate'], challenge('invalid_dpop_proof', 'dpop_htu_mismatch'))
    await settle()
    t.equal(pinned.reasons.at(-1), 'dpop_htu_mismatch')
    const good = await pinned.app.inject({ method: 'GET', url: '/me', headers: { ...spoofed, authorization: `DPoP ${accessToken}`, dpop: await proofFor(pinned, key, accessToken, `${API}/me`) } })
    t.equal(good.statusCode, 200, `trustProxy ${trustProxy}, origins: the control, a proof for the configured origin, whatever the Host`)
  }
})

t.test('dpop options', async (t) => {
  t.equal(parseDpopOptions(undefined), undefined)
  t.equal(parseDpopOptions(false), undefined)
  t.same(parseDpopOptions(true), { algorithms: ['ES256', 'EdDSA'], windowMs: 60_000, nonce: false, origins: undefined })
  t.same(parseDpopOptions({ algorithms: ['ES384'], window: '30s', nonce: true }), { algorithms: ['ES384'], windowMs: 30_000, nonce: true, origins: undefined })
  t.same(parseDpopOptions({ origins: [API, 'http://127.0.0.1:3000'] })?.origins, new Set([API, 'http://127.0.0.1:3000']))
  t.throws(() => parseDpopOptions({ algorithms: ['HS256' as 'ES256'] }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /dpop\.algorithms/ })
  t.throws(() => parseDpopOptions({ algorithms: [] }), { code: 'FST_SESSION_GUARD_INVALID_OPTION' })
  t.throws(() => parseDpopOptions({ nonce: 'yes' as unknown as boolean }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /dpop\.nonce/ })
  t.throws(() => parseDpopOptions({ window: 0 }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /dpop\.window/ })
  t.throws(() => parseDpopOptions({ window: 300_001 }), {
    code: 'FST_SESSION_GUARD_INVALID_OPTION',
    message: 'Invalid option "dpop.window": must be at most \'5m\': a proof (stolen, or logged on the way) is good for that long, and each proof\'s jti is held in the store as long, got 300001'
  })
  t.throws(() => parseDpopOptions({ window: '1d' }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /at most '5m'/ })
  t.equal(parseDpopOptions({ window: '5m' })?.windowMs, 300_000, 'five minutes is the most')
  t.throws(() => parseDpopOptions({ nonces: true } as unknown as boolean), { code: 'FST_SESSION_GUARD_INVALID_OPTION' })
  t.throws(() => parseDpopOptions('yes' as unknown as boolean), { code: 'FST_SESSION_GUARD_INVALID_OPTION' })
  t.equal(normalizeOptions({ secret: SECRET }).dpop, undefined, 'off by default')
})

t.test('dpop.origins: a bad value fails registration, by the rule of refresh.allowedOrigins', async (t) => {
  const list = 'Invalid option "dpop.origins": must be an array of origins such as "https://app.example.com"'
  const entry = (origin: unknown): string =>
    `Invalid option "dpop.origins[0]": must be an origin as a browser sends it (scheme://host[:port], no path, no trailing slash, lower case), got ${JSON.stringify(origin)}`
  const cases: Array<[unknown, string]> = [
    [API, list],
    [[42], list],
    [[], 'Invalid option "dpop.origins": must list at least one origin (leave it out to use the request\'s own)'],
    ...['https://api.example/', 'https://api.example/v1', 'https://API.example', 'https://api.example:443', 'api.example', 'null', '*', ''].map((origin): [unknown, string] => [[origin], entry(origin)])
  ]
  for (const [origins, message] of cases) {
    const err = await registrationError({ secret: SECRET, dpop: { origins } })
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', JSON.stringify(origins))
    t.equal(err?.message, message, JSON.stringify(origins))
  }
  t.equal(await registrationError({ secret: SECRET, dpop: { origins: [API] } }), undefined, 'the control: an origin as a browser sends it')
})

leftNoKeys(t)
