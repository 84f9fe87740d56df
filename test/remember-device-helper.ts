import type { Test } from 'tap'
import { sessionLimitResponseSchema, type SessionGuardOptions } from '../lib/index.js'
import { SAFARI } from './anomaly-fixtures.js'
import { PARIS, serve, type Answer, type Client, type Held } from './anomaly-http-helper.js'

/**
 * "Remember this device" over a real socket. A device kind the user vouched
 * for (first login, completed step-up) is known to the `new_device` rule for
 * `anomalies.memory`; the device cookie is what recognises one device beyond
 * that. So the app here keeps the kinds for a day and remembers devices for
 * three: `lapse()` lets a day and a bit pass while the user stays active from
 * another device, and from then on only the cookie tells the first device apart.
 */

export const DEVICE_COOKIE = '__Host-sg-dev'
export const HOUR = 60 * 60_000
/** The other device the user keeps signing in from (its sign-ins are challenged: it was never vouched for). */
export const KEEPER: Client = { ip: PARIS.ip, userAgent: SAFARI }

export const REMEMBER_OPTIONS: Partial<SessionGuardOptions> = {
  anomalies: { newDevice: 'challenge', memory: '1d' },
  rememberDevice: { ttl: '3d' }
}

export interface SignIn {
  answer: Answer
  /** The session's flags when it was created (`undefined`: none). */
  flags: readonly string[] | undefined
  /** The device cookie this sign-in wrote, if any. */
  device: string | undefined
  held: Held | undefined
}

export async function rememberApp (t: Test, options: Partial<SessionGuardOptions> = {}) {
  const h = await serve(t, { ...REMEMBER_OPTIONS, ...options }, (app) => {
    app.post<{ Body: { userId: string, rememberDevice?: boolean } }>('/signin', { schema: { response: { 409: sessionLimitResponseSchema } } }, async (request, reply) => {
      const { accessToken, session, deviceRemembered } = await reply.issueSession({ userId: request.body.userId, rememberDevice: request.body.rememberDevice })
      return { accessToken, sessionId: session.id, deviceRemembered }
    })
    // The app's second factor (any code '123456'), which may remember the device it vouched for.
    app.post<{ Body: { code: string, rememberDevice?: boolean } }>('/step-up', { preHandler: app.requireSession, config: { allowChallenged: true } }, async (request, reply) => {
      if (request.body.code !== '123456') return await reply.code(400).send({ message: 'wrong code' })
      return { completed: await request.completeChallenge(reply, { rememberDevice: request.body.rememberDevice }) }
    })
    app.post('/step-up-no-reply', { preHandler: app.requireSession, config: { allowChallenged: true } }, async (request) =>
      ({ completed: await request.completeChallenge(undefined, { rememberDevice: true }) }))
    app.post('/logout', { preHandler: app.requireSession, config: { allowChallenged: true } }, async (request, reply) => {
      await request.endSession(reply)
      return { ok: true }
    })
    app.post('/regenerate', { preHandler: app.requireSession }, async (request, reply) => {
      const { accessToken, session } = await request.regenerateSession(reply)
      return { accessToken, sessionId: session.id }
    })
  })

  const auth = (held: Held, device?: string): Record<string, string> => ({
    authorization: `Bearer ${held.accessToken}`,
    cookie: `__Host-sg-fp=${held.fingerprint}${device === undefined ? '' : `; ${DEVICE_COOKIE}=${device}`}`
  })

  /** Signs `userId` in from `client`, presenting the device cookie `device` (or a whole `cookie` header). */
  async function signIn (client: Client, { userId = 'alice', device, cookie, remember }: { userId?: string, device?: string, cookie?: string, remember?: boolean } = {}): Promise<SignIn> {
    const header = cookie ?? (device === undefined ? undefined : `${DEVICE_COOKIE}=${device}`)
    const answer = await h.send(client, 'POST', '/signin', header === undefined ? {} : { cookie: header }, remember === undefined ? { userId } : { userId, rememberDevice: remember })
    const session = answer.status === 200 ? await h.app.sessions.get(answer.body.sessionId) : undefined
    return { answer, flags: session?.flags, device: answer.cookies[DEVICE_COOKIE], held: answer.status === 200 ? h.held(answer) : undefined }
  }

  /** A day and a bit: the kinds the user vouched for are forgotten, while a sign-in from `KEEPER` keeps the user active. */
  async function lapse (userId = 'alice'): Promise<void> {
    h.clock.advance(20 * HOUR)
    t.equal((await signIn(KEEPER, { userId })).answer.status, 200, 'the user signs in from another device meanwhile')
    h.clock.advance(10 * HOUR)
  }

  /** Alice's first sign-in from `PARIS`, remembered; then `lapse()`. Resolves the device cookie. */
  async function remembered (): Promise<{ device: string, first: SignIn }> {
    const first = await signIn(PARIS, { remember: true })
    t.equal(first.answer.body.deviceRemembered, true, 'the first sign-in is vouched for: its device is remembered')
    await lapse()
    return { device: first.device as string, first }
  }

  return { ...h, auth, signIn, lapse, remembered }
}

/**
 * What must hold on every store: recognised, not for another user, not when
 * tampered with, forgotten by a revocation and by "sign out everywhere", and
 * not past its lifetime. `store` gives each test a store of its own.
 */
export function rememberScenarios (t: Test, store: (t: Test) => Promise<Partial<SessionGuardOptions>>): void {
  const CHALLENGED = ['new_device', 'challenge']

  t.test('a remembered device is recognised at its next sign-in: no new-device flag, no challenge', async (t) => {
    const h = await rememberApp(t, await store(t))
    const { device } = await h.remembered()
    t.strictSame((await h.signIn(PARIS)).flags, CHALLENGED, 'without its cookie, the device is new again (the kind was forgotten)')
    const next = await h.signIn(PARIS, { device })
    t.equal(next.answer.status, 200)
    t.equal(next.flags, undefined, 'with it: not flagged, not challenged')
    t.equal((await h.me(PARIS, next.held as Held)).status, 200, 'full assurance at once')
    t.ok(next.device, 'and the cookie is renewed')
  })

  t.test('a cookie remembered for alice gives bob nothing', async (t) => {
    const h = await rememberApp(t, await store(t))
    const { device } = await h.remembered()
    t.equal((await h.signIn(KEEPER, { userId: 'bob' })).flags, undefined, 'bob\'s first sign-in, from another device')
    const bob = await h.signIn(PARIS, { userId: 'bob', device })
    t.equal(bob.answer.status, 200)
    t.strictSame(bob.flags, CHALLENGED, 'alice\'s cookie: bob\'s sign-in from her device is new')
    t.equal(bob.device, undefined, 'and no cookie is written for bob')
  })

  t.test('a tampered, forged or malformed cookie is ignored: the sign-in is from a new device, never a 500', async (t) => {
    const h = await rememberApp(t, await store(t))
    const { device } = await h.remembered()
    const flip = (s: string, at: number): string => s.slice(0, at) + (s[at] === 'A' ? 'B' : 'A') + s.slice(at + 1)
    const parts = device.split('.')
    const variants = [
      flip(device, device.length - 1),
      flip(device, 4),
      [parts[0], parts[1], parts[2], parts[3], (Number.parseInt(parts[4] as string, 36) * 2).toString(36), parts[5]].join('.'),
      parts.slice(0, 5).join('.'),
      `${device}.x`,
      'd1.....',
      'x'.repeat(4000),
      '%00%ff',
      ''
    ]
    for (const variant of variants) {
      const answer = await h.signIn(PARIS, { device: variant })
      t.equal(answer.answer.status, 200, `200 for ${variant.slice(0, 40)}`)
      t.strictSame(answer.flags, CHALLENGED, 'new device')
    }
    t.equal((await h.signIn(PARIS, { device })).flags, undefined, 'the real cookie still counts')
  })

  t.test('revoking the session that remembered the device forgets it; a logout does not', async (t) => {
    const h = await rememberApp(t, await store(t))
    const { device } = await h.remembered()
    const next = await h.signIn(PARIS, { device })
    const logout = await h.send(PARIS, 'POST', '/logout', h.auth(next.held as Held))
    t.equal(logout.status, 200)
    const again = await h.signIn(PARIS, { device: next.device })
    t.equal(again.flags, undefined, 'a logout does not forget the device')
    t.ok(await h.app.sessions.revoke(again.answer.body.sessionId), 'revoked (the devices page, an admin)')
    const after = await h.signIn(PARIS, { device: again.device })
    t.strictSame(after.flags, CHALLENGED, 'revoked: the device is forgotten')
  })

  t.test('"sign out everywhere" forgets every device of the user; a device remembered after it counts', async (t) => {
    const h = await rememberApp(t, await store(t))
    const { device } = await h.remembered()
    const next = await h.signIn(PARIS, { device })
    t.ok(await h.app.sessions.revokeAll('alice', { reason: 'user' }) >= 1)
    const forgotten = await h.signIn(PARIS, { device: next.device, remember: true })
    t.strictSame(forgotten.flags, CHALLENGED, 'forgotten')
    t.equal(forgotten.device, undefined, 'and a challenged sign-in is not remembered, asked or not')
    h.clock.advance(1)
    const stepUp = await h.send(PARIS, 'POST', '/step-up', h.auth(forgotten.held as Held), { code: '123456', rememberDevice: true })
    t.strictSame(stepUp.body, { completed: true })
    const device2 = stepUp.cookies[DEVICE_COOKIE]
    t.ok(device2, 'the completed step-up remembers the device')
    await h.lapse()
    t.equal((await h.signIn(PARIS, { device: device2 })).flags, undefined, 'a device remembered after "sign out everywhere" counts')
  })

  t.test('a remembered device is forgotten when its cookie expires', async (t) => {
    const h = await rememberApp(t, await store(t))
    const { device } = await h.remembered()
    await h.lapse()
    t.equal((await h.signIn(PARIS, { cookie: 'other=1' })).answer.status, 200)
    await h.lapse()
    t.strictSame((await h.signIn(PARIS, { device })).flags, CHALLENGED, 'past its three days (the user stayed active): new again')
  })
}
