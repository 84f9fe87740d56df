import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { buildInstance } from '../examples/redis.js'
import { DEMO_ADDRESSES, exampleLocation } from '../examples/geo.js'
import type { SessionEvent } from '../lib/index.js'
import { banner, buildServer } from '../examples/server.js'
import { TestClock } from './helper.js'
import { leftNoKeys, redisTest, testPrefix } from './stores/redis-helper.js'

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
  t.equal(wrong.response.json().code, 'WRONG_CREDENTIALS', 'a coded answer')
  t.same(unknown.response.json(), wrong.response.json(), 'the same answer')
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice' } })).statusCode, 400, 'schema-checked body')
  // The failure is in alice's own history (the example names the account to the lockout); mallory has none.
  const alice = await login(app, 'alice')
  const history = await app.inject({ method: 'GET', url: '/sessions/history', headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.cookie } })
  t.match(history.json().entries, [{ type: 'session.created' }, { type: 'login.failed', detail: { failures: 1 } }])
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
  t.match(page.body, "<a href='https://db-ip.com'>IP Geolocation by DB-IP</a>", 'the attribution the database licence asks for')
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

  // The dashboard's page and its data: the plugin's admin routes, behind the example's role check.
  t.match((await app.inject({ method: 'GET', url: '/admin.html' })).body, '<h1>Sessions dashboard</h1>')
  t.match((await app.inject({ method: 'GET', url: '/' })).body, '<a href="admin.html">Sessions dashboard</a>', 'linked from the devices page')
  const overview = await app.inject({ method: 'GET', url: '/admin/dashboard/overview', headers: auth(alice) })
  t.equal(overview.statusCode, 200)
  t.match(overview.json(), { live: { sessions: 1, users: 1 }, timeline: { intervalMs: 60_000 } })
  t.equal(overview.json().timeline.points.length, 120, 'two hours of one-minute points')
  const bobAgain = await login(app, 'bob')
  t.equal((await app.inject({ method: 'GET', url: '/admin/dashboard/overview', headers: auth(bobAgain) })).statusCode, 403, 'bob is no admin here either')
  t.equal((await app.inject({ method: 'GET', url: '/admin/dashboard/users/user-bob', headers: auth(bobAgain) })).statusCode, 403)
  const user = await app.inject({ method: 'GET', url: '/admin/dashboard/users/user-bob', headers: auth(alice) })
  t.match(user.json().history, [{ type: 'session.created' }, { type: 'session.revoked', detail: { reason: 'admin' } }])
})

t.test('the example with the reject policy answers the limit with its way out', async (t) => {
  const app = await buildServer({ logger: false, maxSessionsPerUser: 1, onSessionLimit: 'reject' })
  t.teardown(() => app.close())
  await login(app, 'bob')
  const refused = await login(app, 'bob')
  t.equal(refused.response.statusCode, 409)
  t.match(refused.response.json(), { code: 'FST_SESSION_GUARD_SESSION_LIMIT', sessions: [{ isCurrent: false }], ticket: String })
})

t.test('the example locks a login after repeated failures, with Retry-After', async (t) => {
  const app = await buildServer({ logger: false })
  t.teardown(() => app.close())
  const codes: number[] = []
  for (let i = 0; i < 10; i++) codes.push((await login(app, 'alice', 'wrong')).response.statusCode)
  t.same(codes.slice(0, 5), [401, 401, 401, 401, 401])
  t.ok(codes.slice(5).every((code) => code === 429), 'then locked')
  const locked = await login(app, 'alice')
  t.equal(locked.response.statusCode, 429, 'even with the right password, while locked')
  t.ok(Number(locked.response.headers['retry-after']) >= 1)
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /session_guard_login_lockouts_total\{scope="username"\} [1-9]/)
  t.match(metrics.body, /session_guard_login_failures_total 5/)
})

t.test('the example: logins from Paris then Sydney minutes apart raise impossible travel, on the real database', async (t) => {
  const events: SessionEvent[] = []
  const app = await buildServer({ logger: false, onEvent: (event) => events.push(event) })
  t.teardown(() => app.close())
  const from = async (ip: string) => await app.inject({ method: 'POST', url: '/login', payload: { username: 'bob', password: 'demo-password' }, headers: { 'x-forwarded-for': ip } })
  const paris = await from(DEMO_ADDRESSES.paris)
  const sydney = await from(DEMO_ADDRESSES.sydney)
  t.equal(sydney.statusCode, 200, 'challenged, not refused')
  t.equal(sydney.json().stepUp, true, 'the answer says a step-up is due')
  t.equal(paris.json().stepUp, false)
  const session = await app.sessions.get(sydney.json().sessionId)
  t.match(session, { ip: DEMO_ADDRESSES.sydney, location: { city: 'Sydney', country: 'AU', latitude: Number, longitude: Number } })
  t.same(session?.flags, ['new_country', 'impossible_travel', 'challenge'])
  t.match(await app.sessions.get(paris.json().sessionId), { location: { city: 'Paris', country: 'FR', latitude: Number, longitude: Number } })
  await new Promise((resolve) => setImmediate(resolve))
  const [travel] = events.filter((event) => event.type === 'anomaly.detected' && event.rule === 'impossible_travel') as Array<SessionEvent<'anomaly.detected'>>
  t.match(travel?.detail, { from: 'FR', to: 'AU' }, 'the leg the rule measured')
  t.ok((travel?.detail.distanceKm as number) > 16_000, `Paris to Sydney is about 16,960 km: ${String(travel?.detail.distanceKm)}`)
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, 'session_guard_anomalies_total{rule="impossible_travel",decision="challenge"} 1')
  t.same((await app.inject({ method: 'GET', url: '/health' })).json(), { status: 'ok', store: 'up', sessions: 2, users: 1, capacity: 100000, utilization: 0.00002 })
  const untrusted = await app.inject({ method: 'POST', url: '/login', payload: { username: 'bob', password: 'demo-password' }, headers: { 'x-forwarded-for': '192.0.2.1' }, remoteAddress: '10.1.2.3' })
  t.equal((await app.sessions.get(untrusted.json().sessionId))?.ip, '10.1.2.3', 'X-Forwarded-For is only believed from loopback')
})

/** The example with its warn log captured; bob signed in from Paris, then minutes later from Sydney (challenged). */
async function challengedInSydney (t: Test) {
  const lines: string[] = []
  const app = await buildServer({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(line) } } } })
  t.teardown(() => app.close())
  const from = async (ip: string) => await app.inject({ method: 'POST', url: '/login', payload: { username: 'bob', password: 'demo-password' }, headers: { 'x-forwarded-for': ip } })
  await from(DEMO_ADDRESSES.paris)
  const sydney = await from(DEMO_ADDRESSES.sydney)
  const cookie = (sydney.cookies as Array<{ name: string, value: string }>).map((c) => `${c.name}=${c.value}`).join('; ')
  const headers = { authorization: `Bearer ${sydney.json().accessToken as string}`, cookie, 'x-forwarded-for': DEMO_ADDRESSES.sydney }
  const printed = lines.map((line) => JSON.parse(line) as { msg: string, code?: string, user?: string }).find((line) => line.msg.startsWith('step-up code'))
  const code = printed?.code as string
  return {
    app,
    from,
    headers,
    printed,
    code,
    wrong: code === '000000' ? '000001' : '000000',
    me: async () => await app.inject({ method: 'GET', url: '/me', headers }),
    stepUp: async (code: string) => await app.inject({ method: 'POST', url: '/step-up', headers, payload: { code } })
  }
}

t.test('the example: the challenged Sydney sign-in passes its step-up with the code printed to the log', async (t) => {
  const { app, from, headers, printed, code, wrong, me, stepUp } = await challengedInSydney(t)
  const refused = await me()
  t.equal(refused.statusCode, 401)
  t.equal(refused.json().code, 'FST_SESSION_GUARD_STEP_UP_REQUIRED')
  t.match(printed, { user: 'bob', code: /^[0-9]{6}$/ }, 'the code is in the log, as the example prints it')
  t.equal((await stepUp('12345')).statusCode, 400, 'six digits, by schema')
  const refusedCode = await stepUp(wrong)
  t.strictSame([refusedCode.statusCode, refusedCode.json().code, (await me()).statusCode], [400, 'STEP_UP_WRONG_CODE', 401], 'a wrong code lifts nothing')
  const done = await stepUp(code)
  t.strictSame([done.statusCode, done.json()], [200, { completed: true }])
  t.equal((await me()).statusCode, 200, 'the session works now')
  t.equal((await stepUp(code)).statusCode, 409, 'a code is used once')
  const again = await from(DEMO_ADDRESSES.sydney)
  t.equal(again.json().stepUp, false, 'the completed step-up made Sydney known: no step-up the next time')
  t.equal((await app.inject({ method: 'POST', url: '/logout', headers })).statusCode, 204, 'sign-out')
})

t.test('the example: five wrong codes use up a step-up', async (t) => {
  const { code, wrong, me, stepUp } = await challengedInSydney(t)
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) statuses.push((await stepUp(wrong)).statusCode)
  t.strictSame(statuses, [400, 400, 400, 400, 400])
  t.equal((await stepUp(code)).statusCode, 409, 'the right code after five wrong ones: none pending')
  t.equal((await me()).statusCode, 401, 'still restricted: sign in again')
})

t.test('the example: wrong step-up codes are counted per user, so signing in again does not bring five more tries forever', async (t) => {
  const lines: string[] = []
  const app = await buildServer({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(line) } } } })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => await fetch(base + path, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body)
  })
  const signIn = async (ip: string) => {
    const answer = await post('/login', { username: 'bob', password: 'demo-password' }, { 'x-forwarded-for': ip })
    const cookie = answer.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ')
    const { accessToken, stepUp } = await answer.json() as { accessToken: string, stepUp: boolean }
    return { stepUp, headers: { authorization: `Bearer ${accessToken}`, cookie, 'x-forwarded-for': ip } }
  }
  const lastCode = () => lines.map((line) => JSON.parse(line) as { msg: string, code?: string }).filter((line) => line.msg.startsWith('step-up code')).pop()?.code as string
  await signIn(DEMO_ADDRESSES.paris)
  const statuses: number[] = []
  for (let i = 0; i < 2; i++) {
    // Whoever holds the password signs in again for a new code, and guesses again.
    const sydney = await signIn(DEMO_ADDRESSES.sydney)
    t.equal(sydney.stepUp, true)
    const wrong = lastCode() === '000000' ? '000001' : '000000'
    for (let j = 0; j < 5; j++) statuses.push((await post('/step-up', { code: wrong }, sydney.headers)).status)
  }
  t.strictSame(statuses, Array(10).fill(400))
  const sydney = await signIn(DEMO_ADDRESSES.sydney)
  const locked = await post('/step-up', { code: lastCode() }, sydney.headers)
  t.equal(locked.status, 429, 'ten wrong codes for bob: even the right one waits')
  t.equal((await fetch(`${base}/me`, { headers: sydney.headers })).status, 401, 'still restricted')
})

t.test('the example\'s demo addresses map to real cities in the database the example ships', async (t) => {
  const resolve = await exampleLocation()
  t.match(resolve(DEMO_ADDRESSES.paris), { city: 'Paris', country: 'FR' })
  t.match(resolve(DEMO_ADDRESSES.sydney), { city: 'Sydney', country: 'AU' })
  t.match(resolve(DEMO_ADDRESSES.newYork), { city: 'New York', country: 'US' })
  t.equal(resolve('127.0.0.1'), undefined, 'a browser on this machine has no location')
  t.equal(await exampleLocation(), resolve, 'read once per process')
})

t.test('the example answers /metrics and /health on loopback only', async (t) => {
  const app = await buildServer({ logger: false })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  for (const path of ['/metrics', '/health']) {
    t.equal((await fetch(`${base}${path}`)).status, 200, `${path} from this machine`)
    // What a local reverse proxy forwards for a client out there.
    const proxied = await fetch(`${base}${path}`, { headers: { 'x-forwarded-for': '203.0.113.9' } })
    t.equal(proxied.status, 404, `${path} through the proxy, for a client elsewhere`)
    t.notMatch(await proxied.text(), /session_guard|sessions/, `${path}: nothing of it`)
    t.equal((await app.inject({ method: 'GET', url: path, remoteAddress: '10.1.2.3' })).statusCode, 404, `${path} from another machine`)
  }
  t.equal((await fetch(`${base}/me`, { headers: { 'x-forwarded-for': '203.0.113.9' } })).status, 401, 'other routes are served as before')
})

t.test('the example: the current password of POST /password is locked out like a login', async (t) => {
  const clock = new TestClock()
  const app = await buildServer({ logger: false, clock: clock.read })
  t.teardown(() => app.close())
  const alice = await login(app, 'alice')
  const change = async (currentPassword: string) => await app.inject({
    method: 'POST',
    url: '/password',
    headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.cookie },
    payload: { currentPassword, newPassword: 'a-new-long-password' }
  })
  // A stolen session guessing the password: five free guesses, as at the login.
  for (let i = 0; i < 5; i++) t.equal((await change(`guess-${i}`)).statusCode, 403, `guess ${i + 1}`)
  const locked = await change('demo-password')
  t.equal(locked.statusCode, 429, 'then locked, even with the right password')
  t.equal(locked.json().code, 'FST_SESSION_GUARD_LOGIN_LOCKED')
  t.equal((await login(app, 'alice')).response.statusCode, 429, 'and the login with it: one count per user')
  clock.advance(1000)
  t.same((await change('demo-password')).json(), { revoked: 1 }, 'after the lockout, the right password works')
})

redisTest(t, 'the Redis example: no claims chosen by the client, no session record in an answer', async (t) => {
  const prefix = testPrefix(t)
  const [one, two] = [await buildInstance(3001, { prefix, logger: false }), await buildInstance(3002, { prefix, logger: false })]
  t.teardown(async () => { await Promise.all([one.close(), two.close()]) })
  // A client that sends claims (and the rest of an issueSession() input) along with its user id.
  const login = await one.inject({ method: 'POST', url: '/login', payload: { userId: 'alice', claims: { role: 'admin' }, sub: 'root' } })
  t.equal(login.statusCode, 200)
  const { accessToken, sessionId } = login.json()
  const cookie = (login.cookies as Array<{ name: string, value: string }>).map((c) => `${c.name}=${c.value}`).join('; ')
  const me = await two.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${accessToken}`, cookie } })
  t.equal(me.statusCode, 200, 'the session works on the other instance')
  t.match(me.json(), { user: { sub: 'alice', sid: sessionId }, session: { id: sessionId, isCurrent: true }, servedBy: 3002 })
  t.equal(me.json().user.role, undefined, 'the claims the client sent are not in its token')
  t.equal((await one.inject({ method: 'POST', url: '/login', payload: { remember: true } })).statusCode, 400, 'the body is schema-checked')
  t.notMatch(me.body, /fingerprint|refresh|hash|claims/i, 'the public view, never the record')
  const listed = await two.inject({ method: 'GET', url: '/sessions', headers: { authorization: `Bearer ${accessToken}`, cookie } })
  t.notMatch(listed.body, /fingerprint|refresh|hash|claims/i)

  const refreshed = await one.inject({ method: 'POST', url: '/refresh', headers: { cookie, 'x-requested-with': 'test' } })
  t.equal(refreshed.statusCode, 200, 'refreshed on one instance')
  const auth = { authorization: `Bearer ${refreshed.json().accessToken}`, cookie }
  t.equal((await two.inject({ method: 'POST', url: '/logout', headers: auth })).statusCode, 204, 'signed out on the other')
  t.equal((await two.inject({ method: 'GET', url: '/me', headers: auth })).statusCode, 401)
})

leftNoKeys(t)

t.test('the example\'s banner: its pid, a working refresh of $TOKEN, and the device routes called without a JSON body', async (t) => {
  const printed = banner('http://127.0.0.1:3000', 4242)
  t.match(printed, 'process 4242', 'the process id, to stop it')
  const lines = printed.split('\n').map((line) => line.trim())
  const refresh = lines.find((line) => line.includes('/refresh'))
  t.match(refresh, /^TOKEN=\$\(curl .*-X POST http:\/\/127\.0\.0\.1:3000\/refresh \| node -pe .*\.accessToken'\)$/, 'the refresh updates $TOKEN')
  const revokeOne = lines.find((line) => line.includes('-X DELETE'))
  const revokeOthers = lines.find((line) => line.includes('/sessions/revoke-others'))
  t.match(revokeOne, 'http://127.0.0.1:3000/sessions/<id>')
  t.match(revokeOthers, '-X POST')
  for (const line of [revokeOne, revokeOthers]) {
    t.notMatch(line, /content-type|-d /, 'no JSON content type, no body')
  }

  // What those two commands send, against the example.
  const app = await buildServer({ logger: false })
  t.teardown(() => app.close())
  const laptop = await login(app, 'alice')
  await login(app, 'alice')
  await login(app, 'alice')
  const auth = { authorization: `Bearer ${laptop.accessToken}`, cookie: laptop.cookie }
  const list = await app.inject({ method: 'GET', url: '/sessions', headers: auth })
  const others = (list.json().sessions as Array<{ id: string, isCurrent: boolean }>).filter((session) => !session.isCurrent)
  t.equal(others.length, 2)
  // A JSON content type without a body is refused by Fastify before the route: the banner sends none.
  const withJson = await app.inject({ method: 'DELETE', url: `/sessions/${others[0]!.id}`, headers: { ...auth, 'content-type': 'application/json' } })
  t.equal(withJson.statusCode, 400, 'with a JSON content type and no body: refused')
  t.equal((await app.inject({ method: 'DELETE', url: `/sessions/${others[0]!.id}`, headers: auth })).statusCode, 204, 'one device signed out')
  t.same((await app.inject({ method: 'POST', url: '/sessions/revoke-others', headers: auth })).json(), { revoked: 1 }, 'every other device signed out')
  t.equal((await app.sessions.list('user-alice')).length, 1)
})
