import t from 'tap'
import type { SessionEvent, SessionGuardOptions } from '../lib/index.js'
import { distanceKm } from '../lib/monitoring/travel.js'
import { MINUTE, settle } from './helper.js'
import { FIREFOX, PLACES, SAFARI } from './anomaly-fixtures.js'
import { BERLIN, COUNTRY_ONLY, locate, north, PARIS, serve, type Client, type Held } from './anomaly-http-helper.js'

/** The anomaly rules against clients that hold real credentials, over a real socket (`anomaly-http-helper.ts`). */

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

t.test("a request from the thief's network: ipChange 'revoke' refuses it at the guard, as an anomaly", async (t) => {
  const s = await serve(t, { anomalies: { ipChange: 'revoke', impossibleTravel: { policy: 'ignore' } } })
  const victim = (await s.login(PARIS)).held!
  s.clock.advance(MINUTE)
  t.equal((await s.me(PARIS, victim)).status, 200, 'control: the victim, from where it signed in')
  s.clock.advance(MINUTE)
  t.equal((await s.me(BERLIN, victim)).status, 401)
  t.equal(await s.app.sessions.get(victim.sessionId), undefined, 'the session is revoked')
  await settle()
  t.match(s.events.filter((e) => e.sessionId === victim.sessionId && (e.type === 'session.revoked' || e.type === 'auth.rejected')), [
    { type: 'session.revoked', reason: 'anomaly' },
    { type: 'auth.rejected', reason: 'anomaly' }
  ], 'refused for the anomaly, not as an unknown session')
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

// Item: impossible travel measured from an anchor as well as from the last place; device changes.

/** Lifetimes long enough to travel with one access token. */
const LONG: Partial<SessionGuardOptions> = { accessTokenTtl: '7d', idleTimeout: '2d', absoluteTimeout: '30d' }

t.test('the places north of Paris are where the tests say', async (t) => {
  const at = (km: number) => locate(north(km).ip) as { latitude: number, longitude: number }
  t.equal(Math.round(distanceKm(PLACES['203.0.113.1']!.latitude, PLACES['203.0.113.1']!.longitude, at(900).latitude, at(900).longitude)), 900)
  t.equal(Math.round(distanceKm(at(150).latitude, at(150).longitude, at(300).latitude, at(300).longitude)), 150)
})

t.test('a 900 km trip in one hour is impossible at maxSpeedKmh 800, not at 1000: at login and on a request', async (t) => {
  for (const [maxSpeedKmh, expected] of [[800, ['impossible_travel']], [1000, undefined]] as const) {
    const s = await serve(t, { ...LONG, anomalies: { impossibleTravel: { maxSpeedKmh } } })
    await s.login(PARIS)
    s.clock.advance(60 * MINUTE)
    t.same((await s.login(north(900))).flags, expected, `${maxSpeedKmh} km/h: a login 900 km away an hour later`)

    const other = await serve(t, { ...LONG, anomalies: { impossibleTravel: { maxSpeedKmh } } })
    const held = (await other.login(PARIS)).held!
    other.clock.advance(60 * MINUTE)
    t.equal((await other.me(north(900), held)).status, 200)
    t.same((await other.app.sessions.get(held.sessionId))?.flags, expected, `${maxSpeedKmh} km/h: a request 900 km away an hour later`)
  }
})

t.test('impossible travel adds up a chain of hops each shorter than minDistanceKm', async (t) => {
  const s = await serve(t, LONG)
  const stolen = (await s.login(PARIS)).held!
  const flagsAt = async (km: number) => {
    s.clock.advance(2 * MINUTE)
    t.equal((await s.me(north(km), stolen)).status, 200)
    return (await s.app.sessions.get(stolen.sessionId))?.flags
  }
  t.equal(await flagsAt(150), undefined, '150 km from Paris: geolocation noise')
  t.same(await flagsAt(300), ['impossible_travel'], '300 km from the login place in four minutes, though only 150 from the last place')
  await settle()
  const event = s.events.find((e) => e.type === 'anomaly.detected') as SessionEvent<'anomaly.detected'>
  t.match(event.detail, { since: 'anchor', distanceKm: 300, minutes: 4, from: 'FR' })

  const strict = await serve(t, { ...LONG, anomalies: { impossibleTravel: { policy: 'revoke' } } })
  const held = (await strict.login(PARIS)).held!
  for (const km of [150, 300]) {
    strict.clock.advance(2 * MINUTE)
    t.equal((await strict.me(north(km), held)).status, km === 150 ? 200 : 401, `revoke: ${km} km`)
  }
  t.equal(await strict.app.sessions.get(held.sessionId), undefined, 'the session is revoked')
})

t.test('a train trip with requests all the way is not impossible travel', async (t) => {
  const s = await serve(t, LONG)
  const rider = (await s.login(PARIS)).held!
  for (let km = 50; km <= 600; km += 50) {
    s.clock.advance(10 * MINUTE)
    t.equal((await s.me(north(km), rider)).status, 200, `${km} km after ${km / 5} minutes`)
  }
  t.equal((await s.app.sessions.get(rider.sessionId))?.flags, undefined, '300 km/h for two hours, every hop checked against the last checked place')
  t.same(await s.anomalies(), [])
})

t.test('after a long stay, a chain of hops is flagged within about twice minDistanceKm', async (t) => {
  const s = await serve(t, LONG)
  const held = (await s.login(PARIS)).held!
  for (let day = 0; day < 3; day++) {
    s.clock.advance(20 * 60 * MINUTE)
    t.equal((await s.me(PARIS, held)).status, 200, 'the victim, at home')
  }
  const flagsAt = async (km: number) => {
    s.clock.advance(2 * MINUTE)
    t.equal((await s.me(north(km), held)).status, 200)
    return (await s.app.sessions.get(held.sessionId))?.flags
  }
  t.equal(await flagsAt(150), undefined, 'noise')
  t.equal(await flagsAt(300), undefined, 'plausible from where the session stayed for days: the anchor moves here')
  t.equal(await flagsAt(450), undefined, 'noise again')
  t.same(await flagsAt(600), ['impossible_travel'], '300 km from the moved anchor in four minutes')
})

const MAC_SAFARI = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15'
const IPAD_SAFARI = 'Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1'
const ANDROID_CHROME = 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36'
const ANDROID_HINTS = { 'sec-ch-ua': '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"', 'sec-ch-ua-mobile': '?1', 'sec-ch-ua-platform': '"Android"' }

t.test("device_change: a session's device changing mid-session is flagged; an update, an iPad's two Safaris and a missing model hint are not", async (t) => {
  const s = await serve(t, LONG)
  const using = async (client: Client, held: Held) => {
    s.clock.advance(2 * MINUTE)
    t.equal((await s.me(client, held)).status, 200)
    return (await s.app.sessions.get(held.sessionId))?.flags
  }

  const laptop = (await s.login(PARIS)).held!
  t.equal(await using({ ip: PARIS.ip, userAgent: FIREFOX.replaceAll('133.0', '134.0') }, laptop), undefined, 'Firefox updated itself')
  t.same(await using({ ip: PARIS.ip, userAgent: 'curl/8.5.0' }, laptop), ['device_change'], 'Firefox, then curl')
  t.match(s.events.findLast((e) => e.type === 'anomaly.detected'), { rule: 'device_change', decision: 'flag', at: 'request', detail: { from: 'Firefox on Windows', to: 'curl' } })

  // iPadOS Safari sends the macOS user agent until the user asks for the mobile site, then the iPad one.
  const ipad = (await s.login({ ip: PARIS.ip, userAgent: MAC_SAFARI }, 'bob')).held!
  t.equal(await using({ ip: PARIS.ip, userAgent: IPAD_SAFARI }, ipad), undefined, 'desktop site, then mobile site')
  t.equal(await using({ ip: PARIS.ip, userAgent: MAC_SAFARI }, ipad), undefined, 'and back')
  const mac = (await s.login({ ip: PARIS.ip, userAgent: IPAD_SAFARI }, 'dave')).held!
  t.equal(await using({ ip: PARIS.ip, userAgent: MAC_SAFARI }, mac), undefined, 'signed in on the mobile site, then the desktop one')
  t.same(await using({ ip: PARIS.ip, userAgent: FIREFOX }, mac), ['device_change'], 'but not to another browser')

  const iphone = (await s.login({ ip: PARIS.ip, userAgent: SAFARI }, 'carol')).held!
  t.equal(await using({ ip: PARIS.ip, userAgent: SAFARI.replaceAll('18_1', '18_2').replaceAll('18.1', '18.2') }, iphone), undefined, 'iOS updated: same model')

  // Chromium sends the model only in a client hint the app asked for, not on every request.
  const phone = (await s.login({ ip: PARIS.ip, userAgent: ANDROID_CHROME, headers: { ...ANDROID_HINTS, 'sec-ch-ua-model': '"Pixel 8"' } }, 'erin')).held!
  t.equal(await using({ ip: PARIS.ip, userAgent: ANDROID_CHROME, headers: ANDROID_HINTS }, phone), undefined, 'the model hint left out')
  t.equal(await using({ ip: PARIS.ip, userAgent: ANDROID_CHROME, headers: { ...ANDROID_HINTS, 'sec-ch-ua-model': '"Pixel 8"' } }, phone), undefined, 'and back')
  t.same(await using({ ip: PARIS.ip, userAgent: ANDROID_CHROME, headers: { ...ANDROID_HINTS, 'sec-ch-ua-model': '"SM-S918B"' } }, phone), ['device_change'], 'another model')

  const strict = await serve(t, { ...LONG, anomalies: { deviceChange: 'revoke' } })
  const held = (await strict.login(PARIS)).held!
  strict.clock.advance(2 * MINUTE)
  t.equal((await strict.refresh({ ip: PARIS.ip, userAgent: 'curl/8.5.0' }, { ...held })).status, 401, "revoke: curl refreshing Firefox's session")
  t.equal(await strict.app.sessions.get(held.sessionId), undefined, 'revoked')
  await settle()
  t.ok(strict.events.some((e) => e.type === 'session.revoked' && e.reason === 'anomaly'))
})

t.test('device_change compares the type, the browser and the system each on its own; only Safari on an iPad passes for Safari on a Mac', async (t) => {
  const s = await serve(t, LONG)
  const ANDROID_TABLET = 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'
  const IPAD_CHROME = 'Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1'
  const MAC_CHROME = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'
  const WINDOWS_CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'
  const LINUX_FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'
  const cases: Array<[string, Client, Client, boolean]> = [
    ['the type alone (Chrome on an Android phone, then on a tablet)',
      { ip: PARIS.ip, userAgent: ANDROID_CHROME, headers: ANDROID_HINTS }, { ip: PARIS.ip, userAgent: ANDROID_TABLET, headers: { ...ANDROID_HINTS, 'sec-ch-ua-mobile': '?0' } }, true],
    ['the browser alone (Firefox, then Chrome, on Windows)', PARIS, { ip: PARIS.ip, userAgent: WINDOWS_CHROME }, true],
    ['the system alone (Firefox on Windows, then on Linux)', PARIS, { ip: PARIS.ip, userAgent: LINUX_FIREFOX }, true],
    ['Safari on an iPad, then Firefox', { ip: PARIS.ip, userAgent: IPAD_SAFARI }, PARIS, true],
    ['Safari on an iPad, then Chrome on a Mac', { ip: PARIS.ip, userAgent: IPAD_SAFARI }, { ip: PARIS.ip, userAgent: MAC_CHROME }, true],
    ['Safari on an iPad, then on an iPhone', { ip: PARIS.ip, userAgent: IPAD_SAFARI }, { ip: PARIS.ip, userAgent: SAFARI }, true],
    ['Safari on an iPhone, then on a Mac', { ip: PARIS.ip, userAgent: SAFARI }, { ip: PARIS.ip, userAgent: MAC_SAFARI }, true],
    ['Chrome on an iPad, then Safari on a Mac', { ip: PARIS.ip, userAgent: IPAD_CHROME }, { ip: PARIS.ip, userAgent: MAC_SAFARI }, true],
    ['Safari on a Mac, then Chrome on an iPad', { ip: PARIS.ip, userAgent: MAC_SAFARI }, { ip: PARIS.ip, userAgent: IPAD_CHROME }, true],
    ['Safari on an iPad, then on a Mac', { ip: PARIS.ip, userAgent: IPAD_SAFARI }, { ip: PARIS.ip, userAgent: MAC_SAFARI }, false],
    ['Safari on a Mac, then on an iPad', { ip: PARIS.ip, userAgent: MAC_SAFARI }, { ip: PARIS.ip, userAgent: IPAD_SAFARI }, false]
  ]
  for (const [index, [name, from, to, changed]] of cases.entries()) {
    const held = (await s.login(from, `user-${index}`)).held!
    s.clock.advance(2 * MINUTE)
    t.equal((await s.me(to, held)).status, 200)
    t.same((await s.app.sessions.get(held.sessionId))?.flags, changed ? ['device_change'] : undefined, name)
  }
})

t.test('an address without a location does not reset where travel is measured from', async (t) => {
  const s = await serve(t, LONG)
  const held = (await s.login(PARIS)).held!
  s.clock.advance(2 * MINUTE)
  t.equal((await s.me(COUNTRY_ONLY, held)).status, 200, 'an address the resolver knows only the country of')
  t.same((await s.app.sessions.get(held.sessionId))?.location, { country: 'NL' }, 'the session has no coordinates now')
  s.clock.advance(2 * MINUTE)
  t.equal((await s.me({ ip: '198.51.100.1', userAgent: FIREFOX }, held)).status, 200)
  t.same((await s.app.sessions.get(held.sessionId))?.flags, ['impossible_travel'], 'Sydney four minutes after Paris, measured from the anchor')

  // Signed in where the resolver knows nothing: the first place with coordinates anchors the session.
  const other = await serve(t, LONG)
  const nowhere = (await other.login({ ip: '192.0.2.77', userAgent: FIREFOX })).held!
  other.clock.advance(2 * MINUTE)
  t.equal((await other.me(PARIS, nowhere)).status, 200)
  t.match((await other.app.sessions.get(nowhere.sessionId))?.travelAnchor, { country: 'FR', at: other.clock.now })
  other.clock.advance(10 * MINUTE)
  t.equal((await other.me({ ip: '198.51.100.1', userAgent: FIREFOX }, nowhere)).status, 200)
  t.same((await other.app.sessions.get(nowhere.sessionId))?.flags, ['impossible_travel'])
})
