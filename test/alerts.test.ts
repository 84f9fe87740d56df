import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import sessionGuard, { type Alert, CHALLENGE_FLAG, type SessionEvent } from '../lib/index.js'
import { registrationError, SECRET, settle } from './helper.js'
import { SAFARI } from './anomaly-fixtures.js'
import { PARIS, serve, type Client, type Held } from './anomaly-http-helper.js'

/**
 * "Was this you?", over a real socket: a flagged sign-in is put to the user's
 * other sessions (`GET /sessions/alerts`), `onAlert` hears of it, and an
 * answer (`POST /sessions/alerts/:id`) vouches for it or signs it out.
 */

const STRANGER: Client = { ip: PARIS.ip, userAgent: SAFARI }

async function withAlerts (t: Parameters<typeof serve>[0], options: Parameters<typeof serve>[1] = {}) {
  const alerts: Alert[] = []
  const h = await serve(t, { alerts: { onAlert: (alert) => { alerts.push(alert) } }, ...options }, (app) => {
    // The app's second factor, passed at once.
    app.post('/step-up', { preHandler: app.requireSession, config: { allowChallenged: true } }, async (request) => ({ completed: await request.completeChallenge() }))
  })
  const auth = (held: Held) => ({ authorization: `Bearer ${held.accessToken}`, cookie: `__Host-sg-fp=${held.fingerprint}` })
  const stepUp = async (client: Client, held: Held) => await h.send(client, 'POST', '/step-up', auth(held))
  const list = async (client: Client, held: Held) => await h.send(client, 'GET', '/sessions/alerts', auth(held))
  const answer = async (client: Client, held: Held, id: string, value: unknown) =>
    await h.send(client, 'POST', `/sessions/alerts/${encodeURIComponent(id)}`, auth(held), { answer: value })
  /** alice's laptop (her first sign-in: it vouches for itself), then a sign-in from a device she never used. */
  async function twoDevices (userId = 'alice') {
    const laptop = (await h.login(PARIS, userId)).held as Held
    const stranger = await h.login(STRANGER, userId)
    return { laptop, stranger: stranger.held as Held, flags: stranger.flags }
  }
  return { ...h, alerts, list, answer, twoDevices, stepUp }
}

t.test('a flagged sign-in is put to the other sessions; "no" signs it out, ends its refresh chain, and the history says so', async (t) => {
  const h = await withAlerts(t)
  const { laptop, stranger, flags } = await h.twoDevices()
  t.strictSame(flags, ['new_device'])

  const listed = await h.list(PARIS, laptop)
  t.equal(listed.status, 200)
  t.strictSame(listed.body.alerts.map((alert: Alert) => [alert.session.id, alert.session.flags, alert.session.isCurrent]), [[stranger.sessionId, ['new_device'], false]])
  t.match(listed.body.alerts[0].session, { device: { name: 'Safari on iPhone', model: 'iPhone', os: 'iOS', osVersion: '18.1' }, location: { city: 'Paris', country: 'FR' } })
  t.strictSame((await h.list(STRANGER, stranger)).body.alerts, [], 'the flagged session is not asked about itself')

  await settle()
  t.equal(h.alerts.length, 1, 'onAlert heard of the flagged sign-in, once')
  t.match(h.alerts[0], { userId: 'alice', session: { id: stranger.sessionId, flags: ['new_device'], device: { name: 'Safari on iPhone' } } })

  const no = await h.answer(PARIS, laptop, stranger.sessionId, 'no')
  t.equal(no.status, 204)
  t.equal((await h.me(STRANGER, stranger)).status, 401, 'its access token stops working')
  t.equal((await h.refresh(STRANGER, stranger)).status, 401, 'and so does its refresh token')
  t.equal((await h.me(PARIS, laptop)).status, 200, 'the answering session is untouched')
  t.strictSame((await h.list(PARIS, laptop)).body.alerts, [], 'answered: no alert left')
  t.equal((await h.answer(PARIS, laptop, stranger.sessionId, 'no')).status, 404, 'an answered alert cannot be answered again')

  const history = await h.app.sessions.history('alice')
  t.match(history.slice(0, 2), [
    { type: 'session.revoked', sessionId: stranger.sessionId, detail: { reason: 'not-me' } },
    { type: 'alert.answered', sessionId: stranger.sessionId, detail: { answer: 'no' } }
  ], 'the answer is in the login history, newest first')
})

t.test('"yes" vouches for the device, clears every flag of the session but a pending step-up, and the alert', async (t) => {
  const h = await withAlerts(t, { anomalies: { newDevice: 'challenge', ipChange: 'flag' } })
  const { laptop, stranger, flags } = await h.twoDevices()
  t.strictSame(flags, ['new_device', CHALLENGE_FLAG])
  t.equal((await h.me(STRANGER, stranger)).status, 401, 'challenged: restricted')

  const yes = await h.answer(PARIS, laptop, stranger.sessionId, 'yes')
  t.equal(yes.status, 204)
  t.equal((await h.me(STRANGER, stranger)).status, 401, 'still restricted: a click on another device is no second factor')
  t.strictSame((await h.app.sessions.get(stranger.sessionId))?.flags, [CHALLENGE_FLAG], 'only the step-up is left')
  t.strictSame((await h.list(PARIS, laptop)).body.alerts, [], 'the question is answered')
  await t.rejects(h.app.sessions.answerAlert('alice', laptop.sessionId, 'yes', { from: stranger.sessionId }),
    { code: 'FST_SESSION_GUARD_UNCONFIRMED_SESSION' }, 'a session awaiting its step-up vouches for nothing')
  t.equal((await h.stepUp(STRANGER, stranger)).status, 200, 'its own second factor lifts it')
  t.equal((await h.me(STRANGER, stranger)).status, 200)
  t.equal((await h.login(STRANGER)).flags, undefined, 'the device is known now: its next sign-in is not flagged')

  // Flags a session earns on a request (here a new network, in Berlin minutes after Paris) are a question too, and "yes" answers them as well.
  const moved: Client = { ...STRANGER, ip: '192.0.2.1' }
  h.clock.advance(2 * 60_000)
  t.equal((await h.me(moved, stranger)).status, 200)
  t.strictSame((await h.app.sessions.alerts('alice', { except: laptop.sessionId })).map((alert) => alert.session.flags), [['ip_change', 'impossible_travel']])
  t.equal((await h.answer(PARIS, laptop, stranger.sessionId, 'yes')).status, 204)
  t.equal((await h.app.sessions.get(stranger.sessionId))?.flags, undefined)
  t.match((await h.app.sessions.history('alice')).filter((entry) => entry.type === 'alert.answered'), [
    { sessionId: stranger.sessionId, detail: { answer: 'yes' } },
    { sessionId: stranger.sessionId, detail: { answer: 'yes' } }
  ])
})

t.test('a user answers only about their own other sessions, and only a session nobody doubts says "yes"', async (t) => {
  const h = await withAlerts(t)
  const alice = await h.twoDevices('alice')
  const bob = await h.twoDevices('bob')

  for (const value of ['yes', 'no']) {
    const foreign = await h.answer(PARIS, bob.laptop, alice.stranger.sessionId, value)
    t.strictSame([foreign.status, foreign.body.code], [404, 'FST_SESSION_GUARD_SESSION_NOT_FOUND'], `bob cannot answer "${value}" about alice's session`)
  }
  t.strictSame((await h.app.sessions.get(alice.stranger.sessionId))?.flags, ['new_device'], 'alice\'s session is still live and still flagged')
  t.equal((await h.answer(PARIS, alice.laptop, 'no-such-session', 'no')).status, 404, 'an unknown id: the same 404')
  t.equal((await h.answer(PARIS, alice.laptop, bob.laptop.sessionId, 'no')).status, 404, 'another user\'s unflagged session: the same 404')
  t.equal((await h.answer(PARIS, alice.laptop, alice.laptop.sessionId, 'yes')).status, 404, 'a session is never asked about itself')

  // Two sign-ins of an attacker must not vouch for each other.
  const second = (await h.login({ ...STRANGER, userAgent: 'curl/8.5.0' })).held as Held
  const mutual = await h.answer(STRANGER, alice.stranger, second.sessionId, 'yes')
  t.strictSame([mutual.status, mutual.body.code], [403, 'FST_SESSION_GUARD_UNCONFIRMED_SESSION'], 'a flagged session cannot say "yes"')
  t.strictSame((await h.app.sessions.get(second.sessionId))?.flags, ['new_device'])
  t.equal((await h.answer(STRANGER, alice.stranger, second.sessionId, 'no')).status, 204, 'but it may say "no"')

  const bad = await h.answer(PARIS, alice.laptop, alice.stranger.sessionId, 'maybe')
  t.strictSame([bad.status, bad.body.code], [400, 'FST_ERR_VALIDATION'], 'the body schema refuses another answer')
})

t.test('app.sessions.alerts() and answerAlert(): the management API', async (t) => {
  const h = await withAlerts(t)
  const { laptop, stranger } = await h.twoDevices()
  t.strictSame((await h.app.sessions.alerts('alice')).map((alert) => alert.session.id), [stranger.sessionId], 'without except: every flagged session')
  t.strictSame(await h.app.sessions.alerts('bob'), [])
  await t.rejects(h.app.sessions.answerAlert('alice', stranger.sessionId, 'later' as 'yes'), { code: 'FST_SESSION_GUARD_INVALID_ALERT_ANSWER', statusCode: 400 })
  await t.rejects(h.app.sessions.answerAlert('alice', stranger.sessionId, 'later' as 'yes', { from: 'gone' }), { code: 'FST_SESSION_GUARD_INVALID_ALERT_ANSWER' })
  t.equal(await h.app.sessions.answerAlert('bob', stranger.sessionId, 'no'), false, 'not bob\'s')
  t.equal(await h.app.sessions.answerAlert('alice', stranger.sessionId, 'no', { from: 'gone' }), false, 'from a session that is not live')
  const bob = (await h.login(PARIS, 'bob')).held as Held
  t.equal(await h.app.sessions.answerAlert('alice', stranger.sessionId, 'no', { from: bob.sessionId }), false, 'from another user\'s session')
  t.ok(await h.app.sessions.get(stranger.sessionId), 'nothing was revoked')
  t.equal(await h.app.sessions.answerAlert('alice', stranger.sessionId, 'yes', { from: laptop.sessionId }), true)
  t.equal(await h.app.sessions.answerAlert('alice', stranger.sessionId, 'yes'), false, 'answered: no alert left')
  await settle()
  t.ok(h.events.some((e): e is SessionEvent<'alert.answered'> => e.type === 'alert.answered' && e.answer === 'yes'), 'alert.answered published')
})

t.test('onAlert: each flagged sign-in once, not an unflagged one nor one already gone; a failing hook is logged, never a failed login', async (t) => {
  const lines: Array<{ level: number, msg: string, err?: { message: string } }> = []
  const seen: string[] = []
  let fail: 'throw' | 'reject' | undefined
  const app = Fastify({
    logger: { level: 'error', stream: new Writable({ write (chunk: Buffer, _encoding, done) { lines.push(JSON.parse(chunk.toString())); done() } }) }
  })
  t.teardown(() => app.close())
  await app.register(sessionGuard, {
    secret: SECRET,
    alerts: {
      onAlert (alert) {
        seen.push(alert.session.id)
        if (fail === 'throw') throw new Error('mail server down')
        if (fail === 'reject') return Promise.reject(new Error('push service down'))
      }
    }
  })
  app.post<{ Body: { ua: string, revoke?: boolean } }>('/login', async (request, reply) => {
    const { session } = await reply.issueSession({ userId: 'alice' })
    if (request.body.revoke === true) await app.sessions.revoke(session.id)
    return { sessionId: session.id }
  })
  const login = async (ua: string, revoke = false) => {
    const response = await app.inject({ method: 'POST', url: '/login', headers: { 'user-agent': ua }, payload: { ua, revoke } })
    t.equal(response.statusCode, 200)
    await settle()
    await settle()
    return response.json().sessionId as string
  }

  await login('curl/8.5.0')
  t.strictSame(seen, [], 'the first sign-in is not flagged: no alert')
  await login(SAFARI, true)
  t.strictSame(seen, [], 'a flagged session signed out before the hook\'s turn: nothing to ask')
  fail = 'throw'
  const thrown = await login(SAFARI)
  fail = 'reject'
  const rejected = await login(SAFARI)
  t.strictSame(seen, [thrown, rejected])
  t.match(lines.filter((line) => line.msg === 'session guard: the onAlert hook failed').map((line) => line.err?.message), ['mail server down', 'push service down'])
})

t.test('the alerts option is checked at registration', async (t) => {
  t.match(await registrationError({ secret: SECRET, alerts: { onAlert: 'mail' } }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /alerts\.onAlert/ })
  t.match(await registrationError({ secret: SECRET, alerts: { onalert: () => {} } }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /alerts/ })
  t.equal(await registrationError({ secret: SECRET, alerts: {} }), undefined)
})
