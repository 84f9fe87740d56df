import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import { createDeviceParser } from '../devices/device.js'
import { CLOCK_SKEW_ALLOWANCE_MS, type SessionRecord } from '../session.js'
import type { Counter, HeldCounter, RemovalReason, SessionLimit, SessionStore } from '../stores/store.js'
import { TestClock } from './clock.js'
import type { StoreFactory } from './factory.js'

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const ROOMY: SessionLimit = { max: 100, onLimit: 'reject' }
const EVICT: SessionLimit = { max: 3, onLimit: 'evict-oldest' }

/** A store with the optional methods the migration needs, as the suite checks them. */
type Migratable = SessionStore & Required<Pick<SessionStore, 'importSessions' | 'scanCounters' | 'importCounters'>>

interface Pair {
  /** Where sessions come from, and where they go: two fresh stores from the factory, one clock. */
  source: Migratable
  target: Migratable
  clock: TestClock
  /** What each store reported to `onRemoved`. */
  removed: { source: RemovalReason[], target: RemovalReason[] }
  make: (overrides?: Partial<SessionRecord>) => SessionRecord
}

const FIREFOX = createDeviceParser().parse({ 'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0' })

function randomId (): string {
  return randomBytes(16).toString('base64url')
}

function migratable (store: SessionStore): Migratable {
  for (const name of ['importSessions', 'scanCounters', 'importCounters'] as const) {
    assert.equal(typeof store[name], 'function', `the store implements the optional ${name}()`)
  }
  return store as Migratable
}

async function collect<T> (batches: AsyncIterable<T[]>): Promise<T[]> {
  const all: T[] = []
  for await (const batch of batches) all.push(...batch)
  return all
}

/** A counter's three public fields (a store may return more). */
function plain (counter: Counter | undefined): Counter | undefined {
  return counter === undefined ? undefined : { count: counter.count, firstAt: counter.firstAt, lastAt: counter.lastAt }
}

const byId = (a: SessionRecord, b: SessionRecord): number => a.id < b.id ? -1 : 1

/**
 * The optional methods behind `migrateSessions()` and the memory store's
 * snapshots (`importSessions`, `scanCounters`, `importCounters`), case by case,
 * as subtests of `t`. Each case takes two fresh stores from `factory` and moves
 * sessions and counters from one to the other. Run it beside `conformance()`
 * for a store that implements them.
 */
export async function migration (t: Test, factory: StoreFactory): Promise<void> {
  async function setup (t: Test): Promise<Pair> {
    const clock = new TestClock()
    const removed: Pair['removed'] = { source: [], target: [] }
    const open = async (side: 'source' | 'target'): Promise<Migratable> => {
      const store = await factory(t, clock, {})
      t.teardown(() => store.close())
      await store.open?.({ now: clock.read, onRemoved: (_session, reason) => removed[side].push(reason) })
      return migratable(store)
    }
    const source = await open('source')
    const target = await open('target')
    const make = (overrides: Partial<SessionRecord> = {}): SessionRecord => {
      const id = overrides.id ?? randomId()
      const now = clock.now
      return {
        id,
        userId: 'alice',
        fingerprintHash: `fp-${id}`,
        createdAt: now,
        lastSeenAt: now,
        idleExpiresAt: now + 30 * MINUTE,
        absoluteExpiresAt: now + 12 * HOUR,
        remembered: false,
        refresh: { hash: `r0-${id}`, rotatedAt: now, rotations: 0 },
        ...overrides
      }
    }
    return { source, target, clock, removed, make }
  }

  await t.test('scanned sessions import as they were: records, refresh state, deadlines, per-user order', async (t) => {
    const { source, target, clock, make } = await setup(t)
    const made: SessionRecord[] = []
    for (let user = 0; user < 12; user++) {
      for (let j = 0; j <= user % 3; j++) {
        const session = make({ userId: `user-${user}`, lastSeenAt: clock.now + j })
        assert.ok((await source.create(session, ROOMY, clock.now)).created)
        made.push(session)
      }
    }
    const full = make({
      userId: 'carol',
      remembered: true,
      claims: { role: 'admin', nested: { list: [1, 'two', null] } },
      refresh: { hash: 'h-current', nextHash: 'h-next', rotatedAt: clock.now - 5, rotations: 7 },
      device: FIREFOX,
      ip: '203.0.113.7',
      location: { country: 'FR', city: 'Lyon' },
      flags: ['new_device'],
      travelAnchor: { latitude: 45.75, longitude: 4.85, at: clock.now }
    })
    const bare = make({ userId: 'dave' })
    delete (bare as { refresh?: unknown }).refresh
    for (const session of [full, bare]) await source.create(session, ROOMY, clock.now)
    made.push(full, bare)
    clock.advance(MINUTE)

    const scanned = await collect(source.scan(7, clock.now))
    t.strictSame(await target.importSessions(scanned, clock.now), { imported: made.length, skipped: 0 })
    for (const session of made) t.strictSame(await target.get(session.id, clock.now), session, `${session.userId} ${session.id} as it was`)
    t.strictSame((await collect(target.scan(50, clock.now))).sort(byId), [...made].sort(byId), 'scan of the target: the same sessions')
    t.strictSame(await target.listUser('user-11', clock.now), await source.listUser('user-11', clock.now), 'listUser: same sessions, same order')
    const stats = await target.stats(clock.now)
    t.equal(stats.sessions, made.length, 'stats count them')
    t.equal(stats.users, 14)
    t.strictSame(stats.sessionsPerUser, { 1: 6, 2: 4, 3: 4 }, 'and their users, by size')

    clock.advance(30 * MINUTE - MINUTE - 1)
    t.ok(await target.get(full.id, clock.now), 'live up to its idle deadline')
    clock.advance(1)
    t.equal(await target.get(full.id, clock.now), undefined, 'and not past it: the deadline came along')
  })

  await t.test('an imported session rotates, detects reuse and counts towards the limit as it did', async (t) => {
    const { target, clock, make } = await setup(t)
    const rotated = make({ refresh: { hash: 'h1', nextHash: 'h2', rotatedAt: clock.now, rotations: 1 } })
    const others = [make({ lastSeenAt: clock.now - 2 }), make({ lastSeenAt: clock.now - 1 })]
    t.strictSame(await target.importSessions([rotated, ...others], clock.now), { imported: 3, skipped: 0 })

    const activity = { lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE }
    t.strictSame(await target.rotate(rotated.id, { presentedHash: 'h1', successorHash: 'h3', graceMs: 10_000, activity }, clock.now),
      { outcome: 'conflict' }, 'the grace window of the rotation before the move still holds')
    const next = await target.rotate(rotated.id, { presentedHash: 'h2', successorHash: 'h3', graceMs: 10_000, activity }, clock.now)
    t.equal(next.outcome, 'rotated', 'the pending successor rotates')
    t.equal(next.outcome === 'rotated' && next.session.refresh.rotations, 2, 'counting from the imported generation')

    const fourth = make({ lastSeenAt: clock.now + 1 })
    const created = await target.create(fourth, EVICT, clock.now)
    t.strictSame(created.created && created.evicted.map((session) => session.id), [others[0]?.id],
      'the per-user limit sees imported sessions: the least recently active goes')
    const revoked = await target.revokeUser('alice', fourth.id, clock.now)
    t.equal(revoked.length, 2, 'revokeUser finds them through the index')
    t.strictSame((await target.listUser('alice', clock.now)).map((session) => session.id), [fourth.id])

    const stolen = make({ refresh: { hash: 'h5', rotatedAt: clock.now, rotations: 5 } })
    await target.importSessions([stolen], clock.now)
    const reuse = await target.rotate(stolen.id, { presentedHash: 'h4', successorHash: 'h6', graceMs: 0, activity }, clock.now)
    t.equal(reuse.outcome, 'reuse', 'an older token than the imported state is reuse, and revokes')
    t.equal(await target.get(stolen.id, clock.now), undefined)
  })

  await t.test('import skips ended sessions and keeps the newer copy of a session it holds', async (t) => {
    const { target, clock, make, removed } = await setup(t)
    const ended = make({ idleExpiresAt: clock.now })
    const absolute = make({ absoluteExpiresAt: clock.now - 1 })
    const live = make()
    t.strictSame(await target.importSessions([ended, absolute, live], clock.now), { imported: 1, skipped: 2 })
    t.equal(await target.get(ended.id, clock.now), undefined)
    t.equal(await target.get(absolute.id, clock.now), undefined)

    t.strictSame(await target.importSessions([live], clock.now), { imported: 1, skipped: 0 }, 'the same copy again: written over itself')
    t.equal((await target.stats(clock.now)).sessions, 1, 'no duplicate')
    t.equal((await target.listUser('alice', clock.now)).length, 1)

    clock.advance(MINUTE)
    const touched = await target.touch(live.id, { lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE }, clock.now)
    t.strictSame(await target.importSessions([live], clock.now), { imported: 0, skipped: 1 }, 'an older copy (less recent activity) is skipped')
    t.strictSame(await target.get(live.id, clock.now), touched, 'and left the newer one')

    const rotated = { ...live, lastSeenAt: live.lastSeenAt - 1, refresh: { hash: 'rx', rotatedAt: clock.now, rotations: 1 } }
    t.strictSame(await target.importSessions([rotated], clock.now), { imported: 1, skipped: 0 }, 'a copy one rotation ahead replaces it')
    t.strictSame(await target.get(live.id, clock.now), rotated)
    t.strictSame(await target.importSessions([live], clock.now), { imported: 0, skipped: 1 }, 'and the copy from before the rotation cannot come back')
    t.strictSame(await target.get(live.id, clock.now), rotated)
    const later = { ...rotated, lastSeenAt: clock.now + 1, idleExpiresAt: clock.now + HOUR }
    t.strictSame(await target.importSessions([later], clock.now), { imported: 1, skipped: 0 }, 'later activity replaces it')
    t.strictSame(await target.get(live.id, clock.now), later)
    t.equal((await target.listUser('alice', clock.now)).length, 1, 'still one session in the index')
    t.strictSame(removed.target, [], 'nothing reported as removed')
    clock.advance(HOUR + 1 + CLOCK_SKEW_ALLOWANCE_MS)
    t.equal(await target.get(live.id, clock.now), undefined, 'an imported session ends like any other')
    t.strictSame(removed.target, ['expired'], 'and is reported once removed')
  })

  await t.test('counters move with their count, times and window, and keep counting', async (t) => {
    const { source, target, clock } = await setup(t)
    for (let j = 0; j < 3; j++) await source.increment('login:alice', 10 * MINUTE, clock.now + j)
    await source.increment('device:bob', HOUR, clock.now)
    await source.increment('short', MINUTE, clock.now)
    for (let j = 0; j < 30; j++) await source.increment(`many:${j}`, HOUR, clock.now)
    clock.advance(MINUTE)

    const held = await collect(source.scanCounters(8, clock.now))
    const keys = held.map((counter) => counter.key).sort()
    t.equal(keys.length, 32, 'every live counter once; the ended one left out')
    t.notOk(keys.includes('short'))
    t.strictSame(held.find((counter) => counter.key === 'login:alice'),
      { key: 'login:alice', count: 3, firstAt: clock.now - MINUTE, lastAt: clock.now - MINUTE + 2, expiresAt: clock.now - MINUTE + 2 + 10 * MINUTE })

    t.strictSame(await target.importCounters(held, clock.now), { imported: 32, skipped: 0 })
    t.strictSame(plain(await target.counter('login:alice', clock.now)), plain(await source.counter('login:alice', clock.now)), 'read back alike')
    t.strictSame((await collect(target.scanCounters(100, clock.now))).sort((a, b) => a.key < b.key ? -1 : 1),
      [...held].sort((a, b) => a.key < b.key ? -1 : 1), 'scanned back alike')
    const next = await target.increment('login:alice', 10 * MINUTE, clock.now)
    t.strictSame(plain(next), { count: 4, firstAt: clock.now - MINUTE, lastAt: clock.now }, 'counting on from the imported count')
    await target.decrement('device:bob', clock.now)
    t.equal(plain(await target.counter('device:bob', clock.now)), undefined, 'decrement works on it')

    const ended: HeldCounter = { key: 'ended', count: 2, firstAt: clock.now - HOUR, lastAt: clock.now - HOUR, expiresAt: clock.now }
    t.strictSame(await target.importCounters([ended], clock.now), { imported: 0, skipped: 1 }, 'an ended window is skipped')
    t.equal(await target.counter('ended', clock.now), undefined)

    const replaced: HeldCounter = { key: 'login:alice', count: 9, firstAt: clock.now, lastAt: clock.now, expiresAt: clock.now + MINUTE }
    await target.importCounters([replaced], clock.now)
    t.strictSame(plain(await target.counter('login:alice', clock.now)), { count: 9, firstAt: clock.now, lastAt: clock.now }, 'an import replaces the counter under its key')
    clock.advance(MINUTE - 1)
    t.ok(await target.counter('login:alice', clock.now), 'until the end of its window')
    clock.advance(1)
    t.equal(await target.counter('login:alice', clock.now), undefined, 'and no longer')
  })
}
