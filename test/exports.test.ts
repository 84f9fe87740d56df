import { readFile } from 'node:fs/promises'
import { join, sep } from 'node:path'
import t from 'tap'
import * as errors from '../lib/errors.js'
import * as api from '../lib/index.js'
import * as session from '../lib/session.js'
import * as storeLimit from '../lib/stores/limit.js'

t.test('the public API: the plugin as default and named export, stores, errors and schemas', async (t) => {
  t.equal(typeof api.default, 'function')
  t.equal(typeof api.sessionGuard, 'function')
  t.equal((api.default as unknown as Record<symbol, unknown>)[Symbol.for('plugin-meta')] !== undefined, true, 'wrapped with fastify-plugin')
  t.equal(typeof api.memoryStore, 'function')
  t.ok(api.memoryStore() instanceof api.MemoryStore)
  t.notOk('redisStore' in api, 'the Redis store is fastify-session-guard/redis')
  t.notOk('postgresStore' in api, 'the PostgreSQL store is fastify-session-guard/postgres')
  t.equal(typeof api.toView, 'function')
  t.match(api.parseDevice({ 'user-agent': 'curl/8.5.0' }), { type: 'bot', name: 'curl' })
  t.match(api.createDeviceParser({ cacheSize: 2 }).parse({ 'user-agent': 'curl/8.5.0' }), { name: 'curl' })
  t.equal(api.sessionViewSchema.type, 'object')
  t.equal(api.sessionLimitResponseSchema.properties.sessions.items, api.sessionViewSchema)
  t.equal(api.sessionAnalyticsSchema.type, 'object')
  t.equal(api.sessionTimelineSchema.properties.points.type, 'array')
  t.equal(api.DURATION_BOUNDS_MS.at(-1), Infinity)
  const codes = Object.entries(errors).map(([name, ErrorClass]) => {
    t.equal((api as Record<string, unknown>)[name], ErrorClass, `${name} is exported`)
    return new ErrorClass('a', 'b').code
  }).sort()
  t.same(codes, [
    'FST_SESSION_GUARD_ALREADY_REGISTERED',
    'FST_SESSION_GUARD_ANOMALY',
    'FST_SESSION_GUARD_CSRF',
    'FST_SESSION_GUARD_HISTORY_OFF',
    'FST_SESSION_GUARD_INVALID_ALERT_ANSWER',
    'FST_SESSION_GUARD_INVALID_CLAIMS',
    'FST_SESSION_GUARD_INVALID_DPOP_PROOF',
    'FST_SESSION_GUARD_INVALID_HISTORY_QUERY',
    'FST_SESSION_GUARD_INVALID_OPTION',
    'FST_SESSION_GUARD_LOGIN_LOCKED',
    'FST_SESSION_GUARD_NO_SESSION',
    'FST_SESSION_GUARD_REFRESH_CONFLICT',
    'FST_SESSION_GUARD_SESSION_LIMIT',
    'FST_SESSION_GUARD_SESSION_NOT_FOUND',
    'FST_SESSION_GUARD_SNAPSHOT_INVALID',
    'FST_SESSION_GUARD_STEP_UP_REQUIRED',
    'FST_SESSION_GUARD_STORE_FULL',
    'FST_SESSION_GUARD_STORE_UNAVAILABLE',
    'FST_SESSION_GUARD_STORE_UNSUPPORTED',
    'FST_SESSION_GUARD_UNAUTHORIZED',
    'FST_SESSION_GUARD_UNCONFIRMED_SESSION',
    'FST_SESSION_GUARD_USE_DPOP_NONCE'
  ])
  const documented = await readFile(new URL('../docs/errors.md', `file://${__filename}`), 'utf8')
  for (const code of codes) t.match(documented, `| \`${code}\` |`, `${code} is in docs/errors.md`)
})

t.test('the pure rules a store implementation needs are exported from the main entry', async (t) => {
  for (const name of ['decideRotation', 'rotatedState', 'withActivity', 'expiresAt', 'isLive', 'supersedes', 'isRemovable', 'CLOCK_SKEW_ALLOWANCE_MS', 'CHALLENGE_FLAG', 'isChallenged', 'deviceTypeOf'] as const) {
    t.equal(api[name], session[name], `${name} is exported`)
  }
  t.equal(api.planCreate, storeLimit.planCreate, 'planCreate is exported')
  t.equal(api.deviceTypeOf({}), 'unknown', 'a session without a device counts as unknown')
  const state = { hash: 'h0', rotatedAt: 0, rotations: 0 }
  t.equal(api.decideRotation(state, 'h0', 1, 1000), 'rotate')
  t.strictSame(api.rotatedState(state, 'h0', 'h1', 5), { hash: 'h0', nextHash: 'h1', rotatedAt: 5, rotations: 1 })
  t.equal(api.isLive({ idleExpiresAt: 10, absoluteExpiresAt: 20 }, 9), true)
  t.equal(api.expiresAt({ idleExpiresAt: 30, absoluteExpiresAt: 20 }), 20)
  t.equal(api.isRemovable({ idleExpiresAt: 10, absoluteExpiresAt: 20 }, 10 + api.CLOCK_SKEW_ALLOWANCE_MS - 1), false, 'not within the allowance')
  t.equal(api.isRemovable({ idleExpiresAt: 10, absoluteExpiresAt: 20 }, 10 + api.CLOCK_SKEW_ALLOWANCE_MS), true)
})

t.test('the main entry never loads the store kit, the Redis or PostgreSQL store, or the geolocation helper', async (t) => {
  // This file imports the main entry and session.ts, never lib/testing/, lib/stores/redis/, lib/stores/postgres/, lib/geo/ or their dependencies.
  const loaded = Object.keys(require.cache)
  t.ok(loaded.includes(join(__dirname, '..', 'lib', 'index.ts')), 'require.cache holds the main entry')
  t.strictSame(loaded.filter((file) => file.includes(`${sep}lib${sep}testing${sep}`)), [], 'nothing from lib/testing')
  t.strictSame(loaded.filter((file) => file.includes(`${sep}node_modules${sep}fast-check${sep}`)), [], 'not fast-check')
  t.strictSame(loaded.filter((file) => file.includes(`${sep}lib${sep}stores${sep}redis${sep}`)), [], 'nothing from lib/stores/redis')
  t.strictSame(loaded.filter((file) => file.includes(`${sep}node_modules${sep}ioredis${sep}`)), [], 'not ioredis')
  t.strictSame(loaded.filter((file) => file.includes(`${sep}lib${sep}geo${sep}`)), [], 'nothing from lib/geo')
  t.strictSame(loaded.filter((file) => file.includes(`${sep}node_modules${sep}mmdb-lib${sep}`)), [], 'not mmdb-lib')
  t.strictSame(loaded.filter((file) => file.includes(`${sep}lib${sep}stores${sep}postgres${sep}`)), [], 'nothing from lib/stores/postgres')
  t.strictSame(loaded.filter((file) => file.includes(`${sep}node_modules${sep}pg${sep}`)), [], 'not pg')
})
