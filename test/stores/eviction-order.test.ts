import type { Test } from 'tap'
import t from 'tap'
import type { SessionRecord } from '../../lib/session.js'
import { memoryStore } from '../../lib/stores/memory.js'
import { redisStore } from '../../lib/stores/redis/redis-store.js'
import type { SessionStore } from '../../lib/stores/store.js'
import { MINUTE, TestClock } from '../helper.js'
import { deleteKeys, leftNoKeys, REDIS_URL, redisTest, testClient, uniquePrefix } from './redis-helper.js'

/**
 * At the per-user limit, `evict-oldest` removes the least recently active
 * sessions, whenever they were created: the user may still be on the device
 * they signed in with first. The conformance suite creates its sessions at one
 * instant, so ordering by `createdAt` would pass it; here the two orders differ.
 */

type Factory = (t: Test) => SessionStore

async function evictionOrder (t: Test, factory: Factory): Promise<void> {
  const clock = new TestClock()
  const store = factory(t)
  t.teardown(() => store.close())
  await store.open?.({ now: clock.read, onRemoved: () => {} })
  const ids = (sessions: readonly SessionRecord[]): string[] => sessions.map((session) => session.id)
  let n = 0
  const make = (): SessionRecord => {
    const id = String.fromCharCode(65 + n++).repeat(22)
    return {
      id,
      userId: 'alice',
      fingerprintHash: `fp-${id}`,
      createdAt: clock.now,
      lastSeenAt: clock.now,
      idleExpiresAt: clock.now + 60 * MINUTE,
      absoluteExpiresAt: clock.now + 12 * 60 * MINUTE,
      remembered: false
    }
  }
  const roomy = { max: 10, onLimit: 'reject' } as const
  const touch = async (session: SessionRecord): Promise<void> => {
    await store.touch(session.id, { lastSeenAt: clock.now, idleExpiresAt: clock.now + 60 * MINUTE }, clock.now)
  }

  // Created laptop, phone, tablet, a minute apart; then the laptop is used again, then the tablet.
  const laptop = make()
  await store.create(laptop, roomy, clock.now)
  clock.advance(MINUTE)
  const phone = make()
  await store.create(phone, roomy, clock.now)
  clock.advance(MINUTE)
  const tablet = make()
  await store.create(tablet, roomy, clock.now)
  clock.advance(MINUTE)
  await touch(laptop)
  clock.advance(MINUTE)
  await touch(tablet)
  clock.advance(MINUTE)
  // By creation: laptop, phone, tablet. By last activity, most recent first: tablet, laptop, phone.

  const listed = ids(await store.listUser('alice', clock.now))
  t.strictSame(listed, [tablet.id, laptop.id, phone.id], 'listUser: most recently active first, not most recently created')

  const refused = await store.create(make(), { max: 3, onLimit: 'reject' }, clock.now)
  t.strictSame(!refused.created && ids(refused.active), [tablet.id, laptop.id, phone.id], 'reject: the active ones by last activity')

  const fourth = make()
  const one = await store.create(fourth, { max: 3, onLimit: 'evict-oldest' }, clock.now)
  t.strictSame(one.created && ids(one.evicted), [phone.id], 'the least recently active went, not the laptop created first')
  t.ok(await store.get(laptop.id, clock.now), 'the laptop, created first but used since, is still signed in')
  t.equal(await store.get(phone.id, clock.now), undefined, 'the phone, used least recently, is signed out')

  clock.advance(MINUTE)
  await touch(laptop)
  clock.advance(MINUTE)
  // By creation: laptop, tablet, fourth. By last activity: laptop, fourth, tablet.
  const fifth = make()
  const two = await store.create(fifth, { max: 2, onLimit: 'evict-oldest' }, clock.now)
  t.strictSame(two.created && ids(two.evicted).sort(), [fourth.id, tablet.id].sort(), 'room for one more: the two least recently active went')
  t.strictSame(ids(await store.listUser('alice', clock.now)), [fifth.id, laptop.id], 'the laptop signed in first stays')
}

t.test('the memory store evicts by last activity, not by creation time', async (t) => {
  await evictionOrder(t, () => memoryStore())
})

const admin = testClient()
t.teardown(() => admin.disconnect())

redisTest(t, 'the Redis store evicts by last activity, not by creation time', async (t) => {
  await evictionOrder(t, (t) => {
    const prefix = uniquePrefix()
    t.teardown(async () => await deleteKeys(admin, prefix))
    return redisStore({ connection: REDIS_URL, prefix })
  })
})

leftNoKeys(t)
