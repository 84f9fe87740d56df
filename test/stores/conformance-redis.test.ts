import { Redis } from 'ioredis'
import { Redis as Redis5 } from 'ioredis5'
import { Redis as Valkey } from 'iovalkey'
import t from 'tap'
import { conformance, historyCases } from '../../lib/testing/index.js'
import { leftNoKeys, REDIS_URL, redisFactory, redisTest, TEST_CLIENT_OPTIONS, testClient } from './redis-helper.js'

const admin = testClient()
t.teardown(() => admin.disconnect())

redisTest(t, 'the Redis store keeps the store contract (a connection it owns)', async (t) => {
  await conformance(t, redisFactory({ connection: REDIS_URL }, () => admin), { rotationRuns: 30 })
})

redisTest(t, 'the Redis store keeps the store contract (the app\'s client, local cache on)', async (t) => {
  const client = testClient()
  t.teardown(() => client.quit())
  await conformance(t, redisFactory({ client, localCache: true }, () => admin), { rotationRuns: 30 })
})

redisTest(t, 'the Redis store keeps the store contract (a client with its own keyPrefix)', async (t) => {
  const client = new Redis(REDIS_URL, { ...TEST_CLIENT_OPTIONS, keyPrefix: 'app:' })
  client.on('error', () => {})
  t.teardown(() => client.quit())
  await conformance(t, redisFactory({ client }, () => admin), { rotationRuns: 10 })
})

redisTest(t, 'the Redis store keeps a login history (a connection it owns, and a client with its own keyPrefix)', async (t) => {
  await historyCases(t, redisFactory({ connection: REDIS_URL }, () => admin))
  const client = new Redis(REDIS_URL, { ...TEST_CLIENT_OPTIONS, keyPrefix: 'app:' })
  client.on('error', () => {})
  t.teardown(() => client.quit())
  await historyCases(t, redisFactory({ client }, () => admin))
})

// Other clients of the same shape: the store types its client by what it calls, not by class.
for (const [name, Client] of [['ioredis 5', Redis5], ['iovalkey', Valkey]] as const) {
  redisTest(t, `the Redis store keeps the store contract (an ${name} client, local cache on)`, async (t) => {
    const client = new Client(REDIS_URL, TEST_CLIENT_OPTIONS)
    client.on('error', () => {})
    t.teardown(() => client.quit())
    await conformance(t, redisFactory({ client, localCache: true }, () => admin), { rotationRuns: 10 })
  })
}

leftNoKeys(t)
