import { Redis } from 'ioredis'
import t from 'tap'
import { migration } from '../../lib/testing/index.js'
import { leftNoKeys, REDIS_URL, redisFactory, redisTest, TEST_CLIENT_OPTIONS, testClient } from './redis-helper.js'

const admin = testClient()
t.teardown(() => admin.disconnect())

redisTest(t, 'the Redis store moves sessions and counters in and out (a connection it owns)', async (t) => {
  await migration(t, redisFactory({ connection: REDIS_URL }, () => admin))
})

redisTest(t, 'the Redis store moves sessions and counters in and out (a client with its own keyPrefix, local cache on)', async (t) => {
  const client = new Redis(REDIS_URL, { ...TEST_CLIENT_OPTIONS, keyPrefix: 'app:' })
  client.on('error', () => {})
  t.teardown(() => client.quit())
  await migration(t, redisFactory({ client, localCache: true }, () => admin))
})

leftNoKeys(t)
