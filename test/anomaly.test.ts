import type { LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { parseAnomalyOptions } from '../lib/monitoring/anomaly.js'
import { distanceKm } from '../lib/monitoring/travel.js'
import { type Anomaly, type AnomalyDecision, memoryStore, type SessionEvent, type SessionGuardOptions } from '../lib/index.js'
import { build, MINUTE, settle } from './helper.js'
import { FIREFOX, PLACES, SAFARI } from './anomaly-fixtures.js'

async function harness (t: Test, options: Partial<SessionGuardOptions> = {}) {
  const events: SessionEvent[] = []
  const h = await build(t, { resolveLocation: (ip) => PLACES[ip], privacy: { ipMode: 'full' }, onEvent: (e: SessionEvent) => events.push(e), ...options })
  const login = async (ip: string, userAgent = FIREFOX, userId = 'alice') => {
    const response = await h.app.inject({ method: 'POST', url: '/login', payload: { userId }, remoteAddress: ip, headers: { 'user-agent': userAgent } })
    return { response, session: response.statusCode === 200 ? await h.app.sessions.get(response.json().sessionId) : undefined }
  }
  const anomalies = async (): Promise<string[]> => {
    await settle()
    return events.filter((e): e is SessionEvent<'anomaly.detected'> => e.type === 'anomaly.detected').map((e) => `${e.rule}:${e.decision}`)
  }
  return { h, events, login, anomalies }
}

/** What a client of the login `response` sends: its access token and its fingerprint cookie. */
function credentialsOf (response: LightMyRequestResponse): Record<string, string> {
  const fingerprint = (response.cookies as Array<{ name: string, value: string }>).find((c) => c.name === '__Host-sg-fp')!.value
  return { authorization: `Bearer ${response.json().accessToken}`, cookie: `__Host-sg-fp=${fingerprint}` }
}

t.test('new device: not on a first login, flagged on a second from another device, and again until vouched for', async (t) => {
  const { login, anomalies } = await harness(t)
  t.equal((await login('203.0.113.1')).session?.flags, undefined, 'first login: nothing to compare with')
  t.equal((await login('203.0.113.1')).session?.flags, undefined, 'same device again')
  t.same((await login('203.0.113.1', SAFARI)).session?.flags, ['new_device'])
  t.same(await anomalies(), ['new_device:flag'])
  t.same((await login('203.0.113.1', SAFARI)).session?.flags, ['new_device'], 'a login does not vouch for its own device')
})

t.test('new country: flagged once per country, and shown in the session view', async (t) => {
  const { h, login, anomalies } = await harness(t, { routes: { prefix: '/sessions' }, anomalies: { newDevice: 'ignore' } })
  await login('203.0.113.1')
  h.clock.advance(24 * 60 * MINUTE)
  const berlin = await login('192.0.2.1')
  t.same(berlin.session?.flags, ['new_country'])
  t.same(await anomalies(), ['new_country:flag'])
  const list = await h.app.inject({ method: 'GET', url: '/sessions', headers: credentialsOf(berlin.response), remoteAddress: '192.0.2.1', })
  t.same(list.json().sessions[0].flags, ['new_country'], 'the devices list can say "new location"')
  t.same(list.json().sessions[0].location, PLACES['192.0.2.1'])
  h.clock.advance(24 * 60 * MINUTE)
  t.equal((await login('203.0.113.1')).session?.flags, undefined, 'France is known')
})

t.test('impossible travel at login: Paris then Sydney ten minutes later; not a day later; Paris to Lyon by train', async (t) => {
  const { h, events, login, anomalies } = await harness(t, { anomalies: { newDevice: 'ignore', newCountry: 'ignore' } })
  await login('203.0.113.1')
  h.clock.advance(10 * MINUTE)
  t.same((await login('198.51.100.1')).session?.flags, ['impossible_travel'])
  t.same(await anomalies(), ['impossible_travel:flag'])
  const event = events.find((e) => e.type === 'anomaly.detected') as SessionEvent<'anomaly.detected'>
  t.match(event, { at: 'login', userId: 'alice', detail: { from: 'FR', to: 'AU' } }, 'from where the user was last seen')
  t.ok((event.detail.speedKmh as number) > 1000)

  const second = await harness(t, { anomalies: { newDevice: 'ignore', newCountry: 'ignore' } })
  await second.login('203.0.113.1')
  second.h.clock.advance(24 * 60 * MINUTE)
  t.equal((await second.login('198.51.100.1')).session?.flags, undefined, 'a day is enough to fly there')
  second.h.clock.advance(MINUTE)
  await second.login('198.51.100.1')
  t.same(await second.anomalies(), [])

  const third = await harness(t, { anomalies: { newDevice: 'ignore', newCountry: 'ignore' } })
  await third.login('203.0.113.1')
  third.h.clock.advance(5 * 60 * MINUTE)
  t.equal((await third.login('203.0.113.2')).session?.flags, undefined, 'Paris to Lyon (390 km) in five hours is a train ride')
})

t.test('impossible travel at a realistic speed: Paris to Berlin (877 km) in one hour is 877 km/h', async (t) => {
  const km = distanceKm(48.8566, 2.3522, 52.52, 13.405)
  t.ok(km > 870 && km < 880, `the trip is ${Math.round(km)} km`)
  const trip = async (maxSpeedKmh: number) => {
    // An idle timeout of two hours, so the Paris session is still live (and compared with) an hour later.
    const { h, events, login } = await harness(t, { idleTimeout: '2h', anomalies: { newDevice: 'ignore', newCountry: 'ignore', impossibleTravel: { maxSpeedKmh } } })
    await login('203.0.113.1')
    h.clock.advance(60 * MINUTE)
    const { session } = await login('192.0.2.1')
    await settle()
    const event = events.find((e) => e.type === 'anomaly.detected') as SessionEvent<'anomaly.detected'> | undefined
    return { flags: session?.flags, detail: event?.detail }
  }
  const slow = await trip(800)
  t.same(slow.flags, ['impossible_travel'], 'faster than 800 km/h allows')
  t.same(slow.detail, { since: 'last_seen', distanceKm: 877, minutes: 60, speedKmh: 877, from: 'FR', to: 'DE' }, 'the speed is per hour, over the real time between the two')
  t.equal((await trip(1000)).flags, undefined, 'within what 1000 km/h allows')
  t.equal((await trip(878)).flags, undefined, 'the limit is a speed in km/h, not in km/min or km/s')
})

t.test('impossible travel during a session is measured per hour too', async (t) => {
  const lifetimes = { idleTimeout: '2h', accessTokenTtl: '2h' }
  const { h, login, anomalies } = await harness(t, { ...lifetimes, anomalies: { ipChange: 'ignore', impossibleTravel: { maxSpeedKmh: 800 } } })
  const first = await login('203.0.113.1')
  const headers = { ...credentialsOf(first.response), 'user-agent': FIREFOX }
  h.clock.advance(60 * MINUTE - 1)
  t.equal((await h.app.inject({ method: 'GET', url: '/me', headers, remoteAddress: '192.0.2.1' })).statusCode, 200)
  t.same(await anomalies(), ['impossible_travel:flag'], 'Paris to Berlin in just under an hour: over 800 km/h')
  t.same((await h.app.sessions.get(first.response.json().sessionId))?.flags, ['impossible_travel'])

  const relaxed = await harness(t, { ...lifetimes, anomalies: { ipChange: 'ignore', impossibleTravel: { maxSpeedKmh: 1000 } } })
  const second = await relaxed.login('203.0.113.1')
  const credentials = { ...credentialsOf(second.response), 'user-agent': FIREFOX }
  relaxed.h.clock.advance(60 * MINUTE - 1)
  t.equal((await relaxed.h.app.inject({ method: 'GET', url: '/me', headers: credentials, remoteAddress: '192.0.2.1' })).statusCode, 200)
  t.same(await relaxed.anomalies(), [], 'under 1000 km/h')
})

t.test('nearby moves are geolocation noise, however fast: Paris to Reims (130 km) in a minute is not travel', async (t) => {
  const { h, login, anomalies } = await harness(t, { anomalies: { newDevice: 'ignore', newCountry: 'ignore', ipChange: 'ignore' } })
  const first = await login('203.0.113.1')
  h.clock.advance(MINUTE)
  t.equal((await login('203.0.113.3')).session?.flags, undefined, 'at login: 7800 km/h, but under minDistanceKm (200)')
  const headers = { ...credentialsOf(first.response), 'user-agent': FIREFOX }
  h.clock.advance(MINUTE)
  t.equal((await h.app.inject({ method: 'GET', url: '/me', headers, remoteAddress: '203.0.113.3' })).statusCode, 200)
  t.same(await anomalies(), [], 'during a session neither')

  const closer = await harness(t, { anomalies: { newDevice: 'ignore', newCountry: 'ignore', impossibleTravel: { minDistanceKm: 100 } } })
  await closer.login('203.0.113.1')
  closer.h.clock.advance(MINUTE)
  t.same((await closer.login('203.0.113.3')).session?.flags, ['impossible_travel'], 'the same move past a lower minDistanceKm is travel')
})

t.test('too many IPs and countries across a user\'s live sessions', async (t) => {
  const { login, anomalies, events } = await harness(t, { anomalies: { newDevice: 'ignore', newCountry: 'ignore', impossibleTravel: { policy: 'ignore' }, tooManyIps: { max: 2 }, tooManyCountries: { max: 2 } } })
  await login('203.0.113.1')
  await login('203.0.113.2')
  t.equal((await login('203.0.113.2')).session?.flags, undefined, 'two IPs, one country')
  t.same((await login('198.51.100.1')).session?.flags, ['too_many_ips'], 'a third IP; a second country')
  t.same((await login('192.0.2.1')).session?.flags, ['too_many_ips', 'too_many_countries'])
  t.same(await anomalies(), ['too_many_ips:flag', 'too_many_ips:flag', 'too_many_countries:flag'])
  t.same(events.filter((e) => e.type === 'anomaly.detected').map((e) => e.detail), [{ ips: 3, max: 2 }, { ips: 4, max: 2 }, { countries: 3, max: 2 }])

  // Each rule has its own policy.
  const strict = await harness(t, { anomalies: { newDevice: 'ignore', newCountry: 'ignore', impossibleTravel: { policy: 'ignore' }, tooManyIps: { policy: 'revoke', max: 1 }, tooManyCountries: { max: 1 } } })
  await strict.login('203.0.113.1')
  t.equal((await strict.login('203.0.113.2')).response.statusCode, 403, "a second IP in the same country: tooManyIps' own 'revoke'")
})

t.test('a burst of logins: counted per user, in fixed windows', async (t) => {
  const { h, login, anomalies, events } = await harness(t, { anomalies: { loginBurst: { max: 3, window: '1m' } } })
  for (let i = 0; i < 3; i++) {
    t.equal((await login('203.0.113.1')).session?.flags, undefined)
    h.clock.advance(10_000)
  }
  t.same((await login('203.0.113.1')).session?.flags, ['login_burst'], 'the fourth in the same minute, 30 s after the first')
  for (let i = 0; i < 3; i++) t.equal((await login('203.0.113.1', FIREFOX, 'bob')).session?.flags, undefined, "another user's logins are not alice's")
  h.clock.advance(MINUTE)
  t.equal((await login('203.0.113.1')).session?.flags, undefined, 'a new window')
  t.same(await anomalies(), ['login_burst:flag'])
  t.same(events.find((e) => e.type === 'anomaly.detected')?.detail, { logins: 4, windowMs: MINUTE })
})

t.test("'revoke' at login refuses the login with 403 and creates nothing", async (t) => {
  const { h, login } = await harness(t, { anomalies: { newDevice: 'revoke' } })
  await login('203.0.113.1')
  const refused = await login('203.0.113.1', SAFARI)
  t.equal(refused.response.statusCode, 403)
  t.equal(refused.response.json().code, 'FST_SESSION_GUARD_ANOMALY')
  t.equal((await h.app.sessions.list('alice')).length, 1)
})

t.test('during a session: an IP change is flagged (or revokes), and travel is checked too', async (t) => {
  const { h, login, anomalies } = await harness(t, { anomalies: { ipChange: 'flag' } })
  const first = await login('203.0.113.1')
  const credentials = { ...credentialsOf(first.response), 'user-agent': FIREFOX }
  h.clock.advance(MINUTE)
  t.equal((await h.app.inject({ method: 'GET', url: '/me', headers: credentials, remoteAddress: '203.0.113.1' })).statusCode, 200)
  t.same(await anomalies(), [], 'same IP: nothing')
  h.clock.advance(MINUTE)
  t.equal((await h.app.inject({ method: 'GET', url: '/me', headers: credentials, remoteAddress: '198.51.100.1' })).statusCode, 200)
  t.same(await anomalies(), ['ip_change:flag', 'impossible_travel:flag'])
  t.same((await h.app.sessions.get(first.response.json().sessionId))?.flags, ['ip_change', 'impossible_travel'])

  const strict = await harness(t, { anomalies: { ipChange: 'revoke' } })
  const s = await strict.login('203.0.113.1')
  const headers = { ...credentialsOf(s.response), 'user-agent': FIREFOX }
  strict.h.clock.advance(MINUTE)
  t.equal((await strict.h.app.inject({ method: 'GET', url: '/me', headers, remoteAddress: '192.0.2.1' })).statusCode, 401)
  t.equal(await strict.h.app.sessions.get(s.response.json().sessionId), undefined, 'revoked')
  await settle()
  t.ok(strict.events.some((e) => e.type === 'session.revoked' && e.reason === 'anomaly'))
})

t.test('the decide hook overrides the policy per case', async (t) => {
  const seen: Anomaly[] = []
  const { login, anomalies } = await harness(t, {
    anomalies: {
      newDevice: 'revoke',
      decide: (anomaly) => {
        seen.push(anomaly)
        return anomaly.detail.device === 'Safari on iPhone' ? 'flag' : undefined
      }
    }
  })
  await login('203.0.113.1')
  t.same((await login('203.0.113.1', SAFARI)).session?.flags, ['new_device'], 'the hook said flag')
  t.equal((await login('203.0.113.1', 'curl/8.5.0')).response.statusCode, 403, 'no opinion: the policy (revoke) holds')
  t.match(seen[0], { rule: 'new_device', at: 'login', userId: 'alice', detail: { device: 'Safari on iPhone' } })
  t.same(await anomalies(), ['new_device:flag', 'new_device:revoke'])
})

t.test('ignored rules are not evaluated into events', async (t) => {
  const { h, login, anomalies } = await harness(t, { anomalies: { newDevice: 'ignore', newCountry: 'ignore', impossibleTravel: { policy: 'ignore' }, loginBurst: { policy: 'ignore' }, tooManyIps: { policy: 'ignore' }, tooManyCountries: { policy: 'ignore' } } })
  await login('203.0.113.1')
  h.clock.advance(MINUTE)
  await login('198.51.100.1', SAFARI)
  t.same(await anomalies(), [])
  const decided = await harness(t, { anomalies: { decide: () => 'ignore' } })
  await decided.login('203.0.113.1')
  await decided.login('203.0.113.1', SAFARI)
  t.same(await decided.anomalies(), [], 'the hook may ignore too')
})

t.test("a rule set to 'ignore' is never evaluated: the decide hook is not even asked about it", async (t) => {
  // One scenario that trips every rule: a second login from another device, country and address
  // (too far to travel to, past each maximum of one), then a request from yet another address and device.
  const scenario = async (policy: AnomalyDecision) => {
    const asked: Record<string, unknown> = {}
    const { h, login } = await harness(t, {
      anomalies: {
        newDevice: policy,
        newCountry: policy,
        ipChange: policy,
        deviceChange: policy,
        tooManyIps: { policy, max: 1 },
        tooManyCountries: { policy, max: 1 },
        impossibleTravel: { policy },
        loginBurst: { policy, max: 1 },
        decide: (anomaly) => { asked[`${anomaly.at}:${anomaly.rule}`] = anomaly.detail; return 'flag' }
      }
    })
    await login('203.0.113.1')
    h.clock.advance(10_000)
    const second = await login('198.51.100.1', SAFARI)
    const credentials = credentialsOf(second.response)
    h.clock.advance(MINUTE)
    const me = await h.app.inject({ method: 'GET', url: '/me', headers: { ...credentials, 'user-agent': 'curl/8.5.0' }, remoteAddress: '203.0.113.1' })
    t.equal(me.statusCode, 200)
    return asked
  }
  const tripped = await scenario('flag')
  t.same(Object.keys(tripped).sort(), [
    'login:impossible_travel', 'login:login_burst', 'login:new_country', 'login:new_device', 'login:too_many_countries', 'login:too_many_ips',
    'request:device_change', 'request:impossible_travel', 'request:ip_change'
  ], 'the scenario trips every rule')
  t.match(tripped, {
    'login:new_device': { device: 'Safari on iPhone' },
    'login:new_country': { country: 'AU' },
    'login:login_burst': { logins: 2, windowMs: MINUTE },
    'login:too_many_ips': { ips: 2, max: 1 },
    'login:too_many_countries': { countries: 2, max: 1 },
    'request:ip_change': { from: '198.51.100.1', to: '203.0.113.1' },
    'request:device_change': { from: 'Safari on iPhone', to: 'curl' }
  }, 'each with what it saw')
  t.same(await scenario('ignore'), {}, 'every rule ignored: nothing asked')
})

t.test('new device: another browser, or another system, is another device', async (t) => {
  const { login } = await harness(t, { anomalies: { newCountry: 'ignore' } })
  await login('203.0.113.1')
  const chrome = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'
  const linux = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'
  t.same((await login('203.0.113.1', chrome)).session?.flags, ['new_device'], 'Chrome on the same Windows')
  t.same((await login('203.0.113.1', linux)).session?.flags, ['new_device'], 'Firefox on Linux')
})

t.test('impossible travel at login is measured from the last session that has a place, past those that have none', async (t) => {
  const { h, login } = await harness(t, { anomalies: { newDevice: 'ignore', newCountry: 'ignore' } })
  await login('203.0.113.1')
  h.clock.advance(MINUTE)
  t.equal((await login('192.0.2.77')).session?.location, undefined, 'an address the resolver does not know: no place')
  h.clock.advance(MINUTE)
  t.same((await login('198.51.100.1')).session?.flags, ['impossible_travel'], 'Sydney two minutes after Paris')
})

t.test('an IP change is reported only when the IP changed, not when only the device did', async (t) => {
  const { h, login, anomalies } = await harness(t, { anomalies: { ipChange: 'flag', deviceChange: 'ignore' } })
  const first = await login('203.0.113.1')
  const credentials = credentialsOf(first.response)
  h.clock.advance(MINUTE)
  t.equal((await h.app.inject({ method: 'GET', url: '/me', headers: { ...credentials, 'user-agent': 'curl/8.5.0' }, remoteAddress: '203.0.113.1' })).statusCode, 200)
  t.same(await anomalies(), [], 'same IP, another device')
  t.same((await h.app.sessions.get(first.response.json().sessionId))?.device?.name, 'curl', 'the new device is recorded')
})

t.test('trustDevice counts countries against maxKnownPerUser too, and says which kind hit it', async (t) => {
  const { h, login, events } = await harness(t, { anomalies: { maxKnownPerUser: 1, impossibleTravel: { policy: 'ignore' } } })
  await login('203.0.113.1')
  for (const ip of ['192.0.2.1', '198.51.100.1']) {
    const { session } = await login(ip)
    t.same(session?.flags, ['new_country'])
    t.equal(await h.app.sessions.trustDevice(session!.id), true)
  }
  await settle()
  t.match(events.filter((e) => e.type === 'anomaly.memory_full'), [{ kind: 'country', max: 1 }], 'Germany is remembered, Australia past the cap is not')
  t.same((await login('198.51.100.1')).session?.flags, ['new_country'])
  t.equal((await login('192.0.2.1')).session?.flags, undefined)
})

t.test('locations without coordinates are never compared for travel', async (t) => {
  const h = await build(t, { resolveLocation: (ip) => ip === '203.0.113.1' ? { country: 'FR', latitude: 48.8 } : { country: 'AU', latitude: -33.8, longitude: 151.2 } })
  const login = async (ip: string) => await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' }, remoteAddress: ip })
  await login('203.0.113.1')
  h.clock.advance(MINUTE)
  const far = await login('198.51.100.1')
  t.notOk((await h.app.sessions.get(far.json().sessionId))?.flags?.includes('impossible_travel'))
})

t.test('a store failure while revoking for an anomaly answers 503', async (t) => {
  const store = memoryStore()
  const { h, login } = await harness(t, { store, anomalies: { ipChange: 'revoke' } })
  const s = await login('203.0.113.1')
  const headers = { ...credentialsOf(s.response), 'user-agent': FIREFOX }
  store.revoke = async () => { throw new Error('down') }
  h.clock.advance(MINUTE)
  const response = await h.app.inject({ method: 'GET', url: '/me', headers, remoteAddress: '192.0.2.1' })
  t.equal(response.statusCode, 503)
  t.equal(response.json().code, 'FST_SESSION_GUARD_STORE_UNAVAILABLE')
})

t.test('a store failure while counting a login for the anomaly rules answers 503', async (t) => {
  const store = memoryStore()
  const { h } = await harness(t, { store, anomalies: { newDevice: 'flag' } })
  store.increment = async () => { throw new Error('down') }
  const response = await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' } })
  t.equal(response.statusCode, 503)
  t.equal(response.json().code, 'FST_SESSION_GUARD_STORE_UNAVAILABLE')
})

const ANDROID = 'Mozilla/5.0 (Linux; Android 14; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36'

t.test('trustDevice remembers at most anomalies.maxKnownPerUser devices per user: the next still loses its flag, but stays new', async (t) => {
  const store = memoryStore()
  const events: SessionEvent[] = []
  const h = await build(t, { store, anomalies: { maxKnownPerUser: 2 }, onEvent: (e: SessionEvent) => events.push(e) })
  // The model is the client's own text (a client hint): each one is another device.
  const login = async (model: string, userId = 'alice') => {
    const headers = { 'user-agent': ANDROID, 'sec-ch-ua-mobile': '?1', 'sec-ch-ua-platform': '"Android"', 'sec-ch-ua-model': `"${model}"` }
    const sessionId = (await h.app.inject({ method: 'POST', url: '/login', payload: { userId }, headers })).json().sessionId as string
    return { sessionId, flags: (await h.app.sessions.get(sessionId))?.flags }
  }
  const markers = async (): Promise<number> => {
    let n = 0
    for await (const batch of store.scanCounters(100, h.clock.read())) n += batch.filter((c) => c.key.startsWith('anomaly:device:')).length
    return n
  }
  t.equal((await login('Model 0')).flags, undefined, 'the first login vouches for its own device (not counted)')
  for (const model of ['Model 1', 'Model 2', 'Model 3']) {
    const { sessionId, flags } = await login(model)
    t.same(flags, ['new_device'], `${model} is new`)
    t.equal(await h.app.sessions.trustDevice(sessionId), true)
    t.equal((await h.app.sessions.get(sessionId))?.flags, undefined, `${model}: the session vouched for loses its flag`)
  }
  await settle()
  const full = events.filter((e): e is SessionEvent<'anomaly.memory_full'> => e.type === 'anomaly.memory_full')
  t.equal(full.length, 1, 'the third one vouched for hit the cap')
  t.match(full[0], { userId: 'alice', kind: 'device', max: 2, device: { type: 'mobile' } })
  t.equal(await markers(), 3, 'the first login\'s and the two vouched for: nothing more in the store')

  t.same((await login('Model 3')).flags, ['new_device'], 'the device past the cap is not remembered')
  t.equal((await login('Model 1')).flags, undefined, 'the ones before it still are')
  t.equal((await login('Model 2')).flags, undefined)
  t.equal((await login('Model 0')).flags, undefined)

  // Vouching again for a known device keeps it known, past the cap, and says nothing.
  h.clock.advance(60 * MINUTE)
  t.equal(await h.app.sessions.trustDevice((await login('Model 1')).sessionId), true)
  await settle()
  t.equal(events.filter((e) => e.type === 'anomaly.memory_full').length, 1)
  t.equal((await login('Model 4', 'bob')).flags, undefined, 'the cap is per user')
  t.same((await login('Model 5', 'bob')).flags, ['new_device'])
  t.equal(await h.app.sessions.trustDevice((await login('Model 5', 'bob')).sessionId), true)
  t.equal((await login('Model 5', 'bob')).flags, undefined)
})

t.test('trustDevice vouches for what the session has, writes only when a flag goes, and answers false for a session revoked meanwhile', async (t) => {
  const store = memoryStore()
  const h = await build(t, { store })
  const login = async (userAgent: string) => (await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' }, headers: { 'user-agent': userAgent } })).json().sessionId as string
  const first = await login(FIREFOX)
  const touch = store.touch.bind(store)
  let touches = 0
  store.touch = async (...args) => { touches++; return await touch(...args) }
  t.equal(await h.app.sessions.trustDevice(first), true, 'no location: the device alone')
  t.equal(touches, 0, 'no flag to clear: the session is not written')

  // An older record may lack its device: its country (here none either) is all there is to vouch for.
  const get = store.get.bind(store)
  store.get = async (id, now) => {
    const session = await get(id, now)
    if (session === undefined) return undefined
    const { device, ...rest } = session
    return rest
  }
  const phone = await login(SAFARI)
  t.equal(await h.app.sessions.trustDevice(phone), true)
  store.get = get
  t.same((await h.app.sessions.get(phone))?.flags, undefined, 'its flag is cleared')
  t.same((await h.app.sessions.get(await login(SAFARI)))?.flags, ['new_device'], 'the device it did not have is still new')

  const other = await login(SAFARI)
  store.touch = async (id, activity, now) => {
    await store.revoke(id, now)
    return await touch(id, activity, now)
  }
  t.equal(await h.app.sessions.trustDevice(other), false, 'revoked between the read and the write')
})

t.test('each anomaly option is checked under its own name, and the defaults are the documented ones', async (t) => {
  const decisionError = "must be 'ignore', 'flag', 'challenge' or 'revoke'"
  const cases: Array<[string, object]> = [
    ['anomalies.newDevice', { newDevice: 'maybe' }],
    ['anomalies.newCountry', { newCountry: 'maybe' }],
    ['anomalies.ipChange', { ipChange: 'maybe' }],
    ['anomalies.deviceChange', { deviceChange: 'maybe' }],
    ['anomalies.tooManyIps.policy', { tooManyIps: { policy: 'maybe' } }],
    ['anomalies.tooManyCountries.policy', { tooManyCountries: { policy: 'maybe' } }],
    ['anomalies.impossibleTravel.policy', { impossibleTravel: { policy: 'maybe' } }],
    ['anomalies.loginBurst.policy', { loginBurst: { policy: 'maybe' } }]
  ]
  for (const [name, options] of cases) {
    t.throws(() => parseAnomalyOptions(options), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: `Invalid option "${name}": ${decisionError}` }, name)
  }
  for (const decision of ['ignore', 'flag', 'challenge', 'revoke'] as const) t.equal(parseAnomalyOptions({ newDevice: decision }).newDevice, decision, `${decision} is a decision`)
  t.throws(() => parseAnomalyOptions({ newDevice: 1 } as object), { message: `Invalid option "anomalies.newDevice": ${decisionError}` }, 'not a string')
  const counts: Array<[string, object]> = [
    ['anomalies.tooManyIps.max', { tooManyIps: { max: 0 } }],
    ['anomalies.tooManyCountries.max', { tooManyCountries: { max: 0 } }],
    ['anomalies.impossibleTravel.maxSpeedKmh', { impossibleTravel: { maxSpeedKmh: 0 } }],
    ['anomalies.impossibleTravel.minDistanceKm', { impossibleTravel: { minDistanceKm: 0 } }],
    ['anomalies.loginBurst.max', { loginBurst: { max: 0 } }],
    ['anomalies.maxKnownPerUser', { maxKnownPerUser: 0 }]
  ]
  for (const [name, options] of counts) {
    t.throws(() => parseAnomalyOptions(options), { message: `Invalid option "${name}": must be a positive integer` }, name)
  }
  t.throws(() => parseAnomalyOptions({ loginBurst: { window: 0 } }), { message: /^Invalid option "anomalies\.loginBurst\.window": must be a positive duration/ })
  t.throws(() => parseAnomalyOptions({ memory: 0 }), { message: /^Invalid option "anomalies\.memory": must be a positive duration/ })
  t.throws(() => parseAnomalyOptions({ decide: 'no' } as object), { message: 'Invalid option "anomalies.decide": must be a function (anomaly, request) => decision' })
  t.throws(() => parseAnomalyOptions({ newDevise: 'flag' } as object), { message: 'Invalid option "anomalies.newDevise": is not an option of fastify-session-guard' })
  t.same(parseAnomalyOptions(undefined), {
    newDevice: 'flag',
    newCountry: 'flag',
    ipChange: 'ignore',
    deviceChange: 'flag',
    tooManyIps: { policy: 'flag', max: 10 },
    tooManyCountries: { policy: 'flag', max: 3 },
    impossibleTravel: { policy: 'flag', maxSpeedKmh: 1000, minDistanceKm: 200 },
    loginBurst: { policy: 'flag', max: 10, windowMs: MINUTE },
    memoryMs: 90 * 24 * 60 * MINUTE,
    maxKnownPerUser: 50,
    decide: undefined
  }, 'the defaults')
})
