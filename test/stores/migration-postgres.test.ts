import t from 'tap'
import { memoryStore } from '../../lib/stores/memory.js'
import { migrateSessions } from '../../lib/stores/migrate.js'
import { postgresStore } from '../../lib/stores/postgres/index.js'
import { redisStore } from '../../lib/stores/redis/index.js'
import { migration } from '../../lib/testing/index.js'
import { build, type Credentials } from '../helper.js'
import { leftNoSchemas, POSTGRES_URL, postgresFactory, postgresTest, testPool, testSchema } from './postgres-helper.js'
import { deleteKeys, leftNoKeys, REDIS_URL, testClient, uniquePrefix } from './redis-helper.js'

const admin = testPool()
t.teardown(async () => await admin.end())

postgresTest(t, 'the PostgreSQL store moves sessions and counters in and out (the app\'s pool)', async (t) => {
  const pool = testPool()
  t.teardown(async () => await pool.end())
  await migration(t, postgresFactory({ pool }, admin))
})

postgresTest(t, 'the PostgreSQL store moves sessions and counters in and out (a pool it owns, local cache on)', async (t) => {
  await migration(t, postgresFactory({ connection: POSTGRES_URL, localCache: true }, admin))
})

postgresTest(t, 'Redis to PostgreSQL while guarded requests keep arriving, then PostgreSQL to memory: nobody signed out', async (t) => {
  const redis = testClient()
  t.teardown(() => redis.disconnect())
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(redis, prefix))
  const schema = await testSchema(t, admin)
  const onRedis = redisStore({ connection: REDIS_URL, prefix })
  const onPostgres = postgresStore({ connection: POSTGRES_URL, schema, purge: { intervalMs: 0 } })
  const a = await build(t, { store: onRedis, maxSessionsPerUser: 3 })
  const b = await build(t, { store: onPostgres, maxSessionsPerUser: 3 })

  const live: Credentials[] = []
  for (let user = 0; user < 40; user++) {
    for (let j = 0; j < 2; j++) live.push(await a.login(`user-${user}`))
  }
  for (let j = 0; j < 6; j++) await onRedis.increment(`failed:${j % 3}`, 60_000, a.clock.now)

  // Guarded requests keep arriving on the old app during the first pass.
  const state = { running: true, refused: 0, served: 0 }
  const load = (async () => {
    for (let k = 0; state.running; k++) {
      const status = (await a.me(live[k % live.length] as Credentials)).statusCode
      if (status === 200) state.served++
      else state.refused++
    }
  })()
  const first = await migrateSessions({ from: onRedis, to: onPostgres, clock: a.clock.read, batchSize: 25 })
  state.running = false
  await load
  const second = await migrateSessions({ from: onRedis, to: onPostgres, clock: a.clock.read, batchSize: 25 })
  t.comment(`Redis to PostgreSQL: ${JSON.stringify(first)}, then ${JSON.stringify(second)}; ${state.served} guarded requests served meanwhile`)
  t.equal(state.refused, 0, 'no guarded request refused during the move')
  t.match(first, { sessions: { read: live.length, imported: live.length, skipped: 0 } })
  // The logins' own counters (known devices, login bursts) move too, beside the three of this test.
  t.ok(first.counters.read >= 3 && first.counters.imported === first.counters.read, 'every counter moved')
  let moved = 0
  for (const credentials of live) if ((await b.me(credentials)).statusCode === 200) moved++
  t.equal(moved, live.length, 'every session works on the PostgreSQL app')
  t.equal((await onPostgres.counter('failed:0', b.clock.now))?.count, 2, 'counters moved with their counts')
  t.equal((await b.app.sessions.list('user-7')).length, 2, 'the per-user index moved')

  // And back out, to the memory store.
  const onMemory = memoryStore()
  const c = await build(t, { store: onMemory, maxSessionsPerUser: 3 })
  const back = await migrateSessions({ from: onPostgres, to: onMemory, clock: b.clock.read, batchSize: 25 })
  t.match(back, { sessions: { read: live.length, imported: live.length, skipped: 0 }, counters: { read: first.counters.read, imported: first.counters.read } })
  let still = 0
  for (const credentials of live) if ((await c.me(credentials)).statusCode === 200) still++
  t.equal(still, live.length, 'every session works on the memory app')
})

leftNoSchemas(t)
leftNoKeys(t)
