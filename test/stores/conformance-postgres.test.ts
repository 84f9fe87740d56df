import t from 'tap'
import { conformance, historyCases } from '../../lib/testing/index.js'
import { leftNoSchemas, POSTGRES_URL, postgresFactory, postgresTest, testPool } from './postgres-helper.js'

const admin = testPool()
t.teardown(async () => await admin.end())

postgresTest(t, 'the PostgreSQL store keeps the store contract (the app\'s pool)', async (t) => {
  const pool = testPool()
  t.teardown(async () => await pool.end())
  await conformance(t, postgresFactory({ pool }, admin), { rotationRuns: 30 })
})

postgresTest(t, 'the PostgreSQL store keeps the store contract (a pool it owns, local cache on)', async (t) => {
  await conformance(t, postgresFactory({ connection: POSTGRES_URL, localCache: true }, admin), { rotationRuns: 30 })
})

postgresTest(t, 'the PostgreSQL store keeps a login history', async (t) => {
  await historyCases(t, postgresFactory({ connection: POSTGRES_URL }, admin))
})

leftNoSchemas(t)
