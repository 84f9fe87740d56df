import { Cluster, Redis } from 'ioredis'
import t from 'tap'
import { StoreUnavailableError } from '../../lib/errors.js'
import type { SessionRecord } from '../../lib/session.js'
import { FailClosedStore } from '../../lib/stores/fail-closed.js'
import { redisStore } from '../../lib/stores/redis/index.js'
import { EPOCH, MINUTE } from '../helper.js'
import { deleteKeys, leftNoKeys, REDIS_URL, redisTest, storeFor, testClient, uniquePrefix } from './redis-helper.js'

/**
 * The `durability` option without the replicas it asks for: the Redis of the
 * tests has none, so every write that must reach one fails, and the plugin
 * answers with its coded 503. That the wait keeps revocations through a real
 * failover is `redis-failover.test.ts`.
 */

const admin = testClient()
t.teardown(() => admin.disconnect())

function record (id: string, lastSeenAt = EPOCH): SessionRecord {
  return {
    id,
    userId: 'alice',
    fingerprintHash: 'fp',
    createdAt: EPOCH,
    lastSeenAt,
    idleExpiresAt: EPOCH + 30 * MINUTE,
    absoluteExpiresAt: EPOCH + 120 * MINUTE,
    remembered: false,
    refresh: { hash: `r0-${id}`, rotatedAt: EPOCH, rotations: 0 }
  }
}

t.test('durability options are checked when the store is made', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    [null, /"redisStore\.durability": must be an object/],
    [1, /"redisStore\.durability": must be an object/],
    [{ replicas: 1, timeout: 5 }, /"redisStore\.durability\.timeout": is not an option/],
    [{}, /"redisStore\.durability\.replicas": must be a positive integer, got undefined/],
    [{ replicas: 0 }, /"redisStore\.durability\.replicas"/],
    [{ replicas: 1.5 }, /"redisStore\.durability\.replicas"/],
    [{ replicas: 1, timeoutMs: 0 }, /"redisStore\.durability\.timeoutMs"/],
    [{ replicas: 1, timeoutMs: 1000 }, /below "commandTimeoutMs" \(1000\)/],
    [{ replicas: 1, timeoutMs: 10.5 }, /"redisStore\.durability\.timeoutMs"/]
  ]
  for (const [durability, message] of bad) {
    t.throws(() => redisStore({ connection: REDIS_URL, durability: durability as { replicas: number } }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message }, JSON.stringify(durability))
  }
  t.throws(() => redisStore({ cluster: { nodes: [{ port: 1 }] }, durability: { replicas: 1 } }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /not available on a Cluster/ })
  t.ok(redisStore({ connection: REDIS_URL, commandTimeoutMs: 2000, durability: { replicas: 2, timeoutMs: 1500 } }))
})

t.test('the app\'s Cluster client is refused with durability, when the store opens', async (t) => {
  const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true })
  t.teardown(() => cluster.disconnect())
  const store = redisStore({ client: cluster, durability: { replicas: 1 } })
  await t.rejects(store.open({ now: () => EPOCH, onRemoved: () => {} }), /not available on a Cluster/)
})

redisTest(t, 'durability and ioredis\' autopipelining do not share a client: a WAIT would hold its whole batch', async (t) => {
  const durability = { replicas: 1, timeoutMs: 20 }
  const context = { now: () => EPOCH, onRemoved: () => {} }
  const made = storeFor(t, { connection: REDIS_URL, durability })
  await made.open(context)
  t.equal((made.client as Redis).options.enableAutoPipelining, false, 'the client the store makes for durability sends each command as it comes')
  const refused = /redisStore\.durability.*needs a client without enableAutoPipelining/
  const pipelining = new Redis(REDIS_URL, { lazyConnect: true, enableAutoPipelining: true })
  t.teardown(() => pipelining.disconnect())
  await t.rejects(storeFor(t, { client: pipelining, durability }).open(context), refused, 'the app\'s client that pipelines')
  const { hostname: host, port } = new URL(REDIS_URL)
  const connection = { host, port: Number(port || 6379), enableAutoPipelining: true }
  await t.rejects(storeFor(t, { connection, durability }).open(context), refused, 'connection options that ask for it')
})

redisTest(t, 'every write a failover must not lose fails closed when no replica acknowledges it', async (t) => {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const plain = storeFor(t, { client: new Redis(REDIS_URL), closeClient: true, prefix })
  const store = storeFor(t, { connection: REDIS_URL, prefix, durability: { replicas: 1, timeoutMs: 20 } })
  await plain.open({ now: () => EPOCH, onRemoved: () => {} })
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  const noReplica = /0 of 1 replicas acknowledged the write within 20 ms/
  const [a, b, c, d] = ['aaaa', 'bbbb', 'cccc', 'dddd'].map((id, j) => record(id, EPOCH + j)) as [SessionRecord, SessionRecord, SessionRecord, SessionRecord]

  t.ok((await store.create(a, { max: 2, onLimit: 'evict-oldest' }, EPOCH)).created, 'a login that evicts nothing does not wait')
  await plain.create(b, { max: 2, onLimit: 'evict-oldest' }, EPOCH)
  await t.rejects(store.create(c, { max: 2, onLimit: 'evict-oldest' }, EPOCH), noReplica, 'a login that evicts at the limit')
  t.equal(await plain.get(a.id, EPOCH), undefined, 'the eviction itself went ahead on the primary')
  const activity = { lastSeenAt: EPOCH, idleExpiresAt: EPOCH + 30 * MINUTE }
  await t.rejects(store.rotate(b.id, { presentedHash: 'r0-bbbb', successorHash: 'r1', graceMs: 0, activity }, EPOCH), noReplica, 'a rotation')
  await t.rejects(store.rotate(b.id, { presentedHash: 'stolen', successorHash: 'r2', graceMs: 0, activity }, EPOCH), noReplica, 'theft detection')
  t.strictSame(await store.rotate(c.id, { presentedHash: 'r0-cccc', successorHash: 'r1', graceMs: 60_000, activity }, EPOCH).catch(() => 'waited'), 'waited')
  t.strictSame(await store.rotate(c.id, { presentedHash: 'r0-cccc', successorHash: 'r2', graceMs: 60_000, activity }, EPOCH), { outcome: 'conflict' }, 'a conflict writes nothing: no wait')
  await t.rejects(store.replace(c.id, d, EPOCH), noReplica, 'a regeneration')
  await t.rejects(store.revoke(d.id, EPOCH), noReplica, 'a revoke')
  await t.rejects(store.revoke(d.id, EPOCH), noReplica, 'a revoke that finds nothing live waits too')
  await plain.create(a, { max: 5, onLimit: 'evict-oldest' }, EPOCH)
  await t.rejects(store.revokeUser('alice', undefined, EPOCH), noReplica, 'a revoke-all')
  t.strictSame(await plain.listUser('alice', EPOCH), [], 'done on the primary all the same')

  const wrapped = new FailClosedStore(store, { error: () => {} } as never)
  await t.rejects(wrapped.revoke(a.id, EPOCH), StoreUnavailableError, 'the plugin sees its coded 503')
})

leftNoKeys(t)
