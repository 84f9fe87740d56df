import t from 'tap'
import { postgresStore } from '../lib/stores/postgres/index.js'
import { redisStore } from '../lib/stores/redis/index.js'
import { rememberScenarios } from './remember-device-helper.js'
import { leftNoSchemas, postgresTest, testPool, testSchema } from './stores/postgres-helper.js'
import { deleteKeys, leftNoKeys, REDIS_URL, redisTest, testClient, uniquePrefix } from './stores/redis-helper.js'

/**
 * "Remember this device" keeps its state in the store's counters (a marker per
 * remembered device, the time the user last forgot them all, the count of new
 * ones): what holds on the memory store (test/remember-device.test.ts) holds
 * on Redis and PostgreSQL, where another instance sharing the store sees it.
 */

redisTest(t, 'Redis store', async (t) => {
  const admin = testClient()
  t.teardown(() => admin.disconnect())
  rememberScenarios(t, async (t) => {
    const prefix = uniquePrefix()
    t.teardown(async () => await deleteKeys(admin, prefix))
    return { store: redisStore({ connection: REDIS_URL, prefix }) }
  })
})

postgresTest(t, 'PostgreSQL store', async (t) => {
  const admin = testPool()
  t.teardown(async () => await admin.end())
  rememberScenarios(t, async (t) => ({ store: postgresStore({ pool: admin, schema: await testSchema(t, admin), purge: { intervalMs: 0 }, queryTimeoutMs: 10_000 }) }))
})

leftNoKeys(t)
leftNoSchemas(t)
