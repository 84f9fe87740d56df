import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import type { Test } from 'tap'
import { createDeviceParser } from '../devices/device.js'
import { CLOCK_SKEW_ALLOWANCE_MS, decideRotation, expiresAt, rotatedState, type RefreshState, type SessionRecord } from '../session.js'
import type { CreateResult, RemovalReason, SessionChanges, SessionLimit, SessionStore } from '../stores/store.js'
import { TestClock } from './clock.js'
import type { StoreFactory } from './factory.js'
import { limitCases } from './limit-cases.js'

export interface ConformanceOptions {
  /** Runs of the rotation property test (each one a few store calls). @default 50 */
  rotationRuns?: number
}

const MINUTE = 60_000
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

const devices = createDeviceParser()
const FIREFOX = devices.parse({ 'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0' })
const PIXEL = devices.parse({
  'user-agent': 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36',
  'sec-ch-ua': '"Chromium";v="126", "Google Chrome";v="126", "Not-A.Brand";v="99"',
  'sec-ch-ua-mobile': '?1',
  'sec-ch-ua-platform': '"Android"',
  'sec-ch-ua-model': '"Pixel 8"'
})

function randomId (): string {
  return randomBytes(16).toString('base64url')
}

/**
 * The store contract (`SessionStore`), case by case, as subtests of `t`: every
 * store runs it, the built-in ones included, each case on a fresh store from
 * `factory`.
 */
export async function conformance (t: Test, factory: StoreFactory, options: ConformanceOptions = {}): Promise<void> {
  const { rotationRuns = 50 } = options

  async function setup (t: Test): Promise<Harness> {
    const clock = new TestClock()
    const store = await factory(t, clock, {})
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
        assert.ok(result.created, 'create refused under a roomy limit')
        made.push(session)
      }
      return made
    }
    return { store, clock, removed, make, add }
  }

  const ids = (sessions: readonly SessionRecord[]): string[] => sessions.map((session) => session.id)
  const isCreated = (result: CreateResult): result is Extract<CreateResult, { created: true }> => result.created
  const scanAll = async (store: SessionStore, batchSize: number, now: number): Promise<SessionRecord[][]> => {
    const batches: SessionRecord[][] = []
    for await (const batch of store.scan(batchSize, now)) batches.push(batch)
    return batches
  }

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

  await t.test('a caller whose clock runs ahead refuses a session without ending it for the others', async (t) => {
    const { store, clock, make, removed } = await setup(t)
    const session = make()
    await store.create(session, EVICT, clock.now)
    // Another instance, 31 minutes ahead: past the idle deadline by its clock, not by ours.
    const ahead = clock.now + 31 * MINUTE
    const activity = { lastSeenAt: ahead, idleExpiresAt: ahead + 30 * MINUTE }
    t.equal(await store.get(session.id, ahead), undefined, 'get: refused by the clock ahead')
    t.strictSame(await store.listUser('alice', ahead), [], 'listUser: refused')
    t.equal(await store.touch(session.id, activity, ahead), undefined, 'touch: refused')
    t.strictSame(await store.rotate(session.id, { presentedHash: `r0-${session.id}`, successorHash: 'r1', graceMs: 0, activity }, ahead), { outcome: 'missing' }, 'rotate: refused')
    t.equal(await store.replace(session.id, make(), ahead), false, 'replace: refused')
    t.strictSame(await store.create(make(), { max: 1, onLimit: 'reject' }, ahead), { created: true, evicted: [] }, 'create: not counted, not evicted')
    t.strictSame(removed, [], 'nothing removed')
    t.strictSame(await store.get(session.id, clock.now), session, 'still live for an instance on time')
    t.ok((await store.listUser('alice', clock.now)).some((listed) => listed.id === session.id), 'and still listed')
    const late = expiresAt(session) + CLOCK_SKEW_ALLOWANCE_MS
    t.equal(await store.get(session.id, late - 1), undefined)
    t.strictSame(removed, [], 'not removed within the allowance')
    t.equal(await store.get(session.id, late), undefined)
    t.strictSame(removed, [{ id: session.id, reason: 'expired' }], 'removed once past its deadline by the allowance')
    t.equal(await store.get(session.id, clock.now), undefined, 'then gone for everyone')
  })

  await t.test('a revocation by a caller whose clock runs ahead ends the session for everyone', async (t) => {
    const { store, clock, add } = await setup(t)
    const [one, two, three] = await add(3)
    const ahead = clock.now + 31 * MINUTE
    t.equal(await store.revoke(one!.id, ahead), undefined, 'not live by its clock: nothing revoked to report')
    t.equal(await store.get(one!.id, clock.now), undefined, 'but gone for an instance on time')
    t.strictSame(await store.revokeUser('alice', three!.id, ahead), [], 'revoke-all: none live by its clock')
    t.equal(await store.get(two!.id, clock.now), undefined, 'gone for everyone')
    t.strictSame(await store.get(three!.id, clock.now), three, 'the one kept is kept')
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
        const evicted = results.filter(isCreated).flatMap((result) => ids(result.evicted))
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
    const first = { ...session, lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE, refresh: { hash: h0, nextHash: 'h1', rotatedAt: clock.now, rotations: 1 } }
    t.strictSame(await rotate(h0, 'h1'), { outcome: 'rotated', session: first }, 'the current token rotates')
    t.strictSame(await store.get(session.id, clock.now), first, 'and is stored so')

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
        assert.equal(result.outcome, 'rotated', `rotation ${j} gave ${result.outcome}`)
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
          : present === 'current'
            ? state.hash
            : present === 'next'
              ? state.nextHash ?? state.hash
              : present === 'older' ? older[0] ?? 'foreign' : 'foreign'
        const successorHash = `s${counter++}-${session.id}`
        const activity = { lastSeenAt: clock.now, idleExpiresAt: clock.now + HOUR }
        const result = await store.rotate(session.id, { presentedHash, successorHash, graceMs, activity }, clock.now)
        if (state === undefined) {
          assert.equal(result.outcome, 'missing', `a revoked session gave ${result.outcome}`)
          continue
        }
        const decision = decideRotation(state, presentedHash, clock.now, graceMs)
        const expected = decision === 'rotate' ? 'rotated' : decision
        assert.equal(result.outcome, expected, `decideRotation() says ${expected}, the store ${result.outcome}`)
        if (decision === 'rotate') {
          const next = rotatedState(state, presentedHash, successorHash, clock.now)
          assert.ok(result.outcome === 'rotated')
          const [stored, computed] = [JSON.stringify(result.session.refresh), JSON.stringify(next)]
          assert.equal(stored, computed, `the store rotated to ${stored}, rotatedState() says ${computed}`)
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
    const empty = await store.stats(clock.now)
    t.match(empty, { sessions: 0, users: 0, evictions: 0, expirations: 0, sessionsPerUser: {} })
    t.ok(empty.counterEvictions === undefined || empty.counterEvictions === 0, 'counterEvictions: left out, or none yet')
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
    t.strictSame(await store.listUser('bob', clock.now + CLOCK_SKEW_ALLOWANCE_MS), [], 'removed past the clock-skew allowance')
    t.match(await store.stats(clock.now), { sessions: 1, users: 1, evictions: 0, expirations: 1 })
    t.equal(removed.length, 1)
    t.equal(removed[0]?.reason, 'expired')
    await add(3)
    await store.create(make(), { max: 1, onLimit: 'evict-oldest' }, clock.now)
    t.match(await store.stats(clock.now), { sessions: 1, users: 1, evictions: 0 }, 'a per-user limit eviction is not a capacity eviction')
  })

  await t.test('sessionsPerUser follows create, revoke, limit eviction and expiry', async (t) => {
    const { store, clock, make, add } = await setup(t)
    const perUser = async (): Promise<Record<number, number>> => ({ ...(await store.stats(clock.now)).sessionsPerUser })
    t.strictSame(await perUser(), {}, 'empty')
    const alice = await add(3)
    await add(1, { userId: 'bob' })
    await add(2, { userId: 'carol', idleExpiresAt: clock.now + MINUTE })
    await add(1, { userId: 'carol' })
    t.strictSame(await perUser(), { 1: 1, 3: 2 }, 'created: bob holds 1, alice and carol 3')
    await store.revoke(alice[0]!.id, clock.now)
    t.strictSame(await perUser(), { 1: 1, 2: 1, 3: 1 }, 'revoke moves alice from 3 to 2')
    await store.create(make({ userId: 'bob' }), { max: 1, onLimit: 'evict-oldest' }, clock.now)
    t.strictSame(await perUser(), { 1: 1, 2: 1, 3: 1 }, 'a limit eviction with its insert leaves bob at 1')
    await store.create(make(), { max: 1, onLimit: 'evict-oldest' }, clock.now)
    t.strictSame(await perUser(), { 1: 2, 3: 1 }, 'a limit eviction of two leaves alice at 1')
    await store.create(make({ userId: 'dave' }), REJECT, clock.now)
    t.strictSame(await perUser(), { 1: 3, 3: 1 }, 'a new user')
    t.equal((await store.create(make({ userId: 'carol' }), REJECT, clock.now)).created, false)
    t.strictSame(await perUser(), { 1: 3, 3: 1 }, 'a refused login changes nothing')
    clock.advance(MINUTE)
    t.equal((await store.listUser('carol', clock.now)).length, 1, 'two of carol\'s expired')
    t.equal((await store.listUser('carol', clock.now + CLOCK_SKEW_ALLOWANCE_MS)).length, 0, 'pruned on the way past the allowance')
    t.strictSame(await perUser(), { 1: 4 }, 'the pruned ones are gone from the histogram')
    await store.revokeUser('dave', undefined, clock.now)
    t.strictSame(await perUser(), { 1: 3 }, 'a user with none left is not counted')
    const stats = await store.stats(clock.now)
    t.match(stats, { sessions: 3, users: 3 }, 'and the totals agree')
  })

  await t.test('increment counts in a sliding window that lives on after each event', async (t) => {
    const { store, clock } = await setup(t)
    // t.match: a store may carry more on a counter (the memory store keeps its expiry there)
    const start = clock.now
    t.equal(await store.counter('login:alice', clock.now), undefined, 'never counted')
    t.match(await store.increment('login:alice', MINUTE, clock.now), { count: 1, firstAt: start, lastAt: start })
    clock.advance(40_000)
    t.match(await store.increment('login:alice', MINUTE, clock.now), { count: 2, firstAt: start, lastAt: clock.now })
    clock.advance(40_000)
    // 80 s after the first event, 40 s after the last: the window slid with the last one
    const third = await store.increment('login:alice', MINUTE, clock.now)
    t.match(third, { count: 3, firstAt: start, lastAt: clock.now }, 'the window runs from the last event')
    t.match(await store.counter('login:alice', clock.now), third, 'counter() reads it without counting')
    clock.advance(MINUTE - 1)
    t.match(await store.counter('login:alice', clock.now), third, 'live one ms before the window ends')
    clock.advance(1)
    t.equal(await store.counter('login:alice', clock.now), undefined, 'expired a window after the last event')
    t.match(await store.increment('login:alice', MINUTE, clock.now), { count: 1, firstAt: clock.now, lastAt: clock.now }, 'an expired counter starts over')
    t.match(await store.increment('login:alice', 10, clock.now), { count: 2, firstAt: clock.now, lastAt: clock.now }, 'each increment sets its own window')
    clock.advance(10)
    t.equal(await store.counter('login:alice', clock.now), undefined, 'the shorter window of the last event applies')
  })

  await t.test('a counter ended by a clock ahead still counts for a clock behind, and is removed only past the clock-skew allowance', async (t) => {
    const { store, clock } = await setup(t)
    await store.increment('seen', MINUTE, clock.now)
    t.equal(await store.counter('seen', clock.now + MINUTE), undefined, 'ended for a caller whose clock reads the end of its window')
    t.match(await store.counter('seen', clock.now + MINUTE - 1), { count: 1 }, 'still counted for a caller one ms behind')
    t.equal(await store.counter('seen', clock.now + MINUTE + CLOCK_SKEW_ALLOWANCE_MS - 1), undefined, 'ended for a caller almost an hour ahead')
    t.match(await store.increment('seen', MINUTE, clock.now), { count: 2 }, 'which removed nothing: a caller on time counts on')
    t.equal(await store.counter('seen', clock.now + MINUTE + CLOCK_SKEW_ALLOWANCE_MS), undefined, 'ended for a caller an hour ahead, who may remove it')
  })

  await t.test('counters are independent of each other and of sessions, and reset', async (t) => {
    const { store, clock, add } = await setup(t)
    const [session] = await add(1)
    await store.increment('a', MINUTE, clock.now)
    await store.increment('a', MINUTE, clock.now)
    await store.increment('b', MINUTE, clock.now)
    await store.increment('{alice}:x y', MINUTE, clock.now)
    await store.increment(session!.id, MINUTE, clock.now)
    t.equal((await store.counter('a', clock.now))?.count, 2)
    t.equal((await store.counter('b', clock.now))?.count, 1)
    t.equal((await store.counter('{alice}:x y', clock.now))?.count, 1, 'any string is a key')
    t.strictSame(await store.get(session!.id, clock.now), session, 'a counter named like a session leaves it alone')
    await store.resetCounter('a')
    t.equal(await store.counter('a', clock.now), undefined, 'reset removes it')
    t.equal((await store.counter('b', clock.now))?.count, 1, 'and only it')
    await store.resetCounter('never-counted')
    t.equal((await store.increment('a', MINUTE, clock.now)).count, 1, 'counting starts over after a reset')
    t.match(await store.stats(clock.now), { sessions: 1, users: 1 }, 'counters are not sessions')
    const scanned = (await scanAll(store, 10, clock.now)).flat()
    t.strictSame(ids(scanned), [session!.id], 'nor does scan() return them')
  })

  await t.test('decrement takes back one event: the times and the window stay, and at zero the counter is gone', async (t) => {
    const { store, clock } = await setup(t)
    const start = clock.now
    await store.increment('k', MINUTE, clock.now)
    clock.advance(1000)
    await store.increment('k', MINUTE, clock.now)
    const last = clock.now
    clock.advance(1000)
    await store.decrement('k', clock.now)
    t.match(await store.counter('k', clock.now), { count: 1, firstAt: start, lastAt: last }, 'one fewer, the times as they were')
    clock.advance(MINUTE - 1001)
    t.match(await store.counter('k', clock.now), { count: 1 }, 'the window still runs from the last event counted')
    await store.decrement('k', clock.now)
    t.equal(await store.counter('k', clock.now), undefined, 'at zero it is gone')
    t.match(await store.increment('k', MINUTE, clock.now), { count: 1, firstAt: clock.now }, 'and counting starts over')
    await store.decrement('never-counted', clock.now)
    t.equal(await store.counter('never-counted', clock.now), undefined, 'an absent counter stays absent')
    await store.increment('old', MINUTE, clock.now)
    await store.increment('old', MINUTE, clock.now)
    clock.advance(MINUTE)
    await store.decrement('old', clock.now)
    t.equal(await store.counter('old', clock.now), undefined, 'an expired counter is not brought back')
    t.match(await store.increment('old', MINUTE, clock.now), { count: 1, firstAt: clock.now }, 'nor carried into the next window')
  })

  await t.test('50 concurrent increments of one key count 50', async (t) => {
    const { store, clock } = await setup(t)
    const counted = await Promise.all(Array.from({ length: 50 }, async () => await store.increment('burst', MINUTE, clock.now)))
    t.strictSame(counted.map((counter) => counter.count).sort((a, b) => a - b), Array.from({ length: 50 }, (_, j) => j + 1), 'each saw its own count')
    t.equal((await store.counter('burst', clock.now))?.count, 50)
    await Promise.all(Array.from({ length: 30 }, async () => await store.decrement('burst', clock.now)))
    t.equal((await store.counter('burst', clock.now))?.count, 20, '30 concurrent decrements take back 30')
  })

  await t.test('scan returns every live session of every user once, in batches, skipping expired ones', async (t) => {
    const { store, clock, add } = await setup(t)
    const live: SessionRecord[] = []
    for (let user = 0; user < 25; user++) live.push(...await add(1 + (user % 3), { userId: `user-${user}` }))
    await add(4, { userId: 'short', idleExpiresAt: clock.now + MINUTE })
    const revoked = await add(2, { userId: 'gone' })
    await store.revokeUser('gone', undefined, clock.now)
    clock.advance(MINUTE)
    const batches = await scanAll(store, 10, clock.now)
    const scanned = batches.flat()
    t.equal(live.length, 49)
    t.strictSame(ids(scanned).sort(), ids(live).sort(), 'every live session, once; no expired or revoked one')
    t.notOk(ids(scanned).some((id) => ids(revoked).includes(id)))
    t.ok(batches.length >= 3, `in batches (${batches.length})`)
    t.ok(batches.every((batch) => batch.length > 0), 'no empty batch')
    t.ok(batches.slice(0, -1).every((batch) => batch.length >= 10 && batch.length <= 60), 'about the batch size each')
    const byId = new Map(live.map((session) => [session.id, session]))
    for (const session of scanned) t.strictSame(session, byId.get(session.id), `${session.id} as stored`)
    t.equal(new Set(scanned.map((session) => session.userId)).size, 25, 'covering every user')

    clock.advance(13 * HOUR)
    t.strictSame(await scanAll(store, 10, clock.now), [], 'nothing once every session has expired')
  })

  await t.test('per-device-type limits', async (t) => {
    await limitCases(t, factory)
  })

  await t.test('client fields round-trip through create, touch and rotate, device shared and never mutated', async (t) => {
    const { store, clock, make } = await setup(t)
    const session = make({
      device: FIREFOX,
      ip: '203.0.113.7',
      userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0',
      location: { country: 'FR', city: 'Lyon', latitude: 45.75, longitude: 4.85 },
      flags: ['new_device'],
      travelAnchor: { latitude: 45.75, longitude: 4.85, country: 'FR', at: clock.now }
    })
    await store.create(session, EVICT, clock.now)
    const read = await store.get(session.id, clock.now)
    t.strictSame(read, session, 'created with every client field')
    t.ok(Object.isFrozen(read?.device), 'the device read back is frozen')

    clock.advance(MINUTE)
    const changes: SessionChanges = {
      ip: '198.51.100.9', location: { country: 'DE' }, flags: ['new_device', 'new_country', 'ip_change'], travelAnchor: { latitude: 52.52, longitude: 13.405, at: clock.now }
    }
    const touched = await store.touch(session.id, { lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE, changes }, clock.now)
    const expected = { ...session, ...changes, lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE }
    t.strictSame(touched, expected, 'touch merges the changes')
    t.strictSame(await store.get(session.id, clock.now), expected, 'and stores them')
    t.strictSame(touched?.device, FIREFOX, 'fields not changed are kept')

    clock.advance(MINUTE)
    const moved: SessionChanges = { device: PIXEL, userAgent: 'pixel-agent', ip: '192.0.2.1', flags: [] }
    const rotated = await store.rotate(session.id, {
      presentedHash: `r0-${session.id}`, successorHash: 'r1', graceMs: 0, activity: { lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE, changes: moved }
    }, clock.now)
    const after = {
      ...expected, ...moved, lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE, refresh: { hash: `r0-${session.id}`, nextHash: 'r1', rotatedAt: clock.now, rotations: 1 }
    }
    t.strictSame(rotated, { outcome: 'rotated', session: after }, 'rotate merges them with the activity, the device included')
    t.strictSame(await store.get(session.id, clock.now), after)
    t.strictSame(await store.listUser('alice', clock.now), [after], 'listUser sees them too')

    const other = make({ device: PIXEL })
    await store.create(other, EVICT, clock.now)
    const [one, two] = await Promise.all([store.get(session.id, clock.now), store.get(other.id, clock.now)])
    t.ok(one?.device !== undefined && Object.isFrozen(one.device) && Object.isFrozen(one.device.browser), 'frozen, browser and all')
    t.strictSame(two?.device, PIXEL, 'two sessions on one device')
    t.strictSame(FIREFOX, devices.parse({ 'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0' }), 'the shared device objects were not mutated')

    clock.advance(MINUTE)
    const cleared = await store.touch(session.id, { lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE, changes: { flags: ['ip_change'] } }, clock.now)
    t.strictSame(cleared?.flags, ['ip_change'], 'flags are replaced, not appended')
    t.equal(cleared?.ip, '192.0.2.1')
    const forgotten = await store.touch(session.id, { lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE, changes: { ip: undefined, location: undefined } }, clock.now)
    t.equal(forgotten?.ip, undefined, 'a change to undefined removes the field')
    t.equal((await store.get(session.id, clock.now))?.location, undefined, 'and it stays removed')
    t.equal(forgotten?.userAgent, 'pixel-agent', 'the others stay')
  })
}
