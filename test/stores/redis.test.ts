import { Redis } from 'ioredis'
import t from 'tap'
import { CLOCK_SKEW_ALLOWANCE_MS, type SessionRecord } from '../../lib/session.js'
import type { HistoryRecord } from '../../lib/stores/store.js'
import { sessionDecoder } from '../../lib/stores/redis/codec.js'
import { SessionCommands } from '../../lib/stores/redis/commands.js'
import { Connection } from '../../lib/stores/redis/connection.js'
import { redisStore, RedisStore } from '../../lib/stores/redis/index.js'
import { ioredis } from '../../lib/stores/redis/ioredis.js'
import { KeyLayout } from '../../lib/stores/redis/keys.js'
import { EPOCH, MINUTE, TestClock } from '../helper.js'
import { deleteKeys, freePort, leftNoKeys, REDIS_URL, redisTest, statsKeys, storeFor, testClient, uniquePrefix, waitFor } from './redis-helper.js'

const admin = testClient()
t.teardown(() => admin.disconnect())
const LIMIT = { max: 3, onLimit: 'evict-oldest' } as const

function record (overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id: 'session-1',
    userId: 'alice',
    fingerprintHash: 'fp',
    createdAt: EPOCH,
    lastSeenAt: EPOCH,
    idleExpiresAt: EPOCH + 30 * MINUTE,
    absoluteExpiresAt: EPOCH + 120 * MINUTE,
    remembered: false,
    ...overrides
  }
}

t.test('options are checked when the store is made, as strictly as the plugin\'s', async (t) => {
  const client = new Redis({ lazyConnect: true })
  const bad: Array<[Parameters<typeof redisStore>[0], RegExp]> = [
    [{}, /"redisStore": give exactly one of "client", "connection" or "cluster"/],
    [{ client, connection: REDIS_URL }, /exactly one of/],
    [{ client, prefix: 'a{b' }, /"redisStore.prefix": must be a string without/],
    [{ client, prefix: 3 as unknown as string }, /"redisStore.prefix"/],
    [{ client, commandTimeoutMs: 0 }, /"redisStore.commandTimeoutMs": must be a positive number/],
    [{ client, commandTimeoutMs: Number.NaN }, /"redisStore.commandTimeoutMs"/],
    [{ client, closeClient: 'yes' as unknown as boolean }, /"redisStore.closeClient": must be a boolean/],
    [{ client, localCache: 'yes' as unknown as boolean }, /"redisStore.localCache": must be a boolean or/],
    [{ client, localCache: null as unknown as boolean }, /"redisStore.localCache": must be an object/],
    [{ client, localCache: { max: 0 } }, /"redisStore.localCache.max": must be a positive integer/],
    [{ client, localCache: { max: 1.5 } }, /"redisStore.localCache.max"/],
    [{ client, localCache: { ttlMs: -1 } }, /"redisStore.localCache.ttlMs": must be a positive number/],
    [{ client, localCache: { ttlMs: Number.POSITIVE_INFINITY } }, /"redisStore.localCache.ttlMs"/],
    [{ client, statsShards: 0 }, /"redisStore.statsShards": must be a whole number from 1 to 256, got 0/],
    [{ client, statsShards: '4' as unknown as number }, /"redisStore.statsShards": must be a whole number from 1 to 256, got "4"$/],
    [{ connection: 'not a url' }, /"redisStore.connection": must be a redis:\/\/ or rediss:\/\/ URL, a Unix socket path, or ioredis options$/],
    [{ connection: 'http://user:secret@127.0.0.1:6379' }, /^(?:(?!secret).)*$/],
    [{ connection: 42 as unknown as string }, /"redisStore.connection"/],
    [{ connection: null as unknown as string }, /"redisStore.connection"/],
    [{ client, statsShards: 257 }, /"redisStore.statsShards"/],
    [{ client, statsShards: 2.5 }, /"redisStore.statsShards"/],
    // Misspelt names, at every level, are refused rather than silently left at their defaults.
    [{ client, localcache: true } as Parameters<typeof redisStore>[0], /"redisStore.localcache": is not an option of redisStore\(\)$/],
    [{ client, localCache: { maxSize: 10 } } as Parameters<typeof redisStore>[0], /"redisStore.localCache.maxSize": is not an option/],
    [{ cluster: { nodes: [], option: {} } } as Parameters<typeof redisStore>[0], /"redisStore.cluster.option": is not an option/],
    [{ cluster: 'redis://x' } as unknown as Parameters<typeof redisStore>[0], /"redisStore.cluster": must be an object/]
  ]
  for (const [options, message] of bad) {
    t.throws(() => redisStore(options), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message }, String(message))
  }
  t.ok(redisStore({ client, localCache: { max: 10, ttlMs: 100 } }) instanceof RedisStore)
  t.ok(redisStore({ client, closeClient: false, localCache: false, prefix: 'p:', commandTimeoutMs: 5 }) instanceof RedisStore)
  t.ok(redisStore({ cluster: { nodes: [] } }) instanceof RedisStore)
  for (const connection of ['redis://127.0.0.1:6379/2', 'rediss://user:pass@redis.example:6380', '/run/redis/redis.sock', { host: '127.0.0.1' }]) {
    t.ok(redisStore({ connection }) instanceof RedisStore, `connection ${JSON.stringify(connection)}`)
  }
  t.ok(redisStore({ client, statsShards: 1 }) instanceof RedisStore)
  t.ok(redisStore({ client, statsShards: 256 }) instanceof RedisStore)
})

t.test('ioredis is loaded only for a client the store makes, and its absence is a coded option error', async (t) => {
  t.equal(ioredis('redisStore.connection').Redis, Redis, 'installed: the module itself')
  const missing = (id: string): never => { throw Object.assign(new Error(`Cannot find module '${id}'`), { code: 'MODULE_NOT_FOUND' }) }
  t.throws(() => ioredis('redisStore.cluster', missing), {
    code: 'FST_SESSION_GUARD_INVALID_OPTION',
    message: /^Invalid option "redisStore\.cluster": needs the ioredis package, an optional peer dependency of fastify-session-guard: npm i ioredis \(or pass a client of your own as "client"\)$/
  })
  const inside = (): never => { throw Object.assign(new Error("Cannot find module 'denque'"), { code: 'MODULE_NOT_FOUND' }) }
  t.throws(() => ioredis('redisStore.connection', inside), { message: "Cannot find module 'denque'" }, 'a module missing inside ioredis is a broken install, told as it is')
  const broken = (): never => { throw new SyntaxError('Unexpected token') }
  t.throws(() => ioredis('redisStore.connection', broken), SyntaxError, 'and so is any other failure')
})

t.test('a store that was never opened says so', async (t) => {
  const store = redisStore({ connection: REDIS_URL })
  t.equal(store.client, undefined)
  await t.rejects(store.get('x', EPOCH), /open\(\) was not called/)
  await store.close()
})

redisTest(t, 'session ids must be base64url: they become parts of keys', async (t) => {
  const store = storeFor(t, { connection: REDIS_URL })
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  for (const id of ['', 'a}b', 'a{b', 'has space', 'x'.repeat(129)]) {
    await t.rejects(store.create(record({ id }), LIMIT, EPOCH), { name: 'TypeError' }, `create ${JSON.stringify(id)}`)
    await t.rejects(store.replace('session-1', record({ id }), EPOCH), { name: 'TypeError' }, `replace ${JSON.stringify(id)}`)
  }
})

redisTest(t, 'a client made from options is the store\'s: opened once, closed with it', async (t) => {
  const store = redisStore({ connection: { host: '127.0.0.1', port: Number(new URL(REDIS_URL).port || 6379) }, prefix: uniquePrefix() })
  const context = { now: () => EPOCH, onRemoved: () => {} }
  await store.open(context)
  const client = store.client as Redis
  t.equal(client.status, 'ready', 'open() waited for the connection')
  t.match(client.options, { enableOfflineQueue: false, enableAutoPipelining: true, maxRetriesPerRequest: 1 }, 'with the store\'s defaults: fail fast, and one write per event-loop turn')
  await store.open(context)
  t.equal(store.client, client, 'a second open() keeps it')
  await store.close()
  await waitFor(() => client.status === 'end', 1000, 'the connection to end')
  t.pass('closed with the store')
})

redisTest(t, 'the app\'s client is never closed, unless asked', async (t) => {
  for (const closeClient of [undefined, false, true]) {
    const client = testClient()
    t.teardown(() => client.disconnect())
    await client.ping()
    const store = redisStore({ client, closeClient, localCache: true, prefix: uniquePrefix() })
    await store.open({ now: () => EPOCH, onRemoved: () => {} })
    t.equal(store.client, client)
    await store.close()
    if (closeClient === true) await waitFor(() => client.status === 'end', 1000, 'the connection to end')
    t.equal(client.status, closeClient === true ? 'end' : 'ready', `closeClient: ${String(closeClient)}`)
  }
})

redisTest(t, 'every key has a TTL: the time left until its session can no longer be used, and the clock-skew allowance', async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const store = storeFor(t, { connection: REDIS_URL, prefix })
  const clock = new TestClock()
  await store.open({ now: clock.read, onRemoved: () => {} })
  const session = record({ idleExpiresAt: EPOCH + 10 * MINUTE, absoluteExpiresAt: EPOCH + 60 * MINUTE })
  await store.create(session, LIMIT, clock.now)
  const ttl = async (key: string): Promise<number> => await admin.pttl(key)
  const near = (actual: number, expected: number, what: string): void => {
    const allowed = expected + CLOCK_SKEW_ALLOWANCE_MS
    t.ok(actual <= allowed && actual > allowed - 5000, `${what}: ${actual} ms, expected about ${allowed}`)
  }
  near(await ttl(`${prefix}{u:alice}:r:session-1`), 10 * MINUTE, 'session: until the idle deadline')
  near(await ttl(`${prefix}{u:alice}:i`), 10 * MINUTE, 'index: until its latest session ends')
  near(await ttl(`${prefix}id:{session-1}`), 60 * MINUTE, 'lookup: until the absolute deadline')
  const stats = statsKeys(prefix, 'alice')
  near(await ttl(stats.sessions), 10 * MINUTE, 'stats: until their latest deadline')
  near(await ttl(stats.users), 10 * MINUTE, 'stats: until their latest deadline')

  clock.advance(5 * MINUTE)
  await store.touch(session.id, { lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE }, clock.now)
  near(await ttl(`${prefix}{u:alice}:r:session-1`), 30 * MINUTE, 'a touch extends the session')
  near(await ttl(`${prefix}{u:alice}:i`), 30 * MINUTE, 'and its index')
  clock.advance(25 * MINUTE)
  await store.touch(session.id, { lastSeenAt: clock.now, idleExpiresAt: clock.now + 60 * MINUTE }, clock.now)
  near(await ttl(`${prefix}{u:alice}:r:session-1`), 30 * MINUTE, 'never past the absolute deadline')

  const keys = await admin.keys(`${prefix}*`)
  t.strictSame(keys.sort(), [
    ...['id:{session-1}', '{u:alice}:i', '{u:alice}:r:session-1', '{u:alice}:v'].map((key) => prefix + key),
    stats.hist, stats.sessions, stats.sized, stats.sizes, stats.users
  ].sort())
  for (const key of keys) t.ok(await ttl(key) > 0, `${key} expires`)
  near(await ttl(stats.hist), 30 * MINUTE, 'the histogram: until its latest user\'s deadline')
  near(await ttl(`${prefix}{u:alice}:v`), 30 * MINUTE + 24 * 60 * MINUTE - CLOCK_SKEW_ALLOWANCE_MS, 'the size version: a day past its latest deadline')
  await store.revoke(session.id, clock.now)
  t.strictSame((await admin.keys(`${prefix}*`)).sort(), [stats.removed, stats.sized, stats.sizes, `${prefix}{u:alice}:v`].sort(),
    'a revoke leaves the tombstone and the marker for the stats, and the size version')
  near(await ttl(stats.removed), MINUTE - CLOCK_SKEW_ALLOWANCE_MS, 'the tombstone: a minute, whatever the session\'s deadline')
  t.ok(await ttl(stats.sizes) >= MINUTE - 5000, 'the marker of a user with none left: at least a minute (a TTL is never shortened)')

  await store.increment('attempts', 2 * MINUTE, clock.now)
  near(await ttl(`${prefix}c:attempts`), 2 * MINUTE, 'a counter: its window')
  clock.advance(MINUTE)
  await store.increment('attempts', 5 * MINUTE, clock.now)
  near(await ttl(`${prefix}c:attempts`), 5 * MINUTE, 'from its last event')
})

redisTest(t, 'a session is one string, read back whole; one an earlier version kept as a hash, long texts in pieces, reads the same until a write moves it', async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const store = storeFor(t, { connection: REDIS_URL, prefix })
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  const userAgent = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 é€😀 (KHTML, like Gecko) Version/17.4 Safari/605.1.15 '.repeat(2)
  const device = {
    type: 'desktop',
    name: 'Safari on macOS — a name long enough to have needed a piece of its own',
    browser: { name: 'Safari', version: '17.4.1' },
    os: { name: 'macOS', version: '10.15.7' },
    model: 'Macintosh'
  } as const
  const location = { country: 'FR', city: 'Saint-Rémy-de-Provence, Bouches-du-Rhône, Provence-Alpes-Côte d’Azur', latitude: 43.79, longitude: 4.83 }
  const session = record({
    userId: 'ü'.repeat(20),
    claims: { role: 'member', team: 'équipe-1', path: 'a/b\\c"d' },
    device,
    userAgent,
    ip: '2001:db8:1234:5678:9abc:def0:1234:5678',
    location
  })
  const key = `${prefix}{u:${session.userId}}:r:${session.id}`
  t.equal((await store.create(session, LIMIT, EPOCH)).created, true)
  t.equal(await admin.type(key), 'string')
  t.equal(await admin.exists(`${prefix}{u:${session.userId}}:s:${session.id}`), 0, 'no hash')
  t.strictSame(await store.get(session.id, EPOCH), session, 'read back whole')
  t.strictSame(await store.listUser(session.userId, EPOCH), [session], 'by the listing too')

  // The device type is read from the record where the limit is decided (in the script).
  const typed = { max: 5, onLimit: 'reject', deviceType: { type: 'desktop', max: 1, onLimit: 'reject' } } as const
  const refused = await store.create(record({ id: 'session-2', userId: session.userId, device }), typed, EPOCH)
  t.match(refused, { created: false, deviceType: 'desktop' }, 'the session counts as a desktop')

  // A change rewrites the record: a field changed to undefined is gone, the others stay as they were, byte for byte.
  const short = { type: 'bot', name: 'curl', browser: { name: 'curl', version: '8' }, os: { name: undefined, version: undefined }, model: undefined } as const
  const touched = await store.touch(session.id, { lastSeenAt: EPOCH + 1, idleExpiresAt: EPOCH + MINUTE, changes: { userAgent: 'curl/8', device: short, location: undefined } }, EPOCH + 1)
  t.match(touched, { userAgent: 'curl/8', device: { name: 'curl' } })
  const { location: _, ...rest } = session
  t.strictSame(await store.get(session.id, EPOCH + 1), { ...rest, lastSeenAt: EPOCH + 1, idleExpiresAt: EPOCH + MINUTE, userAgent: 'curl/8', device: short })
  const stored = JSON.parse(await admin.get(key) as string) as Record<string, string>
  t.notOk('o' in stored, 'no location field left')
  t.equal(stored.m, JSON.stringify(session.claims), 'the claims as the store wrote them')
  t.notOk('d' in stored || 'u' in stored, 'the id and the user id are in its key, not in it')

  // A session an earlier version wrote: a hash at ':s:', a text over 64 bytes in pieces of at most 64 bytes.
  const old = record({ id: 'session-3', userId: 'bob', claims: { role: 'member' }, userAgent, device, location, ip: '192.0.2.1' })
  const legacy = `${prefix}{u:bob}:s:session-3`
  const pieces = (field: string, text: string): string[] => {
    const bytes = Buffer.from(text)
    const out: string[] = []
    for (let at = 0, n = 1; at < bytes.length; n++) {
      let end = Math.min(at + 64, bytes.length)
      // A piece ends between two characters.
      while (end < bytes.length && ((bytes[end] as number) & 0xc0) === 0x80) end--
      out.push(`${field}${n}`, bytes.subarray(at, end).toString())
      at = end
    }
    return out
  }
  await admin.hset(legacy,
    'd', old.id, 'u', old.userId, 'f', old.fingerprintHash, 'c', String(old.createdAt), 'l', String(old.lastSeenAt),
    'i', String(old.idleExpiresAt), 'a', String(old.absoluteExpiresAt), 'r', '0', 'm', JSON.stringify(old.claims), 'p', '192.0.2.1',
    ...pieces('g', userAgent), ...pieces('v', JSON.stringify(device)), ...pieces('o', JSON.stringify(location)))
  await admin.pexpire(legacy, 30 * MINUTE)
  await admin.zadd(`${prefix}{u:bob}:i`, String(EPOCH + 30 * MINUTE), 'session-3')
  await admin.set(`${prefix}id:{session-3}`, 'bob', 'PX', 120 * MINUTE)
  t.strictSame(await store.get('session-3', EPOCH), old, 'read whole, its pieces joined')
  t.strictSame(await store.listUser('bob', EPOCH), [old], 'by the listing too')
  t.match(await store.create(record({ id: 'session-4', userId: 'bob', device }), typed, EPOCH), { created: false, deviceType: 'desktop' },
    'its pieced device counts as a desktop')
  const scanned = []
  for await (const batch of store.scan(10, EPOCH)) scanned.push(...batch)
  t.strictSame(scanned.filter((s) => s.userId === 'bob'), [old], 'and by a scan')

  // Its first write moves it: a string at ':r:' with its TTL, the hash gone.
  t.match(await store.touch('session-3', { lastSeenAt: EPOCH + 2, idleExpiresAt: EPOCH + 40 * MINUTE }, EPOCH + 2), { userAgent, device, location })
  t.equal(await admin.exists(legacy), 0, 'the hash is gone')
  t.equal(await admin.type(`${prefix}{u:bob}:r:session-3`), 'string')
  t.ok(await admin.pttl(`${prefix}{u:bob}:r:session-3`) > 40 * MINUTE - 5000, 'with its TTL')
  t.strictSame(await store.get('session-3', EPOCH + 2), { ...old, lastSeenAt: EPOCH + 2, idleExpiresAt: EPOCH + 40 * MINUTE })

  // A whole value comes before any piece; a revoke deletes the hash.
  await admin.hset(`${prefix}{u:bob}:s:session-5`,
    'd', 'session-5', 'u', 'bob', 'f', 'fp', 'c', String(EPOCH), 'l', String(EPOCH), 'i', String(EPOCH + 30 * MINUTE), 'a', String(EPOCH + 120 * MINUTE), 'r', '0',
    'g', 'whole', 'g1', 'piece')
  await admin.zadd(`${prefix}{u:bob}:i`, String(EPOCH + 30 * MINUTE), 'session-5')
  await admin.set(`${prefix}id:{session-5}`, 'bob')
  t.equal((await store.get('session-5', EPOCH))?.userAgent, 'whole')
  t.match(await store.revoke('session-5', EPOCH), { id: 'session-5', userAgent: 'whole' })
  t.equal(await admin.exists(`${prefix}{u:bob}:s:session-5`), 0, 'revoked: the hash is gone')
})

redisTest(t, 'an import over a copy past its deadline (still held, within the clock-skew allowance) leaves nothing of it', async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const store = storeFor(t, { connection: REDIS_URL, prefix })
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  const held = record({ idleExpiresAt: EPOCH + MINUTE, userAgent: 'h'.repeat(300), claims: { role: 'held' } })
  await store.create(held, LIMIT, EPOCH)
  const now = EPOCH + MINUTE + 1
  const incoming = record({ idleExpiresAt: now + 30 * MINUTE, userAgent: 'short', refresh: { hash: 'r'.repeat(43), rotatedAt: now, rotations: 3 } })
  t.match(await store.importSessions([incoming], now), { imported: 1 })
  t.strictSame(await store.get('session-1', now), incoming, 'the copy as imported: no claims, no long agent of the one it replaced')
  t.notOk('m' in (JSON.parse(await admin.get(`${prefix}{u:alice}:r:session-1`) as string) as object), 'no claims field left')
})

t.test('with a Cluster client that may answer reads from replicas, a session is read only through the script, on the master', async (t) => {
  let reads = 0
  const attached = (isCluster: boolean, scaleReads: unknown): Connection => {
    const client = { isCluster, options: { scaleReads }, defineCommand () {}, on () {}, off () {}, get: async () => { reads++; return null } }
    const connection = new Connection({ client: client as never }, 1000, undefined)
    connection.attach({}, undefined)
    return connection
  }
  const cases: Array<[boolean, unknown, boolean]> = [[true, 'slave', true], [true, 'all', true], [true, () => 'a node', true], [true, 'master', false], [true, undefined, false], [false, 'slave', false]]
  for (const [isCluster, scaleReads, replicas] of cases) {
    t.equal(attached(isCluster, scaleReads).readsMayReachReplicas, replicas, `${isCluster ? 'Cluster' : 'standalone'}, scaleReads ${String(scaleReads)}`)
  }
  const commands = new SessionCommands(attached(true, 'slave'), new KeyLayout('p:', 1), sessionDecoder())
  t.equal(await commands.readLive('alice', 'session-1', EPOCH), undefined, 'no plain read: the caller runs the script')
  t.equal(reads, 0)
})

redisTest(t, 'through a client that may read from replicas, a live session is still read: by the script, and kept in the local cache', async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const client = testClient()
  t.teardown(() => client.disconnect())
  // A standalone client that says what a Cluster client with scaleReads: 'slave' says; every command still goes to the one server.
  const replicaReading = new Proxy(client, {
    get (target, name) {
      if (name === 'isCluster') return true
      if (name === 'options') return { ...target.options, scaleReads: 'slave' }
      const value = Reflect.get(target, name)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  const store = storeFor(t, { client: replicaReading, prefix })
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  await store.create(record(), LIMIT, EPOCH)
  t.match(await store.get('session-1', EPOCH), { id: 'session-1' })
  t.equal(await store.get('session-1', EPOCH + 31 * MINUTE), undefined, 'and refused past its deadline')
})

redisTest(t, 'a session is read from its own fields only: a polluted Object.prototype neither brings a revoked session back nor adds to a live one', async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const store = storeFor(t, { connection: REDIS_URL, prefix })
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  await store.create(record(), LIMIT, EPOCH)
  await store.revoke('session-1', EPOCH)
  const live = record({ id: 'session-2' })
  await store.create(live, LIMIT, EPOCH)
  // A session of the layout before, a hash (see the test above), read through scan().
  await admin.hset(`${prefix}{u:bob}:s:session-3`, 'd', 'session-3', 'u', 'bob', 'f', 'fp', 'c', String(EPOCH), 'l', String(EPOCH),
    'i', String(EPOCH + 30 * MINUTE), 'a', String(EPOCH + 120 * MINUTE), 'r', '0')
  // What prototype pollution elsewhere in an app could plant: every field a live session needs, and claims, a refresh state and a user agent.
  const planted = Object.entries({
    d: 'session-1',
    u: 'alice',
    f: 'fp',
    c: String(EPOCH),
    l: String(EPOCH),
    i: String(EPOCH + 30 * MINUTE),
    a: String(EPOCH + 120 * MINUTE),
    r: '0',
    m: '{"role":"admin"}',
    h: 'planted',
    t: String(EPOCH),
    k: '0',
    g: 'planted'
  })
  const prototype = Object.prototype as unknown as Record<string, string>
  for (const [name, value] of planted) prototype[name] = value
  try {
    t.equal(await store.get('session-1', EPOCH), undefined, 'still revoked')
    t.strictSame(await store.get('session-2', EPOCH), live, 'no planted claims, refresh state or user agent')
    const scanned = []
    for await (const batch of store.scan(10, EPOCH)) scanned.push(...batch)
    t.strictSame(scanned.find((s) => s.id === 'session-3'), record({ id: 'session-3', userId: 'bob' }), 'nor on a hash of the layout before')
  } finally {
    for (const [name] of planted) Reflect.deleteProperty(prototype, name)
  }
})

redisTest(t, 'the login history is a list, a few hundred bytes a user; one an earlier version kept as a stream becomes a list, ids and TTL kept', async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const store = storeFor(t, { connection: REDIS_URL, prefix })
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  const retention = { maxEntries: 5, maxAgeMs: 60 * MINUTE }
  const entry = (n: number): HistoryRecord => ({ type: 'session.created', time: EPOCH + n, sessionId: `s${n}`, device: { type: 'desktop', name: 'Firefox on Windows' }, ip: '203.0.113.0', detail: { n } })
  for (let n = 0; n < 3; n++) await store.appendHistory('alice', entry(n), retention, EPOCH)
  const key = `${prefix}{u:alice}:h`
  t.equal(await admin.type(key), 'list')
  const bytes = await admin.memory('USAGE', key) as number
  t.ok(bytes < 1000, `three entries in ${bytes} bytes (a stream took 4,784)`)
  t.strictSame((await store.history('alice', { limit: 10 }, retention, EPOCH)).map((e) => e.id), [`${EPOCH}-2`, `${EPOCH}-1`, `${EPOCH}-0`], 'ids as a stream gave them: ms, then a sequence')

  // As an earlier version wrote it: XADD <ms>-* with the record in field e, and a TTL.
  const old = `${prefix}{u:bob}:h`
  for (const n of [0, 1, 2]) await admin.xadd(old, `${EPOCH + n * 1000}-*`, 'e', JSON.stringify(entry(n)))
  await admin.xadd(old, `${EPOCH + 2000}-*`, 'e', JSON.stringify(entry(3)))
  await admin.pexpire(old, 30 * MINUTE)
  const read = await store.history('bob', { limit: 2 }, retention, EPOCH + 2000)
  t.strictSame(read.map((e) => e.id), [`${EPOCH + 2000}-1`, `${EPOCH + 2000}-0`], 'read newest first with the stream\'s own ids')
  t.strictSame(read[0], { ...entry(3), id: `${EPOCH + 2000}-1` }, 'each record whole')
  t.equal(await admin.type(old), 'list', 'and made a list')
  t.ok(await admin.pttl(old) > 29 * MINUTE, 'its TTL kept')
  t.strictSame((await store.history('bob', { limit: 10, before: read[1]?.id }, retention, EPOCH + 2000)).map((e) => e.detail?.n), [1, 0],
    'a cursor the stream gave still pages on')
  await store.appendHistory('bob', entry(4), retention, EPOCH + 2000)
  t.strictSame((await store.history('bob', { limit: 10 }, retention, EPOCH + 2000)).map((e) => e.id),
    [`${EPOCH + 2000}-2`, `${EPOCH + 2000}-1`, `${EPOCH + 2000}-0`, `${EPOCH + 1000}-0`, `${EPOCH}-0`], 'an append goes on from the newest id')

  const appended = `${prefix}{u:carol}:h`
  await admin.xadd(appended, `${EPOCH}-*`, 'e', JSON.stringify(entry(0)))
  await store.appendHistory('carol', entry(1), retention, EPOCH + 1)
  t.strictSame((await store.history('carol', { limit: 10 }, retention, EPOCH + 1)).map((e) => e.id), [`${EPOCH + 1}-0`, `${EPOCH}-0`], 'an append meets a stream first too')
  await admin.xadd(`${prefix}{u:dave}:h`, `${EPOCH}-*`, 'e', JSON.stringify(entry(0)))
  await admin.xdel(`${prefix}{u:dave}:h`, `${EPOCH}-0`)
  t.strictSame(await store.history('dave', { limit: 10 }, retention, EPOCH), [], 'an empty stream reads as no history')
})

redisTest(t, 'reading a live session is one GET, no script; a session gone or past a deadline goes through the script that cleans up', async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const store = storeFor(t, { connection: REDIS_URL, prefix })
  const removed: string[] = []
  await store.open({ now: () => EPOCH, onRemoved: (session) => removed.push(session.id) })
  await store.create(record(), LIMIT, EPOCH)
  // Every command of this store's keys, as Redis runs them (MONITOR: other tests' commands are left out by the prefix).
  const monitor = await admin.monitor()
  t.teardown(() => monitor.disconnect())
  const seen: string[] = []
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (args.some((arg) => arg.startsWith(prefix))) seen.push(args[0]?.toLowerCase() as string)
  })
  const read = async (now: number): Promise<string[]> => {
    seen.length = 0
    const session = await store.get('session-1', now)
    await admin.ping()
    await new Promise((resolve) => setTimeout(resolve, 50))
    return [session === undefined ? 'none' : 'live', ...seen]
  }
  t.strictSame(await read(EPOCH + MINUTE), ['live', 'get'], 'live: one GET')
  // MONITOR shows a script (EVAL the first time, EVALSHA after) and then the commands it runs.
  const script = (commands: string[]): string => commands.slice(0, 3).join().replace('evalsha', 'eval')
  t.equal(script(await read(EPOCH + 30 * MINUTE)), 'none,get,eval', 'past its idle deadline: the script decides')
  t.strictSame(removed, [], 'refused, not removed: another instance\'s clock may still call it live')
  t.equal(script(await read(EPOCH + 30 * MINUTE + CLOCK_SKEW_ALLOWANCE_MS)), 'none,get,eval', 'past the allowance too')
  t.strictSame(removed, ['session-1'], 'and the script removed it, once')
})

redisTest(t, 'a message the store cannot read on its channel drops the whole cache', async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const store = storeFor(t, { connection: REDIS_URL, prefix, localCache: true })
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  await waitFor(async () => (await admin.pubsub('NUMSUB', `${prefix}invalidate`) as [string, number])[1] === 1, 2000, 'the subscriber')
  for (const message of ['not json', '{"id":"session-1"}']) {
    await store.create(record(), LIMIT, EPOCH)
    t.ok(await store.get('session-1', EPOCH), 'cached')
    await admin.del(`${prefix}{u:alice}:r:session-1`)
    t.ok(await store.get('session-1', EPOCH), 'served from the cache')
    await admin.publish(`${prefix}invalidate`, message)
    await waitFor(async () => await store.get('session-1', EPOCH) === undefined, 1000, `the cache to drop on ${message}`)
    t.pass(`dropped on ${JSON.stringify(message)}`)
  }
})

t.test('with nothing listening, every call fails fast and nothing hangs', async (t) => {
  const port = await freePort()
  const timeoutMs = 200
  const store = redisStore({ connection: `redis://127.0.0.1:${port}`, commandTimeoutMs: timeoutMs, localCache: true })
  let started = performance.now()
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  t.ok(performance.now() - started < timeoutMs + 250, 'open() gives up waiting')
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['create', async () => await store.create(record(), LIMIT, EPOCH)],
    ['get', async () => await store.get('session-1', EPOCH)],
    ['listUser', async () => await store.listUser('alice', EPOCH)],
    ['revokeUser', async () => await store.revokeUser('alice', undefined, EPOCH)],
    ['stats', async () => await store.stats(EPOCH)]
  ]
  for (const [name, call] of calls) {
    started = performance.now()
    await t.rejects(call(), `${name} rejects`)
    t.ok(performance.now() - started < timeoutMs + 100, `${name} within the bound`)
  }
  await store.close()
})

t.test('the app\'s client with an unbounded offline queue still cannot hang a call', async (t) => {
  const port = await freePort()
  // What an app might configure: queue forever, retry forever, no command timeout.
  const client = new Redis({ port, host: '127.0.0.1', enableOfflineQueue: true, maxRetriesPerRequest: null, retryStrategy: () => 50 })
  client.on('error', () => {})
  t.teardown(() => client.disconnect())
  const store = redisStore({ client, commandTimeoutMs: 200 })
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  const started = performance.now()
  // Bounded by the command timeout; the error says why rather than only that it timed out.
  await t.rejects(store.get('session-1', EPOCH), { message: `redisStore: cannot connect to Redis at 127.0.0.1:${port} (ECONNREFUSED)` })
  t.ok(performance.now() - started < 400)
  await store.close()
  t.not(client.status, 'end', 'still the app\'s to close')
})

redisTest(t, 'a user\'s size reaches the histogram in version order, whatever order the follow-ups arrive in', async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const store = storeFor(t, { connection: REDIS_URL, prefix })
  const clock = new TestClock()
  await store.open({ now: clock.read, onRemoved: () => {} })
  await store.create(record({ id: 'one' }), LIMIT, clock.now)
  await store.create(record({ id: 'two' }), LIMIT, clock.now)
  t.strictSame((await store.stats(clock.now)).sessionsPerUser, { 2: 1 })
  const keys = Object.values(statsKeys(prefix, 'alice'))
  const account = (store.client as unknown as Record<string, (...args: Array<string | number>) => Promise<unknown>>).sessionGuardAccount!
  // The follow-up of the first create (size 1, version 1) arriving after the second's.
  await account.call(store.client, ...keys, clock.now, 'alice', clock.now + MINUTE, 1, 1)
  t.strictSame((await store.stats(clock.now)).sessionsPerUser, { 2: 1 }, 'an older version is ignored')
  await account.call(store.client, ...keys, clock.now, 'alice', clock.now + MINUTE, 3, 9)
  t.strictSame((await store.stats(clock.now)).sessionsPerUser, { 3: 1 }, 'a newer one applies')
  t.equal(await admin.get(`${prefix}{u:alice}:v`), '2', 'the version the scripts keep')
})

redisTest(t, 'scan skips keys that look like sessions but are not', async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const store = storeFor(t, { connection: REDIS_URL, prefix })
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  const session = record({ id: 'real' })
  await store.create(session, LIMIT, EPOCH)
  // A user id holding ':r:' or ':s:' makes keys the patterns match: its index (a sorted set, filtered by type) and
  // its size version (a string holding a number).
  await store.create(record({ id: 'odd', userId: 'x}:r:y' }), LIMIT, EPOCH)
  await store.create(record({ id: 'odder', userId: 'x}:s:y' }), LIMIT, EPOCH)
  await admin.hset(`${prefix}{u:z}:s:stray`, 'other', 'field')
  for (const [name, value] of [['text', 'not json'], ['null', 'null'], ['number', '1'], ['partial', JSON.stringify({ f: 'fp', c: String(EPOCH) })]]) {
    await admin.set(`${prefix}{u:z}:r:${name as string}`, value as string)
  }
  const scanned = []
  for await (const batch of store.scan(1, EPOCH)) scanned.push(...batch)
  t.strictSame(scanned.map((s) => [s.userId, s.id]).sort(), [['alice', 'real'], ['x}:r:y', 'odd'], ['x}:s:y', 'odder']],
    'each once, its user id and id read off its key: what is not a record is skipped')
})

redisTest(t, 'an instance 31 minutes ahead that reads a session does not end it for an instance on time', async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const onTime = storeFor(t, { connection: REDIS_URL, prefix })
  const ahead = storeFor(t, { connection: REDIS_URL, prefix, localCache: true })
  await onTime.open({ now: () => EPOCH, onRemoved: () => {} })
  const removedAhead: string[] = []
  await ahead.open({ now: () => EPOCH + 31 * MINUTE, onRemoved: (session) => removedAhead.push(session.id) })
  const session = record({ idleExpiresAt: EPOCH + 30 * MINUTE, absoluteExpiresAt: EPOCH + 12 * 60 * MINUTE })
  await onTime.create(session, LIMIT, EPOCH)
  t.equal(await ahead.get(session.id, EPOCH + 31 * MINUTE), undefined, 'refused by the instance ahead')
  t.strictSame(await ahead.listUser('alice', EPOCH + 31 * MINUTE), [])
  t.strictSame(removedAhead, [], 'which removed nothing')
  t.strictSame(await onTime.get(session.id, EPOCH), session, 'still live for the instance on time')
  t.equal((await onTime.stats(EPOCH)).sessions, 1, 'and still counted')
  t.ok(await admin.pttl(`${prefix}{u:alice}:r:${session.id}`) > 30 * MINUTE, 'its key outlives the deadline by the allowance')
})

redisTest(t, 'a later now never shortens a TTL: the index outlives its members whatever clock touched it last', async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const store = storeFor(t, { connection: REDIS_URL, prefix })
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  const session = record({ idleExpiresAt: EPOCH + 10 * MINUTE, absoluteExpiresAt: EPOCH + 10 * MINUTE })
  await store.create(session, LIMIT, EPOCH)
  // An instance whose clock is ten minutes ahead (minus 1 ms) reads and lists the user.
  const ahead = EPOCH + 10 * MINUTE - 1
  t.ok(await store.get(session.id, ahead))
  t.same((await store.listUser('alice', ahead)).map((s) => s.id), [session.id])
  for (const key of [`${prefix}{u:alice}:i`, `${prefix}{u:alice}:r:session-1`, statsKeys(prefix, 'alice').sessions]) {
    t.ok(await admin.pttl(key) > 9 * MINUTE, `${key} kept its TTL`)
  }
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same((await store.listUser('alice', ahead)).map((s) => s.id), [session.id], 'still listed for real milliseconds later')
  t.same((await store.stats(ahead)).sessions, 1)
})

leftNoKeys(t)

redisTest(t, 'stats() sums its shards exactly, whatever their number; a user\'s bookkeeping stays in one shard', async (t) => {
  const users = Array.from({ length: 40 }, (_, n) => `user-${n}`)
  for (const statsShards of [1, 3, 32]) {
    const prefix = uniquePrefix()
    t.teardown(async () => await deleteKeys(admin, prefix))
    const store = storeFor(t, { connection: REDIS_URL, prefix, statsShards })
    await store.open({ now: () => EPOCH, onRemoved: () => {} })
    for (const [n, userId] of users.entries()) {
      // 1, 2 or 3 sessions each, then one of the threes logs out once.
      for (let k = 0; k <= n % 3; k++) await store.create(record({ id: `${userId}-${k}`, userId }), LIMIT, EPOCH)
    }
    await store.revoke('user-2-0', EPOCH)
    t.strictSame(await store.stats(EPOCH), {
      sessions: 14 * 1 + 13 * 2 + 13 * 3 - 1, users: 40, evictions: 0, expirations: 0, sessionsPerUser: { 1: 14, 2: 14, 3: 12 }
    }, `${statsShards} shard(s)`)
    const shards = new Set((await admin.keys(`${prefix}{stats:*}:sizes`)).map((key) => key.slice(prefix.length)))
    t.ok(statsShards === 1 ? shards.size === 1 : shards.size > statsShards / 3, `${shards.size} of ${statsShards} shard(s) hold users`)
  }
})
