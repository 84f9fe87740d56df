import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, Redis } from 'ioredis'
import t from 'tap'
import type { SessionRecord } from '../../lib/session.js'
import { redisStore } from '../../lib/stores/redis/index.js'
import { statsTags } from '../../lib/stores/redis/keys.js'
import { TestClock } from '../helper.js'
import { conformance } from '../../lib/testing/index.js'
import { deleteKeys, freePort, redisFactory, serverTest, startServer, TEST_CLIENT_OPTIONS, uniquePrefix, waitFor } from './redis-helper.js'

/** A session of `userId` that lives a minute idle, two in all, from `now`. */
function sessionOf (userId: string, id: string, now: number): SessionRecord {
  return { id, userId, fingerprintHash: 'fp', createdAt: now, lastSeenAt: now, idleExpiresAt: now + 60_000, absoluteExpiresAt: now + 120_000, remembered: false }
}

const clusterOptions = {
  redisOptions: TEST_CLIENT_OPTIONS,
  clusterRetryStrategy: (times: number) => times > 20 ? null : 100
}

serverTest(t, 'a three-master Redis Cluster keeps the store contract', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sg-cluster-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const ports: number[] = []
  while (ports.length < 3) {
    const port = await freePort()
    if (!ports.includes(port)) ports.push(port)
  }
  for (const port of ports) {
    await startServer(t, port, [
      '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000', '--dir', dir
    ])
  }
  const create = spawn('redis-cli', [
    '--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'
  ], { stdio: 'ignore' })
  const [code] = await once(create, 'exit') as [number]
  t.equal(code, 0, 'redis-cli --cluster create')
  await waitFor(async () => {
    for (const port of ports) {
      const node = new Redis(port, '127.0.0.1', { ...TEST_CLIENT_OPTIONS, retryStrategy: () => null })
      node.on('error', () => {})
      const info = await node.cluster('INFO').catch(() => '') as string
      node.disconnect()
      if (!info.includes('cluster_state:ok')) return false
    }
    return true
  }, 10_000, 'cluster_state:ok on every node')

  const nodes = ports.map((port) => ({ host: '127.0.0.1', port }))
  const admin = new Cluster(nodes, clusterOptions)
  admin.on('error', () => {})
  t.teardown(() => admin.disconnect())
  t.equal((await admin.cluster('SLOTS') as unknown[]).length, 3, 'three masters share the slots')

  await t.test('a Cluster the store owns', async (t) => {
    await conformance(t, redisFactory({ cluster: { nodes, options: clusterOptions } }, () => admin), { rotationRuns: 20 })
  })

  await t.test('the app\'s Cluster client, local cache on', async (t) => {
    const client = new Cluster(nodes, clusterOptions)
    client.on('error', () => {})
    t.teardown(() => client.disconnect())
    await conformance(t, redisFactory({ client, localCache: true }, () => admin), { rotationRuns: 20 })
  })

  await t.test('the stats shards spread over the masters: each takes its share of the logins\' bookkeeping', async (t) => {
    const tags = statsTags(32)
    for (const [n, tag] of tags.entries()) {
      const slot = await admin.cluster('KEYSLOT', `{${tag}}`) as number
      t.ok(slot >= n * 512 && slot < (n + 1) * 512, `{${tag}} in slot ${slot}, in the ${n}th of 32 ranges (as Redis computes it)`)
    }
    const prefix = uniquePrefix()
    t.teardown(async () => await deleteKeys(admin, prefix))
    const clock = new TestClock()
    const store = redisStore({ cluster: { nodes, options: clusterOptions }, prefix })
    t.teardown(() => store.close())
    await store.open({ now: clock.read, onRemoved: () => {} })
    t.match((store.client as Cluster).options, { enableOfflineQueue: false, enableAutoPipelining: true }, 'the Cluster the store creates pipelines by itself')
    const users = Array.from({ length: 300 }, (_, n) => `user-${n}`)
    for (const userId of users) {
      await store.create(sessionOf(userId, `${userId}-s`, clock.now), { max: 3, onLimit: 'evict-oldest' }, clock.now)
    }
    t.match(await store.stats(clock.now), { sessions: 300, users: 300, sessionsPerUser: { 1: 300 } }, 'the sum of every shard')
    // Users per master's stats keys: each user's sizes entry lives in one shard, on one master.
    const shares = await Promise.all(admin.nodes('master').map(async (node) => {
      let users = 0
      for (const key of await node.keys(`${prefix}{stats:*}:sizes`)) users += await node.hlen(key)
      return users
    }))
    t.equal(shares.reduce((sum, share) => sum + share, 0), 300, `every user counted once: ${shares.join(' + ')}`)
    for (const share of shares) t.ok(share > 300 / 3 * 0.75 && share < 300 / 3 * 1.25, `${share} users' bookkeeping on one master, within 25 % of 100`)
  })

  await t.test('an invalidation published on one master reaches a subscriber on any', async (t) => {
    const prefix = uniquePrefix()
    t.teardown(async () => await deleteKeys(admin, prefix))
    const clock = new TestClock()
    const [a, b] = [0, 1].map(() => redisStore({ cluster: { nodes, options: clusterOptions }, prefix, localCache: true }))
    const context = { now: clock.read, onRemoved: () => {} }
    for (const store of [a!, b!]) {
      t.teardown(() => store.close())
      await store.open(context)
    }
    await waitFor(async () => {
      const counts = await Promise.all(admin.nodes('master').map(async (node) => (await node.pubsub('NUMSUB', `${prefix}invalidate`) as [string, number])[1]))
      return counts.reduce((sum, count) => sum + count, 0) === 2
    }, 3000, 'both subscribers')
    const limit = { max: 5, onLimit: 'evict-oldest' } as const
    // Users on several slots (so on several masters), each cached on A then revoked on B.
    for (const userId of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']) {
      const id = `${userId}-session`
      const session = sessionOf(userId, id, clock.now)
      await a!.create(session, limit, clock.now)
      t.ok(await a!.get(id, clock.now), `${userId}: cached on A`)
      t.ok(await b!.revoke(id, clock.now), `${userId}: revoked on B`)
      // Across masters the message rides the cluster bus: a little slower than on one server.
      const ms = await waitFor(async () => await a!.get(id, clock.now) === undefined, 500, `${userId} to be dropped on A`)
      t.ok(ms < 500, `${userId}: dropped on A after ${ms.toFixed(1)} ms`)
    }
  })
})
