import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, Redis } from 'ioredis'
import t from 'tap'
import { redisStore } from '../../lib/stores/redis/index.js'
import { TestClock } from '../helper.js'
import { conformance } from '../../lib/testing/index.js'
import { deleteKeys, freePort, redisFactory, serverTest, startServer, TEST_CLIENT_OPTIONS, uniquePrefix, waitFor } from './redis-helper.js'

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
      const session = {
        id,
        userId,
        fingerprintHash: 'fp',
        createdAt: clock.now,
        lastSeenAt: clock.now,
        idleExpiresAt: clock.now + 60_000,
        absoluteExpiresAt: clock.now + 120_000,
        remembered: false
      }
      await a!.create(session, limit, clock.now)
      t.ok(await a!.get(id, clock.now), `${userId}: cached on A`)
      t.ok(await b!.revoke(id, clock.now), `${userId}: revoked on B`)
      // Across masters the message rides the cluster bus: a little slower than on one server.
      const ms = await waitFor(async () => await a!.get(id, clock.now) === undefined, 500, `${userId} to be dropped on A`)
      t.ok(ms < 500, `${userId}: dropped on A after ${ms.toFixed(1)} ms`)
    }
  })
})
