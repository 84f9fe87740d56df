import t from 'tap'
import { build, MINUTE, settle } from './helper.js'

t.test('maxSessionsPerUser defaults to 15 and evicts the least recently active', async (t) => {
  const { app, clock, login, me } = await build(t, { accessTokenTtl: '2h', idleTimeout: '2h' })
  const sessions = []
  for (let i = 0; i < 15; i++) {
    sessions.push(await login('alice'))
    clock.advance(MINUTE)
  }
  // The first session is the oldest by creation but the most recently active.
  t.equal((await me(sessions[0]!)).statusCode, 200)
  const revoked: string[] = []
  app.sessions.events.on('session.revoked', (event) => revoked.push(`${event.sessionId}:${event.reason}`))
  const sixteenth = await login('alice')
  t.equal((await app.sessions.list('alice')).length, 15)
  await settle()
  t.same(revoked, [`${sessions[1]!.sessionId}:limit`], 'the least recently active one went, reported as a limit revocation')
  t.equal((await me(sessions[1]!)).statusCode, 401, 'its token stops working')
  t.equal((await me(sessions[0]!)).statusCode, 200, 'the active older device stays')
  t.equal((await me(sixteenth)).statusCode, 200)
})

t.test("one user's limit never touches another user's sessions", async (t) => {
  const { app, login } = await build(t, { maxSessionsPerUser: 2 })
  await login('bob')
  for (let i = 0; i < 5; i++) await login('alice')
  t.equal((await app.sessions.list('alice')).length, 2)
  t.equal((await app.sessions.list('bob')).length, 1)
})

t.test('maxSessionsPerUser: 1 with evict is single-session mode', async (t) => {
  const { login, me } = await build(t, { maxSessionsPerUser: 1 })
  const laptop = await login('alice')
  const phone = await login('alice')
  t.equal((await me(laptop)).statusCode, 401, 'signing in elsewhere signs the first device out')
  t.equal((await me(phone)).statusCode, 200)
})

t.test("onSessionLimit: 'reject' refuses the new login with 409 and leaves the others untouched", async (t) => {
  const { app, login, me } = await build(t, { maxSessionsPerUser: 2, onSessionLimit: 'reject' })
  const first = await login('alice')
  const second = await login('alice')
  const before = await app.sessions.list('alice')
  const response = await app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' } })
  t.equal(response.statusCode, 409)
  t.equal(response.json().code, 'FST_SESSION_GUARD_SESSION_LIMIT')
  t.match(response.headers['set-cookie'], /^__Host-sg-fp=/, 'only the fingerprint cookie a ticket needs (see routes.test.ts)')
  t.notMatch(String(response.headers['set-cookie']), /sg-rt/, 'no refresh cookie for a refused login')
  t.same(await app.sessions.list('alice'), before, 'existing sessions unchanged (not even touched)')
  t.equal((await me(first)).statusCode, 200)
  t.equal((await me(second)).statusCode, 200)
  await app.sessions.revoke(first.sessionId)
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' } })).statusCode, 200, 'room again after a logout')
})

t.test('expired sessions do not count toward the limit', async (t) => {
  const { app, clock, login } = await build(t, { maxSessionsPerUser: 2, onSessionLimit: 'reject', idleTimeout: '10m' })
  await login('alice')
  await login('alice')
  clock.advance(10 * MINUTE)
  await login('alice')
  t.equal((await app.sessions.list('alice')).length, 1)
})

for (const onSessionLimit of ['evict-oldest', 'reject'] as const) {
  t.test(`50 concurrent logins of one user never end above the limit (${onSessionLimit})`, async (t) => {
    const { app } = await build(t, { maxSessionsPerUser: 5, onSessionLimit })
    const responses = await Promise.all(Array.from({ length: 50 }, async () =>
      await app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' } })))
    const ok = responses.filter((r) => r.statusCode === 200).length
    t.equal((await app.sessions.list('alice')).length, 5)
    t.equal(ok, onSessionLimit === 'reject' ? 5 : 50)
    t.equal(responses.length - ok, onSessionLimit === 'reject' ? 45 : 0)
  })
}
