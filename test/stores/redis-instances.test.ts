import t from 'tap'
import type { Test } from 'tap'
import { redisStore } from '../../lib/stores/redis/index.js'
import { build, type Harness } from '../helper.js'
import { deleteKeys, leftNoKeys, REDIS_URL, redisTest, testClient, uniquePrefix, waitFor } from './redis-helper.js'

const MAX_SESSIONS = 5
const CACHE_TTL_MS = 5000

const admin = testClient()
t.teardown(() => admin.disconnect())

/** Two app instances sharing one Redis under one prefix, each with its own store and local cache. */
async function twoInstances (t: Test): Promise<{ a: Harness, b: Harness, prefix: string }> {
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const instance = async (): Promise<Harness> => await build(t, {
    store: redisStore({ connection: REDIS_URL, prefix, localCache: { ttlMs: CACHE_TTL_MS } }),
    maxSessionsPerUser: MAX_SESSIONS
  })
  const a = await instance()
  const b = await instance()
  // Both subscribers listening before the test starts.
  await waitFor(async () => {
    const [, count] = await admin.pubsub('NUMSUB', `${prefix}invalidate`) as [string, number]
    return count === 2
  }, 2000, 'both subscribers')
  return { a, b, prefix }
}

async function subscribers (name: string): Promise<string[]> {
  const list = await admin.client('LIST') as string
  return list.split('\n').filter((line) => line.includes(` name=${name} `) && / sub=1 /.test(line))
}

redisTest(t, 'a session made on one instance works on the other', async (t) => {
  const { a, b } = await twoInstances(t)
  const alice = await a.login('alice')
  const onB = await b.me(alice)
  t.equal(onB.statusCode, 200)
  t.equal(onB.json().session.id, alice.sessionId)
  t.strictSame((await b.app.sessions.list('alice')).map((session) => session.id), [alice.sessionId])
})

redisTest(t, 'the local cache answers without Redis, for at most its TTL', async (t) => {
  const { a, b, prefix } = await twoInstances(t)
  const alice = await a.login('alice')
  t.equal((await a.me(alice)).statusCode, 200, 'read once: now cached on A')
  // Removed behind the store's back: no invalidation is published.
  t.equal(await admin.del(`${prefix}{u:alice}:r:${alice.sessionId}`), 1)
  t.equal((await b.me(alice)).statusCode, 401, 'B asks Redis')
  t.equal((await a.me(alice)).statusCode, 200, 'A answers from its cache')
  a.clock.advance(CACHE_TTL_MS - 1)
  t.equal((await a.me(alice)).statusCode, 200, 'still inside the cache TTL')
  a.clock.advance(2)
  t.equal((await a.me(alice)).statusCode, 401, 'not past the cache TTL')
})

redisTest(t, 'a revoke on one instance is refused on the other within 50 ms', async (t) => {
  const { a, b } = await twoInstances(t)
  const alice = await a.login('alice')
  t.equal((await a.me(alice)).statusCode, 200, 'cached on A')
  t.equal((await b.app.inject({
    method: 'POST', url: '/logout', headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.fingerprint }
  })).statusCode, 204, 'logged out on B')
  const elapsed = await waitFor(async () => (await a.me(alice)).statusCode === 401, 50, 'A to refuse the revoked session')
  t.ok(elapsed < 50, `refused on A after ${elapsed.toFixed(1)} ms`)
  t.equal((await a.me(alice)).statusCode, 401, 'and stays refused')
})

// 30, not more: the stats remember a user's latest 32 removals, so a follow-up that arrives after more evictions
// than that may count its session again until its deadline (docs/stores.md, "Stats"); the sessions themselves
// end at the limit however many logins race.
const PARALLEL_LOGINS = 30

redisTest(t, `${PARALLEL_LOGINS} parallel logins of one user over both instances end at exactly the limit`, async (t) => {
  const { a, b } = await twoInstances(t)
  const logins = await Promise.all(Array.from({ length: PARALLEL_LOGINS }, async (_, j) => await (j % 2 === 0 ? a : b).login('alice')))
  t.equal(new Set(logins.map((login) => login.sessionId)).size, PARALLEL_LOGINS, 'each login got a session')
  const listed = await a.app.sessions.list('alice')
  t.equal(listed.length, MAX_SESSIONS)
  t.strictSame((await b.app.sessions.list('alice')).map((session) => session.id), listed.map((session) => session.id), 'both instances agree')
  let live = 0
  for (const login of logins) {
    const [onA, onB] = [await a.me(login), await b.me(login)]
    t.equal(onA.statusCode, onB.statusCode, 'the instances agree on every session')
    if (onA.statusCode === 200) live++
  }
  t.equal(live, MAX_SESSIONS, 'only the survivors are let in')
  t.match(await a.app.sessions.stats(), { sessions: MAX_SESSIONS, users: 1 })
})

redisTest(t, 'a reconnect of the subscriber drops the whole local cache', async (t) => {
  const { a, b, prefix } = await twoInstances(t)
  const alice = await a.login('alice')
  const bob = await a.login('bob')
  t.equal((await a.me(alice)).statusCode, 200, 'alice cached on A')
  t.equal((await a.me(bob)).statusCode, 200, 'bob cached on A')

  const name = `session-guard-invalidations:${prefix}`
  t.equal((await subscribers(name)).length, 2, 'one subscriber per instance')
  // Kill this test's two subscribers only (other test files share the server).
  for (const line of await subscribers(name)) {
    const id = /(?:^| )id=(\d+) /.exec(line)?.[1] as string
    await admin.client('KILL', 'ID', id)
  }
  t.equal((await subscribers(name)).length, 0, 'no subscriber left')

  // Revoked meanwhile: the message is published to nobody.
  t.equal(await b.app.sessions.revoke(alice.sessionId), true)
  await waitFor(async () => (await subscribers(name)).length === 2, 3000, 'the subscribers to come back')
  t.equal((await a.me(alice)).statusCode, 401, 'the revoked session is not served from the old cache')
  t.equal((await a.me(bob)).statusCode, 200, 'the live one is read again from Redis')
  t.equal(await b.app.sessions.revoke(bob.sessionId), true)
  await waitFor(async () => (await a.me(bob)).statusCode === 401, 50, 'invalidations to flow again')
})

leftNoKeys(t)
