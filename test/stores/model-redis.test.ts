import t from 'tap'
import { redisStore } from '../../lib/stores/redis/index.js'
import { runModel } from '../../lib/testing/index.js'
import { deleteKeys, leftNoKeys, redisTest, testClient, uniquePrefix } from './redis-helper.js'

// A hundred random sequences on Redis: longer than tap's default when the machine is busy.
t.setTimeout(120_000)

const admin = testClient()
t.teardown(() => admin.disconnect())

redisTest(t, 'the Redis store against the reference model', async (t) => {
  const client = testClient()
  const prefixes: string[] = []
  t.teardown(async () => {
    for (const prefix of prefixes) await deleteKeys(admin, prefix)
    await client.quit()
  })
  runModel(t, {
    name: 'redis',
    // Each sequence on a prefix of its own; the app's client is shared, as in production.
    factory: () => {
      const prefix = uniquePrefix()
      prefixes.push(prefix)
      return redisStore({ client, prefix })
    },
    // Key TTLs run in real time, the model's clock does not: lifetimes outlast a run.
    minLifetimeMs: 10_000,
    numRuns: Number(process.env.FC_NUM_RUNS ?? 100)
  })
})

leftNoKeys(t)
