import { deepStrictEqual, equal } from 'node:assert/strict'
import fc from 'fast-check'
import t from 'tap'
import { sha256 } from '../../lib/crypto.js'
import type { SessionRecord } from '../../lib/session.js'
import { SessionTable } from '../../lib/stores/memory-table.js'
import { checkClaims } from '../../lib/tokens/access-tokens.js'
import { EPOCH } from '../helper.js'

const FP_SEED = Number(process.env.FC_SEED ?? 16)

/** Hashes as the plugin makes them (base64url SHA-256), and any other string a caller may store. */
const hash = fc.oneof(
  fc.string({ maxLength: 8 }).map((text) => sha256(text)),
  fc.string({ maxLength: 50 }),
  // 43 characters that do not decode to 32 bytes and back: the last one's low bits are set.
  fc.constant(`${sha256('x').slice(0, 42)}B`)
)
const time = fc.oneof(fc.integer({ min: EPOCH, max: EPOCH + 1e10 }), fc.double({ noNaN: true }))
const device = fc.constantFrom(undefined, { type: 'desktop', name: 'Firefox on Linux' }, { type: 'mobile', name: 'Safari on iOS' })
const claims = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom({ role: 'member' }, { role: 'admin', level: 2, active: true, team: null }, { tags: ['a'] }, { ratio: Infinity }).map((c) => checkClaims(c)),
  // Not frozen: a caller's own object, never shared.
  fc.constant({ role: 'member' })
)

function record (id: string, userId: string): fc.Arbitrary<SessionRecord> {
  return fc.record({
    fingerprintHash: hash,
    createdAt: time,
    lastSeenAt: time,
    idleExpiresAt: time,
    absoluteExpiresAt: time,
    remembered: fc.boolean(),
    claims,
    refresh: fc.option(fc.record({ hash, nextHash: fc.option(hash, { nil: undefined }), rotatedAt: time, rotations: fc.nat() }, { requiredKeys: ['hash', 'rotatedAt', 'rotations'] }), { nil: undefined }),
    device,
    ip: fc.option(fc.constantFrom('192.0.2.1', '2001:db8::1'), { nil: undefined }),
    userAgent: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
    location: fc.option(fc.constant({ country: 'FR', latitude: 48.85, longitude: 2.35 }), { nil: undefined }),
    // A flag that is not a string is never stored by the plugin, but a caller's store may be given one.
    flags: fc.option(fc.constantFrom(['new_device'], ['new_device', 'challenge'], [], [7] as unknown as string[]), { nil: undefined }),
    travelAnchor: fc.option(fc.constant({ latitude: 1, longitude: 2, at: EPOCH }), { nil: undefined })
  }, { requiredKeys: ['fingerprintHash', 'createdAt', 'lastSeenAt', 'idleExpiresAt', 'absoluteExpiresAt', 'remembered'] })
    .map((fields) => ({ id, userId, ...fields }) as SessionRecord)
}

/** The record without its `undefined` fields, as a store keeps it. */
function kept (session: SessionRecord): SessionRecord {
  const copy: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(session)) {
    if (value === undefined) continue
    copy[name] = name === 'refresh' ? kept(value as SessionRecord) : value
  }
  return copy as unknown as SessionRecord
}

t.test('the table gives back every record exactly as written, and each user\'s sessions in the order they came, through any adds, writes, activity and removes', async (t) => {
  const users = ['alice', 'bob', 'carol', 'dave']
  const steps = fc.array(fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant('add' as const), user: fc.nat(users.length - 1), fields: record('x', 'y') }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('write' as const), pick: fc.nat(), fields: record('x', 'y') }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('activity' as const), pick: fc.nat(), fields: record('x', 'y') }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('remove' as const), pick: fc.nat() }) }
  ), { maxLength: 60 })
  let runs = 0
  fc.assert(fc.property(steps, (sequence) => {
    runs++
    const table = new SessionTable(100)
    // The model: slot → record, and each user's slots in order.
    const held = new Map<number, SessionRecord>()
    const order = new Map<string, number[]>()
    let next = 0
    for (const step of sequence) {
      const slots = [...held.keys()]
      if (step.op === 'add') {
        const userId = users[step.user] as string
        const session = { ...step.fields, id: `s${next++}`, userId }
        const slot = table.add(session)
        if (held.has(slot)) throw new Error(`slot ${slot} handed out twice`)
        held.set(slot, session)
        order.set(userId, [...order.get(userId) ?? [], slot])
      } else if (slots.length > 0) {
        const slot = slots[step.pick % slots.length] as number
        const was = held.get(slot) as SessionRecord
        if (step.op === 'write') {
          const session = { ...step.fields, id: was.id, userId: was.userId }
          table.write(slot, session)
          held.set(slot, session)
        } else if (step.op === 'activity') {
          // What withActivity() may change; the rest as held.
          const { lastSeenAt, idleExpiresAt, device, ip, userAgent, location, flags, travelAnchor } = step.fields
          const session = { ...was, lastSeenAt, idleExpiresAt, device, ip, userAgent, location, flags, travelAnchor }
          table.writeActivity(slot, session)
          held.set(slot, session)
        } else {
          table.remove(slot)
          held.delete(slot)
          order.set(was.userId, (order.get(was.userId) as number[]).filter((s) => s !== slot))
        }
      }
      // Thrown, not reported one by one: fast-check shrinks a failing sequence to the shortest.
      for (const [slot, session] of held) deepStrictEqual(table.read(slot), kept(session))
      for (const userId of users) deepStrictEqual(table.slotsOf(userId), order.get(userId) ?? [])
      equal(table.users, [...order.values()].filter((slots) => slots.length > 0).length)
      deepStrictEqual([...table.slots()].sort((a, b) => a - b), [...held.keys()].sort((a, b) => a - b))
    }
  }), { seed: FP_SEED, numRuns: 200 })
  t.equal(runs, 200)
})

t.test('equal flat frozen claims are one object, kept while any session holds it; other claims stay their own', async (t) => {
  const table = new SessionTable(10)
  const base = { id: 'a', userId: 'u', fingerprintHash: sha256('f'), createdAt: EPOCH, lastSeenAt: EPOCH, idleExpiresAt: EPOCH + 1, absoluteExpiresAt: EPOCH + 2, remembered: false }
  const first = checkClaims({ role: 'member' })
  const second = checkClaims({ role: 'member' })
  const a = table.add({ ...base, id: 'a', claims: first })
  const b = table.add({ ...base, id: 'b', claims: second })
  t.equal(table.read(b).claims, first, 'the second login shares the first one\'s claims')
  table.remove(a)
  t.equal(table.read(b).claims, first, 'still shared while one session holds them')
  table.remove(b)
  const c = table.add({ ...base, id: 'c', claims: second })
  t.equal(table.read(c).claims, second, 'once every holder is gone, new claims start afresh')
  const nested = checkClaims({ roles: ['member'] })
  const d = table.add({ ...base, id: 'd', claims: nested })
  const e = table.add({ ...base, id: 'e', claims: checkClaims({ roles: ['member'] }) })
  t.not(table.read(e).claims, table.read(d).claims, 'claims holding an object are never shared')
  const zero = table.add({ ...base, id: 'z0', claims: checkClaims({ n: 0 }) })
  const negative = table.add({ ...base, id: 'z1', claims: checkClaims({ n: -0 }) })
  t.ok(Object.is(table.read(negative).claims?.n, -0) && Object.is(table.read(zero).claims?.n, 0), 'JSON writes -0 as 0: claims holding it are never shared')
  const own = { role: 'member' }
  t.equal(table.read(table.add({ ...base, id: 'f', claims: own })).claims, own, 'nor claims that are not frozen')
  table.write(c, { ...base, id: 'c', claims: checkClaims({ role: 'admin' }) })
  const third = checkClaims({ role: 'member' })
  t.equal(table.read(table.add({ ...base, id: 'g', claims: third })).claims, third, 'a write that changes the claims releases the old ones')
})

t.test('columns grow past their first size, for slots and for users', async (t) => {
  const table = new SessionTable(5000)
  const slots: number[] = []
  for (let n = 0; n < 5000; n++) slots.push(table.add({ id: `s${n}`, userId: `u${n}`, fingerprintHash: sha256(String(n)), createdAt: n, lastSeenAt: n, idleExpiresAt: n, absoluteExpiresAt: n, remembered: false }))
  t.equal(table.users, 5000)
  t.equal(table.read(slots[0] as number).fingerprintHash, sha256('0'), 'the first slot survives every growth')
  t.equal(table.read(slots[4999] as number).userId, 'u4999')
})

t.test('equal anomaly flags are one frozen array, kept while any session holds it', async (t) => {
  const table = new SessionTable(10)
  const base = { userId: 'u', fingerprintHash: sha256('f'), createdAt: EPOCH, lastSeenAt: EPOCH, idleExpiresAt: EPOCH + 1, absoluteExpiresAt: EPOCH + 2, remembered: false }
  const given = ['new_device']
  const a = table.add({ ...base, id: 'a', flags: given })
  const b = table.add({ ...base, id: 'b', flags: ['new_device'] })
  const shared = table.read(a).flags
  t.strictSame(shared, ['new_device'])
  t.ok(Object.isFrozen(shared), 'frozen: one array serves every holder')
  t.not(shared, given, 'a copy: the caller\'s array is left as it was')
  t.equal(table.read(b).flags, shared, 'shared by the second session')
  table.write(a, { ...base, id: 'a', flags: ['new_device', 'challenge'] })
  t.strictSame(table.read(a).flags, ['new_device', 'challenge'])
  t.equal(table.read(b).flags, shared, 'still held by the other')
  table.remove(b)
  t.not(table.read(table.add({ ...base, id: 'c', flags: ['new_device'] })).flags, shared, 'once no session holds them, a new array')
})
