import { createHmac, hkdfSync } from 'node:crypto'
import type { Test } from 'tap'
import t from 'tap'
import { memoryStore, type SessionEvent } from '../../lib/index.js'
import { deriveSigningKey } from '../../lib/tokens/jwt.js'
import { type Credentials, type Harness, MINUTE, SECRET, settle } from '../helper.js'
import {
  assertGuardRefused,
  assertRefreshRefused,
  assertUntouched,
  callMe,
  claimsOf,
  refreshByCookie,
  refreshed,
  sessionIdRoutes,
  setup,
  snapshot
} from './setup.js'

/**
 * Session attacks: credentials used after the session ended (logout,
 * revocation, expiry, eviction), fixation, another user's session id, and
 * replayed refresh tokens of every generation.
 */

/** Both of a dead session's credentials are refused, and refusing them creates or revives nothing. */
async function assertDead (t: Test, h: Harness, credentials: Credentials, name: string, others: Credentials[] = []): Promise<void> {
  const before = await snapshot(h.app, [credentials, ...others], ['alice', 'bob'])
  assertGuardRefused(t, await callMe(h.app, credentials.accessToken, credentials.fingerprint), `${name}: access token`)
  assertRefreshRefused(t, await refreshByCookie(h, credentials.refreshToken, credentials.fingerprint), `${name}: refresh token`)
  t.equal(await h.app.sessions.get(credentials.sessionId), undefined, `${name}: the session stays gone`)
  await assertUntouched(t, h.app, before, name, [credentials, ...others], ['alice', 'bob'])
}

async function logout (h: Harness, credentials: Credentials): Promise<number> {
  const response = await h.app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${credentials.accessToken}`, cookie: credentials.fingerprint } })
  return response.statusCode
}

t.test('use after logout, revoke, revokeAll and regeneration', async (t) => {
  const h = await setup(t, {}, (app) => {
    app.post('/elevate', { preHandler: app.requireSession }, async (request, reply) => {
      const { accessToken, session } = await request.regenerateSession(reply)
      return { accessToken, sessionId: session.id }
    })
  })
  const bob = await h.login('bob')

  const loggedOut = await h.login('alice')
  t.equal(await logout(h, loggedOut), 204)
  await assertDead(t, h, loggedOut, 'after logout', [bob])
  t.equal(await logout(h, loggedOut), 401, 'a second logout with the same token is refused')

  const revoked = await h.login('alice')
  t.equal(await h.app.sessions.revoke(revoked.sessionId), true)
  await assertDead(t, h, revoked, 'after revoke', [bob])

  const everywhere = [await h.login('alice'), await h.login('alice')]
  t.equal(await h.app.sessions.revokeAll('alice', { reason: 'password-change' }), 2)
  for (const [i, credentials] of everywhere.entries()) await assertDead(t, h, credentials, `after revokeAll (device ${i + 1})`, [bob])

  const elevated = await h.login('alice')
  const response = await h.app.inject({ method: 'POST', url: '/elevate', headers: { authorization: `Bearer ${elevated.accessToken}`, cookie: elevated.fingerprint } })
  t.equal(response.statusCode, 200)
  t.not(response.json().sessionId, elevated.sessionId)
  await assertDead(t, h, elevated, 'after regeneration (the id known before the change)', [bob])

  t.equal((await h.me(bob)).statusCode, 200, "bob's session lived through all of it")
})

t.test('use after idle and absolute expiry', async (t) => {
  const h = await setup(t, { idleTimeout: '10m', absoluteTimeout: '1h', accessTokenTtl: '2h' })
  const idle = await h.login('alice')
  h.clock.advance(10 * MINUTE)
  await assertDead(t, h, idle, 'after the idle timeout')

  let active = await h.login('alice')
  for (let i = 0; i < 6; i++) {
    h.clock.advance(9 * MINUTE + 59_000)
    const response = await refreshByCookie(h, active.refreshToken, active.fingerprint)
    t.equal(response.statusCode, 200, `kept active at ${i + 1}`)
    active = refreshed(active, response)
  }
  h.clock.advance(MINUTE)
  await assertDead(t, h, active, 'after the absolute timeout, however active')
})

t.test('use after eviction: at the per-user limit and at store capacity', async (t) => {
  const h = await setup(t, { maxSessionsPerUser: 2 })
  const first = await h.login('alice')
  h.clock.advance(1000)
  const second = await h.login('alice')
  h.clock.advance(1000)
  const third = await h.login('alice')
  await assertDead(t, h, first, 'evicted by the per-user limit', [second, third])
  t.equal((await h.me(second)).statusCode, 200)
  t.equal((await h.me(third)).statusCode, 200)

  const small = await setup(t, { store: memoryStore({ max: 2 }) })
  const a = await small.login('alice')
  small.clock.advance(1000)
  const b = await small.login('bob')
  small.clock.advance(1000)
  const c = await small.login('carol')
  t.equal((await small.app.sessions.stats()).evictions, 1)
  await assertDead(t, small, a, 'evicted at store capacity', [b, c])
  t.equal((await small.me(c)).statusCode, 200)
})

t.test('fixation: a session id or fingerprint chosen by the client never becomes a session', async (t) => {
  const h = await setup(t)
  const attacker = await h.login('mallory')
  const chosen = 'AAAAAAAAAAAAAAAAAAAAAA'
  const response = await h.app.inject({
    method: 'POST',
    url: '/login',
    payload: { userId: 'alice', sessionId: chosen, id: chosen },
    headers: { cookie: `${attacker.fingerprint}; __Secure-sg-rt=${attacker.refreshToken}` }
  })
  t.equal(response.statusCode, 200)
  const { sessionId, accessToken } = response.json()
  t.not(sessionId, chosen, 'the id is the server\'s')
  t.not(sessionId, attacker.sessionId, 'not the attacker\'s session either')
  t.equal(await h.app.sessions.get(chosen), undefined)
  const cookies = response.cookies as Array<{ name: string, value: string }>
  t.not(`__Host-sg-fp=${cookies.find((c) => c.name === '__Host-sg-fp')?.value}`, attacker.fingerprint, 'a fresh fingerprint')
  t.not(cookies.find((c) => c.name === '__Secure-sg-rt')?.value, attacker.refreshToken, 'a fresh refresh token')
  assertGuardRefused(t, await callMe(h.app, accessToken, attacker.fingerprint), "the attacker's fingerprint does not fit the victim's token")
  assertGuardRefused(t, await callMe(h.app, attacker.accessToken, `__Host-sg-fp=${cookies.find((c) => c.name === '__Host-sg-fp')?.value}`), "the victim's fingerprint does not fit the attacker's token")
  t.same((await h.app.sessions.list('mallory')).map((s) => s.id), [attacker.sessionId], "the attacker's session is still just his")

  // The app's own claims may not smuggle a session id either.
  const smuggled = await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice', claims: { sid: chosen } } })
  t.equal(smuggled.statusCode, 500, 'a reserved claim is a programming error, refused')
  t.equal(await h.app.sessions.get(chosen), undefined)
})

t.test("a token for bob naming alice's session is refused: the guard binds sub to the session's user", async (t) => {
  const events: SessionEvent[] = []
  const h = await setup(t, { onEvent: (event: SessionEvent) => events.push(event) })
  const alice = await h.login('alice')
  const bob = await h.login('bob')
  h.clock.advance(2 * MINUTE)
  // Signed with the real secret, with alice's session id and alice's fingerprint
  // hash, sent with alice's fingerprint cookie: every other check passes, so only
  // the binding of sub to the session's user stands between it and a 200 as bob.
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: 'default' })).toString('base64url')
  const payload = Buffer.from(JSON.stringify({ ...claimsOf(alice.accessToken), sub: 'bob' })).toString('base64url')
  const token = `${header}.${payload}.${createHmac('sha256', deriveSigningKey(SECRET, 'HS256')).update(`${header}.${payload}`).digest('base64url')}`
  const before = await snapshot(h.app, [alice, bob], ['alice', 'bob'])
  assertGuardRefused(t, await callMe(h.app, token, alice.fingerprint), "bob's sub on alice's session")
  await assertUntouched(t, h.app, before, 'the refused token', [alice, bob], ['alice', 'bob'])
  await settle()
  t.match(events.filter((event) => event.type === 'auth.rejected'), [{ reason: 'session_mismatch', userId: 'bob', sessionId: alice.sessionId }], 'refused for the mismatch')
  t.equal((await h.me(alice)).statusCode, 200, "control: alice's own token works")
  t.equal((await h.me(bob)).statusCode, 200, "and bob's")
})

t.test("the app's claims may not set a claim the plugin signs or checks, aud among them", async (t) => {
  // Listed here, not read from RESERVED_CLAIMS: dropping a name from that set must fail this test.
  const reserved = ['sub', 'sid', 'fph', 'cnf', 'iat', 'exp', 'nbf', 'jti', 'iss', 'aud']
  for (const audience of [undefined, 'api']) {
    const h = await setup(t, audience === undefined ? {} : { audience }, (app) => {
      app.post<{ Body: Record<string, unknown> }>('/elevate', { preHandler: app.requireSession }, async (request, reply) => {
        const { accessToken } = await request.regenerateSession(reply, request.body)
        return { accessToken }
      })
    })
    const where = audience === undefined ? 'no audience configured' : `audience "${audience}"`
    for (const name of reserved) {
      const response = await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice', claims: { [name]: 'another-api' } } })
      t.equal(response.statusCode, 500, `${where}, at login: "${name}" is refused`)
      t.equal(response.json().message, `claims may not set the reserved claim "${name}"`, `${where}: the error names "${name}"`)
    }
    t.match(await h.app.sessions.stats(), { sessions: 0, events: { created: 0 } }, `${where}: no session was created`)

    const alice = await h.login('alice')
    for (const name of reserved) {
      const response = await h.app.inject({ method: 'POST', url: '/elevate', payload: { [name]: 'another-api' }, headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.fingerprint } })
      t.equal(response.statusCode, 500, `${where}, at regeneration: "${name}" is refused`)
    }
    t.same((await h.app.sessions.list('alice')).map((session) => session.id), [alice.sessionId], `${where}: the session was not regenerated`)
  }
})

t.test("another user's session id, in every input that takes one", async (t) => {
  const h = await setup(t, { routes: { prefix: '/sessions' } })
  const alice = await h.login('alice')
  const bob = await h.login('bob')
  h.clock.advance(2 * MINUTE)
  const before = await snapshot(h.app, [alice, bob], ['alice', 'bob'])
  const [, nonce, version, mac] = alice.refreshToken.split('.') as [string, string, string, string]
  const [, bobNonce] = bob.refreshToken.split('.') as [string, string, string, string]
  const otherKey = Buffer.from(hkdfSync('sha256', 'another-deployment-secret-0123456789', '', 'fastify-session-guard refresh token', 32))
  const foreignBody = `${bob.sessionId}.${bobNonce}.${version}`
  const cases: Array<[string, string, string]> = [
    ["bob's session id with alice's nonce and MAC", `${bob.sessionId}.${nonce}.${version}.${mac}`, alice.fingerprint],
    ["bob's session id, alice's MAC, bob's fingerprint", `${bob.sessionId}.${nonce}.${version}.${mac}`, bob.fingerprint],
    ["bob's id and nonce under another deployment's MAC key", `${foreignBody}.${createHmac('sha256', otherKey).update(foreignBody).digest('base64url')}`, bob.fingerprint],
    ["bob's genuine refresh token with alice's fingerprint (stolen token, no cookie)", bob.refreshToken, alice.fingerprint],
    ["alice's genuine refresh token with bob's fingerprint", alice.refreshToken, bob.fingerprint],
    ["bob's session id alone", bob.sessionId, bob.fingerprint],
    ["bob's session id as id.nonce without MAC", `${bob.sessionId}.${bobNonce}`, bob.fingerprint],
    ["bob's session id, nonce and version without MAC", `${bob.sessionId}.${bobNonce}.${version}`, bob.fingerprint]
  ]
  for (const [name, token, fingerprint] of cases) {
    assertRefreshRefused(t, await refreshByCookie(h, token, fingerprint), name)
  }
  await assertUntouched(t, h.app, before, "nothing of bob's or alice's changed: a forgery or a stolen token without its cookie is not theft", [alice, bob], ['alice', 'bob'])
  // Alice's own, valid requests on the management routes (her activity is recorded; bob's session is not touched).
  const bobBefore = await snapshot(h.app, [bob], ['bob'])
  for (const [method, template] of sessionIdRoutes) {
    const response = await h.app.inject({ method: method as 'GET', url: template.replace(':id', bob.sessionId), headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.fingerprint } })
    t.equal(response.statusCode, 404, `${method} ${template} with bob's id as alice`)
    t.equal(response.json().code, 'FST_SESSION_GUARD_SESSION_NOT_FOUND', 'answered like an unknown id')
  }
  await assertUntouched(t, h.app, bobBefore, "bob's session is untouched by alice's requests", [bob], ['bob'])
})

t.test('replayed refresh tokens of every generation', async (t) => {
  const GENERATIONS = 5
  for (let replayed = 0; replayed <= GENERATIONS; replayed++) {
    t.test(`replaying generation ${replayed} of ${GENERATIONS}`, async (t) => {
      const h = await setup(t, { refresh: { graceWindow: '10s' } })
      const chain: Credentials[] = [await h.login('alice')]
      for (let i = 0; i < GENERATIONS; i++) {
        h.clock.advance(MINUTE)
        const response = await refreshByCookie(h, chain[i]!.refreshToken, chain[i]!.fingerprint)
        t.equal(response.statusCode, 200)
        chain.push(refreshed(chain[i]!, response))
      }
      // chain[GENERATIONS] was issued and never used; chain[GENERATIONS - 1] is current.
      const bystander = await h.login('bob')
      const replay = chain[replayed]!
      const reuse: string[] = []
      h.app.sessions.events.on('refresh.reuse_detected', (event) => reuse.push(event.sessionId as string))

      h.clock.advance(1000)
      const before = await snapshot(h.app, [replay, bystander], ['alice', 'bob'])
      const early = await refreshByCookie(h, replay.refreshToken, replay.fingerprint)
      if (replayed === GENERATIONS - 1) {
        t.equal(early.statusCode, 409, 'the current token inside the grace window: a parallel tab')
        t.equal(early.json().code, 'FST_SESSION_GUARD_REFRESH_CONFLICT')
        await assertUntouched(t, h.app, before, 'a conflict changes nothing', [replay, bystander], ['alice', 'bob'])
        h.clock.advance(10_000)
        t.equal((await refreshByCookie(h, replay.refreshToken, replay.fingerprint)).statusCode, 200, 'after the window: a lost response, no alarm')
      } else if (replayed === GENERATIONS) {
        t.equal(early.statusCode, 200, 'the unused successor is simply the next rotation')
      } else {
        assertRefreshRefused(t, early, 'an older generation')
        await settle()
        t.same(reuse, [replay.sessionId], 'reuse detected')
        t.equal(await h.app.sessions.get(replay.sessionId), undefined, 'the whole session is revoked')
        for (const [i, generation] of chain.entries()) {
          assertGuardRefused(t, await callMe(h.app, generation.accessToken, generation.fingerprint), `generation ${i}: access token dead`)
          assertRefreshRefused(t, await refreshByCookie(h, generation.refreshToken, generation.fingerprint), `generation ${i}: refresh token dead`)
        }
        await settle()
        t.same(reuse, [replay.sessionId], 'replays after the revocation are not reported again')
        t.same((await h.app.sessions.list('alice')).length, 0, 'no replay revives anything')
      }
      t.equal((await h.me(bystander)).statusCode, 200, 'another user is never touched')
    })
  }
})

t.test('refresh tokens on API routes, access tokens on the refresh route', async (t) => {
  for (const transport of ['cookie', 'body'] as const) {
    t.test(`${transport} transport`, async (t) => {
      const h = await setup(t, { refresh: { transport } })
      const alice = await h.login('alice')
      h.clock.advance(2 * MINUTE)
      const before = await snapshot(h.app, [alice], ['alice'])
      assertGuardRefused(t, await callMe(h.app, alice.refreshToken, alice.fingerprint), 'refresh token as bearer')
      const refreshWith = async (token: string): Promise<Awaited<ReturnType<typeof refreshByCookie>>> => transport === 'cookie'
        ? await refreshByCookie(h, token, alice.fingerprint)
        : await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie: alice.fingerprint }, payload: { refreshToken: token } })
      assertRefreshRefused(t, await refreshWith(alice.accessToken), 'access token as refresh token')
      assertRefreshRefused(t, await h.app.inject({ method: 'POST', url: '/refresh', headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.fingerprint, 'x-requested-with': 'fetch' } }), 'access token as bearer on the refresh route')
      if (transport === 'body') {
        assertRefreshRefused(t, await refreshByCookie(h, alice.refreshToken, alice.fingerprint), 'body transport ignores a refresh cookie')
        assertRefreshRefused(t, await h.app.inject({ method: 'POST', url: '/refresh?refreshToken=' + alice.refreshToken, headers: { cookie: alice.fingerprint } }), 'nor takes one from the query string')
      } else {
        assertRefreshRefused(t, await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie: alice.fingerprint, 'x-requested-with': 'fetch' }, payload: { refreshToken: alice.refreshToken } }), 'cookie transport ignores a refresh token in the body')
      }
      await assertUntouched(t, h.app, before, transport, [alice], ['alice'])
      t.equal((await refreshWith(alice.refreshToken)).statusCode, 200, 'control: the genuine refresh works')
    })
  }
})
