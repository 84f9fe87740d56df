import t from 'tap'
import type { SessionEvent } from '../lib/index.js'
import { registrationError, SECRET, settle } from './helper.js'
import { PARIS, type Held } from './anomaly-http-helper.js'
import { DEVICE_COOKIE, KEEPER, rememberApp, rememberScenarios } from './remember-device-helper.js'

/** "Remember this device" on the memory store. */
rememberScenarios(t, async () => ({}))

const CHALLENGED = ['new_device', 'challenge']
const STRANGER = KEEPER

t.test('the cookie: __Host-, HttpOnly, Secure, SameSite=Lax, Path=/, for its lifetime', async (t) => {
  const h = await rememberApp(t)
  const answer = await h.send(PARIS, 'POST', '/signin', {}, { userId: 'alice', rememberDevice: true })
  const line = answer.headers.getSetCookie().find((cookie) => cookie.startsWith(`${DEVICE_COOKIE}=`)) as string
  t.match(line, /^__Host-sg-dev=d2\.default\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}\.[0-9a-z]+\.[0-9a-z]+\.[A-Za-z0-9_-]{43}; Max-Age=259200; Path=\/; HttpOnly; Secure; SameSite=Lax$/)
  t.notOk(line.includes('alice'), 'the cookie does not name its user')
  const plain = await rememberApp(t, { secureCookies: false, development: true })
  const insecure = await plain.send(PARIS, 'POST', '/signin', {}, { userId: 'alice', rememberDevice: true })
  const plainLine = insecure.headers.getSetCookie().find((cookie) => cookie.startsWith('sg-dev=')) as string
  t.match(plainLine, /; Path=\/; HttpOnly; SameSite=Lax$/, 'without secure cookies: sg-dev, not Secure')
  const named = await rememberApp(t, { rememberDevice: { cookieName: 'my-device', ttl: 1000 } })
  t.match((await named.send(PARIS, 'POST', '/signin', {}, { userId: 'alice', rememberDevice: true })).headers.getSetCookie().join('\n'), /^my-device=d2\.default\.[^;]+; Max-Age=1; Path=\/; HttpOnly; Secure; SameSite=Lax$/m)
})

t.test('a sign-in that is not asked to remember writes no cookie; with the option off nothing is read', async (t) => {
  const h = await rememberApp(t)
  const first = await h.signIn(PARIS)
  t.equal(first.flags, undefined)
  t.equal(first.device, undefined)
  t.equal(first.answer.body.deviceRemembered, undefined)
  const off = await rememberApp(t, { rememberDevice: false })
  const answer = await off.send(PARIS, 'POST', '/signin', {}, { userId: 'alice', rememberDevice: true })
  t.strictSame([answer.status, answer.body.message], [500, 'rememberDevice: true needs the plugin\'s rememberDevice option'], 'asking without the option is the app\'s mistake')
  t.equal((await off.signIn(PARIS)).answer.status, 200)
  const bad = await h.send(PARIS, 'POST', '/signin', {}, { userId: 'alice', rememberDevice: 'yes' })
  t.strictSame([bad.status, bad.body.message], [500, 'issueSession(): rememberDevice must be a boolean'])
})

t.test('a thief with the password cannot make their device remembered: a flagged or challenged sign-in is never remembered', async (t) => {
  for (const newDevice of ['flag', 'challenge'] as const) {
    const h = await rememberApp(t, { anomalies: { newDevice } })
    t.equal((await h.signIn(PARIS)).flags, undefined, 'alice\'s first sign-in')
    const thief = await h.signIn(STRANGER, { remember: true })
    t.equal(thief.answer.status, 200)
    t.strictSame(thief.flags, newDevice === 'flag' ? ['new_device'] : CHALLENGED, `${newDevice}: the attempt is judged`)
    t.equal(thief.device, undefined, 'no device cookie')
    t.equal(thief.answer.body.deviceRemembered, undefined)
    const again = await h.signIn(STRANGER, { remember: true, cookie: Object.entries(thief.answer.cookies).map(([k, v]) => `${k}=${v}`).join('; ') })
    t.strictSame(again.flags, thief.flags, 'with every cookie it got: judged again')
  }
})

t.test('a completed step-up remembers the device only when asked, and needs the reply', async (t) => {
  const h = await rememberApp(t)
  await h.signIn(PARIS)
  const challenged = await h.signIn(STRANGER)
  const wrong = await h.send(STRANGER, 'POST', '/step-up', h.auth(challenged.held as Held), { code: '000000', rememberDevice: true })
  t.equal(wrong.status, 400)
  t.equal(wrong.cookies[DEVICE_COOKIE], undefined, 'a wrong code remembers nothing')
  const plain = await h.send(STRANGER, 'POST', '/step-up', h.auth(challenged.held as Held), { code: '123456' })
  t.strictSame([plain.body, plain.cookies[DEVICE_COOKIE]], [{ completed: true }, undefined], 'not asked: no cookie')
  const noReply = await h.send(STRANGER, 'POST', '/step-up-no-reply', h.auth(challenged.held as Held))
  t.strictSame([noReply.status, noReply.body.message], [500, 'rememberDevice: true needs the reply: request.completeChallenge(reply, { rememberDevice: true })'])
  const off = await rememberApp(t, { rememberDevice: undefined })
  await off.signIn(PARIS)
  const offChallenged = await off.signIn(STRANGER)
  const refused = await off.send(STRANGER, 'POST', '/step-up', off.auth(offChallenged.held as Held), { code: '123456', rememberDevice: true })
  t.equal(refused.status, 500, 'without the option: the app\'s mistake')
  t.equal((await off.me(STRANGER, offChallenged.held as Held)).status, 401, 'and the step-up is not completed by a call that fails')
})

t.test('each sign-in from a remembered device moves it to the new session: the older cookie stops counting', async (t) => {
  const h = await rememberApp(t)
  const { device } = await h.remembered()
  const next = await h.signIn(PARIS, { device })
  t.equal(next.answer.body.deviceRemembered, true, 'renewed without being asked')
  t.not(next.device, device)
  t.equal(next.device?.split('.')[1], device.split('.')[1], 'the same device id')
  t.strictSame((await h.signIn(PARIS, { device })).flags, CHALLENGED, 'the older cookie (a copy) no longer counts')
  t.equal((await h.signIn(PARIS, { device: next.device })).flags, undefined, 'the current one does')
  await settle()
  t.equal(h.events.filter((e) => e.type === 'device.remembered').length, 1, 'one device remembered, once')
})

t.test('a cookie planted beside the real one does not hide it', async (t) => {
  const h = await rememberApp(t)
  const { device } = await h.remembered()
  const planted = await h.signIn(PARIS, { cookie: `${DEVICE_COOKIE}=d1.forged; ${DEVICE_COOKIE}=${device}` })
  t.equal(planted.flags, undefined)
})

t.test('revoking from the devices page, "sign out everywhere else", forgetDevice and forgetDevices', async (t) => {
  const h = await rememberApp(t)
  // Two devices of one kind (two Firefox on Windows), each remembered: only their cookies tell them apart.
  const first = await h.signIn(PARIS, { remember: true })
  const second = await h.signIn(PARIS, { remember: true })
  t.ok(second.device)
  await h.lapse()
  const one = await h.signIn(PARIS, { device: first.device })
  const two = await h.signIn(PARIS, { device: second.device })
  t.strictSame([one.flags, two.flags], [undefined, undefined])
  const others = await h.send(PARIS, 'POST', '/sessions/revoke-others', { ...h.auth(one.held as Held), 'x-requested-with': 'fetch' })
  t.equal(others.status, 200)
  t.strictSame((await h.signIn(PARIS, { device: two.device })).flags, CHALLENGED, '"everywhere else": the device of a session signed out is forgotten')
  const kept = await h.signIn(PARIS, { device: one.device })
  t.equal(kept.flags, undefined, 'the caller\'s own device is still remembered')

  const deleted = await h.send(PARIS, 'DELETE', `/sessions/${kept.answer.body.sessionId as string}`, h.auth(one.held as Held))
  t.equal(deleted.status, 204)
  t.strictSame((await h.signIn(PARIS, { device: kept.device })).flags, CHALLENGED, 'signed out from the devices page: forgotten')

  const challenged = await h.signIn(PARIS)
  const stepUp = await h.send(PARIS, 'POST', '/step-up', h.auth(challenged.held as Held), { code: '123456', rememberDevice: true })
  const mine = stepUp.cookies[DEVICE_COOKIE] as string
  const sessionId = challenged.answer.body.sessionId as string
  t.equal(await h.app.sessions.forgetDevice('bob', sessionId), false, 'another user\'s session: nothing to forget')
  t.equal(await h.app.sessions.forgetDevice('alice', sessionId), true)
  t.equal(await h.app.sessions.forgetDevice('alice', sessionId), false, 'once')
  t.ok(await h.app.sessions.get(sessionId), 'the session itself lives on')
  await h.lapse()
  t.strictSame((await h.signIn(PARIS, { device: mine })).flags, CHALLENGED, 'forgetDevice: forgotten')

  const fresh = await h.signIn(PARIS)
  const again = await h.send(PARIS, 'POST', '/step-up', h.auth(fresh.held as Held), { code: '123456', rememberDevice: true })
  h.clock.advance(1)
  await h.app.sessions.forgetDevices('alice')
  await h.lapse()
  t.strictSame((await h.signIn(PARIS, { device: again.cookies[DEVICE_COOKIE] })).flags, CHALLENGED, 'forgetDevices forgets them all')
  await settle()
  const history = await h.app.sessions.history('alice', { limit: 1000 })
  t.ok(history.some((entry) => entry.type === 'device.remembered'), 'the history keeps each device remembered')
  t.ok(history.some((entry) => entry.type === 'device.forgotten' && entry.detail?.scope === 'device'))
  t.ok(history.some((entry) => entry.type === 'device.forgotten' && entry.detail?.scope === 'all'))
})

t.test('without the option, the management calls forget nothing', async (t) => {
  const h = await rememberApp(t, { rememberDevice: undefined })
  const first = await h.signIn(PARIS)
  t.equal(await h.app.sessions.forgetDevice('alice', first.answer.body.sessionId), false)
  await h.app.sessions.forgetDevices('alice')
  t.equal(await h.app.sessions.revokeAll('alice'), 1)
})

t.test('maxPerUser new devices per user while the count lives; past it a sign-in is not remembered', async (t) => {
  const h = await rememberApp(t, { rememberDevice: { ttl: '3d', maxPerUser: 2 }, anomalies: { newDevice: 'ignore' } })
  const cookies: Array<string | undefined> = []
  for (let i = 0; i < 3; i++) cookies.push((await h.signIn(PARIS, { remember: true })).device)
  t.ok(cookies[0])
  t.ok(cookies[1])
  t.equal(cookies[2], undefined, 'the third is not remembered')
  t.ok((await h.signIn(PARIS, { device: cookies[0] })).device, 'a remembered one is still renewed past the cap')
  await settle()
  const full = h.events.filter((e): e is SessionEvent<'anomaly.memory_full'> => e.type === 'anomaly.memory_full')
  t.strictSame(full.map((e) => [e.kind, e.max]), [['remembered_device', 2]])
})

t.test('a login completed through the limit ticket keeps its request to remember, and its verdict', async (t) => {
  const h = await rememberApp(t, { maxSessionsPerUser: 1, onSessionLimit: 'reject' })
  const first = await h.signIn(PARIS)
  const refused = await h.send(PARIS, 'POST', '/signin', {}, { userId: 'alice', rememberDevice: true })
  t.equal(refused.status, 409)
  const resolved = await h.send(PARIS, 'POST', '/sessions/resolve-limit', { cookie: `__Host-sg-fp=${refused.cookies['__Host-sg-fp'] as string}` },
    { ticket: refused.body.ticket, revoke: first.answer.body.sessionId })
  t.equal(resolved.status, 200)
  const device = resolved.cookies[DEVICE_COOKIE]
  t.ok(device, 'remembered on completion')
  await h.lapse()
  t.equal((await h.signIn(KEEPER)).answer.status, 200, 'a session of the other device, live')
  const full = await h.send(PARIS, 'POST', '/signin', { cookie: `${DEVICE_COOKIE}=${device as string}` }, { userId: 'alice' })
  t.equal(full.status, 409, 'at the limit again')
  const sessions = await h.app.sessions.list('alice')
  const completed = await h.send(PARIS, 'POST', '/sessions/resolve-limit', { cookie: `__Host-sg-fp=${full.cookies['__Host-sg-fp'] as string}; ${DEVICE_COOKIE}=${device as string}` },
    { ticket: full.body.ticket, revoke: sessions[0]?.id })
  t.equal(completed.status, 200)
  t.equal((await h.app.sessions.get(completed.body.sessionId))?.flags, undefined, 'recognised when refused: completed unflagged')
  t.ok(completed.cookies[DEVICE_COOKIE], 'and the cookie renewed')

  // At the limit with this device's own session: signing it out to sign in again here keeps the device remembered.
  const renewed = completed.cookies[DEVICE_COOKIE] as string
  const atLimit = await h.send(PARIS, 'POST', '/signin', { cookie: `${DEVICE_COOKIE}=${renewed}` }, { userId: 'alice' })
  t.equal(atLimit.status, 409)
  const swapped = await h.send(PARIS, 'POST', '/sessions/resolve-limit', { cookie: `__Host-sg-fp=${atLimit.cookies['__Host-sg-fp'] as string}; ${DEVICE_COOKIE}=${renewed}` },
    { ticket: atLimit.body.ticket, revoke: completed.body.sessionId })
  t.equal(swapped.status, 200)
  t.equal((await h.app.sessions.get(swapped.body.sessionId))?.flags, undefined)
  await h.app.sessions.revokeAll('alice', { except: swapped.body.sessionId })
  h.clock.advance(60 * 60_000)
  t.equal((await h.signIn(PARIS, { device: swapped.cookies[DEVICE_COOKIE] })).flags, undefined, 'the device moved to the new session: still remembered')

  const thief = await rememberApp(t, { maxSessionsPerUser: 2, onSessionLimit: 'reject' })
  const own = await thief.signIn(PARIS)
  const pending = await thief.send(STRANGER, 'POST', '/signin', {}, { userId: 'alice' })
  t.equal(pending.status, 200, 'a first challenged sign-in, under the limit')
  const stolen = await thief.send(STRANGER, 'POST', '/signin', {}, { userId: 'alice', rememberDevice: true })
  t.equal(stolen.status, 409)
  const resolve = async (revoke: string) => await thief.send(STRANGER, 'POST', '/sessions/resolve-limit',
    { cookie: `__Host-sg-fp=${stolen.cookies['__Host-sg-fp'] as string}` }, { ticket: stolen.body.ticket, revoke })
  t.equal((await resolve(own.answer.body.sessionId)).status, 401, 'a challenged login cannot sign the proven session out')
  const done = await resolve(pending.body.sessionId)
  t.equal(done.status, 200, 'only the challenged one')
  t.equal(done.cookies[DEVICE_COOKIE], undefined, 'a challenged login completed through the ticket is not remembered')
})

t.test('regenerating the session moves the device with it; a refresh-token reuse forgets it', async (t) => {
  const h = await rememberApp(t)
  const { device } = await h.remembered()
  const next = await h.signIn(PARIS, { device })
  const regenerated = await h.send(PARIS, 'POST', '/regenerate', h.auth(next.held as Held, next.device))
  t.equal(regenerated.status, 200)
  const moved = regenerated.cookies[DEVICE_COOKIE]
  t.ok(moved, 'the cookie now names the new session')
  t.ok(await h.app.sessions.revoke(regenerated.body.sessionId))
  t.strictSame((await h.signIn(PARIS, { device: moved })).flags, CHALLENGED, 'revoking the regenerated session forgets the device')
  const plain = await h.send(PARIS, 'POST', '/regenerate', h.auth((await h.signIn(KEEPER, { cookie: 'x=1' })).held as Held))
  t.equal(plain.status, 401, 'a challenged session cannot regenerate (control)')

  const h2 = await rememberApp(t)
  const again = await h2.remembered()
  const live = await h2.signIn(PARIS, { device: again.device })
  const held = live.held as Held
  const oldRefresh = held.refreshToken
  t.equal((await h2.refresh(PARIS, held)).status, 200)
  h2.clock.advance(60_000)
  t.equal((await h2.refresh(PARIS, held)).status, 200)
  h2.clock.advance(60_000)
  const reuse = await h2.send(PARIS, 'POST', '/refresh', { 'x-requested-with': 'fetch', cookie: `__Secure-sg-rt=${oldRefresh}; __Host-sg-fp=${held.fingerprint}` })
  t.equal(reuse.status, 401)
  t.strictSame((await h2.signIn(PARIS, { device: live.device })).flags, CHALLENGED, 'a stolen refresh token detected: the device is forgotten')
  const noCookie = await h2.send(PARIS, 'POST', '/regenerate', h2.auth((await h2.signIn(PARIS, { device: live.device })).held as Held))
  t.equal(noCookie.status, 401)
})

t.test('the option is checked at registration', async (t) => {
  const cases: Array<[unknown, string]> = [
    ['yes', 'rememberDevice'],
    [null, 'rememberDevice'],
    [{ ttl: 0 }, 'rememberDevice.ttl'],
    [{ ttl: 'soon' }, 'rememberDevice.ttl'],
    [{ maxPerUser: 0 }, 'rememberDevice.maxPerUser'],
    [{ cookieName: 'a b' }, 'rememberDevice.cookieName'],
    [{ cookiename: 'x' }, 'rememberDevice.cookiename']
  ]
  for (const [rememberDevice, name] of cases) {
    const err = await registrationError({ secret: SECRET, rememberDevice })
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', String(JSON.stringify(rememberDevice)))
    t.match(err?.message, name)
  }
  const plain = await registrationError({ secret: SECRET, secureCookies: false, development: true, rememberDevice: { cookieName: '__Host-dev' } })
  t.match(plain?.message, /rememberDevice\.cookieName.*secure cookies/)
  t.equal(await registrationError({ secret: SECRET, rememberDevice: true }), undefined)
})
