import t from 'tap'
import { CLOCK_SKEW_ALLOWANCE_MS, memoryStore, type SessionEvent } from '../lib/index.js'
import { build, MINUTE, settle } from './helper.js'

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
