import t from 'tap'
import { CHALLENGE_FLAG, memoryStore, type SessionEvent } from '../lib/index.js'
import { registrationError, SECRET, settle } from './helper.js'
import { SAFARI } from './anomaly-fixtures.js'
import { PARIS, serve, type Client, type Held } from './anomaly-http-helper.js'

/**
 * Step-up on anomalies (decision `'challenge'`), over a real socket: a
 * challenged session is restricted to the routes that allow it until the
 * app's second factor calls `request.completeChallenge()`.
 */

const STRANGER: Client = { ip: PARIS.ip, userAgent: SAFARI }
const STEP_UP = /^Bearer realm="session", error="insufficient_user_authentication"/

async function withStepUp (t: Parameters<typeof serve>[0], options: Parameters<typeof serve>[1] = {}, routes: Parameters<typeof serve>[2] = () => {}) {
  const h = await serve(t, { anomalies: { newDevice: 'challenge' }, ...options }, (app) => {
    routes(app)
    // The app's second factor: here, any code '123456'.
    app.post<{ Body: { code: string } }>('/step-up', { preHandler: app.requireSession, config: { allowChallenged: true } }, async (request, reply) => {
      if (request.body.code !== '123456') return await reply.code(400).send({ message: 'wrong code' })
      return { completed: await request.completeChallenge() }
    })
    app.get('/allowed', { preHandler: app.requireSession, config: { allowChallenged: true } }, async (request) => ({ flags: request.authSession?.flags ?? [] }))
  })
  const stepUp = async (client: Client, held: Held, code = '123456') =>
    await h.send(client, 'POST', '/step-up', { authorization: `Bearer ${held.accessToken}`, cookie: `__Host-sg-fp=${held.fingerprint}` }, { code })
  const allowed = async (client: Client, held: Held) =>
    await h.send(client, 'GET', '/allowed', { authorization: `Bearer ${held.accessToken}`, cookie: `__Host-sg-fp=${held.fingerprint}` })
  return { ...h, stepUp, allowed }
}

t.test('a challenged sign-in gets a session restricted until its step-up completes', async (t) => {
  const h = await withStepUp(t)
  const first = await h.login(PARIS)
  t.equal(first.answer.status, 200)
  t.equal(first.flags, undefined, 'the first login vouches for its own device')

  const stranger = await h.login(STRANGER)
  t.equal(stranger.answer.status, 200, 'the sign-in itself goes through')
  t.strictSame(stranger.flags, ['new_device', CHALLENGE_FLAG], 'restricted: the rule and the step-up flag')
  const held = stranger.held as Held

  const refused = await h.me(STRANGER, held)
  t.equal(refused.status, 401)
  t.equal(refused.body.code, 'FST_SESSION_GUARD_STEP_UP_REQUIRED')
  t.match(refused.headers.get('www-authenticate'), STEP_UP, 'RFC 9470 insufficient_user_authentication')
  t.equal((await h.me(PARIS, first.held as Held)).status, 200, 'the first session is not restricted')
  t.equal((await h.send(STRANGER, 'GET', '/sessions', { authorization: `Bearer ${held.accessToken}`, cookie: `__Host-sg-fp=${held.fingerprint}` })).status, 401,
    'the plugin\'s own routes (list and revoke devices) need full assurance')

  const allowed = await h.allowed(STRANGER, held)
  t.equal(allowed.status, 200, 'a route that allows challenged sessions keeps working')
  t.strictSame(allowed.body.flags, ['new_device', CHALLENGE_FLAG])

  t.equal((await h.stepUp(STRANGER, held, '000000')).status, 400, 'a wrong code completes nothing')
  t.equal((await h.me(STRANGER, held)).status, 401, 'still restricted')
  const completed = await h.stepUp(STRANGER, held)
  t.strictSame([completed.status, completed.body], [200, { completed: true }])
  t.equal((await h.me(STRANGER, held)).status, 200, 'completion lifts the restriction, with the same tokens')
  t.equal((await h.app.sessions.get(held.sessionId))?.flags, undefined, 'and clears the flags it answered')

  const again = await h.login(STRANGER)
  t.equal(again.flags, undefined, 'the completed step-up made the device known: the next sign-in from it is not challenged')
  await settle()
  t.ok(h.events.some((e) => e.type === 'challenge.completed' && e.sessionId === held.sessionId), 'challenge.completed published')
  t.match(h.events.filter((e): e is SessionEvent<'auth.rejected'> => e.type === 'auth.rejected').map((e) => e.reason), ['step_up_required'])
  const history = await h.app.sessions.history('alice')
  t.ok(history.some((entry) => entry.type === 'challenge.completed'), 'the history keeps it')
  t.ok(history.some((entry) => entry.type === 'anomaly.detected' && entry.detail?.decision === 'challenge'))
})

t.test('a challenged sign-in never makes its device known until it completes', async (t) => {
  const h = await withStepUp(t)
  await h.login(PARIS)
  for (let i = 0; i < 3; i++) {
    const stranger = await h.login(STRANGER)
    t.strictSame(stranger.flags, ['new_device', CHALLENGE_FLAG], `sign-in ${i + 1} from the unknown device: challenged again`)
    t.equal((await h.me(STRANGER, stranger.held as Held)).status, 401)
  }
})

t.test('a second sign-in from a challenged place is measured from the last proven place, not from the challenged session', async (t) => {
  const h = await withStepUp(t, TRAVEL_ONLY)
  const home = await h.login(PARIS)
  t.equal(home.flags, undefined)
  h.clock.advance(1000)
  const first = await h.login(SYDNEY)
  t.strictSame(first.flags, ['impossible_travel', CHALLENGE_FLAG], 'Paris then Sydney at once: challenged')
  // The challenged session is the most recently active one, but its place is not proven: had the rule measured
  // from it, Sydney to Sydney would pass, and a second sign-in would be a full session without any step-up.
  h.clock.advance(1000)
  const second = await h.login(SYDNEY)
  t.strictSame(second.flags, ['impossible_travel', CHALLENGE_FLAG], 'the second sign-in from Sydney is challenged too')
  t.equal((await h.send(SYDNEY, 'POST', '/sessions/revoke-others', { authorization: `Bearer ${second.held?.accessToken}`, cookie: `__Host-sg-fp=${second.held?.fingerprint}` })).status, 401,
    'and cannot sign the user out elsewhere')
  t.equal((await h.me(PARIS, home.held as Held)).status, 200, 'the user at home keeps their session')

  h.clock.advance(60_000)
  t.equal((await h.login(PARIS)).flags, undefined, 'the user signing in again at home is not measured from the pending Sydney sessions')
  t.equal((await h.stepUp(SYDNEY, first.held as Held)).status, 200)
  h.clock.advance(60_000)
  t.equal((await h.login(SYDNEY)).flags, undefined, 'once Sydney is proven, it is a place to measure from')
})

const SYDNEY: Client = { ip: '198.51.100.1', userAgent: PARIS.userAgent }
const TRAVEL_ONLY = { anomalies: { newDevice: 'ignore', newCountry: 'ignore', impossibleTravel: { policy: 'challenge' } } } as const

t.test('a challenged sign-in at the limit evicts only challenged sessions: the proven one it is measured from stays', async (t) => {
  const h = await withStepUp(t, { ...TRAVEL_ONLY, maxSessionsPerUser: 2, onSessionLimit: 'evict-oldest' })
  const home = await h.login(PARIS)
  const challenged: string[] = []
  for (let i = 0; i < 6; i++) {
    h.clock.advance(1000)
    const sydney = await h.login(SYDNEY)
    t.equal(sydney.answer.status, 200)
    t.strictSame(sydney.flags, ['impossible_travel', CHALLENGE_FLAG], `Sydney sign-in ${i + 1} is challenged: Paris is still there to measure from`)
    challenged.push(sydney.answer.body.sessionId)
  }
  t.equal((await h.me(PARIS, home.held as Held)).status, 200, 'the proven session was never evicted')
  t.strictSame((await h.app.sessions.list('alice')).map((s) => s.id).sort(), [home.held?.sessionId, challenged[5]].sort(),
    'each challenged sign-in made room by evicting the previous challenged one')
  await settle()
  t.equal(h.events.filter((e) => e.type === 'session.revoked' && e.reason === 'limit').length, 5)
})

t.test('a challenged sign-in facing only proven sessions at the limit is refused, offered none of them', async (t) => {
  const h = await withStepUp(t, { ...TRAVEL_ONLY, maxSessionsPerUser: 1, onSessionLimit: 'evict-oldest' })
  const home = await h.login(PARIS)
  h.clock.advance(1000)
  const sydney = await h.login(SYDNEY)
  t.equal(sydney.answer.status, 409, 'the limit holds it out')
  t.strictSame(sydney.answer.body.sessions, [], 'and no proven session is offered to sign out')
  const resolved = await h.send(SYDNEY, 'POST', '/sessions/resolve-limit', { cookie: `__Host-sg-fp=${sydney.answer.cookies['__Host-sg-fp']}` },
    { ticket: sydney.answer.body.ticket, revoke: home.held?.sessionId })
  t.equal(resolved.status, 401, 'its ticket cannot sign the proven session out either')
  t.equal((await h.me(PARIS, home.held as Held)).status, 200)
})

t.test('under reject, a challenged login\'s ticket offers and signs out only challenged sessions', async (t) => {
  const h = await withStepUp(t, { ...TRAVEL_ONLY, maxSessionsPerUser: 2, onSessionLimit: 'reject' })
  const home = await h.login(PARIS)
  h.clock.advance(1000)
  const first = await h.login(SYDNEY)
  t.strictSame(first.flags, ['impossible_travel', CHALLENGE_FLAG])
  h.clock.advance(1000)
  const second = await h.login(SYDNEY)
  t.equal(second.answer.status, 409)
  t.strictSame(second.answer.body.sessions.map((s: { id: string }) => s.id), [first.answer.body.sessionId], 'only the challenged session is offered')
  const resolve = async (revoke: string | undefined) => await h.send(SYDNEY, 'POST', '/sessions/resolve-limit',
    { cookie: `__Host-sg-fp=${second.answer.cookies['__Host-sg-fp']}` }, { ticket: second.answer.body.ticket, revoke })
  t.equal((await resolve(home.held?.sessionId)).status, 401, 'naming the proven session is refused')
  t.equal((await h.me(PARIS, home.held as Held)).status, 200, 'which stays signed in')
  const resolved = await resolve(first.answer.body.sessionId)
  t.equal(resolved.status, 200, 'naming the challenged one completes the login')
  t.strictSame((await h.app.sessions.get(resolved.body.sessionId))?.flags, ['impossible_travel', CHALLENGE_FLAG], 'still challenged')
})

t.test('a challenged session another request signs out while the login makes room: no second event, the login goes ahead', async (t) => {
  const store = memoryStore()
  // Every revoke finds its session already gone, as when a parallel request signed it out first.
  const racing = new Proxy(store, {
    get (target, name) {
      if (name === 'revoke') return async (id: string, now: number) => { await target.revoke(id, now); return await target.revoke(id, now) }
      const value = Reflect.get(target, name)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  const h = await withStepUp(t, { ...TRAVEL_ONLY, maxSessionsPerUser: 2, store: racing })
  await h.login(PARIS)
  h.clock.advance(1000)
  const first = await h.login(SYDNEY)
  h.clock.advance(1000)
  const second = await h.login(SYDNEY)
  t.equal(second.answer.status, 200)
  t.equal(await h.app.sessions.get(first.answer.body.sessionId), undefined)
  await settle()
  t.equal(h.events.filter((e) => e.type === 'session.revoked').length, 0, 'the request that signed it out published that')
})

t.test('at a device type\'s limit too, a challenged sign-in displaces only challenged sessions of that type', async (t) => {
  const h = await withStepUp(t, { ...TRAVEL_ONLY, maxSessionsPerUser: 5, deviceTypeLimits: { desktop: { max: 2, onLimit: 'evict-oldest' } } })
  const home = await h.login(PARIS)
  h.clock.advance(1000)
  const first = await h.login(SYDNEY)
  t.strictSame(first.flags, ['impossible_travel', CHALLENGE_FLAG])
  h.clock.advance(1000)
  const second = await h.login(SYDNEY)
  t.equal(second.answer.status, 200, 'the desktops are full: the challenged one made room')
  t.equal(await h.app.sessions.get(first.answer.body.sessionId), undefined)
  t.equal((await h.me(PARIS, home.held as Held)).status, 200, 'the proven desktop stays')

  const strict = await withStepUp(t, { ...TRAVEL_ONLY, maxSessionsPerUser: 5, deviceTypeLimits: { desktop: { max: 1, onLimit: 'evict-oldest' } } })
  const own = await strict.login(PARIS)
  strict.clock.advance(1000)
  const refused = await strict.login(SYDNEY)
  t.equal(refused.answer.status, 409, 'only a proven desktop fills the type: refused')
  t.strictSame([refused.answer.body.deviceType, refused.answer.body.sessions], ['desktop', []])
  t.equal((await strict.me(PARIS, own.held as Held)).status, 200)
})

t.test('a challenged sign-in at the limit evicts the least recently active challenged session, not the first created', async (t) => {
  const h = await withStepUp(t, { ...TRAVEL_ONLY, maxSessionsPerUser: 3, onSessionLimit: 'evict-oldest', touchInterval: '1s' })
  const home = await h.login(PARIS)
  h.clock.advance(1000)
  const first = await h.login(SYDNEY)
  h.clock.advance(1000)
  const second = await h.login(SYDNEY)
  t.strictSame([first.flags, second.flags], [['impossible_travel', CHALLENGE_FLAG], ['impossible_travel', CHALLENGE_FLAG]])
  h.clock.advance(60_000)
  t.equal((await h.allowed(SYDNEY, first.held as Held)).status, 200, 'the first challenged session is used again')
  t.equal((await h.app.sessions.get(first.answer.body.sessionId))?.lastSeenAt, h.clock.read(), 'and is now the most recently active')
  h.clock.advance(1000)
  const third = await h.login(SYDNEY)
  t.equal(third.answer.status, 200)
  t.strictSame((await h.app.sessions.list('alice')).map((s) => s.id).sort(),
    [home.held?.sessionId, first.answer.body.sessionId, third.answer.body.sessionId].sort(), 'the second, idle since it was created, made room')
})

t.test('a challenged sign-in at a device type\'s limit follows that type\'s onLimit, not the total\'s', async (t) => {
  const evicting = await withStepUp(t, { ...TRAVEL_ONLY, maxSessionsPerUser: 5, onSessionLimit: 'reject', deviceTypeLimits: { desktop: { max: 2, onLimit: 'evict-oldest' } } })
  await evicting.login(PARIS)
  evicting.clock.advance(1000)
  const first = await evicting.login(SYDNEY)
  evicting.clock.advance(1000)
  const second = await evicting.login(SYDNEY)
  t.equal(second.answer.status, 200, 'the desktops evict though the total rejects')
  t.equal(await evicting.app.sessions.get(first.answer.body.sessionId), undefined)

  const rejecting = await withStepUp(t, { ...TRAVEL_ONLY, maxSessionsPerUser: 5, onSessionLimit: 'evict-oldest', deviceTypeLimits: { desktop: { max: 2, onLimit: 'reject' } } })
  await rejecting.login(PARIS)
  rejecting.clock.advance(1000)
  const kept = await rejecting.login(SYDNEY)
  rejecting.clock.advance(1000)
  const refused = await rejecting.login(SYDNEY)
  t.equal(refused.answer.status, 409, 'the desktops reject though the total evicts')
  t.strictSame([refused.answer.body.deviceType, refused.answer.body.sessions.map((s: { id: string }) => s.id)], ['desktop', [kept.answer.body.sessionId]])
  t.ok(await rejecting.app.sessions.get(kept.answer.body.sessionId))
})

t.test('a proven login at the limit evicts as before, challenged sessions or not', async (t) => {
  const h = await withStepUp(t, { ...TRAVEL_ONLY, maxSessionsPerUser: 2, onSessionLimit: 'evict-oldest' })
  const home = await h.login(PARIS)
  h.clock.advance(1000)
  const sydney = await h.login(SYDNEY)
  h.clock.advance(1000)
  t.equal((await h.login(PARIS)).flags, undefined)
  t.equal((await h.me(PARIS, home.held as Held)).status, 401, 'the least recently active session, the proven one, went')
  t.ok(await h.app.sessions.get(sydney.answer.body.sessionId))
})

t.test('trustDevice vouches for a challenged session\'s device but leaves its step-up pending: only completeChallenge lifts it', async (t) => {
  const h = await withStepUp(t, {}, (app) => {
    // "Yes, this was me" on a new-sign-in notice, from the user's proven session (or an admin's "trust").
    app.post<{ Body: { id: string } }>('/trust', { preHandler: app.requireSession }, async (request) => ({ trusted: await app.sessions.trustDevice(request.body.id) }))
  })
  const home = (await h.login(PARIS)).held as Held
  const held = (await h.login(STRANGER)).held as Held
  const trusted = await h.send(PARIS, 'POST', '/trust', { authorization: `Bearer ${home.accessToken}`, cookie: `__Host-sg-fp=${home.fingerprint}` }, { id: held.sessionId })
  t.strictSame(trusted.body, { trusted: true })
  t.strictSame((await h.app.sessions.get(held.sessionId))?.flags, [CHALLENGE_FLAG], 'new_device goes, as documented; the step-up stays')
  t.equal((await h.me(STRANGER, held)).status, 401, 'still restricted: no second factor was passed on this session')
  t.equal((await h.stepUp(STRANGER, held)).status, 200)
  t.equal((await h.me(STRANGER, held)).status, 200)
  await settle()
  t.equal(h.events.filter((e) => e.type === 'challenge.completed').length, 1, 'the step-up completed once, by the second factor')
})

t.test('after completeChallenge, the same request sees the session without its step-up: a regenerate there carries none', async (t) => {
  const h = await withStepUp(t, {}, (app) => {
    // A step-up that also records how the user proved who they are (amr, RFC 8176) on a fresh session.
    app.post('/step-up-renew', { preHandler: app.requireSession, config: { allowChallenged: true } }, async (request, reply) => {
      const completed = await request.completeChallenge()
      const flags = request.authSession?.flags ?? []
      const renewed = await request.regenerateSession(reply, { amr: ['pwd', 'otp'] })
      return { completed, flags, sessionId: renewed.session.id }
    })
  })
  await h.login(PARIS)
  const held = (await h.login(STRANGER)).held as Held
  const renewed = await h.send(STRANGER, 'POST', '/step-up-renew', { authorization: `Bearer ${held.accessToken}`, cookie: `__Host-sg-fp=${held.fingerprint}` })
  t.equal(renewed.status, 200)
  t.strictSame([renewed.body.completed, renewed.body.flags], [true, []], 'request.authSession has lost its flags')
  const session = await h.app.sessions.get(renewed.body.sessionId)
  t.equal(session?.flags, undefined, 'the regenerated session is not challenged again')
  t.strictSame(session?.claims, { amr: ['pwd', 'otp'] })
})

t.test('a refresh keeps the restriction; completing a session that is not challenged changes nothing', async (t) => {
  const h = await withStepUp(t)
  const first = await h.login(PARIS)
  const stranger = await h.login(STRANGER)
  const held = stranger.held as Held
  t.equal((await h.refresh(STRANGER, held)).status, 200, 'a challenged session may refresh (it must live to complete)')
  t.equal((await h.me(STRANGER, held)).status, 401, 'the new access token is as restricted')
  t.strictSame([(await h.stepUp(PARIS, first.held as Held)).body], [{ completed: true }], 'no step-up pending: nothing to lift')
  await settle()
  t.notOk(h.events.some((e) => e.type === 'challenge.completed'), 'and no event')
})

t.test('an on-request rule can challenge a live session', async (t) => {
  const h = await withStepUp(t, { anomalies: { newDevice: 'ignore', ipChange: 'challenge' }, touchInterval: 0 })
  const first = await h.login(PARIS)
  const held = first.held as Held
  t.equal((await h.me(PARIS, held)).status, 200)
  const moved = { ...PARIS, ip: '198.51.100.77' }
  const refused = await h.me(moved, held)
  t.equal(refused.status, 401, 'the request whose IP changed is the first one restricted')
  t.equal(refused.body.code, 'FST_SESSION_GUARD_STEP_UP_REQUIRED')
  t.strictSame((await h.app.sessions.get(held.sessionId))?.flags, ['ip_change', CHALLENGE_FLAG])
  t.equal((await h.stepUp(moved, held)).status, 200)
  t.equal((await h.me(moved, held)).status, 200)
  t.strictSame((await h.app.sessions.get(held.sessionId))?.flags, ['ip_change'], 'the step-up lifts itself; the IP change, which vouching does not answer, stays flagged')
})

t.test('a session revoked while its step-up completes stays revoked: completeChallenge resolves false', async (t) => {
  const store = memoryStore()
  const h = await withStepUp(t, { store }, (app) => {
    app.post('/step-up-revoked', { preHandler: app.requireSession, config: { allowChallenged: true } }, async (request) => {
      await app.sessions.revoke(request.authSession?.id as string)
      return { completed: await request.completeChallenge() }
    })
  })
  await h.login(PARIS)
  const auth = (held: Held) => ({ authorization: `Bearer ${held.accessToken}`, cookie: `__Host-sg-fp=${held.fingerprint}` })
  const gone = (await h.login(STRANGER)).held as Held
  t.strictSame((await h.send(STRANGER, 'POST', '/step-up-revoked', auth(gone))).body, { completed: false }, 'revoked before the step-up read it')
  // Revoked between the step-up's read and its write: the write finds nothing, and brings nothing back.
  const racing = (await h.login(STRANGER)).held as Held
  const touch = store.touch.bind(store)
  store.touch = async (id, activity, now) => {
    await store.revoke(id, now)
    return await touch(id, activity, now)
  }
  t.strictSame((await h.stepUp(STRANGER, racing)).body, { completed: false })
  store.touch = touch
  t.equal(await h.app.sessions.get(racing.sessionId), undefined, 'still revoked')
  await settle()
  t.notOk(h.events.some((e) => e.type === 'challenge.completed'), 'nothing completed')
})

t.test('completeChallenge outside a guarded request is a coded error; the decision is checked at registration', async (t) => {
  const h = await serve(t, {}, (app) => {
    app.post('/open', async (request) => await request.completeChallenge())
  })
  const answer = await h.send(PARIS, 'POST', '/open')
  t.strictSame([answer.status, answer.body.code], [500, 'FST_SESSION_GUARD_NO_SESSION'])
  t.match(await registrationError({ secret: SECRET, anomalies: { newDevice: 'step-up' } }), {
    code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /'ignore', 'flag', 'challenge' or 'revoke'/
  })
  const revoked = await withStepUp(t)
  const first = await revoked.login(PARIS)
  await revoked.app.sessions.revoke((first.held as Held).sessionId)
  t.equal(await revoked.app.sessions.trustDevice((first.held as Held).sessionId), false, 'a session gone: nothing to vouch for')
})
