import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { CLOCK_SKEW_ALLOWANCE_MS, memoryStore, sessionLimitResponseSchema, type Rotation, type SessionEvent, type SessionRecord, type SessionStore } from '../lib/index.js'
import { build, MINUTE, setCookies, settle, type Credentials } from './helper.js'

t.test('events carry time, user and session, and never a secret', async (t) => {
  const h = await build(t)
  const events: SessionEvent[] = []
  for (const name of ['session.created', 'session.refreshed', 'session.revoked', 'auth.rejected'] as const) {
    h.app.sessions.events.on(name, (event: SessionEvent) => events.push(event))
  }
  const alice = await h.login('alice')
  await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie: `__Secure-sg-rt=${alice.refreshToken}; ${alice.fingerprint}`, 'x-requested-with': 'x' } })
  await h.app.sessions.revoke(alice.sessionId)
  await h.me(alice)
  await settle()
  t.same(events.map((e) => e.type), ['session.created', 'session.refreshed', 'session.revoked', 'auth.rejected'])
  t.match(events[0], { type: 'session.created', time: h.clock.now, userId: 'alice', sessionId: alice.sessionId, remembered: false })
  t.match(events[2], { reason: 'admin' })
  t.match(events[3], { reason: 'unknown_session' })
  const serialised = JSON.stringify(events)
  const fingerprint = alice.fingerprint.split('=')[1] as string
  for (const secret of [alice.accessToken, alice.refreshToken, fingerprint]) {
    t.notOk(serialised.includes(secret), 'no token or fingerprint in any event')
  }
})

t.test('a throwing listener never breaks the request', async (t) => {
  const h = await build(t)
  h.app.sessions.events.on('session.created', () => { throw new Error('listener bug') })
  const alice = await h.login('alice')
  t.equal((await h.me(alice)).statusCode, 200)
})

t.test('capacity evictions and expiries found by the store are reported', async (t) => {
  const h = await build(t, { store: memoryStore({ max: 1 }), idleTimeout: '10m' })
  const seen: string[] = []
  h.app.sessions.events.on('session.evicted', (e) => seen.push(`evicted:${e.userId}`))
  h.app.sessions.events.on('session.expired', (e) => seen.push(`expired:${e.userId}:${e.reason}`))
  await h.login('alice')
  const bob = await h.login('bob')
  h.clock.advance(10 * MINUTE)
  t.equal((await h.me(bob)).statusCode, 401)
  await settle()
  t.same(seen, ['evicted:alice'], 'refused at once, but kept for instances whose clocks run behind')
  h.clock.advance(CLOCK_SKEW_ALLOWANCE_MS)
  t.equal(await h.app.sessions.get(bob.sessionId), undefined)
  await settle()
  t.same(seen, ['evicted:alice', 'expired:bob:idle'], 'removed and reported once past the allowance')
})

const EVENT_TYPES = ['session.created', 'session.refreshed', 'session.revoked', 'auth.rejected', 'refresh.reuse_detected'] as const
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'
const SAFARI = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15'

/** An app whose every lifecycle event is kept, with routes that race the lifecycle against a revocation. */
async function recorded (t: Parameters<typeof build>[0], options: Parameters<typeof build>[1] = {}) {
  const h = await build(t, { maxSessionsPerUser: 1, onSessionLimit: 'reject', routes: { prefix: '/sessions' }, ...options }, (app) => {
    app.post('/regenerate', { preHandler: app.requireSession }, async (request, reply) => {
      const { accessToken, refreshToken, session } = await request.regenerateSession(reply)
      return { accessToken, refreshToken, sessionId: session.id }
    })
    // Another request signs the session out while this one works on it.
    app.post('/revoked-then-regenerate', { preHandler: app.requireSession }, async (request, reply) => {
      await app.sessions.revoke((request.authSession as SessionRecord).id)
      return await request.regenerateSession(reply)
    })
    app.post('/revoked-then-logout', { preHandler: app.requireSession }, async (request, reply) => {
      await app.sessions.revoke((request.authSession as SessionRecord).id)
      await request.endSession(reply)
      return await reply.code(204).send()
    })
    // A login route that declares the 409 schema, so a refusal carries its way out (its ticket).
    app.post<{ Body: { userId: string } }>('/login-limited', { schema: { response: { 409: sessionLimitResponseSchema } } }, async (request, reply) => {
      const { session } = await reply.issueSession({ userId: request.body.userId })
      return { sessionId: session.id }
    })
    app.post<{ Body: { userId: string } }>('/login-refused', async (request, reply) => {
      try {
        await reply.issueSession({ userId: request.body.userId })
        return { refused: false }
      } catch (err) {
        return { refused: true, code: (err as { code: string }).code, ownKeys: Object.keys(err as object).sort() }
      }
    })
  })
  const events: SessionEvent[] = []
  for (const type of EVENT_TYPES) h.app.sessions.events.on(type, (event: SessionEvent) => events.push(event))
  /** The events `step` publishes. */
  const during = async (step: () => Promise<unknown>): Promise<SessionEvent[]> => {
    await settle()
    const from = events.length
    await step()
    await settle()
    return events.slice(from)
  }
  const refresh = async (cookie: string, headers: Record<string, string> = {}) =>
    await h.app.inject({ method: 'POST', url: '/refresh', headers: { cookie, 'x-requested-with': 'x', ...headers } })
  const loginFrom = async (userId: string, userAgent: string) =>
    await h.app.inject({ method: 'POST', url: '/login', headers: { 'user-agent': userAgent }, payload: { userId } })
  return { ...h, during, refresh, loginFrom }
}

/** `store` with its method `name` replaced by what `make` builds from the store: a race lost at that step. */
function racing<K extends keyof SessionStore> (store: SessionStore, name: K, make: (store: SessionStore) => SessionStore[K]): SessionStore {
  const replaced = make(store)
  return new Proxy(store, {
    get (target, key) {
      if (key === name) return replaced
      const value = Reflect.get(target, key)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
}

/** The value of the cookie `name` a response sets. */
function cookieOf (response: LightMyRequestResponse, name: string): string {
  return (response.cookies as Array<{ name: string, value: string }>).find((cookie) => cookie.name === name)?.value as string
}

/** The reason of each `auth.rejected` among `events`. */
const reasons = (events: SessionEvent[]): unknown[] => events.filter((e) => e.type === 'auth.rejected').map((e) => (e as SessionEvent<'auth.rejected'>).reason)

t.test('each step of the lifecycle publishes its event with what it says', async (t) => {
  const h = await recorded(t)
  let alice: Credentials | undefined
  const [created] = await h.during(async () => { alice = await h.login('alice') })
  t.match(created, { type: 'session.created', sessionId: alice?.sessionId, remembered: false })
  t.notOk('flags' in (created as object), 'an unflagged login\'s event has no flags')
  t.notOk('claims' in (await h.app.sessions.get(alice?.sessionId as string) as object), 'nor its record any claims')
  t.match(await h.during(async () => await h.login('carol', { remember: true })), [{ type: 'session.created', remembered: true }])

  await h.loginFrom('dana', FIREFOX)
  await h.app.sessions.revokeAll('dana')
  const flagged = await h.during(async () => await h.loginFrom('dana', SAFARI))
  t.match(flagged, [{ type: 'session.created', flags: ['new_device'] }], 'a flagged login\'s event carries its flags')

  const rotated = await h.during(async () => await h.refresh(`__Secure-sg-rt=${alice?.refreshToken}; ${alice?.fingerprint}`))
  t.match(rotated, [{ type: 'session.refreshed', sessionId: alice?.sessionId, rotations: 1 }])

  let erin: Credentials | undefined
  await h.during(async () => { erin = await h.login('erin', { remember: true }) })
  let regenerated: { sessionId: string, refreshToken: string, fingerprint: string } | undefined
  const regeneration = await h.during(async () => {
    const response = await h.app.inject({ method: 'POST', url: '/regenerate', headers: { authorization: `Bearer ${erin?.accessToken}`, cookie: erin?.fingerprint } })
    regenerated = { sessionId: response.json().sessionId, refreshToken: cookieOf(response, '__Secure-sg-rt'), fingerprint: `__Host-sg-fp=${cookieOf(response, '__Host-sg-fp')}` }
  })
  t.match(regeneration, [
    { type: 'session.revoked', sessionId: erin?.sessionId, reason: 'regenerate' },
    { type: 'session.created', sessionId: regenerated?.sessionId, remembered: true }
  ])
  t.notOk('claims' in (await h.app.sessions.get(regenerated?.sessionId as string) as object), 'a session without claims gets none by regenerating')
  const afterRegenerate = await h.refresh(`__Secure-sg-rt=${regenerated?.refreshToken}; ${regenerated?.fingerprint}`)
  t.equal(afterRegenerate.statusCode, 200, 'the regenerated session\'s refresh token works')

  const gina = await h.login('gina')
  t.match(await h.during(async () => await h.app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${gina.accessToken}`, cookie: gina.fingerprint } })),
    [{ type: 'session.revoked', sessionId: gina.sessionId, reason: 'user' }])
  const hank = await h.login('hank')
  const raced = await h.during(async () => await h.app.inject({ method: 'POST', url: '/revoked-then-logout', headers: { authorization: `Bearer ${hank.accessToken}`, cookie: hank.fingerprint } }))
  t.strictSame(raced.map((e) => [e.type, (e as SessionEvent<'session.revoked'>).reason]), [['session.revoked', 'admin']], 'a logout of a session already gone publishes nothing more')

  const refused = await h.app.inject({ method: 'POST', url: '/login-refused', payload: { userId: 'hank2' } })
  t.strictSame(refused.json(), { refused: false })
  const atLimit = await h.app.inject({ method: 'POST', url: '/login-refused', payload: { userId: 'hank2' } })
  t.match(atLimit.json(), { refused: true, code: 'FST_SESSION_GUARD_SESSION_LIMIT' })
  t.notOk((atLimit.json().ownKeys as string[]).includes('deviceType'), 'the total\'s limit names no device type, not even as undefined')
})

t.test('each refusal of a refresh, a regeneration or a limit ticket publishes its own reason', async (t) => {
  const h = await recorded(t)
  const alice = await h.login('alice')
  const cookie = `__Secure-sg-rt=${alice.refreshToken}; ${alice.fingerprint}`
  const reasonOf = async (step: () => Promise<unknown>): Promise<unknown[]> => reasons(await h.during(step))

  t.strictSame(await reasonOf(async () => await h.refresh(alice.fingerprint)), ['missing_refresh_token'], 'no refresh cookie')
  t.strictSame(await reasonOf(async () => await h.refresh(`__Secure-sg-rt=${'a'.repeat(256)}; ${alice.fingerprint}`)), ['invalid_refresh_token'], 'a token of 256 characters is read')
  t.strictSame(await reasonOf(async () => await h.refresh(`__Secure-sg-rt=${'a'.repeat(257)}; ${alice.fingerprint}`)), ['missing_refresh_token'], 'one of 257 is not')
  t.strictSame(await reasonOf(async () => await h.refresh(`__Secure-sg-rt=${alice.refreshToken}`)), ['missing_fingerprint'], 'no fingerprint cookie')
  const bob = await h.login('bob')
  t.strictSame(await reasonOf(async () => await h.refresh(`__Secure-sg-rt=${bob.refreshToken}; ${alice.fingerprint}`)), ['fingerprint_mismatch'], 'another session\'s token')
  await h.app.sessions.revoke(bob.sessionId)
  t.strictSame(await reasonOf(async () => await h.refresh(`__Secure-sg-rt=${bob.refreshToken}; ${bob.fingerprint}`)), ['unknown_session'], 'a session gone')

  // A token two rotations old, after the grace window: theft.
  const first = await h.refresh(cookie)
  const second = await h.refresh(`__Secure-sg-rt=${cookieOf(first, '__Secure-sg-rt')}; ${alice.fingerprint}`)
  t.equal(second.statusCode, 200)
  // With the dpop option off, a DPoP header changes nothing: the refresh is a cookie one.
  t.equal((await h.refresh(`__Secure-sg-rt=${cookieOf(second, '__Secure-sg-rt')}; ${alice.fingerprint}`, { dpop: 'x' })).statusCode, 200)
  h.clock.advance(11_000)
  const reuse = await h.during(async () => await h.refresh(cookie))
  t.strictSame(reuse.map((e) => e.type), ['refresh.reuse_detected', 'session.revoked', 'auth.rejected'])
  t.match(reuse, [{}, { reason: 'reuse', sessionId: alice.sessionId }, { reason: 'refresh_token_reuse' }])

  const frank = await h.login('frank')
  t.strictSame(await reasonOf(async () => await h.app.inject({ method: 'POST', url: '/revoked-then-regenerate', headers: { authorization: `Bearer ${frank.accessToken}`, cookie: frank.fingerprint } })),
    ['unknown_session'], 'a regeneration of a session signed out meanwhile')
})

t.test('a session without refresh state (written by an earlier version, or imported) refuses a refresh with a 401', async (t) => {
  const store = memoryStore()
  const h = await recorded(t, { store })
  const alice = await h.login('alice')
  const { refresh: _, ...bare } = await store.get(alice.sessionId, h.clock.now) as SessionRecord
  await store.revoke(alice.sessionId, h.clock.now)
  await store.create(bare, { max: 5, onLimit: 'reject' }, h.clock.now)
  const refused = await h.refresh(`__Secure-sg-rt=${alice.refreshToken}; ${alice.fingerprint}`)
  t.equal(refused.statusCode, 401)
  t.equal((await h.me(alice)).statusCode, 200, 'the session itself still works')
})

t.test('a login completed with its limit ticket: the session signed out, the fingerprint cookie kept, and a race lost with its reason', async (t) => {
  const h = await recorded(t)
  const first = await h.login('ivy')
  const refused = await h.app.inject({ method: 'POST', url: '/login-limited', payload: { userId: 'ivy' } })
  t.equal(refused.statusCode, 409)
  const fingerprint = cookieOf(refused, '__Host-sg-fp')
  let resolved: LightMyRequestResponse | undefined
  // SameSite=Strict cookies (the default): like any cookie request, it needs no CSRF header.
  const events = await h.during(async () => {
    resolved = await h.app.inject({ method: 'POST', url: '/sessions/resolve-limit', headers: { cookie: `__Host-sg-fp=${fingerprint}` }, payload: { ticket: refused.json().ticket, revoke: first.sessionId } })
  })
  t.equal(resolved?.statusCode, 200)
  t.equal(cookieOf(resolved as LightMyRequestResponse, '__Host-sg-fp'), fingerprint, 'the fingerprint cookie of the 409, set again with the session')
  t.match(events, [{ type: 'session.revoked', sessionId: first.sessionId, reason: 'user' }, { type: 'session.created', userId: 'ivy' }])

  // Every revoke finds its session already gone, as when a parallel request signed it out first.
  const r = await recorded(t, {
    store: racing(memoryStore(), 'revoke', (store) => async (id: string, now: number) => { await store.revoke(id, now); return await store.revoke(id, now) })
  })
  const own = await r.login('jo')
  const again = await r.app.inject({ method: 'POST', url: '/login-limited', payload: { userId: 'jo' } })
  const lost = await r.during(async () => await r.app.inject({
    method: 'POST', url: '/sessions/resolve-limit', headers: { cookie: `__Host-sg-fp=${cookieOf(again, '__Host-sg-fp')}` }, payload: { ticket: again.json().ticket, revoke: own.sessionId }
  }))
  t.strictSame(reasons(lost), ['stale_ticket'], 'the session to sign out was gone: the ticket is stale')
  t.notOk(lost.some((e) => e.type === 'session.created'), 'and no session is created')
})

t.test('a session signed out between a refresh\'s checks and its rotation: 401 unknown_session, and its cookies cleared', async (t) => {
  // The rotation finds the session gone, as when another request signed it out in between.
  const h = await recorded(t, {
    store: racing(memoryStore(), 'rotate', (store) => async (id: string, rotation: Rotation, now: number) => {
      await store.revoke(id, now)
      return await store.rotate(id, rotation, now)
    })
  })
  const alice = await h.login('alice')
  let response: LightMyRequestResponse | undefined
  const events = await h.during(async () => { response = await h.refresh(`__Secure-sg-rt=${alice.refreshToken}; ${alice.fingerprint}`) })
  t.equal(response?.statusCode, 401)
  t.strictSame(reasons(events), ['unknown_session'])
  t.ok(setCookies(response as LightMyRequestResponse).some((cookie) => cookie.name === '__Secure-sg-rt' && cookie.attributes['max-age'] === '0'), 'the refresh cookie cleared')
})
