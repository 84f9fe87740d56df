import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import { createDeviceParser, type DeviceInfo, type DeviceType } from '../devices/device.js'
import { deviceTypeOf, type SessionRecord } from '../session.js'
import type { CreateResult, SessionLimit, SessionStore } from '../stores/store.js'
import { TestClock } from './clock.js'
import type { StoreFactory } from './factory.js'

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const ROOMY: SessionLimit = { max: 100, onLimit: 'reject' }

const devices = createDeviceParser()
const DESKTOP = devices.parse({ 'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0' })
const MOBILE = devices.parse({ 'user-agent': 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1' })
const TABLET = devices.parse({ 'user-agent': 'Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1' })

/** The limits of a case: the total, and the one of the new session's device type. */
function limit (max: number, onLimit: SessionLimit['onLimit'], type: DeviceType, typeMax: number, typeOnLimit: SessionLimit['onLimit']): SessionLimit {
  return { max, onLimit, deviceType: { type, max: typeMax, onLimit: typeOnLimit } }
}

interface Harness {
  store: SessionStore
  clock: TestClock
  user: string
  /** A session of the harness's user starting now, on `device` (none when `undefined`), more recently active than any made before. */
  make: (device: DeviceInfo | undefined, overrides?: Partial<SessionRecord>) => SessionRecord
  /** Creates sessions on `device` under a roomy limit, one after the other. */
  add: (count: number, device: DeviceInfo | undefined, overrides?: Partial<SessionRecord>) => Promise<SessionRecord[]>
}

const ids = (sessions: readonly SessionRecord[]): string[] => sessions.map((session) => session.id).sort()
const isCreated = (result: CreateResult): result is Extract<CreateResult, { created: true }> => result.created
const evictedOf = (result: CreateResult): string[] => {
  assert.ok(isCreated(result), 'the login was refused')
  return ids(result.evicted)
}

/**
 * The per-device-type limit of `create` (`SessionLimit.deviceType`), case by
 * case, as subtests of `t`, each on a fresh store from `factory`: the type's
 * limit evicts or refuses among that type only, the total still applies, both
 * at once, and 50 concurrent logins of one type end at that type's limit.
 * `conformance()` runs it: every store keeps it.
 */
export async function limitCases (t: Test, factory: StoreFactory): Promise<void> {
  assert.deepEqual([DESKTOP.type, MOBILE.type, TABLET.type], ['desktop', 'mobile', 'tablet'], 'the devices of the cases are of three types')

  async function setup (t: Test): Promise<Harness> {
    const clock = new TestClock()
    const store = await factory(t, clock, {})
    t.teardown(() => store.close())
    // No case here lets a session expire unseen or evicts at capacity.
    /* c8 ignore next */
    await store.open?.({ now: clock.read, onRemoved: () => {} })
    const user = `user-${randomBytes(6).toString('base64url')}`
    let activity = clock.now
    const make = (device: DeviceInfo | undefined, overrides: Partial<SessionRecord> = {}): SessionRecord => {
      const id = randomBytes(16).toString('base64url')
      const now = clock.now
      activity = Math.max(activity + 1, now)
      return {
        id,
        userId: user,
        fingerprintHash: `fp-${id}`,
        createdAt: now,
        // Each more recently active than the last: the order of eviction never rests on a tie.
        lastSeenAt: activity,
        idleExpiresAt: now + 30 * MINUTE,
        absoluteExpiresAt: now + 12 * HOUR,
        remembered: false,
        ...(device === undefined ? {} : { device }),
        ...overrides
      }
    }
    const add = async (count: number, device: DeviceInfo | undefined, overrides: Partial<SessionRecord> = {}): Promise<SessionRecord[]> => {
      const made: SessionRecord[] = []
      for (let j = 0; j < count; j++) {
        const session = make(device, overrides)
        assert.ok((await store.create(session, ROOMY, clock.now)).created, 'create refused under a roomy limit')
        made.push(session)
      }
      return made
    }
    return { store, clock, user, make, add }
  }

  await t.test('a device type at its limit evicts its own least recently active, never one of another type', async (t) => {
    const { store, clock, user, make, add } = await setup(t)
    const desktops = await add(2, DESKTOP) // the least recently active of all
    const [oldPhone, newPhone] = await add(2, MOBILE)
    const [tablet] = await add(1, TABLET)
    const phone = make(MOBILE)
    const result = await store.create(phone, limit(10, 'reject', 'mobile', 2, 'evict-oldest'), clock.now)
    t.strictSame(evictedOf(result), [oldPhone!.id], 'the older phone went, not an older desktop')
    const listed = await store.listUser(user, clock.now)
    t.strictSame(ids(listed), ids([...desktops, newPhone!, tablet!, phone]), 'the other types are untouched')

    const lowered = await store.create(make(MOBILE), limit(10, 'reject', 'mobile', 1, 'evict-oldest'), clock.now)
    t.strictSame(evictedOf(lowered), ids([newPhone!, phone]), 'a lowered type limit evicts as many of the type as needed')
    t.equal((await store.listUser(user, clock.now)).filter((session) => deviceTypeOf(session) === 'mobile').length, 1, 'one phone left: the new one')
    const desktop = await store.create(make(DESKTOP), limit(10, 'reject', 'desktop', 3, 'evict-oldest'), clock.now)
    t.strictSame(evictedOf(desktop), [], 'a type under its limit evicts nothing')
  })

  await t.test('a device type at its limit with reject refuses, changes nothing, and reports only the sessions of that type', async (t) => {
    const { store, clock, user, make, add } = await setup(t)
    await add(2, DESKTOP)
    const tablets = await add(2, TABLET)
    await add(1, MOBILE)
    const before = await store.listUser(user, clock.now)
    const refused = make(TABLET)
    const result = await store.create(refused, limit(10, 'evict-oldest', 'tablet', 2, 'reject'), clock.now)
    t.strictSame(result, { created: false, active: [...tablets].reverse(), deviceType: 'tablet' }, 'the tablets, most recently active first, and the type that refused')
    t.equal(await store.get(refused.id, clock.now), undefined, 'the refused session was not inserted')
    t.strictSame(await store.listUser(user, clock.now), before, 'every session untouched')
    const phone = await store.create(make(MOBILE), limit(10, 'evict-oldest', 'mobile', 2, 'reject'), clock.now)
    t.strictSame(phone, { created: true, evicted: [] }, 'another type has room of its own')
  })

  await t.test('a session without a device counts as unknown, and a session counts under its device as it is now', async (t) => {
    const { store, clock, user, make, add } = await setup(t)
    const [bare] = await add(1, undefined)
    const [desktop] = await add(1, DESKTOP)
    const unknown = await store.create(make(undefined), limit(10, 'reject', 'unknown', 1, 'reject'), clock.now)
    t.strictSame(unknown, { created: false, active: [bare], deviceType: 'unknown' }, 'the session without a device fills the unknown slot')

    // The desktop session's device changes (a touch with a new device): it now counts as a phone.
    clock.advance(MINUTE)
    const moved = await store.touch(desktop!.id, { lastSeenAt: clock.now, idleExpiresAt: clock.now + 30 * MINUTE, changes: { device: MOBILE } }, clock.now)
    t.equal(moved?.device?.type, 'mobile')
    const phone = await store.create(make(MOBILE), limit(10, 'reject', 'mobile', 1, 'reject'), clock.now)
    t.strictSame(phone, { created: false, active: [moved], deviceType: 'mobile' }, 'counted as the phone it is now')
    t.strictSame(await store.create(make(DESKTOP), limit(10, 'reject', 'desktop', 1, 'reject'), clock.now), { created: true, evicted: [] }, 'and no longer as a desktop')
    t.equal((await store.listUser(user, clock.now)).length, 3)
  })

  await t.test('expired sessions of the type do not count towards its limit', async (t) => {
    const { store, clock, user, make, add } = await setup(t)
    await add(2, MOBILE, { idleExpiresAt: clock.now + MINUTE })
    const [kept] = await add(1, MOBILE)
    clock.advance(MINUTE)
    const result = await store.create(make(MOBILE), limit(10, 'reject', 'mobile', 2, 'reject'), clock.now)
    t.strictSame(result, { created: true, evicted: [] }, 'two of three phones expired: room for one more')
    const listed = await store.listUser(user, clock.now)
    t.equal(listed.length, 2)
    t.ok(listed.some((session) => session.id === kept!.id))
  })

  await t.test('the total still applies under a type limit: it evicts of any type, or refuses with every session', async (t) => {
    const { store, clock, user, make, add } = await setup(t)
    const [oldest] = await add(1, DESKTOP)
    await add(1, MOBILE)
    await add(1, TABLET)
    const evicting = await store.create(make(MOBILE), limit(3, 'evict-oldest', 'mobile', 2, 'reject'), clock.now)
    t.strictSame(evictedOf(evicting), [oldest!.id], 'the type had room; the total evicted its least recently active, a desktop')

    const before = await store.listUser(user, clock.now)
    const rejecting = await store.create(make(TABLET), limit(3, 'reject', 'tablet', 2, 'evict-oldest'), clock.now)
    t.strictSame(rejecting, { created: false, active: before }, 'the total refused: every live session, no device type')
    t.strictSame(await store.listUser(user, clock.now), before, 'nothing changed')
  })

  await t.test('both limits at once', async (t) => {
    await t.test('a type eviction frees the total\'s slot too: nothing more goes', async (t) => {
      const { store, clock, make, add } = await setup(t)
      await add(2, DESKTOP) // the least recently active of all
      const [phone] = await add(1, MOBILE)
      const result = await store.create(make(MOBILE), limit(3, 'evict-oldest', 'mobile', 1, 'evict-oldest'), clock.now)
      t.strictSame(evictedOf(result), [phone!.id], 'only the phone, though a desktop is older')
      const rejectTotal = await store.create(make(MOBILE), limit(3, 'reject', 'mobile', 1, 'evict-oldest'), clock.now)
      t.equal(evictedOf(rejectTotal).length, 1, 'with the total on reject too: the type\'s eviction makes the room')
    })

    await t.test('a type refusal comes first, with that type\'s sessions, though the total is full too', async (t) => {
      const { store, clock, user, make, add } = await setup(t)
      await add(1, DESKTOP)
      const phones = await add(2, MOBILE)
      const before = await store.listUser(user, clock.now)
      const result = await store.create(make(MOBILE), limit(3, 'evict-oldest', 'mobile', 2, 'reject'), clock.now)
      t.strictSame(result, { created: false, active: [...phones].reverse(), deviceType: 'mobile' })
      t.strictSame(await store.listUser(user, clock.now), before, 'the total\'s eviction did not happen either')
    })

    await t.test('under lowered limits, the type evicts its own, then the total evicts of the rest', async (t) => {
      const { store, clock, user, make, add } = await setup(t)
      const [oldPhone] = await add(1, MOBILE)
      const [desktop] = await add(1, DESKTOP)
      await add(1, TABLET)
      const phone = make(MOBILE)
      const result = await store.create(phone, limit(2, 'evict-oldest', 'mobile', 1, 'evict-oldest'), clock.now)
      t.strictSame(evictedOf(result), ids([oldPhone!, desktop!]), 'the phone for the type, then the desktop for the total')
      t.equal((await store.listUser(user, clock.now)).length, 2)
    })

    await t.test('when the total refuses after a planned type eviction, nothing changes', async (t) => {
      const { store, clock, user, make, add } = await setup(t)
      await add(1, MOBILE)
      await add(2, DESKTOP)
      const before = await store.listUser(user, clock.now)
      const result = await store.create(make(MOBILE), limit(2, 'reject', 'mobile', 1, 'evict-oldest'), clock.now)
      t.strictSame(result, { created: false, active: before }, 'refused by the total, with every session')
      t.strictSame(await store.listUser(user, clock.now), before, 'the phone is still there')
    })
  })

  await t.test('50 concurrent logins of one type end at that type\'s limit', async (t) => {
    for (const onLimit of ['evict-oldest', 'reject'] as const) {
      const { store, clock, user, make, add } = await setup(t)
      const desktops = await add(2, DESKTOP)
      const typed = limit(10, 'reject', 'mobile', 3, onLimit)
      const results = await Promise.all(Array.from({ length: 50 }, async () => await store.create(make(MOBILE), typed, clock.now)))
      const listed = await store.listUser(user, clock.now)
      t.equal(listed.filter((session) => deviceTypeOf(session) === 'mobile').length, 3, `${onLimit}: exactly the type's max of phones live`)
      t.strictSame(ids(listed.filter((session) => deviceTypeOf(session) === 'desktop')), ids(desktops), `${onLimit}: the desktops untouched`)
      const created = results.filter(isCreated)
      if (onLimit === 'reject') {
        t.equal(created.length, 3, 'reject: exactly the type\'s max accepted')
        t.ok(results.every((result) => result.created || (result.deviceType === 'mobile' && result.active.length === 3)), 'every refusal by the type, with three phones')
      } else {
        t.equal(created.length, 50, 'evict-oldest: every login accepted')
        const evicted = created.flatMap((result) => result.evicted)
        t.equal(new Set(evicted.map((session) => session.id)).size, 47, 'each of the other phones evicted exactly once')
        t.ok(evicted.every((session) => deviceTypeOf(session) === 'mobile'), 'and only phones')
      }
    }
  })

  await t.test('50 concurrent logins of two types, each with its limit, under a total', async (t) => {
    const { store, clock, user, make } = await setup(t)
    const results = await Promise.all(Array.from({ length: 50 }, async (_, j) => {
      const device = j % 2 === 0 ? MOBILE : TABLET
      return await store.create(make(device), limit(3, 'reject', device.type, 1, 'reject'), clock.now)
    }))
    const listed = await store.listUser(user, clock.now)
    t.strictSame(listed.map(deviceTypeOf).sort(), ['mobile', 'tablet'], 'one of each')
    t.equal(results.filter((result) => result.created).length, 2, 'two accepted')
  })
}
