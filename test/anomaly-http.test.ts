import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import sessionGuard, { type SessionEvent, type SessionGuardOptions, sessionLimitResponseSchema } from '../lib/index.js'
import { MINUTE, SECRET, settle, TestClock } from './helper.js'
import { FIREFOX, PLACES, SAFARI } from './anomaly-fixtures.js'

/**
 * The anomaly rules against clients that hold real credentials, over a real
 * socket: the client's address comes from `X-Forwarded-For` (`trustProxy`), its
 * device from `User-Agent`, and its place from the test's `resolveLocation`.
 */

const PARIS = { ip: '203.0.113.1', userAgent: FIREFOX }
const BERLIN = { ip: '192.0.2.1', userAgent: FIREFOX }

interface Client { ip: string, userAgent: string }

/** What a client holds after a login: its access token, fingerprint and refresh cookies. */
interface Held { accessToken: string, sessionId: string, fingerprint: string, refreshToken: string }

interface Answer { status: number, body: Record<string, any>, cookies: Record<string, string> }

async function serve (t: Test, options: Partial<SessionGuardOptions> = {}) {
  const clock = new TestClock()
  const events: SessionEvent[] = []
  const app = Fastify({ trustProxy: true })
  t.teardown(() => app.close())
  await app.register(sessionGuard, {
    secret: SECRET,
    clock: clock.read,
    resolveLocation: (ip) => PLACES[ip],
    privacy: { ipMode: 'full' },
    routes: { prefix: '/sessions' },
    onEvent: (event) => events.push(event),
    ...options
  })
  app.post<{ Body: { userId: string } }>('/login', { schema: { response: { 409: sessionLimitResponseSchema } } }, async (request, reply) => {
    const { accessToken, session } = await reply.issueSession({ userId: request.body.userId })
    return { accessToken, sessionId: session.id }
  })
  app.get('/me', { preHandler: app.requireSession }, async (request) => ({ flags: request.authSession?.flags ?? [] }))
  app.post('/refresh', async (request, reply) => ({ accessToken: (await reply.refreshSession()).accessToken }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  async function send (client: Client, method: string, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<Answer> {
    const response = await fetch(base + path, {
      method,
      headers: {
        'x-forwarded-for': client.ip,
        'user-agent': client.userAgent,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers
      },
      body: body === undefined ? undefined : JSON.stringify(body)
    })
    const cookies: Record<string, string> = {}
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';')
      const at = pair.indexOf('=')
      cookies[pair.slice(0, at)] = pair.slice(at + 1)
    }
    const text = await response.text()
    return { status: response.status, body: text === '' ? {} : JSON.parse(text), cookies }
  }

  function held (answer: Answer, fingerprint = answer.cookies['__Host-sg-fp'] as string): Held {
    return { accessToken: answer.body.accessToken, sessionId: answer.body.sessionId, fingerprint, refreshToken: answer.cookies['__Secure-sg-rt'] as string }
  }

  /** Logs alice (or `userId`) in from `client`: the answer, and the session's flags when it was created. */
  async function login (client: Client, userId = 'alice') {
    const answer = await send(client, 'POST', '/login', {}, { userId })
    const session = answer.status === 200 ? await app.sessions.get(answer.body.sessionId) : undefined
    return { answer, held: answer.status === 200 ? held(answer) : undefined, flags: session?.flags }
  }

  async function me (client: Client, credentials: Held): Promise<Answer> {
    return await send(client, 'GET', '/me', { authorization: `Bearer ${credentials.accessToken}`, cookie: `__Host-sg-fp=${credentials.fingerprint}` })
  }

  /** A cookie-carried refresh, as the app's own script sends it; `credentials` take the new tokens. */
  async function refresh (client: Client, credentials: Held): Promise<Answer> {
    const answer = await send(client, 'POST', '/refresh', {
      'x-requested-with': 'fetch',
      cookie: `__Secure-sg-rt=${credentials.refreshToken}; __Host-sg-fp=${credentials.fingerprint}`
    })
    if (answer.status === 200) {
      credentials.accessToken = answer.body.accessToken
      credentials.refreshToken = answer.cookies['__Secure-sg-rt'] as string
    }
    return answer
  }

  async function anomalies (): Promise<string[]> {
    await settle()
    return events.filter((e): e is SessionEvent<'anomaly.detected'> => e.type === 'anomaly.detected').map((e) => `${e.rule}:${e.decision}:${e.at}`)
  }

  return { app, clock, events, send, held, login, me, refresh, anomalies }
}

/** The payload of a JWT, decoded without verification. */
function payloadOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString())
}

// Item: the new-device and new-country rules learn only from vouched devices and countries.

t.test("'revoke': a refused login does not make its device or country known, so a retry is refused again", async (t) => {
  for (const [rule, stranger] of [['newDevice', { ip: PARIS.ip, userAgent: SAFARI }], ['newCountry', BERLIN]] as const) {
    const s = await serve(t, { anomalies: { [rule]: 'revoke' } })
    t.equal((await s.login(PARIS)).answer.status, 200, `${rule}: the first login vouches for its device and country`)
    t.equal((await s.login(PARIS)).answer.status, 200, `${rule}: the same device and country again`)
    const refused = await s.login(stranger)
    t.equal(refused.answer.status, 403, `${rule}: refused`)
    t.equal(refused.answer.body.code, 'FST_SESSION_GUARD_ANOMALY')
    s.clock.advance(MINUTE)
    t.equal((await s.login(stranger)).answer.status, 403, `${rule}: a plain retry is refused again`)
    t.equal((await s.app.sessions.list('alice')).length, 2, `${rule}: the refused logins created nothing`)
  }
})

t.test("'flag': every login from an unvouched device or country is flagged, until app.sessions.trustDevice vouches for it", async (t) => {
  const s = await serve(t, { anomalies: { ipChange: 'flag', impossibleTravel: { policy: 'ignore' }, loginBurst: { policy: 'ignore' } } })
  t.equal((await s.login(PARIS)).flags, undefined, 'the first login: nothing to compare with')
  const phone = { ip: PARIS.ip, userAgent: SAFARI }
  t.same((await s.login(phone)).flags, ['new_device'])
  t.same((await s.login(phone)).flags, ['new_device'], 'a second login from the same new device is flagged again')
  t.same((await s.login(BERLIN)).flags, ['new_country'])
  t.same((await s.login(BERLIN)).flags, ['new_country'], 'and from the same new country')

  // The user confirms the phone (say, after a second factor): the app vouches for that session.
  const confirmed = await s.login(phone)
  t.equal(await s.app.sessions.trustDevice(confirmed.held!.sessionId), true)
  t.equal((await s.app.sessions.get(confirmed.held!.sessionId))?.flags, undefined, 'its new_device flag is cleared')
  t.same((await s.me(phone, confirmed.held!)).body.flags, [], 'and the guard sees it cleared')
  t.equal((await s.login(phone)).flags, undefined, 'the phone is known now')
  t.same((await s.login(BERLIN)).flags, ['new_country'], 'vouching for a device says nothing of a country')

  // A session flagged for both, and for something else: only the vouched flags go.
  const traveller = await s.login({ ip: BERLIN.ip, userAgent: 'curl/8.5.0' })
  t.same(traveller.flags, ['new_device', 'new_country'])
  s.clock.advance(2 * MINUTE)
  t.equal((await s.me({ ip: '192.0.2.9', userAgent: 'curl/8.5.0' }, traveller.held!)).status, 200)
  t.same((await s.app.sessions.get(traveller.held!.sessionId))?.flags, ['new_device', 'new_country', 'ip_change'])
  t.equal(await s.app.sessions.trustDevice(traveller.held!.sessionId), true)
  t.same((await s.app.sessions.get(traveller.held!.sessionId))?.flags, ['ip_change'], 'what the user did not vouch for stays')
  t.equal((await s.login(BERLIN)).flags, undefined, 'Germany is known now')
  t.equal((await s.login({ ip: PARIS.ip, userAgent: 'curl/8.5.0' })).flags, undefined, 'and curl')

  t.equal(await s.app.sessions.trustDevice('no-such-session'), false, 'an unknown session vouches for nothing')
  t.same((await s.anomalies()).filter((a) => a.startsWith('new_')), [
    'new_device:flag:login', 'new_device:flag:login', 'new_country:flag:login', 'new_country:flag:login',
    'new_device:flag:login', 'new_country:flag:login', 'new_device:flag:login', 'new_country:flag:login'
  ], 'each flagged login was reported')
})

t.test('a device in use stays known; one unused for `memory` is forgotten', async (t) => {
  const s = await serve(t, { anomalies: { memory: '90d' } })
  await s.login(PARIS)
  const phone = { ip: PARIS.ip, userAgent: SAFARI }
  await s.app.sessions.trustDevice((await s.login(phone)).held!.sessionId)
  for (let i = 0; i < 3; i++) {
    s.clock.advance(80 * 24 * 60 * MINUTE)
    t.equal((await s.login(PARIS)).flags, undefined, `login ${i + 1}, 80 days after the last: still known`)
  }
  t.same((await s.login(phone)).flags, ['new_device'], 'the phone was not used for 240 days')
})

t.test('a login completed with the limit ticket keeps its flags, and the client cannot strip them', async (t) => {
  const s = await serve(t, { maxSessionsPerUser: 1, onSessionLimit: 'reject' })
  const laptop = (await s.login(PARIS)).held!
  const phone = { ip: PARIS.ip, userAgent: SAFARI }
  const refused = await s.login(phone)
  t.equal(refused.answer.status, 409)
  const ticket = refused.answer.body.ticket as string
  const fingerprint = refused.answer.cookies['__Host-sg-fp'] as string
  const resolve = async (token: string) => await s.send(phone, 'POST', '/sessions/resolve-limit', { cookie: `__Host-sg-fp=${fingerprint}` }, { ticket: token, revoke: laptop.sessionId })

  // The same ticket with its flags removed, under the original signature.
  const [header, , signature] = ticket.split('.')
  const { flg, ...stripped } = payloadOf(ticket)
  t.same(flg, ['new_device'], 'the ticket carries the verdict of the refused login')
  const forged = `${header}.${Buffer.from(JSON.stringify(stripped)).toString('base64url')}.${signature}`
  t.equal((await resolve(forged)).status, 401, 'a ticket stripped of its flags is refused')

  const done = await resolve(ticket)
  t.equal(done.status, 200)
  t.same((await s.app.sessions.get(done.body.sessionId))?.flags, ['new_device'], 'the session it creates is flagged')
  t.same((await s.me(phone, s.held(done, fingerprint))).body.flags, ['new_device'])
  t.same(await s.anomalies(), ['new_device:flag:login'], 'the login was judged once, not again when the ticket completed')
  await settle()
  t.match(s.events.filter((e) => e.type === 'session.created').at(-1), { sessionId: done.body.sessionId, flags: ['new_device'] })
})

// Item: a refresh applies the on-request anomaly rules, as the guard does.

t.test("a refresh from the thief's network: ipChange 'revoke' refuses it and revokes the session", async (t) => {
  const s = await serve(t, { anomalies: { ipChange: 'revoke', impossibleTravel: { policy: 'ignore' } } })
  const victim = (await s.login(PARIS)).held!
  s.clock.advance(MINUTE)
  t.equal((await s.refresh(PARIS, victim)).status, 200, 'control: the victim refreshes from where it signed in')
  const stolen = { ...victim }
  s.clock.advance(MINUTE)
  const thief = await s.refresh(BERLIN, stolen)
  t.equal(thief.status, 401)
  t.equal(thief.body.code, 'FST_SESSION_GUARD_UNAUTHORIZED')
  t.equal(await s.app.sessions.get(victim.sessionId), undefined, 'the session is revoked')
  await settle()
  t.match(s.events.filter((e) => e.sessionId === victim.sessionId && (e.type === 'session.revoked' || e.type === 'auth.rejected')), [
    { type: 'session.revoked', reason: 'anomaly' },
    { type: 'auth.rejected', reason: 'anomaly' }
  ], 'revoked for the anomaly, as the guard does')
  t.same(await s.anomalies(), ['ip_change:revoke:request'])
  t.equal((await s.me(PARIS, victim)).status, 401, 'nothing of the session works any more')
})

t.test('a refresh checks impossible travel: refused with its policy at revoke, flagged and merged at flag', async (t) => {
  const strict = await serve(t, { anomalies: { impossibleTravel: { policy: 'revoke' } } })
  const victim = (await strict.login(PARIS)).held!
  strict.clock.advance(10 * MINUTE)
  t.equal((await strict.refresh({ ip: '198.51.100.1', userAgent: FIREFOX }, victim)).status, 401, 'Sydney ten minutes after Paris')
  t.equal(await strict.app.sessions.get(victim.sessionId), undefined, 'revoked')
  await settle()
  t.ok(strict.events.some((e) => e.type === 'session.revoked' && e.reason === 'anomaly'))

  const lenient = await serve(t, { anomalies: { ipChange: 'flag' } })
  await lenient.login(PARIS)
  const phone = (await lenient.login({ ip: PARIS.ip, userAgent: SAFARI })).held!
  lenient.clock.advance(10 * MINUTE)
  const sydney = { ip: '198.51.100.1', userAgent: SAFARI }
  t.equal((await lenient.refresh(sydney, phone)).status, 200, 'flagging lets it through')
  const session = await lenient.app.sessions.get(phone.sessionId)
  t.same(session?.flags, ['new_device', 'ip_change', 'impossible_travel'], 'merged with the flags of the login')
  t.same(session?.location, PLACES['198.51.100.1'], 'the place moves, but not silently')
  t.same((await lenient.anomalies()).filter((a) => a.endsWith(':request')), ['ip_change:flag:request', 'impossible_travel:flag:request'])
})
