import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import type { HistoryEntry, HistoryRecord, HistoryRetention, SessionStore } from '../stores/store.js'
import { TestClock } from './clock.js'
import type { StoreFactory } from './factory.js'

type HistoryStore = SessionStore & Required<Pick<SessionStore, 'appendHistory' | 'history' | 'eraseHistory'>>

const MINUTE = 60_000
const DAY = 24 * 60 * MINUTE
const RETENTION: HistoryRetention = { maxEntries: 20, maxAgeMs: 30 * DAY }
const CURSOR = /^[0-9A-Za-z_-]{1,40}$/

/** The record of a sign-in, as the plugin writes one (every optional field set). */
function signIn (time: number, n: number): HistoryRecord {
  return {
    type: 'session.created',
    time,
    sessionId: `s${n}`,
    device: { type: 'desktop', name: 'Firefox on Windows' },
    ip: '203.0.113.0',
    location: { country: 'FR', city: 'Lyon' },
    detail: { remembered: true, flags: ['new_device'], n }
  }
}

/** The record of a session's end: its reason and how long it lived (the dashboard's durations read it). */
function signOut (time: number, n: number): HistoryRecord {
  return { type: 'session.revoked', time, sessionId: `s${n}`, detail: { reason: 'user', durationMs: 754_321 } }
}

const stripIds = (entries: readonly HistoryEntry[]): HistoryRecord[] => entries.map(({ id, ...record }) => record)

/**
 * The login-history part of the store contract (`appendHistory`, `history`,
 * `eraseHistory`), case by case, as subtests of `t`, each on a fresh store
 * from `factory`. `testStore()` runs it for every store that keeps a history;
 * a store with only some of the three methods fails it.
 */
export async function historyCases (t: Test, factory: StoreFactory): Promise<void> {
  async function setup (t: Test): Promise<{ store: HistoryStore, clock: TestClock, user: string }> {
    const clock = new TestClock()
    const store = await factory(t, clock, {})
    t.teardown(() => store.close())
    // No case here removes a session.
    /* c8 ignore next */
    await store.open?.({ now: clock.read, onRemoved: () => {} })
    t.ok(store.appendHistory !== undefined && store.history !== undefined && store.eraseHistory !== undefined, 'the store has all three history methods')
    return { store: store as HistoryStore, clock, user: `user-${randomBytes(6).toString('base64url')}` }
  }

  await t.test('entries come back newest first, as written, each with a cursor of its own', async (t) => {
    const { store, clock, user } = await setup(t)
    const written: HistoryRecord[] = []
    for (let n = 0; n < 5; n++) {
      const record = n === 2 ? { type: 'login.failed', time: clock.now } : n === 3 ? signOut(clock.now, n) : signIn(clock.now, n)
      written.push(record)
      await store.appendHistory(user, record, RETENTION, clock.now)
      clock.advance(n % 2 === 0 ? 0 : 1000) // two entries share a millisecond
    }
    const read = await store.history(user, { limit: 10 }, RETENTION, clock.now)
    t.strictSame(stripIds(read), [...written].reverse(), 'every field round-trips (an end entry\'s durationMs too); absent ones stay absent')
    t.ok(read.every((entry) => CURSOR.test(entry.id)), 'cursors are 1 to 40 characters of [0-9A-Za-z_-]')
    t.equal(new Set(read.map((entry) => entry.id)).size, 5, 'cursors are unique')
    t.strictSame(await store.history(`${user}-other`, { limit: 10 }, RETENTION, clock.now), [], 'another user has none')
  })

  await t.test('the answers to "Was this you?" are kept as written: the entry type and the revocation reason', async (t) => {
    const { store, clock, user } = await setup(t)
    const written: HistoryRecord[] = [
      { ...signIn(clock.now, 1), type: 'alert.answered', detail: { answer: 'no' } },
      { ...signIn(clock.now, 1), type: 'session.revoked', detail: { reason: 'not-me' } }
    ]
    for (const record of written) await store.appendHistory(user, record, RETENTION, clock.now)
    t.strictSame(stripIds(await store.history(user, { limit: 10 }, RETENTION, clock.now)), [...written].reverse())
  })

  await t.test('pages: limit and before walk the history without gap or overlap', async (t) => {
    const { store, clock, user } = await setup(t)
    for (let n = 0; n < 7; n++) {
      await store.appendHistory(user, signIn(clock.now, n), RETENTION, clock.now)
      clock.advance(10)
    }
    const pages: number[][] = []
    let before: string | undefined
    for (;;) {
      const page = await store.history(user, before === undefined ? { limit: 3 } : { limit: 3, before }, RETENTION, clock.now)
      if (page.length === 0) break
      pages.push(page.map((entry) => entry.detail?.n as number))
      before = page[page.length - 1]?.id
    }
    t.strictSame(pages, [[6, 5, 4], [3, 2, 1], [0]])
  })

  await t.test('a user keeps at most maxEntries entries: the newest', async (t) => {
    const { store, clock, user } = await setup(t)
    const retention = { ...RETENTION, maxEntries: 4 }
    for (let n = 0; n < 11; n++) {
      await store.appendHistory(user, signIn(clock.now, n), retention, clock.now)
      clock.advance(1)
    }
    const read = await store.history(user, { limit: 100 }, { ...retention, maxEntries: 100 }, clock.now)
    t.strictSame(read.map((entry) => entry.detail?.n), [10, 9, 8, 7], 'the bound holds in the store, not only in the read')
  })

  await t.test('an entry is gone once maxAgeMs have passed since its time', async (t) => {
    const { store, clock, user } = await setup(t)
    await store.appendHistory(user, signIn(clock.now, 0), RETENTION, clock.now)
    clock.advance(10 * DAY)
    await store.appendHistory(user, signIn(clock.now, 1), RETENTION, clock.now)
    clock.advance(20 * DAY - 1)
    t.strictSame((await store.history(user, { limit: 10 }, RETENTION, clock.now)).map((entry) => entry.detail?.n), [1, 0], 'one ms before the first ages out')
    clock.advance(1)
    t.strictSame((await store.history(user, { limit: 10 }, RETENTION, clock.now)).map((entry) => entry.detail?.n), [1], 'the first is gone at maxAgeMs')
    clock.advance(10 * DAY)
    await store.appendHistory(user, signIn(clock.now, 2), RETENTION, clock.now)
    t.strictSame((await store.history(user, { limit: 10 }, RETENTION, clock.now)).map((entry) => entry.detail?.n), [2], 'an append after both aged out')
  })

  await t.test('parallel appends of one user all land, within the bound', async (t) => {
    const { store, clock, user } = await setup(t)
    await Promise.all(Array.from({ length: 15 }, async (_, n) => await store.appendHistory(user, signIn(clock.now, n), RETENTION, clock.now)))
    const read = await store.history(user, { limit: 100 }, RETENTION, clock.now)
    t.strictSame(read.map((entry) => entry.detail?.n as number).sort((a, b) => a - b), Array.from({ length: 15 }, (_, n) => n))
    await Promise.all(Array.from({ length: 15 }, async (_, n) => await store.appendHistory(user, signIn(clock.now, 100 + n), RETENTION, clock.now)))
    t.equal((await store.history(user, { limit: 100 }, RETENTION, clock.now)).length, RETENTION.maxEntries, 'never more than maxEntries')
  })

  await t.test('eraseHistory removes one user\'s history and no one else\'s', async (t) => {
    const { store, clock, user } = await setup(t)
    await store.appendHistory(user, signIn(clock.now, 0), RETENTION, clock.now)
    await store.appendHistory(`${user}-other`, signIn(clock.now, 1), RETENTION, clock.now)
    await store.eraseHistory(user)
    t.strictSame(await store.history(user, { limit: 10 }, RETENTION, clock.now), [])
    t.equal((await store.history(`${user}-other`, { limit: 10 }, RETENTION, clock.now)).length, 1)
    await store.eraseHistory(`${user}-nobody`)
    await store.appendHistory(user, signIn(clock.now, 2), RETENTION, clock.now)
    t.equal((await store.history(user, { limit: 10 }, RETENTION, clock.now)).length, 1, 'an erased history starts again')
  })

  await t.test('a cursor the store never gave reads as nothing older', async (t) => {
    const { store, clock, user } = await setup(t)
    await store.appendHistory(user, signIn(clock.now, 0), RETENTION, clock.now)
    for (const before of ['0', 'zz', '0-0']) {
      const page = await store.history(user, { limit: 10, before }, RETENTION, clock.now)
      t.ok(page.length <= 1, `before ${before}: no failure`)
    }
  })
}
