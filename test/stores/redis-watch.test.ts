import { EventEmitter } from 'node:events'
import t from 'tap'
import type { RedisClient, RedisClientOptions, RedisNode } from '../../lib/stores/redis/index.js'
import { Connection } from '../../lib/stores/redis/connection.js'
import { ioredis } from '../../lib/stores/redis/ioredis.js'
import { ConnectionWatch } from '../../lib/stores/redis/watch.js'

/** A client of the store's shape, as far as the watch looks at it: its events, its options, its nodes. */
function fake (options: RedisClientOptions, cluster?: RedisNode[]): RedisClient & EventEmitter {
  return Object.assign(new EventEmitter(), { isCluster: cluster !== undefined, options, nodes: () => cluster ?? [] }) as unknown as RedisClient & EventEmitter
}

function refused (address?: string, port?: number): Error {
  return Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED', address, port })
}

/** What the watch logs, and its reason after `err`. */
function watched (client: RedisClient & EventEmitter, err: unknown, log = true): { reason: string | undefined, lines: string[] } {
  const lines: string[] = []
  const watch = new ConnectionWatch(client, log ? { error: (_details, message) => lines.push(message), warn: (_details, message) => lines.push(message), info: (_details, message) => lines.push(message) } : undefined)
  client.emit('error', err)
  const reason = watch.reason
  watch.stop()
  return { reason, lines }
}

t.test('the watch names the server as the client\'s options do', async (t) => {
  const cases: Array<[RedisClient & EventEmitter, unknown, string]> = [
    [fake({ host: '10.0.0.5', port: 6380 }), refused('10.0.0.5', 6380), 'cannot connect to Redis at 10.0.0.5:6380 (ECONNREFUSED)'],
    [fake({}), refused(), 'cannot connect to Redis at localhost:6379 (ECONNREFUSED)'],
    [fake({ path: '/run/redis.sock' }), new Error('connect ENOENT /run/redis.sock'), 'cannot connect to Redis at /run/redis.sock (connect ENOENT /run/redis.sock)'],
    [fake({ path: '', host: 'redis' }), 'not an error', 'cannot connect to Redis at redis:6379 (not an error)'],
    [fake({ name: 'main', sentinels: [{ host: 's1', port: 26380 }, { host: 's2' }] }), refused(), 'cannot connect to Redis at master "main" through sentinels s1:26380, s2:26379 (ECONNREFUSED)'],
    [fake({ sentinels: [], host: 'h' }), refused(), 'cannot connect to Redis at h:6379 (ECONNREFUSED)']
  ]
  for (const [client, err, reason] of cases) t.equal(watched(client, err).reason, reason)
})

t.test('on a Cluster, the node the error names, else the nodes it knows', async (t) => {
  const node = { options: { host: '10.0.0.7', port: 7001 } } as unknown as RedisNode
  const allFailed = Object.assign(new Error('Failed to refresh slots cache.'), { lastNodeError: refused('10.0.0.8', 7002) })
  const cases: Array<[RedisClient & EventEmitter, unknown, string]> = [
    [fake({}, []), refused('10.0.0.9', 7000), 'cannot connect to Redis at 10.0.0.9:7000 (a Cluster node) (ECONNREFUSED)'],
    [fake({}, []), allFailed, 'cannot connect to Redis at 10.0.0.8:7002 (a Cluster node) (Failed to refresh slots cache.)'],
    [fake({}, [node, node]), new Error('timeout'), 'cannot connect to Redis at Cluster nodes 10.0.0.7:7001, 10.0.0.7:7001 (timeout)'],
    [fake({}, []), Object.assign(new Error('x'), { address: '10.0.0.1', port: '7000' }), 'cannot connect to Redis at 10.0.0.1:6379 (a Cluster node) (x)'],
    [fake({}, []), new Error('down'), 'cannot connect to Redis at its Cluster nodes (down)']
  ]
  for (const [client, err, reason] of cases) t.equal(watched(client, err).reason, reason)
})

t.test('one line per outage, one when it ends; stopped, it hears nothing', async (t) => {
  const client = fake({ host: 'r', port: 1 })
  const lines: string[] = []
  const watch = new ConnectionWatch(client, { error: (_details, message) => lines.push(`error ${message}`), warn: (_details, message) => lines.push(`warn ${message}`), info: (_details, message) => lines.push(`info ${message}`) })
  client.emit('ready')
  t.same(lines, [], 'a first connection is not news')
  client.emit('error', refused())
  client.emit('error', refused())
  client.emit('ready')
  client.emit('error', new Error('read ECONNRESET'))
  t.same(lines, [
    'error session guard: cannot connect to Redis at r:1 (ECONNREFUSED); the session store answers 503 until it connects',
    'info session guard: connected to Redis at r:1',
    'error session guard: cannot connect to Redis at r:1 (read ECONNRESET); the session store answers 503 until it connects'
  ])
  watch.stop()
  client.emit('ready')
  t.equal(watch.reason, 'cannot connect to Redis at r:1 (read ECONNRESET)', 'stopped: it no longer follows the client')
  t.equal(client.listenerCount('error') + client.listenerCount('ready'), 0, 'and left no listener behind')
  t.same(watched(fake({}), refused(), false).lines, [], 'without a logger, nothing is logged')
  t.equal(watched(fake({}), refused(), false).reason, 'cannot connect to Redis at localhost:6379 (ECONNREFUSED)', '…and the reason is still known')
})

t.test('a call that fails while Redis is reachable keeps its own error', async (t) => {
  const connection = new Connection({ connection: 'redis://127.0.0.1:6379' }, 1000, ioredis('redisStore.connection'))
  const wrongType = Object.assign(new Error('WRONGTYPE Operation against a key holding the wrong kind of value'), { name: 'ReplyError' })
  await t.rejects(connection.run(Promise.reject(wrongType)), wrongType, 'no connection problem to name: the reply error as it is')
})
