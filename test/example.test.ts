import t from 'tap'
import { buildServer } from '../examples/server.js'

async function login (app: Awaited<ReturnType<typeof buildServer>>, username: string, password = 'demo-password') {
  const response = await app.inject({ method: 'POST', url: '/login', payload: { username, password } })
  const cookies = response.cookies as Array<{ name: string, value: string }>
  return {
    response,
    accessToken: response.json().accessToken as string,
    cookie: cookies.map((c) => `${c.name}=${c.value}`).join('; ')
  }
}

t.test('the example: login, me, refresh, logout, and the same token refused', async (t) => {
  const app = await buildServer({ logger: false })
  t.teardown(() => app.close())
  const alice = await login(app, 'alice')
  t.equal(alice.response.statusCode, 200)
  const me = await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.cookie } })
  t.match(me.json(), { user: { sub: 'user-alice', name: 'alice', role: 'admin' }, session: { remembered: false } })
  const refreshed = await app.inject({ method: 'POST', url: '/refresh', headers: { cookie: alice.cookie, 'x-requested-with': 'test' } })
  t.equal(refreshed.statusCode, 200)
  t.equal(refreshed.json().refreshToken, undefined, 'the refresh token stays in its cookie')
  const logout = await app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.cookie } })
  t.equal(logout.statusCode, 204)
  const after = await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.cookie } })
  t.equal(after.statusCode, 401)
})

t.test('the example refuses wrong passwords and unknown users alike', async (t) => {
  const app = await buildServer({ logger: false, secret: 'x'.repeat(32) })
  t.teardown(() => app.close())
  const wrong = await login(app, 'alice', 'nope')
  const unknown = await login(app, 'mallory')
  t.equal(wrong.response.statusCode, 401)
  t.same(unknown.response.json(), wrong.response.json(), 'the same answer')
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice' } })).statusCode, 400, 'schema-checked body')
})

t.test('the example: a password change revokes every session of the user', async (t) => {
  const app = await buildServer({ logger: false })
  t.teardown(() => app.close())
  const laptop = await login(app, 'alice')
  const phone = await login(app, 'alice')
  const bob = await login(app, 'bob')
  const auth = (s: typeof laptop) => ({ authorization: `Bearer ${s.accessToken}`, cookie: s.cookie })
  const denied = await app.inject({ method: 'POST', url: '/password', headers: auth(laptop), payload: { currentPassword: 'wrong', newPassword: 'a-new-long-password' } })
  t.equal(denied.statusCode, 403)
  const changed = await app.inject({ method: 'POST', url: '/password', headers: auth(laptop), payload: { currentPassword: 'demo-password', newPassword: 'a-new-long-password' } })
  t.same(changed.json(), { revoked: 2 })
  for (const session of [laptop, phone]) {
    t.equal((await app.inject({ method: 'GET', url: '/me', headers: auth(session) })).statusCode, 401, 'access token dead')
    t.equal((await app.inject({ method: 'POST', url: '/refresh', headers: { cookie: session.cookie, 'x-requested-with': 'test' } })).statusCode, 401, 'refresh token dead')
  }
  t.equal((await app.inject({ method: 'GET', url: '/me', headers: auth(bob) })).statusCode, 200, "bob's session lives on")
  t.equal((await login(app, 'alice', 'demo-password')).response.statusCode, 401, 'old password gone')
  t.equal((await login(app, 'alice', 'a-new-long-password')).response.statusCode, 200)
})

t.test('the example serves the devices page and an admin view for admins only', async (t) => {
  const app = await buildServer({ logger: false })
  t.teardown(() => app.close())
  const page = await app.inject({ method: 'GET', url: '/' })
  t.equal(page.statusCode, 200)
  t.match(page.body, /Your devices/)
  t.match((await app.inject({ method: 'GET', url: '/devices.js' })).headers['content-type'], /javascript/)

  const alice = await login(app, 'alice')
  const bob = await login(app, 'bob')
  const auth = (s: typeof alice) => ({ authorization: `Bearer ${s.accessToken}`, cookie: s.cookie })
  const listed = await app.inject({ method: 'GET', url: '/admin/users/bob/sessions', headers: auth(alice) })
  t.equal(listed.statusCode, 200)
  const [session] = listed.json().sessions
  t.equal(session.id, bob.response.json().sessionId)
  t.equal((await app.inject({ method: 'GET', url: '/admin/users/nobody/sessions', headers: auth(alice) })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: '/admin/users/alice/sessions', headers: auth(bob) })).statusCode, 403, 'bob is no admin')
  t.equal((await app.inject({ method: 'DELETE', url: `/admin/sessions/${session.id}`, headers: auth(alice) })).statusCode, 204)
  t.equal((await app.inject({ method: 'DELETE', url: `/admin/sessions/${session.id}`, headers: auth(alice) })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: '/me', headers: auth(bob) })).statusCode, 401, "an admin revoked bob's session")
})

t.test('the example with the reject policy answers the limit with its way out', async (t) => {
  const app = await buildServer({ logger: false, maxSessionsPerUser: 1, onSessionLimit: 'reject' })
  t.teardown(() => app.close())
  await login(app, 'bob')
  const refused = await login(app, 'bob')
  t.equal(refused.response.statusCode, 409)
  t.match(refused.response.json(), { code: 'FST_SESSION_GUARD_SESSION_LIMIT', sessions: [{ isCurrent: false }], ticket: String })
})
