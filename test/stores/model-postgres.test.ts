import t from 'tap'
import { postgresStore } from '../../lib/stores/postgres/index.js'
import { runModel } from '../../lib/testing/index.js'
import { dropSchema, leftNoSchemas, postgresTest, testPool, uniqueSchema } from './postgres-helper.js'
import { migrate } from '../../lib/stores/postgres/migrate.js'

// A hundred random sequences on PostgreSQL: longer than tap's default when the machine is busy.
t.setTimeout(300_000)

postgresTest(t, 'the PostgreSQL store against the reference model', async (t) => {
  const pool = testPool()
  // One schema for the whole run: each sequence empties it first, as a fresh store would be.
  const schema = uniqueSchema()
  t.teardown(async () => {
    await dropSchema(pool, schema)
    await pool.end()
  })
  await migrate(pool, { schema })
  await runModel(t, {
    name: 'postgres',
    factory: async () => {
      await pool.query(`TRUNCATE "${schema}".sessions, "${schema}".counters`)
      return postgresStore({ pool, schema, queryTimeoutMs: 10_000, purge: { intervalMs: 0 } })
    },
    numRuns: Number(process.env.FC_NUM_RUNS ?? 100)
  })
})

leftNoSchemas(t)
