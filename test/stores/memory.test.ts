import fc from 'fast-check'
import t from 'tap'
import { CLOCK_SKEW_ALLOWANCE_MS, MemoryStore, memoryStore, type MemoryStoreOptions, type SessionRecord, type StoreContext } from '../../lib/index.js'
import { MemoryCounters } from '../../lib/stores/memory-counters.js'
import { EPOCH, MINUTE, TestClock } from '../helper.js'

const LIMIT = { max: 100, onLimit: 'evict-oldest' } as const

function session (id: string, userId: string, now: number, lifetimeMs = 30 * MINUTE): SessionRecord {
  return {
    id,
    userId,
    fingerprintHash: 'h',
    createdAt: now,
    lastSeenAt: now,
    idleExpiresAt: now + lifetimeMs,
    absoluteExpiresAt: now + 2 * lifetimeMs,
    remembered: false
  }
}

function open (store: MemoryStore, clock: TestClock): Array<[string, string]> {
  const removed: Array<[string, string]> = []
  const context: StoreContext = { now: clock.read, onRemoved: (s, reason) => removed.push([s.id, reason]) }
  store.open(context)
  return removed
}

t.test('eviction at capacity drops the least recently used and keeps the user index consistent', async (t) => {
  const clock = new TestClock()
  const store = memoryStore({ max: 3 })
  t.teardown(() => store.close())
  const removed = open(store, clock)
  await store.create(session('a1', 'alice', clock.now), LIMIT, clock.now)
  await store.create(session('a2', 'alice', clock.now), LIMIT, clock.now)
  await store.create(session('b1', 'bob', clock.now), LIMIT, clock.now)
  await store.get('a1', clock.now) // a1 is now more recently used than a2
  await store.create(session('c1', 'carol', clock.now), LIMIT, clock.now)
  t.same(removed, [['a2', 'capacity']])
  t.same((await store.listUser('alice', clock.now)).map((s) => s.id), ['a1'])
  t.match(await store.stats(), { sessions: 3, users: 3, evictions: 1, expirations: 0 })
  await store.create(session('d1', 'dave', clock.now), LIMIT, clock.now)
  await store.create(session('e1', 'erin', clock.now), LIMIT, clock.now)
  t.match(await store.stats(), { sessions: 3, users: 3, evictions: 3 }, 'users whose last session was evicted leave the index')
})

t.test('revokeUser revokes only that user\'s sessions, while other requests free and take slots meanwhile', async (t) => {
  const clock = new TestClock()
  const store = memoryStore()
  t.teardown(() => store.close())
  open(store, clock)
  await store.create(session('a1', 'alice', clock.now), LIMIT, clock.now)
  await store.create(session('a2', 'alice', clock.now), LIMIT, clock.now)
  await store.create(session('b1', 'bob', clock.now), LIMIT, clock.now)
  // Another request, while revokeUser awaits its first revoke: a2 signs out, and bob signs in again into its slot.
  let meanwhile: Promise<unknown> = Promise.resolve()
  queueMicrotask(() => {
    meanwhile = Promise.all([store.revoke('a2', clock.now), store.create(session('b2', 'bob', clock.now), LIMIT, clock.now)])
  })
  const revoked = await store.revokeUser('alice', undefined, clock.now)
  await meanwhile
  t.strictSame(revoked.map((s) => s.id), ['a1'])
  t.strictSame((await store.listUser('bob', clock.now)).map((s) => s.id).sort(), ['b1', 'b2'], 'bob keeps both')
})

t.test('a read past the deadline by the plugin\'s clock removes the session at once, and says so', async (t) => {
  const clock = new TestClock()
  const store = memoryStore()
  t.teardown(() => store.close())
  const removed = open(store, clock)
  await store.create(session('a1', 'alice', clock.now, MINUTE), LIMIT, clock.now)
  clock.advance(MINUTE)
  t.ok(await store.get('a1', clock.now - 1), 'at the deadline itself, by a caller\'s earlier now, still live')
  t.strictSame(removed, [])
  clock.advance(1)
  t.equal(await store.get('a1', clock.now - MINUTE), undefined, 'past it by the plugin\'s clock: gone, whatever the caller\'s now')
  t.strictSame(removed, [['a1', 'expired']])
  t.match(await store.stats(), { sessions: 0, expirations: 1 })
})

t.test('a record handed out never changes under its holder, and a holder that changes its fields changes nothing in the store', async (t) => {
  const clock = new TestClock()
  const store = memoryStore()
  t.teardown(() => store.close())
  open(store, clock)
  const given = { ...session('a1', 'alice', clock.now), ip: '192.0.2.1', refresh: { hash: 'r0', rotatedAt: clock.now, rotations: 0 } }
  await store.create(given, LIMIT, clock.now)
  const held = await store.get('a1', clock.now) as SessionRecord
  const before = structuredClone(held)
  clock.advance(MINUTE)
  await store.touch('a1', { lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE, changes: { ip: '198.51.100.7' } }, clock.now)
  await store.rotate('a1', { presentedHash: 'r0', successorHash: 'r1', graceMs: 0, activity: { lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE } }, clock.now)
  t.strictSame(held, before, 'the first record is as it was read')
  const now = await store.get('a1', clock.now) as SessionRecord
  t.match(now, { ip: '198.51.100.7', refresh: { hash: 'r0', nextHash: 'r1', rotations: 1 } }, 'while the store moved on')
  ;(now as { ip: string }).ip = '203.0.113.9'
  ;(now.refresh as { hash: string }).hash = 'planted'
  ;(given as { ip: string }).ip = '203.0.113.10'
  t.match(await store.get('a1', clock.now), { ip: '198.51.100.7', refresh: { hash: 'r0' } }, 'changing a record read, or the one given to create, changes nothing stored')
})

t.test("onCapacity: 'reject' refuses new sessions when full, after purging expired ones", async (t) => {
  const clock = new TestClock()
  const store = memoryStore({ max: 2, onCapacity: 'reject' })
  t.teardown(() => store.close())
  open(store, clock)
  await store.create(session('a1', 'alice', clock.now, MINUTE), LIMIT, clock.now)
  await store.create(session('b1', 'bob', clock.now, 10 * MINUTE), LIMIT, clock.now)
  await t.rejects(store.create(session('c1', 'carol', clock.now), LIMIT, clock.now), { code: 'FST_SESSION_GUARD_STORE_FULL', statusCode: 503 })
  t.ok(await store.get('b1', clock.now), 'nothing was evicted')
  clock.advance(2 * MINUTE)
  t.match(await store.create(session('c1', 'carol', clock.now), LIMIT, clock.now), { created: true }, 'room once a1 expired')
  t.match(await store.stats(), { sessions: 2, expirations: 1 })
})

t.test('the purge timer removes expired sessions and their index entries, and close() stops it', async (t) => {
  const clock = new TestClock()
  const store = memoryStore({ purgeIntervalMs: 1000 })
  const removed = open(store, clock)
  await store.create(session('a1', 'alice', clock.now, MINUTE), LIMIT, clock.now)
  await store.create(session('a2', 'alice', clock.now, 10 * MINUTE), LIMIT, clock.now)
  clock.advance(2 * MINUTE)
  // Let the real interval fire once: this test is about the timer itself.
  await new Promise((resolve) => setTimeout(resolve, 1100))
  t.same(removed, [['a1', 'expired']])
  t.match(await store.stats(), { sessions: 1, users: 1, expirations: 1 })
  await store.close()
  await store.close()
  t.pass('close() is idempotent')
})

t.test('a session past its deadline is never returned, even before lru-cache sees it stale', async (t) => {
  const clock = new TestClock()
  const store = memoryStore()
  t.teardown(() => store.close())
  const removed = open(store, clock)
  await store.create(session('a1', 'alice', clock.now, MINUTE), LIMIT, clock.now)
  t.equal(await store.get('a1', clock.now + MINUTE), undefined, 'at the deadline exactly')
  t.same(removed, [], 'refused, but removed only past the clock-skew allowance')
  t.same((await store.listUser('alice', clock.now)).map((s) => s.id), ['a1'], 'still live by a clock behind')
  t.equal(await store.get('a1', clock.now + MINUTE + CLOCK_SKEW_ALLOWANCE_MS), undefined)
  t.same(removed, [['a1', 'expired']])
  t.same(await store.listUser('alice', clock.now), [])
})

t.test('a store works before open() with the system clock', async (t) => {
  const store = memoryStore()
  t.teardown(() => store.close())
  const now = Date.now()
  await store.create(session('a1', 'alice', now), LIMIT, now)
  t.ok(await store.get('a1', now))
  const removable = now + 2 * 30 * MINUTE + CLOCK_SKEW_ALLOWANCE_MS
  t.equal(await store.get('a1', removable), undefined, 'an expiry found before open() is removed, reported to no one')
  t.match(await store.stats(), { sessions: 0, expirations: 1 })
})

t.test('constructor options are validated, as strictly as the plugin\'s', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    [{ max: 0 }, /"memoryStore.max": must be a positive integer/],
    [{ max: 1.5 }, /"memoryStore.max"/],
    [{ onCapacity: 'drop' }, /"memoryStore.onCapacity": must be 'evict-lru' or 'reject'/],
    [{ purgeIntervalMs: -1 }, /"memoryStore.purgeIntervalMs": must be a positive number/],
    [{ maxCounters: 0 }, /"memoryStore.maxCounters": must be a positive integer/],
    // A misspelt name is refused, not silently left at its default.
    [{ maxSessions: 10 }, /"memoryStore.maxSessions": is not an option of memoryStore\(\)$/],
    [{ oncapacity: 'reject' }, /"memoryStore.oncapacity": is not an option/],
    [5, /"memoryStore": must be an object/]
  ]
  for (const [options, message] of bad) {
    t.throws(() => memoryStore(options as MemoryStoreOptions), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message }, String(message))
  }
  t.ok(new MemoryStore() instanceof MemoryStore)
  t.equal(EPOCH > 0, true)
})

t.test('rotate answers missing for an unknown session or one without refresh state', async (t) => {
  const clock = new TestClock()
  const store = memoryStore()
  t.teardown(() => store.close())
  open(store, clock)
  const rotation = { presentedHash: 'a', successorHash: 'b', graceMs: 0, activity: { lastSeenAt: clock.now, idleExpiresAt: clock.now + MINUTE } }
  t.same(await store.rotate('nope', rotation, clock.now), { outcome: 'missing' })
  await store.create(session('a1', 'alice', clock.now), LIMIT, clock.now)
  t.same(await store.rotate('a1', rotation, clock.now), { outcome: 'missing' })
})

t.test('a store expires sessions before open() without a listener', async (t) => {
  const store = memoryStore()
  t.teardown(() => store.close())
  const now = Date.now()
  await store.create(session('a1', 'alice', now, MINUTE), LIMIT, now)
  t.equal(await store.get('a1', now + MINUTE), undefined)
})

t.test('counters slide with each event, expire after their window, and can be reset', async (t) => {
  const clock = new TestClock()
  const store = memoryStore({ maxCounters: 2 })
  t.teardown(() => store.close())
  open(store, clock)
  t.same(await store.increment('k', MINUTE, clock.now), { count: 1, firstAt: clock.now, lastAt: clock.now, expiresAt: clock.now + MINUTE })
  clock.advance(MINUTE - 1)
  t.match(await store.increment('k', MINUTE, clock.now), { count: 2, firstAt: EPOCH, lastAt: clock.now })
  clock.advance(MINUTE - 1)
  t.match(await store.counter('k', clock.now), { count: 2 }, 'the window slid with the last event')
  clock.advance(1)
  t.equal(await store.counter('k', clock.now), undefined, 'expired')
  t.match(await store.increment('k', MINUTE, clock.now), { count: 1 }, 'a fresh start')
  await store.resetCounter('k')
  t.equal(await store.counter('k', clock.now), undefined)
  for (const key of ['a', 'b', 'c']) await store.increment(key, MINUTE, clock.now)
  t.equal(await store.counter('a', clock.now), undefined, 'bounded: the least recently used counter went')
  t.throws(() => memoryStore({ maxCounters: 0 }), /"memoryStore.maxCounters"/)
})

/** Opens the store with a log that keeps its warnings. */
/** The keys of the counters held, live at `now` (at the time they were written, every one held), sorted. */
async function held (store: MemoryStore, now: number): Promise<string[]> {
  const keys: string[] = []
  for await (const batch of store.scanCounters(100, now)) keys.push(...batch.map((c) => c.key))
  return keys.sort()
}

function openLogged (store: MemoryStore, clock: TestClock): Array<[object, string]> {
  const warnings: Array<[object, string]> = []
  const log = { error: () => {}, info: () => {}, warn: (details: object, message: string) => { warnings.push([details, message]) } }
  store.open({ now: clock.read, onRemoved: () => {}, log })
  return warnings
}

t.test('a full counters cache drops expired counters before any live one: a lockout outlives a flood', async (t) => {
  const clock = new TestClock()
  const store = memoryStore({ maxCounters: 4 })
  t.teardown(() => store.close())
  const warnings = openLogged(store, clock)
  // The lockout is the least recently used counter, and the only one still live later.
  await store.increment('lockout:alice', 15 * MINUTE, clock.now)
  for (const key of ['jti:1', 'jti:2', 'jti:3']) await store.increment(key, 2 * MINUTE, clock.now)
  clock.advance(2 * MINUTE)
  for (const key of ['jti:4', 'jti:5', 'jti:6']) await store.increment(key, 2 * MINUTE, clock.now)
  t.match(await store.counter('lockout:alice', clock.now), { count: 1 }, 'the live lockout counter is still held')
  for (const key of ['jti:4', 'jti:5', 'jti:6']) t.ok(await store.counter(key, clock.now), `${key} is held`)
  t.match(await store.stats(), { counterEvictions: 0 }, 'no live counter went')
  t.same(warnings, [], 'nothing to warn of')
})

t.test('a counter is judged by its latest window, and reset, decremented or imported counters keep their place', async (t) => {
  const clock = new TestClock()
  const store = memoryStore({ maxCounters: 3 })
  t.teardown(() => store.close())
  openLogged(store, clock)
  await store.increment('slid', 40_000, clock.now) // first due at +40 s, the earliest …
  await store.increment('short', MINUTE, clock.now)
  await store.increment('gone', MINUTE, clock.now)
  await store.resetCounter('gone')
  await store.importCounters([{ key: 'imported', count: 2, firstAt: clock.now, lastAt: clock.now, expiresAt: clock.now + 10 * MINUTE }], clock.now)
  clock.advance(MINUTE / 2)
  await store.increment('slid', MINUTE, clock.now) // … now at +90 s
  await store.decrement('slid', clock.now)
  clock.advance(MINUTE / 2)
  await store.increment('new', MINUTE, clock.now)
  t.equal(await store.counter('short', clock.now), undefined, 'the expired one made room')
  t.match(await store.counter('slid', clock.now), { count: 1 }, 'not dropped for the window it had before it slid')
  t.match(await store.counter('imported', clock.now), { count: 2 })
  t.match(await store.stats(), { counterEvictions: 0 })
  clock.advance(MINUTE / 2)
  // One key counted over and over, far past the bound: what tracks the deadlines stays bounded and right.
  for (let i = 0; i < 20; i++) await store.increment('busy', 10 * MINUTE, clock.now)
  clock.advance(MINUTE)
  await store.increment('later', MINUTE, clock.now)
  t.equal(await store.counter('slid', clock.now), undefined, 'slid expired and made room for busy')
  t.equal(await store.counter('new', clock.now), undefined, 'then new expired and made room')
  t.match(await store.counter('busy', clock.now), { count: 20 }, 'the busy one stayed')
  t.match(await store.counter('imported', clock.now), { count: 2 })
  t.match(await store.stats(), { counterEvictions: 0 })
})

t.test('with every counter live, the least recently used goes: counted, and warned of once a minute', async (t) => {
  const clock = new TestClock()
  const store = memoryStore({ maxCounters: 2 })
  t.teardown(() => store.close())
  const warnings = openLogged(store, clock)
  await store.increment('lockout:alice', 15 * MINUTE, clock.now)
  await store.increment('jti:1', 2 * MINUTE, clock.now)
  await store.increment('jti:2', 2 * MINUTE, clock.now)
  t.equal(await store.counter('lockout:alice', clock.now), undefined, 'the least recently used live counter went')
  t.match(await store.stats(), { counterEvictions: 1 })
  t.equal(warnings.length, 1, 'warned')
  t.same(warnings[0], [{ maxCounters: 2, counterEvictions: 1 }, 'session guard: the memory store dropped a live counter (a lockout, a DPoP proof\'s jti …) to stay within maxCounters: ' +
    'set memoryStore.maxCounters to at least peak DPoP requests/s × 2 × dpop.window + the login counters, or use the Redis store (docs/stores.md)'])
  await store.increment('jti:3', 2 * MINUTE, clock.now)
  clock.advance(MINUTE - 1)
  await store.increment('jti:4', 2 * MINUTE, clock.now)
  t.match(await store.stats(), { counterEvictions: 3 }, 'each one counted')
  t.equal(warnings.length, 1, 'but warned of once within a minute')
  clock.advance(1)
  await store.increment('jti:5', 2 * MINUTE, clock.now)
  t.equal(warnings.length, 2, 'and again a minute later')
  t.match(warnings[1], [{ maxCounters: 2, counterEvictions: 4 }])
  const quiet = memoryStore({ maxCounters: 1 })
  t.teardown(() => quiet.close())
  open(quiet, clock)
  await quiet.increment('a', MINUTE, clock.now)
  await quiet.increment('b', MINUTE, clock.now)
  t.match(await quiet.stats(), { counterEvictions: 1 }, 'counted without a log too')
  clock.advance(MINUTE)
  await quiet.increment('c', MINUTE, clock.now)
  t.match(await quiet.counter('c', clock.now), { count: 1 })
  t.match(await quiet.stats(), { counterEvictions: 1 }, 'the one counter held had expired: not counted')
})

t.test('the deadlines are a heap: after any drop, the earliest one left is on top', async (t) => {
  // Written in this order the heap is [1, 2, 3, 8, 9, 4] (ms). Dropping 1 moves 4 from the end down
  // under 2 and stops there, since 8 and 9 are later: were it pushed on past them, a later deadline
  // would sit above an earlier one and hide a counter that has expired.
  const clock = new TestClock()
  const store = memoryStore({ maxCounters: 6 })
  t.teardown(() => store.close())
  open(store, clock)
  const start = clock.now
  for (const [key, window] of [['a', 1], ['b', 2], ['c', 3], ['d', 8], ['e', 9], ['f', 4]] as const) await store.increment(key, window, start)
  const at = async (elapsed: number, key: string): Promise<void> => {
    clock.advance(start + elapsed - clock.now)
    await store.increment(key, 100, clock.now)
  }
  await at(1, 'g') // a made room
  await at(2, 'h') // b
  await at(4, 'i') // c
  await at(4, 'j') // f, the earliest left, though d (8) was written before it
  t.match(await store.stats(), { counterEvictions: 0 }, 'an expired counter made room each time')
  t.same(await held(store, clock.now), ['d', 'e', 'g', 'h', 'i', 'j'])
})

t.test('the deadlines are rebuilt, sorted, from the counters held once outdated ones fill twice the bound', async (t) => {
  const clock = new TestClock()
  const store = memoryStore({ maxCounters: 3 })
  t.teardown(() => store.close())
  open(store, clock)
  const start = clock.now
  // Four outdated deadlines (their counters reset), then three live counters: the third write rebuilds the
  // heap from the counters held, most recently used first, so latest deadline first until sorted.
  for (const key of ['s1', 's2', 's3', 's4']) {
    await store.increment(key, 1000, start)
    await store.resetCounter(key)
  }
  for (const [key, window] of [['early', 100], ['mid', 300], ['late', 500]] as const) await store.increment(key, window, start)
  for (const [elapsed, key] of [[100, 'new'], [600, 'n2'], [600, 'n3']] as const) {
    clock.advance(start + elapsed - clock.now)
    await store.increment(key, 1000, clock.now)
  }
  t.match(await store.stats(), { counterEvictions: 0 }, 'early, mid, then late made room, in that order, each expired')
  t.same(await held(store, clock.now), ['n2', 'n3', 'new'])
})

t.test('what tracks the deadlines stays within twice maxCounters, however many writes', async (t) => {
  const counters = new MemoryCounters(10, () => undefined)
  let most = 0
  for (let i = 0; i < 1000; i++) {
    counters.set(`k${i % 5}`, { count: 1, firstAt: i, lastAt: i, expiresAt: i + MINUTE }, i)
    counters.delete(`k${i % 5}`)
    most = Math.max(most, counters.trackedDeadlines)
  }
  t.ok(most <= 20, `at most ${most} deadlines tracked`)
})

t.test('a counter read past its window is removed once the clock-skew allowance has passed too', async (t) => {
  const clock = new TestClock()
  const store = memoryStore()
  t.teardown(() => store.close())
  open(store, clock)
  const start = clock.now
  await store.increment('lockout:alice', MINUTE, start)
  t.equal(await store.counter('lockout:alice', start + MINUTE + CLOCK_SKEW_ALLOWANCE_MS - 1), undefined, 'expired for this reader')
  t.same(await held(store, start), ['lockout:alice'], 'kept for a reader whose clock is behind')
  t.equal(await store.counter('lockout:alice', start + MINUTE + CLOCK_SKEW_ALLOWANCE_MS), undefined)
  t.same(await held(store, start), [], 'removed at the end of the allowance')
})

t.test('counters at their bound, against a model: the earliest expired goes first, else the least recently used, counted', async (t) => {
  const op = fc.record({
    kind: fc.constantFrom('increment' as const, 'counter' as const, 'reset' as const),
    key: fc.integer({ min: 0, max: 9 }),
    windowMs: fc.integer({ min: 1, max: 8 }),
    elapse: fc.integer({ min: 0, max: 3 })
  })
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 6 }), fc.array(op, { maxLength: 60 }), async (maxCounters, ops) => {
    const clock = new TestClock()
    const store = memoryStore({ maxCounters })
    open(store, clock)
    /** What the store should hold, least recently used first. */
    let model: Array<{ key: string, expiresAt: number }> = []
    let evictions = 0
    const held = async (): Promise<string[]> => {
      const keys: string[] = []
      // At time 0, every counter held is live: the walk lists them all, without using them.
      for await (const batch of store.scanCounters(100, 0)) keys.push(...batch.map((c) => c.key))
      return keys.sort()
    }
    const take = (k: string): { key: string, expiresAt: number } | undefined => {
      const entry = model.find((e) => e.key === k)
      model = model.filter((e) => e.key !== k)
      return entry
    }
    for (const step of ops) {
      clock.advance(step.elapse)
      const k = `k${step.key}`
      const now = clock.now
      if (step.kind === 'reset') {
        await store.resetCounter(k)
        take(k)
      } else if (step.kind === 'counter') {
        const entry = take(k)
        // Read, a counter is marked used; one past its window stays held until the
        // clock-skew allowance has passed as well (an hour: beyond these steps).
        if (entry !== undefined) model.push(entry)
        const live = entry !== undefined && now < entry.expiresAt
        if ((await store.counter(k, now) !== undefined) !== live) return false
      } else {
        const entry = take(k)
        if (entry === undefined && model.length >= maxCounters) {
          const earliest = Math.min(...model.map((e) => e.expiresAt))
          // Any of the counters whose window ended earliest may go: the store says which.
          if (earliest <= now) {
            await store.increment(k, step.windowMs, now)
            const left = await held()
            const gone = model.filter((e) => e.expiresAt === earliest && !left.includes(e.key))
            if (gone.length !== 1) return false
            take(gone[0]!.key)
            model.push({ key: k, expiresAt: now + step.windowMs })
            continue
          }
          model.shift()
          evictions++
        }
        await store.increment(k, step.windowMs, now)
        model.push({ key: k, expiresAt: now + step.windowMs })
      }
      if ((await store.stats()).counterEvictions !== evictions) return false
      if (String(await held()) !== String(model.map((e) => e.key).sort())) return false
    }
    return true
  }), { numRuns: 200 })
  t.pass('the store held what the model held, and counted the same evictions, after every step')
})

t.test('the sessions-per-user histogram follows creates, revokes and evictions', async (t) => {
  const clock = new TestClock()
  const store = memoryStore({ max: 4 })
  t.teardown(() => store.close())
  open(store, clock)
  for (const [id, user] of [['a1', 'alice'], ['a2', 'alice'], ['a3', 'alice'], ['b1', 'bob']] as const) {
    await store.create(session(id, user, clock.now), LIMIT, clock.now)
  }
  t.match(await store.stats(), { sessionsPerUser: { 1: 1, 3: 1 } })
  await store.revoke('a2', clock.now)
  t.match(await store.stats(), { sessionsPerUser: { 1: 1, 2: 1 } })
  await store.create(session('c1', 'carol', clock.now), LIMIT, clock.now)
  await store.create(session('d1', 'dave', clock.now), LIMIT, clock.now)
  t.same((await store.stats()).sessionsPerUser, { 1: 4 }, 'alice lost her oldest two to capacity')
})

t.test('scan yields live sessions in batches', async (t) => {
  const clock = new TestClock()
  const store = memoryStore()
  t.teardown(() => store.close())
  open(store, clock)
  await store.create(session('a1', 'alice', clock.now), LIMIT, clock.now)
  await store.create(session('a2', 'alice', clock.now, MINUTE), LIMIT, clock.now)
  await store.create(session('b1', 'bob', clock.now), LIMIT, clock.now)
  const batches: string[][] = []
  for await (const batch of store.scan(1, clock.now + MINUTE)) batches.push(batch.map((s) => s.id))
  t.same(batches, [['a1'], ['b1']], 'the expired a2 is skipped')
  const whole: string[][] = []
  for await (const batch of store.scan(10, clock.now)) whole.push(batch.map((s) => s.id))
  t.same(whole, [['a1', 'a2', 'b1']], 'one batch when it fits')
})
