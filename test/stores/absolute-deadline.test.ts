import type { Test } from 'tap'
import t from 'tap'
import { CLOCK_SKEW_ALLOWANCE_MS, type SessionRecord } from '../../lib/session.js'
import { memoryStore } from '../../lib/stores/memory.js'
import { redisStore } from '../../lib/stores/redis/redis-store.js'
import type { RemovalReason, SessionStore } from '../../lib/stores/store.js'
import { MINUTE, TestClock } from '../helper.js'
import { deleteKeys, leftNoKeys, REDIS_URL, redisTest, testClient, uniquePrefix } from './redis-helper.js'

/**
 * The exact edge of the absolute deadline, on every store: a session is dead
 * at its `absoluteExpiresAt` and live one ms before.
 *
 * The plugin never stores an idle deadline past the absolute one, so at the
 * absolute deadline the idle comparison alone would already end the session
 * and hide a store that compares the absolute one with `<=`. These records
 * keep their idle deadline an hour later, so only the absolute comparison
 * decides, as the store contract asks of any record.
 */

const HOUR = 60 * MINUTE

type Factory = (t: Test) => SessionStore

async function atTheAbsoluteDeadline (t: Test, factory: Factory): Promise<void> {
  const clock = new TestClock()
  const store = factory(t)
  t.teardown(() => store.close())
  const removed: Array<{ id: string, reason: RemovalReason }> = []
  await store.open?.({ now: clock.read, onRemoved: (session, reason) => removed.push({ id: session.id, reason }) })
  const make = (id: string): SessionRecord => ({
    id,
    userId: 'alice',
    fingerprintHash: `fp-${id}`,
    createdAt: clock.now,
    lastSeenAt: clock.now,
    idleExpiresAt: clock.now + 2 * HOUR,
    absoluteExpiresAt: clock.now + HOUR,
    remembered: false,
    refresh: { hash: `r0-${id}`, rotatedAt: clock.now, rotations: 0 }
  })
  const [read, touched, rotated, revoked] = ['AAAAAAAAAAAAAAAAAAAAAA', 'BBBBBBBBBBBBBBBBBBBBBB', 'CCCCCCCCCCCCCCCCCCCCCC', 'DDDDDDDDDDDDDDDDDDDDDD'].map(make) as [SessionRecord, SessionRecord, SessionRecord, SessionRecord]
  for (const session of [read, touched, rotated, revoked]) await store.create(session, { max: 10, onLimit: 'reject' }, clock.now)

  clock.advance(HOUR - 1)
  t.strictSame(await store.get(read.id, clock.now), read, 'get: live one ms before the absolute deadline')
  t.equal((await store.listUser('alice', clock.now)).length, 4, 'listUser: all four live one ms before')

  clock.advance(1)
  t.equal(await store.get(read.id, clock.now), undefined, 'get: dead at the absolute deadline')
  const activity = { lastSeenAt: clock.now, idleExpiresAt: clock.now + HOUR }
  t.equal(await store.touch(touched.id, activity, clock.now), undefined, 'touch: dead at the absolute deadline')
  t.strictSame(await store.rotate(rotated.id, { presentedHash: `r0-${rotated.id}`, successorHash: 'r1', graceMs: 0, activity }, clock.now), { outcome: 'missing' }, 'rotate: dead at the absolute deadline')
  t.equal(await store.revoke(revoked.id, clock.now), undefined, 'revoke: dead at the absolute deadline')
  t.strictSame(await store.listUser('alice', clock.now), [], 'listUser: none live at the absolute deadline')
  t.strictSame(removed, [{ id: revoked.id, reason: 'expired' }], 'only the revoked one removed: the others wait for the clock-skew allowance')
  clock.advance(CLOCK_SKEW_ALLOWANCE_MS)
  t.strictSame(await store.listUser('alice', clock.now), [], 'listUser: none')
  t.strictSame(removed.map((entry) => entry.reason), ['expired', 'expired', 'expired', 'expired'], 'each removed once, as expired')
  t.match(await store.stats(clock.now), { sessions: 0, users: 0 }, 'and no longer counted')
}

t.test('the memory store: dead at the absolute deadline, live one ms before', async (t) => {
  await atTheAbsoluteDeadline(t, () => memoryStore())
})

const admin = testClient()
t.teardown(() => admin.disconnect())

function redisFactory (options: { localCache: boolean }): Factory {
  return (t) => {
    const prefix = uniquePrefix()
    t.teardown(async () => await deleteKeys(admin, prefix))
    return options.localCache
      ? redisStore({ client: admin, prefix, localCache: true })
      : redisStore({ connection: REDIS_URL, prefix })
  }
}

redisTest(t, 'the Redis store (its scripts decide): dead at the absolute deadline, live one ms before', async (t) => {
  await atTheAbsoluteDeadline(t, redisFactory({ localCache: false }))
})

redisTest(t, 'the Redis store with its local cache: dead at the absolute deadline, live one ms before', async (t) => {
  await atTheAbsoluteDeadline(t, redisFactory({ localCache: true }))
})

leftNoKeys(t)
