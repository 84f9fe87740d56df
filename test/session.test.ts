import t from 'tap'
import { supersedes, type SessionRecord } from '../lib/index.js'
import { activityAt, expiryReason, lifetimeOf, startTimes } from '../lib/session.js'

const base: SessionRecord = {
  id: 's1',
  userId: 'alice',
  fingerprintHash: 'h',
  createdAt: 0,
  lastSeenAt: 10,
  idleExpiresAt: 1_000,
  absoluteExpiresAt: 2_000,
  remembered: false
}
const rotated = (rotations: number, lastSeenAt = 10): SessionRecord => ({ ...base, lastSeenAt, refresh: { hash: `r${rotations}`, rotatedAt: 0, rotations } })

t.test('supersedes: more rotations win, then later activity; a copy without refresh state counts none', async (t) => {
  t.equal(supersedes(rotated(2), rotated(1, 99)), true, 'more rotations, however old the activity')
  t.equal(supersedes(rotated(1, 99), rotated(2)), false, 'fewer rotations lose')
  t.equal(supersedes(rotated(1), base), true, 'one rotation beats no refresh state')
  t.equal(supersedes(base, rotated(1)), false, 'no refresh state loses to one rotation')
  t.equal(supersedes(rotated(0, 11), base), true, 'as many (none): the later activity wins')
  t.equal(supersedes(base, { ...base, lastSeenAt: 11 }), false, 'the earlier activity loses')
  t.equal(supersedes(base, base), false, 'an equal copy does not supersede: the import writes it again, changing nothing')
})

const LIFETIMES = { normal: { idleMs: 30, absoluteMs: 100 }, remembered: { idleMs: 300, absoluteMs: 1_000 } }

t.test('lifetimeOf and startTimes: the idle deadline never lies past the absolute one', async (t) => {
  t.equal(lifetimeOf(LIFETIMES, false), LIFETIMES.normal)
  t.equal(lifetimeOf(LIFETIMES, true), LIFETIMES.remembered)
  t.strictSame(startTimes(5_000, LIFETIMES.normal), { createdAt: 5_000, lastSeenAt: 5_000, idleExpiresAt: 5_030, absoluteExpiresAt: 5_100 })
  t.strictSame(startTimes(5_000, { idleMs: 200, absoluteMs: 100 }), { createdAt: 5_000, lastSeenAt: 5_000, idleExpiresAt: 5_100, absoluteExpiresAt: 5_100 }, 'an idle timeout longer than the absolute one')
})

t.test('activityAt: the idle deadline slides up to the absolute one; changes only when there are some, flags merged', async (t) => {
  const lifetime = { idleMs: 500, absoluteMs: 1_000 }
  t.strictSame(activityAt(base, 400, lifetime), { lastSeenAt: 400, idleExpiresAt: 900 }, 'nothing changed: no changes at all')
  t.strictSame(activityAt(base, 1_800, lifetime), { lastSeenAt: 1_800, idleExpiresAt: 2_000 }, 'never past the absolute deadline')
  t.strictSame(activityAt(base, 400, lifetime, { ip: '192.0.2.1' }), { lastSeenAt: 400, idleExpiresAt: 900, changes: { ip: '192.0.2.1' } }, 'a client change, no flags')
  t.strictSame(activityAt(base, 400, lifetime, undefined, ['ip_change']), { lastSeenAt: 400, idleExpiresAt: 900, changes: { flags: ['ip_change'] } }, 'a flag on a session without any')
  t.strictSame(activityAt({ ...base, flags: ['new_device'] }, 400, lifetime, { ip: '192.0.2.1' }, ['ip_change', 'new_device']),
    { lastSeenAt: 400, idleExpiresAt: 900, changes: { ip: '192.0.2.1', flags: ['new_device', 'ip_change'] } }, 'flags added to those the session carries, once each')
})

t.test('expiryReason: the absolute deadline wins from the moment it is reached', async (t) => {
  t.equal(expiryReason(base, 1_500), 'idle')
  t.equal(expiryReason(base, 1_999), 'idle')
  t.equal(expiryReason(base, 2_000), 'absolute')
  t.equal(expiryReason(base, 3_000), 'absolute')
})
