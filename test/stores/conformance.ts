import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import type { Test } from 'tap'
import { decideRotation, rotatedState, type RefreshState, type SessionRecord } from '../../lib/session.js'
import type { RemovalReason, SessionLimit, SessionStore } from '../../lib/stores/store.js'
import { MINUTE, TestClock } from '../helper.js'

/**
 * Builds a fresh, empty store for one test (its own key prefix, say) and
 * cleans up after it through `t.teardown`. The suite opens it with the clock
 * and closes it when the test ends.
 */
export type StoreFactory = (t: Test, clock: TestClock) => SessionStore | Promise<SessionStore>

export interface ConformanceOptions {
  /** Runs of the rotation property test (each one a few store calls). */
  rotationRuns?: number
}

const HOUR = 60 * MINUTE
const EVICT: SessionLimit = { max: 3, onLimit: 'evict-oldest' }
const REJECT: SessionLimit = { max: 3, onLimit: 'reject' }
const ROOMY: SessionLimit = { max: 100, onLimit: 'reject' }

interface Harness {
  store: SessionStore
  clock: TestClock
  removed: Array<{ id: string, reason: RemovalReason }>
  /** A session starting now, by the harness's clock. */
  make: (overrides?: Partial<SessionRecord>) => SessionRecord
  /** Creates sessions under a roomy limit, each one ms more recently active than the last. */
  add: (count: number, overrides?: Partial<SessionRecord>) => Promise<SessionRecord[]>
}

function randomId (): string {
  return randomBytes(16).toString('base64url')
}

/**
 * The store contract (`lib/stores/store.ts`), case by case. Every store runs it:
 * `test/stores/conformance-<store>.test.ts`.
 */
export async function conformance (t: Test, factory: StoreFactory, options: ConformanceOptions = {}): Promise<void> {
  const { rotationRuns = 50 } = options

  async function setup (t: Test): Promise<Harness> {
    const clock = new TestClock()
    const store = await factory(t, clock)
    t.teardown(() => store.close())
    const removed: Harness['removed'] = []
    await store.open?.({ now: clock.read, onRemoved: (session, reason) => removed.push({ id: session.id, reason }) })
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
    const add = async (count: number, overrides: Partial<SessionRecord> = {}): Promise<SessionRecord[]> => {
      const made: SessionRecord[] = []
      for (let j = 0; j < count; j++) {
        const session = make({ ...overrides, lastSeenAt: clock.now + j })
        const result = await store.create(session, ROOMY, clock.now)
        if (!result.created) throw new Error('create refused under a roomy limit')
        made.push(session)
      }
      return made
    }
    return { store, clock, removed, make, add }
  }

  const ids = (sessions: readonly SessionRecord[]): string[] => sessions.map((session) => session.id)

  await t.test('create then get returns the record as it was stored', async (t) => {
    const { store, clock, make } = await setup(t)
    const full = make({
      remembered: true,
      claims: { role: 'admin', ratio: 0.1, big: 2 ** 53 - 1, nested: { list: [1, 'two', null] }, text: 'é☃ "quoted"' },
      refresh: { hash: 'h-current', nextHash: 'h-next', rotatedAt: clock.now - 5, rotations: 7 }
    })
    const bare = make({ userId: 'bob' })
    delete (bare as { refresh?: unknown }).refresh
    t.strictSame(await store.create(full, EVICT, clock.now), { created: true, evicted: [] })
    t.strictSame(await store.create(bare, EVICT, clock.now), { created: true, evicted: [] })
    t.strictSame(await store.get(full.id, clock.now), full)
    t.strictSame(await store.get(bare.id, clock.now), bare)
    t.equal(await store.get(randomId(), clock.now), undefined, 'an unknown id is undefined')
  })

  await t.test('a session past its idle deadline is never returned', async (t) => {
    const { store, clock, make, removed } = await setup(t)
    const session = make()
    await store.create(session, EVICT, clock.now)
    clock.advance(30 * MINUTE - 1)
    t.ok(await store.get(session.id, clock.now), 'live one ms before the idle deadline')
    clock.advance(1)
    t.equal(await store.get(session.id, clock.now), undefined)
    t.strictSame(await store.listUser('alice', clock.now), [])
    t.equal(await store.touch(session.id, { lastSeenAt: clock.now, idleExpiresAt: clock.now + MINUTE }, clock.now), undefined)
    t.equal(await store.revoke(session.id, clock.now), undefined)
    t.strictSame(await store.revokeUser('alice', undefined, clock.now), [])
    t.equal(await store.get(session.id, clock.now), undefined, 'the touch did not bring it back')
    t.strictSame(removed, [{ id: session.id, reason: 'expired' }], 'reported once, as expired')
  })

  await t.test('a session past its absolute deadline is never returned, however active', async (t) => {
    const { store, clock, make } = await setup(t)
    const session = make({ absoluteExpiresAt: clock.now + 45 * MINUTE })
    await store.create(session, EVICT, clock.now)
    for (let step = 0; step < 4; step++) {
      clock.advance(10 * MINUTE)
      const touched = await store.touch(session.id, {
        lastSeenAt: clock.now,
        idleExpiresAt: Math.min(clock.now + 30 * MINUTE, session.absoluteExpiresAt)
      }, clock.now)
      t.equal(touched?.lastSeenAt, clock.now, `touch ${step} recorded`)
    }
    clock.advance(5 * MINUTE - 1)
    t.ok(await store.get(session.id, clock.now))
    clock.advance(1)
    t.equal(await store.get(session.id, clock.now), undefined)
    t.strictSame(await store.listUser('alice', clock.now), [])
    const rotation = { presentedHash: `r0-${session.id}`, successorHash: 'r1', graceMs: 0, activity: { lastSeenAt: clock.now, idleExpiresAt: clock.now + MINUTE } }
    t.strictSame(await store.rotate(session.id, rotation, clock.now), { outcome: 'missing' })
    t.equal(await store.replace(session.id, { ...session, id: randomId() }, clock.now), false)
  })

  await t.test('touch records activity on a live session only and never resurrects', async (t) => {
    const { store, clock, make } = await setup(t)
    const session = make()
    await store.create(session, EVICT, clock.now)
    clock.advance(5 * MINUTE)
    const activity = { lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE }
    const touched = await store.touch(session.id, activity, clock.now)
    t.strictSame(touched, { ...session, ...activity })
    t.strictSame(await store.get(session.id, clock.now), touched)
    clock.advance(30 * MINUTE - 1)
    t.ok(await store.get(session.id, clock.now), 'the idle deadline moved')

    await store.revoke(session.id, clock.now)
    t.equal(await store.touch(session.id, { lastSeenAt: clock.now, idleExpiresAt: clock.now + HOUR }, clock.now), undefined)
    t.equal(await store.get(session.id, clock.now), undefined, 'a revoked session stays revoked')
    t.strictSame(await store.listUser('alice', clock.now), [])
    t.equal(await store.touch(randomId(), activity, clock.now), undefined, 'an unknown id')
  })

  await t.test('at the limit, evict-oldest removes the least recently active, not the oldest', async (t) => {
    const { store, clock, make, add, removed } = await setup(t)
    const [first, second, third] = await add(3)
    clock.advance(MINUTE)
    await store.touch(first!.id, { lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE }, clock.now)
    const fourth = make({ lastSeenAt: clock.now + 1 })
    const result = await store.create(fourth, EVICT, clock.now)
    t.equal(result.created, true)
    t.strictSame(result.created && ids(result.evicted), [second!.id], 'the least recently active went')
    t.equal(await store.get(second!.id, clock.now), undefined)
    t.strictSame(ids(await store.listUser('alice', clock.now)), [fourth.id, first!.id, third!.id])
    t.strictSame(removed, [], 'a limit eviction is the plugin\'s to report, not a store removal')

    const lowered = await store.create(make({ lastSeenAt: clock.now + 2 }), { max: 2, onLimit: 'evict-oldest' }, clock.now)
    t.strictSame(lowered.created && ids(lowered.evicted).sort(), [first!.id, third!.id].sort(), 'evicts as many as needed')
    t.equal((await store.listUser('alice', clock.now)).length, 2)
    t.strictSame(await store.listUser('bob', clock.now), [], 'other users untouched')
  })

  await t.test('at the limit, reject refuses and changes nothing', async (t) => {
    const { store, clock, make, add } = await setup(t)
    const made = await add(3)
    const before = await store.listUser('alice', clock.now)
    const refused = make()
    const result = await store.create(refused, REJECT, clock.now)
    t.strictSame(result, { created: false, active: [...made].reverse() }, 'the active ones, most recent first')
    t.equal(await store.get(refused.id, clock.now), undefined)
    t.strictSame(await store.listUser('alice', clock.now), before)
    t.equal((await store.create(make({ userId: 'bob' }), REJECT, clock.now)).created, true, 'the limit is per user')
  })

  await t.test('expired sessions do not count towards the limit', async (t) => {
    const { store, clock, make, add } = await setup(t)
    await add(2, { idleExpiresAt: clock.now + MINUTE })
    const [keeper] = await add(1)
    clock.advance(MINUTE)
    const result = await store.create(make(), REJECT, clock.now)
    t.strictSame(result, { created: true, evicted: [] }, 'two of three are expired: room for more')
    const listed = ids(await store.listUser('alice', clock.now))
    t.equal(listed.length, 2)
    t.ok(listed.includes(keeper!.id))
  })

  await t.test('50 concurrent creates for one user end at exactly the limit', async (t) => {
    for (const onLimit of ['evict-oldest', 'reject'] as const) {
      const { store, clock, make } = await setup(t)
      const limit = { max: 5, onLimit }
      const results = await Promise.all(Array.from({ length: 50 }, async () => await store.create(make(), limit, clock.now)))
      const listed = await store.listUser('alice', clock.now)
      t.equal(listed.length, 5, `${onLimit}: exactly max live`)
      const created = results.filter((result) => result.created).length
      if (onLimit === 'reject') {
        t.equal(created, 5, 'reject: exactly max accepted')
      } else {
        t.equal(created, 50, 'evict-oldest: every login accepted')
        const evicted = results.flatMap((result) => result.created ? ids(result.evicted) : [])
        t.equal(new Set(evicted).size, 45, 'each of the others evicted exactly once')
      }
      t.equal((await store.stats(clock.now)).sessions, 5, `${onLimit}: stats agree`)
    }
  })

  await t.test('rotate: current, successor, conflict, lost response, reuse, missing', async (t) => {
    const { store, clock, make } = await setup(t)
    const session = make()
    await store.create(session, EVICT, clock.now)
    const grace = 10_000
    const rotate = async (presentedHash: string, successorHash: string) => await store.rotate(session.id, {
      presentedHash, successorHash, graceMs: grace, activity: { lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE }
    }, clock.now)
    const h0 = `r0-${session.id}`

    clock.advance(1000)
    const first = await rotate(h0, 'h1')
    t.strictSame(first, {
      outcome: 'rotated',
      session: { ...session, lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE, refresh: { hash: h0, nextHash: 'h1', rotatedAt: clock.now, rotations: 1 } }
    }, 'the current token rotates')
    t.strictSame(await store.get(session.id, clock.now), first.outcome === 'rotated' ? first.session : undefined)

    clock.advance(grace - 1)
    t.strictSame(await rotate(h0, 'h1-bis'), { outcome: 'conflict' }, 'the same token inside the grace window: conflict')
    t.strictSame((await store.get(session.id, clock.now))?.refresh, { hash: h0, nextHash: 'h1', rotatedAt: clock.now - grace + 1, rotations: 1 }, 'a conflict changes nothing')

    clock.advance(1)
    const lost = await rotate(h0, 'h1-ter')
    t.strictSame(lost.outcome === 'rotated' && lost.session.refresh, { hash: h0, nextHash: 'h1-ter', rotatedAt: clock.now, rotations: 2 }, 'after the grace window: the response was lost, rotate again')

    clock.advance(5)
    const promoted = await rotate('h1-ter', 'h2')
    t.strictSame(promoted.outcome === 'rotated' && promoted.session.refresh, { hash: 'h1-ter', nextHash: 'h2', rotatedAt: clock.now, rotations: 3 }, 'the successor becomes current')

    clock.advance(5)
    const reused = await rotate(h0, 'h3')
    t.equal(reused.outcome, 'reuse', 'an older generation is theft')
    t.equal(reused.outcome === 'reuse' && reused.session.id, session.id)
    t.equal(await store.get(session.id, clock.now), undefined, 'the session is revoked')
    t.strictSame(await rotate('h2', 'h3'), { outcome: 'missing' })
    t.strictSame(await store.rotate(randomId(), { presentedHash: 'x', successorHash: 'y', graceMs: grace, activity: { lastSeenAt: clock.now, idleExpiresAt: clock.now + MINUTE } }, clock.now), { outcome: 'missing' }, 'an unknown id')

    const bare = make()
    delete (bare as { refresh?: unknown }).refresh
    await store.create(bare, EVICT, clock.now)
    t.strictSame(await store.rotate(bare.id, { presentedHash: 'x', successorHash: 'y', graceMs: grace, activity: { lastSeenAt: clock.now, idleExpiresAt: clock.now + MINUTE } }, clock.now), { outcome: 'missing' }, 'a session without refresh state')
    t.ok(await store.get(bare.id, clock.now), 'and it is left alone')
  })

  await t.test('reuse of every older generation revokes the session', async (t) => {
    const { store, clock, make } = await setup(t)
    const generations = 5
    for (let older = 0; older < generations - 1; older++) {
      const session = make()
      await store.create(session, ROOMY, clock.now)
      const hashes = [`r0-${session.id}`]
      for (let j = 1; j < generations; j++) {
        hashes.push(`r${j}-${session.id}`)
        clock.advance(1)
        // present the newest (the successor once there is one), so the chain advances
        const result = await store.rotate(session.id, {
          presentedHash: hashes[j === 1 ? 0 : j - 1]!, successorHash: hashes[j]!, graceMs: 1000, activity: { lastSeenAt: clock.now, idleExpiresAt: clock.now + HOUR }
        }, clock.now)
        if (result.outcome !== 'rotated') throw new Error(`rotation ${j} gave ${result.outcome}`)
      }
      // current is hashes[generations - 2], pending successor hashes[generations - 1]
      if (older >= generations - 2) continue
      const result = await store.rotate(session.id, {
        presentedHash: hashes[older]!, successorHash: 'never', graceMs: 1000, activity: { lastSeenAt: clock.now, idleExpiresAt: clock.now + HOUR }
      }, clock.now)
      t.equal(result.outcome, 'reuse', `generation ${older} of ${generations}`)
      t.equal(await store.get(session.id, clock.now), undefined)
    }
  })

  await t.test('rotate decides exactly as decideRotation()', async (t) => {
    const { store, clock, make } = await setup(t)
    const step = fc.record({
      advanceMs: fc.integer({ min: 0, max: 20_000 }),
      present: fc.constantFrom('current', 'next', 'older', 'foreign'),
      graceMs: fc.integer({ min: 0, max: 15_000 })
    })
    await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 6 }), async (steps) => {
      const session = make()
      await store.create(session, ROOMY, clock.now)
      let model: RefreshState | undefined = session.refresh
      const older: string[] = []
      let counter = 0
      for (const { advanceMs, present, graceMs } of steps) {
        clock.advance(advanceMs)
        const state: RefreshState | undefined = model
        const presentedHash = state === undefined
          ? 'gone'
          : present === 'current' ? state.hash
            : present === 'next' ? state.nextHash ?? state.hash
              : present === 'older' ? older[0] ?? 'foreign' : 'foreign'
        const successorHash = `s${counter++}-${session.id}`
        const activity = { lastSeenAt: clock.now, idleExpiresAt: clock.now + HOUR }
        const result = await store.rotate(session.id, { presentedHash, successorHash, graceMs, activity }, clock.now)
        if (state === undefined) {
          if (result.outcome !== 'missing') throw new Error(`expected missing, got ${result.outcome}`)
          continue
        }
        const decision = decideRotation(state, presentedHash, clock.now, graceMs)
        const expected = decision === 'rotate' ? 'rotated' : decision
        if (result.outcome !== expected) throw new Error(`expected ${expected}, got ${result.outcome}`)
        if (decision === 'rotate') {
          const next = rotatedState(state, presentedHash, successorHash, clock.now)
          if (result.outcome !== 'rotated' || JSON.stringify(result.session.refresh) !== JSON.stringify(next)) {
            throw new Error('rotated state differs from rotatedState()')
          }
          if (presentedHash !== state.hash) older.push(state.hash)
          model = next
        } else if (decision === 'reuse') {
          model = undefined
        }
      }
    }), { numRuns: rotationRuns })
    t.pass(`${rotationRuns} random sequences agree`)
  })

  await t.test('replace swaps one live session for another in one step', async (t) => {
    const { store, clock, make } = await setup(t)
    const [old, other] = [make(), make()]
    await store.create(old!, EVICT, clock.now)
    await store.create(other!, EVICT, clock.now)
    const successor = make({ createdAt: old!.createdAt, absoluteExpiresAt: old!.absoluteExpiresAt })
    t.equal(await store.replace(old!.id, successor, clock.now), true)
    t.equal(await store.get(old!.id, clock.now), undefined, 'the old one is gone')
    t.strictSame(await store.get(successor.id, clock.now), successor)
    t.strictSame(ids(await store.listUser('alice', clock.now)).sort(), [successor.id, other!.id].sort())

    const late = make()
    t.equal(await store.replace(old!.id, late, clock.now), false, 'the old one is no longer live')
    t.equal(await store.get(late.id, clock.now), undefined, 'and nothing was inserted')
    t.equal((await store.listUser('alice', clock.now)).length, 2)
  })

  await t.test('revoke removes one session and returns it once', async (t) => {
    const { store, clock, add } = await setup(t)
    const [one, two] = await add(2)
    t.strictSame(await store.revoke(one!.id, clock.now), one)
    t.equal(await store.revoke(one!.id, clock.now), undefined, 'not live any more')
    t.equal(await store.get(one!.id, clock.now), undefined)
    t.strictSame(ids(await store.listUser('alice', clock.now)), [two!.id])
    t.equal(await store.revoke(randomId(), clock.now), undefined, 'an unknown id')
  })

  await t.test('revokeUser removes every live session of one user, but the excepted one', async (t) => {
    const { store, clock, add } = await setup(t)
    const alice = await add(3)
    const [bob] = await add(1, { userId: 'bob' })
    const [expired] = await add(1, { idleExpiresAt: clock.now + MINUTE })
    clock.advance(MINUTE)
    const revoked = await store.revokeUser('alice', alice[1]!.id, clock.now)
    t.strictSame(ids(revoked).sort(), [alice[0]!.id, alice[2]!.id].sort(), 'the others, not the expired one')
    t.notOk(ids(revoked).includes(expired!.id))
    t.strictSame(ids(await store.listUser('alice', clock.now)), [alice[1]!.id])
    t.ok(await store.get(bob!.id, clock.now), 'other users untouched')
    t.strictSame(ids(await store.revokeUser('alice', undefined, clock.now)), [alice[1]!.id], 'without except: all')
    t.strictSame(await store.listUser('alice', clock.now), [])
    t.strictSame(await store.revokeUser('nobody', undefined, clock.now), [])
  })

  await t.test('listUser: live sessions, most recently active first, as get() sees them', async (t) => {
    const { store, clock, add } = await setup(t)
    const made = await add(4)
    clock.advance(MINUTE)
    await store.touch(made[1]!.id, { lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE }, clock.now)
    await store.revoke(made[2]!.id, clock.now)
    const listed = await store.listUser('alice', clock.now)
    t.strictSame(ids(listed), [made[1]!.id, made[3]!.id, made[0]!.id])
    for (const session of listed) t.strictSame(await store.get(session.id, clock.now), session)
    t.strictSame(await store.listUser('nobody', clock.now), [])
  })

  await t.test('stats count sessions, users and expirations', async (t) => {
    const { store, clock, make, add, removed } = await setup(t)
    t.strictSame(await store.stats(clock.now), { sessions: 0, users: 0, evictions: 0, expirations: 0 })
    const alice = await add(2)
    await add(1, { userId: 'bob', idleExpiresAt: clock.now + MINUTE })
    await add(1, { userId: 'carol' })
    t.match(await store.stats(clock.now), { sessions: 4, users: 3, evictions: 0, expirations: 0 })
    await store.revoke(alice[0]!.id, clock.now)
    t.match(await store.stats(clock.now), { sessions: 3, users: 3 })
    await store.revokeUser('carol', undefined, clock.now)
    t.match(await store.stats(clock.now), { sessions: 2, users: 2 })
    clock.advance(MINUTE)
    t.strictSame(await store.listUser('bob', clock.now), [])
    t.strictSame(await store.stats(clock.now), { sessions: 1, users: 1, evictions: 0, expirations: 1 })
    t.equal(removed.length, 1)
    t.equal(removed[0]?.reason, 'expired')
    await add(3)
    await store.create(make(), { max: 1, onLimit: 'evict-oldest' }, clock.now)
    t.match(await store.stats(clock.now), { sessions: 1, users: 1, evictions: 0 }, 'a per-user limit eviction is not a capacity eviction')
  })
}
