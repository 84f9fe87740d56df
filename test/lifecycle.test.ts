import t from 'tap'
import { CLOCK_SKEW_ALLOWANCE_MS, memoryStore } from '../lib/index.js'
import { build, type Credentials, type Harness, MINUTE, setCookies, settle } from './helper.js'

const DAY = 24 * 60 * MINUTE

/** POST /refresh as the app's own script would: refresh cookie, fingerprint cookie, CSRF header. */
async function refresh (h: Harness, credentials: Credentials, refreshToken = credentials.refreshToken, headers: Record<string, string> = {}) {
  const response = await h.app.inject({
    method: 'POST',
    url: '/refresh',
    headers: { cookie: `__Secure-sg-rt=${refreshToken}; ${credentials.fingerprint}`, 'x-requested-with': 'fetch', ...headers }
  })
  const cookie = (response.cookies as Array<{ name: string, value: string }>).find((c) => c.name === '__Secure-sg-rt')
  return { response, next: { ...credentials, accessToken: response.json().accessToken, refreshToken: cookie?.value ?? '' } }
}

t.test('login issues a refresh token in an HttpOnly cookie scoped to the refresh route', async (t) => {
  const h = await build(t)
  const alice = await h.login('alice')
  const header = (alice.response.headers['set-cookie'] as string[]).find((c) => c.startsWith('__Secure-sg-rt='))
  t.match(header, /Path=\/refresh/)
  t.match(header, /HttpOnly/)
  t.match(header, /Secure/)
  t.match(header, /SameSite=Strict/)
  t.equal(alice.response.json().refreshToken, undefined, 'not in the body')
  const session = await h.app.sessions.get(alice.sessionId)
  t.notOk(JSON.stringify(session).includes(alice.refreshToken), 'the store keeps only its hash')
  t.ok(alice.refreshToken.split('.')[1]!.length >= 43, 'at least 256 random bits')
})

t.test('a refresh rotates both tokens and records the rotation', async (t) => {
  const h = await build(t)
  const alice = await h.login('alice')
  h.clock.advance(14 * MINUTE)
  const { response, next } = await refresh(h, alice)
  t.equal(response.statusCode, 200)
  t.not(next.accessToken, alice.accessToken)
  t.not(next.refreshToken, alice.refreshToken)
  t.equal((await h.me(next)).statusCode, 200)
  const session = await h.app.sessions.get(alice.sessionId)
  t.equal(session?.refresh?.rotations, 1)
  t.equal(session?.lastSeenAt, h.clock.now, 'a refresh is activity')
  t.equal(session?.idleExpiresAt, h.clock.now + 30 * MINUTE, 'and extends the idle window')
})

t.test('the rotation chain: each successor works once it is used, every older token is theft', async (t) => {
  const h = await build(t)
  const generations: Credentials[] = [await h.login('alice')]
  for (let i = 0; i < 4; i++) {
    h.clock.advance(MINUTE)
    const { response, next } = await refresh(h, generations[i]!)
    t.equal(response.statusCode, 200, `rotation ${i + 1}`)
    generations.push(next)
  }
  // generations[4] is issued but unused; generations[3] is current; 0..2 are older.
  for (let old = 0; old <= 2; old++) {
    const h2 = await build(t)
    const chain: Credentials[] = [await h2.login('bob')]
    for (let i = 0; i < 4; i++) {
      h2.clock.advance(MINUTE)
      chain.push((await refresh(h2, chain[i]!)).next)
    }
    const events: string[] = []
    h2.app.sessions.events.on('refresh.reuse_detected', (e) => events.push(e.sessionId as string))
    h2.clock.advance(MINUTE)
    const replay = await refresh(h2, chain[old]!)
    t.equal(replay.response.statusCode, 401, `generation ${old} replayed`)
    t.same(setCookies(replay.response).map((c) => [c.name, c.attributes.path, c.attributes['max-age']]), [
      ['__Host-sg-fp', '/', '0'],
      ['__Secure-sg-rt', '/refresh', '0']
    ], 'theft clears both cookies, each on the path it was set with')
    await settle()
    t.same(events, [chain[0]!.sessionId], 'refresh.reuse_detected emitted')
    t.equal(await h2.app.sessions.get(chain[0]!.sessionId), undefined, 'the whole session is revoked')
    t.equal((await h2.me(chain[4]!)).statusCode, 401, "the thief's (or victim's) newest access token dies at once")
    t.equal((await refresh(h2, chain[4]!)).response.statusCode, 401, 'and so does the newest refresh token')
  }
})

t.test('a lost response raises no false alarm: the current token still works after the grace window', async (t) => {
  const h = await build(t, { refresh: { graceWindow: '10s' } })
  const alice = await h.login('alice')
  h.clock.advance(MINUTE)
  const lost = await refresh(h, alice) // the client never receives this answer
  t.equal(lost.response.statusCode, 200)
  h.clock.advance(30_000)
  const retry = await refresh(h, alice)
  t.equal(retry.response.statusCode, 200, 'the retry with the old token rotates again')
  t.equal((await h.me(retry.next)).statusCode, 200)
  h.clock.advance(MINUTE)
  t.equal((await refresh(h, retry.next)).response.statusCode, 200, 'the chain goes on from the retry')
  h.clock.advance(MINUTE)
  t.equal((await refresh(h, lost.next)).response.statusCode, 401, 'the lost successor, if it ever shows up, is theft')
  t.equal(await h.app.sessions.get(alice.sessionId), undefined)
})

t.test('parallel refreshes with one token: exactly one wins, the loser gets 409 inside the grace window', async (t) => {
  const h = await build(t)
  const alice = await h.login('alice')
  h.clock.advance(MINUTE)
  const results = await Promise.all(Array.from({ length: 5 }, async () => await refresh(h, alice)))
  const codes = results.map((r) => r.response.statusCode).sort()
  t.same(codes, [200, 409, 409, 409, 409])
  const loser = results.find((r) => r.response.statusCode === 409)!
  t.equal(loser.response.json().code, 'FST_SESSION_GUARD_REFRESH_CONFLICT')
  t.notOk(loser.response.headers['set-cookie'], 'the loser clears nothing')
  const winner = results.find((r) => r.response.statusCode === 200)!
  t.equal((await h.me(winner.next)).statusCode, 200, 'nothing was revoked')
  t.equal((await h.app.sessions.get(alice.sessionId))?.refresh?.rotations, 1)
})

t.test('idle and absolute timeouts hold on the refresh path too; refresh never resurrects', async (t) => {
  const h = await build(t, { idleTimeout: '30m', absoluteTimeout: '2h', accessTokenTtl: '15m' })
  const events: string[] = []
  h.app.sessions.events.on('session.expired', (e) => events.push(e.reason))
  let alice = await h.login('alice')
  h.clock.advance(30 * MINUTE)
  t.equal((await refresh(h, alice)).response.statusCode, 401, 'idle: no refresh after 30 quiet minutes')
  // Removed, and reported, once past the clock-skew allowance (lib/session.ts).
  h.clock.advance(CLOCK_SKEW_ALLOWANCE_MS)
  t.equal((await refresh(h, alice)).response.statusCode, 401)
  await settle()
  t.same(events, ['idle'])

  alice = await h.login('alice')
  for (let i = 0; i < 7; i++) {
    h.clock.advance(17 * MINUTE)
    const { response, next } = await refresh(h, alice)
    t.equal(response.statusCode, 200, `active refresh at ${(i + 1) * 17} min`)
    alice = next
  }
  h.clock.advance(2 * 60 * MINUTE - 7 * 17 * MINUTE)
  t.equal((await refresh(h, alice)).response.statusCode, 401, 'absolute: refreshing cannot go past 2h')
  h.clock.advance(CLOCK_SKEW_ALLOWANCE_MS)
  t.equal((await refresh(h, alice)).response.statusCode, 401)
  await settle()
  t.same(events, ['idle', 'absolute'])

  const bob = await h.login('bob')
  await h.app.sessions.revoke(bob.sessionId)
  t.equal((await refresh(h, bob)).response.statusCode, 401, 'a revoked session cannot be refreshed back')
})

t.test('remember me: longer lifetimes and persistent cookies', async (t) => {
  const h = await build(t, { remember: { idleTimeout: '7d', absoluteTimeout: '30d' } })
  const alice = await h.login('alice', { remember: true })
  const session = await h.app.sessions.get(alice.sessionId)
  t.equal(session?.remembered, true)
  t.equal(session?.idleExpiresAt, h.clock.now + 7 * DAY)
  t.equal(session?.absoluteExpiresAt, h.clock.now + 30 * DAY)
  const issued = setCookies(alice.response)
  t.same(issued.map((cookie) => cookie.name), ['__Host-sg-fp', '__Secure-sg-rt'])
  for (const { name, attributes } of issued) {
    t.equal(attributes['max-age'], String(30 * 24 * 3600), `${name}: persistent until the absolute deadline, in seconds, never longer`)
    t.equal(attributes.expires, undefined, `${name}: Max-Age alone says when`)
  }
  h.clock.advance(6 * DAY + 500)
  const refreshed = await refresh(h, alice)
  t.equal(refreshed.response.statusCode, 200, 'still refreshable after 6 idle days')
  const rotated = setCookies(refreshed.response)
  t.same(rotated.map((cookie) => cookie.name), ['__Secure-sg-rt'], 'a refresh sets only the refresh cookie')
  t.equal(rotated[0]?.attributes['max-age'], String(24 * 24 * 3600 - 1), 'the time left to the absolute deadline, rounded down to whole seconds')

  const bob = await h.login('bob')
  t.equal((await h.app.sessions.get(bob.sessionId))?.remembered, false)
})

t.test('regeneration replaces id, fingerprint and tokens in one step', async (t) => {
  const h = await build(t, {}, (app) => {
    app.post('/elevate', { preHandler: app.requireSession }, async (request, reply) => {
      const { accessToken, session } = await request.regenerateSession(reply, { role: 'admin' })
      return { accessToken, sessionId: session.id, current: request.authSession?.id }
    })
    app.post('/elevate-again', { preHandler: app.requireSession }, async (request, reply) => {
      const { session } = await request.regenerateSession(reply)
      return { claims: session.claims }
    })
  })
  const alice = await h.login('alice', { claims: { role: 'user' } })
  h.clock.advance(MINUTE)
  const response = await h.app.inject({ method: 'POST', url: '/elevate', headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.fingerprint } })
  t.equal(response.statusCode, 200)
  const { accessToken, sessionId, current } = response.json()
  t.not(sessionId, alice.sessionId)
  t.equal(current, sessionId, 'request.authSession follows')
  const cookies = response.cookies as Array<{ name: string, value: string }>
  const next = {
    ...alice,
    accessToken,
    sessionId,
    fingerprint: `__Host-sg-fp=${cookies.find((c) => c.name === '__Host-sg-fp')?.value}`,
    refreshToken: cookies.find((c) => c.name === '__Secure-sg-rt')?.value as string
  }
  t.not(next.fingerprint, alice.fingerprint)
  t.equal((await h.me(alice)).statusCode, 401, 'the old access token is dead')
  t.equal((await refresh(h, alice)).response.statusCode, 401, 'the old refresh token is dead')
  t.equal((await h.me({ ...next, fingerprint: alice.fingerprint })).statusCode, 401, 'the old fingerprint does not fit the new token')
  const me = await h.me(next)
  t.equal(me.statusCode, 200)
  t.equal(me.json().user.role, 'admin', 'new claims signed in')
  const old = await h.app.sessions.list('alice')
  t.equal(old.length, 1)
  t.equal(old[0]?.absoluteExpiresAt, h.clock.now - MINUTE + 12 * 60 * MINUTE, 'the absolute deadline carries over')
  const again = await h.app.inject({ method: 'POST', url: '/elevate-again', headers: { authorization: `Bearer ${next.accessToken}`, cookie: next.fingerprint } })
  t.same(again.json().claims, { role: 'admin' }, 'claims carry over when none are given')
})

t.test('regenerating a session revoked meanwhile fails with 401', async (t) => {
  const h = await build(t, {}, (app) => {
    app.post('/elevate', { preHandler: app.requireSession }, async (request, reply) => {
      await app.sessions.revoke(request.authSession!.id)
      return await request.regenerateSession(reply)
    })
  })
  const alice = await h.login('alice')
  const response = await h.app.inject({ method: 'POST', url: '/elevate', headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.fingerprint } })
  t.equal(response.statusCode, 401)
  t.equal((await h.app.sessions.list('alice')).length, 0)
})

t.test('revokeAll after a password change kills every access and refresh token of the user', async (t) => {
  const h = await build(t)
  const devices = [await h.login('alice'), await h.login('alice'), await h.login('alice')]
  const bob = await h.login('bob')
  const reasons: string[] = []
  h.app.sessions.events.on('session.revoked', (e) => reasons.push(e.reason))
  t.equal(await h.app.sessions.revokeAll('alice', { reason: 'password-change' }), 3)
  await settle()
  t.same(reasons, ['password-change', 'password-change', 'password-change'])
  for (const device of devices) {
    t.equal((await h.me(device)).statusCode, 401)
    t.equal((await refresh(h, device)).response.statusCode, 401)
  }
  t.equal((await h.me(bob)).statusCode, 200, 'other users are untouched')
})

t.test('revokeAll with except keeps the current session (log out everywhere else)', async (t) => {
  const h = await build(t)
  const here = await h.login('alice')
  const there = await h.login('alice')
  t.equal(await h.app.sessions.revokeAll('alice', { except: here.sessionId }), 1)
  t.equal((await h.me(here)).statusCode, 200)
  t.equal((await h.me(there)).statusCode, 401)
})

t.test('CSRF: a cookie-carried refresh needs the custom header and an allowed Origin', async (t) => {
  const h = await build(t)
  const alice = await h.login('alice')
  const noHeader = await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie: `__Secure-sg-rt=${alice.refreshToken}; ${alice.fingerprint}` } })
  t.equal(noHeader.statusCode, 403, 'a cross-site form cannot send the header')
  t.equal(noHeader.json().code, 'FST_SESSION_GUARD_CSRF')
  const foreign = await refresh(h, alice, alice.refreshToken, { origin: 'https://evil.example' })
  t.equal(foreign.response.statusCode, 403, 'a foreign Origin is refused')
  const own = await refresh(h, alice, alice.refreshToken, { origin: 'http://localhost:80', host: 'localhost:80' })
  t.equal(own.response.statusCode, 200, "the request's own origin is allowed")
  t.ok(await h.app.sessions.get(alice.sessionId), 'refused attempts changed nothing')

  const listed = await build(t, { refresh: { allowedOrigins: ['https://app.example'], csrfHeader: 'X-CSRF' } })
  const bob = await listed.login('bob')
  const cases: Array<[Record<string, string>, number]> = [
    [{ 'x-csrf': '1', origin: 'https://app.example' }, 200],
    [{ 'x-csrf': '1', origin: 'http://localhost:80' }, 403],
    [{ 'x-requested-with': 'fetch' }, 403]
  ]
  let current = bob
  for (const [headers, status] of cases) {
    const response = await listed.app.inject({ method: 'POST', url: '/refresh', headers: { cookie: `__Secure-sg-rt=${current.refreshToken}; ${current.fingerprint}`, ...headers } })
    t.equal(response.statusCode, status, JSON.stringify(headers))
    if (status === 200) current = { ...current, refreshToken: (response.cookies as Array<{ name: string, value: string }>).find((c) => c.name === '__Secure-sg-rt')!.value }
  }
})

t.test('refresh refuses what is not a live, bound refresh token of ours', async (t) => {
  const h = await build(t)
  const alice = await h.login('alice')
  const bob = await h.login('bob')
  const [sid, nonce, version, mac] = alice.refreshToken.split('.') as [string, string, string, string]
  const cases: Array<[string, string, string]> = [
    ['no refresh token', '', alice.fingerprint],
    ['garbage', 'garbage', alice.fingerprint],
    ['an oversized token', 'a'.repeat(300), alice.fingerprint],
    ['a forged MAC', `${sid}.${nonce}.${version}.${mac.slice(0, -2)}AA`, alice.fingerprint],
    ['a session id swapped in', `${bob.sessionId}.${nonce}.${version}.${mac}`, alice.fingerprint],
    ['another MAC key version named', `${sid}.${nonce}.v2.${mac}`, alice.fingerprint],
    ['no fingerprint', alice.refreshToken, ''],
    ["another user's fingerprint", alice.refreshToken, bob.fingerprint],
    ['an access token in place of the refresh token', alice.accessToken, alice.fingerprint]
  ]
  for (const [name, token, fingerprint] of cases) {
    const response = await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie: `__Secure-sg-rt=${token}; ${fingerprint}`, 'x-requested-with': 'fetch' } })
    t.equal(response.statusCode, 401, name)
    t.equal(response.json().code, 'FST_SESSION_GUARD_UNAUTHORIZED', name)
  }
  t.ok(await h.app.sessions.get(alice.sessionId), 'none of it revoked the session: forgeries are not theft')
  t.equal((await refresh(h, alice)).response.statusCode, 200)
  const forged = await h.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${alice.refreshToken}`, cookie: alice.fingerprint } })
  t.equal(forged.statusCode, 401, 'a refresh token is no access token')
})

t.test("refresh.transport: 'body' returns the refresh token in the body and takes it from the body", async (t) => {
  const h = await build(t, { refresh: { transport: 'body' } })
  const alice = await h.login('alice')
  t.ok(alice.response.json().refreshToken)
  t.notOk(String(alice.response.headers['set-cookie']).includes('sg-rt'), 'no refresh cookie')
  const response = await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie: alice.fingerprint }, payload: { refreshToken: alice.refreshToken } })
  t.equal(response.statusCode, 200, 'no CSRF header needed: nothing rides along by itself')
  t.ok(response.json().refreshToken)
  const empty = await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie: alice.fingerprint } })
  t.equal(empty.statusCode, 401)
})

t.test('endSession and regenerateSession without a session are programming errors', async (t) => {
  const h = await build(t, {}, (app) => {
    app.post('/bad-logout', async (request, reply) => { await request.endSession(reply) })
  })
  t.equal((await h.app.inject({ method: 'POST', url: '/bad-logout' })).json().code, 'FST_SESSION_GUARD_NO_SESSION')
})

t.test('a session revoked between the read and the rotation is not refreshed', async (t) => {
  const store = memoryStore()
  const rotate = store.rotate.bind(store)
  store.rotate = async (id, rotation, now) => {
    await store.revoke(id, now)
    return await rotate(id, rotation, now)
  }
  const h = await build(t, { store })
  const alice = await h.login('alice')
  const { response } = await refresh(h, alice)
  t.equal(response.statusCode, 401)
  t.match(String(response.headers['set-cookie']), /__Host-sg-fp=;.*Expires=Thu, 01 Jan 1970/, 'the session the fingerprint belongs to is over: its cookies go')
})
