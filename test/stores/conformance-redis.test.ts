import { Redis } from 'ioredis'
import t from 'tap'
import { conformance } from '../../lib/testing/index.js'
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

leftNoKeys(t)
