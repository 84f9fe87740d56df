import fastifyJwt from '@fastify/jwt'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import sessionGuard, { type SessionGuardOptions } from '../lib/index.js'
import { redisStore } from '../lib/stores/redis/index.js'
import { MINUTE, SECRET, TestClock } from './helper.js'
import { leftNoKeys, REDIS_URL, redisTest, testPrefix } from './stores/redis-helper.js'

/**
 * Key rotation under live sessions, over real HTTP: instances one after the
 * other on one Redis store, as a deployment rolls from one key configuration
 * to the next, with clients that keep their tokens across the change.
 */

const SECRET_B = 'the-second-signing-secret-0123456789abcdef'
const MAC_SECRET = 'a-mac-secret-of-its-own-0123456789abcdefgh'

interface Client {
  accessToken: string
  refreshToken: string
  /** `name=value` of the fingerprint cookie. */
  fingerprint: string
}

interface Instance {
  login: (userId: string) => Promise<Client>
  me: (client: Client) => Promise<number>
  refresh: (client: Client) => Promise<{ status: number, client: Client }>
  /** The reasons of the guard's refusals, in order. */
  rejected: string[]
}

const cookieOf = (response: Response, name: string): string | undefined =>
  response.headers.getSetCookie().map((line) => line.slice(0, line.indexOf(';'))).find((pair) => pair.startsWith(`${name}=`))?.slice(name.length + 1)

/** The header of a JWT (no verification). */
const headerOf = (token: string): Record<string, unknown> => JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString())

/** One instance of the app on the shared store, listening on a port of its own. */
async function instance (t: Test, prefix: string, clock: TestClock, options: Partial<SessionGuardOptions>): Promise<Instance> {
  const rejected: string[] = []
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionGuard, {
    clock: clock.read,
    store: redisStore({ connection: REDIS_URL, prefix }),
    onEvent: (event) => { if (event.type === 'auth.rejected') rejected.push(event.reason) },
    ...options
  })
  app.post<{ Body: { userId: string } }>('/login', async (request, reply) => {
    const { accessToken } = await reply.issueSession({ userId: request.body.userId })
    return { accessToken }
  })
  app.get('/me', { preHandler: app.requireSession }, async () => ({ ok: true }))
  app.post('/refresh', async (request, reply) => ({ accessToken: (await reply.refreshSession()).accessToken }))
  const base = await app.listen({ port: 0, host: '127.0.0.1' })

  async function login (userId: string): Promise<Client> {
    const response = await fetch(`${base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId }) })
    if (response.status !== 200) throw new Error(`login failed: ${response.status}`)
    return { accessToken: (await response.json() as { accessToken: string }).accessToken, refreshToken: cookieOf(response, '__Secure-sg-rt') as string, fingerprint: `__Host-sg-fp=${cookieOf(response, '__Host-sg-fp') as string}` }
  }
  async function me (client: Client): Promise<number> {
    return (await fetch(`${base}/me`, { headers: { authorization: `Bearer ${client.accessToken}`, cookie: client.fingerprint } })).status
  }
  async function refresh (client: Client): Promise<{ status: number, client: Client }> {
    const response = await fetch(`${base}/refresh`, { method: 'POST', headers: { cookie: `__Secure-sg-rt=${client.refreshToken}; ${client.fingerprint}`, 'x-requested-with': 'fetch' } })
    if (response.status !== 200) return { status: response.status, client }
    return { status: 200, client: { ...client, accessToken: (await response.json() as { accessToken: string }).accessToken, refreshToken: cookieOf(response, '__Secure-sg-rt') as string } }
  }
  return { login, me, refresh, rejected }
}

redisTest(t, 'a signing key rotated under live sessions logs nobody out', async (t) => {
  const prefix = testPrefix(t)
  const clock = new TestClock()
  // Before: one secret, as the README configures it.
  const before = await instance(t, prefix, clock, { secret: SECRET })
  const alice = await before.login('alice')
  const bob = await before.login('bob')
  t.match(headerOf(alice.accessToken), { alg: 'HS256', typ: 'at+jwt', kid: 'default' }, 'the one secret signs as kid default, typed at+jwt')

  // The new key signs, the old one still verifies; the MAC keys stay those of the one secret.
  clock.advance(MINUTE)
  const macKeys = [{ kid: 'default', secret: SECRET }]
  const during = await instance(t, prefix, clock, { keys: [{ kid: 'b', secret: SECRET_B }, { kid: 'default', secret: SECRET }], macKeys })
  t.equal(await during.me(alice), 200, 'an access token of the old key passes')
  t.equal(await during.me(bob), 200)
  const carol = await during.login('carol')
  t.equal(headerOf(carol.accessToken).kid, 'b', 'a new login signs with the new key')
  t.equal(await during.me(carol), 200)
  t.equal(await before.me(carol), 401, 'an instance that does not hold the new key yet refuses its tokens')
  const renewed = await during.refresh(alice)
  t.equal(renewed.status, 200, 'the refresh token of a session started under the old key renews it')
  t.equal(headerOf(renewed.client.accessToken).kid, 'b', 'and the renewed access token is signed with the new key')
  t.equal(await during.me(renewed.client), 200)

  // The old key retired while bob's access token of it has not expired yet.
  clock.advance(MINUTE)
  const after = await instance(t, prefix, clock, { keys: [{ kid: 'b', secret: SECRET_B }], macKeys })
  t.equal(await during.me(bob), 200, 'bob\'s token has not expired: the ring that holds its key still takes it')
  t.equal(await after.me(bob), 401, 'without its key, the same token at the same moment is refused')
  t.strictSame(after.rejected, ['invalid_token'], 'as an invalid token')
  t.equal(await after.me(renewed.client), 200, 'tokens of the new key pass')
  t.equal(await after.me(carol), 200)
  const bobRenewed = await after.refresh(bob)
  t.equal(bobRenewed.status, 200, 'a refresh token issued under the one secret still renews: the MAC key did not change')
  t.equal(headerOf(bobRenewed.client.accessToken).kid, 'b')
  t.equal(await after.me(bobRenewed.client), 200)
  const aliceAgain = await after.refresh(renewed.client)
  t.equal(aliceAgain.status, 200, 'so does a refresh token issued during the rotation')
})

redisTest(t, 'tokens of an older key pass until they expire, and not after', async (t) => {
  const prefix = testPrefix(t)
  const clock = new TestClock()
  const macKeys = [{ kid: 'm1', secret: MAC_SECRET }]
  const before = await instance(t, prefix, clock, { keys: [{ kid: 'a', secret: SECRET }], macKeys })
  const alice = await before.login('alice')
  const during = await instance(t, prefix, clock, { keys: [{ kid: 'b', secret: SECRET_B }, { kid: 'a', secret: SECRET }], macKeys })
  clock.advance(15 * MINUTE - 1)
  t.equal(await during.me(alice), 200, 'the last millisecond of its lifetime')
  clock.advance(1)
  t.equal(await during.me(alice), 401, 'at its expiry')
  t.strictSame(during.rejected, ['expired_token'])
  const renewed = await during.refresh(alice)
  t.equal(renewed.status, 200, 'its refresh token still renews it')
  t.equal(headerOf(renewed.client.accessToken).kid, 'b')
})

redisTest(t, 'a MAC key rotated under live sessions logs nobody out either', async (t) => {
  const prefix = testPrefix(t)
  const clock = new TestClock()
  const keys = [{ kid: 'a', secret: SECRET }]
  const before = await instance(t, prefix, clock, { keys, macKeys: [{ kid: 'm1', secret: MAC_SECRET }] })
  const alice = await before.login('alice')
  const bob = await before.login('bob')
  t.match(alice.refreshToken, /\.m1\.[A-Za-z0-9_-]{43}$/, 'a refresh token names its MAC key version')
  const during = await instance(t, prefix, clock, { keys, macKeys: [{ kid: 'm2', secret: `${MAC_SECRET}-2` }, { kid: 'm1', secret: MAC_SECRET }] })
  const renewed = await during.refresh(alice)
  t.equal(renewed.status, 200, 'a refresh token of the older version renews')
  t.match(renewed.client.refreshToken, /\.m2\.[A-Za-z0-9_-]{43}$/, 'and the new one is MACed under the current version')
  const after = await instance(t, prefix, clock, { keys, macKeys: [{ kid: 'm2', secret: `${MAC_SECRET}-2` }] })
  t.equal((await after.refresh(renewed.client)).status, 200, 'a token of the current version renews once the old one is gone')
  t.equal((await after.refresh(bob)).status, 401, 'a refresh token of a version removed is refused')
})

t.test('an app that verifies its own tokens with the same raw secret refuses the plugin\'s', async (t) => {
  const clock = new TestClock()
  const app = Fastify()
  t.teardown(() => app.close())
  // The app's own @fastify/jwt, with the very secret the plugin is given, and the plugin's algorithm.
  await app.register(fastifyJwt, { secret: SECRET, verify: { algorithms: ['HS256'] } })
  await app.register(sessionGuard, { secret: SECRET, clock: clock.read })
  app.post('/login', async (_request, reply) => await reply.issueSession({ userId: 'alice' }))
  app.get('/apps-own', { onRequest: async (request) => { await request.jwtVerify() } }, async (request) => ({ user: request.user }))
  app.get('/apps-own-sign', async () => ({ token: app.jwt.sign({ sub: 'alice' }) }))
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  clock.now = Date.now()
  const { accessToken } = await (await fetch(`${base}/login`, { method: 'POST' })).json() as { accessToken: string }
  const mine = await fetch(`${base}/apps-own`, { headers: { authorization: `Bearer ${accessToken}` } })
  t.equal(mine.status, 401, 'the plugin\'s token, without its fingerprint cookie, is no token of the app\'s')
  t.match(await mine.json(), { code: 'FST_JWT_AUTHORIZATION_TOKEN_INVALID' }, 'refused for its signature')
  const { token } = await (await fetch(`${base}/apps-own-sign`)).json() as { token: string }
  t.equal((await fetch(`${base}/apps-own`, { headers: { authorization: `Bearer ${token}` } })).status, 200, 'control: the app\'s own tokens pass there')
})

leftNoKeys(t)
