import fc from 'fast-check'
import type { Test } from 'tap'
import type { SessionRecord } from '../session.js'
import type { RemovalReason } from '../stores/store.js'
import { TestClock } from './clock.js'
import type { StoreFactory } from './factory.js'

/**
 * Model-based test of a session store: random sequences of operations run
 * against the store and against a tiny reference model written from the
 * contract (`SessionStore`, not from any store's code); after every step the
 * two must agree.
 *
 *   runModel(t, { name: 'my', factory: (t, clock) => myStore({ ... }) })
 *
 * Each sequence gets a fresh store from `factory`, on a clock of its own that
 * the sequence moves. `capacity` is only passed when `capacityEviction` is true
 * (a store that evicts at a size bound, like the memory store's `max`).
 *
 * Runs: `numRuns`, else `FC_NUM_RUNS`, else 300; `FC_SEED` replays a failure.
 */
export interface ModelOptions {
  /** Names the test: `<name> store agrees with the reference model`. */
  name: string
  /** A fresh, empty store for each sequence. */
  factory: StoreFactory
  /** Shortest session lifetime to generate (for stores whose TTLs run in real time). @default 1 */
  minLifetimeMs?: number
  /** Whether the store evicts at a size bound; then small capacities are tried. */
  capacityEviction?: boolean
  numRuns?: number
}

const USERS = ['u0', 'u1', 'u2']

type Op =
  | { op: 'create', user: number, onLimit: 'evict-oldest' | 'reject', idleMs: number, absoluteMs: number, remembered: boolean }
  | { op: 'get', pick: number }
  | { op: 'touch', pick: number, idleMs: number }
  | { op: 'revoke', pick: number }
  | { op: 'revokeUser', user: number, except: number | null }
  | { op: 'rotate', pick: number, presented: 'current' | 'successor' | 'older' | 'random', graceMs: number, idleMs: number }
  | { op: 'replace', pick: number }
  | { op: 'advance', ms: number }
  | { op: 'toDeadline', pick: number, offset: -1 | 0 }
  | { op: 'listUser', user: number }

/**
 * The operations. Mostly lifetimes that outlast several steps, sometimes ones
 * that end soon, so sequences both build up per-user sets and cross deadlines
 * (the clock is moved by `advance` and `toDeadline`). A store whose key TTLs
 * run in real time (Redis) needs lifetimes longer than a run takes for real,
 * or a key vanishes while the model's clock stands still.
 */
function operations (minLifetimeMs: number): fc.Arbitrary<Op> {
  const duration = fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: Math.max(20_000, minLifetimeMs), max: 120_000 + minLifetimeMs }) },
    { weight: 1, arbitrary: fc.integer({ min: minLifetimeMs, max: 5000 + minLifetimeMs }) }
  )
  // Current and successor twice as often as the tokens that revoke: chains of rotations, conflicts included.
  const presented = fc.constantFrom('current' as const, 'current' as const, 'successor' as const, 'successor' as const, 'older' as const, 'random' as const)
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ op: fc.constant('create' as const), user: fc.nat(USERS.length - 1), onLimit: fc.constantFrom('evict-oldest' as const, 'reject' as const), idleMs: duration, absoluteMs: duration, remembered: fc.boolean() }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('get' as const), pick: fc.nat() }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('touch' as const), pick: fc.nat(), idleMs: duration }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('revoke' as const), pick: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('revokeUser' as const), user: fc.nat(USERS.length - 1), except: fc.option(fc.nat(), { nil: null }) }) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant('rotate' as const), pick: fc.nat(), presented, graceMs: fc.constantFrom(0, 1000, 5000), idleMs: duration }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('replace' as const), pick: fc.nat() }) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 4, arbitrary: fc.integer({ min: 1, max: 3000 }) }, { weight: 1, arbitrary: fc.integer({ min: 3000, max: 60_000 }) }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('toDeadline' as const), pick: fc.nat(), offset: fc.constantFrom(-1 as const, 0 as const) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('listUser' as const), user: fc.nat(USERS.length - 1) }) }
  )
}

/** Throws `message` with `detail` (as JSON) unless `ok`: fast-check then shrinks the sequence. */
function check (ok: boolean, message: string, detail: unknown): asserts ok {
  if (!ok) throw new Error(`${message}: ${JSON.stringify(detail)}`)
}

function same (actual: unknown, expected: unknown, message: string): void {
  check(JSON.stringify(actual) === JSON.stringify(expected), message, { actual, expected })
}

const live = (s: SessionRecord, now: number): boolean => now < s.idleExpiresAt && now < s.absoluteExpiresAt
const ids = (sessions: readonly SessionRecord[]): string[] => sessions.map((s) => s.id).sort()

/** The reference model: a plain map, with deadlines checked on every read. */
class Model {
  readonly sessions = new Map<string, SessionRecord>()
  /** Every refresh hash a session has had, oldest first (for "older" presentations). */
  readonly history = new Map<string, string[]>()

  liveOf (user: string, now: number): SessionRecord[] {
    return [...this.sessions.values()].filter((s) => s.userId === user && live(s, now))
  }

  get (id: string, now: number): SessionRecord | undefined {
    const session = this.sessions.get(id)
    return session !== undefined && live(session, now) ? session : undefined
  }

  liveCount (now: number): number {
    return [...this.sessions.values()].filter((s) => live(s, now)).length
  }
}

export async function runModel (t: Test, options: ModelOptions): Promise<void> {
  const numRuns = options.numRuns ?? Number(process.env.FC_NUM_RUNS ?? 300)
  const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED)

  await t.test(`${options.name} store agrees with the reference model`, async (t) => {
    let runs = 0
    await fc.assert(
      fc.asyncProperty(
        fc.array(operations(options.minLifetimeMs ?? 1), { minLength: 1, maxLength: 30, size: 'max' }),
        fc.integer({ min: 1, max: 3 }),
        options.capacityEviction === true ? fc.option(fc.integer({ min: 2, max: 6 }), { nil: undefined }) : fc.constant(undefined),
        async (ops, maxPerUser, capacity) => {
          runs++
          await runSequence(t, options, ops, maxPerUser, capacity)
        }
      ),
      { numRuns, ...(seed === undefined ? {} : { seed }) }
    )
    t.equal(runs >= numRuns, true, `${numRuns} random sequences agreed with the model`)
  })
}

async function runSequence (t: Test, options: ModelOptions, ops: Op[], maxPerUser: number, capacity: number | undefined): Promise<void> {
  const clock = new TestClock()
  const removed: Array<{ session: SessionRecord, reason: RemovalReason }> = []
  const store = await options.factory(t, clock, capacity === undefined ? {} : { capacity })
  await store.open?.({ now: clock.read, onRemoved: (session, reason) => removed.push({ session, reason }) })
  try {
    const model = new Model()
    const known: string[] = []
    let serial = 0
    let capacityEvictions = 0

    const pick = (n: number): string => known.length === 0 || n % (known.length + 1) === known.length ? 'unknown-id' : known[n % (known.length + 1)] as string
    /** Mostly a session the model holds live, so rotations reach successors and conflicts. */
    const pickLive = (n: number): string => {
      const held = known.filter((id) => model.get(id, clock.now) !== undefined)
      return n % 4 === 0 || held.length === 0 ? pick(n) : held[n % held.length] as string
    }
    const returned = (session: SessionRecord | undefined, what: string): void => {
      if (session !== undefined) check(live(session, clock.now), `${what} returned an expired session`, session)
    }

    /** Applies what the store removed on its own (capacity, expiry) to the model, checking it was allowed. */
    const absorbRemovals = (justCreated?: string): void => {
      for (const { session, reason } of removed.splice(0)) {
        if (reason === 'expired') {
          // The model holds exactly the sessions live by the contract: none of them may be reported expired.
          check(model.get(session.id, clock.now) === undefined, 'a live session was reported expired', session)
        } else {
          capacityEvictions++
          check(session.id !== justCreated, 'the session just created was evicted for capacity', session)
        }
        model.sessions.delete(session.id)
      }
    }

    const newSession = (userId: string, idleMs: number, absoluteMs: number, remembered: boolean): SessionRecord => {
      const n = serial++
      return {
        id: `s${n}`,
        userId,
        fingerprintHash: `f${n}`,
        createdAt: clock.now,
        lastSeenAt: clock.now,
        idleExpiresAt: clock.now + Math.min(idleMs, absoluteMs),
        absoluteExpiresAt: clock.now + absoluteMs,
        remembered,
        refresh: { hash: `r${n}.0`, rotatedAt: clock.now, rotations: 0 }
      }
    }

    for (const [step, op] of ops.entries()) {
      const where = `step ${step} ${JSON.stringify(op)}`
      switch (op.op) {
        case 'create': {
          const user = USERS[op.user] as string
          const session = newSession(user, op.idleMs, op.absoluteMs, op.remembered)
          const before = model.liveOf(user, clock.now).sort((a, b) => b.lastSeenAt - a.lastSeenAt)
          const result = await store.create(session, { max: maxPerUser, onLimit: op.onLimit }, clock.now)
          if (before.length >= maxPerUser && op.onLimit === 'reject') {
            check(!result.created, `${where}: created past the limit in reject mode`, result)
            same(ids(result.active), ids(before), `${where}: reject reports the live sessions`)
            absorbRemovals()
            break
          }
          check(result.created, `${where}: refused under the limit`, before.length)
          const excess = Math.max(0, before.length - maxPerUser + 1)
          check(result.evicted.length === excess, `${where}: evicted ${result.evicted.length}, expected ${excess}`, ids(result.evicted))
          // The least recently active go first; among equals any choice is right.
          const expectedTail = before.slice(before.length - excess).map((s) => s.lastSeenAt).sort()
          same(result.evicted.map((s) => s.lastSeenAt).sort(), expectedTail, `${where}: evicted the least recently active`)
          for (const evicted of result.evicted) {
            check(model.get(evicted.id, clock.now)?.userId === user, `${where}: evicted a session that was not the user's live one`, evicted.id)
            model.sessions.delete(evicted.id)
          }
          model.sessions.set(session.id, session)
          model.history.set(session.id, [session.refresh!.hash])
          known.push(session.id)
          absorbRemovals(session.id)
          break
        }
        case 'get': {
          const id = pick(op.pick)
          const got = await store.get(id, clock.now)
          returned(got, where)
          absorbRemovals()
          same(got, model.get(id, clock.now), `${where}: get`)
          break
        }
        case 'touch': {
          const id = pick(op.pick)
          const current = model.get(id, clock.now)
          const activity = { lastSeenAt: clock.now, idleExpiresAt: Math.min(clock.now + op.idleMs, current?.absoluteExpiresAt ?? clock.now + op.idleMs) }
          const touched = await store.touch(id, activity, clock.now)
          returned(touched, where)
          absorbRemovals()
          const expected = current === undefined ? undefined : { ...current, ...activity }
          same(touched, expected, `${where}: touch`)
          if (expected !== undefined) model.sessions.set(id, expected)
          break
        }
        case 'revoke': {
          const id = pick(op.pick)
          const expected = model.get(id, clock.now)
          const revoked = await store.revoke(id, clock.now)
          returned(revoked, where)
          absorbRemovals()
          same(revoked, expected, `${where}: revoke`)
          model.sessions.delete(id)
          break
        }
        case 'revokeUser': {
          const user = USERS[op.user] as string
          const except = op.except === null ? undefined : pick(op.except)
          const expected = model.liveOf(user, clock.now).filter((s) => s.id !== except)
          const revoked = await store.revokeUser(user, except, clock.now)
          for (const s of revoked) returned(s, where)
          absorbRemovals()
          same(ids(revoked), ids(expected), `${where}: revokeUser`)
          for (const s of expected) model.sessions.delete(s.id)
          break
        }
        case 'rotate': {
          const id = pickLive(op.pick)
          const current = model.get(id, clock.now)
          const state = current?.refresh
          const history = model.history.get(id) ?? []
          const presentedHash = op.presented === 'current'
            ? state?.hash ?? 'none'
            : op.presented === 'successor'
              ? state?.nextHash ?? state?.hash ?? 'none'
              : op.presented === 'older'
                ? history.find((h) => h !== state?.hash && h !== state?.nextHash) ?? 'never-issued'
                : `random${serial++}`
          const successorHash = `${id}.${serial++}`
          const activity = { lastSeenAt: clock.now, idleExpiresAt: Math.min(clock.now + op.idleMs, current?.absoluteExpiresAt ?? clock.now) }
          const result = await store.rotate(id, { presentedHash, successorHash, graceMs: op.graceMs, activity }, clock.now)
          if (result.outcome === 'rotated' || result.outcome === 'reuse') returned(result.session, where)
          absorbRemovals()
          // The rule, from the contract: the successor rotates; the current one rotates
          // when there is no successor or the grace window has passed, else conflicts;
          // anything else is reuse and revokes.
          let expected: string
          if (current === undefined || state === undefined) expected = 'missing'
          else if (presentedHash === state.nextHash) expected = 'rotated'
          else if (presentedHash === state.hash) expected = state.nextHash === undefined || clock.now - state.rotatedAt >= op.graceMs ? 'rotated' : 'conflict'
          else expected = 'reuse'
          same(result.outcome, expected, `${where}: rotate outcome`)
          if (expected === 'reuse') {
            same((result as { session: SessionRecord }).session, current, `${where}: reuse returns the session`)
            model.sessions.delete(id)
          } else if (expected === 'rotated') {
            const rotated = { ...current!, ...activity, refresh: { hash: presentedHash, nextHash: successorHash, rotatedAt: clock.now, rotations: state!.rotations + 1 } }
            same((result as { session: SessionRecord }).session, rotated, `${where}: rotated session`)
            model.sessions.set(id, rotated)
            model.history.set(id, [...history, successorHash])
          }
          break
        }
        case 'replace': {
          const oldId = pick(op.pick)
          const old = model.get(oldId, clock.now)
          const replacement = newSession(old?.userId ?? 'u0', 10_000, 20_000, false)
          const replaced = await store.replace(oldId, replacement, clock.now)
          absorbRemovals(replacement.id)
          same(replaced, old !== undefined, `${where}: replace`)
          if (old !== undefined) {
            model.sessions.delete(oldId)
            model.sessions.set(replacement.id, replacement)
            model.history.set(replacement.id, [replacement.refresh!.hash])
            known.push(replacement.id)
          }
          break
        }
        case 'advance':
          clock.advance(op.ms)
          break
        case 'toDeadline': {
          // To the millisecond a session ends (or the one before): the boundary cases.
          const target = model.sessions.get(pick(op.pick))
          if (target !== undefined) clock.now = Math.max(clock.now, Math.min(target.idleExpiresAt, target.absoluteExpiresAt) + op.offset)
          break
        }
        case 'listUser':
          break
      }

      // After every step: each user's list is the model's live set, most recently
      // active first, within the limit; every known id reads as the model says.
      for (const user of USERS) {
        const listed = await store.listUser(user, clock.now)
        absorbRemovals()
        for (const s of listed) returned(s, `${where}: listUser`)
        same(ids(listed), ids(model.liveOf(user, clock.now)), `${where}: listUser(${user}) is the live set`)
        for (let i = 1; i < listed.length; i++) {
          check(listed[i - 1]!.lastSeenAt >= listed[i]!.lastSeenAt, `${where}: listUser(${user}) not most recent first`, listed.map((s) => s.lastSeenAt))
        }
        check(listed.length <= maxPerUser, `${where}: ${user} holds ${listed.length} sessions, above the limit ${maxPerUser}`, ids(listed))
      }
      for (const id of known) {
        const got = await store.get(id, clock.now)
        absorbRemovals()
        returned(got, `${where}: get(${id})`)
        same(got, model.get(id, clock.now), `${where}: get(${id})`)
      }
      const liveCount = model.liveCount(clock.now)
      check(capacity === undefined || liveCount <= capacity, `${where}: ${liveCount} live sessions above capacity ${capacity}`, liveCount)
      const stats = await store.stats(clock.now)
      check(capacity === undefined || stats.sessions <= capacity, `${where}: the store holds ${stats.sessions}, above capacity ${capacity}`, stats)
      check(stats.evictions === capacityEvictions, `${where}: stats.evictions ${stats.evictions}, but ${capacityEvictions} capacity removals were reported`, stats)
      const liveUsers = USERS.filter((user) => model.liveOf(user, clock.now).length > 0).length
      check(stats.sessions >= liveCount && stats.users >= liveUsers && stats.users <= stats.sessions,
        `${where}: stats disagree with the live set`, { stats, live: liveCount, liveUsers })
    }

    // At the end, past every deadline: reading each user's list expires the
    // rest, and then nothing may be left, in the sessions or in the index.
    clock.advance(10 * 365 * 24 * 3600_000)
    for (const user of USERS) {
      const left = await store.listUser(user, clock.now)
      check(left.length === 0, 'a session outlived every deadline', left)
    }
    absorbRemovals()
    for (const id of known) await store.get(id, clock.now)
    const end = await store.stats(clock.now)
    check(end.sessions === 0 && end.users === 0, 'sessions or index entries left behind after everything expired', end)
  } finally {
    await store.close()
  }
}
