import t from 'tap'
import type { SessionRecord } from '../../lib/session.js'
import { redisStore } from '../../lib/stores/redis/index.js'
import { build, EPOCH, MINUTE } from '../helper.js'
import { deleteKeys, leftNoKeys, REDIS_URL, redisTest, statsKeys, storeFor, testClient, uniquePrefix } from './redis-helper.js'

/**
 * One account hammering the store: thousands of logins and logouts (and
 * evictions at the limit) must leave a bounded amount behind in Redis, whatever
 * the sessions' deadlines (remembered sessions live for weeks). The bound is in
 * docs/stores.md: per user, at most the live sessions (the limit), their index
 * and lookups, and 32 removal markers for a minute.
 */

const admin = testClient()
t.teardown(() => admin.disconnect())

const CYCLES = 2000
const LIMIT = 3
/** Bytes Redis may hold for the user and the stats once the cycles are over (measured about 3 KB). */
const MAX_BYTES = 16_384

function record (n: number): SessionRecord {
  return {
    id: `s${n}`,
    userId: 'alice',
    fingerprintHash: 'fp',
    createdAt: EPOCH + n,
    lastSeenAt: EPOCH + n,
    idleExpiresAt: EPOCH + 30 * 24 * 60 * MINUTE,
    absoluteExpiresAt: EPOCH + 90 * 24 * 60 * MINUTE,
    remembered: true
  }
}

redisTest(t, `${CYCLES} logins and logouts of one user leave a bounded amount in Redis`, async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const store = storeFor(t, { connection: REDIS_URL, prefix })
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  for (let n = 0; n < CYCLES; n++) {
    const now = EPOCH + n
    await store.create(record(n), { max: LIMIT, onLimit: 'evict-oldest' }, now)
    // Every other login logs out; the rest pile up and are evicted at the limit.
    if (n % 2 === 0) await store.revoke(`s${n}`, now)
  }
  const keys = await admin.keys(`${prefix}*`)
  t.ok(keys.length <= 2 * LIMIT + 8, `${keys.length} keys: the live sessions and their lookups, the index, the version, the stats`)
  const markers = await admin.zcard(statsKeys(prefix, 'alice').removed)
  t.ok(markers <= 32, `${markers} removal markers, at most 32`)
  t.ok(await admin.pttl(statsKeys(prefix, 'alice').removed) <= MINUTE, 'kept a minute, not until the sessions\' deadlines')
  let bytes = 0
  for (const key of keys) bytes += Number(await admin.memory('USAGE', key))
  t.ok(bytes <= MAX_BYTES, `${bytes} bytes in Redis, at most ${MAX_BYTES}`)
  t.equal((await store.listUser('alice', EPOCH + CYCLES)).length, LIMIT, 'and the user holds the limit')
})

const ANDROID = 'Mozilla/5.0 (Linux; Android 14; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36'

redisTest(t, 'over HTTP: logins from ever new device models, each logged out, leave a bounded amount in Redis', async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const h = await build(t, { store: redisStore({ connection: REDIS_URL, prefix }), maxSessionsPerUser: LIMIT })
  const fingerprintName = '__Host-sg-fp'
  for (let n = 0; n < 400; n++) {
    const headers = { 'user-agent': ANDROID, 'sec-ch-ua-mobile': '?1', 'sec-ch-ua-platform': '"Android"', 'sec-ch-ua-model': `"Model ${n}"` }
    const login = await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice', remember: true }, headers })
    t.equal(login.statusCode, 200)
    const fingerprint = (login.cookies as Array<{ name: string, value: string }>).find((cookie) => cookie.name === fingerprintName)?.value ?? ''
    const logout = await h.app.inject({ method: 'POST', url: '/logout', headers: { ...headers, authorization: `Bearer ${login.json().accessToken as string}`, cookie: `${fingerprintName}=${fingerprint}` } })
    if (logout.statusCode !== 204) t.fail(`logout ${n}: ${logout.statusCode}`)
    // Redis expires keys by real time: keep the test clock near it, so each counter's window is as long in both.
    h.clock.advance(100)
  }
  const keys = await admin.keys(`${prefix}*`)
  // The user's login counter and device and country markers (first login), one burst window, the index's version,
  // the stats, and the login history.
  t.ok(keys.length <= 13, `${keys.length} keys left: ${keys.slice(0, 20).map((key) => key.slice(prefix.length)).join(' ')}`)
  const history = `${prefix}{u:alice}:h`
  t.equal(await admin.llen(history), 100, 'the login history keeps its newest history.maxEntries (100) of the entries written (two or three per login)')
  let bytes = 0
  let historyBytes = 0
  for (const key of keys) {
    const used = Number(await admin.memory('USAGE', key))
    if (key === history) historyBytes = used
    else bytes += used
  }
  t.ok(bytes <= MAX_BYTES, `${bytes} bytes in Redis besides the history, at most ${MAX_BYTES}`)
  t.ok(historyBytes <= 100 * 512, `${historyBytes} bytes of history, at most 512 per entry`)
  t.comment(`left: ${keys.length} keys, ${bytes} bytes, and ${historyBytes} bytes of history`)
})

redisTest(t, 'over HTTP: an account vouching for ever new device models leaves at most anomalies.maxKnownPerUser markers', async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const MAX_KNOWN = 20
  const h = await build(t, { store: redisStore({ connection: REDIS_URL, prefix }), maxSessionsPerUser: LIMIT, anomalies: { maxKnownPerUser: MAX_KNOWN } })
  for (let n = 0; n < 200; n++) {
    const headers = { 'user-agent': ANDROID, 'sec-ch-ua-mobile': '?1', 'sec-ch-ua-platform': '"Android"', 'sec-ch-ua-model': `"Model ${n}"` }
    const login = await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' }, headers })
    t.equal(login.statusCode, 200)
    t.equal(await h.app.sessions.trustDevice(login.json().sessionId), true)
    h.clock.advance(100)
  }
  const markers = await admin.keys(`${prefix}c:anomaly:device:*`)
  // The first login's own device, and the ones vouched for up to the cap.
  t.equal(markers.length, MAX_KNOWN + 1, `${markers.length} device markers after 200 models vouched for`)
})

leftNoKeys(t)
